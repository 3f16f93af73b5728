//! The reference model of the overlay rules: apply layers oldest first to an in-memory tree.
//!
//! This is the slow, obvious reading of the overlay rules, one entry at a time, so that the
//! streaming newest-first merge can be checked against it. Its whole value is being easy to
//! believe; keep it that way (no cleverness, no speed). The rules are those of containerd's
//! applier (`pkg/archive/tar.go`, `applyNaive`): extract in order, with scoped symlink
//! resolution.
//!
//! **Names.** Every entry name, and every hard link's target, is first cleaned lexically: empty
//! and `.` components go, a `..` takes back the component before it (`a/sub/..` is `a`,
//! `./a//b/` is `a/b`, `dne/../.wh.etc` is `.wh.etc`). A name whose cleaning would go above the
//! root (`../x`, `a/../../x`) is an error. The cleaned name decides what the entry is
//! (`.wh.NAME`, `.wh..wh..opq`, AUFS metadata, or an ordinary entry).
//!
//! **Scoped resolution** of a path against the current tree ([`Fs::resolve`]): its components
//! are walked left to right with a stack of resolved components that starts at the root. `..`
//! pops (at the root it stays there); a component naming a symlink is replaced by the
//! components of the symlink's target, put in front of the remaining ones (an absolute target
//! restarts from the root, a relative one goes on from the symlink's parent); a component
//! naming a directory, a non-directory or nothing is pushed as is. More than 40 symlinks
//! followed is an error ("too many levels of symbolic links"). A hard link to a symlink is a
//! symlink (another name of the symlink's inode, as link(2) makes). Only the *parent* of a name
//! is resolved, never its last component: an entry's place is resolve(parent)/last.
//!
//! A layer is applied in two steps:
//! 1. its whiteouts and opaque markers, wherever they are in the layer, delete from what the
//!    *lower* layers left. All of them are resolved against that tree before any deletes
//!    anything, so their order does not matter. `D/.wh.X` deletes resolve(D)/X and its subtree
//!    (X itself is not followed: a symlink X goes, not its target); `D/.wh..wh..opq` deletes
//!    every child of resolve(D) if that is a directory. A whiteout of a missing path does
//!    nothing.
//! 2. its other entries, in tar order, as an extractor would, each at resolve(parent)/last: an
//!    entry beneath a symlink lands where the symlink leads, and the symlink stays. The last
//!    component is never followed: a non-directory replaces whatever is there (a directory with
//!    its subtree, a symlink rather than its target), also when an entry of the same layer
//!    went beneath that directory (extraction removes it); a directory over a directory only
//!    takes the new metadata; a non-directory naming the root (`.`, `a/..`) is skipped, as
//!    containerd skips it. Missing parents are created 0755 root:root t=0, and a parent
//!    that is a non-directory is replaced by such a directory. A hard link first clears its own
//!    path (as an extractor does), then resolves its target the same way (parent resolved,
//!    last component not followed) and shares the inode found there at that moment, a symlink's
//!    too.
//!
//! Paths are kept as inodes so that hard links behave as on a real file system: a link keeps
//! its inode when the target's name is later replaced or deleted. AUFS metadata
//! (`.wh..wh.plnk/…`, `.wh..wh.aufs`, `.wh..wh.orph`) is an ordinary part of the tree until the
//! end, where every path through such a name is dropped (a link into `.wh..wh.plnk` keeps the
//! content).
//!
//! Inputs the rules call errors return `Err` with a message naming the paths:
//! - a name or link target (a whiteout's link target too: the tar reader checks it first)
//!   whose cleaning goes above the root, or with a NUL byte;
//! - an invalid whiteout name (`.wh.`, `.wh..`, `.wh...`);
//! - a resolution that follows more than 40 symlinks (any entry, marker or link target), or
//!   meets a component over 255 bytes (a symlink target's: the names themselves are checked);
//! - a hard link to a missing path or to a directory, but only if the link is still there at
//!   the end of its layer: a later entry of the same layer that replaces it (or an ancestor of
//!   it) makes it harmless, since a newest-first merge never needs it and extraction leaves the
//!   same tree. A hard link to such a pending link is pending too (it links to nothing);
//! - a hard link to a file of its own layer that the same layer replaces afterwards (a
//!   newest-first merge cannot bind such a link; `Error::HardlinkTargetReplaced`).
#![allow(dead_code)]

use std::collections::{BTreeMap, VecDeque};

/// The start of the model's refusal of a hard link to a version of its target that the link's
/// own layer replaces afterwards.
const REPLACED_AFTERWARDS: &str = "which the same layer replaces afterwards";

/// The end of the model's refusal of a hard link to nothing or to a directory (an error only
/// because no later entry of its layer replaced the link).
const NOT_REPLACED: &str = "and no later entry of its layer replaces the link";

/// Whether the model refused only because a hard link to nothing or to a directory is still
/// there at the end of its layer (a later entry of the layer replacing it would have made the
/// stack valid). Generators use it to keep such a link for a while.
pub fn refused_for_an_unreplaced_link(why: &str) -> bool {
    why.contains(NOT_REPLACED)
}

/// How many symlinks one resolution may follow.
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// The error of a resolution that follows more than [`MAX_SYMLINK_FOLLOWS`] symlinks.
pub const TOO_MANY_LINKS: &str = "too many levels of symbolic links";

/// Whether the model refused only out of caution: a link to a version of its target that its
/// own layer replaces afterwards. Applying the layer in order keeps that version under the
/// link, and ocirender does convert it when a newer layer hides the target's path (the merge
/// then reads the hidden version again for the link); it refuses
/// (`Error::HardlinkTargetReplaced`) when that version is delivered and then overwritten. The
/// model cannot tell the two apart, so a success here is not checked against it.
pub fn refused_out_of_caution(why: &str) -> bool {
    why.contains(REPLACED_AFTERWARDS)
}

use sha2::{Digest as _, Sha256};

use super::builder::{Body, Layer, TarEntry};
use super::dump::{Kind, Node, Tree};

/// What a cleaned entry name means.
enum Name {
    /// `D/.wh.X`: delete resolve(D)/X from the lower layers.
    Whiteout { dir: Vec<u8>, base: Vec<u8> },
    /// `D/.wh..wh..opq`: delete the lower children of resolve(D).
    Opaque(Vec<u8>),
    /// Anything else (AUFS metadata included): an entry at resolve(parent)/last.
    Entry(Vec<u8>),
}

/// Applies `layers`, oldest first, to an empty root.
pub fn apply(layers: &[Layer]) -> Result<Tree, String> {
    let mut fs = Fs::new();
    apply_all(&mut fs, layers).map(|()| fs.into_tree())
}

/// How many resolutions followed at least one symlink while applying `layers` (as far as the
/// model got), by what was resolved: `"entry"` (the parent of an entry of step 2),
/// `"whiteout"`, `"opaque"` and `"hardlink target"`. For measuring generators.
pub fn symlink_resolutions(layers: &[Layer]) -> BTreeMap<&'static str, usize> {
    let mut fs = Fs::new();
    let _ = apply_all(&mut fs, layers);
    fs.resolutions
}

fn apply_all(fs: &mut Fs, layers: &[Layer]) -> Result<(), String> {
    for (i, layer) in layers.iter().enumerate() {
        assert!(
            layer.raw_tar.is_none(),
            "the model cannot read raw tar bytes"
        );
        fs.apply_layer(layer)
            .map_err(|e| format!("layer {i}: {e}"))?;
    }
    Ok(())
}

/// Cleans a name as written in a tar header, lexically: drops empty and `.` components, and a
/// `..` takes back the component before it. Refuses a name that would go above the root, or
/// that holds a NUL byte. The root is `""`.
pub fn clean(raw: &[u8]) -> Result<Vec<u8>, String> {
    let show = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(format!("path {show:?} contains a NUL byte"));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if parts.pop().is_none() {
                    return Err(format!("path {show:?} goes above the root ('..')"));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join(&b'/'))
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

/// A cleaned, non-root path's parent and last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

fn classify(path: Vec<u8>) -> Result<Name, String> {
    let (dir, base) = split(&path);
    if base == b".wh..wh..opq" {
        return Ok(Name::Opaque(dir.to_vec()));
    }
    if base.starts_with(b".wh..wh.") {
        return Ok(Name::Entry(path));
    }
    if let Some(target) = base.strip_prefix(b".wh.") {
        if matches!(target, b"" | b"." | b"..") {
            return Err(format!("invalid whiteout {:?}", lossy(&path)));
        }
        return Ok(Name::Whiteout {
            dir: dir.to_vec(),
            base: target.to_vec(),
        });
    }
    Ok(Name::Entry(path))
}

/// Whether `p` lies beneath `dir` (strictly).
fn beneath(p: &[u8], dir: &[u8]) -> bool {
    if dir.is_empty() {
        !p.is_empty()
    } else {
        p.len() > dir.len() && p.starts_with(dir) && p[dir.len()] == b'/'
    }
}

fn lossy(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// `what` (a name as written) and, where cleaning or resolution changed it, where it went.
fn shown(what: &[u8], resolved: &[u8]) -> String {
    if what == resolved {
        format!("{:?}", lossy(what))
    } else {
        format!("{:?} (resolved: {:?})", lossy(what), lossy(resolved))
    }
}

/// A hard link bound to an inode: the resolved path of its target, the inode, its own path.
struct Bound {
    target: Vec<u8>,
    inode: usize,
    link: Vec<u8>,
}

/// Paths → inode numbers → nodes (the nodes' `link` field is filled in at the end).
struct Fs {
    paths: BTreeMap<Vec<u8>, usize>,
    inodes: Vec<Node>,
    /// Hard links of the current layer to nothing or to a directory: their placeholder inode →
    /// the error they are if still in the tree at the end of the layer.
    pending_bad_links: BTreeMap<usize, String>,
    /// See [`symlink_resolutions`].
    resolutions: BTreeMap<&'static str, usize>,
}

impl Fs {
    fn new() -> Fs {
        let mut fs = Fs {
            paths: BTreeMap::new(),
            inodes: Vec::new(),
            pending_bad_links: BTreeMap::new(),
            resolutions: BTreeMap::new(),
        };
        let root = fs.add_inode(implicit_dir());
        fs.paths.insert(Vec::new(), root);
        fs
    }

    fn add_inode(&mut self, node: Node) -> usize {
        self.inodes.push(node);
        self.inodes.len() - 1
    }

    fn node(&self, path: &[u8]) -> Option<&Node> {
        self.paths.get(path).map(|&i| &self.inodes[i])
    }

    /// Scoped resolution of `path` against the tree as it is now: every symlink met on the way
    /// is replaced by its target, `..` never leaves the root. `entry` names what is being
    /// resolved in the error; `what` is counted in [`Fs::resolutions`] when a symlink is
    /// followed.
    fn resolve(&mut self, path: &[u8], entry: &str, what: &'static str) -> Result<Vec<u8>, String> {
        let mut stack: Vec<Vec<u8>> = Vec::new();
        let mut todo: VecDeque<Vec<u8>> = path.split(|&b| b == b'/').map(<[u8]>::to_vec).collect();
        let mut follows = 0;
        while let Some(c) = todo.pop_front() {
            match c.as_slice() {
                b"" | b"." => continue,
                b".." => {
                    stack.pop();
                    continue;
                }
                // The kernel refuses a longer name (ENAMETOOLONG), so extraction fails.
                c if c.len() > 255 => {
                    return Err(format!(
                        "{entry}: a component over 255 bytes resolving {:?}",
                        lossy(path)
                    ));
                }
                _ => {}
            }
            stack.push(c);
            let here = stack.join(&b'/');
            let target = match self.node(&here).map(|n| &n.kind) {
                Some(Kind::Symlink(t)) => t.clone(),
                // A directory, a non-directory or nothing: stays as it is.
                _ => continue,
            };
            follows += 1;
            if follows > MAX_SYMLINK_FOLLOWS {
                return Err(format!(
                    "{entry}: {TOO_MANY_LINKS} (more than {MAX_SYMLINK_FOLLOWS} followed resolving {:?})",
                    lossy(path)
                ));
            }
            stack.pop();
            if target.starts_with(b"/") {
                stack.clear();
            }
            for t in target.split(|&b| b == b'/').rev() {
                todo.push_front(t.to_vec());
            }
        }
        if follows > 0 {
            *self.resolutions.entry(what).or_default() += 1;
        }
        Ok(stack.join(&b'/'))
    }

    /// Where a cleaned, non-root name goes: resolve(parent)/last.
    fn place(&mut self, name: &[u8], entry: &str, what: &'static str) -> Result<Vec<u8>, String> {
        let (dir, base) = split(name);
        let dir = self.resolve(dir, entry, what)?;
        Ok(join(&dir, base))
    }

    /// Removes `path` and everything beneath it.
    fn remove_subtree(&mut self, path: &[u8]) {
        self.paths.retain(|p, _| p != path && !beneath(p, path));
    }

    /// Removes everything beneath `dir`, keeping `dir`.
    fn remove_children(&mut self, dir: &[u8]) {
        self.paths.retain(|p, _| !beneath(p, dir));
    }

    /// Makes every ancestor of the (resolved) `path` a directory: a missing one is created, a
    /// non-directory is replaced. (Resolution left no symlink among them.)
    fn make_parents(&mut self, path: &[u8]) {
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for n in 1..comps.len() {
            let anc = comps[..n].join(&b'/');
            match self.node(&anc).map(|n| &n.kind) {
                Some(Kind::Dir) => {}
                Some(Kind::Symlink(_)) => unreachable!("resolution follows every symlink"),
                Some(_) | None => {
                    let i = self.add_inode(implicit_dir());
                    self.paths.insert(anc, i);
                }
            }
        }
    }

    fn apply_layer(&mut self, layer: &Layer) -> Result<(), String> {
        let mut names = Vec::new();
        for e in &layer.entries {
            names.push(classify(clean(&e.name)?)?);
            // The tar reader checks a hard link's target before the overlay rules see the
            // entry: a whiteout's too.
            if let Body::Hardlink(t) = &e.body {
                clean(t)?;
            }
        }
        // Step 1: deletions, all resolved against what the lower layers left, then done.
        let mut deletions: Vec<(Vec<u8>, bool)> = Vec::new();
        for (e, name) in layer.entries.iter().zip(&names) {
            let entry = format!("{:?}", lossy(&e.name));
            match name {
                Name::Whiteout { dir, base } => {
                    let dir = self.resolve(dir, &entry, "whiteout")?;
                    deletions.push((join(&dir, base), true));
                }
                Name::Opaque(dir) => {
                    let dir = self.resolve(dir, &entry, "opaque")?;
                    if self.node(&dir).is_some_and(|n| n.kind == Kind::Dir) {
                        deletions.push((dir, false));
                    }
                }
                Name::Entry(_) => {}
            }
        }
        for (path, itself) in deletions {
            if itself {
                self.remove_subtree(&path);
            } else {
                self.remove_children(&path);
            }
        }
        // Step 2: everything else, in order.
        self.pending_bad_links.clear();
        let first_new_inode = self.inodes.len();
        // Links bound to an inode this layer created.
        let mut bound: Vec<Bound> = Vec::new();
        for (e, name) in layer.entries.iter().zip(names) {
            let Name::Entry(name) = name else { continue };
            if let Some(b) = self.apply_entry(e, &name)? {
                if b.inode >= first_new_inode {
                    bound.push(b);
                }
            }
            // A streaming merge reads layers newest first and cannot bind a link to a version
            // of its target that its own layer replaces afterwards; the rules make that an
            // error (Error::HardlinkTargetReplaced).
            for Bound {
                target: t,
                inode,
                link,
            } in &bound
            {
                if self.paths.get(t) != Some(inode) {
                    return Err(format!(
                        "hard link {:?} points to {:?}, {REPLACED_AFTERWARDS}",
                        lossy(link),
                        lossy(t)
                    ));
                }
            }
        }
        // A bad link is an error only if no later entry of its layer replaced it.
        for (i, why) in &self.pending_bad_links {
            if self.paths.values().any(|j| j == i) {
                return Err(format!("{why}, {NOT_REPLACED}"));
            }
        }
        self.pending_bad_links.clear();
        Ok(())
    }

    /// Applies one entry of step 2 (`name` cleaned). For a hard link bound to an inode,
    /// returns the binding.
    fn apply_entry(&mut self, e: &TarEntry, name: &[u8]) -> Result<Option<Bound>, String> {
        if name.is_empty() {
            if e.body != Body::Dir {
                // containerd skips any entry that resolves to the root; a non-directory there
                // has nothing to replace.
                return Ok(None);
            }
            let root = self.paths[name];
            self.inodes[root] = node_of(e);
            return Ok(None);
        }
        let entry = format!("{:?}", lossy(&e.name));
        let path = self.place(name, &entry, "entry")?;
        self.make_parents(&path);
        if let Body::Hardlink(raw_target) = &e.body {
            // As an extractor does: clear the link's path first, then link to what the target
            // path holds now (so a link that replaces an ancestor of its target finds nothing).
            self.remove_subtree(&path);
            let target = clean(raw_target)?;
            let (name, target) = (&e.name[..], &target[..]);
            let entry = format!(
                "hard link {} to {:?}",
                shown(name, &path),
                lossy(raw_target)
            );
            let resolved = if target.is_empty() {
                Vec::new()
            } else {
                self.place(target, &entry, "hardlink target")?
            };
            let bad = match self.paths.get(&resolved) {
                None => format!(
                    "hard link {} points to {}, which does not exist",
                    shown(name, &path),
                    shown(raw_target, &resolved)
                ),
                Some(i) if self.pending_bad_links.contains_key(i) => format!(
                    "hard link {} points to {}, a hard link to nothing or to a directory",
                    shown(name, &path),
                    shown(raw_target, &resolved)
                ),
                Some(&i) if self.inodes[i].kind == Kind::Dir => format!(
                    "hard link {} points to directory {}",
                    shown(name, &path),
                    shown(raw_target, &resolved)
                ),
                Some(&i) => {
                    self.paths.insert(path.clone(), i);
                    return Ok(Some(Bound {
                        target: resolved,
                        inode: i,
                        link: path,
                    }));
                }
            };
            // Pending: an error unless a later entry of this layer replaces the link.
            let i = self.add_inode(Node::new(Kind::Fifo, 0));
            self.pending_bad_links.insert(i, bad);
            self.paths.insert(path, i);
            return Ok(None);
        }
        let node = node_of(e);
        match self.paths.get(&path) {
            // A directory over a directory keeps its children and takes the new metadata.
            Some(&i) if node.kind == Kind::Dir && self.inodes[i].kind == Kind::Dir => {
                self.inodes[i] = node;
            }
            _ => {
                self.remove_subtree(&path);
                let i = self.add_inode(node);
                self.paths.insert(path, i);
            }
        }
        Ok(None)
    }

    fn into_tree(self) -> Tree {
        let aufs = |p: &[u8]| p.split(|&b| b == b'/').any(|c| c.starts_with(b".wh..wh."));
        let mut tree = Tree::default();
        let mut inode_of = BTreeMap::new();
        for (p, &i) in &self.paths {
            if aufs(p) {
                continue;
            }
            tree.0.insert(p.clone(), self.inodes[i].clone());
            inode_of.insert(p.clone(), i);
        }
        tree.set_link_groups(|p| inode_of.get(p).copied());
        tree
    }
}

fn implicit_dir() -> Node {
    Node::new(Kind::Dir, 0o755)
}

/// The node a (non-link) entry creates.
fn node_of(e: &TarEntry) -> Node {
    let kind = match &e.body {
        Body::File(c) => Kind::File {
            size: c.len() as u64,
            sha256: hex(&Sha256::digest(c)),
        },
        Body::Sparse { size, regions } => Kind::File {
            size: *size,
            sha256: sparse_sha256(*size, regions),
        },
        Body::Dir => Kind::Dir,
        Body::Symlink(t) => Kind::Symlink(t.clone()),
        Body::CharDev(a, b) => Kind::CharDev(*a, *b),
        Body::BlockDev(a, b) => Kind::BlockDev(*a, *b),
        Body::Fifo => Kind::Fifo,
        Body::Hardlink(_) => unreachable!("links share their target's node"),
    };
    let mut n = Node::new(kind, e.mode);
    n.uid = e.uid;
    n.gid = e.gid;
    n.mtime = e.mtime;
    // A later record for the same name wins, as tar readers do.
    n.xattrs = e.xattrs.iter().cloned().collect();
    n
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// sha256 of a sparse file's full content, holes as zeros, without allocating its size.
pub fn sparse_sha256(size: u64, regions: &[(u64, Vec<u8>)]) -> String {
    let zeros = vec![0u8; 1 << 16];
    let mut h = Sha256::new();
    let mut pos = 0u64;
    let fill = |h: &mut Sha256, mut n: u64| {
        while n > 0 {
            let k = n.min(zeros.len() as u64);
            h.update(&zeros[..k as usize]);
            n -= k;
        }
    };
    for (o, b) in regions {
        fill(&mut h, o - pos);
        h.update(b);
        pos = o + b.len() as u64;
    }
    fill(&mut h, size - pos);
    hex(&h.finalize())
}
