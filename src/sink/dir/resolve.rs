//! Opening a directory of the output tree without ever leaving it or following a symlink.
//!
//! ```text
//! EntryPath ──► the cursor: fds of the last directory opened and its ancestors
//!           ├─► keep the common ancestor's fd (climbing by `..` from a deeper one held, or
//!           │   descending from a shallower one when it was dropped)
//!           └─► below it, openat(O_DIRECTORY | O_NOFOLLOW) one component at a time, creating
//!               missing directories 0700 and naming the culprit when a component is a
//!               symlink or not a directory
//! lookup (hard-link targets) ──► openat2(root, path, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS),
//!               else the same component walk from the root; the cursor stays where it is
//! ```
//!
//! Why: the entry stream comes from an image, and an image may plant `a -> /etc` and then
//! deliver `a/passwd`. Every path is resolved relative to the root's fd, one component at a
//! time with `O_NOFOLLOW` (or by the kernel with `RESOLVE_NO_SYMLINKS`), so nothing is ever
//! created outside the root.
//!
//! Why a cursor: entries arrive clustered by directory, parents before children, so the next
//! directory is nearly always the last one, a child of it or a near relative. Moving the
//! cursor costs one syscall per component changed, so a tree costs time linear in its size
//! whatever its depth; resolving each path from the root (or one openat2 of the whole path)
//! costs the kernel time proportional to the depth for every entry, quadratic for a deep
//! chain (a hostile layer of a few KB held a worker for minutes). Only the deepest
//! [`WINDOW`] fds of the cursor are kept open (the default limit is 1024 fds a process);
//! a shallower ancestor is reopened through `..` from the nearest one held. `..` of a
//! directory strictly beneath the root is its parent inside the root: directories cannot be
//! hard-linked, and nothing here moves them.

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

/// Open fds the cursor keeps, deepest first; shallower ancestors are reopened on demand.
const WINDOW: usize = 128;

/// Resolves directories beneath the output root.
pub(super) struct Resolver {
    root: Arc<OwnedFd>,
    root_path: PathBuf,
    /// The directory the cursor is at.
    at: EntryPath,
    /// `chain[d - 1]`: the fd of `at`'s ancestor of depth `d` (the last is `at` itself);
    /// `None` where it was closed to stay within [`WINDOW`].
    chain: Vec<Option<Arc<OwnedFd>>>,
    /// Cleared the first time the kernel refuses openat2 (older than 5.6, or a seccomp filter).
    openat2: bool,
}

impl Resolver {
    pub(super) fn new(root: OwnedFd, root_path: PathBuf) -> Resolver {
        Resolver {
            root: Arc::new(root),
            root_path,
            at: EntryPath::root(),
            chain: Vec::new(),
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

    /// Drops the cursor's fds of `path` and beneath it (it is about to be removed).
    pub(super) fn forget(&mut self, path: &EntryPath) {
        if self.at.starts_with(path) {
            let keep = path.depth().saturating_sub(1);
            self.chain.truncate(keep);
            self.at = truncated(&self.at, keep);
        }
    }

    /// Drops every fd of the cursor but the root's.
    pub(super) fn forget_all(&mut self) {
        self.chain.clear();
        self.at = EntryPath::root();
    }

    /// Moves the cursor to the directory `path` and opens it. With [`Missing::Create`], each
    /// directory created on the way is passed to `created`. `entry` is the entry being
    /// written, for error messages.
    pub(super) fn open(
        &mut self,
        path: &EntryPath,
        missing: Missing,
        entry: &EntryPath,
        created: &mut dyn FnMut(EntryPath),
    ) -> Result<Arc<OwnedFd>> {
        let common = common_depth(&self.at, path);
        let mut cur = self.fd_at(common, entry)?;
        self.chain.truncate(common);
        self.at = truncated(path, common);
        let bytes = path.as_bytes();
        let mut end = self.at.as_bytes().len();
        for comp in path.components().skip(common) {
            if end > 0 {
                end += 1;
            }
            end += comp.len();
            let next = match self.step(cur.as_fd(), comp, &bytes[..end], missing, entry, created) {
                Ok(fd) => Arc::new(fd),
                Err(e) => {
                    // The cursor stays at the deepest directory it reached.
                    self.at = truncated(path, self.chain.len());
                    return Err(e);
                }
            };
            self.chain.push(Some(next.clone()));
            if self.chain.len() > WINDOW {
                let old = self.chain.len() - WINDOW - 1;
                self.chain[old] = None;
            }
            cur = next;
        }
        self.at = path.clone();
        Ok(cur)
    }

    /// Opens the directory `path` without moving the cursor (for a hard link's target, which
    /// may lie anywhere): one openat2 call, or the component walk from the root.
    pub(super) fn lookup(&mut self, path: &EntryPath, entry: &EntryPath) -> Result<Arc<OwnedFd>> {
        if path.is_root() {
            return Ok(self.root.clone());
        }
        let root = self.root.clone();
        if let Some(fd) = self.fast(root.as_fd(), path.as_bytes()) {
            return Ok(Arc::new(fd));
        }
        let bytes = path.as_bytes();
        let mut cur = self.root.clone();
        let mut end = 0;
        for comp in path.components() {
            if end > 0 {
                end += 1;
            }
            end += comp.len();
            let next = self.step(
                cur.as_fd(),
                comp,
                &bytes[..end],
                Missing::Fail,
                entry,
                &mut |_| {},
            )?;
            cur = Arc::new(next);
        }
        Ok(cur)
    }

    /// The fd of the cursor's ancestor of depth `depth`: held, or reopened from the nearest
    /// one held (climbing by `..` from a deeper one, else descending from a shallower one).
    fn fd_at(&mut self, depth: usize, entry: &EntryPath) -> Result<Arc<OwnedFd>> {
        if depth == 0 {
            return Ok(self.root.clone());
        }
        if let Some(fd) = &self.chain[depth - 1] {
            return Ok(fd.clone());
        }
        let deeper = (depth..self.chain.len()).find(|&d| self.chain[d].is_some());
        if let Some(held) = deeper {
            // chain[held] is the ancestor of depth held + 1; climb to `depth`.
            let mut cur = self.chain[held]
                .clone()
                .unwrap_or_else(|| self.root.clone());
            for d in (depth..=held).rev() {
                let up = open_dir(cur.as_fd(), b"..").map_err(|e| {
                    let here = truncated(&self.at, d);
                    Error::io("open the parent of", self.full(here.as_bytes()), e.into())
                })?;
                cur = Arc::new(up);
                self.chain[d - 1] = Some(cur.clone());
            }
            return Ok(cur);
        }
        let shallower = (0..depth - 1).rev().find(|&d| self.chain[d].is_some());
        let (from, mut cur) = match shallower {
            Some(d) => (
                d + 1,
                self.chain[d].clone().unwrap_or_else(|| self.root.clone()),
            ),
            None => (0, self.root.clone()),
        };
        let at = self.at.clone();
        let bytes = at.as_bytes();
        let mut end = 0;
        for (d, comp) in at.components().enumerate().take(depth) {
            if end > 0 {
                end += 1;
            }
            end += comp.len();
            if d < from {
                continue;
            }
            let here = &bytes[..end];
            let next = self.step(cur.as_fd(), comp, here, Missing::Fail, entry, &mut |_| {})?;
            cur = Arc::new(next);
            self.chain[d] = Some(cur.clone());
        }
        Ok(cur)
    }

    /// One openat2 call for the whole path; `None` sends the caller to the component walk,
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

    /// Opens the directory `comp` in `dir` (`here` is its path), creating it with
    /// [`Missing::Create`] and refusing a symlink or a non-directory.
    fn step(
        &self,
        dir: BorrowedFd<'_>,
        comp: &[u8],
        here: &[u8],
        missing: Missing,
        entry: &EntryPath,
        created: &mut dyn FnMut(EntryPath),
    ) -> Result<OwnedFd> {
        match open_dir(dir, comp) {
            Ok(fd) => Ok(fd),
            Err(Errno::NOENT) if missing == Missing::Create => {
                match rfs::mkdirat(dir, comp, Mode::RWXU) {
                    Ok(()) => created(EntryPath::new(here)?),
                    Err(Errno::EXIST) => {}
                    Err(e) => return Err(Error::io("create directory", self.full(here), e.into())),
                }
                open_dir(dir, comp)
                    .map_err(|e| Error::io("open directory", self.full(here), e.into()))
            }
            Err(e @ (Errno::LOOP | Errno::NOTDIR)) => {
                let st = rfs::statat(dir, comp, AtFlags::SYMLINK_NOFOLLOW);
                if st.is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) {
                    return Err(Error::BeneathSymlink {
                        path: entry.shown(),
                        entry_layer: None,
                        symlink: crate::path::shown_name(here),
                    });
                }
                Err(Error::io("open directory", self.full(here), e.into()))
            }
            Err(e) => Err(Error::io("open directory", self.full(here), e.into())),
        }
    }
}

/// The number of leading components `a` and `b` share.
fn common_depth(a: &EntryPath, b: &EntryPath) -> usize {
    a.components()
        .zip(b.components())
        .take_while(|(x, y)| x == y)
        .count()
}

/// The ancestor of `path` at `depth` (`path` itself at its own depth or more).
fn truncated(path: &EntryPath, depth: usize) -> EntryPath {
    if depth == 0 {
        return EntryPath::root();
    }
    let bytes = path.as_bytes();
    let end = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| i)
        .nth(depth - 1)
        .unwrap_or(bytes.len());
    path.ancestor_bytes(end)
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
