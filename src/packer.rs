//! [`StreamingPacker`]: convert while the layers are still downloading.
//!
//! ```text
//! download tasks ──notify_layer_*(i)──► channel ──► merge thread: waits for layer n-1, n-2, …
//!  (any order)                                       (newest first), opening the next layer
//!                                                     ahead so its decoding overlaps the merge
//! ```
//! The sink is opened at once ([`StreamingPacker::new`] fails if it cannot be); the merge runs
//! on a dedicated thread, so nothing blocks the async runtime. A layer that arrives before its
//! turn waits: a file path costs nothing, and a stream is simply not read yet, which
//! back-pressures its download. Every way of ending — [`finish`](StreamingPacker::finish), an
//! error from the caller ([`notify_error`](StreamingPacker::notify_error)), a bad index, a stream
//! that ends early, dropping the packer — stops the thread, and on failure removes the partial
//! output.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use futures_core::Stream;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::convert::open_sink;
use crate::digest::Digest;
use crate::error::{BoxError, Error, Result};
use crate::image::{DigestOf, LayerDescriptor};
use crate::layer::LayerReader;
use crate::merge::Merger;
use crate::options::{ConvertOptions, ImageSpec};
use crate::progress::Progress;
use crate::sink::Summary;

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
    /// The blob's size, when known.
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
    /// The blob's digest, checked while it streams.
    pub digest: Digest,
}

enum Delivery {
    Path(PathBuf),
    Reader(Box<dyn Read + Send>),
    Failed(BoxError),
}

/// Converts an image whose layers arrive in any order, as they finish downloading.
///
/// ```no_run
/// # use ocirender::{StreamingPacker, LayerMeta, ImageSpec, ConvertOptions};
/// # async fn example(metas: Vec<LayerMeta>) -> ocirender::Result<()> {
/// let spec = ImageSpec::Squashfs { path: "rootfs.sqfs".into() };
/// let packer = StreamingPacker::new(metas, spec, ConvertOptions::default())?;
/// // From any task, in any order, as downloads complete:
/// packer.notify_layer_ready(1, "/tmp/layer1.tar.gz".into()).await?;
/// packer.notify_layer_ready(0, "/tmp/layer0.tar.gz".into()).await?;
/// let summary = packer.finish().await?;
/// # Ok(())
/// # }
/// ```
pub struct StreamingPacker {
    tx: Option<Sender<(usize, Delivery)>>,
    delivered: Mutex<Vec<bool>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    result: Option<tokio::sync::oneshot::Receiver<Result<Summary>>>,
}

impl StreamingPacker {
    /// Opens the output and starts the merge thread, which waits for layers.
    ///
    /// `layers` must describe every layer of the image, one per index `0..len`.
    pub fn new(
        layers: Vec<LayerMeta>,
        spec: ImageSpec,
        options: ConvertOptions,
    ) -> Result<StreamingPacker> {
        let mut metas = layers;
        metas.sort_by_key(|m| m.index);
        for (i, m) in metas.iter().enumerate() {
            if m.index != i {
                return Err(Error::LayerIndexOutOfRange {
                    index: m.index,
                    count: metas.len(),
                });
            }
        }
        let sink = open_sink(&spec, &options)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let (result_tx, result_rx) = tokio::sync::oneshot::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let delivered = Mutex::new(vec![false; metas.len()]);
        let worker = Worker {
            metas,
            rx,
            stop: stop.clone(),
            options,
        };
        let thread = std::thread::Builder::new()
            .name("ocirender-merge".into())
            .spawn(move || {
                let r = worker.run(sink);
                let _ = result_tx.send(r);
            })
            .map_err(|e| Error::io("start the merge thread for", spec.path(), e))?;
        Ok(StreamingPacker {
            tx: Some(tx),
            delivered,
            stop,
            thread: Some(thread),
            result: Some(result_rx),
        })
    }

    fn deliver(&self, index: usize, d: Delivery) -> Result<()> {
        {
            let mut delivered = self.delivered.lock().map_err(|_| Error::Stopped)?;
            let count = delivered.len();
            let slot = delivered
                .get_mut(index)
                .ok_or(Error::LayerIndexOutOfRange { index, count })?;
            if *slot {
                return Err(Error::DuplicateLayer { index });
            }
            *slot = true;
        }
        self.tx
            .as_ref()
            .ok_or(Error::Stopped)?
            .send((index, d))
            .map_err(|_| Error::Stopped)
    }

    /// Layer `index` is complete at `path`. May be called from any task, in any order; fails
    /// for an index out of range, one already delivered, or once the conversion has stopped
    /// (then [`finish`](StreamingPacker::finish) says why).
    pub async fn notify_layer_ready(&self, index: usize, path: PathBuf) -> Result<()> {
        self.deliver(index, Delivery::Path(path))
    }

    /// Layer `index` arrives as a byte stream (a download in progress). The stream is read when
    /// the layer's turn comes; until then it is not polled, which back-pressures the download.
    pub async fn notify_layer_stream<R>(&self, index: usize, stream: R) -> Result<()>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        self.deliver(
            index,
            Delivery::Reader(Box::new(AsyncBridge::spawn(stream))),
        )
    }

    /// Layer `index` arrives as a blocking reader (read on the merge's threads).
    pub fn notify_layer_reader(&self, index: usize, reader: Box<dyn Read + Send>) -> Result<()> {
        self.deliver(index, Delivery::Reader(reader))
    }

    /// The caller cannot supply a layer: the conversion stops and
    /// [`finish`](StreamingPacker::finish) returns [`Error::LayerSource`] carrying `err`.
    pub async fn notify_error(&self, err: impl Into<BoxError>) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(tx) = &self.tx {
            let _ = tx.send((usize::MAX, Delivery::Failed(err.into())));
        }
    }

    /// Waits for the conversion to end and returns its result. Every layer must have been
    /// delivered; if one was not, the result is [`Error::MissingLayers`].
    pub async fn finish(mut self) -> Result<Summary> {
        self.tx = None;
        let rx = self.result.take().ok_or(Error::Stopped)?;
        let r = rx.await.unwrap_or(Err(Error::Stopped));
        if let Some(t) = self.thread.take() {
            // The thread has sent its result and is returning; joining cannot block for long.
            let _ = tokio::task::spawn_blocking(move || t.join()).await;
        }
        r
    }
}

impl Drop for StreamingPacker {
    /// Dropping an unfinished packer stops the conversion: the merge thread notices at its next
    /// read, removes the partial output and exits.
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop.store(true, Ordering::SeqCst);
            self.tx = None;
        }
    }
}

/// The merge thread's state.
struct Worker {
    metas: Vec<LayerMeta>,
    rx: Receiver<(usize, Delivery)>,
    stop: Arc<AtomicBool>,
    options: ConvertOptions,
}

impl Worker {
    fn run(self, sink: Box<dyn crate::sink::Sink>) -> Result<Summary> {
        let total = self.metas.len();
        self.options.report(Progress::Started {
            layers: total,
            compressed_bytes: self.metas.iter().filter_map(|m| m.size).sum(),
        });
        let mut merger = Merger::new(sink, total, &self.options);
        let mut arrived: BTreeMap<usize, Delivery> = BTreeMap::new();
        let mut ahead: Option<(usize, LayerReader, Option<PathBuf>)> = None;
        let mut next = total;
        while next > 0 {
            let want = next - 1;
            // Take whatever has arrived, without waiting, then wait only if `want` is missing.
            self.drain(&mut arrived, false)?;
            while !arrived.contains_key(&want) && ahead.as_ref().is_none_or(|a| a.0 != want) {
                self.drain(&mut arrived, true)?;
            }
            let (index, mut reader, path) = match ahead.take() {
                Some(a) if a.0 == want => a,
                _ => self.open(want, &mut arrived)?,
            };
            if want > 0 && arrived.contains_key(&(want - 1)) {
                ahead = Some(self.open(want - 1, &mut arrived)?);
            }
            self.merge_one(&mut merger, index, &mut reader, path)?;
            next = want;
        }
        // Anything still arriving now is a duplicate or out of range; deliver() refuses those.
        let summary = merger.finish()?;
        self.options.report(Progress::Finished(summary.clone()));
        Ok(summary)
    }

    fn merge_one(
        &self,
        merger: &mut Merger,
        index: usize,
        reader: &mut LayerReader,
        path: Option<PathBuf>,
    ) -> Result<()> {
        let meta = &self.metas[index];
        self.options.report(Progress::LayerStarted {
            index,
            size: meta.size,
        });
        let mut stoppable = Stoppable {
            inner: reader,
            stop: &self.stop,
        };
        let r = match &path {
            Some(p) => {
                let mut reopen = || -> Result<Box<dyn Read + Send>> {
                    Ok(Box::new(self.reader_for(index, Delivery::Path(p.clone()))?))
                };
                merger.layer_reopenable(index, &mut stoppable, &mut reopen)
            }
            None => merger.layer(index, &mut stoppable),
        };
        r.map_err(|e| self.tag(index, e))?;
        if self.stop.load(Ordering::SeqCst) {
            return Err(self.stopped());
        }
        Ok(())
    }

    fn tag(&self, index: usize, e: Error) -> Error {
        if self.stop.load(Ordering::SeqCst) {
            return self.stopped();
        }
        e.in_layer(index, &self.metas[index].digest)
    }

    /// Why the conversion stopped early: a caller's error if one is waiting, else `Stopped`.
    fn stopped(&self) -> Error {
        while let Ok((_, d)) = self.rx.try_recv() {
            if let Delivery::Failed(source) = d {
                return Error::LayerSource { source };
            }
        }
        Error::Stopped
    }

    fn open(
        &self,
        index: usize,
        arrived: &mut BTreeMap<usize, Delivery>,
    ) -> Result<(usize, LayerReader, Option<PathBuf>)> {
        let d = arrived.remove(&index).ok_or(Error::Stopped)?;
        let path = match &d {
            Delivery::Path(p) => Some(p.clone()),
            _ => None,
        };
        let reader = self.reader_for(index, d)?;
        Ok((index, reader, path))
    }

    fn reader_for(&self, index: usize, d: Delivery) -> Result<LayerReader> {
        let meta = &self.metas[index];
        let source: Box<dyn Read + Send> = match d {
            Delivery::Path(p) => {
                let desc_path = p.clone();
                let f =
                    std::fs::File::open(&p).map_err(|e| Error::io("open layer", desc_path, e))?;
                Box::new(f)
            }
            Delivery::Reader(r) => r,
            Delivery::Failed(source) => return Err(Error::LayerSource { source }),
        };
        LayerReader::from_reader(
            index,
            source,
            &meta.media_type,
            meta.digest.clone(),
            meta.digest_of,
            meta.size,
            self.options.progress.clone(),
        )
        .map_err(|e| self.tag(index, e))
    }

    /// Moves deliveries from the channel into `arrived`; with `block`, waits for at least one.
    fn drain(&self, arrived: &mut BTreeMap<usize, Delivery>, block: bool) -> Result<()> {
        let mut first = block;
        loop {
            let item = if first {
                first = false;
                match self.rx.recv() {
                    Ok(item) => item,
                    Err(_) => return Err(self.missing(arrived)),
                }
            } else {
                match self.rx.try_recv() {
                    Ok(item) => item,
                    Err(_) => return Ok(()),
                }
            };
            match item {
                (_, Delivery::Failed(source)) => return Err(Error::LayerSource { source }),
                (i, d) => {
                    arrived.insert(i, d);
                }
            }
        }
    }

    fn missing(&self, arrived: &BTreeMap<usize, Delivery>) -> Error {
        if self.stop.load(Ordering::SeqCst) {
            return Error::Stopped;
        }
        let total = self.metas.len();
        let missing: Vec<usize> = (0..total)
            .rev()
            .filter(|i| !arrived.contains_key(i))
            .collect();
        Error::MissingLayers {
            missing: missing.len(),
            total,
            first: missing.first().copied().unwrap_or(0),
        }
    }
}

/// A reader that fails once the packer is stopped, so a dropped packer's thread ends promptly.
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

/// Feeds an `AsyncRead` into blocking reads: a task on the caller's runtime reads chunks into a
/// bounded channel that the layer's decode thread drains.
struct AsyncBridge {
    rx: tokio::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl AsyncBridge {
    fn spawn<R: AsyncRead + Send + Unpin + 'static>(mut stream: R) -> AsyncBridge {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 256 * 1024];
                match stream.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        if tx.send(Ok(buf)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        break;
                    }
                }
            }
        });
        AsyncBridge {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for AsyncBridge {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.blocking_recv() {
                Some(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Converts an image whose layers arrive as a stream, in any order, each exactly once.
///
/// An `Err` item aborts with [`Error::LayerSource`]; a stream that ends before every layer
/// arrived fails with [`Error::MissingLayers`]. A stream of layers that cannot fail can be
/// passed as `stream.map(Ok::<_, std::convert::Infallible>)`.
pub async fn convert_streaming<S, E>(
    layers: S,
    metas: Vec<LayerMeta>,
    spec: ImageSpec,
    options: ConvertOptions,
) -> Result<Summary>
where
    S: Stream<Item = std::result::Result<LayerBlob, E>> + Send,
    E: Into<BoxError>,
{
    let packer = StreamingPacker::new(metas, spec, options)?;
    let mut layers = std::pin::pin!(layers);
    while let Some(item) = std::future::poll_fn(|cx| layers.as_mut().poll_next(cx)).await {
        match item {
            Ok(blob) => {
                if let Err(e) = packer.notify_layer_ready(blob.index, blob.path).await {
                    if matches!(e, Error::Stopped) {
                        break;
                    }
                    packer.notify_error(e).await;
                    break;
                }
            }
            Err(e) => {
                packer.notify_error(e).await;
                break;
            }
        }
    }
    packer.finish().await
}
