//! [`EntryPath`]: a path inside the image, validated once where it enters the pipeline.
//!
//! Layers write the same path many ways (`./a`, `a/`, `/a`, `a//b`); after [`EntryPath::new`]
//! there is one spelling: components joined by single `/`, no leading or trailing `/`, no `.`
//! components, and the empty path for the root. `..` components, NUL bytes and names longer
//! than the 255 bytes a Linux file name may have are refused, so every sink can join an
//! `EntryPath` to its root without checking again. Names are bytes: non-UTF-8 names survive.

use std::fmt;

use crate::error::{Error, Result};

/// The longest file name component Linux accepts (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// The longest path accepted, in bytes (Linux's `PATH_MAX` less the NUL): the runtimes
/// extract each entry through its full path, so a longer name fails with `ENAMETOOLONG` there;
/// refusing it here also bounds the depth of a tree at 2048 levels, and with it what a hostile
/// layer of a few KB can cost.
pub const PATH_MAX: usize = 4095;

/// The longest name (in bytes) an error message shows whole; a longer one is shown as its
/// head and tail with its length, so that a hostile 100 KB name gives a short message.
pub const SHOWN_NAME_MAX: usize = 200;

/// `name` as lossy UTF-8 for a message: whole up to [`SHOWN_NAME_MAX`] bytes, otherwise
/// `head…tail (N bytes)`, cut on character boundaries.
pub fn shown_name(name: &[u8]) -> String {
    if name.len() <= SHOWN_NAME_MAX {
        return String::from_utf8_lossy(name).into_owned();
    }
    let keep = SHOWN_NAME_MAX / 2 - 4;
    let text = String::from_utf8_lossy(name);
    let mut head = keep.min(text.len());
    while !text.is_char_boundary(head) {
        head -= 1;
    }
    let mut tail = text.len() - keep.min(text.len());
    while !text.is_char_boundary(tail) {
        tail += 1;
    }
    format!(
        "{}…{} ({} bytes)",
        &text[..head],
        &text[tail.max(head)..],
        name.len()
    )
}

/// A normalized, validated path relative to the image root; the empty path is the root.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct EntryPath(Box<[u8]>);

impl EntryPath {
    /// The root directory.
    pub fn root() -> EntryPath {
        EntryPath(Box::default())
    }

    /// Normalizes `raw` as a tar header spells it, refusing paths that would leave the root.
    ///
    /// Leading `/` and `./`, repeated and trailing `/` and `.` components are dropped; a `..`
    /// removes the component before it, lexically, as the runtimes' `filepath.Clean` does (a
    /// symlink there is not followed: `l/..` is the root whatever `l` is). A `..` with nothing
    /// left to remove (the path would leave the root), NUL bytes, components over
    /// `NAME_MAX` (255) bytes and paths over [`PATH_MAX`] (4095) bytes are errors.
    pub fn new(raw: &[u8]) -> Result<EntryPath> {
        let hostile = |reason| Error::HostilePath {
            path: shown_name(raw),
            reason,
        };
        if raw.contains(&0) {
            return Err(hostile("contains a NUL byte"));
        }
        let mut out = Vec::with_capacity(raw.len());
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => continue,
                b".." if out.is_empty() => return Err(hostile("leaves the root by '..'")),
                b".." => {
                    let cut = out.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    out.truncate(cut);
                }
                c if c.len() > NAME_MAX => return Err(hostile("has a component over 255 bytes")),
                c => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(c);
                }
            }
        }
        if out.len() > PATH_MAX {
            return Err(hostile("is longer than PATH_MAX (4095 bytes)"));
        }
        Ok(EntryPath(out.into_boxed_slice()))
    }

    /// The path's bytes, `a/b/c` (empty for the root).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Whether this is the root directory.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The components, outermost first; none for the root.
    pub fn components(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.0.split(|&b| b == b'/').filter(|c| !c.is_empty())
    }

    /// Number of components (0 for the root).
    pub fn depth(&self) -> usize {
        if self.0.is_empty() {
            0
        } else {
            self.0.iter().filter(|&&b| b == b'/').count() + 1
        }
    }

    /// The last component; `None` for the root.
    pub fn file_name(&self) -> Option<&[u8]> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        })
    }

    /// The parent directory; `None` for the root.
    pub fn parent(&self) -> Option<EntryPath> {
        if self.0.is_empty() {
            return None;
        }
        Some(match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => EntryPath(self.0[..i].into()),
            None => EntryPath::root(),
        })
    }

    /// The ancestor made of this path's first `end` bytes; `end` must be the path's length
    /// or the position of one of its `/` separators.
    pub(crate) fn ancestor_bytes(&self, end: usize) -> EntryPath {
        EntryPath(self.0[..end.min(self.0.len())].into())
    }

    /// This path with `name` appended; `name` must be one valid component.
    pub fn join(&self, name: &[u8]) -> Result<EntryPath> {
        let hostile = |reason| Error::HostilePath {
            path: shown_name(name),
            reason,
        };
        if name.is_empty() || name == b"." || name == b".." || name.contains(&b'/') {
            return Err(hostile("is not a single file name"));
        }
        if name.contains(&0) {
            return Err(hostile("contains a NUL byte"));
        }
        if name.len() > NAME_MAX {
            return Err(hostile("has a component over 255 bytes"));
        }
        let mut v = Vec::with_capacity(self.0.len() + 1 + name.len());
        v.extend_from_slice(&self.0);
        if !v.is_empty() {
            v.push(b'/');
        }
        v.extend_from_slice(name);
        Ok(EntryPath(v.into_boxed_slice()))
    }

    /// Whether `self` is `other` or lies beneath it.
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        other.0.is_empty()
            || (self.0.starts_with(&other.0)
                && (self.0.len() == other.0.len() || self.0[other.0.len()] == b'/'))
    }

    /// The ancestors from the root down to the parent (not including `self`).
    pub fn ancestors(&self) -> impl Iterator<Item = EntryPath> + '_ {
        let root = std::iter::once(EntryPath::root()).filter(move |_| !self.0.is_empty());
        let inner = self
            .0
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .map(move |(i, _)| EntryPath(self.0[..i].into()));
        root.chain(inner)
    }

    /// A printable form, `/a/b` (lossy UTF-8).
    pub fn display(&self) -> impl fmt::Display + '_ {
        Display(self)
    }

    /// The path as lossy UTF-8 without the leading `/`.
    pub fn lossy(&self) -> String {
        String::from_utf8_lossy(&self.0).into_owned()
    }

    /// The path for a message: as [`lossy`](Self::lossy), but a path over
    /// [`SHOWN_NAME_MAX`] bytes is shortened to its head and tail with its length, so that a
    /// hostile name cannot make a message huge.
    pub fn shown(&self) -> String {
        shown_name(&self.0)
    }
}

struct Display<'a>(&'a EntryPath);

impl fmt::Display for Display<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.0 .0))
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Vec<u8> {
        EntryPath::new(s.as_bytes()).unwrap().as_bytes().to_vec()
    }

    #[test]
    fn normalizes_every_spelling() {
        for s in ["a", "./a", "/a", "a/", ".//a/./", "a/."] {
            assert_eq!(p(s), b"a", "{s}");
        }
        assert_eq!(p("./a//b/"), b"a/b");
        assert!(EntryPath::new(b".").unwrap().is_root());
        assert!(EntryPath::new(b"./").unwrap().is_root());
        assert!(EntryPath::new(b"").unwrap().is_root());
    }

    #[test]
    fn cleans_dot_dot_lexically() {
        assert_eq!(p("a/sub/.."), b"a");
        assert_eq!(p("a/../b"), b"b");
        assert_eq!(p("dne/../.wh.etc"), b".wh.etc");
        assert_eq!(p("a/b/../../c/./d/"), b"c/d");
        assert!(EntryPath::new(b"a/..").unwrap().is_root());
    }

    #[test]
    fn refuses_escapes() {
        for s in ["..", "../a", "a/../..", "a/../../b", "/../x", "./.."] {
            assert!(EntryPath::new(s.as_bytes()).is_err(), "{s}");
        }
        assert!(EntryPath::new(b"a\0b").is_err());
        assert!(EntryPath::new(&[b'x'; 256]).is_err());
        assert!(EntryPath::new(&[b'x'; 255]).is_ok());
    }

    #[test]
    fn parent_name_join_ancestors() {
        let x = EntryPath::new(b"a/b/c").unwrap();
        assert_eq!(x.file_name(), Some(&b"c"[..]));
        assert_eq!(x.parent().unwrap().as_bytes(), b"a/b");
        assert_eq!(x.depth(), 3);
        let anc: Vec<_> = x.ancestors().map(|a| a.as_bytes().to_vec()).collect();
        assert_eq!(anc, vec![b"".to_vec(), b"a".to_vec(), b"a/b".to_vec()]);
        assert_eq!(EntryPath::root().join(b"z").unwrap().as_bytes(), b"z");
        assert!(x.join(b"..").is_err());
        assert!(x.starts_with(&EntryPath::new(b"a/b").unwrap()));
        assert!(!x.starts_with(&EntryPath::new(b"a/bb").unwrap()));
        assert!(EntryPath::new(b"a/bb")
            .unwrap()
            .parent()
            .unwrap()
            .parent()
            .unwrap()
            .is_root());
    }
}
