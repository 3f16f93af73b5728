//! Reading squashfs images in process: the tree, each entry's metadata and file contents.
//!
//! Data flow: [`SquashfsReader::open`] reads and checks the superblock and the id table;
//! everything else is read on demand. Directory listings and inodes come from the metadata
//! tables through a small cache of decompressed 8 KiB blocks; fragment and xattr lookups read
//! the one table block they need. [`SquashfsReader::walk`] visits the tree depth first in
//! name order, [`SquashfsReader::lookup`] resolves a path the way the kernel does (through a
//! big directory's index), and [`SquashfsReader::read_file`] streams a file's blocks, holes
//! and fragment tail.
//!
//! This powers `ocirender verify` and `ls` (no mount, no FUSE, no external binary) and the
//! writer's tests. It reads images from any squashfs 4.0 writer (gzip, xz, lz4, zstd; not the
//! legacy lzma and lzo).
//!
//! Robustness: every size, count and offset read from the image is checked before it is used
//! (blocks within their table, metadata blocks at most 8 KiB, names 1–255 bytes, at most 256
//! entries per header, data blocks decompressing to exactly their length), directories are
//! walked without revisiting one (a directory that is its own ancestor, or one reached twice,
//! is an error naming the path) and no allocation is sized by an untrusted number beyond what
//! the image's own length allows. Anything malformed is [`Error::BadSquashfs`], whose
//! [`SquashfsProblem`] says which defect it is; nothing panics.
//!
//! Work is bounded by the image itself. A hostile image can point many directory entries at
//! one listing, or many inodes at one huge block list, so that a small file costs unbounded
//! time and memory to walk. [`SquashfsReader::open`] counts the metadata blocks of the inode
//! and directory tables (the chain of block headers, without decompressing them); afterwards
//! the reader decompresses at most [`BLOCK_BUDGET_FACTOR`] times that many blocks (plus the
//! cache), and hands out at most [`BYTE_BUDGET_FACTOR`] times their uncompressed capacity
//! (plus [`BYTE_BUDGET_SLACK`]) of decoded metadata. A walk of a valid image reads every
//! listing once and every inode once per name, far inside both; past either bound the
//! reader fails with an error that says so.
//!
//! What it shares with the writer: the superblock, inode headers, directory headers and
//! entries, fragment and xattr-id records are parsed with [`format`](super::format)'s types,
//! and every limit is a constant from there. The inode *bodies* are decoded here field by field
//! through the metadata cursor, on purpose: a body can straddle two metadata blocks and has a
//! variable tail (a file's block list, a directory's index), so it cannot be sliced out and
//! handed to a parser before its fields say how long it is; and each field is checked against
//! the image where it is read (a block count against the inode table's size, an index name
//! against [`NAME_LEN_MAX`]), which a parser shared with the writer, which never sees hostile
//! values, would not do. The round trip of the writer's bodies is tested against two readers
//! nobody here wrote (unsquashfs and backhand) besides this one.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::entry::{EntryKind, Metadata, Xattr};
use crate::error::{Error, Result};
use crate::options::BlockSize;
use crate::path::{shown_name, EntryPath, NAME_MAX};
use crate::squashfs::compressor;
use crate::squashfs::format::{
    compression_id, decode_dev, flags, inode_type, xattr_prefix, FragmentEntry, InodeHeader,
    LeReader, MetaRef, Superblock, DATA_RAW, DIR_HEADER_MAX, MAGIC, METADATA_RAW, METADATA_SIZE,
    NAME_LEN_MAX, NO_FRAGMENT, NO_TABLE, NO_XATTR, SUPERBLOCK_SIZE, SYMLINK_MAX, VERSION_MAJOR,
    VERSION_MINOR,
};
use crate::squashfs::problem::{BlockProblem, SquashfsBlock, SquashfsProblem, SquashfsTable};

/// Decompressed metadata blocks kept (8 KiB each).
const CACHE_BLOCKS: usize = 1024;
/// Hard-linked inodes kept decoded (see [`SquashfsReader::inode`]).
const LINKED_INODES: usize = 1 << 16;
/// Deepest directory nesting walked (a Linux path is at most 4096 bytes, so 2048 levels).
const MAX_DEPTH: usize = 2048;
/// How many times over the inode and directory tables' blocks may be decompressed.
pub const BLOCK_BUDGET_FACTOR: u64 = 4;
/// How many times over the inode and directory tables' capacity may be decoded.
pub const BYTE_BUDGET_FACTOR: u64 = 8;
/// Decoded metadata allowed beyond [`BYTE_BUDGET_FACTOR`]: hard links to big files and
/// shared xattr sets decode the same bytes once per name.
pub const BYTE_BUDGET_SLACK: u64 = 256 << 20;

/// An entry of the image: what [`Entry`](crate::Entry) says about a path, plus the inode
/// number that identifies hard-link groups.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadEntry {
    /// The type. Files report `sparse: Some(data regions)` when they have holes. Never
    /// [`EntryKind::Hardlink`]: names of one inode share [`ReadEntry::inode_number`].
    pub kind: EntryKind,
    /// Mode bits, owner, time and xattrs (`mtime_nsec` is always 0).
    pub meta: Metadata,
    /// The inode number; equal for every name of one inode.
    pub inode_number: u32,
    /// The inode's link count as stored.
    pub nlink: u32,
    location: Location,
}

/// Where an inode's content is.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Location {
    None,
    File {
        blocks_start: u64,
        /// Shared: the names of a hard-linked file share one decoded list.
        words: Arc<[u32]>,
        fragment: Option<(u32, u32)>,
    },
    Dir {
        /// Absolute offset of the listing's first metadata block.
        block: u64,
        offset: u16,
        /// Listing bytes (file_size − 3).
        len: u32,
        index: Vec<(u32, u32, Vec<u8>)>,
    },
}

impl ReadEntry {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind.is_dir()
    }
}

/// A directory's entries: (name, entry), in name order.
pub type Listing = Vec<(Vec<u8>, ReadEntry)>;

/// The directories a walk has entered, by inode number, with the path each was first met at:
/// squashfs has no hard-linked directories, so meeting one again means the image loops (an
/// entry pointing back at an ancestor) or shares a directory between two names.
#[derive(Default)]
struct Visited {
    seen: HashMap<u32, EntryPath>,
}

impl Visited {
    /// Enters directory `dir` at `path`, `depth` levels below where the walk started.
    fn enter(
        &mut self,
        r: &SquashfsReader,
        path: &EntryPath,
        dir: &ReadEntry,
        depth: usize,
    ) -> Result<()> {
        if depth >= MAX_DEPTH {
            return Err(r.bad(SquashfsProblem::TooDeep {
                path: path.clone(),
                max: MAX_DEPTH,
            }));
        }
        if let Some(first) = self.seen.get(&dir.inode_number) {
            let problem = if path.starts_with(first) {
                SquashfsProblem::DirectoryLoop {
                    path: path.clone(),
                    ancestor: first.clone(),
                }
            } else {
                SquashfsProblem::DirectoryReachedTwice {
                    first: first.clone(),
                    again: path.clone(),
                }
            };
            return Err(r.bad(problem));
        }
        self.seen.insert(dir.inode_number, path.clone());
        Ok(())
    }
}

/// Where a file's content is stored (for [`debug`](super::debug)).
pub(crate) struct FileLayout<'a> {
    /// Offset of the first data block.
    pub blocks_start: u64,
    /// One size word per data block.
    pub words: &'a [u32],
    /// Fragment (index, offset) of the tail.
    pub fragment: Option<(u32, u32)>,
}

/// What an inode holds after its header.
struct InodeBody {
    kind: EntryKind,
    nlink: u32,
    location: Location,
    xattr: u32,
}

/// A decompressed metadata block and the position of the next one.
struct MetaBlock {
    data: Vec<u8>,
    next: u64,
}

/// A position in a metadata stream: absolute block offset + offset in the block.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    block: u64,
    offset: usize,
    /// End of the table the stream belongs to.
    end: u64,
}

/// An open squashfs image.
pub struct SquashfsReader {
    path: PathBuf,
    file: File,
    sb: Superblock,
    ids: Vec<u32>,
    /// End of the directory table (start of whatever follows it).
    dir_end: u64,
    /// Start of the xattr key/value data and of its table header, when present.
    xattr: Option<(u64, u32)>,
    cache: RefCell<HashMap<u64, Rc<MetaBlock>>>,
    fragment_cache: RefCell<Option<(u32, Rc<Vec<u8>>)>>,
    /// Inodes with several names, by reference: a hard-linked file's block list is decoded
    /// once, not once per name.
    linked: RefCell<HashMap<u64, ReadEntry>>,
    budget: Budget,
}

/// What reading the metadata may still cost (see the module doc).
#[derive(Debug)]
struct Budget {
    /// Metadata blocks that may still be decompressed.
    blocks: Cell<u64>,
    /// Bytes of decoded metadata that may still be handed out.
    bytes: Cell<u64>,
    /// The two limits as set, for the error message.
    limits: Cell<(u64, u64)>,
}

impl Budget {
    fn unlimited() -> Budget {
        Budget {
            blocks: Cell::new(u64::MAX),
            bytes: Cell::new(u64::MAX),
            limits: Cell::new((u64::MAX, u64::MAX)),
        }
    }

    /// Sets the limits for tables of `blocks` metadata blocks.
    fn set_for(&self, blocks: u64) {
        let max_blocks = blocks
            .saturating_mul(BLOCK_BUDGET_FACTOR)
            .saturating_add(CACHE_BLOCKS as u64);
        let max_bytes = blocks
            .saturating_mul(METADATA_SIZE as u64)
            .saturating_mul(BYTE_BUDGET_FACTOR)
            .saturating_add(BYTE_BUDGET_SLACK);
        self.blocks.set(max_blocks);
        self.bytes.set(max_bytes);
        self.limits.set((max_blocks, max_bytes));
    }

    /// Takes `n` from `cell`; `false` when it has run out.
    fn take(cell: &Cell<u64>, n: u64) -> bool {
        match cell.get().checked_sub(n) {
            Some(left) => {
                cell.set(left);
                true
            }
            None => false,
        }
    }
}

impl std::fmt::Debug for SquashfsReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SquashfsReader")
            .field("path", &self.path)
            .field("superblock", &self.sb)
            .finish()
    }
}

impl SquashfsReader {
    /// Opens `path` and checks its superblock and id table.
    pub fn open(path: &Path) -> Result<SquashfsReader> {
        let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("stat", path, e))?
            .len();
        let mut head = [0u8; SUPERBLOCK_SIZE];
        let mut reader = SquashfsReader {
            path: path.to_path_buf(),
            file,
            sb: Superblock::default(),
            ids: Vec::new(),
            dir_end: 0,
            xattr: None,
            cache: RefCell::new(HashMap::new()),
            fragment_cache: RefCell::new(None),
            linked: RefCell::new(HashMap::new()),
            budget: Budget::unlimited(),
        };
        if len < SUPERBLOCK_SIZE as u64 {
            return Err(reader.bad(SquashfsProblem::Truncated {
                what: "a superblock",
            }));
        }
        reader.read_at(0, &mut head)?;
        let sb = Superblock::parse(&head).ok_or_else(|| {
            reader.bad(SquashfsProblem::Truncated {
                what: "a superblock",
            })
        })?;
        reader.check_superblock(&sb, len)?;
        reader.sb = sb;
        reader.load_tables()?;
        Ok(reader)
    }

    fn bad(&self, problem: SquashfsProblem) -> Error {
        Error::BadSquashfs {
            path: self.path.clone(),
            problem,
        }
    }

    /// The error for a defect of the stored block `block`.
    fn bad_block(&self, block: SquashfsBlock, problem: BlockProblem) -> Error {
        self.bad(SquashfsProblem::BadBlock { block, problem })
    }

    /// The error for a reference outside the table it must point into.
    fn outside(&self, what: &'static str, table: SquashfsTable) -> Error {
        self.bad(SquashfsProblem::OutsideTable { what, table })
    }

    /// The error for a length or count read from the image that is out of range.
    fn bad_length(&self, what: &'static str, len: u64) -> Error {
        self.bad(SquashfsProblem::BadLength { what, len })
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > self.sb.bytes_used.max(SUPERBLOCK_SIZE as u64)) {
            return Err(self.bad(SquashfsProblem::ReadPastEnd {
                offset,
                len: buf.len() as u64,
                bytes_used: self.sb.bytes_used,
            }));
        }
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                self.bad(SquashfsProblem::FileTruncated)
            } else {
                Error::io("read", &self.path, e)
            }
        })
    }

    fn check_superblock(&mut self, sb: &Superblock, len: u64) -> Result<()> {
        if sb.magic != MAGIC {
            return Err(self.bad(SquashfsProblem::BadMagic));
        }
        if (sb.version_major, sb.version_minor) != (VERSION_MAJOR, VERSION_MINOR) {
            return Err(self.bad(SquashfsProblem::UnsupportedVersion {
                major: sb.version_major,
                minor: sb.version_minor,
            }));
        }
        if !sb.block_size.is_power_of_two()
            || !(BlockSize::MIN..=BlockSize::MAX).contains(&sb.block_size)
            || u32::from(sb.block_log) != sb.block_size.trailing_zeros()
        {
            return Err(self.bad(SquashfsProblem::BadBlockSize {
                size: sb.block_size,
                log: sb.block_log,
            }));
        }
        if !matches!(
            sb.compression,
            compression_id::GZIP | compression_id::XZ | compression_id::LZ4 | compression_id::ZSTD
        ) {
            return Err(self.bad(SquashfsProblem::UnsupportedCompressor { id: sb.compression }));
        }
        // Reads are bounded by bytes_used; set it first so the checks below can use read_at.
        self.sb.bytes_used = sb.bytes_used;
        if sb.bytes_used > len || sb.bytes_used < SUPERBLOCK_SIZE as u64 {
            return Err(self.bad(SquashfsProblem::BytesUsedOutsideFile {
                bytes_used: sb.bytes_used,
                file_len: len,
            }));
        }
        if !(sb.inode_table < sb.dir_table && sb.dir_table <= sb.bytes_used) {
            return Err(self.bad(SquashfsProblem::TablesOutOfOrder));
        }
        let root = MetaRef::unpack(sb.root_inode);
        if usize::from(root.offset) >= METADATA_SIZE || root.block >= sb.dir_table - sb.inode_table
        {
            return Err(self.outside("root inode reference", SquashfsTable::Inode));
        }
        if sb.id_count == 0 {
            return Err(self.bad(SquashfsProblem::NoIds));
        }
        Ok(())
    }

    /// Reads the id table and finds where the directory table ends.
    fn load_tables(&mut self) -> Result<()> {
        let sb = self.sb.clone();
        let count = usize::from(sb.id_count);
        let bytes = self.lookup_table(sb.id_table, count * 4, SquashfsTable::Id)?;
        self.ids = bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // The directory table ends where the first table after it starts.
        let mut ends = vec![sb.id_table, sb.bytes_used];
        let first_block = |r: &SquashfsReader, list: u64| -> Result<u64> {
            let mut b = [0u8; 8];
            r.read_at(list, &mut b)?;
            Ok(u64::from_le_bytes(b))
        };
        ends.push(first_block(self, sb.id_table)?);
        if sb.frag_count > 0 && sb.frag_table != NO_TABLE {
            ends.push(sb.frag_table);
            ends.push(first_block(self, sb.frag_table)?);
        } else if sb.frag_table != NO_TABLE {
            ends.push(sb.frag_table);
        }
        if sb.export_table != NO_TABLE {
            ends.push(sb.export_table);
            ends.push(first_block(self, sb.export_table)?);
        }
        if sb.xattr_table != NO_TABLE {
            let mut h = [0u8; 16];
            self.read_at(sb.xattr_table, &mut h)?;
            let mut r = LeReader::new(&h);
            let kv_start = r.u64().unwrap_or(0);
            let ids = r.u32().unwrap_or(0);
            if kv_start >= sb.xattr_table || ids == 0 {
                return Err(self.bad(SquashfsProblem::BadXattrHeader));
            }
            self.xattr = Some((kv_start, ids));
            ends.push(kv_start);
        }
        self.dir_end = ends
            .into_iter()
            .filter(|&e| e >= sb.dir_table)
            .min()
            .unwrap_or(sb.bytes_used);
        let blocks = self.count_meta_blocks(sb.inode_table, self.dir_end)?;
        self.budget.set_for(blocks);
        Ok(())
    }

    /// Counts the metadata blocks from `start` to `end` by following their headers (nothing
    /// is decompressed). A header that is not a block's stops the count: the blocks past it
    /// cannot be read either.
    fn count_meta_blocks(&self, start: u64, end: u64) -> Result<u64> {
        let io_err = |e| Error::io("read", &self.path, e);
        let mut file = BufReader::with_capacity(1 << 16, &self.file);
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        let (mut at, mut blocks) = (start, 0u64);
        let mut h = [0u8; 2];
        while at.saturating_add(2) <= end && file.read_exact(&mut h).is_ok() {
            let len = u16::from_le_bytes(h) & !METADATA_RAW;
            if len == 0 || usize::from(len) > METADATA_SIZE {
                break;
            }
            blocks += 1;
            at += 2 + u64::from(len);
            file.seek_relative(i64::from(len)).map_err(io_err)?;
        }
        Ok(blocks)
    }

    /// The error for an image whose metadata costs more than its own size allows.
    fn over_budget(&self) -> Error {
        let (blocks, bytes) = self.budget.limits.get();
        self.bad(SquashfsProblem::OverBudget { blocks, bytes })
    }

    /// Reads `bytes` bytes of a lookup table whose location list is at `list`.
    fn lookup_table(&self, list: u64, bytes: usize, table: SquashfsTable) -> Result<Vec<u8>> {
        let blocks = bytes.div_ceil(METADATA_SIZE);
        let mut raw = vec![0u8; blocks * 8];
        self.read_at(list, &mut raw)?;
        let mut out = Vec::with_capacity(bytes);
        for loc in raw.chunks_exact(8) {
            let at = u64::from_le_bytes([
                loc[0], loc[1], loc[2], loc[3], loc[4], loc[5], loc[6], loc[7],
            ]);
            if at >= list {
                return Err(self.bad(SquashfsProblem::TableBlockPastList { table }));
            }
            out.extend_from_slice(&self.meta_block(at, list)?.data);
        }
        if out.len() < bytes {
            return Err(self.bad(SquashfsProblem::TableTooShort { table }));
        }
        out.truncate(bytes);
        Ok(out)
    }

    /// Decompresses (or takes from the cache) the metadata block at `at`, which must end
    /// before `end`.
    fn meta_block(&self, at: u64, end: u64) -> Result<Rc<MetaBlock>> {
        if let Some(b) = self.cache.borrow().get(&at) {
            return Ok(Rc::clone(b));
        }
        let mut h = [0u8; 2];
        if at.checked_add(2).is_none_or(|e| e > end) {
            return Err(self.bad_block(SquashfsBlock::Metadata { at }, BlockProblem::OutsideTable));
        }
        if !Budget::take(&self.budget.blocks, 1) {
            return Err(self.over_budget());
        }
        self.read_at(at, &mut h)?;
        let header = u16::from_le_bytes(h);
        let len = usize::from(header & !METADATA_RAW);
        if len == 0 || len > METADATA_SIZE || at + 2 + len as u64 > end {
            return Err(self.bad_block(
                SquashfsBlock::Metadata { at },
                BlockProblem::StoredLength { len: len as u64 },
            ));
        }
        let mut payload = vec![0u8; len];
        self.read_at(at + 2, &mut payload)?;
        let data = if header & METADATA_RAW != 0 {
            payload
        } else {
            let mut out = Vec::new();
            compressor::decompress(self.sb.compression, &payload, &mut out, METADATA_SIZE)
                .map_err(|p| self.bad_block(SquashfsBlock::Metadata { at }, p))?;
            out
        };
        let block = Rc::new(MetaBlock {
            data,
            next: at + 2 + len as u64,
        });
        let mut cache = self.cache.borrow_mut();
        if cache.len() >= CACHE_BLOCKS {
            cache.clear();
        }
        cache.insert(at, Rc::clone(&block));
        Ok(block)
    }

    /// Reads `out.len()` bytes of a metadata stream at `cur`, advancing it.
    fn meta_read(&self, cur: &mut Cursor, out: &mut [u8]) -> Result<()> {
        let mut done = 0;
        while done < out.len() {
            let block = self.meta_block(cur.block, cur.end)?;
            if cur.offset >= block.data.len() {
                if cur.offset > block.data.len() || block.data.len() < METADATA_SIZE {
                    return Err(self.bad_block(
                        SquashfsBlock::Metadata { at: cur.block },
                        BlockProblem::PastStreamEnd,
                    ));
                }
                cur.block = block.next;
                cur.offset = 0;
                continue;
            }
            let n = (block.data.len() - cur.offset).min(out.len() - done);
            if !Budget::take(&self.budget.bytes, n as u64) {
                return Err(self.over_budget());
            }
            out[done..done + n].copy_from_slice(&block.data[cur.offset..cur.offset + n]);
            done += n;
            cur.offset += n;
        }
        Ok(())
    }

    fn meta_vec(&self, cur: &mut Cursor, n: usize) -> Result<Vec<u8>> {
        let mut v = vec![0u8; n];
        self.meta_read(cur, &mut v)?;
        Ok(v)
    }

    fn meta_u16(&self, cur: &mut Cursor) -> Result<u16> {
        let mut b = [0u8; 2];
        self.meta_read(cur, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    fn meta_u32(&self, cur: &mut Cursor) -> Result<u32> {
        let mut b = [0u8; 4];
        self.meta_read(cur, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn meta_u64(&self, cur: &mut Cursor) -> Result<u64> {
        let mut b = [0u8; 8];
        self.meta_read(cur, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    /// The superblock.
    pub fn superblock(&self) -> &Superblock {
        &self.sb
    }

    /// The compressor options block's payload, if the image has one.
    pub fn compressor_options(&self) -> Result<Option<Vec<u8>>> {
        if self.sb.flags & flags::COMP_OPT == 0 {
            return Ok(None);
        }
        let at = SUPERBLOCK_SIZE as u64;
        let mut h = [0u8; 2];
        self.read_at(at, &mut h)?;
        let header = u16::from_le_bytes(h);
        let len = usize::from(header & !METADATA_RAW);
        if header & METADATA_RAW == 0 || len > 64 {
            return Err(self.bad(SquashfsProblem::BadCompressorOptions));
        }
        let mut v = vec![0u8; len];
        self.read_at(at + 2, &mut v)?;
        Ok(Some(v))
    }

    /// The fragment table entry `index`: (start, size word).
    pub fn fragment_entry(&self, index: u32) -> Result<(u64, u32)> {
        if index >= self.sb.frag_count {
            return Err(self.bad(SquashfsProblem::IndexOutOfRange {
                table: SquashfsTable::Fragment,
                index,
                count: self.sb.frag_count,
            }));
        }
        let table = self.sb.frag_table;
        let byte = u64::from(index) * FragmentEntry::SIZE as u64;
        let mut loc = [0u8; 8];
        self.read_at(table + byte / METADATA_SIZE as u64 * 8, &mut loc)?;
        let block = u64::from_le_bytes(loc);
        if block >= table {
            return Err(self.bad(SquashfsProblem::TableBlockPastList {
                table: SquashfsTable::Fragment,
            }));
        }
        let mut cur = Cursor {
            block,
            offset: (byte % METADATA_SIZE as u64) as usize,
            end: table,
        };
        let start = self.meta_u64(&mut cur)?;
        let word = self.meta_u32(&mut cur)?;
        Ok((start, word))
    }

    /// The id table (uids and gids by index).
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }

    /// The root directory.
    pub fn root(&self) -> Result<ReadEntry> {
        self.inode(self.sb.root_inode)
    }

    fn id(&self, idx: u16) -> Result<u32> {
        self.ids.get(usize::from(idx)).copied().ok_or_else(|| {
            self.bad(SquashfsProblem::IndexOutOfRange {
                table: SquashfsTable::Id,
                index: u32::from(idx),
                count: self.ids.len() as u32,
            })
        })
    }

    /// Reads the inode at the packed reference `r` (an inode with several names from the
    /// cache, its variable parts charged to the budget again since every copy costs memory).
    fn inode(&self, r: u64) -> Result<ReadEntry> {
        if let Some(e) = self.linked.borrow().get(&r) {
            let xattrs: usize = e
                .meta
                .xattrs
                .iter()
                .map(|x| x.name.len() + x.value.len())
                .sum();
            let regions = match &e.kind {
                EntryKind::File {
                    sparse: Some(r), ..
                } => r.len() * 16,
                _ => 0,
            };
            if !Budget::take(&self.budget.bytes, (xattrs + regions) as u64) {
                return Err(self.over_budget());
            }
            return Ok(e.clone());
        }
        let e = self.decode_inode(r)?;
        if e.nlink > 1 && !e.is_dir() {
            let mut linked = self.linked.borrow_mut();
            if linked.len() >= LINKED_INODES {
                linked.clear();
            }
            linked.insert(r, e.clone());
        }
        Ok(e)
    }

    /// Decodes the inode at the packed reference `r`.
    fn decode_inode(&self, r: u64) -> Result<ReadEntry> {
        let at = MetaRef::unpack(r);
        if usize::from(at.offset) >= METADATA_SIZE {
            return Err(self.outside("inode reference", SquashfsTable::Inode));
        }
        let block = self
            .sb
            .inode_table
            .checked_add(at.block)
            .filter(|&b| b < self.sb.dir_table)
            .ok_or_else(|| self.outside("inode reference", SquashfsTable::Inode))?;
        let mut cur = Cursor {
            block,
            offset: usize::from(at.offset),
            end: self.sb.dir_table,
        };
        let c = &mut cur;
        let mut head = [0u8; InodeHeader::SIZE];
        self.meta_read(c, &mut head)?;
        let h = InodeHeader::parse(&mut LeReader::new(&head)).ok_or_else(|| {
            self.bad(SquashfsProblem::Truncated {
                what: "an inode header",
            })
        })?;
        let (itype, mtime, inode_number) = (h.inode_type, h.mtime, h.inode_number);
        let mode = u32::from(h.permissions & 0o7777);
        let uid = self.id(h.uid_idx)?;
        let gid = self.id(h.gid_idx)?;
        if inode_number == 0 || inode_number > self.sb.inode_count {
            return Err(self.bad(SquashfsProblem::InodeNumberOutOfRange {
                inode: inode_number,
            }));
        }
        let body = match itype {
            t if t == inode_type::DIR || t == inode_type::DIR + inode_type::EXTENDED => {
                self.dir_body(c, t, inode_number)?
            }
            t if t == inode_type::FILE || t == inode_type::FILE + inode_type::EXTENDED => {
                self.file_body(c, t, inode_number)?
            }
            t if t == inode_type::SYMLINK || t == inode_type::SYMLINK + inode_type::EXTENDED => {
                self.symlink_body(c, t)?
            }
            t if (inode_type::BLOCK_DEV..=inode_type::SOCKET).contains(&t)
                || (inode_type::BLOCK_DEV + inode_type::EXTENDED
                    ..=inode_type::SOCKET + inode_type::EXTENDED)
                    .contains(&t) =>
            {
                self.special_body(c, t)?
            }
            kind => return Err(self.bad(SquashfsProblem::UnknownInodeType { kind })),
        };
        let InodeBody {
            kind,
            nlink,
            location,
            xattr,
        } = body;
        let xattrs = if xattr == NO_XATTR {
            Vec::new()
        } else {
            self.xattrs(xattr)?
        };
        Ok(ReadEntry {
            kind,
            meta: Metadata {
                mode,
                uid,
                gid,
                mtime: i64::from(mtime),
                mtime_nsec: 0,
                xattrs,
            },
            inode_number,
            nlink,
            location,
        })
    }

    /// The rest of a directory inode (basic or extended) after its header.
    fn dir_body(&self, c: &mut Cursor, t: u16, inode_number: u32) -> Result<InodeBody> {
        let mut xattr = NO_XATTR;
        let (block, nlink, size, offset, index);
        if t == inode_type::DIR {
            block = self.meta_u32(c)?;
            nlink = self.meta_u32(c)?;
            size = u32::from(self.meta_u16(c)?);
            offset = self.meta_u16(c)?;
            let _parent = self.meta_u32(c)?;
            index = Vec::new();
        } else {
            nlink = self.meta_u32(c)?;
            size = self.meta_u32(c)?;
            block = self.meta_u32(c)?;
            let _parent = self.meta_u32(c)?;
            let count = self.meta_u16(c)?;
            offset = self.meta_u16(c)?;
            xattr = self.meta_u32(c)?;
            let mut v = Vec::new();
            for _ in 0..count {
                let index = self.meta_u32(c)?;
                let start = self.meta_u32(c)?;
                let n = self.meta_u32(c)? as usize + 1;
                if n > NAME_LEN_MAX {
                    return Err(self.bad(SquashfsProblem::NameTooLong { len: n }));
                }
                v.push((index, start, self.meta_vec(c, n)?));
            }
            index = v;
        }
        if size < 3 || usize::from(offset) >= METADATA_SIZE {
            return Err(self.bad(SquashfsProblem::BadDirectoryInode {
                inode: inode_number,
            }));
        }
        let block = self
            .sb
            .dir_table
            .checked_add(u64::from(block))
            .filter(|&b| size == 3 || b < self.dir_end)
            .ok_or_else(|| self.outside("directory listing", SquashfsTable::Directory))?;
        let location = Location::Dir {
            block,
            offset,
            len: size - 3,
            index,
        };
        Ok(InodeBody {
            kind: EntryKind::Dir,
            nlink,
            location,
            xattr,
        })
    }

    /// The rest of a regular file inode (basic or extended) after its header.
    fn file_body(&self, c: &mut Cursor, t: u16, inode_number: u32) -> Result<InodeBody> {
        let mut xattr = NO_XATTR;
        let bs = u64::from(self.sb.block_size);
        let (blocks_start, size, fragment, frag_offset, nlink);
        if t == inode_type::FILE {
            blocks_start = u64::from(self.meta_u32(c)?);
            fragment = self.meta_u32(c)?;
            frag_offset = self.meta_u32(c)?;
            size = u64::from(self.meta_u32(c)?);
            nlink = 1;
        } else {
            blocks_start = self.meta_u64(c)?;
            size = self.meta_u64(c)?;
            let _sparse = self.meta_u64(c)?;
            nlink = self.meta_u32(c)?;
            fragment = self.meta_u32(c)?;
            frag_offset = self.meta_u32(c)?;
            xattr = self.meta_u32(c)?;
        }
        let has_fragment = fragment != NO_FRAGMENT;
        let count = if has_fragment {
            size / bs
        } else {
            size.div_ceil(bs)
        };
        if has_fragment && size % bs == 0 {
            return Err(self.bad(SquashfsProblem::FragmentOnFullBlocks));
        }
        // Each block needs at least a word in the inode table: no list longer than the table
        // could hold is believed.
        let table = self.sb.dir_table - self.sb.inode_table;
        if count > table.saturating_mul(METADATA_SIZE as u64) / 4 {
            return Err(self.bad(SquashfsProblem::TooManyBlocks {
                inode: inode_number,
                blocks: count,
            }));
        }
        let raw = self.bounded_meta_vec(c, count as usize * 4)?;
        let words: Vec<u32> = raw
            .chunks_exact(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let sparse = data_regions(&words, size, bs);
        let location = Location::File {
            blocks_start,
            words: words.into(),
            fragment: has_fragment.then_some((fragment, frag_offset)),
        };
        Ok(InodeBody {
            kind: EntryKind::File { size, sparse },
            nlink,
            location,
            xattr,
        })
    }

    /// The rest of a symlink inode (basic or extended) after its header.
    fn symlink_body(&self, c: &mut Cursor, t: u16) -> Result<InodeBody> {
        let nlink = self.meta_u32(c)?;
        let n = self.meta_u32(c)? as usize;
        if n == 0 || n > SYMLINK_MAX {
            return Err(self.bad_length("symlink target length", n as u64));
        }
        let target = self.meta_vec(c, n)?;
        let xattr = if t != inode_type::SYMLINK {
            self.meta_u32(c)?
        } else {
            NO_XATTR
        };
        Ok(InodeBody {
            kind: EntryKind::Symlink { target },
            nlink,
            location: Location::None,
            xattr,
        })
    }

    /// The rest of a device, FIFO or socket inode (basic or extended) after its header.
    fn special_body(&self, c: &mut Cursor, t: u16) -> Result<InodeBody> {
        let extended = t > inode_type::EXTENDED;
        let basic = if extended {
            t - inode_type::EXTENDED
        } else {
            t
        };
        let nlink = self.meta_u32(c)?;
        let dev = if basic == inode_type::BLOCK_DEV || basic == inode_type::CHAR_DEV {
            Some(decode_dev(self.meta_u32(c)?))
        } else {
            None
        };
        let xattr = if extended {
            self.meta_u32(c)?
        } else {
            NO_XATTR
        };
        let kind = match (basic, dev) {
            (b, Some((major, minor))) if b == inode_type::BLOCK_DEV => {
                EntryKind::BlockDevice { major, minor }
            }
            (_, Some((major, minor))) => EntryKind::CharDevice { major, minor },
            (b, None) if b == inode_type::FIFO => EntryKind::Fifo,
            (_, None) => EntryKind::Socket,
        };
        Ok(InodeBody {
            kind,
            nlink,
            location: Location::None,
            xattr,
        })
    }

    /// The extended attributes of xattr id `id`.
    fn xattrs(&self, id: u32) -> Result<Vec<Xattr>> {
        let Some((kv_start, count)) = self.xattr else {
            return Err(self.bad(SquashfsProblem::IndexOutOfRange {
                table: SquashfsTable::Xattr,
                index: id,
                count: 0,
            }));
        };
        if id >= count {
            return Err(self.bad(SquashfsProblem::IndexOutOfRange {
                table: SquashfsTable::Xattr,
                index: id,
                count,
            }));
        }
        let table = self.sb.xattr_table;
        // The id record: locate its metadata block through the location list after the header.
        let byte = u64::from(id) * 16;
        let mut loc = [0u8; 8];
        self.read_at(table + 16 + byte / METADATA_SIZE as u64 * 8, &mut loc)?;
        let block = u64::from_le_bytes(loc);
        if block >= table || block < kv_start {
            return Err(self.outside("xattr id block", SquashfsTable::Xattr));
        }
        let mut cur = Cursor {
            block,
            offset: (byte % METADATA_SIZE as u64) as usize,
            end: table,
        };
        let kv_ref = MetaRef::unpack(self.meta_u64(&mut cur)?);
        let n = self.meta_u32(&mut cur)?;
        if n > 65536 {
            return Err(self.bad_length("xattr set size", u64::from(n)));
        }
        let mut cur = Cursor {
            block: kv_start
                .checked_add(kv_ref.block)
                .filter(|&b| b < table)
                .ok_or_else(|| self.outside("xattr reference", SquashfsTable::Xattr))?,
            offset: usize::from(kv_ref.offset),
            end: table,
        };
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let ty = self.meta_u16(&mut cur)?;
            let name_len = usize::from(self.meta_u16(&mut cur)?);
            let suffix = self.meta_vec(&mut cur, name_len)?;
            let prefix: &[u8] = match ty & 0xff {
                xattr_prefix::USER => b"user.",
                xattr_prefix::TRUSTED => b"trusted.",
                xattr_prefix::SECURITY => b"security.",
                prefix => return Err(self.bad(SquashfsProblem::UnknownXattrPrefix { prefix })),
            };
            let vlen = self.meta_u32(&mut cur)? as usize;
            let value = if ty & xattr_prefix::OUT_OF_LINE != 0 {
                if vlen != 8 {
                    return Err(self.bad_length("out-of-line xattr reference length", vlen as u64));
                }
                let r = MetaRef::unpack(self.meta_u64(&mut cur)?);
                let mut vcur = Cursor {
                    block: kv_start
                        .checked_add(r.block)
                        .filter(|&b| b < table)
                        .ok_or_else(|| {
                            self.outside("xattr value reference", SquashfsTable::Xattr)
                        })?,
                    offset: usize::from(r.offset),
                    end: table,
                };
                let len = self.meta_u32(&mut vcur)? as usize;
                self.bounded_meta_vec(&mut vcur, len)?
            } else {
                self.bounded_meta_vec(&mut cur, vlen)?
            };
            let mut name = prefix.to_vec();
            name.extend_from_slice(&suffix);
            out.push(Xattr { name, value });
        }
        out.sort();
        Ok(out)
    }

    /// Reads `n` bytes of metadata, refusing lengths the table cannot hold.
    fn bounded_meta_vec(&self, cur: &mut Cursor, n: usize) -> Result<Vec<u8>> {
        let room = cur
            .end
            .saturating_sub(cur.block)
            .saturating_mul(METADATA_SIZE as u64);
        if n as u64 > room {
            return Err(self.bad_length("value length", n as u64));
        }
        self.meta_vec(cur, n)
    }

    /// The entries of directory `dir`, in on-disk (name) order.
    pub fn read_dir(&self, dir: &ReadEntry) -> Result<Listing> {
        let mut out = Vec::new();
        self.scan_dir(dir, 0, |name, r| {
            out.push((name.to_vec(), r));
            Ok(true)
        })?;
        let mut entries = Vec::with_capacity(out.len());
        for (name, r) in out {
            let e = self.inode(r)?;
            entries.push((name, e));
        }
        Ok(entries)
    }

    /// Calls `f(name, inode ref)` for each entry of `dir` from listing byte `from` (a header
    /// position) on, until `f` returns `false` or the listing ends.
    fn scan_dir(
        &self,
        dir: &ReadEntry,
        from: u32,
        mut f: impl FnMut(&[u8], u64) -> Result<bool>,
    ) -> Result<()> {
        let Location::Dir {
            block,
            offset,
            len,
            ref index,
        } = dir.location
        else {
            return Err(self.bad(SquashfsProblem::WrongKind {
                what: "the entry",
                expected: "directory",
            }));
        };
        let _ = index;
        let (mut cur, mut pos) = (
            Cursor {
                block,
                offset: usize::from(offset),
                end: self.dir_end,
            },
            0u32,
        );
        if from > 0 {
            cur = self.dir_cursor_at(dir, from)?;
            pos = from;
        }
        let mut prev: Option<Vec<u8>> = None;
        while pos < len {
            let count = self.meta_u32(&mut cur)? as usize + 1;
            let start = self.meta_u32(&mut cur)?;
            let base = self.meta_u32(&mut cur)?;
            pos = pos.saturating_add(12);
            if count > DIR_HEADER_MAX {
                return Err(self.bad_length("directory header entry count", count as u64));
            }
            for _ in 0..count {
                let off = self.meta_u16(&mut cur)?;
                let _delta = self.meta_u16(&mut cur)?;
                let _ty = self.meta_u16(&mut cur)?;
                let n = usize::from(self.meta_u16(&mut cur)?) + 1;
                if n > NAME_MAX {
                    return Err(self.bad(SquashfsProblem::NameTooLong { len: n }));
                }
                let name = self.meta_vec(&mut cur, n)?;
                pos = pos.saturating_add(8 + n as u32);
                if pos > len {
                    return Err(self.bad(SquashfsProblem::ListingOverrun));
                }
                if name.contains(&b'/') || name.contains(&0) || name == b"." || name == b".." {
                    return Err(self.bad(SquashfsProblem::InvalidName {
                        name: shown_name(&name),
                    }));
                }
                if prev.as_ref().is_some_and(|p| *p >= name) {
                    return Err(self.bad(SquashfsProblem::DirectoryNotSorted));
                }
                let _ = base;
                let r = MetaRef {
                    block: u64::from(start),
                    offset: off,
                }
                .packed();
                if !f(&name, r)? {
                    return Ok(());
                }
                prev = Some(name);
            }
        }
        Ok(())
    }

    /// A cursor at listing byte `from` of `dir`, through the index arithmetic the kernel uses.
    fn dir_cursor_at(&self, dir: &ReadEntry, from: u32) -> Result<Cursor> {
        let Location::Dir { offset, index, .. } = &dir.location else {
            return Err(self.bad(SquashfsProblem::WrongKind {
                what: "the entry",
                expected: "directory",
            }));
        };
        let (_, start, _) = index
            .iter()
            .find(|(i, _, _)| *i == from)
            .ok_or_else(|| self.bad(SquashfsProblem::IndexEntryMissing))?;
        Ok(Cursor {
            block: self
                .sb
                .dir_table
                .checked_add(u64::from(*start))
                .filter(|&b| b < self.dir_end)
                .ok_or_else(|| self.outside("directory index", SquashfsTable::Directory))?,
            offset: ((from as usize) + usize::from(*offset)) % METADATA_SIZE,
            end: self.dir_end,
        })
    }

    /// Finds `name` in `dir` as the kernel does: skip through the directory index to the
    /// last indexed header whose first name is not after `name`, then scan in order.
    pub fn find(&self, dir: &ReadEntry, name: &[u8]) -> Result<Option<ReadEntry>> {
        let Location::Dir { index, .. } = &dir.location else {
            return Ok(None);
        };
        let from = index
            .iter()
            .take_while(|(_, _, first)| first.as_slice() <= name)
            .last()
            .map_or(0, |(i, _, _)| *i);
        let mut found = None;
        self.scan_dir(dir, from, |n, r| {
            if n == name {
                found = Some(r);
                return Ok(false);
            }
            Ok(n < name)
        })?;
        found.map(|r| self.inode(r)).transpose()
    }

    /// The entry at `path` (the root for the empty path), or `None` if there is none.
    pub fn lookup(&self, path: &EntryPath) -> Result<Option<ReadEntry>> {
        let mut at = self.root()?;
        for comp in path.components() {
            if !at.is_dir() {
                return Ok(None);
            }
            match self.find(&at, comp)? {
                Some(e) => at = e,
                None => return Ok(None),
            }
        }
        Ok(Some(at))
    }

    /// Visits every entry depth first, in name order, the root (empty path) first. A
    /// directory reached twice (a cycle or a hard-linked directory) is an error.
    pub fn walk(&self, mut f: impl FnMut(&EntryPath, &ReadEntry) -> Result<()>) -> Result<()> {
        let root = self.root()?;
        if !root.is_dir() {
            return Err(self.bad(SquashfsProblem::WrongKind {
                what: "the root inode",
                expected: "directory",
            }));
        }
        f(&EntryPath::root(), &root)?;
        let mut visited = Visited::default();
        visited.enter(self, &EntryPath::root(), &root, 0)?;
        // Each frame: the directory's path and its remaining entries (reversed).
        let mut stack: Vec<(EntryPath, Listing)> = Vec::new();
        let mut first = self.read_dir(&root)?;
        first.reverse();
        stack.push((EntryPath::root(), first));
        while let Some((dir_path, entries)) = stack.last_mut() {
            let Some((name, e)) = entries.pop() else {
                stack.pop();
                continue;
            };
            let path = self.join(dir_path, &name)?;
            f(&path, &e)?;
            if e.is_dir() {
                visited.enter(self, &path, &e, stack.len())?;
                let mut children = self.read_dir(&e)?;
                children.reverse();
                stack.push((path, children));
            }
        }
        Ok(())
    }

    /// Lists directory `dir` (at `path`) and every directory beneath it the way `ls -R` does:
    /// `f(path, listing)` for a directory, then for each of its subdirectories in name order,
    /// depth first. A directory reached twice is an error, as in [`walk`](Self::walk).
    pub fn walk_dirs(
        &self,
        path: &EntryPath,
        dir: &ReadEntry,
        mut f: impl FnMut(&EntryPath, &Listing) -> Result<()>,
    ) -> Result<()> {
        let mut visited = Visited::default();
        let mut pending = vec![(path.clone(), dir.clone(), path.depth())];
        while let Some((path, dir, depth)) = pending.pop() {
            visited.enter(self, &path, &dir, depth)?;
            let listing = self.read_dir(&dir)?;
            f(&path, &listing)?;
            for (name, e) in listing.into_iter().rev() {
                if e.is_dir() {
                    pending.push((self.join(&path, &name)?, e, depth + 1));
                }
            }
        }
        Ok(())
    }

    fn join(&self, dir: &EntryPath, name: &[u8]) -> Result<EntryPath> {
        dir.join(name).map_err(|_| {
            self.bad(SquashfsProblem::InvalidName {
                name: shown_name(name),
            })
        })
    }

    /// Writes the content of file `entry` to `out`; returns the number of bytes (its size).
    pub fn read_file(&self, entry: &ReadEntry, out: &mut dyn Write) -> Result<u64> {
        let (
            EntryKind::File { size, .. },
            Location::File {
                blocks_start,
                words,
                fragment,
            },
        ) = (&entry.kind, &entry.location)
        else {
            return Err(self.bad(SquashfsProblem::WrongKind {
                what: "the entry",
                expected: "regular file",
            }));
        };
        let size = *size;
        let bs = u64::from(self.sb.block_size);
        let write_err = |e: std::io::Error| Error::io("write the content of", &self.path, e);
        let mut pos = *blocks_start;
        let mut written = 0u64;
        let mut stored = Vec::new();
        let mut block = Vec::new();
        let zeros = vec![0u8; bs as usize];
        for &w in words.iter() {
            let want = bs.min(size - written) as usize;
            if w == 0 {
                out.write_all(&zeros[..want]).map_err(write_err)?;
            } else {
                let len = u64::from(w & (DATA_RAW - 1));
                let block_at = SquashfsBlock::Data { at: pos };
                if len > bs {
                    return Err(self.bad_block(block_at, BlockProblem::StoredLength { len }));
                }
                stored.resize(len as usize, 0);
                self.read_at(pos, &mut stored)?;
                pos += len;
                let data = if w & DATA_RAW != 0 {
                    &stored
                } else {
                    compressor::decompress(self.sb.compression, &stored, &mut block, bs as usize)
                        .map_err(|p| self.bad_block(block_at, p))?;
                    &block
                };
                if data.len() != want {
                    return Err(self.bad_block(
                        block_at,
                        BlockProblem::WrongSize {
                            found: data.len(),
                            expected: want,
                        },
                    ));
                }
                out.write_all(data).map_err(write_err)?;
            }
            written += want as u64;
        }
        if let Some((index, offset)) = *fragment {
            let tail = (size - written) as usize;
            let frag = self.fragment(index)?;
            let range = offset as usize..offset as usize + tail;
            let bytes = frag
                .get(range)
                .ok_or_else(|| self.bad(SquashfsProblem::FragmentTailOutside { index }))?;
            out.write_all(bytes).map_err(write_err)?;
            written += tail as u64;
        }
        if written != size {
            return Err(self.bad(SquashfsProblem::FileSizeMismatch));
        }
        Ok(written)
    }

    /// The uncompressed content of fragment block `index` (the last one is cached).
    fn fragment(&self, index: u32) -> Result<Rc<Vec<u8>>> {
        if let Some((i, data)) = &*self.fragment_cache.borrow() {
            if *i == index {
                return Ok(Rc::clone(data));
            }
        }
        let (start, word) = self.fragment_entry(index)?;
        let len = u64::from(word & (DATA_RAW - 1));
        if len == 0 || len > u64::from(self.sb.block_size) {
            return Err(self.bad_block(
                SquashfsBlock::Fragment { index },
                BlockProblem::StoredLength { len },
            ));
        }
        let mut stored = vec![0u8; len as usize];
        self.read_at(start, &mut stored)?;
        let data = if word & DATA_RAW != 0 {
            stored
        } else {
            let mut out = Vec::new();
            compressor::decompress(
                self.sb.compression,
                &stored,
                &mut out,
                self.sb.block_size as usize,
            )
            .map_err(|p| self.bad_block(SquashfsBlock::Fragment { index }, p))?;
            out
        };
        let data = Rc::new(data);
        *self.fragment_cache.borrow_mut() = Some((index, Rc::clone(&data)));
        Ok(data)
    }

    /// The superblock flags as names, for messages and [`debug`](super::debug).
    pub fn flag_names(&self) -> Vec<&'static str> {
        let names = [
            (flags::NOI, "NOI"),
            (flags::NOD, "NOD"),
            (flags::NOF, "NOF"),
            (flags::NO_FRAG, "NO_FRAGMENTS"),
            (flags::ALWAYS_FRAG, "ALWAYS_FRAGMENTS"),
            (flags::DUPLICATES, "DUPLICATES"),
            (flags::EXPORTABLE, "EXPORTABLE"),
            (flags::NOX, "NOX"),
            (flags::NO_XATTR, "NO_XATTRS"),
            (flags::COMP_OPT, "COMP_OPT"),
            (flags::NOID, "NOID"),
        ];
        names
            .iter()
            .filter(|(bit, _)| self.sb.flags & bit != 0)
            .map(|&(_, n)| n)
            .collect()
    }

    /// The storage details of a file: (blocks_start, size words, fragment (index, offset)),
    /// for [`debug`](super::debug).
    pub(crate) fn file_layout(entry: &ReadEntry) -> Option<FileLayout<'_>> {
        match &entry.location {
            Location::File {
                blocks_start,
                words,
                fragment,
            } => Some(FileLayout {
                blocks_start: *blocks_start,
                words,
                fragment: *fragment,
            }),
            _ => None,
        }
    }

    /// The listing size and index length of a directory, for [`debug`](super::debug).
    pub(crate) fn dir_layout(entry: &ReadEntry) -> Option<(u32, usize)> {
        match &entry.location {
            Location::Dir { len, index, .. } => Some((*len + 3, index.len())),
            _ => None,
        }
    }
}

/// The data regions `(offset, length)` of a file whose blocks include holes (`None` if none).
fn data_regions(words: &[u32], size: u64, bs: u64) -> Option<Vec<(u64, u64)>> {
    if !words.contains(&0) {
        return None;
    }
    let mut regions: Vec<(u64, u64)> = Vec::new();
    let mut add = |start: u64, len: u64| match regions.last_mut() {
        Some((s, l)) if *s + *l == start => *l += len,
        _ => regions.push((start, len)),
    };
    for (i, &w) in words.iter().enumerate() {
        let start = i as u64 * bs;
        if w != 0 {
            add(start, bs.min(size - start));
        }
    }
    let covered = words.len() as u64 * bs;
    if covered < size {
        add(covered, size - covered);
    }
    Some(regions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Jobs, SquashfsOptions};
    use crate::sink::Sink;
    use crate::squashfs::SquashfsSink;
    use crate::Entry;

    /// An image of `dirs` directories of `files` one-byte files each.
    fn image(dir: &Path, dirs: usize, files: usize) -> PathBuf {
        let path = dir.join("t.sqfs");
        let mut sink = SquashfsSink::create(
            &path,
            &SquashfsOptions::default(),
            Jobs::new(1).unwrap(),
            None,
        )
        .unwrap();
        for d in 0..dirs {
            for f in 0..files {
                let e = Entry {
                    path: EntryPath::new(format!("d{d}/f{f}").as_bytes()).unwrap(),
                    kind: EntryKind::File {
                        size: 1,
                        sparse: None,
                    },
                    meta: Metadata::default(),
                };
                sink.entry(&e, &mut &b"x"[..]).unwrap();
            }
        }
        Box::new(sink).finish().unwrap();
        path
    }

    #[test]
    fn the_budget_counts_the_tables_blocks_and_stops_a_walk_that_exceeds_it() {
        let tmp = tempfile::tempdir().unwrap();
        let path = image(tmp.path(), 40, 100);
        let r = SquashfsReader::open(&path).unwrap();
        let blocks = r.count_meta_blocks(r.sb.inode_table, r.dir_end).unwrap();
        // 4,040 inodes and listings: more than one 8 KiB block, fewer than one per directory.
        assert!((2..40).contains(&blocks), "{blocks} blocks");
        let (max_blocks, max_bytes) = r.budget.limits.get();
        assert_eq!(
            max_blocks,
            blocks * BLOCK_BUDGET_FACTOR + CACHE_BLOCKS as u64
        );
        assert_eq!(
            max_bytes,
            blocks * 8192 * BYTE_BUDGET_FACTOR + BYTE_BUDGET_SLACK
        );
        let mut n = 0;
        r.walk(|_, _| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1 + 40 + 4000);
        let used = max_bytes - r.budget.bytes.get();
        assert!(
            used < blocks * 8192,
            "a walk decodes less than the tables hold: {used}"
        );

        // The same walk with a budget of less than it needs stops with the error that says so.
        let r = SquashfsReader::open(&path).unwrap();
        r.budget.bytes.set(used / 2);
        let err = r.walk(|_, _| Ok(())).unwrap_err();
        assert!(
            err.to_string()
                .contains("more than the image's own tables hold"),
            "{err}"
        );
        let r = SquashfsReader::open(&path).unwrap();
        r.budget.blocks.set(1);
        r.cache.borrow_mut().clear();
        assert!(r.walk(|_, _| Ok(())).is_err());
    }

    #[test]
    fn data_regions_merge_adjacent_blocks_and_include_the_tail() {
        assert_eq!(data_regions(&[5, 5], 8000, 4096), None);
        assert_eq!(
            data_regions(&[5, 0, 5, 5], 4 * 4096 + 10, 4096),
            Some(vec![(0, 4096), (8192, 2 * 4096 + 10)])
        );
        assert_eq!(data_regions(&[0, 0], 8192, 4096), Some(vec![]));
    }
}
