//! Reusing the compressed blocks of a previous image ([`SquashfsOptions::reuse`]).
//!
//! Compression is nearly all the cost of a conversion at the levels people ship with, and
//! between two versions of an image most blocks hold the same bytes. So, before the first block
//! is compressed, a background thread indexes the previous image: every data and fragment block
//! is read, decompressed and hashed with SHA-256, in parallel, and the index keeps only `(hash,
//! offset, size word, xxh3 of the stored bytes)` per block, never the blocks. A compression job
//! hashes its block once (the same digest serves whole-file dedup), looks it up, reads the
//! stored bytes of a hit and takes them as its result if they are still the bytes that were
//! hashed (their xxh3 is checked; a raw block is compared whole).
//!
//! Why this cannot put a wrong block in the image: equal SHA-256 digests mean equal content
//! (no one can construct a collision; OCI trusts the same digest for whole layers), and the
//! copied bytes are verified to be the ones whose decompressed content was hashed, so a
//! previous image that changes on disk during the run costs a compression, not a wrong block.
//! Decompressing each hit again to compare it would be exact too, but for xz it doubles the
//! reading cost, which is most of what reuse costs.
//!
//! Reuse is a cache, never a different result: the output must be byte-identical to a fresh
//! conversion. The stored bytes of a block equal what our compressor makes of its content only
//! if the previous image was compressed the same way, so the previous image is refused
//! ([`NotReused`]) unless its compressor, block size and compressor options equal ours, and a
//! sample of its blocks, compressed again here, gives the very bytes it stores (a different
//! tool, codec build or level shows up there). Fragment blocks are indexed like data blocks: a
//! fragment block whose packed tails are unchanged is reused whole.
//!
//! ```text
//!  SquashfsSink::create ─► Previous::start ─► index thread: open, check settings, walk,
//!                                             sample, hash every block (rayon, `jobs`)
//!  compression job ─► sha256 ─► wait for the index ─► hit? read, check xxh3 ─► stored bytes
//!                                        └► miss ─► compress (timed, for the saving estimate)
//! ```
//!
//! [`SquashfsOptions::reuse`]: crate::SquashfsOptions::reuse

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::options::{Jobs, ProgressFn, Reuse};
use crate::path::EntryPath;
use crate::progress::Progress;
use crate::sink::{Warning, WarningKind};
use crate::squashfs::compressor::{self, Compressor};
use crate::squashfs::format::{flags, stored_len, DATA_RAW};
use crate::squashfs::reader::SquashfsReader;

/// Blocks of the previous image compressed again to check that its settings are ours.
const SAMPLES: usize = 4;

/// The start of the trailer every image of ours carries after `bytes_used`, in the padding.
const TRAILER_MAGIC: &[u8] = b"ocirender-reuse\n";

/// The most bytes of a trailer read back.
const TRAILER_MAX: usize = 512;

/// The trailer written after an image's tables: the magic and the compressor's
/// [`identity`](Compressor::identity). It makes "compressed the way this conversion would" a
/// fact to check rather than a guess: the superblock does not record the level of xz or lz4,
/// nor the codec's version, and a sample of blocks cannot vouch for the rest.
pub(crate) fn trailer(codec: &Compressor) -> Vec<u8> {
    [TRAILER_MAGIC, codec.identity().as_bytes(), b"\n"].concat()
}

/// The identity in the trailer at `bytes_used`, if there is one.
fn read_identity(file: &File, bytes_used: u64) -> Option<String> {
    let mut buf = vec![0u8; TRAILER_MAX];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], bytes_used + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let rest = buf[..got].strip_prefix(TRAILER_MAGIC)?;
    let end = rest.iter().position(|&b| b == b'\n')?;
    String::from_utf8(rest[..end].to_vec()).ok()
}

/// Blocks read and hashed by one indexing task (read in offset order, so mostly sequential).
const CHUNK: usize = 32;

/// Why a previous image's blocks were not reused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NotReused {
    /// It could not be opened or read as a squashfs image (missing, not squashfs, truncated).
    Unreadable {
        /// The reader's error.
        problem: String,
    },
    /// It carries no trailer of ours: another tool, or an ocirender before reuse existed, made
    /// it.
    NotOurs,
    /// Its blocks were compressed under another identity: another ocirender version, codec
    /// library version or level that the superblock does not record.
    MadeDifferently {
        /// How the previous image was compressed.
        previous: String,
        /// How this conversion compresses.
        now: String,
    },
    /// It uses another compressor.
    Compressor {
        /// The previous image's compressor.
        previous: &'static str,
        /// This conversion's compressor.
        now: &'static str,
    },
    /// It has another block size.
    BlockSize {
        /// The previous image's block size.
        previous: u32,
        /// This conversion's block size.
        now: u32,
    },
    /// Its compressor options (level, xz filters, lz4 mode) differ from this conversion's.
    CompressorOptions,
    /// A block of it, compressed again with this conversion's settings, gives other bytes: it
    /// was made by another tool, codec build or compression level.
    CompressesDifferently {
        /// Offset of the block in the previous image.
        offset: u64,
    },
    /// A block of it does not decompress.
    Corrupt {
        /// Offset of the block in the previous image.
        offset: u64,
        /// What is wrong.
        problem: String,
    },
    /// It is also this conversion's dm-verity hash file, which the conversion overwrites.
    IsHashFile,
    /// The conversion stopped before the index was complete.
    Stopped,
}

impl fmt::Display for NotReused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotReused::Unreadable { problem } => write!(f, "{problem}"),
            NotReused::Compressor { previous, now } => {
                write!(
                    f,
                    "it is compressed with {previous}, this conversion with {now}"
                )
            }
            NotReused::BlockSize { previous, now } => write!(
                f,
                "its block size is {previous}, this conversion's is {now}"
            ),
            NotReused::NotOurs => write!(
                f,
                "it was not made by ocirender (no reuse trailer after its tables)"
            ),
            NotReused::MadeDifferently { previous, now } => write!(
                f,
                "its blocks were compressed as \"{previous}\", this conversion's are \"{now}\""
            ),
            NotReused::CompressorOptions => write!(
                f,
                "its compressor options (level, filters) differ from this conversion's"
            ),
            NotReused::CompressesDifferently { offset } => write!(
                f,
                "its block at offset {offset} compresses to other bytes with this conversion's \
                 settings (made by another tool, codec version or level)"
            ),
            NotReused::Corrupt { offset, problem } => {
                write!(f, "its block at offset {offset} is corrupt: {problem}")
            }
            NotReused::IsHashFile => write!(
                f,
                "it is also the dm-verity hash file that this conversion writes"
            ),
            NotReused::Stopped => write!(f, "the conversion stopped while it was being indexed"),
        }
    }
}

/// How much of a previous image a conversion reused ([`Summary::reuse`](crate::Summary::reuse)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReuseReport {
    /// The previous image.
    pub previous: PathBuf,
    /// Why nothing was reused, when the previous image was refused.
    pub refused: Option<NotReused>,
    /// Distinct data and fragment blocks found in the previous image.
    pub blocks_indexed: u64,
    /// Time spent reading, decompressing and hashing them (in the background).
    pub index_time: Duration,
    /// Blocks copied from the previous image instead of compressed.
    pub blocks_reused: u64,
    /// Their uncompressed size.
    pub bytes_reused: u64,
    /// Blocks compressed because the previous image had no equal block.
    pub blocks_compressed: u64,
    /// Their uncompressed size.
    pub bytes_compressed: u64,
    /// Compression time saved: the reused bytes at the rate this conversion compressed the
    /// others (CPU time summed over threads). `None` when too little was compressed (under 1
    /// MiB) to measure the rate.
    pub compress_time_saved: Option<Duration>,
}

/// The SHA-256 of a block's uncompressed content.
pub(crate) type BlockHash = [u8; 32];

/// The index key of `content`.
pub(crate) fn block_hash(content: &[u8]) -> BlockHash {
    use sha2::Digest;
    sha2::Sha256::digest(content).into()
}

/// One block of the previous image: 56 bytes, sorted by hash.
#[derive(Clone, Copy, Debug)]
struct Indexed {
    hash: BlockHash,
    /// xxh3-64 of the stored bytes that were decompressed and hashed.
    stored: u64,
    offset: u64,
    word: u32,
}

/// What the index thread made of the previous image.
enum State {
    Ready(Vec<Indexed>),
    Refused(NotReused),
}

/// Counters shared by the compression jobs.
#[derive(Default)]
struct Stats {
    reused: AtomicU64,
    reused_bytes: AtomicU64,
    compressed: AtomicU64,
    compressed_bytes: AtomicU64,
    compress_nanos: AtomicU64,
}

/// A previous image being indexed or indexed, shared by the compression jobs.
pub(crate) struct Previous {
    path: PathBuf,
    strict: bool,
    file: OnceLock<File>,
    compression: u16,
    block_size: usize,
    state: OnceLock<State>,
    ready: (Mutex<bool>, Condvar),
    stop: AtomicBool,
    blocks: AtomicU64,
    index_time: Mutex<Duration>,
    stats: Stats,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What a job found for its block in the previous image.
pub(crate) enum Found {
    /// Not there: compress it.
    Missing,
    /// Stored raw there (the job's input is the stored form).
    Raw,
    /// Stored compressed there; the bytes are in the job's output buffer.
    Compressed,
}

impl Previous {
    /// Starts indexing `reuse.previous` in the background for a conversion compressing with
    /// `codec`; `hash_file` is the conversion's dm-verity hash file, if any.
    pub(crate) fn start(
        reuse: &Reuse,
        codec: Arc<Compressor>,
        block_size: usize,
        hash_file: Option<&Path>,
        jobs: Jobs,
        progress: Option<ProgressFn>,
    ) -> Arc<Previous> {
        let previous = Arc::new(Previous {
            path: reuse.previous.clone(),
            strict: reuse.strict,
            file: OnceLock::new(),
            compression: codec.id(),
            block_size,
            state: OnceLock::new(),
            ready: (Mutex::new(false), Condvar::new()),
            stop: AtomicBool::new(false),
            blocks: AtomicU64::new(0),
            index_time: Mutex::new(Duration::ZERO),
            stats: Stats::default(),
            thread: Mutex::new(None),
        });
        // Open before the output (and a hash file) is created: an output that replaces the
        // previous image by rename leaves this handle on the old file.
        let opened = open_regular(&reuse.previous);
        let same_as_hash_file =
            hash_file.is_some_and(|h| crate::sink::same_file(h, &reuse.previous));
        let worker = Arc::clone(&previous);
        let spawned = std::thread::Builder::new()
            .name("ocirender-reuse".into())
            .spawn(move || {
                let started = Instant::now();
                let state = if same_as_hash_file {
                    State::Refused(NotReused::IsHashFile)
                } else {
                    match opened {
                        Ok(file) => worker.index(file, &codec, jobs),
                        Err(e) => State::Refused(NotReused::Unreadable {
                            problem: Error::io("open", &worker.path, e).report().to_string(),
                        }),
                    }
                };
                if let Ok(mut t) = worker.index_time.lock() {
                    *t = started.elapsed();
                }
                if let (State::Refused(why), Some(p)) = (&state, &progress) {
                    if !matches!(why, NotReused::Stopped) {
                        p(&Progress::Warning(worker.warning(why.clone())));
                    }
                }
                worker.set(state);
            });
        match spawned {
            Ok(handle) => {
                if let Ok(mut t) = previous.thread.lock() {
                    *t = Some(handle);
                }
            }
            Err(e) => previous.set(State::Refused(NotReused::Unreadable {
                problem: format!("cannot start the indexing thread: {e}"),
            })),
        }
        previous
    }

    fn set(&self, state: State) {
        let _ = self.state.set(state);
        let (lock, cv) = &self.ready;
        if let Ok(mut done) = lock.lock() {
            *done = true;
        }
        cv.notify_all();
    }

    /// The index, once built; `None` if the previous image was refused (an error instead when
    /// the reuse is strict).
    fn wait(&self) -> Result<Option<&[Indexed]>> {
        if self.state.get().is_none() {
            let (lock, cv) = &self.ready;
            let mut done = lock.lock().map_err(|_| self.bug())?;
            while !*done {
                done = cv.wait(done).map_err(|_| self.bug())?;
            }
        }
        match self.state.get() {
            Some(State::Ready(index)) => Ok(Some(index)),
            Some(State::Refused(why)) if self.strict => Err(Error::ReuseRefused {
                path: self.path.clone(),
                why: why.clone(),
            }),
            Some(State::Refused(_)) => Ok(None),
            None => Err(self.bug()),
        }
    }

    fn bug(&self) -> Error {
        Error::Bug {
            what: "the reuse index was never built",
        }
    }

    /// The warning for a refusal.
    pub(crate) fn warning(&self, why: NotReused) -> Warning {
        Warning {
            path: EntryPath::root(),
            kind: WarningKind::PreviousNotReused {
                previous: self.path.clone(),
                why,
            },
        }
    }

    /// Looks `input` (whose [`block_hash`] is `hash`) up; on a verified hit the result is the
    /// stored form: `Raw` (equal to `input`) or `Compressed` with the bytes in `output`.
    pub(crate) fn find(
        &self,
        input: &[u8],
        hash: &BlockHash,
        output: &mut Vec<u8>,
    ) -> Result<Found> {
        let Some(index) = self.wait()? else {
            return Ok(Found::Missing);
        };
        let Some(file) = self.file.get() else {
            return Ok(Found::Missing);
        };
        let first = index.partition_point(|b| b.hash < *hash);
        for b in index[first..].iter().take_while(|b| b.hash == *hash) {
            output.clear();
            output.resize(stored_len(b.word) as usize, 0);
            if file.read_exact_at(output, b.offset).is_err() {
                continue;
            }
            let raw = b.word & DATA_RAW != 0;
            let verified = if raw {
                output[..] == *input
            } else {
                xxhash_rust::xxh3::xxh3_64(output) == b.stored
            };
            if verified {
                self.stats.reused.fetch_add(1, Ordering::Relaxed);
                let n = input.len() as u64;
                self.stats.reused_bytes.fetch_add(n, Ordering::Relaxed);
                return Ok(if raw { Found::Raw } else { Found::Compressed });
            }
        }
        Ok(Found::Missing)
    }

    /// Counts a block compressed because it was not found, and the time it took.
    pub(crate) fn compressed(&self, bytes: usize, took: Duration) {
        self.stats.compressed.fetch_add(1, Ordering::Relaxed);
        let s = &self.stats;
        s.compressed_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        s.compress_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Blocks and bytes reused so far (for progress).
    pub(crate) fn reused_so_far(&self) -> (u64, u64) {
        (
            self.stats.reused.load(Ordering::Relaxed),
            self.stats.reused_bytes.load(Ordering::Relaxed),
        )
    }

    /// Waits for the index thread and reports; an error if strict reuse was refused.
    pub(crate) fn finish(&self) -> Result<ReuseReport> {
        self.wait()?;
        if let Some(handle) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = handle.join();
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        let (bytes_reused, bytes_compressed) = (load(&s.reused_bytes), load(&s.compressed_bytes));
        let compress_time_saved = (bytes_compressed >= 1 << 20).then(|| {
            let rate = load(&s.compress_nanos) as f64 / bytes_compressed as f64;
            Duration::from_nanos((rate * bytes_reused as f64) as u64)
        });
        Ok(ReuseReport {
            previous: self.path.clone(),
            refused: match self.state.get() {
                Some(State::Refused(why)) => Some(why.clone()),
                _ => None,
            },
            blocks_indexed: self.blocks.load(Ordering::Relaxed),
            index_time: self.index_time.lock().map(|t| *t).unwrap_or_default(),
            blocks_reused: load(&s.reused),
            bytes_reused,
            blocks_compressed: load(&s.compressed),
            bytes_compressed,
            compress_time_saved,
        })
    }

    /// Reads the previous image and builds the index (on the index thread).
    fn index(&self, file: File, codec: &Compressor, jobs: Jobs) -> State {
        let reader = match SquashfsReader::open(&self.path) {
            Ok(r) => r,
            Err(e) => return refused_by(e),
        };
        if let Err(why) = self.check_settings(&reader, &file, codec) {
            return State::Refused(why);
        }
        let blocks = match self.block_list(&reader) {
            Ok(b) => b,
            Err(e) => return refused_by(e),
        };
        drop(reader);
        self.blocks.store(blocks.len() as u64, Ordering::Relaxed);
        if let Err(why) = self.check_sample(&file, &blocks, codec) {
            return State::Refused(why);
        }
        let pool = match rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.get())
            .thread_name(|i| format!("ocirender-reuse-{i}"))
            .build()
        {
            Ok(p) => p,
            Err(e) => {
                return State::Refused(NotReused::Unreadable {
                    problem: format!("cannot start the indexing threads: {e}"),
                })
            }
        };
        let hashed: std::result::Result<Vec<Vec<Indexed>>, NotReused> = pool.install(|| {
            blocks
                .par_chunks(CHUNK)
                .map(|chunk| self.hash_chunk(&file, chunk))
                .collect()
        });
        let mut index: Vec<Indexed> = match hashed {
            Ok(parts) => parts.into_iter().flatten().collect(),
            Err(why) => return State::Refused(why),
        };
        index.sort_unstable_by_key(|b| (b.hash, b.offset));
        let _ = self.file.set(file);
        State::Ready(index)
    }

    /// The compressor, block size, options and identity must be this conversion's.
    fn check_settings(
        &self,
        reader: &SquashfsReader,
        file: &File,
        codec: &Compressor,
    ) -> std::result::Result<(), NotReused> {
        let sb = reader.superblock();
        let nothing_compressed = |f: u16| f & flags::NOD != 0;
        if sb.compression != codec.id()
            || nothing_compressed(sb.flags) != nothing_compressed(codec.flags())
        {
            return Err(NotReused::Compressor {
                previous: compressor::name_of(sb.compression, sb.flags),
                now: codec.name(),
            });
        }
        if sb.block_size as usize != self.block_size {
            return Err(NotReused::BlockSize {
                previous: sb.block_size,
                now: self.block_size as u32,
            });
        }
        let options = reader
            .compressor_options()
            .map_err(|e| NotReused::Unreadable {
                problem: e.report().to_string(),
            })?;
        if options != codec.options() {
            return Err(NotReused::CompressorOptions);
        }
        let now = codec.identity();
        match read_identity(file, sb.bytes_used) {
            None => Err(NotReused::NotOurs),
            Some(previous) if previous != now => Err(NotReused::MadeDifferently { previous, now }),
            Some(_) => Ok(()),
        }
    }

    /// Every distinct data and fragment block `(offset, size word)`, in offset order.
    fn block_list(&self, reader: &SquashfsReader) -> Result<Vec<(u64, u32)>> {
        let mut blocks = Vec::new();
        reader.walk(|_, entry| {
            if self.stop.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            if let Some(layout) = SquashfsReader::file_layout(entry) {
                let mut at = layout.blocks_start;
                for &w in layout.words {
                    if w != 0 {
                        blocks.push((at, w));
                        at += stored_len(w);
                    }
                }
            }
            Ok(())
        })?;
        for i in 0..reader.superblock().frag_count {
            let (start, word) = reader.fragment_entry(i)?;
            if stored_len(word) > 0 {
                blocks.push((start, word));
            }
        }
        blocks.sort_unstable();
        blocks.dedup();
        Ok(blocks)
    }

    /// Compresses a few blocks again: their stored bytes must be what this conversion makes.
    fn check_sample(
        &self,
        file: &File,
        blocks: &[(u64, u32)],
        codec: &Compressor,
    ) -> std::result::Result<(), NotReused> {
        // Compressed blocks say the most (a raw one only says "not smaller"): spread the
        // sample over them, and take raw ones only when there are too few.
        let (compressed, raw): (Vec<_>, Vec<_>) =
            blocks.iter().partition(|(_, w)| w & DATA_RAW == 0);
        let spread = |v: &[(u64, u32)], k: usize| -> Vec<(u64, u32)> {
            let k = k.min(v.len());
            (0..k).map(|i| v[i * v.len() / k]).collect()
        };
        let mut picks = spread(&compressed, SAMPLES);
        picks.extend(spread(&raw, SAMPLES - picks.len()));
        let (mut content, mut again) = (Vec::new(), Vec::new());
        for (offset, word) in picks {
            let stored = self.stored_content(file, offset, word, &mut content)?;
            let raw = word & DATA_RAW != 0;
            let compressed =
                codec
                    .compress(&content, &mut again)
                    .map_err(|e| NotReused::Unreadable {
                        problem: e.report().to_string(),
                    })?;
            let same = if raw {
                !compressed
            } else {
                compressed && again == stored
            };
            if !same {
                return Err(NotReused::CompressesDifferently { offset });
            }
        }
        Ok(())
    }

    /// Reads the block at `offset` and puts its uncompressed content in `content`; returns the
    /// stored bytes.
    fn stored_content(
        &self,
        file: &File,
        offset: u64,
        word: u32,
        content: &mut Vec<u8>,
    ) -> std::result::Result<Vec<u8>, NotReused> {
        let len = stored_len(word);
        let corrupt = |problem: String| NotReused::Corrupt { offset, problem };
        if len > self.block_size as u64 {
            return Err(corrupt(format!("{len} stored bytes, more than a block")));
        }
        let mut stored = vec![0u8; len as usize];
        file.read_exact_at(&mut stored, offset)
            .map_err(|e| corrupt(format!("cannot read it: {e}")))?;
        if word & DATA_RAW != 0 {
            content.clear();
            content.extend_from_slice(&stored);
        } else {
            compressor::decompress(self.compression, &stored, content, self.block_size)
                .map_err(|p| corrupt(p.to_string()))?;
        }
        Ok(stored)
    }

    /// Hashes the uncompressed content of each block of `chunk`.
    fn hash_chunk(
        &self,
        file: &File,
        chunk: &[(u64, u32)],
    ) -> std::result::Result<Vec<Indexed>, NotReused> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut content = Vec::with_capacity(self.block_size);
        for &(offset, word) in chunk {
            if self.stop.load(Ordering::Relaxed) {
                return Err(NotReused::Stopped);
            }
            let stored = self.stored_content(file, offset, word, &mut content)?;
            out.push(Indexed {
                hash: block_hash(&content),
                stored: xxhash_rust::xxh3::xxh3_64(&stored),
                offset,
                word,
            });
        }
        Ok(out)
    }

    /// Tells the index thread to stop (the conversion ended or failed).
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn refused_by(e: Error) -> State {
    State::Refused(match e {
        Error::Interrupted => NotReused::Stopped,
        e => NotReused::Unreadable {
            problem: e.report().to_string(),
        },
    })
}

/// Opens `path` for reading if it is a regular file. Non-blocking, so that a FIFO given by
/// mistake is refused instead of waiting for a writer forever.
fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;
    use crate::entry::{Entry, EntryKind, Metadata};
    use crate::options::SquashfsOptions;
    use crate::sink::Sink;
    use crate::squashfs::SquashfsSink;

    const BLOCK: usize = 4096;

    fn options() -> SquashfsOptions {
        SquashfsOptions {
            block_size: crate::options::BlockSize::new(BLOCK as u32).unwrap(),
            fragments: false,
            mtime: Some(1),
            ..SquashfsOptions::default()
        }
    }

    /// Text that compresses, different for each `seed`.
    fn content(seed: u8) -> Vec<u8> {
        (0..BLOCK)
            .map(|i| b"squashfs reuse "[(i + usize::from(seed)) % 15] ^ (i / 512) as u8)
            .collect()
    }

    /// An image holding one file of two blocks, `content(1)` then `content(2)`.
    fn image(dir: &Path) -> PathBuf {
        let path = dir.join("prev.sqfs");
        let mut sink: Box<dyn Sink> =
            Box::new(SquashfsSink::create(&path, &options(), Jobs::new(1).unwrap(), None).unwrap());
        let data = [content(1), content(2)].concat();
        let entry = Entry {
            path: EntryPath::new(b"f").unwrap(),
            kind: EntryKind::File {
                size: data.len() as u64,
                sparse: None,
            },
            meta: Metadata::default(),
        };
        sink.entry(&entry, &mut Cursor::new(data)).unwrap();
        sink.finish().unwrap();
        path
    }

    fn previous(path: &Path) -> Arc<Previous> {
        let opts = options();
        let codec = Arc::new(Compressor::new(
            opts.compression,
            opts.block_size,
            &opts.xz_filters,
        ));
        let reuse = Reuse {
            previous: path.to_path_buf(),
            strict: true,
        };
        Previous::start(&reuse, codec, BLOCK, None, Jobs::new(2).unwrap(), None)
    }

    fn find(p: &Previous, block: &[u8]) -> bool {
        let mut out = Vec::new();
        matches!(
            p.find(block, &block_hash(block), &mut out).unwrap(),
            Found::Compressed | Found::Raw
        )
    }

    #[test]
    fn a_block_of_the_previous_image_is_found_and_another_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = previous(&image(dir.path()));
        assert!(find(&p, &content(1)));
        assert!(find(&p, &content(2)));
        assert!(!find(&p, &content(3)));
        let report = p.finish().unwrap();
        assert_eq!(report.refused, None);
        assert_eq!((report.blocks_indexed, report.blocks_reused), (2, 2));
    }

    /// The copied bytes must be the bytes that were hashed: a previous image rewritten in place
    /// after indexing costs a compression, not a wrong block.
    #[test]
    fn stored_bytes_that_changed_after_indexing_are_not_copied() {
        let dir = tempfile::tempdir().unwrap();
        let path = image(dir.path());
        let p = previous(&path);
        p.wait().unwrap();
        let first = SquashfsReader::open(&path).unwrap();
        let root = first.root().unwrap();
        let f = first.find(&root, b"f").unwrap().unwrap();
        let layout = SquashfsReader::file_layout(&f).unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"XX", layout.blocks_start + 2).unwrap();
        assert!(!find(&p, &content(1)), "the changed block");
        assert!(find(&p, &content(2)), "the block after it is intact");
    }

    #[test]
    fn a_missing_previous_image_is_an_error_when_strict() {
        let dir = tempfile::tempdir().unwrap();
        let p = previous(&dir.path().join("none.sqfs"));
        let err = p.finish().unwrap_err();
        assert!(
            matches!(
                &err,
                Error::ReuseRefused {
                    why: NotReused::Unreadable { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("cannot reuse blocks of "),
            "{err}"
        );
    }

    /// A FIFO given by mistake is refused at once instead of waiting for a writer.
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let err = previous(&fifo).finish().unwrap_err();
        assert!(err.to_string().contains("not a regular file"), "{err}");
    }

    /// The check behind `NotReused::CompressesDifferently`: stored bytes that our compressor
    /// would not produce (here a previous zstd image read as if it were written at another
    /// level with no options block) are refused.
    #[test]
    fn blocks_that_compress_to_other_bytes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = image(dir.path());
        let other = Compressor::new("zstd:19".parse().unwrap(), options().block_size, &[]);
        let p = previous(&path);
        let file = File::open(&path).unwrap();
        let reader = SquashfsReader::open(&path).unwrap();
        let blocks = p.block_list(&reader).unwrap();
        assert_eq!(
            p.check_sample(&file, &blocks, &other),
            Err(NotReused::CompressesDifferently {
                offset: blocks[0].0
            })
        );
        let ours = Compressor::new(options().compression, options().block_size, &[]);
        assert_eq!(p.check_sample(&file, &blocks, &ours), Ok(()));
    }
}
