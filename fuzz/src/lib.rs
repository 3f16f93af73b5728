//! Shared code of the fuzz targets: the structured inputs (each decodes from fuzzer bytes
//! through `arbitrary`, encodes back to bytes for the seed corpora, and prints as builder code
//! that can be pasted into `tests/regression.rs`; `squashfs_reader`'s input is an image's raw
//! bytes and prints as a test for `tests/squashfs_hostile.rs`), and the readers that turn
//! every output back into the canonical [`dump::Tree`] of the tests.
//!
//! The tests' own support code is included as it is (`#[path]`), not copied: the image builder
//! and its tar writer ([`builder`]), the canonical dump ([`dump`]), the reference overlay model
//! ([`model`]) and the squashfs oracles ([`oracle`]: backhand and the in-process structure
//! checker).

#[allow(clippy::all)]
#[path = "../../tests/support/builder.rs"]
pub mod builder;
#[allow(clippy::all)]
#[path = "../../tests/support/dump.rs"]
pub mod dump;
#[allow(clippy::all)]
#[path = "../../tests/support/model.rs"]
pub mod model;
#[allow(clippy::all)]
#[path = "../../tests/support/oracle.rs"]
pub mod oracle;
#[allow(clippy::all)]
#[path = "../../tests/support/outputs.rs"]
pub mod outputs;

pub mod codec;
pub mod layout_check;
pub mod layout_input;
pub mod merge_check;
pub mod merge_input;
pub mod readback;
pub mod reader_check;
pub mod reader_input;
pub mod run;
pub mod seeds;
pub mod tar_check;
pub mod tree_check;
pub mod tree_input;

/// A scratch directory on a RAM file system when there is one (fuzz iterations write outputs;
/// `/dev/shm` keeps that off the disk and supports xattrs, devices and any mtime).
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::Builder::new()
            .prefix("ocirender-fuzz")
            .tempdir_in(shm)
        {
            return d;
        }
    }
    tempfile::Builder::new()
        .prefix("ocirender-fuzz")
        .tempdir()
        .expect("a scratch directory")
}
