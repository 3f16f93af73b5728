//! Property: any valid entry stream becomes an image that backhand and unsquashfs read back as
//! exactly the model's tree, and that passes every structural rule.
//!
//! Streams are generated as raw operations and then made valid the way the merge guarantees
//! (a hard link only to an existing non-directory, no entry below a non-directory); paths are
//! drawn from a small alphabet so that replacements, implicit parents, shared content (dedup)
//! and block-boundary sizes happen often. Failing cases shrink to a short operation list.

use std::collections::BTreeMap;
use std::io::Cursor;

use crate::support::dump::DumpOptions;
use crate::support::oracle;
use ocirender::squashfs::SquashfsSink;
use ocirender::{
    BlockSize, Entry, EntryKind, EntryPath, Jobs, Metadata, Sink, SquashfsOptions, Xattr,
};
use proptest::prelude::*;

/// One raw operation; [`realize`] turns a list of them into a valid entry stream.
#[derive(Clone, Debug)]
enum Op {
    File { path: Vec<u8>, len: usize, seed: u8 },
    Dir { path: Vec<u8> },
    Symlink { path: Vec<u8>, target: u8 },
    Fifo { path: Vec<u8> },
    Link { path: Vec<u8>, target: Vec<u8> },
}

const NAMES: [&[u8]; 6] = [b"a", b"b", b"cc", b"d-long-name", b"\xc3\xa9", b"\xff"];

fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(0..NAMES.len(), 1..=3).prop_map(|idx| {
        let parts: Vec<&[u8]> = idx.iter().map(|&i| NAMES[i]).collect();
        parts.join(&b'/')
    })
}

fn len_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        Just(0usize),
        1usize..100,
        4090usize..4100,
        8190usize..8200,
        10_000usize..20_000,
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (path_strategy(), len_strategy(), 0u8..4).prop_map(|(path, len, seed)| Op::File { path, len, seed }),
        2 => path_strategy().prop_map(|path| Op::Dir { path }),
        1 => (path_strategy(), any::<u8>()).prop_map(|(path, target)| Op::Symlink { path, target }),
        1 => path_strategy().prop_map(|path| Op::Fifo { path }),
        2 => (path_strategy(), path_strategy()).prop_map(|(path, target)| Op::Link { path, target }),
    ]
}

/// Content: the seed picks one of a few patterns, so equal (seed, len) pairs repeat content.
fn content(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| match seed {
            0 => 0,
            1 => (i % 251) as u8,
            2 => b"text "[i % 5],
            _ => ((i * 7919) >> 3) as u8 ^ seed,
        })
        .collect()
}

/// Turns raw operations into a stream the merge could deliver.
fn realize(ops: &[Op]) -> Vec<(Entry, Vec<u8>)> {
    // path → is a directory (the model of what the sink holds so far)
    let mut state: BTreeMap<Vec<u8>, bool> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, op) in ops.iter().enumerate() {
        let p = match op {
            Op::File { path, .. }
            | Op::Dir { path }
            | Op::Symlink { path, .. }
            | Op::Fifo { path }
            | Op::Link { path, .. } => path.clone(),
        };
        let ep = EntryPath::new(&p).unwrap();
        // No entry below a non-directory.
        if ep
            .ancestors()
            .any(|a| state.get(a.as_bytes()) == Some(&false))
        {
            continue;
        }
        let meta = Metadata {
            mode: 0o640 + (k as u32 % 3),
            uid: (k as u32 % 3) * 1000,
            gid: 7,
            mtime: 1_600_000_000 + k as i64,
            xattrs: if k % 4 == 0 {
                // trusted.* is allowed on every file type (user.* is not on symlinks and fifos).
                vec![Xattr {
                    name: b"trusted.k".to_vec(),
                    value: vec![k as u8 % 2],
                }]
            } else {
                Vec::new()
            },
            ..Metadata::default()
        };
        let (kind, data) = match op {
            Op::File { len, seed, .. } => (
                EntryKind::File {
                    size: *len as u64,
                    sparse: None,
                },
                content(*len, *seed),
            ),
            Op::Dir { .. } => (EntryKind::Dir, Vec::new()),
            Op::Symlink { target, .. } => (
                EntryKind::Symlink {
                    target: format!("t{target}").into_bytes(),
                },
                Vec::new(),
            ),
            Op::Fifo { .. } => (EntryKind::Fifo, Vec::new()),
            Op::Link { target, .. } => {
                if state.get(target) != Some(&false) || *target == p {
                    continue;
                }
                (
                    EntryKind::Hardlink {
                        target: EntryPath::new(target).unwrap(),
                    },
                    Vec::new(),
                )
            }
        };
        for a in ep.ancestors() {
            state.entry(a.as_bytes().to_vec()).or_insert(true);
        }
        let is_dir = kind.is_dir();
        if !is_dir || state.get(&p) != Some(&true) {
            let below: Vec<Vec<u8>> = state
                .keys()
                .filter(|k| k.len() > p.len() && k.starts_with(&p) && k[p.len()] == b'/')
                .cloned()
                .collect();
            if !is_dir {
                for b in below {
                    state.remove(&b);
                }
            }
        }
        state.insert(p, is_dir);
        out.push((
            Entry {
                path: ep,
                kind,
                meta,
            },
            data,
        ));
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_trees_read_back_exactly(
        ops in prop::collection::vec(op_strategy(), 1..40),
        fragments in any::<bool>(),
        dedup in any::<bool>(),
        comp in prop::sample::select(vec!["gzip", "zstd", "lz4:9", "none", "xz:0"]),
        jobs in 1usize..4,
    ) {
        let inputs = realize(&ops);
        let opts = SquashfsOptions {
            block_size: BlockSize::new(4096).unwrap(),
            fragments,
            dedup,
            compression: comp.parse().unwrap(),
            ..SquashfsOptions::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("p.sqfs");
        let mut sink: Box<dyn Sink> =
            Box::new(SquashfsSink::create(&img, &opts, Jobs::new(jobs).unwrap(), None).unwrap());
        for (e, d) in &inputs {
            sink.entry(e, &mut Cursor::new(d)).unwrap();
        }
        sink.finish().unwrap();
        let expected = oracle::expected_tree(&inputs);
        oracle::check_structure(&img);
        let blind = DumpOptions { xattrs: false, ..DumpOptions::default() };
        prop_assert_eq!(
            oracle::backhand(&img).dump(blind),
            oracle::without_links_and_xattrs(&expected).dump(blind)
        );
        prop_assert_eq!(oracle::unsquashfs(&img).dump(DumpOptions::default()), expected.dump(DumpOptions::default()));
    }
}
