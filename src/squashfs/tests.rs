//! Sink-level unit tests: memory per entry and the behaviour of `SquashfsSink` as a `Sink`.
//! Image contents are checked against independent readers in `tests/squashfs.rs`.

use std::io::Cursor;

use super::*;
use crate::entry::Metadata;
use crate::path::EntryPath;

fn file_entry(path: &str, size: u64) -> Entry {
    Entry {
        path: EntryPath::new(path.as_bytes()).unwrap(),
        kind: EntryKind::File { size, sparse: None },
        meta: Metadata {
            mode: 0o644,
            ..Metadata::default()
        },
    }
}

/// The per-path memory the sink holds must stay small: it is all that grows with the number
/// of entries (file data is never held). Measured on 100,000 small files in 100 directories.
#[test]
fn metadata_costs_about_100_bytes_per_entry_beyond_the_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = SquashfsSink::create(
        &dir.path().join("m.sqfs"),
        &SquashfsOptions::default(),
        Jobs::new(1).unwrap(),
        None,
    )
    .unwrap();
    let n = 100_000u64;
    for i in 0..n {
        let e = file_entry(&format!("d{:02}/file-{i:07}", i % 100), 8);
        sink.entry(&e, &mut Cursor::new(i.to_le_bytes())).unwrap();
    }
    let m = sink.memory_use();
    let per_entry = (m.total - m.names) as f64 / n as f64;
    assert!(
        per_entry < 130.0,
        "{per_entry:.1} bytes per entry beyond names"
    );
    assert!(m.names as u64 >= n * 12, "names are counted");
}

#[test]
fn finish_writes_a_padded_image_and_reports_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.sqfs");
    let mut sink: Box<dyn Sink> = Box::new(
        SquashfsSink::create(
            &path,
            &SquashfsOptions::default(),
            Jobs::new(2).unwrap(),
            None,
        )
        .unwrap(),
    );
    sink.entry(&file_entry("a/b", 5), &mut Cursor::new(b"hello"))
        .unwrap();
    assert!(!path.exists(), "nothing at the target before finish");
    let summary = sink.finish().unwrap();
    assert_eq!(summary.entries, 3, "root, a, a/b");
    assert_eq!(summary.file_bytes, 5);
    assert_eq!(summary.output_bytes % 4096, 0);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len() as u64, summary.output_bytes);
    let sb = format::Superblock::parse(&bytes).unwrap();
    assert_eq!(sb.magic, format::MAGIC);
    assert!(sb.bytes_used <= summary.output_bytes && summary.output_bytes - sb.bytes_used < 4096);
}

#[test]
fn progress_reports_warnings_and_the_backlog() {
    use std::sync::{Arc, Mutex};
    let events: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let sink_events = Arc::clone(&events);
    let progress: ProgressFn = Arc::new(move |p: &Progress| {
        sink_events.lock().unwrap().push(p.clone());
    });
    let dir = tempfile::tempdir().unwrap();
    let opts = SquashfsOptions {
        block_size: crate::options::BlockSize::new(4096).unwrap(),
        ..SquashfsOptions::default()
    };
    let mut sink = SquashfsSink::create(
        &dir.path().join("p.sqfs"),
        &opts,
        Jobs::new(2).unwrap(),
        Some(progress),
    )
    .unwrap();
    let mut acl = file_entry("acl", 1);
    acl.meta.xattrs = vec![crate::entry::Xattr {
        name: b"system.posix_acl_access".to_vec(),
        value: vec![2, 0, 0, 0],
    }];
    sink.entry(&acl, &mut Cursor::new(b"x")).unwrap();
    let data = vec![1u8; 2 << 20];
    sink.entry(
        &file_entry("big", data.len() as u64),
        &mut Cursor::new(&data),
    )
    .unwrap();
    let summary = Box::new(sink).finish().unwrap();
    let events = events.lock().unwrap();
    let warnings: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Warning(w) => Some(w.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings, summary.warnings);
    assert_eq!(warnings.len(), 1);
    let backlog = events
        .iter()
        .filter(|e| matches!(e, Progress::Backlog { blocks } if *blocks <= 8))
        .count();
    assert!(
        backlog >= 1,
        "512 blocks report the backlog (at most 4 × jobs)"
    );
}
