//! `convert`: blob → decode → merge → sink, for an image on disk.
//!
//! ```text
//!   layer n-1 ─► decoder thread ─► queue ─► merge ─► sink (+ squashfs compression threads)
//!   layer n-2 ─► decoder thread ─► queue (read ahead: fills while n-1 is merged)
//! ```
//! Layers are merged newest-first. Each layer decodes on its own thread (see
//! [`LayerReader`]); the [`ReadAhead`] policy opens the next-older layer(s) before their turn,
//! with a larger queue, so that decoding one layer (gzip inflation is serial within a stream
//! and often the bottleneck) overlaps decoding the layer being merged, on cores that the merge
//! and the sink leave idle. The streaming packer follows the same policy.

use std::collections::VecDeque;
use std::io::Read;

use crate::cancel::CancelToken;
use crate::error::{Error, Result};
use crate::image::{Image, LayerDescriptor};
use crate::layer::{LayerReader, Opening, READ_AHEAD};
use crate::merge::{Merger, Resolution, Resolver};
use crate::options::{ConvertOptions, ImageSpec, ReadAhead};
use crate::progress::Progress;
use crate::sink::dir::DirSink;
use crate::sink::tar::TarSink;
use crate::sink::{Sink, Summary};
use crate::squashfs::SquashfsSink;

/// Converts `image` into the output `spec` describes.
///
/// One pass, newest layer first, unless that pass learns that names go through symlinks of
/// older layers: then its output is discarded, the layers' headers are read oldest first to
/// resolve the names ([`Resolver`]), and the image is converted again
/// ([`Progress::SecondPass`], [`Summary::second_pass`]).
///
/// On error nothing is left at the output path (a directory output is removed again). When
/// [`ConvertOptions::cancel`] is cancelled, the error is [`Error::Interrupted`], returned once
/// the partial output, the spool and the layers' decoder threads are gone.
pub fn convert(image: &Image, spec: &ImageSpec, options: &ConvertOptions) -> Result<Summary> {
    options.cancel.check()?;
    let result = convert_passes(image, spec, options);
    match result {
        // Whatever error the stop surfaced as (a reader's, a sink's), it is the interruption.
        Err(_) if options.cancel.is_cancelled() => Err(Error::Interrupted),
        r => r,
    }
}

/// [`convert`]: the first pass, and the second when the first asks for it.
fn convert_passes(image: &Image, spec: &ImageSpec, options: &ConvertOptions) -> Result<Summary> {
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
    let ahead = options.read_ahead;
    let opening = ahead.opening(options);
    let summary = match merge_layers(image, sink, options, ahead, None) {
        Err(e) if is_second_pass(&e) => {
            options.report(Progress::SecondPass {
                why: e.root_cause().to_string(),
            });
            let resolution = resolve_layers(&image.layers, &opening, &options.cancel)?;
            let sink = open_sink(spec, options)?;
            let mut summary = merge_layers(image, sink, options, ahead, Some(resolution))?;
            summary.second_pass = true;
            summary
        }
        r => r?,
    };
    options.report(Progress::Finished(summary.clone()));
    Ok(summary)
}

/// Whether `e` asks for the conversion to run again with names resolved in layer order.
pub(crate) fn is_second_pass(e: &Error) -> bool {
    matches!(e.root_cause(), Error::SecondPassNeeded { .. })
}

/// Reads every layer's headers, oldest first, and resolves where each entry lands; stops at
/// the next read once `cancel` is cancelled.
pub(crate) fn resolve_layers(
    layers: &[LayerDescriptor],
    opening: &Opening,
    cancel: &CancelToken,
) -> Result<Resolution> {
    let mut resolver = Resolver::new(layers.len());
    for desc in layers {
        let in_layer = |e: Error| e.in_layer(desc.index, &desc.digest);
        let mut reader = opening.open(desc).map_err(in_layer)?;
        resolver
            .layer(desc.index, &mut cancel.reader(&mut reader))
            .and_then(|()| reader.finish())
            .map_err(in_layer)?;
    }
    Ok(resolver.finish())
}

/// One pass of the merge over `image`'s layers, newest first, into `sink`.
fn merge_layers(
    image: &Image,
    sink: Box<dyn Sink>,
    options: &ConvertOptions,
    ahead: ReadAhead,
    resolution: Option<Resolution>,
) -> Result<Summary> {
    let opening = ahead.opening(options);
    let mut merger = match resolution {
        Some(r) => Merger::with_resolution(sink, image.layers.len(), options, r),
        None => Merger::new(sink, image.layers.len(), options),
    };
    merger.name_layers(image.layers.iter().map(|l| l.digest.clone()).collect());
    let mut newest_first = image.layers.iter().rev();
    let mut open: VecDeque<(&LayerDescriptor, LayerReader)> = VecDeque::new();
    loop {
        while open.len() <= ahead.layers() {
            let Some(desc) = newest_first.next() else {
                break;
            };
            let reader = opening
                .open(desc)
                .map_err(|e| e.in_layer(desc.index, &desc.digest))?;
            open.push_back((desc, reader));
        }
        let Some((desc, mut reader)) = open.pop_front() else {
            break;
        };
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
    merger.finish()
}

/// A directory on the output's file system for temporary files: beside an output file, or
/// beside an output directory (standard output: the current directory).
pub(crate) fn output_dir(spec: &ImageSpec) -> std::path::PathBuf {
    let path = spec.path();
    match path.parent() {
        _ if path.as_os_str() == "-" => ".".into(),
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => ".".into(),
    }
}

/// Opens the sink for `spec`. A dm-verity tree ([`SquashfsOptions::verity`]) is refused for
/// tar and directory outputs rather than silently left out.
///
/// [`SquashfsOptions::verity`]: crate::SquashfsOptions::verity
pub fn open_sink(spec: &ImageSpec, options: &ConvertOptions) -> Result<Box<dyn Sink>> {
    if options.squashfs.verity.is_some() && !matches!(spec, ImageSpec::Squashfs { .. }) {
        return Err(Error::InvalidOption {
            name: "verity",
            value: spec.path().display().to_string(),
            reason: "a dm-verity hash tree needs a squashfs output",
        });
    }
    Ok(match spec {
        ImageSpec::Squashfs { path } => {
            let spill_dir = options.temp_dir.clone().unwrap_or_else(|| output_dir(spec));
            Box::new(
                SquashfsSink::create(
                    path,
                    &options.squashfs,
                    options.jobs,
                    options.progress.clone(),
                )?
                .with_memory_limit(options.memory_limit, &spill_dir),
            )
        }
        ImageSpec::Tar { path } => Box::new(TarSink::create(path)?),
        ImageSpec::Dir { path } => Box::new(DirSink::create(
            path,
            options.ownership,
            options.progress.clone(),
        )?),
    })
}

impl ReadAhead {
    /// How layers are opened under this policy.
    pub(crate) fn opening(self, options: &ConvertOptions) -> Opening {
        let bytes = if self.layers() == 0 {
            READ_AHEAD
        } else {
            self.bytes()
        };
        Opening::new(options.progress.clone(), bytes)
    }
}
