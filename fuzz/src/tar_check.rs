//! The `tar_entry` target's check (see `fuzz_targets/tar_entry.rs`).

use ocirender::{Entry, EntryKind, Error};

/// Most bytes of one entry's content read (a sparse header may declare terabytes of holes).
pub const MAX_READ: u64 = 1 << 20;
/// Most content bytes read from one input.
pub const MAX_READ_TOTAL: u64 = 16 << 20;

/// Reads every entry of `tar` with all its data (up to the caps) and checks what the reader
/// promises; panics on a broken promise.
pub fn check(tar: &[u8]) {
    let mut input = tar;
    let mut budget = MAX_READ_TOTAL;
    let _ = ocirender::layer::tar::for_each_entry(&mut input, &mut |e, data| {
        check_entry(&e);
        let mut buf = vec![0u8; 64 << 10];
        let mut got = 0u64;
        let limit = MAX_READ.min(budget);
        let mut nonzero_outside = false;
        loop {
            let want = usize::try_from(limit - got).map_or(buf.len(), |w| w.min(buf.len()));
            if want == 0 {
                break;
            }
            let n = match data.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) => return Err(Error::Tar { source: e }),
            };
            if n == 0 {
                // The reader says the content ended: exactly `size` bytes for a file, none
                // for anything else.
                let size = match e.kind {
                    EntryKind::File { size, .. } => size,
                    _ => 0,
                };
                assert_eq!(
                    got, size,
                    "{:?}: content length differs from its size",
                    e.path
                );
                break;
            }
            if let EntryKind::File {
                sparse: Some(map), ..
            } = &e.kind
            {
                for (i, &b) in buf[..n].iter().enumerate() {
                    let at = got + i as u64;
                    if b != 0 && !map.iter().any(|&(o, l)| at >= o && at - o < l) {
                        nonzero_outside = true;
                    }
                }
            }
            got += n as u64;
        }
        budget -= got;
        assert!(
            !nonzero_outside,
            "{:?}: non-zero bytes outside the sparse map's data regions",
            e.path
        );
        Ok(())
    });
}

/// What every entry the reader returns must satisfy (the merge → sink contract).
fn check_entry(e: &Entry) {
    let p = e.path.as_bytes();
    assert!(
        !p.starts_with(b"/") && !p.ends_with(b"/") && !p.contains(&0),
        "{:?}: path not normalized",
        e.path
    );
    for c in p.split(|&b| b == b'/').filter(|_| !p.is_empty()) {
        assert!(
            !c.is_empty() && c != b"." && c != b"..",
            "{:?}: bad component",
            e.path
        );
    }
    assert!(e.meta.mode <= 0o7777, "{:?}: mode has type bits", e.path);
    assert!(
        e.meta.mtime_nsec < 1_000_000_000,
        "{:?}: nanoseconds",
        e.path
    );
    assert!(
        e.meta.xattrs.windows(2).all(|w| w[0].name < w[1].name),
        "{:?}: xattrs not sorted and unique",
        e.path
    );
    if let EntryKind::File {
        size,
        sparse: Some(map),
    } = &e.kind
    {
        let mut end = 0u64;
        for &(o, l) in map {
            assert!(o >= end, "{:?}: sparse regions overlap", e.path);
            end = o.checked_add(l).expect("region end fits u64");
            assert!(end <= *size, "{:?}: sparse region past the end", e.path);
        }
    }
}
