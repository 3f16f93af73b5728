//! The `squashfs_reader` target's check (see `fuzz_targets/squashfs_reader.rs`): every way the
//! library reads a squashfs image, on an image nobody vouches for.
//!
//! The image is written to a scratch file, then read by each public reader in turn:
//! [`SquashfsReader`] (open, the superblock's tables, a walk of the whole tree with every
//! regular file read into nothing, lookups of the paths the walk found and of missing names,
//! `walk_dirs` as `ls -R` lists),
//! [`squashfs::debug`], [`verify::verify`] against an empty directory, and
//! [`verity::check`] (twice: with a made-up root hash, then with the root hash the tree
//! computes to, so that a changed data block is found and named by walking the image).
//! Errors are expected; the panics that matter are the library's, and the few assertions here
//! are about consistency between the readers, not about what a hostile image holds.

use std::collections::HashSet;
use std::io;
use std::path::Path;

use ocirender::squashfs::{self, SquashfsReader};
use ocirender::verify::{self, VerifyOptions};
use ocirender::verity::{self, VerityMismatch};
use ocirender::{EntryKind, EntryPath, ImageSpec};

/// Most paths the walk records for lookups.
pub const MAX_LOOKUPS: usize = 64;
/// `verify` hashes every file's content, holes included: an image of a few KB can claim
/// terabytes of sparse zeros (as a real image may hold a large sparse file), which takes time
/// in proportion to that claim, not to the image. Above this many claimed bytes in all, verify
/// is not run (the reader's own pass reads the same files into `io::sink`, where holes cost
/// nothing).
pub const VERIFY_BUDGET: u64 = 64 << 20;

/// What reading the image with [`SquashfsReader`] found.
#[derive(Debug, Default)]
pub struct Pass {
    /// `open`, `walk` and every `read_file` succeeded.
    pub complete: bool,
    /// Entries the walk visited (the root included).
    pub entries: usize,
    /// Of those, directories.
    pub dirs: usize,
    /// Sum of the sizes of the regular files visited.
    pub claimed: u64,
}

/// Reads `image` every way the library can; panics on a broken invariant.
pub fn check(image: &[u8]) {
    let scratch = crate::scratch();
    let img = scratch.path().join("image.sqfs");
    std::fs::write(&img, image).expect("write the image to the scratch directory");
    let pass = read(&img);
    if let Ok(text) = squashfs::debug(&img) {
        assert!(!text.is_empty(), "debug described an image in no words");
    }
    if pass.claimed <= VERIFY_BUDGET {
        let empty = scratch.path().join("empty");
        std::fs::create_dir(&empty).expect("create the reference directory");
        let spec = ImageSpec::Squashfs { path: img.clone() };
        match verify::verify(&spec, &empty, &VerifyOptions::default()) {
            Ok(report) => {
                assert_eq!(report.reference_entries, 1, "the empty reference");
                if pass.complete {
                    assert_eq!(
                        report.output_entries, pass.entries,
                        "verify saw another tree than the reader's walk"
                    );
                }
                for d in &report.diffs {
                    let _ = d.to_string();
                }
            }
            Err(e) => {
                let message = e.to_string();
                assert!(
                    !pass.complete,
                    "the reader read the whole image, but verify failed: {message}"
                );
            }
        }
    }
    check_verity(&img);
}

/// Opens the image, walks it reading every regular file, then looks paths up.
pub fn read(img: &Path) -> Pass {
    let mut pass = Pass::default();
    let reader = match SquashfsReader::open(img) {
        Ok(r) => r,
        Err(e) => {
            let _ = e.to_string();
            return pass;
        }
    };
    let _ = format!("{reader:?}");
    let _ = reader.flag_names();
    let _ = reader.ids().len();
    let _ = reader.compressor_options();
    let fragments = reader.superblock().frag_count;
    for i in 0..fragments.min(16) {
        let _ = reader.fragment_entry(i);
    }
    let _ = reader.fragment_entry(fragments);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut paths: Vec<EntryPath> = Vec::new();
    let mut all_read = true;
    let walked = reader.walk(|path, entry| {
        assert!(
            seen.insert(path.as_bytes().to_vec()),
            "the walk handed out {} twice",
            path.display()
        );
        pass.entries += 1;
        pass.dirs += usize::from(entry.is_dir());
        if paths.len() < MAX_LOOKUPS {
            paths.push(path.clone());
        }
        if let EntryKind::File { size, .. } = entry.kind {
            pass.claimed = pass.claimed.saturating_add(size);
            match reader.read_file(entry, &mut io::sink()) {
                Ok(n) => assert_eq!(n, size, "read_file returned another length than the size"),
                Err(e) => {
                    let _ = e.to_string();
                    all_read = false;
                }
            }
        }
        Ok(())
    });
    if let Err(e) = &walked {
        let _ = e.to_string();
    }
    pass.complete = walked.is_ok() && all_read;
    // Lookups take the directory index, which the walk does not.
    for p in &paths {
        let _ = reader.lookup(p);
        if let Ok(missing) = p.join(b"~missing") {
            let _ = reader.lookup(&missing);
        }
        if let Ok(before) = p.join(b"\x01") {
            let _ = reader.lookup(&before);
        }
    }
    if let Ok(Some(root)) = reader.lookup(&EntryPath::root()) {
        if let Ok(listing) = reader.read_dir(&root) {
            for (name, _) in listing.iter().take(MAX_LOOKUPS) {
                let _ = reader.find(&root, name);
            }
        }
    }
    list_recursively(img, &pass, &paths);
    pass
}

/// `ls -R`: `walk_dirs` from the root, on a reader of its own (the work budget is per
/// reader), which must agree with the walk; then `ls -R IMAGE PATH` from the first
/// subdirectory the walk found.
fn list_recursively(img: &Path, pass: &Pass, paths: &[EntryPath]) {
    let Ok(reader) = SquashfsReader::open(img) else {
        return;
    };
    let (mut dirs, mut listed) = (0usize, 0usize);
    let listed_all = reader.root().and_then(|root| {
        reader.walk_dirs(&EntryPath::root(), &root, |_, listing| {
            dirs += 1;
            listed += listing.len();
            Ok(())
        })
    });
    match listed_all {
        Ok(()) if pass.complete => {
            assert_eq!(
                dirs, pass.dirs,
                "walk_dirs listed other directories than walk"
            );
            assert_eq!(
                listed + 1,
                pass.entries,
                "walk_dirs listed other entries than walk"
            );
        }
        Ok(()) => {}
        Err(e) => {
            let message = e.to_string();
            assert!(
                !pass.complete,
                "the walk read the whole image, but walk_dirs failed: {message}"
            );
        }
    }
    for p in paths.iter().filter(|p| !p.as_bytes().is_empty()).take(4) {
        if let Ok(Some(dir)) = reader.lookup(p) {
            if dir.is_dir() {
                let _ = reader.walk_dirs(p, &dir, |_, _| Ok(()));
                break;
            }
        }
    }
}

/// Checks the image against an appended dm-verity tree (most images have none, and fail at
/// once).
fn check_verity(img: &Path) {
    let found = match verity::check(img, None, &[0u8; 32]) {
        Ok(report) => {
            let _ = report.mismatch.as_ref().map(|m| m.to_string());
            let _ = report.info.dm_table();
            match report.mismatch {
                Some(VerityMismatch::RootHash { found }) => found,
                _ => return,
            }
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match verity::check(img, None, &found) {
        Ok(report) => {
            if let Some(m) = &report.mismatch {
                assert!(
                    !matches!(m, VerityMismatch::RootHash { .. }),
                    "the root hash the tree computes to does not match it: {m}"
                );
                let _ = m.to_string();
            }
        }
        Err(e) => panic!("the hash tree read once, then failed: {e}"),
    }
}
