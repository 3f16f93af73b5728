//! The export table (NFS file handles): every inode's reference, by inode number − 1.
//!
//! Inodes are numbered before they are written, so the table fills at random and is written
//! only once the inode table is complete. At 8 bytes an inode it is the largest table the end
//! of a conversion holds (80 MB at ten million inodes), so it lives in pages that go to a file
//! beside the output past the memory budget, and it is written block by block from them.

use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::pager::Pager;
use crate::squashfs::compressor::Compressor;
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::table::LookupWriter;

/// Where the export table pages to, and how much of it stays in memory.
#[derive(Clone, Debug)]
pub(crate) struct Paging {
    /// The directory of the temporary file.
    pub dir: PathBuf,
    /// Bytes of pages kept in memory.
    pub limit: usize,
}

/// Inode references by inode number − 1 (0 until set).
#[derive(Debug)]
pub(crate) struct ExportTable {
    refs: Pager<u64>,
}

impl ExportTable {
    /// A table of `inodes` references, all 0; `paging` says how much stays in memory (`None`:
    /// all of it).
    pub(crate) fn new(inodes: u32, paging: Option<&Paging>) -> ExportTable {
        let dir = paging.map(|p| p.dir.clone()).unwrap_or_default();
        let mut refs = Pager::new(dir, "page the export table out to");
        if let Some(p) = paging {
            refs.set_limit(p.limit);
        }
        refs.resize(inodes as usize);
        ExportTable { refs }
    }

    /// Records the reference of inode `ino` (numbers outside the table are ignored).
    pub(crate) fn set(&mut self, ino: u32, r: u64) {
        if let Some(i) = (ino as usize)
            .checked_sub(1)
            .filter(|&i| i < self.refs.len())
        {
            *self.refs.get_mut(i) = r;
        }
    }

    /// The reference of inode `ino`, if the table has it.
    #[cfg(test)]
    pub(crate) fn get(&self, ino: u32) -> Option<u64> {
        let i = (ino as usize)
            .checked_sub(1)
            .filter(|&i| i < self.refs.len())?;
        Some(self.refs.get(i))
    }

    /// Writes the table at the position; returns the offset of its block list. Fails with
    /// the first error of paging, if any.
    pub(crate) fn write(mut self, out: &mut ImageFile, codec: &Arc<Compressor>) -> Result<u64> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        let mut table = LookupWriter::default();
        let mut bytes = Vec::new();
        let per_page = Pager::<u64>::page_bytes() / 8;
        let mut start = 0;
        while start < self.refs.len() {
            let n = per_page.min(self.refs.len() - start);
            bytes.clear();
            self.refs.with_slice(start, n, |refs| {
                for r in refs {
                    bytes.extend_from_slice(&r.to_le_bytes());
                }
            });
            table.push(out, codec, &bytes)?;
            start += n;
        }
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        table.finish(out, codec)
    }

    /// The first I/O error of paging since the last call.
    pub(crate) fn take_error(&mut self) -> Option<Error> {
        self.refs.take_error()
    }

    /// Bytes of pages written to disk.
    pub(crate) fn paged_out(&self) -> u64 {
        self.refs.paged_out()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paged_table_keeps_every_reference() {
        let dir = tempfile::tempdir().unwrap();
        let paging = Paging {
            dir: dir.path().into(),
            limit: 0,
        };
        let n = 100_000u32;
        let mut t = ExportTable::new(n, Some(&paging));
        // Inodes are set in an order unlike their numbers, as a walk sets them.
        for k in 0..n {
            let ino = (k * 7919) % n + 1;
            t.set(ino, u64::from(ino) << 16 | 0x2a);
        }
        t.set(0, 1);
        t.set(n + 1, 1);
        assert!(t.paged_out() > 0);
        for ino in 1..=n {
            assert_eq!(t.get(ino), Some(u64::from(ino) << 16 | 0x2a));
        }
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(n + 1), None);
        assert!(t.take_error().is_none());
    }

    #[test]
    fn a_paged_table_writes_the_bytes_of_the_whole_table() {
        use crate::options::{Algorithm, BlockSize, Compression};
        let codec = Arc::new(Compressor::new(
            Compression::new(Algorithm::Gzip, None).unwrap(),
            BlockSize::DEFAULT,
            &[],
        ));
        let dir = tempfile::tempdir().unwrap();
        let paging = Paging {
            dir: dir.path().into(),
            limit: 0,
        };
        // Not a whole number of blocks nor of pages.
        let n = 70_001u32;
        let mut t = ExportTable::new(n, Some(&paging));
        let mut bytes = Vec::new();
        for ino in 1..=n {
            let r = u64::from(ino).wrapping_mul(0x9e37_79b9) & 0xffff_ffff_ffff;
            t.set(ino, r);
            bytes.extend_from_slice(&r.to_le_bytes());
        }
        let mut a = ImageFile::create(&dir.path().join("a"), 96).unwrap();
        let mut b = ImageFile::create(&dir.path().join("b"), 96).unwrap();
        let at_a = t.write(&mut a, &codec).unwrap();
        let at_b = crate::squashfs::table::write_lookup_table(&mut b, &codec, &bytes).unwrap();
        assert_eq!((at_a, a.position()), (at_b, b.position()));
        let (mut ra, mut rb) = (
            vec![0; a.position() as usize],
            vec![0; b.position() as usize],
        );
        a.read_at(0, &mut ra).unwrap();
        b.read_at(0, &mut rb).unwrap();
        assert!(ra == rb);
    }
}
