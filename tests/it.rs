//! The integration tests, as one test binary: the shared support code compiles once and the
//! library links once, instead of once per file. Each file is a module named as before, so
//! `cargo test --test it real_image::` runs what `--test real_image` used to.
//!
//! `squashfs_memory` stays its own binary: it measures the peak RSS of its process, which no
//! other test may share.

#[macro_use]
mod support;

mod bad_input;
mod cli;
mod determinism;
mod dump_selftest;
mod interrupt;
mod kernel;
mod overlay;
mod packer;
mod progress;
mod properties;
mod real_image;
#[cfg(feature = "registry")]
mod registry;
mod regression;
mod reuse;
mod runtime;
mod sinks;
mod sources;
mod spill;
mod squashfs;
mod squashfs_hostile;
mod squashfs_props;
mod squashfs_reader;
mod support_selftest;
mod tar_prefix;
mod verify;
mod verity;
