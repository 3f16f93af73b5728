//! Fuzz target `squashfs_roundtrip`: an arbitrary file tree (see
//! `ocirender_fuzz::tree_input`) as an entry stream into `ocirender::squashfs::SquashfsSink`
//! with arbitrary options (compressor, block size, fragments, dedup, export table), then read
//! back with backhand and the tests' in-process structure checker.
//!
//! Invariants under test:
//! - Errors are fine only where the format cannot hold an entry (an empty or over-long symlink
//!   target, a wide device number: `Unrepresentable`, and then no file is left); panics are
//!   bugs.
//! - The image passes every structural rule the kernel checks (tests/support/oracle.rs
//!   `check_structure`: table placement, dense inode numbers, directory headers and sort
//!   order, nlink, extended inodes only when needed, fragment and block rules).
//! - Read back, it equals the input: types, modes, owners, mtimes (clamped to u32), contents,
//!   symlink targets, device numbers, hard-link groups, and which inodes carry xattrs
//!   (backhand does not expose xattr values).
//! - With bit 3 of the flags, writing with two jobs gives the same bytes as with one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ocirender_fuzz::tree_input::TreeInput;

fuzz_target!(|input: TreeInput| ocirender_fuzz::tree_check::check(&input));
