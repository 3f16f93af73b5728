//! Streaming: writing a 2 GiB file must not grow memory with the file. The block pipeline
//! holds at most about 4 × jobs blocks; this test checks the peak RSS of the process (its own
//! test binary, so no other test's memory counts) stays far below the file size.

use std::io::{self, Read};

use ocirender::squashfs::SquashfsSink;
use ocirender::{Entry, EntryKind, EntryPath, Jobs, Metadata, Sink, SquashfsOptions};

/// Non-zero, cheaply generated, compressible data: a 251-byte cycle with the offset stamped
/// every 4 KiB, so no two blocks are equal.
struct Pattern {
    pos: u64,
    size: u64,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = (buf.len() as u64).min(self.size - self.pos).min(4096) as usize;
        let table: Vec<u8> = (0..4096 + 251).map(|i| (i % 251) as u8 | 1).collect();
        let start = (self.pos % 251) as usize;
        buf[..n].copy_from_slice(&table[start..start + n]);
        let stamp = self.pos.to_le_bytes();
        let k = n.min(8);
        buf[..k].copy_from_slice(&stamp[..k]);
        self.pos += n as u64;
        Ok(n)
    }
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn a_2_gib_file_streams_in_flat_memory() {
    let size = 2u64 << 30;
    let dir = tempfile::tempdir().unwrap();
    let opts = SquashfsOptions {
        compression: "zstd:1".parse().unwrap(),
        ..SquashfsOptions::default()
    };
    let before = peak_rss_kib();
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &dir.path().join("big.sqfs"),
            &opts,
            Jobs::new(2).unwrap(),
            None,
        )
        .unwrap(),
    );
    let e = Entry {
        path: EntryPath::new(b"big").unwrap(),
        kind: EntryKind::File { size, sparse: None },
        meta: Metadata {
            mode: 0o644,
            ..Metadata::default()
        },
    };
    sink.entry(&e, &mut Pattern { pos: 0, size }).unwrap();
    let summary = sink.finish().unwrap();
    let growth_mib = (peak_rss_kib() - before) / 1024;
    eprintln!(
        "peak RSS growth {growth_mib} MiB for a {} MiB image",
        summary.output_bytes >> 20
    );
    assert!(
        growth_mib < 64,
        "memory grew by {growth_mib} MiB while streaming 2 GiB"
    );
}
