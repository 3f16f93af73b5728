//! The id table: inodes store uid and gid as `u16` indexes into a table of 32-bit ids.
//!
//! Ids get their index in order of first use while the inode table is written, so the table
//! is a deterministic function of the tree. It is written as a lookup table (`u32` entries in
//! metadata blocks + location list) between the export table and the xattr data. Invariants:
//! at most 65536 distinct ids ([`Error::TooManyIds`] beyond), and at least one id in any image
//! (the root's owner), since the kernel refuses `no_ids = 0`.

use hashbrown::HashMap;

use crate::error::{Error, Result};
use crate::squashfs::format::Le;

/// Distinct uids and gids, in order of first use.
#[derive(Debug, Default)]
pub(crate) struct IdTable {
    index: HashMap<u32, u16>,
    ids: Vec<u32>,
}

impl IdTable {
    /// The index of `id`, adding it if new.
    pub(crate) fn index(&mut self, id: u32) -> Result<u16> {
        if let Some(&i) = self.index.get(&id) {
            return Ok(i);
        }
        let i = u16::try_from(self.ids.len()).map_err(|_| Error::TooManyIds {
            count: self.ids.len() + 1,
        })?;
        self.index.insert(id, i);
        self.ids.push(id);
        Ok(i)
    }

    /// Number of distinct ids.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// The table entries as written to disk.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.ids.len() * 4);
        for &id in &self.ids {
            Le(&mut v).u32(id);
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_indexed_in_order_of_first_use() {
        let mut t = IdTable::default();
        assert_eq!(t.index(1000).unwrap(), 0);
        assert_eq!(t.index(u32::MAX).unwrap(), 1);
        assert_eq!(t.index(1000).unwrap(), 0);
        assert_eq!(t.len(), 2);
        assert_eq!(t.to_bytes(), [0xe8, 3, 0, 0, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn the_65537th_id_is_an_error() {
        let mut t = IdTable::default();
        for id in 0..65536 {
            t.index(id).unwrap();
        }
        assert!(matches!(
            t.index(70000),
            Err(Error::TooManyIds { count: 65537 })
        ));
        assert!(t.index(65535).is_ok(), "known ids still resolve");
    }
}
