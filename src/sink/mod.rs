//! Sinks: where the merged entry stream goes.
//!
//! The merge pushes entries into a [`Sink`] one at a time (the push model of ripgrep's searcher
//! and sinks), so every output format shares one merge and the merge never buffers file data for
//! a sink. What the merge guarantees to every sink:
//!
//! - each surviving path arrives once, except that a path repeated inside one layer arrives
//!   again and replaces what the path holds (extractors let the later entry win);
//! - a [`EntryKind::Hardlink`](crate::EntryKind::Hardlink) arrives after its target;
//! - directories may arrive after their children (layers are read newest-first), so a sink
//!   creates missing parents itself and applies a directory's metadata when its entry comes;
//! - every ancestor directory of every entry is delivered at some point, the root included.

pub mod dir;
pub mod tar;

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::entry::Entry;
use crate::error::{Error, Result};
use crate::path::EntryPath;

/// A consumer of the merged entry stream: the tar, directory and squashfs writers.
pub trait Sink: Send {
    /// Receives one entry. For a regular file `data` yields exactly the file's `size` bytes and
    /// the sink reads all of them; for other kinds it yields nothing.
    ///
    /// If the path already holds something (delivered before, when a layer repeats a path, or
    /// created as a missing parent), this entry replaces it: a non-directory replacing a
    /// directory removes the directory's subtree; a directory replacing a directory only
    /// updates its metadata.
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()>;

    /// Writes whatever the format keeps for the end and commits the output. Until this returns
    /// `Ok`, no output exists at the final path (or, for a directory, what was written is
    /// removed when the sink is dropped).
    fn finish(self: Box<Self>) -> Result<Summary>;

    /// Told now and then how many bytes the merge holds for the paths it has met, so that a
    /// sink with a memory budget counts them with its own (the squashfs sink spills its tree
    /// when the two together pass [`ConvertOptions::memory_limit`]). By default, ignored.
    ///
    /// [`ConvertOptions::memory_limit`]: crate::ConvertOptions::memory_limit
    fn merge_memory(&mut self, bytes: u64) {
        let _ = bytes;
    }
}

/// What a finished conversion produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Entries written (all kinds, hard links included).
    pub entries: u64,
    /// Bytes of regular-file content written (holes included).
    pub file_bytes: u64,
    /// Size of the output file in bytes (0 for a directory).
    pub output_bytes: u64,
    /// Things the sink could not reproduce but that did not stop it.
    pub warnings: Vec<Warning>,
    /// Whether the conversion ran twice: the first pass learned that names go through
    /// symlinks of older layers ([`Progress::SecondPass`](crate::Progress::SecondPass)).
    pub second_pass: bool,
    /// The dm-verity parameters, when a hash tree was written
    /// ([`SquashfsOptions::verity`](crate::SquashfsOptions::verity)).
    pub verity: Option<crate::verity::VerityInfo>,
    /// What was reused from a previous image, when one was given
    /// ([`SquashfsOptions::reuse`](crate::SquashfsOptions::reuse)).
    pub reuse: Option<Box<crate::squashfs::reuse::ReuseReport>>,
    /// What the memory budget sent to disk (all zero: nothing).
    pub spilled: Spilled,
}

/// What went to disk when the per-path state passed the memory budget
/// ([`ConvertOptions::memory_limit`](crate::ConvertOptions::memory_limit)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Spilled {
    /// Bytes of the squashfs writer's tree written to the spill file.
    pub bytes: u64,
    /// Sorted runs written.
    pub runs: u32,
    /// Path records written.
    pub records: u64,
    /// Bytes of the merge's path table and hiding records paged out to disk, in all (pages
    /// written again after coming back and changing count again).
    pub merge_bytes: u64,
    /// Bytes of the squashfs writer's file placements and places of fragment tails paged out
    /// to disk, in all (they page once the tree spills).
    pub files_bytes: u64,
    /// Bytes of the squashfs export table paged out to disk while the inode table was written
    /// (it keeps a sixteenth of the budget in memory).
    pub export_bytes: u64,
}

/// A non-fatal problem: the output lacks something the image has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The entry concerned.
    pub path: EntryPath,
    /// What could not be done.
    pub kind: WarningKind,
}

/// The kinds of [`Warning`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A device node could not be created (creating one needs `CAP_MKNOD`).
    DeviceNotCreated {
        /// The OS error number.
        errno: i32,
    },
    /// Ownership could not be set.
    OwnershipNotSet {
        /// The OS error number.
        errno: i32,
    },
    /// An extended attribute could not be set.
    XattrNotSet {
        /// The attribute's name.
        name: Vec<u8>,
        /// The OS error number.
        errno: i32,
    },
    /// An entry of a type the format cannot store (tar has no socket type); it is left out.
    EntryNotStorable {
        /// What was left out ("socket", "hard link to a socket").
        what: &'static str,
    },
    /// An extended attribute in a namespace the format cannot store (squashfs: `system.*`).
    XattrNotStorable {
        /// The attribute's name.
        name: Vec<u8>,
    },
    /// The previous image given for reuse cannot be used; every block was compressed (the
    /// output is the same either way). The warning's path is the root.
    PreviousNotReused {
        /// The previous image.
        previous: PathBuf,
        /// Why.
        why: crate::squashfs::reuse::NotReused,
    },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let errno = |e: i32| std::io::Error::from_raw_os_error(e);
        match &self.kind {
            WarningKind::DeviceNotCreated { errno: e } => {
                write!(
                    f,
                    "{}: device node not created: {}",
                    self.path.display(),
                    errno(*e)
                )
            }
            WarningKind::OwnershipNotSet { errno: e } => {
                write!(
                    f,
                    "{}: ownership not set: {}",
                    self.path.display(),
                    errno(*e)
                )
            }
            WarningKind::XattrNotSet { name, errno: e } => write!(
                f,
                "{}: xattr {} not set: {}",
                self.path.display(),
                String::from_utf8_lossy(name),
                errno(*e)
            ),
            WarningKind::EntryNotStorable { what } => write!(
                f,
                "{}: {what} cannot be stored in this format; left out",
                self.path.display()
            ),
            WarningKind::PreviousNotReused { previous, why } => write!(
                f,
                "not reusing blocks of {}: {why}; compressing every block",
                previous.display()
            ),
            WarningKind::XattrNotStorable { name } => write!(
                f,
                "{}: xattr {} cannot be stored in this format",
                self.path.display(),
                String::from_utf8_lossy(name)
            ),
        }
    }
}

/// An output file that appears at its final path only when committed.
///
/// The data goes to a temporary file beside the target; [`OutputFile::commit`] renames it into
/// place. Dropping an uncommitted `OutputFile` deletes the temporary file, so an error at any
/// point (a bad layer, a full disk, a panic) leaves no partial output behind.
pub struct OutputFile {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
}

impl OutputFile {
    /// Starts an output that will become `target`.
    pub fn create(target: &Path) -> Result<OutputFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".partial")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)
            .map_err(|e| Error::io("create output in", dir, e))?;
        Ok(OutputFile {
            tmp,
            target: target.to_path_buf(),
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    /// The final path.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Moves the file to its final path. (No fsync: like mksquashfs and tar, durability is left
    /// to the caller; the rename only guarantees that the final path never holds a partial file.)
    pub fn commit(self) -> Result<()> {
        let target = self.target;
        self.tmp.persist(&target).map_err(|e| Error::Output {
            path: target.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Whether `a` and `b` name the same file (the same path, or the same inode once both exist).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    if a == b {
        return true;
    }
    let abs = |p: &Path| -> Option<PathBuf> {
        let parent = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.canonicalize().ok()?,
            _ => std::env::current_dir().ok()?,
        };
        Some(parent.join(p.file_name()?))
    };
    if let (Some(x), Some(y)) = (abs(a), abs(b)) {
        if x == y {
            return true;
        }
    }
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
