//! Layers: turn a blob into the bytes of its tar stream, checking its digest on the way.
//!
//! [`LayerReader`] runs the blob's decompression (and hashing) on a thread of its own and hands
//! the decoded bytes over through a bounded queue, so decoding overlaps the merge and the sink,
//! and a reader opened before its turn decodes ahead (at most [`READ_AHEAD`] bytes). The digest
//! verdict comes at the end of the stream: [`LayerReader::finish`] drains what the tar reader
//! left (padding, trailing garbage) and returns it.

pub mod decompress;
pub mod tar;

use std::io::{self, Read};

use crate::digest::Digest;
use crate::error::Result;
use crate::image::{DigestOf, LayerDescriptor};
use crate::options::ProgressFn;

/// Decoded bytes that may wait in a reader's queue: the decode-ahead bound per layer.
pub const READ_AHEAD: usize = 4 << 20;

/// The decoded tar stream of one layer, produced by a background thread.
///
/// Errors returned by `read` wrap an [`Error`](crate::Error) already tagged with the layer
/// (recover it with `Error::from_io`). Dropping the reader stops its thread and joins it.
pub struct LayerReader {
    _todo: (),
}

impl LayerReader {
    /// Opens the blob of `desc` and starts decoding it in the background.
    pub fn open(desc: &LayerDescriptor, progress: Option<ProgressFn>) -> Result<LayerReader> {
        todo!("helper A")
    }

    /// Decodes layer `index` from an arbitrary byte stream (a download in progress, say).
    /// `media_type` may be empty; the codec is then detected from the first bytes.
    pub fn from_reader(
        index: usize,
        source: Box<dyn Read + Send>,
        media_type: &str,
        digest: Digest,
        digest_of: DigestOf,
        size: Option<u64>,
        progress: Option<ProgressFn>,
    ) -> Result<LayerReader> {
        todo!("helper A")
    }

    /// The layer's index.
    pub fn index(&self) -> usize {
        todo!("helper A")
    }

    /// Reads and discards the rest of the stream and returns the digest verdict.
    pub fn finish(self) -> Result<()> {
        todo!("helper A")
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        todo!("helper A")
    }
}
