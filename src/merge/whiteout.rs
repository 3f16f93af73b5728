//! The overlay rules about names that delete: whiteouts, opaque markers, AUFS metadata, and what
//! they (and non-directories) hide from older layers.
//!
//! Rules, as the OCI image spec and umoci apply them, with our choices where implementations
//! disagree (DESIGN.md):
//! - `.wh.NAME` removes NAME and its subtree from *older* layers only, whatever its position in
//!   its own layer; a whiteout of a missing path is a no-op. `.wh.`, `.wh..` and `.wh...` (an
//!   empty, `.` or `..` target) are errors.
//! - `.wh..wh..opq` hides every older child of its directory and keeps the directory and the
//!   children its own layer writes, whatever its position.
//! - A non-directory in layer k hides the older subtree beneath its path (it replaced a
//!   directory there), whether or not it survives itself.
//! - Any component starting with `.wh..wh.` other than the opaque marker is AUFS metadata
//!   (`.wh..wh.plnk/…`, `.wh..wh.aufs`, `.wh..wh.orph`): never output, though a hard link may
//!   still point into `.wh..wh.plnk`, and the directories above it are made as for any entry
//!   (moby creates an entry's parents before it looks at the name). A whiteout or opaque
//!   marker is one wherever it lies.
//!
//! Newest-first processing means "hidden by a newer layer" is a question about records already
//! made; [`PathTree`] keeps the newest record per path for that fast check, and [`Barriers`]
//! keeps the full history for the one question that needs a layer range: did anything hide a
//! hard link's target between the target's layer and the link's?

use hashbrown::HashMap;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::merge::paths::{NodeId, PathTree};
use crate::pager::{self, Pager};
use crate::path::EntryPath;

const PREFIX: &[u8] = b".wh.";
const META_PREFIX: &[u8] = b".wh..wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// What a layer entry's name says it is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Name {
    /// An ordinary entry.
    Plain,
    /// A whiteout of this path.
    Whiteout(EntryPath),
    /// An opaque marker for this directory.
    Opaque(EntryPath),
    /// AUFS metadata: never output. The path through its first AUFS component: what lies
    /// above it became directories all the same, as for any entry.
    Aufs(EntryPath),
}

/// Classifies an entry by its name.
pub(crate) fn classify(path: &EntryPath) -> Result<Name> {
    let Some(last) = path.file_name() else {
        return Ok(Name::Plain);
    };
    let dir = path.parent().unwrap_or_default();
    // The last name decides first, wherever it is: a whiteout inside AUFS metadata deletes
    // (only other metadata) like any whiteout.
    if last == OPAQUE {
        return Ok(Name::Opaque(dir));
    }
    if last.starts_with(META_PREFIX) || !last.starts_with(PREFIX) {
        let mut through = EntryPath::root();
        for c in path.components() {
            through = through.join(c)?;
            if c.starts_with(META_PREFIX) {
                return Ok(Name::Aufs(through));
            }
        }
        return Ok(Name::Plain);
    }
    match &last[PREFIX.len()..] {
        b"" | b"." | b".." => Err(Error::InvalidWhiteout { path: path.shown() }),
        t => Ok(Name::Whiteout(dir.join(t)?)),
    }
}

/// A hiding record: what made older content disappear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hides {
    /// A whiteout: the path and its subtree. Applies to older layers, before the layer's own
    /// entries, whatever its position.
    Whiteout,
    /// An opaque marker: the subtree only. Applies like a whiteout.
    Opaque,
    /// A non-directory at the path: the subtree only, from its position in its layer on.
    NonDir,
}

/// One hiding record: (layer, entry ordinal within the layer, what it hides).
type Record = (u32, u64, Hides);

impl Hides {
    /// The tag [`PathTree`] stores for a path's first record.
    fn tag(self) -> u8 {
        match self {
            Hides::Whiteout => 0,
            Hides::Opaque => 1,
            Hides::NonDir => 2,
        }
    }

    fn from_tag(tag: u8) -> Hides {
        match tag {
            0 => Hides::Whiteout,
            1 => Hides::Opaque,
            _ => Hides::NonDir,
        }
    }
}

/// Every hiding record, by path, for layer-range questions. Every non-directory entry makes
/// one, so nearly every path has exactly one: that first record lives in the path's
/// [`PathTree`] node, and only the rest (paths several entries touch) are kept here.
pub(crate) struct Barriers {
    /// Where each path's newest further record is in `chain`.
    more: HashMap<NodeId, u32>,
    /// The further records, each linked to the one its path made before: 16 bytes a record,
    /// where a vector per path cost a hundred (a path several layers rewrite has one per
    /// layer). Appended to only, never changed, and read back only for hard links and
    /// replaced directories, so past the memory budget it pages to disk as the path tree does.
    chain: Pager<Chained>,
}

/// A [`Record`] in [`Barriers::chain`].
#[derive(Clone, Copy)]
struct Chained {
    ordinal: u64,
    /// Index of the path's record made before this one, or [`END`].
    before: u32,
    /// The layer (the merge refuses more than `u16` can number).
    layer: u16,
    tag: u8,
}

const END: u32 = u32::MAX;

impl pager::Record for Chained {
    const PAGE_SHIFT: u32 = 12;
    const SIZE: usize = 15;
    const LOST: Chained = Chained {
        ordinal: 0,
        before: END,
        layer: 0,
        tag: 0,
    };

    fn encode(items: &[Chained], out: &mut Vec<u8>) {
        for c in items {
            out.extend_from_slice(&c.ordinal.to_le_bytes());
            out.extend_from_slice(&c.before.to_le_bytes());
            out.extend_from_slice(&c.layer.to_le_bytes());
            out.push(c.tag);
        }
    }

    fn decode(bytes: &[u8], items: &mut [Chained]) {
        for (c, b) in items.iter_mut().zip(bytes.chunks_exact(Self::SIZE)) {
            let (ordinal, rest) = b.split_at(8);
            *c = Chained {
                ordinal: u64::from_le_bytes(ordinal.try_into().unwrap_or_default()),
                before: u32::from_le_bytes(rest[..4].try_into().unwrap_or_default()),
                layer: u16::from_le_bytes(rest[4..6].try_into().unwrap_or_default()),
                tag: rest[6],
            };
        }
    }
}

impl Barriers {
    /// No records; pages, once told to keep fewer in memory, go to a file in `dir`.
    pub(crate) fn new(dir: PathBuf) -> Barriers {
        Barriers {
            more: HashMap::new(),
            chain: Pager::new(dir, "page the merge's hiding records out to"),
        }
    }

    /// Bytes held, for the memory budget.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.fixed_bytes() + self.chain.heap_bytes()
    }

    /// Bytes held that cannot page (the index of paths with further records).
    pub(crate) fn fixed_bytes(&self) -> usize {
        self.more.capacity() * (1 + 4 + 4)
    }

    /// Bytes of records, in memory or paged out.
    pub(crate) fn paged_total(&self) -> usize {
        self.chain.total_bytes()
    }

    /// Keeps at most `bytes` of records in memory (and at least a few pages).
    pub(crate) fn set_page_limit(&mut self, bytes: usize) {
        self.chain.set_limit(bytes);
    }

    /// Bytes of records written to disk so far.
    pub(crate) fn paged_out(&self) -> u64 {
        self.chain.paged_out()
    }

    /// The first I/O error of paging since the last call (see [`PathTree::take_error`]).
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.chain.take_error()
    }

    /// Records that entry `ordinal` of `layer` hides `hides` of `node`.
    pub(crate) fn record(
        &mut self,
        tree: &mut PathTree,
        node: NodeId,
        layer: u32,
        ordinal: u64,
        hides: Hides,
    ) {
        match hides {
            Hides::Whiteout => tree.hide_self(node, layer),
            Hides::Opaque | Hides::NonDir => tree.hide_children(node, layer),
        }
        if tree.first_record(node).is_none() {
            if let Ok(ord) = u32::try_from(ordinal) {
                tree.set_first_record(node, layer, ord, hides.tag());
                return;
            }
        }
        let before = self.more.get(&node).copied().unwrap_or(END);
        let i = self.chain.push(Chained {
            ordinal,
            before,
            layer: u16::try_from(layer).unwrap_or(u16::MAX),
            tag: hides.tag(),
        });
        // One record per entry at most: far fewer than `END`.
        self.more.insert(node, u32::try_from(i).unwrap_or(END));
    }

    /// The records of `node`: its first, then the further ones newest first (every question
    /// asks only whether any record matches).
    fn records<'a>(&'a self, tree: &PathTree, node: NodeId) -> impl Iterator<Item = Record> + 'a {
        let first = tree
            .first_record(node)
            .map(|(layer, ord, tag)| (layer, u64::from(ord), Hides::from_tag(tag)));
        let mut next = self.more.get(&node).copied().unwrap_or(END);
        let more = std::iter::from_fn(move || {
            if next == END || next as usize >= self.chain.len() {
                return None;
            }
            let c = self.chain.get(next as usize);
            next = c.before;
            Some((u32::from(c.layer), c.ordinal, Hides::from_tag(c.tag)))
        });
        first.into_iter().chain(more)
    }

    /// Whether the version of `node` that entry `target_ord` of layer `older` wrote was gone
    /// by the time entry `link_ord` of layer `newer` (a hard link to it) was applied: deleted
    /// or hidden by a layer in between, by the link's own layer up to the link (a link replaces
    /// its own path first), or by a later entry of its own layer making an ancestor a
    /// non-directory.
    pub(crate) fn hides_between(
        &self,
        tree: &PathTree,
        node: NodeId,
        (older, target_ord): (u32, u64),
        (newer, link_ord): (u32, u64),
    ) -> bool {
        if !tree.any_hiding(node) {
            return false;
        }
        let mut cur = node;
        loop {
            let hit = self.records(tree, cur).any(|(layer, ord, hides)| {
                if cur == node && hides != Hides::Whiteout {
                    return false;
                }
                if layer > older && layer < newer {
                    return true;
                }
                if layer == newer {
                    // A link clears its own path first, so a link at an ancestor of its own
                    // target removes the target (`<=`).
                    return hides != Hides::NonDir || ord <= link_ord;
                }
                layer == older && cur != node && hides == Hides::NonDir && ord > target_ord
            });
            if hit {
                return true;
            }
            match tree.parent(cur) {
                Some(p) => cur = p,
                None => return false,
            }
        }
    }

    /// Whether what `node` held in layer `after` was removed before entry `upto.1` of layer
    /// `upto.0` was applied: by a whiteout or a non-directory at `node`, or any hiding record
    /// at one of its ancestors, in a layer between, or in layer `upto.0` itself (its
    /// whiteouts and opaque markers apply first, its non-directories in stream order).
    pub(crate) fn removed_between(
        &self,
        tree: &PathTree,
        node: NodeId,
        after: u32,
        (upto, upto_ord): (u32, u64),
    ) -> bool {
        let before = |(l, ord, h): Record| {
            l > after && (l < upto || (l == upto && (h != Hides::NonDir || ord < upto_ord)))
        };
        if self
            .records(tree, node)
            .any(|r| r.2 != Hides::Opaque && before(r))
        {
            return true;
        }
        let mut cur = node;
        while let Some(p) = tree.parent(cur) {
            if self.records(tree, p).any(before) {
                return true;
            }
            cur = p;
        }
        false
    }

    /// Whether a layer newer than `layer` had a non-directory at `node` (so a directory entry
    /// of `layer` there was replaced and no longer describes the directory).
    pub(crate) fn nondir_after(&self, tree: &PathTree, node: NodeId, layer: u32) -> bool {
        self.records(tree, node)
            .any(|(l, _, h)| h == Hides::NonDir && l > layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::new(s.as_bytes()).unwrap()
    }

    #[test]
    fn names() {
        assert_eq!(classify(&p("a/b")).unwrap(), Name::Plain);
        assert_eq!(classify(&p("a/.wh.b")).unwrap(), Name::Whiteout(p("a/b")));
        assert_eq!(classify(&p(".wh.b")).unwrap(), Name::Whiteout(p("b")));
        assert_eq!(
            classify(&p("a/.wh..wh..opq")).unwrap(),
            Name::Opaque(p("a"))
        );
        assert_eq!(classify(&p(".wh..wh..opq")).unwrap(), Name::Opaque(p("")));
        let aufs = |s: &str| Name::Aufs(p(s));
        assert_eq!(
            classify(&p(".wh..wh.plnk/123.4")).unwrap(),
            aufs(".wh..wh.plnk")
        );
        assert_eq!(classify(&p(".wh..wh.plnk")).unwrap(), aufs(".wh..wh.plnk"));
        assert_eq!(
            classify(&p("x/.wh..wh.aufs")).unwrap(),
            aufs("x/.wh..wh.aufs")
        );
        assert_eq!(
            classify(&p(".wh..wh.orph/x")).unwrap(),
            aufs(".wh..wh.orph")
        );
        assert_eq!(
            classify(&p("x/.wh..wh.plnk/y/.wh..wh.z")).unwrap(),
            aufs("x/.wh..wh.plnk")
        );
        assert_eq!(
            classify(&p(".wh..wh.plnk/.wh.x")).unwrap(),
            Name::Whiteout(p(".wh..wh.plnk/x"))
        );
        assert_eq!(
            classify(&p("a/.wh.x.wh.y")).unwrap(),
            Name::Whiteout(p("a/x.wh.y"))
        );
        for bad in ["a/.wh.", "a/.wh..", "a/.wh..."] {
            assert!(
                matches!(classify(&p(bad)), Err(Error::InvalidWhiteout { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            classify(&p("a/.wh....")).unwrap(),
            Name::Whiteout(p("a/..."))
        );
    }

    #[test]
    fn range_questions() {
        let mut t = PathTree::new(std::env::temp_dir());
        let mut b = Barriers::new(std::env::temp_dir());
        let d = t.intern(&p("d"));
        let x = t.intern(&p("d/x"));
        b.record(&mut t, x, 4, 0, Hides::Whiteout);
        b.record(&mut t, d, 2, 0, Hides::Opaque);
        assert!(
            b.hides_between(&t, x, (1, 0), (2, 9)),
            "opaque at 2 hides x@1 from a link at 2"
        );
        assert!(!b.hides_between(&t, x, (2, 0), (3, 0)));
        assert!(b.hides_between(&t, x, (3, 0), (4, 0)));
        assert!(
            !b.hides_between(&t, d, (1, 0), (3, 0)),
            "opaque does not hide the dir itself"
        );
        // A non-directory replacing an ancestor counts only before the link in the link's
        // layer, and only after the target in the target's layer.
        let e = t.intern(&p("e"));
        let y = t.intern(&p("e/y"));
        b.record(&mut t, e, 6, 5, Hides::NonDir);
        assert!(!b.hides_between(&t, y, (5, 0), (6, 3)));
        assert!(b.hides_between(&t, y, (5, 0), (6, 7)));
        b.record(&mut t, e, 5, 5, Hides::NonDir);
        assert!(b.hides_between(&t, y, (5, 2), (6, 3)));
        assert!(!b.hides_between(&t, y, (5, 8), (6, 3)));
        assert!(b.nondir_after(&t, e, 4));
        assert!(!b.nondir_after(&t, e, 6));
    }

    #[test]
    fn paged_records_answer_as_records_in_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut t1, mut b1) = (
            PathTree::new(dir.path().into()),
            Barriers::new(dir.path().into()),
        );
        let (mut t2, mut b2) = (
            PathTree::new(dir.path().into()),
            Barriers::new(dir.path().into()),
        );
        b2.set_page_limit(0);
        let mut rng = 0x9e37_79b9_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut nodes = Vec::new();
        for i in 0..16_000 {
            let path = p(&format!("d{}/f{i}", i % 50));
            let (n1, n2) = (t1.intern(&path), t2.intern(&path));
            for _ in 0..1 + next(6) {
                let (layer, ord) = (next(20) as u32, next(1 << 20));
                let hides = Hides::from_tag(next(3) as u8);
                b1.record(&mut t1, n1, layer, ord, hides);
                b2.record(&mut t2, n2, layer, ord, hides);
            }
            nodes.push((n1, n2));
        }
        assert!(b2.paged_out() > 0 && b1.paged_out() == 0);
        for _ in 0..20_000 {
            let (n1, n2) = nodes[next(nodes.len() as u64) as usize];
            let (older, newer) = (next(20) as u32, next(20) as u32);
            let (o1, o2) = (next(1 << 20), next(1 << 20));
            assert_eq!(
                b1.hides_between(&t1, n1, (older, o1), (newer, o2)),
                b2.hides_between(&t2, n2, (older, o1), (newer, o2))
            );
            assert_eq!(
                b1.removed_between(&t1, n1, older, (newer, o2)),
                b2.removed_between(&t2, n2, older, (newer, o2))
            );
            assert_eq!(
                b1.nondir_after(&t1, n1, older),
                b2.nondir_after(&t2, n2, older)
            );
        }
        assert!(b2.take_error().is_none());
    }
}
