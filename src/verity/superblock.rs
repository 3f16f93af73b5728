//! The 512-byte superblock at the start of a hash area (cryptsetup's `struct verity_sb`, all
//! numbers little-endian):
//!
//! ```text
//!   0  signature "verity\0\0"   8  version (1)        12 hash type (1: normal)
//!  16  uuid[16]                32  algorithm name[32] 64 data block size
//!  68  hash block size         72  data blocks (u64)  80 salt size (u16)
//!  88  salt[256]              344  zero to 512
//! ```

use crate::verity::{VerityHash, VerityProblem, MAX_SALT};

/// Bytes of the superblock; the tree starts at the next hash block.
pub(crate) const SIZE: usize = 512;

const SIGNATURE: &[u8; 8] = b"verity\0\0";

/// The fields of a format-1 superblock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub hash: VerityHash,
    pub uuid: [u8; 16],
    pub data_block_size: u32,
    pub hash_block_size: u32,
    pub data_blocks: u64,
    pub salt: Vec<u8>,
}

impl Superblock {
    /// The on-disk bytes. The salt must be at most [`MAX_SALT`] bytes (checked by the caller).
    pub(crate) fn to_bytes(&self) -> [u8; SIZE] {
        let mut b = [0u8; SIZE];
        b[..8].copy_from_slice(SIGNATURE);
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        b[12..16].copy_from_slice(&1u32.to_le_bytes());
        b[16..32].copy_from_slice(&self.uuid);
        let name = self.hash.name().as_bytes();
        b[32..32 + name.len()].copy_from_slice(name);
        b[64..68].copy_from_slice(&self.data_block_size.to_le_bytes());
        b[68..72].copy_from_slice(&self.hash_block_size.to_le_bytes());
        b[72..80].copy_from_slice(&self.data_blocks.to_le_bytes());
        let salt = &self.salt[..self.salt.len().min(MAX_SALT)];
        b[80..82].copy_from_slice(&(salt.len() as u16).to_le_bytes());
        b[88..88 + salt.len()].copy_from_slice(salt);
        b
    }

    /// Parses a superblock, saying what is wrong with one we cannot use.
    pub(crate) fn parse(b: &[u8; SIZE]) -> Result<Superblock, VerityProblem> {
        let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        if &b[..8] != SIGNATURE {
            return Err(VerityProblem::NoSignature);
        }
        let version = u32_at(8);
        if version != 1 {
            return Err(VerityProblem::UnsupportedVersion { version });
        }
        let hash_type = u32_at(12);
        if hash_type != 1 {
            return Err(VerityProblem::UnsupportedHashType { hash_type });
        }
        let name_bytes = &b[32..64];
        let name_len = name_bytes.iter().position(|&c| c == 0).unwrap_or(32);
        let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
        let Some(hash) = VerityHash::from_name(&name) else {
            return Err(VerityProblem::UnsupportedAlgorithm { name });
        };
        let block_size_ok = |s: u32| s.is_power_of_two() && (512..=1 << 20).contains(&s);
        let data_block_size = u32_at(64);
        let hash_block_size = u32_at(68);
        if !block_size_ok(data_block_size) || !block_size_ok(hash_block_size) {
            return Err(VerityProblem::BadBlockSizes {
                data: data_block_size,
                hash: hash_block_size,
            });
        }
        if (hash_block_size as usize) < 2 * hash.digest_len().next_power_of_two() {
            return Err(VerityProblem::HashBlockTooSmall {
                size: hash_block_size,
                hash,
            });
        }
        let mut blocks = [0u8; 8];
        blocks.copy_from_slice(&b[72..80]);
        let data_blocks = u64::from_le_bytes(blocks);
        if data_blocks == 0 {
            return Err(VerityProblem::NoDataBlocks);
        }
        let salt_len = usize::from(u16::from_le_bytes([b[80], b[81]]));
        if salt_len > MAX_SALT {
            return Err(VerityProblem::SaltTooLong { len: salt_len });
        }
        let mut uuid = [0u8; 16];
        uuid.copy_from_slice(&b[16..32]);
        Ok(Superblock {
            hash,
            uuid,
            data_block_size,
            hash_block_size,
            data_blocks,
            salt: b[88..88 + salt_len].to_vec(),
        })
    }
}
