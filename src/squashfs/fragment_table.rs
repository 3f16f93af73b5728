//! Fragments: the tails of files packed together into shared fragment blocks.
//!
//! A file's tail (`size % block_size` bytes, or the whole of a file smaller than a block) is
//! appended to the fragment block being filled; the inode records (fragment index, offset).
//! When the next tail would not fit, the block is handed to the block processor, which
//! compresses and writes it through the same ordered pipeline as data blocks; the writer then
//! records its {start, size word} entry here. At the end the entries become the fragment
//! lookup table (between the directory table and the export table).
//!
//! Invariants: a fragment block never exceeds the block size; entry `i` describes the block
//! that tails were given index `i` for (blocks are submitted and written in index order); only
//! files with `size % block_size != 0` get a fragment (the caller's rule).
//!
//! Tail dedup: every placed tail is remembered by a 32-bit hash and its place. A tail equal to
//! an earlier one gets the earlier location, after a byte comparison against the fragment
//! block's content — from memory when the block is still being filled, otherwise read back
//! from the image and decompressed (a few recently read blocks are cached).

use crate::error::Error;
use crate::squashfs::format::FragmentEntry;
use crate::squashfs::known::KnownTails;

/// Where a tail was placed (ordered as placed: block, then offset).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TailRef {
    /// Fragment block index.
    pub fragment: u32,
    /// Offset of the tail in the uncompressed fragment block.
    pub offset: u32,
}

/// Packs tails and keeps the fragment table entries.
#[derive(Debug)]
pub(crate) struct FragmentTable {
    block_size: usize,
    /// The block being filled.
    current: Vec<u8>,
    /// The index the block being filled will have.
    current_index: u32,
    /// Entries of written blocks, by index.
    entries: Vec<FragmentEntry>,
    known: KnownTails,
    dedup: bool,
}

impl FragmentTable {
    /// An empty table for `block_size` blocks; `dedup` enables tail dedup.
    pub(crate) fn new(block_size: usize, dedup: bool) -> FragmentTable {
        FragmentTable {
            block_size,
            current: Vec::new(),
            current_index: 0,
            entries: Vec::new(),
            known: KnownTails::default(),
            dedup,
        }
    }

    /// The 32-bit hash tails are remembered by.
    pub(crate) fn tail_hash(tail: &[u8]) -> u32 {
        let h = xxhash_rust::xxh3::xxh3_64(tail);
        (h ^ (h >> 32)) as u32
    }

    /// Where the tails with this hash lie, oldest first (candidates to compare).
    pub(crate) fn candidates(&self, hash: u32) -> Vec<TailRef> {
        if !self.dedup {
            return Vec::new();
        }
        self.known.candidates(hash)
    }

    /// The content of the block being filled, if `fragment` is that block.
    pub(crate) fn in_memory(&self, fragment: u32) -> Option<&[u8]> {
        (fragment == self.current_index && !self.current.is_empty()).then_some(&self.current[..])
    }

    /// Whether tails are deduplicated.
    pub(crate) fn dedups(&self) -> bool {
        self.dedup
    }

    /// Whether `tail` fits in the block being filled.
    pub(crate) fn fits(&self, tail: &[u8]) -> bool {
        self.current.len() + tail.len() <= self.block_size
    }

    /// Appends a file's tail (which must fit) and remembers it for dedup; the caller records
    /// the returned location in the file's placement.
    pub(crate) fn append(&mut self, tail: &[u8], hash: u32) -> TailRef {
        let at = TailRef {
            fragment: self.current_index,
            offset: self.current.len() as u32,
        };
        self.current.extend_from_slice(tail);
        if self.dedup {
            self.known.insert(hash, at);
        }
        at
    }

    /// Takes the filled block for writing (`None` if empty) together with its index; the next
    /// tail starts a new block. `buf` becomes the new (empty) block buffer.
    pub(crate) fn take_block(&mut self, mut buf: Vec<u8>) -> Option<(u32, Vec<u8>)> {
        if self.current.is_empty() {
            return None;
        }
        buf.clear();
        let block = std::mem::replace(&mut self.current, buf);
        let index = self.current_index;
        self.current_index += 1;
        Some((index, block))
    }

    /// Records where block `index` was written; blocks arrive in index order.
    pub(crate) fn record(&mut self, index: u32, entry: FragmentEntry) {
        debug_assert_eq!(index as usize, self.entries.len());
        self.entries.push(entry);
    }

    /// From now on keeps at most `bytes` of the tails' places in memory, the rest in a file in
    /// `dir`.
    pub(crate) fn page_places(&mut self, bytes: usize, dir: std::path::PathBuf) {
        self.known.page(bytes, dir);
    }

    /// Bytes of tail places written to disk.
    pub(crate) fn paged_out(&self) -> u64 {
        self.known.paged_out()
    }

    /// The first I/O error of paging the tails' places since the last call.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.known.take_error()
    }

    /// Bytes held for dedup and entries (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.known.heap_bytes()
            + self.entries.capacity() * std::mem::size_of::<FragmentEntry>()
            + self.current.capacity()
    }

    /// The table entries as written to disk, in index order.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.entries.len() * FragmentEntry::SIZE);
        for e in &self.entries {
            e.write(&mut v);
        }
        v
    }

    /// Number of written fragment blocks.
    pub(crate) fn len(&self) -> u32 {
        self.entries.len() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_pack_until_the_block_is_full() {
        let mut t = FragmentTable::new(4096, true);
        let a = t.append(&[1; 3000], 1);
        assert_eq!(
            a,
            TailRef {
                fragment: 0,
                offset: 0
            }
        );
        assert!(t.fits(&[2; 1096]));
        assert!(!t.fits(&[2; 1097]));
        let (i, block) = t.take_block(Vec::new()).unwrap();
        assert_eq!((i, block.len()), (0, 3000));
        let b = t.append(&[2; 10], 2);
        assert_eq!(
            b,
            TailRef {
                fragment: 1,
                offset: 0
            }
        );
        assert!(t.take_block(Vec::new()).is_some());
        assert!(t.take_block(Vec::new()).is_none(), "nothing left");
    }

    #[test]
    fn candidates_are_the_places_of_tails_with_an_equal_hash_oldest_first() {
        let mut t = FragmentTable::new(4096, true);
        let first = t.append(b"abcd", 7);
        let second = t.append(b"abc", 7);
        t.append(b"xyz", 8);
        assert_eq!(t.candidates(7), vec![first, second]);
        assert_eq!(second.offset, 4);
        assert!(t.candidates(9).is_empty());
        let off = FragmentTable::new(4096, false);
        assert!(off.candidates(7).is_empty(), "dedup off remembers nothing");
    }
}
