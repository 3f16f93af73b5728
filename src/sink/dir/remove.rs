//! Removing what the directory sink wrote: a node replaced by a later delivery of its path, or
//! everything when the sink is dropped unfinished.
//!
//! Everything goes through directory fds with `O_NOFOLLOW` and `unlinkat`, so a symlink in the
//! tree is removed, never followed: removal cannot reach outside the output either. A directory
//! the sink already made read-only (a failed `finish`, rootless) is made writable first.

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd};

use rustix::fs::{self as rfs, AtFlags, Mode};
use rustix::io::{Errno, Result};

use super::resolve::open_dir;

/// Removes `name` in `dir` whatever it is; a directory goes with everything beneath it.
pub(super) fn remove_node(dir: BorrowedFd<'_>, name: &[u8]) -> Result<()> {
    match rfs::unlinkat(dir, name, AtFlags::empty()) {
        // Linux answers EISDIR when unlink(2) meets a directory.
        Err(Errno::ISDIR) => {}
        r => return r,
    }
    let sub = match open_dir(dir, name) {
        Err(Errno::ACCESS) => {
            rfs::chmodat(dir, name, Mode::RWXU, AtFlags::empty())?;
            open_dir(dir, name)?
        }
        r => r?,
    };
    // Without write and search permission the children cannot go (only matters rootless).
    let _ = rfs::fchmod(&sub, Mode::RWXU);
    remove_contents(sub.as_fd())?;
    rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// Removes everything inside `dir`, keeping `dir` itself.
pub(super) fn remove_contents(dir: BorrowedFd<'_>) -> Result<()> {
    // Names first, removal after: unlinking while reading a directory may skip entries.
    let mut names: Vec<CString> = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            names.push(name);
        }
    }
    for name in names {
        remove_node(dir, name.as_bytes())?;
    }
    Ok(())
}
