//! Sparse files in tar: reading the data map and expanding the stored regions back into the
//! full-size content.
//!
//! ```text
//! map [(0,4096), (1 MiB, 512)], real size 2 MiB, stored data = 4096 + 512 bytes
//!      │                                  │
//!      ▼                                  ▼
//! [4096 data][zeros to 1 MiB][512 data][zeros to 2 MiB]   ◄── what Expand yields
//! ```
//!
//! Four encodings carry the map: GNU old sparse (`S` typeflag; four entries in the header and
//! 21 per extension block after it), and PAX 0.0 (repeated `GNU.sparse.offset`/`numbytes`
//! records), 0.1 (`GNU.sparse.map=off,len,…`) and 1.0 (decimal numbers, one per line, at the
//! start of the entry's data, padded to 512 bytes). Whatever the encoding, a map is checked
//! the same way before any byte is expanded: regions in order, not overlapping, inside the
//! real size, at most [`MAX_SPARSE_REGIONS`] of them, and their lengths adding up to exactly
//! the stored data. Zero-length regions (GNU tar ends maps with one) are dropped.

use std::io::{self, Read};

use crate::error::{Error, Result};

use super::problem::TarProblem;

/// The most data regions one sparse file may list.
pub(crate) const MAX_SPARSE_REGIONS: usize = 1 << 18;

fn header_error(problem: TarProblem) -> Error {
    Error::TarHeader { problem }
}

/// Turns `offset, length` pairs into a validated map of non-empty regions.
pub(crate) fn validate(pairs: &[u64], real_size: u64, stored: u64) -> Result<Vec<(u64, u64)>> {
    if !pairs.len().is_multiple_of(2) {
        return Err(header_error(TarProblem::SparseOddValues));
    }
    if pairs.len() / 2 > MAX_SPARSE_REGIONS {
        return Err(header_error(TarProblem::TooManySparseRegions {
            claimed: None,
        }));
    }
    let mut map = Vec::with_capacity(pairs.len() / 2);
    let mut end = 0u64;
    let mut total = 0u64;
    for pair in pairs.chunks_exact(2) {
        let (offset, len) = (pair[0], pair[1]);
        let region_end = offset
            .checked_add(len)
            .filter(|&e| e <= real_size)
            .ok_or_else(|| {
                header_error(TarProblem::SparseRegionPastEnd {
                    offset,
                    len,
                    size: real_size,
                })
            })?;
        if offset < end {
            return Err(header_error(TarProblem::SparseRegionOverlaps {
                offset,
                previous_end: end,
            }));
        }
        end = region_end;
        total = total.saturating_add(len);
        if len > 0 {
            map.push((offset, len));
        }
    }
    if total != stored {
        return Err(header_error(TarProblem::SparseDataMismatch {
            listed: total,
            stored,
        }));
    }
    Ok(map)
}

/// Reads the PAX 1.0 map at the start of `data`: a count, then offset/length pairs, each a
/// decimal number ending in `\n`, the whole padded to a multiple of 512 bytes. Returns the
/// pairs and the number of bytes the map occupied.
pub(crate) fn read_map_1x0(data: &mut dyn Read) -> Result<(Vec<u64>, u64)> {
    let mut reader = Numbers {
        data,
        block: [0; 512],
        pos: 512,
        consumed: 0,
    };
    let count = reader.next()?;
    let count = usize::try_from(count)
        .ok()
        .filter(|&c| c <= MAX_SPARSE_REGIONS)
        .ok_or_else(|| {
            header_error(TarProblem::TooManySparseRegions {
                claimed: Some(count),
            })
        })?;
    let mut pairs = Vec::with_capacity(2 * count);
    for _ in 0..2 * count {
        pairs.push(reader.next()?);
    }
    Ok((pairs, reader.consumed))
}

/// Pulls newline-terminated decimal numbers out of 512-byte blocks.
struct Numbers<'a> {
    data: &'a mut dyn Read,
    block: [u8; 512],
    pos: usize,
    consumed: u64,
}

impl Numbers<'_> {
    fn next(&mut self) -> Result<u64> {
        let mut value = 0u64;
        let mut digits = 0;
        loop {
            if self.pos == self.block.len() {
                self.data
                    .read_exact(&mut self.block)
                    .map_err(|e| Error::from_io(e, |source| Error::Tar { source }))?;
                self.pos = 0;
                self.consumed += 512;
            }
            let b = self.block[self.pos];
            self.pos += 1;
            match b {
                b'\n' if digits > 0 => return Ok(value),
                b'0'..=b'9' if digits < 20 => {
                    value = value
                        .checked_mul(10)
                        .and_then(|v| v.checked_add(u64::from(b - b'0')))
                        .ok_or_else(|| header_error(TarProblem::SparseMapNotDecimal))?;
                    digits += 1;
                }
                _ => return Err(header_error(TarProblem::SparseMapNotDecimal)),
            }
        }
    }
}

/// Expands the stored regions of a sparse file into its full content.
pub(crate) struct Expand<'m, R> {
    stored: R,
    map: &'m [(u64, u64)],
    /// The next region not yet fully read.
    region: usize,
    pos: u64,
    size: u64,
}

impl<'m, R: Read> Expand<'m, R> {
    /// `stored` yields exactly the regions' bytes, in order (a validated `map`).
    pub(crate) fn new(stored: R, map: &'m [(u64, u64)], size: u64) -> Self {
        Expand {
            stored,
            map,
            region: 0,
            pos: 0,
            size,
        }
    }
}

impl<R: Read> Read for Expand<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let want = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        let Some(&(offset, len)) = self.map.get(self.region) else {
            // The hole after the last region.
            let n = want.min(self.size - self.pos);
            return Ok(zero_fill(buf, n, &mut self.pos));
        };
        if self.pos < offset {
            let n = want.min(offset - self.pos);
            return Ok(zero_fill(buf, n, &mut self.pos));
        }
        let n = want.min(offset + len - self.pos);
        let n = usize::try_from(n).unwrap_or(buf.len());
        let got = self.stored.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::Error::from(Error::Tar {
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the tar stream ends inside a sparse file's data",
                ),
            }));
        }
        self.pos += got as u64;
        if self.pos == offset + len {
            self.region += 1;
        }
        Ok(got)
    }
}

fn zero_fill(buf: &mut [u8], n: u64, pos: &mut u64) -> usize {
    let n = usize::try_from(n).unwrap_or(buf.len()).min(buf.len());
    buf[..n].fill(0);
    *pos += n as u64;
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_holes_with_zeros() {
        let map = validate(&[2, 3, 8, 1, 10, 0], 10, 4).unwrap();
        assert_eq!(map, [(2, 3), (8, 1)]);
        let mut out = Vec::new();
        Expand::new(&b"abcd"[..], &map, 10)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"\0\0abc\0\0\0d\0");
    }

    #[test]
    fn bad_maps_are_refused() {
        for (pairs, size, stored) in [
            (&[0u64, 4, 2, 2][..], 10, 6), // overlap
            (&[4, 2, 0, 2][..], 10, 4),    // out of order
            (&[8, 4][..], 10, 4),          // past the end
            (&[0, 4][..], 10, 5),          // stored bytes disagree
            (&[u64::MAX, 2][..], 10, 2),   // overflow
            (&[1][..], 10, 0),             // odd
        ] {
            let err = validate(pairs, size, stored).unwrap_err();
            assert!(matches!(err, Error::TarHeader { .. }), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn map_1x0_is_read_across_blocks() {
        let mut data = b"2\n0\n5\n600\n3\n".to_vec();
        data.resize(512, 0);
        data.extend_from_slice(b"hello");
        let mut r = &data[..];
        let (pairs, used) = read_map_1x0(&mut r).unwrap();
        assert_eq!(pairs, [0, 5, 600, 3]);
        assert_eq!(used, 512);
        assert_eq!(r, b"hello");
        let mut huge = &b"99999999999\n"[..];
        assert!(read_map_1x0(&mut huge).is_err());
    }
}
