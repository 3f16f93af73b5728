//! Layers: turn a blob into the bytes of its tar stream, checking its digest on the way.
//!
//! ```text
//!            decode thread (one per open layer)                         caller's thread
//! blob ──► Tap ──► BufReader ──► Decoder ──► 256 KiB chunks ══channel══► LayerReader::read
//!  (File,   (count,             (gzip, zstd,  (hash them too     (≤ READ_AHEAD   │
//!   tar      hash,               xz, bzip2,    for a diff_id)     bytes queued)  ▼
//!   member,  size cap,           plain)                                    tar::for_each_entry
//!   caller)  progress)                        ◄══ empty chunks come back for reuse
//! ```
//!
//! [`LayerReader`] runs the blob's decompression (and hashing) on a thread of its own and hands
//! the decoded bytes over through a bounded queue, so decoding overlaps the merge and the sink,
//! and a reader opened before its turn decodes ahead (at most [`READ_AHEAD`] bytes, or what its
//! opener allows: `convert`'s read-ahead policy). The thread
//! always decodes to the end of the blob, whatever the tar reader needs, because the digest
//! covers every byte: padding after the end-of-archive marker, trailing garbage, the last gzip
//! member's trailer. The digest verdict is the last message on the queue;
//! [`LayerReader::finish`] discards what the tar reader left and returns it.
//!
//! Why a thread and not an inline decoder: decompression is the single most expensive step of a
//! conversion after squashfs compression, and it is sequential within a layer. On its own thread
//! it runs concurrently with the merge and the sink, and the next-older layer can be decoding
//! while the current one is merged.
//!
//! Errors travel as data: the thread tags each with [`Error::in_layer`] and sends it; `read`
//! returns it inside an [`io::Error`] (recover it with `Error::from_io`), so a
//! [`Error::DigestMismatch`] reaches the user as such even through the tar reader.

pub mod decompress;
mod digest_reader;
pub mod gzip;

/// Reading a layer's tar stream: [`for_each_entry`](tar::for_each_entry) and its limits. The
/// reader lives in its own module because the image store reads `docker save` archives with it
/// too.
pub mod tar {
    pub use crate::tar_reader::{for_each_entry, MAX_EXTENSION, MAX_EXTENSIONS_PER_ENTRY};
}

pub use crate::tar_reader::TarProblem;
pub use digest_reader::DigestReader;

use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::image::{BlobLocation, DigestOf, LayerDescriptor};
use crate::options::ProgressFn;
use crate::progress::Progress;

use self::decompress::{Codec, Decoder, MAGIC_LEN};
use self::gzip::Crc;

/// Decoded bytes that may wait in a reader's queue, unless the reader was opened to read
/// further ahead (see `convert`).
pub const READ_AHEAD: usize = 4 << 20;

/// Size of one decoded chunk sent through the queue.
const CHUNK: usize = 256 << 10;

/// Size of a layer's first chunk; each next one doubles up to [`CHUNK`], so that the many
/// tiny layers real images have do not each allocate (and zero) a full chunk.
const FIRST_CHUNK: usize = 16 << 10;

/// Size of the read buffer in front of the decoder (compressed bytes).
const INPUT_BUFFER: usize = 256 << 10;

/// Compressed bytes between two [`Progress::LayerRead`] events.
const PROGRESS_STEP: u64 = 1 << 20;

/// What the decode thread sends.
enum Msg {
    /// A chunk of the decoded stream (never empty).
    Data(Vec<u8>),
    /// The end of the stream with the digest verdict; nothing follows.
    End(Result<()>),
}

/// Where the reader is in the message stream.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Streaming,
    /// The verdict was Ok and has been seen.
    Ended,
    /// An error has been returned; it is not repeated (an `Error` cannot be cloned).
    Failed,
}

/// The decoded tar stream of one layer, produced by a background thread.
///
/// Errors returned by `read` wrap an [`Error`] already tagged with the layer
/// (recover it with `Error::from_io`). Dropping the reader stops its thread and joins it; a
/// thread blocked inside a caller-supplied source's `read` (see [`LayerReader::from_reader`])
/// is joined when that `read` returns.
pub struct LayerReader {
    index: usize,
    digest: Digest,
    rx: Option<Receiver<Msg>>,
    recycle: Sender<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
    state: State,
    thread: Option<JoinHandle<()>>,
}

impl LayerReader {
    /// Opens the blob of `desc` and starts decoding it in the background.
    ///
    /// A missing blob and a blob whose length differs from the descriptor's size are reported
    /// here, before any thread starts.
    pub fn open(desc: &LayerDescriptor, progress: Option<ProgressFn>) -> Result<LayerReader> {
        Opening::new(progress, READ_AHEAD).open(desc)
    }

    /// Decodes layer `index` from an arbitrary byte stream (a download in progress, say).
    /// `media_type` may be empty; the codec is then detected from the first bytes.
    ///
    /// An error from `source` that carries an [`Error`] is passed on as that
    /// error; any other becomes [`Error::LayerSource`].
    pub fn from_reader(
        index: usize,
        source: Box<dyn Read + Send>,
        media_type: &str,
        digest: Digest,
        digest_of: DigestOf,
        size: Option<u64>,
        progress: Option<ProgressFn>,
    ) -> Result<LayerReader> {
        Opening::new(progress, READ_AHEAD)
            .open_reader(index, source, media_type, digest, digest_of, size)
    }

    fn start(job: Job, source: Box<dyn Read + Send>, read_ahead: usize) -> Result<LayerReader> {
        let (tx, rx) = crossbeam_channel::bounded((read_ahead / CHUNK).max(1));
        let (recycle, recycled) = crossbeam_channel::bounded(4);
        let index = job.index;
        let digest = job.digest.clone();
        let thread = std::thread::Builder::new()
            .name(format!("layer-{index}"))
            .spawn(move || job.run(source, &tx, &recycled))
            .map_err(|e| {
                Error::io("start a decoder thread for", "the layer", e).in_layer(index, &digest)
            })?;
        Ok(LayerReader {
            index,
            digest,
            rx: Some(rx),
            recycle,
            chunk: Vec::new(),
            pos: 0,
            state: State::Streaming,
            thread: Some(thread),
        })
    }

    /// The layer's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Reads and discards the rest of the stream and returns the digest verdict.
    pub fn finish(mut self) -> Result<()> {
        self.chunk.clear();
        self.pos = 0;
        loop {
            match self.state {
                State::Ended => return Ok(()),
                State::Failed => return Err(self.stopped()),
                State::Streaming => {}
            }
            match self.receive() {
                Some(Msg::Data(chunk)) => self.give_back(chunk),
                Some(Msg::End(verdict)) => {
                    self.state = State::Ended;
                    return verdict;
                }
                None => {
                    self.state = State::Failed;
                    return Err(self.stopped());
                }
            }
        }
    }

    fn receive(&self) -> Option<Msg> {
        self.rx.as_ref().and_then(|rx| rx.recv().ok())
    }

    /// Returns an emptied chunk to the thread for reuse; a full return queue drops it.
    fn give_back(&self, chunk: Vec<u8>) {
        if chunk.capacity() >= CHUNK {
            let _ = self.recycle.try_send(chunk);
        }
    }

    /// The error for a thread that ended without a verdict, or a second read after an error.
    fn stopped(&self) -> Error {
        Error::Stopped.in_layer(self.index, &self.digest)
    }

    /// Makes the next chunk current; `Ok(false)` at the clean end of the stream.
    fn next_chunk(&mut self) -> io::Result<bool> {
        match self.state {
            State::Ended => return Ok(false),
            State::Failed => return Err(io::Error::from(self.stopped())),
            State::Streaming => {}
        }
        match self.receive() {
            Some(Msg::Data(chunk)) => {
                let old = std::mem::replace(&mut self.chunk, chunk);
                self.pos = 0;
                self.give_back(old);
                Ok(true)
            }
            Some(Msg::End(Ok(()))) => {
                self.state = State::Ended;
                Ok(false)
            }
            Some(Msg::End(Err(e))) => {
                self.state = State::Failed;
                Err(io::Error::from(e))
            }
            None => {
                self.state = State::Failed;
                Err(io::Error::from(self.stopped()))
            }
        }
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.pos >= self.chunk.len() {
            if !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Drop for LayerReader {
    fn drop(&mut self) {
        // Closing the queue makes the thread's next send fail, and it returns.
        drop(self.rx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How layers are opened: where their progress goes and how many decoded bytes a reader may
/// queue before its decoder waits. `convert` and the streaming packer raise the queue of a layer
/// they open before its turn, so that its decoding can run ahead of the merge.
#[derive(Clone)]
pub(crate) struct Opening {
    progress: Option<ProgressFn>,
    read_ahead: usize,
}

impl Opening {
    /// Readers that report to `progress` and queue at most `read_ahead` decoded bytes (at least
    /// one chunk).
    pub(crate) fn new(progress: Option<ProgressFn>, read_ahead: usize) -> Opening {
        Opening {
            progress,
            read_ahead,
        }
    }

    /// See [`LayerReader::open`].
    pub(crate) fn open(&self, desc: &LayerDescriptor) -> Result<LayerReader> {
        let in_layer = |e: Error| e.in_layer(desc.index, &desc.digest);
        let (source, len, path): (Box<dyn Read + Send>, u64, PathBuf) = match &desc.location {
            BlobLocation::File(path) => {
                let file = File::open(path).map_err(|e| {
                    in_layer(if e.kind() == io::ErrorKind::NotFound {
                        Error::BlobMissing {
                            digest: desc.digest.clone(),
                            path: path.clone(),
                        }
                    } else {
                        Error::io("open", path, e)
                    })
                })?;
                let len = file
                    .metadata()
                    .map_err(|e| in_layer(Error::io("stat", path, e)))?
                    .len();
                (Box::new(file), len, path.clone())
            }
            BlobLocation::TarMember {
                archive,
                offset,
                len,
            } => {
                let mut file =
                    File::open(archive).map_err(|e| in_layer(Error::io("open", archive, e)))?;
                file.seek(SeekFrom::Start(*offset))
                    .map_err(|e| in_layer(Error::io("seek in", archive, e)))?;
                (Box::new(file.take(*len)), *len, archive.clone())
            }
        };
        if let Some(expected) = desc.size {
            if expected != len {
                return Err(in_layer(Error::SizeMismatch {
                    digest: desc.digest.clone(),
                    expected,
                    found: len,
                }));
            }
        }
        let job = Job {
            index: desc.index,
            media_type: desc.media_type.clone(),
            digest: desc.digest.clone(),
            digest_of: desc.digest_of,
            size: desc.size,
            origin: Origin::File(path),
            progress: self.progress.clone(),
        };
        LayerReader::start(job, source, self.read_ahead)
    }

    /// See [`LayerReader::from_reader`].
    pub(crate) fn open_reader(
        &self,
        index: usize,
        source: Box<dyn Read + Send>,
        media_type: &str,
        digest: Digest,
        digest_of: DigestOf,
        size: Option<u64>,
    ) -> Result<LayerReader> {
        let job = Job {
            index,
            media_type: media_type.to_owned(),
            digest,
            digest_of,
            size,
            origin: Origin::Caller,
            progress: self.progress.clone(),
        };
        LayerReader::start(job, source, self.read_ahead)
    }
}

/// Where a blob's bytes come from, for error messages.
enum Origin {
    File(PathBuf),
    Caller,
}

/// Everything the decode thread needs besides the source.
struct Job {
    index: usize,
    media_type: String,
    digest: Digest,
    digest_of: DigestOf,
    size: Option<u64>,
    origin: Origin,
    progress: Option<ProgressFn>,
}

/// The compressed input as the decoder sees it: the peeked magic bytes, then the rest.
type Input = BufReader<std::io::Chain<Cursor<Vec<u8>>, Tap>>;

impl Job {
    /// The thread's body: decode everything, then send the verdict (unless the reader is gone).
    fn run(self, source: Box<dyn Read + Send>, tx: &Sender<Msg>, recycled: &Receiver<Vec<u8>>) {
        let (index, digest) = (self.index, self.digest.clone());
        match self.decode(source, tx, recycled) {
            Ok(Some(())) => {
                let _ = tx.send(Msg::End(Ok(())));
            }
            Ok(None) => {}
            Err(e) => {
                let _ = tx.send(Msg::End(Err(e.in_layer(index, &digest))));
            }
        }
    }

    /// Decodes the whole blob into chunks; `Ok(None)` when the reader went away.
    fn decode(
        self,
        source: Box<dyn Read + Send>,
        tx: &Sender<Msg>,
        recycled: &Receiver<Vec<u8>>,
    ) -> Result<Option<()>> {
        let mut tap = Tap {
            inner: source,
            hasher: (self.digest_of == DigestOf::Blob)
                .then(|| Hasher::new(self.digest.algorithm())),
            read: 0,
            at_eof: false,
            expected_size: self.size,
            failure: None,
            digest: self.digest.clone(),
            origin: self.origin,
            progress: self.progress,
            index: self.index,
            reported: 0,
        };
        let mut head = [0u8; MAGIC_LEN];
        let n = read_up_to(&mut tap, &mut head).map_err(|e| tap.error_for(e, Codec::Plain))?;
        let codec = Codec::choose(&self.media_type, &head[..n])?;
        // A blob of known size needs no larger buffer than itself.
        let input_buffer = self
            .size
            .and_then(|s| usize::try_from(s).ok())
            .map_or(INPUT_BUFFER, |s| s.clamp(MAGIC_LEN, INPUT_BUFFER));
        let input: Input =
            BufReader::with_capacity(input_buffer, Cursor::new(head[..n].to_vec()).chain(tap));
        // Every layer's bytes are proven by its digest (of the blob or of the decoded tar), so
        // gzip's CRC-32 would check the same bytes twice.
        let mut decoder = Decoder::with_crc(codec, input, Crc::Skip)?;
        let mut decoded_hasher = (self.digest_of == DigestOf::Uncompressed)
            .then(|| Hasher::new(self.digest.algorithm()));

        let mut chunk = FIRST_CHUNK;
        loop {
            let mut buf = recycled.try_recv().unwrap_or_default();
            buf.resize(chunk, 0);
            chunk = (chunk * 2).min(CHUNK);
            let (filled, eof) = match fill(&mut decoder, &mut buf) {
                Ok(r) => r,
                Err(e) => return Err(tap_of(&mut decoder).error_for(e, codec)),
            };
            buf.truncate(filled);
            if let Some(h) = decoded_hasher.as_mut() {
                h.update(&buf);
            }
            if filled > 0 && tx.send(Msg::Data(buf)).is_err() {
                return Ok(None);
            }
            if eof {
                break;
            }
        }
        // Every decoder here reads its input to the end, but what it may have left unread
        // is still part of the blob and must pass the hasher.
        if let Err(e) = io::copy(decoder.input_mut(), &mut io::sink()) {
            return Err(tap_of(&mut decoder).error_for(e, codec));
        }
        tap_of(&mut decoder).verdict()?;
        if let Some(h) = decoded_hasher {
            let found = h.finish();
            if found != self.digest {
                return Err(Error::DigestMismatch {
                    expected: self.digest,
                    found,
                });
            }
        }
        Ok(Some(()))
    }
}

fn tap_of(decoder: &mut Decoder<Input>) -> &mut Tap {
    decoder.input_mut().get_mut().get_mut().1
}

/// Reads until `buf` is full or the stream ends; returns the count and whether it ended.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<(usize, bool)> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok((filled, true)),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((filled, false))
}

/// Reads as much of `buf` as the stream has.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    fill(r, buf).map(|(n, _)| n)
}

/// The first reader over the blob: counts, hashes, enforces the descriptor's size, reports
/// progress, and remembers the typed cause of a failure so that it survives the decoder (which
/// may wrap or replace the `io::Error` it gets).
struct Tap {
    inner: Box<dyn Read + Send>,
    /// Present when the digest covers the blob as stored.
    hasher: Option<Hasher>,
    read: u64,
    at_eof: bool,
    expected_size: Option<u64>,
    failure: Option<Error>,
    digest: Digest,
    origin: Origin,
    progress: Option<ProgressFn>,
    index: usize,
    reported: u64,
}

impl Tap {
    fn fail(&mut self, e: Error) -> io::Error {
        self.failure = Some(e);
        io::Error::other("the layer's source failed")
    }

    fn source_error(&self, e: io::Error) -> Error {
        match &self.origin {
            Origin::File(path) => Error::io("read", path, e),
            Origin::Caller => Error::from_io(e, |e| Error::LayerSource {
                source: Box::new(e),
            }),
        }
    }

    /// The typed error behind a failure the decoder reported as `e`.
    fn error_for(&mut self, e: io::Error, codec: Codec) -> Error {
        if let Some(failure) = self.failure.take() {
            return failure;
        }
        if let Some(expected) = self.expected_size {
            if self.at_eof && self.read < expected {
                return Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    found: self.read,
                };
            }
        }
        Error::Decompress {
            codec: codec.name(),
            source: e,
        }
    }

    fn report(&mut self) {
        if let Some(progress) = &self.progress {
            if self.read != self.reported
                && (self.at_eof || self.read - self.reported >= PROGRESS_STEP)
            {
                self.reported = self.read;
                progress(&Progress::LayerRead {
                    index: self.index,
                    bytes: self.read,
                });
            }
        }
    }

    /// Size and digest checks, once the whole blob went through.
    fn verdict(&mut self) -> Result<()> {
        if let Some(expected) = self.expected_size {
            if expected != self.read {
                return Err(Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    found: self.read,
                });
            }
        }
        if let Some(hasher) = self.hasher.take() {
            let found = hasher.finish();
            if found != self.digest {
                return Err(Error::DigestMismatch {
                    expected: self.digest.clone(),
                    found,
                });
            }
        }
        Ok(())
    }
}

impl Read for Tap {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = match self.inner.read(buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
            Err(e) => {
                let e = self.source_error(e);
                return Err(self.fail(e));
            }
        };
        if n == 0 {
            if !buf.is_empty() {
                self.at_eof = true;
                self.report();
            }
            return Ok(0);
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        if let Some(expected) = self.expected_size {
            if self.read > expected {
                let e = Error::SizeMismatch {
                    digest: self.digest.clone(),
                    expected,
                    found: self.read,
                };
                return Err(self.fail(e));
            }
        }
        self.report();
        Ok(n)
    }
}
