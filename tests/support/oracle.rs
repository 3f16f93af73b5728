//! Independent readers of squashfs images, each turning an image into a [`Tree`]:
//! [`unsquashfs`] (squashfs-tools, extracting as root so owners, xattrs and devices survive)
//! and [`backhand`] (the `backhand` crate, in process). [`expected_tree`] is the model: the
//! tree a sink must produce from an entry stream under the `Sink` contract.
//!
//! What each reader can see: unsquashfs restores everything (as root); backhand has no xattrs and no hard-link identity, so its trees have neither (use
//! [`without_links_and_xattrs`] on the expected tree before comparing).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;
use std::process::Command;

use ocirender::{Entry, EntryKind, Metadata};
use sha2::{Digest, Sha256};

use super::dump::{major, minor, Kind, Node, Tree};

fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        panic!("{tool} not found: apt-get install squashfs-tools");
    }
}

/// Extracts `img` with `unsquashfs -d DIR -no-progress IMG` and reads the result back.
pub fn unsquashfs(img: &Path) -> Tree {
    unsquashfs_paths(img, &[])
}

/// Extracts only `paths` (unsquashfs looks each one up by name) and reads the result back.
pub fn unsquashfs_paths(img: &Path, paths: &[&str]) -> Tree {
    require("unsquashfs");
    let dir = tempfile::tempdir().expect("tempdir");
    let dest = dir.path().join("root");
    let out = Command::new("unsquashfs")
        .arg("-d")
        .arg(&dest)
        .arg("-no-progress")
        .arg(img)
        .args(paths)
        .output()
        .expect("run unsquashfs");
    assert!(
        out.status.success(),
        "unsquashfs failed on {}:\n{}{}",
        img.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Tree::from_dir(&dest)
}

/// `unsquashfs -s IMG` output (superblock summary).
pub fn unsquashfs_stat(img: &Path) -> String {
    require("unsquashfs");
    let out = Command::new("unsquashfs")
        .arg("-s")
        .arg(img)
        .output()
        .expect("run unsquashfs");
    assert!(
        out.status.success(),
        "unsquashfs -s failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The longest symlink target backhand reads: its inode parser asserts `target_size < 256`
/// (squashfs-tools and the kernel take up to 4096 bytes).
pub const BACKHAND_MAX_SYMLINK: usize = 255;

/// Whether backhand can read an image of this tree (no symlink target over
/// [`BACKHAND_MAX_SYMLINK`]).
pub fn backhand_can_read(t: &Tree) -> bool {
    !t.0.values()
        .any(|n| matches!(&n.kind, Kind::Symlink(target) if target.len() > BACKHAND_MAX_SYMLINK))
}

/// Reads `img` with the `backhand` crate.
pub fn backhand(img: &Path) -> Tree {
    try_backhand(img).unwrap_or_else(|e| panic!("backhand reads the image: {e:?}"))
}

/// Reads `img` with the `backhand` crate, or says why it cannot.
pub fn try_backhand(img: &Path) -> Result<Tree, backhand::BackhandError> {
    let file = BufReader::new(File::open(img).expect("open image"));
    let fs = backhand::FilesystemReader::from_reader(file)?;
    let mut tree = Tree::default();
    for node in fs.files() {
        use std::os::unix::ffi::OsStrExt;
        let path = node.fullpath.as_os_str().as_bytes();
        let path = path.strip_prefix(b"/").unwrap_or(path).to_vec();
        let kind = match &node.inner {
            backhand::InnerNode::File(f) => {
                let mut r = fs.file(f).reader();
                let mut h = Sha256::new();
                let mut buf = vec![0u8; 1 << 20];
                let mut size = 0u64;
                loop {
                    let n = r.read(&mut buf).expect("backhand reads file data");
                    if n == 0 {
                        break;
                    }
                    size += n as u64;
                    h.update(&buf[..n]);
                }
                Kind::File {
                    size,
                    sha256: h.finalize().iter().map(|b| format!("{b:02x}")).collect(),
                }
            }
            backhand::InnerNode::Dir(_) => Kind::Dir,
            backhand::InnerNode::Symlink(s) => {
                Kind::Symlink(s.link.as_os_str().as_bytes().to_vec())
            }
            backhand::InnerNode::CharacterDevice(d) => {
                let (ma, mi) = decode_dev(d.device_number);
                Kind::CharDev(ma, mi)
            }
            backhand::InnerNode::BlockDevice(d) => {
                let (ma, mi) = decode_dev(d.device_number);
                Kind::BlockDev(ma, mi)
            }
            backhand::InnerNode::NamedPipe => Kind::Fifo,
            backhand::InnerNode::Socket => Kind::Socket,
        };
        let mut n = Node::new(kind, u32::from(node.header.permissions));
        n.uid = node.header.uid;
        n.gid = node.header.gid;
        n.mtime = i64::from(node.header.mtime);
        tree.0.insert(path, n);
    }
    Ok(tree)
}

/// The kernel's `new_decode_dev`.
pub fn decode_dev(dev: u32) -> (u32, u32) {
    ((dev & 0xfff00) >> 8, (dev & 0xff) | ((dev >> 12) & 0xfff00))
}

/// The tree without `link=` groups and xattrs (what backhand can see).
pub fn without_links_and_xattrs(t: &Tree) -> Tree {
    let mut t = t.clone();
    for n in t.0.values_mut() {
        n.link = None;
        n.xattrs = BTreeMap::new();
    }
    t
}

/// The tree a sink must produce from `entries` (each with its file content): implicit parents
/// 0755 root:root t=0, later deliveries replace earlier ones (a non-directory over a directory
/// drops the subtree; a directory over a directory keeps the children), hard links share their
/// target's node as it was when the link arrived, squashfs times clamped to `u32`.
pub fn expected_tree(entries: &[(Entry, Vec<u8>)]) -> Tree {
    // path → (node, inode id); links share the inode id.
    let mut nodes: BTreeMap<Vec<u8>, (Node, usize)> = BTreeMap::new();
    let mut root = Node::new(Kind::Dir, 0o755);
    let mut next_id = 0usize;
    for (e, data) in entries {
        let path = e.path.as_bytes().to_vec();
        let mut node = match &e.kind {
            EntryKind::File { .. } => Node::file(data, e.meta.mode),
            EntryKind::Dir => Node::new(Kind::Dir, e.meta.mode),
            EntryKind::Symlink { target } => Node::new(Kind::Symlink(target.clone()), 0o777),
            EntryKind::CharDevice { major, minor } => {
                Node::new(Kind::CharDev(*major, *minor), e.meta.mode)
            }
            EntryKind::BlockDevice { major, minor } => {
                Node::new(Kind::BlockDev(*major, *minor), e.meta.mode)
            }
            EntryKind::Fifo => Node::new(Kind::Fifo, e.meta.mode),
            EntryKind::Socket => Node::new(Kind::Socket, e.meta.mode),
            EntryKind::Hardlink { target } => {
                let (n, id) = nodes
                    .get(target.as_bytes())
                    .cloned()
                    .expect("link target exists");
                add_parents(&mut nodes, &e.path, &mut next_id);
                remove(&mut nodes, &path);
                nodes.insert(path, (n, id));
                continue;
            }
        };
        node.uid = e.meta.uid;
        node.gid = e.meta.gid;
        node.mtime = e.meta.mtime.clamp(0, i64::from(u32::MAX));
        node.xattrs = e
            .meta
            .xattrs
            .iter()
            .filter(|x| {
                [&b"user."[..], b"trusted.", b"security."]
                    .iter()
                    .any(|p| x.name.starts_with(p) && x.name.len() > p.len())
            })
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        if path.is_empty() {
            root = node;
            continue;
        }
        add_parents(&mut nodes, &e.path, &mut next_id);
        match nodes.get_mut(&path) {
            Some((old, _)) if old.kind == Kind::Dir && node.kind == Kind::Dir => *old = node,
            _ => {
                remove(&mut nodes, &path);
                nodes.insert(path, (node, next_id));
                next_id += 1;
            }
        }
    }
    let mut tree = Tree::default();
    tree.0.insert(Vec::new(), root);
    let ids: BTreeMap<Vec<u8>, usize> = nodes.iter().map(|(p, (_, id))| (p.clone(), *id)).collect();
    for (p, (n, _)) in nodes {
        tree.0.insert(p, n);
    }
    tree.set_link_groups(|p| ids.get(p).copied());
    // Only non-directories form link groups.
    for n in tree.0.values_mut() {
        if n.kind == Kind::Dir {
            n.link = None;
        }
    }
    tree
}

/// Creates the missing ancestors of `path` as implicit directories.
fn add_parents(
    nodes: &mut BTreeMap<Vec<u8>, (Node, usize)>,
    path: &ocirender::EntryPath,
    next_id: &mut usize,
) {
    for anc in path.ancestors().filter(|a| !a.is_root()) {
        let a = anc.as_bytes().to_vec();
        if let std::collections::btree_map::Entry::Vacant(v) = nodes.entry(a) {
            v.insert((Node::new(Kind::Dir, 0o755), *next_id));
            *next_id += 1;
        }
    }
}

/// Removes `path` and everything below it.
fn remove(nodes: &mut BTreeMap<Vec<u8>, (Node, usize)>, path: &[u8]) {
    nodes.remove(path);
    let mut prefix = path.to_vec();
    prefix.push(b'/');
    let below: Vec<Vec<u8>> = nodes
        .range(prefix.clone()..)
        .map(|(k, _)| k.clone())
        .take_while(|k| k.starts_with(&prefix))
        .collect();
    for k in below {
        nodes.remove(&k);
    }
}

/// Decodes `st_rdev` like the dump does (re-exported for tests that build devices).
pub fn split_rdev(dev: u64) -> (u32, u32) {
    (major(dev), minor(dev))
}

/// A read-only kernel mount of an image (loop device), unmounted on drop.
pub struct KernelMount {
    dir: tempfile::TempDir,
}

impl KernelMount {
    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Mounts `img` with the Linux kernel's squashfs driver, or `None` (with a printed notice)
/// where mounting is not possible (not root, no loop devices, no squashfs in the kernel).
pub fn kernel_mount(img: &Path) -> Option<KernelMount> {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("mount")
        .args(["-t", "squashfs", "-o", "loop,ro"])
        .arg(img)
        .arg(dir.path())
        .output();
    match out {
        Ok(o) if o.status.success() => Some(KernelMount { dir }),
        Ok(o) => {
            let msg = String::from_utf8_lossy(&o.stderr);
            // A mount the kernel refused for the image's content is a failure, not a skip.
            assert!(
                !msg.contains("wrong fs type") || !kernel_can_mount(),
                "the kernel refused the image {}: {msg}",
                img.display()
            );
            eprintln!("notice: kernel mount not possible here, skipping that oracle: {msg}");
            None
        }
        Err(e) => {
            eprintln!("notice: cannot run mount ({e}), skipping the kernel oracle");
            None
        }
    }
}

/// Whether this machine can loop-mount squashfs at all (tested once with an mksquashfs image).
pub fn kernel_can_mount() -> bool {
    static CAN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *CAN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = dir.path().join("src");
        std::fs::create_dir(&src).expect("mkdir");
        let img = dir.path().join("probe.sqfs");
        let made = Command::new("mksquashfs")
            .arg(&src)
            .arg(&img)
            .args(["-no-progress", "-quiet"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !made {
            return false;
        }
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir");
        let ok = Command::new("mount")
            .args(["-t", "squashfs", "-o", "loop,ro"])
            .arg(&img)
            .arg(&mnt)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            let _ = Command::new("umount").arg(&mnt).status();
        }
        ok
    })
}

/// Reads `img` through a kernel mount, if this machine allows one.
pub fn kernel(img: &Path) -> Option<Tree> {
    if !kernel_can_mount() {
        eprintln!("notice: this machine cannot loop-mount squashfs; skipping the kernel oracle");
        return None;
    }
    let m = kernel_mount(img)?;
    Some(Tree::from_dir(m.path()))
}

/// What [`check_layout`] learned about an image.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    pub inode_count: u32,
    pub block_size: u32,
    pub flags: u16,
    pub compression: u16,
    pub frag_count: u32,
    pub id_count: u16,
    pub mtime: u32,
    pub bytes_used: u64,
    pub file_len: u64,
    pub options: Option<Vec<u8>>,
    pub xattr_ids: u32,
    /// The uncompressed inode and directory tables.
    pub inode_table: Vec<u8>,
    pub dir_table: Vec<u8>,
    /// (compressed start, uncompressed start) of each inode/directory metablock.
    pub inode_blocks: Vec<(u64, usize)>,
    pub dir_blocks: Vec<(u64, usize)>,
    pub root_inode: u64,
    pub export: Option<Vec<u64>>,
    pub ids: Vec<u32>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Decompresses one block with an independent implementation (the crates directly).
pub fn decompress(compression: u16, data: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    match compression {
        1 => {
            flate2::read::ZlibDecoder::new(data)
                .read_to_end(&mut out)
                .expect("zlib");
        }
        4 => {
            liblzma::read::XzDecoder::new(data)
                .read_to_end(&mut out)
                .expect("xz");
        }
        5 => {
            out = lz4::block::decompress(data, Some(max as i32)).expect("lz4");
        }
        6 => {
            out = zstd::bulk::decompress(data, max).expect("zstd");
        }
        c => panic!("unexpected compressor {c}"),
    }
    assert!(
        out.len() <= max,
        "block decompresses to {} > {max}",
        out.len()
    );
    out
}

/// Reads a metadata stream from `start` to `end`; asserts every block but the last is 8192.
fn metadata_stream(img: &[u8], comp: u16, start: u64, end: u64) -> (Vec<u8>, Vec<(u64, usize)>) {
    let mut out = Vec::new();
    let mut blocks = Vec::new();
    let mut pos = start as usize;
    while pos < end as usize {
        let h = le16(img, pos);
        let len = (h & 0x7fff) as usize;
        assert!(
            len > 0 && len <= 8192,
            "metadata block length {len} at {pos}"
        );
        let payload = &img[pos + 2..pos + 2 + len];
        let data = if h & 0x8000 != 0 {
            payload.to_vec()
        } else {
            decompress(comp, payload, 8192)
        };
        if let Some(&(_, prev)) = blocks.last() {
            assert_eq!(
                out.len() - prev,
                8192,
                "a metadata block before the last is not 8192 bytes"
            );
        }
        blocks.push((pos as u64 - start, out.len()));
        out.extend_from_slice(&data);
        pos += 2 + len;
    }
    assert_eq!(pos as u64, end, "metadata stream overruns its end");
    (out, blocks)
}

/// Checks a lookup table's location list the way the kernel does and returns the entries.
fn lookup_table(
    img: &[u8],
    comp: u16,
    list_at: u64,
    entries: usize,
    entry_size: usize,
    exact_end: Option<u64>,
    what: &str,
) -> (Vec<u8>, Vec<u64>) {
    lookup_table_with_header(
        img, comp, list_at, list_at, entries, entry_size, exact_end, what,
    )
}

/// Like [`lookup_table`] where the table's blocks end at `blocks_end` (a header may sit
/// between the blocks and the list, as for the xattr id table).
#[allow(clippy::too_many_arguments)]
fn lookup_table_with_header(
    img: &[u8],
    comp: u16,
    blocks_end: u64,
    list_at: u64,
    entries: usize,
    entry_size: usize,
    exact_end: Option<u64>,
    what: &str,
) -> (Vec<u8>, Vec<u64>) {
    let bytes = entries * entry_size;
    let n = bytes.div_ceil(8192);
    let list_end = list_at + 8 * n as u64;
    if let Some(end) = exact_end {
        assert_eq!(
            list_end, end,
            "{what} location list must end exactly at the next table"
        );
    } else {
        assert!(list_end <= img.len() as u64, "{what} list out of the image");
    }
    let locs: Vec<u64> = (0..n)
        .map(|i| le64(img, list_at as usize + 8 * i))
        .collect();
    for w in locs.windows(2) {
        assert!(
            w[0] < w[1] && w[1] - w[0] <= 8194,
            "{what} locations not increasing within 8194: {locs:?}"
        );
    }
    if let Some(&last) = locs.last() {
        assert!(
            last < blocks_end && blocks_end - last <= 8194,
            "{what} last block not right below the table start"
        );
    }
    let mut data = Vec::new();
    for (i, &l) in locs.iter().enumerate() {
        let end = if i + 1 < n { locs[i + 1] } else { blocks_end };
        let (d, _) = metadata_stream(img, comp, l, end);
        if i + 1 < n {
            assert_eq!(d.len(), 8192, "{what} block {i} is not 8192 bytes");
        }
        data.extend_from_slice(&d);
    }
    assert_eq!(
        data.len(),
        bytes,
        "{what} holds {} bytes, expected {bytes}",
        data.len()
    );
    (data, locs)
}

/// Checks every superblock and table-placement rule of `SQUASHFS.md` that the kernel enforces
/// at mount time, and returns what it read.
pub fn check_layout(img_path: &Path) -> Layout {
    let img = std::fs::read(img_path).expect("read image");
    assert!(img.len() >= 96);
    assert_eq!(&img[0..4], b"hsqs");
    let mut l = Layout {
        inode_count: le32(&img, 4),
        mtime: le32(&img, 8),
        block_size: le32(&img, 12),
        frag_count: le32(&img, 16),
        compression: le16(&img, 20),
        flags: le16(&img, 24),
        id_count: le16(&img, 26),
        root_inode: le64(&img, 32),
        bytes_used: le64(&img, 40),
        file_len: img.len() as u64,
        ..Layout::default()
    };
    let block_log = le16(&img, 22);
    assert_eq!((le16(&img, 28), le16(&img, 30)), (4, 0), "version 4.0");
    assert!(l.block_size.is_power_of_two() && (4096..=1 << 20).contains(&l.block_size));
    assert_eq!(
        1u32 << block_log,
        l.block_size,
        "block_log matches block_size"
    );
    let (id_table, xattr_table, inode_table, dir_table, frag_table, export_table) = (
        le64(&img, 48),
        le64(&img, 56),
        le64(&img, 64),
        le64(&img, 72),
        le64(&img, 80),
        le64(&img, 88),
    );
    assert!(l.bytes_used <= l.file_len);
    assert_eq!(l.file_len % 4096, 0, "padded to 4 KiB");
    // Our images carry a reuse trailer in the padding ("ocirender-reuse\n", the compression
    // identity, "\n"); the padding is the least multiple of 4 KiB that holds it.
    let after = &img[l.bytes_used as usize..];
    let trailer_len = match after.strip_prefix(b"ocirender-reuse\n") {
        Some(rest) => 16 + rest.iter().position(|&b| b == b'\n').expect("trailer ends") + 1,
        None => 0,
    };
    assert!(
        l.file_len - (l.bytes_used + trailer_len as u64) < 4096,
        "no more than the padding after bytes_used and the trailer"
    );
    assert!(
        after[trailer_len..].iter().all(|&b| b == 0),
        "the padding after the trailer is zero"
    );
    // Options block.
    if l.flags & 0x400 != 0 {
        let h = le16(&img, 96);
        assert!(h & 0x8000 != 0, "options block is marked uncompressed");
        let len = (h & 0x7fff) as usize;
        l.options = Some(img[98..98 + len].to_vec());
    }
    // Xattrs: list ends exactly at bytes_used.
    let mut next = l.bytes_used;
    if xattr_table != u64::MAX {
        let kv_start = le64(&img, xattr_table as usize);
        l.xattr_ids = le32(&img, xattr_table as usize + 8);
        assert_eq!(le32(&img, xattr_table as usize + 12), 0);
        assert!(l.xattr_ids >= 1, "an xattr table has at least one id");
        let (_, locs) = lookup_table_with_header(
            &img,
            l.compression,
            xattr_table,
            xattr_table + 16,
            l.xattr_ids as usize,
            16,
            Some(l.bytes_used),
            "xattr id",
        );
        assert!(kv_start < locs[0], "xattr kv data below the id blocks");
        next = kv_start;
    }
    assert!(l.id_count >= 1, "no_ids ≥ 1");
    let (ids, id_locs) = lookup_table(
        &img,
        l.compression,
        id_table,
        l.id_count as usize,
        4,
        Some(next),
        "id",
    );
    l.ids = ids
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    next = id_locs[0];
    if export_table != u64::MAX {
        assert!(l.flags & 0x80 != 0, "export table ⇔ exportable flag");
        assert!(l.inode_count >= 1);
        let (refs, locs) = lookup_table(
            &img,
            l.compression,
            export_table,
            l.inode_count as usize,
            8,
            Some(next),
            "export",
        );
        l.export = Some(
            refs.chunks(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                .collect(),
        );
        next = locs[0];
    } else {
        assert!(
            l.flags & 0x80 == 0,
            "exportable flag without an export table"
        );
    }
    if l.frag_count > 0 {
        let (_, locs) = lookup_table(
            &img,
            l.compression,
            frag_table,
            l.frag_count as usize,
            16,
            None,
            "fragment",
        );
        assert!(
            frag_table + 8 * locs.len() as u64 <= next,
            "fragment list fits below the next table"
        );
        next = locs[0];
    } else {
        assert!(
            frag_table <= l.bytes_used,
            "empty fragment table points inside the image (mksquashfs form)"
        );
    }
    assert!(dir_table <= next, "directory table below the next table");
    assert!(
        inode_table < dir_table,
        "inode table below the directory table"
    );
    let (it, ib) = metadata_stream(&img, l.compression, inode_table, dir_table);
    let (dt, db) = metadata_stream(&img, l.compression, dir_table, next);
    l.inode_table = it;
    l.inode_blocks = ib;
    l.dir_table = dt;
    l.dir_blocks = db;
    assert!((l.root_inode & 0xffff) < 8192, "root inode offset < 8192");
    l
}

/// One inode as [`check_structure`] parsed it.
#[derive(Debug, Clone, Default)]
pub struct RawInode {
    pub at: u64,
    pub itype: u16,
    pub mode: u16,
    pub number: u32,
    pub nlink: u32,
    pub xattr: Option<u32>,
    /// Files: size, sparse, blocks_start, fragment, block words.
    pub size: u64,
    pub sparse: u64,
    pub blocks_start: u64,
    pub fragment: u32,
    pub fragment_offset: u32,
    pub blocks: Vec<u32>,
    /// Directories: listing location and size, parent, index entries (index, start, name).
    pub dir_block: u32,
    pub dir_offset: u16,
    pub parent: u32,
    pub index: Vec<(u32, u32, Vec<u8>)>,
}

/// One directory entry as parsed: (name, inode ref, inode number, type).
pub type RawEntry = (Vec<u8>, u64, u32, u16);

/// The whole parsed inode and directory structure of an image.
#[derive(Debug, Clone, Default)]
pub struct Structure {
    pub layout: Layout,
    /// Inodes by ref.
    pub inodes: BTreeMap<u64, RawInode>,
    /// Directory listings by directory inode ref: entries and the number of headers.
    pub dirs: BTreeMap<u64, (Vec<RawEntry>, usize)>,
}

fn meta_at(table: &[u8], blocks: &[(u64, usize)], r: u64) -> usize {
    let (block, offset) = (r >> 16, (r & 0xffff) as usize);
    let (_, start) = blocks
        .iter()
        .find(|(b, _)| *b == block)
        .unwrap_or_else(|| panic!("ref {r:#x} names no metablock"));
    assert!(offset < 8192);
    let at = start + offset;
    assert!(at < table.len().max(1), "ref past the table");
    at
}

fn parse_inode(t: &[u8], at: usize, block_size: u32) -> (RawInode, usize) {
    let itype = le16(t, at);
    let mut i = RawInode {
        itype,
        mode: le16(t, at + 2),
        number: le32(t, at + 12),
        ..Default::default()
    };
    let p = at + 16;
    let end = match itype {
        1 => {
            i.dir_block = le32(t, p);
            i.nlink = le32(t, p + 4);
            i.size = u64::from(le16(t, p + 8));
            i.dir_offset = le16(t, p + 10);
            i.parent = le32(t, p + 12);
            p + 16
        }
        8 => {
            i.nlink = le32(t, p);
            i.size = u64::from(le32(t, p + 4));
            i.dir_block = le32(t, p + 8);
            i.parent = le32(t, p + 12);
            let count = le16(t, p + 16);
            i.dir_offset = le16(t, p + 18);
            i.xattr = Some(le32(t, p + 20));
            let mut q = p + 24;
            for _ in 0..count {
                let n = le32(t, q + 8) as usize + 1;
                i.index
                    .push((le32(t, q), le32(t, q + 4), t[q + 12..q + 12 + n].to_vec()));
                q += 12 + n;
            }
            q
        }
        2 | 9 => {
            let q;
            if itype == 2 {
                i.blocks_start = u64::from(le32(t, p));
                i.fragment = le32(t, p + 4);
                i.fragment_offset = le32(t, p + 8);
                i.size = u64::from(le32(t, p + 12));
                i.nlink = 1;
                q = p + 16;
            } else {
                i.blocks_start = le64(t, p);
                i.size = le64(t, p + 8);
                i.sparse = le64(t, p + 16);
                i.nlink = le32(t, p + 24);
                i.fragment = le32(t, p + 28);
                i.fragment_offset = le32(t, p + 32);
                i.xattr = Some(le32(t, p + 36));
                q = p + 40;
            }
            let bs = u64::from(block_size);
            let n = if i.fragment == u32::MAX {
                i.size.div_ceil(bs)
            } else {
                i.size / bs
            };
            i.blocks = (0..n as usize).map(|k| le32(t, q + 4 * k)).collect();
            q + 4 * n as usize
        }
        3 | 10 => {
            i.nlink = le32(t, p);
            i.size = u64::from(le32(t, p + 4));
            let q = p + 8 + i.size as usize;
            if itype == 10 {
                i.xattr = Some(le32(t, q));
                q + 4
            } else {
                q
            }
        }
        4 | 5 => {
            i.nlink = le32(t, p);
            p + 8
        }
        11 | 12 => {
            i.nlink = le32(t, p);
            i.xattr = Some(le32(t, p + 8));
            p + 12
        }
        6 | 7 => {
            i.nlink = le32(t, p);
            p + 4
        }
        13 | 14 => {
            i.nlink = le32(t, p);
            i.xattr = Some(le32(t, p + 4));
            p + 8
        }
        other => panic!("unknown inode type {other}"),
    };
    (i, end)
}

/// Parses every inode and directory listing and checks the rules of `SQUASHFS.md` about
/// inodes and directories: dense unique inode numbers, export table, root and parent numbers,
/// directory sizes, sort order, header rules, index entries, nlink, extended-only-when-needed,
/// fragment and block-count rules.
pub fn check_structure(img: &Path) -> Structure {
    let layout = check_layout(img);
    let (it, ib) = (&layout.inode_table, &layout.inode_blocks);
    let bs = layout.block_size;
    // Every inode, in table order.
    let mut inodes = BTreeMap::new();
    let mut pos = 0usize;
    let mut by_number = BTreeMap::new();
    while pos < it.len() {
        let block = ib.iter().rev().find(|(_, s)| *s <= pos).unwrap();
        let r = (block.0 << 16) | (pos - block.1) as u64;
        let (mut i, end) = parse_inode(it, pos, bs);
        i.at = r;
        assert!(
            by_number.insert(i.number, r).is_none(),
            "inode number {} used twice",
            i.number
        );
        inodes.insert(r, i);
        pos = end;
    }
    let n = layout.inode_count;
    assert_eq!(inodes.len() as u32, n, "inode_count");
    assert_eq!(
        by_number.keys().copied().collect::<Vec<_>>(),
        (1..=n).collect::<Vec<_>>(),
        "numbers dense 1..N"
    );
    if let Some(export) = &layout.export {
        for (k, r) in export.iter().enumerate() {
            assert_eq!(by_number[&(k as u32 + 1)], *r, "export table entry {k}");
        }
    }
    let root = &inodes[&layout.root_inode];
    assert!(root.itype == 1 || root.itype == 8, "root is a directory");
    assert_eq!(
        root.number, n,
        "root is the last inode (mksquashfs numbering)"
    );
    assert_eq!(root.parent, n + 1, "root's parent is inode_count + 1");
    // Directories.
    let (dt, db) = (&layout.dir_table, &layout.dir_blocks);
    let mut dirs = BTreeMap::new();
    for (r, d) in inodes.iter().filter(|(_, i)| i.itype == 1 || i.itype == 8) {
        assert!(d.size >= 3);
        let listing_len = d.size as usize - 3;
        let mut entries: Vec<RawEntry> = Vec::new();
        let mut headers = 0;
        let mut header_offsets = BTreeMap::new();
        if listing_len > 0 {
            let start = meta_at(
                dt,
                db,
                (u64::from(d.dir_block) << 16) | u64::from(d.dir_offset),
            );
            let mut p = start;
            while p < start + listing_len {
                let count = le32(dt, p) + 1;
                assert!(count <= 256, "header count ≤ 256");
                let iblock = le32(dt, p + 4);
                let base = le32(dt, p + 8);
                header_offsets.insert(p - start, (p, None::<Vec<u8>>));
                headers += 1;
                let hp = p;
                p += 12;
                for k in 0..count {
                    let off = le16(dt, p);
                    let delta = i16::from_le_bytes(dt[p + 2..p + 4].try_into().unwrap());
                    let ty = le16(dt, p + 4);
                    let len = le16(dt, p + 6) as usize + 1;
                    assert!(len <= 256);
                    let name = dt[p + 8..p + 8 + len].to_vec();
                    assert!(
                        !name.contains(&b'/')
                            && !name.contains(&0)
                            && name != b"."
                            && name != b".."
                    );
                    if k == 0 {
                        header_offsets.get_mut(&(hp - start)).unwrap().1 = Some(name.clone());
                    }
                    let er = (u64::from(iblock) << 16) | u64::from(off);
                    let number = (i64::from(base) + i64::from(delta)) as u32;
                    let target = inodes.get(&er).unwrap_or_else(|| {
                        panic!(
                            "entry {:?} points at no inode",
                            String::from_utf8_lossy(&name)
                        )
                    });
                    assert_eq!(
                        target.number, number,
                        "entry inode number matches the inode"
                    );
                    assert!((1..=7).contains(&ty), "entry type is basic");
                    assert_eq!(
                        ty,
                        if target.itype > 7 {
                            target.itype - 7
                        } else {
                            target.itype
                        },
                        "entry type"
                    );
                    entries.push((name, er, number, ty));
                    p += 8 + len;
                }
            }
            assert_eq!(
                p,
                start + listing_len,
                "directory file_size = listing + 3 exactly"
            );
            // Directory index: each entry names a header and its first entry.
            for (idx, blk, name) in &d.index {
                let (hp, first) = header_offsets
                    .get(&(*idx as usize))
                    .unwrap_or_else(|| panic!("index {idx} is not a header offset"));
                assert_eq!(
                    first.as_deref(),
                    Some(&name[..]),
                    "index name = first name of the header"
                );
                let expect_block = db.iter().rev().find(|(_, s)| *s <= *hp).unwrap().0;
                assert_eq!(
                    u64::from(*blk),
                    expect_block,
                    "index start names the header's metablock"
                );
                assert_eq!(
                    (*idx as usize + d.dir_offset as usize) % 8192,
                    hp - db.iter().rev().find(|(_, s)| *s <= *hp).unwrap().1,
                    "kernel offset arithmetic"
                );
            }
        }
        for w in entries.windows(2) {
            assert!(w[0].0 < w[1].0, "entries sorted by unsigned bytes, unique");
        }
        let subdirs = entries.iter().filter(|e| e.3 == 1).count() as u32;
        assert_eq!(d.nlink, 2 + subdirs, "dir nlink = 2 + subdirectories");
        for e in entries.iter().filter(|e| e.3 == 1) {
            assert_eq!(
                inodes[&e.1].parent, d.number,
                "subdirectory's parent number"
            );
        }
        let ext = d.itype == 8;
        let want_ext =
            d.xattr_is_set() || d.size > 65535 || !d.index.is_empty() || entries.len() >= 256;
        assert_eq!(ext, want_ext, "directory extended exactly when needed");
        dirs.insert(*r, (entries, headers));
    }
    // Names per inode = nlink for non-directories.
    let mut names: BTreeMap<u64, u32> = BTreeMap::new();
    for (entries, _) in dirs.values() {
        for e in entries {
            *names.entry(e.1).or_default() += 1;
        }
    }
    for (r, i) in &inodes {
        if i.itype == 1 || i.itype == 8 {
            continue;
        }
        assert_eq!(
            names.get(r).copied().unwrap_or(0),
            i.nlink,
            "nlink = number of names"
        );
        if i.itype == 2 || i.itype == 9 {
            let want_ext = i.nlink > 1
                || i.size >= 1 << 32
                || i.blocks_start >= 1 << 32
                || i.sparse > 0
                || i.xattr_is_set();
            assert_eq!(
                i.itype == 9,
                want_ext,
                "file extended exactly when needed: {i:?}"
            );
            if i.fragment != u32::MAX {
                assert!(
                    i.size % u64::from(bs) != 0,
                    "fragment only for a partial last block"
                );
                assert!(i.fragment < layout.frag_count);
            }
            // Exactly the hole bytes. (mksquashfs keeps the count below the size, so a file
            // that is all holes reports size - 1 there; ocirender stores the exact count, which
            // makes the kernel's i_blocks 0 for such a file. Readers only use it as a hint.)
            let holes: u64 = (0u64..)
                .zip(&i.blocks)
                .filter(|(_, &w)| w == 0)
                .map(|(b, _)| u64::from(bs).min(i.size - b * u64::from(bs)))
                .sum();
            assert_eq!(i.sparse, holes, "sparse counts exactly the hole bytes");
            for &w in &i.blocks {
                assert!(
                    w & !(1 << 24) <= bs,
                    "block size word within the block size"
                );
            }
        } else if i.itype == 3 || i.itype == 10 {
            assert!(
                (1..=4096).contains(&i.size),
                "symlink target 1..=4096 bytes"
            );
        }
        if i.itype > 7 && i.itype != 9 {
            assert!(
                i.xattr_is_set(),
                "non-file, non-dir inode extended only for xattrs"
            );
        }
    }
    Structure {
        layout,
        inodes,
        dirs,
    }
}

impl RawInode {
    /// Whether the inode carries an xattr index.
    pub fn xattr_is_set(&self) -> bool {
        matches!(self.xattr, Some(x) if x != u32::MAX)
    }
}

/// The node an entry (not a hard link) of this kind and metadata describes; `content` is a
/// regular file's size and sha256.
pub fn node_of(kind: &EntryKind, meta: &Metadata, content: Option<(u64, String)>) -> Node {
    let kind = match kind {
        EntryKind::File { .. } => {
            let (size, sha256) = content.expect("a file's content");
            Kind::File { size, sha256 }
        }
        EntryKind::Dir => Kind::Dir,
        EntryKind::Symlink { target } => Kind::Symlink(target.clone()),
        EntryKind::CharDevice { major, minor } => Kind::CharDev(*major, *minor),
        EntryKind::BlockDevice { major, minor } => Kind::BlockDev(*major, *minor),
        EntryKind::Fifo => Kind::Fifo,
        EntryKind::Socket => Kind::Socket,
        EntryKind::Hardlink { .. } => panic!("links share their target's node"),
    };
    let mut n = Node::new(kind, meta.mode);
    n.uid = meta.uid;
    n.gid = meta.gid;
    n.mtime = meta.mtime;
    n.xattrs = meta
        .xattrs
        .iter()
        .map(|x| (x.name.clone(), x.value.clone()))
        .collect();
    n
}

/// Reads `img` with ocirender's own [`SquashfsReader`](ocirender::squashfs::SquashfsReader):
/// every attribute, xattrs and hard-link groups (by inode number) included.
pub fn reader(img: &Path) -> Tree {
    use ocirender::squashfs::SquashfsReader;
    struct HashWriter(Sha256, u64);
    impl std::io::Write for HashWriter {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.update(b);
            self.1 += b.len() as u64;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let r = SquashfsReader::open(img).expect("the reader opens the image");
    let mut tree = Tree::default();
    let mut inodes: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    r.walk(|path, e| {
        let content = match e.kind {
            EntryKind::File { .. } => {
                let mut h = HashWriter(Sha256::new(), 0);
                let n = r.read_file(e, &mut h)?;
                assert_eq!(n, h.1);
                Some((
                    n,
                    h.0.finalize().iter().map(|b| format!("{b:02x}")).collect(),
                ))
            }
            _ => None,
        };
        let n = node_of(&e.kind, &e.meta, content);
        if !e.is_dir() {
            inodes.insert(path.as_bytes().to_vec(), e.inode_number);
        }
        tree.0.insert(path.as_bytes().to_vec(), n);
        Ok(())
    })
    .expect("the reader walks the image");
    tree.set_link_groups(|p| inodes.get(p).copied());
    tree
}
