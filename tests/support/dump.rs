//! The universal assertion: a canonical, one-line-per-entry dump of a file tree.
//!
//! Every output (directory, tar, squashfs read by unsquashfs or backhand) and every expected
//! result in the tests is turned into a [`Tree`] and compared as text, so a failure shows a
//! readable diff. Line shape (paths start with `/`, bytes outside printable ASCII as `\xNN`):
//!
//! ```text
//! / dir 0755 0:0 t=0
//! /bin/sh symlink 0777 0:0 t=1700000000 -> dash
//! /dev/null chardev 0666 0:0 t=0 dev=1,3
//! /etc/passwd file 0644 0:0 t=1700000000 size=12 sha256=5f2a… link=/etc/passwd
//! /etc/x file 0644 0:0 t=0 size=0 sha256=e3b0… xattr=user.a:6869
//! ```
//! `link=` names the first path (in byte order) of the entry's hard-link group and appears only
//! on files that share an inode with another path.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// What an entry is, with its type-specific payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File { size: u64, sha256: String },
    Dir,
    Symlink(Vec<u8>),
    CharDev(u32, u32),
    BlockDev(u32, u32),
    Fifo,
    Socket,
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits incl. setuid/setgid/sticky (symlinks are always 0777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    /// The first path (byte order) of this entry's hard-link group, if it has other names.
    pub link: Option<Vec<u8>>,
}

impl Node {
    pub fn new(kind: Kind, mode: u32) -> Node {
        let mode = if matches!(kind, Kind::Symlink(_)) { 0o777 } else { mode & 0o7777 };
        Node { kind, mode, uid: 0, gid: 0, mtime: 0, xattrs: BTreeMap::new(), link: None }
    }

    pub fn file(content: &[u8], mode: u32) -> Node {
        Node::new(Kind::File { size: content.len() as u64, sha256: sha256(content) }, mode)
    }
}

/// Which attributes a dump shows.
#[derive(Clone, Copy, Debug)]
pub struct DumpOptions {
    pub ownership: bool,
    pub mtime: bool,
    /// Show directory mtimes (some readers cannot restore them faithfully).
    pub dir_mtime: bool,
    pub xattrs: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions { ownership: true, mtime: true, dir_mtime: true, xattrs: true }
    }
}

/// A file tree keyed by path bytes (`""` is the root, `"a/b"` a nested entry).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree(pub BTreeMap<Vec<u8>, Node>);

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn escape(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if (0x21..0x7f).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            let _ = write!(s, "\\x{b:02x}");
        }
    }
    s
}

impl Tree {
    pub fn insert(&mut self, path: &str, node: Node) {
        self.0.insert(path.trim_matches('/').as_bytes().to_vec(), node);
    }

    /// Derives `link=` from groups of paths that share an identity (`(dev, ino)` or similar).
    pub fn set_link_groups<K: Ord>(&mut self, identity: impl Fn(&[u8]) -> Option<K>) {
        let mut groups: BTreeMap<K, Vec<Vec<u8>>> = BTreeMap::new();
        for path in self.0.keys() {
            if let Some(k) = identity(path) {
                groups.entry(k).or_default().push(path.clone());
            }
        }
        for members in groups.into_values().filter(|m| m.len() > 1) {
            let first = members[0].clone();
            for m in members {
                if let Some(n) = self.0.get_mut(&m) {
                    n.link = Some(first.clone());
                }
            }
        }
    }

    /// Reads a directory tree from disk with lstat (never following symlinks).
    pub fn from_dir(root: &Path) -> Tree {
        let mut tree = Tree::default();
        let mut inodes: BTreeMap<Vec<u8>, (u64, u64)> = BTreeMap::new();
        walk(root, root, &mut tree, &mut inodes);
        tree.set_link_groups(|p| {
            let id = inodes.get(p)?;
            Some(*id)
        });
        tree
    }

    /// The canonical dump.
    pub fn dump(&self, opts: DumpOptions) -> String {
        let mut out = String::new();
        for (path, n) in &self.0 {
            let _ = write!(out, "/{}", escape(path));
            let kind = match &n.kind {
                Kind::File { .. } => "file",
                Kind::Dir => "dir",
                Kind::Symlink(_) => "symlink",
                Kind::CharDev(..) => "chardev",
                Kind::BlockDev(..) => "blockdev",
                Kind::Fifo => "fifo",
                Kind::Socket => "socket",
            };
            let _ = write!(out, " {kind} {:04o}", n.mode);
            if opts.ownership {
                let _ = write!(out, " {}:{}", n.uid, n.gid);
            }
            if opts.mtime && (opts.dir_mtime || n.kind != Kind::Dir) {
                let _ = write!(out, " t={}", n.mtime);
            }
            match &n.kind {
                Kind::File { size, sha256 } => {
                    let _ = write!(out, " size={size} sha256={}", &sha256[..16]);
                }
                Kind::Symlink(t) => {
                    let _ = write!(out, " -> {}", escape(t));
                }
                Kind::CharDev(a, b) | Kind::BlockDev(a, b) => {
                    let _ = write!(out, " dev={a},{b}");
                }
                _ => {}
            }
            if let Some(l) = &n.link {
                let _ = write!(out, " link=/{}", escape(l));
            }
            if opts.xattrs {
                for (k, v) in &n.xattrs {
                    let _ = write!(out, " xattr={}:{}", escape(k), hex(v));
                }
            }
            out.push('\n');
        }
        out
    }
}

fn walk(root: &Path, dir: &Path, tree: &mut Tree, inodes: &mut BTreeMap<Vec<u8>, (u64, u64)>) {
    use std::os::unix::ffi::OsStrExt;
    let rel = dir.strip_prefix(root).expect("walk stays below root");
    let key = rel.as_os_str().as_bytes().to_vec();
    let md = fs::symlink_metadata(dir).unwrap_or_else(|e| panic!("lstat {}: {e}", dir.display()));
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        Kind::Dir
    } else if ft.is_file() {
        let mut f = fs::File::open(dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = f.read(&mut buf).expect("read file");
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Kind::File { size: md.len(), sha256: hex(&h.finalize()) }
    } else if ft.is_symlink() {
        Kind::Symlink(fs::read_link(dir).expect("readlink").as_os_str().as_bytes().to_vec())
    } else if ft.is_char_device() {
        Kind::CharDev(major(md.rdev()), minor(md.rdev()))
    } else if ft.is_block_device() {
        Kind::BlockDev(major(md.rdev()), minor(md.rdev()))
    } else if ft.is_fifo() {
        Kind::Fifo
    } else {
        Kind::Socket
    };
    let mut node = Node::new(kind, md.mode());
    node.uid = md.uid();
    node.gid = md.gid();
    node.mtime = md.mtime();
    node.xattrs = read_xattrs(dir);
    if !ft.is_dir() && md.nlink() > 1 {
        inodes.insert(key.clone(), (md.dev(), md.ino()));
    }
    let is_dir = ft.is_dir();
    tree.0.insert(key, node);
    if is_dir {
        let mut names: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("readdir {}: {e}", dir.display()))
            .map(|e| e.expect("dirent").path())
            .collect();
        names.sort();
        for child in names {
            walk(root, &child, tree, inodes);
        }
    }
}

pub fn major(dev: u64) -> u32 {
    (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32
}

pub fn minor(dev: u64) -> u32 {
    (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32
}

/// Reads extended attributes without following symlinks.
fn read_xattrs(path: &Path) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut names = vec![0u8; 64 * 1024];
    let Ok(n) = rustix::fs::llistxattr(path, &mut names) else {
        return out;
    };
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let cname = std::ffi::CString::new(name).expect("xattr name has no NUL");
        let mut value = vec![0u8; 64 * 1024];
        let len = rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value)
            .unwrap_or_else(|e| panic!("lgetxattr {}: {e}", path.display()));
        value.truncate(len);
        out.insert(name.to_vec(), value);
    }
    out
}
