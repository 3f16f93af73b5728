//! `convert`: blob → decode → merge → sink, for an image on disk.
//!
//! Layers are merged newest-first. While one layer is merged, the next-older layer's
//! [`LayerReader`] is already open, so its decompression runs ahead on its own thread (bounded by
//! [`READ_AHEAD`](crate::layer::READ_AHEAD)); the sink's own threads (squashfs compression) run
//! beside both.

use std::io::Read;

use crate::error::Result;
use crate::image::{Image, LayerDescriptor};
use crate::layer::LayerReader;
use crate::merge::Merger;
use crate::options::{ConvertOptions, ImageSpec};
use crate::progress::Progress;
use crate::sink::dir::DirSink;
use crate::sink::tar::TarSink;
use crate::sink::{Sink, Summary};
use crate::squashfs::SquashfsSink;

/// Converts `image` into the output `spec` describes.
///
/// On error nothing is left at the output path (a directory output is removed again).
pub fn convert(image: &Image, spec: &ImageSpec, options: &ConvertOptions) -> Result<Summary> {
    let sink = open_sink(spec, options)?;
    let mut with_dir;
    let options = if options.temp_dir.is_none() {
        with_dir = options.clone();
        with_dir.temp_dir = Some(output_dir(spec));
        &with_dir
    } else {
        options
    };
    options.report(Progress::Started {
        layers: image.layers.len(),
        compressed_bytes: image.compressed_size(),
    });
    let mut merger = Merger::new(sink, image.layers.len(), options);
    let mut newest_first = image.layers.iter().rev();
    let mut next = newest_first.next().map(|d| open(d, options)).transpose()?;
    while let Some((desc, mut reader)) = next.take() {
        next = newest_first.next().map(|d| open(d, options)).transpose()?;
        options.report(Progress::LayerStarted {
            index: desc.index,
            size: desc.size,
        });
        let mut reopen =
            || -> Result<Box<dyn Read + Send>> { Ok(Box::new(LayerReader::open(desc, None)?)) };
        merger
            .layer_reopenable(desc.index, &mut reader, &mut reopen)
            .and_then(|()| reader.finish())
            .map_err(|e| e.in_layer(desc.index, &desc.digest))?;
        options.report(Progress::LayerFinished { index: desc.index });
    }
    let summary = merger.finish()?;
    options.report(Progress::Finished(summary.clone()));
    Ok(summary)
}

fn open<'a>(
    desc: &'a LayerDescriptor,
    options: &ConvertOptions,
) -> Result<(&'a LayerDescriptor, LayerReader)> {
    let reader = LayerReader::open(desc, options.progress.clone())
        .map_err(|e| e.in_layer(desc.index, &desc.digest))?;
    Ok((desc, reader))
}

/// A directory on the output's file system for temporary files: beside an output file, or
/// beside an output directory (standard output: the current directory).
fn output_dir(spec: &ImageSpec) -> std::path::PathBuf {
    let path = spec.path();
    match path.parent() {
        _ if path.as_os_str() == "-" => ".".into(),
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    }
}

/// Opens the sink for `spec`.
pub fn open_sink(spec: &ImageSpec, options: &ConvertOptions) -> Result<Box<dyn Sink>> {
    Ok(match spec {
        ImageSpec::Squashfs { path } => Box::new(SquashfsSink::create(
            path,
            &options.squashfs,
            options.jobs,
            options.progress.clone(),
        )?),
        ImageSpec::Tar { path } => Box::new(TarSink::create(path)?),
        ImageSpec::Dir { path } => Box::new(DirSink::create(
            path,
            options.ownership,
            options.progress.clone(),
        )?),
    })
}
