//! The Linux kernel reads what `SquashfsSink` writes.
//!
//! Data flow: each case is a [`Fixture`] (the entries fed to the writer, with their content) and
//! writer options → `SquashfsSink` writes `<label>.sqfs` → one QEMU boot of Debian's packaged
//! kernel mounts every image with `mount -t squashfs` (support::kernel) → the kernel's listing is
//! compared, as a canonical dump, with the tree the fixture describes.
//!
//! Why: unsquashfs and backhand forgive things the kernel refuses (SQUASHFS.md lists the kernel's
//! checks), and the kernel is what mounts these images in production. A TCG boot costs seconds,
//! so all cases share one boot; each case is one disk.
//!
//! Cases: every compressor (gzip, zstd, xz, lz4, none) on the base tree (hard links, devices,
//! fifo, socket, 255-byte names, symlinks up to 4000 bytes, setuid/setgid/sticky, uid/gid above
//! 65535, xattrs, fragments, dedup, raw and hole blocks), the base tree without fragments, with
//! 4 KiB blocks and with the xz x86 BCJ filter, a directory of 10,000 entries, and a 5 GiB sparse
//! file. Two disks carry a dm-verity hash tree and are mounted through a verity device: the
//! base tree (the listing must match), and a copy with one data byte flipped (reading the file
//! it belongs to must fail with EIO, and the kernel must log the corrupted block). A control disk holds the base tree written by mksquashfs (when present and running as
//! root): it proves the harness and fixture right, so a failure elsewhere points at our writer.
//!
//! Knobs: `OCIRENDER_KERNEL_WRITER=mksquashfs` writes every case with mksquashfs instead (to tell
//! a harness bug from a writer bug); `OCIRENDER_KERNEL_WORKDIR=DIR` keeps the images, the console
//! log and each disk's decoded listing under DIR; `OCIRENDER_KERNEL_TIMEOUT` (seconds, default
//! 300) bounds the boot. Skipped with a notice without QEMU or a kernel in /boot, unless
//! `OCIRENDER_REQUIRE_KERNEL=1`.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;
use std::process::Command;

use crate::support::dump::{self, DumpOptions, Kind, Tree};
use crate::support::kernel::{windowed_sha256, Disk, Harness, Window};
use ocirender::squashfs::SquashfsSink;
use ocirender::verity::VerityMismatch;
use ocirender::{
    Algorithm, BlockSize, Compression, Entry, EntryKind, EntryPath, Jobs, Metadata, Sink,
    SquashfsOptions, Summary, VerityOptions, Xattr, XzFilter,
};

/// A fixed time for entries that do not pick their own.
const T0: i64 = 1_700_000_000;
const KIB: u64 = 1024;
const GIB: u64 = 1 << 30;

#[test]
fn kernel_mounts_every_image() {
    let Some(harness) = Harness::find_or_skip("kernel_mounts_every_image") else {
        return;
    };
    // OCIRENDER_KERNEL_WORKDIR keeps the images and the console log for a look after a failure.
    let (_cleanup, work) = match std::env::var_os("OCIRENDER_KERNEL_WORKDIR") {
        Some(dir) => {
            std::fs::create_dir_all(&dir).unwrap();
            let kept = tempfile::Builder::new().prefix("kernel-").tempdir_in(dir);
            (None, kept.unwrap().keep())
        }
        None => {
            let t = tempfile::tempdir().unwrap();
            let path = t.path().to_owned();
            (Some(t), path)
        }
    };
    eprintln!("work directory: {}", work.display());
    let writer = Writer::from_env();
    let base = base_tree();
    let gzip = options(Algorithm::Gzip);
    let mut cases: Vec<Case> = [
        Case::new("base-gzip", &base, gzip.clone()),
        Case::new("base-zstd", &base, options(Algorithm::Zstd)),
        Case::new("base-xz", &base, options(Algorithm::Xz)),
        Case::new("base-lz4", &base, options(Algorithm::Lz4)),
        Case::new("base-none", &base, options(Algorithm::None)),
        Case::new(
            "base-nofrag",
            &base,
            SquashfsOptions {
                fragments: false,
                ..options(Algorithm::Zstd)
            },
        ),
        Case::new(
            "base-4k",
            &base,
            SquashfsOptions {
                block_size: BlockSize::new(4096).unwrap(),
                ..gzip
            },
        ),
        // The kernel has only the x86 BCJ decoder (XZ_DEC_X86); code-like data makes the
        // writer pick the filter for its blocks.
        Case::new(
            "base-xz-bcj",
            &with_x86_code(&base),
            SquashfsOptions {
                xz_filters: vec![XzFilter::X86],
                ..options(Algorithm::Xz)
            },
        ),
        Case::new("bigdir", &big_dir(), options(Algorithm::Zstd)),
        Case::new("sparse", &sparse_tree(), options(Algorithm::Zstd)).windows(sparse_windows()),
    ]
    .into_iter()
    .map(|case| case.written_by(writer))
    .collect();
    if Writer::Mksquashfs.available() {
        let control = Case::new("control-mks", &base, options(Algorithm::Zstd));
        cases.push(control.written_by(Writer::Mksquashfs));
    } else {
        crate::support::skip::skip(
            "the kernel's control disk (written by mksquashfs)",
            "ROOT",
            "it needs mksquashfs and root",
        );
    }

    // dm-verity: the base tree with its hash tree appended, mounted through a verity device
    // (our writer only: the tree is ours); and a copy with one byte of a file's data flipped,
    // whose reads the kernel must refuse.
    let verity = SquashfsOptions {
        verity: Some(VerityOptions::default()),
        ..options(Algorithm::Zstd)
    };
    cases.push(Case::new("verity", &base, verity.clone()));
    cases.push(Case::new("verity-tampered", &base, verity));

    let started = std::time::Instant::now();
    let mut disks = Vec::new();
    let mut tampered_file = None;
    for case in &cases {
        let image = work.join(format!("{}.sqfs", case.label));
        let writer = if case.options.verity.is_some() {
            Writer::Ours
        } else {
            case.writer
        };
        let summary = writer.write(&case.fixture, &case.options, &image, &work);
        if case.label == "verity-tampered" {
            tampered_file = Some(tamper(&image, summary.as_ref()));
        }
        disks.push(case.disk(image, summary.as_ref()));
    }
    eprintln!(
        "{} images written in {:.1?}",
        disks.len(),
        started.elapsed()
    );

    let listings = harness.boot(&disks, &work);
    let mut failures = Vec::new();
    for (case, listing) in cases.iter().zip(&listings) {
        if case.options.verity.is_some() && listing.verity.is_none() {
            failures.push(format!("{}: not mounted through dm-verity", case.label));
        }
        if case.label == "verity-tampered" {
            let file = tampered_file.as_deref().unwrap_or_default();
            if let Err(msg) = check_refused(listing, file) {
                failures.push(msg);
            }
            continue;
        }
        let writer = if case.options.verity.is_some() {
            Writer::Ours
        } else {
            case.writer
        };
        let expected = writer.shows(case.fixture.expected(&case.windows));
        if let Err(msg) = listing.check(&expected, DumpOptions::default()) {
            failures.push(msg);
        }
    }

    // The kernel derives i_blocks from the inode's `sparse` byte count: a 5 GiB file whose data is
    // a few islands must not count as allocated (nor may its holes have been written as data).
    let sparse = listings.iter().find(|l| l.label == "sparse").unwrap();
    if let Some(st) = sparse.stats.get(&b"sparse/huge"[..]) {
        let bound = sparse_allocation_bound(BlockSize::DEFAULT.get().into());
        if st.blocks * 512 > bound {
            failures.push(format!(
                "sparse/huge: the kernel counts {} allocated bytes, expected at most {bound}",
                st.blocks * 512
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Flips one byte of the first data block after the superblock's and returns the path of the
/// file whose data it holds, as our own verity check names it.
fn tamper(image: &Path, summary: Option<&Summary>) -> String {
    let info = summary
        .and_then(|s| s.verity.clone())
        .expect("a verity summary");
    let mut bytes = std::fs::read(image).unwrap();
    bytes[4096 + 100] ^= 0x40;
    std::fs::write(image, &bytes).unwrap();
    let report = ocirender::verity::check(image, None, &info.root_hash).unwrap();
    match report.mismatch {
        Some(VerityMismatch::DataBlock {
            block: 1, holds, ..
        }) => holds
            .strip_prefix("data of /")
            .unwrap_or_else(|| panic!("block 1 holds {holds}, not a file's data"))
            .to_owned(),
        other => panic!("our check finds {other:?}, not data block 1"),
    }
}

/// The tampered disk mounts (its metadata is intact) but reading `file` fails with EIO, and the
/// kernel log says that dm-verity found a corrupted block.
fn check_refused(listing: &crate::support::kernel::Listing, file: &str) -> Result<(), String> {
    let eio = listing
        .problems
        .iter()
        .any(|p| p.contains(file) && p.contains("Input/output error"));
    let logged = listing
        .kernel_log
        .iter()
        .any(|l| l.contains("verity") && l.contains("corrupted"));
    if eio && logged {
        Ok(())
    } else {
        Err(format!(
            "verity-tampered: expected EIO reading {file} and a dm-verity corruption in the \
             kernel log; problems: {:?}; kernel log: {:?}",
            listing.problems, listing.kernel_log
        ))
    }
}

/// One disk: a fixture, who writes it with which options, and which big files are compared by
/// windows.
struct Case {
    label: &'static str,
    fixture: Fixture,
    writer: Writer,
    options: SquashfsOptions,
    windows: Vec<Window>,
}

impl Case {
    fn new(label: &'static str, fixture: &Fixture, options: SquashfsOptions) -> Case {
        Case {
            label,
            fixture: fixture.clone(),
            writer: Writer::Ours,
            options,
            windows: Vec::new(),
        }
    }

    fn written_by(mut self, writer: Writer) -> Case {
        self.writer = writer;
        self
    }

    fn windows(mut self, windows: Vec<Window>) -> Case {
        self.windows = windows;
        self
    }

    fn disk(&self, image: std::path::PathBuf, summary: Option<&Summary>) -> Disk {
        // The image holds both the data and the hash tree: one device for both.
        let verity = summary.and_then(|s| s.verity.as_ref()).map(|v| {
            v.dm_table()
                .replace("DATA_DEV", "DEV")
                .replace("HASH_DEV", "DEV")
        });
        Disk {
            label: self.label.to_owned(),
            image,
            windows: self.windows.clone(),
            verity,
        }
    }
}

fn options(algorithm: Algorithm) -> SquashfsOptions {
    SquashfsOptions {
        compression: Compression::new(algorithm, None).unwrap(),
        ..SquashfsOptions::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures: entries with content, turned into an image (our writer or mksquashfs) and into the
// expected tree.

/// The content that comes with an entry.
#[derive(Clone, Debug)]
enum Content {
    None,
    Bytes(Vec<u8>),
    /// `size` bytes of zeros except for the islands `(offset, bytes)` (sorted, disjoint).
    Sparse {
        size: u64,
        islands: Vec<(u64, Vec<u8>)>,
    },
}

impl Content {
    fn size(&self) -> u64 {
        match self {
            Content::None => 0,
            Content::Bytes(b) => b.len() as u64,
            Content::Sparse { size, .. } => *size,
        }
    }

    /// The bytes in `[offset, offset + len)`, clipped at the end.
    fn read_at(&self, offset: u64, len: u64) -> Vec<u8> {
        let end = (offset + len).min(self.size());
        let offset = offset.min(end);
        match self {
            Content::None => Vec::new(),
            Content::Bytes(b) => b[offset as usize..end as usize].to_vec(),
            Content::Sparse { islands, .. } => {
                let mut out = vec![0u8; (end - offset) as usize];
                for (at, bytes) in islands {
                    let (lo, hi) = (*at.max(&offset), (at + bytes.len() as u64).min(end));
                    if lo < hi {
                        out[(lo - offset) as usize..(hi - offset) as usize]
                            .copy_from_slice(&bytes[(lo - at) as usize..(hi - at) as usize]);
                    }
                }
                out
            }
        }
    }

    fn reader(&self) -> ContentReader<'_> {
        ContentReader {
            content: self,
            pos: 0,
        }
    }
}

/// Streams a [`Content`] without materializing its holes.
struct ContentReader<'a> {
    content: &'a Content,
    pos: u64,
}

impl Read for ContentReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = self
            .content
            .read_at(self.pos, buf.len().min(1 << 20) as u64);
        buf[..chunk.len()].copy_from_slice(&chunk);
        self.pos += chunk.len() as u64;
        Ok(chunk.len())
    }
}

#[derive(Clone, Debug)]
struct Item {
    entry: Entry,
    content: Content,
}

/// A list of entries as the merge would deliver them (parents first here), with content.
#[derive(Clone, Debug)]
struct Fixture {
    items: Vec<Item>,
}

fn meta(mode: u32) -> Metadata {
    Metadata {
        mode,
        mtime: T0,
        ..Metadata::default()
    }
}

/// Builder-style additions to [`Metadata`] for readable fixtures.
trait MetaExt {
    fn owner(self, uid: u32, gid: u32) -> Self;
    fn time(self, mtime: i64) -> Self;
    fn xattr(self, name: &str, value: &[u8]) -> Self;
}

impl MetaExt for Metadata {
    fn owner(mut self, uid: u32, gid: u32) -> Self {
        (self.uid, self.gid) = (uid, gid);
        self
    }

    fn time(mut self, mtime: i64) -> Self {
        self.mtime = mtime;
        self
    }

    fn xattr(mut self, name: &str, value: &[u8]) -> Self {
        self.xattrs.push(Xattr {
            name: name.as_bytes().to_vec(),
            value: value.to_vec(),
        });
        self.xattrs.sort();
        self
    }
}

impl Fixture {
    fn new(root: Metadata) -> Fixture {
        let mut f = Fixture { items: Vec::new() };
        f.add("", EntryKind::Dir, root, Content::None);
        f
    }

    fn add(&mut self, path: impl AsRef<[u8]>, kind: EntryKind, meta: Metadata, content: Content) {
        self.items.push(Item {
            entry: Entry {
                path: EntryPath::new(path.as_ref()).unwrap(),
                kind,
                meta,
            },
            content,
        });
    }

    fn dir(&mut self, path: impl AsRef<[u8]>, meta: Metadata) {
        self.add(path, EntryKind::Dir, meta, Content::None);
    }

    fn file(&mut self, path: impl AsRef<[u8]>, meta: Metadata, data: impl Into<Vec<u8>>) {
        let data = data.into();
        let kind = EntryKind::File {
            size: data.len() as u64,
            sparse: None,
        };
        self.add(path, kind, meta, Content::Bytes(data));
    }

    fn sparse(&mut self, path: &str, meta: Metadata, size: u64, islands: Vec<(u64, Vec<u8>)>) {
        let kind = EntryKind::File {
            size,
            sparse: Some(
                islands
                    .iter()
                    .map(|(at, b)| (*at, b.len() as u64))
                    .collect(),
            ),
        };
        self.add(path, kind, meta, Content::Sparse { size, islands });
    }

    fn symlink(&mut self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>, meta: Metadata) {
        let target = target.as_ref().to_vec();
        self.add(path, EntryKind::Symlink { target }, meta, Content::None);
    }

    fn hardlink(&mut self, path: &str, target: &str) {
        let target = EntryPath::new(target.as_bytes()).unwrap();
        self.add(path, EntryKind::Hardlink { target }, meta(0), Content::None);
    }

    fn node(&mut self, path: &str, kind: EntryKind, meta: Metadata) {
        self.add(path, kind, meta, Content::None);
    }

    /// The tree the kernel must show: hard links share their target's node and form a `link=`
    /// group; files named in `windows` carry the windowed digest the harness computes.
    fn expected(&self, windows: &[Window]) -> Tree {
        let mut tree = Tree::default();
        let mut group: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for item in &self.items {
            let e = &item.entry;
            let key = e.path.as_bytes().to_vec();
            let node = match &e.kind {
                EntryKind::Hardlink { target } => {
                    let t = target.as_bytes().to_vec();
                    group.insert(key.clone(), t.clone());
                    group.insert(t.clone(), t.clone());
                    tree.0[&t].clone()
                }
                kind => {
                    let content = match kind {
                        EntryKind::File { size, .. } => {
                            Some((*size, self.digest(&key, &item.content, windows)))
                        }
                        _ => None,
                    };
                    crate::support::oracle::node_of(kind, &e.meta, content)
                }
            };
            tree.0.insert(key, node);
        }
        tree.set_link_groups(|p| group.get(p).cloned());
        tree
    }

    fn digest(&self, path: &[u8], content: &Content, windows: &[Window]) -> String {
        let mine: Vec<&Window> = windows
            .iter()
            .filter(|w| w.path.as_bytes() == path)
            .collect();
        if mine.is_empty() {
            return dump::sha256(&content.read_at(0, content.size()));
        }
        windowed_sha256(mine.iter().map(|w| {
            let bytes = content.read_at(w.offset, w.len);
            (w.offset, w.len, dump::sha256(&bytes))
        }))
    }

    /// Feeds the entries to our writer.
    fn write_ours(&self, options: &SquashfsOptions, image: &Path) -> Summary {
        let sink = SquashfsSink::create(image, options, Jobs::new(2).unwrap(), None).unwrap();
        let mut sink: Box<dyn Sink> = Box::new(sink);
        for item in &self.items {
            let mut data = item.content.reader();
            sink.entry(&item.entry, &mut data)
                .unwrap_or_else(|e| panic!("{}: {e}", item.entry.path.lossy()));
        }
        sink.finish().unwrap()
    }

    /// Creates the tree on disk (needs root: devices, ownership, trusted.* xattrs).
    fn materialize(&self, root: &Path) {
        use rustix::fs::{AtFlags, FileType, Mode, Timespec, Timestamps, CWD};
        use std::os::unix::ffi::OsStrExt;
        let at = |p: &EntryPath| root.join(std::ffi::OsStr::from_bytes(p.as_bytes()));
        for item in &self.items {
            let e = &item.entry;
            let path = at(&e.path);
            let node = |ft: FileType, dev| {
                rustix::fs::mknodat(CWD, &path, ft, Mode::from_raw_mode(0o600), dev).unwrap()
            };
            match &e.kind {
                EntryKind::Dir if e.path.is_root() => {}
                EntryKind::Dir => std::fs::create_dir(&path).unwrap(),
                EntryKind::File { size, .. } => {
                    let f = std::fs::File::create(&path).unwrap();
                    f.set_len(*size).unwrap();
                    match &item.content {
                        Content::Sparse { islands, .. } => {
                            use std::os::unix::fs::FileExt;
                            for (off, bytes) in islands {
                                f.write_all_at(bytes, *off).unwrap();
                            }
                        }
                        c => {
                            use std::os::unix::fs::FileExt;
                            f.write_all_at(&c.read_at(0, c.size()), 0).unwrap();
                        }
                    }
                }
                EntryKind::Symlink { target } => {
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path).unwrap()
                }
                EntryKind::Hardlink { target } => std::fs::hard_link(at(target), &path).unwrap(),
                EntryKind::CharDevice { major, minor } => node(
                    FileType::CharacterDevice,
                    rustix::fs::makedev(*major, *minor),
                ),
                EntryKind::BlockDevice { major, minor } => {
                    node(FileType::BlockDevice, rustix::fs::makedev(*major, *minor))
                }
                EntryKind::Fifo => node(FileType::Fifo, 0),
                EntryKind::Socket => {
                    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
                }
            }
            if matches!(e.kind, EntryKind::Hardlink { .. }) {
                continue;
            }
            // chown clears setuid bits and file capabilities: ownership first, then mode, xattrs.
            rustix::fs::chownat(
                CWD,
                &path,
                Some(rustix::fs::Uid::from_raw(e.meta.uid)),
                Some(rustix::fs::Gid::from_raw(e.meta.gid)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
            if !matches!(e.kind, EntryKind::Symlink { .. }) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(e.meta.mode))
                    .unwrap();
            }
            for x in &e.meta.xattrs {
                rustix::fs::lsetxattr(
                    &path,
                    &x.name[..],
                    &x.value,
                    rustix::fs::XattrFlags::empty(),
                )
                .unwrap_or_else(|err| panic!("setxattr {}: {err}", path.display()));
            }
        }
        // Times last: creating children changes a directory's mtime.
        for item in &self.items {
            let e = &item.entry;
            if matches!(e.kind, EntryKind::Hardlink { .. }) {
                continue;
            }
            let t = Timespec {
                tv_sec: e.meta.mtime,
                tv_nsec: 0,
            };
            let times = Timestamps {
                last_access: t,
                last_modification: t,
            };
            rustix::fs::utimensat(CWD, at(&e.path), &times, AtFlags::SYMLINK_NOFOLLOW).unwrap();
        }
    }
}

/// Who writes the images.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Writer {
    Ours,
    Mksquashfs,
}

impl Writer {
    fn from_env() -> Writer {
        match std::env::var("OCIRENDER_KERNEL_WRITER").as_deref() {
            Ok("mksquashfs") => Writer::Mksquashfs,
            Ok("ours") | Err(_) => Writer::Ours,
            Ok(other) => panic!("OCIRENDER_KERNEL_WRITER={other}: expected ours or mksquashfs"),
        }
    }

    fn available(self) -> bool {
        match self {
            Writer::Ours => true,
            Writer::Mksquashfs => {
                rustix::process::geteuid().is_root()
                    && Command::new("mksquashfs").arg("-version").output().is_ok()
            }
        }
    }

    /// What an image written by this writer holds of `tree`: mksquashfs (4.5, 4.6) stores each
    /// name of a hard-linked symlink as an inode of its own, so those names form no group.
    fn shows(self, mut tree: Tree) -> Tree {
        if self == Writer::Mksquashfs {
            for node in tree.0.values_mut() {
                if matches!(node.kind, Kind::Symlink(_)) {
                    node.link = None;
                }
            }
        }
        tree
    }

    /// Writes the image; our writer's summary (mksquashfs has none).
    fn write(
        self,
        fixture: &Fixture,
        options: &SquashfsOptions,
        image: &Path,
        work: &Path,
    ) -> Option<Summary> {
        match self {
            Writer::Ours => Some(fixture.write_ours(options, image)),
            Writer::Mksquashfs => {
                let src = tempfile::tempdir_in(work).unwrap();
                fixture.materialize(src.path());
                let mut cmd = Command::new("mksquashfs");
                cmd.arg(src.path()).arg(image);
                cmd.args(["-noappend", "-quiet", "-no-progress", "-processors", "2"]);
                cmd.arg("-b").arg(options.block_size.get().to_string());
                match options.compression.algorithm() {
                    Algorithm::None => cmd.args(["-noI", "-noD", "-noF", "-noX"]),
                    a => cmd.args(["-comp", a.name()]),
                };
                if !options.fragments {
                    cmd.arg("-no-fragments");
                }
                if options.xz_filters.contains(&XzFilter::X86) {
                    cmd.args(["-Xbcj", "x86"]);
                }
                let out = cmd.output().unwrap();
                assert!(out.status.success(), "{cmd:?}: {out:?}");
                None
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The trees.

/// Deterministic bytes: `compressible` ones are text-like, the others look random.
fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if compressible {
                b"squashfs kernel oracle \n"[(i + (x % 3) as usize) % 24]
            } else {
                x as u8
            }
        })
        .collect()
}

/// Every entry type and attribute the kernel can show, in one tree.
fn base_tree() -> Fixture {
    let cap_net_raw = [
        1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let long = "n".repeat(255);
    let mut f = Fixture::new(meta(0o755).xattr("user.root", b"top"));

    f.dir("bin", meta(0o755));
    f.file("bin/busybox", meta(0o755), bytes(1, 150_000, true));
    f.symlink(
        "bin/sh",
        "busybox",
        meta(0o777).xattr("trusted.sym", b"on a symlink"),
    );

    f.dir("etc", meta(0o755).xattr("trusted.overlay.opaque", b"y"));
    f.file(
        "etc/passwd",
        meta(0o644).time(T0 + 1).xattr("user.comment", b"hello"),
        "root:x:0:0:root:/root:/bin/sh\n",
    );
    f.file("etc/empty", meta(0o600).time(0), "");

    // setuid, setgid, sticky, all three without rwx, and a file capability.
    f.dir("usr", meta(0o755));
    f.dir("usr/bin", meta(0o755));
    f.file("usr/bin/su", meta(0o4755), bytes(2, 5000, true));
    f.file(
        "usr/bin/wall",
        meta(0o2755).owner(0, 5),
        bytes(3, 3000, true),
    );
    f.file(
        "usr/bin/ping",
        meta(0o755).xattr("security.capability", &cap_net_raw),
        bytes(4, 7000, true),
    );
    f.file("usr/bin/odd", meta(0o7000), "special bits only\n");
    f.dir("tmp", meta(0o1777));

    // ids above 65535 (squashfs keeps 32-bit ids in its id table) and the time after 2038.
    f.dir("home", meta(0o755));
    f.dir("home/big", meta(0o700).owner(100_000, 100_000));
    f.file(
        "home/big/file",
        meta(0o640).owner(65_536, 65_537),
        "big ids\n",
    );
    f.file(
        "home/big/max",
        meta(0o644)
            .owner(4_294_967_294, 4_294_967_294)
            .time(4_000_000_000),
        "max ids\n",
    );

    f.dir("dev", meta(0o755));
    let dev = |major, minor| EntryKind::CharDevice { major, minor };
    f.node("dev/null", dev(1, 3), meta(0o666));
    f.node(
        "dev/sda",
        EntryKind::BlockDevice { major: 8, minor: 0 },
        meta(0o660).owner(0, 6),
    );
    // The widest numbers Linux has (12-bit major, 20-bit minor): new_encode_dev's high bits.
    f.node("dev/wide", dev(4095, 1_048_575), meta(0o600));
    f.dir("run", meta(0o755));
    f.node("run/fifo", EntryKind::Fifo, meta(0o644));
    f.hardlink("run/fifo-link", "run/fifo");
    f.node("run/sock", EntryKind::Socket, meta(0o755));

    // Hard links: a file with three names (xattrs shared), a symlink with two.
    f.dir("links", meta(0o755));
    f.file(
        "links/a",
        meta(0o644).xattr("user.shared", b"one inode"),
        bytes(5, 140_000, false),
    );
    f.hardlink("links/b", "links/a");
    f.hardlink("links/c", "links/a");
    f.symlink("links/s", "a", meta(0o777));
    f.hardlink("links/s2", "links/s");
    f.symlink("links/abs", "/etc/passwd", meta(0o777));
    f.symlink("links/dangling", "../nowhere/at/all", meta(0o777));
    f.symlink("links/dot", ".", meta(0o777));
    f.symlink("links/long", "x/".repeat(1999) + "xy", meta(0o777));

    // 255-byte names (NAME_MAX), nested, and names whose byte order matters to lookups.
    f.dir("long", meta(0o755));
    f.file(format!("long/{long}"), meta(0o644), "long name\n");
    f.dir(format!("long/{}", "d".repeat(255)), meta(0o755));
    f.file(
        format!("long/{}/{long}", "d".repeat(255)),
        meta(0o644),
        "deep\n",
    );
    f.dir("names", meta(0o755));
    for name in ["a", "A", "a.b", "a-b", "ab", "with space", "ünïcödé", "z"] {
        f.file(format!("names/{name}"), meta(0o644), name);
    }
    f.file(&b"names/caf\xe9"[..], meta(0o644), "latin-1 name\n");

    // Data: multi-block with a tail, exact block multiple, incompressible (raw blocks), zeros
    // (hole blocks), zeros with a tail, duplicates (dedup, distinct inodes), many tiny files
    // (fragment packing), xattrs with an empty and a large shared value.
    let bs = 128 * 1024;
    f.dir("data", meta(0o755).time(T0 + 2));
    f.file("data/multi", meta(0o644), bytes(6, 300_000, true));
    f.file("data/exact", meta(0o644), bytes(7, 2 * bs, true));
    f.file("data/random", meta(0o644), bytes(8, 200_000, false));
    f.file("data/zeros", meta(0o644), vec![0u8; 3 * bs]);
    let mut zt = vec![0u8; bs];
    zt.extend_from_slice(b"tail!");
    f.file("data/zeros-tail", meta(0o644), zt);
    f.file("data/dup1", meta(0o644), bytes(9, 140_000, true));
    f.file("data/dup2", meta(0o600), bytes(9, 140_000, true));
    let big_value = bytes(10, 3000, false);
    for i in 0..20u64 {
        let mut m = meta(0o644);
        match i {
            0 => m = m.xattr("user.empty", b""),
            1 | 2 => m = m.xattr("user.big", &big_value),
            _ => {}
        }
        f.file(
            format!("data/tiny{i:02}"),
            m,
            bytes(100 + i, 10 + 37 * i as usize, true),
        );
    }
    f
}

/// `base` plus a file that looks like x86 code to the BCJ filter: calls (`E8 rel32`) to a few
/// functions, whose relative offsets differ at every call site but become equal once the filter
/// turns them absolute (xz shrinks a block of it some 40 times more with the filter).
fn with_x86_code(base: &Fixture) -> Fixture {
    let mut f = base.clone();
    let mut code = Vec::new();
    for call in 0u32.. {
        if code.len() >= 200_000 {
            break;
        }
        code.extend_from_slice(&[0x48, 0x89, 0xc7]); // mov rdi, rax
        let next = code.len() as i64 + 5;
        let target = 0x1000 + i64::from(call * 7 % 16) * 0x400;
        code.push(0xe8);
        code.extend_from_slice(&((target - next) as i32).to_le_bytes());
    }
    f.file("bin/x86", meta(0o755), code);
    f
}

/// One directory of 10,000 entries: many directory headers, metadata block crossings and index
/// entries; the guest's `stat` of every name exercises the kernel's indexed lookup.
fn big_dir() -> Fixture {
    let mut f = Fixture::new(meta(0o755));
    f.dir("many", meta(0o755));
    for i in 0..10_000usize {
        // Names of varying length move the header and metablock boundaries around. Every tenth
        // file has content (fragment lookups); the rest are empty because each hashed file costs
        // a console line, and the serial console is the slowest part of the guest.
        let name = format!("many/entry-{i:05}-{}", "x".repeat(i % 16));
        match i % 1000 {
            0 => f.dir(name, meta(0o755)),
            1 => f.symlink(name, format!("entry-{:05}", i - 1), meta(0o777)),
            _ if i % 10 == 5 => f.file(name, meta(0o644), bytes(i as u64, 1 + i % 97, true)),
            _ => f.file(name, meta(0o644), ""),
        }
    }
    f
}

/// A 5 GiB file (size and offsets past 2³²) with data islands, some straddling block, 2 GiB and
/// 4 GiB boundaries; a small sparse file hashed whole; and a file of zeros with an empty map.
fn sparse_tree() -> Fixture {
    let mut f = Fixture::new(meta(0o755));
    f.dir("sparse", meta(0o755));
    f.sparse("sparse/huge", meta(0o644), HUGE_SIZE, huge_islands());
    f.sparse(
        "sparse/small",
        meta(0o644),
        1 << 20,
        vec![(0, bytes(20, 100, true)), (700_000, bytes(21, 5000, false))],
    );
    f.sparse("sparse/allzero", meta(0o644), 10 << 20, Vec::new());
    f
}

const HUGE_SIZE: u64 = 5 * GIB + 12_345;

fn huge_islands() -> Vec<(u64, Vec<u8>)> {
    vec![
        (0, bytes(30, 1000, true)),
        (3 * 128 * KIB + 100, bytes(31, 300_000, false)),
        (2 * GIB - 10, bytes(32, 20, true)),
        (4 * GIB - 5000, bytes(33, 10_000, false)),
        (HUGE_SIZE - 5000, bytes(34, 5000, true)),
    ]
}

/// The windows the guest hashes of `sparse/huge`: each island with a page of context either
/// side, the first and last 64 KiB, and a pure hole at 3 GiB.
fn sparse_windows() -> Vec<Window> {
    let page = 4 * KIB;
    let mut ranges = vec![
        (0, 64 * KIB),
        ((HUGE_SIZE - 64 * KIB) / page * page, 68 * KIB),
    ];
    ranges.push((3 * GIB, 128 * KIB));
    for (at, b) in huge_islands() {
        let lo = (at / page * page).saturating_sub(page);
        let hi = (at + b.len() as u64).div_ceil(page) * page + page;
        ranges.push((lo, hi - lo));
    }
    ranges
        .into_iter()
        .map(|(offset, len)| Window {
            path: "sparse/huge".into(),
            offset,
            len,
        })
        .collect()
}

/// The most bytes `sparse/huge` may count as allocated: every block an island touches, plus one
/// block for a tail stored in a fragment.
fn sparse_allocation_bound(block: u64) -> u64 {
    let mut touched = std::collections::BTreeSet::new();
    for (at, b) in huge_islands() {
        touched.extend(at / block..=(at + b.len() as u64 - 1) / block);
    }
    (touched.len() as u64 + 1) * block
}

// ---------------------------------------------------------------------------------------------
// The harness's own parts, checked without QEMU so that a broken parser cannot pass silently.

/// What the guest prints for two disks: `good` lists a small tree correctly; `bad` holds one
/// instance of every problem the parser must report. Sections travel as `gzip | base64`, in
/// 76-column lines with CR LF as the console writes them.
fn console() -> Vec<u8> {
    let mut out = b"\x1b[2Jjunk==== ocirender-kernel-harness start 6.1.0-test\r\n".to_vec();
    out.extend_from_slice(b"K boot noise outside any section\r\n");
    for (label, plain) in [("good", GOOD), ("bad", BAD)] {
        out.extend_from_slice(format!("==== begin {label}\r\n").as_bytes());
        let encoded = crate::support::kernel::encode_section(plain);
        for line in encoded.as_bytes().chunks(76) {
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("==== end {label}\r\n").as_bytes());
    }
    out.extend_from_slice(b"==== ocirender-kernel-harness done\r\n");
    out
}

const GOOD: &[u8] = b"U 1.00
S 1|41ed|0|0|3|100|3|0|0|0|.
S 2|81a4|1000|1000|5|200|2|0|0|8|./a
S 2|81a4|1000|1000|5|200|2|0|0|8|./b
S 3|a1ff|0|0|1|300|1|0|0|0|./l
S 4|21b6|0|0|0|400|1|1|3|0|./null
S 5|8fff|0|0|0|0|1|0|0|0|./caf\xe9
S 6|43ff|0|0|3|0|2|0|0|0|./d
S 7|81a4|0|0|10485760|0|1|0|0|16|./big
H 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./a
H 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./b
H 2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824  ./big
W aaaa|0|1|big
W bbbb|2|3|big
L ./l
T a
X # file: .
X user.root=0x746f70
X 
X # file: caf\\351
X trusted.empty=\"\"
X security.capability=0x0100
X 
E getfattr: ./l: Operation not supported
K [    1.0] random: crng init done
U 2.50
";

const BAD: &[u8] = b"S 1|41ed|0|0|3|0|2|0|0|0|.
S 2|41ed|0|0|3|0|3|0|0|0|./sub
S 3|41ed|0|0|3|0|2|0|0|0|./sub/deeper
S 4|81a4|0|0|1|0|3|0|0|0|./x
S 4|81a4|0|0|1|0|3|0|0|0|./y
S 5|81a4|0|0|1|0|1|0|0|0|./p
S 5|81a4|0|0|1|0|1|0|0|0|./q
H 0000  ./x
H 0000  ./y
H 0000  ./p
E sha256sum: ./q: Input/output error
K [    2.0] SQUASHFS error: Unable to read fragment cache entry [1234]
M failed: mount: mounting /dev/vdb on /mnt/bad failed: Invalid argument
Q what is this
";

fn console_disks() -> Vec<Disk> {
    let disk = |label: &str| Disk {
        label: label.into(),
        image: "unused".into(),
        windows: Vec::new(),
        verity: None,
    };
    let mut good = disk("good");
    for (offset, len) in [(0, 4096), (8192, 12288)] {
        good.windows.push(Window {
            path: "big".into(),
            offset,
            len,
        });
    }
    vec![good, disk("bad")]
}

#[test]
fn console_listing_becomes_a_tree() {
    let listings =
        crate::support::kernel::parse_console(&console(), &console_disks(), true).unwrap();
    let good = &listings[0];
    assert_eq!(good.problems, Vec::<String>::new());
    let windows = windowed_sha256([(0, 4096, "aaaa".into()), (8192, 12288, "bbbb".into())]);
    let hello = "2cf24dba5fb0a30e";
    let expected = format!(
        "/ dir 0755 0:0 t=100 xattr=user.root:746f70
/a file 0644 1000:1000 t=200 size=5 sha256={hello} link=/a
/b file 0644 1000:1000 t=200 size=5 sha256={hello} link=/a
/big file 0644 0:0 t=0 size=10485760 sha256={}
/caf\\xe9 file 7777 0:0 t=0 size=0 sha256=e3b0c44298fc1c14 xattr=security.capability:0100 xattr=trusted.empty:
/d dir 1777 0:0 t=0
/l symlink 0777 0:0 t=300 -> a
/null chardev 0666 0:0 t=400 dev=1,3
",
        &windows[..16]
    );
    assert_eq!(good.tree.dump(DumpOptions::default()), expected);
    assert_eq!(good.stats[&b"a"[..]].blocks, 8);
    assert!((good.guest_seconds - 1.5).abs() < 1e-9);
    assert_eq!(good.kernel_log, ["[    1.0] random: crng init done"]);

    let bad = &listings[1];
    let expect = [
        "E sha256sum: ./q: Input/output error",
        "kernel: [    2.0] SQUASHFS error: Unable to read fragment cache entry [1234]",
        "M failed: mount: mounting /dev/vdb on /mnt/bad failed: Invalid argument",
        "unparsed line \"Q what is this\"",
        "q: no content hash",
        "directory / has nlink 2, below 2 + subdirectories = 3",
        "inode 4 has nlink 3 but 2 paths: [\"x\", \"y\"]",
        "inode 5 is shared by [\"p\", \"q\"] without being a hard link",
    ];
    for e in expect {
        assert!(
            bad.problems.iter().any(|p| p.starts_with(e)),
            "missing problem {e:?} in {:#?}",
            bad.problems
        );
    }
    assert_eq!(bad.problems.len(), expect.len(), "{:#?}", bad.problems);
}

#[test]
fn console_without_a_finished_guest_is_an_error() {
    let disks = console_disks();
    let parse = |text: &[u8]| crate::support::kernel::parse_console(text, &disks, true);
    let edit = |from: &str, to: &str| {
        let text = String::from_utf8_lossy(&console()).replace(from, to);
        text.into_bytes()
    };
    assert!(parse(b"SeaBIOS\nKernel panic - not syncing\n")
        .unwrap_err()
        .contains("never ran /init"));
    let cut = edit("==== ocirender-kernel-harness done", "");
    assert!(parse(&cut).unwrap_err().contains("stopped before"));
    let insmod = edit(
        "K boot noise",
        "E insmod: can't insert 'squashfs.ko': invalid module format",
    );
    assert!(parse(&insmod).unwrap_err().contains("guest setup failed"));
    let garbled = edit("==== end good", "@@@@\r\n==== end good");
    assert!(parse(&garbled)
        .unwrap_err()
        .contains("listing of disk good is not gzip | base64"));
    let missing = edit("==== begin bad", "==== begin other");
    assert!(parse(&missing)
        .unwrap_err()
        .contains("no listing for disk bad"));
}

#[test]
fn modules_load_dependencies_first_and_decompressed() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("modules.dep"),
        "kernel/fs/squashfs/squashfs.ko.xz: kernel/lib/zstd/zstd_decompress.ko.zst kernel/lib/zstd/zstd_common.ko.gz\n\
         kernel/lib/zstd/zstd_decompress.ko.zst: kernel/lib/zstd/zstd_common.ko.gz\n\
         kernel/lib/zstd/zstd_common.ko.gz:\n\
         kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko\n\
         kernel/drivers/virtio/virtio.ko:\n",
    )
    .unwrap();
    std::fs::write(
        root.join("modules.builtin"),
        "kernel/drivers/virtio/virtio_pci.ko\n",
    )
    .unwrap();
    let order =
        crate::support::kernel::module_load_order(root, &["virtio_pci", "virtio_blk", "squashfs"])
            .unwrap();
    assert_eq!(
        order,
        [
            "kernel/drivers/virtio/virtio.ko",
            "kernel/drivers/block/virtio_blk.ko",
            "kernel/lib/zstd/zstd_common.ko.gz",
            "kernel/lib/zstd/zstd_decompress.ko.zst",
            "kernel/fs/squashfs/squashfs.ko.xz",
        ]
    );
    let missing = crate::support::kernel::module_load_order(root, &["loop"]).unwrap_err();
    assert!(missing.contains("loop"), "{missing}");

    let elf = b"\x7fELF module bytes".repeat(100);
    let xz = {
        let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
        e.write_all(&elf).unwrap();
        e.finish().unwrap()
    };
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&elf).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::stream::encode_all(&elf[..], 3).unwrap();
    for (name, bytes) in [
        ("m.ko", elf.clone()),
        ("m.ko.xz", xz),
        ("m.ko.gz", gz),
        ("m.ko.zst", zst),
    ] {
        let path = root.join(name);
        std::fs::write(&path, bytes).unwrap();
        assert_eq!(crate::support::kernel::read_module(&path), elf, "{name}");
    }
}
