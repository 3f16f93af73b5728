//! [`PathTree`]: every path the merge has met, interned once, with its per-path state.
//!
//! The merge's memory is per path, so this is where it goes: one 32-byte node per path (a
//! 20-byte directory state more for the paths used as directories or with paths beneath), the
//! name bytes in one shared arena, and a hash table keyed by (parent, name). A path is never
//! stored whole. Directories also link to their children so a subtree can be visited when a
//! directory is replaced inside one layer.
//!
//! Nodes and names, the bulk, are held by [`Pager`]s: once the merge's share of the memory
//! budget is spent ([`PathTree::fit`]), their least recently used pages wait on disk. What stays
//! in memory whatever the budget is about 10 bytes a path: the hash table (4-byte ids), and each
//! node's 32-bit hash so that the table can grow without reading every node back.

use std::hash::BuildHasher;
use std::path::PathBuf;

use hashbrown::HashTable;

use crate::error::Error;
use crate::pager::{Pager, Record};
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

/// Layers the merge can tell apart: nodes store layer numbers (and 1 + layer numbers) in 16
/// bits, which halves the per-path cost of the four layer fields. Runtimes stop far earlier
/// (overlayfs mounts at most a few hundred lower directories).
pub(crate) const MAX_LAYERS: usize = u16::MAX as usize;
/// `meta_layer` of a directory no entry describes.
const NO_LAYER: u16 = u16::MAX;
/// `dir` of a node never used as a directory.
const NO_DIR: u32 = u32::MAX;

/// A layer number as stored: the merge refuses images of [`MAX_LAYERS`] layers or more, so
/// both a layer and 1 + a layer fit.
fn stored(layer: u32) -> u16 {
    debug_assert!((layer as usize) < MAX_LAYERS);
    layer.min(u32::from(NO_LAYER) - 1) as u16
}

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

/// One path: 32 bytes. What only paths with something beneath need lives in a [`DirState`] of
/// its own, since nearly every path is a file.
#[derive(Clone, Copy, Debug)]
struct Node {
    parent: NodeId,
    next_sibling: NodeId,
    name_off: u32,
    /// The entry ordinal of the path's first hiding record (see `record_layer`).
    record_ordinal: u32,
    /// Index of the path's [`DirState`], or [`NO_DIR`].
    dir: u32,
    /// The layer whose entry set `status`.
    status_layer: u16,
    /// 1 + the newest layer whose whiteout hides this path and its subtree (0: none).
    hide_self: u16,
    /// 1 + the newest layer that hides this path's descendants (opaque marker, or the path
    /// being a non-directory there) (0: none).
    hide_children: u16,
    /// The path's first hiding record ([`Barriers`](super::whiteout::Barriers) keeps any
    /// further ones): 1 + its layer (0: none), its entry ordinal, and what it hides as the
    /// barrier module's tag. Nearly every non-directory makes exactly one record, so keeping it
    /// here spares a hash-table entry per file.
    record_layer: u16,
    name_len: u8,
    status: Status,
    record_tag: u8,
    /// [`NAMED_IN`] or 0.
    flags: u8,
}

// The merge's memory is mostly nodes: keep them small.
const _: () = assert!(std::mem::size_of::<Node>() <= 32);

impl Status {
    fn from_u8(b: u8) -> Status {
        [
            Status::Unseen,
            Status::Implicit,
            Status::Dir,
            Status::Symlink,
            Status::Other,
            Status::Link,
        ]
        .get(usize::from(b))
        .copied()
        .unwrap_or(Status::Unseen)
    }
}

impl Record for Node {
    const PAGE_SHIFT: u32 = 12;
    const SIZE: usize = 32;
    /// A detached leaf: walks up (no parent) and across (no sibling) stop at it.
    const LOST: Node = Node::new(NONE, NONE, 0, 0);

    fn encode(items: &[Node], out: &mut Vec<u8>) {
        for n in items {
            for w in [
                n.parent.0,
                n.next_sibling.0,
                n.name_off,
                n.record_ordinal,
                n.dir,
            ] {
                out.extend_from_slice(&w.to_le_bytes());
            }
            for h in [n.status_layer, n.hide_self, n.hide_children, n.record_layer] {
                out.extend_from_slice(&h.to_le_bytes());
            }
            out.extend_from_slice(&[n.name_len, n.status as u8, n.record_tag, n.flags]);
        }
    }

    fn decode(bytes: &[u8], items: &mut [Node]) {
        for (n, b) in items.iter_mut().zip(bytes.chunks_exact(Node::SIZE)) {
            let w = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            let h = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
            *n = Node {
                parent: NodeId(w(0)),
                next_sibling: NodeId(w(4)),
                name_off: w(8),
                record_ordinal: w(12),
                dir: w(16),
                status_layer: h(20),
                hide_self: h(22),
                hide_children: h(24),
                record_layer: h(26),
                name_len: b[28],
                status: Status::from_u8(b[29]),
                record_tag: b[30],
                flags: b[31],
            };
        }
    }
}

impl Node {
    /// A path met for the first time: no children, nothing delivered, nothing hidden.
    const fn new(parent: NodeId, next_sibling: NodeId, name_off: u32, name_len: u8) -> Node {
        Node {
            parent,
            next_sibling,
            name_off,
            record_ordinal: 0,
            dir: NO_DIR,
            status_layer: 0,
            hide_self: 0,
            hide_children: 0,
            record_layer: 0,
            name_len,
            status: Status::Unseen,
            record_tag: 0,
            flags: 0,
        }
    }
}

/// What the merge keeps about a path that entries used as a directory, or that has paths
/// beneath it.
#[derive(Clone, Debug)]
struct DirState {
    /// The last child interned (children are linked by `Node::next_sibling`).
    first_child: NodeId,
    /// 1 + the oldest layer so far that used this path as a directory (0: none): see
    /// [`PathTree::touch`].
    used_layer: u16,
    /// The same for the layer that used it before `used_layer` (the next newer one).
    prev_used_layer: u16,
    /// The layer whose directory entry gave the delivered directory its metadata
    /// ([`NO_LAYER`]: the default metadata of a directory no entry describes).
    meta_layer: u16,
    /// [`USED_DIR_FIRST`]: in `used_layer`, the path's own directory entry came before any
    /// entry beneath it; [`USED_BEFORE_DIR_FIRST`]: the same for `prev_used_layer`.
    used: u8,
    /// The entry ordinal (saturated) of the first use in `used_layer`.
    used_ordinal: u32,
    /// The same for `prev_used_layer`.
    prev_used_ordinal: u32,
}

const NEW_DIR: DirState = DirState {
    first_child: NONE,
    used_layer: 0,
    prev_used_layer: 0,
    meta_layer: NO_LAYER,
    used: 0,
    used_ordinal: 0,
    prev_used_ordinal: 0,
};

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
    nodes: Pager<Node>,
    dirs: Vec<DirState>,
    names: Pager<u8>,
    /// Each node's hash: the table grows (rehashing every entry) without reading nodes back.
    hashes: Vec<u32>,
    /// The (parent, name) table in shards, by the top bits of the hash: each grows on its own,
    /// so growing never holds two copies of the whole table at once.
    tables: Vec<HashTable<NodeId>>,
    hasher: hashbrown::DefaultHashBuilder,
}

const SHARD_BITS: u32 = 6;

fn shard(hash: u32) -> usize {
    (hash >> (32 - SHARD_BITS)) as usize
}

/// What the table is given for a stored 32-bit hash: the low bits (the bucket) stay those of
/// the hash, the top seven (the tag compared before any node is read) mix all of its bits.
fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

impl PathTree {
    /// An empty tree (the root alone) whose pages, if the budget sends them to disk, go to a
    /// temporary file in `dir`.
    pub(crate) fn new(dir: PathBuf) -> PathTree {
        let mut nodes = Pager::new(dir.clone(), "page the merge's path nodes out to");
        nodes.push(Node::new(NONE, NONE, 0, 0));
        PathTree {
            nodes,
            dirs: Vec::new(),
            names: Pager::new(dir, "page the merge's path names out to"),
            hashes: vec![0],
            tables: (0..1 << SHARD_BITS).map(|_| HashTable::new()).collect(),
            hasher: hashbrown::DefaultHashBuilder::default(),
        }
    }

    fn hash(&self, parent: NodeId, name: &[u8]) -> u32 {
        self.hasher.hash_one((parent, name)) as u32
    }

    fn node(&self, id: NodeId) -> Node {
        self.nodes.get(id.index())
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        self.nodes.get_mut(id.index())
    }

    /// Calls `f` with the name of `n`.
    fn with_name<R>(&self, n: &Node, f: impl FnOnce(&[u8]) -> R) -> R {
        self.names
            .with_slice(n.name_off as usize, usize::from(n.name_len), f)
    }

    /// The child `name` of `parent`, if it was ever interned.
    pub(crate) fn child(&self, parent: NodeId, name: &[u8]) -> Option<NodeId> {
        let h = self.hash(parent, name);
        self.tables[shard(h)]
            .find(spread(h), |&id| {
                // The stored hash first: a node read is a page read when the tree is paged.
                if self.hashes[id.index()] != h {
                    return false;
                }
                let n = self.node(id);
                n.parent == parent
                    && usize::from(n.name_len) == name.len()
                    && self.with_name(&n, |nm| nm == name)
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
        let name = &name[..name.len().min(u8::MAX as usize)];
        // A name never straddles two pages of the arena.
        if self.names.room() < name.len() {
            self.names.skip_to_next_page();
        }
        let name_off = self.names.push_slice(name) as u32;
        let next_sibling = self.first_child(parent);
        self.nodes
            .push(Node::new(parent, next_sibling, name_off, name.len() as u8));
        self.dir_mut(parent).first_child = id;
        let h = self.hash(parent, name);
        self.hashes.push(h);
        let hashes = &self.hashes;
        self.tables[shard(h)].insert_unique(spread(h), id, |&other| spread(hashes[other.index()]));
        id
    }

    /// The parent of `id` (`None` for the root).
    pub(crate) fn parent(&self, id: NodeId) -> Option<NodeId> {
        let p = self.node(id).parent;
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
            self.with_name(&self.node(c), |name| bytes.extend_from_slice(name));
        }
        // Components were validated when first interned, so this cannot fail; fall back to the
        // root rather than panic if it ever did.
        EntryPath::new(&bytes).unwrap_or_default()
    }

    /// The status of `id` and the layer that set it.
    pub(crate) fn status(&self, id: NodeId) -> (Status, u32) {
        let n = self.node(id);
        (n.status, u32::from(n.status_layer))
    }

    /// The first hiding record stored at `id`: (layer, ordinal, tag).
    pub(crate) fn first_record(&self, id: NodeId) -> Option<(u32, u32, u8)> {
        let n = self.node(id);
        (n.record_layer != 0).then(|| {
            let layer = u32::from(n.record_layer) - 1;
            (layer, n.record_ordinal, n.record_tag)
        })
    }

    /// Stores the first hiding record at `id` (see [`PathTree::first_record`]).
    pub(crate) fn set_first_record(&mut self, id: NodeId, layer: u32, ordinal: u32, tag: u8) {
        let n = self.node_mut(id);
        n.record_layer = stored(layer) + 1;
        n.record_ordinal = ordinal;
        n.record_tag = tag;
    }

    fn dir(&self, id: NodeId) -> Option<&DirState> {
        self.dirs.get(self.node(id).dir as usize)
    }

    /// The directory state of `id`, made on first use.
    fn dir_mut(&mut self, id: NodeId) -> &mut DirState {
        let dirs = self.dirs.len() as u32;
        let n = self.node_mut(id);
        if n.dir == NO_DIR {
            // Fewer directories than nodes, and nodes are numbered in 32 bits.
            n.dir = dirs;
        }
        let d = n.dir as usize;
        if d == self.dirs.len() {
            self.dirs.push(NEW_DIR);
        }
        &mut self.dirs[d]
    }

    /// The layer whose directory entry described the directory at `id`, if one did.
    pub(crate) fn meta_layer(&self, id: NodeId) -> Option<u32> {
        let l = self.dir(id).map_or(NO_LAYER, |d| d.meta_layer);
        (l != NO_LAYER).then_some(u32::from(l))
    }

    pub(crate) fn set_meta_layer(&mut self, id: NodeId, layer: Option<u32>) {
        if layer.is_some() || self.dir(id).is_some() {
            self.dir_mut(id).meta_layer = layer.map_or(NO_LAYER, stored);
        }
    }

    /// Records that an entry of `layer` uses `id` as a directory; only the first use in a
    /// layer counts. `false` if `layer` had used it already. Layers come newest first, so
    /// what is kept is how the oldest layers so far began with the path: whether extraction
    /// made it a directory by its own entry before writing beneath it.
    pub(crate) fn touch(&mut self, id: NodeId, layer: u32, ordinal: u64, how: Use) -> bool {
        let layer = stored(layer) + 1;
        let d = self.dir_mut(id);
        if d.used_layer == layer {
            return false;
        }
        let before = if d.used & USED_DIR_FIRST != 0 {
            USED_BEFORE_DIR_FIRST
        } else {
            0
        };
        let first = if how == Use::DirEntry {
            USED_DIR_FIRST
        } else {
            0
        };
        d.prev_used_layer = d.used_layer;
        d.prev_used_ordinal = d.used_ordinal;
        d.used_layer = layer;
        d.used = before | first;
        d.used_ordinal = u32::try_from(ordinal).unwrap_or(u32::MAX);
        true
    }

    /// `id`'s directory use as (1 + layer, the same for the layer before, flags), all zero
    /// when it was never used as a directory.
    fn uses(&self, id: NodeId) -> (u32, u32, u8) {
        self.dir(id).map_or((0, 0, 0), |d| {
            (
                u32::from(d.used_layer),
                u32::from(d.prev_used_layer),
                d.used,
            )
        })
    }

    /// Whether an entry of `layer` used `id` as a directory (so far, in stream order).
    pub(crate) fn used_in(&self, id: NodeId, layer: u32) -> bool {
        self.uses(id).0 == layer + 1
    }

    /// Whether the oldest layer newer than `layer` that used `id` as a directory began with
    /// the path's own directory entry (so the directory replaced whatever `layer` left there
    /// before anything went beneath it). `false` if no newer layer used it.
    pub(crate) fn dir_first_after(&self, id: NodeId, layer: u32) -> bool {
        let (used_layer, _, used) = self.uses(id);
        if used_layer == layer + 1 {
            used & USED_BEFORE_DIR_FIRST != 0
        } else {
            used_layer > layer + 1 && used & USED_DIR_FIRST != 0
        }
    }

    /// The oldest layer newer than `layer` that used `id` as a directory, with the ordinal of
    /// its first entry that did; `None` if no newer layer used it.
    pub(crate) fn used_after(&self, id: NodeId, layer: u32) -> Option<(u32, u64)> {
        let d = self.dir(id)?;
        let (used, prev) = (u32::from(d.used_layer), u32::from(d.prev_used_layer));
        if used > layer + 1 {
            Some((used - 1, u64::from(d.used_ordinal)))
        } else if used == layer + 1 && prev > 0 {
            Some((prev - 1, u64::from(d.prev_used_ordinal)))
        } else {
            None
        }
    }

    pub(crate) fn set_status(&mut self, id: NodeId, status: Status, layer: u32) {
        let n = self.node_mut(id);
        n.status = status;
        n.status_layer = stored(layer);
    }

    /// Records that layer `layer` hides `id` and everything beneath it from older layers.
    pub(crate) fn hide_self(&mut self, id: NodeId, layer: u32) {
        let n = self.node_mut(id);
        n.hide_self = n.hide_self.max(stored(layer) + 1);
    }

    /// Records that layer `layer` hides everything beneath `id` from older layers.
    pub(crate) fn hide_children(&mut self, id: NodeId, layer: u32) {
        let n = self.node_mut(id);
        n.hide_children = n.hide_children.max(stored(layer) + 1);
    }

    /// Whether an entry of layer `layer` at `id` is hidden by a newer layer: a whiteout of the
    /// path or an ancestor, an opaque ancestor, or an ancestor that a newer layer made a
    /// non-directory.
    pub(crate) fn hidden(&self, id: NodeId, layer: u32) -> bool {
        let layer = stored(layer) + 1;
        let n = self.node(id);
        if n.hide_self > layer {
            return true;
        }
        let mut cur = n.parent;
        while cur != NONE {
            let a = self.node(cur);
            if a.hide_self > layer || a.hide_children > layer {
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
            let n = self.node(cur);
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
        self.node_mut(id).flags |= NAMED_IN;
    }

    /// Whether a whiteout, opaque marker or hard link's target met so far names a path in `id`
    /// or beneath it: if `id` turns out to be a symlink of an older layer, the name went
    /// through it.
    pub(crate) fn named_beneath(&self, id: NodeId) -> bool {
        let named = |n: NodeId| self.node(n).flags & NAMED_IN != 0;
        named(id) || (self.has_children(id) && self.descendants(id).into_iter().any(named))
    }

    /// Whether any path beneath `id` was interned.
    pub(crate) fn has_children(&self, id: NodeId) -> bool {
        self.first_child(id) != NONE
    }

    fn first_child(&self, id: NodeId) -> NodeId {
        self.dir(id).map_or(NONE, |d| d.first_child)
    }

    /// The descendants of `id` (not `id` itself), depth first.
    pub(crate) fn descendants(&self, id: NodeId) -> Vec<NodeId> {
        let mut out = Vec::new();
        let mut stack = vec![self.first_child(id)];
        while let Some(mut c) = stack.pop() {
            while c != NONE {
                out.push(c);
                stack.push(self.first_child(c));
                c = self.node(c).next_sibling;
            }
        }
        out
    }

    /// Bytes held in memory (capacities), for the memory budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.fixed_bytes() + self.nodes.heap_bytes() + self.names.heap_bytes()
    }

    /// Bytes held in memory that no page holds (vectors by length: the pages of their unused
    /// capacity are never touched).
    /// Bytes held that cannot page (the lookup table, the hashes, directory states).
    pub(crate) fn fixed_bytes(&self) -> usize {
        self.dirs.len() * std::mem::size_of::<DirState>()
            + self.hashes.len() * 4
            + self
                .tables
                .iter()
                .map(HashTable::allocation_size)
                .sum::<usize>()
    }

    /// Bytes of nodes and names, in memory or paged out.
    pub(crate) fn paged_total(&self) -> usize {
        self.nodes.total_bytes() + self.names.total_bytes()
    }

    /// Keeps at most `bytes` of nodes and names in memory (and at least a few pages of each),
    /// shared in proportion to their sizes.
    pub(crate) fn set_page_limit(&mut self, bytes: usize) {
        let (n, m) = (self.nodes.total_bytes(), self.names.total_bytes());
        let for_nodes = (bytes as u128 * n as u128 / (n + m).max(1) as u128) as usize;
        self.nodes.set_limit(for_nodes);
        self.names.set_limit(bytes - for_nodes);
    }

    /// Bytes of nodes and names written to disk so far.
    pub(crate) fn paged_out(&self) -> u64 {
        self.nodes.paged_out() + self.names.paged_out()
    }

    /// The first I/O error of paging since the last call: lookups since it may have read lost
    /// pages, so the merge must stop with it.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        let nodes = self.nodes.take_error();
        let names = self.names.take_error();
        nodes.or(names)
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
        let mut t = PathTree::new(std::env::temp_dir());
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
    fn a_paged_tree_answers_as_one_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut paged, mut whole) = (
            PathTree::new(dir.path().into()),
            PathTree::new(dir.path().into()),
        );
        paged.set_page_limit(0);
        let path = |i: usize| p(&format!("d{}/e{}/name-{i}", i % 37, i % 11));
        let mut ids = Vec::new();
        for i in 0..40_000 {
            let (a, b) = (paged.intern(&path(i)), whole.intern(&path(i)));
            assert_eq!(a, b);
            if i % 3 == 0 {
                paged.set_status(a, Status::Other, 2);
                paged.hide_self(a, 1);
            }
            ids.push(a);
        }
        assert!(paged.paged_out() > 0 && whole.paged_out() == 0);
        assert!(paged.heap_bytes() < whole.heap_bytes());
        // Read back in another order than written: names, parents, changes all kept.
        for (i, &id) in ids.iter().enumerate().rev() {
            assert_eq!(paged.path(id), path(i));
            assert_eq!(paged.find(&path(i)), Some(id));
            let want = if i % 3 == 0 {
                Status::Other
            } else {
                Status::Unseen
            };
            assert_eq!(paged.status(id).0, want);
            assert_eq!(paged.hidden(id, 0), i % 3 == 0);
        }
        let d = paged.find(&p("d5")).unwrap();
        assert_eq!(paged.descendants(d), whole.descendants(d));
        assert!(paged.take_error().is_none());
    }

    #[test]
    fn hiding_is_by_newer_layers_only() {
        let mut t = PathTree::new(std::env::temp_dir());
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
