//! Throughput of the overlay merge alone: synthetic layer stacks (see `support/synth.rs`),
//! already decoded, merged newest-first into a tar sink writing to `io::sink()`. The sink's
//! own cost is in the `sinks` bench; the difference is the merge (whiteout trie, path
//! bookkeeping, hard links, tar parsing).
//!
//! Scenarios: `4x20k` (4 layers over 20,000 files, 64 MiB), `60x5k` (60 layers over 5,000
//! files: many barriers, whiteouts and opaque directories) and `1x200k` (one layer of 200,000
//! small files: per-entry cost). Criterion reports MB/s of tar input; entries/s is the entry
//! count printed at start divided by the time per iteration.

use std::io;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocirender::sink::tar::TarSink;
use ocirender::{ConvertOptions, Merger};

#[path = "support/synth.rs"]
mod synth;

fn merge(layers: &[synth::Layer]) {
    let sink = TarSink::to_writer(Box::new(io::sink()));
    let mut merger = Merger::new(Box::new(sink), layers.len(), &ConvertOptions::default());
    for (index, layer) in layers.iter().enumerate().rev() {
        merger
            .layer(index, &mut &layer.tar[..])
            .expect("synthetic layers merge");
    }
    merger.finish().expect("finish");
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("merge");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let shapes = [
        (
            "4x20k",
            synth::Shape {
                files: 20_000,
                bytes: 64 << 20,
                layers: 4,
            },
        ),
        (
            "60x5k",
            synth::Shape {
                files: 5_000,
                bytes: 16 << 20,
                layers: 60,
            },
        ),
        (
            "1x200k",
            synth::Shape {
                files: 200_000,
                bytes: 100 << 20,
                layers: 1,
            },
        ),
    ];
    for (name, shape) in shapes {
        let layers = synth::layers(&shape);
        let entries: usize = layers.iter().map(|l| l.entries).sum();
        let bytes: usize = layers.iter().map(|l| l.tar.len()).sum();
        eprintln!(
            "merge/{name}: {entries} tar entries, {} MiB of tar",
            bytes >> 20
        );
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_function(name, |b| b.iter(|| merge(&layers)));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
