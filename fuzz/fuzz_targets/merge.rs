//! Fuzz target `merge`: layer stacks through the overlay merge into a sink (tar, directory or
//! squashfs), the output read back and compared with the reference overlay model of the tests
//! (tests/support/model.rs).
//!
//! Input (see `ocirender_fuzz::merge_input`): the first byte picks raw mode (1–8 layers of
//! arbitrary bytes, each merged as given and again gzip-compressed through the layer decoder)
//! or structured mode (1–6 layers from a DSL of overlay operations over a small name space).
//!
//! Each input goes through one sink, chosen by its bytes (raw inputs: the tar sink too, for
//! the gzip check); `merge_check::check_every_output` runs all three, e.g. on a reproducer.
//!
//! Invariants under test:
//! - Errors are fine; panics are bugs. No input makes the tar reader, the decoder, the merge or
//!   a sink panic, hang, or allocate in proportion to a number in the input.
//! - Where the model accepts the stack, every sink's output equals the model's tree (as far as
//!   the format holds it: squashfs clamps times to u32 and is compared on xattr presence; the
//!   directory keeps the xattrs the kernel takes).
//! - Where the model refuses the stack, every sink returns `Err`; where it accepts, none does
//!   (since issue 12 that includes names through symlinks and a layer replacing a directory
//!   after writing entries beneath it: both convert as extraction leaves them). A format may
//!   refuse what
//!   it cannot hold (squashfs: `Unrepresentable` for an empty or over-long symlink target or a
//!   wide device number; directory: the OS refusing an empty or over-long symlink target) only
//!   when the input has such an entry.
//! - Raw mode: gzip-compressing the layers does not change a byte of the tar output.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::merge_check::check;
use ocirender_fuzz::merge_input::MergeInput;

fuzz_target!(|input: MergeInput| check(&input));
