//! [`TarSink`]: the merged tree as one plain tar archive (ustar headers, PAX records where
//! ustar cannot hold a value: long names and link targets, large ids, sizes and times,
//! sub-second mtimes, xattrs, sparse maps).

use std::io::Read;
use std::path::Path;

use crate::entry::Entry;
use crate::error::Result;
use crate::sink::{Sink, Summary};

/// Writes the entry stream as a tar archive.
pub struct TarSink {
    _todo: (),
}

impl TarSink {
    /// Writes to the file `path` (appearing there only when finished), or to standard output
    /// when `path` is `-`.
    pub fn create(path: &Path) -> Result<TarSink> {
        todo!("helper C")
    }
}

impl Sink for TarSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        todo!("helper C")
    }

    fn finish(self: Box<Self>) -> Result<Summary> {
        todo!("helper C")
    }
}
