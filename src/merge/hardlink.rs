//! Hard links across the newest-first merge: which output paths share an inode, and where the
//! inode's content comes from.
//!
//! A link names its target by path, and means the target *as it was when the link's layer was
//! applied*. Reading newest-first, that version is either earlier in the link's own layer (bound
//! at once) or the first version met in an older layer (the link waits in `pending` until
//! then). Each version a link binds to gets a [`Slot`]; binding unions the link's slot into the
//! target's (a union-find, since links can chain), so at the end every output path that belongs
//! to a group finds its inode's root:
//! - [`Source::Delivered`]: the target's own name survived and the sink already has the file;
//!   the other names are written as hard links to it.
//! - [`Source::Spooled`] / [`Source::Copy`]: the target's name is gone (deleted, replaced,
//!   AUFS-hidden). The first name of the group in byte order becomes the file, with the kept
//!   content (spooled) or the kept non-regular entry (copied); the rest link to it.
//! - [`Source::Pending`] left at the end: the target never existed, an error.

use std::collections::BTreeMap;

use hashbrown::{HashMap, HashSet};

use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::merge::paths::{NodeId, PathTree};
use crate::merge::spool::SpoolRef;

/// An inode slot: one version of a path that hard links share (see [`Links`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SlotId(u32);

impl SlotId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// A link waiting for its target in an older layer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Waiter {
    /// The link's layer.
    pub(crate) layer: u32,
    /// The link's inode slot.
    pub(crate) slot: SlotId,
    /// The link's position in its layer.
    pub(crate) ordinal: u64,
}

/// Where an inode's content comes from.
#[derive(Debug)]
pub(crate) enum Source {
    /// A link (at `link`) still looking for a version of `target` in an older layer.
    Pending { target: NodeId, link: NodeId },
    /// The winning entry at `node`, already delivered to the sink (`symlink`: it is one).
    Delivered { node: NodeId, symlink: bool },
    /// A hidden regular file whose content is in the spool.
    Spooled { entry: Entry, spool: SpoolRef },
    /// A hidden regular file whose content (and header) must be fetched by reading its layer
    /// again (entry `ordinal` of the layer's stream). Nothing else is kept until then: a layer
    /// can hide hundreds of thousands of files that no link wants.
    Refetch { ordinal: u64 },
    /// A hidden symlink, device, fifo or socket.
    Copy { entry: Entry },
}

struct Slot {
    parent: SlotId,
    source: Option<Source>,
}

/// The link bookkeeping of one merge.
#[derive(Default)]
pub(crate) struct Links {
    slots: Vec<Slot>,
    /// Links waiting for a version of the target path in an older layer.
    pending: HashMap<NodeId, Vec<Waiter>>,
    /// Output paths that belong to a group, with their slot.
    members: HashMap<NodeId, SlotId>,
    /// Header metadata of each winning link, for the hard-link entry written at the end.
    link_meta: HashMap<NodeId, Metadata>,
    /// Slots of links that a later entry of their own layer replaced: nothing uses them, so
    /// what their target turns out to be (missing, a directory) is no error. They still bind,
    /// since an entry written beneath such a link before it was replaced needs to know whether
    /// it was a symlink.
    abandoned: HashSet<SlotId>,
}

impl Links {
    /// A new inode root.
    pub(crate) fn slot(&mut self, source: Source) -> SlotId {
        let id = SlotId(self.slots.len() as u32);
        self.slots.push(Slot {
            parent: id,
            source: Some(source),
        });
        id
    }

    pub(crate) fn root(&self, mut s: SlotId) -> SlotId {
        while self.slots[s.index()].parent != s {
            s = self.slots[s.index()].parent;
        }
        s
    }

    /// Makes `link`'s inode the same as `target`'s.
    pub(crate) fn bind(&mut self, link: SlotId, target: SlotId) {
        let (l, t) = (self.root(link), self.root(target));
        if l != t {
            self.slots[l.index()].parent = t;
            self.slots[l.index()].source = None;
        }
    }

    /// The content source of `s`'s inode.
    pub(crate) fn source(&self, s: SlotId) -> Option<&Source> {
        self.slots[self.root(s).index()].source.as_ref()
    }

    pub(crate) fn source_mut(&mut self, s: SlotId) -> Option<&mut Source> {
        let r = self.root(s);
        self.slots[r.index()].source.as_mut()
    }

    /// A link waits for a version of `target` in a layer older than its own.
    pub(crate) fn wait(&mut self, target: NodeId, waiter: Waiter) {
        self.pending.entry(target).or_default().push(waiter);
    }

    /// The link of `slot` did not outlive its layer (see `abandoned`).
    pub(crate) fn abandon(&mut self, slot: SlotId) {
        self.abandoned.insert(slot);
    }

    /// Whether the link of `slot` did not outlive its layer.
    pub(crate) fn is_abandoned(&self, slot: SlotId) -> bool {
        self.abandoned.contains(&slot)
    }

    /// Whether any link waits for a target in an older layer.
    pub(crate) fn any_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Takes the links waiting for `target` that are newer than `layer`.
    pub(crate) fn take_waiting(&mut self, target: NodeId, layer: u32) -> Vec<Waiter> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let Some(list) = self.pending.get_mut(&target) else {
            return Vec::new();
        };
        let (newer, same): (Vec<_>, Vec<_>) = list.drain(..).partition(|w| w.layer > layer);
        if same.is_empty() {
            self.pending.remove(&target);
        } else {
            *list = same;
        }
        newer
    }

    /// `node` is an output path in the group of `slot`.
    pub(crate) fn add_member(&mut self, node: NodeId, slot: SlotId) {
        self.members.insert(node, slot);
    }

    /// The slots of all output paths that belong to a group.
    pub(crate) fn member_slots(&self) -> impl Iterator<Item = SlotId> + '_ {
        self.members.values().copied()
    }

    pub(crate) fn member(&self, node: NodeId) -> Option<SlotId> {
        self.members.get(&node).copied()
    }

    /// Whether `s`'s inode is a symlink: `None` while its content waits for an older layer.
    pub(crate) fn is_symlink(&self, s: SlotId) -> Option<bool> {
        match self.source(s)? {
            Source::Pending { .. } => None,
            Source::Delivered { symlink, .. } => Some(*symlink),
            Source::Copy { entry } => Some(matches!(entry.kind, EntryKind::Symlink { .. })),
            Source::Spooled { .. } | Source::Refetch { .. } => Some(false),
        }
    }

    /// `node` no longer belongs to a group (its path was replaced).
    pub(crate) fn remove_member(&mut self, node: NodeId) {
        self.members.remove(&node);
        self.link_meta.remove(&node);
    }

    pub(crate) fn set_link_meta(&mut self, node: NodeId, meta: Metadata) {
        self.link_meta.insert(node, meta);
    }

    pub(crate) fn link_meta(&self, node: NodeId) -> Metadata {
        self.link_meta.get(&node).cloned().unwrap_or_default()
    }

    /// Another output path sharing `node`'s inode, for messages.
    pub(crate) fn other_member(&self, node: NodeId) -> Option<NodeId> {
        let root = self.root(*self.members.get(&node)?);
        self.members
            .iter()
            .filter(|(&m, &s)| m != node && self.root(s) == root)
            .map(|(&m, _)| m)
            .min()
    }

    /// Whether another output path shares the inode of the delivered entry at `node`, so that
    /// replacing the entry would lose content a link needs. (Only same-layer replacements ask,
    /// which are rare, so a scan is fine.)
    pub(crate) fn is_bound(&self, node: NodeId) -> bool {
        let Some(&slot) = self.members.get(&node) else {
            return false;
        };
        if !matches!(self.source(slot), Some(Source::Delivered { node: n, .. }) if *n == node) {
            return false;
        }
        let root = self.root(slot);
        self.members
            .iter()
            .any(|(&m, &s)| m != node && self.root(s) == root)
    }

    /// The groups of output paths by inode root, in a deterministic order, each group's members
    /// sorted by path bytes. Errors if a link never found its target.
    pub(crate) fn groups(&self, tree: &PathTree) -> Result<Vec<(SlotId, Vec<NodeId>)>> {
        let mut groups: BTreeMap<SlotId, Vec<(Vec<u8>, NodeId)>> = BTreeMap::new();
        for (&node, &slot) in &self.members {
            let root = self.root(slot);
            if let Some(Source::Pending { target, link, .. }) = self.source(root) {
                return Err(Error::HardlinkTargetMissing {
                    link: tree.path(*link).shown(),
                    target: tree.path(*target).shown(),
                });
            }
            groups
                .entry(root)
                .or_default()
                .push((tree.path(node).as_bytes().to_vec(), node));
        }
        Ok(groups
            .into_iter()
            .map(|(root, mut members)| {
                members.sort();
                (root, members.into_iter().map(|(_, n)| n).collect())
            })
            .collect())
    }

    /// Links still waiting when no older layer is left (the one with the smallest target id,
    /// so the message does not depend on hash order), with the link's layer.
    pub(crate) fn unresolved(&self, tree: &PathTree) -> Option<(u32, Error)> {
        let live = |w: &&Waiter| !self.abandoned.contains(&w.slot);
        let target = self
            .pending
            .iter()
            .filter(|(_, l)| l.iter().any(|w| live(&w)))
            .map(|(&t, _)| t)
            .min()?;
        self.pending.get(&target).and_then(|list| {
            list.iter().find(live).map(|&Waiter { layer, slot, .. }| {
                let link = match self.slots[slot.index()].source.as_ref() {
                    Some(Source::Pending { link, .. }) => tree.path(*link).shown(),
                    _ => String::new(),
                };
                let e = Error::HardlinkTargetMissing {
                    link: link.clone(),
                    target: tree.path(target).shown(),
                };
                (layer, e.in_entry(link.as_bytes()))
            })
        })
    }
}
