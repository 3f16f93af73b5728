//! The memory budget: past it the squashfs writer's tree spills to sorted runs on disk, and
//! the image must be the same, byte for byte, as the one built in memory.
//!
//! - Random entry streams drive two sinks, one in memory and one spilling from its first
//!   entry, over a small path space so that replacements, directories replaced by files,
//!   implicit parents, hard links (to links, to replaced targets) and errors happen often: the
//!   same bytes, or the same first error.
//! - Whole images with whiteouts, opaque directories, hard links and repeated paths, a few
//!   hundred thousand entries, through `convert` with a tiny budget: the same bytes, read back
//!   by `unsquashfs` and `backhand` as the image's expected tree.
//! - The spill file lives beside the output and is gone after success, error and
//!   cancellation.
//! - The merge's path table pages to disk under the same budget: tar and directory outputs
//!   are the same too, and a place it cannot page to is a clear error.

use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::builder::{ImageBuilder, Layer};
use crate::support::dump::DumpOptions;
use crate::support::oracle;
use crate::support::outputs::{open_image, read_output};
use ocirender::squashfs::SquashfsSink;
use ocirender::{
    convert, CancelToken, ConvertOptions, Entry, EntryKind, EntryPath, Error, Format, ImageSpec,
    Jobs, MemoryLimit, Metadata, Progress, Sink, SquashfsOptions, Summary, Xattr,
};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_path(rng: &mut Rng, names: &[&str]) -> String {
    let depth = 1 + rng.below(3);
    (0..depth)
        .map(|_| names[rng.below(names.len() as u64) as usize])
        .collect::<Vec<_>>()
        .join("/")
}

/// A random entry stream: mostly files and directories, some of everything else.
fn random_stream(seed: u64, len: usize) -> Vec<(Entry, Vec<u8>)> {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let names = ["a", "b", "c", "a-b", "a0"];
    (0..len)
        .map(|_| {
            let path = random_path(&mut rng, &names);
            let xattrs = match rng.below(6) {
                0 => vec![Xattr {
                    name: b"user.a".to_vec(),
                    value: vec![b'v'; rng.below(3) as usize],
                }],
                1 => vec![Xattr {
                    name: b"security.capability".to_vec(),
                    value: b"\x01\0\0\x02".to_vec(),
                }],
                _ => Vec::new(),
            };
            let meta = Metadata {
                mode: [0o755, 0o700, 0o644, 0o600, 0o4755][rng.below(5) as usize],
                uid: rng.below(3) as u32,
                gid: 1000 * rng.below(2) as u32,
                mtime: 1_700_000_000 + rng.below(100) as i64,
                xattrs,
                ..Metadata::default()
            };
            let mut data = Vec::new();
            let kind = match rng.below(20) {
                0..=6 => {
                    data = vec![b'x'; rng.below(3) as usize * 5000];
                    EntryKind::File {
                        size: data.len() as u64,
                        sparse: None,
                    }
                }
                7..=12 => EntryKind::Dir,
                13 | 14 => EntryKind::Hardlink {
                    target: EntryPath::new(random_path(&mut rng, &names).as_bytes()).unwrap(),
                },
                15 => EntryKind::Symlink {
                    target: b"../target".to_vec(),
                },
                16 => EntryKind::Fifo,
                17 => EntryKind::CharDevice { major: 1, minor: 3 },
                18 if rng.below(4) == 0 => {
                    return (
                        Entry {
                            path: EntryPath::root(),
                            kind: EntryKind::Dir,
                            meta,
                        },
                        Vec::new(),
                    )
                }
                _ => EntryKind::Socket,
            };
            let entry = Entry {
                path: EntryPath::new(path.as_bytes()).unwrap(),
                kind,
                meta,
            };
            (entry, data)
        })
        .collect()
}

fn sink(dir: &Path, name: &str, limit: Option<MemoryLimit>) -> Box<dyn Sink> {
    let opts = SquashfsOptions {
        compression: "gzip".parse().unwrap(),
        block_size: "4K".parse().unwrap(),
        ..SquashfsOptions::default()
    };
    let s = SquashfsSink::create(&dir.join(name), &opts, Jobs::new(2).unwrap(), None).unwrap();
    Box::new(match limit {
        Some(l) => s.with_memory_limit(l, dir),
        None => s,
    })
}

/// Feeds `stream` to a sink until its first error; the result of `finish` or that error with
/// the number of entries taken before it.
fn run(mut sink: Box<dyn Sink>, stream: &[(Entry, Vec<u8>)]) -> Result<Summary, (usize, Error)> {
    for (i, (e, data)) in stream.iter().enumerate() {
        sink.entry(e, &mut data.as_slice()).map_err(|e| (i, e))?;
    }
    sink.finish().map_err(|e| (stream.len(), e))
}

/// Runs `stream` in memory and spilled; asserts the same image or the same first error.
/// Returns whether the images were built, and the entries taken before the error.
fn compare(seed: u64, stream: &[(Entry, Vec<u8>)]) -> (bool, usize) {
    let dir = tempfile::tempdir().unwrap();
    let memory = run(sink(dir.path(), "m.sqfs", None), stream);
    let spilled = run(
        sink(dir.path(), "s.sqfs", Some(MemoryLimit::bytes(0))),
        stream,
    );
    let left: Vec<String> = files_in(dir.path())
        .into_iter()
        .filter(|f| !f.ends_with(".sqfs"))
        .collect();
    assert!(left.is_empty(), "seed {seed}: left behind: {left:?}");
    match (memory, spilled) {
        (Ok(m), Ok(s)) => {
            // Only the root: nothing to spill.
            assert!(
                s.spilled.runs > 0 || m.entries == 1,
                "seed {seed}: nothing spilled"
            );
            assert_eq!(m.entries, s.entries, "seed {seed}");
            let (a, b) = (
                fs::read(dir.path().join("m.sqfs")).unwrap(),
                fs::read(dir.path().join("s.sqfs")).unwrap(),
            );
            assert!(a == b, "seed {seed}: images differ\n{stream:#?}");
            (true, stream.len())
        }
        (Err((at, m)), Err((_, s))) => {
            // The spilled tree finds most errors only at the end.
            assert_eq!(m.to_string(), s.to_string(), "seed {seed}\n{stream:#?}");
            (false, at)
        }
        (m, s) => panic!(
            "seed {seed}: in memory {:?}, spilled {:?}\n{stream:#?}",
            m.map(|_| ()),
            s.map(|_| ())
        ),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn random_streams_give_the_same_image_or_the_same_first_error_when_spilled() {
    let (mut same_bytes, mut same_error) = (0, 0);
    for seed in 0..400u64 {
        let stream = random_stream(seed, 6 + (seed as usize % 60));
        let (built, at) = compare(seed, &stream);
        if built {
            same_bytes += 1;
            continue;
        }
        same_error += 1;
        // What came before the first error is a valid stream: the same image from it too.
        if at > 0 && compare(seed, &stream[..at]).0 {
            same_bytes += 1;
        }
    }
    eprintln!("{same_bytes} identical images, {same_error} identical errors");
    // Both outcomes must be exercised well, or the comparison proves little.
    assert!(same_bytes >= 200, "only {same_bytes} streams succeeded");
    assert!(same_error >= 100, "only {same_error} streams failed");
}

/// Layers of `n` files each over shared directories, with whiteouts, opaque directories, hard
/// links (also to names a newer layer deletes) and paths repeated across layers.
fn big_image(n: usize) -> ImageBuilder {
    let mut base = Layer::new();
    for d in 0..100 {
        base = base.dir(format!("d{d:02}"), 0o755);
    }
    for i in 0..n {
        let content = format!("file {i}\n").repeat(1 + i % 3);
        base = base.file(format!("d{:02}/f{i:06}", i % 100), content, 0o644);
    }
    for i in 0..200 {
        base = base.hardlink(
            format!("d{:02}/h{i}", i % 7),
            format!("d{:02}/f{i:06}", i % 100),
        );
    }
    let mut mid = Layer::new().opaque("d05").whiteout("d06");
    for i in (0..n).step_by(3) {
        mid = mid.file(
            format!("d{:02}/f{i:06}", i % 100),
            format!("newer {i}"),
            0o600,
        );
    }
    for i in 0..50 {
        // Whiteouts of link targets: the links keep the content.
        mid = mid.whiteout(format!("d{:02}/f{i:06}", i % 100));
    }
    let mut top = Layer::new()
        .dir("d07", 0o700)
        .file("d08", "a file over a directory", 0o644);
    for i in (0..n).step_by(7) {
        top = top.file(format!("d{:02}/g{i:06}", (i + 1) % 100), "top", 0o644);
    }
    top = top
        .hardlink("d09/top-link", "d07/f000107")
        .symlink("d10/link", "../d11");
    ImageBuilder::new().layers([base, mid, top])
}

fn convert_to(image_dir: &Path, out: &Path, limit: MemoryLimit, temp: &Path) -> Summary {
    let options = ConvertOptions::default()
        .memory_limit(limit)
        .temp_dir(temp)
        .squashfs(SquashfsOptions {
            compression: "gzip".parse().unwrap(),
            ..SquashfsOptions::default()
        });
    let image = open_image(image_dir).unwrap();
    convert(&image, &ImageSpec::new(Format::Squashfs, out), &options).unwrap()
}

#[test]
fn a_large_image_spilled_with_a_tiny_budget_is_the_same_image() {
    let work = tempfile::tempdir().unwrap();
    let image_dir = work.path().join("image");
    big_image(150_000).build(&image_dir);
    let (memory, spilled) = (work.path().join("m.sqfs"), work.path().join("s.sqfs"));
    let temp = work.path().join("temp");
    fs::create_dir(&temp).unwrap();
    let m = convert_to(&image_dir, &memory, MemoryLimit::UNLIMITED, &temp);
    assert_eq!(m.spilled.runs, 0);
    let s = convert_to(&image_dir, &spilled, MemoryLimit::bytes(64 << 10), &temp);
    assert!(s.spilled.runs >= 5, "{:?}", s.spilled);
    assert!(s.spilled.records >= 150_000, "{:?}", s.spilled);
    // The merge's path table went to disk as well, many times over its few resident pages.
    assert!(s.spilled.merge_bytes >= 4 << 20, "{:?}", s.spilled);
    // And the squashfs writer's file placements, once its tree spilled.
    assert!(s.spilled.files_bytes > 0, "{:?}", s.spilled);
    // And the export table (a sixteenth of 64 KiB: its fewest pages, 32,768 inodes).
    assert!(s.spilled.export_bytes > 0, "{:?}", s.spilled);
    assert_eq!(
        (
            m.spilled.merge_bytes,
            m.spilled.files_bytes,
            m.spilled.export_bytes
        ),
        (0, 0, 0)
    );
    assert_eq!(m.entries, s.entries);
    assert!(
        fs::read(&memory).unwrap() == fs::read(&spilled).unwrap(),
        "the spilled image differs"
    );
    assert!(files_in(&temp).is_empty(), "{:?}", files_in(&temp));
    // The image itself, by readers nobody here wrote.
    let by_unsquashfs = oracle::unsquashfs(&spilled);
    let by_backhand = oracle::backhand(&spilled);
    assert_eq!(
        oracle::without_links_and_xattrs(&by_unsquashfs),
        oracle::without_links_and_xattrs(&by_backhand)
    );
    assert!(by_unsquashfs.0.len() as u64 >= s.entries - 1);
    // And the same tree as the tar output of the same image (read back by GNU tar).
    let tar = work.path().join("o.tar");
    let image = open_image(&image_dir).unwrap();
    convert(
        &image,
        &ImageSpec::new(Format::Tar, &tar),
        &ConvertOptions::default(),
    )
    .unwrap();
    let dump = |format, path: &Path| read_output(path, format).dump(DumpOptions::default());
    assert!(
        dump(Format::Squashfs, &spilled) == dump(Format::Tar, &tar),
        "the spilled image and the tar output differ"
    );

    // The tar output with the merge's table paged: the same bytes.
    let options = ConvertOptions::default()
        .memory_limit(MemoryLimit::bytes(0))
        .temp_dir(&temp);
    let paged_tar = work.path().join("paged.tar");
    let t = convert(&image, &ImageSpec::new(Format::Tar, &paged_tar), &options).unwrap();
    assert!(t.spilled.merge_bytes >= 4 << 20, "{:?}", t.spilled);
    assert!(
        fs::read(&tar).unwrap() == fs::read(&paged_tar).unwrap(),
        "the tar output differs when the merge pages"
    );
    assert!(files_in(&temp).is_empty(), "{:?}", files_in(&temp));
}

#[test]
fn the_merge_pages_where_told_and_says_so_or_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let image_dir = work.path().join("image");
    big_image(30_000).build(&image_dir);
    let image = open_image(&image_dir).unwrap();
    // Reported as it happens.
    let paged = Arc::new(AtomicBool::new(false));
    let p = Arc::clone(&paged);
    let options = ConvertOptions::default()
        .memory_limit(MemoryLimit::bytes(0))
        .progress(move |e| {
            if let Progress::Paged { bytes } = e {
                assert!(*bytes > 0);
                p.store(true, Ordering::SeqCst);
            }
        });
    let out = work.path().join("out").join("o.tar");
    fs::create_dir(out.parent().unwrap()).unwrap();
    let s = convert(&image, &ImageSpec::new(Format::Tar, &out), &options).unwrap();
    assert!(s.spilled.merge_bytes > 0 && paged.load(Ordering::SeqCst));
    // The page file went beside the output (no temporary directory given) and is gone.
    assert_eq!(files_in(out.parent().unwrap()), vec!["o.tar".to_string()]);
    // The same tar as without paging, and the same tree in a directory output.
    let whole = work.path().join("whole.tar");
    let options = ConvertOptions::default().memory_limit(MemoryLimit::UNLIMITED);
    let w = convert(&image, &ImageSpec::new(Format::Tar, &whole), &options).unwrap();
    assert_eq!(w.spilled.merge_bytes, 0);
    assert!(fs::read(&whole).unwrap() == fs::read(&out).unwrap());
    let dir = work.path().join("dir");
    let options = ConvertOptions::default().memory_limit(MemoryLimit::bytes(0));
    let d = convert(&image, &ImageSpec::new(Format::Dir, &dir), &options).unwrap();
    assert!(d.spilled.merge_bytes > 0);
    let dump = |format, path: &Path| read_output(path, format).dump(DumpOptions::default());
    assert!(dump(Format::Dir, &dir) == dump(Format::Tar, &whole));

    // Nowhere to page to: a clear error naming the place, and no output left.
    let missing = work.path().join("missing");
    let options = ConvertOptions::default()
        .memory_limit(MemoryLimit::bytes(0))
        .temp_dir(&missing);
    let out = work.path().join("failed.tar");
    let err = convert(&image, &ImageSpec::new(Format::Tar, &out), &options).unwrap_err();
    let text = crate::support::error_text(&err);
    assert!(
        text.contains("page the merge's path") && text.contains("missing"),
        "{text}"
    );
    assert!(!out.exists());
}

#[test]
fn the_spill_file_is_gone_after_an_error_and_after_cancellation() {
    let work = tempfile::tempdir().unwrap();
    let temp = work.path().join("temp");
    fs::create_dir(&temp).unwrap();
    // An error found only at the end, by the spilled tree's walk: a link to a missing name.
    let image_dir = work.path().join("bad");
    let mut layer = Layer::new();
    for i in 0..3000 {
        layer = layer.file(format!("d/f{i}"), "x", 0o644);
    }
    ImageBuilder::new()
        .layer(layer.hardlink("z/link", "nowhere"))
        .build(&image_dir);
    let out = work.path().join("bad.sqfs");
    let options = ConvertOptions::default()
        .memory_limit(MemoryLimit::bytes(0))
        .temp_dir(&temp);
    let image = open_image(&image_dir).unwrap();
    let err = convert(&image, &ImageSpec::new(Format::Squashfs, &out), &options).unwrap_err();
    let text = crate::support::error_text(&err);
    assert!(text.contains("nowhere"), "{text}");
    assert!(!out.exists());
    assert!(files_in(&temp).is_empty(), "{:?}", files_in(&temp));

    // Cancelled as soon as the first run is written.
    let image_dir = work.path().join("good");
    big_image(20_000).build(&image_dir);
    let cancel = CancelToken::new();
    let saw_spill = Arc::new(AtomicBool::new(false));
    let (c, saw) = (cancel.clone(), Arc::clone(&saw_spill));
    let options = ConvertOptions::default()
        .memory_limit(MemoryLimit::bytes(0))
        .temp_dir(&temp)
        .cancel(cancel)
        .progress(move |p| {
            if let Progress::Spilled { .. } = p {
                saw.store(true, Ordering::SeqCst);
                c.cancel();
            }
        });
    let out = work.path().join("cancelled.sqfs");
    let image = open_image(&image_dir).unwrap();
    let err = convert(&image, &ImageSpec::new(Format::Squashfs, &out), &options).unwrap_err();
    assert!(matches!(err, Error::Interrupted), "{err}");
    assert!(saw_spill.load(Ordering::SeqCst));
    assert!(!out.exists());
    assert!(files_in(&temp).is_empty(), "{:?}", files_in(&temp));
}

#[test]
fn below_the_budget_nothing_spills() {
    let work = tempfile::tempdir().unwrap();
    let image_dir = work.path().join("image");
    big_image(2000).build(&image_dir);
    let s = convert_to(
        &image_dir,
        &work.path().join("o.sqfs"),
        MemoryLimit::DEFAULT,
        work.path(),
    );
    assert_eq!(s.spilled, ocirender::Spilled::default());
}

#[test]
fn memory_limits_parse_with_units() {
    let p = |s: &str| s.parse::<MemoryLimit>().map(MemoryLimit::get);
    assert_eq!(p("256M").unwrap(), 256 << 20);
    assert_eq!(p("1GiB").unwrap(), 1 << 30);
    assert_eq!(p("512k").unwrap(), 512 << 10);
    assert_eq!(p("1000").unwrap(), 1000);
    assert_eq!(p("unlimited").unwrap(), u64::MAX);
    assert!(p("12X").is_err());
    assert!(p("").is_err());
    assert!(p("99999999999T").is_err());
    assert_eq!(MemoryLimit::default(), MemoryLimit::DEFAULT);
}
