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

    /// Starts decoding `input` with `codec`; `crc` says whether gzip's CRC-32 is checked
    /// ([`Crc::Skip`] for bytes a digest proves anyway: see [`crate::layer::gzip`]).
    pub fn with_crc(codec: Codec, input: R, crc: Crc) -> Result<Decoder<R>> {
        Ok(match codec {
            Codec::Plain => Decoder::Plain(input),
            Codec::Gzip => Decoder::Gzip(GzipDecoder::new(input, crc)),
            Codec::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(input).map_err(
                |source| Error::Decompress {
                    codec: "zstd",
                    source,
                },
            )?),
            Codec::Xz => Decoder::Xz(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
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

    const GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

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
