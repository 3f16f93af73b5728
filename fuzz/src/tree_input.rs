//! The `squashfs_roundtrip` target's input: a file tree and the writer's options.
//!
//! A tree is a list of nodes, each naming its parent directory by position, so every decoded
//! list is a valid tree: names are made unique within their directory, hard links point to an
//! earlier non-directory. Bulk nodes (`Many`) put hundreds of entries in one directory at the
//! cost of a few bytes, to reach the 256-entry directory headers and metadata-block crossings.
//! [`TreeInput::plan`] turns the tree into the entry stream a merge would deliver (in one of
//! three orders: parents first, children first, or shuffled by name) and the expected tree.
//!
//! `Debug` prints the entries as `Entry` values for `tests/regression.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use arbitrary::{Arbitrary, Unstructured};
use ocirender::{
    Algorithm, BlockSize, Compression, Entry, EntryKind, EntryPath, Metadata, SquashfsOptions,
    Xattr,
};

use crate::codec::{self, lit, Enc};
use crate::dump::{Kind, Node, Tree};
use crate::merge_input::{Content, Target, DEVICE_NUMBERS, IDS, MTIMES};
use crate::readback::node_of;

/// Most nodes in one tree (a `Many` node counts once).
pub const MAX_NODES: usize = 200;
/// Most files one `Many` node makes.
pub const MAX_MANY: u16 = 700;

/// Compressors to write with.
pub const ALGORITHMS: [Algorithm; 5] = [
    Algorithm::Lz4,
    Algorithm::Gzip,
    Algorithm::Zstd,
    Algorithm::Xz,
    Algorithm::None,
];
/// Block sizes.
pub const BLOCK_SIZES: [u32; 4] = [4096, 8192, 65536, 131_072];
/// Xattr names: storable ones and two the writer leaves out with a warning.
pub const XATTR_NAMES: [&[u8]; 6] = [
    b"user.a",
    b"user.b",
    b"trusted.overlay.opaque",
    b"security.selinux",
    b"system.posix_acl_access",
    b"user.",
];
/// Names that test the directory sort order and lengths.
pub const NAMES: [&[u8]; 10] = [
    b"a", b"B", b"a.b", b"\xff", b"aa", b"a b", b"a-", b"~", b"z", b"\x01",
];

/// A tree and how to write it.
#[derive(Clone, PartialEq, Eq)]
pub struct TreeInput {
    /// Index into [`ALGORITHMS`].
    pub algorithm: usize,
    /// Index into [`BLOCK_SIZES`].
    pub block_size: usize,
    /// Bit 0: no fragments; bit 1: no dedup; bit 2: no export table; bit 3: write again with
    /// two jobs and compare the bytes.
    pub flags: u8,
    /// 0: parents first; 1: children first; 2: by a hash of the name.
    pub order: usize,
    /// The root directory's metadata.
    pub root: MetaSpec,
    /// The nodes.
    pub nodes: Vec<NodeSpec>,
}

/// One node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// The parent: an index into the directories so far (0 = the root).
    pub parent: usize,
    /// Its name.
    pub name: NameSpec,
    /// What it is.
    pub kind: KindSpec,
    /// Its metadata.
    pub meta: MetaSpec,
}

/// A name in a directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameSpec {
    /// One of [`NAMES`].
    Table(usize),
    /// Bytes (slashes and NULs are dropped; an empty, `.` or `..` name becomes `_`).
    Raw(Vec<u8>),
}

/// The type of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KindSpec {
    /// A directory.
    Dir,
    /// A regular file made of these pieces; with `sparse`, the all-zero `Fill` pieces are
    /// declared as holes.
    File(Vec<Content>, bool),
    /// A symlink.
    Symlink(Target),
    /// A character (true) or block device, indexes into [`DEVICE_NUMBERS`].
    Device(bool, usize, usize),
    /// A fifo (false) or socket.
    Special(bool),
    /// A hard link to an earlier non-directory (index among them, modulo their count).
    Hardlink(u16),
    /// `count` small files named `<prefix>NNNN`.
    Many(u8, u16),
}

/// Metadata.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MetaSpec {
    /// Permission bits (masked to 0o7777).
    pub mode: u16,
    /// Index into [`IDS`].
    pub uid: usize,
    /// Index into [`IDS`].
    pub gid: usize,
    /// Index into [`MTIMES`].
    pub mtime: usize,
    /// `(index into XATTR_NAMES, value)`.
    pub xattrs: Vec<(usize, Vec<u8>)>,
}

impl MetaSpec {
    fn decode(u: &mut Unstructured<'_>) -> MetaSpec {
        if codec::u8(u) < 128 {
            return MetaSpec {
                mode: 0o755,
                ..MetaSpec::default()
            };
        }
        let mode = codec::u16(u) & 0o7777;
        let uid = codec::pick(u, IDS.len());
        let gid = codec::pick(u, IDS.len());
        let mtime = codec::pick(u, MTIMES.len());
        let n = codec::pick(u, 3);
        let xattrs = (0..n)
            .map(|_| (codec::pick(u, XATTR_NAMES.len()), codec::short_bytes(u, 64)))
            .collect();
        MetaSpec {
            mode,
            uid,
            gid,
            mtime,
            xattrs,
        }
    }

    fn encode(&self, e: &mut Enc) {
        if *self
            == (MetaSpec {
                mode: 0o755,
                ..MetaSpec::default()
            })
        {
            e.u8(0);
            return;
        }
        e.u8(128)
            .u16(self.mode)
            .pick(self.uid)
            .pick(self.gid)
            .pick(self.mtime)
            .pick(self.xattrs.len());
        for (n, v) in &self.xattrs {
            e.pick(*n).short_bytes(v);
        }
    }

    fn to_metadata(&self) -> Metadata {
        let mut xattrs: Vec<Xattr> = self
            .xattrs
            .iter()
            .map(|(n, v)| Xattr {
                name: XATTR_NAMES[*n].to_vec(),
                value: v.clone(),
            })
            .collect();
        // The contract: sorted by name, names unique (the last one given wins).
        xattrs.reverse();
        xattrs.sort_by(|a, b| a.name.cmp(&b.name));
        xattrs.dedup_by(|a, b| a.name == b.name);
        Metadata {
            mode: u32::from(self.mode & 0o7777),
            uid: IDS[self.uid],
            gid: IDS[self.gid],
            mtime: MTIMES[self.mtime],
            mtime_nsec: 0,
            xattrs,
        }
    }
}

impl NameSpec {
    fn decode(u: &mut Unstructured<'_>) -> NameSpec {
        let t = codec::u8(u);
        if t < 200 {
            NameSpec::Table(usize::from(t) % NAMES.len())
        } else if t < 250 {
            NameSpec::Raw(codec::short_bytes(u, 255))
        } else {
            // The longest names squashfs and Linux allow.
            NameSpec::Raw(vec![b'L'; 250 + usize::from(t - 250)])
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            NameSpec::Table(i) => e.pick(*i),
            NameSpec::Raw(b) => e.u8(200).short_bytes(b),
        };
    }

    fn bytes(&self) -> Vec<u8> {
        let mut b = match self {
            NameSpec::Table(i) => NAMES[*i].to_vec(),
            NameSpec::Raw(b) => b.clone(),
        };
        b.retain(|&c| c != b'/' && c != 0);
        if b.is_empty() || b == b"." || b == b".." {
            b = b"_".to_vec();
        }
        b
    }
}

impl KindSpec {
    fn decode(u: &mut Unstructured<'_>) -> KindSpec {
        match codec::pick(u, 10) {
            0 | 9 => KindSpec::Dir,
            1..=3 => {
                let n = 1 + codec::pick(u, 4);
                let pieces = (0..n).map(|_| Content::decode(u)).collect();
                KindSpec::File(pieces, codec::u8(u) & 1 == 1)
            }
            4 => KindSpec::Symlink(Target::decode(u)),
            5 => KindSpec::Hardlink(codec::u16(u)),
            6 => KindSpec::Device(
                codec::u8(u) & 1 == 1,
                codec::pick(u, DEVICE_NUMBERS.len()),
                codec::pick(u, DEVICE_NUMBERS.len()),
            ),
            7 => KindSpec::Special(codec::u8(u) & 1 == 1),
            _ => KindSpec::Many(codec::u8(u), codec::u16(u) % (MAX_MANY + 1)),
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            KindSpec::Dir => {
                e.pick(0);
            }
            KindSpec::File(pieces, sparse) => {
                e.pick(1).pick(pieces.len() - 1);
                for p in pieces {
                    p.encode(e);
                }
                e.u8(u8::from(*sparse));
            }
            KindSpec::Symlink(t) => {
                e.pick(4);
                t.encode(e);
            }
            KindSpec::Hardlink(i) => {
                e.pick(5).u16(*i);
            }
            KindSpec::Device(c, a, b) => {
                e.pick(6).u8(u8::from(*c)).pick(*a).pick(*b);
            }
            KindSpec::Special(s) => {
                e.pick(7).u8(u8::from(*s));
            }
            KindSpec::Many(p, n) => {
                e.pick(8).u8(*p).u16(*n);
            }
        }
    }
}

fn fast_level(a: Algorithm) -> u32 {
    match a {
        Algorithm::Gzip | Algorithm::Zstd => 1,
        _ => 0,
    }
}

impl<'a> Arbitrary<'a> for TreeInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let algorithm = codec::pick(u, ALGORITHMS.len());
        let block_size = codec::pick(u, BLOCK_SIZES.len());
        let flags = codec::u8(u);
        let order = codec::pick(u, 3);
        let root = MetaSpec::decode(u);
        let mut nodes = Vec::new();
        while !u.is_empty() && nodes.len() < MAX_NODES {
            nodes.push(NodeSpec {
                parent: usize::from(codec::u8(u)),
                name: NameSpec::decode(u),
                kind: KindSpec::decode(u),
                meta: MetaSpec::decode(u),
            });
        }
        Ok(TreeInput {
            algorithm,
            block_size,
            flags,
            order,
            root,
            nodes,
        })
    }
}

/// The entry stream for a tree and what reading the image back must give.
pub struct Plan {
    /// Entries with their content, in delivery order.
    pub entries: Vec<(Entry, Vec<u8>)>,
    /// The tree the image must hold.
    pub expected: Tree,
    /// Whether some entry is one squashfs cannot store (then the writer must refuse).
    pub unrepresentable: bool,
}

impl TreeInput {
    /// The bytes this input decodes from.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.pick(self.algorithm)
            .pick(self.block_size)
            .u8(self.flags)
            .pick(self.order);
        self.root.encode(&mut e);
        for n in &self.nodes {
            e.u8(u8::try_from(n.parent).expect("parent index fits a byte"));
            n.name.encode(&mut e);
            n.kind.encode(&mut e);
            n.meta.encode(&mut e);
        }
        e.0
    }

    /// The writer's options.
    pub fn options(&self) -> SquashfsOptions {
        SquashfsOptions {
            // The fastest level of each compressor: the code paths are the same.
            compression: Compression::new(
                ALGORITHMS[self.algorithm],
                Some(fast_level(ALGORITHMS[self.algorithm])),
            )
            .expect("valid levels"),
            block_size: BlockSize::new(BLOCK_SIZES[self.block_size]).expect("valid block size"),
            fragments: self.flags & 1 == 0,
            dedup: self.flags & 2 == 0,
            exportable: self.flags & 4 == 0,
            ..SquashfsOptions::default()
        }
    }

    /// Whether to write the image again with two jobs.
    pub fn twice(&self) -> bool {
        self.flags & 8 != 0
    }

    /// Builds the entry stream and the expected tree.
    pub fn plan(&self) -> Plan {
        let root_meta = self.root.to_metadata();
        let mut dirs: Vec<Vec<u8>> = vec![Vec::new()];
        let mut taken: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut nondirs: Vec<Vec<u8>> = Vec::new();
        let mut plain: Vec<(Entry, Vec<u8>)> = Vec::new();
        let mut links: Vec<(Entry, Vec<u8>)> = Vec::new();
        let mut unrepresentable = false;
        let join = |dir: &[u8], name: &[u8]| -> Vec<u8> {
            if dir.is_empty() {
                name.to_vec()
            } else {
                [dir, b"/", name].concat()
            }
        };
        let entry = |path: &[u8], kind: EntryKind, meta: Metadata| Entry {
            path: EntryPath::new(path).expect("names are valid"),
            kind,
            meta,
        };
        for n in &self.nodes {
            let dir = dirs[n.parent % dirs.len()].clone();
            let meta = n.meta.to_metadata();
            if let KindSpec::Many(prefix, count) = n.kind {
                for i in 0..count {
                    let name = format!("{}{i:04}", char::from(b'a' + prefix % 26));
                    let path = join(&dir, name.as_bytes());
                    if taken.insert(path.clone()) {
                        let data = i.to_le_bytes().to_vec();
                        let kind = EntryKind::File {
                            size: data.len() as u64,
                            sparse: None,
                        };
                        plain.push((entry(&path, kind, meta.clone()), data));
                        nondirs.push(path);
                    }
                }
                continue;
            }
            let path = join(&dir, &n.name.bytes());
            if !taken.insert(path.clone()) {
                continue;
            }
            let (kind, data) = match &n.kind {
                KindSpec::Dir => {
                    dirs.push(path.clone());
                    (EntryKind::Dir, Vec::new())
                }
                KindSpec::File(pieces, sparse) => {
                    let mut data = Vec::new();
                    let mut map = Vec::new();
                    for p in pieces {
                        let bytes = p.bytes();
                        if !matches!(p, Content::Fill(0, _)) && !bytes.is_empty() {
                            map.push((data.len() as u64, bytes.len() as u64));
                        }
                        data.extend_from_slice(&bytes);
                    }
                    let kind = EntryKind::File {
                        size: data.len() as u64,
                        sparse: sparse.then_some(map),
                    };
                    (kind, data)
                }
                KindSpec::Symlink(t) => {
                    let target = t.bytes();
                    unrepresentable |= target.is_empty() || target.len() > 4096;
                    (EntryKind::Symlink { target }, Vec::new())
                }
                KindSpec::Device(char_dev, a, b) => {
                    let (major, minor) = (DEVICE_NUMBERS[*a], DEVICE_NUMBERS[*b]);
                    unrepresentable |= major >= 4096 || minor >= 1 << 20;
                    let kind = if *char_dev {
                        EntryKind::CharDevice { major, minor }
                    } else {
                        EntryKind::BlockDevice { major, minor }
                    };
                    (kind, Vec::new())
                }
                KindSpec::Special(socket) => {
                    let kind = if *socket {
                        EntryKind::Socket
                    } else {
                        EntryKind::Fifo
                    };
                    (kind, Vec::new())
                }
                KindSpec::Hardlink(i) => {
                    if nondirs.is_empty() {
                        taken.remove(&path);
                        continue;
                    }
                    let target = nondirs[usize::from(*i) % nondirs.len()].clone();
                    let kind = EntryKind::Hardlink {
                        target: EntryPath::new(&target).expect("valid"),
                    };
                    links.push((entry(&path, kind, meta), Vec::new()));
                    continue;
                }
                KindSpec::Many(..) => unreachable!("handled above"),
            };
            if !kind.is_dir() {
                nondirs.push(path.clone());
            }
            plain.push((entry(&path, kind, meta), data));
        }
        let expected = expected_tree(&root_meta, &plain, &links);
        match self.order {
            0 => {}
            1 => plain.reverse(),
            _ => plain.sort_by_key(|(e, _)| {
                e.path
                    .as_bytes()
                    .iter()
                    .fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                    })
            }),
        }
        let root = Entry {
            path: EntryPath::root(),
            kind: EntryKind::Dir,
            meta: root_meta,
        };
        let mut entries = vec![(root, Vec::new())];
        entries.extend(plain);
        entries.extend(links);
        Plan {
            entries,
            expected,
            unrepresentable,
        }
    }
}

fn expected_tree(root: &Metadata, plain: &[(Entry, Vec<u8>)], links: &[(Entry, Vec<u8>)]) -> Tree {
    let mut tree = Tree::default();
    let root_entry = Entry {
        path: EntryPath::root(),
        kind: EntryKind::Dir,
        meta: root.clone(),
    };
    tree.0.insert(Vec::new(), node_of(&root_entry, &[]));
    let mut identity: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (e, data) in plain {
        let p = e.path.as_bytes().to_vec();
        tree.0.insert(p.clone(), node_of(e, data));
        if !e.kind.is_dir() {
            identity.insert(p.clone(), p);
        }
    }
    for (e, _) in links {
        if let EntryKind::Hardlink { target } = &e.kind {
            let t = target.as_bytes();
            let node: Node = tree.0[t].clone();
            let id = identity[t].clone();
            tree.0.insert(e.path.as_bytes().to_vec(), node);
            identity.insert(e.path.as_bytes().to_vec(), id);
        }
    }
    tree.set_link_groups(|p| identity.get(p).cloned());
    debug_assert!(tree
        .0
        .values()
        .all(|n| n.kind != Kind::Dir || n.link.is_none()));
    tree
}

/// The entry stream as Rust code for `tests/regression.rs`.
impl fmt::Debug for TreeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "// options: {:?}", self.options())?;
        writeln!(f, "let entries: Vec<(Entry, Vec<u8>)> = vec![")?;
        for (e, data) in self.plan().entries {
            writeln!(f, "    ({e:?}, {}.to_vec()),", lit(&data))?;
        }
        writeln!(f, "];")
    }
}
