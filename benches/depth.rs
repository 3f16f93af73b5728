//! Cost of depth: one layer holding a single file at the bottom of a chain of D directories
//! that no entry lists (the merge and the sinks create them), merged into each sink. Before
//! issue 17 this was quadratic in D (4,000 levels: 26–28 s to a directory, 0.28 s to squashfs;
//! 10,000 levels: 197 s and 2.4 s); every sink now opens a directory from its parent's, so the
//! time per level stays flat. Names longer than PATH_MAX (4095 bytes) are refused, so 2046
//! one-byte levels are the deepest such a layer can reach.
//!
//! Scenarios: `{squashfs,tar,dir}/D` for D in 256, 512, 1024 and 2046. Criterion reports
//! levels per second (elements): linear cost shows as the same rate at every D.

use std::io;
use std::path::Path;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ocirender::sink::dir::DirSink;
use ocirender::sink::tar::TarSink;
use ocirender::squashfs::SquashfsSink;
use ocirender::{ConvertOptions, Jobs, Merger, Ownership, Sink, SquashfsOptions};

/// A tar stream with the one file `a/a/…/a/f`, `depth` directories down.
fn deep_layer(depth: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = format!("{}f", "a/".repeat(depth));
    b.append_data(&mut h, name, &b"x"[..])
        .expect("in-memory tar");
    b.into_inner().expect("in-memory tar")
}

fn merge(layer: &[u8], sink: Box<dyn Sink>) {
    let mut merger = Merger::new(sink, 1, &ConvertOptions::default());
    merger
        .layer(0, &mut &layer[..])
        .expect("the deep layer merges");
    merger.finish().expect("finish");
}

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("OCIRENDER_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(dir).expect("a bench directory");
    let out = |name: &str| tmp.path().join(name);
    let mut g = c.benchmark_group("depth");
    g.sample_size(10).measurement_time(Duration::from_secs(5));
    for depth in [256, 512, 1024, 2046] {
        let layer = deep_layer(depth);
        g.throughput(Throughput::Elements(depth as u64));
        g.bench_function(format!("squashfs/{depth}"), |b| {
            b.iter_batched(
                || remove(&out("x.sqfs")),
                |()| {
                    let sink = SquashfsSink::create(
                        &out("x.sqfs"),
                        &SquashfsOptions::default(),
                        Jobs::new(1).expect("one job"),
                        None,
                    )
                    .expect("a squashfs sink");
                    merge(&layer, Box::new(sink));
                },
                BatchSize::PerIteration,
            )
        });
        g.bench_function(format!("tar/{depth}"), |b| {
            b.iter(|| merge(&layer, Box::new(TarSink::to_writer(Box::new(io::sink())))))
        });
        g.bench_function(format!("dir/{depth}"), |b| {
            b.iter_batched(
                || remove(&out("x.dir")),
                |()| {
                    let sink = DirSink::create(&out("x.dir"), Ownership::Ignore, None)
                        .expect("a directory sink");
                    merge(&layer, Box::new(sink));
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_dir_all(path);
}

criterion_group!(benches, bench);
criterion_main!(benches);
