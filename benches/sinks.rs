//! Throughput of the tar and directory sinks on one synthetic entry stream, fed directly (no
//! image, no merge): 10,000 small files (0.5–8 KiB) in 100 directories, a symlink and a hard
//! link per directory, and 4 files of 32 MiB; about 170 MiB and 10,500 entries per iteration.
//!
//! Scenarios: `tar/writer` (TarSink into `io::sink()`: the sink's own cost), `tar/file`
//! (TarSink into a file, rename at finish included), `dir` (DirSink into a fresh directory;
//! removing the previous tree is not timed). Criterion reports MB/s; entries/s is the entry
//! count printed at start divided by the time per iteration.
//!
//! The outputs go to `$OCIRENDER_BENCH_DIR` (by default the system's temporary directory).
//! Point it at a tmpfs such as /dev/shm to measure the sinks rather than the disk: the
//! directory sink writes 170 MiB of new files per iteration, and on a slow disk the kernel soon
//! throttles that to the disk's write-back speed.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ocirender::sink::dir::DirSink;
use ocirender::sink::tar::TarSink;
use ocirender::{Entry, EntryKind, EntryPath, Metadata, Ownership, Sink};

const SMALL_FILES: usize = 10_000;
const DIRS: usize = 100;
const BIG_FILES: usize = 4;
const BIG_SIZE: usize = 32 << 20;

/// The stream: entries and, for files, the range of `data` they read.
struct Stream {
    entries: Vec<(Entry, std::ops::Range<usize>)>,
    data: Vec<u8>,
    file_bytes: u64,
}

fn meta(mode: u32) -> Metadata {
    Metadata {
        mode,
        uid: 1000,
        gid: 1000,
        mtime: 1_700_000_000,
        ..Metadata::default()
    }
}

fn path(s: &str) -> EntryPath {
    EntryPath::new(s.as_bytes()).expect("valid path")
}

fn stream() -> Stream {
    // Non-zero pseudo-random bytes, so the directory sink finds no holes to skip.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let data: Vec<u8> = (0..BIG_SIZE + 8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x as u8) | 1
        })
        .collect();
    let mut entries = Vec::new();
    let mut file_bytes = 0u64;
    let mut file = |name: String, size: usize, start: usize, entries: &mut Vec<_>| {
        let kind = EntryKind::File {
            size: size as u64,
            sparse: None,
        };
        let e = Entry {
            path: path(&name),
            kind,
            meta: meta(0o644),
        };
        entries.push((e, start..start + size));
        file_bytes += size as u64;
    };
    for d in 0..DIRS {
        for f in 0..SMALL_FILES / DIRS {
            let size = 512 + (f * 797 + d * 131) % (7 * 1024 + 512);
            file(
                format!("usr/share/d{d:03}/file{f:03}"),
                size,
                f * 61,
                &mut entries,
            );
        }
        let dir = format!("usr/share/d{d:03}");
        let symlink = Entry {
            path: path(&format!("{dir}/link")),
            kind: EntryKind::Symlink {
                target: b"file000".to_vec(),
            },
            meta: meta(0o777),
        };
        let hardlink = Entry {
            path: path(&format!("{dir}/hard")),
            kind: EntryKind::Hardlink {
                target: path(&format!("{dir}/file001")),
            },
            meta: meta(0o644),
        };
        entries.push((symlink, 0..0));
        entries.push((hardlink, 0..0));
        entries.push((
            Entry {
                path: path(&dir),
                kind: EntryKind::Dir,
                meta: meta(0o755),
            },
            0..0,
        ));
    }
    for b in 0..BIG_FILES {
        file(format!("opt/big{b}"), BIG_SIZE, b * 1024, &mut entries);
    }
    for d in ["usr/share", "usr", "opt", ""] {
        let e = Entry {
            path: path(d),
            kind: EntryKind::Dir,
            meta: meta(0o755),
        };
        entries.push((e, 0..0));
    }
    Stream {
        entries,
        data,
        file_bytes,
    }
}

fn feed(sink: Box<dyn Sink>, s: &Stream) {
    let mut sink = sink;
    for (entry, range) in &s.entries {
        let mut data: &[u8] = &s.data[range.clone()];
        sink.entry(entry, &mut data as &mut dyn Read)
            .expect("entry");
    }
    sink.finish().expect("finish");
}

fn bench(c: &mut Criterion) {
    let s = stream();
    eprintln!(
        "sinks bench: {} entries, {} MiB of file data per iteration",
        s.entries.len(),
        s.file_bytes >> 20
    );
    let tmp = match std::env::var_os("OCIRENDER_BENCH_DIR") {
        Some(dir) => tempfile::tempdir_in(dir),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let mut g = c.benchmark_group("sinks");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(15))
        .throughput(Throughput::Bytes(s.file_bytes));

    g.bench_function("tar/writer", |b| {
        b.iter(|| feed(Box::new(TarSink::to_writer(Box::new(io::sink()))), &s))
    });

    let archive = tmp.path().join("out.tar");
    g.bench_function("tar/file", |b| {
        b.iter(|| feed(Box::new(TarSink::create(&archive).expect("create")), &s))
    });

    let mut n = 0;
    let mut previous: Option<PathBuf> = None;
    g.bench_function("dir", |b| {
        b.iter_batched(
            || {
                if let Some(p) = previous.take() {
                    remove(&p);
                }
                n += 1;
                let out = tmp.path().join(format!("out{n}"));
                previous = Some(out.clone());
                out
            },
            |out| {
                let sink = DirSink::create(&out, Ownership::Auto, None).expect("create");
                feed(Box::new(sink), &s)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn remove(p: &Path) {
    std::fs::remove_dir_all(p).expect("remove the previous output");
}

criterion_group!(benches, bench);
criterion_main!(benches);
