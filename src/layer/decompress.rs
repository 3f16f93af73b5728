//! Codec choice and decoders: media type first, magic bytes as the referee; gzip (multi-member),
//! zstd (multi-frame, skippable frames), xz (multi-stream), bzip2 (multi-stream) and plain tar.
//!
//! ```text
//! media type ──► claimed codec ─┐
//!                               ├─► choose() ──► Decoder::new(codec, input) ──► decoded tar bytes
//! first 6 bytes ──► magic codec ┘
//! ```
//!
//! Why the magic bytes get the last word: registries and tools mislabel layers (a gzip blob
//! labelled `tar`, a `tar+gzip` label on a zstd blob), and the bytes cannot lie about their own
//! format. A label that promises compression over bytes that carry no known magic is the one
//! case we refuse, with a message that says so, rather than feeding compressed garbage to the tar
//! reader and reporting a confusing header error.
//!
//! Every decoder reads through a [`BufRead`] so that the caller keeps access to the compressed
//! input ([`Decoder::input_mut`]) after the decoded stream ends; multi-member/multi-frame
//! decoders consume the input to its end, so a trailing non-member is a decoder error (as Go's
//! gzip reader reports it), never silently skipped.

use std::io::{self, BufRead, Read};

use crate::error::{Error, Result};
use crate::layer::gzip::{Crc, GzipDecoder};

/// How many leading bytes [`Codec::from_magic`] looks at.
pub const MAGIC_LEN: usize = 6;

/// A layer compression format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// An uncompressed tar stream.
    Plain,
    /// gzip, possibly several members (eStargz).
    Gzip,
    /// zstd, possibly several frames, skippable frames ignored.
    Zstd,
    /// xz, possibly several streams.
    Xz,
    /// bzip2, possibly several streams.
    Bzip2,
}

impl Codec {
    /// The codec's name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Plain => "tar",
            Codec::Gzip => "gzip",
            Codec::Zstd => "zstd",
            Codec::Xz => "xz",
            Codec::Bzip2 => "bzip2",
        }
    }

    /// The codec a layer media type names: `Ok(None)` when the media type is empty or unknown
    /// (the magic bytes decide), an error for encrypted layers.
    pub fn from_media_type(media_type: &str) -> Result<Option<Codec>> {
        if media_type.contains("+encrypted") {
            return Err(Error::UnsupportedMediaType {
                media_type: media_type.to_owned(),
                what: "a layer (encrypted layers are not supported)".to_owned(),
            });
        }
        Ok(match media_type {
            "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.docker.image.rootfs.diff.tar" => Some(Codec::Plain),
            "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => Some(Codec::Gzip),
            "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd" => Some(Codec::Zstd),
            _ => None,
        })
    }

    /// The codec whose magic number `head` starts with; [`Codec::Plain`] when none does.
    pub fn from_magic(head: &[u8]) -> Codec {
        match head {
            [0x1f, 0x8b, ..] => Codec::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Codec::Zstd,
            // A zstd stream may open with a skippable frame (magic 0x184D2A50..=0x184D2A5F).
            [0x50..=0x5f, 0x2a, 0x4d, 0x18, ..] => Codec::Zstd,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Codec::Xz,
            [b'B', b'Z', b'h', b'1'..=b'9', ..] => Codec::Bzip2,
            _ => Codec::Plain,
        }
    }

    /// Chooses the codec for a blob labelled `media_type` whose first bytes are `head` (fewer than
    /// [`MAGIC_LEN`] only when the blob is that short).
    ///
    /// The magic wins over the label when it names a known codec; a label that promises
    /// compression over bytes without any known magic is an error.
    pub fn choose(media_type: &str, head: &[u8]) -> Result<Codec> {
        let claimed = Codec::from_media_type(media_type)?;
        let magic = Codec::from_magic(head);
        match (claimed, magic) {
            (Some(claimed), Codec::Plain) if claimed != Codec::Plain => Err(Error::WrongMagic {
                media_type: media_type.to_owned(),
                codec: claimed.name(),
            }),
            _ => Ok(magic),
        }
    }
}

/// A decoder of one codec over a buffered compressed input.
pub enum Decoder<R: BufRead> {
    /// No compression: the input is the tar stream.
    Plain(R),
    /// gzip, all members.
    Gzip(GzipDecoder<R>),
    /// zstd, all frames.
    Zstd(zstd::stream::read::Decoder<'static, R>),
    /// xz, all streams.
    Xz(liblzma::bufread::XzDecoder<R>),
    /// bzip2, all streams.
    Bzip2(bzip2::bufread::MultiBzDecoder<R>),
}

impl<R: BufRead> Decoder<R> {
    /// Starts decoding `input` with `codec`, checking every checksum the format carries.
    pub fn new(codec: Codec, input: R) -> Result<Decoder<R>> {
        Decoder::with_crc(codec, input, Crc::Check)
    }

    /// Starts decoding `input` with `codec`; `crc` says whether the codec's own check of the
    /// decoded bytes is made: gzip's CRC-32, zstd's frame checksum, xz's check ([`Crc::Skip`]
    /// for bytes a digest proves anyway: see [`crate::layer::gzip`]). bzip2's block CRCs are
    /// always checked (its decoder has no switch).
    pub fn with_crc(codec: Codec, input: R, crc: Crc) -> Result<Decoder<R>> {
        Ok(match codec {
            Codec::Plain => Decoder::Plain(input),
            Codec::Gzip => Decoder::Gzip(GzipDecoder::new(input, crc)),
            Codec::Zstd => {
                let zstd_error = |source| Error::Decompress {
                    codec: "zstd",
                    source,
                };
                let mut d = zstd::stream::read::Decoder::with_buffer(input).map_err(zstd_error)?;
                if crc == Crc::Skip {
                    d.set_parameter(zstd::zstd_safe::DParameter::ForceIgnoreChecksum(true))
                        .map_err(zstd_error)?;
                }
                Decoder::Zstd(d)
            }
            Codec::Xz => {
                let mut flags = liblzma::stream::CONCATENATED;
                if crc == Crc::Skip {
                    flags |= liblzma::stream::IGNORE_CHECK;
                }
                let stream =
                    liblzma::stream::Stream::new_auto_decoder(u64::MAX, flags).map_err(|e| {
                        Error::Decompress {
                            codec: "xz",
                            source: e.into(),
                        }
                    })?;
                Decoder::Xz(liblzma::bufread::XzDecoder::new_stream(input, stream))
            }
            Codec::Bzip2 => Decoder::Bzip2(bzip2::bufread::MultiBzDecoder::new(input)),
        })
    }

    /// The codec in use.
    pub fn codec(&self) -> Codec {
        match self {
            Decoder::Plain(_) => Codec::Plain,
            Decoder::Gzip(_) => Codec::Gzip,
            Decoder::Zstd(_) => Codec::Zstd,
            Decoder::Xz(_) => Codec::Xz,
            Decoder::Bzip2(_) => Codec::Bzip2,
        }
    }

    /// The compressed input, for draining what the decoder left and reaching the hasher.
    pub fn input_mut(&mut self) -> &mut R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zstd(d) => d.get_mut(),
            Decoder::Xz(d) => d.get_mut(),
            Decoder::Bzip2(d) => d.get_mut(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Xz(d) => d.read(buf),
            Decoder::Bzip2(d) => d.read(buf),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    fn decode(codec: Codec, bytes: &[u8], crc: Crc) -> std::io::Result<Vec<u8>> {
        let mut d = Decoder::with_crc(codec, bytes, crc).map_err(std::io::Error::other)?;
        let mut out = Vec::new();
        d.read_to_end(&mut out)?;
        Ok(out)
    }

    /// The byte positions where a flipped byte fails the codec's check but, with the check
    /// skipped, still decodes to `data`: the stored checksum.
    fn checksum_positions(codec: Codec, stream: &[u8], data: &[u8]) -> Vec<usize> {
        assert_eq!(decode(codec, stream, Crc::Check).unwrap(), data);
        assert_eq!(decode(codec, stream, Crc::Skip).unwrap(), data);
        (0..stream.len())
            .filter(|&i| {
                let mut bad = stream.to_vec();
                bad[i] ^= 0x55;
                decode(codec, &bad, Crc::Check).is_err()
                    && decode(codec, &bad, Crc::Skip).ok().as_deref() == Some(data)
            })
            .collect()
    }

    #[test]
    fn a_skipped_check_is_the_codecs_checksum_and_nothing_else() {
        let data: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut zstd = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        zstd.include_checksum(true).unwrap();
        zstd.write_all(&data).unwrap();
        let zstd = zstd.finish().unwrap();
        // XXH64's low 4 bytes close the frame.
        let n = zstd.len();
        assert_eq!(
            checksum_positions(Codec::Zstd, &zstd, &data),
            (n - 4..n).collect::<Vec<_>>()
        );
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(&data).unwrap();
        let xz = xz.finish().unwrap();
        // The block's CRC-64 (8 bytes) is the only thing a skipped check lets through.
        let xz_check = checksum_positions(Codec::Xz, &xz, &data);
        assert_eq!(xz_check.len(), 8, "{xz_check:?}");
        assert!(xz_check.windows(2).all(|w| w[1] == w[0] + 1));
    }

    #[test]
    fn magic_names_each_codec() {
        assert_eq!(Codec::from_magic(&[0x1f, 0x8b, 8, 0, 0, 0]), Codec::Gzip);
        assert_eq!(
            Codec::from_magic(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]),
            Codec::Zstd
        );
        assert_eq!(
            Codec::from_magic(&[0x5e, 0x2a, 0x4d, 0x18, 0, 0]),
            Codec::Zstd
        );
        assert_eq!(Codec::from_magic(b"\xfd7zXZ\0"), Codec::Xz);
        assert_eq!(Codec::from_magic(b"BZh91A"), Codec::Bzip2);
        assert_eq!(Codec::from_magic(b"BZh0xx"), Codec::Plain);
        assert_eq!(Codec::from_magic(b"etc/\0\0"), Codec::Plain);
        assert_eq!(Codec::from_magic(b""), Codec::Plain);
    }

    #[test]
    fn magic_overrides_a_wrong_label() {
        let zstd_head = [0x28, 0xb5, 0x2f, 0xfd, 0, 0];
        assert_eq!(Codec::choose(GZ, &zstd_head).unwrap(), Codec::Zstd);
        let tar = "application/vnd.oci.image.layer.v1.tar";
        assert_eq!(
            Codec::choose(tar, &[0x1f, 0x8b, 8, 0, 0, 0]).unwrap(),
            Codec::Gzip
        );
        assert_eq!(Codec::choose("", b"BZh91A").unwrap(), Codec::Bzip2);
        assert_eq!(
            Codec::choose("text/plain", b"hello!").unwrap(),
            Codec::Plain
        );
    }

    #[test]
    fn compression_label_over_plain_bytes_is_refused() {
        let err = Codec::choose(GZ, b"etc/\0\0").unwrap_err();
        assert!(
            matches!(err, Error::WrongMagic { codec: "gzip", .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("does not start with the gzip magic"),
            "{err}"
        );
    }

    #[test]
    fn encrypted_layers_are_unsupported() {
        let err = Codec::choose("application/vnd.oci.image.layer.v1.tar+gzip+encrypted", b"")
            .unwrap_err();
        assert!(matches!(err, Error::UnsupportedMediaType { .. }), "{err}");
    }
}
