//! The merge → sink contract: one [`Entry`] per surviving path, already normalized.
//!
//! Sinks never see tar quirks (long-name records, PAX headers, sparse maps in the data), whiteouts,
//! or duplicate paths from different layers. A regular file's content arrives beside its entry as
//! a reader that yields exactly `size` bytes, with holes already expanded to zeros; the
//! [`EntryKind::File::sparse`] map only tells a sink where the holes are so it can keep them
//! sparse.

/// One path of the merged image with its type and metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Where the entry lives.
    pub path: crate::EntryPath,
    /// What it is.
    pub kind: EntryKind,
    /// Ownership, permissions, time and extended attributes.
    pub meta: Metadata,
}

/// The type of an entry and the data that comes with the type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file of `size` bytes; the content is read from the reader passed beside it.
    File {
        /// Length in bytes, holes included.
        size: u64,
        /// The data regions `(offset, length)` when the layer stored the file sparse; the bytes
        /// outside them are zeros. `None` for an ordinary file.
        sparse: Option<Vec<(u64, u64)>>,
    },
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink {
        /// The link's target, as bytes (never resolved).
        target: Vec<u8>,
    },
    /// Another name for an earlier entry; delivered after its target, sharing its inode.
    Hardlink {
        /// The path of the entry this one is another name of (a regular file, symlink, device,
        /// fifo or socket that the sink has already received).
        target: crate::EntryPath,
    },
    /// A character device.
    CharDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A block device.
    BlockDevice {
        /// Major number.
        major: u32,
        /// Minor number.
        minor: u32,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
}

impl EntryKind {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        matches!(self, EntryKind::Dir)
    }

    /// A short lower-case name of the type, for messages and dumps.
    pub fn name(&self) -> &'static str {
        match self {
            EntryKind::File { .. } => "file",
            EntryKind::Dir => "dir",
            EntryKind::Symlink { .. } => "symlink",
            EntryKind::Hardlink { .. } => "hardlink",
            EntryKind::CharDevice { .. } => "chardev",
            EntryKind::BlockDevice { .. } => "blockdev",
            EntryKind::Fifo => "fifo",
            EntryKind::Socket => "socket",
        }
    }

    /// The file type bits (`S_IFMT`) of `st_mode` for this kind; 0 for a hard link.
    pub fn type_bits(&self) -> u32 {
        match self {
            EntryKind::File { .. } => 0o100000,
            EntryKind::Dir => 0o040000,
            EntryKind::Symlink { .. } => 0o120000,
            EntryKind::Hardlink { .. } => 0,
            EntryKind::CharDevice { .. } => 0o020000,
            EntryKind::BlockDevice { .. } => 0o060000,
            EntryKind::Fifo => 0o010000,
            EntryKind::Socket => 0o140000,
        }
    }
}

/// Ownership, permissions, modification time and extended attributes of an entry.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Metadata {
    /// Permission bits including setuid, setgid and sticky (`mode & 0o7777`); no type bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime: i64,
    /// Sub-second part of the modification time, 0..1e9 (kept by tar and directory outputs;
    /// squashfs stores whole seconds).
    pub mtime_nsec: u32,
    /// Extended attributes, sorted by name, names unique.
    pub xattrs: Vec<Xattr>,
}

impl Metadata {
    /// The metadata of a directory that no layer describes: 0755, root:root, time 0.
    pub fn implicit_dir() -> Metadata {
        Metadata {
            mode: 0o755,
            ..Metadata::default()
        }
    }
}

/// One extended attribute: full name (`security.capability`, `user.foo`) and raw value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Xattr {
    /// Full attribute name including the namespace prefix.
    pub name: Vec<u8>,
    /// Raw value bytes.
    pub value: Vec<u8>,
}
