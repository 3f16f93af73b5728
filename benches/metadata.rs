//! Metadata-heavy images: 200,000 small files (in 200 directories) through `SquashfsSink`,
//! timed by criterion; the cost is the tree, the inode and directory tables and tail packing.
//!
//! Before the criterion run, a one-off measurement builds a 1,000,000-file image and prints the
//! memory the sink holds per entry beyond the names (`SquashfsSink::memory_use`, measured just
//! before `finish`) and the growth of the peak RSS over the whole run, per entry.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ocirender::squashfs::SquashfsSink;
use ocirender::{Entry, EntryKind, EntryPath, Jobs, Metadata, Sink, SquashfsOptions};

fn entry(i: usize, dirs: usize) -> (Entry, Vec<u8>) {
    let content = format!("file {i}\n").into_bytes();
    let e = Entry {
        path: EntryPath::new(format!("usr/lib/d{:03}/file-{i:07}.py", i % dirs).as_bytes())
            .unwrap(),
        kind: EntryKind::File {
            size: content.len() as u64,
            sparse: None,
        },
        meta: Metadata {
            mode: 0o644,
            mtime: 1_700_000_000,
            ..Metadata::default()
        },
    };
    (e, content)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn measure_million() {
    let n = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let rss0 = peak_rss_kib();
    let t0 = Instant::now();
    let mut sink = SquashfsSink::create(
        &dir.path().join("million.sqfs"),
        &SquashfsOptions::default(),
        Jobs::new(2).unwrap(),
        None,
    )
    .unwrap();
    for i in 0..n {
        let (e, d) = entry(i, 1000);
        sink.entry(&e, &mut Cursor::new(d)).unwrap();
    }
    let m = sink.memory_use();
    let summary = Box::new(sink).finish().unwrap();
    let rss = peak_rss_kib().saturating_sub(rss0) * 1024;
    eprintln!(
        "1,000,000 files: {:.1} bytes/entry held beyond names ({:.1} with names); peak RSS growth {:.1} bytes/entry; image {} MB in {:.1} s",
        (m.total - m.names) as f64 / n as f64,
        m.total as f64 / n as f64,
        rss as f64 / n as f64,
        summary.output_bytes / 1_000_000,
        t0.elapsed().as_secs_f64()
    );
}

fn write(dir: &std::path::Path, files: &[(Entry, Vec<u8>)]) -> u64 {
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &dir.join("meta.sqfs"),
            &SquashfsOptions::default(),
            Jobs::new(2).unwrap(),
            None,
        )
        .unwrap(),
    );
    for (e, d) in files {
        sink.entry(e, &mut Cursor::new(d)).unwrap();
    }
    sink.finish().unwrap().output_bytes
}

fn bench(c: &mut Criterion) {
    if std::env::var_os("OCIRENDER_SKIP_MILLION").is_none() {
        measure_million();
    }
    let files: Vec<_> = (0..200_000).map(|i| entry(i, 200)).collect();
    let dir = tempfile::tempdir().unwrap();
    let mut g = c.benchmark_group("squashfs_metadata");
    g.throughput(Throughput::Elements(files.len() as u64));
    g.sample_size(10);
    g.bench_function("200k_small_files", |b| {
        b.iter(|| black_box(write(dir.path(), &files)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
