//! Inodes: one record per file system object in the inode table, basic or extended.
//!
//! The inode table is a metadata stream written after the data blocks; a directory entry and
//! the export table address an inode by its [`MetaRef`](crate::squashfs::format::MetaRef). Every
//! inode starts with the 16-byte [`InodeHeader`]; the type-specific part follows:
//!
//! | type            | basic (1–7)                                  | extended (8–14) adds          |
//! |-----------------|----------------------------------------------|-------------------------------|
//! | directory       | start u32, nlink, size u16, offset, parent   | size u32, index, xattr        |
//! | file            | start u32, fragment, offset, size u32, blocks| start/size u64, sparse, nlink, xattr |
//! | symlink         | nlink, target size, target                   | xattr                         |
//! | block/char dev  | nlink, device                                | xattr                         |
//! | fifo/socket     | nlink                                        | xattr                         |
//!
//! Which form an inode takes is decided in exactly one place, [`is_extended`].

use crate::error::{Error, Result};
use crate::squashfs::format::{inode_type, DirIndex, InodeHeader, Le, NO_XATTR};

/// Fields every inode has.
#[derive(Clone, Copy, Debug)]
pub(crate) struct InodeBase {
    /// Permission bits (`mode & 0o7777`).
    pub permissions: u16,
    /// Index of the owner in the id table.
    pub uid_idx: u16,
    /// Index of the group in the id table.
    pub gid_idx: u16,
    /// Modification time.
    pub mtime: u32,
    /// Inode number, 1..=inode_count.
    pub number: u32,
    /// Xattr id, or `NO_XATTR`.
    pub xattr: u32,
}

/// The type-specific part of an inode.
#[derive(Clone, Copy, Debug)]
pub(crate) enum InodeData<'a> {
    /// A directory whose listing is at (`start_block`, `offset`) in the directory table.
    Dir {
        /// Directory-table-relative offset of the metadata block holding the listing start.
        start_block: u64,
        /// Offset of the listing in that block.
        offset: u16,
        /// Listing bytes + 3 (the kernel counts the implicit `.` and `..`).
        file_size: u64,
        /// 2 + number of subdirectories.
        nlink: u32,
        /// Inode number of the parent (the root's is inode_count + 1, as mksquashfs).
        parent: u32,
        /// Index entries (one per header that starts a new directory metablock).
        index: &'a [DirIndex],
        /// The directory is big enough to get an index even if the index has no entry
        /// (≥ 256 entries), as mksquashfs makes it extended.
        big: bool,
    },
    /// A regular file.
    File {
        /// Offset of the first data block in the image.
        blocks_start: u64,
        /// File size in bytes.
        size: u64,
        /// Bytes of the file in holes (all-zero blocks stored as size 0).
        sparse: u64,
        /// Number of names (hard links).
        nlink: u32,
        /// Fragment index, or `NO_FRAGMENT`.
        fragment: u32,
        /// Offset of the tail in the fragment block.
        fragment_offset: u32,
        /// One size word per data block.
        blocks: &'a [u32],
    },
    /// A symbolic link.
    Symlink {
        /// Target bytes (1–4096).
        target: &'a [u8],
        /// Number of names.
        nlink: u32,
    },
    /// A block device.
    BlockDev {
        /// `new_encode_dev` device number.
        dev: u32,
        /// Number of names.
        nlink: u32,
    },
    /// A character device.
    CharDev {
        /// `new_encode_dev` device number.
        dev: u32,
        /// Number of names.
        nlink: u32,
    },
    /// A named pipe.
    Fifo {
        /// Number of names.
        nlink: u32,
    },
    /// A socket.
    Socket {
        /// Number of names.
        nlink: u32,
    },
}

impl InodeData<'_> {
    /// The basic type (1–7), which is also what directory entries store.
    pub(crate) fn basic_type(&self) -> u16 {
        match self {
            InodeData::Dir { .. } => inode_type::DIR,
            InodeData::File { .. } => inode_type::FILE,
            InodeData::Symlink { .. } => inode_type::SYMLINK,
            InodeData::BlockDev { .. } => inode_type::BLOCK_DEV,
            InodeData::CharDev { .. } => inode_type::CHAR_DEV,
            InodeData::Fifo { .. } => inode_type::FIFO,
            InodeData::Socket { .. } => inode_type::SOCKET,
        }
    }
}

/// Whether the inode must use the extended form. The rule:
///
/// - any inode with extended attributes (only extended inodes have an xattr field);
/// - a file with more than one name (the basic file has no nlink; the kernel assumes 1), a size
///   or `blocks_start` of 2³² or more, or holes (`sparse` > 0) — mksquashfs `create_inode`;
/// - a directory whose listing + 3 exceeds 65535 bytes (basic `file_size` is `u16`), that has a
///   directory index, or that has 256 entries or more (mksquashfs makes big directories
///   extended so lookups can use an index).
///
/// Symlinks, devices, fifos and sockets have `nlink` in their basic form, so only xattrs make
/// them extended.
pub(crate) fn is_extended(base: &InodeBase, data: &InodeData<'_>) -> bool {
    if base.xattr != NO_XATTR {
        return true;
    }
    match *data {
        InodeData::File {
            blocks_start,
            size,
            sparse,
            nlink,
            ..
        } => {
            nlink > 1
                || size > u64::from(u32::MAX)
                || blocks_start > u64::from(u32::MAX)
                || sparse > 0
        }
        InodeData::Dir {
            file_size,
            index,
            big,
            ..
        } => file_size > u64::from(u16::MAX) || !index.is_empty() || big,
        _ => false,
    }
}

fn too_large(what: &'static str, size: u64, limit: u64) -> Error {
    Error::TooLarge { what, size, limit }
}

/// Appends the inode's bytes to `out`.
pub(crate) fn encode(base: &InodeBase, data: &InodeData<'_>, out: &mut Vec<u8>) -> Result<()> {
    let extended = is_extended(base, data);
    let inode_type = data.basic_type() + if extended { inode_type::EXTENDED } else { 0 };
    InodeHeader {
        inode_type,
        permissions: base.permissions,
        uid_idx: base.uid_idx,
        gid_idx: base.gid_idx,
        mtime: base.mtime,
        inode_number: base.number,
    }
    .write(out);
    match *data {
        InodeData::Dir { .. } => encode_dir(data, extended.then_some(base.xattr), out)?,
        InodeData::File {
            blocks_start,
            size,
            sparse,
            nlink,
            fragment,
            fragment_offset,
            blocks,
        } => {
            if extended {
                Le(out)
                    .u64(blocks_start)
                    .u64(size)
                    .u64(sparse)
                    .u32(nlink)
                    .u32(fragment)
                    .u32(fragment_offset)
                    .u32(base.xattr);
            } else {
                Le(out)
                    .u32(blocks_start as u32)
                    .u32(fragment)
                    .u32(fragment_offset)
                    .u32(size as u32);
            }
            for &b in blocks {
                Le(out).u32(b);
            }
        }
        InodeData::Symlink { target, nlink } => {
            Le(out).u32(nlink).u32(target.len() as u32).bytes(target);
            if extended {
                Le(out).u32(base.xattr);
            }
        }
        InodeData::BlockDev { dev, nlink } | InodeData::CharDev { dev, nlink } => {
            Le(out).u32(nlink).u32(dev);
            if extended {
                Le(out).u32(base.xattr);
            }
        }
        InodeData::Fifo { nlink } | InodeData::Socket { nlink } => {
            Le(out).u32(nlink);
            if extended {
                Le(out).u32(base.xattr);
            }
        }
    }
    Ok(())
}

/// Appends a directory inode's fields: the extended layout when `xattr` is given.
fn encode_dir(data: &InodeData<'_>, xattr: Option<u32>, out: &mut Vec<u8>) -> Result<()> {
    let InodeData::Dir {
        start_block,
        offset,
        file_size,
        nlink,
        parent,
        index,
        ..
    } = *data
    else {
        return Err(Error::Bug {
            what: "a directory inode encoded from other data",
        });
    };
    let start = u32::try_from(start_block)
        .map_err(|_| too_large("directory table", start_block, u64::from(u32::MAX)))?;
    let Some(xattr) = xattr else {
        Le(out)
            .u32(start)
            .u32(nlink)
            .u16(file_size as u16)
            .u16(offset)
            .u32(parent);
        return Ok(());
    };
    let size = u32::try_from(file_size)
        .map_err(|_| too_large("directory listing", file_size, u64::from(u32::MAX)))?;
    let count = u16::try_from(index.len())
        .map_err(|_| too_large("directory index", index.len() as u64, u64::from(u16::MAX)))?;
    Le(out)
        .u32(nlink)
        .u32(size)
        .u32(start)
        .u32(parent)
        .u16(count)
        .u16(offset)
        .u32(xattr);
    for e in index {
        Le(out)
            .u32(e.index)
            .u32(e.start)
            .u32(e.name.len().saturating_sub(1) as u32)
            .bytes(&e.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::squashfs::format::NO_FRAGMENT;

    fn base(xattr: u32) -> InodeBase {
        InodeBase {
            permissions: 0o644,
            uid_idx: 0,
            gid_idx: 0,
            mtime: 0,
            number: 1,
            xattr,
        }
    }

    fn file(nlink: u32, size: u64, start: u64, sparse: u64) -> InodeData<'static> {
        InodeData::File {
            blocks_start: start,
            size,
            sparse,
            nlink,
            fragment: NO_FRAGMENT,
            fragment_offset: 0,
            blocks: &[],
        }
    }

    #[test]
    fn files_are_extended_exactly_when_needed() {
        let b = base(NO_XATTR);
        assert!(!is_extended(&b, &file(1, 100, 96, 0)));
        assert!(is_extended(&b, &file(2, 100, 96, 0)), "hard link");
        assert!(is_extended(&b, &file(1, 1 << 32, 96, 0)), "size ≥ 2^32");
        assert!(!is_extended(&b, &file(1, u64::from(u32::MAX), 96, 0)));
        assert!(is_extended(&b, &file(1, 100, 1 << 32, 0)), "start ≥ 2^32");
        assert!(is_extended(&b, &file(1, 100, 96, 4096)), "sparse");
        assert!(is_extended(&base(0), &file(1, 100, 96, 0)), "xattr");
    }

    #[test]
    fn other_types_are_extended_only_for_xattrs() {
        let s = InodeData::Symlink {
            target: b"x",
            nlink: 5,
        };
        assert!(!is_extended(&base(NO_XATTR), &s));
        assert!(is_extended(&base(3), &s));
        let mut v = Vec::new();
        encode(&base(3), &s, &mut v).unwrap();
        assert_eq!(u16::from_le_bytes([v[0], v[1]]), 10);
        assert_eq!(v.len(), 16 + 4 + 4 + 1 + 4);
    }

    #[test]
    fn directories_switch_form_on_size_index_and_entry_count() {
        let dir = |file_size, big| InodeData::Dir {
            start_block: 0,
            offset: 0,
            file_size,
            nlink: 2,
            parent: 1,
            index: &[],
            big,
        };
        let b = base(NO_XATTR);
        assert!(!is_extended(&b, &dir(65535, false)));
        assert!(is_extended(&b, &dir(65536, false)));
        assert!(is_extended(&b, &dir(3, true)));
        let mut v = Vec::new();
        encode(&b, &dir(3, false), &mut v).unwrap();
        assert_eq!(v.len(), 32, "basic dir inode is 32 bytes");
        v.clear();
        encode(&b, &dir(3, true), &mut v).unwrap();
        assert_eq!(v.len(), 40, "extended dir inode without index is 40 bytes");
    }
}
