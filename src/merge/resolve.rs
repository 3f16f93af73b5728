//! Symlink resolution: where each entry lands when the layers are applied in order.
//!
//! A container runtime (containerd's applier, moby, umoci) extracts the layers oldest first into
//! one root and resolves every name against what is on disk at that moment, inside the root:
//!
//! 1. **Names are cleaned lexically** first (`a/sub/..` is `a`; [`EntryPath::new`] does it). A
//!    name or hard-link target that would climb above the root is refused there.
//! 2. **The parent of a name is resolved, its last component never is.** Components are taken
//!    left to right from the root. A component that names a symlink is replaced by the
//!    symlink's target: an absolute target starts again from the root, a relative one continues
//!    from the symlink's directory; `..` goes up one level and stops at the root. A component
//!    naming a directory, another kind of file or nothing is kept as it is. More than
//!    [`MAX_HOPS`] symlinks on one name is an error ([`Error::TooManySymlinks`]), as `ELOOP` is.
//!    (This is the kernel's and `filepath-securejoin`'s walk. containerd's `RootPath` joins a
//!    relative target to the symlink's directory lexically before walking it again; the two
//!    differ only when a target goes up through another symlink, `a -> x/../y` with `x` a
//!    symlink, where this walk is the one the kernel would make.)
//! 3. **Whiteouts and opaque markers** delete from what the lower layers left, wherever they
//!    are in their layer (the OCI rule the merge keeps), so their directory is resolved against
//!    the lower layers' tree: `d/.wh.x` with `d -> d2` deletes `d2/x`; `d/.wh..wh..opq` empties
//!    `d2`.
//! 4. **Other entries** go to their resolved path in tar order: an entry replaces what is
//!    there (a symlink itself, not its target; a directory with its subtree, except by another
//!    directory), missing parents become directories. A **hard link's target** is resolved the
//!    same way, last component not followed: a hard link to a symlink is another name of the
//!    symlink, and later names through it follow it, as `link(2)` makes it.
//! 5. A directory that its own layer replaces by a non-directory **loses what the layer put
//!    beneath it** before (extraction removed it).
//!
//! The merge reads layers newest first and cannot resolve names against layers it has not read
//! yet. So it runs without this module and stops ([`Error::SecondPassNeeded`]) when it learns
//! that a name went through a symlink or that a written entry was removed afterwards; then the
//! conversion starts over. A [`Resolver`] reads every layer's headers oldest first and records
//! where each entry lands whenever that is not where it is written ([`Resolution`]); the merge
//! fed those names is the plain overlay merge of a stream in which no name goes through a
//! symlink, which is what the runtimes leave.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use crate::entry::{Entry, EntryKind};
use crate::error::{Error, Result};
use crate::path::{EntryPath, PATH_MAX};

use super::whiteout::{self, Name};

/// Most symlinks followed while resolving one name (Linux's `MAXSYMLINKS`).
pub const MAX_HOPS: u32 = 40;

/// What becomes of one entry once names are resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Rewrite {
    /// The entry lands at `path`; a hard link's target is `target` (when that moved).
    Moved {
        path: EntryPath,
        target: Option<EntryPath>,
    },
    /// A later entry of the same layer removed it with its directory: it never shows, though a
    /// hard link made before may keep its content. `path` and `target` are where it landed and
    /// what a hard link's target resolved to, when either moved.
    Removed {
        path: Option<EntryPath>,
        target: Option<EntryPath>,
    },
}

/// Where the entries of an image land when its layers are applied in order, for the entries
/// whose landing place differs from their name; the rules are [`Resolver`]'s.
#[derive(Clone, Debug, Default)]
pub struct Resolution {
    rewrites: HashMap<(u32, u64), Rewrite>,
}

impl Resolution {
    /// How many entries land elsewhere than their name says, or are removed by their own layer.
    pub fn rewritten(&self) -> usize {
        self.rewrites.len()
    }

    pub(crate) fn get(&self, layer: u32, ordinal: u64) -> Option<&Rewrite> {
        if self.rewrites.is_empty() {
            return None;
        }
        self.rewrites.get(&(layer, ordinal))
    }
}

/// What the resolver keeps of a path: only what decides where names go.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kept {
    Dir,
    Symlink(Vec<u8>),
}

/// One header of the layer being read: what resolution needs of it.
struct Header {
    ordinal: u64,
    path: EntryPath,
    kind: HeaderKind,
}

enum HeaderKind {
    Whiteout(EntryPath),
    Opaque(EntryPath),
    Dir,
    Symlink(Vec<u8>),
    Hardlink(EntryPath),
    Other,
}

/// Reads the layers' headers oldest first and computes the [`Resolution`]: where each entry
/// lands when names are resolved through symlinks inside the root, as containerd's applier
/// resolves them (the rules are in the `merge::resolve` module's source documentation; in short:
/// parents resolved, last component never, absolute targets from the root, `..` clamped at the
/// root, at most 40 symlinks per name).
///
/// ```no_run
/// # use ocirender::{Merger, Resolver, ConvertOptions, sink::tar::TarSink};
/// # fn open(index: usize) -> Box<dyn std::io::Read> { unimplemented!() }
/// let mut resolver = Resolver::new(2);
/// for index in 0..2 {
///     resolver.layer(index, &mut open(index))?; // oldest first: headers only
/// }
/// let sink = TarSink::create("out.tar".as_ref())?;
/// let mut merger = Merger::with_resolution(Box::new(sink), 2, &ConvertOptions::default(), resolver.finish());
/// for index in (0..2).rev() {
///     merger.layer(index, &mut open(index))?; // newest first, as always
/// }
/// merger.finish()?;
/// # Ok::<(), ocirender::Error>(())
/// ```
pub struct Resolver {
    layers: usize,
    next: usize,
    /// Directories and symlinks (hard links to symlinks included) as the layers so far left
    /// them, by resolved path. Files need no record: nothing resolves through them.
    kept: BTreeMap<Vec<u8>, Kept>,
    rewrites: HashMap<(u32, u64), Rewrite>,
}

impl Resolver {
    /// A resolver for an image of `layers` layers.
    pub fn new(layers: usize) -> Resolver {
        Resolver {
            layers,
            next: 0,
            kept: BTreeMap::new(),
            rewrites: HashMap::new(),
        }
    }

    /// Reads layer `index`'s decoded tar stream (headers only; content is skipped). Layers
    /// must come oldest first, every one of them, in order.
    pub fn layer(&mut self, index: usize, stream: &mut dyn Read) -> Result<()> {
        self.begin(index)?;
        let mut headers = Vec::new();
        crate::tar_reader::for_each_entry(stream, &mut |entry, _| {
            headers.push(header(headers.len() as u64, entry)?);
            Ok(())
        })?;
        self.apply_layer(index as u32, &headers)
    }

    /// Like [`Resolver::layer`], for a layer given as entries already parsed (as
    /// [`Merger::layer_entries`](crate::Merger::layer_entries) takes them).
    pub fn layer_entries<'e, I>(&mut self, index: usize, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = &'e Entry>,
    {
        self.begin(index)?;
        let headers = entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| header(i as u64, e.clone()))
            .collect::<Result<Vec<_>>>()?;
        self.apply_layer(index as u32, &headers)
    }

    fn begin(&mut self, index: usize) -> Result<()> {
        if index != self.next || index >= self.layers {
            return Err(Error::LayerOrder {
                index,
                previous: self.next.wrapping_sub(1),
                newest_first: false,
            });
        }
        self.next += 1;
        Ok(())
    }

    fn apply_layer(&mut self, layer: u32, headers: &[Header]) -> Result<()> {
        self.markers(layer, headers)?;
        let mut written = BTreeMap::new();
        for h in headers {
            self.apply(layer, h, &mut written)
                .map_err(|e| e.in_entry(h.path.as_bytes()))?;
        }
        Ok(())
    }

    /// The resolution; call it after the last layer.
    pub fn finish(self) -> Resolution {
        Resolution {
            rewrites: self.rewrites,
        }
    }

    /// Rule 3: the layer's whiteouts and opaque markers, against the lower layers' tree.
    fn markers(&mut self, layer: u32, headers: &[Header]) -> Result<()> {
        let mut removals = Vec::new();
        for h in headers {
            let (dir, gone) = match &h.kind {
                HeaderKind::Whiteout(target) => {
                    let dir = target.parent().unwrap_or_default();
                    let resolved = self
                        .resolve(&dir, &h.path)
                        .map_err(|e| e.in_entry(h.path.as_bytes()))?;
                    let name = target.file_name().unwrap_or_default();
                    (resolved.clone(), Some(join(&resolved, name)))
                }
                HeaderKind::Opaque(dir) => {
                    let resolved = self
                        .resolve(dir, &h.path)
                        .map_err(|e| e.in_entry(h.path.as_bytes()))?;
                    (resolved, None)
                }
                _ => continue,
            };
            let marker = h.path.file_name().unwrap_or_default();
            self.moved(layer, h.ordinal, &h.path, &join(&dir, marker), None)?;
            removals.push((dir, gone));
        }
        // Every marker deletes from the lower layers' tree, so none resolves through what
        // another one deleted.
        for (dir, gone) in removals {
            match gone {
                Some(path) => self.remove(&path, true),
                None => self.remove(&dir, false),
            }
        }
        Ok(())
    }

    /// Rules 4 and 5 for one entry (markers were applied already).
    fn apply(
        &mut self,
        layer: u32,
        h: &Header,
        written: &mut BTreeMap<Vec<u8>, Vec<u64>>,
    ) -> Result<()> {
        let kept = match &h.kind {
            HeaderKind::Whiteout(_) | HeaderKind::Opaque(_) => return Ok(()),
            HeaderKind::Dir => Some(Kept::Dir),
            HeaderKind::Symlink(target) => Some(Kept::Symlink(target.clone())),
            HeaderKind::Hardlink(_) | HeaderKind::Other => None,
        };
        let Some(name) = h.path.file_name() else {
            return Ok(()); // the root: its metadata only
        };
        let dir = self.resolve(&h.path.parent().unwrap_or_default(), &h.path)?;
        let at = join(&dir, name);
        within_path_max(&at, &h.path)?;
        if kept != Some(Kept::Dir) {
            // A non-directory replaces a directory with its subtree, this layer's part too
            // (before a hard link's target is looked up: extraction clears the path first).
            for path in beneath(written, &at) {
                for ordinal in written.remove(&path).unwrap_or_default() {
                    let removed = match self.rewrites.remove(&(layer, ordinal)) {
                        Some(Rewrite::Moved { path, target }) => Rewrite::Removed {
                            path: Some(path),
                            target,
                        },
                        _ => Rewrite::Removed {
                            path: None,
                            target: None,
                        },
                    };
                    self.rewrites.insert((layer, ordinal), removed);
                }
            }
            self.remove(&at, true);
        }
        let (kept, target) = match &h.kind {
            HeaderKind::Hardlink(target) => {
                let resolved = self.resolve_name(target)?;
                // Another name of the inode found there: a symlink stays one.
                let kept = match self.kept.get(&resolved) {
                    Some(Kept::Symlink(t)) => Some(Kept::Symlink(t.clone())),
                    _ => None,
                };
                let moved = (resolved != target.as_bytes()).then_some(resolved);
                (kept, moved)
            }
            _ => (kept, None),
        };
        self.moved(layer, h.ordinal, &h.path, &at, target.as_deref())?;
        // Extraction creates missing parents as directories (replacing a file there): nothing
        // to record, since only symlinks redirect names and no parent of a resolved name is one.
        // (Recording every parent would cost the square of the depth per entry.)
        if let Some(k) = kept {
            self.kept.insert(at.clone(), k);
        }
        written.entry(at).or_default().push(h.ordinal);
        Ok(())
    }

    /// Records that entry `ordinal` of `layer`, written `path`, lands at `at` (and a hard
    /// link's target moved to `target`), if either differs.
    fn moved(
        &mut self,
        layer: u32,
        ordinal: u64,
        path: &EntryPath,
        at: &[u8],
        target: Option<&[u8]>,
    ) -> Result<()> {
        if at == path.as_bytes() && target.is_none() {
            return Ok(());
        }
        let rewrite = Rewrite::Moved {
            path: EntryPath::new(at)?,
            target: target.map(EntryPath::new).transpose()?,
        };
        self.rewrites.insert((layer, ordinal), rewrite);
        Ok(())
    }

    /// Removes `path` (with `self_too`) or only its descendants from the kept tree.
    fn remove(&mut self, path: &[u8], self_too: bool) {
        if self_too {
            self.kept.remove(path);
        }
        for k in beneath(&self.kept, path) {
            self.kept.remove(&k);
        }
    }

    /// Where `name` lands: its parent resolved, its last component kept.
    fn resolve_name(&self, name: &EntryPath) -> Result<Vec<u8>> {
        let dir = self.resolve(&name.parent().unwrap_or_default(), name)?;
        let at = match name.file_name() {
            Some(last) => join(&dir, last),
            None => dir,
        };
        within_path_max(&at, name)?;
        Ok(at)
    }

    /// Rule 2: `dir` with every symlink in it followed, inside the root; `name` is the entry
    /// being resolved, for messages.
    fn resolve(&self, dir: &EntryPath, name: &EntryPath) -> Result<Vec<u8>> {
        // Components still to walk, last first; and the components resolved so far.
        let mut todo: Vec<Vec<u8>> = dir.components().map(<[u8]>::to_vec).collect();
        todo.reverse();
        let mut done: Vec<u8> = Vec::new();
        let mut hops = 0u32;
        while let Some(c) = todo.pop() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    let cut = done.iter().rposition(|&b| b == b'/').unwrap_or(0);
                    done.truncate(cut);
                    continue;
                }
                _ => {}
            }
            let next = join(&done, &c);
            match self.kept.get(&next) {
                Some(Kept::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(Error::TooManySymlinks {
                            path: dir.shown(),
                            hops: MAX_HOPS,
                        });
                    }
                    if target.first() == Some(&b'/') {
                        done.clear();
                    }
                    todo.extend(target.split(|&b| b == b'/').rev().map(<[u8]>::to_vec));
                }
                _ => done = next,
            }
            within_path_max(&done, name)?;
        }
        Ok(done)
    }
}

/// What resolution needs of the `ordinal`-th entry of a layer.
fn header(ordinal: u64, entry: Entry) -> Result<Header> {
    let kind =
        match whiteout::classify(&entry.path).map_err(|e| e.in_entry(entry.path.as_bytes()))? {
            Name::Whiteout(target) => HeaderKind::Whiteout(target),
            Name::Opaque(dir) => HeaderKind::Opaque(dir),
            Name::Aufs(_) | Name::Plain => match entry.kind {
                EntryKind::Dir => HeaderKind::Dir,
                EntryKind::Symlink { target } => HeaderKind::Symlink(target),
                EntryKind::Hardlink { target } => HeaderKind::Hardlink(target),
                _ => HeaderKind::Other,
            },
        };
    Ok(Header {
        ordinal,
        path: entry.path,
        kind,
    })
}

/// Refuses a name that resolves to a path longer than [`PATH_MAX`]: extraction through it fails
/// with `ENAMETOOLONG` in the runtimes, and symlinks must not stack a tree deeper than a written
/// name may be (which bounds what resolving one name costs).
fn within_path_max(resolved: &[u8], name: &EntryPath) -> Result<()> {
    if resolved.len() > PATH_MAX {
        return Err(Error::HostilePath {
            path: name.shown(),
            reason: "resolves through symlinks to a path longer than PATH_MAX (4095 bytes)",
        });
    }
    Ok(())
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(dir.len() + 1 + name.len());
    out.extend_from_slice(dir);
    if !dir.is_empty() {
        out.push(b'/');
    }
    out.extend_from_slice(name);
    out
}

/// The keys of `map` strictly beneath `path` (all of them for the root).
fn beneath<V>(map: &BTreeMap<Vec<u8>, V>, path: &[u8]) -> Vec<Vec<u8>> {
    if path.is_empty() {
        return map.keys().cloned().collect();
    }
    let mut start = path.to_vec();
    start.push(b'/');
    let mut end = path.to_vec();
    // '0' is '/' + 1: the first key past every `path/...`.
    end.push(b'/' + 1);
    map.range(start..end).map(|(k, _)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::new(s.as_bytes()).unwrap()
    }

    fn with(links: &[(&str, &str)], dirs: &[&str]) -> Resolver {
        let mut r = Resolver::new(1);
        for d in dirs {
            r.kept.insert(d.as_bytes().to_vec(), Kept::Dir);
        }
        for (l, t) in links {
            r.kept
                .insert(l.as_bytes().to_vec(), Kept::Symlink(t.as_bytes().to_vec()));
        }
        r
    }

    fn resolved(r: &Resolver, dir: &str) -> String {
        String::from_utf8(r.resolve(&p(dir), &p(dir)).unwrap()).unwrap()
    }

    #[test]
    fn follows_absolute_relative_and_chained_targets_inside_the_root() {
        let r = with(
            &[
                ("etc", "/etc2"),
                ("up", "../../../d2"),
                ("l1", "l2"),
                ("l2", "./d/"),
                ("d/back", ".."),
                ("empty", ""),
            ],
            &["d"],
        );
        assert_eq!(resolved(&r, "etc/x"), "etc2/x");
        assert_eq!(resolved(&r, "up/x"), "d2/x", "`..` stops at the root");
        assert_eq!(resolved(&r, "l1/y"), "d/y");
        assert_eq!(resolved(&r, "d/back/etc"), "etc2");
        assert_eq!(resolved(&r, "empty/z"), "z");
        assert_eq!(resolved(&r, "plain/dir"), "plain/dir");
    }

    #[test]
    fn a_loop_is_an_error_naming_the_path() {
        let r = with(&[("a", "b"), ("b", "/a")], &[]);
        let err = r.resolve(&p("a/x"), &p("a/x")).unwrap_err();
        assert!(matches!(err, Error::TooManySymlinks { .. }), "{err}");
        assert!(err.to_string().contains("a/x"), "{err}");
    }

    #[test]
    fn key_ranges_cover_exactly_the_subtree() {
        let mut r = with(&[], &["a", "a/b", "a/b/c", "a.x", "a0", "ab"]);
        r.remove(b"a", false);
        let left: Vec<_> = r
            .kept
            .keys()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .collect();
        assert_eq!(left, ["a", "a.x", "a0", "ab"]);
        r.remove(b"", false);
        assert!(r.kept.is_empty());
    }
}
