//! The squashfs 4.0 writer: [`SquashfsSink`] turns the entry stream into an image the Linux
//! kernel, `unsquashfs` and `backhand` read.

use std::io::Read;
use std::path::Path;

use crate::entry::Entry;
use crate::error::Result;
use crate::options::{Jobs, ProgressFn, SquashfsOptions};
use crate::sink::{Sink, Summary};

/// Writes the entry stream as a squashfs image.
pub struct SquashfsSink {
    _todo: (),
}

impl SquashfsSink {
    /// Writes to `path` (appearing there only when finished) with `jobs` compression threads.
    pub fn create(
        path: &Path,
        options: &SquashfsOptions,
        jobs: Jobs,
        progress: Option<ProgressFn>,
    ) -> Result<SquashfsSink> {
        todo!("helper B")
    }
}

impl Sink for SquashfsSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        todo!("helper B")
    }

    fn finish(self: Box<Self>) -> Result<Summary> {
        todo!("helper B")
    }
}
