//! The image file being written: a position, a write buffer, positional reads for dedup, and
//! rewinding.
//!
//! Everything is written sequentially from the end of the superblock on, except the superblock
//! itself, which goes to offset 0 last. Dedup writes a file's blocks and then may decide they
//! duplicate earlier ones; [`ImageFile::rewind`] moves the position back so the next block
//! overwrites them (squashfs-tools-ng's approach: no second buffer of the file's blocks). The
//! file is cut to the final length when it is committed, so bytes that a rewind abandoned past
//! the end never survive.
//!
//! The file lives behind a [`sink::OutputFile`](crate::sink::OutputFile): a temporary file that
//! becomes the target only on commit, and is deleted if the sink is dropped first.
//!
//! With a dm-verity tree asked for, each 4 KiB block is hashed when it leaves the write buffer
//! ([`Leaves`]); a rewind takes back the digests of the blocks it reopens. Blocks that were
//! flushed before a rewind and are then rewritten are read back from the file (the page cache)
//! to be hashed again: only a duplicate file's last partial block, or a large file's blocks.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sink::OutputFile;
use crate::verity::writer::Leaves;
use crate::verity::{VerityInfo, BLOCK_SIZE};

/// Flush the write buffer when it reaches this size.
const BUFFER: usize = 1 << 20;

/// The output image with a buffered, rewindable write position.
pub(crate) struct ImageFile {
    out: OutputFile,
    target: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
    /// The data blocks' digests for a dm-verity tree.
    verity: Option<Leaves>,
}

impl ImageFile {
    /// Creates the temporary file for `target`, positioned at `start`.
    pub(crate) fn create(target: &Path, start: u64) -> Result<ImageFile> {
        Ok(ImageFile {
            out: OutputFile::create(target)?,
            target: target.to_path_buf(),
            buf: Vec::with_capacity(BUFFER),
            buf_start: start,
            verity: None,
        })
    }

    /// Hashes the data blocks for a dm-verity tree as they are written.
    pub(crate) fn hash_for_verity(&mut self, leaves: Leaves) {
        self.verity = Some(leaves);
    }

    fn err(&self, source: std::io::Error) -> Error {
        output_error(&self.target, source)
    }

    /// Offset of the next byte written.
    pub(crate) fn position(&self) -> u64 {
        self.buf_start + self.buf.len() as u64
    }

    /// Appends bytes at the position.
    pub(crate) fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if self.buf.len() + bytes.len() > BUFFER {
            self.flush()?;
            if bytes.len() >= BUFFER {
                self.out
                    .file()
                    .write_all_at(bytes, self.buf_start)
                    .map_err(|e| self.err(e))?;
                self.buf_start += bytes.len() as u64;
                return self.hash_through(self.buf_start);
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.hash_through(self.position())?;
        let r = self.out.file().write_all_at(&self.buf, self.buf_start);
        r.map_err(|e| self.err(e))?;
        self.buf_start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Hashes the whole blocks before `end` not hashed yet, from the buffer or, for bytes
    /// already flushed, from the file.
    fn hash_through(&mut self, end: u64) -> Result<()> {
        let Some(leaves) = &mut self.verity else {
            return Ok(());
        };
        let block = u64::from(BLOCK_SIZE);
        let mut scratch = Vec::new();
        while leaves.next() + block <= end {
            let at = leaves.next();
            if at >= self.buf_start {
                let from = (at - self.buf_start) as usize;
                leaves.push(&self.buf[from..from + block as usize]);
                continue;
            }
            scratch.resize(block as usize, 0);
            let in_file = (self.buf_start - at).min(block) as usize;
            let r = self.out.file().read_exact_at(&mut scratch[..in_file], at);
            r.map_err(|e| output_error(&self.target, e))?;
            let rest = block as usize - in_file;
            scratch[in_file..].copy_from_slice(&self.buf[..rest]);
            leaves.push(&scratch);
        }
        Ok(())
    }

    /// Moves the position back to `to` (≤ the position); later writes overwrite what follows.
    pub(crate) fn rewind(&mut self, to: u64) -> Result<()> {
        if let Some(leaves) = &mut self.verity {
            leaves.forget_from(to);
        }
        if to >= self.buf_start {
            self.buf.truncate((to - self.buf_start) as usize);
        } else {
            self.flush()?;
            self.buf_start = to;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset`, which must lie before the position.
    pub(crate) fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.flush()?;
        let r = self.out.file().read_exact_at(buf, offset);
        r.map_err(|e| self.err(e))
    }

    /// Writes `bytes` at `offset` without moving the position (the superblock).
    pub(crate) fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        self.flush()?;
        let r = self.out.file().write_all_at(bytes, offset);
        r.map_err(|e| self.err(e))
    }

    /// Flushes, cuts or extends the file to `len` bytes, writes the dm-verity hash area if
    /// one was asked for, and moves the file (and a separate hash file) to the final paths.
    pub(crate) fn commit(mut self, len: u64) -> Result<Option<VerityInfo>> {
        self.flush()?;
        let r = self.out.file().set_len(len);
        r.map_err(|e| self.err(e))?;
        let Some(leaves) = self.verity.take() else {
            self.out.commit()?;
            return Ok(None);
        };
        let (info, hash_file) = leaves.finish(self.out.file(), len, &self.target)?;
        match hash_file {
            None => self.out.commit()?,
            Some(hash_file) => {
                let hash_path = hash_file.target().to_path_buf();
                hash_file.commit()?;
                if let Err(e) = self.out.commit() {
                    // The hash file must not outlive the image it describes.
                    let _ = std::fs::remove_file(&hash_path);
                    return Err(e);
                }
            }
        }
        Ok(Some(info))
    }
}

fn output_error(target: &Path, source: std::io::Error) -> Error {
    Error::Output {
        path: target.to_path_buf(),
        source,
    }
}
