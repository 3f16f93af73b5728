//! The directory table: one listing per directory, written with begin/add/end.
//!
//! A listing is a sequence of runs; each run is a 12-byte header {count − 1, inode metablock
//! start, base inode number} followed by up to 256 entries {inode offset, inode number − base
//! as `i16`, basic type, name length − 1, name}. The listing sits somewhere in the directory
//! table's metadata stream; the directory inode stores where it starts and its size + 3.
//!
//! [`DirBuilder::add`] starts a new run (a new header) when:
//! - the run already has 256 entries (the kernel rejects a larger count);
//! - the entry's inode lies in a different inode metadata block (a header names one block);
//! - the entry's inode number is more than an `i16` away from the run's base number;
//! - the entry would start in a later directory metadata block than the run's header.
//!
//! The last rule puts a header at the start of every directory metablock a listing enters,
//! and each such header (except in the listing's first block) gets a directory index entry
//! {offset of the header in the listing, metablock start, first name}, which the kernel's
//! lookup uses to skip straight to the right block of a big directory. Entries must be added
//! in unsigned byte order of their names (the kernel's lookup stops early relying on it); the
//! tree sorts them before calling.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::squashfs::compressor::Compressor;
use crate::squashfs::format::{
    DirEntry, DirHeader, DirIndex, MetaRef, DIR_HEADER_MAX, METADATA_SIZE,
};
use crate::squashfs::meta_writer::MetaWriter;

/// Where a finished listing is and what its inode must say about it.
#[derive(Debug, Default)]
pub(crate) struct DirListing {
    /// Start of the listing in the directory table.
    pub start: MetaRef,
    /// Listing bytes + 3, the inode's `file_size`.
    pub file_size: u64,
    /// Index entries for the extended inode.
    pub index: Vec<DirIndex>,
    /// Number of entries.
    pub entries: usize,
}

/// Builds the directory table.
#[derive(Debug)]
pub(crate) struct DirWriter {
    meta: MetaWriter,
}

impl DirWriter {
    /// An empty directory table.
    pub(crate) fn new(codec: Arc<Compressor>) -> DirWriter {
        DirWriter {
            meta: MetaWriter::new(codec),
        }
    }

    /// Starts the listing of one directory.
    pub(crate) fn begin(&mut self) -> DirBuilder<'_> {
        DirBuilder {
            start: self.meta.position(),
            start_abs: self.meta.uncompressed_len(),
            last_indexed_block: self.meta.uncompressed_len() / METADATA_SIZE as u64,
            w: self,
            run: Vec::new(),
            run_count: 0,
            run_inode_block: 0,
            run_base: 0,
            run_first_name: Vec::new(),
            index: Vec::new(),
            entries: 0,
        }
    }

    /// The compressed directory table.
    pub(crate) fn finish(self) -> Result<Vec<u8>> {
        self.meta.finish()
    }
}

/// One directory's listing in progress.
#[derive(Debug)]
pub(crate) struct DirBuilder<'a> {
    w: &'a mut DirWriter,
    start: MetaRef,
    /// Uncompressed stream offset of the listing start.
    start_abs: u64,
    /// Directory metablock (by uncompressed number) of the last index entry.
    last_indexed_block: u64,
    run: Vec<u8>,
    run_count: usize,
    run_inode_block: u64,
    run_base: u32,
    run_first_name: Vec<u8>,
    index: Vec<DirIndex>,
    entries: usize,
}

impl DirBuilder<'_> {
    /// Adds an entry; `inode` is where its inode is, `number` its inode number and
    /// `basic_type` its basic inode type (1–7). Names come in unsigned byte order, 1–256 bytes.
    pub(crate) fn add(
        &mut self,
        name: &[u8],
        inode: MetaRef,
        number: u32,
        basic_type: u16,
    ) -> Result<()> {
        if self.run_count > 0 {
            let header_abs = self.w.meta.uncompressed_len();
            let entry_abs = header_abs + (DirHeader::SIZE + self.run.len()) as u64;
            let delta = i64::from(number) - i64::from(self.run_base);
            if self.run_count == DIR_HEADER_MAX
                || inode.block != self.run_inode_block
                || i16::try_from(delta).is_err()
                || entry_abs / METADATA_SIZE as u64 != header_abs / METADATA_SIZE as u64
            {
                self.flush_run()?;
            }
        }
        if self.run_count == 0 {
            self.run_inode_block = inode.block;
            self.run_base = number;
            self.run_first_name.clear();
            self.run_first_name.extend_from_slice(name);
        }
        let delta = i64::from(number) - i64::from(self.run_base);
        DirEntry {
            offset: inode.offset,
            // In range: a new run starts whenever the delta leaves i16.
            inode_delta: delta as i16,
            inode_type: basic_type,
            name,
        }
        .write(&mut self.run);
        self.run_count += 1;
        self.entries += 1;
        Ok(())
    }

    fn flush_run(&mut self) -> Result<()> {
        if self.run_count == 0 {
            return Ok(());
        }
        let header_abs = self.w.meta.uncompressed_len();
        let pos = self.w.meta.position();
        let block = header_abs / METADATA_SIZE as u64;
        if block != self.last_indexed_block {
            self.index.push(DirIndex {
                index: u32::try_from(header_abs - self.start_abs).map_err(|_| Error::TooLarge {
                    what: "directory listing",
                    size: header_abs - self.start_abs,
                    limit: u64::from(u32::MAX),
                })?,
                start: table_offset(pos.block)?,
                name: self.run_first_name.clone(),
            });
            self.last_indexed_block = block;
        }
        let mut header = Vec::with_capacity(DirHeader::SIZE);
        DirHeader {
            count: self.run_count as u32,
            start: table_offset(self.run_inode_block)?,
            inode_number: self.run_base,
        }
        .write(&mut header);
        self.w.meta.append(&header)?;
        self.w.meta.append(&self.run)?;
        self.run.clear();
        self.run_count = 0;
        Ok(())
    }

    /// Ends the listing.
    pub(crate) fn end(mut self) -> Result<DirListing> {
        self.flush_run()?;
        Ok(DirListing {
            start: self.start,
            file_size: self.w.meta.uncompressed_len() - self.start_abs + 3,
            index: std::mem::take(&mut self.index),
            entries: self.entries,
        })
    }
}

fn table_offset(v: u64) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::TooLarge {
        what: "metadata table",
        size: v,
        limit: u64::from(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{Algorithm, BlockSize, Compression};
    use crate::squashfs::format::LeReader;

    fn writer() -> DirWriter {
        let c = Compressor::new(
            Compression::new(Algorithm::None, None).unwrap(),
            BlockSize::DEFAULT,
            &[],
        );
        DirWriter::new(Arc::new(c))
    }

    /// Reads back the headers of an uncompressed table: (offset in listing, count, base).
    fn headers(table: &[u8], listing: &DirListing) -> Vec<(usize, u32, u32)> {
        let mut raw = Vec::new();
        let mut s = table;
        while !s.is_empty() {
            let len = (u16::from_le_bytes([s[0], s[1]]) & 0x7fff) as usize;
            raw.extend_from_slice(&s[2..2 + len]);
            s = &s[2 + len..];
        }
        let mut out = Vec::new();
        let mut pos = 0usize;
        let body = &raw[listing.start.offset as usize..];
        while pos + 3 < listing.file_size as usize {
            let mut r = LeReader::new(&body[pos..]);
            let count = r.u32().unwrap() + 1;
            let _start = r.u32().unwrap();
            let base = r.u32().unwrap();
            out.push((pos, count, base));
            pos += 12;
            for _ in 0..count {
                let mut r = LeReader::new(&body[pos + 6..]);
                let n = r.u16().unwrap() as usize + 1;
                pos += 8 + n;
            }
        }
        out
    }

    #[test]
    fn empty_listing_has_size_3() {
        let mut w = writer();
        let l = w.begin().end().unwrap();
        assert_eq!(l.file_size, 3);
        assert_eq!(l.entries, 0);
    }

    #[test]
    fn runs_split_at_256_entries_inode_blocks_and_i16_deltas() {
        let mut w = writer();
        let mut d = w.begin();
        let at = |block| MetaRef { block, offset: 0 };
        for i in 0..300u32 {
            d.add(format!("{i:05}").as_bytes(), at(0), 1 + i, 2)
                .unwrap();
        }
        d.add(b"a", at(100), 302, 2).unwrap(); // other inode block
        d.add(b"b", at(100), 40000, 2).unwrap(); // delta > 32767
        let l = d.end().unwrap();
        let t = w.finish().unwrap();
        let h: Vec<_> = headers(&t, &l).iter().map(|&(_, c, b)| (c, b)).collect();
        assert_eq!(h, [(256, 1), (44, 257), (1, 302), (1, 40000)]);
        assert_eq!(l.file_size, 4 * 12 + 300 * 13 + 2 * 9 + 3);
        assert!(l.index.is_empty(), "listing fits one metablock");
    }

    #[test]
    fn a_listing_crossing_metablocks_gets_a_header_and_index_entry_per_block() {
        let mut w = writer();
        let mut d = w.begin();
        let name = [b'n'; 200];
        for i in 0..100u32 {
            let mut n = name.to_vec();
            n.extend_from_slice(format!("{i:03}").as_bytes());
            d.add(&n, MetaRef::default(), 1 + i, 2).unwrap();
        }
        let l = d.end().unwrap();
        // 100 entries × 211 bytes ≈ 21 KB: three metablocks, two crossings.
        assert_eq!(l.index.len(), 2);
        let t = w.finish().unwrap();
        let hs = headers(&t, &l);
        for ix in &l.index {
            assert!(
                hs.iter().any(|&(off, _, _)| off as u32 == ix.index),
                "index → header"
            );
            // Each indexed header starts in the metablock the index names.
            assert_eq!(
                (ix.index as usize + l.start.offset as usize) / 8192 * 8194,
                ix.start as usize
            );
        }
        assert!(l.index[0].name.ends_with(b"038") || l.index[0].name.ends_with(b"039"));
    }
}
