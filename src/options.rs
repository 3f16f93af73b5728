//! What to write and how: [`ImageSpec`] names the output, [`ConvertOptions`] and
//! [`SquashfsOptions`] tune it.
//!
//! Values that have a valid range are newtypes checked once, here ([`BlockSize`], [`Jobs`],
//! [`Compression`]); the components that receive them never check again and cannot panic on a
//! bad value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::verity::VerityOptions;

/// The three output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// A squashfs 4.0 file system image.
    Squashfs,
    /// A plain (uncompressed) tar archive.
    Tar,
    /// An extracted directory tree.
    Dir,
}

impl Format {
    /// Every format, for tests and loops.
    pub const ALL: [Format; 3] = [Format::Squashfs, Format::Tar, Format::Dir];

    /// The format an output path implies: `.sqfs`/`.squashfs` → squashfs, `.tar` → tar.
    pub fn from_extension(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "sqfs" | "squashfs" => Some(Format::Squashfs),
            "tar" => Some(Format::Tar),
            _ => None,
        }
    }

    /// The lower-case name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Squashfs => "squashfs",
            Format::Tar => "tar",
            Format::Dir => "dir",
        }
    }
}

impl FromStr for Format {
    type Err = Error;
    fn from_str(s: &str) -> Result<Format> {
        match s {
            "squashfs" | "sqfs" => Ok(Format::Squashfs),
            "tar" => Ok(Format::Tar),
            "dir" | "directory" => Ok(Format::Dir),
            _ => Err(Error::InvalidOption {
                name: "format",
                value: s.to_owned(),
                reason: "expected squashfs, tar or dir",
            }),
        }
    }
}

/// Format and location of an output (or, for verification, of an input).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSpec {
    /// A squashfs image file.
    Squashfs {
        /// The image file.
        path: PathBuf,
    },
    /// A tar archive; the path `-` means standard output.
    Tar {
        /// The archive file.
        path: PathBuf,
    },
    /// A directory, created if missing; an existing one must be empty.
    Dir {
        /// The directory.
        path: PathBuf,
    },
}

impl ImageSpec {
    /// An output of `format` at `path`.
    pub fn new(format: Format, path: impl Into<PathBuf>) -> ImageSpec {
        let path = path.into();
        match format {
            Format::Squashfs => ImageSpec::Squashfs { path },
            Format::Tar => ImageSpec::Tar { path },
            Format::Dir => ImageSpec::Dir { path },
        }
    }

    /// An output at `path` whose format is `format`, or else implied by the extension.
    pub fn infer(path: impl Into<PathBuf>, format: Option<Format>) -> Result<ImageSpec> {
        let path = path.into();
        let format = match format.or_else(|| Format::from_extension(&path)) {
            Some(f) => f,
            None if path.is_dir() => Format::Dir,
            None => {
                return Err(Error::InvalidOption {
                    name: "format",
                    value: path.display().to_string(),
                    reason: "cannot tell the format from the extension; give --format",
                })
            }
        };
        Ok(ImageSpec::new(format, path))
    }

    /// The path, whatever the format.
    pub fn path(&self) -> &Path {
        match self {
            ImageSpec::Squashfs { path } | ImageSpec::Tar { path } | ImageSpec::Dir { path } => {
                path
            }
        }
    }

    /// The format.
    pub fn format(&self) -> Format {
        match self {
            ImageSpec::Squashfs { .. } => Format::Squashfs,
            ImageSpec::Tar { .. } => Format::Tar,
            ImageSpec::Dir { .. } => Format::Dir,
        }
    }
}

/// A size in bytes: digits, then optionally a binary unit (`K`, `KB`, `KiB`, any case, up to
/// the unit of `max_shift` bits: 20 allows K and M, 40 also G and T). `None` if malformed or
/// past `u64`.
fn parse_bytes(s: &str, max_shift: u32) -> Option<u64> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    if shift > max_shift {
        return None;
    }
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

/// Squashfs data block size: a power of two from 4 KiB to 1 MiB.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockSize(u32);

impl BlockSize {
    /// 128 KiB, the squashfs-tools default.
    pub const DEFAULT: BlockSize = BlockSize(128 * 1024);
    /// The smallest size the format allows.
    pub const MIN: u32 = 4096;
    /// The largest size the format allows.
    pub const MAX: u32 = 1024 * 1024;

    /// Checks `bytes`.
    pub fn new(bytes: u32) -> Result<BlockSize> {
        if !(Self::MIN..=Self::MAX).contains(&bytes) || !bytes.is_power_of_two() {
            return Err(Error::InvalidOption {
                name: "block size",
                value: bytes.to_string(),
                reason: "must be a power of two from 4K to 1M",
            });
        }
        Ok(BlockSize(bytes))
    }

    /// The size in bytes.
    pub fn get(self) -> u32 {
        self.0
    }

    /// log2 of the size, as the superblock stores it.
    pub fn log2(self) -> u16 {
        self.0.trailing_zeros() as u16
    }
}

impl Default for BlockSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for BlockSize {
    type Err = Error;
    /// Parses `131072`, `128K`, `128k`, `128KiB`, `1M`.
    fn from_str(s: &str) -> Result<BlockSize> {
        let bad = || Error::InvalidOption {
            name: "block size",
            value: s.to_owned(),
            reason: "expected a number of bytes, optionally with K or M",
        };
        let bytes = parse_bytes(s, 20)
            .filter(|&b| b <= u64::from(u32::MAX))
            .ok_or_else(bad)?;
        BlockSize::new(bytes as u32)
    }
}

/// Number of compression worker threads, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Jobs(usize);

impl Jobs {
    /// The most threads accepted.
    pub const MAX: usize = 1024;

    /// Checks `n`.
    pub fn new(n: usize) -> Result<Jobs> {
        if n == 0 || n > Self::MAX {
            return Err(Error::InvalidOption {
                name: "jobs",
                value: n.to_string(),
                reason: "must be between 1 and 1024",
            });
        }
        Ok(Jobs(n))
    }

    /// One thread per available core.
    pub fn available() -> Jobs {
        Jobs(
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(Self::MAX),
        )
    }

    /// The number of threads.
    pub fn get(self) -> usize {
        self.0
    }
}

impl Default for Jobs {
    fn default() -> Self {
        Jobs::available()
    }
}

/// A squashfs compressor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// zlib streams (squashfs calls it gzip), levels 1–9.
    Gzip,
    /// Zstandard, levels 1–22.
    Zstd,
    /// xz (LZMA2), presets 0–9.
    Xz,
    /// LZ4 block format; level 0 is the fast compressor, 1–12 high compression.
    Lz4,
    /// No compression: every block and table is stored raw (the superblock names gzip, as
    /// mksquashfs does with `-noI -noD -noF -noX`).
    None,
}

impl Algorithm {
    /// The level used when none is given: zstd 3 (zstd's own default), gzip 9, xz 6, lz4 0.
    pub fn default_level(self) -> u32 {
        match self {
            Algorithm::Gzip => 9,
            Algorithm::Zstd => 3,
            Algorithm::Xz => 6,
            Algorithm::Lz4 | Algorithm::None => 0,
        }
    }

    fn levels(self) -> std::ops::RangeInclusive<u32> {
        match self {
            Algorithm::Gzip => 1..=9,
            Algorithm::Zstd => 1..=22,
            Algorithm::Xz => 0..=9,
            Algorithm::Lz4 => 0..=12,
            Algorithm::None => 0..=0,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Gzip => "gzip",
            Algorithm::Zstd => "zstd",
            Algorithm::Xz => "xz",
            Algorithm::Lz4 => "lz4",
            Algorithm::None => "none",
        }
    }
}

/// A compressor with its level, checked against the compressor's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Compression {
    algorithm: Algorithm,
    level: u32,
}

impl Compression {
    /// `algorithm` at `level` (`None`: the algorithm's default level).
    pub fn new(algorithm: Algorithm, level: Option<u32>) -> Result<Compression> {
        let level = level.unwrap_or(algorithm.default_level());
        if !algorithm.levels().contains(&level) {
            return Err(Error::InvalidOption {
                name: "compression level",
                value: format!("{}:{level}", algorithm.name()),
                reason: match algorithm {
                    Algorithm::Gzip => "gzip levels are 1-9",
                    Algorithm::Zstd => "zstd levels are 1-22",
                    Algorithm::Xz => "xz presets are 0-9",
                    Algorithm::Lz4 => "lz4 levels are 0 (fast) and 1-12 (high compression)",
                    Algorithm::None => "none takes no level",
                },
            });
        }
        Ok(Compression { algorithm, level })
    }

    /// The compressor.
    pub fn algorithm(self) -> Algorithm {
        self.algorithm
    }

    /// The level.
    pub fn level(self) -> u32 {
        self.level
    }
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            algorithm: Algorithm::Zstd,
            level: Algorithm::Zstd.default_level(),
        }
    }
}

impl FromStr for Compression {
    type Err = Error;
    /// Parses `ALGO` or `ALGO:LEVEL`, e.g. `zstd`, `zstd:19`, `xz:9`, `gzip:6`, `lz4:9`, `none`.
    fn from_str(s: &str) -> Result<Compression> {
        let (alg, level) = match s.split_once(':') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let algorithm = match alg {
            "gzip" | "zlib" => Algorithm::Gzip,
            "zstd" => Algorithm::Zstd,
            "xz" | "lzma" => Algorithm::Xz,
            "lz4" => Algorithm::Lz4,
            "none" => Algorithm::None,
            _ => {
                return Err(Error::InvalidOption {
                    name: "compression",
                    value: s.to_owned(),
                    reason: "expected gzip, zstd, xz, lz4 or none, optionally :LEVEL",
                })
            }
        };
        let level = match level {
            None => None,
            Some(l) => Some(l.parse::<u32>().map_err(|_| Error::InvalidOption {
                name: "compression level",
                value: s.to_owned(),
                reason: "the level must be a number",
            })?),
        };
        Compression::new(algorithm, level)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.level)
    }
}

/// Branch/call/jump filters that xz can run before LZMA2 to shrink machine code. Each block is
/// compressed once plain and once per filter, and the smallest result is kept (as mksquashfs
/// `-Xbcj` does); the kernel must have been built with the filter's decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XzFilter {
    /// x86 and x86-64.
    X86,
    /// 32-bit ARM.
    Arm,
    /// ARM Thumb.
    ArmThumb,
    /// PowerPC.
    PowerPc,
    /// SPARC.
    Sparc,
    /// Itanium.
    Ia64,
}

impl FromStr for XzFilter {
    type Err = Error;
    fn from_str(s: &str) -> Result<XzFilter> {
        Ok(match s {
            "x86" => XzFilter::X86,
            "arm" => XzFilter::Arm,
            "armthumb" => XzFilter::ArmThumb,
            "powerpc" => XzFilter::PowerPc,
            "sparc" => XzFilter::Sparc,
            "ia64" => XzFilter::Ia64,
            _ => {
                return Err(Error::InvalidOption {
                    name: "xz filter",
                    value: s.to_owned(),
                    reason: "expected x86, arm, armthumb, powerpc, sparc or ia64",
                })
            }
        })
    }
}

/// How the squashfs image is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SquashfsOptions {
    /// Compressor and level. By default, zstd at level 3.
    pub compression: Compression,
    /// Data block size. By default, 128 KiB.
    pub block_size: BlockSize,
    /// Pack the tail ends of files into shared fragment blocks. By default, on.
    pub fragments: bool,
    /// Store files with identical content once. By default, on.
    pub dedup: bool,
    /// The superblock's modification time. By default, the newest mtime of any entry, so that the
    /// same input gives the same bytes; set it (e.g. from `SOURCE_DATE_EPOCH`) to pin it.
    pub mtime: Option<u32>,
    /// xz branch filters to try on each block. By default, none.
    pub xz_filters: Vec<XzFilter>,
    /// Write the export table (needed to export the file system over NFS). By default, on.
    pub exportable: bool,
    /// Append a dm-verity hash tree (or write it to a separate file), so that the kernel can
    /// refuse a modified block. By default, none. [`Summary::verity`](crate::Summary::verity)
    /// gives the root hash.
    pub verity: Option<VerityOptions>,
    /// Copy the data and fragment blocks that an earlier image already holds instead of
    /// compressing them again. The output is byte-identical to a conversion without it. By
    /// default, none.
    pub reuse: Option<Reuse>,
}

/// Where a conversion takes already compressed blocks from ([`SquashfsOptions::reuse`]).
///
/// The previous image must have been made with the same compressor, level, options and block
/// size, by this crate's codecs (a sample of its blocks is compressed again to check). It may
/// be the output path itself: the output replaces it only when the conversion succeeds. Every
/// reused block is decompressed and compared with the block it stands for, so a corrupt or
/// changed previous image costs time, never a wrong output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reuse {
    /// The previous image.
    pub previous: std::path::PathBuf,
    /// Fail the conversion when the previous image cannot be used, instead of warning and
    /// compressing every block.
    pub strict: bool,
}

impl Reuse {
    /// Reuse `previous`, warning if it cannot be used.
    pub fn new(previous: impl Into<std::path::PathBuf>) -> Reuse {
        Reuse {
            previous: previous.into(),
            strict: false,
        }
    }
}

impl Default for SquashfsOptions {
    fn default() -> Self {
        SquashfsOptions {
            compression: Compression::default(),
            block_size: BlockSize::DEFAULT,
            fragments: true,
            dedup: true,
            mtime: None,
            xz_filters: Vec::new(),
            exportable: true,
            verity: None,
            reuse: None,
        }
    }
}

/// Whether the directory sink sets file ownership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ownership {
    /// Set it when running as root, skip it otherwise. The default.
    #[default]
    Auto,
    /// Always try; a failure is a warning.
    Preserve,
    /// Never set it (files belong to the user running the conversion).
    Ignore,
}

pub use crate::progress::ProgressFn;

/// How far layer decoding runs ahead of the merge.
///
/// `layers` older layers are opened (their decoder threads started) while the current one is
/// merged, each allowed to queue `bytes` of decoded data before its decoder waits; the layer
/// being merged keeps whatever queue it was opened with. Memory held ahead is at most
/// `layers × bytes`. Written `off` (each layer opened only at its turn, with the
/// [`READ_AHEAD`](crate::layer::READ_AHEAD) queue), `N` (N layers ahead) or `N:MIB` (N layers
/// ahead, MIB mebibytes each, at least 4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReadAhead {
    layers: usize,
    bytes: usize,
}

impl ReadAhead {
    /// One layer ahead, 16 MiB of queue. Measured on the real image (2 idle cores,
    /// benches/results/pipeline.md): tar output 1.12 s off, 1.06 s at 16 MiB, 0.94 s at
    /// 64 MiB; squashfs output unchanged (1.41–1.44 s). Peak RSS of the squashfs conversion:
    /// 25, 49 and 146 MiB. 16 MiB keeps part of the gain inside the 64 MiB memory budget.
    pub const DEFAULT: ReadAhead = ReadAhead {
        layers: 1,
        bytes: 16 << 20,
    };

    /// No layer opened before its turn.
    pub const OFF: ReadAhead = ReadAhead {
        layers: 0,
        bytes: crate::layer::READ_AHEAD,
    };

    /// `layers` layers ahead, each queueing `bytes` (raised to at least
    /// [`READ_AHEAD`](crate::layer::READ_AHEAD)).
    pub fn new(layers: usize, bytes: usize) -> ReadAhead {
        ReadAhead {
            layers,
            bytes: bytes.max(crate::layer::READ_AHEAD),
        }
    }

    /// Layers opened before their turn.
    pub fn layers(self) -> usize {
        self.layers
    }

    /// Decoded bytes each layer opened ahead may queue.
    pub fn bytes(self) -> usize {
        self.bytes
    }
}

impl Default for ReadAhead {
    fn default() -> ReadAhead {
        ReadAhead::DEFAULT
    }
}

impl FromStr for ReadAhead {
    type Err = Error;

    fn from_str(value: &str) -> Result<ReadAhead> {
        let invalid = || Error::InvalidOption {
            name: "read-ahead",
            value: value.to_owned(),
            reason: "write off, N (layers ahead) or N:MIB (layers ahead, MiB each)",
        };
        let v = value.trim();
        if v == "off" {
            return Ok(ReadAhead::OFF);
        }
        let (layers, mib) = match v.split_once(':') {
            Some((l, m)) => (
                l.parse().map_err(|_| invalid())?,
                m.parse::<usize>().map_err(|_| invalid())?,
            ),
            None => (
                v.parse().map_err(|_| invalid())?,
                ReadAhead::DEFAULT.bytes >> 20,
            ),
        };
        let bytes = mib.checked_mul(1 << 20).ok_or_else(invalid)?;
        Ok(ReadAhead::new(layers, bytes))
    }
}

/// How much memory the per-path state of a conversion may hold (the merge's record of every
/// path and the squashfs writer's tree) before the squashfs writer's tree spills to sorted runs
/// in a temporary file beside the output. The output is the same either way; spilling only
/// costs time. File data is never held in memory, so this is what grows with the number of
/// files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MemoryLimit(u64);

impl MemoryLimit {
    /// 256 MiB: no spill below about a million files.
    pub const DEFAULT: MemoryLimit = MemoryLimit(256 << 20);
    /// Never spill.
    pub const UNLIMITED: MemoryLimit = MemoryLimit(u64::MAX);

    /// A limit of `bytes` (0 spills from the first entry on).
    pub fn bytes(bytes: u64) -> MemoryLimit {
        MemoryLimit(bytes)
    }

    /// The limit in bytes ([`u64::MAX`] when unlimited).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl Default for MemoryLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl FromStr for MemoryLimit {
    type Err = Error;
    /// Parses `268435456`, `256M`, `256MiB`, `1G`, `512K`, `unlimited`.
    fn from_str(s: &str) -> Result<MemoryLimit> {
        let bad = || Error::InvalidOption {
            name: "memory limit",
            value: s.to_owned(),
            reason: "expected a number of bytes, optionally with K, M, G or T, or `unlimited`",
        };
        if s.trim().eq_ignore_ascii_case("unlimited") {
            return Ok(MemoryLimit::UNLIMITED);
        }
        parse_bytes(s, 40).map(MemoryLimit).ok_or_else(bad)
    }
}

/// Options for [`convert`](crate::convert) that apply to every format.
#[derive(Clone, Default)]
pub struct ConvertOptions {
    /// Threads for squashfs compression. By default, one per available core.
    pub jobs: Jobs,
    /// Squashfs settings (ignored by the other formats). By default, [`SquashfsOptions::default`].
    pub squashfs: SquashfsOptions,
    /// Ownership handling for directory output. By default, [`Ownership::Auto`].
    pub ownership: Ownership,
    /// Receives progress events. By default, none.
    pub progress: Option<ProgressFn>,
    /// Where the merge keeps content a hard link still needs after its target's name is gone
    /// (an unnamed temporary file). By default, the output's own directory for `convert` (a
    /// minimal container may have no `/tmp`), else the system temporary directory.
    pub temp_dir: Option<PathBuf>,
    /// Stops the conversion when cancelled: it returns [`Error::Interrupted`] after removing
    /// what it wrote. By default, a token nobody else holds, so the conversion runs to its end.
    pub cancel: CancelToken,
    /// How far decoding runs ahead of the merge. By default, [`ReadAhead::DEFAULT`].
    pub read_ahead: ReadAhead,
    /// The memory budget of the per-path state. By default, [`MemoryLimit::DEFAULT`].
    pub memory_limit: MemoryLimit,
}

impl ConvertOptions {
    /// Sets [`ConvertOptions::jobs`].
    pub fn jobs(mut self, jobs: Jobs) -> Self {
        self.jobs = jobs;
        self
    }

    /// Sets [`ConvertOptions::squashfs`].
    pub fn squashfs(mut self, squashfs: SquashfsOptions) -> Self {
        self.squashfs = squashfs;
        self
    }

    /// Sets [`ConvertOptions::ownership`].
    pub fn ownership(mut self, ownership: Ownership) -> Self {
        self.ownership = ownership;
        self
    }

    /// Sets [`ConvertOptions::temp_dir`].
    pub fn temp_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.temp_dir = Some(dir.into());
        self
    }

    /// Sets [`ConvertOptions::cancel`]: keep a clone of `token` and call
    /// [`CancelToken::cancel`] on it (from any thread) to stop the conversion. The merge looks
    /// at the token before each entry and each read of file data, so the conversion stops
    /// within one chunk (at most 1 MiB) of data, removes its partial output and returns
    /// [`Error::Interrupted`]. By default, a token nobody else holds: the conversion is not
    /// cancelled.
    pub fn cancel(mut self, token: CancelToken) -> Self {
        self.cancel = token;
        self
    }

    /// Sets [`ConvertOptions::read_ahead`]: more layers or bytes ahead trade memory for
    /// overlap between decoding and merging. By default, [`ReadAhead::DEFAULT`].
    pub fn read_ahead(mut self, read_ahead: ReadAhead) -> Self {
        self.read_ahead = read_ahead;
        self
    }

    /// Sets [`ConvertOptions::memory_limit`].
    pub fn memory_limit(mut self, limit: MemoryLimit) -> Self {
        self.memory_limit = limit;
        self
    }

    /// Sets [`ConvertOptions::progress`].
    pub fn progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    pub(crate) fn report(&self, event: Progress) {
        if let Some(f) = &self.progress {
            f(&event);
        }
    }
}

impl fmt::Debug for ConvertOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConvertOptions")
            .field("jobs", &self.jobs)
            .field("squashfs", &self.squashfs)
            .field("ownership", &self.ownership)
            .field("progress", &self.progress.is_some())
            .field("temp_dir", &self.temp_dir)
            .field("cancel", &self.cancel)
            .field("read_ahead", &self.read_ahead)
            .field("memory_limit", &self.memory_limit)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes() {
        assert_eq!("128K".parse::<BlockSize>().unwrap().get(), 131072);
        assert_eq!("1M".parse::<BlockSize>().unwrap().log2(), 20);
        assert_eq!("4096".parse::<BlockSize>().unwrap().get(), 4096);
        for bad in ["2K", "2M", "100000", "x", "", "99999999999999999999"] {
            assert!(bad.parse::<BlockSize>().is_err(), "{bad}");
        }
    }

    #[test]
    fn compression_specs() {
        let c: Compression = "zstd:19".parse().unwrap();
        assert_eq!((c.algorithm(), c.level()), (Algorithm::Zstd, 19));
        assert_eq!("xz".parse::<Compression>().unwrap().level(), 6);
        for bad in ["zstd:0", "gzip:10", "brotli", "lz4:13", "none:1", "zstd:x"] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }

    #[test]
    fn read_ahead_settings() {
        use crate::layer::READ_AHEAD;
        let off: ReadAhead = "off".parse().unwrap();
        assert_eq!((off.layers(), off.bytes()), (0, READ_AHEAD));
        let two: ReadAhead = "2".parse().unwrap();
        assert_eq!((two.layers(), two.bytes()), (2, ReadAhead::DEFAULT.bytes()));
        let big: ReadAhead = "1:256".parse().unwrap();
        assert_eq!((big.layers(), big.bytes()), (1, 256 << 20));
        let small: ReadAhead = "1:1".parse().unwrap();
        assert_eq!(small.bytes(), READ_AHEAD);
        for bad in ["", "x", "1:", ":4", "-1", "1:x", "1:99999999999999999999"] {
            assert!(bad.parse::<ReadAhead>().is_err(), "{bad}");
        }
    }

    #[test]
    fn format_from_extension() {
        let spec = ImageSpec::infer("a/b.sqfs", None).unwrap();
        assert_eq!(spec.format(), Format::Squashfs);
        assert_eq!(
            ImageSpec::infer("x.tar", None).unwrap().format(),
            Format::Tar
        );
        assert!(ImageSpec::infer("x.bin", None).is_err());
        assert_eq!(
            ImageSpec::infer("x.bin", Some(Format::Tar))
                .unwrap()
                .format(),
            Format::Tar
        );
    }
}
