//! The directory tree held until the end: a compact arena of per-path metadata, then sorting,
//! link counts, inode numbering and the writing of the inode and directory tables.
//!
//! File data is written as entries arrive, but inodes and directories can only be written at
//! the end: a directory's listing needs every child's inode location, and entries arrive in
//! any order (directories after their children, paths twice). So each path becomes one
//! 24-byte [`Node`] in a flat `Vec` (names, each after its length byte, and symlink targets in
//! one shared byte arena; permissions, owner and xattrs interned, since an image has few
//! distinct combinations), and a hash table of `u32` node indexes keyed by (parent, name)
//! finds children. Nothing else is kept per path.
//!
//! Arrival rules (the `Sink` contract): missing parents are created as implicit directories
//! (0755 root:root, time 0) and take the directory's metadata when its entry arrives; a path
//! that arrives again replaces the earlier node — a directory over a directory keeps its
//! children, anything else marks the old node dead, which drops a replaced directory's whole
//! subtree (a node is live only if its parent is). A hard link node points at its target's
//! node (never at another link), so a link keeps the inode it was made for even if the target
//! path is replaced later.
//!
//! At the end ([`Tree::serialize`]):
//! 1. live nodes are sorted by (parent, name bytes) — unsigned byte order, as the kernel's
//!    lookup needs — so each directory's children are one contiguous run;
//! 2. inode numbers are handed out as mksquashfs does: depth first, a directory's entries in
//!    name order, each subdirectory's contents right after its own number, the root last (N),
//!    hard links sharing their target's number; numbers are dense 1..=N;
//! 3. the tables are written depth first, post-order: a directory's non-directory inodes, its
//!    subdirectories (recursively), its listing, then its own inode. The root inode is the
//!    last one; its parent number is N + 1 (mksquashfs's convention). Directory nlink is
//!    2 + subdirectories; other inodes' nlink is their number of names.

use hashbrown::{HashMap, HashTable};

use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::squashfs::block_writer::FileStore;
use crate::squashfs::dir_writer::DirWriter;
use crate::squashfs::export::{ExportTable, Paging};
use crate::squashfs::format::{MetaRef, NO_FRAGMENT};
use crate::squashfs::id_table::IdTable;
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::inode::{self, InodeBase, InodeData};
use crate::squashfs::meta_writer::MetaWriter;
use crate::squashfs::spill::{Canon, RecKind, Spill};
use crate::squashfs::xattr_writer::{SetHandle, XattrWriter, NO_SET};

/// The type-specific part of a node (8 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKind {
    /// A directory.
    Dir,
    /// A regular file; the id of its placement in the [`FileStore`].
    File(u32),
    /// A symlink; the target is in the byte arena.
    Symlink {
        /// Offset of the target in the arena.
        off: u32,
        /// Target length (1–4096).
        len: u16,
    },
    /// Another name of the node with this index (never itself a link).
    Hardlink(u32),
    /// A character device (`new_encode_dev` number).
    CharDev(u32),
    /// A block device (`new_encode_dev` number).
    BlockDev(u32),
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
}

/// The metadata of a node as it will be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodeMeta {
    /// Permission bits (`mode & 0o7777`).
    pub mode: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time, clamped to `u32`.
    pub mtime: u32,
    /// Interned xattr set.
    pub xattrs: SetHandle,
}

impl NodeMeta {
    /// The metadata of an implicit directory: 0755 root:root, time 0, no xattrs.
    pub(crate) fn implicit_dir() -> NodeMeta {
        NodeMeta {
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: NO_SET,
        }
    }
}

/// `attrs` bit marking a node dead (replaced, or under a replaced directory).
const DEAD: u32 = 1 << 31;
/// `refs` value of an inode not written yet.
const UNWRITTEN: u64 = u64::MAX;

/// One path: 24 bytes.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Offset of the name's length byte in the arena (the name follows it).
    name_off: u32,
    parent: u32,
    /// Index of the interned permissions, owner and xattrs; [`DEAD`] when the node no longer
    /// belongs to the tree.
    attrs: u32,
    mtime: u32,
    kind: NodeKind,
}

/// What nodes share: everything of [`NodeMeta`] but the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Attrs {
    mode: u16,
    uid: u32,
    gid: u32,
    xattrs: SetHandle,
}

/// Interned [`Attrs`]: an index each.
#[derive(Debug, Default)]
struct AttrTable {
    all: Vec<Attrs>,
    index: HashMap<Attrs, u32>,
}

impl AttrTable {
    fn intern(&mut self, meta: &NodeMeta) -> Result<u32> {
        let a = Attrs {
            mode: meta.mode,
            uid: meta.uid,
            gid: meta.gid,
            xattrs: meta.xattrs,
        };
        if let Some(&i) = self.index.get(&a) {
            return Ok(i);
        }
        let i = u32::try_from(self.all.len())
            .ok()
            .filter(|&i| i < DEAD)
            .ok_or(Error::TooLarge {
                what: "distinct combinations of permissions, owner and xattrs",
                size: self.all.len() as u64,
                limit: u64::from(DEAD - 1),
            })?;
        self.all.push(a);
        self.index.insert(a, i);
        Ok(i)
    }

    fn get(&self, attrs: u32) -> Attrs {
        self.all[(attrs & !DEAD) as usize]
    }

    fn heap_bytes(&self) -> usize {
        self.all.capacity() * std::mem::size_of::<Attrs>()
            + self.index.capacity() * (std::mem::size_of::<(Attrs, u32)>() + 1)
    }
}

/// The arena of nodes.
#[derive(Debug)]
pub(crate) struct Tree {
    nodes: Vec<Node>,
    /// Names and symlink targets.
    bytes: Vec<u8>,
    attrs: AttrTable,
    /// Live non-root nodes by (parent, name).
    children: HashTable<u32>,
    /// The last directory a parent path resolved to.
    cache: Option<(Box<[u8]>, u32)>,
}

fn child_hash(parent: u32, name: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(name, u64::from(parent))
}

/// What the tables say about the whole tree, for the superblock and export table.
#[derive(Debug)]
pub(crate) struct Serialized {
    /// The root inode's location.
    pub root: MetaRef,
    /// Number of inodes (N).
    pub inode_count: u32,
    /// Packed inode refs by inode number − 1.
    pub export: ExportTable,
    /// The newest mtime of any inode.
    pub newest_mtime: u32,
    /// Live paths, the root included.
    pub entries: u64,
    /// Sum of the sizes of the regular files (each inode once).
    pub file_bytes: u64,
}

/// Where the serialization writes.
pub(crate) struct Tables<'a> {
    /// The image; full inode metadata blocks are streamed to it.
    pub image: &'a mut ImageFile,
    /// The inode table.
    pub inodes: &'a mut MetaWriter,
    /// The directory table (kept in memory until the inode table is complete).
    pub dirs: &'a mut DirWriter,
    /// uid/gid indexes.
    pub ids: &'a mut IdTable,
    /// Xattr ids.
    pub xattrs: &'a mut XattrWriter,
    /// File placements.
    pub files: &'a FileStore,
    /// Data block size.
    pub block_size: u64,
    /// Where the export table pages to past the budget (`None`: no budget).
    pub export_paging: Option<Paging>,
}

impl Tree {
    /// A tree holding only the root, an implicit directory.
    pub(crate) fn new() -> Tree {
        let mut attrs = AttrTable::default();
        let meta = NodeMeta::implicit_dir();
        // The first interned attributes: index 0, nothing to fail.
        let root_attrs = attrs.intern(&meta).unwrap_or(0);
        Tree {
            nodes: vec![Node {
                name_off: 0,
                parent: 0,
                attrs: root_attrs,
                mtime: meta.mtime,
                kind: NodeKind::Dir,
            }],
            // The root's name: empty.
            bytes: vec![0],
            attrs,
            children: HashTable::new(),
            cache: None,
        }
    }

    fn name(&self, i: u32) -> &[u8] {
        name_at(&self.bytes, self.nodes[i as usize].name_off)
    }

    fn find_child(&self, parent: u32, name: &[u8]) -> Option<u32> {
        let (nodes, bytes) = (&self.nodes, &self.bytes);
        self.children
            .find(child_hash(parent, name), |&i| {
                let n = &nodes[i as usize];
                n.parent == parent && name_at(bytes, n.name_off) == name
            })
            .copied()
    }

    /// Gives node `i` the metadata `meta` (keeping its deadness).
    fn set_meta(&mut self, i: u32, meta: &NodeMeta) -> Result<()> {
        let attrs = self.attrs.intern(meta)?;
        let node = &mut self.nodes[i as usize];
        node.attrs = attrs | (node.attrs & DEAD);
        node.mtime = meta.mtime;
        Ok(())
    }

    /// Sets the root directory's metadata.
    pub(crate) fn set_root(&mut self, meta: NodeMeta) -> Result<()> {
        self.set_meta(0, &meta)
    }

    /// The directory `path` goes into, creating missing ancestors as implicit directories.
    /// An ancestor that exists but is not a directory is an error.
    pub(crate) fn parent_dir(&mut self, path: &EntryPath) -> Result<u32> {
        let Some(parent) = path.parent() else {
            return Ok(0);
        };
        // Entries arrive clustered by directory, parents first: start from the directory of
        // the last entry when this one lies in it or beneath it, so that a chain of nested
        // directories costs one lookup per entry rather than one per level (linear, not
        // quadratic, in depth).
        let want = parent.as_bytes();
        if want.is_empty() {
            return Ok(0);
        }
        let (mut dir, skip) = match &self.cache {
            Some((p, i)) if **p == *want => return Ok(*i),
            Some((p, i)) if !p.is_empty() && want.starts_with(p) && want[p.len()] == b'/' => {
                (*i, p.len() + 1)
            }
            _ => (0, 0),
        };
        for comp in want[skip..].split(|&b| b == b'/') {
            dir = match self.find_child(dir, comp) {
                Some(c) if self.nodes[c as usize].kind == NodeKind::Dir => c,
                Some(_) => {
                    return Err(Error::Unrepresentable {
                        path: path.shown(),
                        problem: "one of its parents is not a directory",
                    })
                }
                None => self.push(dir, comp, NodeKind::Dir, NodeMeta::implicit_dir())?,
            };
        }
        self.cache = Some((parent.as_bytes().into(), dir));
        Ok(dir)
    }

    /// Stores `bytes` in the arena; returns the offset.
    fn store(&mut self, bytes: &[u8]) -> Result<u32> {
        let off = u32::try_from(self.bytes.len())
            .ok()
            .filter(|o| u32::MAX - o >= bytes.len() as u32)
            .ok_or(Error::TooLarge {
                what: "names and symlink targets",
                size: self.bytes.len() as u64 + bytes.len() as u64,
                limit: u64::from(u32::MAX),
            })?;
        self.bytes.extend_from_slice(bytes);
        Ok(off)
    }

    /// Stores a symlink target (1–4096 bytes) in the arena.
    pub(crate) fn symlink(&mut self, target: &[u8]) -> Result<NodeKind> {
        Ok(NodeKind::Symlink {
            off: self.store(target)?,
            len: target.len() as u16,
        })
    }

    fn push(&mut self, parent: u32, name: &[u8], kind: NodeKind, meta: NodeMeta) -> Result<u32> {
        let name_len = u8::try_from(name.len()).map_err(|_| Error::TooLarge {
            what: "file name",
            size: name.len() as u64,
            limit: u64::from(u8::MAX),
        })?;
        let idx = u32::try_from(self.nodes.len())
            .ok()
            .filter(|&i| i < u32::MAX)
            .ok_or(Error::TooLarge {
                what: "number of entries",
                size: self.nodes.len() as u64,
                limit: u64::from(u32::MAX - 1),
            })?;
        let attrs = self.attrs.intern(&meta)?;
        let name_off = self.store(&[name_len])?;
        self.store(name)?;
        self.nodes.push(Node {
            name_off,
            parent,
            attrs,
            mtime: meta.mtime,
            kind,
        });
        let (nodes, bytes) = (&self.nodes, &self.bytes);
        self.children
            .insert_unique(child_hash(parent, name), idx, |&i| {
                let n = &nodes[i as usize];
                child_hash(n.parent, name_at(bytes, n.name_off))
            });
        Ok(idx)
    }

    /// Adds `name` to directory `parent`, replacing an earlier entry of that name: a directory
    /// over a directory only takes the new metadata; anything else drops the old node (and a
    /// replaced directory's subtree).
    pub(crate) fn insert(
        &mut self,
        parent: u32,
        name: &[u8],
        kind: NodeKind,
        meta: NodeMeta,
    ) -> Result<()> {
        if let Some(old) = self.find_child(parent, name) {
            if self.nodes[old as usize].kind == NodeKind::Dir && kind == NodeKind::Dir {
                return self.set_meta(old, &meta);
            }
            self.nodes[old as usize].attrs |= DEAD;
            if let Ok(e) = self
                .children
                .find_entry(child_hash(parent, name), |&i| i == old)
            {
                e.remove();
            }
            self.cache = None;
        }
        self.push(parent, name, kind, meta)?;
        Ok(())
    }

    fn lookup(&self, path: &EntryPath) -> Option<u32> {
        let mut at = 0u32;
        for comp in path.components() {
            at = self.find_child(at, comp)?;
        }
        Some(at)
    }

    /// The node a hard link to `target` shares (never a directory, never another link).
    pub(crate) fn link_target(&self, link: &EntryPath, target: &EntryPath) -> Result<u32> {
        let Some(t) = self.lookup(target) else {
            return Err(Error::HardlinkTargetMissing {
                link: link.shown(),
                target: target.shown(),
            });
        };
        match self.nodes[t as usize].kind {
            NodeKind::Dir => Err(Error::HardlinkToDirectory {
                link: link.shown(),
                target: target.shown(),
            }),
            NodeKind::Hardlink(canonical) => Ok(canonical),
            _ => Ok(t),
        }
    }

    /// Bytes held by the arena and index (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.bytes.capacity()
            + self.attrs.heap_bytes()
            + self.children.capacity() * (4 + 1)
    }

    /// Bytes of names and symlink targets in the arena.
    pub(crate) fn name_bytes(&self) -> usize {
        self.bytes.len()
    }

    fn canonical(&self, i: u32) -> u32 {
        match self.nodes[i as usize].kind {
            NodeKind::Hardlink(t) => t,
            _ => i,
        }
    }

    fn is_dir(&self, i: u32) -> bool {
        self.nodes[i as usize].kind == NodeKind::Dir
    }

    /// Writes the inode and directory tables (see the module doc for the order).
    pub(crate) fn serialize(mut self, t: &mut Tables<'_>) -> Result<Serialized> {
        let order = self.sorted_live_nodes();
        let ino = self.number_inodes(&order)?;
        let inode_count = ino[0];
        let mut w = TableWriter {
            tree: &self,
            order: &order,
            ino: &ino,
            links: self.link_counts(&order),
            refs: vec![UNWRITTEN; self.nodes.len()],
            scratch: Vec::new(),
            newest_mtime: 0,
            file_bytes: 0,
        };
        w.write(t)?;
        let mut export = ExportTable::new(inode_count, t.export_paging.as_ref());
        for (k, &r) in w.refs.iter().enumerate() {
            if r != UNWRITTEN {
                export.set(ino[k], r);
            }
        }
        Ok(Serialized {
            root: MetaRef::unpack(w.refs[0]),
            inode_count,
            export,
            newest_mtime: w.newest_mtime,
            entries: order.len() as u64 + 1,
            file_bytes: w.file_bytes,
        })
    }

    /// Marks everything under a dead node dead and returns the live non-root nodes sorted by
    /// (parent, name): each directory's children become one contiguous run.
    fn sorted_live_nodes(&mut self) -> Vec<u32> {
        self.propagate_dead();
        let mut order: Vec<u32> = (1..self.nodes.len() as u32)
            .filter(|&i| self.nodes[i as usize].attrs & DEAD == 0)
            .collect();
        order.sort_unstable_by(|&a, &b| {
            let (na, nb) = (&self.nodes[a as usize], &self.nodes[b as usize]);
            na.parent
                .cmp(&nb.parent)
                .then_with(|| self.name(a).cmp(self.name(b)))
        });
        order
    }

    /// Marks everything under a dead node dead. Parents come before their children in the
    /// arena, so one pass does it.
    fn propagate_dead(&mut self) {
        for i in 1..self.nodes.len() {
            let parent = self.nodes[i].parent as usize;
            if self.nodes[parent].attrs & DEAD != 0 {
                self.nodes[i].attrs |= DEAD;
            }
        }
    }

    /// Number of live names per linked inode beyond its own (only nodes that links point at).
    fn link_counts(&self, order: &[u32]) -> HashMap<u32, u32> {
        let mut links: HashMap<u32, u32> = HashMap::new();
        for &c in order {
            if let NodeKind::Hardlink(target) = self.nodes[c as usize].kind {
                *links.entry(target).or_insert(0) += 1;
            }
        }
        links
    }

    /// Inode numbers by node, in mksquashfs order: depth first, a directory's entries in name
    /// order with each subdirectory's contents right after its own number, links sharing
    /// their target's number, the root last. `ino[0]` (the root's) is the inode count.
    fn number_inodes(&self, order: &[u32]) -> Result<Vec<u32>> {
        let mut ino = vec![0u32; self.nodes.len()];
        let mut next: u32 = 1;
        // (directory, its children, the next child): each run is found once per directory.
        let mut stack: Vec<(u32, &[u32], usize)> = vec![(0, children(&self.nodes, order, 0), 0)];
        while let Some(top) = stack.last_mut() {
            let Some(&c) = top.1.get(top.2) else {
                stack.pop();
                continue;
            };
            top.2 += 1;
            let k = self.canonical(c) as usize;
            if ino[k] == 0 {
                ino[k] = next;
                next = next.checked_add(1).ok_or(Error::TooLarge {
                    what: "number of inodes",
                    size: u64::from(u32::MAX),
                    limit: u64::from(u32::MAX - 1),
                })?;
            }
            if self.is_dir(c) {
                stack.push((c, children(&self.nodes, order, c), 0));
            }
        }
        ino[0] = next;
        Ok(ino)
    }

    /// The type-specific inode fields of a non-directory node.
    fn inode_data<'a>(
        &'a self,
        node: &Node,
        nlink: u32,
        files: &'a FileStore,
        block_size: u64,
    ) -> InodeData<'a> {
        match node.kind {
            NodeKind::File(id) => file_inode(files, id, nlink, block_size),
            NodeKind::Symlink { off, len } => InodeData::Symlink {
                target: self
                    .bytes
                    .get(off as usize..off as usize + usize::from(len))
                    .unwrap_or(&[]),
                nlink,
            },
            NodeKind::CharDev(dev) => InodeData::CharDev { dev, nlink },
            NodeKind::BlockDev(dev) => InodeData::BlockDev { dev, nlink },
            NodeKind::Fifo => InodeData::Fifo { nlink },
            NodeKind::Socket => InodeData::Socket { nlink },
            // Directories are written from the listing; links resolve to their target first.
            NodeKind::Dir | NodeKind::Hardlink(_) => InodeData::Fifo { nlink },
        }
    }

    /// The metadata of node `node` as stored.
    fn meta(&self, node: &Node) -> NodeMeta {
        let a = self.attrs.get(node.attrs);
        NodeMeta {
            mode: a.mode,
            uid: a.uid,
            gid: a.gid,
            mtime: node.mtime,
            xattrs: a.xattrs,
        }
    }

    /// The live nodes as spill records (key, node index as `seq`, kind, metadata), and the
    /// nodes live links point at (dead ones included) as [`Canon`]s: the tree's state handed
    /// to a [`Spill`] when the memory budget is reached.
    pub(crate) fn spill_into(mut self, spill: &mut Spill) -> Result<()> {
        self.propagate_dead();
        spill.root = self.meta(&self.nodes[0]);
        let mut key = Vec::new();
        for i in 1..self.nodes.len() as u32 {
            let node = self.nodes[i as usize];
            if node.attrs & DEAD != 0 {
                continue;
            }
            let kind = match node.kind {
                NodeKind::Hardlink(t) => {
                    let target = self.nodes[t as usize];
                    let canon = Canon {
                        kind: self.rec_kind(target.kind),
                        meta: self.meta(&target),
                    };
                    spill.canon.entry(u64::from(t)).or_insert(canon);
                    RecKind::Link(u64::from(t))
                }
                k => self.rec_kind(k),
            };
            key.clear();
            self.key_into(i, &mut key);
            spill.push_at(&key, u64::from(i), &kind, &self.meta(&node))?;
        }
        Ok(())
    }

    fn rec_kind(&self, kind: NodeKind) -> RecKind {
        match kind {
            NodeKind::Dir => RecKind::Dir,
            NodeKind::File(id) => RecKind::File(id),
            NodeKind::Symlink { off, len } => RecKind::Symlink(
                self.bytes
                    .get(off as usize..off as usize + usize::from(len))
                    .unwrap_or(&[])
                    .into(),
            ),
            NodeKind::CharDev(d) => RecKind::CharDev(d),
            NodeKind::BlockDev(d) => RecKind::BlockDev(d),
            NodeKind::Fifo => RecKind::Fifo,
            NodeKind::Socket => RecKind::Socket,
            NodeKind::Hardlink(t) => RecKind::Link(u64::from(t)),
        }
    }

    /// Appends node `i`'s spill key (its path, components separated by NUL).
    fn key_into(&self, i: u32, key: &mut Vec<u8>) {
        let parent = self.nodes[i as usize].parent;
        if parent != 0 {
            self.key_into(parent, key);
            key.push(0);
        }
        key.extend_from_slice(self.name(i));
    }

    fn write_inode(
        &self,
        node: &Node,
        number: u32,
        data: &InodeData<'_>,
        t: &mut Tables<'_>,
        scratch: &mut Vec<u8>,
    ) -> Result<u64> {
        put_inode(&self.meta(node), number, data, t, scratch)
    }

    /// Number of nodes (live or not): spill `seq`s start after them.
    pub(crate) fn node_count(&self) -> u64 {
        self.nodes.len() as u64
    }
}

/// The inode fields of regular file `id` (its placement in `files`).
pub(crate) fn file_inode(files: &FileStore, id: u32, nlink: u32, block_size: u64) -> InodeData<'_> {
    let f = files
        .file(id)
        .unwrap_or_else(|| crate::squashfs::block_writer::FileData::new(0));
    let blocks = files.words(&f);
    let mut sparse = 0u64;
    let size = f.size();
    for (i, &w) in blocks.iter().enumerate() {
        if w == 0 {
            sparse += block_size.min(size.saturating_sub(i as u64 * block_size));
        }
    }
    // Exact hole bytes (≤ size); the kernel's i_blocks = (size − sparse + 511) / 512 is then 0
    // for a file that is all holes. (mksquashfs stores size − 1 there.)
    InodeData::File {
        blocks_start: files.blocks_start(&f),
        size,
        sparse,
        nlink,
        fragment: f.fragment,
        fragment_offset: if f.fragment == NO_FRAGMENT {
            0
        } else {
            f.fragment_offset
        },
        blocks,
    }
}

/// Appends one inode to the inode table (streaming full metadata blocks to the image);
/// returns its packed reference.
pub(crate) fn put_inode(
    meta: &NodeMeta,
    number: u32,
    data: &InodeData<'_>,
    t: &mut Tables<'_>,
    scratch: &mut Vec<u8>,
) -> Result<u64> {
    let base = InodeBase {
        permissions: meta.mode & 0o7777,
        uid_idx: t.ids.index(meta.uid)?,
        gid_idx: t.ids.index(meta.gid)?,
        mtime: meta.mtime,
        number,
        xattr: t.xattrs.id_for(meta.xattrs),
    };
    scratch.clear();
    inode::encode(&base, data, scratch)?;
    let at = t.inodes.position();
    t.inodes.append(scratch)?;
    if t.inodes.pending_len() >= 1 << 20 {
        let blocks = t.inodes.take_output();
        t.image.write(&blocks)?;
    }
    Ok(at.packed())
}

/// The children of directory `d` in the sorted order.
fn children<'a>(nodes: &[Node], order: &'a [u32], d: u32) -> &'a [u32] {
    let lo = order.partition_point(|&c| nodes[c as usize].parent < d);
    let hi = order.partition_point(|&c| nodes[c as usize].parent <= d);
    &order[lo..hi]
}

/// The post-order walk that writes inodes and listings.
struct TableWriter<'a> {
    tree: &'a Tree,
    order: &'a [u32],
    ino: &'a [u32],
    links: HashMap<u32, u32>,
    /// Packed inode reference by node, `UNWRITTEN` until written.
    refs: Vec<u64>,
    scratch: Vec<u8>,
    newest_mtime: u32,
    file_bytes: u64,
}

impl TableWriter<'_> {
    /// Names of the inode of node `k`: its own if live, plus live links to it.
    fn nlink(&self, k: u32) -> u32 {
        let own = u32::from(self.tree.nodes[k as usize].attrs & DEAD == 0);
        own + self.links.get(&k).copied().unwrap_or(0)
    }

    /// Depth first, post-order: each directory's non-directory inodes and subdirectories,
    /// then its listing, then its own inode; the root last.
    fn write(&mut self, t: &mut Tables<'_>) -> Result<()> {
        let tree = self.tree;
        let order = self.order;
        let mut stack: Vec<(u32, &[u32], usize)> = vec![(0, children(&tree.nodes, order, 0), 0)];
        while let Some(top) = stack.last_mut() {
            let (d, kids, pos) = *top;
            if let Some(&c) = kids.get(pos) {
                top.2 += 1;
                if tree.is_dir(c) {
                    stack.push((c, children(&tree.nodes, order, c), 0));
                } else {
                    self.write_leaf(tree.canonical(c), t)?;
                }
                continue;
            }
            stack.pop();
            self.write_dir(d, kids, t)?;
        }
        Ok(())
    }

    /// Writes the inode of non-directory node `k` unless an earlier name wrote it.
    fn write_leaf(&mut self, k: u32, t: &mut Tables<'_>) -> Result<()> {
        if self.refs[k as usize] != UNWRITTEN {
            return Ok(());
        }
        let tree = self.tree;
        let node = tree.nodes[k as usize];
        let data = tree.inode_data(&node, self.nlink(k), t.files, t.block_size);
        if let InodeData::File { size, .. } = data {
            self.file_bytes += size;
        }
        self.newest_mtime = self.newest_mtime.max(node.mtime);
        let number = self.ino[k as usize];
        self.refs[k as usize] = tree.write_inode(&node, number, &data, t, &mut self.scratch)?;
        Ok(())
    }

    /// Writes directory `d`'s listing (its children are all written) and then its inode.
    fn write_dir(&mut self, d: u32, kids: &[u32], t: &mut Tables<'_>) -> Result<()> {
        let tree = self.tree;
        let mut listing = t.dirs.begin();
        let mut subdirs = 0u32;
        for &c in kids {
            let k = tree.canonical(c) as usize;
            let kind = tree.nodes[k].kind;
            subdirs += u32::from(kind == NodeKind::Dir);
            listing.add(
                tree.name(c),
                MetaRef::unpack(self.refs[k]),
                self.ino[k],
                basic_type(kind),
            )?;
        }
        let listing = listing.end()?;
        let node = tree.nodes[d as usize];
        let parent = if d == 0 {
            // mksquashfs's convention for the root: one past the last inode number.
            self.ino[0].saturating_add(1)
        } else {
            self.ino[node.parent as usize]
        };
        let data = InodeData::Dir {
            start_block: listing.start.block,
            offset: listing.start.offset,
            file_size: listing.file_size,
            nlink: subdirs.saturating_add(2),
            parent,
            index: &listing.index,
            big: listing.entries >= crate::squashfs::format::DIR_HEADER_MAX,
        };
        self.newest_mtime = self.newest_mtime.max(node.mtime);
        let number = self.ino[d as usize];
        self.refs[d as usize] = tree.write_inode(&node, number, &data, t, &mut self.scratch)?;
        Ok(())
    }
}

/// The name stored at `off`: a length byte, then the bytes.
fn name_at(bytes: &[u8], off: u32) -> &[u8] {
    let start = off as usize + 1;
    &bytes[start..start + usize::from(bytes[off as usize])]
}

pub(crate) fn basic_type(kind: NodeKind) -> u16 {
    use crate::squashfs::format::inode_type;
    match kind {
        NodeKind::Dir => inode_type::DIR,
        NodeKind::File(_) | NodeKind::Hardlink(_) => inode_type::FILE,
        NodeKind::Symlink { .. } => inode_type::SYMLINK,
        NodeKind::BlockDev(_) => inode_type::BLOCK_DEV,
        NodeKind::CharDev(_) => inode_type::CHAR_DEV,
        NodeKind::Fifo => inode_type::FIFO,
        NodeKind::Socket => inode_type::SOCKET,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> EntryPath {
        EntryPath::new(s.as_bytes()).unwrap()
    }

    fn meta(mode: u16) -> NodeMeta {
        NodeMeta {
            mode,
            ..NodeMeta::implicit_dir()
        }
    }

    fn add(t: &mut Tree, path: &str, kind: NodeKind) {
        let path = p(path);
        let parent = t.parent_dir(&path).unwrap();
        t.insert(parent, path.file_name().unwrap(), kind, meta(0o644))
            .unwrap();
    }

    #[test]
    fn nodes_stay_24_bytes() {
        assert_eq!(std::mem::size_of::<Node>(), 24);
        assert_eq!(std::mem::size_of::<NodeKind>(), 8);
        assert_eq!(
            std::mem::size_of::<crate::squashfs::block_writer::FileData>(),
            20
        );
    }

    #[test]
    fn implicit_parents_are_created_and_later_take_metadata() {
        let mut t = Tree::new();
        add(&mut t, "a/b/c", NodeKind::Fifo);
        let a = t.lookup(&p("a")).unwrap();
        assert_eq!(t.attrs.get(t.nodes[a as usize].attrs).mode, 0o755);
        t.insert(0, b"a", NodeKind::Dir, meta(0o700)).unwrap();
        assert_eq!(
            t.attrs.get(t.nodes[a as usize].attrs).mode,
            0o700,
            "same node, new metadata"
        );
        assert!(t.lookup(&p("a/b/c")).is_some(), "children kept");
    }

    #[test]
    fn a_file_replacing_a_directory_drops_the_subtree() {
        let mut t = Tree::new();
        add(&mut t, "d/x", NodeKind::Fifo);
        add(&mut t, "d", NodeKind::Socket);
        assert!(t.lookup(&p("d/x")).is_none());
        let d = t.lookup(&p("d")).unwrap();
        assert_eq!(t.nodes[d as usize].kind, NodeKind::Socket);
        assert!(
            t.parent_dir(&p("d/y")).is_err(),
            "cannot go below a non-directory"
        );
    }

    #[test]
    fn links_resolve_to_the_first_node_and_refuse_directories() {
        let mut t = Tree::new();
        add(&mut t, "f", NodeKind::Fifo);
        let f = t.lookup(&p("f")).unwrap();
        assert_eq!(t.link_target(&p("l"), &p("f")).unwrap(), f);
        add(&mut t, "l", NodeKind::Hardlink(f));
        assert_eq!(
            t.link_target(&p("l2"), &p("l")).unwrap(),
            f,
            "link to a link"
        );
        add(&mut t, "dir/x", NodeKind::Fifo);
        assert!(matches!(
            t.link_target(&p("l3"), &p("dir")),
            Err(Error::HardlinkToDirectory { .. })
        ));
        assert!(matches!(
            t.link_target(&p("l4"), &p("nope")),
            Err(Error::HardlinkTargetMissing { .. })
        ));
    }
}
