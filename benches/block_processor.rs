//! Throughput of `SquashfsSink` on file data: 16 MiB of synthetic, moderately compressible
//! content (about 3:1 with zstd, like binaries and text in container images) in four files,
//! per compressor, with 1 and 2 compression threads. Reported as input bytes per second.
//!
//! Before the criterion runs, a one-off line per compressor shows the CPU utilization with
//! 2 jobs (process CPU time ÷ wall time; 2.0 = both cores busy) and the raw single-thread
//! compression speed of the same blocks for comparison.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocirender::squashfs::SquashfsSink;
use ocirender::{Entry, EntryKind, EntryPath, Jobs, Metadata, Sink, SquashfsOptions};

const TOTAL: usize = 16 << 20;

/// Text-like data: words from a small vocabulary with random numbers in between.
fn data(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&[u8]; 12] = [
        b"container ",
        b"layer ",
        b"squashfs ",
        b"\x7fELF\x02\x01\x01",
        b"\x48\x89\xe5 ",
        b"lib64 ",
        b"usr/share/ ",
        b"\x00\x00\x00\x00",
        b"import ",
        b"return ",
        b"0x7ffc ",
        b"\xe8\x10\x00\x00\x00",
    ];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 16);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            v.extend_from_slice(&x.to_le_bytes()[..3]);
        } else {
            v.extend_from_slice(WORDS[(x >> 8) as usize % WORDS.len()]);
        }
    }
    v.truncate(len);
    v
}

fn files() -> Vec<(Entry, Vec<u8>)> {
    (0..4)
        .map(|i| {
            let content = data(TOTAL / 4, 1000 + 2 * i);
            let e = Entry {
                path: EntryPath::new(format!("bin/file{i}").as_bytes()).unwrap(),
                kind: EntryKind::File {
                    size: content.len() as u64,
                    sparse: None,
                },
                meta: Metadata {
                    mode: 0o755,
                    ..Metadata::default()
                },
            };
            (e, content)
        })
        .collect()
}

fn write_image(dir: &std::path::Path, spec: &str, jobs: usize, files: &[(Entry, Vec<u8>)]) -> u64 {
    let opts = SquashfsOptions {
        compression: spec.parse().unwrap(),
        ..SquashfsOptions::default()
    };
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &dir.join("bench.sqfs"),
            &opts,
            Jobs::new(jobs).unwrap(),
            None,
        )
        .unwrap(),
    );
    for (e, d) in files {
        sink.entry(e, &mut Cursor::new(d)).unwrap();
    }
    sink.finish().unwrap().output_bytes
}

/// User + system CPU time of this process (all threads), from `/proc/self/stat` (in clock
/// ticks of 1/100 s, the Linux default).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5) (utime, stime) are at 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

const SPECS: [&str; 6] = ["zstd", "gzip", "lz4", "lz4:9", "xz", "none"];

/// Single-thread zstd-3 speed on the same 128 KiB blocks with one reused context: the ceiling
/// one job can reach.
fn report_raw_zstd(files: &[(Entry, Vec<u8>)]) {
    let mut c = zstd::bulk::Compressor::new(3).unwrap();
    let mut out = Vec::with_capacity(256 << 10);
    let t0 = Instant::now();
    for (_, d) in files {
        for block in d.chunks(128 << 10) {
            c.compress_to_buffer(block, &mut out).unwrap();
            black_box(&out);
        }
    }
    eprintln!(
        "raw zstd-3, one thread: {:.0} MB/s",
        TOTAL as f64 / t0.elapsed().as_secs_f64() / 1e6
    );
}

fn report_utilization(files: &[(Entry, Vec<u8>)]) {
    report_raw_zstd(files);
    let dir = tempfile::tempdir().unwrap();
    for spec in SPECS {
        let (cpu0, t0) = (cpu_seconds(), Instant::now());
        let out = write_image(dir.path(), spec, 2, files);
        let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
        eprintln!(
            "{spec:>6}: 2 jobs {:.0} MB/s, CPU {:.2} cores busy, ratio {:.2}",
            TOTAL as f64 / wall / 1e6,
            cpu / wall,
            TOTAL as f64 / out as f64
        );
    }
}

fn bench(c: &mut Criterion) {
    let files = files();
    report_utilization(&files);
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("squashfs_sink");
    g.throughput(Throughput::Bytes(TOTAL as u64));
    g.sample_size(10);
    for spec in SPECS {
        for jobs in [1, 2] {
            g.bench_function(format!("{spec}/jobs{jobs}"), |b| {
                b.iter(|| black_box(write_image(dir.path(), spec, jobs, &files)))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
