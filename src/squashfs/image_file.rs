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

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::sink::OutputFile;

/// Flush the write buffer when it reaches this size.
const BUFFER: usize = 1 << 20;

/// The output image with a buffered, rewindable write position.
pub(crate) struct ImageFile {
    out: OutputFile,
    target: PathBuf,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    buf_start: u64,
}

impl ImageFile {
    /// Creates the temporary file for `target`, positioned at `start`.
    pub(crate) fn create(target: &Path, start: u64) -> Result<ImageFile> {
        Ok(ImageFile {
            out: OutputFile::create(target)?,
            target: target.to_path_buf(),
            buf: Vec::with_capacity(BUFFER),
            buf_start: start,
        })
    }

    fn err(&self, source: std::io::Error) -> Error {
        Error::Output {
            path: self.target.clone(),
            source,
        }
    }

    /// The final path (for messages).
    pub(crate) fn target(&self) -> &Path {
        &self.target
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
                return Ok(());
            }
        }
        self.buf.extend_from_slice(bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.out.file().write_all_at(&self.buf, self.buf_start);
        r.map_err(|e| self.err(e))?;
        self.buf_start += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Moves the position back to `to` (≤ the position); later writes overwrite what follows.
    pub(crate) fn rewind(&mut self, to: u64) -> Result<()> {
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

    /// Flushes, cuts or extends the file to `len` bytes and moves it to its final path.
    pub(crate) fn commit(mut self, len: u64) -> Result<()> {
        self.flush()?;
        let r = self.out.file().set_len(len);
        r.map_err(|e| self.err(e))?;
        self.out.commit()
    }
}
