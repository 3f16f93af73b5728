//! The tar and directory sinks, driven directly with `Entry` values (no image, no merge).
//!
//! One stream (`full_stream`) holds every kind and attribute a sink must keep, delivered the way
//! the merge delivers it: children before their directory, hard links after their targets,
//! paths delivered twice, the root last. Its expected tree comes from `Model`, a few lines of
//! "apply each entry as an extractor would", and each output is read back into the canonical
//! dump: TarSink → GNU tar → `Tree::from_dir`, DirSink → `Tree::from_dir`. The tar headers are
//! also checked with the `tar` crate, and what the dump cannot show (nanoseconds, holes) is
//! checked with stat.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::support::dump::{DumpOptions, Kind, Node, Tree};
use ocirender::sink::dir::DirSink;
use ocirender::sink::tar::TarSink;
use ocirender::{
    Entry, EntryKind, EntryPath, Error, Metadata, Ownership, Progress, Sink, Summary, Warning,
    WarningKind, Xattr,
};
use rustix::io::Errno;
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------------------------
// Stream builders

/// The default mtime of test entries.
const T: i64 = 1_700_000_000;
const GIB: u64 = 1 << 30;

/// What a file's reader yields.
#[derive(Clone, Debug)]
enum Content {
    None,
    Bytes(Vec<u8>),
    /// `size` bytes, zero except for the islands `(offset, bytes)`.
    Islands {
        size: u64,
        islands: Vec<(u64, Vec<u8>)>,
    },
}

impl Content {
    fn reader(&self) -> Box<dyn Read + Send + '_> {
        match self {
            Content::None => Box::new(io::empty()),
            Content::Bytes(b) => Box::new(&b[..]),
            Content::Islands { size, islands } => Box::new(IslandReader {
                pos: 0,
                size: *size,
                islands,
            }),
        }
    }

    fn sha256(&self) -> String {
        let mut h = Sha256::new();
        let mut r = self.reader();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = r.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

struct IslandReader<'a> {
    pos: u64,
    size: u64,
    islands: &'a [(u64, Vec<u8>)],
}

impl Read for IslandReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let max = (self.size - self.pos).min(buf.len() as u64);
        for (off, bytes) in self.islands {
            let end = off + bytes.len() as u64;
            if (*off..end).contains(&self.pos) {
                let n = (end - self.pos).min(max) as usize;
                let from = (self.pos - off) as usize;
                buf[..n].copy_from_slice(&bytes[from..from + n]);
                self.pos += n as u64;
                return Ok(n);
            }
        }
        let next = self
            .islands
            .iter()
            .map(|(o, _)| *o)
            .filter(|&o| o > self.pos)
            .min();
        let n = (next.unwrap_or(self.size) - self.pos).min(max) as usize;
        buf[..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

/// One entry of a stream with the content its reader yields.
#[derive(Clone, Debug)]
struct Item {
    entry: Entry,
    content: Content,
}

impl Item {
    fn new(path: impl AsRef<[u8]>, kind: EntryKind, mode: u32, content: Content) -> Item {
        Item {
            entry: Entry {
                path: EntryPath::new(path.as_ref()).unwrap(),
                kind,
                meta: Metadata {
                    mode,
                    mtime: T,
                    ..Metadata::default()
                },
            },
            content,
        }
    }

    fn owner(mut self, uid: u32, gid: u32) -> Item {
        self.entry.meta.uid = uid;
        self.entry.meta.gid = gid;
        self
    }

    fn time(mut self, secs: i64, nsec: u32) -> Item {
        self.entry.meta.mtime = secs;
        self.entry.meta.mtime_nsec = nsec;
        self
    }

    fn xattr(mut self, name: &str, value: &[u8]) -> Item {
        let x = &mut self.entry.meta.xattrs;
        x.push(Xattr {
            name: name.as_bytes().to_vec(),
            value: value.to_vec(),
        });
        x.sort();
        self
    }
}

fn file(path: impl AsRef<[u8]>, data: &[u8], mode: u32) -> Item {
    let kind = EntryKind::File {
        size: data.len() as u64,
        sparse: None,
    };
    Item::new(path, kind, mode, Content::Bytes(data.to_vec()))
}

fn sparse(path: &str, size: u64, islands: &[(u64, &[u8])]) -> Item {
    let map = islands.iter().map(|(o, b)| (*o, b.len() as u64)).collect();
    let islands = islands.iter().map(|(o, b)| (*o, b.to_vec())).collect();
    let kind = EntryKind::File {
        size,
        sparse: Some(map),
    };
    Item::new(path, kind, 0o644, Content::Islands { size, islands })
}

fn dir(path: impl AsRef<[u8]>, mode: u32) -> Item {
    Item::new(path, EntryKind::Dir, mode, Content::None)
}

fn root(mode: u32) -> Item {
    dir("", mode)
}

fn symlink(path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Item {
    let kind = EntryKind::Symlink {
        target: target.as_ref().to_vec(),
    };
    Item::new(path, kind, 0o777, Content::None)
}

fn hardlink(path: &str, target: &str) -> Item {
    let kind = EntryKind::Hardlink {
        target: EntryPath::new(target.as_bytes()).unwrap(),
    };
    Item::new(path, kind, 0o644, Content::None)
}

fn chardev(path: &str, major: u32, minor: u32, mode: u32) -> Item {
    Item::new(
        path,
        EntryKind::CharDevice { major, minor },
        mode,
        Content::None,
    )
}

fn blockdev(path: &str, major: u32, minor: u32, mode: u32) -> Item {
    Item::new(
        path,
        EntryKind::BlockDevice { major, minor },
        mode,
        Content::None,
    )
}

fn fifo(path: &str) -> Item {
    Item::new(path, EntryKind::Fifo, 0o644, Content::None)
}

fn socket(path: &str) -> Item {
    Item::new(path, EntryKind::Socket, 0o755, Content::None)
}

fn feed(sink: &mut dyn Sink, items: &[Item]) -> Result<(), Error> {
    for item in items {
        sink.entry(&item.entry, &mut item.content.reader())?;
    }
    Ok(())
}

/// A file capability: version 2, effective, CAP_NET_RAW permitted (a binary value with zeros).
const CAPABILITY: [u8; 20] = [
    1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

fn long_name() -> Vec<u8> {
    // 300 bytes with no `/` that splits it into ustar prefix + name: needs a PAX path.
    [
        b"long/".to_vec(),
        vec![b'a'; 200],
        b"/".to_vec(),
        vec![b'b'; 94],
    ]
    .concat()
}

fn split_name() -> Vec<u8> {
    // 190 bytes that ustar holds as prefix (≤ 155) + name (≤ 100).
    [
        b"split/".to_vec(),
        vec![b'd'; 140],
        b"/".to_vec(),
        vec![b'e'; 43],
    ]
    .concat()
}

fn long_target() -> Vec<u8> {
    // Linux refuses symlink targets of PATH_MAX (4096) bytes or more; 4000 needs PAX linkpath.
    b"t/".repeat(2000)
}

/// What the test machine's temporary file system and privileges allow (root on ext4 allows it
/// all; a container may refuse `trusted.*` or mknod, a tmpfs before Linux 6.6 `user.*`).
struct Support {
    mknod: bool,
    xattr: BTreeMap<&'static str, bool>,
}

fn support() -> &'static Support {
    static SUPPORT: OnceLock<Support> = OnceLock::new();
    SUPPORT.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        fs::write(&f, b"").unwrap();
        let mut xattr = BTreeMap::new();
        for (ns, value) in [
            ("user.", &b"v"[..]),
            ("trusted.", b"v"),
            ("security.capability", &CAPABILITY),
        ] {
            let name = if ns.ends_with('.') {
                format!("{ns}probe")
            } else {
                ns.to_owned()
            };
            xattr.insert(
                ns,
                rustix::fs::setxattr(&f, name.as_str(), value, rustix::fs::XattrFlags::empty())
                    .is_ok(),
            );
        }
        let dev = rustix::fs::makedev(1, 3);
        let mknod = rustix::fs::mknodat(
            rustix::fs::CWD,
            tmp.path().join("null"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::RUSR,
            dev,
        )
        .is_ok();
        Support { mknod, xattr }
    })
}

/// `full_stream` less what this machine cannot hold (said on stderr, never silently).
fn full_stream() -> Vec<Item> {
    let s = support();
    let mut items = every_kind_and_attribute();
    if !s.mknod {
        eprintln!("note: mknod refused here; devices left out of the full-tree tests");
        items.retain(|i| {
            !matches!(
                i.entry.kind,
                EntryKind::CharDevice { .. } | EntryKind::BlockDevice { .. }
            )
        });
    }
    for (ns, ok) in &s.xattr {
        if !ok {
            eprintln!("note: {ns}* xattrs refused here; left out of the full-tree tests");
            for i in &mut items {
                i.entry
                    .meta
                    .xattrs
                    .retain(|x| !x.name.starts_with(ns.as_bytes()));
            }
        }
    }
    items
}

/// Every kind and attribute, delivered as the merge may deliver them.
fn every_kind_and_attribute() -> Vec<Item> {
    let big_islands: [(u64, &[u8]); 3] = [
        (0, &[b'H'; 4096]),
        (300_000_123, &[b'M'; 5000]),
        (GIB - 8192, &[b'T'; 4096]),
    ];
    vec![
        // A child before its directory (newest layer first).
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644),
        dir("etc", 0o755).time(T, 5),
        file("bin/su", b"#!su", 0o4755),
        file("bin/newgrp", b"#!newgrp", 0o2755).owner(0, 100),
        dir("bin", 0o755),
        dir("tmp", 0o1777),
        // A read-only directory delivered before its children.
        dir("ro", 0o555),
        file("ro/a", b"a", 0o444),
        dir("ro/sub", 0o555),
        file("ro/sub/b", b"b", 0o600),
        // Long, split and 255-byte names; non-UTF-8 names, short and long.
        file(long_name(), b"long", 0o644),
        dir([b"long/".to_vec(), vec![b'a'; 200]].concat(), 0o755),
        dir("long", 0o755),
        file(split_name(), b"split", 0o644),
        dir([b"split/".to_vec(), vec![b'd'; 140]].concat(), 0o755),
        dir("split", 0o755),
        file(
            [b"names/".to_vec(), vec![b'n'; 255]].concat(),
            b"255",
            0o644,
        ),
        file(b"names/\xff\xfe-latin1-\xe9", b"bytes", 0o644),
        file(
            [b"names/".to_vec(), vec![0xe9; 120]].concat(),
            b"long bytes",
            0o644,
        ),
        dir("names", 0o755),
        // Large ids; mtimes with nanoseconds, before the epoch, beyond ustar's 8^11.
        file("ids/big", b"ids", 0o640).owner(3_000_000_000, 3_000_000_001),
        dir("ids", 0o755).owner(3_000_000_000, 7),
        file("times/nano", b"n", 0o644).time(T, 123_456_789),
        file("times/before-epoch", b"b", 0o644).time(-1, 500_000_000),
        file("times/1960", b"o", 0o644).time(-315_619_200, 0),
        file("times/far", b"f", 0o644).time((1 << 33) + 5, 0),
        dir("times", 0o755).time(-2, 999_999_999),
        // Extended attributes: user, trusted, security.capability; binary values; on a dir and
        // on a symlink.
        file("xattr/file", b"x", 0o755)
            .xattr("user.comment", b"hello")
            .xattr("trusted.bin", &[0, 1, 2, 0xff, 0])
            .xattr("security.capability", &CAPABILITY),
        symlink("xattr/link", "file").xattr("trusted.link", b"on a symlink"),
        dir("xattr", 0o750).xattr("user.dir", b"d"),
        // Symlinks: relative, long, non-UTF-8 target.
        symlink("links/passwd", "../etc/passwd").owner(12, 34),
        symlink("links/long", long_target()),
        symlink("links/bytes", b"\xff\xfe"),
        dir("links", 0o755),
        // A hard-link group of three, and a hard link to a symlink.
        file("hl/one", b"shared", 0o640).owner(5, 6),
        hardlink("hl/two", "hl/one"),
        hardlink("hl/three", "hl/one"),
        hardlink("hl/passwd-link", "links/passwd"),
        dir("hl", 0o755),
        // Devices, a fifo, a socket.
        chardev("dev/null", 1, 3, 0o666),
        blockdev("dev/sda", 8, 0, 0o660).owner(0, 6),
        fifo("dev/fifo"),
        socket("dev/sock"),
        dir("dev", 0o755),
        // Sparse files: 1 GiB with islands (ends in a hole); ending in data; all hole.
        sparse("sparse/big", GIB, &big_islands),
        sparse("sparse/tail", 10_240, &[(6144, &[b'z'; 4096])]),
        sparse("sparse/empty", 1 << 20, &[]),
        // A dense file with a zero run, which the directory sink also keeps as a hole.
        file(
            "sparse/zeros",
            &[vec![1u8; 10], vec![0; 64 << 10], vec![2; 10]].concat(),
            0o644,
        ),
        dir("sparse", 0o755),
        // A directory delivered after its children, with its own owner and mode.
        file("late/child", b"c", 0o644),
        dir("late", 0o750).owner(5, 5).time(T - 100, 0),
        // Replacement: file → file, and a directory with children → file.
        file("rep/f", b"old", 0o600),
        file("rep/f", b"new", 0o644),
        dir("rep/d", 0o755),
        file("rep/d/x", b"x", 0o644),
        dir("rep/d/sub", 0o755),
        file("rep/d/sub/y", b"y", 0o644),
        file("rep/d", b"now a file", 0o644),
        dir("rep", 0o755),
        // The root, last.
        root(0o755).time(1_234_567_890, 0),
    ]
}

// ---------------------------------------------------------------------------------------------
// The model: what extracting a stream gives

fn node_of(item: &Item) -> Node {
    let e = &item.entry;
    let content = match e.kind {
        EntryKind::File { size, .. } => Some((size, item.content.sha256())),
        _ => None,
    };
    crate::support::oracle::node_of(&e.kind, &e.meta, content)
}

/// Applies the stream to an empty tree: a later delivery replaces an earlier one (a
/// non-directory takes the old directory's subtree with it), hard links share their target's
/// node.
fn model(items: &[Item]) -> Tree {
    let mut nodes: BTreeMap<Vec<u8>, Node> = BTreeMap::new();
    let mut inode: BTreeMap<Vec<u8>, usize> = BTreeMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = item.entry.path.as_bytes().to_vec();
        let is_dir = item.entry.kind.is_dir();
        if !is_dir && nodes.get(&path).is_some_and(|n| n.kind == Kind::Dir) {
            let below = |k: &Vec<u8>| k.starts_with(&path) && k.get(path.len()) == Some(&b'/');
            nodes.retain(|k, _| !below(k));
            inode.retain(|k, _| !below(k));
        }
        match &item.entry.kind {
            EntryKind::Hardlink { target } => {
                let t = target.as_bytes().to_vec();
                nodes.insert(path.clone(), nodes[&t].clone());
                inode.insert(path, inode[&t]);
            }
            _ => {
                nodes.insert(path.clone(), node_of(item));
                if is_dir {
                    inode.remove(&path);
                } else {
                    inode.insert(path, i);
                }
            }
        }
    }
    let mut tree = Tree(nodes);
    tree.set_link_groups(|p| inode.get(p).copied());
    tree
}

fn full_expected() -> &'static Tree {
    static TREE: OnceLock<Tree> = OnceLock::new();
    TREE.get_or_init(|| model(&full_stream()))
}

/// What tar can hold: everything but sockets.
fn without_sockets(tree: &Tree) -> Tree {
    Tree(
        tree.0
            .iter()
            .filter(|(_, n)| n.kind != Kind::Socket)
            .map(|(k, n)| (k.clone(), n.clone()))
            .collect(),
    )
}

/// Compares dumps and shows only the differing lines.
#[track_caller]
fn assert_same_tree(expected: &Tree, actual: &Tree) {
    let opts = DumpOptions::default();
    let (e, a) = (expected.dump(opts), actual.dump(opts));
    if e != a {
        let el: Vec<&str> = e.lines().collect();
        let al: Vec<&str> = a.lines().collect();
        let mut diff = String::new();
        for l in &el {
            if !al.contains(l) {
                diff += &format!("- {l}\n");
            }
        }
        for l in &al {
            if !el.contains(l) {
                diff += &format!("+ {l}\n");
            }
        }
        panic!("trees differ (- expected, + actual):\n{diff}");
    }
}

fn stat(path: &Path) -> fs::Metadata {
    fs::symlink_metadata(path).unwrap()
}

/// What a dump cannot show: nanoseconds, and holes that stay holes.
#[track_caller]
fn assert_times_and_holes(root: &Path) {
    let t = |p: &str| {
        let m = stat(&root.join(p));
        (m.mtime(), m.mtime_nsec())
    };
    assert_eq!(t("times/nano"), (T, 123_456_789));
    assert_eq!(t("times/before-epoch"), (-1, 500_000_000));
    assert_eq!(t("times"), (-2, 999_999_999));
    assert_eq!(t("etc"), (T, 5));
    let big = stat(&root.join("sparse/big"));
    assert_eq!(big.len(), GIB);
    assert!(
        big.blocks() * 512 < (1 << 20),
        "sparse/big allocates {} blocks",
        big.blocks()
    );
    let empty = stat(&root.join("sparse/empty"));
    assert_eq!((empty.len(), empty.blocks()), (1 << 20, 0));
}

fn gnu_tar_extract(archive: &Path, dest: &Path, extra: &[&str]) {
    let out = Command::new("tar")
        .args(["--xattrs", "--xattrs-include=*", "--numeric-owner"])
        .args(extra)
        .arg("-xpf")
        .arg(archive)
        .arg("-C")
        .arg(dest)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "GNU tar failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What GNU tar can extract from a tar of the stream: all of it except a directory replaced by
/// a file (see the tar module's doc; `tar_sink_replaces_a_directory_for_recursive_unlink`).
fn tar_extractable(items: Vec<Item>) -> Vec<Item> {
    let d = EntryPath::new(b"rep/d").unwrap();
    items
        .into_iter()
        .filter(|i| !i.entry.path.starts_with(&d))
        .collect()
}

fn tar_to_vec(items: &[Item]) -> (Vec<u8>, Summary) {
    let buf = SharedBuf::default();
    let mut sink = Box::new(TarSink::to_writer(Box::new(buf.clone())));
    feed(&mut *sink, items).unwrap();
    let summary = sink.finish().unwrap();
    let bytes = buf.0.lock().unwrap().clone();
    (bytes, summary)
}

#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// TarSink

#[test]
fn tar_sink_output_extracts_with_gnu_tar_to_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("out.tar");
    let stream = tar_extractable(full_stream());
    let mut sink = Box::new(TarSink::create(&archive).unwrap());
    feed(&mut *sink, &stream).unwrap();
    let summary = sink.finish().unwrap();

    let len = fs::metadata(&archive).unwrap().len();
    assert_eq!(summary.output_bytes, len);
    assert_eq!(len % 10240, 0);
    // The socket is the one thing tar cannot hold.
    let sock = EntryPath::new(b"dev/sock").unwrap();
    let warnings: Vec<_> = summary
        .warnings
        .iter()
        .map(|w| (&w.path, &w.kind))
        .collect();
    assert_eq!(
        warnings,
        [(&sock, &WarningKind::EntryNotStorable { what: "socket" })]
    );
    assert_eq!(summary.entries, stream.len() as u64 - 1);

    let dest = tmp.path().join("x");
    fs::create_dir(&dest).unwrap();
    gnu_tar_extract(&archive, &dest, &[]);
    let mut expected = without_sockets(full_expected());
    expected.0.remove(&b"rep/d"[..]);
    assert_same_tree(&expected, &Tree::from_dir(&dest));
    assert_times_and_holes(&dest);
}

#[test]
fn tar_sink_replaces_a_directory_for_recursive_unlink() {
    // Parents first, as `--recursive-unlink` needs (it empties a directory when its entry
    // comes); the later file entry replaces the directory and its subtree.
    // No root entry: `--recursive-unlink` would empty the extraction directory for it.
    let items = vec![
        dir("d", 0o755),
        file("d/x", b"x", 0o644),
        dir("d/sub", 0o755),
        file("d/sub/y", b"y", 0o644),
        file("d", b"now a file", 0o600),
        file("f", b"old", 0o600),
        file("f", b"new", 0o644),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("out.tar");
    let (bytes, _) = tar_to_vec(&items);
    fs::write(&archive, bytes).unwrap();
    let dest = tmp.path().join("x");
    fs::create_dir(&dest).unwrap();
    gnu_tar_extract(&archive, &dest, &["--recursive-unlink"]);
    let mut extracted = Tree::from_dir(&dest);
    extracted.0.remove(&b""[..]);
    assert_same_tree(&model(&items), &extracted);
}

#[test]
fn tar_sink_headers_read_back_with_the_tar_crate() {
    // Headers only, no file system: the whole stream, whatever this machine supports.
    let stream = tar_extractable(every_kind_and_attribute());
    let (bytes, _) = tar_to_vec(&stream);
    assert!(
        bytes[bytes.len() - 1024..].iter().all(|&b| b == 0),
        "end-of-archive blocks"
    );

    // Exactly one header sequence per entry: an `x` header is always followed by its entry's
    // own header, never by another `x`.
    let mut offset = 0;
    let mut prev_x = false;
    let mut headers = 0;
    while bytes[offset..offset + 512].iter().any(|&b| b != 0) {
        let h = tar::Header::from_byte_slice(&bytes[offset..offset + 512]);
        let x = h.entry_type() == tar::EntryType::XHeader;
        assert!(!(x && prev_x), "two PAX headers in a row at {offset}");
        assert_eq!(h.as_ustar().map(|u| &u.magic), Some(b"ustar\0"));
        assert_eq!(
            (h.username_bytes(), h.groupname_bytes()),
            (Some(&b""[..]), Some(&b""[..]))
        );
        headers += usize::from(!x);
        prev_x = x;
        offset += 512 + (h.entry_size().unwrap() as usize).next_multiple_of(512);
    }
    assert_eq!(headers, stream.len() - 1);

    let mut archive = tar::Archive::new(&bytes[..]);
    let mut seen = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path_bytes().into_owned();
        let pax: BTreeMap<String, Vec<u8>> = match e.pax_extensions().unwrap() {
            Some(p) => p
                .map(|r| r.unwrap())
                .map(|r| (r.key().unwrap().to_owned(), r.value_bytes().to_vec()))
                .collect(),
            None => BTreeMap::new(),
        };
        let mut data = Vec::new();
        if path.starts_with(b"sparse/GNUSparseFile.0/big") {
            e.by_ref().take(512).read_to_end(&mut data).unwrap();
        }
        let link = e.link_name_bytes().map(|l| l.into_owned());
        let h = e.header();
        seen.insert(path, (h.entry_type(), h.mode().unwrap(), pax, link, data));
    }
    let get = |p: &[u8]| {
        seen.get(p)
            .unwrap_or_else(|| panic!("no entry {}", String::from_utf8_lossy(p)))
    };
    let pax = |p: &[u8], k: &str| get(p).2.get(k).cloned();

    assert_eq!(get(b"./").0, tar::EntryType::Directory);
    assert_eq!(get(b"etc/").0, tar::EntryType::Directory);
    assert!(seen
        .keys()
        .all(|p| p == b"./" || !(p.starts_with(b"./") || p.starts_with(b"/"))));
    assert_eq!(get(b"tmp/").1, 0o1777);
    assert_eq!(get(b"bin/su").1, 0o4755);
    // Names: PAX only when ustar cannot hold them.
    assert_eq!(pax(&long_name(), "path"), Some(long_name()));
    assert_eq!(pax(&split_name(), "path"), None);
    let latin = [b"names/".to_vec(), vec![0xe9; 120]].concat();
    assert_eq!(pax(&latin, "path"), Some(latin.clone()));
    assert_eq!(pax(b"names/\xff\xfe-latin1-\xe9", "path"), None);
    // Link targets.
    assert_eq!(get(b"links/long").3.as_deref(), Some(&long_target()[..]));
    assert_eq!(pax(b"links/long", "linkpath"), Some(long_target()));
    assert_eq!(get(b"hl/two").0, tar::EntryType::Link);
    assert_eq!(get(b"hl/two").3.as_deref(), Some(&b"hl/one"[..]));
    // Ids and times.
    assert_eq!(pax(b"ids/big", "uid").as_deref(), Some(&b"3000000000"[..]));
    assert_eq!(pax(b"ids/big", "gid").as_deref(), Some(&b"3000000001"[..]));
    assert_eq!(
        pax(b"times/nano", "mtime").as_deref(),
        Some(&b"1700000000.123456789"[..])
    );
    assert_eq!(
        pax(b"times/before-epoch", "mtime").as_deref(),
        Some(&b"-0.500000000"[..])
    );
    assert_eq!(
        pax(b"times/1960", "mtime").as_deref(),
        Some(&b"-315619200"[..])
    );
    assert_eq!(
        pax(b"times/far", "mtime").as_deref(),
        Some(&b"8589934597"[..])
    );
    assert!(
        get(b"etc/passwd").2.is_empty(),
        "a plain entry has no PAX records"
    );
    // Xattrs, binary-safe.
    assert_eq!(
        pax(b"xattr/file", "SCHILY.xattr.trusted.bin"),
        Some(vec![0, 1, 2, 0xff, 0])
    );
    assert_eq!(
        pax(b"xattr/file", "SCHILY.xattr.security.capability"),
        Some(CAPABILITY.to_vec())
    );
    // Sparse: PAX 1.0 records, the map at the start of the data.
    let alias = b"sparse/GNUSparseFile.0/big";
    assert_eq!(pax(alias, "GNU.sparse.major").as_deref(), Some(&b"1"[..]));
    assert_eq!(pax(alias, "GNU.sparse.minor").as_deref(), Some(&b"0"[..]));
    assert_eq!(
        pax(alias, "GNU.sparse.name").as_deref(),
        Some(&b"sparse/big"[..])
    );
    assert_eq!(
        pax(alias, "GNU.sparse.realsize").as_deref(),
        Some(&b"1073741824"[..])
    );
    // Regions widened to 512-byte blocks: 300000123+5000 becomes 299999744+5632.
    let map = b"4\n0\n4096\n299999744\n5632\n1073733632\n4096\n1073741824\n0\n";
    assert_eq!(&get(alias).4[..map.len()], map);
    assert!(get(alias).4[map.len()..].iter().all(|&b| b == 0));
    // The socket is left out.
    assert!(!seen.contains_key(&b"dev/sock"[..]));
}

#[test]
fn tar_sink_uses_pax_for_what_ustar_cannot_hold() {
    let zeros = |n: u64| Content::Islands {
        size: n,
        islands: vec![],
    };
    let big = Item::new(
        "huge",
        EntryKind::File {
            size: 8 * GIB + 1,
            sparse: None,
        },
        0o644,
        zeros(8 * GIB + 1),
    );
    let items = [
        symlink("sym", vec![b'l'; 5000]),
        chardev("dev", 3_000_000, 5000, 0o600),
        sparse("sparse-file", 3 << 20, &[(1 << 20, b"x")]),
        file("odd-xattr", b"", 0o644).xattr("user.a=b%c", b"v"),
        big,
    ];
    let (bytes, _) = tar_to_vec(&items[..4]);
    let mut archive = tar::Archive::new(&bytes[..]);
    let mut records = BTreeMap::new();
    for e in archive.entries().unwrap() {
        let mut e = e.unwrap();
        let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
        for r in e.pax_extensions().unwrap().unwrap() {
            let r = r.unwrap();
            records.insert(
                format!("{path} {}", r.key().unwrap()),
                r.value_bytes().to_vec(),
            );
        }
        if path == "sym" {
            assert_eq!(e.link_name_bytes().unwrap().len(), 5000);
        }
    }
    let rec = |k: &str| {
        records
            .get(k)
            .cloned()
            .unwrap_or_else(|| panic!("no record {k}"))
    };
    assert_eq!(rec("dev SCHILY.devmajor"), b"3000000");
    assert!(
        !records.contains_key("dev SCHILY.devminor"),
        "5000 fits the octal field"
    );
    assert_eq!(
        rec("GNUSparseFile.0/sparse-file GNU.sparse.realsize"),
        b"3145728"
    );
    assert_eq!(rec("odd-xattr SCHILY.xattr.user.a%3Db%25c"), b"v");

    // A dense file of 8 GiB + 1: its size goes to a PAX record (the data is streamed to a
    // writer that keeps only the first blocks).
    let head = HeadOnly::default();
    let mut sink = Box::new(TarSink::to_writer(Box::new(head.clone())));
    feed(&mut *sink, &items[4..]).unwrap();
    let summary = sink.finish().unwrap();
    assert_eq!(
        summary.output_bytes,
        (1024 + 8 * GIB + 1 + 1024).next_multiple_of(10240)
    );
    assert_eq!(summary.file_bytes, 8 * GIB + 1);
    let head = head.0.lock().unwrap();
    assert!(
        head.windows(16).any(|w| w == b"size=8589934593\n"),
        "no PAX size record"
    );
    // Blocks: `x` header, its records, then the entry's header.
    let h = tar::Header::from_byte_slice(&head[1024..1536]);
    assert_eq!(h.path_bytes().as_ref(), b"huge");
    assert_eq!(
        h.size().unwrap(),
        0,
        "the header's size field defers to the record"
    );
}

/// A writer that keeps the first 4 KiB it receives and counts the rest.
#[derive(Clone, Default)]
struct HeadOnly(Arc<Mutex<Vec<u8>>>);

impl Write for HeadOnly {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let mut v = self.0.lock().unwrap();
        let room = 4096usize.saturating_sub(v.len());
        v.extend_from_slice(&b[..room.min(b.len())]);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn tar_sink_refuses_nonzero_bytes_in_a_hole() {
    // The map says 0..4 is the only data, but the reader yields a byte at offset 1000 (beyond
    // the 512-byte block the region is widened to).
    let mut data = vec![0u8; 2048];
    data[..4].fill(1);
    data[1000] = 9;
    let mut item = file("lying", &data, 0o644);
    item.entry.kind = EntryKind::File {
        size: 2048,
        sparse: Some(vec![(0, 4)]),
    };
    let mut sink = Box::new(TarSink::to_writer(Box::new(io::sink())));
    let err = feed(&mut *sink, &[item]).unwrap_err();
    assert!(
        matches!(err, Error::SparseHoleNotZero { offset: 1000, .. }),
        "{err}"
    );
}

#[test]
fn tar_sink_reports_short_file_data() {
    let mut item = file("short", b"abc", 0o644);
    item.entry.kind = EntryKind::File {
        size: 10,
        sparse: None,
    };
    let mut sink = Box::new(TarSink::to_writer(Box::new(io::sink())));
    let err = feed(&mut *sink, &[item]).unwrap_err();
    assert!(matches!(err.root_cause(), Error::Tar { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains("after 3 bytes"),
        "{err}"
    );
}

#[test]
fn tar_sink_dropped_unfinished_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("out.tar");
    let mut sink = Box::new(TarSink::create(&archive).unwrap());
    feed(
        &mut *sink,
        &[dir("a", 0o755), file("a/f", &[7; 100_000], 0o644)],
    )
    .unwrap();
    drop(sink);
    let left: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");

    // The same after a failed entry.
    let mut sink = Box::new(TarSink::create(&archive).unwrap());
    let mut short = file("short", b"abc", 0o644);
    short.entry.kind = EntryKind::File {
        size: 10,
        sparse: None,
    };
    assert!(feed(&mut *sink, &[short]).is_err());
    drop(sink);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

fn small_stream() -> Vec<Item> {
    vec![
        file("d/f", b"hello", 0o644).time(T, 42),
        dir("d", 0o700),
        symlink("s", "d/f"),
        hardlink("h", "d/f"),
        root(0o755),
    ]
}

const STDOUT_CHILD: &str = "OCIRENDER_TEST_TAR_TO_STDOUT";

/// Not a test on its own: the child process of `tar_sink_writes_standard_output_for_dash`.
#[test]
fn tar_stdout_child() {
    if std::env::var_os(STDOUT_CHILD).is_none() {
        return;
    }
    let mut sink = Box::new(TarSink::create(Path::new("-")).unwrap());
    feed(&mut *sink, &small_stream()).unwrap();
    sink.finish().unwrap();
    // Exit before the test harness prints its result line to the same stdout.
    std::process::exit(0);
}

#[test]
fn tar_sink_writes_standard_output_for_dash() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "sinks::tar_stdout_child",
            "--test-threads=1",
            "--quiet",
        ])
        .env(STDOUT_CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The harness announces the test on stdout before the archive.
    let marker = b"running 1 test\n";
    let start = out
        .stdout
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("harness line")
        + marker.len();
    let (expected, _) = tar_to_vec(&small_stream());
    assert!(
        out.stdout[start..] == expected[..],
        "stdout differs from the to_writer archive"
    );
}

// ---------------------------------------------------------------------------------------------
// DirSink

fn collect_progress() -> (Option<ocirender::ProgressFn>, Arc<Mutex<Vec<Warning>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let f: ocirender::ProgressFn = Arc::new(move |p: &Progress| {
        if let Progress::Warning(w) = p {
            s.lock().unwrap().push(w.clone());
        }
    });
    (Some(f), seen)
}

#[test]
fn dir_sink_extracts_the_expected_tree() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &full_stream()).unwrap();
    let summary = sink.finish().unwrap();
    assert_eq!(summary.warnings, []);
    assert_eq!(summary.entries, full_stream().len() as u64);
    assert_eq!(summary.output_bytes, 0);
    assert_same_tree(full_expected(), &Tree::from_dir(&out));
    assert_times_and_holes(&out);
    // The dense zero run became a hole too: 64 KiB of zeros between two 10-byte runs.
    let z = stat(&out.join("sparse/zeros"));
    assert!(
        z.blocks() * 512 <= 16 << 10,
        "sparse/zeros allocates {} blocks",
        z.blocks()
    );
}

#[test]
fn dir_sink_with_ownership_ignore_never_chowns() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let items = vec![
        file("d/setuid", b"x", 0o4755).owner(1000, 1000),
        symlink("d/link", "setuid").owner(1000, 1000),
        fifo("d/fifo").owner(7, 7),
        dir("d", 0o755).owner(1000, 1000),
        root(0o755).owner(1000, 1000),
    ];
    let mut sink = Box::new(DirSink::create(&out, Ownership::Ignore, None).unwrap());
    feed(&mut *sink, &items).unwrap();
    sink.finish().unwrap();
    let (uid, gid) = (
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let mut expected = model(&items);
    for n in expected.0.values_mut() {
        (n.uid, n.gid) = (uid, gid);
    }
    assert_same_tree(&expected, &Tree::from_dir(&out));
}

#[test]
fn dir_sink_reports_warnings_in_summary_and_progress() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let (progress, seen) = collect_progress();
    let items = vec![
        // Linux refuses user.* xattrs on symlinks.
        symlink("link", "x").xattr("user.nope", b"v"),
        // mknod cannot express a major number above 4095.
        chardev("dev", 5000, 1, 0o600),
        root(0o755),
    ];
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, progress).unwrap());
    feed(&mut *sink, &items).unwrap();
    let summary = sink.finish().unwrap();
    let kinds: Vec<_> = summary
        .warnings
        .iter()
        .map(|w| (w.path.lossy(), w.kind.clone()))
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "link".into(),
                WarningKind::XattrNotSet {
                    name: b"user.nope".to_vec(),
                    errno: Errno::PERM.raw_os_error()
                }
            ),
            (
                "dev".into(),
                WarningKind::DeviceNotCreated {
                    errno: Errno::OVERFLOW.raw_os_error()
                }
            ),
        ]
    );
    assert_eq!(*seen.lock().unwrap(), summary.warnings);
    assert!(!out.join("dev").exists());
    assert_eq!(summary.entries, 2);
}

#[test]
fn dir_sink_refuses_paths_through_a_planted_symlink() {
    let outside = tempfile::Builder::new()
        .prefix("outside-")
        .tempdir()
        .unwrap();
    fs::write(outside.path().join("x"), b"precious").unwrap();
    let before = Tree::from_dir(outside.path());
    let tmp = tempfile::tempdir().unwrap();

    let attacks: Vec<(&str, Vec<Item>)> = vec![
        (
            "file beneath",
            vec![
                symlink("a", outside.path().to_str().unwrap()),
                file("a/x", b"pwned", 0o644),
            ],
        ),
        (
            "new file beneath",
            vec![
                symlink("a", outside.path().to_str().unwrap()),
                file("a/new", b"pwned", 0o644),
            ],
        ),
        (
            "dir beneath",
            vec![
                symlink("a", outside.path().to_str().unwrap()),
                dir("a/d", 0o777),
            ],
        ),
        (
            "deep",
            vec![
                dir("d", 0o755),
                symlink("d/e", outside.path().to_str().unwrap()),
                file("d/e/f/g", b"pwned", 0o644),
            ],
        ),
        (
            "hard link through",
            vec![
                symlink("a", outside.path().to_str().unwrap()),
                hardlink("b", "a/x"),
            ],
        ),
        (
            "relative escape",
            vec![
                symlink("a", "../../../../../../.."),
                file("a/tmp/pwned", b"pwned", 0o644),
            ],
        ),
    ];
    for (name, items) in attacks {
        let out = tmp.path().join(name);
        let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
        let err = feed(&mut *sink, &items).unwrap_err();
        assert!(matches!(err, Error::BeneathSymlink { .. }), "{name}: {err}");
        drop(sink);
        assert!(!out.exists(), "{name}: output left behind");
        assert_same_tree(&before, &Tree::from_dir(outside.path()));
        assert_eq!(stat(&outside.path().join("x")).nlink(), 1, "{name}");
    }
}

#[test]
fn dir_sink_replaces_planted_symlinks_instead_of_following_them() {
    let outside = tempfile::Builder::new()
        .prefix("outside-")
        .tempdir()
        .unwrap();
    fs::write(outside.path().join("x"), b"precious").unwrap();
    let before = Tree::from_dir(outside.path());
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let target = outside.path().join("x");
    let items = vec![
        // A later delivery of the path replaces the symlink itself.
        symlink("f", target.to_str().unwrap()),
        file("f", b"mine", 0o644),
        symlink("d", outside.path().to_str().unwrap()),
        dir("d", 0o755),
        file("d/inside", b"in", 0o644),
        // A hard link to a symlink links the symlink, not what it points to.
        symlink("s", target.to_str().unwrap()),
        hardlink("h", "s"),
        root(0o755),
    ];
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &items).unwrap();
    sink.finish().unwrap();
    assert_same_tree(&model(&items), &Tree::from_dir(&out));
    assert_same_tree(&before, &Tree::from_dir(outside.path()));
    assert_eq!(stat(&target).nlink(), 1);
}

#[test]
fn dir_sink_requires_a_missing_or_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("file"), b"").unwrap();
    fs::create_dir(tmp.path().join("full")).unwrap();
    fs::write(tmp.path().join("full/x"), b"").unwrap();
    for name in ["file", "full"] {
        let err = DirSink::create(&tmp.path().join(name), Ownership::Auto, None)
            .err()
            .unwrap();
        assert!(matches!(err, Error::OutputExists { .. }), "{name}: {err}");
    }
    assert_eq!(fs::read(tmp.path().join("full/x")).unwrap(), b"");
    fs::create_dir(tmp.path().join("empty")).unwrap();
    assert!(DirSink::create(&tmp.path().join("empty"), Ownership::Auto, None).is_ok());
}

fn messy_partial_stream() -> Vec<Item> {
    vec![
        dir("ro", 0o555),
        file("ro/f", &[1; 50_000], 0o444),
        dir("ro/sub", 0o500),
        file("ro/sub/g", b"g", 0o400),
        symlink("ro/sub/l", "/etc"),
        fifo("p"),
    ]
}

#[test]
fn dir_sink_dropped_unfinished_removes_what_it_wrote() {
    let tmp = tempfile::tempdir().unwrap();
    // A directory the sink created goes entirely.
    let out = tmp.path().join("new");
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &messy_partial_stream()).unwrap();
    drop(sink);
    assert!(!out.exists());

    // A directory that existed (empty) stays, emptied, with its own mode.
    let out = tmp.path().join("existing");
    fs::create_dir(&out).unwrap();
    fs::set_permissions(&out, fs::Permissions::from_mode(0o711)).unwrap();
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &messy_partial_stream()).unwrap();
    let mut bad = file("ro/short", b"abc", 0o644);
    bad.entry.kind = EntryKind::File {
        size: 10,
        sparse: None,
    };
    assert!(feed(&mut *sink, &[bad]).is_err());
    drop(sink);
    assert_eq!(fs::read_dir(&out).unwrap().count(), 0);
    assert_eq!(stat(&out).mode() & 0o7777, 0o711);
}

#[test]
fn dir_sink_keeps_children_when_a_dir_is_delivered_again() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let items = vec![
        dir("d", 0o700),
        file("d/f", b"kept", 0o644),
        dir("d", 0o751).owner(3, 4),
        // A non-directory replaced by a directory.
        file("e", b"gone", 0o644),
        dir("e", 0o755),
        file("e/g", b"g", 0o644),
        root(0o755),
    ];
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &items).unwrap();
    sink.finish().unwrap();
    assert_same_tree(&model(&items), &Tree::from_dir(&out));
    assert_eq!(fs::read(out.join("d/f")).unwrap(), b"kept");
}

#[test]
fn hard_link_to_a_missing_target_is_an_error_naming_both() {
    let tmp = tempfile::tempdir().unwrap();
    let mut sink = Box::new(DirSink::create(&tmp.path().join("o"), Ownership::Auto, None).unwrap());
    let err = feed(&mut *sink, &[hardlink("l", "nowhere/t")]).unwrap_err();
    assert!(
        matches!(&err, Error::HardlinkTargetMissing { link, target } if link == "l" && target == "nowhere/t"),
        "{err}"
    );
    let err = feed(&mut *sink, &[dir("d", 0o755), hardlink("l", "d/t")]).unwrap_err();
    assert!(matches!(err, Error::HardlinkTargetMissing { .. }), "{err}");
}

#[test]
fn both_sinks_agree_on_a_non_utf8_deep_tree() {
    // Many directories, delivered children-first and in an order that makes the sink change
    // directory often: exercises the parent cache and the deferred directory metadata.
    let mut items = Vec::new();
    for i in 0..30u8 {
        let d = [
            b"deep/".to_vec(),
            vec![b'a' + i % 26, 0xff],
            b"/x/y".to_vec(),
        ]
        .concat();
        items.push(file([d.clone(), b"/f".to_vec()].concat(), &[i; 3], 0o644));
        items.push(dir(&d, 0o700 + u32::from(i % 8)).time(T + i64::from(i), 0));
        items.push(dir(&d[..d.len() - 2], 0o755));
        items.push(dir(&d[..d.len() - 4], 0o755));
    }
    items.push(dir("deep", 0o755));
    items.push(root(0o755));
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let mut sink = Box::new(DirSink::create(&out, Ownership::Auto, None).unwrap());
    feed(&mut *sink, &items).unwrap();
    sink.finish().unwrap();
    let expected = model(&items);
    assert_same_tree(&expected, &Tree::from_dir(&out));

    let (archive, _) = tar_to_vec(&items);
    let path = tmp.path().join("a.tar");
    fs::write(&path, archive).unwrap();
    let dest = tmp.path().join("x");
    fs::create_dir(&dest).unwrap();
    gnu_tar_extract(&path, &dest, &[]);
    assert_same_tree(&expected, &Tree::from_dir(&dest));
}
