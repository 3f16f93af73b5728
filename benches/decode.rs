//! Layer decode throughput on the real image: each layer decompressed (and its digest
//! checked), then read again as tar entries with every file's content.
//!
//! `OCIRENDER_REAL_IMAGE=/tmp/deb cargo bench --bench decode` (a `build-deb-image.sh` output);
//! without the variable it says so and does nothing. Two rounds, so the second shows the page
//! cache warm.

use std::io;
use std::time::Instant;

use ocirender::layer::tar::for_each_entry;
use ocirender::layer::LayerReader;
use ocirender::{Image, ImageLocation, Selector};

fn main() {
    let Some(dir) = std::env::var_os("OCIRENDER_REAL_IMAGE") else {
        eprintln!("decode: set OCIRENDER_REAL_IMAGE to a build-deb-image.sh output directory");
        return;
    };
    let location = format!(
        "{}:latest",
        std::path::Path::new(&dir).join("oci").display()
    );
    let image = Image::open(&ImageLocation::parse(&location), &Selector::default())
        .expect("open the real image");
    let compressed: u64 = image.layers.iter().filter_map(|l| l.size).sum();
    for round in 0..2 {
        let start = Instant::now();
        let mut decoded = 0u64;
        for layer in &image.layers {
            let mut reader = LayerReader::open(layer, None).expect("open layer");
            decoded += io::copy(&mut reader, &mut io::sink()).expect("decode layer");
            reader.finish().expect("layer digest");
        }
        let raw = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let mut entries = 0;
        for layer in &image.layers {
            let mut reader = LayerReader::open(layer, None).expect("open layer");
            for_each_entry(&mut reader, &mut |_, data| {
                entries += 1;
                io::copy(data, &mut io::sink())
                    .map(|_| ())
                    .map_err(|e| ocirender::Error::Io {
                        op: "read",
                        path: "entry".into(),
                        source: e,
                    })
            })
            .expect("read entries");
            reader.finish().expect("layer digest");
        }
        let tar = start.elapsed().as_secs_f64();
        println!(
            "round {round}: {:.0} MB compressed, {:.0} MB decoded; decode {raw:.2}s = {:.0} MB/s \
             decoded ({:.0} MB/s compressed); + tar entries {tar:.2}s ({entries} entries)",
            compressed as f64 / 1e6,
            decoded as f64 / 1e6,
            decoded as f64 / 1e6 / raw,
            compressed as f64 / 1e6 / raw
        );
    }
}
