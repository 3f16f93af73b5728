//! [`DirSink`]: the merged tree extracted into a directory, written directly (no tar round
//! trip), every operation relative to the output root and never following a symlink.
//!
//! ```text
//! Entry ──► parent fd (resolve: cached, openat2 beneath the root, or a no-follow walk that
//!           │           creates missing parents 0700)
//!           ├─ file:     openat(O_CREAT|O_EXCL|O_NOFOLLOW) ─► data with holes kept ─►
//!           │            fchown ─► fchmod ─► fsetxattr ─► futimens
//!           ├─ dir:      mkdirat 0700; its metadata is kept for finish
//!           ├─ symlink, fifo, socket, device: symlinkat / mknodat, then chownat, chmodat,
//!           │            lsetxattr via /proc/self/fd, utimensat, all no-follow
//!           └─ hardlink: linkat(target's parent fd, name, parent fd, name), no follow
//! finish: directories deepest first, then the root: fchown ─► fchmod ─► fsetxattr ─► futimens
//!         ─► rename(.NAME.XXXXXX.partial, NAME)
//! ```
//!
//! Why directories wait for `finish`: creating a child changes its directory's mtime, a 0555
//! directory would refuse children rootless, and the stream may deliver a directory after its
//! children. Directories stay 0700 while the tree is written and get their own metadata
//! deepest first at the end, so no later write disturbs them.
//!
//! Holes: a file's data is scanned in 4 KiB blocks aligned to the file offset; all-zero blocks
//! are skipped (written with `pwrite` at the next data offset) and `set_len` gives the file its
//! size, so both the holes of a sparse map (whose bytes arrive as zeros) and zero runs of
//! ordinary files stay unallocated.
//!
//! Replacement: when a path already exists (a path delivered twice), the old node is removed
//! first (a directory with its subtree, through fds, never following symlinks); a directory
//! delivered over a directory keeps its children, as extraction does.
//!
//! Non-fatal problems become [`Warning`]s (in the [`Summary`] and sent to the progress callback
//! as [`Progress::Warning`]): device nodes that cannot be created without `CAP_MKNOD`, xattrs
//! the file system or the caller's privileges refuse, and ownership that cannot be set.
//!
//! The tree is built in a directory named `.NAME.XXXXXX.partial` and renamed to the output
//! path by `finish` (`dir/staging.rs` has the layouts, including one for a mount point), so
//! the output path never holds a partial tree, even after kill -9. If the sink is dropped
//! without `finish` (or `finish` fails), it removes what it wrote and nothing else: the
//! partial directory, through fds.

mod attrs;
mod remove;
mod resolve;
mod staging;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use self::attrs::Node;
use self::resolve::{Missing, Resolver};
use self::staging::Staging;
use super::tar::{data_error, data_short, is_zero};
use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::options::{Ownership, ProgressFn};
use crate::path::EntryPath;
use crate::progress::Progress;
use crate::sink::{Sink, Summary, Warning, WarningKind};

/// Size of the buffer file data is read into (a multiple of [`HOLE_BLOCK`]).
const DATA_CHUNK: usize = 1 << 20;
/// The unit of hole detection: an all-zero block of this size, aligned in the file, is skipped.
const HOLE_BLOCK: usize = 4096;
/// The largest major number mknod(2) takes: the kernel's dev_t has 12 bits of major and 20 of
/// minor, and larger values would be truncated silently (so they become a warning instead).
const MAX_MAJOR: u32 = 0xfff;
/// The largest minor number mknod(2) takes (see [`MAX_MAJOR`]).
const MAX_MINOR: u32 = 0xf_ffff;

/// Extracts the entry stream into a directory.
pub struct DirSink {
    /// The partial directory the tree is built in, and how it becomes the output.
    staging: Staging,
    resolver: Resolver,
    /// Directories whose metadata is applied at finish; `None` for a parent created because a
    /// child came first and whose own entry has not arrived (yet).
    dirs: BTreeMap<EntryPath, Option<Metadata>>,
    root_meta: Option<Metadata>,
    /// Devices that could not be created, with the OS error: a hard link to one cannot be
    /// created either and gets the same warning (instead of failing on a missing target).
    missing_devices: BTreeMap<EntryPath, i32>,
    set_owner: bool,
    progress: Option<ProgressFn>,
    buf: Vec<u8>,
    summary: Summary,
    finished: bool,
}

impl DirSink {
    /// Extracts into `path`, which must be missing (it is created, but not its parents) or an
    /// empty directory (replaced by the tree; a mount point receives the tree inside it).
    /// Until [`Sink::finish`] returns `Ok`, the tree is in a directory `.NAME.XXXXXX.partial`
    /// beside `path`, and `path` is untouched (for a mount point, or a directory whose parent
    /// refuses new entries, the partial directory is inside `path`).
    ///
    /// `ownership` says whether files get the entries' uid and gid ([`Ownership::Auto`]: when
    /// running as root). `progress` receives a [`Progress::Warning`] for each non-fatal problem.
    pub fn create(
        path: &Path,
        ownership: Ownership,
        progress: Option<ProgressFn>,
    ) -> Result<DirSink> {
        let (staging, root) = Staging::create(path)?;
        let set_owner = match ownership {
            Ownership::Auto => rustix::process::geteuid().is_root(),
            Ownership::Preserve => true,
            Ownership::Ignore => false,
        };
        // Messages name entries at the final path, where the user will look for them.
        let shown = staging.target().to_path_buf();
        Ok(DirSink {
            staging,
            resolver: Resolver::new(root, shown),
            dirs: BTreeMap::new(),
            root_meta: None,
            missing_devices: BTreeMap::new(),
            set_owner,
            progress,
            buf: Vec::new(),
            summary: Summary::default(),
            finished: false,
        })
    }

    fn warn(&mut self, path: &EntryPath, kind: WarningKind) {
        let warning = Warning {
            path: path.clone(),
            kind,
        };
        if let Some(f) = &self.progress {
            f(&Progress::Warning(warning.clone()));
        }
        self.summary.warnings.push(warning);
    }

    fn io_err(&self, op: &'static str, path: &EntryPath, e: Errno) -> Error {
        Error::io(op, self.resolver.full(path.as_bytes()), e.into())
    }

    /// Opens (creating if missing) the directory `dir` for writing `entry` into it.
    fn open_dir(
        &mut self,
        dir: &EntryPath,
        missing: Missing,
        entry: &EntryPath,
    ) -> Result<Arc<OwnedFd>> {
        let dirs = &mut self.dirs;
        self.resolver.open(dir, missing, entry, &mut |p| {
            dirs.entry(p).or_insert(None);
        })
    }

    /// Runs `op` to create a node; if the name is taken (a path delivered again), removes the
    /// old node and runs it once more.
    fn make<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &EntryPath,
        mut op: impl FnMut() -> rustix::io::Result<T>,
    ) -> Result<rustix::io::Result<T>> {
        match op() {
            Err(Errno::EXIST) => {
                self.remove_existing(parent, name, path)?;
                Ok(op())
            }
            r => Ok(r),
        }
    }

    fn remove_existing(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        path: &EntryPath,
    ) -> Result<()> {
        // The cursor may be at the removed directory or beneath it.
        self.resolver.forget(path);
        remove::remove_node(parent, name).map_err(|e| self.io_err("replace", path, e))?;
        if self.dirs.contains_key(path) {
            self.dirs.retain(|p, _| !p.starts_with(path));
        }
        self.missing_devices.retain(|p, _| !p.starts_with(path));
        Ok(())
    }

    /// Removes what `name` holds, if anything: for an entry that is not created but still
    /// replaces the path (a path delivered twice).
    fn clear(&mut self, parent: BorrowedFd<'_>, name: &[u8], path: &EntryPath) -> Result<()> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(_) => self.remove_existing(parent, name, path),
            Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(self.io_err("inspect", path, e)),
        }
    }

    /// Records a device (or a hard link to one) that could not be created.
    fn device_not_created(&mut self, path: &EntryPath, errno: i32) {
        self.warn(path, WarningKind::DeviceNotCreated { errno });
        self.missing_devices.insert(path.clone(), errno);
    }

    /// Ownership (unless disabled), mode, xattrs, mtime; failures to set ownership or xattrs
    /// are warnings.
    fn apply(
        &mut self,
        node: Node<'_>,
        path: &EntryPath,
        meta: &Metadata,
        mode: bool,
    ) -> Result<()> {
        if self.set_owner {
            match node.chown(meta.uid, meta.gid) {
                Ok(()) => {}
                // EINVAL: an id with no mapping in this user namespace.
                Err(e @ (Errno::PERM | Errno::INVAL)) => self.warn(
                    path,
                    WarningKind::OwnershipNotSet {
                        errno: e.raw_os_error(),
                    },
                ),
                Err(e) => return Err(self.io_err("change the owner of", path, e)),
            }
        }
        if mode {
            node.chmod(meta.mode)
                .map_err(|e| self.io_err("change the mode of", path, e))?;
        }
        for x in &meta.xattrs {
            if let Err(e) = node.set_xattr(&x.name, &x.value) {
                let kind = WarningKind::XattrNotSet {
                    name: x.name.clone(),
                    errno: e.raw_os_error(),
                };
                self.warn(path, kind);
            }
        }
        node.set_mtime(meta)
            .map_err(|e| self.io_err("set the time of", path, e))
    }

    fn make_dir(&mut self, parent: BorrowedFd<'_>, name: &[u8], entry: &Entry) -> Result<()> {
        match rfs::mkdirat(parent, name, Mode::RWXU) {
            Ok(()) => {}
            Err(Errno::EXIST) => {
                let st = rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(|e| self.io_err("inspect", &entry.path, e))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                    self.remove_existing(parent, name, &entry.path)?;
                    rfs::mkdirat(parent, name, Mode::RWXU)
                        .map_err(|e| self.io_err("create directory", &entry.path, e))?;
                }
            }
            Err(e) => return Err(self.io_err("create directory", &entry.path, e)),
        }
        self.dirs
            .insert(entry.path.clone(), Some(entry.meta.clone()));
        Ok(())
    }

    fn write_file(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &Entry,
        size: u64,
        data: &mut dyn Read,
    ) -> Result<()> {
        let flags =
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = self
            .make(parent, name, &entry.path, || {
                rfs::openat(parent, name, flags, Mode::RUSR | Mode::WUSR)
            })?
            .map_err(|e| self.io_err("create", &entry.path, e))?;
        let file = File::from(fd);
        let mut buf = std::mem::take(&mut self.buf);
        if buf.is_empty() {
            buf = vec![0; DATA_CHUNK];
        }
        let r = self.write_data(&file, &mut buf, size, data, &entry.path);
        self.buf = buf;
        r?;
        self.apply(Node::Fd(file.as_fd()), &entry.path, &entry.meta, true)?;
        self.summary.file_bytes += size;
        Ok(())
    }

    /// Writes `size` bytes from `data`, skipping aligned all-zero blocks so they stay holes.
    fn write_data(
        &self,
        file: &File,
        buf: &mut [u8],
        size: u64,
        data: &mut dyn Read,
        path: &EntryPath,
    ) -> Result<()> {
        let write_err = |e| Error::io("write", self.resolver.full(path.as_bytes()), e);
        let mut offset = 0u64;
        let mut data_end = 0u64;
        while offset < size {
            let want = usize::try_from(size - offset).map_or(buf.len(), |r| r.min(buf.len()));
            let chunk = &mut buf[..want];
            let got = fill(data, chunk).map_err(|e| data_error(path, e))?;
            if got < want {
                return Err(data_short(path, offset + got as u64));
            }
            let mut run: Option<usize> = None;
            for start in (0..want).step_by(HOLE_BLOCK) {
                let block = &chunk[start..want.min(start + HOLE_BLOCK)];
                match (is_zero(block), run) {
                    (false, None) => run = Some(start),
                    (true, Some(from)) => {
                        file.write_all_at(&chunk[from..start], offset + from as u64)
                            .map_err(write_err)?;
                        data_end = offset + start as u64;
                        run = None;
                    }
                    _ => {}
                }
            }
            if let Some(from) = run {
                file.write_all_at(&chunk[from..], offset + from as u64)
                    .map_err(write_err)?;
                data_end = offset + want as u64;
            }
            offset += want as u64;
        }
        if data_end < size {
            file.set_len(size).map_err(write_err)?;
        }
        Ok(())
    }

    fn hard_link(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &[u8],
        entry: &Entry,
        target: &EntryPath,
    ) -> Result<bool> {
        let missing = || Error::HardlinkTargetMissing {
            link: entry.path.shown(),
            target: target.shown(),
        };
        if *target == entry.path {
            return Ok(true);
        }
        if let Some(&errno) = self.missing_devices.get(target) {
            self.clear(parent, name, &entry.path)?;
            self.device_not_created(&entry.path, errno);
            return Ok(false);
        }
        let (Some(target_name), Some(target_dir)) = (target.file_name(), target.parent()) else {
            return Err(Error::HardlinkToDirectory {
                link: entry.path.shown(),
                target: target.shown(),
            });
        };
        let target_parent =
            self.resolver
                .lookup(&target_dir, &entry.path)
                .map_err(|e| match e {
                    Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                        missing()
                    }
                    e => e,
                })?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself.
        let r = self.make(parent, name, &entry.path, || {
            rfs::linkat(&target_parent, target_name, parent, name, AtFlags::empty())
        })?;
        match r {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Err(missing()),
            Err(Errno::PERM) if self.is_dir(target_parent.as_fd(), target_name) => {
                Err(Error::HardlinkToDirectory {
                    link: entry.path.shown(),
                    target: target.shown(),
                })
            }
            Err(e) => Err(self.io_err("create hard link", &entry.path, e)),
        }
    }

    fn is_dir(&self, dir: BorrowedFd<'_>, name: &[u8]) -> bool {
        rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory)
    }

    /// Creates a device, fifo or socket node; `false` if a device could not be created (a
    /// warning has been issued, and what the path held is gone).
    fn special(&mut self, parent: BorrowedFd<'_>, name: &[u8], entry: &Entry) -> Result<bool> {
        let (file_type, major, minor) = match entry.kind {
            EntryKind::CharDevice { major, minor } => (FileType::CharacterDevice, major, minor),
            EntryKind::BlockDevice { major, minor } => (FileType::BlockDevice, major, minor),
            EntryKind::Fifo => (FileType::Fifo, 0, 0),
            _ => (FileType::Socket, 0, 0),
        };
        if major > MAX_MAJOR || minor > MAX_MINOR {
            self.clear(parent, name, &entry.path)?;
            self.device_not_created(&entry.path, Errno::OVERFLOW.raw_os_error());
            return Ok(false);
        }
        let dev = rfs::makedev(major, minor);
        let r = self.make(parent, name, &entry.path, || {
            rfs::mknodat(parent, name, file_type, Mode::RUSR | Mode::WUSR, dev)
        })?;
        match r {
            Ok(()) => Ok(true),
            Err(e @ (Errno::PERM | Errno::ACCESS))
                if matches!(file_type, FileType::CharacterDevice | FileType::BlockDevice) =>
            {
                // An existing node is gone already: mknod(2) reports EEXIST before EPERM.
                self.device_not_created(&entry.path, e.raw_os_error());
                Ok(false)
            }
            Err(e) => Err(self.io_err("create", &entry.path, e)),
        }
    }
}

impl Sink for DirSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        let (Some(name), Some(dir)) = (entry.path.file_name(), entry.path.parent()) else {
            // The root: its metadata goes on the output directory at finish.
            self.root_meta = Some(entry.meta.clone());
            self.summary.entries += 1;
            return Ok(());
        };
        let parent = self.open_dir(&dir, Missing::Create, &entry.path)?;
        let parent = parent.as_fd();
        let at = Node::At { dir: parent, name };
        // Whatever this entry is, it replaces a device that could not be created there (a
        // link to itself excepted: it changes nothing).
        if !matches!(&entry.kind, EntryKind::Hardlink { target } if *target == entry.path) {
            self.missing_devices.remove(&entry.path);
        }
        let written = match &entry.kind {
            EntryKind::Dir => {
                self.make_dir(parent, name, entry)?;
                true
            }
            EntryKind::File { size, .. } => {
                self.write_file(parent, name, entry, *size, data)?;
                true
            }
            EntryKind::Symlink { target } => {
                self.make(parent, name, &entry.path, || {
                    rfs::symlinkat(&target[..], parent, name)
                })?
                .map_err(|e| self.io_err("create symlink", &entry.path, e))?;
                self.apply(at, &entry.path, &entry.meta, false)?;
                true
            }
            EntryKind::Hardlink { target } => {
                // The link shares its target's inode and metadata: nothing more to set.
                self.hard_link(parent, name, entry, target)?
            }
            EntryKind::CharDevice { .. }
            | EntryKind::BlockDevice { .. }
            | EntryKind::Fifo
            | EntryKind::Socket => {
                let made = self.special(parent, name, entry)?;
                if made {
                    self.apply(at, &entry.path, &entry.meta, true)?;
                }
                made
            }
        };
        if written {
            self.summary.entries += 1;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Summary> {
        // Descendants before ancestors: a path sorts after every path it starts with, so the
        // reverse of the map's order visits each directory after everything beneath it, and
        // the cursor moves between neighbours (time linear in the tree, whatever its depth).
        let dirs = std::mem::take(&mut self.dirs);
        for (path, meta) in dirs.into_iter().rev() {
            let meta = meta.unwrap_or_else(Metadata::implicit_dir);
            let fd = self.open_dir(&path, Missing::Fail, &path)?;
            self.apply(Node::Fd(fd.as_fd()), &path, &meta, true)?;
        }
        self.resolver.forget_all();
        let root = self.staging.prepare(self.resolver.root())?;
        if let Some(meta) = self.root_meta.take() {
            self.apply(Node::Fd(root.as_fd()), &EntryPath::root(), &meta, true)?;
        }
        self.staging.commit()?;
        self.finished = true;
        Ok(std::mem::take(&mut self.summary))
    }
}

impl Drop for DirSink {
    /// Removes what an unfinished sink wrote, and nothing else: the partial directory's
    /// contents through its fd (never following a symlink), then the directory itself.
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        self.resolver.forget_all();
        let root = self.resolver.root();
        self.staging.discard(root.as_fd());
    }
}

/// Reads until `buf` is full or the reader ends; returns the bytes read.
fn fill(data: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match data.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
