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
//!   still point into `.wh..wh.plnk`.
//!
//! Newest-first processing means "hidden by a newer layer" is a question about records already
//! made; [`PathTree`] keeps the newest record per path for that fast check, and [`Barriers`]
//! keeps the full history for the one question that needs a layer range: did anything hide a
//! hard link's target between the target's layer and the link's?

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::merge::paths::{NodeId, PathTree};
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
    /// AUFS metadata: never output.
    Aufs,
}

/// Classifies an entry by its name.
pub(crate) fn classify(path: &EntryPath) -> Result<Name> {
    let Some(last) = path.file_name() else {
        return Ok(Name::Plain);
    };
    let dir = path.parent().unwrap_or_default();
    if dir.components().any(|c| c.starts_with(META_PREFIX)) {
        return Ok(Name::Aufs);
    }
    if last == OPAQUE {
        return Ok(Name::Opaque(dir));
    }
    if last.starts_with(META_PREFIX) {
        return Ok(Name::Aufs);
    }
    if let Some(target) = last.strip_prefix(PREFIX) {
        return match target {
            b"" | b"." | b".." => Err(Error::InvalidWhiteout { path: path.lossy() }),
            t => Ok(Name::Whiteout(dir.join(t)?)),
        };
    }
    Ok(Name::Plain)
}

/// What a record hides.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hides {
    /// The path and its subtree (a whiteout).
    SelfAndChildren,
    /// Only the subtree (an opaque marker, or a non-directory at the path).
    Children,
}

/// Every hiding record, by path, for layer-range questions.
#[derive(Default)]
pub(crate) struct Barriers {
    log: HashMap<NodeId, Vec<(u32, Hides)>>,
}

impl Barriers {
    /// Records that `layer` hides `hides` of `node` from older layers.
    pub(crate) fn record(&mut self, tree: &mut PathTree, node: NodeId, layer: u32, hides: Hides) {
        match hides {
            Hides::SelfAndChildren => tree.hide_self(node, layer),
            Hides::Children => tree.hide_children(node, layer),
        }
        let log = self.log.entry(node).or_default();
        if !log.contains(&(layer, hides)) {
            log.push((layer, hides));
        }
    }

    /// Whether a record from a layer in `(older, newer]` hides an entry of layer `older` at
    /// `node`: the question a hard link of layer `newer` asks about the version of its target
    /// found in layer `older`.
    pub(crate) fn hides_between(
        &self,
        tree: &PathTree,
        node: NodeId,
        older: u32,
        newer: u32,
    ) -> bool {
        if !tree.any_hiding(node) {
            return false;
        }
        let in_range = |l: u32| l > older && l <= newer;
        let mut cur = node;
        loop {
            if let Some(log) = self.log.get(&cur) {
                let hit = log
                    .iter()
                    .any(|&(l, h)| in_range(l) && (cur != node || h == Hides::SelfAndChildren));
                if hit {
                    return true;
                }
            }
            match tree.parent(cur) {
                Some(p) => cur = p,
                None => return false,
            }
        }
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
        assert_eq!(classify(&p(".wh..wh.plnk/123.4")).unwrap(), Name::Aufs);
        assert_eq!(classify(&p(".wh..wh.plnk")).unwrap(), Name::Aufs);
        assert_eq!(classify(&p("x/.wh..wh.aufs")).unwrap(), Name::Aufs);
        assert_eq!(classify(&p(".wh..wh.orph/x")).unwrap(), Name::Aufs);
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
        let mut t = PathTree::new();
        let mut b = Barriers::default();
        let d = t.intern(&p("d"));
        let x = t.intern(&p("d/x"));
        b.record(&mut t, x, 4, Hides::SelfAndChildren);
        b.record(&mut t, d, 2, Hides::Children);
        assert!(
            b.hides_between(&t, x, 1, 2),
            "opaque at 2 hides x@1 from a link at 2"
        );
        assert!(!b.hides_between(&t, x, 2, 3));
        assert!(b.hides_between(&t, x, 3, 4));
        assert!(
            !b.hides_between(&t, d, 1, 3),
            "opaque does not hide the directory itself"
        );
    }
}
