//! The uncompressed fragment blocks, kept for tail dedup in an unnamed temporary file beside
//! the output.
//!
//! A tail whose hash matches an earlier one is compared byte for byte with that tail. The
//! earlier tail's block has usually been compressed and written by then; reading it back from
//! the image meant decompressing a whole block to compare a few bytes (at ten million tiny
//! files, 15 % of the conversion's CPU was zstd decompressing fragment blocks, with an 8 MiB
//! cache of decompressed blocks in front). Here each block's bytes are written once, as the
//! block is handed to the compressors, at `index × block size`, and a comparison reads just
//! the tail's bytes back: from the page cache, with no decompression and no cache of ours.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::squashfs::fragment_table::TailRef;

/// Fragment blocks by index, uncompressed.
#[derive(Debug)]
pub(crate) struct TailStore {
    dir: PathBuf,
    block_size: u64,
    /// Made at the first block kept.
    file: Option<File>,
    scratch: Vec<u8>,
}

impl TailStore {
    /// An empty store for blocks of `block_size` bytes; its file, once needed, goes in `dir`.
    pub(crate) fn new(dir: PathBuf, block_size: usize) -> TailStore {
        TailStore {
            dir,
            block_size: block_size as u64,
            file: None,
            scratch: Vec::new(),
        }
    }

    /// Moves the file, if not made yet, to `dir`.
    pub(crate) fn set_dir(&mut self, dir: PathBuf) {
        if self.file.is_none() {
            self.dir = dir;
        }
    }

    fn err(&self, e: io::Error) -> Error {
        Error::io("keep fragment blocks for tail dedup in", &self.dir, e)
    }

    /// Keeps fragment block `index` (at most a block's bytes).
    pub(crate) fn keep(&mut self, index: u32, block: &[u8]) -> Result<()> {
        if self.file.is_none() {
            let file = tempfile::tempfile_in(&self.dir).map_err(|e| self.err(e))?;
            self.file = Some(file);
        }
        let at = u64::from(index) * self.block_size;
        match &self.file {
            Some(f) => f.write_all_at(block, at).map_err(|e| self.err(e)),
            None => Ok(()),
        }
    }

    /// Whether the kept bytes at `at` equal `tail` (a place beyond what was kept holds
    /// nothing).
    pub(crate) fn holds(&mut self, at: TailRef, tail: &[u8]) -> Result<bool> {
        let Some(file) = &self.file else {
            return Ok(false);
        };
        if u64::from(at.offset) + tail.len() as u64 > self.block_size {
            return Ok(false);
        }
        self.scratch.resize(tail.len(), 0);
        let pos = u64::from(at.fragment) * self.block_size + u64::from(at.offset);
        match file.read_exact_at(&mut self.scratch, pos) {
            Ok(()) => Ok(self.scratch == tail),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_blocks_answer_byte_comparisons_and_the_file_has_no_name() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = TailStore::new(dir.path().into(), 4096);
        let at = |fragment, offset| TailRef { fragment, offset };
        assert!(!s.holds(at(0, 0), b"abc").unwrap(), "nothing kept");
        s.keep(0, b"hello world").unwrap();
        s.keep(2, &[7; 4096]).unwrap();
        assert!(s.holds(at(0, 6), b"world").unwrap());
        assert!(!s.holds(at(0, 6), b"worle").unwrap());
        assert!(
            !s.holds(at(0, 6), b"world!").unwrap(),
            "past the block's end"
        );
        assert!(s.holds(at(2, 4000), &[7; 96]).unwrap());
        assert!(
            !s.holds(at(2, 4000), &[7; 97]).unwrap(),
            "past the block size"
        );
        assert!(!s.holds(at(1, 0), b"x").unwrap(), "a hole");
        assert!(!s.holds(at(9, 0), b"x").unwrap(), "beyond the file");
        assert!(!s.holds(at(u32::MAX, 0), b"x").unwrap(), "a lost place");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_store_that_cannot_make_its_file_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let mut s = TailStore::new(missing.clone(), 4096);
        let e = s.keep(0, b"x").unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
    }
}
