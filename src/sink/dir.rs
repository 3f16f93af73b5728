//! [`DirSink`]: the merged tree extracted into a directory, written directly (no tar round
//! trip), every operation relative to the output root and never following a symlink.

use std::io::Read;
use std::path::Path;

use crate::entry::Entry;
use crate::error::Result;
use crate::options::{Ownership, ProgressFn};
use crate::sink::{Sink, Summary};

/// Extracts the entry stream into a directory.
pub struct DirSink {
    _todo: (),
}

impl DirSink {
    /// Extracts into `path`, which must be missing or an empty directory.
    pub fn create(path: &Path, ownership: Ownership, progress: Option<ProgressFn>) -> Result<DirSink> {
        todo!("helper C")
    }
}

impl Sink for DirSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        todo!("helper C")
    }

    fn finish(self: Box<Self>) -> Result<Summary> {
        todo!("helper C")
    }
}
