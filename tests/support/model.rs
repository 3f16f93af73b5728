//! The reference model of the overlay rules: apply layers oldest first to an in-memory tree.
//!
//! This is the slow, obvious reading of DESIGN.md's overlay rules, one entry at a time, so that
//! the streaming newest-first merge can be checked against it. Its whole value is being easy to
//! believe; keep it that way (no cleverness, no speed).
//!
//! A layer is applied in two steps:
//! 1. its whiteouts and opaque markers, wherever they are in the layer, delete from what the
//!    *lower* layers left (`.wh.NAME`: NAME and its subtree; `.wh..wh..opq`: every child of its
//!    directory). A whiteout of a missing path does nothing.
//! 2. its other entries, in tar order, as an extractor would: a later entry replaces an earlier
//!    one at the same path; a non-directory replaces whatever is there (a directory with its
//!    subtree); a directory over a directory only takes the new metadata; missing parents are
//!    created 0755 root:root t=0, and a parent that is a non-directory is replaced by such a
//!    directory; a parent that is a symlink is an error; a hard link first clears its own path
//!    (as an extractor does), then shares the inode its target path holds at that moment.
//!
//! Paths are kept as inodes so that hard links behave as on a real file system: a link keeps
//! its inode when the target's name is later replaced or deleted. AUFS metadata
//! (`.wh..wh.plnk/…`, `.wh..wh.aufs`, `.wh..wh.orph`) is an ordinary part of the tree until the
//! end, where every path through such a name is dropped (a link into `.wh..wh.plnk` keeps the
//! content).
//!
//! Inputs the rules call errors return `Err` with a message naming the paths: `..` names or
//! link targets (a whiteout's link target too: the tar reader refuses it first), invalid whiteout names (`.wh.`, `.wh..`, `.wh...`), a hard link to a missing
//! path or to a directory, an entry beneath a symlink, a non-directory at the root, and a hard
//! link to a file of its own layer that the same layer replaces afterwards (a newest-first
//! merge cannot bind such a link; `Error::HardlinkTargetReplaced`).
#![allow(dead_code)]

use std::collections::BTreeMap;

/// The start of the model's refusal of a hard link to a version of its target that the link's
/// own layer replaces afterwards.
const REPLACED_AFTERWARDS: &str = "which the same layer replaces afterwards";

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

/// What a normalized entry name means.
enum Name {
    /// `.wh.NAME`: delete this path from the lower layers.
    Whiteout(Vec<u8>),
    /// `.wh..wh..opq`: delete the lower children of this directory.
    Opaque(Vec<u8>),
    /// Anything else (AUFS metadata included): an entry at this path.
    Entry(Vec<u8>),
}

/// Applies `layers`, oldest first, to an empty root.
pub fn apply(layers: &[Layer]) -> Result<Tree, String> {
    apply_detailed(layers).0
}

/// Like [`apply`], and also whether ocirender may refuse the stack with
/// `Error::ReplacedAfterWrite`: some layer replaces a directory by a non-directory after
/// entries of that same layer went beneath it (extraction removes them; a streaming writer has
/// already written them). The model's tree is what extraction gives either way.
pub fn apply_detailed(layers: &[Layer]) -> (Result<Tree, String>, bool) {
    let mut fs = Fs::new();
    let r = apply_all(&mut fs, layers);
    let flag = fs.replaced_written;
    (r.map(|()| fs.into_tree()), flag)
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

/// Normalizes a name as written in a tar header: drops `/` and `.` components, refuses `..`.
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, String> {
    let show = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(format!("path {show:?} contains a NUL byte"));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(format!("path {show:?} contains '..'")),
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
            return Err(format!(
                "invalid whiteout {:?}",
                String::from_utf8_lossy(&path)
            ));
        }
        return Ok(Name::Whiteout(join(dir, target)));
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

/// Paths → inode numbers → nodes (the nodes' `link` field is filled in at the end).
struct Fs {
    paths: BTreeMap<Vec<u8>, usize>,
    inodes: Vec<Node>,
    /// Paths the current layer's entries put in place (parents included).
    written: std::collections::BTreeSet<Vec<u8>>,
    /// Whether a non-directory replaced a directory holding entries of its own layer.
    replaced_written: bool,
}

impl Fs {
    fn new() -> Fs {
        let mut fs = Fs {
            paths: BTreeMap::new(),
            inodes: Vec::new(),
            written: Default::default(),
            replaced_written: false,
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

    /// Notes when replacing what `path` holds removes entries its own layer wrote beneath it.
    fn note_replacement(&mut self, path: &[u8]) {
        if self.written.iter().any(|w| beneath(w, path)) {
            self.replaced_written = true;
        }
    }

    /// Removes `path` and everything beneath it.
    fn remove_subtree(&mut self, path: &[u8]) {
        self.paths.retain(|p, _| p != path && !beneath(p, path));
    }

    /// Removes everything beneath `dir`, keeping `dir`.
    fn remove_children(&mut self, dir: &[u8]) {
        self.paths.retain(|p, _| !beneath(p, dir));
    }

    /// Makes every ancestor of `path` a directory.
    fn make_parents(&mut self, path: &[u8]) -> Result<(), String> {
        let comps: Vec<&[u8]> = path.split(|&b| b == b'/').collect();
        for n in 1..comps.len() {
            let anc = comps[..n].join(&b'/');
            match self.node(&anc).map(|n| &n.kind) {
                Some(Kind::Dir) => {}
                Some(Kind::Symlink(_)) => {
                    return Err(format!(
                        "{:?} lies beneath symlink {:?}",
                        lossy(path),
                        lossy(&anc)
                    ));
                }
                Some(_) | None => {
                    // A missing parent is created; a non-directory in the way is replaced.
                    let i = self.add_inode(implicit_dir());
                    self.written.insert(anc.clone());
                    self.paths.insert(anc, i);
                }
            }
        }
        Ok(())
    }

    fn apply_layer(&mut self, layer: &Layer) -> Result<(), String> {
        let mut names = Vec::new();
        for e in &layer.entries {
            names.push(classify(normalize(&e.name)?)?);
            // The tar reader checks a hard link's target before the overlay rules see the
            // entry: a whiteout's too.
            if let Body::Hardlink(t) = &e.body {
                normalize(t)?;
            }
        }
        // Step 1: deletions, against the lower layers only.
        for name in &names {
            match name {
                Name::Whiteout(p) => self.remove_subtree(p),
                Name::Opaque(d) => self.remove_children(d),
                Name::Entry(_) => {}
            }
        }
        // Step 2: everything else, in order.
        self.written.clear();
        let first_new_inode = self.inodes.len();
        // Links bound to an inode this layer created: (target path, inode, link path).
        let mut bound: Vec<(Vec<u8>, usize, Vec<u8>)> = Vec::new();
        for (e, name) in layer.entries.iter().zip(names) {
            if let Name::Entry(path) = name {
                self.apply_entry(e, path.clone())?;
                if let Body::Hardlink(t) = &e.body {
                    let t = normalize(t)?;
                    let inode = self.paths[&path];
                    if inode >= first_new_inode {
                        bound.push((t, inode, path));
                    }
                }
                // A streaming merge reads layers newest first and cannot bind a link to a
                // version of its target that its own layer replaces afterwards; the rules make
                // that an error (Error::HardlinkTargetReplaced).
                for (t, inode, link) in &bound {
                    if self.paths.get(t) != Some(inode) {
                        return Err(format!(
                            "hard link {:?} points to {:?}, {REPLACED_AFTERWARDS}",
                            lossy(link),
                            lossy(t)
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    fn apply_entry(&mut self, e: &TarEntry, path: Vec<u8>) -> Result<(), String> {
        if path.is_empty() {
            if e.body != Body::Dir {
                return Err(format!(
                    "the root entry {:?} is not a directory",
                    lossy(&e.name)
                ));
            }
            let root = self.paths[&path];
            self.inodes[root] = node_of(e);
            return Ok(());
        }
        if let Body::Hardlink(target) = &e.body {
            // As an extractor does: clear the link's path first, then link to what the target
            // path holds now (so a link that replaces an ancestor of its target finds nothing).
            let target = normalize(target)?;
            self.make_parents(&path)?;
            self.note_replacement(&path);
            self.remove_subtree(&path);
            let inode = match self.paths.get(&target) {
                None => {
                    return Err(format!(
                        "hard link {:?} points to {:?}, which does not exist",
                        lossy(&path),
                        lossy(&target)
                    ))
                }
                Some(&i) if self.inodes[i].kind == Kind::Dir => {
                    return Err(format!(
                        "hard link {:?} points to directory {:?}",
                        lossy(&path),
                        lossy(&target)
                    ))
                }
                Some(&i) => i,
            };
            self.written.insert(path.clone());
            self.paths.insert(path, inode);
            return Ok(());
        }
        self.make_parents(&path)?;
        self.written.insert(path.clone());
        let node = node_of(e);
        match self.paths.get(&path) {
            // A directory over a directory keeps its children and takes the new metadata.
            Some(&i) if node.kind == Kind::Dir && self.inodes[i].kind == Kind::Dir => {
                self.inodes[i] = node;
            }
            _ => {
                self.note_replacement(&path);
                self.remove_subtree(&path);
                let i = self.add_inode(node);
                self.paths.insert(path, i);
            }
        }
        Ok(())
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
