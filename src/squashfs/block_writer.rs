//! Places compressed data blocks in the image, in order, and removes duplicate files.
//!
//! The block processor hands over each block of a file — in submission order, on the caller's
//! thread — as a hole, a raw block or a compressed block. The writer appends the bytes at the
//! image position (holes take no bytes), keeps one size word per block after two words of the
//! offset where the file's blocks start, and on the file's end records where its words are. A
//! file's blocks are contiguous, with no gaps; the start is kept for every file that has
//! blocks, even a single one.
//!
//! Whole-file dedup (squashfs-tools-ng style): when a file ends, its size words and a hash of
//! its uncompressed blocks are looked up among earlier files. A candidate counts as equal only
//! if the size words match and the stored bytes compare equal byte for byte (equal compressed
//! bytes decompress to equal content; the hash only picks candidates). On a match the new
//! copy is dropped by rewinding the image position to where it began, and the file points at
//! the earlier blocks. This works because nothing else is written between a file's blocks and
//! its end marker.

use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::pager::{Pager, Record};
use crate::squashfs::format::{data_block_word, FragmentEntry, NO_FRAGMENT};
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::known::KnownFiles;

/// Where one regular file's content is: 20 bytes per file (the size is stored as halves so
/// the struct needs only 4-byte alignment). Where a file's blocks start is kept with its size
/// words (see [`FileStore::blocks_start`]): most files of a large image are small enough to
/// have no blocks at all, only a fragment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileData {
    size: [u32; 2],
    /// First size word in [`FileStore::words`]; the count follows from the size.
    pub words_off: u32,
    /// Fragment index, or `NO_FRAGMENT`.
    pub fragment: u32,
    /// Offset of the tail in its fragment block.
    pub fragment_offset: u32,
}

fn halves(v: u64) -> [u32; 2] {
    [v as u32, (v >> 32) as u32]
}

fn whole(h: [u32; 2]) -> u64 {
    u64::from(h[0]) | (u64::from(h[1]) << 32)
}

impl Record for FileData {
    const PAGE_SHIFT: u32 = 12;
    const SIZE: usize = 20;
    const LOST: FileData = FileData {
        size: [0, 0],
        words_off: 0,
        fragment: NO_FRAGMENT,
        fragment_offset: 0,
    };

    fn encode(items: &[FileData], out: &mut Vec<u8>) {
        for f in items {
            let words = [
                f.size[0],
                f.size[1],
                f.words_off,
                f.fragment,
                f.fragment_offset,
            ];
            for w in words {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
    }

    fn decode(bytes: &[u8], items: &mut [FileData]) {
        for (f, b) in items.iter_mut().zip(bytes.chunks_exact(FileData::SIZE)) {
            let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            *f = FileData {
                size: [w(0), w(4)],
                words_off: w(8),
                fragment: w(12),
                fragment_offset: w(16),
            };
        }
    }
}

impl FileData {
    /// A file of `size` bytes whose blocks are not written yet.
    pub(crate) fn new(size: u64) -> FileData {
        FileData {
            size: halves(size),
            words_off: 0,
            fragment: NO_FRAGMENT,
            fragment_offset: 0,
        }
    }

    /// Size in bytes.
    pub(crate) fn size(&self) -> u64 {
        whole(self.size)
    }
}

/// Every file's block placement; handed to the tree when the inode table is written.
pub(crate) struct FileStore {
    /// One entry per file, by file id: 20 bytes a file, paged to disk once the memory budget
    /// is passed ([`BlockWriter::page_files`]).
    files: Pager<FileData>,
    /// Size words of all files, each file's a contiguous slice after the two words (low,
    /// high) of the offset where its blocks start.
    pub words: Vec<u32>,
    block_size: u64,
    fragments: bool,
}

impl FileStore {
    /// The placement of file `id`.
    pub(crate) fn file(&self, id: u32) -> Option<FileData> {
        ((id as usize) < self.files.len()).then(|| self.files.get(id as usize))
    }

    /// Bytes of placements written to the temporary file, in all.
    pub(crate) fn paged_out(&self) -> u64 {
        self.files.paged_out()
    }

    /// The first I/O error of paging the placements, if one happened: placements read since
    /// may be wrong, so the image must not be finished.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.files.take_error()
    }

    /// The number of data blocks (size words) of a file of `size` bytes: the tail goes to a
    /// fragment when fragments are on, else it is a short last block.
    pub(crate) fn block_count(&self, size: u64) -> usize {
        if self.fragments {
            (size / self.block_size) as usize
        } else {
            size.div_ceil(self.block_size) as usize
        }
    }

    /// Offset of `file`'s first data block (0 when it has no blocks).
    pub(crate) fn blocks_start(&self, file: &FileData) -> u64 {
        if self.block_count(file.size()) == 0 {
            return 0;
        }
        let off = file.words_off as usize;
        match off.checked_sub(2).and_then(|s| self.words.get(s..off)) {
            Some(&[lo, hi]) => whole([lo, hi]),
            _ => 0,
        }
    }

    /// The size words of `file`.
    pub(crate) fn words(&self, file: &FileData) -> &[u32] {
        let start = file.words_off as usize;
        self.words
            .get(start..start + self.block_count(file.size()))
            .unwrap_or(&[])
    }
}

pub(crate) use crate::squashfs::format::stored_len;

/// One block as the pipeline delivers it.
#[derive(Debug)]
pub(crate) enum Block<'a> {
    /// An all-zero block: size word 0, no bytes.
    Hole,
    /// Bytes stored raw (compression did not shrink them).
    Raw(&'a [u8]),
    /// Compressed bytes.
    Compressed(&'a [u8]),
}

impl<'a> Block<'a> {
    /// The block's size word and the bytes it stores.
    fn stored(&self) -> (u32, &'a [u8]) {
        match *self {
            Block::Hole => (0, &[]),
            Block::Raw(b) => (data_block_word(b.len() as u32, true), b),
            Block::Compressed(b) => (data_block_word(b.len() as u32, false), b),
        }
    }
}

/// The file being written.
#[derive(Debug)]
struct Current {
    file: u32,
    start: u64,
    words_off: usize,
    hash: u64,
    stored: u64,
}

/// Writes data and fragment blocks and dedups whole files.
pub(crate) struct BlockWriter {
    out: ImageFile,
    store: FileStore,
    dedup: bool,
    known: KnownFiles,
    current: Option<Current>,
    bytes_a: Vec<u8>,
    bytes_b: Vec<u8>,
}

impl BlockWriter {
    /// Writes into `out` from its position on; files have `block_size` blocks and their tails
    /// in fragments if `fragments`; `dedup` enables whole-file dedup.
    pub(crate) fn new(
        out: ImageFile,
        block_size: u64,
        fragments: bool,
        dedup: bool,
    ) -> BlockWriter {
        BlockWriter {
            out,
            store: FileStore {
                files: Pager::new(
                    std::env::temp_dir(),
                    "page the squashfs writer's file placements out to",
                ),
                words: Vec::new(),
                block_size,
                fragments,
            },
            dedup,
            known: KnownFiles::default(),
            current: None,
            bytes_a: Vec::new(),
            bytes_b: Vec::new(),
        }
    }

    /// Registers a new file of `size` bytes; returns its id.
    pub(crate) fn add_file(&mut self, size: u64) -> u32 {
        self.store.files.push(FileData::new(size)) as u32
    }

    /// The placement of `file` (complete once its end was processed).
    pub(crate) fn file_mut(&mut self, file: u32) -> Option<&mut FileData> {
        ((file as usize) < self.store.files.len()).then(|| self.store.files.get_mut(file as usize))
    }

    /// From now on keeps at most `bytes` of file placements in memory, the rest in a
    /// temporary file in `dir`.
    pub(crate) fn page_files(&mut self, bytes: usize, dir: PathBuf) {
        self.store.files.set_dir(dir);
        self.store.files.set_limit(bytes);
    }

    /// The image (tests look at its position).
    #[cfg(test)]
    pub(crate) fn image(&mut self) -> &mut ImageFile {
        &mut self.out
    }

    /// Appends the next block of `file`; `hash` is the hash of its uncompressed bytes.
    pub(crate) fn write_block(&mut self, file: u32, block: Block<'_>, hash: u64) -> Result<()> {
        if self.current.as_ref().is_none_or(|c| c.file != file) {
            let start = self.out.position();
            self.store.words.extend_from_slice(&halves(start));
            self.current = Some(Current {
                file,
                start,
                words_off: self.store.words.len(),
                hash: 0x51_7c_c1_b7_27_22_0a_95,
                stored: 0,
            });
        }
        let (word, bytes) = block.stored();
        self.out.write(bytes)?;
        self.store.words.push(word);
        if let Some(c) = &mut self.current {
            c.hash = (c.hash.rotate_left(23) ^ hash).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            c.stored += bytes.len() as u64;
        }
        Ok(())
    }

    /// Ends `file`'s blocks: records the placement, or shares an earlier identical file's.
    pub(crate) fn end_file(&mut self, file: u32) -> Result<()> {
        let Some(cur) = self.current.take().filter(|c| c.file == file) else {
            return Ok(());
        };
        let words_len = self.store.words.len() - cur.words_off;
        let hash = {
            let h = cur.hash ^ (words_len as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
            (h ^ (h >> 32)) as u32
        };
        if let Some(e) = self.store.take_error() {
            return Err(e);
        }
        let Some(mut placed) = self.store.file(file) else {
            return Err(Error::Bug {
                what: "a file ended that was never added",
            });
        };
        placed.words_off = u32::try_from(cur.words_off).map_err(|_| Error::TooLarge {
            what: "number of data blocks",
            size: cur.words_off as u64,
            limit: u64::from(u32::MAX),
        })?;
        if self.dedup && cur.stored > 0 {
            if let Some(earlier) = self.find_duplicate(&placed, hash)? {
                // Drop the copy just written: the next block overwrites it.
                self.out.rewind(cur.start)?;
                // The copy's start and size words go; it shares the earlier file's.
                self.store.words.truncate(cur.words_off - 2);
                self.store.files.get_mut(file as usize).words_off = earlier.words_off;
                return Ok(());
            }
            self.known.insert(hash, file);
        }
        *self.store.files.get_mut(file as usize) = placed;
        Ok(())
    }

    /// An earlier file whose stored blocks equal `new`'s, byte for byte.
    fn find_duplicate(&mut self, new: &FileData, hash: u32) -> Result<Option<FileData>> {
        for file in self.known.candidates(hash) {
            let Some(old) = self.store.file(file) else {
                continue;
            };
            if self.same_blocks(&old, new)? {
                return Ok(Some(old));
            }
        }
        Ok(None)
    }

    /// Whether two placements have equal size words and equal stored bytes.
    pub(crate) fn same_blocks(&mut self, a: &FileData, b: &FileData) -> Result<bool> {
        if self.store.words(a) != self.store.words(b) {
            return Ok(false);
        }
        let total: u64 = self.store.words(a).iter().map(|&w| stored_len(w)).sum();
        const CHUNK: u64 = 64 * 1024;
        let mut done = 0;
        while done < total {
            let n = CHUNK.min(total - done) as usize;
            self.bytes_a.resize(n, 0);
            self.bytes_b.resize(n, 0);
            let (start_a, start_b) = (self.store.blocks_start(a), self.store.blocks_start(b));
            self.out.read_at(start_a + done, &mut self.bytes_a)?;
            self.out.read_at(start_b + done, &mut self.bytes_b)?;
            if self.bytes_a != self.bytes_b {
                return Ok(false);
            }
            done += n as u64;
        }
        Ok(true)
    }

    /// Appends a fragment block; returns its table entry.
    pub(crate) fn write_fragment(&mut self, block: Block<'_>) -> Result<FragmentEntry> {
        let start = self.out.position();
        let (size, bytes) = block.stored();
        self.out.write(bytes)?;
        Ok(FragmentEntry { start, size })
    }

    /// Bytes held per file (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.store.files.heap_bytes() + self.store.words.capacity() * 4 + self.known.heap_bytes()
    }

    /// The image and every file's placement.
    pub(crate) fn finish(self) -> (ImageFile, FileStore) {
        (self.out, self.store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn writer(dir: &tempfile::TempDir, dedup: bool) -> BlockWriter {
        let out = ImageFile::create(&dir.path().join("img"), 96).unwrap();
        BlockWriter::new(out, 4096, false, dedup)
    }

    #[test]
    fn a_duplicate_file_is_rewound_and_shares_the_earlier_blocks() {
        let d = tempfile::tempdir().unwrap();
        let mut w = writer(&d, true);
        let a = w.add_file(8192);
        w.write_block(a, Block::Compressed(b"AAAA"), 1).unwrap();
        w.write_block(a, Block::Hole, 0).unwrap();
        w.end_file(a).unwrap();
        let after_a = w.image().position();
        let b = w.add_file(8192);
        w.write_block(b, Block::Compressed(b"AAAA"), 1).unwrap();
        w.write_block(b, Block::Hole, 0).unwrap();
        w.end_file(b).unwrap();
        assert_eq!(w.image().position(), after_a, "second copy rewound");
        let (_, store) = w.finish();
        assert_eq!(store.blocks_start(&store.file(a).unwrap()), 96);
        assert_eq!(store.blocks_start(&store.file(b).unwrap()), 96);
        assert_eq!(store.words(&store.file(b).unwrap()), [4, 0]);
        assert_eq!(
            store.words.len(),
            4,
            "the duplicate's start and words were dropped"
        );
    }

    /// Hashes only pick candidates: equal hashes with different bytes keep both copies.
    #[test]
    fn equal_hashes_with_different_bytes_are_both_kept() {
        let d = tempfile::tempdir().unwrap();
        let mut w = writer(&d, true);
        let a = w.add_file(4096);
        w.write_block(a, Block::Raw(&[1; 4096]), 42).unwrap();
        w.end_file(a).unwrap();
        let b = w.add_file(4096);
        w.write_block(b, Block::Raw(&[2; 4096]), 42).unwrap();
        w.end_file(b).unwrap();
        assert_eq!(w.image().position(), 96 + 2 * 4096);
        let (_, store) = w.finish();
        assert_eq!(store.blocks_start(&store.file(b).unwrap()), 96 + 4096);
    }

    #[test]
    fn dedup_off_keeps_every_copy() {
        let d = tempfile::tempdir().unwrap();
        let mut w = writer(&d, false);
        for _ in 0..2 {
            let f = w.add_file(4);
            w.write_block(f, Block::Compressed(b"xyz"), 9).unwrap();
            w.end_file(f).unwrap();
        }
        assert_eq!(w.image().position(), 96 + 6);
    }
}
