//! Lookup tables: the fragment, export, id and xattr id tables.
//!
//! ```text
//!            ┌──────────────┬──────────────┬─────┐┌────┬────┬─────┐
//!  image ... │ metablock 0  │ metablock 1  │ ... ││ u64│ u64│ ... │ next table ...
//!            └──────────────┴──────────────┴─────┘└────┴────┴─────┘
//!             ▲              ▲                     ▲
//!             └── list[0]    └── list[1]           └── superblock table pointer
//! ```
//!
//! The fixed-size entries are packed into 8 KiB metadata blocks; the list of the blocks'
//! absolute offsets follows them directly and the superblock points at the list. The kernel
//! requires each location to be below the next, at most 8194 bytes apart, the last one below
//! the list, and (for the export, id and xattr id tables) the list to end exactly where the
//! next table begins — which holds because [`write_lookup_table`] writes the list directly
//! after the blocks and the caller writes the next table directly after the list.

use std::sync::Arc;

use crate::error::Result;
use crate::squashfs::compressor::Compressor;
use crate::squashfs::format::{Le, METADATA_SIZE};
use crate::squashfs::image_file::ImageFile;
use crate::squashfs::meta_writer::MetaWriter;

/// Writes one metadata block of `chunk` (at most 8 KiB) at the position; returns where.
fn write_block(out: &mut ImageFile, codec: &Arc<Compressor>, chunk: &[u8]) -> Result<u64> {
    let at = out.position();
    let mut block = MetaWriter::new(Arc::clone(codec));
    block.append(chunk)?;
    out.write(&block.finish()?)?;
    Ok(at)
}

/// Writes `entries` as metadata blocks at the position and returns the blocks' offsets.
pub(crate) fn write_metablocks(
    out: &mut ImageFile,
    codec: &Arc<Compressor>,
    entries: &[u8],
) -> Result<Vec<u64>> {
    (entries.chunks(METADATA_SIZE))
        .map(|chunk| write_block(out, codec, chunk))
        .collect()
}

/// Writes the location list; returns its offset.
pub(crate) fn write_locations(out: &mut ImageFile, locations: &[u64]) -> Result<u64> {
    let start = out.position();
    let mut list = Vec::with_capacity(locations.len() * 8);
    for &l in locations {
        Le(&mut list).u64(l);
    }
    out.write(&list)?;
    Ok(start)
}

/// Writes a whole lookup table (blocks, then the list) and returns the list's offset, which is
/// what the superblock stores. An empty table writes nothing and returns the position.
pub(crate) fn write_lookup_table(
    out: &mut ImageFile,
    codec: &Arc<Compressor>,
    entries: &[u8],
) -> Result<u64> {
    let mut table = LookupWriter::default();
    table.push(out, codec, entries)?;
    table.finish(out, codec)
}

/// A lookup table whose entries arrive in pieces (the export table of ten million inodes is
/// 80 MB: it is written as it is read, never gathered): each block is written once full.
#[derive(Default)]
pub(crate) struct LookupWriter {
    block: Vec<u8>,
    locations: Vec<u64>,
}

impl LookupWriter {
    /// Appends entry bytes, writing each metadata block as it fills.
    pub(crate) fn push(
        &mut self,
        out: &mut ImageFile,
        codec: &Arc<Compressor>,
        mut bytes: &[u8],
    ) -> Result<()> {
        while !bytes.is_empty() {
            let take = (METADATA_SIZE - self.block.len()).min(bytes.len());
            self.block.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.block.len() == METADATA_SIZE {
                self.locations.push(write_block(out, codec, &self.block)?);
                self.block.clear();
            }
        }
        Ok(())
    }

    /// Writes the last, shorter block and the list; returns the list's offset.
    pub(crate) fn finish(mut self, out: &mut ImageFile, codec: &Arc<Compressor>) -> Result<u64> {
        if !self.block.is_empty() {
            self.locations.push(write_block(out, codec, &self.block)?);
        }
        write_locations(out, &self.locations)
    }
}
