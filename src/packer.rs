//! [`StreamingPacker`]: convert while the layers are still downloading.
//!
//! ```text
//!  download tasks           "order" thread                       "merge" thread
//!  (any order) ─notify_*─►  holds early arrivals; for n-1,   ─►  merges each layer (newest
//!                           n-2, …, 0: waits for the layer,  ┆   first) into the sink, checks
//!                           opens it (its decoder thread     ┆   its digest, reports progress
//!                           starts) and hands it over        ┆
//!                                               handoff: a rendezvous channel
//! ```
//! The sink is opened at once ([`StreamingPacker::new`] fails if it cannot be). The order thread
//! opens the next layer as soon as it has arrived, and then waits for the merge to take it: so,
//! as in [`convert`](crate::convert), the layer after the one being merged decodes ahead (the
//! same [`ReadAhead`] policy bounds how far), while layers further back wait unopened. A file
//! path costs nothing while it waits; a stream is read into a small buffer and then no further,
//! which back-pressures its download. All blocking work runs on these threads and the decoder
//! threads, never on the async runtime.
//!
//! Every way of ending stops both threads and, on failure, removes the partial output before
//! [`finish`](StreamingPacker::finish) returns: a bad index or a duplicate (the notify call and
//! `finish` both report it), an error from the caller
//! ([`notify_error`](StreamingPacker::notify_error)), a layer never delivered (`finish` reports
//! [`Error::MissingLayers`]), a bad layer. Dropping the packer stops them too, without waiting:
//! the merge notices at its next read, removes the partial output and exits, and streams still
//! being read are abandoned. A caller-supplied blocking [`Read`] that hangs cannot be
//! interrupted; its decoder thread (and whatever waits on it) ends when that read returns.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot, watch};

use crate::cancel::CancelToken;
use crate::convert::{is_second_pass, open_sink, output_dir};
use crate::digest::Digest;
use crate::error::{BoxError, Error, Result};
use crate::image::{BlobLocation, DigestOf, LayerDescriptor};
use crate::layer::{LayerReader, Opening};
use crate::merge::{Merger, Resolver};
use crate::options::{ConvertOptions, ImageSpec, ProgressFn};
use crate::progress::Progress;
use crate::replay::{ReopenBlob, Replay, Tee};
use crate::sink::{Sink, Summary};

/// What the packer knows of a layer before it arrives (from the manifest).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerMeta {
    /// Position in the manifest, 0 = oldest.
    pub index: usize,
    /// The layer's media type (empty: detect the codec from the first bytes).
    pub media_type: String,
    /// The blob's digest (from the manifest), checked while the layer streams.
    pub digest: Digest,
    /// What the digest covers: the blob as stored (OCI descriptors) or the uncompressed tar.
    pub digest_of: DigestOf,
    /// The blob's size, when known (checked, and used for progress).
    pub size: Option<u64>,
}

impl LayerMeta {
    /// The metadata of `desc`, an opened image's layer.
    pub fn from_descriptor(desc: &LayerDescriptor) -> LayerMeta {
        LayerMeta {
            index: desc.index,
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            digest_of: desc.digest_of,
            size: desc.size,
        }
    }
}

/// A downloaded layer blob, for [`convert_streaming`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerBlob {
    /// Position in the manifest, 0 = oldest.
    pub index: usize,
    /// Where the blob is on disk.
    pub path: PathBuf,
    /// The layer's media type (empty: detect from the bytes).
    pub media_type: String,
    /// The blob's digest (of the blob as stored), checked while it streams.
    pub digest: Digest,
}

/// Converts an image whose layers arrive in any order, as they finish downloading.
///
/// Needs a tokio runtime (current-thread or multi-thread): it is created inside one and its
/// methods are awaited there.
///
/// ```no_run
/// # use ocirender::{StreamingPacker, LayerMeta, ImageSpec, ConvertOptions};
/// # async fn example(metas: Vec<LayerMeta>) -> ocirender::Result<()> {
/// let spec = ImageSpec::Squashfs { path: "rootfs.sqfs".into() };
/// let packer = StreamingPacker::new(metas, spec, ConvertOptions::default(), None)?;
/// // From any task, in any order, as downloads complete:
/// packer.notify_layer_ready(1, "/tmp/layer1.tar.gz".into()).await?;
/// packer.notify_layer_ready(0, "/tmp/layer0.tar.gz".into()).await?;
/// let summary = packer.finish().await?;
/// # Ok(())
/// # }
/// ```
///
/// The merge takes layers newest first: to keep the output busy, start downloads newest first
/// and keep few in flight; a layer that arrives early only waits.
pub struct StreamingPacker {
    tx: Option<Sender<Message>>,
    /// [`ConvertOptions::cancel`].
    cancel: CancelToken,
    /// Which indexes were delivered (the length is the layer count).
    delivered: Mutex<Vec<bool>>,
    shared: Arc<Shared>,
    runtime: Handle,
    thread: Option<JoinHandle<()>>,
    result: Option<oneshot::Receiver<Result<Summary>>>,
}

impl StreamingPacker {
    /// Opens the output and starts the threads, which wait for layers.
    ///
    /// `layer_metas` describes every layer of the image, one per index `0..len`, in any order.
    /// Progress events go to `options.progress` and, when given, to `progress` (unbounded, so a
    /// slow reader never stalls the conversion; events are sent at most about once per MiB).
    pub fn new(
        layer_metas: Vec<LayerMeta>,
        spec: ImageSpec,
        options: ConvertOptions,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<StreamingPacker> {
        let metas = check_metas(layer_metas)?;
        StreamingPacker::start(
            metas.into_iter().map(Some).collect(),
            spec,
            options,
            progress,
        )
    }

    /// Starts a packer for `metas.len()` layers; a `None` meta comes with its layer's delivery.
    fn start(
        metas: Vec<Option<LayerMeta>>,
        spec: ImageSpec,
        mut options: ConvertOptions,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<StreamingPacker> {
        let runtime = Handle::try_current().map_err(|_| Error::NoAsyncRuntime)?;
        options.cancel.check()?;
        let token = options.cancel.clone();
        options.progress = with_channel(options.progress.take(), progress);
        // Spools, spills and pages go beside the output unless told otherwise (a minimal
        // container may have no /tmp), as with `convert`.
        if options.temp_dir.is_none() {
            options.temp_dir = Some(output_dir(&spec));
        }
        let sink = open_sink(&spec, &options)?;
        let total = metas.len();
        // Before any thread starts: a layer's decoder may report reading before the merge
        // takes it, and `Started` comes first.
        options.report(Progress::Started {
            layers: total,
            compressed_bytes: metas.iter().flatten().filter_map(|m| m.size).sum(),
        });
        let ahead = options.read_ahead;
        let (tx, rx) = crossbeam_channel::unbounded();
        // Rendezvous: the order thread holds one opened layer until the merge takes it; each
        // further slot lets one more layer decode ahead.
        let (handoff_tx, handoff_rx) = crossbeam_channel::bounded(ahead.layers().saturating_sub(1));
        let (alive_tx, alive_rx) = crossbeam_channel::bounded::<()>(0);
        let (result_tx, result_rx) = oneshot::channel();
        let (cancel, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            stopped: AtomicBool::new(false),
            reason: Mutex::new(None),
            cancel,
        });
        let (woken_tx, woken) = crossbeam_channel::bounded::<()>(0);
        watch_token(&runtime, options.cancel.clone(), shared.clone(), woken_tx);
        let digests: Option<Vec<Digest>> = metas
            .iter()
            .map(|m| m.as_ref().map(|m| m.digest.clone()))
            .collect();
        let order = Order {
            metas,
            rx,
            woken,
            handoff: handoff_tx,
            merge_alive: alive_rx,
            opening: ahead.opening(&options),
            open_ahead: ahead.layers() > 0,
            temp: options
                .temp_dir
                .clone()
                .unwrap_or_else(|| output_dir(&spec)),
            shared: shared.clone(),
        };
        let order_thread = spawn("ocirender-order", &spec, move || order.run())?;
        let merge = Merge {
            layers: total,
            handoff: handoff_rx,
            alive: alive_tx,
            order_thread: Some(order_thread),
            opening: ahead.opening(&options),
            spec: spec.clone(),
            digests,
            options,
            shared: shared.clone(),
        };
        let thread = spawn("ocirender-merge", &spec, move || {
            let r = merge.run(sink);
            let _ = result_tx.send(r);
        })?;
        Ok(StreamingPacker {
            tx: Some(tx),
            cancel: token,
            delivered: Mutex::new(vec![false; total]),
            shared,
            runtime,
            thread: Some(thread),
            result: Some(result_rx),
        })
    }

    /// Claims `index` for a delivery; a bad index or a second delivery also stops the
    /// conversion (which of two deliveries is right cannot be known).
    fn claim(&self, index: usize) -> Result<()> {
        if self.cancel.is_cancelled() {
            self.halt(Abort::Cancelled);
            return Err(Error::Interrupted);
        }
        if self.shared.is_stopped() {
            return Err(Error::Stopped);
        }
        let mut delivered = self
            .delivered
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = delivered.len();
        let duplicate = match delivered.get_mut(index) {
            Some(slot) if !*slot => {
                *slot = true;
                return Ok(());
            }
            Some(_) => true,
            None => false,
        };
        drop(delivered);
        let error = || {
            if duplicate {
                Error::DuplicateLayer { index }
            } else {
                Error::LayerIndexOutOfRange { index, count }
            }
        };
        self.halt(Abort::Misuse(error()));
        Err(error())
    }

    fn deliver(&self, index: usize, source: Source, meta: Option<LayerMeta>) -> Result<()> {
        self.claim(index)?;
        self.tx
            .as_ref()
            .ok_or(Error::Stopped)?
            .send(Message::Layer(Arrival {
                index,
                source,
                meta,
            }))
            .map_err(|_| Error::Stopped)
    }

    /// Stops the conversion for `why` and wakes the order thread.
    fn halt(&self, why: Abort) {
        self.shared.halt(Some(why));
        if let Some(tx) = &self.tx {
            let _ = tx.send(Message::Wake);
        }
    }

    /// Layer `index` is complete at `path`. May be called from any task, in any order.
    ///
    /// Fails with [`Error::LayerIndexOutOfRange`] or [`Error::DuplicateLayer`] (which also stop
    /// the conversion: [`finish`](StreamingPacker::finish) returns the same error), or with
    /// [`Error::Stopped`] once the conversion has stopped (`finish` says why).
    pub async fn notify_layer_ready(&self, index: usize, path: PathBuf) -> Result<()> {
        self.deliver(index, Source::Path(path), None)
    }

    /// Layer `index` arrives as a byte stream (a download in progress). A task on the current
    /// runtime reads it into a small buffer (2 MiB) that the layer's decoder drains when its
    /// turn comes (or when it may decode ahead); until then the stream is not read further,
    /// which back-pressures the download. An error from the stream fails the conversion with
    /// [`Error::LayerSource`] carrying it. Fails as
    /// [`notify_layer_ready`](StreamingPacker::notify_layer_ready) does.
    pub async fn notify_layer_stream<R>(&self, index: usize, stream: R) -> Result<()>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.claim(index)?;
        let bridge = AsyncBridge::spawn(&self.runtime, stream, self.shared.cancel.subscribe());
        self.tx
            .as_ref()
            .ok_or(Error::Stopped)?
            .send(Message::Layer(Arrival {
                index,
                source: Source::Reader(Box::new(bridge)),
                meta: None,
            }))
            .map_err(|_| Error::Stopped)
    }

    /// Layer `index` arrives as a blocking reader, read on the layer's decoder thread (never on
    /// the runtime). Fails as [`notify_layer_ready`](StreamingPacker::notify_layer_ready) does.
    pub async fn notify_layer_reader(
        &self,
        index: usize,
        reader: Box<dyn Read + Send>,
    ) -> Result<()> {
        self.deliver(index, Source::Reader(reader), None)
    }

    /// Layer `index` arrives as a blocking reader whose bytes `reopen` can read again from the
    /// start (a download landing in a file): a second pass reads them there instead of a copy.
    /// Only `registry::pull` delivers such layers.
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    pub(crate) fn notify_layer_replayable(
        &self,
        index: usize,
        reader: Box<dyn Read + Send>,
        reopen: ReopenBlob,
    ) -> Result<()> {
        self.deliver(index, Source::Replayable(reader, reopen), None)
    }

    /// The caller cannot supply a layer: the conversion stops and
    /// [`finish`](StreamingPacker::finish) returns [`Error::LayerSource`] carrying `err` (unless
    /// the conversion had already ended, or failed for another reason first).
    pub async fn notify_error(&self, err: impl Into<BoxError>) {
        self.halt(Abort::Caller(err.into()));
    }

    /// Waits for the conversion to end and returns its result; when it returns, the threads
    /// have ended and a failed conversion's partial output is gone. Every layer must have been
    /// delivered; if one was not, the result is [`Error::MissingLayers`]. If
    /// [`ConvertOptions::cancel`] is cancelled (before or while this waits), the result is
    /// [`Error::Interrupted`].
    pub async fn finish(mut self) -> Result<Summary> {
        // Closing the delivery channel tells the order thread that nothing more will come.
        self.tx = None;
        let result = match self.result.take() {
            Some(rx) => rx.await.unwrap_or(Err(Error::Stopped)),
            None => Err(Error::Stopped),
        };
        // Whatever error the stop surfaced as (a reader's, a sink's), it is the interruption.
        let result = match result {
            Err(_) if self.cancel.is_cancelled() => Err(Error::Interrupted),
            r => r,
        };
        if let Some(thread) = self.thread.take() {
            // The merge thread has sent its result (or died) and joined the order thread; this
            // join returns at once, but it still is a blocking call.
            let joined = self.runtime.spawn_blocking(move || thread.join()).await;
            if let Ok(Err(panic)) = joined {
                std::panic::resume_unwind(panic);
            }
        }
        result
    }
}

impl Drop for StreamingPacker {
    /// Dropping an unfinished packer stops the conversion without waiting for it: the merge
    /// thread notices at its next read, removes the partial output and exits.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shared.halt(None);
            self.tx = None;
        }
    }
}

/// Checks that `metas` holds each index `0..len` once; returns them in index order.
fn check_metas(mut metas: Vec<LayerMeta>) -> Result<Vec<LayerMeta>> {
    let count = metas.len();
    if let Some(m) = metas.iter().find(|m| m.index >= count) {
        return Err(Error::LayerIndexOutOfRange {
            index: m.index,
            count,
        });
    }
    metas.sort_by_key(|m| m.index);
    if let Some(w) = metas.windows(2).find(|w| w[0].index == w[1].index) {
        return Err(Error::DuplicateLayer { index: w[0].index });
    }
    Ok(metas)
}

fn spawn(
    name: &str,
    spec: &ImageSpec,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| Error::io("start a thread to write", spec.path(), e))
}

/// `callback` and `channel` as one progress function.
fn with_channel(
    callback: Option<ProgressFn>,
    channel: Option<mpsc::UnboundedSender<Progress>>,
) -> Option<ProgressFn> {
    match (callback, channel) {
        (callback, None) => callback,
        (callback, Some(tx)) => Some(Arc::new(move |event: &Progress| {
            if let Some(f) = &callback {
                f(event);
            }
            let _ = tx.send(event.clone());
        })),
    }
}

/// Halts the conversion when `token` is cancelled, from a task on `runtime`: the merge may be
/// waiting for a layer that is not delivered yet (and reads nothing that would notice), so the
/// order thread is woken by dropping `wake`, and it stops handing layers over. The task ends
/// with the conversion.
fn watch_token(runtime: &Handle, token: CancelToken, shared: Arc<Shared>, wake: Sender<()>) {
    let mut ended = shared.cancel.subscribe();
    runtime.spawn(async move {
        tokio::select! {
            () = token.cancelled() => {
                shared.halt(Some(Abort::Cancelled));
                drop(wake);
            }
            _ = ended.wait_for(|stop| *stop) => {}
        }
    });
}

/// What the callers' side sends to the order thread.
enum Message {
    Layer(Arrival),
    /// Look at the stop flag (the conversion was halted).
    Wake,
}

/// A delivered layer.
struct Arrival {
    index: usize,
    source: Source,
    /// The layer's metadata when it comes with the delivery ([`convert_streaming`]).
    meta: Option<LayerMeta>,
}

enum Source {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
    /// A reader, and how to read the same bytes again (from `registry::pull` only).
    #[cfg_attr(not(feature = "registry"), allow(dead_code))]
    Replayable(Box<dyn Read + Send>, ReopenBlob),
}

/// Why a conversion was halted from outside the threads.
enum Abort {
    /// [`StreamingPacker::notify_error`].
    Caller(BoxError),
    /// A bad or repeated index.
    Misuse(Error),
    /// [`ConvertOptions::cancel`] was cancelled.
    Cancelled,
}

/// State every side sees.
struct Shared {
    stopped: AtomicBool,
    /// The first reason given for stopping; the merge thread takes it to report it.
    reason: Mutex<Option<Abort>>,
    /// Set once the conversion stops, so that stream-reading tasks end.
    cancel: watch::Sender<bool>,
}

impl Shared {
    fn halt(&self, why: Option<Abort>) {
        if let Some(why) = why {
            let mut reason = self.reason.lock().unwrap_or_else(PoisonError::into_inner);
            if reason.is_none() && !self.is_stopped() {
                *reason = Some(why);
            }
        }
        self.stopped.store(true, Ordering::SeqCst);
        self.cancel.send_replace(true);
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// The error for a conversion that was halted from outside.
    fn reason(&self) -> Error {
        let reason = self
            .reason
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        match reason {
            Some(Abort::Caller(source)) => Error::LayerSource { source },
            Some(Abort::Misuse(e)) => e,
            Some(Abort::Cancelled) => Error::Interrupted,
            None => Error::Stopped,
        }
    }
}

/// A layer handed from the order thread to the merge thread.
struct Ready {
    index: usize,
    meta: LayerMeta,
    /// Set when the layer's blob is a file, which can be read again at once.
    path: Option<PathBuf>,
    /// How to read the blob again for a second pass (once this reading is complete).
    replay: Replay,
    layer: Layer,
}

enum Layer {
    /// Decoding (and perhaps decoding ahead).
    Opened(LayerReader),
    /// Not opened yet (read-ahead is off): the merge opens it at its turn.
    Waiting(Source),
}

/// The order thread: collects deliveries and hands layers over newest first.
struct Order {
    metas: Vec<Option<LayerMeta>>,
    rx: Receiver<Message>,
    /// Disconnects when the conversion is cancelled ([`watch_token`]).
    woken: Receiver<()>,
    handoff: Sender<Result<Ready>>,
    /// Disconnects when the merge thread ends.
    merge_alive: Receiver<()>,
    opening: Opening,
    open_ahead: bool,
    /// Where copies of streamed layers go.
    temp: PathBuf,
    shared: Arc<Shared>,
}

impl Order {
    fn run(self) {
        let mut arrived: BTreeMap<usize, Arrival> = BTreeMap::new();
        for want in (0..self.metas.len()).rev() {
            let arrival = loop {
                if self.shared.is_stopped() {
                    return;
                }
                if let Some(a) = arrived.remove(&want) {
                    break a;
                }
                crossbeam_channel::select! {
                    recv(self.rx) -> msg => match msg {
                        Ok(Message::Layer(a)) => {
                            arrived.insert(a.index, a);
                        }
                        Ok(Message::Wake) => {}
                        Err(_) => {
                            // The packer finished (or was dropped) with `want` undelivered.
                            if !self.shared.is_stopped() {
                                let total = self.metas.len();
                                let _ = self.handoff.send(Err(missing(want, total, &arrived)));
                            }
                            return;
                        }
                    },
                    recv(self.merge_alive) -> _ => return,
                    recv(self.woken) -> _ => {}
                }
            };
            let ready = self.prepare(arrival);
            let failed = ready.is_err();
            if self.handoff.send(ready).is_err() || failed {
                return;
            }
        }
    }

    fn prepare(&self, arrival: Arrival) -> Result<Ready> {
        let Arrival {
            index,
            source,
            meta,
        } = arrival;
        let meta = match meta.or_else(|| self.metas.get(index).cloned().flatten()) {
            Some(meta) => meta,
            None => {
                return Err(Error::LayerIndexOutOfRange {
                    index,
                    count: self.metas.len(),
                })
            }
        };
        let (source, path, replay) = match source {
            Source::Path(p) => (Source::Path(p.clone()), Some(p.clone()), Replay::File(p)),
            Source::Reader(reader) => {
                let (tee, copy) = Tee::new(reader, &self.temp)?;
                (Source::Reader(Box::new(tee)), None, Replay::Copy(copy))
            }
            Source::Replayable(reader, reopen) => {
                (Source::Reader(reader), None, Replay::Reopen(reopen))
            }
        };
        let layer = if self.open_ahead {
            Layer::Opened(open(&self.opening, &meta, source)?)
        } else {
            Layer::Waiting(source)
        };
        Ok(Ready {
            index,
            meta,
            path,
            replay,
            layer,
        })
    }
}

/// [`Error::MissingLayers`] when the newest layer not yet handed over is `want`.
fn missing(want: usize, total: usize, arrived: &BTreeMap<usize, Arrival>) -> Error {
    let missing: Vec<usize> = (0..=want)
        .rev()
        .filter(|i| !arrived.contains_key(i))
        .collect();
    Error::MissingLayers {
        missing: missing.len(),
        total,
        first: missing.first().copied().unwrap_or(want),
    }
}

/// Starts decoding `source` as the layer `meta` describes.
fn open(opening: &Opening, meta: &LayerMeta, source: Source) -> Result<LayerReader> {
    match source {
        Source::Path(path) => opening.open(&descriptor(meta, path)),
        Source::Reader(reader) | Source::Replayable(reader, _) => opening
            .open_reader(
                meta.index,
                reader,
                &meta.media_type,
                meta.digest.clone(),
                meta.digest_of,
                meta.size,
            )
            .map_err(|e| e.in_layer(meta.index, &meta.digest)),
    }
}

fn descriptor(meta: &LayerMeta, path: PathBuf) -> LayerDescriptor {
    LayerDescriptor {
        index: meta.index,
        media_type: meta.media_type.clone(),
        digest: meta.digest.clone(),
        digest_of: meta.digest_of,
        size: meta.size,
        location: BlobLocation::File(path),
    }
}

/// The merge thread.
struct Merge {
    /// The number of layers.
    layers: usize,
    handoff: Receiver<Result<Ready>>,
    /// Dropped when this thread ends, which the order thread notices.
    alive: Sender<()>,
    order_thread: Option<JoinHandle<()>>,
    opening: Opening,
    /// The output, opened again for a second pass.
    spec: ImageSpec,
    /// The layers' digests, when known from the start (to name layers in errors).
    digests: Option<Vec<Digest>>,
    options: ConvertOptions,
    shared: Arc<Shared>,
}

impl Merge {
    fn run(self, sink: Box<dyn Sink>) -> Result<Summary> {
        let result = self.merge(sink);
        if result.is_err() {
            self.shared.halt(None);
        }
        // Let the order thread go (it selects on `alive`, or waits to hand a layer over) and
        // wait for it, so that no thread outlives the result.
        let Merge {
            handoff,
            alive,
            order_thread,
            shared,
            ..
        } = self;
        drop((handoff, alive));
        if let Some(t) = order_thread {
            let _ = t.join();
        }
        // Streams not yet read to the end are abandoned.
        shared.cancel.send_replace(true);
        result
    }

    /// The first pass, as layers are handed over; if it learns that names must be resolved in
    /// layer order, the remaining layers are still read to their end (their digests checked,
    /// streamed ones copied) and the conversion runs again from the copies.
    fn merge(&self, sink: Box<dyn Sink>) -> Result<Summary> {
        let total = self.layers;
        let mut merger = Merger::new(sink, total, &self.options);
        if let Some(digests) = &self.digests {
            merger.name_layers(digests.clone());
        }
        let mut merger = Some(merger);
        let mut replays: Vec<Option<(LayerMeta, Replay)>> = (0..total).map(|_| None).collect();
        let mut again: Option<Error> = None;
        for _ in 0..total {
            let ready = match self.handoff.recv() {
                Ok(Ok(ready)) => ready,
                Ok(Err(e)) => return Err(self.stopped_or(e)),
                Err(_) => return Err(self.shared.reason()),
            };
            let Ready {
                index,
                meta,
                path,
                replay,
                layer,
            } = ready;
            let mut reader = match layer {
                Layer::Opened(reader) => reader,
                Layer::Waiting(source) => open(&self.opening, &meta, source)?,
            };
            if let Some(m) = merger.as_mut() {
                let mut reopen = path.map(|p| {
                    let meta = meta.clone();
                    move || -> Result<Box<dyn Read + Send>> {
                        Ok(Box::new(LayerReader::open(
                            &descriptor(&meta, p.clone()),
                            None,
                        )?))
                    }
                });
                let reopen = reopen.as_mut().map(|f| f as &mut dyn FnMut() -> _);
                match self.merge_one(m, &meta, &mut reader, reopen) {
                    Err(e) if is_second_pass(&e) => {
                        // The first pass's output goes now (the sink removes it).
                        merger = None;
                        again = Some(e);
                    }
                    r => r.map_err(|e| self.stopped_or(e))?,
                }
            }
            // Read to the end: the digest is checked, and a streamed layer's copy completed.
            reader
                .finish()
                .map_err(|e| self.stopped_or(e.in_layer(index, &meta.digest)))?;
            replays[index] = Some((meta, replay));
        }
        let why = match (merger, again) {
            (Some(m), None) => match m.finish() {
                Err(e) if is_second_pass(&e) => e,
                r => {
                    let summary = r?;
                    self.options.report(Progress::Finished(summary.clone()));
                    return Ok(summary);
                }
            },
            (_, Some(e)) => e,
            (None, None) => return Err(Error::Stopped),
        };
        let layers = replays
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::Stopped)?;
        let summary = self.second_pass(&why, layers)?;
        self.options.report(Progress::Finished(summary.clone()));
        Ok(summary)
    }

    /// Converts again from the layers' copies: their headers oldest first, to resolve names,
    /// then the merge with the resolution, into a new output.
    fn second_pass(&self, why: &Error, mut layers: Vec<(LayerMeta, Replay)>) -> Result<Summary> {
        self.options.report(Progress::SecondPass {
            why: why.root_cause().to_string(),
        });
        let mut resolver = Resolver::new(layers.len());
        for (meta, replay) in &mut layers {
            let in_layer = |e: Error| e.in_layer(meta.index, &meta.digest);
            let mut reader = self.reopen(meta, replay).map_err(in_layer)?;
            let mut stoppable = Stoppable {
                inner: &mut reader,
                stop: &self.shared.stopped,
            };
            resolver
                .layer(meta.index, &mut self.options.cancel.reader(&mut stoppable))
                .and_then(|()| reader.finish())
                .map_err(|e| self.stopped_or(in_layer(e)))?;
        }
        let sink = open_sink(&self.spec, &self.options)?;
        let mut merger =
            Merger::with_resolution(sink, layers.len(), &self.options, resolver.finish());
        merger.name_layers(layers.iter().map(|(m, _)| m.digest.clone()).collect());
        for (meta, replay) in layers.iter_mut().rev() {
            let mut reader = self
                .reopen(meta, replay)
                .map_err(|e| e.in_layer(meta.index, &meta.digest))?;
            let mut again =
                || -> Result<Box<dyn Read + Send>> { Ok(Box::new(self.reopen(meta, replay)?)) };
            self.merge_one(&mut merger, meta, &mut reader, Some(&mut again))
                .and_then(|()| {
                    reader
                        .finish()
                        .map_err(|e| e.in_layer(meta.index, &meta.digest))
                })
                .map_err(|e| self.stopped_or(e))?;
        }
        let mut summary = merger.finish()?;
        summary.second_pass = true;
        Ok(summary)
    }

    /// Decodes a layer again from its replay.
    fn reopen(&self, meta: &LayerMeta, replay: &mut Replay) -> Result<LayerReader> {
        match replay {
            Replay::File(path) => self.opening.open(&descriptor(meta, path.clone())),
            Replay::Copy(path) => self.opening.open(&descriptor(meta, path.to_path_buf())),
            Replay::Reopen(_) => open(&self.opening, meta, Source::Reader(replay.open()?)),
        }
    }

    fn merge_one(
        &self,
        merger: &mut Merger,
        meta: &LayerMeta,
        reader: &mut LayerReader,
        reopen: Option<&mut dyn FnMut() -> Result<Box<dyn Read + Send>>>,
    ) -> Result<()> {
        let index = meta.index;
        self.options.report(Progress::LayerStarted {
            index,
            size: meta.size,
        });
        let mut stoppable = Stoppable {
            inner: reader,
            stop: &self.shared.stopped,
        };
        match reopen {
            Some(reopen) => merger.layer_reopenable(index, &mut stoppable, reopen),
            None => merger.layer(index, &mut stoppable),
        }
        .map_err(|e| e.in_layer(index, &meta.digest))?;
        self.options.report(Progress::LayerFinished { index });
        Ok(())
    }

    /// `e`, unless the conversion was halted from outside, which `e` is then only a symptom of.
    fn stopped_or(&self, e: Error) -> Error {
        if self.shared.is_stopped() {
            self.shared.reason()
        } else {
            e
        }
    }
}

/// A reader that fails once the conversion is stopped, so that the merge ends promptly.
struct Stoppable<'a, R> {
    inner: &'a mut R,
    stop: &'a AtomicBool,
}

impl<R: Read> Read for Stoppable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(io::Error::from(Error::Stopped));
        }
        self.inner.read(buf)
    }
}

/// Size of one piece read from an async stream.
const BRIDGE_CHUNK: usize = 256 << 10;

/// Pieces buffered between an async stream and its decoder.
const BRIDGE_CHUNKS: usize = 8;

enum Piece {
    Data(Vec<u8>),
    Failed(io::Error),
    End,
}

/// Feeds an `AsyncRead` into blocking reads: a task on the caller's runtime reads pieces into a
/// bounded channel that the layer's decoder thread drains. The task ends at the stream's end,
/// when the decoder goes away, or when the conversion stops.
struct AsyncBridge {
    rx: mpsc::Receiver<Piece>,
    cur: Vec<u8>,
    pos: usize,
    ended: bool,
}

impl AsyncBridge {
    fn spawn<R>(runtime: &Handle, mut stream: R, mut cancel: watch::Receiver<bool>) -> AsyncBridge
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let (tx, rx) = mpsc::channel(BRIDGE_CHUNKS);
        runtime.spawn(async move {
            loop {
                let mut buf = vec![0u8; BRIDGE_CHUNK];
                let piece = tokio::select! {
                    r = stream.read(&mut buf) => match r {
                        Ok(0) => Piece::End,
                        Ok(n) => {
                            buf.truncate(n);
                            Piece::Data(buf)
                        }
                        Err(e) => Piece::Failed(e),
                    },
                    _ = cancel.wait_for(|stop| *stop) => return,
                };
                let last = !matches!(piece, Piece::Data(_));
                let sent = tokio::select! {
                    r = tx.send(piece) => r.is_ok(),
                    _ = cancel.wait_for(|stop| *stop) => false,
                };
                if last || !sent {
                    return;
                }
            }
        });
        AsyncBridge {
            rx,
            cur: Vec::new(),
            pos: 0,
            ended: false,
        }
    }
}

impl Read for AsyncBridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Piece::Data(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Some(Piece::Failed(e)) => return Err(e),
                Some(Piece::End) => self.ended = true,
                // The task ended without reaching the end: the conversion stopped.
                None => return Err(io::Error::from(Error::Stopped)),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Converts an image whose `total` layers arrive as a stream, in any order, each exactly once.
///
/// Each [`LayerBlob`] brings its layer's media type and digest. An `Err` item aborts with
/// [`Error::LayerSource`] carrying it; a stream that ends before every layer arrived fails with
/// [`Error::MissingLayers`]; an index out of range or delivered twice fails with
/// [`Error::LayerIndexOutOfRange`] or [`Error::DuplicateLayer`]. On failure no output is left.
/// A stream of layers that cannot fail can be passed as
/// `stream.map(Ok::<_, std::convert::Infallible>)`.
pub async fn convert_streaming<S, E>(
    layers: S,
    total: usize,
    spec: ImageSpec,
    options: ConvertOptions,
) -> Result<Summary>
where
    S: Stream<Item = std::result::Result<LayerBlob, E>>,
    E: Into<BoxError>,
{
    let packer = StreamingPacker::start(vec![None; total], spec, options, None)?;
    let mut layers = std::pin::pin!(layers);
    let mut refused = None;
    while let Some(item) = std::future::poll_fn(|cx| layers.as_mut().poll_next(cx)).await {
        match item {
            Ok(blob) => {
                let meta = LayerMeta {
                    index: blob.index,
                    media_type: blob.media_type,
                    digest: blob.digest,
                    digest_of: DigestOf::Blob,
                    size: None,
                };
                if let Err(e) = packer.deliver(blob.index, Source::Path(blob.path), Some(meta)) {
                    // A bad index stopped the conversion; anything else means it had stopped
                    // already, and `finish` says why.
                    if !matches!(e, Error::Stopped) {
                        refused = Some(e);
                    }
                    break;
                }
            }
            Err(e) => {
                packer.notify_error(e).await;
                break;
            }
        }
    }
    let result = packer.finish().await;
    match refused {
        Some(e) => Err(e),
        None => result,
    }
}
