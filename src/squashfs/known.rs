//! Files remembered by a 32-bit hash of their content, for dedup: whole files (by file id) in
//! the block writer, tails (by where they lie) in the fragment table. The hash only picks
//! candidates; the caller compares their bytes.

use std::path::PathBuf;

use hashbrown::HashTable;

use crate::error::Error;
use crate::pager::{Pager, Record};
use crate::squashfs::fragment_table::TailRef;

/// A remembered file: the table's only per-file cost (8 bytes with a file id, 12 with a tail's
/// place, which spares a tail lookup the file's placement: those page to disk past the
/// memory budget, and tail candidates come at random).
#[derive(Clone, Copy, Debug)]
struct Known<V> {
    hash: u32,
    value: V,
}

/// Spreads a 32-bit hash over 64 bits for the table (its control bytes use the top bits).
fn table_hash(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Shards of the table, by the top bits of the hash: each grows on its own, so growing never
/// holds two copies of the whole table (at ten million files, 75 and 150 MB) at once.
const SHARD_BITS: u32 = 6;

fn shard(hash: u32) -> usize {
    (hash >> (32 - SHARD_BITS)) as usize
}

/// File ids by content hash (a multimap: unequal contents may share a hash).
#[derive(Debug)]
pub(crate) struct KnownFiles<V = u32> {
    tables: Vec<HashTable<Known<V>>>,
}

impl<V> Default for KnownFiles<V> {
    fn default() -> Self {
        KnownFiles {
            tables: (0..1 << SHARD_BITS).map(|_| HashTable::new()).collect(),
        }
    }
}

impl<V: Copy + Ord> KnownFiles<V> {
    /// The files remembered with `hash`, oldest first (values grow with age: file ids, tail
    /// places).
    pub(crate) fn candidates(&self, hash: u32) -> Vec<V> {
        let mut v: Vec<V> = self.tables[shard(hash)]
            .iter_hash(table_hash(hash))
            .filter(|k| k.hash == hash)
            .map(|k| k.value)
            .collect();
        v.sort_unstable();
        v
    }

    /// Remembers `file` under `hash`.
    pub(crate) fn insert(&mut self, hash: u32, value: V) {
        self.tables[shard(hash)].insert_unique(table_hash(hash), Known { hash, value }, |k| {
            table_hash(k.hash)
        });
    }

    /// Bytes held (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tables.iter().map(HashTable::allocation_size).sum()
    }
}

/// Tails by content hash, for tail dedup. A tail has an id (the order it was placed in); the
/// table holds ids (4 bytes), each tail's hash lies beside them (4 bytes, so that growing the
/// table never reads a place) and its place in pages (8 bytes) that go to disk past the memory
/// budget. A place is read only for a candidate whose whole hash matched (nearly always an
/// equal tail, whose fragment block is read then anyway). Ten million tiny files leave about
/// four million distinct tails: 109 MB as (hash, place) entries, 60 MB and the pages so.
#[derive(Debug)]
pub(crate) struct KnownTails {
    tables: Vec<HashTable<u32>>,
    hashes: Vec<u32>,
    places: Pager<TailRef>,
}

impl Record for TailRef {
    const PAGE_SHIFT: u32 = 12;
    const SIZE: usize = 8;
    const LOST: TailRef = TailRef {
        fragment: u32::MAX,
        offset: 0,
    };

    fn encode(items: &[TailRef], out: &mut Vec<u8>) {
        for t in items {
            out.extend_from_slice(&t.fragment.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
    }

    fn decode(bytes: &[u8], items: &mut [TailRef]) {
        for (t, b) in items.iter_mut().zip(bytes.chunks_exact(8)) {
            *t = TailRef {
                fragment: u32::from_le_bytes(b[..4].try_into().unwrap_or_default()),
                offset: u32::from_le_bytes(b[4..].try_into().unwrap_or_default()),
            };
        }
    }
}

impl Default for KnownTails {
    fn default() -> Self {
        KnownTails {
            tables: (0..1 << SHARD_BITS).map(|_| HashTable::new()).collect(),
            hashes: Vec::new(),
            places: Pager::new(PathBuf::new(), "page the places of fragment tails out to"),
        }
    }
}

impl KnownTails {
    /// Where the tails remembered with `hash` lie, oldest first. A place that could not be
    /// read back reads as fragment `u32::MAX`; [`KnownTails::take_error`] then has the error.
    pub(crate) fn candidates(&self, hash: u32) -> Vec<TailRef> {
        let hashes = &self.hashes;
        let mut ids: Vec<u32> = self.tables[shard(hash)]
            .iter_hash(table_hash(hash))
            .copied()
            .filter(|&id| hashes.get(id as usize) == Some(&hash))
            .collect();
        // Ids grow in the order tails were placed, as places do.
        ids.sort_unstable();
        ids.into_iter()
            .map(|id| self.places.get(id as usize))
            .collect()
    }

    /// Remembers the tail at `place` under `hash`.
    pub(crate) fn insert(&mut self, hash: u32, place: TailRef) {
        // Tails are at most files, which file ids (`u32`) number.
        let id = self.places.push(place) as u32;
        self.hashes.push(hash);
        let hashes = &self.hashes;
        self.tables[shard(hash)].insert_unique(table_hash(hash), id, |&i| {
            table_hash(hashes.get(i as usize).copied().unwrap_or(0))
        });
    }

    /// From now on keeps at most `bytes` of places in memory, the rest in a file in `dir`.
    pub(crate) fn page(&mut self, bytes: usize, dir: PathBuf) {
        self.places.set_dir(dir);
        self.places.set_limit(bytes);
    }

    /// Bytes held (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.tables
            .iter()
            .map(HashTable::allocation_size)
            .sum::<usize>()
            + self.hashes.capacity() * 4
            + self.places.heap_bytes()
    }

    /// Bytes of places written to disk.
    pub(crate) fn paged_out(&self) -> u64 {
        self.places.paged_out()
    }

    /// The first I/O error of paging since the last call.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.places.take_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_files_with_that_hash_oldest_first() {
        let mut k = KnownFiles::<u32>::default();
        k.insert(7, 3);
        k.insert(9, 4);
        k.insert(7, 1);
        k.insert(u32::MAX, 5);
        assert_eq!(k.candidates(7), [1, 3]);
        assert_eq!(k.candidates(u32::MAX), [5]);
        assert_eq!(k.candidates(9), [4]);
        assert!(k.candidates(8).is_empty());
    }

    #[test]
    fn paged_tail_places_come_back_for_their_hash_oldest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = KnownTails::default();
        k.page(0, dir.path().into());
        let place = |i: u32| TailRef {
            fragment: i / 100,
            offset: (i % 100) * 40,
        };
        // Hashes that collide in groups of three, and 50,000 places: most of them paged out.
        for i in 0..50_000u32 {
            k.insert((i % 16_667).wrapping_mul(0x9e37_79b9), place(i));
        }
        assert!(k.paged_out() > 0);
        for h in [0u32, 1, 777, 16_666] {
            let want: Vec<TailRef> = (0..3)
                .map(|j| h + j * 16_667)
                .filter(|&i| i < 50_000)
                .map(place)
                .collect();
            assert_eq!(k.candidates(h.wrapping_mul(0x9e37_79b9)), want);
        }
        assert!(k.candidates(12_345).is_empty());
        assert!(k.take_error().is_none());
    }
}
