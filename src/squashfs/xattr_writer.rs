//! Extended attributes: deduplicated key/value sets and the three levels that store them.
//!
//! ```text
//! inode.xattr ──► xattr id table entry {kv ref, count, size}
//!                        │   (16-byte records in metadata blocks; u64 location list at
//!                        │    xattr_table_start, after a {kv_start, ids, 0} header)
//!                        ▼
//!                 key/value metadata blocks at kv_start:
//!                 {u16 prefix, u16 name len, name} {u32 value len, value} ...
//! ```
//!
//! While entries arrive, [`XattrWriter::intern`] turns each entry's attributes into a set
//! handle; identical sets share one handle, so thousands of files with the same
//! `security.capability` cost one stored set. Final xattr ids are handed out in order of first
//! use while the inode table is written ([`XattrWriter::id_for`]), so sets that only replaced
//! entries used are never written and the numbering is deterministic.
//!
//! Names are stored without their namespace: `user.` = 0, `trusted.` = 1, `security.` = 2.
//! Anything else (`system.posix_acl_access` and other `system.*` names, unknown namespaces,
//! empty names) cannot be stored; `intern` skips it and reports it so the sink can add a
//! `WarningKind::XattrNotStorable` warning. Values are always stored inline (out-of-line
//! values are optional in the format). Invariants: the kv data starts right after the id
//! table's location list, and the xattr id location list ends exactly at `bytes_used` — the
//! caller writes this table last.

use std::sync::Arc;

use hashbrown::HashTable;

use crate::entry::Xattr;
use crate::error::{Error, Result};
use crate::squashfs::compressor::Compressor;
use crate::squashfs::format::{xattr_prefix, Le, XattrId, NO_TABLE, NO_XATTR};
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::meta_writer::MetaWriter;
use crate::squashfs::table;

/// Handle of an interned set; [`NO_SET`] for none.
pub(crate) type SetHandle = u32;
/// The handle of "no extended attributes".
pub(crate) const NO_SET: SetHandle = u32::MAX;

/// One storable attribute: namespace prefix id, name without the namespace, value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Stored {
    prefix: u16,
    name: Box<[u8]>,
    value: Box<[u8]>,
}

/// Interns attribute sets and writes them at the end of the image.
#[derive(Debug, Default)]
pub(crate) struct XattrWriter {
    sets: Vec<Box<[Stored]>>,
    lookup: HashTable<SetHandle>,
    /// Final xattr id of each set, `NO_XATTR` until first used.
    final_id: Vec<u32>,
    /// Sets in final id order.
    order: Vec<SetHandle>,
}

/// Splits a full attribute name into its squashfs prefix id and the rest.
fn split_name(name: &[u8]) -> Option<(u16, &[u8])> {
    let (prefix, rest) = if let Some(rest) = name.strip_prefix(b"user.") {
        (xattr_prefix::USER, rest)
    } else if let Some(rest) = name.strip_prefix(b"trusted.") {
        (xattr_prefix::TRUSTED, rest)
    } else if let Some(rest) = name.strip_prefix(b"security.") {
        (xattr_prefix::SECURITY, rest)
    } else {
        return None;
    };
    (!rest.is_empty() && rest.len() <= usize::from(u16::MAX)).then_some((prefix, rest))
}

fn hash_set(set: &[Stored]) -> u64 {
    use std::hash::{Hash, Hasher};
    // A fixed-seed hasher: handles must not depend on a per-process random seed.
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    set.hash(&mut h);
    h.finish()
}

impl XattrWriter {
    /// The handle of `xattrs`' storable subset ([`NO_SET`] if nothing is storable); calls
    /// `not_storable` with the name of each attribute left out.
    pub(crate) fn intern(
        &mut self,
        xattrs: &[Xattr],
        mut not_storable: impl FnMut(&[u8]),
    ) -> SetHandle {
        let mut set: Vec<Stored> = Vec::with_capacity(xattrs.len());
        for x in xattrs {
            match split_name(&x.name) {
                Some((prefix, name)) if u32::try_from(x.value.len()).is_ok() => set.push(Stored {
                    prefix,
                    name: name.into(),
                    value: x.value.as_slice().into(),
                }),
                _ => not_storable(&x.name),
            }
        }
        if set.is_empty() {
            return NO_SET;
        }
        set.sort_by(|a, b| (a.prefix, &a.name).cmp(&(b.prefix, &b.name)));
        set.dedup_by(|a, b| a.prefix == b.prefix && a.name == b.name);
        let hash = hash_set(&set);
        if let Some(&h) = self.lookup.find(hash, |&h| *self.sets[h as usize] == *set) {
            return h;
        }
        let handle = self.sets.len() as SetHandle;
        self.sets.push(set.into_boxed_slice());
        self.final_id.push(NO_XATTR);
        let sets = &self.sets;
        self.lookup
            .insert_unique(hash, handle, |&h| hash_set(&sets[h as usize]));
        handle
    }

    /// The xattr id stored in the inode for `set`; ids are assigned in order of first use.
    pub(crate) fn id_for(&mut self, set: SetHandle) -> u32 {
        if set == NO_SET {
            return NO_XATTR;
        }
        let slot = &mut self.final_id[set as usize];
        if *slot == NO_XATTR {
            *slot = self.order.len() as u32;
            self.order.push(set);
        }
        *slot
    }

    /// Bytes held for the interned sets (for memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        let sets: usize = self
            .sets
            .iter()
            .map(|s| {
                s.iter()
                    .map(|x| x.name.len() + x.value.len() + std::mem::size_of::<Stored>())
                    .sum::<usize>()
            })
            .sum();
        sets + self.sets.capacity() * 16 + self.lookup.capacity() * 5 + self.final_id.capacity() * 4
    }

    /// Writes the key/value data, the id table and its header at the position; returns
    /// `xattr_table_start` for the superblock ([`NO_TABLE`] when no inode has xattrs).
    pub(crate) fn write(self, out: &mut ImageFile, codec: &Arc<Compressor>) -> Result<u64> {
        if self.order.is_empty() {
            return Ok(NO_TABLE);
        }
        let mut kv = MetaWriter::new(Arc::clone(codec));
        let mut ids = Vec::with_capacity(self.order.len() * XattrId::SIZE);
        let mut rec = Vec::new();
        for &handle in &self.order {
            let set = &self.sets[handle as usize];
            let kv_ref = kv.position().packed();
            let mut size: u64 = 0;
            for x in set.iter() {
                rec.clear();
                let prefix_len = match x.prefix {
                    xattr_prefix::USER => 5,
                    xattr_prefix::TRUSTED => 8,
                    _ => 9,
                };
                Le(&mut rec)
                    .u16(x.prefix)
                    .u16(x.name.len() as u16)
                    .bytes(&x.name)
                    .u32(x.value.len() as u32)
                    .bytes(&x.value);
                kv.append(&rec)?;
                size += (prefix_len + x.name.len() + 1 + x.value.len()) as u64;
            }
            XattrId {
                kv_ref,
                count: set.len() as u32,
                size: u32::try_from(size).map_err(|_| Error::TooLarge {
                    what: "extended attribute set",
                    size,
                    limit: u64::from(u32::MAX),
                })?,
            }
            .write(&mut ids);
        }
        let kv_start = out.position();
        out.write(&kv.finish()?)?;
        let locations = table::write_metablocks(out, codec, &ids)?;
        let start = out.position();
        let mut header = Vec::with_capacity(16);
        Le(&mut header)
            .u64(kv_start)
            .u32(self.order.len() as u32)
            .u32(0);
        out.write(&header)?;
        table::write_locations(out, &locations)?;
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(name: &str, value: &[u8]) -> Xattr {
        Xattr {
            name: name.as_bytes().to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn identical_sets_share_a_handle_and_ids_follow_first_use() {
        let mut w = XattrWriter::default();
        let none = |_: &[u8]| panic!("all storable");
        let a = w.intern(
            &[x("user.a", b"1"), x("security.capability", b"\x01\x02")],
            none,
        );
        let b = w.intern(&[x("trusted.t", b"")], none);
        let a2 = w.intern(
            &[x("user.a", b"1"), x("security.capability", b"\x01\x02")],
            none,
        );
        assert_eq!(a, a2);
        assert_ne!(a, b);
        assert_eq!(w.id_for(b), 0, "first used gets id 0");
        assert_eq!(w.id_for(a), 1);
        assert_eq!(w.id_for(b), 0);
        assert_eq!(w.id_for(NO_SET), NO_XATTR);
    }

    #[test]
    fn system_and_unknown_namespaces_are_reported_and_skipped() {
        let mut w = XattrWriter::default();
        let mut skipped = Vec::new();
        let h = w.intern(
            &[
                x("system.posix_acl_access", b"x"),
                x("user.", b"x"),
                x("foo.bar", b"x"),
            ],
            |n| skipped.push(String::from_utf8_lossy(n).into_owned()),
        );
        assert_eq!(h, NO_SET);
        assert_eq!(skipped, ["system.posix_acl_access", "user.", "foo.bar"]);
    }
}
