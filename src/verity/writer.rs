//! Writing a hash tree: the data blocks' digests as the image goes out, the levels, the
//! superblock and the hash area at the end.
//!
//! [`Leaves`] is fed by the image file ([`ImageFile`](crate::squashfs)) with each 4 KiB block
//! once its bytes are final for now; a dedup rewind takes back the digests of the blocks it
//! reopens. Block 0 waits for the end: the squashfs superblock is written there last.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_128;

use crate::error::{Error, Result};
use crate::sink::OutputFile;
use crate::verity::superblock::Superblock;
use crate::verity::tree::{self, Layout, Salted};
use crate::verity::{VerityHash, VerityInfo, VerityOptions, BLOCK_SIZE, MAX_SALT};

const BLOCK: u64 = BLOCK_SIZE as u64;

/// What is taken of each block as it is written.
enum Digester {
    /// The salt is given: the tree's own digests.
    Salted(Box<Salted>),
    /// The salt is still to be derived: a fast 128-bit fingerprint of each block (xxh3), from
    /// which the salt is derived at the end; the tree's digests then take one parallel pass
    /// over the finished image.
    Fingerprint,
}

impl Digester {
    fn len(&self, hash: VerityHash) -> usize {
        match self {
            Digester::Salted(_) => hash.digest_len(),
            Digester::Fingerprint => 16,
        }
    }

    fn digest_into(&self, block: &[u8], out: &mut Vec<u8>) {
        match self {
            Digester::Salted(s) => s.digest_into(block, out),
            Digester::Fingerprint => out.extend_from_slice(&xxh3_128(block).to_le_bytes()),
        }
    }
}

/// The data blocks' digests, taken as the image is written.
pub(crate) struct Leaves {
    options: VerityOptions,
    digester: Digester,
    /// Digests (or fingerprints) of blocks 1, 2, … in order.
    digests: Vec<u8>,
    /// Offset of the next block to hash (a multiple of [`BLOCK`], at least one block).
    next: u64,
    threads: usize,
}

impl Leaves {
    /// Checks the options against the image path and starts hashing.
    pub(crate) fn new(options: &VerityOptions, image: &Path, threads: usize) -> Result<Leaves> {
        if let Some(salt) = &options.salt {
            if salt.len() > MAX_SALT {
                return Err(Error::InvalidOption {
                    name: "verity salt",
                    value: hex::encode(salt),
                    reason: "a salt is at most 256 bytes",
                });
            }
        }
        if let Some(hash_file) = &options.hash_file {
            if crate::sink::same_file(hash_file, image) {
                return Err(Error::InvalidOption {
                    name: "verity hash file",
                    value: hash_file.display().to_string(),
                    reason: "the hash file must not be the image itself (leave it out to append)",
                });
            }
        }
        Ok(Leaves {
            digester: match &options.salt {
                Some(salt) => Digester::Salted(Box::new(Salted::new(options.hash, salt))),
                None => Digester::Fingerprint,
            },
            options: options.clone(),
            digests: Vec::new(),
            next: BLOCK,
            threads,
        })
    }

    /// Offset of the next block wanted.
    pub(crate) fn next(&self) -> u64 {
        self.next
    }

    /// Takes the block at [`Leaves::next`] (exactly [`BLOCK_SIZE`] bytes).
    pub(crate) fn push(&mut self, block: &[u8]) {
        self.digester.digest_into(block, &mut self.digests);
        self.next += BLOCK;
    }

    /// Forgets the blocks from the one holding `offset` on: they will be written again.
    pub(crate) fn forget_from(&mut self, offset: u64) {
        let keep = (offset / BLOCK * BLOCK).max(BLOCK);
        if keep < self.next {
            self.next = keep;
            let len = self.digester.len(self.options.hash);
            self.digests.truncate((keep / BLOCK - 1) as usize * len);
        }
    }

    /// Hashes what is left of `file` (the finished image, `len` bytes, a multiple of
    /// [`BLOCK_SIZE`]) and writes the hash area: appended at `len`, or to the hash file, which
    /// is returned uncommitted so that it appears only with the image.
    pub(crate) fn finish(
        mut self,
        file: &File,
        len: u64,
        image: &Path,
    ) -> Result<(VerityInfo, Option<OutputFile>)> {
        let io = |e| Error::Output {
            path: image.to_path_buf(),
            source: e,
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(self.threads)
            .build()
            .map_err(|e| Error::Output {
                path: image.to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        let data_blocks = len / BLOCK;
        let hash = self.options.hash;
        // What the stream left: the blocks after the last flush, and block 0 (the superblock).
        let mut block = vec![0u8; BLOCK as usize];
        for at in (self.next..len).step_by(BLOCK as usize) {
            file.read_exact_at(&mut block, at).map_err(io)?;
            self.digester.digest_into(&block, &mut self.digests);
        }
        file.read_exact_at(&mut block, 0).map_err(io)?;
        let mut leaves = Vec::with_capacity(self.digests.len() + 64);
        self.digester.digest_into(&block, &mut leaves);
        leaves.extend_from_slice(&self.digests);
        drop(std::mem::take(&mut self.digests));

        let (salt, salted) = match (self.digester, self.options.salt.clone()) {
            (Digester::Salted(salted), Some(salt)) => (salt, *salted),
            (_, given) => {
                let salt = given.unwrap_or_else(|| derive_salt(hash.name(), &leaves));
                let salted = Salted::new(hash, &salt);
                leaves = pool
                    .install(|| tree::hash_blocks(file, &salted, BLOCK_SIZE, 0, data_blocks))
                    .map_err(io)?;
                (salt, salted)
            }
        };
        let layout = Layout::new(hash, BLOCK_SIZE, data_blocks);
        let (levels, root_hash) =
            tree::build(&salted, hash.digest_len(), &leaves, &layout, BLOCK_SIZE);
        let sb = Superblock {
            hash,
            uuid: derive_uuid(&root_hash, &salt),
            data_block_size: BLOCK_SIZE,
            hash_block_size: BLOCK_SIZE,
            data_blocks,
            salt: salt.clone(),
        };
        let mut area = Vec::with_capacity(BLOCK as usize + levels.len());
        area.extend_from_slice(&sb.to_bytes());
        area.resize(BLOCK as usize, 0);
        area.extend_from_slice(&levels);

        let (hash_offset, hash_out) = match &self.options.hash_file {
            Some(path) => {
                let mut out = OutputFile::create(path)?;
                out.file().write_all(&area).map_err(|e| Error::Output {
                    path: path.clone(),
                    source: e,
                })?;
                (0, Some(out))
            }
            None => {
                file.write_all_at(&area, len).map_err(io)?;
                (len, None)
            }
        };
        let info = VerityInfo {
            hash,
            root_hash,
            salt,
            uuid: sb.uuid,
            data_blocks,
            data_block_size: BLOCK_SIZE,
            hash_block_size: BLOCK_SIZE,
            hash_offset,
            hash_file: self.options.hash_file.clone(),
        };
        Ok((info, hash_out))
    }
}

/// The salt derived from the image content: a sha256 of every data block's fingerprint, in
/// order (a salt need not be secret, only the same for the same image and different for
/// different ones).
fn derive_salt(hash_name: &str, fingerprints: &[u8]) -> Vec<u8> {
    let mut h = Sha256::new_with_prefix(b"ocirender dm-verity salt 1\0");
    h.update(hash_name.as_bytes());
    h.update(fingerprints);
    h.finalize().to_vec()
}

/// A UUID (version 8: derived, not random) from the root hash and salt.
fn derive_uuid(root: &[u8], salt: &[u8]) -> [u8; 16] {
    let mut h = Sha256::new_with_prefix(b"ocirender dm-verity uuid 1\0");
    h.update(root);
    h.update(salt);
    let d = h.finalize();
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&d[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}
