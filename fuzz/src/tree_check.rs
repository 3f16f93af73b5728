//! The `squashfs_roundtrip` target's check (see `fuzz_targets/squashfs_roundtrip.rs`).

use ocirender::squashfs::SquashfsSink;
use ocirender::{Error, Jobs, Sink};

use crate::dump::DumpOptions;
use crate::outputs::diff;
use crate::readback;
use crate::tree_input::TreeInput;

/// The most file content one input may make (the DSL packs 20 KB into four bytes).
pub const MAX_CONTENT: usize = 2 << 20;

/// Writes the tree, reads it back, compares; panics on any broken invariant.
pub fn check(input: &TreeInput) {
    let plan = input.plan();
    if plan.entries.iter().map(|(_, d)| d.len()).sum::<usize>() > MAX_CONTENT {
        return;
    }
    let scratch = crate::scratch();
    let img = scratch.path().join("out.sqfs");
    let result = write(input, &plan.entries, &img, 1);
    match (plan.unrepresentable, result) {
        (false, Ok(())) => {
            let expected = readback::as_squashfs(&plan.expected).dump(DumpOptions::default());
            let actual = readback::squashfs_tree(&img).dump(DumpOptions::default());
            assert!(
                expected == actual,
                "the image differs from the tree (- tree, + image):\n{}",
                diff(&expected, &actual)
            );
            if input.twice() {
                let again = scratch.path().join("again.sqfs");
                write(input, &plan.entries, &again, 2).expect("the same tree writes again");
                let (a, b) = (std::fs::read(&img), std::fs::read(&again));
                assert!(
                    a.expect("read") == b.expect("read"),
                    "two jobs write other bytes than one"
                );
            }
        }
        (true, Err(e)) if matches!(e.root_cause(), Error::Unrepresentable { .. }) => {
            assert!(!img.exists(), "a refused image was left behind");
        }
        (true, Ok(())) => panic!("the writer stored an entry squashfs cannot hold"),
        (_, Err(e)) => panic!("the writer failed: {e}"),
    }
}

fn write(
    input: &TreeInput,
    entries: &[(ocirender::Entry, Vec<u8>)],
    img: &std::path::Path,
    jobs: usize,
) -> ocirender::Result<()> {
    let mut sink = SquashfsSink::create(img, &input.options(), Jobs::new(jobs)?, None)?;
    for (e, data) in entries {
        sink.entry(e, &mut data.as_slice())?;
    }
    Box::new(sink).finish().map(|_| ())
}
