//! Opening a directory of the output tree without ever leaving it or following a symlink.
//!
//! ```text
//! EntryPath ──► same as the cached directory? ──► its fd
//!           └─► openat2(base, rest, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)   one syscall
//!                 base = the cached directory when the path lies beneath it, else the root
//!           └─► on any failure: component walk, openat(O_DIRECTORY | O_NOFOLLOW) per
//!               component, creating missing directories 0700, and naming the culprit when a
//!               component is a symlink or not a directory
//! ```
//!
//! Why: the entry stream comes from an image, and an image may plant `a -> /etc` and then
//! deliver `a/passwd`. Every path is resolved relative to the root's fd, one component at a
//! time with `O_NOFOLLOW` (or by the kernel with `RESOLVE_NO_SYMLINKS`), so nothing is ever
//! created outside the root. Entries cluster by directory, so the last directory opened is kept
//! and a path beneath it is resolved from there.

use std::ffi::OsStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, Result};
use crate::path::EntryPath;

/// What to do about a missing directory on the way.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Missing {
    /// Create it (mode 0700 until its metadata is applied at finish).
    Create,
    /// Fail with a not-found error.
    Fail,
}

/// Resolves directories beneath the output root.
pub(super) struct Resolver {
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    cache: Option<(EntryPath, Arc<OwnedFd>)>,
    /// Cleared the first time the kernel refuses openat2 (older than 5.6, or a seccomp filter).
    openat2: bool,
}

impl Resolver {
    pub(super) fn new(root: OwnedFd, root_path: PathBuf) -> Resolver {
        Resolver {
            root: Arc::new(root),
            root_path,
            cache: None,
            openat2: true,
        }
    }

    /// The output root's fd.
    pub(super) fn root(&self) -> Arc<OwnedFd> {
        self.root.clone()
    }

    /// The path on disk of `path` inside the output, for error messages.
    pub(super) fn full(&self, path: &[u8]) -> PathBuf {
        self.root_path.join(OsStr::from_bytes(path))
    }

    /// Drops the cached directory (it, or an ancestor, is about to be removed).
    pub(super) fn forget(&mut self) {
        self.cache = None;
    }

    /// Opens the directory `path`. With [`Missing::Create`], each directory created on the way
    /// is passed to `created`. `entry` is the entry being written, for error messages.
    pub(super) fn open(
        &mut self,
        path: &EntryPath,
        missing: Missing,
        entry: &EntryPath,
        created: &mut dyn FnMut(EntryPath),
    ) -> Result<Arc<OwnedFd>> {
        if path.is_root() {
            return Ok(self.root.clone());
        }
        let (base, skip) = match &self.cache {
            Some((p, fd)) if p == path => return Ok(fd.clone()),
            Some((p, fd)) if path.starts_with(p) && !p.is_root() => {
                (fd.clone(), p.as_bytes().len() + 1)
            }
            _ => (self.root.clone(), 0),
        };
        let fd = match self.fast(base.as_fd(), &path.as_bytes()[skip..]) {
            Some(fd) => Arc::new(fd),
            None => self.walk(base, path, skip, missing, entry, created)?,
        };
        self.cache = Some((path.clone(), fd.clone()));
        Ok(fd)
    }

    /// One openat2 call for the whole rest of the path; `None` sends the caller to the walk,
    /// which finds out what is missing or wrong.
    fn fast(&mut self, base: BorrowedFd<'_>, rest: &[u8]) -> Option<OwnedFd> {
        if !self.openat2 {
            return None;
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        match rfs::openat2(base, rest, flags, Mode::empty(), resolve) {
            Ok(fd) => Some(fd),
            Err(Errno::NOSYS | Errno::PERM | Errno::INVAL | Errno::TOOBIG) => {
                self.openat2 = false;
                None
            }
            Err(_) => None,
        }
    }

    fn walk(
        &self,
        base: Arc<OwnedFd>,
        path: &EntryPath,
        skip: usize,
        missing: Missing,
        entry: &EntryPath,
        created: &mut dyn FnMut(EntryPath),
    ) -> Result<Arc<OwnedFd>> {
        let bytes = path.as_bytes();
        let mut cur = base;
        let mut end = skip;
        for comp in bytes[skip..].split(|&b| b == b'/') {
            end += comp.len();
            let here = &bytes[..end];
            let next = match open_dir(cur.as_fd(), comp) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if missing == Missing::Create => {
                    match rfs::mkdirat(cur.as_fd(), comp, Mode::RWXU) {
                        Ok(()) => created(EntryPath::new(here)?),
                        Err(Errno::EXIST) => {}
                        Err(e) => {
                            return Err(Error::io("create directory", self.full(here), e.into()))
                        }
                    }
                    open_dir(cur.as_fd(), comp)
                        .map_err(|e| Error::io("open directory", self.full(here), e.into()))?
                }
                Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                    let st = rfs::statat(cur.as_fd(), comp, AtFlags::SYMLINK_NOFOLLOW);
                    if st.is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) {
                        return Err(Error::BeneathSymlink {
                            path: entry.lossy(),
                            symlink: String::from_utf8_lossy(here).into_owned(),
                        });
                    }
                    return Err(Error::io("open directory", self.full(here), e.into()));
                }
                Err(e) => return Err(Error::io("open directory", self.full(here), e.into())),
            };
            cur = Arc::new(next);
            end += 1;
        }
        Ok(cur)
    }
}

/// Opens the directory `name` in `dir`, refusing a symlink.
pub(super) fn open_dir(dir: BorrowedFd<'_>, name: &[u8]) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rfs::openat(dir, name, flags, Mode::empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn resolver(root: &std::path::Path, openat2: bool) -> Resolver {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let fd = rfs::open(root, flags, Mode::empty()).unwrap();
        let mut r = Resolver::new(fd, root.to_path_buf());
        r.openat2 = openat2;
        r
    }

    fn p(s: &str) -> EntryPath {
        EntryPath::new(s.as_bytes()).unwrap()
    }

    /// The same rules with and without openat2 (the walk is all an old kernel gets).
    #[test]
    fn creates_missing_dirs_and_refuses_symlinks_with_or_without_openat2() {
        for openat2 in [true, false] {
            let tmp = tempfile::tempdir().unwrap();
            let outside = tempfile::tempdir().unwrap();
            symlink(outside.path(), tmp.path().join("link")).unwrap();
            std::fs::write(tmp.path().join("file"), b"").unwrap();
            let mut r = resolver(tmp.path(), openat2);
            let created = std::cell::RefCell::new(Vec::new());
            let mut note = |p: EntryPath| created.borrow_mut().push(p.lossy());

            r.open(&p("a/b/c"), Missing::Create, &p("a/b/c/x"), &mut note)
                .unwrap();
            assert_eq!(*created.borrow(), ["a", "a/b", "a/b/c"]);
            assert!(tmp.path().join("a/b/c").is_dir());
            // Beneath the cached directory, and back up from it.
            r.open(&p("a/b/c/d"), Missing::Create, &p("a/b/c/d/x"), &mut note)
                .unwrap();
            r.open(&p("a"), Missing::Fail, &p("a/x"), &mut note)
                .unwrap();

            let err = r
                .open(&p("link/d"), Missing::Create, &p("link/d/x"), &mut note)
                .unwrap_err();
            assert!(
                matches!(&err, Error::BeneathSymlink { symlink, .. } if symlink == "link"),
                "{err}"
            );
            let err = r
                .open(&p("file/d"), Missing::Create, &p("file/d/x"), &mut note)
                .unwrap_err();
            assert!(matches!(&err, Error::Io { source, .. } if source.raw_os_error() == Some(20)));
            let err = r
                .open(&p("none"), Missing::Fail, &p("none/x"), &mut note)
                .unwrap_err();
            assert!(
                matches!(&err, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound)
            );
            assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        }
    }
}
