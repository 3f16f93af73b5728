//! The overlay merge.

use std::io::Read;

use crate::error::Result;
use crate::options::ConvertOptions;
use crate::sink::{Sink, Summary};

/// Merges layers newest-first into a sink.
pub struct Merger {
    _todo: (),
}

impl Merger {
    /// A merger for an image of `layers` layers writing into `sink`.
    pub fn new(sink: Box<dyn Sink>, layers: usize, options: &ConvertOptions) -> Merger {
        todo!()
    }

    /// Merges layer `index`'s tar stream. Layers must come newest first.
    pub fn layer(&mut self, index: usize, stream: &mut dyn Read) -> Result<()> {
        todo!()
    }

    /// Emits what was held for the end and finishes the sink.
    pub fn finish(self) -> Result<Summary> {
        todo!()
    }
}
