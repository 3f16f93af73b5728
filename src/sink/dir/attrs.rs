//! Setting ownership, mode, extended attributes and mtime on a node the sink created, through
//! an fd when it has one (regular files, directories) or by name relative to its parent with
//! no-follow calls (symlinks, devices, fifos, sockets, which must not be opened).
//!
//! The order is the caller's: ownership before mode (chown clears setuid and setgid), xattrs
//! after both (chown also clears `security.capability`), mtime last.

use std::ffi::OsStr;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::fs::{self as rfs, AtFlags, Gid, Mode, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Result;

use crate::entry::Metadata;

/// A node to set attributes on.
#[derive(Clone, Copy)]
pub(super) enum Node<'a> {
    /// An open regular file or directory.
    Fd(BorrowedFd<'a>),
    /// `name` inside the directory `dir`; never followed if it is a symlink.
    At {
        /// The parent directory.
        dir: BorrowedFd<'a>,
        /// The node's name.
        name: &'a [u8],
    },
}

impl Node<'_> {
    pub(super) fn chown(self, uid: u32, gid: u32) -> Result<()> {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        match self {
            Node::Fd(fd) => rfs::fchown(fd, uid, gid),
            Node::At { dir, name } => rfs::chownat(dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW),
        }
    }

    /// Sets the permission bits; not for symlinks (Linux has no lchmod).
    pub(super) fn chmod(self, mode: u32) -> Result<()> {
        let mode = Mode::from_raw_mode(mode & 0o7777);
        match self {
            Node::Fd(fd) => rfs::fchmod(fd, mode),
            Node::At { dir, name } => rfs::chmodat(dir, name, mode, AtFlags::empty()),
        }
    }

    /// Sets one xattr. By name, it goes through `/proc/self/fd/DIR/NAME` with `lsetxattr`: the
    /// only way to reach a symlink or device node without opening it, and the magic link pins
    /// the parent directory the sink resolved safely.
    pub(super) fn set_xattr(self, name: &[u8], value: &[u8]) -> Result<()> {
        match self {
            Node::Fd(fd) => rfs::fsetxattr(fd, name, value, XattrFlags::empty()),
            Node::At { dir, name: node } => {
                let path = PathBuf::from(format!("/proc/self/fd/{}", dir.as_raw_fd()))
                    .join(OsStr::from_bytes(node));
                rfs::lsetxattr(&path, name, value, XattrFlags::empty())
            }
        }
    }

    /// Sets atime and mtime to the entry's mtime (with nanoseconds).
    pub(super) fn set_mtime(self, meta: &Metadata) -> Result<()> {
        // Out-of-range nanoseconds are clamped: 2^30-1 and 2^30-2 would mean UTIME_NOW/OMIT.
        let t = Timespec {
            tv_sec: meta.mtime,
            tv_nsec: i64::from(meta.mtime_nsec.min(999_999_999)),
        };
        let times = Timestamps {
            last_access: t,
            last_modification: t,
        };
        match self {
            Node::Fd(fd) => rfs::futimens(fd, &times),
            Node::At { dir, name } => rfs::utimensat(dir, name, &times, AtFlags::SYMLINK_NOFOLLOW),
        }
    }
}
