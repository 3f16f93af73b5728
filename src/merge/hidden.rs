//! [`HiddenVersions`]: the versions of paths that the layer being read has but the output does
//! not show, kept until the layer ends in case a later entry of the same layer links to one.
//!
//! A base layer that newer layers rewrite in bulk hides one version per rewritten path, and
//! nearly all of them are regular files that can be fetched again by re-reading the layer, for
//! which the entry ordinal is all there is to keep. Those go in a map of 8-byte values; the
//! rest keep a full [`Hidden`].

use hashbrown::HashMap;

use super::hardlink::SlotId;
use super::paths::NodeId;
use super::spool::SpoolRef;
use crate::entry::Entry;

/// A hidden version. Entries are boxed: the map should cost little per slot it has not filled.
pub(super) enum Hidden {
    Dir,
    /// Bound to an inode slot (spooled, copied, or a link).
    Slot(SlotId),
    /// A regular file whose content was spooled in case a link wants it.
    Spooled(Box<(Entry, SpoolRef)>),
    /// A regular file whose header and content can be fetched again by re-reading the layer
    /// (its entry ordinal).
    Refetchable(u64),
    /// A symlink, device, fifo or socket.
    Other(Box<Entry>),
}

const _: () = assert!(std::mem::size_of::<Hidden>() <= 24);

/// The layer's hidden versions, by path.
#[derive(Default)]
pub(super) struct HiddenVersions {
    /// [`Hidden::Refetchable`] versions whose ordinal fits 32 bits.
    files: HashMap<NodeId, u32>,
    /// Every other version.
    kept: HashMap<NodeId, Hidden>,
}

impl HiddenVersions {
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.kept.is_empty()
    }

    pub(super) fn clear(&mut self) {
        self.files.clear();
        self.kept.clear();
    }

    /// Makes `version` the hidden version at `node`.
    pub(super) fn insert(&mut self, node: NodeId, version: Hidden) {
        match version {
            Hidden::Refetchable(ordinal) if u32::try_from(ordinal).is_ok() => {
                self.kept.remove(&node);
                self.files.insert(node, ordinal as u32);
            }
            version => {
                self.files.remove(&node);
                self.kept.insert(node, version);
            }
        }
    }

    pub(super) fn remove(&mut self, node: &NodeId) -> Option<Hidden> {
        match self.files.remove(node) {
            Some(ordinal) => Some(Hidden::Refetchable(u64::from(ordinal))),
            None => self.kept.remove(node),
        }
    }

    /// The version at `node` unless it is a refetchable file ([`HiddenVersions::has_file`]),
    /// which the questions asked through this (is it a symlink, a link's slot?) answer no to.
    pub(super) fn get(&self, node: &NodeId) -> Option<&Hidden> {
        self.kept.get(node)
    }

    /// Whether the version at `node` is a refetchable regular file.
    pub(super) fn has_file(&self, node: NodeId) -> bool {
        self.files.contains_key(&node)
    }

    /// The inode slots of the versions bound to one.
    pub(super) fn slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.kept.values().filter_map(|h| match h {
            Hidden::Slot(s) => Some(*s),
            _ => None,
        })
    }

    /// Bytes held, for the memory budget.
    pub(super) fn heap_bytes(&self) -> usize {
        self.files.capacity() * 9 + self.kept.capacity() * (1 + 4 + 24)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_version_is_found_replaced_and_removed_like_any_other() {
        let mut v = HiddenVersions::default();
        let n = crate::merge::paths::ROOT;
        v.insert(n, Hidden::Refetchable(7));
        assert!(v.has_file(n) && v.get(&n).is_none() && !v.is_empty());
        v.insert(n, Hidden::Dir);
        assert!(!v.has_file(n) && matches!(v.get(&n), Some(Hidden::Dir)));
        v.insert(n, Hidden::Refetchable(u64::from(u32::MAX) + 1));
        assert!(
            !v.has_file(n),
            "an ordinal past 32 bits stays a full version"
        );
        assert!(matches!(v.remove(&n), Some(Hidden::Refetchable(o)) if o == 1 << 32));
        v.insert(n, Hidden::Refetchable(3));
        assert!(matches!(v.remove(&n), Some(Hidden::Refetchable(3))));
        assert!(v.is_empty() && v.remove(&n).is_none());
    }
}
