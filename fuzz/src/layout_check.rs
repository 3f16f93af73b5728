//! The `image_layout` target's check (see `fuzz_targets/image_layout.rs`).

use std::fs;
use std::io::{self, Read};

use ocirender::image::list_manifests;
use ocirender::layer::LayerReader;
use ocirender::sink::tar::TarSink;
use ocirender::{
    ConvertOptions, EntryKind, Error, Image, ImageLocation, Jobs, LayerDescriptor, Merger, Selector,
};

use crate::layout_input::LayoutInput;

/// The largest file a layer may declare before the conversion is skipped (declared sizes cost
/// time, not memory: a sparse header can claim terabytes of holes).
pub const MAX_FILE: u64 = 16 << 20;

/// Writes the layout, opens it, converts it to a tar stream into nothing; panics on a broken
/// invariant (errors are fine).
pub fn check(input: &LayoutInput) {
    let scratch = crate::scratch();
    let dir = scratch.path().join("img");
    fs::create_dir_all(&dir).expect("create the image directory");
    let path = input.write(&dir);
    let _ = list_manifests(&path);
    let location = ImageLocation {
        path,
        reference: input.reference().map(str::to_owned),
    };
    let Ok(image) = Image::open(&location, &Selector::default()) else {
        return;
    };
    for (i, l) in image.layers.iter().enumerate() {
        assert_eq!(l.index, i, "layers are numbered oldest first");
    }
    if image.layers.iter().any(|d| !small(d)) {
        return;
    }
    let _ = convert_to_nothing(&image);
}

/// Whether every file of the layer is small (an unreadable layer counts as small: the
/// conversion will report it).
fn small(desc: &LayerDescriptor) -> bool {
    let Ok(mut reader) = LayerReader::open(desc, None) else {
        return true;
    };
    let mut ok = true;
    let _ = ocirender::layer::tar::for_each_entry(&mut reader, &mut |e, _| {
        if matches!(e.kind, EntryKind::File { size, .. } if size > MAX_FILE) {
            ok = false;
            return Err(Error::Stopped);
        }
        Ok(())
    });
    ok
}

fn convert_to_nothing(image: &Image) -> ocirender::Result<()> {
    let sink = TarSink::to_writer(Box::new(io::sink()));
    let options = ConvertOptions::default().jobs(Jobs::new(1)?);
    let mut merger = Merger::new(Box::new(sink), image.layers.len(), &options);
    for desc in image.layers.iter().rev() {
        let mut reader = LayerReader::open(desc, None)?;
        let mut reopen = || -> ocirender::Result<Box<dyn Read + Send>> {
            Ok(Box::new(LayerReader::open(desc, None)?))
        };
        merger.layer_reopenable(desc.index, &mut reader, &mut reopen)?;
        reader.finish()?;
    }
    merger.finish().map(|_| ())
}
