//! Content digests: the validated [`Digest`] name of a blob, and [`DigestReader`], which hashes
//! bytes as they stream past and checks them at the end.
//!
//! A digest string comes from untrusted JSON and becomes part of a file path
//! (`blobs/sha256/<hex>`), so [`Digest::parse`] accepts only a known algorithm and exactly the
//! right number of lowercase hex digits: nothing that could name another file.

use std::fmt;
use std::io::{self, Read};

use sha2::{Digest as _, Sha256, Sha512};

use crate::error::{Error, Result};

/// A hash algorithm that OCI descriptors use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the algorithm nearly every image uses.
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and blob directories.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// A validated content digest such as `sha256:e3b0…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

impl Digest {
    /// Parses `algorithm:hex`, refusing anything that is not a well-formed sha256 or sha512 digest.
    pub fn parse(s: &str) -> Result<Digest> {
        let bad = |problem| Error::InvalidDigest {
            digest: s.to_owned(),
            problem,
        };
        let (alg, hex) = s.split_once(':').ok_or_else(|| bad("no ':' separator"))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(bad("unsupported algorithm (sha256 and sha512 are known)")),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(bad("wrong number of hex digits"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(bad("not lowercase hex"));
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_owned(),
        })
    }

    /// The digest of `bytes` with `algorithm`.
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(bytes);
        h.finish()
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex digits, safe to use as a file name.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// A short form for messages: `sha256:` and the first 12 hex digits.
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.name(), &self.hex[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Digest> {
        Digest::parse(s)
    }
}

/// An incremental hash of either algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub(crate) fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
        }
    }

    pub(crate) fn finish(self) -> Digest {
        let (algorithm, bytes): (Algorithm, Vec<u8>) = match self {
            Hasher::Sha256(h) => (Algorithm::Sha256, h.finalize().to_vec()),
            Hasher::Sha512(h) => (Algorithm::Sha512, h.finalize().to_vec()),
        };
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Digest { algorithm, hex }
    }
}

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
    fn parse_accepts_only_well_formed_digests() {
        assert_eq!(Digest::parse(EMPTY).unwrap().to_string(), EMPTY);
        for bad in [
            "sha256:../../etc/passwd",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "sha256",
            "sha256:abc",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

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
