//! The data pipeline: file content in, compressed blocks out, in order, with bounded memory.
//!
//! ```text
//!  caller thread                     rayon pool (jobs threads)          caller thread
//!  ─────────────                     ─────────────────────────          ─────────────
//!  read block ─► submit(seq) ──────► zero check → hole                 reorder buffer
//!  read block ─► submit(seq+1) ────► hash + compress (thread-local  ──► by seq ──► BlockWriter
//!  tail ───────► FragmentTable         context)                         (write, dedup)
//!     full fragment block ─► submit(seq+2) ─► compress ───────────────►
//! ```
//!
//! [`BlockProcessor::add_file`] reads a file once, in block-size chunks, from the entry's
//! reader. Every full block (and, with fragments off, the short last block) is submitted as a
//! job; the tail goes into the fragment table, and a full fragment block is submitted like a
//! data block. Jobs run on this sink's own pool; at most `4 × jobs` are in flight and `16 ×
//! jobs` wait to be written, and submitting waits for completions beyond that, so memory stays flat however large the
//! input. Completed jobs are put back in submission order and written on the caller's thread
//! only ([`BlockWriter`]), so the image is byte-identical for any thread count. A file-end
//! marker follows the last block of each file in the same order; when it comes out, the
//! writer decides dedup while nothing else has been written after the file's blocks.
//! Block buffers are recycled through a free list.
//!
//! With a previous image to reuse ([`reuse`](super::reuse)), a job first looks its block up
//! there and takes the stored bytes on a verified hit; the order and the writer are unchanged.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::error::{Error, Result};
use crate::options::{Jobs, ProgressFn, SquashfsOptions};
use crate::progress::Progress;
use crate::squashfs::block_writer::{Block, BlockWriter, FileStore};
use crate::squashfs::compressor::Compressor;
use crate::squashfs::fragment_table::{FragmentTable, TailRef};
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::reuse::{block_hash, Found, Previous};
use crate::squashfs::tail_store::TailStore;

/// What a job's result is for.
#[derive(Clone, Copy, Debug)]
enum Work {
    /// A data block of a file.
    Data { file: u32 },
    /// A fragment block.
    Fragment { index: u32 },
    /// The end of a file's blocks (no job; ready at once).
    FileEnd { file: u32 },
}

/// What a worker made of a block.
#[derive(Debug)]
enum Outcome {
    Hole,
    Raw { hash: u64 },
    Compressed { hash: u64 },
}

/// A finished job.
struct Done {
    seq: u64,
    input: Vec<u8>,
    output: Vec<u8>,
    outcome: Result<Outcome>,
}

/// A submitted item waiting for its turn to be written.
struct Slot {
    work: Work,
    done: Option<Done>,
}

/// Items (finished or not) that may wait to be written, per allowed job in flight.
const PENDING_PER_JOB: usize = 4;

/// Splits files into blocks, compresses them in parallel, writes them in order.
pub(crate) struct BlockProcessor {
    block_size: usize,
    fragments: bool,
    codec: Arc<Compressor>,
    pool: rayon::ThreadPool,
    tx: Sender<Done>,
    rx: Receiver<Done>,
    limit: usize,
    in_flight: usize,
    /// Sequence number of `pending[0]`.
    base: u64,
    pending: VecDeque<Slot>,
    free: Vec<Vec<u8>>,
    writer: BlockWriter,
    frags: FragmentTable,
    /// Written fragment blocks, for tail dedup's comparisons.
    tails: TailStore,
    progress: Option<ProgressFn>,
    submitted: u64,
    previous: Option<Arc<Previous>>,
}

/// Whether every byte is zero (word-at-a-time; the compiler vectorizes the fold).
fn is_zero(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(32);
    let wide = chunks.by_ref().all(|c| {
        let mut acc = 0u128;
        for half in c.chunks_exact(16) {
            let mut w = [0u8; 16];
            w.copy_from_slice(half);
            acc |= u128::from_ne_bytes(w);
        }
        acc == 0
    });
    wide && chunks.remainder().iter().all(|&x| x == 0)
}

fn run_job(
    codec: &Compressor,
    previous: Option<&Previous>,
    work: Work,
    input: &[u8],
    output: &mut Vec<u8>,
) -> Result<Outcome> {
    if let Work::Data { .. } = work {
        if is_zero(input) {
            return Ok(Outcome::Hole);
        }
    }
    let Some(previous) = previous else {
        let hash = match work {
            Work::Data { .. } => xxhash_rust::xxh3::xxh3_64(input),
            _ => 0,
        };
        return Ok(if codec.compress(input, output)? {
            Outcome::Compressed { hash }
        } else {
            Outcome::Raw { hash }
        });
    };
    // One hash serves both the reuse lookup and whole-file dedup.
    let wide = block_hash(input);
    let hash = u64::from_le_bytes([
        wide[0], wide[1], wide[2], wide[3], wide[4], wide[5], wide[6], wide[7],
    ]);
    match previous.find(input, &wide, output)? {
        Found::Raw => return Ok(Outcome::Raw { hash }),
        Found::Compressed => return Ok(Outcome::Compressed { hash }),
        Found::Missing => {}
    }
    let started = std::time::Instant::now();
    let compressed = codec.compress(input, output)?;
    previous.compressed(input.len(), started.elapsed());
    Ok(if compressed {
        Outcome::Compressed { hash }
    } else {
        Outcome::Raw { hash }
    })
}

/// Reads exactly `buf.len()` bytes; a short or failing reader is an error naming `path`.
fn read_full(reader: &mut dyn Read, buf: &mut [u8], path: &[u8]) -> Result<()> {
    let err = |source: io::Error| {
        Error::from_io(source, |source| Error::Io {
            op: "read the content of",
            path: PathBuf::from(crate::path::shown_name(path)),
            source,
        })
    };
    let mut done = 0;
    while done < buf.len() {
        match reader.read(&mut buf[done..]) {
            Ok(0) => {
                return Err(err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the data ended before the entry's size",
                )))
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(())
}

impl BlockProcessor {
    /// A pipeline writing to `out` from its position on with `jobs` compression threads, laid
    /// out as `options` say (block size, fragments, dedup), taking blocks from `previous` where
    /// it holds them.
    pub(crate) fn new(
        out: ImageFile,
        dir: PathBuf,
        codec: Arc<Compressor>,
        options: &SquashfsOptions,
        jobs: Jobs,
        progress: Option<ProgressFn>,
        previous: Option<Arc<Previous>>,
    ) -> Result<BlockProcessor> {
        let (block_size, fragments, dedup) = (
            options.block_size.get() as usize,
            options.fragments,
            options.dedup,
        );
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs.get())
            .thread_name(|i| format!("ocirender-sqfs-{i}"))
            .build()
            .map_err(|e| Error::Compress {
                codec: codec.name(),
                source: io::Error::other(e),
            })?;
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok(BlockProcessor {
            block_size,
            fragments,
            codec,
            pool,
            tx,
            rx,
            limit: 4 * jobs.get(),
            in_flight: 0,
            base: 0,
            pending: VecDeque::new(),
            free: Vec::new(),
            writer: BlockWriter::new(out, block_size as u64, fragments, dedup),
            frags: FragmentTable::new(block_size, dedup),
            tails: TailStore::new(dir, block_size),
            progress,
            submitted: 0,
            previous,
        })
    }

    /// An empty buffer, recycled where one is free.
    fn buffer(&mut self) -> Vec<u8> {
        let mut b = (self.free.pop()).unwrap_or_else(|| Vec::with_capacity(self.block_size));
        b.clear();
        b
    }

    /// A buffer of `len` bytes for a reader to fill. What a recycled one held is left in place
    /// (the read overwrites it) and the longest free one is taken (a full block that was read
    /// before, rather than a compressor's shorter output), so that only growth beyond its old
    /// length is zeroed, which for full blocks is nothing.
    fn sized_buffer(&mut self, len: usize) -> Vec<u8> {
        let longest = (self.free.iter().enumerate()).max_by_key(|(_, b)| b.len());
        let mut b = match longest.map(|(i, _)| i) {
            Some(i) => self.free.swap_remove(i),
            None => Vec::with_capacity(self.block_size),
        };
        b.resize(len, 0);
        b
    }

    /// Keeps `b` for a later block. Its length is kept too: a block read into it overwrites
    /// the bytes, so only growth beyond the old length is zeroed (`resize`), not every block.
    fn recycle(&mut self, b: Vec<u8>) {
        if self.free.len() < 2 * self.limit + 4 {
            self.free.push(b);
        }
    }

    /// Reads a file of `size` bytes from `reader` and stores it; returns its file id.
    pub(crate) fn add_file(
        &mut self,
        size: u64,
        reader: &mut dyn Read,
        path: &[u8],
    ) -> Result<u32> {
        let file = self.writer.add_file(size);
        let bs = self.block_size as u64;
        let tail_len = size % bs;
        let with_fragment = self.fragments && tail_len > 0;
        let blocks = if with_fragment {
            size / bs
        } else {
            size.div_ceil(bs)
        };
        for i in 0..blocks {
            let len = bs.min(size - i * bs) as usize;
            let mut buf = self.sized_buffer(len);
            read_full(reader, &mut buf, path)?;
            self.submit(Work::Data { file }, buf)?;
        }
        if blocks > 0 {
            self.pending.push_back(Slot {
                work: Work::FileEnd { file },
                done: None,
            });
        }
        if with_fragment {
            let mut tail = self.sized_buffer(tail_len as usize);
            read_full(reader, &mut tail, path)?;
            let at = self.add_tail(&tail)?;
            self.recycle(tail);
            if let Some(f) = self.writer.file_mut(file) {
                f.fragment = at.fragment;
                f.fragment_offset = at.offset;
            }
        }
        self.write_ready()?;
        Ok(file)
    }

    /// Places `file`'s tail in a fragment block, sharing an equal earlier tail's place.
    fn add_tail(&mut self, tail: &[u8]) -> Result<TailRef> {
        let hash = FragmentTable::tail_hash(tail);
        let candidates = self.frags.candidates(hash);
        if let Some(e) = self.frags.take_error() {
            return Err(e);
        }
        for earlier in candidates {
            let at = earlier;
            // Equal bytes at that place are all that matters, whatever the earlier tail's length.
            if self.fragment_holds(at, tail)? {
                return Ok(at);
            }
        }
        if !self.frags.fits(tail) {
            self.flush_fragment()?;
        }
        let at = self.frags.append(tail, hash);
        match self.frags.take_error() {
            Some(e) => Err(e),
            None => Ok(at),
        }
    }

    /// Whether the fragment bytes at `at` equal `tail`.
    fn fragment_holds(&mut self, at: TailRef, tail: &[u8]) -> Result<bool> {
        if let Some(block) = self.frags.in_memory(at.fragment) {
            let range = at.offset as usize..at.offset as usize + tail.len();
            return Ok(block.get(range) == Some(tail));
        }
        self.tails.holds(at, tail)
    }

    /// Moves the temporary file of fragment blocks, if not made yet, to `dir`.
    pub(crate) fn set_temp_dir(&mut self, dir: PathBuf) {
        self.tails.set_dir(dir);
    }

    fn flush_fragment(&mut self) -> Result<()> {
        let fresh = self.buffer();
        if let Some((index, block)) = self.frags.take_block(fresh) {
            if self.frags.dedups() {
                self.tails.keep(index, &block)?;
            }
            self.submit(Work::Fragment { index }, block)?;
        }
        Ok(())
    }

    fn submit(&mut self, work: Work, input: Vec<u8>) -> Result<()> {
        // Finished blocks wait in `pending` behind a slow one (a block compressed among
        // reused ones, an xz block among zstd-fast ones): bound those too, not only the jobs.
        while self.in_flight >= self.limit || self.pending.len() >= PENDING_PER_JOB * self.limit {
            if self.in_flight == 0 {
                // Nothing to wait for: whatever is pending is ready.
                self.write_ready()?;
                break;
            }
            self.receive_one()?;
        }
        let seq = self.base + self.pending.len() as u64;
        self.pending.push_back(Slot { work, done: None });
        self.in_flight += 1;
        self.submitted += 1;
        let mut output = self.buffer();
        let codec = Arc::clone(&self.codec);
        let tx = self.tx.clone();
        let previous = self.previous.clone();
        self.pool.spawn(move || {
            let outcome = run_job(&codec, previous.as_deref(), work, &input, &mut output);
            // The receiver is gone only when the sink was dropped after an error.
            let _ = tx.send(Done {
                seq,
                input,
                output,
                outcome,
            });
        });
        if self.submitted.is_multiple_of(256) {
            if let Some(p) = &self.progress {
                p(&Progress::Backlog {
                    blocks: self.in_flight,
                });
                if let Some(prev) = &self.previous {
                    let (blocks, bytes) = prev.reused_so_far();
                    p(&Progress::Reused { blocks, bytes });
                }
            }
        }
        Ok(())
    }

    /// Waits for one job to finish, then writes everything that is next in order.
    fn receive_one(&mut self) -> Result<()> {
        // The sender lives in `self`: the channel cannot close while jobs are in flight.
        let done = self.rx.recv().map_err(|_| Error::Bug {
            what: "the compression results channel closed",
        })?;
        self.in_flight -= 1;
        let i = (done.seq - self.base) as usize;
        if let Some(slot) = self.pending.get_mut(i) {
            slot.done = Some(done);
        }
        self.write_ready()
    }

    /// Writes the completed items at the front of the order.
    fn write_ready(&mut self) -> Result<()> {
        loop {
            let ready = match self.pending.front() {
                Some(Slot {
                    work: Work::FileEnd { .. },
                    ..
                }) => true,
                Some(slot) => slot.done.is_some(),
                None => false,
            };
            if !ready {
                return Ok(());
            }
            let Some(slot) = self.pending.pop_front() else {
                return Ok(());
            };
            self.base += 1;
            match (slot.work, slot.done) {
                (Work::FileEnd { file }, _) => self.writer.end_file(file)?,
                (work, Some(done)) => {
                    let outcome = done.outcome?;
                    let block = match outcome {
                        Outcome::Hole => Block::Hole,
                        Outcome::Raw { .. } => Block::Raw(&done.input),
                        Outcome::Compressed { .. } => Block::Compressed(&done.output),
                    };
                    let hash = match outcome {
                        Outcome::Raw { hash } | Outcome::Compressed { hash } => hash,
                        Outcome::Hole => 0,
                    };
                    match work {
                        Work::Data { file } => self.writer.write_block(file, block, hash)?,
                        Work::Fragment { index } => {
                            let entry = self.writer.write_fragment(block)?;
                            self.frags.record(index, entry);
                        }
                        Work::FileEnd { .. } => {}
                    }
                    self.recycle(done.input);
                    self.recycle(done.output);
                }
                (_, None) => {}
            }
        }
    }

    /// From now on keeps at most `bytes` of file placements in memory, and half as much of
    /// the places of fragment tails, the rest in temporary files in `dir`.
    pub(crate) fn page_files(&mut self, bytes: usize, dir: std::path::PathBuf) {
        self.frags.page_places(bytes / 2, dir.clone());
        self.writer.page_files(bytes, dir);
    }

    /// Bytes held for files and fragments (memory accounting).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.writer.heap_bytes() + self.frags.heap_bytes()
    }

    /// Flushes the last fragment block, waits for every job and returns the image, every
    /// file's placement and the fragment table.
    pub(crate) fn finish(mut self) -> Result<(ImageFile, FileStore, FragmentTable)> {
        self.flush_fragment()?;
        while self.in_flight > 0 {
            self.receive_one()?;
        }
        self.write_ready()?;
        let (image, store) = self.writer.finish();
        Ok((image, store, self.frags))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_detection_checks_every_byte() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 4096]));
        for i in [0, 31, 32, 4095, 4100] {
            let mut v = vec![0u8; 4101];
            v[i] = 1;
            assert!(!is_zero(&v), "byte {i}");
        }
    }
}
