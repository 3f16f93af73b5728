//! Progress events. The library never prints: it hands typed events to the caller's
//! [`ProgressFn`](crate::ProgressFn), the same events whatever the output format, and the CLI
//! renders them as a progress bar or log lines.
//!
//! Byte and entry counters are cumulative and sent at most about once per mebibyte, so a
//! callback can redraw on every event.

use crate::sink::{Summary, Warning};

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
    /// Bytes of layer `index`'s blob consumed so far.
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
    /// Squashfs data blocks submitted for compression and not yet written.
    Backlog {
        /// Blocks in flight.
        blocks: usize,
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
    /// A non-fatal problem; the conversion goes on.
    Warning(Warning),
    /// The output is complete.
    Finished(Summary),
}
