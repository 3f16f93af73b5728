//! Metadata block stream: the container of the inode table, the directory table, the xattr
//! key/value data and every lookup table.
//!
//! Records are appended as bytes; every 8192 uncompressed bytes become one metadata block
//! (`u16` header + payload, header bit 15 set when the payload is stored raw because
//! compression did not shrink it). Only the last block of a stream may be shorter: the
//! kernel's directory index arithmetic (`(index + offset) % 8192`) relies on that.
//!
//! [`MetaWriter::position`] gives the [`MetaRef`] of the next byte: the compressed offset of the
//! block being filled (relative to the stream start) and the offset inside it. That offset is
//! only known once every earlier block is compressed, so blocks are compressed in order, on the
//! caller's thread, as they fill (tables are small next to the data).
//!
//! Compressed blocks accumulate in memory; a caller that streams a table to the output takes
//! them with [`MetaWriter::take_output`] as it goes.

use std::sync::Arc;

use crate::error::Result;
use crate::squashfs::compressor::Compressor;
use crate::squashfs::format::{Le, MetaRef, METADATA_RAW, METADATA_SIZE};

/// Builds one stream of metadata blocks.
#[derive(Debug)]
pub(crate) struct MetaWriter {
    codec: Arc<Compressor>,
    /// The uncompressed block being filled (< 8192 bytes between calls).
    block: Vec<u8>,
    /// Compressed blocks not yet taken.
    out: Vec<u8>,
    /// Compressed bytes produced so far, taken or not: the start of the current block.
    emitted: u64,
    /// Uncompressed bytes appended so far.
    appended: u64,
    scratch: Vec<u8>,
}

impl MetaWriter {
    /// An empty stream.
    pub(crate) fn new(codec: Arc<Compressor>) -> MetaWriter {
        MetaWriter {
            codec,
            block: Vec::with_capacity(METADATA_SIZE),
            out: Vec::new(),
            emitted: 0,
            appended: 0,
            scratch: Vec::new(),
        }
    }

    /// Where the next appended byte will be.
    pub(crate) fn position(&self) -> MetaRef {
        MetaRef {
            block: self.emitted,
            offset: self.block.len() as u16,
        }
    }

    /// Uncompressed bytes appended so far.
    pub(crate) fn uncompressed_len(&self) -> u64 {
        self.appended
    }

    /// Appends record bytes, compressing each block as it fills.
    pub(crate) fn append(&mut self, mut bytes: &[u8]) -> Result<()> {
        self.appended += bytes.len() as u64;
        while !bytes.is_empty() {
            let room = METADATA_SIZE - self.block.len();
            let n = room.min(bytes.len());
            self.block.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.block.len() == METADATA_SIZE {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let compressed = self.codec.compress(&self.block, &mut self.scratch)?;
        let payload = if compressed {
            &self.scratch
        } else {
            &self.block
        };
        // Payload ≤ 8192 < 0x8000, so the length never collides with the raw bit.
        let header = payload.len() as u16 | if compressed { 0 } else { METADATA_RAW };
        Le(&mut self.out).u16(header).bytes(payload);
        self.emitted += 2 + payload.len() as u64;
        self.block.clear();
        Ok(())
    }

    /// Compressed bytes produced and not taken yet.
    pub(crate) fn pending_len(&self) -> usize {
        self.out.len()
    }

    /// Takes the compressed blocks produced so far (the partial block stays).
    pub(crate) fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Compresses the last, possibly short, block and returns what was not taken yet.
    pub(crate) fn finish(mut self) -> Result<Vec<u8>> {
        self.flush_block()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Algorithm, BlockSize, Compression};

    fn codec(alg: Algorithm) -> Arc<Compressor> {
        Arc::new(Compressor::new(
            Compression::new(alg, None).unwrap(),
            BlockSize::DEFAULT,
            &[],
        ))
    }

    /// Splits a stream into (header, payload) pairs.
    fn blocks(mut s: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut v = Vec::new();
        while !s.is_empty() {
            let h = u16::from_le_bytes([s[0], s[1]]);
            let len = (h & 0x7fff) as usize;
            v.push((h, s[2..2 + len].to_vec()));
            s = &s[2 + len..];
        }
        v
    }

    #[test]
    fn full_blocks_are_8192_bytes_and_refs_track_compressed_offsets() {
        let mut m = MetaWriter::new(codec(Algorithm::Gzip));
        assert_eq!(m.position(), MetaRef::default());
        m.append(&vec![7u8; 8000]).unwrap();
        assert_eq!(m.position().offset, 8000);
        m.append(&vec![7u8; 400]).unwrap();
        let pos = m.position();
        assert_eq!(pos.offset, 208, "8400 - 8192");
        assert!(
            pos.block > 2 && pos.block < 200,
            "first block compressed: {pos:?}"
        );
        let out = m.finish().unwrap();
        let b = blocks(&out);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].0 & METADATA_RAW, 0, "compressible block is compressed");
        assert_eq!(pos.block, 2 + b[0].1.len() as u64);
        let mut d = Vec::new();
        crate::squashfs::compressor::decompress(1, &b[0].1, &mut d, 8192).unwrap();
        assert_eq!(d.len(), 8192);
    }

    #[test]
    fn none_stores_raw_with_the_raw_bit() {
        let mut m = MetaWriter::new(codec(Algorithm::None));
        m.append(b"hello").unwrap();
        let out = m.finish().unwrap();
        assert_eq!(out, [5, 0x80, b'h', b'e', b'l', b'l', b'o']);
    }

    #[test]
    fn empty_stream_has_no_blocks() {
        let m = MetaWriter::new(codec(Algorithm::Zstd));
        assert!(m.finish().unwrap().is_empty());
    }
}
