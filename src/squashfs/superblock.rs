//! The superblock: filled in last, from what every other component reports, and written at
//! offset 0 over the space reserved for it.
//!
//! Invariants kept here: magic, version 4.0, `block_log` matching `block_size`, truthful flags
//! (see [`flags`](crate::squashfs::format::flags)), at least one id, `bytes_used` = the end of
//! the last table, and the file padded to a multiple of 4 KiB beyond it (loop devices work in
//! 4 KiB units; the kernel only checks `bytes_used` ≤ device size). Absent tables (export,
//! xattr) point at `0xFFFF_FFFF_FFFF_FFFF`; an empty fragment table points at the position it
//! would have (mksquashfs's form, which every unsquashfs version accepts).

use crate::error::{Error, Result};
use crate::options::SquashfsOptions;
use crate::squashfs::compressor::Compressor;
use crate::squashfs::format::{
    flags, MetaRef, Superblock, DEVICE_BLOCK, MAGIC, VERSION_MAJOR, VERSION_MINOR,
};

/// Everything the superblock records.
pub(crate) struct Fields<'a> {
    /// The image options.
    pub options: &'a SquashfsOptions,
    /// The compressor.
    pub codec: &'a Compressor,
    /// Whether a compressor options block follows the superblock.
    pub has_options_block: bool,
    /// Number of inodes.
    pub inode_count: u32,
    /// Image modification time.
    pub mtime: u32,
    /// Number of fragment blocks.
    pub frag_count: u32,
    /// Number of ids.
    pub id_count: usize,
    /// The root inode.
    pub root_inode: MetaRef,
    /// End of the last table.
    pub bytes_used: u64,
    /// Id table list offset.
    pub id_table: u64,
    /// Xattr id table offset, or absent.
    pub xattr_table: u64,
    /// Inode table start.
    pub inode_table: u64,
    /// Directory table start.
    pub dir_table: u64,
    /// Fragment table list offset.
    pub frag_table: u64,
    /// Export table list offset, or absent.
    pub export_table: u64,
}

/// The superblock for `f`.
pub(crate) fn fill(f: Fields<'_>) -> Result<Superblock> {
    let id_count = u16::try_from(f.id_count)
        .ok()
        .filter(|&n| n > 0)
        .ok_or(Error::TooManyIds { count: f.id_count })?;
    let mut fl = f.codec.flags();
    if !f.options.fragments {
        fl |= flags::NO_FRAG;
    }
    if f.options.dedup {
        fl |= flags::DUPLICATES;
    }
    if f.options.exportable {
        fl |= flags::EXPORTABLE;
    }
    if f.has_options_block {
        fl |= flags::COMP_OPT;
    }
    Ok(Superblock {
        magic: MAGIC,
        inode_count: f.inode_count,
        mod_time: f.mtime,
        block_size: f.options.block_size.get(),
        frag_count: f.frag_count,
        compression: f.codec.id(),
        block_log: f.options.block_size.log2(),
        flags: fl,
        id_count,
        version_major: VERSION_MAJOR,
        version_minor: VERSION_MINOR,
        root_inode: f.root_inode.packed(),
        bytes_used: f.bytes_used,
        id_table: f.id_table,
        xattr_table: f.xattr_table,
        inode_table: f.inode_table,
        dir_table: f.dir_table,
        frag_table: f.frag_table,
        export_table: f.export_table,
    })
}

/// The file length: `bytes_used` rounded up to 4 KiB.
pub(crate) fn padded_len(bytes_used: u64) -> u64 {
    bytes_used.div_ceil(DEVICE_BLOCK) * DEVICE_BLOCK
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_rounds_up_to_4k() {
        assert_eq!(padded_len(96), 4096);
        assert_eq!(padded_len(4096), 4096);
        assert_eq!(padded_len(4097), 8192);
    }
}
