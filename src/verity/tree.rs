//! The hash tree: salted digests, the level layout `veritysetup` uses, and building the levels
//! from the data blocks' digests.

use std::fs::File;
use std::os::unix::fs::FileExt;

use rayon::prelude::*;
use sha2::{Digest, Sha256, Sha512};

use crate::verity::VerityHash;

/// A hasher with the salt already absorbed: each block's digest is `H(salt ‖ block)`
/// (format 1; format 0 put the salt last).
#[derive(Clone)]
pub(crate) enum Salted {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Salted {
    pub(crate) fn new(hash: VerityHash, salt: &[u8]) -> Salted {
        match hash {
            VerityHash::Sha256 => Salted::Sha256(Sha256::new_with_prefix(salt)),
            VerityHash::Sha512 => Salted::Sha512(Sha512::new_with_prefix(salt)),
        }
    }

    /// Appends the digest of `block` to `out`.
    pub(crate) fn digest_into(&self, block: &[u8], out: &mut Vec<u8>) {
        match self {
            Salted::Sha256(h) => out.extend_from_slice(&h.clone().chain_update(block).finalize()),
            Salted::Sha512(h) => out.extend_from_slice(&h.clone().chain_update(block).finalize()),
        }
    }

    /// The digest of `block`.
    pub(crate) fn digest(&self, block: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.digest_into(block, &mut out);
        out
    }
}

/// Where each level of a tree over `data_blocks` blocks lies, in hash blocks from the start of
/// the tree (the block after the superblock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Digests per hash block.
    pub per_block: u64,
    /// Bytes per digest slot: the digest length rounded up to a power of two.
    pub slot: usize,
    /// `(first block, block count)` of each level; index 0 is the level over the data blocks.
    /// Empty for a single data block.
    pub levels: Vec<(u64, u64)>,
}

impl Layout {
    pub(crate) fn new(hash: VerityHash, hash_block_size: u32, data_blocks: u64) -> Layout {
        let slot = hash.digest_len().next_power_of_two();
        let per_block = u64::from(hash_block_size) / slot as u64;
        let mut sizes = Vec::new();
        let mut n = data_blocks;
        while n > 1 {
            n = n.div_ceil(per_block);
            sizes.push(n);
        }
        // Stored top level first.
        let mut levels = vec![(0, 0); sizes.len()];
        let mut at = 0;
        for (i, &size) in sizes.iter().enumerate().rev() {
            levels[i] = (at, size);
            at += size;
        }
        Layout {
            per_block,
            slot,
            levels,
        }
    }

    /// Hash blocks in the tree, without the superblock's.
    pub(crate) fn blocks(&self) -> u64 {
        self.levels.iter().map(|&(_, n)| n).sum()
    }
}

/// Packs `digests` (each `len` bytes) into hash blocks: each in a `slot`, `per_block` to a
/// block, the rest zero.
pub(crate) fn pack(digests: &[u8], len: usize, layout: &Layout, hash_block_size: u32) -> Vec<u8> {
    let per = layout.per_block as usize;
    let block = hash_block_size as usize;
    let count = digests.len() / len;
    let mut out = vec![0u8; count.div_ceil(per) * block];
    for (i, d) in digests.chunks_exact(len).enumerate() {
        let at = (i / per) * block + (i % per) * layout.slot;
        out[at..at + len].copy_from_slice(d);
    }
    out
}

/// The tree's bytes (top level first) and the root hash, from the data blocks' digests.
pub(crate) fn build(
    salted: &Salted,
    len: usize,
    leaves: &[u8],
    layout: &Layout,
    hash_block_size: u32,
) -> (Vec<u8>, Vec<u8>) {
    if layout.levels.is_empty() {
        return (Vec::new(), leaves[..len].to_vec());
    }
    let mut levels: Vec<Vec<u8>> = Vec::with_capacity(layout.levels.len());
    let mut digests = leaves.to_vec();
    for _ in &layout.levels {
        let packed = pack(&digests, len, layout, hash_block_size);
        digests = packed
            .chunks_exact(hash_block_size as usize)
            .flat_map(|b| salted.digest(b))
            .collect();
        levels.push(packed);
    }
    let tree = levels.into_iter().rev().flatten().collect();
    (tree, digests)
}

/// The digests of data blocks `first..first + count` of `file` (each `block` bytes, from
/// offset 0), read and hashed in parallel on the current rayon pool. The file must hold them.
pub(crate) fn hash_blocks(
    file: &File,
    salted: &Salted,
    block: u32,
    first: u64,
    count: u64,
) -> std::io::Result<Vec<u8>> {
    const CHUNK: u64 = 256;
    let block = u64::from(block);
    let chunks: Vec<u64> = (0..count.div_ceil(CHUNK)).collect();
    let parts = chunks
        .par_iter()
        .map(|&c| {
            let start = first + c * CHUNK;
            let n = CHUNK.min(first + count - start);
            let mut buf = vec![0u8; (n * block) as usize];
            file.read_exact_at(&mut buf, start * block)?;
            let mut out = Vec::with_capacity(n as usize * 64);
            for b in buf.chunks_exact(block as usize) {
                salted.digest_into(b, &mut out);
            }
            Ok(out)
        })
        .collect::<std::io::Result<Vec<Vec<u8>>>>()?;
    Ok(parts.concat())
}
