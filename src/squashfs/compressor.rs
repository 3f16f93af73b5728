//! Block compression for data blocks, fragment blocks and metadata blocks, and the matching
//! decompression for read-back (dedup) and the reader.
//!
//! Every block of an image is compressed on its own. [`Compressor::compress`] returns `false`
//! when the result would not be smaller than the input; the caller then stores the block raw
//! and marks it so (bit 24 of a data size word, bit 15 of a metadata header). Where the kernel
//! needs to know the settings, [`Compressor::options`] gives the compressor options block that
//! follows the superblock:
//!
//! | compressor | stream format                    | options block written when           |
//! |------------|----------------------------------|--------------------------------------|
//! | gzip       | zlib stream                      | level ≠ 9: `{u32 level, u16 15, u16 0}` |
//! | xz         | `.xz`, CRC32, dict = block size  | BCJ filters: `{u32 dict, u32 filters}` |
//! | lz4        | raw LZ4 block                    | always: `{u32 1, u32 flags}` (HC = 1) |
//! | zstd       | one frame, window ≤ block size   | level ≠ 15: `{u32 level}`             |
//!
//! The defaults in the right column are mksquashfs's, so an image without an options block
//! means exactly what mksquashfs would mean by it. `Algorithm::None` writes "gzip" in the
//! superblock, stores every block raw and sets the NOI/NOD/NOF/NOX flags, as
//! `mksquashfs -noI -noD -noF -noX` does.
//!
//! Compression contexts are expensive to create (zstd, zlib), so each thread keeps one in a
//! thread-local slot and reuses it for every block (a rayon worker compresses thousands).
//! Output is a pure function of input and settings, which keeps images byte-identical for any
//! thread count.

use std::cell::RefCell;
use std::io;

use crate::error::{Error, Result};
use crate::options::{Algorithm, BlockSize, Compression, XzFilter};
use crate::squashfs::format::{compression_id, flags, Le};
use crate::squashfs::problem::BlockProblem;

/// mksquashfs's default gzip level (no options block at this level).
const GZIP_DEFAULT_LEVEL: u32 = 9;
/// mksquashfs's default zstd level (no options block at this level).
const ZSTD_DEFAULT_LEVEL: u32 = 15;
/// `LZ4_LEGACY`: the only lz4 options version the kernel accepts.
const LZ4_VERSION_LEGACY: u32 = 1;
/// `LZ4_HC` options flag.
const LZ4_FLAG_HC: u32 = 1;

/// The configured compressor of one image: algorithm, level, block size and xz filters.
#[derive(Clone, Debug)]
pub(crate) struct Compressor {
    algorithm: Algorithm,
    level: u32,
    block_size: u32,
    xz_filters: Vec<XzFilter>,
}

thread_local! {
    static ZSTD_CTX: RefCell<Option<(u32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static ZLIB_CTX: RefCell<Option<(u32, flate2::Compress)>> = const { RefCell::new(None) };
    static ZSTD_DCTX: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

impl Compressor {
    /// A compressor for `compression` with `block_size` blocks and the given xz filters
    /// (ignored by the other algorithms).
    pub(crate) fn new(
        compression: Compression,
        block_size: BlockSize,
        xz_filters: &[XzFilter],
    ) -> Compressor {
        let mut filters = Vec::new();
        if compression.algorithm() == Algorithm::Xz {
            for f in xz_filters {
                if !filters.contains(f) {
                    filters.push(*f);
                }
            }
            // One fixed order, so the "smallest wins, first on ties" choice is stable.
            filters.sort_by_key(|f| xz_filter_bit(*f));
        }
        Compressor {
            algorithm: compression.algorithm(),
            level: compression.level(),
            block_size: block_size.get(),
            xz_filters: filters,
        }
    }

    /// The name used in error messages.
    pub(crate) fn name(&self) -> &'static str {
        self.algorithm.name()
    }

    /// The superblock's compression id.
    pub(crate) fn id(&self) -> u16 {
        match self.algorithm {
            Algorithm::Gzip | Algorithm::None => compression_id::GZIP,
            Algorithm::Zstd => compression_id::ZSTD,
            Algorithm::Xz => compression_id::XZ,
            Algorithm::Lz4 => compression_id::LZ4,
        }
    }

    /// Superblock flags implied by the compressor: NOI|NOD|NOF|NOX when nothing is compressed.
    pub(crate) fn flags(&self) -> u16 {
        match self.algorithm {
            Algorithm::None => flags::NOI | flags::NOD | flags::NOF | flags::NOX,
            _ => 0,
        }
    }

    /// The compressor options block's payload, when the settings differ from what a reader
    /// assumes without one (see the module table).
    pub(crate) fn options(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        match self.algorithm {
            Algorithm::Gzip if self.level != GZIP_DEFAULT_LEVEL => {
                // window size 15 (the zlib maximum, mksquashfs's default), no strategies.
                Le(&mut v).u32(self.level).u16(15).u16(0);
            }
            Algorithm::Xz if !self.xz_filters.is_empty() => {
                let bits = self
                    .xz_filters
                    .iter()
                    .fold(0, |acc, f| acc | xz_filter_bit(*f));
                Le(&mut v).u32(self.block_size).u32(bits);
            }
            Algorithm::Lz4 => {
                let flags = if self.level > 0 { LZ4_FLAG_HC } else { 0 };
                Le(&mut v).u32(LZ4_VERSION_LEGACY).u32(flags);
            }
            Algorithm::Zstd if self.level != ZSTD_DEFAULT_LEVEL => {
                Le(&mut v).u32(self.level);
            }
            _ => return None,
        }
        Some(v)
    }

    /// What decides the bytes of a compressed block: this crate's version (its compression
    /// rules), the algorithm, level, filters and block size, and the codec library's version
    /// where the library reports one. Two images whose blocks were compressed under the same
    /// identity store the same bytes for the same content; [`reuse`](super::reuse) relies on it.
    pub(crate) fn identity(&self) -> String {
        let filters: Vec<String> = self.xz_filters.iter().map(|f| format!("{f:?}")).collect();
        let library = match self.algorithm {
            Algorithm::Zstd => format!(" zstd {}", zstd::zstd_safe::version_string()),
            Algorithm::Lz4 => format!(" lz4 {}", lz4::version()),
            Algorithm::Gzip | Algorithm::Xz | Algorithm::None => String::new(),
        };
        format!(
            "ocirender {}; {}:{} filters [{}]; block {};{library}",
            env!("CARGO_PKG_VERSION"),
            self.algorithm.name(),
            self.level,
            filters.join(","),
            self.block_size,
        )
    }

    /// Compresses `input` into `out` (replacing its content). Returns `false`, leaving `out`
    /// unspecified, when the result would not be smaller than `input`: store the block raw.
    pub(crate) fn compress(&self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        out.clear();
        if input.is_empty() {
            return Ok(false);
        }
        let fits = match self.algorithm {
            Algorithm::None => false,
            Algorithm::Gzip => self.zlib(input, out),
            Algorithm::Zstd => self.zstd(input, out)?,
            Algorithm::Lz4 => self.lz4(input, out)?,
            Algorithm::Xz => self.xz_best(input, out)?,
        };
        Ok(fits && out.len() < input.len())
    }

    fn zlib(&self, input: &[u8], out: &mut Vec<u8>) -> bool {
        ZLIB_CTX.with(|slot| {
            let mut slot = slot.borrow_mut();
            let ctx = match &mut *slot {
                Some((level, ctx)) if *level == self.level => {
                    ctx.reset();
                    ctx
                }
                other => {
                    let ctx = flate2::Compress::new(flate2::Compression::new(self.level), true);
                    &mut other.insert((self.level, ctx)).1
                }
            };
            // Room for exactly the input: anything that does not finish within it is not
            // smaller, so the block is stored raw.
            out.reserve(input.len());
            matches!(
                ctx.compress_vec(input, out, flate2::FlushCompress::Finish),
                Ok(flate2::Status::StreamEnd)
            )
        })
    }

    fn zstd(&self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        ZSTD_CTX.with(|slot| {
            let mut slot = slot.borrow_mut();
            let ctx = match &mut *slot {
                Some((level, ctx)) if *level == self.level => ctx,
                other => {
                    let ctx = zstd::bulk::Compressor::new(self.level as i32)
                        .map_err(|source| self.error(source))?;
                    &mut other.insert((self.level, ctx)).1
                }
            };
            // A single-shot frame knows its content size, so zstd shrinks the window to the
            // input (≤ block size): within what the kernel allocates.
            out.reserve(zstd::zstd_safe::compress_bound(input.len()));
            ctx.compress_to_buffer(input, out)
                .map_err(|source| self.error(source))?;
            Ok(true)
        })
    }

    fn lz4(&self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let bound = lz4::block::compress_bound(input.len()).map_err(|e| self.error(e))?;
        out.resize(bound, 0);
        let mode = if self.level == 0 {
            lz4::block::CompressionMode::DEFAULT
        } else {
            lz4::block::CompressionMode::HIGHCOMPRESSION(self.level as i32)
        };
        let n = lz4::block::compress_to_buffer(input, Some(mode), false, out)
            .map_err(|e| self.error(e))?;
        out.truncate(n);
        Ok(true)
    }

    /// xz, plain and with each BCJ filter in turn, keeping the smallest (as `mksquashfs -Xbcj`).
    fn xz_best(&self, input: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let mut fits = self.xz(input, None, out)?;
        if self.xz_filters.is_empty() {
            return Ok(fits);
        }
        let mut trial = Vec::with_capacity(input.len());
        for f in &self.xz_filters {
            if self.xz(input, Some(*f), &mut trial)? && (!fits || trial.len() < out.len()) {
                std::mem::swap(out, &mut trial);
                fits = true;
            }
        }
        Ok(fits)
    }

    fn xz(&self, input: &[u8], filter: Option<XzFilter>, out: &mut Vec<u8>) -> Result<bool> {
        use liblzma::stream::{Action, Check, Filters, LzmaOptions, Status, Stream};
        out.clear();
        let mut lzma = LzmaOptions::new_preset(self.level).map_err(|e| self.error(e))?;
        // The kernel preallocates a dictionary of the block size; a larger one in the stream
        // header would make it refuse the block.
        lzma.dict_size(self.block_size);
        let mut filters = Filters::new();
        match filter {
            None => {}
            Some(XzFilter::X86) => {
                filters.x86();
            }
            Some(XzFilter::PowerPc) => {
                filters.powerpc();
            }
            Some(XzFilter::Ia64) => {
                filters.ia64();
            }
            Some(XzFilter::Arm) => {
                filters.arm();
            }
            Some(XzFilter::ArmThumb) => {
                filters.arm_thumb();
            }
            Some(XzFilter::Sparc) => {
                filters.sparc();
            }
        }
        filters.lzma2(&lzma);
        let mut stream =
            Stream::new_stream_encoder(&filters, Check::Crc32).map_err(|e| self.error(e))?;
        out.reserve(input.len());
        match stream.process_vec(input, out, Action::Finish) {
            Ok(Status::StreamEnd) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::Compress {
            codec: self.name(),
            source: io::Error::other(e.to_string()),
        }
    }
}

/// The bit of an xz filter in the options block (`bcj[]` order of squashfs-tools' xz wrapper).
fn xz_filter_bit(f: XzFilter) -> u32 {
    match f {
        XzFilter::X86 => 0x01,
        XzFilter::PowerPc => 0x02,
        XzFilter::Ia64 => 0x04,
        XzFilter::Arm => 0x08,
        XzFilter::ArmThumb => 0x10,
        XzFilter::Sparc => 0x20,
    }
}

/// The name of the compressor with superblock id `id` and flags `sb_flags` (for messages).
pub(crate) fn name_of(id: u16, sb_flags: u16) -> &'static str {
    match id {
        compression_id::GZIP if sb_flags & flags::NOD != 0 => "none",
        compression_id::GZIP => "gzip",
        compression_id::LZMA => "lzma",
        compression_id::LZO => "lzo",
        compression_id::XZ => "xz",
        compression_id::LZ4 => "lz4",
        compression_id::ZSTD => "zstd",
        _ => "an unknown compressor",
    }
}

/// Decompresses one block written with compressor `id` into `out` (replacing its content),
/// producing at most `limit` bytes. The error says what is wrong with the block; the caller
/// knows which block it is.
pub(crate) fn decompress(
    id: u16,
    input: &[u8],
    out: &mut Vec<u8>,
    limit: usize,
) -> Result<(), BlockProblem> {
    out.clear();
    match id {
        compression_id::GZIP => {
            let mut d = flate2::Decompress::new(true);
            out.reserve(limit);
            match d.decompress_vec(input, out, flate2::FlushDecompress::Finish) {
                Ok(flate2::Status::StreamEnd) => check_limit(out, limit),
                Ok(_) => Err(BlockProblem::Unfinished { codec: "zlib" }),
                Err(e) => Err(codec_error("zlib", e)),
            }
        }
        compression_id::ZSTD => ZSTD_DCTX.with(|slot| {
            let mut slot = slot.borrow_mut();
            let d = match &mut *slot {
                Some(d) => d,
                None => slot
                    .insert(zstd::bulk::Decompressor::new().map_err(|e| codec_error("zstd", e))?),
            };
            // The output room is bounded by the capacity, so a hostile frame that claims a
            // huge size fails instead of allocating.
            out.reserve(limit);
            d.decompress_to_buffer(input, out)
                .map_err(|e| codec_error("zstd", e))?;
            check_limit(out, limit)
        }),
        compression_id::XZ => {
            use liblzma::stream::{Action, Status, Stream};
            let mut s =
                Stream::new_stream_decoder(256 << 20, 0).map_err(|e| codec_error("xz", e))?;
            out.reserve(limit);
            match s.process_vec(input, out, Action::Finish) {
                Ok(Status::StreamEnd) => check_limit(out, limit),
                Ok(_) => Err(BlockProblem::Unfinished { codec: "xz" }),
                Err(e) => Err(codec_error("xz", e)),
            }
        }
        compression_id::LZ4 => {
            let room = i32::try_from(limit).map_err(|_| codec_error("lz4", "block too large"))?;
            out.resize(limit, 0);
            let n = lz4::block::decompress_to_buffer(input, Some(room), out)
                .map_err(|e| codec_error("lz4", e))?;
            out.truncate(n);
            Ok(())
        }
        id => Err(BlockProblem::UnsupportedCompressor { id }),
    }
}

/// A codec library's refusal, keeping its message as it words it.
fn codec_error(codec: &'static str, e: impl std::fmt::Display) -> BlockProblem {
    BlockProblem::Codec {
        codec,
        detail: e.to_string(),
    }
}

fn check_limit(out: &[u8], limit: usize) -> Result<(), BlockProblem> {
    if out.len() > limit {
        return Err(BlockProblem::TooLarge { limit });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(spec: &str, filters: &[XzFilter]) -> Compressor {
        Compressor::new(spec.parse().unwrap(), BlockSize::DEFAULT, filters)
    }

    fn text(len: usize) -> Vec<u8> {
        (0..len).map(|i| b"compress me please "[i % 19]).collect()
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 32) as u8
            })
            .collect()
    }

    #[test]
    fn every_algorithm_round_trips_and_stores_incompressible_blocks_raw() {
        for spec in [
            "gzip", "gzip:1", "zstd", "zstd:19", "xz", "xz:0", "lz4", "lz4:12",
        ] {
            let c = codec(spec, &[]);
            let input = text(100_000);
            let mut out = Vec::new();
            assert!(
                c.compress(&input, &mut out).unwrap(),
                "{spec} compresses text"
            );
            assert!(out.len() < input.len() / 10, "{spec}: {}", out.len());
            let mut back = Vec::new();
            decompress(c.id(), &out, &mut back, 131072).unwrap();
            assert_eq!(back, input, "{spec} round trip");
            assert!(
                !c.compress(&noise(65536), &mut out).unwrap(),
                "{spec}: noise is raw"
            );
            assert!(!c.compress(&[], &mut out).unwrap(), "{spec}: empty is raw");
        }
        let none = codec("none", &[]);
        let mut out = Vec::new();
        assert!(
            !none.compress(&text(10_000), &mut out).unwrap(),
            "none never compresses"
        );
        assert_eq!(none.id(), compression_id::GZIP);
        assert_eq!(
            none.flags(),
            flags::NOI | flags::NOD | flags::NOF | flags::NOX
        );
    }

    #[test]
    fn decompression_refuses_more_than_the_limit_and_garbage() {
        for spec in ["gzip", "zstd", "xz", "lz4"] {
            let c = codec(spec, &[]);
            let mut out = Vec::new();
            assert!(c.compress(&text(20_000), &mut out).unwrap());
            let mut back = Vec::new();
            assert!(
                decompress(c.id(), &out, &mut back, 8192).is_err(),
                "{spec}: over limit"
            );
            let garbage = decompress(c.id(), b"not a stream", &mut back, 8192);
            assert!(
                matches!(
                    garbage,
                    Err(BlockProblem::Codec { .. } | BlockProblem::Unfinished { .. })
                ),
                "{spec}: {garbage:?}"
            );
        }
        let mut back = Vec::new();
        assert_eq!(
            decompress(compression_id::LZO, b"x", &mut back, 10),
            Err(BlockProblem::UnsupportedCompressor {
                id: compression_id::LZO
            })
        );
        assert_eq!(
            decompress(99, b"x", &mut back, 10),
            Err(BlockProblem::UnsupportedCompressor { id: 99 })
        );
    }

    #[test]
    fn xz_with_bcj_keeps_the_smallest_and_stays_decodable() {
        // x86-like code: call instructions with relative targets.
        let mut code = Vec::new();
        for i in 0..20_000u32 {
            code.push(0xe8);
            code.extend_from_slice(&(0x4000u32.wrapping_sub(i * 5)).to_le_bytes());
        }
        let plain = codec("xz", &[]);
        let bcj = codec("xz", &[XzFilter::X86, XzFilter::Arm]);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        assert!(plain.compress(&code, &mut a).unwrap());
        assert!(bcj.compress(&code, &mut b).unwrap());
        assert!(
            b.len() <= a.len(),
            "BCJ result is never larger: {} vs {}",
            b.len(),
            a.len()
        );
        let mut back = Vec::new();
        decompress(compression_id::XZ, &b, &mut back, 131072).unwrap();
        assert_eq!(back, code);
        // The options block lists the filters: x86 = 1, arm = 8; dictionary = block size.
        let opts = bcj.options().unwrap();
        assert_eq!(opts, [131072u32.to_le_bytes(), 9u32.to_le_bytes()].concat());
    }

    #[test]
    fn options_blocks_match_mksquashfs_defaults() {
        assert_eq!(codec("gzip", &[]).options(), None, "gzip 9 is the default");
        assert_eq!(
            codec("gzip:6", &[]).options(),
            Some(vec![6, 0, 0, 0, 15, 0, 0, 0])
        );
        assert_eq!(
            codec("zstd:15", &[]).options(),
            None,
            "zstd 15 is the default"
        );
        assert_eq!(codec("zstd:3", &[]).options(), Some(vec![3, 0, 0, 0]));
        assert_eq!(
            codec("xz:9", &[]).options(),
            None,
            "the xz preset is not stored"
        );
        assert_eq!(
            codec("lz4", &[]).options(),
            Some(vec![1, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(
            codec("lz4:1", &[]).options(),
            Some(vec![1, 0, 0, 0, 1, 0, 0, 0])
        );
        assert_eq!(codec("none", &[]).options(), None);
        assert_eq!(
            codec("gzip", &[XzFilter::X86]).options(),
            None,
            "filters are xz-only"
        );
    }
}
