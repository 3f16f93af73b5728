//! Progress events. The library never prints: it hands typed events to the caller's
//! [`ProgressFn`], the same events whatever the output format (plus [`Progress::Backlog`]
//! from the squashfs writer and [`Progress::Warning`]s where a sink has some), and the CLI
//! renders them as a progress bar or log lines. [`channel`] turns the callback into a channel.
//!
//! A conversion sends, in this order: `Started`; for each layer, newest first, `LayerStarted`,
//! then `LayerRead`, `Written` and `Backlog` as it goes, then `LayerFinished`; finally
//! `Finished` with the totals. Events come from several threads: `LayerRead` from the layer's
//! decoder, which may run ahead of the merge, so a layer's first `LayerRead` events can come
//! before its `LayerStarted`.
//!
//! Byte and entry counters are cumulative and sent at most about once per mebibyte (or 1024
//! entries, or 256 squashfs blocks), so a callback can redraw on every event.

use std::sync::mpsc;
use std::sync::Arc;

use crate::sink::{Summary, Warning};

/// A callback that receives [`Progress`] events. It runs on the conversion's threads, so it
/// should be quick (send to a channel, bump a counter).
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// A [`ProgressFn`] that sends a copy of every event to the returned channel. The channel is
/// unbounded, so a slow reader never stalls the conversion; it closes once the conversion has
/// dropped its options.
pub fn channel() -> (ProgressFn, mpsc::Receiver<Progress>) {
    let (tx, rx) = mpsc::channel();
    let f: ProgressFn = Arc::new(move |event: &Progress| {
        let _ = tx.send(event.clone());
    });
    (f, rx)
}

/// One step of a conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The image is open: it has `layers` layers totalling `compressed_bytes` bytes.
    Started {
        /// Number of layers.
        layers: usize,
        /// Sum of the layers' compressed sizes.
        compressed_bytes: u64,
    },
    /// The merge started reading layer `index` (layers go newest-first).
    LayerStarted {
        /// Position in the manifest, 0 = oldest.
        index: usize,
        /// The blob's size, when known.
        size: Option<u64>,
    },
    /// Bytes of layer `index`'s blob consumed so far (by its decoder, which may be reading
    /// ahead of the merge); the last one for a layer carries the blob's full size.
    LayerRead {
        /// Position in the manifest.
        index: usize,
        /// Compressed bytes read, cumulative for this layer.
        bytes: u64,
    },
    /// Layer `index` is fully merged (and its digest checked).
    LayerFinished {
        /// Position in the manifest.
        index: usize,
    },
    /// Entries and file bytes handed to the sink so far.
    Written {
        /// Entries, cumulative.
        entries: u64,
        /// File content bytes, cumulative.
        bytes: u64,
    },
    /// Squashfs data blocks submitted for compression and not yet written (the compression
    /// backlog; only the squashfs sink sends it).
    Backlog {
        /// Blocks in flight.
        blocks: usize,
    },
    /// Squashfs blocks copied so far from the previous image instead of compressed
    /// ([`SquashfsOptions::reuse`](crate::SquashfsOptions::reuse)); sent with `Backlog`.
    Reused {
        /// Blocks, cumulative.
        blocks: u64,
        /// Their uncompressed bytes, cumulative.
        bytes: u64,
    },
    /// The memory budget ([`ConvertOptions::memory_limit`](crate::ConvertOptions::memory_limit))
    /// was reached and the squashfs writer's tree went on in sorted runs on disk; sent with each
    /// run written (the first one says the budget was reached).
    Spilled {
        /// Bytes written to the spill file, cumulative.
        bytes: u64,
        /// Runs written, cumulative.
        runs: u32,
    },
    /// The memory budget ([`ConvertOptions::memory_limit`](crate::ConvertOptions::memory_limit))
    /// was reached and the merge's path table keeps its least recently used pages on disk;
    /// sent with about every mebibyte of pages written (the first one says the budget was
    /// reached).
    Paged {
        /// Bytes of pages written, cumulative.
        bytes: u64,
    },
    /// Bytes of layer `index`'s blob downloaded so far (a registry pull or fetch). Sent about
    /// once per mebibyte and when the blob is complete (`bytes == size`).
    Download {
        /// Position in the manifest, 0 = oldest.
        index: usize,
        /// Bytes received, cumulative for this blob.
        bytes: u64,
        /// The blob's size, when the manifest states it.
        size: Option<u64>,
    },
    /// A download of layer `index` failed transiently and is tried again (resuming where it
    /// stopped when the registry allows).
    DownloadRetry {
        /// Position in the manifest.
        index: usize,
        /// The attempt about to start (2 = first retry).
        attempt: u32,
        /// Why the previous attempt failed.
        reason: String,
    },
    /// The first pass met names that only resolving the layers in order places right (see
    /// [`Resolver`](crate::Resolver)): its output was discarded, and the conversion starts
    /// over. `LayerStarted`/`LayerFinished` events follow again for the second pass.
    SecondPass {
        /// What the first pass met.
        why: String,
    },
    /// A non-fatal problem; the conversion goes on.
    Warning(Warning),
    /// The output is complete.
    Finished(Summary),
}
