//! Fuzz target `squashfs_reader`: squashfs images we did not write. Each input is the bytes of
//! an image (see `ocirender_fuzz::reader_input`): the seeds are valid images from ocirender's
//! own writer and from mksquashfs (`gen_corpus`), every compressor, with and without
//! fragments, export tables, xattrs, compressor options and an appended dm-verity tree; the
//! fuzzer flips, overwrites, copies, splices and cuts their bytes. Each image is read by every
//! reader of the library (`ocirender_fuzz::reader_check`): `SquashfsReader::open`, `walk` of
//! the whole tree with `read_file` of every regular file into `io::sink`, `lookup` and `find`
//! of the paths found and of missing names, `walk_dirs` (what `ls -R` lists),
//! `squashfs::debug`, `verify` against an empty directory, and `verity::check`.
//!
//! Invariants under test:
//! - Errors are fine; panics, hangs and unbounded memory are bugs. No image makes a reader
//!   panic (overflow checks on), loop (a directory that is its own ancestor, a chain of
//!   metadata blocks that comes back), run for longer than `-timeout`, or allocate in
//!   proportion to a number in the image (a count, a size, an offset) rather than to the
//!   image's length. The one cost allowed to follow a number is hashing a sparse file's
//!   claimed zeros in `verify`, which is skipped above `reader_check::VERIFY_BUDGET`.
//! - The walk hands out each path once; `read_file` that succeeds returns the file's size.
//! - The readers agree: when the walk and every `read_file` succeed, `verify` succeeds and
//!   counts the same entries, and `walk_dirs` succeeds and lists the same directories and
//!   entries; a hash tree that reads once reads again with its own root hash.
//!
//! Findings are kept as tests in tests/squashfs_hostile.rs (`cargo fuzz fmt` prints one).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::reader_input::SquashfsImage;

fuzz_target!(|input: SquashfsImage| ocirender_fuzz::reader_check::check(&input.0));
