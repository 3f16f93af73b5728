//! Where the directory sink builds its tree, and how the tree appears at the final path: whole,
//! or not at all, as output files do.
//!
//! ```text
//! target missing, or an empty directory:
//!     PARENT/.NAME.XXXXXX.partial ──rename(2)──► PARENT/NAME   (replaces an empty directory)
//! target an empty directory that rename(2) cannot replace (a mount point; or a parent this
//! process may not write to, EACCES/EPERM/EROFS), or given as `.`, `..` or `/`:
//!     NAME/.NAME.XXXXXX.partial ──each child renamed up──► NAME/
//! ```
//!
//! Why: a tree written under its final name cannot be told from a finished one once the
//! process is killed (kill -9, a power cut). Built under a name that says `partial`, a killed
//! run leaves `.NAME.XXXXXX.partial` (beside the target, or inside the target in the second
//! layout), and the final path holds either nothing (the empty directory it was) or the whole
//! tree. rename(2) also settles two conversions racing to one target: the first wins, the
//! second finds a non-empty directory and fails with [`Error::OutputExists`], removing its
//! own tree.
//!
//! In the second layout the target is not replaced, so it keeps its inode (a mount point
//! must), and the image root's metadata is applied to it after its children have moved up;
//! moving is not atomic, but it is quick (one rename per top-level name), and a run killed
//! during it leaves the partial directory, which says what happened.
//!
//! Removal on failure stays within what this run created: the partial directory (through fds,
//! never following a symlink, see [`remove`](super::remove)), and in the second layout the
//! names it had moved up already.

use std::ffi::{CString, OsStr};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, StatxAttributes};
use rustix::io::Errno;

use super::remove;
use crate::error::{Error, Result};

/// The partial directory and what to do with it at the end.
pub(super) struct Staging {
    /// The final path.
    target: PathBuf,
    /// The partial directory's path.
    build: PathBuf,
    layout: Layout,
    /// Whether the partial directory itself is gone (removed, or renamed onto the target).
    build_gone: bool,
}

enum Layout {
    /// The partial directory is beside the target, and is renamed onto it.
    Beside,
    /// The partial directory is inside the target (`dir`), and its children move up.
    Inside {
        dir: Arc<OwnedFd>,
        name: CString,
        /// Names already moved into the target, removed again if the commit fails.
        moved: Vec<CString>,
    },
}

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

impl Staging {
    /// Checks that `target` is missing or an empty directory (a symlink to an empty directory
    /// stands for that directory) and creates the partial directory; returns the staging and
    /// the partial directory's fd.
    pub(super) fn create(target: &Path) -> Result<(Staging, OwnedFd)> {
        let exists = || Error::OutputExists {
            path: target.to_path_buf(),
        };
        let target = match fs::symlink_metadata(target) {
            Ok(m) if m.file_type().is_symlink() => {
                // The output goes where the link points, as extracting into it would.
                match fs::canonicalize(target) {
                    Ok(real) if real.is_dir() => real,
                    _ => return Err(exists()),
                }
            }
            Ok(m) if !m.is_dir() => return Err(exists()),
            Ok(_) => target.to_path_buf(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = parent_of(target);
                let build = partial_dir(parent, target)
                    .map_err(|e| Error::io("create a directory in", parent, e))?;
                return Staging::beside(target, build);
            }
            Err(e) => return Err(Error::io("inspect", target, e)),
        };
        let dir = rfs::open(&target, DIR_FLAGS, Mode::empty())
            .map_err(|e| Error::io("open", &target, e.into()))?;
        if !is_empty(dir.as_fd()).map_err(|e| Error::io("read", &target, e.into()))? {
            return Err(exists());
        }
        // `.`, `..` and `/` are kept too: the caller, or a shell, may be sitting in them, and a
        // replaced directory would leave it in a deleted one.
        if target.file_name().is_none() || is_mount_point(dir.as_fd(), &target) {
            let named = match target.file_name() {
                Some(_) => target,
                None => fs::canonicalize(&target).map_err(|e| Error::io("inspect", &target, e))?,
            };
            return Staging::inside(&named, dir);
        }
        let parent = parent_of(&target);
        match partial_dir(parent, &target) {
            Ok(build) => Staging::beside(&target, build),
            // The parent cannot take the partial directory, but the target may.
            Err(e) if refused(&e) => Staging::inside(&target, dir),
            Err(e) => Err(Error::io("create a directory in", parent, e)),
        }
    }

    /// The partial directory `build`, beside `target`.
    fn beside(target: &Path, build: PathBuf) -> Result<(Staging, OwnedFd)> {
        let fd = match rfs::open(&build, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = fs::remove_dir(&build);
                return Err(Error::io("open", &build, e.into()));
            }
        };
        let staging = Staging {
            target: target.to_path_buf(),
            build,
            layout: Layout::Beside,
            build_gone: false,
        };
        Ok((staging, fd))
    }

    /// The partial directory inside the existing empty directory `target` (open as `dir`).
    fn inside(target: &Path, dir: OwnedFd) -> Result<(Staging, OwnedFd)> {
        let build = partial_dir(target, target)
            .map_err(|e| Error::io("create a directory in", target, e))?;
        let name = build
            .file_name()
            .and_then(|n| CString::new(n.as_bytes()).ok())
            .ok_or_else(|| Error::io("create a directory in", target, Errno::INVAL.into()))?;
        let fd = match rfs::openat(&dir, &*name, DIR_FLAGS, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => {
                let _ = rfs::unlinkat(&dir, &*name, AtFlags::REMOVEDIR);
                return Err(Error::io("open", &build, e.into()));
            }
        };
        let staging = Staging {
            target: target.to_path_buf(),
            build,
            layout: Layout::Inside {
                dir: Arc::new(dir),
                name,
                moved: Vec::new(),
            },
            build_gone: false,
        };
        Ok((staging, fd))
    }

    /// The final path, for messages about entries inside the output.
    pub(super) fn target(&self) -> &Path {
        &self.target
    }

    /// Brings the finished tree in `build` (the partial directory's fd) to the target's
    /// layout and returns the directory that becomes the target, whose metadata the image's
    /// root sets before [`Staging::commit`]: the partial directory (renamed by `commit`), or
    /// the target itself once the children have moved up into it.
    pub(super) fn prepare(&mut self, build: Arc<OwnedFd>) -> Result<Arc<OwnedFd>> {
        let Layout::Inside { dir, name, moved } = &mut self.layout else {
            return Ok(build);
        };
        let failed = |e: Errno| Error::Output {
            path: self.target.clone(),
            source: e.into(),
        };
        let mut names = Vec::new();
        for entry in rfs::Dir::read_from(build.as_fd()).map_err(failed)? {
            let child = entry.map_err(failed)?.file_name().to_owned();
            if child.as_bytes() != b"." && child.as_bytes() != b".." {
                names.push(child);
            }
        }
        for child in names {
            move_up(build.as_fd(), dir.as_fd(), &child).map_err(|e| match e {
                Errno::EXIST | Errno::NOTEMPTY => Error::OutputExists {
                    path: self.target.clone(),
                },
                e => failed(e),
            })?;
            moved.push(child);
        }
        rfs::unlinkat(dir.as_fd(), &**name, AtFlags::REMOVEDIR).map_err(failed)?;
        self.build_gone = true;
        Ok(dir.clone())
    }

    /// Puts the tree at the final path: renames the partial directory onto the target (which
    /// must be missing or empty: a concurrent conversion that got there first makes this
    /// [`Error::OutputExists`]). For the second layout, [`Staging::prepare`] did the work.
    pub(super) fn commit(&mut self) -> Result<()> {
        match &mut self.layout {
            Layout::Beside => {
                fs::rename(&self.build, &self.target).map_err(|e| {
                    match Errno::from_io_error(&e) {
                        Some(Errno::EXIST | Errno::NOTEMPTY | Errno::NOTDIR | Errno::ISDIR) => {
                            Error::OutputExists {
                                path: self.target.clone(),
                            }
                        }
                        _ => Error::Output {
                            path: self.target.clone(),
                            source: e,
                        },
                    }
                })?;
                self.build_gone = true;
            }
            Layout::Inside { moved, .. } => moved.clear(),
        }
        Ok(())
    }

    /// Removes what this run created: the partial directory with its tree (`build` is its
    /// fd), and whatever a failed [`Staging::prepare`] had moved into the target.
    pub(super) fn discard(&mut self, build: BorrowedFd<'_>) {
        if !self.build_gone {
            let _ = remove::remove_contents(build);
            match &self.layout {
                Layout::Beside => {
                    let _ = fs::remove_dir(&self.build);
                }
                Layout::Inside { dir, name, .. } => {
                    let _ = rfs::unlinkat(dir.as_fd(), &**name, AtFlags::REMOVEDIR);
                }
            }
            self.build_gone = true;
        }
        if let Layout::Inside { dir, moved, .. } = &mut self.layout {
            for child in moved.drain(..) {
                let _ = remove::remove_node(dir.as_fd(), child.as_bytes());
            }
        }
    }
}

/// The directory `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Creates `.NAME.XXXXXX.partial` in `dir`, NAME being `target`'s file name; the mode is what
/// `mkdir` gives under the umask, as for a directory the sink would create at the target.
fn partial_dir(dir: &Path, target: &Path) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .unwrap_or_else(|| OsStr::new("output"))
        .to_string_lossy();
    let made = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .rand_bytes(6)
        .permissions(fs::Permissions::from_mode(0o777))
        .tempdir_in(dir)?;
    Ok(made.keep())
}

/// Whether creating in a directory failed for lack of permission (or a read-only file system).
fn refused(e: &io::Error) -> bool {
    matches!(
        Errno::from_io_error(e),
        Some(Errno::ACCESS | Errno::PERM | Errno::ROFS)
    )
}

/// Whether the directory `dir` has no entries besides `.` and `..`.
fn is_empty(dir: BorrowedFd<'_>) -> rustix::io::Result<bool> {
    for entry in rfs::Dir::read_from(dir)? {
        let name = entry?.file_name().to_owned();
        if name.as_bytes() != b"." && name.as_bytes() != b".." {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Whether the directory `dir` (at `path`) is the root of a mount, which rename(2) cannot
/// replace (EBUSY) and a sibling cannot be renamed onto (EXDEV): statx's `MOUNT_ROOT`
/// attribute (Linux 5.8), or else a device different from its parent's.
fn is_mount_point(dir: BorrowedFd<'_>, path: &Path) -> bool {
    if let Ok(st) = rfs::statx(dir, "", AtFlags::EMPTY_PATH, rfs::StatxFlags::BASIC_STATS) {
        if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
            return st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
        }
    }
    let parent = path.join("..");
    match (rfs::fstat(dir), rfs::stat(&parent)) {
        (Ok(a), Ok(b)) => a.st_dev != b.st_dev,
        _ => false,
    }
}

/// Renames `name` from `from` to `to`, never replacing anything there. A directory moving to
/// another parent needs write permission on itself (its `..` changes): one the image made
/// read-only gets it for the move and its mode back after.
fn move_up(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &CString) -> rustix::io::Result<()> {
    match rfs::renameat_with(from, &**name, to, &**name, RenameFlags::NOREPLACE) {
        Err(Errno::ACCESS) => {}
        r => return r,
    }
    let st = rfs::statat(from, &**name, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Errno::ACCESS);
    }
    let mode = Mode::from_raw_mode(st.st_mode);
    rfs::chmodat(from, &**name, mode | Mode::WUSR, AtFlags::empty())?;
    let r = rfs::renameat_with(from, &**name, to, &**name, RenameFlags::NOREPLACE);
    let back = if r.is_ok() { to } else { from };
    rfs::chmodat(back, &**name, mode, AtFlags::empty())?;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// What a sink would write: a file and a read-only directory with a child.
    fn fill(build: BorrowedFd<'_>) {
        let f = rfs::openat(build, "file", OFlags::CREATE | OFlags::WRONLY, Mode::RUSR).unwrap();
        drop(f);
        rfs::mkdirat(build, "ro", Mode::RWXU).unwrap();
        rfs::mkdirat(build, "ro/child", Mode::RWXU).unwrap();
        rfs::chmodat(build, "ro", Mode::RUSR | Mode::XUSR, AtFlags::empty()).unwrap();
    }

    #[test]
    fn beside_renames_into_place_and_discard_removes_everything() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out");
        let (mut staging, fd) = Staging::create(&target).unwrap();
        let partial = names(t.path());
        assert_eq!(partial.len(), 1);
        assert!(partial[0].starts_with(".out.") && partial[0].ends_with(".partial"));
        fill(fd.as_fd());
        let fd = Arc::new(fd);
        let root = staging.prepare(fd.clone()).unwrap();
        assert!(
            Arc::ptr_eq(&root, &fd),
            "the partial directory becomes the target"
        );
        staging.commit().unwrap();
        assert_eq!(names(t.path()), ["out"]);
        assert_eq!(names(&target), ["file", "ro"]);

        let other = t.path().join("other");
        let (mut staging, fd) = Staging::create(&other).unwrap();
        fill(fd.as_fd());
        staging.discard(fd.as_fd());
        assert_eq!(names(t.path()), ["out"], "the read-only directory went too");
    }

    #[test]
    fn a_full_target_is_refused_before_and_at_the_rename() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("out");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("x"), b"").unwrap();
        assert!(matches!(
            Staging::create(&target),
            Err(Error::OutputExists { .. })
        ));
        fs::remove_file(target.join("x")).unwrap();
        let (mut staging, fd) = Staging::create(&target).unwrap();
        fill(fd.as_fd());
        // Another conversion got there first.
        fs::write(target.join("x"), b"").unwrap();
        staging.prepare(Arc::new(fd)).unwrap();
        assert!(matches!(staging.commit(), Err(Error::OutputExists { .. })));
    }

    #[test]
    fn inside_moves_children_up_and_discard_keeps_the_target() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("mnt");
        fs::create_dir(&target).unwrap();
        let dir = rfs::open(&target, DIR_FLAGS, Mode::empty()).unwrap();
        let (mut staging, fd) = Staging::inside(&target, dir).unwrap();
        let partial = names(&target);
        assert_eq!(partial.len(), 1);
        assert!(partial[0].starts_with(".mnt.") && partial[0].ends_with(".partial"));
        fill(fd.as_fd());
        let root = staging.prepare(Arc::new(fd)).unwrap();
        staging.commit().unwrap();
        assert_eq!(names(&target), ["file", "ro"]);
        let st = rfs::fstat(&*root).unwrap();
        let target_st = fs::metadata(&target).unwrap();
        assert_eq!(st.st_ino, std::os::unix::fs::MetadataExt::ino(&target_st));
        let ro = fs::metadata(target.join("ro")).unwrap();
        assert_eq!(ro.permissions().mode() & 0o777, 0o500, "the mode came back");

        // Dropped before the commit: the target is left as empty as it was.
        let target = t.path().join("mnt2");
        fs::create_dir(&target).unwrap();
        let dir = rfs::open(&target, DIR_FLAGS, Mode::empty()).unwrap();
        let (mut staging, fd) = Staging::inside(&target, dir).unwrap();
        fill(fd.as_fd());
        staging.discard(fd.as_fd());
        assert_eq!(names(&target), Vec::<String>::new());
    }

    #[test]
    fn a_failed_move_up_is_undone() {
        let t = tempfile::tempdir().unwrap();
        let target = t.path().join("mnt");
        fs::create_dir(&target).unwrap();
        let dir = rfs::open(&target, DIR_FLAGS, Mode::empty()).unwrap();
        let (mut staging, fd) = Staging::inside(&target, dir).unwrap();
        fill(fd.as_fd());
        // A name that appeared in the target meanwhile: some children may have moved first.
        fs::write(target.join("ro"), b"someone else's").unwrap();
        let fd = Arc::new(fd);
        assert!(matches!(
            staging.prepare(fd.clone()),
            Err(Error::OutputExists { .. })
        ));
        staging.discard(fd.as_fd());
        assert_eq!(names(&target), ["ro"], "only what was not ours is left");
        assert_eq!(fs::read(target.join("ro")).unwrap(), b"someone else's");
    }
}
