//! The `merge` target's input: layer stacks, either raw tar bytes or built from a small DSL.
//!
//! The first byte picks the mode. Raw mode (odd) splits the rest into 1–8 layers of arbitrary
//! bytes, which reach the tar reader as they are. Structured mode (even) builds 1–6 layers of
//! up to 10 operations each over a small name space (`a`, `a/x`, `b/y`, …, plus the names that
//! trip implementations: `./a`, `/b/x`, `..`, `.wh.`, AUFS names, long and non-UTF-8 names), so
//! that whiteouts, opaque markers, replacements and hard links meet in most inputs: random tar
//! bytes almost never get past a header checksum, let alone into an interesting overlay state.
//!
//! `Debug` prints the stack as `ImageBuilder` code for `tests/regression.rs`.

use std::fmt;

use arbitrary::{Arbitrary, Unstructured};

use crate::builder::{Codec, Layer, LongNames, MTIME};
use crate::codec::{self, lit, Enc};

/// Most layers in raw mode.
pub const MAX_RAW_LAYERS: usize = 8;
/// Most layers in structured mode.
pub const MAX_LAYERS: usize = 6;
/// Most operations per structured layer.
pub const MAX_OPS: usize = 10;

/// A layer stack to merge.
#[derive(Clone, PartialEq, Eq)]
pub enum MergeInput {
    /// Uncompressed tar streams as bytes, oldest first; each is merged as given and again
    /// gzip-compressed through the layer decoder.
    Raw(Vec<Vec<u8>>),
    /// Layers from the DSL, oldest first.
    Layers(Vec<LayerSpec>),
}

/// One structured layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    /// Index into [`CODECS`].
    pub codec: usize,
    /// Index into [`LONG_NAMES`].
    pub long_names: usize,
    /// Bytes after the end-of-archive marker.
    pub trailing: Vec<u8>,
    /// The entries, with modifiers of the previous entry between them.
    pub ops: Vec<Op>,
}

/// Compressions a structured layer may use (xz and bzip2 are left out: their encoders cost
/// milliseconds per layer, and the decoders are covered by the tests).
pub const CODECS: [Codec; 5] = [
    Codec::Plain,
    Codec::Gzip,
    Codec::GzipMultiMember,
    Codec::Zstd,
    Codec::ZstdMultiFrame,
];

/// How long names are written.
pub const LONG_NAMES: [LongNames; 3] = [LongNames::Pax, LongNames::Gnu, LongNames::UstarPrefix];

/// One builder call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A directory (mode and mtime are indexes into [`MODES`] and [`MTIMES`]).
    Dir(Name, usize, usize),
    /// A regular file (mode index into [`MODES`]).
    File(Name, Content, usize),
    /// A symbolic link.
    Symlink(Name, Target),
    /// A hard link to a path.
    Hardlink(Name, Name),
    /// A whiteout of a path.
    Whiteout(Name),
    /// An opaque marker in a directory.
    Opaque(Name),
    /// A named pipe.
    Fifo(Name),
    /// A character device (indexes into [`DEVICE_NUMBERS`]).
    CharDev(Name, usize, usize),
    /// A block device (indexes into [`DEVICE_NUMBERS`]).
    BlockDev(Name, usize, usize),
    /// A PAX 1.0 sparse file: `(gap before, data)` regions, then a hole of `tail` bytes.
    Sparse(Name, Vec<(u16, Content)>, u16),
    /// Sets the previous entry's owner (indexes into [`IDS`]).
    Owner(usize, usize),
    /// Sets the previous entry's mtime (index into [`MTIMES`]).
    Mtime(usize),
    /// Sets the previous entry's mode (index into [`MODES`]).
    Mode(usize),
    /// Adds an xattr to the previous entry (name index into [`XATTR_NAMES`]; a non-empty
    /// value).
    Xattr(usize, Vec<u8>),
}

/// A path as written in the tar header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Name {
    /// One of [`names`].
    Table(usize),
    /// Any bytes but NUL (which no tar header can hold inside a name).
    Raw(Vec<u8>),
}

/// A symlink target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// One of [`SYMLINK_TARGETS`].
    Table(usize),
    /// Any bytes but NUL.
    Raw(Vec<u8>),
}

/// File content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// These bytes.
    Bytes(Vec<u8>),
    /// `len` copies of `byte` (large files: several 4 KiB squashfs blocks, sparse zeros).
    Fill(u8, u16),
}

/// Permission bits.
pub const MODES: [u32; 8] = [0o755, 0o644, 0o700, 0o4755, 0o1777, 0o000, 0o7777, 0o2750];
/// Modification times (negative, zero, beyond u32, far past).
pub const MTIMES: [i64; 8] = [
    MTIME,
    0,
    5,
    -1,
    (1 << 32) + 5,
    -3_155_760_000,
    1,
    2_000_000_000,
];
/// Owners and groups (8-digit octal fits up to 2097151; bigger ones go to PAX).
pub const IDS: [u32; 8] = [0, 1, 1000, 65534, 65535, 65536, 4_294_967_294, 2_097_152];
/// Device numbers (squashfs holds majors < 4096 and minors < 2^20; the tar writer's octal
/// fields hold < 2^21).
pub const DEVICE_NUMBERS: [u32; 6] = [0, 1, 3, 4095, 4096, (1 << 21) - 1];
/// Xattr names: storable in squashfs and on tmpfs, and some that are not.
pub const XATTR_NAMES: [&[u8]; 6] = [
    b"user.a",
    b"user.b",
    b"trusted.overlay.opaque",
    b"user.\xff\xfe",
    b"nonamespace",
    b"user.",
];
/// Symlink targets.
pub const SYMLINK_TARGETS: [&[u8]; 7] = [b"a", b"../x", b"/b/y", b"x/y", b"", b"a/x", b"."];

/// The name table: ordinary names over a tiny space so that paths collide, and the names of
/// DESIGN.md's tricky cases.
pub fn names() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = [
        &b"a"[..],
        b"b",
        b"c",
        b"a/x",
        b"a/y",
        b"b/x",
        b"b/y",
        b"a/x/y",
        b"./a",
        b"a/",
        b"/b/x",
        b"a//x",
        b".",
        b"",
        b"c/d/e",
        b"\xff\xfe",
        b"a/\xc3\xa9",
        b"..",
        b"a/../b",
        b".wh..wh.plnk/1",
        b".wh..wh.aufs",
        b".wh..wh.orph/x",
        b".wh.",
        b".wh..",
        b".wh...",
        b"a/.wh..wh..opq",
        b".wh.a",
        b"a/.wh.x",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    // A name the ustar prefix can split, and one it cannot (a 120-byte component).
    v.push([vec![b'l'; 50], b"/".to_vec(), vec![b'm'; 70]].concat());
    v.push([b"a/".to_vec(), vec![b'n'; 120]].concat());
    v
}

impl Name {
    fn decode(u: &mut Unstructured<'_>, table: usize) -> Name {
        let t = codec::u8(u);
        if t >= 240 {
            Name::Raw(no_nul(codec::short_bytes(u, 40)))
        } else {
            Name::Table(usize::from(t) % table)
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            Name::Table(i) => e.pick(*i),
            Name::Raw(b) => e.u8(240).short_bytes(b),
        };
    }

    /// The bytes of the name.
    pub fn bytes(&self, table: &[Vec<u8>]) -> Vec<u8> {
        match self {
            Name::Table(i) => table[*i].clone(),
            Name::Raw(b) => b.clone(),
        }
    }
}

fn no_nul(mut b: Vec<u8>) -> Vec<u8> {
    b.retain(|&c| c != 0);
    b
}

impl Target {
    /// Decodes a target.
    pub fn decode(u: &mut Unstructured<'_>) -> Target {
        let t = codec::u8(u);
        match t {
            0..=199 => Target::Table(usize::from(t) % SYMLINK_TARGETS.len()),
            200..=219 => Target::Raw(vec![b't'; 150 + usize::from(t - 200)]),
            // Squashfs's limit is 4096 bytes, Linux's 4095.
            220..=222 => Target::Raw(vec![b't'; 4095 + usize::from(t - 220)]),
            _ => Target::Raw(no_nul(codec::short_bytes(u, 64))),
        }
    }

    /// Encodes a target.
    pub fn encode(&self, e: &mut Enc) {
        match self {
            Target::Table(i) => e.pick(*i),
            Target::Raw(b) if (150..170).contains(&b.len()) && b.iter().all(|&c| c == b't') => {
                e.pick(200 + b.len() - 150)
            }
            Target::Raw(b) if (4095..4098).contains(&b.len()) && b.iter().all(|&c| c == b't') => {
                e.pick(220 + b.len() - 4095)
            }
            Target::Raw(b) => e.u8(255).short_bytes(b),
        };
    }

    /// The target's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Target::Table(i) => SYMLINK_TARGETS[*i].to_vec(),
            Target::Raw(b) => b.clone(),
        }
    }
}

impl Content {
    /// Decodes content.
    pub fn decode(u: &mut Unstructured<'_>) -> Content {
        if codec::u8(u) < 192 {
            Content::Bytes(codec::short_bytes(u, 255))
        } else {
            Content::Fill(codec::u8(u), codec::u16(u) % 20_001)
        }
    }

    /// Encodes content.
    pub fn encode(&self, e: &mut Enc) {
        match self {
            Content::Bytes(b) => e.u8(0).short_bytes(b),
            Content::Fill(b, n) => e.u8(192).u8(*b).u16(*n),
        };
    }

    /// The content's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Content::Bytes(b) => b.clone(),
            Content::Fill(b, n) => vec![*b; usize::from(*n)],
        }
    }
}

const OPS: usize = 16;

impl Op {
    fn decode(u: &mut Unstructured<'_>, table: usize) -> Op {
        let name = |u: &mut Unstructured<'_>| Name::decode(u, table);
        match codec::pick(u, OPS) {
            0 => Op::Dir(
                name(u),
                codec::pick(u, MODES.len()),
                codec::pick(u, MTIMES.len()),
            ),
            1 | 2 => Op::File(name(u), Content::decode(u), codec::pick(u, MODES.len())),
            3 => Op::Symlink(name(u), Target::decode(u)),
            4 | 5 => Op::Hardlink(name(u), name(u)),
            6 => Op::Whiteout(name(u)),
            7 => Op::Opaque(name(u)),
            8 => Op::Fifo(name(u)),
            9 => Op::CharDev(
                name(u),
                codec::pick(u, DEVICE_NUMBERS.len()),
                codec::pick(u, DEVICE_NUMBERS.len()),
            ),
            10 => Op::BlockDev(
                name(u),
                codec::pick(u, DEVICE_NUMBERS.len()),
                codec::pick(u, DEVICE_NUMBERS.len()),
            ),
            11 => {
                let n = name(u);
                let count = codec::pick(u, 4);
                let regions = (0..count)
                    .map(|_| (codec::u16(u) % 9_000, Content::decode(u)))
                    .collect();
                Op::Sparse(n, regions, codec::u16(u) % 9_000)
            }
            12 => Op::Owner(codec::pick(u, IDS.len()), codec::pick(u, IDS.len())),
            13 => Op::Mtime(codec::pick(u, MTIMES.len())),
            14 => Op::Mode(codec::pick(u, MODES.len())),
            _ => {
                let name = codec::pick(u, XATTR_NAMES.len());
                let mut value = codec::short_bytes(u, 64);
                if value.is_empty() {
                    // A PAX record with an empty value deletes the keyword: no xattr.
                    value.push(b'v');
                }
                Op::Xattr(name, value)
            }
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            Op::Dir(n, m, t) => {
                e.pick(0);
                n.encode(e);
                e.pick(*m).pick(*t);
            }
            Op::File(n, c, m) => {
                e.pick(1);
                n.encode(e);
                c.encode(e);
                e.pick(*m);
            }
            Op::Symlink(n, t) => {
                e.pick(3);
                n.encode(e);
                t.encode(e);
            }
            Op::Hardlink(n, t) => {
                e.pick(4);
                n.encode(e);
                t.encode(e);
            }
            Op::Whiteout(n) => {
                e.pick(6);
                n.encode(e);
            }
            Op::Opaque(n) => {
                e.pick(7);
                n.encode(e);
            }
            Op::Fifo(n) => {
                e.pick(8);
                n.encode(e);
            }
            Op::CharDev(n, a, b) | Op::BlockDev(n, a, b) => {
                e.pick(if matches!(self, Op::CharDev(..)) {
                    9
                } else {
                    10
                });
                n.encode(e);
                e.pick(*a).pick(*b);
            }
            Op::Sparse(n, regions, tail) => {
                e.pick(11);
                n.encode(e);
                e.pick(regions.len());
                for (gap, c) in regions {
                    e.u16(*gap);
                    c.encode(e);
                }
                e.u16(*tail);
            }
            Op::Owner(a, b) => {
                e.pick(12).pick(*a).pick(*b);
            }
            Op::Mtime(t) => {
                e.pick(13).pick(*t);
            }
            Op::Mode(m) => {
                e.pick(14).pick(*m);
            }
            Op::Xattr(n, v) => {
                e.pick(15).pick(*n).short_bytes(v);
            }
        }
    }
}

impl LayerSpec {
    /// Decodes a layer.
    pub fn decode(u: &mut Unstructured<'_>, table: usize) -> LayerSpec {
        let codec = codec::pick(u, CODECS.len());
        let long_names = codec::pick(u, LONG_NAMES.len());
        let trailing = if codec::u8(u) >= 240 {
            codec::short_bytes(u, 64)
        } else {
            Vec::new()
        };
        let count = codec::pick(u, MAX_OPS + 1);
        let ops = (0..count).map(|_| Op::decode(u, table)).collect();
        LayerSpec {
            codec,
            long_names,
            trailing,
            ops,
        }
    }

    /// Encodes a layer.
    pub fn encode(&self, e: &mut Enc) {
        e.pick(self.codec).pick(self.long_names);
        if self.trailing.is_empty() {
            e.u8(0);
        } else {
            e.u8(240).short_bytes(&self.trailing);
        }
        e.pick(self.ops.len());
        for op in &self.ops {
            op.encode(e);
        }
    }

    /// The builder layer this spec describes.
    pub fn to_layer(&self) -> Layer {
        let table = names();
        let mut l = Layer::new()
            .compression(CODECS[self.codec])
            .long_names(LONG_NAMES[self.long_names]);
        if !self.trailing.is_empty() {
            l = l.trailing_garbage(&self.trailing);
        }
        for op in &self.ops {
            let has_last = !l.entries.is_empty();
            l = match op {
                Op::Dir(n, m, t) => l.dir(n.bytes(&table), MODES[*m]).with_mtime(MTIMES[*t]),
                Op::File(n, c, m) => l.file(n.bytes(&table), c.bytes(), MODES[*m]),
                Op::Symlink(n, t) => l.symlink(n.bytes(&table), t.bytes()),
                Op::Hardlink(n, t) => l.hardlink(n.bytes(&table), t.bytes(&table)),
                Op::Whiteout(n) => l.whiteout(n.bytes(&table)),
                Op::Opaque(n) => l.opaque(n.bytes(&table)),
                Op::Fifo(n) => l.fifo(n.bytes(&table)),
                Op::CharDev(n, a, b) => {
                    l.char_dev(n.bytes(&table), DEVICE_NUMBERS[*a], DEVICE_NUMBERS[*b])
                }
                Op::BlockDev(n, a, b) => {
                    l.block_dev(n.bytes(&table), DEVICE_NUMBERS[*a], DEVICE_NUMBERS[*b])
                }
                Op::Sparse(n, regions, tail) => {
                    let mut at = 0u64;
                    let mut data: Vec<(u64, Vec<u8>)> = Vec::new();
                    for (gap, c) in regions {
                        let bytes = c.bytes();
                        at += u64::from(*gap);
                        let len = bytes.len() as u64;
                        data.push((at, bytes));
                        at += len;
                    }
                    let size = at + u64::from(*tail);
                    let refs: Vec<(u64, &[u8])> =
                        data.iter().map(|(o, b)| (*o, b.as_slice())).collect();
                    // A PAX record with an empty value deletes the record (POSIX), so a sparse
                    // file's GNU.sparse.name cannot be "": the reader rightly takes the header's
                    // placeholder name instead. "." names the same path (the root).
                    let name = Some(n.bytes(&table))
                        .filter(|b| !b.is_empty())
                        .unwrap_or_else(|| b".".to_vec());
                    l.sparse_file(name, size, &refs)
                }
                Op::Owner(a, b) if has_last => l.with_owner(IDS[*a], IDS[*b]),
                Op::Mtime(t) if has_last => l.with_mtime(MTIMES[*t]),
                Op::Mode(m) if has_last => l.with_mode(MODES[*m]),
                Op::Xattr(n, v) if has_last => l.with_xattr(XATTR_NAMES[*n], v),
                // A modifier with no entry before it.
                Op::Owner(..) | Op::Mtime(_) | Op::Mode(_) | Op::Xattr(..) => l,
            };
        }
        l
    }
}

impl MergeInput {
    /// The bytes this input decodes from (for seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        match self {
            MergeInput::Raw(layers) => {
                e.u8(1).pick(layers.len() - 1);
                let (last, rest) = layers.split_last().expect("at least one layer");
                for l in rest {
                    e.bytes(l);
                }
                e.run(last);
            }
            MergeInput::Layers(layers) => {
                e.u8(0).pick(layers.len() - 1);
                for l in layers {
                    l.encode(&mut e);
                }
            }
        }
        e.0
    }

    /// The builder layers of a structured input (`None` in raw mode).
    pub fn layers(&self) -> Option<Vec<Layer>> {
        match self {
            MergeInput::Raw(_) => None,
            MergeInput::Layers(specs) => Some(specs.iter().map(LayerSpec::to_layer).collect()),
        }
    }
}

impl<'a> Arbitrary<'a> for MergeInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        if codec::u8(u) & 1 == 1 {
            let n = 1 + codec::pick(u, MAX_RAW_LAYERS);
            let mut layers: Vec<Vec<u8>> = (0..n - 1).map(|_| codec::bytes(u, 1 << 16)).collect();
            layers.push(codec::run(u, u.len()));
            Ok(MergeInput::Raw(layers))
        } else {
            let table = names().len();
            let n = 1 + codec::pick(u, MAX_LAYERS);
            Ok(MergeInput::Layers(
                (0..n).map(|_| LayerSpec::decode(u, table)).collect(),
            ))
        }
    }
}

/// Builder code for `tests/regression.rs`.
impl fmt::Debug for MergeInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "ImageBuilder::new()")?;
        match self {
            MergeInput::Raw(layers) => {
                for l in layers {
                    writeln!(
                        f,
                        "    .layer(Layer::from_tar_bytes({}.to_vec()).compression(Codec::Plain))",
                        lit_bytes(l)
                    )?;
                }
            }
            MergeInput::Layers(_) => {
                for l in self.layers().unwrap_or_default() {
                    writeln!(f, "    .layer({l:?})")?;
                }
            }
        }
        Ok(())
    }
}

/// A byte-string literal (`b"…"`) whatever the bytes.
pub fn lit_bytes(b: &[u8]) -> String {
    let s = lit(b);
    if s.starts_with('b') {
        s
    } else {
        // Force a byte string: `"abc"` → `b"abc"` (same escapes for ASCII; others as \x).
        let mut out = String::from("b\"");
        for &c in b {
            match c {
                b'"' | b'\\' => {
                    out.push('\\');
                    out.push(char::from(c));
                }
                0x20..=0x7e => out.push(char::from(c)),
                _ => out.push_str(&format!("\\x{c:02x}")),
            }
        }
        out.push('"');
        out
    }
}
