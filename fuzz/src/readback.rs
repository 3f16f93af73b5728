//! Outputs read back as canonical [`Tree`]s, in process (a fuzz iteration cannot afford GNU tar
//! or unsquashfs), and expected trees adjusted to what each format can hold.
//!
//! - tar: ocirender's own tar reader, replaying the stream as an extractor would (a later
//!   entry replaces an earlier one; a hard link shares its target's node);
//! - directory: the tests' lstat walk ([`Tree::from_dir`]);
//! - squashfs: backhand for types, metadata and content, plus the tests' structure checker
//!   ([`oracle::check_structure`], which asserts the kernel's rules as it parses) for the
//!   inode numbers behind hard-link groups and for which inodes carry xattrs. Neither reads
//!   xattr values, so for squashfs only their presence is compared.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ocirender::sink::{Warning, WarningKind};
use ocirender::{Entry, EntryKind};

use crate::dump::{sha256, Kind, Node, Tree};
use crate::oracle;

/// The node an entry (not a hard link) describes, with `data` its content.
pub fn node_of(e: &Entry, data: &[u8]) -> Node {
    let content =
        matches!(e.kind, EntryKind::File { .. }).then(|| (data.len() as u64, sha256(data)));
    oracle::node_of(&e.kind, &e.meta, content)
}

/// Replays an entry stream as extraction would: implicit parents 0755 root:root t=0, a later
/// entry replaces what its path holds (a directory over a directory only takes the metadata),
/// hard links share their target's node. Panics on a link to a missing path or a directory
/// (no sink may be handed such a link).
pub fn replay(entries: &[(Entry, Vec<u8>)]) -> Tree {
    let mut nodes: BTreeMap<Vec<u8>, (Node, usize)> = BTreeMap::new();
    let mut root = Node::new(Kind::Dir, 0o755);
    let mut next = 0usize;
    for (e, data) in entries {
        let path = e.path.as_bytes().to_vec();
        if let EntryKind::Hardlink { target } = &e.kind {
            let (n, id) = nodes
                .get(target.as_bytes())
                .cloned()
                .unwrap_or_else(|| panic!("hard link {:?} before its target", e.path));
            assert!(n.kind != Kind::Dir, "hard link {:?} to a directory", e.path);
            parents(&mut nodes, &path, &mut next);
            remove(&mut nodes, &path);
            nodes.insert(path, (n, id));
            continue;
        }
        let node = node_of(e, data);
        if path.is_empty() {
            root = node;
            continue;
        }
        parents(&mut nodes, &path, &mut next);
        match nodes.get_mut(&path) {
            Some((old, _)) if old.kind == Kind::Dir && node.kind == Kind::Dir => *old = node,
            _ => {
                remove(&mut nodes, &path);
                nodes.insert(path, (node, next));
                next += 1;
            }
        }
    }
    let mut tree = Tree::default();
    tree.0.insert(Vec::new(), root);
    let ids: BTreeMap<Vec<u8>, usize> = nodes
        .iter()
        .filter(|(_, (n, _))| n.kind != Kind::Dir)
        .map(|(p, (_, id))| (p.clone(), *id))
        .collect();
    for (p, (n, _)) in nodes {
        tree.0.insert(p, n);
    }
    tree.set_link_groups(|p| ids.get(p).copied());
    tree
}

fn parents(nodes: &mut BTreeMap<Vec<u8>, (Node, usize)>, path: &[u8], next: &mut usize) {
    for (i, _) in path.iter().enumerate().filter(|(_, &b)| b == b'/') {
        let anc = &path[..i];
        match nodes.get(anc) {
            Some((n, _)) if n.kind == Kind::Dir => {}
            _ => {
                remove(nodes, anc);
                nodes.insert(anc.to_vec(), (Node::new(Kind::Dir, 0o755), *next));
                *next += 1;
            }
        }
    }
}

fn remove(nodes: &mut BTreeMap<Vec<u8>, (Node, usize)>, path: &[u8]) {
    nodes.remove(path);
    let prefix = [path, b"/"].concat();
    let below: Vec<Vec<u8>> = nodes
        .range(prefix.clone()..)
        .map(|(k, _)| k.clone())
        .take_while(|k| k.starts_with(&prefix))
        .collect();
    for k in below {
        nodes.remove(&k);
    }
}

/// Reads a tar stream into its entries with their content.
pub fn tar_entries(tar: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>, ocirender::Error> {
    let mut out = Vec::new();
    let mut input = tar;
    ocirender::layer::tar::for_each_entry(&mut input, &mut |e, data| {
        let mut content = Vec::new();
        data.read_to_end(&mut content)
            .map_err(|source| ocirender::Error::Tar { source })?;
        out.push((e, content));
        Ok(())
    })?;
    Ok(out)
}

/// The tree a tar archive extracts to.
pub fn tar_tree(tar: &[u8]) -> Tree {
    let entries = tar_entries(tar).expect("ocirender reads the tar archive it wrote");
    replay(&entries)
}

/// A directory output.
pub fn dir_tree(root: &Path) -> Tree {
    Tree::from_dir(root)
}

/// A squashfs image: backhand's view, with link groups and xattr presence from the structure
/// checker. backhand cannot read symlink targets over 255 bytes: such an image is read with
/// ocirender's own reader instead.
pub fn squashfs_tree(img: &Path) -> Tree {
    let mut tree = match oracle::try_backhand(img) {
        Ok(t) => t,
        Err(e) => {
            let own = oracle::reader(img);
            assert!(
                !oracle::backhand_can_read(&own),
                "backhand cannot read the image ({e:?}), which has no long symlink"
            );
            own
        }
    };
    let s = oracle::check_structure(img);
    let mut numbers: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    let mut with_xattrs: BTreeSet<Vec<u8>> = BTreeSet::new();
    let root = s.layout.root_inode;
    if s.inodes.get(&root).is_some_and(|i| i.xattr_is_set()) {
        with_xattrs.insert(Vec::new());
    }
    let mut stack = vec![(root, Vec::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Some((entries, _)) = s.dirs.get(&dir) else {
            continue;
        };
        for (name, r, number, itype) in entries {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                [prefix.as_slice(), b"/", name].concat()
            };
            if s.inodes.get(r).is_some_and(|i| i.xattr_is_set()) {
                with_xattrs.insert(path.clone());
            }
            if *itype == 1 {
                stack.push((*r, path));
            } else {
                numbers.insert(path, *number);
            }
        }
    }
    tree.set_link_groups(|p| numbers.get(p).copied());
    for p in with_xattrs {
        if let Some(n) = tree.0.get_mut(&p) {
            n.xattrs = present();
        }
    }
    tree
}

fn present() -> BTreeMap<Vec<u8>, Vec<u8>> {
    BTreeMap::from([(b"(xattrs)".to_vec(), Vec::new())])
}

/// Whether squashfs (and the Linux VFS) can store an xattr of this name.
pub fn storable_xattr(name: &[u8]) -> bool {
    [&b"user."[..], b"trusted.", b"security."]
        .iter()
        .any(|p| name.starts_with(p) && name.len() > p.len())
}

/// `expected` as a squashfs holds it: times clamped to u32, only the presence of storable
/// xattrs.
pub fn as_squashfs(expected: &Tree) -> Tree {
    let mut t = expected.clone();
    for n in t.0.values_mut() {
        n.mtime = n.mtime.clamp(0, i64::from(u32::MAX));
        let any = n.xattrs.keys().any(|k| storable_xattr(k));
        n.xattrs = if any { present() } else { BTreeMap::new() };
    }
    t
}

/// `expected` as the directory sink leaves it: only storable xattrs, minus what the sink
/// warned it could not set.
pub fn as_dir(expected: &Tree, warnings: &[Warning]) -> Tree {
    let mut t = expected.clone();
    for n in t.0.values_mut() {
        n.xattrs.retain(|k, _| storable_xattr(k));
    }
    for w in warnings {
        let path = w.path.as_bytes();
        match &w.kind {
            // Xattrs belong to the inode: every name of it loses the attribute. As for devices
            // below, only a warning about the version shown counts.
            WarningKind::XattrNotSet { name, errno }
                if t.0.get(path).is_some_and(|n| not_set(n, name, *errno)) =>
            {
                let group = t.0.get(path).and_then(|n| n.link.clone());
                for (p, n) in t.0.iter_mut() {
                    if p == path || (group.is_some() && n.link == group) {
                        n.xattrs.remove(name);
                    }
                }
            }
            // A layer that repeats a path delivers it again: the warning may be about a
            // version a later entry replaced. Only one about the version shown counts.
            WarningKind::DeviceNotCreated { errno }
                if t.0.get(path).is_some_and(|n| not_created(n, *errno)) =>
            {
                t.0.remove(path);
            }
            _ => {}
        }
    }
    t
}

/// Whether the directory sink's `XattrNotSet { name, errno }` can be about `n`: the kernel
/// refuses `user.` attributes (EPERM) only on what is neither a regular file nor a directory,
/// so such a warning on a path that shows one was about a version a later entry replaced.
fn not_set(n: &Node, name: &[u8], errno: i32) -> bool {
    let user_on_file_or_dir = name.starts_with(b"user.")
        && errno == rustix::io::Errno::PERM.raw_os_error()
        && matches!(n.kind, Kind::Dir | Kind::File { .. });
    !user_on_file_or_dir
}

/// Whether the directory sink's `DeviceNotCreated { errno }` explains `n` missing: `n` is a
/// device, and either mknod(2) refused all devices (no `CAP_MKNOD`) or the sink refused this
/// number as too wide for mknod (`EOVERFLOW`, major > 0xfff or minor > 0xfffff).
fn not_created(n: &Node, errno: i32) -> bool {
    match n.kind {
        Kind::CharDev(major, minor) | Kind::BlockDev(major, minor) => {
            errno != rustix::io::Errno::OVERFLOW.raw_os_error() || major > 0xfff || minor > 0xf_ffff
        }
        _ => false,
    }
}
