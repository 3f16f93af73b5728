//! [`PathTree`]: every path the merge has met, interned once, with its per-path state.
//!
//! The merge's memory is per path, so this is where it goes: one 60-byte node per path plus the
//! name bytes in one shared arena, found through a hash table keyed by (parent, name). A path is
//! never stored whole. Nodes also link to their children so a subtree can be visited when a
//! directory is replaced inside one layer.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::path::EntryPath;

/// A node of the [`PathTree`]: one path the merge has met. The root is node 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeId(u32);

impl NodeId {
    fn index(self) -> usize {
        self.0 as usize
    }
}

/// The root directory's node.
pub(crate) const ROOT: NodeId = NodeId(0);
const NONE: NodeId = NodeId(u32::MAX);
/// `meta_layer` of a directory no entry describes.
const NO_LAYER: u32 = u32::MAX;

/// What the output holds at a path, as far as the merge has decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Status {
    /// Nothing delivered and nothing required.
    Unseen,
    /// Required as a directory by delivered descendants; no directory entry delivered yet.
    Implicit,
    /// A directory was delivered.
    Dir,
    /// A symlink was delivered.
    Symlink,
    /// A regular file, device, fifo or socket was delivered.
    Other,
    /// A hard link won this path; it is delivered at the end.
    Link,
}

#[derive(Clone, Debug)]
struct Node {
    parent: NodeId,
    first_child: NodeId,
    next_sibling: NodeId,
    name_off: u32,
    name_len: u8,
    status: Status,
    /// The layer whose entry set `status`.
    status_layer: u32,
    /// The layer whose directory entry gave the delivered directory its metadata (`NONE`:
    /// the default metadata of a directory no entry describes).
    meta_layer: u32,
    /// 1 + the newest layer whose whiteout hides this path and its subtree (0: none).
    hide_self: u32,
    /// 1 + the newest layer that hides this path's descendants (opaque marker, or the path
    /// being a non-directory there) (0: none).
    hide_children: u32,
    /// 1 + the oldest layer so far that used this path as a directory (0: none): see
    /// [`PathTree::touch`].
    used_layer: u32,
    /// [`USED_DIR_FIRST`]: in `used_layer`, the path's own directory entry came before any
    /// entry beneath it; [`USED_BEFORE_DIR_FIRST`]: the same for the layer that used it
    /// before `used_layer` (the next newer one).
    used: u8,
    /// The entry ordinal (saturated) of the first use in `used_layer`.
    used_ordinal: u32,
    /// The same two for the layer that used it before `used_layer` (the next newer one).
    prev_used_layer: u32,
    prev_used_ordinal: u32,
    /// The path's first hiding record ([`Barriers`](super::whiteout::Barriers) keeps any
    /// further ones): 1 + its layer (0: none), its entry ordinal, and what it hides as the
    /// barrier module's tag. Nearly every non-directory makes exactly one record, so keeping it
    /// here spares a hash-table entry per file.
    record_layer: u32,
    record_ordinal: u32,
    record_tag: u8,
}

// The merge's memory is mostly nodes: keep them small.
const _: () = assert!(std::mem::size_of::<Node>() <= 60);

impl Node {
    /// A path met for the first time: no children, nothing delivered, nothing hidden.
    fn new(parent: NodeId, next_sibling: NodeId, name_off: u32, name_len: u8) -> Node {
        Node {
            parent,
            first_child: NONE,
            next_sibling,
            name_off,
            name_len,
            status: Status::Unseen,
            status_layer: 0,
            meta_layer: NO_LAYER,
            hide_self: 0,
            hide_children: 0,
            used_layer: 0,
            used: 0,
            used_ordinal: 0,
            prev_used_layer: 0,
            prev_used_ordinal: 0,
            record_layer: 0,
            record_ordinal: 0,
            record_tag: 0,
        }
    }
}

const USED_DIR_FIRST: u8 = 1;
const USED_BEFORE_DIR_FIRST: u8 = 2;
/// A whiteout, opaque marker or hard-link target named a path in this directory.
const NAMED_IN: u8 = 4;

/// How an entry uses a path as a directory (see [`PathTree::touch`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// The path's own directory entry.
    DirEntry,
    /// An entry beneath the path.
    Beneath,
}

/// The interned paths and their state.
pub(crate) struct PathTree {
    nodes: Vec<Node>,
    names: Vec<u8>,
    table: HashTable<NodeId>,
    hasher: hashbrown::DefaultHashBuilder,
}

impl PathTree {
    pub(crate) fn new() -> PathTree {
        PathTree {
            nodes: vec![Node::new(NONE, NONE, 0, 0)],
            names: Vec::new(),
            table: HashTable::new(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    fn hash(&self, parent: NodeId, name: &[u8]) -> u64 {
        self.hasher.hash_one((parent, name))
    }

    fn name_of(&self, id: NodeId) -> &[u8] {
        let n = &self.nodes[id.index()];
        &self.names[n.name_off as usize..n.name_off as usize + n.name_len as usize]
    }

    /// The child `name` of `parent`, if it was ever interned.
    pub(crate) fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let h = self.hash(parent, name);
        self.table
            .find(h, |&id| {
                self.nodes[id.index()].parent == parent && self.name_of(id) == name
            })
            .copied()
    }

    /// The node of `path`, creating it and its ancestors as needed.
    pub(crate) fn intern(&mut self, path: &EntryPath) -> NodeId {
        let mut cur = ROOT;
        for comp in path.components() {
            cur = match self.child(cur, comp) {
                Some(id) => id,
                None => self.add(cur, comp),
            };
        }
        cur
    }

    /// The node of `path` if it exists.
    #[cfg(test)]
    pub(crate) fn find(&self, path: &EntryPath) -> Option<NodeId> {
        let mut cur = ROOT;
        for comp in path.components() {
            cur = self.child(cur, comp)?;
        }
        Some(cur)
    }

    fn add(&mut self, parent: NodeId, name: &[u8]) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        // EntryPath guarantees components of at most NAME_MAX (255) bytes.
        let name_len = name.len().min(u8::MAX as usize) as u8;
        let name_off = self.names.len() as u32;
        self.names.extend_from_slice(&name[..name_len as usize]);
        let next_sibling = self.nodes[parent.index()].first_child;
        self.nodes
            .push(Node::new(parent, next_sibling, name_off, name_len));
        self.nodes[parent.index()].first_child = id;
        let h = self.hash(parent, name);
        let nodes = &self.nodes;
        let hasher = &self.hasher;
        let names = &self.names;
        self.table.insert_unique(h, id, |&other| {
            let n = &nodes[other.index()];
            let nm = &names[n.name_off as usize..n.name_off as usize + n.name_len as usize];
            hasher.hash_one((n.parent, nm))
        });
        id
    }

    /// The parent of `id` (`None` for the root).
    pub(crate) fn parent(&self, id: NodeId) -> Option<NodeId> {
        let p = self.nodes[id.index()].parent;
        (p != NONE).then_some(p)
    }

    /// Whether `id` lies beneath `ancestor` (not `ancestor` itself).
    pub(crate) fn is_beneath(&self, id: NodeId, ancestor: NodeId) -> bool {
        std::iter::successors(self.parent(id), |&p| self.parent(p)).any(|p| p == ancestor)
    }

    /// Rebuilds the full path of `id`.
    pub(crate) fn path(&self, id: NodeId) -> EntryPath {
        let mut comps = Vec::new();
        let mut cur = id;
        while let Some(p) = self.parent(cur) {
            comps.push(cur);
            cur = p;
        }
        let mut bytes = Vec::new();
        for &c in comps.iter().rev() {
            if !bytes.is_empty() {
                bytes.push(b'/');
            }
            bytes.extend_from_slice(self.name_of(c));
        }
        // Components were validated when first interned, so this cannot fail; fall back to the
        // root rather than panic if it ever did.
        EntryPath::new(&bytes).unwrap_or_default()
    }

    /// The status of `id` and the layer that set it.
    pub(crate) fn status(&self, id: NodeId) -> (Status, u32) {
        let n = &self.nodes[id.index()];
        (n.status, n.status_layer)
    }

    /// The first hiding record stored at `id`: (layer, ordinal, tag).
    pub(crate) fn first_record(&self, id: NodeId) -> Option<(u32, u32, u8)> {
        let n = &self.nodes[id.index()];
        (n.record_layer != 0).then(|| (n.record_layer - 1, n.record_ordinal, n.record_tag))
    }

    /// Stores the first hiding record at `id` (see [`PathTree::first_record`]).
    pub(crate) fn set_first_record(&mut self, id: NodeId, layer: u32, ordinal: u32, tag: u8) {
        let n = &mut self.nodes[id.index()];
        n.record_layer = layer.saturating_add(1);
        n.record_ordinal = ordinal;
        n.record_tag = tag;
    }

    /// The layer whose directory entry described the directory at `id`, if one did.
    pub(crate) fn meta_layer(&self, id: NodeId) -> Option<u32> {
        let l = self.nodes[id.index()].meta_layer;
        (l != NO_LAYER).then_some(l)
    }

    pub(crate) fn set_meta_layer(&mut self, id: NodeId, layer: Option<u32>) {
        self.nodes[id.index()].meta_layer = layer.unwrap_or(NO_LAYER);
    }

    /// Records that an entry of `layer` uses `id` as a directory; only the first use in a
    /// layer counts. `false` if `layer` had used it already. Layers come newest first, so
    /// what is kept is how the oldest layers so far began with the path: whether extraction
    /// made it a directory by its own entry before writing beneath it.
    pub(crate) fn touch(&mut self, id: NodeId, layer: u32, ordinal: u64, how: Use) -> bool {
        let n = &mut self.nodes[id.index()];
        if n.used_layer == layer + 1 {
            return false;
        }
        let before = if n.used & USED_DIR_FIRST != 0 {
            USED_BEFORE_DIR_FIRST
        } else {
            0
        };
        let first = if how == Use::DirEntry {
            USED_DIR_FIRST
        } else {
            0
        };
        n.prev_used_layer = n.used_layer;
        n.prev_used_ordinal = n.used_ordinal;
        n.used_layer = layer + 1;
        n.used = before | first | (n.used & NAMED_IN);
        n.used_ordinal = u32::try_from(ordinal).unwrap_or(u32::MAX);
        true
    }

    /// Whether an entry of `layer` used `id` as a directory (so far, in stream order).
    pub(crate) fn used_in(&self, id: NodeId, layer: u32) -> bool {
        self.nodes[id.index()].used_layer == layer + 1
    }

    /// Whether the oldest layer newer than `layer` that used `id` as a directory began with
    /// the path's own directory entry (so the directory replaced whatever `layer` left there
    /// before anything went beneath it). `false` if no newer layer used it.
    pub(crate) fn dir_first_after(&self, id: NodeId, layer: u32) -> bool {
        let n = &self.nodes[id.index()];
        if n.used_layer == layer + 1 {
            n.used & USED_BEFORE_DIR_FIRST != 0
        } else {
            n.used_layer > layer + 1 && n.used & USED_DIR_FIRST != 0
        }
    }

    /// The oldest layer newer than `layer` that used `id` as a directory, with the ordinal of
    /// its first entry that did; `None` if no newer layer used it.
    pub(crate) fn used_after(&self, id: NodeId, layer: u32) -> Option<(u32, u64)> {
        let n = &self.nodes[id.index()];
        if n.used_layer > layer + 1 {
            Some((n.used_layer - 1, u64::from(n.used_ordinal)))
        } else if n.used_layer == layer + 1 && n.prev_used_layer > 0 {
            Some((n.prev_used_layer - 1, u64::from(n.prev_used_ordinal)))
        } else {
            None
        }
    }

    pub(crate) fn set_status(&mut self, id: NodeId, status: Status, layer: u32) {
        let n = &mut self.nodes[id.index()];
        n.status = status;
        n.status_layer = layer;
    }

    /// Records that layer `layer` hides `id` and everything beneath it from older layers.
    pub(crate) fn hide_self(&mut self, id: NodeId, layer: u32) {
        let n = &mut self.nodes[id.index()];
        n.hide_self = n.hide_self.max(layer + 1);
    }

    /// Records that layer `layer` hides everything beneath `id` from older layers.
    pub(crate) fn hide_children(&mut self, id: NodeId, layer: u32) {
        let n = &mut self.nodes[id.index()];
        n.hide_children = n.hide_children.max(layer + 1);
    }

    /// Whether an entry of layer `layer` at `id` is hidden by a newer layer: a whiteout of the
    /// path or an ancestor, an opaque ancestor, or an ancestor that a newer layer made a
    /// non-directory.
    pub(crate) fn hidden(&self, id: NodeId, layer: u32) -> bool {
        let n = &self.nodes[id.index()];
        if n.hide_self > layer + 1 {
            return true;
        }
        let mut cur = n.parent;
        while cur != NONE {
            let a = &self.nodes[cur.index()];
            if a.hide_self > layer + 1 || a.hide_children > layer + 1 {
                return true;
            }
            cur = a.parent;
        }
        false
    }

    /// Whether `id` or an ancestor carries any hiding record (the fast pre-check before asking
    /// the barrier log for a layer range).
    pub(crate) fn any_hiding(&self, id: NodeId) -> bool {
        let mut cur = id;
        loop {
            let n = &self.nodes[cur.index()];
            if n.hide_self != 0 || (cur != id && n.hide_children != 0) {
                return true;
            }
            match self.parent(cur) {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    /// Records that a whiteout, an opaque marker or a hard link's target names a path in the
    /// directory `id` (see [`PathTree::named_beneath`]).
    pub(crate) fn mark_named_in(&mut self, id: NodeId) {
        self.nodes[id.index()].used |= NAMED_IN;
    }

    /// Whether a whiteout, opaque marker or hard link's target met so far names a path in `id`
    /// or beneath it: if `id` turns out to be a symlink of an older layer, the name went
    /// through it.
    pub(crate) fn named_beneath(&self, id: NodeId) -> bool {
        let named = |n: NodeId| self.nodes[n.index()].used & NAMED_IN != 0;
        named(id) || (self.has_children(id) && self.descendants(id).into_iter().any(named))
    }

    /// Whether any path beneath `id` was interned.
    pub(crate) fn has_children(&self, id: NodeId) -> bool {
        self.nodes[id.index()].first_child != NONE
    }

    /// The descendants of `id` (not `id` itself), depth first.
    pub(crate) fn descendants(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![self.nodes[id.index()].first_child];
        while let Some(mut c) = stack.pop() {
            while c != NONE {
                out.push(c);
                stack.push(self.nodes[c.index()].first_child);
                c = self.nodes[c.index()].next_sibling;
            }
        }
        out
    }

    /// Every node id, in creation order.
    pub(crate) fn ids(&self) -> impl Iterator<Item = NodeId> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// Number of interned paths.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.nodes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn interns_once_and_rebuilds_paths() {
        let mut t = PathTree::new();
        let a = t.intern(&p("a/b/c"));
        assert_eq!(t.intern(&p("./a/b/c/")), a);
        assert_eq!(t.path(a), p("a/b/c"));
        assert_eq!(t.find(&p("a/b")).map(|id| t.path(id)), Some(p("a/b")));
        assert_eq!(t.find(&p("a/x")), None);
        assert_eq!(t.len(), 4);
        let b = t.find(&p("a")).unwrap();
        let mut d: Vec<_> = t.descendants(b).into_iter().map(|id| t.path(id)).collect();
        d.sort();
        assert_eq!(d, vec![p("a/b"), p("a/b/c")]);
    }

    #[test]
    fn hiding_is_by_newer_layers_only() {
        let mut t = PathTree::new();
        let d = t.intern(&p("d"));
        let x = t.intern(&p("d/x"));
        t.hide_children(d, 3);
        assert!(t.hidden(x, 2));
        assert!(!t.hidden(x, 3), "same layer is not hidden");
        assert!(!t.hidden(d, 1), "opaque hides children only");
        t.hide_self(d, 5);
        assert!(t.hidden(d, 4));
        assert!(t.hidden(x, 4));
        assert!(!t.hidden(x, 5));
    }
}
