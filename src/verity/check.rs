//! Checking an image against its hash tree and a root hash, in-process, the way the kernel
//! trusts it: from the root down. The top hash block must hash to the root hash, each lower
//! hash block to its slot in the level above, each data block to its slot in level 0; the
//! first thing that does not is reported, a data block with the file it belongs to.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::squashfs::format::{stored_len, Superblock as SquashfsSuperblock, SUPERBLOCK_SIZE};
use crate::squashfs::SquashfsReader;
use crate::verity::superblock::{self, Superblock};
use crate::verity::tree::{self, Layout, Salted};
use crate::verity::{VerityInfo, VerityProblem};

/// What checking a hash tree found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerityReport {
    /// The tree's parameters as its superblock gives them, with the root hash it computes to.
    pub info: VerityInfo,
    /// The first mismatch, from the root down; `None` when the image is intact.
    pub mismatch: Option<VerityMismatch>,
}

/// The first part of an image that does not match its hash tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerityMismatch {
    /// The tree's top does not hash to the expected root hash: a different image, tree or salt.
    RootHash {
        /// The root hash the tree computes to.
        found: Vec<u8>,
    },
    /// A hash block does not match its digest in the level above.
    HashBlock {
        /// The level (0: the digests of the data blocks).
        level: usize,
        /// The block's index in its level.
        index: u64,
        /// Its byte offset in the hash file.
        offset: u64,
    },
    /// Unused bytes of a hash block are not zero.
    Padding {
        /// The level.
        level: usize,
        /// The block's index in its level.
        index: u64,
    },
    /// A data block does not match its digest.
    DataBlock {
        /// The block's index.
        block: u64,
        /// Its byte offset in the image.
        offset: u64,
        /// What the block holds: a file's path, a squashfs table, padding.
        holds: String,
    },
}

impl fmt::Display for VerityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerityMismatch::RootHash { found } => write!(
                f,
                "the hash tree's root hash is {}, not the one given",
                hex::encode(found)
            ),
            VerityMismatch::HashBlock {
                level,
                index,
                offset,
            } => write!(
                f,
                "hash block {index} of level {level} (offset {offset}) does not match the level above"
            ),
            VerityMismatch::Padding { level, index } => write!(
                f,
                "hash block {index} of level {level} has non-zero bytes in its unused part"
            ),
            VerityMismatch::DataBlock {
                block,
                offset,
                holds,
            } => write!(
                f,
                "data block {block} (offset {offset}, {holds}) does not match its hash"
            ),
        }
    }
}

/// Checks `image` against its hash tree, appended to it (after the squashfs image, padded to
/// 4 KiB) or in `hash_file`, and the `root_hash` the user trusts.
///
/// Errors are for a tree that cannot be read (no superblock, unsupported parameters, a file
/// too short); a tree that reads but does not match is a [`VerityReport::mismatch`].
pub fn check(image: &Path, hash_file: Option<&Path>, root_hash: &[u8]) -> Result<VerityReport> {
    let bad = |path: &Path, problem: VerityProblem| Error::BadVerity {
        path: path.to_path_buf(),
        problem,
    };
    let open = |p: &Path| File::open(p).map_err(|e| Error::io("open", p, e));
    let data = open(image)?;
    let data_len = file_len(&data, image)?;
    let (hash_path, hash, hash_offset) = match hash_file {
        Some(p) => (p.to_path_buf(), open(p)?, 0),
        None => {
            let offset = appended_offset(&data, image)?;
            (image.to_path_buf(), open(image)?, offset)
        }
    };
    let hash_len = file_len(&hash, &hash_path)?;
    let mut sb_bytes = [0u8; superblock::SIZE];
    if hash_offset.saturating_add(superblock::SIZE as u64) > hash_len {
        return Err(bad(
            &hash_path,
            VerityProblem::NoHashTree {
                offset: hash_offset,
                file_len: hash_len,
            },
        ));
    }
    read_at(&hash, &hash_path, &mut sb_bytes, hash_offset)?;
    let sb = Superblock::parse(&sb_bytes).map_err(|p| bad(&hash_path, p))?;
    let dbs = u64::from(sb.data_block_size);
    let hbs = u64::from(sb.hash_block_size);
    let data_end = sb
        .data_blocks
        .checked_mul(dbs)
        .filter(|&end| end <= data_len && (hash_file.is_some() || end <= hash_offset))
        .ok_or_else(|| {
            bad(
                image,
                VerityProblem::DataBeyondImage {
                    blocks: sb.data_blocks,
                    block_size: sb.data_block_size,
                    available: if hash_file.is_some() {
                        data_len
                    } else {
                        hash_offset
                    },
                },
            )
        })?;
    let layout = Layout::new(sb.hash, sb.hash_block_size, sb.data_blocks);
    let tree_start = (hash_offset + superblock::SIZE as u64).div_ceil(hbs) * hbs;
    let tree_len = layout.blocks() * hbs;
    if tree_start + tree_len > hash_len {
        return Err(bad(
            &hash_path,
            VerityProblem::TreeTruncated {
                needs: tree_len,
                offset: tree_start,
                file_len: hash_len,
            },
        ));
    }
    let mut levels = vec![0u8; tree_len as usize];
    read_at(&hash, &hash_path, &mut levels, tree_start)?;
    let salted = Salted::new(sb.hash, &sb.salt);
    let hash_data = |first, count| {
        tree::hash_blocks(&data, &salted, sb.data_block_size, first, count)
            .map_err(|e| Error::io("read", image, e))
    };
    let found = match layout.levels.last() {
        None => hash_data(0, 1)?,
        Some(&(first, _)) => salted.digest(&levels[(first * hbs) as usize..][..hbs as usize]),
    };
    let info = VerityInfo {
        hash: sb.hash,
        root_hash: found.clone(),
        salt: sb.salt.clone(),
        uuid: sb.uuid,
        data_blocks: sb.data_blocks,
        data_block_size: sb.data_block_size,
        hash_block_size: sb.hash_block_size,
        hash_offset,
        hash_file: hash_file.map(Path::to_path_buf),
    };
    let report = |mismatch| VerityReport {
        info: info.clone(),
        mismatch,
    };
    if found != root_hash {
        return Ok(report(Some(VerityMismatch::RootHash { found })));
    }
    let tree = Tree {
        layout: &layout,
        levels: &levels,
        hbs,
        len: sb.hash.digest_len(),
    };
    for level in (0..layout.levels.len()).rev() {
        let below = match level {
            0 => None,
            _ => Some(level - 1),
        };
        let children = below.map_or(sb.data_blocks, |b| layout.levels[b].1);
        if let Some(index) = tree.padding_error(level, children) {
            return Ok(report(Some(VerityMismatch::Padding { level, index })));
        }
        let Some(below) = below else { continue };
        for index in 0..children {
            let digest = salted.digest(tree.block(below, index));
            if digest != tree.slot(level, index) {
                let offset = tree_start + (layout.levels[below].0 + index) * hbs;
                return Ok(report(Some(VerityMismatch::HashBlock {
                    level: below,
                    index,
                    offset,
                })));
            }
        }
    }
    if !layout.levels.is_empty() {
        // The data last: only once the tree it is checked against holds from the root down.
        let leaves = hash_data(0, sb.data_blocks)?;
        for (block, digest) in leaves.chunks_exact(tree.len).enumerate() {
            let block = block as u64;
            if digest != tree.slot(0, block) {
                let offset = block * dbs;
                let holds = describe(image, offset, dbs.min(data_end - offset));
                return Ok(report(Some(VerityMismatch::DataBlock {
                    block,
                    offset,
                    holds,
                })));
            }
        }
    }
    Ok(report(None))
}

/// The stored levels, addressed by (level, block) and (level, slot).
struct Tree<'a> {
    layout: &'a Layout,
    levels: &'a [u8],
    hbs: u64,
    len: usize,
}

impl Tree<'_> {
    fn block(&self, level: usize, index: u64) -> &[u8] {
        let at = (self.layout.levels[level].0 + index) * self.hbs;
        &self.levels[at as usize..][..self.hbs as usize]
    }

    fn slot(&self, level: usize, index: u64) -> &[u8] {
        let block = self.block(level, index / self.layout.per_block);
        let at = (index % self.layout.per_block) as usize * self.layout.slot;
        &block[at..at + self.len]
    }

    /// The first block of `level` whose bytes outside its `children` digests are not zero.
    fn padding_error(&self, level: usize, children: u64) -> Option<u64> {
        let (_, count) = self.layout.levels[level];
        (0..count).find(|&index| {
            let block = self.block(level, index);
            block
                .chunks_exact(self.layout.slot)
                .enumerate()
                .any(|(i, slot)| {
                    let used = index * self.layout.per_block + (i as u64) < children;
                    let unused = if used { &slot[self.len..] } else { slot };
                    unused.iter().any(|&b| b != 0)
                })
        })
    }
}

/// Where a hash tree appended to a squashfs image starts: after `bytes_used`, padded to 4 KiB.
fn appended_offset(file: &File, path: &Path) -> Result<u64> {
    let mut sb = [0u8; SUPERBLOCK_SIZE];
    read_at(file, path, &mut sb, 0)?;
    let sb = SquashfsSuperblock::parse(&sb).ok_or_else(|| Error::BadVerity {
        path: path.to_path_buf(),
        problem: VerityProblem::NotSquashfs,
    })?;
    // bytes_used comes from the file: one within 4 KiB of u64::MAX has no padded end.
    sb.bytes_used
        .div_ceil(4096)
        .checked_mul(4096)
        .ok_or_else(|| Error::BadVerity {
            path: path.to_path_buf(),
            problem: VerityProblem::ImpossibleBytesUsed {
                bytes_used: sb.bytes_used,
            },
        })
}

/// What the `len` bytes at `offset` of a squashfs image hold, for a message.
fn describe(image: &Path, offset: u64, len: u64) -> String {
    let end = offset.saturating_add(len);
    if offset < SUPERBLOCK_SIZE as u64 {
        return "the squashfs superblock".into();
    }
    let reader = match SquashfsReader::open(image) {
        Ok(r) => r,
        Err(e) => return format!("in an image that no longer reads: {}", e.report()),
    };
    let overlaps = |start: u64, n: u64| start < end && offset < start + n;
    let mut found: Option<String> = None;
    let mut fragments: Vec<(u32, String)> = Vec::new();
    let _ = reader.walk(|path, entry| {
        if found.is_some() {
            return Ok(());
        }
        let Some(layout) = SquashfsReader::file_layout(entry) else {
            return Ok(());
        };
        let mut at = layout.blocks_start;
        for &word in layout.words {
            let stored = stored_len(word);
            if stored > 0 && overlaps(at, stored) {
                found = Some(format!("data of {}", path.display()));
                return Ok(());
            }
            at += stored;
        }
        if let Some((index, _)) = layout.fragment {
            fragments.push((index, path.display().to_string()));
        }
        Ok(())
    });
    if let Some(found) = found {
        return found;
    }
    for (index, path) in &fragments {
        if let Ok((start, word)) = reader.fragment_entry(*index) {
            if overlaps(start, stored_len(word)) {
                return format!("fragment block {index}, which holds the tail of {path}");
            }
        }
    }
    let sb = reader.superblock();
    let tables = [
        (sb.inode_table, sb.dir_table, "the inode table"),
        (
            sb.dir_table,
            sb.bytes_used,
            "the directory and lookup tables",
        ),
    ];
    for (start, stop, what) in tables {
        if overlaps(start, stop.saturating_sub(start)) {
            return what.into();
        }
    }
    if offset >= sb.bytes_used {
        return "the padding after the squashfs image".into();
    }
    "squashfs data or metadata".into()
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    Ok(file
        .metadata()
        .map_err(|e| Error::io("read", path, e))?
        .len())
}

fn read_at(file: &File, path: &Path, buf: &mut [u8], offset: u64) -> Result<()> {
    file.read_exact_at(buf, offset)
        .map_err(|e| Error::io("read", path, e))
}
