//! What is wrong with a malformed squashfs image, as values a caller can match on.
//!
//! [`Error::BadSquashfs`](crate::Error::BadSquashfs) carries a [`SquashfsProblem`]: one variant
//! per kind of defect, with the offsets, counts and names that locate it, so that a tool can
//! tell a foreign file (bad magic) from a cut download (truncated) from a corrupt compressed
//! block from a hostile listing, without parsing the message. Each problem is a leaf: its
//! `Display` is the whole description and it has no `source`.

use std::fmt;

use crate::path::EntryPath;
use crate::squashfs::format::compression_id;

/// One defect of a squashfs image. The wording of `Display` is what follows
/// `malformed squashfs image PATH: ` in the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SquashfsProblem {
    /// A fixed-size record ends early, so nothing after it can be trusted.
    #[error("shorter than {what}")]
    Truncated {
        /// The record, with its article: "a superblock", "an inode header".
        what: &'static str,
    },
    /// The file is some other format (or overwritten from the start).
    #[error("not a squashfs image (bad magic)")]
    BadMagic,
    /// Squashfs 1–3 and future versions lay the tables out differently.
    #[error("version {major}.{minor} (only 4.0 is supported)")]
    UnsupportedVersion {
        /// The major version the superblock claims.
        major: u16,
        /// The minor version the superblock claims.
        minor: u16,
    },
    /// Block sizes bound every allocation, so only the ones squashfs allows are accepted.
    #[error("block size {size} / log {log} invalid")]
    BadBlockSize {
        /// The block size the superblock claims.
        size: u32,
        /// Its base-2 logarithm as stored (must agree with `size`).
        log: u16,
    },
    /// The image needs a codec this reader lacks (legacy lzma, lzo, or an unknown id).
    #[error("unsupported compressor id {id}")]
    UnsupportedCompressor {
        /// The compressor id in the superblock.
        id: u16,
    },
    /// The image claims more bytes than the file has: a cut copy or a hostile header.
    #[error("bytes_used {bytes_used} outside the file's {file_len} bytes")]
    BytesUsedOutsideFile {
        /// The image size the superblock claims.
        bytes_used: u64,
        /// The size of the file.
        file_len: u64,
    },
    /// An offset read from the image points past its end.
    #[error("read of {len} bytes at {offset} beyond the image's {bytes_used} bytes")]
    ReadPastEnd {
        /// Where the read started.
        offset: u64,
        /// How many bytes it wanted.
        len: u64,
        /// The image size the superblock claims.
        bytes_used: u64,
    },
    /// The file shrank after it was opened (or lies about its length).
    #[error("the file ends before bytes_used")]
    FileTruncated,
    /// Every table is located relative to these two; out of order, none can be bounded.
    #[error("inode and directory tables out of order")]
    TablesOutOfOrder,
    /// Every inode names an owner through the id table, so an empty one is unusable.
    #[error("no ids")]
    NoIds,
    /// The xattr table's header locates all of its data; a wrong one makes it unreadable.
    #[error("xattr table header invalid")]
    BadXattrHeader,
    /// The compressor options must be a short uncompressed block right after the superblock.
    #[error("compressor options block is not a short raw block")]
    BadCompressorOptions,
    /// A reference read from the image points outside the table it must stay in.
    #[error("{what} outside the {table} table")]
    OutsideTable {
        /// The reference: "root inode reference", "directory listing", "xattr reference", ….
        what: &'static str,
        /// The table it must point into.
        table: SquashfsTable,
    },
    /// A lookup table's location list names a block after the list itself.
    #[error("{table} table block past its location list")]
    TableBlockPastList {
        /// The lookup table.
        table: SquashfsTable,
    },
    /// A lookup table holds fewer bytes than its entry count needs.
    #[error("{table} table shorter than its entries")]
    TableTooShort {
        /// The lookup table.
        table: SquashfsTable,
    },
    /// One stored block (metadata, data or fragment) cannot be used.
    #[error("{block}: {problem}")]
    BadBlock {
        /// Which block.
        block: SquashfsBlock,
        /// What is wrong with it.
        problem: BlockProblem,
    },
    /// The image's metadata would cost more to read than its size allows (see the
    /// [`reader`](super::reader) module): listings or block lists shared to blow up a walk.
    #[error(
        "reading its tree would decompress more than {blocks} metadata blocks or decode more \
         than {bytes} bytes of metadata, more than the image's own tables hold (directories \
         that share listings, or inodes that share block lists)"
    )]
    OverBudget {
        /// The limit on decompressed metadata blocks.
        blocks: u64,
        /// The limit on decoded metadata bytes.
        bytes: u64,
    },
    /// Deeper nesting than any Linux path allows: the image is built to exhaust the walker.
    #[error("directories nested deeper than {max} levels at /{}", .path.shown())]
    TooDeep {
        /// The directory past the limit.
        path: EntryPath,
        /// The deepest nesting walked.
        max: usize,
    },
    /// A directory entry points back at a directory above it, so a walk would never end.
    #[error(
        "directory /{} is its own ancestor /{} (the image loops)",
        .path.shown(),
        .ancestor.shown()
    )]
    DirectoryLoop {
        /// Where the directory is met again.
        path: EntryPath,
        /// Where it was first met, above `path`.
        ancestor: EntryPath,
    },
    /// Squashfs has no hard-linked directories, so one directory under two names is forged.
    #[error("directory /{} is also reached as /{}", .first.shown(), .again.shown())]
    DirectoryReachedTwice {
        /// Where the directory was first met.
        first: EntryPath,
        /// The other path that leads to it.
        again: EntryPath,
    },
    /// An index into a lookup table (fragment, id, xattr) is past its last entry.
    #[error("{}", index_out_of_range(*.table, *.index, *.count))]
    IndexOutOfRange {
        /// The table indexed.
        table: SquashfsTable,
        /// The index read from the image.
        index: u32,
        /// The entries the table has (0: the image has no such table).
        count: u32,
    },
    /// Inode numbers run from 1 to the superblock's count; hard-link groups rely on it.
    #[error("inode number {inode} out of range")]
    InodeNumberOutOfRange {
        /// The inode number read.
        inode: u32,
    },
    /// The inode's type is none of the fourteen squashfs defines.
    #[error("unknown inode type {kind}")]
    UnknownInodeType {
        /// The type read.
        kind: u16,
    },
    /// A directory inode's listing size or offset cannot describe a listing.
    #[error("directory inode {inode} invalid")]
    BadDirectoryInode {
        /// The directory's inode number.
        inode: u32,
    },
    /// A name (of an entry or a directory index) longer than Linux allows.
    #[error("a name of {len} bytes")]
    NameTooLong {
        /// Its length as stored.
        len: usize,
    },
    /// A length or count read from the image is beyond what its record or table can hold.
    #[error("{what} {len} out of range")]
    BadLength {
        /// What is counted: "symlink target length", "xattr set size", ….
        what: &'static str,
        /// The value read.
        len: u64,
    },
    /// A file claims more blocks than its inode table could list: its size is forged.
    #[error("file inode {inode} claims {blocks} blocks")]
    TooManyBlocks {
        /// The file's inode number.
        inode: u32,
        /// The block count its size implies.
        blocks: u64,
    },
    /// A file whose size is a whole number of blocks cannot have a tail in a fragment.
    #[error("a file whose size is a multiple of the block size has a fragment")]
    FragmentOnFullBlocks,
    /// A file's fragment tail reaches past the end of its fragment block.
    #[error("fragment tail outside fragment block {index}")]
    FragmentTailOutside {
        /// The fragment block.
        index: u32,
    },
    /// A file's blocks and tail hold a different number of bytes than its size.
    #[error("file blocks do not add up to its size")]
    FileSizeMismatch,
    /// Only user, trusted and security xattrs exist in squashfs.
    #[error("unknown xattr prefix {prefix}")]
    UnknownXattrPrefix {
        /// The prefix id read.
        prefix: u16,
    },
    /// An entry is used as a type it is not (the root must be a directory; listing or
    /// reading needs a directory or a regular file).
    #[error("{what} is not a {expected}")]
    WrongKind {
        /// The entry: "the root inode", "the entry".
        what: &'static str,
        /// The type needed: "directory", "regular file".
        expected: &'static str,
    },
    /// A listing's entries run past the size its directory inode gives it.
    #[error("directory entries run past the listing size")]
    ListingOverrun,
    /// A name with `/` or NUL, or `.` or `..`, would escape or confuse any extraction.
    #[error("invalid name {name:?}")]
    InvalidName {
        /// The name, shown as lossy UTF-8 (shortened when long).
        name: String,
    },
    /// Listings are sorted so that lookups can stop early; an unsorted one is forged.
    #[error("directory entries not sorted")]
    DirectoryNotSorted,
    /// A big directory's index does not have the entry a lookup computed from it.
    #[error("directory index entry not found")]
    IndexEntryMissing,
}

/// The message for [`SquashfsProblem::IndexOutOfRange`]: a missing table is said as such.
fn index_out_of_range(table: SquashfsTable, index: u32, count: u32) -> String {
    if count == 0 {
        format!("{table} index {index}, but the image has no {table} table")
    } else {
        format!("{table} index {index} ≥ {count}")
    }
}

/// A table of the image, for problems that are the same in each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SquashfsTable {
    /// The inode table.
    Inode,
    /// The directory table (listings and indexes).
    Directory,
    /// The fragment table.
    Fragment,
    /// The id (uid/gid) table.
    Id,
    /// The xattr table and its key/value data.
    Xattr,
}

impl fmt::Display for SquashfsTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SquashfsTable::Inode => "inode",
            SquashfsTable::Directory => "directory",
            SquashfsTable::Fragment => "fragment",
            SquashfsTable::Id => "id",
            SquashfsTable::Xattr => "xattr",
        })
    }
}

/// Which stored block a [`BlockProblem`] is about, so the bytes can be found with a hex
/// editor or `unsquashfs -lls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SquashfsBlock {
    /// A metadata block (inodes, listings, lookup tables).
    Metadata {
        /// Its offset in the image (of its 2-byte header).
        at: u64,
    },
    /// A file's data block.
    Data {
        /// Its offset in the image.
        at: u64,
    },
    /// A fragment block (file tails).
    Fragment {
        /// Its index in the fragment table.
        index: u32,
    },
}

impl fmt::Display for SquashfsBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SquashfsBlock::Metadata { at } => write!(f, "metadata block at {at}"),
            SquashfsBlock::Data { at } => write!(f, "data block at {at}"),
            SquashfsBlock::Fragment { index } => write!(f, "fragment block {index}"),
        }
    }
}

/// What is wrong with one stored block: its header, its place, or its compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockProblem {
    /// The codec library refused the bytes (a corrupt stream or a failed checksum).
    #[error("{codec}: {detail}")]
    Codec {
        /// The codec: "zlib", "xz", "lz4", "zstd".
        codec: &'static str,
        /// The library's own message.
        detail: String,
    },
    /// The stream neither ends nor fails within a block's room: cut short or oversized.
    #[error("{codec} stream is truncated or larger than a block")]
    Unfinished {
        /// The codec: "zlib" or "xz".
        codec: &'static str,
    },
    /// The block decompresses to more than a block may hold.
    #[error("block decompresses to more than {limit} bytes")]
    TooLarge {
        /// The most a block may hold.
        limit: usize,
    },
    /// The block's compressor is one this reader cannot decompress.
    #[error("{}", unsupported_compressor(*.id))]
    UnsupportedCompressor {
        /// The compressor id.
        id: u16,
    },
    /// The block holds a different number of bytes than the file's size implies.
    #[error("holds {found} bytes, expected {expected}")]
    WrongSize {
        /// Bytes it holds (decompressed).
        found: usize,
        /// Bytes it must hold.
        expected: usize,
    },
    /// The stored length in its header or size word is 0 or more than a block.
    #[error("bad length {len}")]
    StoredLength {
        /// The stored length read.
        len: u64,
    },
    /// The block would start or end outside the table it belongs to.
    #[error("outside its table")]
    OutsideTable,
    /// A read runs past the last block of its metadata stream.
    #[error("read past the end of its stream")]
    PastStreamEnd,
}

/// The message for [`BlockProblem::UnsupportedCompressor`].
fn unsupported_compressor(id: u16) -> String {
    match id {
        compression_id::LZMA => "legacy lzma compression is not supported".into(),
        compression_id::LZO => "lzo compression is not supported".into(),
        other => format!("unknown compressor id {other}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::entry::{EntryKind, Metadata};
    use crate::error::Error;
    use crate::options::{Jobs, SquashfsOptions};
    use crate::sink::Sink;
    use crate::squashfs::{SquashfsReader, SquashfsSink};
    use crate::Entry;

    /// Offset of the compressor id in the superblock.
    const COMPRESSION_AT: usize = 20;
    /// Offset of `bytes_used` in the superblock.
    const BYTES_USED_AT: usize = 40;

    /// An image of `files` (path, content), written with compression `codec`.
    fn image(dir: &Path, codec: &str, files: &[(&str, &[u8])]) -> PathBuf {
        let path = dir.join(format!("{codec}.sqfs"));
        let opts = SquashfsOptions {
            compression: codec.parse().expect("a known codec"),
            ..SquashfsOptions::default()
        };
        let mut sink = SquashfsSink::create(&path, &opts, Jobs::new(1).expect("1 job"), None)
            .expect("create the image");
        for (name, data) in files {
            let e = Entry {
                path: EntryPath::new(name.as_bytes()).expect("a valid path"),
                kind: EntryKind::File {
                    size: data.len() as u64,
                    sparse: None,
                },
                meta: Metadata::default(),
            };
            sink.entry(&e, &mut &data[..]).expect("add the file");
        }
        Box::new(sink).finish().expect("finish the image");
        path
    }

    /// Rewrites the file at `path` with `edit` applied to its bytes.
    fn patch(path: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
        let mut bytes = std::fs::read(path).expect("read the image");
        edit(&mut bytes);
        std::fs::write(path, &bytes).expect("write the image");
    }

    /// The problem a failed open or walk of `path` reports.
    fn problem_of(path: &Path) -> SquashfsProblem {
        let err = SquashfsReader::open(path).and_then(|r| r.walk(|_, _| Ok(())));
        match err {
            Err(Error::BadSquashfs { problem, .. }) => problem,
            other => panic!("expected BadSquashfs, got {other:?}"),
        }
    }

    #[test]
    fn a_foreign_file_is_bad_magic_and_a_short_one_is_truncated() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let img = image(dir.path(), "gzip", &[("f", b"x")]);
        patch(&img, |b| b[0] = b'X');
        assert!(matches!(problem_of(&img), SquashfsProblem::BadMagic));

        patch(&img, |b| b.truncate(50));
        assert!(matches!(
            problem_of(&img),
            SquashfsProblem::Truncated {
                what: "a superblock"
            }
        ));
    }

    #[test]
    fn a_cut_image_and_a_legacy_codec_are_told_apart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let img = image(dir.path(), "gzip", &[("f", b"x")]);
        let mut used = [0u8; 8];
        patch(&img, |b| {
            used.copy_from_slice(&b[BYTES_USED_AT..BYTES_USED_AT + 8]);
            b.truncate(u64::from_le_bytes(used) as usize - 1);
        });
        let bytes_used = u64::from_le_bytes(used);
        assert!(matches!(
            problem_of(&img),
            SquashfsProblem::BytesUsedOutsideFile { bytes_used: b, file_len }
                if b == bytes_used && file_len == bytes_used - 1
        ));

        let img = image(dir.path(), "zstd", &[("f", b"x")]);
        patch(&img, |b| {
            b[COMPRESSION_AT..COMPRESSION_AT + 2]
                .copy_from_slice(&compression_id::LZMA.to_le_bytes())
        });
        let problem = problem_of(&img);
        assert!(
            matches!(
                problem,
                SquashfsProblem::UnsupportedCompressor {
                    id: compression_id::LZMA
                }
            ),
            "{problem:?}"
        );
        assert_eq!(problem.to_string(), "unsupported compressor id 2");
    }

    #[test]
    fn an_unsorted_listing_is_named_as_such() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Raw metadata, so the names can be found and edited in place.
        let img = image(dir.path(), "none", &[("name-a", b"1"), ("name-b", b"2")]);
        patch(&img, |b| {
            let at = b
                .windows(6)
                .position(|w| w == b"name-a")
                .expect("the listing names name-a");
            b[at + 5] = b'c';
        });
        assert!(matches!(
            problem_of(&img),
            SquashfsProblem::DirectoryNotSorted
        ));
    }

    #[test]
    fn a_corrupt_data_block_is_a_bad_block_at_its_offset() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Two full blocks (128 KiB each) and a tail: the first block is compressed alone.
        let text: Vec<u8> = b"compress me please ".repeat(20_000);
        let img = image(dir.path(), "gzip", &[("f", &text)]);
        let r = SquashfsReader::open(&img).expect("the image opens");
        let f = r
            .lookup(&EntryPath::new(b"f").expect("a valid path"))
            .expect("lookup")
            .expect("f exists");
        let start = SquashfsReader::file_layout(&f)
            .expect("f is a file")
            .blocks_start;
        drop(r);
        assert!(start >= 96, "data follows the superblock: {start}");
        let at = start as usize;
        patch(&img, |b| b[at + 4..at + 24].fill(0x55));
        let r = SquashfsReader::open(&img).expect("the tables are intact");
        let err = r.read_file(&f, &mut std::io::sink()).expect_err("corrupt");
        let Error::BadSquashfs { problem, .. } = err else {
            panic!("expected BadSquashfs, got {err:?}");
        };
        assert!(
            matches!(
                problem,
                SquashfsProblem::BadBlock {
                    block: SquashfsBlock::Data { at },
                    problem: BlockProblem::Codec { codec: "zlib", .. }
                        | BlockProblem::Unfinished { codec: "zlib" }
                        | BlockProblem::WrongSize { .. },
                } if at == start
            ),
            "{problem:?}"
        );
        assert!(
            problem
                .to_string()
                .starts_with(&format!("data block at {start}: ")),
            "{problem}"
        );
    }

    #[test]
    fn messages_keep_their_wording() {
        let loop_problem = SquashfsProblem::DirectoryLoop {
            path: EntryPath::new(b"home/user").expect("a valid path"),
            ancestor: EntryPath::root(),
        };
        assert_eq!(
            loop_problem.to_string(),
            "directory /home/user is its own ancestor / (the image loops)"
        );
        let no_table = SquashfsProblem::IndexOutOfRange {
            table: SquashfsTable::Xattr,
            index: 3,
            count: 0,
        };
        assert_eq!(
            no_table.to_string(),
            "xattr index 3, but the image has no xattr table"
        );
        let block = SquashfsProblem::BadBlock {
            block: SquashfsBlock::Metadata { at: 96 },
            problem: BlockProblem::UnsupportedCompressor {
                id: compression_id::LZO,
            },
        };
        assert_eq!(
            block.to_string(),
            "metadata block at 96: lzo compression is not supported"
        );
        assert!(std::error::Error::source(&block).is_none());
    }
}
