//! [`Spool`]: file content a hard link still needs after its own name is gone, kept on disk.
//!
//! A link keeps the content its target had when the link's layer was applied. When a newer
//! layer deletes or replaces the target's name, the content only passes by once, in the older
//! layer's stream, and must be kept until the end of the merge where the link is written as a
//! file. It goes to one unlinked temporary file (never to memory), appended, with runs of
//! zeros skipped so sparse content stays sparse.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::{Error, Result};

const CHUNK: usize = 64 * 1024;

/// A stretch of the spool file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SpoolRef {
    offset: u64,
    len: u64,
}

impl SpoolRef {
    /// The spool position just past this stretch.
    pub(crate) fn end(&self) -> u64 {
        self.offset + self.len
    }
}

/// An append-only temporary file of kept content, created on first use.
#[derive(Default)]
pub(crate) struct Spool {
    dir: Option<PathBuf>,
    file: Option<File>,
    end: u64,
}

impl Spool {
    /// A spool whose file will live in `dir` (`None`: the system temporary directory).
    pub(crate) fn in_dir(dir: Option<PathBuf>) -> Spool {
        Spool {
            dir,
            ..Spool::default()
        }
    }

    fn dir(&self) -> PathBuf {
        self.dir.clone().unwrap_or_else(std::env::temp_dir)
    }

    /// The current end of the spool; [`Spool::truncate`] can return to it.
    pub(crate) fn mark(&self) -> u64 {
        self.end
    }

    /// Appends `len` bytes read from `data`.
    pub(crate) fn append(&mut self, data: &mut dyn Read, len: u64) -> Result<SpoolRef> {
        let dir = self.dir();
        let spool_err = |e| Error::io("write hard-link spool in", &dir, e);
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile_in(&dir).map_err(spool_err)?);
        }
        let Some(file) = self.file.as_mut() else {
            return Err(spool_err(io::Error::other("spool file missing")));
        };
        let offset = self.end;
        file.seek(SeekFrom::Start(offset)).map_err(spool_err)?;
        let mut buf = vec![0u8; CHUNK];
        let mut left = len;
        let mut pos = offset;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            data.read_exact(&mut buf[..want])
                .map_err(|e| Error::from_io(e, |e| Error::Tar { source: e }))?;
            if buf[..want].iter().all(|&b| b == 0) {
                file.seek(SeekFrom::Current(want as i64))
                    .map_err(spool_err)?;
            } else {
                file.write_all(&buf[..want]).map_err(spool_err)?;
            }
            pos += want as u64;
            left -= want as u64;
        }
        if pos > offset {
            // A trailing hole must still count towards the file's length.
            file.set_len(file.metadata().map_err(spool_err)?.len().max(pos))
                .map_err(spool_err)?;
        }
        self.end = pos;
        Ok(SpoolRef { offset, len })
    }

    /// Forgets everything appended after `mark` (content no link turned out to need).
    pub(crate) fn truncate(&mut self, mark: u64) -> Result<()> {
        if mark < self.end {
            if let Some(f) = &self.file {
                f.set_len(mark)
                    .map_err(|e| Error::io("truncate hard-link spool in", self.dir(), e))?;
            }
            self.end = mark;
        }
        Ok(())
    }

    /// A reader of the content at `r`.
    pub(crate) fn reader(&self, r: SpoolRef) -> SpoolReader<'_> {
        SpoolReader {
            file: self.file.as_ref(),
            pos: r.offset,
            end: r.offset + r.len,
        }
    }
}

/// Reads one stretch of the spool with positioned reads.
pub(crate) struct SpoolReader<'a> {
    file: Option<&'a File>,
    pos: u64,
    end: u64,
}

impl Read for SpoolReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let Some(file) = self.file else {
            return Err(io::Error::other("hard-link spool is empty"));
        };
        let want = (left.min(buf.len() as u64)) as usize;
        let n = file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_content_and_holes() {
        let mut s = Spool::default();
        let a = s.append(&mut &b"hello"[..], 5).unwrap();
        let zeros = vec![0u8; 200_000];
        let mark = s.mark();
        let b = s.append(&mut &zeros[..], zeros.len() as u64).unwrap();
        let c = s.append(&mut &b"tail"[..], 4).unwrap();
        let mut out = Vec::new();
        s.reader(a).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        out.clear();
        s.reader(b).read_to_end(&mut out).unwrap();
        assert_eq!(out, zeros);
        out.clear();
        s.reader(c).read_to_end(&mut out).unwrap();
        assert_eq!(out, b"tail");
        s.truncate(mark).unwrap();
        assert_eq!(s.mark(), 5);
    }

    #[test]
    fn short_input_is_an_error() {
        let mut s = Spool::default();
        assert!(s.append(&mut &b"abc"[..], 10).is_err());
    }
}
