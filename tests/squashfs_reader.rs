//! ocirender's `SquashfsReader` against images it did not write: `mksquashfs` packs a directory
//! (every file type, xattrs, hard links, a sparse file, a big directory) with each compressor
//! and several layouts, and the reader's tree must equal the directory's. Then path lookup
//! through directory indexes, corrupt images (every error typed, no panic) and `debug`
//! snapshots of two tiny images.

use std::io::{Cursor, Read};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::dump::{DumpOptions, Tree};
use crate::support::oracle;
use ocirender::squashfs::{debug, SquashfsReader, SquashfsSink};
use ocirender::{Entry, EntryKind, EntryPath, Error, Jobs, Metadata, Sink, SquashfsOptions, Xattr};

/// A source directory with every kind of entry mksquashfs stores.
fn populate(root: &Path) {
    use std::fs;
    let p = |s: &str| root.join(s);
    fs::create_dir_all(p("usr/bin")).unwrap();
    fs::create_dir_all(p("etc/empty")).unwrap();
    fs::create_dir_all(p("big")).unwrap();
    fs::write(p("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(p("empty-file"), b"").unwrap();
    let text: Vec<u8> = (0..300_000u32)
        .map(|i| b"mksquashfs reads "[(i % 17) as usize])
        .collect();
    fs::write(p("usr/bin/text"), &text).unwrap();
    let noise: Vec<u8> = (0..200_000u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    fs::write(p("usr/bin/noise"), &noise).unwrap();
    fs::write(p("usr/bin/exact"), vec![7u8; 131072]).unwrap();
    fs::write(p("usr/bin/copy-of-text"), &text).unwrap();
    fs::set_permissions(p("usr/bin/text"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::hard_link(p("usr/bin/text"), p("text-link")).unwrap();
    symlink("usr/bin/text", p("link")).unwrap();
    symlink("x".repeat(200), p("long-link")).unwrap();
    // A sparse file: 10 MiB with two islands.
    let f = fs::File::create(p("sparse")).unwrap();
    f.set_len(10 << 20).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"island one", 3 << 20).unwrap();
    f.write_all_at(b"island two", (10 << 20) - 10).unwrap();
    drop(f);
    let mknod = |name: &str, kind: rustix::fs::FileType, dev: u64| {
        rustix::fs::mknodat(
            rustix::fs::CWD,
            p(name),
            kind,
            rustix::fs::Mode::from_raw_mode(0o640),
            dev,
        )
        .unwrap();
    };
    mknod(
        "null",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        "disk",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(259, 70000),
    );
    mknod("fifo", rustix::fs::FileType::Fifo, 0);
    let set = |name: &str, key: &str, value: &[u8]| {
        rustix::fs::lsetxattr(p(name), key, value, rustix::fs::XattrFlags::empty()).unwrap();
    };
    set(
        "usr/bin/text",
        "security.capability",
        &[
            1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    set("usr/bin/text", "user.comment", b"hello");
    set("etc", "trusted.overlay.opaque", b"y");
    set("etc/passwd", "user.comment", b"hello");
    std::os::unix::fs::lchown(p("etc/passwd"), Some(1000), Some(70000)).unwrap();
    for i in 0..3000 {
        fs::write(
            p(&format!("big/entry-with-a-longish-name-{i:05}")),
            format!("{i}"),
        )
        .unwrap();
    }
    fs::write(p(&format!("big/{}", "n".repeat(255))), b"long name").unwrap();
}

fn mksquashfs(src: &Path, img: &Path, args: &[&str]) {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args(["-no-progress", "-quiet", "-noappend"])
        .args(args)
        .output()
        .expect("mksquashfs (squashfs-tools) is installed");
    assert!(
        out.status.success(),
        "mksquashfs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn reads_mksquashfs_images_of_every_layout_and_compressor() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    populate(&src);
    let want = Tree::from_dir(&src);
    let layouts: &[&[&str]] = &[
        &["-comp", "gzip"],
        &["-comp", "gzip", "-Xcompression-level", "1", "-b", "4096"],
        &["-comp", "xz"],
        &["-comp", "xz", "-Xbcj", "x86", "-b", "1M"],
        &["-comp", "lz4"],
        &["-comp", "lz4", "-Xhc", "-no-fragments"],
        &["-comp", "zstd", "-always-use-fragments", "-no-duplicates"],
        &[
            "-comp",
            "zstd",
            "-noI",
            "-noD",
            "-noF",
            "-noX",
            "-no-exports",
        ],
    ];
    for args in layouts {
        let img = dir.path().join("m.sqfs");
        mksquashfs(&src, &img, args);
        let got = oracle::reader(&img);
        let (g, w) = (
            got.dump(DumpOptions::default()),
            want.dump(DumpOptions::default()),
        );
        assert!(
            g == w,
            "{args:?}: reader tree differs:\n{}",
            first_difference(&g, &w)
        );
        // Every path is found by lookup, through big directories' indexes too.
        let r = SquashfsReader::open(&img).unwrap();
        for path in got.0.keys() {
            let ep = EntryPath::new(path).unwrap();
            let e = r
                .lookup(&ep)
                .unwrap()
                .unwrap_or_else(|| panic!("{args:?}: lookup {ep:?}"));
            assert_eq!(e.meta.mode, got.0[path].mode);
        }
        assert!(r
            .lookup(&EntryPath::new(b"big/entry-with-a-longish-name-99999").unwrap())
            .unwrap()
            .is_none());
        assert!(r
            .lookup(&EntryPath::new(b"etc/passwd/below-a-file").unwrap())
            .unwrap()
            .is_none());
    }
}

fn first_difference(a: &str, b: &str) -> String {
    let (al, bl): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    let mut s = String::new();
    for l in bl.iter().filter(|l| !al.contains(l)).take(5) {
        s += &format!("- {l}\n");
    }
    for l in al.iter().filter(|l| !bl.contains(l)).take(5) {
        s += &format!("+ {l}\n");
    }
    s
}

fn entry(path: &str, kind: EntryKind, mode: u32) -> Entry {
    Entry {
        path: EntryPath::new(path.as_bytes()).unwrap(),
        kind,
        meta: Metadata {
            mode,
            mtime: 1_700_000_000,
            ..Metadata::default()
        },
    }
}

fn write_image(path: &Path, opts: &SquashfsOptions, entries: &[(Entry, Vec<u8>)]) {
    let mut sink: Box<dyn Sink> =
        Box::new(SquashfsSink::create(path, opts, Jobs::new(1).unwrap(), None).unwrap());
    for (e, d) in entries {
        sink.entry(e, &mut Cursor::new(d)).unwrap();
    }
    sink.finish().unwrap();
}

fn file(path: &str, data: &[u8]) -> (Entry, Vec<u8>) {
    (
        entry(
            path,
            EntryKind::File {
                size: data.len() as u64,
                sparse: None,
            },
            0o644,
        ),
        data.to_vec(),
    )
}

#[test]
fn lookup_uses_the_directory_index_of_big_directories() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("big.sqfs");
    let names: Vec<String> = (0..5000)
        .map(|i| format!("{}-{i:05}", "x".repeat(40)))
        .collect();
    let entries: Vec<_> = names
        .iter()
        .map(|n| file(&format!("d/{n}"), n.as_bytes()))
        .collect();
    write_image(&img, &SquashfsOptions::default(), &entries);
    let r = SquashfsReader::open(&img).unwrap();
    let d = r.lookup(&EntryPath::new(b"d").unwrap()).unwrap().unwrap();
    for n in names.iter().step_by(97).chain(names.last()) {
        let e = r
            .find(&d, n.as_bytes())
            .unwrap()
            .unwrap_or_else(|| panic!("find {n}"));
        let mut content = Vec::new();
        r.read_file(&e, &mut content).unwrap();
        assert_eq!(content, n.as_bytes());
    }
    for missing in [
        "",
        "a",
        "zzzz",
        "xxxx",
        &format!("{}-99999", "x".repeat(40)),
    ] {
        assert!(
            r.find(&d, missing.as_bytes()).unwrap().is_none(),
            "{missing:?}"
        );
    }
}

/// Every byte flip and truncation of an image gives a typed error or a (possibly different)
/// tree — never a panic, never an unbounded allocation.
#[test]
fn corrupt_images_give_typed_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("ok.sqfs");
    let x = |n: &str, v: &[u8]| Xattr {
        name: n.as_bytes().to_vec(),
        value: v.to_vec(),
    };
    let mut with_xattr = file("a/x", b"xattr");
    with_xattr.0.meta.xattrs = vec![x("user.a", b"1"), x("trusted.b", b"22")];
    let entries = vec![
        file("a/b", &vec![3u8; 10_000]),
        file("a/c", b"small"),
        file("d", &(0..5000u32).map(|i| i as u8).collect::<Vec<_>>()),
        (
            entry(
                "l",
                EntryKind::Symlink {
                    target: b"a/b".to_vec(),
                },
                0o777,
            ),
            vec![],
        ),
        (entry("f", EntryKind::Fifo, 0o600), vec![]),
        with_xattr,
    ];
    // Compressed metadata fails mostly in decompression; raw metadata lets garbage reach the
    // inode, directory and table parsers.
    for spec in ["zstd", "none"] {
        let opts = SquashfsOptions {
            block_size: ocirender::BlockSize::new(4096).unwrap(),
            compression: spec.parse().unwrap(),
            ..SquashfsOptions::default()
        };
        write_image(&img, &opts, &entries);
        corrupt_every_byte(&img, &dir.path().join("bad.sqfs"));
    }
}

fn corrupt_every_byte(img: &PathBuf, bad: &PathBuf) {
    let good = std::fs::read(img).unwrap();
    let read_all = |path: &PathBuf| -> Result<(), Error> {
        let r = SquashfsReader::open(path)?;
        r.walk(|_, e| {
            if let EntryKind::File { .. } = e.kind {
                r.read_file(e, &mut std::io::sink())?;
            }
            Ok(())
        })?;
        let _ = debug(path)?;
        Ok(())
    };
    read_all(img).unwrap();
    let used = oracle::check_layout(img).bytes_used as usize;
    let inode_table = u64::from_le_bytes(good[64..72].try_into().unwrap()) as usize;
    let mut failures = 0;
    let check = |bytes: &[u8], what: String| -> bool {
        std::fs::write(bad, bytes).unwrap();
        let result = std::panic::catch_unwind(|| read_all(bad));
        match result {
            Err(_) => panic!("the reader panicked on {what}"),
            Ok(Err(Error::BadSquashfs { .. } | Error::Io { .. })) => true,
            Ok(Err(e)) => panic!("{what}: untyped error {e:?}"),
            Ok(Ok(())) => false,
        }
    };
    // Every byte of the superblock and tables; a sample of the file data.
    let positions = (0..96)
        .chain((96..inode_table).step_by(31))
        .chain(inode_table..used);
    for pos in positions {
        for flip in [0x01u8, 0x80] {
            let mut b = good.clone();
            b[pos] ^= flip;
            failures += usize::from(check(&b, format!("byte {pos} ^ {flip:#x}")));
        }
    }
    assert!(
        failures > (used - inode_table),
        "most corruptions are detected: {failures}"
    );
    for len in (0..used).step_by(13) {
        assert!(
            check(&good[..len], format!("truncation to {len}")),
            "truncation to {len}"
        );
    }
}

fn tiny_image(
    dir: &Path,
    name: &str,
    opts: &SquashfsOptions,
    entries: &[(Entry, Vec<u8>)],
) -> PathBuf {
    let img = dir.join(name);
    write_image(&img, opts, entries);
    img
}

#[test]
fn debug_describes_tiny_images() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SquashfsOptions {
        compression: "none".parse().unwrap(),
        block_size: ocirender::BlockSize::new(4096).unwrap(),
        mtime: Some(1_700_000_000),
        ..SquashfsOptions::default()
    };
    let mut cap = file("bin/ping", b"#!ping");
    cap.0.meta.xattrs = vec![Xattr {
        name: b"security.capability".to_vec(),
        value: vec![
            1, 0, 0, 2, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    }];
    cap.0.meta.uid = 1000;
    let types = [
        cap,
        file("etc/hostname", b"box\n"),
        (
            entry(
                "etc/link",
                EntryKind::Hardlink {
                    target: EntryPath::new(b"etc/hostname").unwrap(),
                },
                0,
            ),
            vec![],
        ),
        (
            entry(
                "dev/null",
                EntryKind::CharDevice { major: 1, minor: 3 },
                0o666,
            ),
            vec![],
        ),
        (
            entry(
                "sh",
                EntryKind::Symlink {
                    target: b"bin/ping".to_vec(),
                },
                0o777,
            ),
            vec![],
        ),
        (entry("run/fifo", EntryKind::Fifo, 0o600), vec![]),
    ];
    let img = tiny_image(dir.path(), "types.sqfs", &opts, &types);
    insta::assert_snapshot!("tiny_types", debug(&img).unwrap());

    let mut data = vec![0u8; 3 * 4096 + 100];
    data[5000] = 1;
    let layout = [
        file("sparse", &data),
        file("copy", &data),
        file("tail-a", b"same tail"),
        file("tail-b", b"same tail"),
        file("exact", &[9u8; 4096]),
    ];
    let img = tiny_image(dir.path(), "layout.sqfs", &opts, &layout);
    insta::assert_snapshot!("tiny_layout", debug(&img).unwrap());
}

/// The offsets of the superblock fields the hostile images below patch.
const ROOT_INODE_AT: usize = 32;
const DIR_TABLE_AT: usize = 72;

/// `home/user/f` with raw (uncompressed) metadata, then the directory entry `user` in
/// `home`'s listing pointed back at the root inode: `home/user` is its own ancestor.
fn looping_image(dir: &Path) -> PathBuf {
    let opts = SquashfsOptions {
        compression: "none".parse().unwrap(),
        ..SquashfsOptions::default()
    };
    let img = tiny_image(dir, "loop.sqfs", &opts, &[file("home/user/f", b"data")]);
    let mut bytes = std::fs::read(&img).unwrap();
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let root = u64_at(&bytes, ROOT_INODE_AT);
    let dir_table = u64_at(&bytes, DIR_TABLE_AT) as usize;
    // Entry: offset u16, inode delta i16, type u16, name size − 1 u16, name. `home` holds
    // one entry, so its header (count u32, start block u32, inode number u32) comes right
    // before it.
    let name = dir_table
        + bytes[dir_table..]
            .windows(4)
            .position(|w| w == b"user")
            .expect("the listing of home names user");
    let entry = name - 8;
    let header = entry - 12;
    bytes[header + 4..header + 8].copy_from_slice(&((root >> 16) as u32).to_le_bytes());
    bytes[entry..entry + 2].copy_from_slice(&((root & 0xffff) as u16).to_le_bytes());
    std::fs::write(&img, &bytes).unwrap();
    img
}

/// See: issue 17, point 1 (`ls -R` ran until killed on such an image, 3.5 GB and rising).
#[test]
fn a_directory_that_is_its_own_ancestor_is_refused_by_every_walk() {
    let dir = tempfile::tempdir().unwrap();
    let img = looping_image(dir.path());
    let r = SquashfsReader::open(&img).unwrap();
    let mut seen = 0;
    let err = r
        .walk(|_, _| {
            seen += 1;
            Ok(())
        })
        .unwrap_err();
    assert!(matches!(err, Error::BadSquashfs { .. }), "{err:?}");
    assert!(
        crate::support::error_text(&err)
            .contains("directory /home/user is its own ancestor / (the image loops)"),
        "{err}"
    );
    assert!(seen <= 4, "the walk stops at the loop ({seen} entries)");
    let root = r.root().unwrap();
    let err = r
        .walk_dirs(&EntryPath::root(), &root, |_, _| Ok(()))
        .unwrap_err();
    assert!(
        crate::support::error_text(&err).contains("its own ancestor"),
        "{err}"
    );
    // A lookup through the loop is bounded by the path it is given.
    let deep = EntryPath::new(b"home/user/home/user/home/user/home").unwrap();
    assert!(r.lookup(&deep).unwrap().is_some_and(|e| e.is_dir()));

    // Through the CLI: `ls -R` and `verify` end at once with the message, exit status 1.
    let bin = env!("CARGO_BIN_EXE_ocirender");
    let reference = tempfile::tempdir().unwrap();
    for args in [
        vec!["ls", "-R", img.to_str().unwrap()],
        vec![
            "verify",
            img.to_str().unwrap(),
            "--reference",
            reference.path().to_str().unwrap(),
        ],
    ] {
        let out = Command::new(bin).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("is its own ancestor") && stderr.lines().count() == 1,
            "{args:?}: {stderr}"
        );
        assert!(out.stdout.len() < 4096, "{args:?} stopped early");
    }
}

/// The reader's work budget must never refuse a valid image: a file with a long block list
/// and a thousand names (each name's inode is the same, decoded once), beside a directory of
/// 20,000 entries.
#[test]
fn hard_links_to_a_big_file_and_big_directories_stay_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SquashfsOptions {
        block_size: ocirender::BlockSize::new(4096).unwrap(),
        ..SquashfsOptions::default()
    };
    let img = dir.path().join("links.sqfs");
    let mut sink: Box<dyn Sink> =
        Box::new(SquashfsSink::create(&img, &opts, Jobs::new(2).unwrap(), None).unwrap());
    // 256 MiB of zeros at 4 KiB blocks: 65,536 block words (256 KiB) in one inode.
    let size = 256u64 << 20;
    let big = entry("big", EntryKind::File { size, sparse: None }, 0o644);
    sink.entry(&big, &mut std::io::repeat(0).take(size))
        .unwrap();
    for i in 0..1000 {
        let link = entry(
            &format!("links/l{i:04}"),
            EntryKind::Hardlink {
                target: EntryPath::new(b"big").unwrap(),
            },
            0o644,
        );
        sink.entry(&link, &mut std::io::empty()).unwrap();
    }
    for i in 0..20_000 {
        let (e, d) = file(&format!("many/f{i:05}"), &[i as u8]);
        sink.entry(&e, &mut Cursor::new(d)).unwrap();
    }
    sink.finish().unwrap();
    let r = SquashfsReader::open(&img).unwrap();
    let mut names = 0;
    r.walk(|_, _| {
        names += 1;
        Ok(())
    })
    .unwrap();
    assert_eq!(names, 1 + 1 + 1 + 1000 + 1 + 20_000);
}
