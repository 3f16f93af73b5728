//! `convert`: blob → decode → merge → sink, for an image on disk.

use crate::error::Result;
use crate::image::Image;
use crate::options::{ConvertOptions, ImageSpec};
use crate::sink::{Sink, Summary};

/// Converts `image` into the output `spec` describes.
pub fn convert(image: &Image, spec: &ImageSpec, options: &ConvertOptions) -> Result<Summary> {
    todo!()
}

/// Opens the sink for `spec`.
pub fn open_sink(spec: &ImageSpec, options: &ConvertOptions) -> Result<Box<dyn Sink>> {
    todo!()
}
