//! Drives a merge the way `convert` does, into one sink (with the second pass when the first
//! asks for it), and reads the output back.
//!
//! Layers are fed newest first, either as tar streams straight into the merger
//! ([`Feed::Direct`]) or as blobs through [`LayerReader`] (decompression and digest check on
//! the decoder thread, [`Feed::Decoder`]), with or without a way to read a layer again
//! (`Merger::layer_reopenable` versus the spooling `Merger::layer`). Outputs are small and
//! quick to write: squashfs with 4 KiB blocks, lz4 and one job.

use std::io::{self, Cursor, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use ocirender::image::DigestOf;
use ocirender::layer::LayerReader;
use ocirender::sink::dir::DirSink;
use ocirender::sink::tar::TarSink;
use ocirender::sink::{Summary, Warning};
use ocirender::squashfs::SquashfsSink;
use ocirender::{
    Algorithm, BlockSize, Compression, ConvertOptions, Digest, Error, Jobs, Merger, Ownership,
    Resolution, Resolver, Sink, SquashfsOptions,
};
use sha2::Digest as _;

use crate::dump::Tree;
use crate::readback;

/// One layer blob.
#[derive(Clone)]
pub struct LayerBlob {
    /// Position in the stack, 0 = oldest.
    pub index: usize,
    /// The blob (the tar stream itself for [`Feed::Direct`]).
    pub bytes: Arc<Vec<u8>>,
    /// The media type the decoder is given.
    pub media_type: String,
    /// sha256 of `bytes`.
    pub digest: Digest,
}

impl LayerBlob {
    /// Layer `index` with these bytes.
    pub fn new(index: usize, bytes: Vec<u8>, media_type: &str) -> LayerBlob {
        let hex: String = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        LayerBlob {
            index,
            bytes: Arc::new(bytes),
            media_type: media_type.to_owned(),
            digest: Digest::parse(&format!("sha256:{hex}")).expect("a valid digest"),
        }
    }

    fn reader(&self) -> ocirender::Result<LayerReader> {
        LayerReader::from_reader(
            self.index,
            Box::new(Cursor::new(SharedBytes(Arc::clone(&self.bytes)))),
            &self.media_type,
            self.digest.clone(),
            DigestOf::Blob,
            Some(self.bytes.len() as u64),
            None,
        )
    }
}

struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// How layers reach the merger.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    /// The bytes are the tar stream.
    Direct,
    /// The bytes are a blob for [`LayerReader`].
    Decoder,
}

/// Which sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// `TarSink::to_writer` into memory.
    Tar,
    /// `DirSink` on a RAM file system.
    Dir,
    /// `SquashfsSink`.
    Squashfs,
}

/// Every sink.
pub const OUTPUTS: [Output; 3] = [Output::Tar, Output::Dir, Output::Squashfs];

/// A finished merge read back.
pub struct Merged {
    /// The output as a tree.
    pub tree: Tree,
    /// The sink's warnings.
    pub warnings: Vec<Warning>,
    /// The archive's bytes, for [`Output::Tar`].
    pub tar: Vec<u8>,
}

/// The squashfs settings of the fuzz runs: small blocks so that little data spans several.
pub fn small_squashfs() -> SquashfsOptions {
    SquashfsOptions {
        compression: Compression::new(Algorithm::Lz4, None).expect("lz4"),
        block_size: BlockSize::new(4096).expect("4 KiB blocks"),
        ..SquashfsOptions::default()
    }
}

/// Shared in-memory output of a [`TarSink`].
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Merges `blobs` (oldest first) into `output` and reads the result back.
pub fn merge(
    blobs: &[LayerBlob],
    output: Output,
    feed: Feed,
    reopenable: bool,
) -> ocirender::Result<Merged> {
    let scratch = crate::scratch();
    let target = scratch.path().join("out");
    let buf = SharedBuf::default();
    let summary = match pass(blobs, output, feed, reopenable, None, &target, &buf) {
        // As `convert` does: resolve every name in layer order, then merge again.
        Err(e) if matches!(e.root_cause(), Error::SecondPassNeeded { .. }) => {
            buf.0.lock().expect("not poisoned").clear();
            let mut resolver = Resolver::new(blobs.len());
            for b in blobs {
                match feed {
                    Feed::Direct => {
                        resolver.layer(b.index, &mut Cursor::new(b.bytes.as_slice()))?
                    }
                    Feed::Decoder => {
                        let mut stream = b.reader()?;
                        resolver.layer(b.index, &mut stream)?;
                        stream.finish()?;
                    }
                }
            }
            let resolution = Some(resolver.finish());
            pass(blobs, output, feed, reopenable, resolution, &target, &buf)?
        }
        r => r?,
    };
    let tar = std::mem::take(&mut *buf.0.lock().expect("not poisoned"));
    let tree = match output {
        Output::Tar => readback::tar_tree(&tar),
        Output::Dir => readback::dir_tree(&target),
        Output::Squashfs => readback::squashfs_tree(&target),
    };
    Ok(Merged {
        tree,
        warnings: summary.warnings,
        tar,
    })
}

/// One pass of the merge into a new sink at `target` (tar: into `buf`).
fn pass(
    blobs: &[LayerBlob],
    output: Output,
    feed: Feed,
    reopenable: bool,
    resolution: Option<Resolution>,
    target: &Path,
    buf: &SharedBuf,
) -> ocirender::Result<Summary> {
    let sink: Box<dyn Sink> = match output {
        Output::Tar => Box::new(TarSink::to_writer(Box::new(buf.clone()))),
        Output::Dir => Box::new(DirSink::create(target, Ownership::Auto, None)?),
        Output::Squashfs => Box::new(SquashfsSink::create(
            target,
            &small_squashfs(),
            Jobs::new(1)?,
            None,
        )?),
    };
    let options = ConvertOptions::default().jobs(Jobs::new(1)?);
    let mut merger = match resolution {
        Some(r) => Merger::with_resolution(sink, blobs.len(), &options, r),
        None => Merger::new(sink, blobs.len(), &options),
    };
    for b in blobs.iter().rev() {
        match feed {
            Feed::Direct => {
                let mut stream = Cursor::new(b.bytes.as_slice());
                if reopenable {
                    let mut reopen = || -> ocirender::Result<Box<dyn Read + Send>> {
                        Ok(Box::new(Cursor::new(SharedBytes(Arc::clone(&b.bytes)))))
                    };
                    merger.layer_reopenable(b.index, &mut stream, &mut reopen)?;
                } else {
                    merger.layer(b.index, &mut stream)?;
                }
            }
            Feed::Decoder => {
                let mut stream = b.reader()?;
                if reopenable {
                    let mut reopen =
                        || -> ocirender::Result<Box<dyn Read + Send>> { Ok(Box::new(b.reader()?)) };
                    merger.layer_reopenable(b.index, &mut stream, &mut reopen)?;
                } else {
                    merger.layer(b.index, &mut stream)?;
                }
                stream.finish()?;
            }
        }
    }
    merger.finish()
}
