//! Reading a streamed layer again, for the second pass (see [`Resolver`](crate::Resolver)).
//!
//! A layer delivered as a file is read again from the file. One delivered as a stream is
//! copied, as its decoder reads it, into a temporary file beside the output ([`Tee`]): the
//! compressed bytes, once, so that a conversion that must start over never asks for a download
//! again. A source that already lands in a file of its own (a registry pull writes each blob to
//! its temporary directory) says how to read it again instead ([`Replay::Reopen`]).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tempfile::TempPath;

use crate::error::{Error, Result};

/// Opens a layer's blob again from the start (its bytes as stored, not decoded).
pub(crate) type ReopenBlob = Box<dyn FnMut() -> Result<Box<dyn Read + Send>> + Send>;

/// How a layer's blob is read again.
pub(crate) enum Replay {
    /// The delivered file.
    File(PathBuf),
    /// The copy of a delivered stream, complete once the stream was read to its end; removed
    /// when dropped.
    Copy(TempPath),
    /// The source's own way of reading the blob again.
    Reopen(ReopenBlob),
}

impl Replay {
    /// The blob's bytes from the start.
    pub(crate) fn open(&mut self) -> Result<Box<dyn Read + Send>> {
        let file = |path: &Path| -> Result<Box<dyn Read + Send>> {
            let f = File::open(path).map_err(|e| Error::io("open", path, e))?;
            Ok(Box::new(f))
        };
        match self {
            Replay::File(path) => file(path),
            Replay::Copy(path) => file(path),
            Replay::Reopen(reopen) => reopen(),
        }
    }
}

/// A reader that copies what it reads into a file.
pub(crate) struct Tee {
    inner: Box<dyn Read + Send>,
    copy: File,
    path: PathBuf,
}

impl Tee {
    /// Wraps `inner`, copying into a new temporary file in `dir`; the returned path removes
    /// the file when dropped.
    pub(crate) fn new(inner: Box<dyn Read + Send>, dir: &Path) -> Result<(Tee, TempPath)> {
        let named = tempfile::Builder::new()
            .prefix(".ocirender-layer-")
            .suffix(".partial")
            .tempfile_in(dir)
            .map_err(|e| Error::io("create a temporary file in", dir, e))?;
        let (copy, path) = named.into_parts();
        let tee = Tee {
            inner,
            copy,
            path: path.to_path_buf(),
        };
        Ok((tee, path))
    }
}

impl Read for Tee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n]).map_err(|e| {
            io::Error::other(Error::io("write the copy of a layer to", &self.path, e))
        })?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tee_copies_everything_read_and_its_file_goes_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let (mut tee, path) =
            Tee::new(Box::new(io::Cursor::new(data.clone())), dir.path()).unwrap();
        let mut out = Vec::new();
        tee.read_to_end(&mut out).unwrap();
        drop(tee);
        assert_eq!(out, data);
        let mut replay = Replay::Copy(path);
        let mut again = Vec::new();
        replay.open().unwrap().read_to_end(&mut again).unwrap();
        assert_eq!(again, data);
        drop(replay);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
