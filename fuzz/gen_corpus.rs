//! Writes the seed corpora from code: `cargo run --bin gen_corpus [DIR]` fills
//! `DIR/<target>/seed-NNN` (DIR defaults to `corpus` beside this file). Existing files are
//! kept, so a corpus the fuzzer grew stays.
//!
//! The `squashfs_reader` seeds include images made by `mksquashfs` (squashfs-tools): without
//! it on PATH those are skipped, with a message on stderr.

use std::fs;
use std::path::PathBuf;

use ocirender_fuzz::seeds;

/// `-max_len` of the `squashfs_reader` runs (scripts/fuzz.sh).
const READER_MAX_LEN: usize = 65536;

fn main() {
    let root = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("corpus"));
    let mut sets: Vec<(&str, Vec<Vec<u8>>)> = Vec::new();
    let merge = seeds::merge_structured()
        .into_iter()
        .chain(seeds::merge_raw())
        .map(|i| i.encode())
        .collect();
    sets.push(("merge", merge));
    sets.push((
        "squashfs_roundtrip",
        seeds::trees().iter().map(|t| t.encode()).collect(),
    ));
    sets.push(("tar_entry", seeds::tars()));
    sets.push((
        "image_layout",
        seeds::layouts().iter().map(|l| l.encode()).collect(),
    ));
    let mut images = seeds::squashfs_images();
    match seeds::mksquashfs_images() {
        Ok(more) => images.extend(more),
        Err(why) => eprintln!("squashfs_reader: mksquashfs seeds skipped: {why}"),
    }
    for (i, image) in images.iter().enumerate() {
        // libFuzzer cuts inputs longer than -max_len (scripts/fuzz.sh).
        if image.bytes.len() > READER_MAX_LEN {
            eprintln!(
                "squashfs_reader: seed-{i:03} ({}) has {} bytes, over the {READER_MAX_LEN} \
                 the fuzzer reads",
                image.name,
                image.bytes.len()
            );
        }
    }
    sets.push((
        "squashfs_reader",
        images.into_iter().map(|i| i.bytes).collect(),
    ));
    for (target, inputs) in sets {
        let dir = root.join(target);
        fs::create_dir_all(&dir).expect("create the corpus directory");
        for (i, bytes) in inputs.iter().enumerate() {
            fs::write(dir.join(format!("seed-{i:03}")), bytes).expect("write a seed");
        }
        println!("{target}: {} seeds in {}", inputs.len(), dir.display());
    }
}
