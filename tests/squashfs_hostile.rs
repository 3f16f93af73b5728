//! Hostile squashfs images: what the `squashfs_reader` fuzz target found (issue 17; the runs
//! are in fuzz/RUNS.md). Every reader of the library — `SquashfsReader` (`open`, `walk`,
//! `read_file`, `lookup`, `walk_dirs`), `squashfs::debug`, `verify` and `verity::check` —
//! must give an error or a tree for each image, within a bounded time, and never panic.
//!
//! An image is built in code where a few bytes of a written image explain the case; the
//! fuzzer's own (minimized) artifact is kept beside it, gzip-compressed in base64 as
//! `cargo +nightly fuzz fmt squashfs_reader FILE` (in fuzz/) prints it, ready to paste here.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use base64::Engine as _;
use ocirender::squashfs::{debug, SquashfsReader, SquashfsSink};
use ocirender::verify::{verify, VerifyOptions};
use ocirender::{
    verity, Entry, EntryKind, EntryPath, ImageSpec, Jobs, Metadata, Sink, SquashfsOptions,
};

/// How long all the readers together may take on one image (they take milliseconds).
const LIMIT: Duration = Duration::from_secs(60);

/// An image embedded as `cargo fuzz fmt` prints it: gzip, then base64.
fn image(gzip_base64: &str) -> Vec<u8> {
    let compact: String = gzip_base64.split_whitespace().collect();
    let gz = base64::engine::general_purpose::STANDARD
        .decode(compact)
        .expect("valid base64");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

/// A small valid image from ocirender's writer: a directory, a file, a symlink.
fn written_image() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ok.sqfs");
    let meta = |mode: u32| Metadata {
        mode,
        ..Metadata::default()
    };
    let entries = [
        (
            Entry {
                path: EntryPath::new(b"etc").unwrap(),
                kind: EntryKind::Dir,
                meta: meta(0o755),
            },
            &b""[..],
        ),
        (
            Entry {
                path: EntryPath::new(b"etc/hostname").unwrap(),
                kind: EntryKind::File {
                    size: 5,
                    sparse: None,
                },
                meta: meta(0o644),
            },
            b"host\n",
        ),
        (
            Entry {
                path: EntryPath::new(b"link").unwrap(),
                kind: EntryKind::Symlink {
                    target: b"etc/hostname".to_vec(),
                },
                meta: meta(0o777),
            },
            b"",
        ),
    ];
    let mut sink = SquashfsSink::create(
        &path,
        &SquashfsOptions::default(),
        Jobs::new(1).unwrap(),
        None,
    )
    .unwrap();
    for (e, mut data) in entries {
        sink.entry(&e, &mut data).unwrap();
    }
    Box::new(sink).finish().unwrap();
    std::fs::read(&path).unwrap()
}

/// Runs every reader on `bytes` (in a thread, so that a hang fails the test after [`LIMIT`]
/// instead of holding it forever) and returns what each said, one line per reader.
fn assert_reader_survives(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("hostile.sqfs");
    std::fs::write(&img, bytes).unwrap();
    let reference = dir.path().join("empty");
    std::fs::create_dir(&reference).unwrap();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let _ = tx.send(read_every_way(&img, &reference));
    });
    match rx.recv_timeout(LIMIT) {
        Ok(said) => said,
        Err(RecvTimeoutError::Timeout) => panic!("the readers did not finish in {LIMIT:?}"),
        Err(RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the worker sends before it ends"),
        },
    }
}

fn read_every_way(img: &Path, reference: &Path) -> String {
    let mut said = Vec::new();
    match SquashfsReader::open(img) {
        Err(e) => said.push(format!("open: {e}")),
        Ok(r) => {
            let mut paths = Vec::new();
            let walked = r.walk(|path, entry| {
                paths.push(path.clone());
                if let EntryKind::File { .. } = entry.kind {
                    if let Err(e) = r.read_file(entry, &mut std::io::sink()) {
                        said.push(format!("read_file {}: {e}", path.display()));
                    }
                }
                Ok(())
            });
            said.push(format!("walk: {} entries, {walked:?}", paths.len()));
            for p in &paths {
                if let Err(e) = r.lookup(p) {
                    said.push(format!("lookup {}: {e}", p.display()));
                }
            }
            // What `ls -R` lists, on a reader of its own (the work budget is per reader).
            let listed = SquashfsReader::open(img).and_then(|again| {
                let root = again.root()?;
                again.walk_dirs(&EntryPath::root(), &root, |_, _| Ok(()))
            });
            said.push(format!("walk_dirs: {listed:?}"));
        }
    }
    said.push(format!("debug: {:?}", debug(img).map(|t| t.len())));
    let spec = ImageSpec::Squashfs {
        path: img.to_path_buf(),
    };
    let report = verify(&spec, reference, &VerifyOptions::default());
    said.push(format!("verify: {:?}", report.map(|r| r.diffs.len())));
    let checked = verity::check(img, None, &[0u8; 32]);
    said.push(format!("verity: {:?}", checked.map(|r| r.mismatch)));
    said.join("\n")
}

/// See: issue 17, fuzz/RUNS.md 2026-12-07. `verity::check` finds an appended hash tree at
/// `bytes_used` rounded up to 4 KiB, and rounded a `bytes_used` within 4 KiB of `u64::MAX`
/// with an overflowing multiplication: a panic with overflow checks (tests, fuzzing), a wrap
/// to offset 0 without. It is an error like any other impossible `bytes_used`.
#[test]
fn verity_check_with_bytes_used_near_u64_max() {
    let mut img = written_image();
    img[40..48].copy_from_slice(&u64::MAX.to_le_bytes());
    let said = assert_reader_survives(&img);
    assert!(said.contains("verity: Err"), "{said}");
    // The fuzzer's artifact (minimized): a superblock alone, `bytes_used` all ones.
    assert_reader_survives(&image(
        "\
         H4sIAAAAAAAC/8soLizmYwCCj8GpDAoMDIwM//EDoHx2+nrhhRyxrDZcfpcZCAAAhfb1qmAAAAA=",
    ));
}

/// The same image, unpatched, reads cleanly: the patch above is the whole difference.
#[test]
fn the_written_image_reads_cleanly() {
    let said = assert_reader_survives(&written_image());
    assert!(said.contains("walk: 4 entries, Ok(())"), "{said}");
    assert!(!said.contains("read_file"), "{said}");
    assert!(said.contains("verify: Ok(4)"), "{said}");
}
