//! Image layouts written from code: layers from a small DSL, no downloads.
//!
//! A [`Layer`] is a list of tar entries written exactly as given (names are not normalized, so
//! `./a//b/` is spelled `./a//b/`), plus how the tar is compressed. An [`ImageBuilder`] stacks
//! layers (oldest first) and writes them as an OCI image layout, a `docker save` directory or
//! tar file, a bare manifest directory, or a multi-platform index, with every digest and size
//! right. [`Built`] then knows where every blob went, so a test can corrupt one of them.
//!
//! The tar writer is our own (not the `tar` crate) because the tests need headers no
//! well-behaved writer produces: whiteouts stored as hard links, names with `..`, PAX sparse
//! maps, GNU long-name records, trailing garbage after the end-of-archive marker, absurd sizes.
//! Defaults keep tests deterministic: uid/gid 0, mtime [`MTIME`], no user or group names.
//!
//! ```ignore
//! let img = ImageBuilder::new()
//!     .layer(Layer::new().dir("etc", 0o755).file("etc/passwd", b"root\n", 0o644))
//!     .layer(Layer::new().whiteout("etc/passwd").compression(Codec::Zstd))
//!     .tag("latest")
//!     .build(tmp.path().join("img"));
//! ```
#![allow(dead_code)]

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// The mtime of every entry unless a test sets another.
pub const MTIME: i64 = 1_700_000_000;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// An uncompressed tar.
    Plain,
    /// One gzip member.
    Gzip,
    /// Several gzip members back to back (as eStargz writes).
    GzipMultiMember,
    /// One zstd frame.
    Zstd,
    /// Several zstd frames with a skippable frame between them.
    ZstdMultiFrame,
    /// xz.
    Xz,
    /// bzip2.
    Bzip2,
}

impl Codec {
    /// Every codec.
    pub const ALL: [Codec; 7] = [
        Codec::Plain,
        Codec::Gzip,
        Codec::GzipMultiMember,
        Codec::Zstd,
        Codec::ZstdMultiFrame,
        Codec::Xz,
        Codec::Bzip2,
    ];

    /// The OCI layer media type. OCI names no media type for xz or bzip2; those get a `+xz` /
    /// `+bzip2` suffix, which readers treat as unknown and detect by magic bytes.
    pub fn media_type(self) -> &'static str {
        match self {
            Codec::Plain => "application/vnd.oci.image.layer.v1.tar",
            Codec::Gzip | Codec::GzipMultiMember => "application/vnd.oci.image.layer.v1.tar+gzip",
            Codec::Zstd | Codec::ZstdMultiFrame => "application/vnd.oci.image.layer.v1.tar+zstd",
            Codec::Xz => "application/vnd.oci.image.layer.v1.tar+xz",
            Codec::Bzip2 => "application/vnd.oci.image.layer.v1.tar+bzip2",
        }
    }

    /// Compresses `data`.
    pub fn compress(self, data: &[u8]) -> Vec<u8> {
        // Three pieces, so multi-member/multi-frame streams really have several parts even for
        // tiny layers (the pieces split headers from data at arbitrary byte positions).
        let pieces = |n: usize| -> Vec<&[u8]> {
            let step = data.len().div_ceil(n).max(1);
            data.chunks(step).collect()
        };
        match self {
            Codec::Plain => data.to_vec(),
            Codec::Gzip => gzip(data),
            Codec::GzipMultiMember => pieces(3).into_iter().flat_map(gzip).collect(),
            Codec::Zstd => zstd::encode_all(data, 3).unwrap(),
            Codec::ZstdMultiFrame => {
                let mut out = Vec::new();
                for (i, p) in pieces(3).into_iter().enumerate() {
                    if i == 1 {
                        // A skippable frame: magic 0x184D2A5? (LE), u32 length, payload.
                        out.extend_from_slice(&0x184D_2A50u32.to_le_bytes());
                        out.extend_from_slice(&5u32.to_le_bytes());
                        out.extend_from_slice(b"skip!");
                    }
                    out.extend(zstd::encode_all(p, 3).unwrap());
                }
                out
            }
            Codec::Xz => {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 6);
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
            Codec::Bzip2 => {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                e.write_all(data).unwrap();
                e.finish().unwrap()
            }
        }
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// How names and link targets longer than the 100-byte ustar field are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongNames {
    /// PAX `path` / `linkpath` records (the default).
    Pax,
    /// GNU `L` / `K` records (`././@LongLink`).
    Gnu,
    /// The ustar `prefix` field where the name can be split at a `/` (prefix ≤ 155, name ≤ 100
    /// bytes); PAX otherwise, and for link targets.
    UstarPrefix,
}

/// What a tar entry is.
#[derive(Clone, PartialEq, Eq)]
pub enum Body {
    /// A regular file with this content.
    File(Vec<u8>),
    /// A directory.
    Dir,
    /// A symbolic link to this target.
    Symlink(Vec<u8>),
    /// A hard link to this path (as written in the header).
    Hardlink(Vec<u8>),
    /// A character device (major, minor).
    CharDev(u32, u32),
    /// A block device (major, minor).
    BlockDev(u32, u32),
    /// A named pipe.
    Fifo,
    /// A PAX 1.0 sparse file of `size` bytes whose data regions are `(offset, bytes)`.
    Sparse {
        /// Size with holes.
        size: u64,
        /// Data regions, sorted, not overlapping.
        regions: Vec<(u64, Vec<u8>)>,
    },
}

/// One tar entry: the name as written and the attributes of its header.
#[derive(Clone, PartialEq, Eq)]
pub struct TarEntry {
    /// The name exactly as the header (or PAX record) holds it.
    pub name: Vec<u8>,
    /// Type and payload.
    pub body: Body,
    /// Permission bits (with setuid/setgid/sticky).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (negative or huge values go to a PAX record).
    pub mtime: i64,
    /// Extended attributes, as `SCHILY.xattr.NAME` records, in this order.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One layer: its tar entries and how the blob is encoded.
#[derive(Clone, PartialEq, Eq)]
pub struct Layer {
    /// The entries, in tar order.
    pub entries: Vec<TarEntry>,
    /// Compression of the blob. By default, [`Codec::Gzip`].
    pub codec: Codec,
    /// How long names are written. By default, [`LongNames::Pax`].
    pub long_names: LongNames,
    /// Bytes appended after the end-of-archive marker (inside the compressed stream).
    pub trailing: Vec<u8>,
    /// A tar stream given as bytes, used instead of `entries` (for hand-made bad input).
    pub raw_tar: Option<Vec<u8>>,
    /// A media type to write instead of the codec's.
    pub media_type: Option<String>,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::new()
    }
}

fn bytes(p: impl AsRef<[u8]>) -> Vec<u8> {
    p.as_ref().to_vec()
}

impl Layer {
    /// An empty gzip layer.
    pub fn new() -> Layer {
        Layer {
            entries: Vec::new(),
            codec: Codec::Gzip,
            long_names: LongNames::Pax,
            trailing: Vec::new(),
            raw_tar: None,
            media_type: None,
        }
    }

    /// A layer whose tar stream is `tar` as given (still compressed with [`Layer::compression`]).
    pub fn from_tar_bytes(tar: Vec<u8>) -> Layer {
        Layer {
            raw_tar: Some(tar),
            ..Layer::new()
        }
    }

    /// Appends an entry of any kind, with default attributes.
    pub fn entry(mut self, name: impl AsRef<[u8]>, body: Body, mode: u32) -> Layer {
        self.entries.push(TarEntry {
            name: bytes(name),
            body,
            mode,
            uid: 0,
            gid: 0,
            mtime: MTIME,
            xattrs: Vec::new(),
        });
        self
    }

    /// A directory.
    pub fn dir(self, path: impl AsRef<[u8]>, mode: u32) -> Layer {
        self.entry(path, Body::Dir, mode)
    }

    /// A regular file.
    pub fn file(self, path: impl AsRef<[u8]>, content: impl AsRef<[u8]>, mode: u32) -> Layer {
        self.entry(path, Body::File(bytes(content)), mode)
    }

    /// A symbolic link (mode 0777).
    pub fn symlink(self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Layer {
        self.entry(path, Body::Symlink(bytes(target)), 0o777)
    }

    /// A hard link to `target` (mode 0644 in the header; readers use the target's).
    pub fn hardlink(self, path: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Layer {
        self.entry(path, Body::Hardlink(bytes(target)), 0o644)
    }

    /// A whiteout of `path`: an empty file `dirname/.wh.basename`.
    pub fn whiteout(self, path: impl AsRef<[u8]>) -> Layer {
        let path = path.as_ref();
        let name = match path.iter().rposition(|&b| b == b'/') {
            Some(i) => [&path[..=i], b".wh.", &path[i + 1..]].concat(),
            None => [b".wh.", path].concat(),
        };
        self.entry(name, Body::File(Vec::new()), 0o644)
    }

    /// An opaque marker for directory `dir`: an empty file `dir/.wh..wh..opq`.
    pub fn opaque(self, dir: impl AsRef<[u8]>) -> Layer {
        let dir = dir.as_ref();
        let name = if dir.is_empty() {
            b".wh..wh..opq".to_vec()
        } else {
            [dir, b"/.wh..wh..opq"].concat()
        };
        self.entry(name, Body::File(Vec::new()), 0o644)
    }

    /// A character device.
    pub fn char_dev(self, path: impl AsRef<[u8]>, major: u32, minor: u32) -> Layer {
        self.entry(path, Body::CharDev(major, minor), 0o666)
    }

    /// A block device.
    pub fn block_dev(self, path: impl AsRef<[u8]>, major: u32, minor: u32) -> Layer {
        self.entry(path, Body::BlockDev(major, minor), 0o660)
    }

    /// A named pipe.
    pub fn fifo(self, path: impl AsRef<[u8]>) -> Layer {
        self.entry(path, Body::Fifo, 0o644)
    }

    /// A PAX 1.0 sparse file of `size` bytes with data `regions` `(offset, bytes)`.
    ///
    /// The regions' data follow each other in the archive. GNU tar, though, reads each region
    /// from a block boundary (its own archives only have regions of whole blocks but the last),
    /// so for GNU tar to read the file every region but the last must be a multiple of 512
    /// bytes long.
    pub fn sparse_file(self, path: impl AsRef<[u8]>, size: u64, regions: &[(u64, &[u8])]) -> Layer {
        let regions = regions.iter().map(|&(o, b)| (o, b.to_vec())).collect();
        self.entry(path, Body::Sparse { size, regions }, 0o644)
    }

    fn last(&mut self) -> &mut TarEntry {
        self.entries
            .last_mut()
            .expect("a modifier needs an entry before it")
    }

    /// Sets the owner of the last entry.
    pub fn with_owner(mut self, uid: u32, gid: u32) -> Layer {
        let e = self.last();
        e.uid = uid;
        e.gid = gid;
        self
    }

    /// Sets the mtime of the last entry.
    pub fn with_mtime(mut self, mtime: i64) -> Layer {
        self.last().mtime = mtime;
        self
    }

    /// Sets the mode of the last entry.
    pub fn with_mode(mut self, mode: u32) -> Layer {
        self.last().mode = mode;
        self
    }

    /// Adds an extended attribute to the last entry. (An empty value cannot be stored: a PAX
    /// record with an empty value deletes the keyword, and Go's reader drops it.)
    pub fn with_xattr(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Layer {
        self.last().xattrs.push((bytes(name), bytes(value)));
        self
    }

    /// Sets the compression. By default, gzip.
    pub fn compression(mut self, codec: Codec) -> Layer {
        self.codec = codec;
        self
    }

    /// Sets how long names are written. By default, PAX records.
    pub fn long_names(mut self, style: LongNames) -> Layer {
        self.long_names = style;
        self
    }

    /// Appends bytes after the end-of-archive marker.
    pub fn trailing_garbage(mut self, garbage: impl AsRef<[u8]>) -> Layer {
        self.trailing = bytes(garbage);
        self
    }

    /// Writes `media_type` in the manifest instead of the codec's.
    pub fn media_type(mut self, media_type: &str) -> Layer {
        self.media_type = Some(media_type.to_owned());
        self
    }

    /// The media type the manifest gives this layer.
    pub fn layer_media_type(&self) -> String {
        self.media_type
            .clone()
            .unwrap_or_else(|| self.codec.media_type().to_owned())
    }

    /// The uncompressed tar stream.
    pub fn to_tar_bytes(&self) -> Vec<u8> {
        if let Some(raw) = &self.raw_tar {
            return raw.clone();
        }
        let mut out = Vec::new();
        for e in &self.entries {
            write_entry(&mut out, e, self.long_names);
        }
        out.extend_from_slice(&[0u8; 1024]);
        out.extend_from_slice(&self.trailing);
        out
    }

    /// The blob as stored: the tar stream compressed with the layer's codec.
    pub fn blob_bytes(&self) -> Vec<u8> {
        self.codec.compress(&self.to_tar_bytes())
    }
}

// ---------------------------------------------------------------------------------------------
// Debug prints builder code, so a shrunk proptest case can be pasted into a test.

struct Lit<'a>(&'a [u8]);

impl fmt::Debug for Lit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => {
                f.write_str("b\"")?;
                for &b in self.0 {
                    match b {
                        b'"' | b'\\' => write!(f, "\\{}", b as char)?,
                        0x20..=0x7e => write!(f, "{}", b as char)?,
                        _ => write!(f, "\\x{b:02x}")?,
                    }
                }
                f.write_str("\"")
            }
        }
    }
}

impl fmt::Debug for TarEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = Lit(&self.name);
        let base = self.name.rsplit(|&b| b == b'/').next().unwrap_or(&[]);
        let dir = &self.name[..self.name.len() - base.len()];
        let plain_empty = matches!(&self.body, Body::File(c) if c.is_empty()) && self.mode == 0o644;
        match &self.body {
            _ if plain_empty && base == b".wh..wh..opq" => write!(
                f,
                ".opaque({:?})",
                Lit(dir.strip_suffix(b"/").unwrap_or(dir))
            )?,
            _ if plain_empty && base.starts_with(b".wh.") && !base.starts_with(b".wh..wh.") => {
                write!(f, ".whiteout({:?})", Lit(&[dir, &base[4..]].concat()))?
            }
            Body::File(c) => write!(f, ".file({n:?}, {:?}, 0o{:o})", Lit(c), self.mode)?,
            Body::Dir => write!(f, ".dir({n:?}, 0o{:o})", self.mode)?,
            Body::Symlink(t) => write!(f, ".symlink({n:?}, {:?})", Lit(t))?,
            Body::Hardlink(t) => write!(f, ".hardlink({n:?}, {:?})", Lit(t))?,
            Body::CharDev(a, b) => write!(f, ".char_dev({n:?}, {a}, {b})")?,
            Body::BlockDev(a, b) => write!(f, ".block_dev({n:?}, {a}, {b})")?,
            Body::Fifo => write!(f, ".fifo({n:?})")?,
            Body::Sparse { size, regions } => {
                write!(f, ".sparse_file({n:?}, {size}, &[")?;
                for (i, (o, b)) in regions.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}({o}, {:?})", Lit(b))?;
                }
                write!(f, "])")?;
            }
        }
        let default_mode = match &self.body {
            Body::Symlink(_) => 0o777,
            Body::Hardlink(_) => 0o644,
            Body::CharDev(..) => 0o666,
            Body::BlockDev(..) => 0o660,
            Body::Fifo => 0o644,
            _ => self.mode,
        };
        if self.mode != default_mode {
            write!(f, ".with_mode(0o{:o})", self.mode)?;
        }
        if (self.uid, self.gid) != (0, 0) {
            write!(f, ".with_owner({}, {})", self.uid, self.gid)?;
        }
        if self.mtime != MTIME {
            write!(f, ".with_mtime({})", self.mtime)?;
        }
        for (k, v) in &self.xattrs {
            write!(f, ".with_xattr({:?}, {:?})", Lit(k), Lit(v))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.raw_tar {
            Some(raw) => write!(f, "Layer::from_tar_bytes(/* {} bytes */)", raw.len())?,
            None => f.write_str("Layer::new()")?,
        }
        for e in &self.entries {
            write!(f, "{e:?}")?;
        }
        if self.codec != Codec::Gzip {
            write!(f, ".compression(Codec::{:?})", self.codec)?;
        }
        if self.long_names != LongNames::Pax {
            write!(f, ".long_names(LongNames::{:?})", self.long_names)?;
        }
        if !self.trailing.is_empty() {
            write!(f, ".trailing_garbage({:?})", Lit(&self.trailing))?;
        }
        if let Some(m) = &self.media_type {
            write!(f, ".media_type({m:?})")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The tar writer.

/// Raw tar pieces, for tests that hand-craft bad headers.
pub mod raw {
    /// Size of a tar block.
    pub const BLOCK: usize = 512;

    /// A ustar header (POSIX magic) with the checksum filled in. `name` and `link` must fit
    /// their 100-byte fields.
    #[allow(clippy::too_many_arguments)]
    pub fn header(
        name: &[u8],
        typeflag: u8,
        size: u64,
        mode: u32,
        uid: u32,
        gid: u32,
        mtime: u64,
        link: &[u8],
        dev: (u32, u32),
    ) -> [u8; BLOCK] {
        let mut h = [0u8; BLOCK];
        assert!(
            name.len() <= 100 && link.len() <= 100,
            "name or link too long for ustar"
        );
        h[..name.len()].copy_from_slice(name);
        octal(&mut h[100..108], mode as u64);
        octal(&mut h[108..116], uid as u64);
        octal(&mut h[116..124], gid as u64);
        octal(&mut h[124..136], size);
        octal(&mut h[136..148], mtime);
        h[156] = typeflag;
        h[157..157 + link.len()].copy_from_slice(link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        if matches!(typeflag, b'3' | b'4') {
            octal(&mut h[329..337], dev.0 as u64);
            octal(&mut h[337..345], dev.1 as u64);
        }
        set_checksum(&mut h);
        h
    }

    /// Writes `v` as zero-padded octal with a trailing NUL; panics if it does not fit.
    pub fn octal(field: &mut [u8], v: u64) {
        let digits = field.len() - 1;
        let s = format!("{v:0digits$o}");
        assert!(
            s.len() <= digits,
            "{v} does not fit a {digits}-digit octal field"
        );
        field[..digits].copy_from_slice(s.as_bytes());
        field[digits] = 0;
    }

    /// Whether `v` fits an octal field of `len` bytes.
    pub fn fits_octal(v: u64, len: usize) -> bool {
        v < 1u64 << (3 * (len - 1))
    }

    /// Recomputes the header checksum (the sum of all bytes with the checksum field as spaces).
    pub fn set_checksum(h: &mut [u8; BLOCK]) {
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| b as u32).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
    }

    /// Sets the size field of the header at `offset` in `tar` to `size` in base-256 (GNU), which
    /// holds any u64, and fixes the checksum.
    pub fn set_size_base256(tar: &mut [u8], offset: usize, size: u64) {
        let mut h: [u8; BLOCK] = tar[offset..offset + BLOCK].try_into().unwrap();
        h[124..136].fill(0);
        h[124] = 0x80;
        h[128..136].copy_from_slice(&size.to_be_bytes());
        set_checksum(&mut h);
        tar[offset..offset + BLOCK].copy_from_slice(&h);
    }

    /// One PAX record, `"<len> <key>=<value>\n"`, where `<len>` counts the whole record.
    pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
        let body = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        let mut r = format!("{len} ").into_bytes();
        r.extend_from_slice(key);
        r.push(b'=');
        r.extend_from_slice(value);
        r.push(b'\n');
        r
    }

    /// Pads `out` with zeros to a block boundary.
    pub fn pad(out: &mut Vec<u8>) {
        let rem = out.len() % BLOCK;
        if rem != 0 {
            out.resize(out.len() + BLOCK - rem, 0);
        }
    }

    /// An extended header (`x`) holding `records`, followed by its data blocks.
    pub fn pax_header(records: &[u8]) -> Vec<u8> {
        let mut out = header(
            b"././@PaxHeader",
            b'x',
            records.len() as u64,
            0o644,
            0,
            0,
            0,
            b"",
            (0, 0),
        )
        .to_vec();
        out.extend_from_slice(records);
        pad(&mut out);
        out
    }

    /// The end-of-archive marker: two zero blocks.
    pub fn end() -> Vec<u8> {
        vec![0u8; 2 * BLOCK]
    }
}

/// Writes a GNU `L`/`K` long-name record (`././@LongLink`, NUL-terminated content).
fn gnu_long(out: &mut Vec<u8>, typeflag: u8, value: &[u8]) {
    let mut h = raw::header(
        b"././@LongLink",
        typeflag,
        value.len() as u64 + 1,
        0o644,
        0,
        0,
        0,
        b"",
        (0, 0),
    );
    h[257..265].copy_from_slice(b"ustar  \0");
    raw::set_checksum(&mut h);
    out.extend_from_slice(&h);
    out.extend_from_slice(value);
    out.push(0);
    raw::pad(out);
}

/// Splits `name` into a ustar prefix (≤ 155) and name (≤ 100) at a `/`, if possible.
fn ustar_split(name: &[u8]) -> Option<(&[u8], &[u8])> {
    (0..name.len())
        .rev()
        .filter(|&i| name[i] == b'/')
        .find(|&i| i <= 155 && name.len() - i - 1 <= 100 && i > 0 && i + 1 < name.len())
        .map(|i| (&name[..i], &name[i + 1..]))
}

fn write_entry(out: &mut Vec<u8>, e: &TarEntry, style: LongNames) {
    let mut pax: Vec<u8> = Vec::new();
    let mut gnu = false;
    let (typeflag, link, dev, data): (u8, &[u8], (u32, u32), Vec<u8>) = match &e.body {
        Body::File(c) => (b'0', b"", (0, 0), c.clone()),
        Body::Dir => (b'5', b"", (0, 0), Vec::new()),
        Body::Symlink(t) => (b'2', t, (0, 0), Vec::new()),
        Body::Hardlink(t) => (b'1', t, (0, 0), Vec::new()),
        Body::CharDev(a, b) => (b'3', b"", (*a, *b), Vec::new()),
        Body::BlockDev(a, b) => (b'4', b"", (*a, *b), Vec::new()),
        Body::Fifo => (b'6', b"", (0, 0), Vec::new()),
        Body::Sparse { size, regions } => (
            b'0',
            b"",
            (0, 0),
            sparse_data(*size, regions, &mut pax, &e.name),
        ),
    };
    let sparse = matches!(e.body, Body::Sparse { .. });

    // The name in the header; a PAX record or GNU record carries it when it does not fit.
    let mut header_name: Vec<u8> = e.name.clone();
    let mut prefix: Vec<u8> = Vec::new();
    if sparse {
        // PAX 1.0 sparse: the real name is GNU.sparse.name; the header holds a placeholder.
        let base = e.name.rsplit(|&b| b == b'/').next().unwrap_or(b"f");
        header_name = [b"GNUSparseFile.0/".as_slice(), &base[..base.len().min(80)]].concat();
    } else if e.name.len() > 100 {
        match (style, ustar_split(&e.name)) {
            (LongNames::Gnu, _) => {
                gnu_long(out, b'L', &e.name);
                gnu = true;
                header_name.truncate(100);
            }
            (LongNames::UstarPrefix, Some((p, n))) => {
                prefix = p.to_vec();
                header_name = n.to_vec();
            }
            _ => {
                pax.extend(raw::pax_record(b"path", &e.name));
                header_name.truncate(100);
            }
        }
    }
    let mut header_link = link.to_vec();
    if link.len() > 100 {
        if style == LongNames::Gnu {
            gnu_long(out, b'K', link);
            gnu = true;
        } else {
            pax.extend(raw::pax_record(b"linkpath", link));
        }
        header_link.truncate(100);
    }
    let mut field = |key: &[u8], v: i64, len: usize| -> u64 {
        if v >= 0 && raw::fits_octal(v as u64, len) {
            v as u64
        } else {
            pax.extend(raw::pax_record(key, v.to_string().as_bytes()));
            0
        }
    };
    let uid = field(b"uid", e.uid as i64, 8) as u32;
    let gid = field(b"gid", e.gid as i64, 8) as u32;
    let mtime = field(b"mtime", e.mtime, 12);
    for (k, v) in &e.xattrs {
        pax.extend(raw::pax_record(
            &[b"SCHILY.xattr.".as_slice(), k].concat(),
            v,
        ));
    }
    if !pax.is_empty() {
        out.extend(raw::pax_header(&pax));
    }
    let mut h = raw::header(
        &header_name,
        typeflag,
        data.len() as u64,
        e.mode & 0o7777,
        uid,
        gid,
        mtime,
        &header_link,
        dev,
    );
    if !prefix.is_empty() {
        h[345..345 + prefix.len()].copy_from_slice(&prefix);
    }
    if gnu {
        h[257..265].copy_from_slice(b"ustar  \0");
    }
    raw::set_checksum(&mut h);
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    raw::pad(out);
}

/// The data of a PAX 1.0 sparse file (map, padded, then the regions) and its PAX records.
fn sparse_data(size: u64, regions: &[(u64, Vec<u8>)], pax: &mut Vec<u8>, name: &[u8]) -> Vec<u8> {
    let mut map: Vec<(u64, u64)> = regions.iter().map(|(o, b)| (*o, b.len() as u64)).collect();
    // GNU tar ends a map with an empty region at the end of the file when the file ends in a
    // hole, so extractors know to extend the file; we do the same.
    if map.last().is_none_or(|&(o, l)| o + l < size) {
        map.push((size, 0));
    }
    pax.extend(raw::pax_record(b"GNU.sparse.major", b"1"));
    pax.extend(raw::pax_record(b"GNU.sparse.minor", b"0"));
    pax.extend(raw::pax_record(b"GNU.sparse.name", name));
    pax.extend(raw::pax_record(
        b"GNU.sparse.realsize",
        size.to_string().as_bytes(),
    ));
    let mut data = format!("{}\n", map.len()).into_bytes();
    for (o, l) in &map {
        data.extend(format!("{o}\n{l}\n").into_bytes());
    }
    raw::pad(&mut data);
    for (_, b) in regions {
        data.extend_from_slice(b);
    }
    data
}

// ---------------------------------------------------------------------------------------------
// Images.

/// A blob written into a layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>` (for a legacy docker-save layer: the `diff_id`).
    pub digest: String,
    /// Size in bytes.
    pub size: u64,
    /// Where it is on disk (`None` inside a docker-save tar file).
    pub path: Option<PathBuf>,
    /// Its media type.
    pub media_type: String,
}

impl Blob {
    /// The hex digits of the digest.
    pub fn hex(&self) -> &str {
        self.digest.strip_prefix("sha256:").unwrap()
    }

    fn path(&self) -> &Path {
        self.path
            .as_deref()
            .expect("this blob is not a file of its own")
    }
}

/// One manifest of a built image.
#[derive(Clone, Debug)]
pub struct BuiltManifest {
    /// `os/arch[/variant]` when the index says.
    pub platform: Option<String>,
    /// The manifest blob (`None` for docker save, whose manifest.json is no blob).
    pub manifest: Option<Blob>,
    /// The config blob.
    pub config: Blob,
    /// The layer blobs, oldest first.
    pub layers: Vec<Blob>,
}

/// Which layout was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuiltLayout {
    /// OCI image layout directory.
    Oci,
    /// `docker save` directory (legacy: `<id>/layer.tar`).
    DockerSave,
    /// `docker save` tar file.
    DockerSaveTar,
    /// `manifest.json` beside blobs named by their hex digest (skopeo's `dir:` layout).
    BareManifest,
}

/// A layer's blob damaged on purpose.
#[derive(Clone, Debug)]
pub enum Corruption {
    /// XOR one byte at this offset with 0xff (negative: from the end).
    FlipByte(i64),
    /// Keep only the first this many bytes.
    Truncate(u64),
    /// Remove the blob file.
    Delete,
    /// Replace the content, keeping the descriptor (digest and size) as it was.
    Replace(Vec<u8>),
}

/// An image written by [`ImageBuilder`]. Derefs to its path.
#[derive(Clone, Debug)]
pub struct Built {
    /// The layout directory (or, for [`BuiltLayout::DockerSaveTar`], the tar file).
    pub path: PathBuf,
    /// The layout.
    pub layout: BuiltLayout,
    /// Every manifest (one unless multi-platform).
    pub manifests: Vec<BuiltManifest>,
}

impl std::ops::Deref for Built {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Built {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Built {
    /// The layer blobs of the first manifest, oldest first.
    pub fn layers(&self) -> &[Blob] {
        &self.manifests[0].layers
    }

    /// The digest of layer `k` of the first manifest.
    pub fn layer_digest(&self, k: usize) -> &str {
        &self.layers()[k].digest
    }

    /// Damages layer `k`'s blob.
    pub fn corrupt_layer(&self, k: usize, how: Corruption) {
        let path = self.layers()[k].path().to_path_buf();
        match how {
            Corruption::FlipByte(at) => {
                let mut b = fs::read(&path).unwrap();
                let i = if at < 0 { b.len() as i64 + at } else { at } as usize;
                b[i] ^= 0xff;
                fs::write(&path, b).unwrap();
            }
            Corruption::Truncate(len) => {
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .unwrap()
                    .set_len(len)
                    .unwrap();
            }
            Corruption::Delete => fs::remove_file(&path).unwrap(),
            Corruption::Replace(bytes) => fs::write(&path, bytes).unwrap(),
        }
    }

    /// Overwrites `index.json` (OCI layout).
    pub fn replace_index_json(&self, bytes: &[u8]) {
        assert_eq!(self.layout, BuiltLayout::Oci);
        fs::write(self.path.join("index.json"), bytes).unwrap();
    }

    /// Stores `bytes` as the first manifest (a new blob, digest and size right) and points
    /// `index.json` at it.
    pub fn replace_manifest(&mut self, bytes: &[u8]) {
        assert_eq!(self.layout, BuiltLayout::Oci);
        let old = self.manifests[0]
            .manifest
            .clone()
            .expect("OCI manifests are blobs");
        let new = store_blob(&self.path, bytes, &old.media_type);
        let index_path = self.path.join("index.json");
        let mut index: Value = serde_json::from_slice(&fs::read(&index_path).unwrap()).unwrap();
        for d in index["manifests"].as_array_mut().unwrap() {
            if d["digest"] == old.digest.as_str() {
                d["digest"] = json!(new.digest);
                d["size"] = json!(new.size);
            }
        }
        fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
        self.manifests[0].manifest = Some(new);
    }

    /// Edits the first manifest's JSON and stores the result as in [`Built::replace_manifest`].
    pub fn edit_manifest(&mut self, edit: impl FnOnce(&mut Value)) {
        let blob = self.manifests[0].manifest.clone().unwrap();
        let mut m: Value = serde_json::from_slice(&fs::read(blob.path()).unwrap()).unwrap();
        edit(&mut m);
        self.replace_manifest(&serde_json::to_vec(&m).unwrap());
    }

    /// Stores `bytes` as the first manifest's config (digest and size right in the manifest).
    pub fn replace_config(&mut self, bytes: &[u8]) {
        let media_type = self.manifests[0].config.media_type.clone();
        let new = store_blob(&self.path, bytes, &media_type);
        self.edit_manifest(|m| {
            m["config"]["digest"] = json!(new.digest);
            m["config"]["size"] = json!(new.size);
        });
        self.manifests[0].config = new;
    }
}

fn sha256_hex(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Writes `bytes` to `blobs/sha256/<hex>` under `root`.
fn store_blob(root: &Path, bytes: &[u8], media_type: &str) -> Blob {
    let hex = sha256_hex(bytes);
    let dir = root.join("blobs/sha256");
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(&hex);
    fs::write(&path, bytes).unwrap();
    Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len() as u64,
        path: Some(path),
        media_type: media_type.to_owned(),
    }
}

fn descriptor(b: &Blob) -> Value {
    json!({"mediaType": b.media_type, "digest": b.digest, "size": b.size})
}

/// Splits `os/arch[/variant]`.
fn platform_json(p: &str) -> Value {
    let parts: Vec<&str> = p.split('/').collect();
    let mut v = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(var) = parts.get(2) {
        v["variant"] = json!(var);
    }
    v
}

const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX_TYPE: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG_TYPE: &str = "application/vnd.oci.image.config.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Builds images from layers (oldest first).
#[derive(Clone, Debug, Default)]
pub struct ImageBuilder {
    layers: Vec<Layer>,
    tags: Vec<String>,
    platform: Option<String>,
}

impl ImageBuilder {
    /// An image with no layers.
    pub fn new() -> ImageBuilder {
        ImageBuilder::default()
    }

    /// Adds a layer on top.
    pub fn layer(mut self, layer: Layer) -> ImageBuilder {
        self.layers.push(layer);
        self
    }

    /// Adds several layers on top, oldest first.
    pub fn layers(mut self, layers: impl IntoIterator<Item = Layer>) -> ImageBuilder {
        self.layers.extend(layers);
        self
    }

    /// Adds a ref (`org.opencontainers.image.ref.name`; docker: a `RepoTags` entry).
    pub fn tag(mut self, tag: &str) -> ImageBuilder {
        self.tags.push(tag.to_owned());
        self
    }

    /// Sets the platform (`os/arch[/variant]`) in the config and, for OCI layouts, the index
    /// entry. By default, linux/amd64 in the config and no platform in the index.
    pub fn platform(mut self, platform: &str) -> ImageBuilder {
        self.platform = Some(platform.to_owned());
        self
    }

    /// The layers.
    pub fn layer_list(&self) -> &[Layer] {
        &self.layers
    }

    fn config_json(&self) -> Vec<u8> {
        let p = platform_json(self.platform.as_deref().unwrap_or("linux/amd64"));
        let diff_ids: Vec<String> = self
            .layers
            .iter()
            .map(|l| format!("sha256:{}", sha256_hex(&l.to_tar_bytes())))
            .collect();
        let mut config = json!({
            "created": "2023-11-14T22:13:20Z",
            "architecture": p["architecture"],
            "os": p["os"],
            "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": self.layers.iter().map(|_| json!({"created_by": "ocirender test"})).collect::<Vec<_>>(),
        });
        if let Some(v) = p.get("variant") {
            config["variant"] = v.clone();
        }
        serde_json::to_vec(&config).unwrap()
    }

    /// Writes config, layers and manifest as blobs under `root`; returns the manifest's parts.
    fn write_manifest(&self, root: &Path) -> BuiltManifest {
        let config = store_blob(root, &self.config_json(), CONFIG_TYPE);
        let layers: Vec<Blob> = self
            .layers
            .iter()
            .map(|l| store_blob(root, &l.blob_bytes(), &l.layer_media_type()))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": descriptor(&config),
            "layers": layers.iter().map(descriptor).collect::<Vec<_>>(),
        });
        let manifest = store_blob(root, &serde_json::to_vec(&manifest).unwrap(), MANIFEST_TYPE);
        BuiltManifest {
            platform: self.platform.clone(),
            manifest: Some(manifest),
            config,
            layers,
        }
    }

    /// Writes an OCI image layout at `dir` (created if missing).
    pub fn build(&self, dir: impl AsRef<Path>) -> Built {
        let root = dir.as_ref();
        fs::create_dir_all(root).unwrap();
        let m = self.write_manifest(root);
        let mut entries = Vec::new();
        let base = descriptor(m.manifest.as_ref().unwrap());
        let with_platform = |mut d: Value| {
            if let Some(p) = &self.platform {
                d["platform"] = platform_json(p);
            }
            d
        };
        if self.tags.is_empty() {
            entries.push(with_platform(base.clone()));
        }
        for t in &self.tags {
            let mut d = with_platform(base.clone());
            d["annotations"] = json!({ REF_NAME: t });
            entries.push(d);
        }
        write_layout(root, entries);
        Built {
            path: root.to_path_buf(),
            layout: BuiltLayout::Oci,
            manifests: vec![m],
        }
    }

    /// Writes a multi-platform OCI layout at `dir`: one image index blob listing a manifest per
    /// `(platform, image)`, referenced from `index.json` (with `tag` as its ref, if given). With
    /// `nested == false`, `index.json` lists the platform manifests directly (each with the
    /// ref).
    pub fn build_multi_platform(
        dir: impl AsRef<Path>,
        images: &[(&str, ImageBuilder)],
        tag: Option<&str>,
        nested: bool,
    ) -> Built {
        let root = dir.as_ref();
        fs::create_dir_all(root).unwrap();
        let mut manifests = Vec::new();
        let mut descs = Vec::new();
        for (platform, img) in images {
            let img = img.clone().platform(platform);
            let m = img.write_manifest(root);
            let mut d = descriptor(m.manifest.as_ref().unwrap());
            d["platform"] = platform_json(platform);
            descs.push(d);
            manifests.push(m);
        }
        let annotate = |mut d: Value| {
            if let Some(t) = tag {
                d["annotations"] = json!({ REF_NAME: t });
            }
            d
        };
        let entries = if nested {
            let index = json!({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": descs});
            let blob = store_blob(root, &serde_json::to_vec(&index).unwrap(), INDEX_TYPE);
            vec![annotate(descriptor(&blob))]
        } else {
            descs.into_iter().map(annotate).collect()
        };
        write_layout(root, entries);
        Built {
            path: root.to_path_buf(),
            layout: BuiltLayout::Oci,
            manifests,
        }
    }

    /// Writes what (legacy) `docker save` writes into directory `dir`: `manifest.json`,
    /// `<config hex>.json`, `<id>/layer.tar` (+ `VERSION`, `json`) and `repositories`. Layers
    /// are stored with their codec (docker itself writes them uncompressed); the config's
    /// `diff_ids` are digests of the uncompressed tars.
    pub fn build_docker_save(&self, dir: impl AsRef<Path>) -> Built {
        let root = dir.as_ref();
        fs::create_dir_all(root).unwrap();
        let config_bytes = self.config_json();
        let config_hex = sha256_hex(&config_bytes);
        let config_path = root.join(format!("{config_hex}.json"));
        fs::write(&config_path, &config_bytes).unwrap();
        let mut layers = Vec::new();
        let mut layer_names = Vec::new();
        let mut parent = String::new();
        for l in &self.layers {
            let diff_id = sha256_hex(&l.to_tar_bytes());
            // Legacy layer ids are the chain of the parent's id and this layer's diff id.
            let id = sha256_hex(format!("{parent}{diff_id}").as_bytes());
            let d = root.join(&id);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("VERSION"), "1.0").unwrap();
            let mut j = json!({"id": id, "created": "2023-11-14T22:13:20Z"});
            if !parent.is_empty() {
                j["parent"] = json!(parent);
            }
            fs::write(d.join("json"), serde_json::to_vec(&j).unwrap()).unwrap();
            let blob = l.blob_bytes();
            fs::write(d.join("layer.tar"), &blob).unwrap();
            layers.push(Blob {
                digest: format!("sha256:{diff_id}"),
                size: blob.len() as u64,
                path: Some(d.join("layer.tar")),
                media_type: String::new(),
            });
            layer_names.push(format!("{id}/layer.tar"));
            parent = id;
        }
        let manifest = json!([{
            "Config": format!("{config_hex}.json"),
            "RepoTags": self.tags,
            "Layers": layer_names,
        }]);
        fs::write(
            root.join("manifest.json"),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        let mut repos = serde_json::Map::new();
        for t in &self.tags {
            if let Some((repo, tag)) = t.rsplit_once(':') {
                repos.insert(repo.to_owned(), json!({ tag: parent }));
            }
        }
        fs::write(
            root.join("repositories"),
            serde_json::to_vec(&repos).unwrap(),
        )
        .unwrap();
        Built {
            path: root.to_path_buf(),
            layout: BuiltLayout::DockerSave,
            manifests: vec![BuiltManifest {
                platform: None,
                manifest: None,
                config: Blob {
                    digest: format!("sha256:{config_hex}"),
                    size: config_bytes.len() as u64,
                    path: Some(config_path),
                    media_type: String::new(),
                },
                layers,
            }],
        }
    }

    /// Writes a `docker save` tar file at `path` (the layout of [`ImageBuilder::build_docker_save`]
    /// packed in one tar; blobs have no files of their own).
    pub fn build_docker_save_tar(&self, path: impl AsRef<Path>) -> Built {
        let path = path.as_ref();
        let staging = tempfile::tempdir().unwrap();
        let mut built = self.build_docker_save(staging.path());
        let mut layer = Layer::new().compression(Codec::Plain);
        let mut names: Vec<PathBuf> = Vec::new();
        collect_files(staging.path(), staging.path(), &mut names);
        names.sort();
        for rel in names {
            let full = staging.path().join(&rel);
            let name = rel.to_str().unwrap();
            layer = if full.is_dir() {
                layer.dir(format!("{name}/"), 0o755)
            } else {
                layer.file(name, fs::read(&full).unwrap(), 0o644)
            };
        }
        fs::write(path, layer.to_tar_bytes()).unwrap();
        built.path = path.to_path_buf();
        built.layout = BuiltLayout::DockerSaveTar;
        for b in &mut built.manifests[0].layers {
            b.path = None;
        }
        built.manifests[0].config.path = None;
        built
    }

    /// Writes a bare manifest directory at `dir`, as skopeo's `dir:` transport does:
    /// `manifest.json` (an OCI image manifest), `version`, and each blob as a file named by its
    /// hex digest.
    pub fn build_bare_manifest(&self, dir: impl AsRef<Path>) -> Built {
        let root = dir.as_ref();
        fs::create_dir_all(root).unwrap();
        let staging = tempfile::tempdir().unwrap();
        let mut m = self.write_manifest(staging.path());
        let mut blobs: Vec<&mut Blob> = m.layers.iter_mut().collect();
        blobs.push(&mut m.config);
        for b in blobs {
            let dest = root.join(b.hex());
            if !dest.exists() {
                fs::rename(b.path(), &dest).unwrap();
            }
            b.path = Some(dest);
        }
        let manifest = m.manifest.take().unwrap();
        fs::rename(manifest.path(), root.join("manifest.json")).unwrap();
        fs::write(root.join("version"), "Directory Transport Version: 1.1\n").unwrap();
        Built {
            path: root.to_path_buf(),
            layout: BuiltLayout::BareManifest,
            manifests: vec![m],
        }
    }
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        out.push(p.strip_prefix(root).unwrap().to_path_buf());
        if p.is_dir() {
            collect_files(root, &p, out);
        }
    }
}

fn write_layout(root: &Path, manifests: Vec<Value>) {
    fs::write(
        root.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = json!({"schemaVersion": 2, "mediaType": INDEX_TYPE, "manifests": manifests});
    fs::write(
        root.join("index.json"),
        serde_json::to_vec_pretty(&index).unwrap(),
    )
    .unwrap();
}

/// Pseudo-random bytes (xorshift): incompressible and reproducible, for blobs and files that
/// must not shrink under any codec.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
