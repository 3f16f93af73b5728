//! Synthetic layer stacks for the merge bench and the scaling script (`examples/synth_image.rs`
//! writes them as an OCI layout). Deterministic: the same [`Shape`] always gives the same bytes.
//!
//! Layer 0 is the base: `files` regular files spread over directories of 100, their sizes
//! drawn around `bytes / files` (a few large ones, many small ones, as in a distribution
//! image), filled with compressible text so the codecs do real work. Every later layer
//! rewrites a slice of the base's files, deletes some (whiteouts), adds new ones, hard-links
//! one, and makes one directory opaque: the overlay rules all get exercised on every run.

#![allow(dead_code)] // each includer uses part of it

use std::io::Write;

/// How big a synthetic image is.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Regular files in the base layer.
    pub files: usize,
    /// Bytes of file content in the base layer, about.
    pub bytes: u64,
    /// Layers in all, the base included (at least 1).
    pub layers: usize,
}

const PER_DIR: usize = 100;
const MTIME: u64 = 1_700_000_000;

/// xorshift64: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Compressible content (~3:1 with gzip): words from a small vocabulary.
fn text(len: u64, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 16] = [
        b"squashfs ",
        b"layer ",
        b"overlay ",
        b"whiteout ",
        b"inode ",
        b"block ",
        b"fragment ",
        b"0x7f3a ",
        b"libc.so.6 ",
        b"/usr/lib/ ",
        b"ELF ",
        b"\x00\x00\x01 ",
        b"config ",
        b"manifest ",
        b"digest ",
        b"\n",
    ];
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(len as usize + 16);
    while (out.len() as u64) < len {
        let r = rng.next();
        out.extend_from_slice(WORDS[(r & 15) as usize]);
        if r & 0x30 == 0 {
            out.extend_from_slice(&r.to_le_bytes()[2..6]);
        }
    }
    out.truncate(len as usize);
    out
}

fn header(kind: tar::EntryType, size: u64, mode: u32) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(MTIME);
    h.set_uid(0);
    h.set_gid(0);
    h
}

struct LayerWriter {
    tar: tar::Builder<Vec<u8>>,
    entries: usize,
    data: u64,
}

impl LayerWriter {
    fn new() -> LayerWriter {
        LayerWriter {
            tar: tar::Builder::new(Vec::new()),
            entries: 0,
            data: 0,
        }
    }

    fn dir(&mut self, path: &str) {
        let mut h = header(tar::EntryType::Directory, 0, 0o755);
        self.tar
            .append_data(&mut h, path, &[][..])
            .expect("in-memory tar");
        self.entries += 1;
    }

    fn file(&mut self, path: &str, len: u64, seed: u64) {
        let mut h = header(tar::EntryType::Regular, len, 0o644);
        self.tar
            .append_data(&mut h, path, &text(len, seed)[..])
            .expect("in-memory tar");
        self.entries += 1;
        self.data += len;
    }

    fn link(&mut self, path: &str, target: &str) {
        let mut h = header(tar::EntryType::Link, 0, 0o644);
        self.tar
            .append_link(&mut h, path, target)
            .expect("in-memory tar");
        self.entries += 1;
    }

    fn symlink(&mut self, path: &str, target: &str) {
        let mut h = header(tar::EntryType::Symlink, 0, 0o777);
        self.tar
            .append_link(&mut h, path, target)
            .expect("in-memory tar");
        self.entries += 1;
    }

    fn empty(&mut self, path: &str) {
        self.file(path, 0, 0);
    }

    fn finish(self) -> Layer {
        Layer {
            entries: self.entries,
            data: self.data,
            tar: self.tar.into_inner().expect("in-memory tar"),
        }
    }
}

/// One layer's uncompressed tar stream.
pub struct Layer {
    /// Tar entries in it.
    pub entries: usize,
    /// Bytes of file content in it.
    pub data: u64,
    /// The tar bytes.
    pub tar: Vec<u8>,
}

fn base_path(i: usize) -> String {
    format!("usr/lib/d{:04}/f{:03}", i / PER_DIR, i % PER_DIR)
}

/// Sizes summing to about `bytes` over `files` files: most small, one in 64 large.
fn size(i: usize, shape: &Shape) -> u64 {
    let mean = shape.bytes / shape.files.max(1) as u64;
    let mut rng = Rng((i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let r = rng.next();
    if r.is_multiple_of(64) {
        mean * 20 + r % (mean + 1)
    } else {
        (mean * 7 / 10).max(1) + r % (mean * 3 / 10 + 1)
    }
}

/// The whole stack, oldest first.
pub fn layers(shape: &Shape) -> Vec<Layer> {
    let mut out = Vec::with_capacity(shape.layers);
    let mut base = LayerWriter::new();
    for d in ["usr", "usr/lib", "etc", "var", "var/lib"] {
        base.dir(d);
    }
    for i in 0..shape.files {
        if i % PER_DIR == 0 {
            base.dir(&format!("usr/lib/d{:04}", i / PER_DIR));
        }
        base.file(&base_path(i), size(i, shape), i as u64);
    }
    base.symlink("lib", "usr/lib");
    out.push(base.finish());
    // Each upper layer touches ~1/(4 L) of the base, so the stack stays base-dominated.
    let slice = (shape.files / (4 * shape.layers.max(1))).max(1);
    for l in 1..shape.layers {
        let mut w = LayerWriter::new();
        // Consecutive indices from a random start: no path is touched twice in one layer.
        let start = (Rng(l as u64 * 7919).next() as usize) % shape.files.max(1);
        for k in 0..slice.min(shape.files) {
            let i = (start + k) % shape.files;
            match k % 4 {
                0 | 1 => w.file(
                    &base_path(i),
                    size(i, shape) / 2 + 1,
                    (l * 1_000_003 + i) as u64,
                ),
                2 => {
                    let p = base_path(i);
                    let (dir, name) = p.rsplit_once('/').expect("nested");
                    w.empty(&format!("{dir}/.wh.{name}"));
                }
                _ => w.file(
                    &format!("var/lib/l{l:03}-{k}"),
                    512 + (k as u64 % 4096),
                    k as u64,
                ),
            }
        }
        w.file(&format!("etc/layer-{l:03}"), 64, l as u64);
        w.link(
            &format!("etc/layer-{l:03}.link"),
            &format!("etc/layer-{l:03}"),
        );
        if shape.files >= PER_DIR {
            let d = (l * 13) % shape.files.div_ceil(PER_DIR);
            w.dir(&format!("usr/lib/d{d:04}"));
            w.empty(&format!("usr/lib/d{d:04}/.wh..wh..opq"));
            w.file(&format!("usr/lib/d{d:04}/replacement"), 1000, l as u64);
        }
        out.push(w.finish());
    }
    out
}

/// Gzip one layer at `level`, as registries serve them.
pub fn gzip(tar: &[u8], level: u32) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    enc.write_all(tar).expect("in-memory gzip");
    enc.finish().expect("in-memory gzip")
}
