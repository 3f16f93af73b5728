//! dm-verity hash trees for the squashfs images we write, in the on-disk format `veritysetup`
//! uses (format 1, with its superblock), and their verification.
//!
//! ```text
//!   data device:  squashfs image, padded to 4 KiB  │ D data blocks of 4096 bytes
//!   hash area:    superblock (512 B, in a 4 KiB block) │ top level … level 0
//! ```
//! Level 0 holds the digest of every data block, `H(salt ‖ block)`, each in a slot padded to
//! a power of two (32 bytes for sha256), 4096 / slot per hash block, the rest of a block zero;
//! level i+1 holds the digests of level i's blocks, up to a level of one block, whose digest is
//! the root hash. The levels are stored top first. One data block has no tree: the root hash
//! is that block's digest. The hash area follows the squashfs image in the same file (hash
//! offset = the padded image length), or starts a separate hash file (offset 0).
//!
//! With a given salt, the digests of the data blocks are taken while the image is written
//! (the `writer` module), and the tree levels and the superblock at the end. A salt that is not given is
//! derived from the image content (a sha256 of a fast fingerprint of every block, taken while
//! the image is written), so the same image gives the same bytes and the same root hash; the
//! tree's digests then take one parallel pass over the finished image (from the page cache).

mod check;
mod problem;
mod superblock;
mod tree;
pub(crate) mod writer;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

pub use check::{check, VerityMismatch, VerityReport};
pub use problem::VerityProblem;

/// The data and hash block size we write: the page size dm-verity is fastest with, and what
/// `veritysetup format` uses by default.
pub const BLOCK_SIZE: u32 = 4096;

/// The largest salt the superblock can hold.
pub const MAX_SALT: usize = 256;

/// The digest algorithm of a hash tree. Both are supported by `veritysetup` and every kernel
/// with dm-verity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VerityHash {
    /// sha256: what `veritysetup` uses by default.
    #[default]
    Sha256,
    /// sha512.
    Sha512,
}

impl VerityHash {
    /// The name `veritysetup` and the kernel use.
    pub fn name(self) -> &'static str {
        match self {
            VerityHash::Sha256 => "sha256",
            VerityHash::Sha512 => "sha512",
        }
    }

    /// Bytes of one digest.
    pub fn digest_len(self) -> usize {
        match self {
            VerityHash::Sha256 => 32,
            VerityHash::Sha512 => 64,
        }
    }

    /// The algorithm a superblock names, if we support it.
    pub fn from_name(name: &str) -> Option<VerityHash> {
        match name {
            "sha256" => Some(VerityHash::Sha256),
            "sha512" => Some(VerityHash::Sha512),
            _ => None,
        }
    }
}

impl fmt::Display for VerityHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for VerityHash {
    type Err = String;

    fn from_str(s: &str) -> Result<VerityHash, String> {
        VerityHash::from_name(&s.to_ascii_lowercase())
            .ok_or_else(|| format!("unknown verity hash {s:?} (sha256 or sha512)"))
    }
}

/// What to write a dm-verity hash tree with (see [`SquashfsOptions::verity`](crate::SquashfsOptions::verity)).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct VerityOptions {
    /// The digest algorithm. By default, sha256.
    pub hash: VerityHash,
    /// The salt, at most [`MAX_SALT`] bytes (may be empty). By default, derived from the
    /// image content: 32 bytes that are the same whenever the image bytes are.
    pub salt: Option<Vec<u8>>,
    /// Write the hash area to this file instead of appending it to the image.
    pub hash_file: Option<PathBuf>,
}

/// What opening a verity device needs: `veritysetup open`, a `dm-mod.create=` kernel command
/// line, or `systemd-veritysetup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityInfo {
    /// The digest algorithm.
    pub hash: VerityHash,
    /// The root hash.
    pub root_hash: Vec<u8>,
    /// The salt.
    pub salt: Vec<u8>,
    /// The UUID in the superblock (derived from the root hash, so it is reproducible too).
    pub uuid: [u8; 16],
    /// Number of data blocks: the squashfs image, padded, is `data_blocks × data_block_size`.
    pub data_blocks: u64,
    /// Bytes per data block.
    pub data_block_size: u32,
    /// Bytes per hash block.
    pub hash_block_size: u32,
    /// Byte offset of the hash area (its superblock) in the hash file, or in the image when
    /// `hash_file` is `None`.
    pub hash_offset: u64,
    /// The separate hash file, if one was written.
    pub hash_file: Option<PathBuf>,
}

impl VerityInfo {
    /// Bytes of the hash area: the superblock's block and the tree.
    pub fn hash_area_len(&self) -> u64 {
        let layout = tree::Layout::new(self.hash, self.hash_block_size, self.data_blocks);
        (1 + layout.blocks()) * u64::from(self.hash_block_size)
    }

    /// The root hash in hex, as `veritysetup` takes it.
    pub fn root_hash_hex(&self) -> String {
        hex::encode(&self.root_hash)
    }

    /// The salt in hex (`-` for an empty salt, as `veritysetup` and the kernel write it).
    pub fn salt_hex(&self) -> String {
        if self.salt.is_empty() {
            "-".into()
        } else {
            hex::encode(&self.salt)
        }
    }

    /// The UUID in its usual text form.
    pub fn uuid_text(&self) -> String {
        let h = hex::encode(self.uuid);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// The hash device block where the tree's top level starts (the block after the
    /// superblock): the kernel's `hash_start_block`, which skips the superblock it never reads.
    pub fn hash_start_block(&self) -> u64 {
        self.hash_offset / u64::from(self.hash_block_size) + 1
    }

    /// A device-mapper table line for the `verity` target, with `DATA_DEV` and `HASH_DEV`
    /// standing for the devices (the same one when the tree is appended).
    pub fn dm_table(&self) -> String {
        format!(
            "0 {} verity 1 DATA_DEV HASH_DEV {} {} {} {} {} {} {}",
            self.data_blocks * u64::from(self.data_block_size) / 512,
            self.data_block_size,
            self.hash_block_size,
            self.data_blocks,
            self.hash_start_block(),
            self.hash,
            self.root_hash_hex(),
            self.salt_hex()
        )
    }

    /// The machine-readable form written by `--verity-info`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format": 1,
            "hash_algorithm": self.hash.name(),
            "root_hash": self.root_hash_hex(),
            "salt": self.salt_hex(),
            "uuid": self.uuid_text(),
            "data_blocks": self.data_blocks,
            "data_block_size": self.data_block_size,
            "hash_block_size": self.hash_block_size,
            "hash_offset": self.hash_offset,
            "hash_start_block": self.hash_start_block(),
            "hash_file": self.hash_file.as_ref().map(|p| p.display().to_string()),
            "dm_table": self.dm_table(),
        })
    }

    /// The root hash of a `--verity-info` file's JSON.
    pub fn root_hash_from_json(text: &str) -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        hex::decode(v.get("root_hash")?.as_str()?).ok()
    }

    /// The separate hash file a `--verity-info` file's JSON names, if any.
    pub fn hash_file_from_json(text: &str) -> Option<PathBuf> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        Some(PathBuf::from(v.get("hash_file")?.as_str()?))
    }
}

/// Parses a hex salt (`-` or nothing for an empty one), refusing more than [`MAX_SALT`] bytes.
pub fn parse_salt(text: &str) -> Result<Vec<u8>, String> {
    if text == "-" || text.is_empty() {
        return Ok(Vec::new());
    }
    let salt = hex::decode(text).map_err(|e| format!("not hex: {e}"))?;
    if salt.len() > MAX_SALT {
        return Err(format!(
            "{} bytes; the superblock holds at most {MAX_SALT}",
            salt.len()
        ));
    }
    Ok(salt)
}

#[cfg(test)]
mod tests;
