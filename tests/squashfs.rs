//! The squashfs writer against independent readers.
//!
//! Every image is built by driving `SquashfsSink` directly with `Entry` values, then read back
//! by `unsquashfs` (extracting as root), by the `backhand` crate, by the Linux kernel where this
//! machine can loop-mount (skipped with a notice elsewhere), by ocirender's own
//! `SquashfsReader`, and by the structural checker in `support::oracle` (every
//! table-placement, inode and directory rule of SQUASHFS.md). Each reader's tree must equal
//! the model's (`oracle::expected_tree`), as a canonical dump.

use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::support::dump::{DumpOptions, Kind, Node, Tree};
use crate::support::oracle::{self, Structure};
use ocirender::squashfs::SquashfsSink;
use ocirender::{
    Algorithm, BlockSize, Compression, Entry, EntryKind, EntryPath, Error, Jobs, Metadata, Sink,
    SquashfsOptions, Summary, WarningKind, Xattr, XzFilter,
};

type Input = (Entry, Vec<u8>);

fn meta(mode: u32) -> Metadata {
    Metadata {
        mode,
        mtime: 1_700_000_000,
        ..Metadata::default()
    }
}

fn path(p: &str) -> EntryPath {
    EntryPath::new(p.as_bytes()).unwrap()
}

fn entry(p: &str, kind: EntryKind, meta: Metadata) -> Entry {
    Entry {
        path: path(p),
        kind,
        meta,
    }
}

fn file(p: &str, content: &[u8]) -> Input {
    let kind = EntryKind::File {
        size: content.len() as u64,
        sparse: None,
    };
    (entry(p, kind, meta(0o644)), content.to_vec())
}

fn dir(p: &str, mode: u32) -> Input {
    (entry(p, EntryKind::Dir, meta(mode)), Vec::new())
}

fn symlink(p: &str, target: &[u8]) -> Input {
    let kind = EntryKind::Symlink {
        target: target.to_vec(),
    };
    (entry(p, kind, meta(0o777)), Vec::new())
}

fn hardlink(p: &str, target: &str) -> Input {
    let kind = EntryKind::Hardlink {
        target: path(target),
    };
    (entry(p, kind, meta(0)), Vec::new())
}

fn with(mut input: Input, f: impl FnOnce(&mut Metadata)) -> Input {
    f(&mut input.0.meta);
    input
}

/// Deterministic bytes: compressible text with some noise, different per `seed`.
fn content(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i % 7 == 0 {
                x as u8
            } else {
                b"squashfs-data "[i % 14]
            }
        })
        .collect()
}

/// Incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Built {
    _dir: tempfile::TempDir,
    path: PathBuf,
    summary: Summary,
}

fn options(f: impl FnOnce(&mut SquashfsOptions)) -> SquashfsOptions {
    let mut o = SquashfsOptions::default();
    f(&mut o);
    o
}

fn build_with(inputs: &[Input], opts: &SquashfsOptions, jobs: usize) -> Built {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("image.sqfs");
    let mut sink: Box<dyn Sink> =
        Box::new(SquashfsSink::create(&img, opts, Jobs::new(jobs).unwrap(), None).unwrap());
    for (e, data) in inputs {
        sink.entry(e, &mut Cursor::new(data)).unwrap();
    }
    let summary = sink.finish().unwrap();
    assert_eq!(summary.output_bytes, std::fs::metadata(&img).unwrap().len());
    Built {
        _dir: dir,
        path: img,
        summary,
    }
}

fn build(inputs: &[Input]) -> Built {
    build_with(inputs, &SquashfsOptions::default(), 2)
}

/// Compares two dumps and shows the first differing lines.
fn assert_dump(got: &Tree, want: &Tree, opts: DumpOptions, reader: &str) {
    let (g, w) = (got.dump(opts), want.dump(opts));
    if g != w {
        let gl: Vec<&str> = g.lines().collect();
        let wl: Vec<&str> = w.lines().collect();
        let mut diff = String::new();
        for l in wl.iter().filter(|l| !gl.contains(l)).take(10) {
            diff.push_str(&format!("- {l}\n"));
        }
        for l in gl.iter().filter(|l| !wl.contains(l)).take(10) {
            diff.push_str(&format!("+ {l}\n"));
        }
        panic!(
            "{reader} read a different tree ({} vs {} entries):\n{diff}",
            gl.len(),
            wl.len()
        );
    }
}

/// Reads `img` with every oracle and compares each with the model of `inputs`.
fn verify(img: &Built, inputs: &[Input]) -> Structure {
    let expected = oracle::expected_tree(inputs);
    verify_tree(&img.path, &expected)
}

fn verify_tree(img: &Path, expected: &Tree) -> Structure {
    verify_tree_with(img, expected, Oracles::ALL)
}

/// Which readers [`verify_tree_with`] runs besides unsquashfs and the structural checker.
#[derive(Clone, Copy)]
struct Oracles {
    /// backhand refuses symlink targets of 256 bytes or more (see
    /// [`oracle::BACKHAND_MAX_SYMLINK`]).
    backhand: bool,
    /// A full dump through a kernel mount; the biggest images check the kernel with
    /// targeted lookups and reads instead, to keep the test time reasonable.
    kernel_tree: bool,
}

impl Oracles {
    const ALL: Oracles = Oracles {
        backhand: true,
        kernel_tree: true,
    };
}

fn verify_tree_with(img: &Path, expected: &Tree, with: Oracles) -> Structure {
    let full = DumpOptions::default();
    let structure = oracle::check_structure(img);
    assert_dump(&oracle::reader(img), expected, full, "ocirender's reader");
    assert_dump(&oracle::unsquashfs(img), expected, full, "unsquashfs");
    let blind = DumpOptions {
        xattrs: false,
        ..full
    };
    if with.backhand {
        assert_dump(
            &oracle::backhand(img),
            &oracle::without_links_and_xattrs(expected),
            blind,
            "backhand",
        );
    }
    if !with.kernel_tree {
        return structure;
    }
    if let Some(k) = oracle::kernel(img) {
        assert_dump(&k, expected, full, "the kernel");
    }
    structure
}

#[test]
fn every_inode_type_mode_and_owner_round_trips() {
    let inputs = vec![
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        file("empty", b""),
        dir("etc", 0o755),
        symlink("bin/sh", b"dash"),
        symlink("long-link", &[b'l'; 255]),
        (
            entry(
                "dev/null",
                EntryKind::CharDevice { major: 1, minor: 3 },
                meta(0o666),
            ),
            vec![],
        ),
        (
            entry(
                "dev/sda1",
                EntryKind::BlockDevice { major: 8, minor: 1 },
                meta(0o660),
            ),
            vec![],
        ),
        (
            entry(
                "dev/big",
                EntryKind::BlockDevice {
                    major: 259,
                    minor: 70000,
                },
                meta(0o600),
            ),
            vec![],
        ),
        (entry("run/fifo", EntryKind::Fifo, meta(0o644)), vec![]),
        (entry("run/sock", EntryKind::Socket, meta(0o755)), vec![]),
        with(file("usr/bin/su", b"#!suid"), |m| m.mode = 0o4755),
        with(file("usr/bin/wall", b"#!sgid"), |m| m.mode = 0o2755),
        with(dir("tmp", 0), |m| m.mode = 0o1777),
        with(file("owners/big-uid", b"1"), |m| {
            m.uid = 70000;
            m.gid = 65536;
        }),
        with(file("owners/huge-uid", b"2"), |m| {
            m.uid = (1 << 31) + 5;
            m.gid = u32::MAX - 1;
        }),
        with(file("times/zero", b"3"), |m| m.mtime = 0),
        with(file("times/max", b"4"), |m| m.mtime = i64::from(u32::MAX)),
        with(file("times/negative", b"5"), |m| m.mtime = -5),
        with(file("times/beyond", b"6"), |m| m.mtime = 1 << 40),
        with(dir("", 0o700), |m| m.mtime = 1234),
    ];
    let img = build(&inputs);
    let s = verify(&img, &inputs);
    assert_eq!(s.layout.ids.len(), 5, "ids 0, 70000, 65536, 2^31+5, 2^32-2");
    assert_eq!(
        img.summary.entries, 27,
        "20 entries + 7 implicit parents incl. the root"
    );
}

#[test]
fn a_symlink_target_of_4000_bytes() {
    let long_target: Vec<u8> = (0..4000).map(|i| b'a' + (i % 26) as u8).collect();
    // 4095 is the longest target symlink(2) accepts, so the longest unsquashfs can restore;
    // the writer takes up to 4096 (the kernel's limit, tested below).
    let inputs = vec![symlink("long", &long_target), symlink("max", &[b'm'; 4095])];
    let img = build(&inputs);
    let oracles = Oracles {
        backhand: false,
        ..Oracles::ALL
    };
    let s = verify_tree_with(&img.path, &oracle::expected_tree(&inputs), oracles);
    let sizes: Vec<u64> = s
        .inodes
        .values()
        .filter(|i| i.itype == 3)
        .map(|i| i.size)
        .collect();
    assert_eq!(sizes.len(), 2);
    assert!(sizes.contains(&4000) && sizes.contains(&4095));
}

/// Builds a mixed tree with `opts` and checks it with every oracle; returns the structure.
fn check_compressor(opts: &SquashfsOptions) -> (Built, Structure) {
    let bs = opts.block_size.get() as usize;
    let inputs = vec![
        file("text", &content(3 * bs + 100, 1)),
        file("noise", &noise(2 * bs + 7, 2)),
        file("small", b"hello"),
        file("code/x86", &x86_like(bs + 500)),
        file("zeros", &vec![0; 2 * bs]),
    ];
    let img = build_with(&inputs, opts, 2);
    let s = verify(&img, &inputs);
    (img, s)
}

/// Bytes that look like x86 code (calls with relative targets) so the BCJ filter matters.
fn x86_like(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u32;
    while v.len() < len {
        v.extend_from_slice(&[0xe8]);
        v.extend_from_slice(&(0x1000u32.wrapping_sub(v.len() as u32)).to_le_bytes());
        v.extend_from_slice(&[0x48, 0x89, 0xc7, 0x90 + (i % 3) as u8]);
        i += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn each_compressor_writes_readable_images_with_the_right_options_block() {
    struct Case {
        spec: &'static str,
        filters: Vec<XzFilter>,
        id: u16,
        options: Option<Vec<u8>>,
        stat: &'static str,
    }
    let cases = [
        Case {
            spec: "gzip",
            filters: vec![],
            id: 1,
            options: None,
            stat: "Compression gzip",
        },
        Case {
            spec: "gzip:1",
            filters: vec![],
            id: 1,
            options: Some(
                [
                    1u32.to_le_bytes().as_slice(),
                    &15u16.to_le_bytes(),
                    &0u16.to_le_bytes(),
                ]
                .concat(),
            ),
            stat: "Compression gzip",
        },
        Case {
            spec: "zstd",
            filters: vec![],
            id: 6,
            options: Some(3u32.to_le_bytes().to_vec()),
            stat: "Compression zstd",
        },
        Case {
            spec: "zstd:15",
            filters: vec![],
            id: 6,
            options: None,
            stat: "Compression zstd",
        },
        Case {
            spec: "xz",
            filters: vec![],
            id: 4,
            options: None,
            stat: "Compression xz",
        },
        Case {
            spec: "xz",
            filters: vec![XzFilter::X86],
            id: 4,
            options: Some([131072u32.to_le_bytes(), 1u32.to_le_bytes()].concat()),
            stat: "Filters selected: x86",
        },
        Case {
            spec: "lz4",
            filters: vec![],
            id: 5,
            options: Some([1u32.to_le_bytes(), 0u32.to_le_bytes()].concat()),
            stat: "Compression lz4",
        },
        Case {
            spec: "lz4:9",
            filters: vec![],
            id: 5,
            options: Some([1u32.to_le_bytes(), 1u32.to_le_bytes()].concat()),
            stat: "High Compression option specified",
        },
        Case {
            spec: "none",
            filters: vec![],
            id: 1,
            options: None,
            stat: "Data is uncompressed",
        },
    ];
    for case in cases {
        let opts = options(|o| {
            o.compression = case.spec.parse().unwrap();
            o.xz_filters = case.filters.clone();
        });
        let (img, s) = check_compressor(&opts);
        let what = format!("{} {:?}", case.spec, case.filters);
        assert_eq!(s.layout.compression, case.id, "{what}");
        assert_eq!(s.layout.options, case.options, "{what}");
        assert_eq!(
            s.layout.flags & 0x400 != 0,
            case.options.is_some(),
            "{what}: COMP_OPT flag"
        );
        let stat = oracle::unsquashfs_stat(&img.path);
        assert!(
            stat.contains(case.stat),
            "{what}: unsquashfs -s says\n{stat}"
        );
        let none_flags = 0x1 | 0x2 | 0x8 | 0x100;
        if case.spec == "none" {
            assert_eq!(s.layout.flags & none_flags, none_flags, "NOI|NOD|NOF|NOX");
            assert_eq!(s.layout.flags & 0x800, 0, "ids flag as mksquashfs -noI");
            for i in s.inodes.values() {
                for &w in &i.blocks {
                    assert!(w == 0 || w & (1 << 24) != 0, "every data block stored raw");
                }
            }
        } else {
            assert_eq!(s.layout.flags & none_flags, 0, "{what}");
            let compressed = s
                .inodes
                .values()
                .flat_map(|i| &i.blocks)
                .filter(|&&w| w != 0 && w & (1 << 24) == 0)
                .count();
            assert!(compressed > 0, "{what}: some data blocks compressed");
            let raw = s
                .inodes
                .values()
                .flat_map(|i| &i.blocks)
                .filter(|&&w| w & (1 << 24) != 0)
                .count();
            assert!(raw > 0, "{what}: incompressible blocks stored raw");
        }
    }
}

#[test]
fn small_blocks_with_every_compressor() {
    // 4 KiB blocks: xz's dictionary is then 4 KiB (below the 8 KiB metadata blocks), lz4 and
    // zstd frames are at most 4 KiB; the kernel must read all of them.
    for spec in ["xz", "lz4:9", "zstd:19", "gzip:1"] {
        let opts = options(|o| {
            o.compression = spec.parse().unwrap();
            o.block_size = BlockSize::new(4096).unwrap();
        });
        let (_, s) = check_compressor(&opts);
        assert_eq!(s.layout.block_size, 4096, "{spec}");
    }
}

#[test]
fn zstd_frames_fit_the_kernel_window() {
    // The frame header's window must not exceed max(block size, 8 KiB).
    for (bs, level) in [(4096u32, 19u32), (131072, 22)] {
        let opts = options(|o| {
            o.block_size = BlockSize::new(bs).unwrap();
            o.compression = Compression::new(Algorithm::Zstd, Some(level)).unwrap();
        });
        let data = content(3 * bs as usize, 9);
        let img = build_with(&[file("f", &data)], &opts, 1);
        let s = oracle::check_structure(&img.path);
        let raw = std::fs::read(&img.path).unwrap();
        let f = s.inodes.values().find(|i| i.itype == 2).unwrap();
        let mut at = f.blocks_start as usize;
        for &w in &f.blocks {
            let len = (w & 0xffffff) as usize;
            if w & (1 << 24) == 0 {
                let frame = &raw[at..at + len];
                let window = zstd_window(frame);
                assert!(
                    window <= u64::from(bs.max(8192)),
                    "window {window} > block size {bs}"
                );
            }
            at += len;
        }
    }
}

/// The window size a zstd frame header declares.
fn zstd_window(frame: &[u8]) -> u64 {
    assert_eq!(&frame[..4], &[0x28, 0xb5, 0x2f, 0xfd]);
    let fhd = frame[4];
    let single = fhd & 0x20 != 0;
    let fcs_flag = fhd >> 6;
    let did = [0usize, 1, 2, 4][(fhd & 3) as usize];
    if single {
        let at = 5 + did;
        let n = [1usize, 2, 4, 8][fcs_flag as usize];
        let mut b = [0u8; 8];
        b[..n].copy_from_slice(&frame[at..at + n]);
        let v = u64::from_le_bytes(b);
        if n == 2 {
            v + 256
        } else {
            v
        }
    } else {
        let wd = frame[5];
        let exp = u64::from(wd >> 3) + 10;
        let base = 1u64 << exp;
        base + base / 8 * u64::from(wd & 7)
    }
}

#[test]
fn files_around_block_boundaries_for_4k_and_1m_blocks() {
    for bs in [4096usize, 1 << 20] {
        let counts: &[usize] = if bs == 4096 { &[1, 2, 5] } else { &[1, 2, 3] };
        let mut inputs = vec![file("empty", b""), file("one", b"x")];
        let mut seed = 10;
        for &n in counts {
            for (tag, len) in [
                ("minus", n * bs - 1),
                ("exact", n * bs),
                ("plus", n * bs + 1),
            ] {
                seed += 1;
                inputs.push(file(&format!("{n}/{tag}"), &content(len, seed)));
            }
        }
        // A copy of an earlier file and a file equal to it but for the last byte.
        let copy = inputs[3].1.clone();
        let mut near = copy.clone();
        *near.last_mut().unwrap() ^= 1;
        inputs.push(file("dups/copy", &copy));
        inputs.push(file("dups/near", &near));
        for fragments in [true, false] {
            for dedup in [true, false] {
                let opts = options(|o| {
                    o.block_size = BlockSize::new(bs as u32).unwrap();
                    o.fragments = fragments;
                    o.dedup = dedup;
                    o.compression = "zstd:1".parse().unwrap();
                });
                let img = build_with(&inputs, &opts, 2);
                let s = verify(&img, &inputs);
                let what = format!("bs {bs} fragments {fragments} dedup {dedup}");
                assert_eq!(
                    s.layout.flags & 0x10 != 0,
                    !fragments,
                    "{what}: NO_FRAG flag"
                );
                assert_eq!(s.layout.flags & 0x40 != 0, dedup, "{what}: DUPLICATES flag");
                for i in s.inodes.values().filter(|i| i.itype == 2 || i.itype == 9) {
                    let full = i.size / bs as u64;
                    let tail = i.size % bs as u64;
                    if fragments {
                        assert_eq!(i.blocks.len() as u64, full, "{what}: floor(size/bs) blocks");
                        assert_eq!(
                            i.fragment != u32::MAX,
                            tail != 0,
                            "{what}: fragment iff tail"
                        );
                    } else {
                        assert_eq!(i.blocks.len() as u64, i.size.div_ceil(bs as u64), "{what}");
                        assert_eq!(i.fragment, u32::MAX, "{what}");
                    }
                    if !i.blocks.is_empty() {
                        assert!(i.blocks_start >= 96, "{what}: blocks_start set");
                    }
                }
                if !fragments {
                    assert_eq!(s.layout.frag_count, 0);
                }
            }
        }
    }
}

#[test]
fn duplicate_tails_find_first_copies_in_blocks_long_written() {
    // Tails of 300 KiB in 1 MiB blocks, three to a fragment block: 36 first copies fill 12
    // blocks, and the duplicates come in a scrambled order, twice over, so first copies are
    // compared long after their blocks were handed to the compressors (from the writer's
    // store of written fragment blocks, in any order and more than once).
    let bs = 1usize << 20;
    let distinct: Vec<Vec<u8>> = (0..36).map(|i| content(300 << 10, 500 + i)).collect();
    let mut inputs: Vec<_> = (distinct.iter().enumerate())
        .map(|(i, c)| file(&format!("first/{i:02}"), c))
        .collect();
    for round in 0..2 {
        for k in 0..36 {
            let i = (k * 7 + round * 5) % 36;
            inputs.push(file(&format!("dup{round}/{k:02}"), &distinct[i]));
        }
    }
    let opts = options(|o| {
        o.block_size = BlockSize::new(bs as u32).unwrap();
        o.compression = "zstd:1".parse().unwrap();
    });
    let img = build_with(&inputs, &opts, 2);
    let s = verify(&img, &inputs);
    assert_eq!(
        s.layout.frag_count, 12,
        "every duplicate shares its first copy's place"
    );
}

/// A reader of a big file that is all zeros except a few islands, generated on the fly.
struct Islands {
    pos: u64,
    size: u64,
}

const GIB: u64 = 1 << 30;
const ISLANDS: [u64; 4] = [0, 3 * GIB + 12345, 4 * GIB, 5 * GIB - 10];

impl Islands {
    fn byte_at(p: u64) -> u8 {
        for &start in &ISLANDS {
            if (start..start + 10).contains(&p) {
                return b'A' + (p - start) as u8;
            }
        }
        0
    }
}

impl Read for Islands {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size - self.pos) as usize;
        buf[..n].fill(0);
        for &start in &ISLANDS {
            for p in start..start + 10 {
                if (self.pos..self.pos + n as u64).contains(&p) {
                    buf[(p - self.pos) as usize] = Self::byte_at(p);
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[test]
fn a_5_gib_sparse_file_is_stored_as_holes_and_reads_back() {
    let size = 5 * GIB;
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("sparse.sqfs");
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &img,
            &SquashfsOptions::default(),
            Jobs::new(2).unwrap(),
            None,
        )
        .unwrap(),
    );
    let e = entry(
        "big/sparse",
        EntryKind::File { size, sparse: None },
        meta(0o644),
    );
    sink.entry(&e, &mut Islands { pos: 0, size }).unwrap();
    let summary = sink.finish().unwrap();
    assert!(
        summary.output_bytes < 1 << 20,
        "holes take no space: {}",
        summary.output_bytes
    );

    // sha256 of the `Islands` content (5 GiB of zeros with the four 10-byte islands),
    // computed once by streaming `Islands` and cross-checked with Python's hashlib; hashing
    // 5 GiB again on every run would double the test's time.
    let sha = "9e4c5260e5cbb0f6b96e3864fd7aff9263cfa839d856eaa17bff7e9b92b9d132".to_owned();
    let mut expected = Tree::default();
    expected.insert("", Node::new(Kind::Dir, 0o755));
    expected.insert("big", Node::new(Kind::Dir, 0o755));
    let mut n = Node::new(Kind::File { size, sha256: sha }, 0o644);
    n.mtime = 1_700_000_000;
    expected.insert("big/sparse", n);
    let oracles = Oracles {
        kernel_tree: false,
        ..Oracles::ALL
    };
    let s = verify_tree_with(&img, &expected, oracles);
    if let Some(m) = oracle::kernel_mount(&img) {
        use std::os::unix::fs::{FileExt, MetadataExt};
        let f = std::fs::File::open(m.path().join("big/sparse")).unwrap();
        let md = f.metadata().unwrap();
        assert_eq!(md.len(), size);
        // i_blocks = (size - sparse + 511) / 512: the four island blocks only.
        assert_eq!(md.blocks(), 4 * 131072 / 512, "the kernel sees the holes");
        for &start in &ISLANDS {
            let mut buf = [0u8; 12];
            let n = f.read_at(&mut buf, start - start.min(1)).unwrap();
            let want: Vec<u8> = (0..n as u64)
                .map(|k| Islands::byte_at(start - start.min(1) + k))
                .collect();
            assert_eq!(&buf[..n], &want[..], "island at {start}");
        }
    }
    let f = s
        .inodes
        .values()
        .find(|i| i.itype == 9)
        .expect("extended file inode");
    let holes = f.blocks.iter().filter(|&&w| w == 0).count();
    assert_eq!(f.blocks.len(), 40960, "5 GiB of 128 KiB blocks");
    assert_eq!(holes, 40960 - 4, "all but the four island blocks are holes");
    assert_eq!(f.sparse, (40960 - 4) * 131072, "sparse = hole bytes");
    assert!(f.size >= 1 << 32, "size needs the extended inode");
}

#[test]
fn files_that_are_all_holes() {
    // Found by the property test: a 1-byte zero file without fragments is one short hole block.
    let inputs = vec![
        file("one-zero", &[0]),
        file("three-blocks", &[0; 3 * 4096]),
        file("tail", &[0; 4096 + 7]),
    ];
    for fragments in [false, true] {
        let opts = options(|o| {
            o.block_size = BlockSize::new(4096).unwrap();
            o.fragments = fragments;
        });
        let img = build_with(&inputs, &opts, 1);
        let s = verify(&img, &inputs);
        for i in s.inodes.values().filter(|i| i.itype == 2 || i.itype == 9) {
            let holes = i.blocks.iter().filter(|&&w| w == 0).count() as u64;
            if holes == i.blocks.len() as u64 && i.fragment == u32::MAX {
                assert_eq!(i.sparse, i.size, "all hole bytes counted: {i:?}");
            }
        }
        if let Some(m) = oracle::kernel_mount(&img.path) {
            use std::os::unix::fs::MetadataExt;
            let md = std::fs::metadata(m.path().join("three-blocks")).unwrap();
            assert_eq!(md.blocks(), 0, "no blocks for a file of holes");
        }
    }
}

#[test]
fn hundred_thousand_entries_in_one_directory() {
    let n = 100_000;
    let mut inputs: Vec<Input> = (0..n)
        .map(|i| file(&format!("d/f{i:06}"), format!("{i}\n").as_bytes()))
        .collect();
    inputs.push(file("d/zzzz-last", b"late\n"));
    inputs.push(file("d/mmmm-middle", b"middle\n"));
    let img = build(&inputs);
    let oracles = Oracles {
        kernel_tree: false,
        ..Oracles::ALL
    };
    let s = verify_tree_with(&img.path, &oracle::expected_tree(&inputs), oracles);
    let (dref, _) = s.dirs.iter().find(|(_, (e, _))| e.len() == n + 2).unwrap();
    let d = &s.inodes[dref];
    let (_, headers) = &s.dirs[dref];
    assert_eq!(d.itype, 8, "a big directory is extended");
    assert!(d.index.len() > 50, "index entries: {}", d.index.len());
    assert!(*headers >= n / 256, "at most 256 entries per header");
    // unsquashfs finds single paths by name.
    let one = oracle::unsquashfs_paths(&img.path, &["d/zzzz-last", "d/f054321"]);
    assert_eq!(one.0.len(), 4, "root, d and the two files");
    assert!(one.0.contains_key(&b"d/zzzz-last"[..]));
    // The kernel looks names up through the directory index.
    if let Some(m) = oracle::kernel_mount(&img.path) {
        for name in ["zzzz-last", "mmmm-middle", "f000000", "f099999", "f031337"] {
            let p = m.path().join("d").join(name);
            assert!(
                std::fs::symlink_metadata(&p).is_ok(),
                "kernel lookup of {name}"
            );
        }
        assert!(std::fs::symlink_metadata(m.path().join("d/f1000000")).is_err());
        assert!(std::fs::symlink_metadata(m.path().join("d/f05000")).is_err());
        assert_eq!(
            std::fs::read(m.path().join("d/zzzz-last")).unwrap(),
            b"late\n"
        );
    }
}

#[test]
fn a_tree_100_directories_deep() {
    let mut p = String::new();
    let mut inputs = Vec::new();
    for i in 0..100 {
        p.push_str(&format!("level{i:02}/"));
        if i % 10 == 0 {
            inputs.push(file(&format!("{p}file"), format!("depth {i}").as_bytes()));
        }
    }
    inputs.push(symlink(&format!("{p}up"), b"../../.."));
    let img = build(&inputs);
    verify(&img, &inputs);
}

#[test]
fn names_of_255_bytes() {
    let name = |c: u8| String::from_utf8(vec![c; 255]).unwrap();
    let (a, b, c) = (name(b'a'), name(b'b'), name(b'c'));
    let inputs = vec![
        file(&format!("{a}/{b}"), b"long"),
        symlink(&format!("{a}/{c}"), b"x"),
        dir(&c, 0o700),
        file("\u{e9}t\u{e9}/\u{fc}ber", b"utf8"),
        (entry("raw", EntryKind::Fifo, meta(0o644)), vec![]),
    ];
    let mut inputs = inputs;
    // Bytes ≥ 0x80 sort after ASCII (unsigned order).
    let e = Entry {
        path: EntryPath::new(b"bytes/\xff\xfe").unwrap(),
        kind: EntryKind::Fifo,
        meta: meta(0o600),
    };
    inputs.push((e, vec![]));
    inputs.push(file("bytes/A", b"a"));
    let img = build(&inputs);
    verify(&img, &inputs);
}

#[test]
fn hard_links_share_one_inode_for_every_type() {
    let inputs = vec![
        file("a/file", b"shared content"),
        hardlink("b/link1", "a/file"),
        hardlink("link2", "a/file"),
        hardlink("link3", "b/link1"),
        symlink("sym", b"target"),
        hardlink("sym-link", "sym"),
        (entry("fifo", EntryKind::Fifo, meta(0o600)), vec![]),
        hardlink("fifo2", "fifo"),
        (
            entry(
                "dev",
                EntryKind::CharDevice {
                    major: 4,
                    minor: 64,
                },
                meta(0o620),
            ),
            vec![],
        ),
        hardlink("dev2", "dev"),
        // A link keeps the content its target had; the target is then replaced.
        file("old", b"before"),
        hardlink("keeps-old", "old"),
        file("old", b"after"),
    ];
    let img = build(&inputs);
    let s = verify(&img, &inputs);
    let nlinks: Vec<(u16, u32)> = s
        .inodes
        .values()
        .filter(|i| i.nlink > 1 && i.itype != 1 && i.itype != 8)
        .map(|i| (i.itype, i.nlink))
        .collect();
    assert!(
        nlinks.contains(&(9, 4)),
        "file with four names, extended: {nlinks:?}"
    );
    assert!(
        nlinks.contains(&(3, 2)),
        "symlink with two names stays basic"
    );
    assert!(nlinks.contains(&(6, 2)) && nlinks.contains(&(5, 2)));
    let mut sizes: Vec<u64> = s
        .inodes
        .values()
        .filter(|i| i.itype == 2)
        .map(|i| i.size)
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        [5, 6],
        "'old' (after) and 'keeps-old' (before) are separate inodes"
    );
    if let Some(m) = oracle::kernel_mount(&img.path) {
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::symlink_metadata(m.path().join("a/file")).unwrap();
        let l = std::fs::symlink_metadata(m.path().join("link3")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (l.ino(), 4));
    }
}

#[test]
fn xattrs_in_every_namespace_and_shared_sets() {
    let cap = vec![
        1u8, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];
    let x = |n: &str, v: &[u8]| Xattr {
        name: n.as_bytes().to_vec(),
        value: v.to_vec(),
    };
    let shared = vec![
        x("security.capability", &cap),
        x("user.mime", b"text/plain"),
    ];
    let inputs = vec![
        with(file("bin/ping", b"ping"), |m| m.xattrs = shared.clone()),
        with(file("bin/ping2", b"ping2"), |m| m.xattrs = shared.clone()),
        with(file("bin/ping3", b"ping3"), |m| m.xattrs = shared.clone()),
        with(file("trusted", b"t"), |m| {
            m.xattrs = vec![x("trusted.overlay.opaque", b"y")]
        }),
        with(dir("bin", 0o755), |m| m.xattrs = vec![x("user.dir", b"")]),
        // Linux allows only trusted.* and security.* on symlinks and special files.
        with(symlink("link", b"bin/ping"), |m| {
            m.xattrs = vec![x("trusted.l", b"1")]
        }),
        with((entry("fifo", EntryKind::Fifo, meta(0o600)), vec![]), |m| {
            m.xattrs = vec![x("trusted.f", &[0, 255, 7])]
        }),
        with(file("acl", b"acl"), |m| {
            m.xattrs = vec![
                x("system.posix_acl_access", b"\x02\0\0\0"),
                x("user.kept", b"k"),
            ]
        }),
        with(file("big-value", b"v"), |m| {
            m.xattrs = vec![x("user.big", &vec![b'v'; 3000])]
        }),
    ];
    let img = build(&inputs);
    let s = verify(&img, &inputs);
    assert_eq!(
        s.layout.xattr_ids, 7,
        "the three identical sets share one id"
    );
    let w = &img.summary.warnings;
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].path, path("acl"));
    assert_eq!(
        w[0].kind,
        WarningKind::XattrNotStorable {
            name: b"system.posix_acl_access".to_vec()
        }
    );
    for i in s.inodes.values() {
        if i.itype == 3 || i.itype == 6 {
            panic!("symlink/fifo with xattrs must be extended: {i:?}");
        }
    }
}

#[test]
fn replaced_paths_implicit_parents_and_late_directories() {
    let inputs = vec![
        file("implicit/child", b"parents made for me"),
        file("late/child", b"dir arrives after"),
        dir("late", 0o700),
        file("twice", b"first"),
        file("twice", b"second"),
        file("gone/deep/file", b"dropped"),
        dir("gone/deep/dir", 0o755),
        file("gone", b"a file replaces the directory and its subtree"),
        file("becomes-dir", b"file first"),
        dir("becomes-dir", 0o711),
        file("becomes-dir/inside", b"ok"),
        with(dir("late", 0o750), |m| m.uid = 7),
        with(dir("", 0o755), |m| m.mtime = 99),
    ];
    let img = build(&inputs);
    verify(&img, &inputs);
}

#[test]
fn the_same_entries_give_the_same_bytes_for_any_thread_count() {
    let mut inputs = Vec::new();
    for i in 0..60 {
        inputs.push(file(
            &format!("d{}/f{i}", i % 7),
            &content(i * 9000 + 1, i as u64),
        ));
    }
    inputs.push(file("dup", &content(60_000, 3)));
    inputs.push(file("zeros", &vec![0; 400_000]));
    for spec in ["zstd", "xz", "gzip:6", "lz4"] {
        let opts = options(|o| o.compression = spec.parse().unwrap());
        let images: Vec<Vec<u8>> = [1, 2, 8]
            .iter()
            .map(|&j| std::fs::read(build_with(&inputs, &opts, j).path).unwrap())
            .collect();
        assert!(
            images[0] == images[1] && images[1] == images[2],
            "{spec}: images differ"
        );
    }
}

#[test]
fn superblock_time_is_the_option_or_the_newest_entry() {
    let inputs = vec![
        with(file("a", b"a"), |m| m.mtime = 500),
        with(file("b", b"b"), |m| m.mtime = 1000),
        with(file("c", b"c"), |m| m.mtime = 700),
    ];
    let img = build(&inputs);
    assert_eq!(oracle::check_layout(&img.path).mtime, 1000);
    let img = build_with(&inputs, &options(|o| o.mtime = Some(42)), 2);
    assert_eq!(oracle::check_layout(&img.path).mtime, 42);
    let img = build(&[]);
    let l = oracle::check_layout(&img.path);
    assert_eq!(
        (l.mtime, l.inode_count),
        (0, 1),
        "an empty image: the root only, time 0"
    );
}

#[test]
fn identical_files_are_stored_once() {
    let data = content(3 * 131072 + 5000, 77);
    let one = build(&[file("a", &data)]);
    let two = build(&[file("a", &data), file("sub/b", &data)]);
    let l1 = oracle::check_layout(&one.path);
    let l2 = oracle::check_layout(&two.path);
    assert!(
        l2.bytes_used < l1.bytes_used + 200,
        "a second copy costs only its inode and entry: {} vs {}",
        l2.bytes_used,
        l1.bytes_used
    );
    let s = verify(&two, &[file("a", &data), file("sub/b", &data)]);
    let files: Vec<_> = s.inodes.values().filter(|i| i.itype == 2).collect();
    assert_eq!(files.len(), 2, "dedup is not a hard link");
    assert_eq!(files[0].blocks_start, files[1].blocks_start);
    assert_eq!(
        (files[0].fragment, files[0].fragment_offset),
        (files[1].fragment, files[1].fragment_offset)
    );
    // Without dedup both copies are stored.
    let nodedup = build_with(
        &[file("a", &data), file("sub/b", &data)],
        &options(|o| o.dedup = false),
        2,
    );
    assert!(oracle::check_layout(&nodedup.path).bytes_used > l1.bytes_used + 10_000);
    // Equal size, equal first blocks, different last block: both kept, both correct.
    let mut other = data.clone();
    other[3 * 131072 - 1] ^= 0x55;
    let inputs = vec![file("a", &data), file("b", &other)];
    let img = build(&inputs);
    verify(&img, &inputs);
    // Tails only: identical small files share one fragment location.
    let inputs = vec![
        file("x", b"same tail"),
        file("y", b"same tail"),
        file("z", b"other"),
    ];
    let s = verify(&build(&inputs), &inputs);
    let locs: Vec<(u32, u32)> = s
        .inodes
        .values()
        .filter(|i| i.itype == 2)
        .map(|i| (i.fragment, i.fragment_offset))
        .collect();
    assert_eq!(
        locs.iter().filter(|l| **l == locs[0]).count(),
        2,
        "{locs:?}"
    );
}

#[test]
fn flags_follow_the_options() {
    let inputs = vec![file("f", &content(200_000, 1))];
    let l = oracle::check_layout(&build(&inputs).path);
    assert_eq!(
        l.flags,
        0x40 | 0x80 | 0x400,
        "dedup, exportable, zstd-3 options"
    );
    let img = build_with(
        &inputs,
        &options(|o| {
            o.exportable = false;
            o.fragments = false;
            o.dedup = false;
            o.compression = "zstd:15".parse().unwrap();
        }),
        2,
    );
    let l = oracle::check_layout(&img.path);
    assert_eq!(l.flags, 0x10, "no fragments; no dedup, export or options");
    assert!(l.export.is_none());
    verify(&img, &inputs);
}

#[test]
fn mksquashfs_sees_the_same_tree() {
    // Extract our image, let mksquashfs pack the result, and let squashfs-tools-ng's sqfsdiff
    // compare the two images (contents, owners, permissions, timestamps).
    let inputs = vec![
        file("a/b", &content(300_000, 5)),
        symlink("a/l", b"b"),
        with(file("c", b"c"), |m| m.uid = 1000),
        dir("empty", 0o700),
    ];
    let ours = build(&inputs);
    let dir = tempfile::tempdir().unwrap();
    let extracted = dir.path().join("x");
    let st = std::process::Command::new("unsquashfs")
        .args(["-no-progress", "-d"])
        .arg(&extracted)
        .arg(&ours.path)
        .output()
        .unwrap();
    assert!(st.status.success());
    let theirs = dir.path().join("theirs.sqfs");
    let st = std::process::Command::new("mksquashfs")
        .arg(&extracted)
        .arg(&theirs)
        .args(["-no-progress", "-quiet", "-comp", "zstd"])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let diff = std::process::Command::new("sqfsdiff")
        .args(["-T", "-a"])
        .arg(&ours.path)
        .arg("-b")
        .arg(&theirs)
        .output()
        .expect("sqfsdiff (squashfs-tools-ng) is installed");
    assert!(
        diff.status.success(),
        "sqfsdiff found differences:\n{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
}

#[test]
fn symlink_targets_and_device_numbers_outside_the_format_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let attempt = |input: Input| {
        let mut sink = SquashfsSink::create(
            &dir.path().join("x.sqfs"),
            &SquashfsOptions::default(),
            Jobs::new(1).unwrap(),
            None,
        )
        .unwrap();
        sink.entry(&input.0, &mut Cursor::new(input.1))
    };
    assert!(attempt(symlink("ok", &[b'x'; 4096])).is_ok());
    for bad in [
        symlink("long", &[b'x'; 4097]),
        symlink("empty", b""),
        (
            entry(
                "d",
                EntryKind::CharDevice {
                    major: 4096,
                    minor: 0,
                },
                meta(0),
            ),
            vec![],
        ),
        (
            entry(
                "d",
                EntryKind::BlockDevice {
                    major: 0,
                    minor: 1 << 20,
                },
                meta(0),
            ),
            vec![],
        ),
        (entry("", EntryKind::Fifo, meta(0)), vec![]),
    ] {
        let e = attempt(bad.clone()).unwrap_err();
        assert!(
            matches!(e, Error::Unrepresentable { .. }),
            "{:?}: {e}",
            bad.0.kind
        );
    }
    assert!(
        !dir.path().read_dir().unwrap().any(|_| true),
        "dropped sinks leave nothing behind"
    );
}

#[test]
fn more_than_65536_ids_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ids.sqfs");
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &img,
            &SquashfsOptions::default(),
            Jobs::new(1).unwrap(),
            None,
        )
        .unwrap(),
    );
    for i in 0..65537u32 {
        let (e, _) = with(
            (
                entry(&format!("f{i}"), EntryKind::Fifo, meta(0o644)),
                vec![],
            ),
            |m| {
                m.uid = i;
            },
        );
        sink.entry(&e, &mut io::empty()).unwrap();
    }
    let err = sink.finish().unwrap_err();
    assert!(matches!(err, Error::TooManyIds { count: 65537 }), "{err}");
    assert!(!img.exists());
}

fn leftovers(dir: &Path) -> Vec<String> {
    dir.read_dir()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn an_unwritable_output_path_is_an_error_naming_it() {
    let missing = Path::new("/nonexistent-ocirender-dir/out.sqfs");
    match SquashfsSink::create(
        missing,
        &SquashfsOptions::default(),
        Jobs::new(1).unwrap(),
        None,
    ) {
        Err(Error::Io { path, .. }) => assert_eq!(path, Path::new("/nonexistent-ocirender-dir")),
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("created an image in a missing directory"),
    }
    let proc_path = Path::new("/proc/ocirender.sqfs");
    let err = SquashfsSink::create(
        proc_path,
        &SquashfsOptions::default(),
        Jobs::new(1).unwrap(),
        None,
    )
    .err()
    .expect("cannot create files in /proc");
    assert!(crate::support::error_text(&err).contains("/proc"), "{err}");
}

/// Fails with an I/O error after `ok` bytes.
struct FailingReader {
    ok: usize,
}

impl Read for FailingReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ok == 0 {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "layer download broke",
            ));
        }
        let n = buf.len().min(self.ok);
        buf[..n].fill(7);
        self.ok -= n;
        Ok(n)
    }
}

#[test]
fn an_input_error_mid_file_leaves_no_output_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("out.sqfs");
    let mut sink = SquashfsSink::create(
        &img,
        &SquashfsOptions::default(),
        Jobs::new(2).unwrap(),
        None,
    )
    .unwrap();
    sink.entry(&file("ok", b"fine").0, &mut Cursor::new(b"fine"))
        .unwrap();
    let e = entry(
        "broken",
        EntryKind::File {
            size: 10 << 20,
            sparse: None,
        },
        meta(0o644),
    );
    let err = sink
        .entry(&e, &mut FailingReader { ok: 3 << 20 })
        .unwrap_err();
    assert!(
        crate::support::error_text(&err).contains("layer download broke"),
        "{err}"
    );
    assert!(matches!(
        sink.entry(&file("more", b"x").0, &mut Cursor::new(b"x")),
        Err(Error::Stopped)
    ));
    drop(sink);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    // A reader that ends early is an error too.
    let mut sink = SquashfsSink::create(
        &img,
        &SquashfsOptions::default(),
        Jobs::new(1).unwrap(),
        None,
    )
    .unwrap();
    let e = entry(
        "short",
        EntryKind::File {
            size: 100,
            sparse: None,
        },
        meta(0o644),
    );
    let err = sink.entry(&e, &mut Cursor::new(vec![1u8; 50])).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    drop(sink);
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_full_disk_is_an_output_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        crate::support::skip::skip(
            "a_full_disk_is_an_output_error_naming_the_path",
            "ROOT",
            "cannot mount a small tmpfs (not root?)",
        );
        return;
    }
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(&mnt);
    let img = mnt.join("full.sqfs");
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &img,
            &SquashfsOptions::default(),
            Jobs::new(2).unwrap(),
            None,
        )
        .unwrap(),
    );
    let data = noise(4 << 20, 1);
    let e = entry(
        "big",
        EntryKind::File {
            size: data.len() as u64,
            sparse: None,
        },
        meta(0o644),
    );
    let result = match sink.entry(&e, &mut Cursor::new(&data)) {
        Ok(()) => sink.finish().map(|_| ()),
        Err(e) => {
            drop(sink);
            Err(e)
        }
    };
    match result {
        Err(Error::Output { path, source }) => {
            assert_eq!(path, img);
            assert_eq!(source.raw_os_error(), Some(28), "ENOSPC: {source}");
        }
        other => panic!("expected an output error, got {other:?}"),
    }
    assert_eq!(
        leftovers(&mnt),
        Vec::<String>::new(),
        "the partial file is removed"
    );
}
