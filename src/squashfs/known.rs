//! Files remembered by a 32-bit hash of their content, for dedup: whole files (by file id) in
//! the block writer, tails (by where they lie) in the fragment table. The hash only picks
//! candidates; the caller compares their bytes.

use hashbrown::HashTable;

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
}
