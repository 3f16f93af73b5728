//! Files remembered by a 32-bit hash of their content, for dedup: whole files in the block
//! writer, tails in the fragment table. The hash only picks candidates; the caller compares
//! their bytes.

use hashbrown::HashTable;

/// A remembered file: 8 bytes, the table's only per-file cost. Where its content lies is the
/// caller's to look up from the file id.
#[derive(Clone, Copy, Debug)]
struct Known {
    hash: u32,
    file: u32,
}

/// Spreads a 32-bit hash over 64 bits for the table (its control bytes use the top bits).
fn table_hash(h: u32) -> u64 {
    u64::from(h).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// File ids by content hash (a multimap: unequal contents may share a hash).
#[derive(Debug, Default)]
pub(crate) struct KnownFiles {
    table: HashTable<Known>,
}

impl KnownFiles {
    /// The files remembered with `hash`, oldest first.
    pub(crate) fn candidates(&self, hash: u32) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .table
            .iter_hash(table_hash(hash))
            .filter(|k| k.hash == hash)
            .map(|k| k.file)
            .collect();
        v.sort_unstable();
        v
    }

    /// Remembers `file` under `hash`.
    pub(crate) fn insert(&mut self, hash: u32, file: u32) {
        self.table
            .insert_unique(table_hash(hash), Known { hash, file }, |k| {
                table_hash(k.hash)
            });
    }

    /// Bytes held (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Known>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_the_files_with_that_hash_oldest_first() {
        let mut k = KnownFiles::default();
        k.insert(7, 3);
        k.insert(9, 4);
        k.insert(7, 1);
        assert_eq!(k.candidates(7), [1, 3]);
        assert_eq!(k.candidates(9), [4]);
        assert!(k.candidates(8).is_empty());
    }
}
