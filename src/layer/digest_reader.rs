//! [`DigestReader`]: checks a blob against its descriptor while it streams past.

use std::io::{self, Read};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// Hashes everything read through it; at end of stream it checks the digest (and the size, when
/// one is expected) and turns a mismatch into an error instead of a clean EOF.
///
/// The check happens when the inner reader first reports EOF, so a consumer that stops early
/// (a tar reader at its end-of-archive marker) must drain the reader to get the verdict; see
/// [`DigestReader::drain`].
pub struct DigestReader<R> {
    inner: R,
    hasher: Option<Hasher>,
    expected: Digest,
    expected_size: Option<u64>,
    read: u64,
}

impl<R: Read> DigestReader<R> {
    /// Wraps `inner`, expecting its bytes to hash to `expected` (and number `expected_size`).
    pub fn new(inner: R, expected: Digest, expected_size: Option<u64>) -> Self {
        DigestReader {
            inner,
            hasher: Some(Hasher::new(expected.algorithm())),
            expected,
            expected_size,
            read: 0,
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    /// Reads and discards the rest of the stream, returning the verdict.
    pub fn drain(&mut self) -> io::Result<()> {
        let mut buf = [0u8; 16 * 1024];
        while self.read(&mut buf)? != 0 {}
        Ok(())
    }

    fn verdict(&mut self) -> Result<()> {
        let Some(hasher) = self.hasher.take() else {
            return Ok(());
        };
        if let Some(expected) = self.expected_size {
            if expected != self.read {
                return Err(Error::SizeMismatch {
                    digest: self.expected.clone(),
                    expected,
                    found: self.read,
                });
            }
        }
        let found = hasher.finish();
        if found != self.expected {
            return Err(Error::DigestMismatch {
                expected: self.expected.clone(),
                found,
            });
        }
        Ok(())
    }
}

impl<R: Read> Read for DigestReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.verdict().map_err(io::Error::from)?;
            return Ok(0);
        }
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        if let Some(expected) = self.expected_size {
            if self.read > expected {
                return Err(io::Error::from(Error::SizeMismatch {
                    digest: self.expected.clone(),
                    expected,
                    found: self.read,
                }));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn reader_checks_at_eof() {
        let mut ok = DigestReader::new(&b""[..], Digest::parse(EMPTY).unwrap(), Some(0));
        ok.drain().unwrap();
        let mut bad = DigestReader::new(&b"x"[..], Digest::parse(EMPTY).unwrap(), None);
        let err = bad.drain().unwrap_err();
        let err = Error::from_io(err, |e| Error::Tar { source: e });
        assert!(matches!(err, Error::DigestMismatch { .. }), "{err}");
    }
}
