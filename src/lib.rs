//! Convert OCI container images into squashfs images, tar archives or directories in one
//! streaming pass, with a pure-Rust parallel squashfs writer.
//!
//! ```text
//! image source ──► layer blobs ──► decode ──► tar entries ──► overlay merge ──► Entry stream ──► Sink
//! (OCI layout,      (newest first,  (gzip,      (PAX/GNU       (whiteouts,        (normalized     ├─ squashfs
//!  docker save,      any arrival     zstd, xz,   long names,    opaque dirs,       path, kind,     ├─ tar
//!  StreamingPacker)  order)          bzip2)      sparse)        hard links)        metadata)       └─ directory
//! ```
//!
//! Every source feeds the same merge and the merge feeds every [`Sink`] the same entries, so the
//! three outputs of one image hold the same tree. File data streams through once; what is held
//! in memory is per path (the overlay state, the squashfs directory tree), never per byte.
//!
//! ```no_run
//! use ocirender::{convert, ConvertOptions, Image, ImageLocation, ImageSpec, Selector};
//!
//! let image = Image::open(&ImageLocation::parse("./my-image:latest"), &Selector::default())?;
//! let summary = convert(
//!     &image,
//!     &ImageSpec::Squashfs { path: "rootfs.sqfs".into() },
//!     &ConvertOptions::default(),
//! )?;
//! println!("{} entries", summary.entries);
//! # Ok::<(), ocirender::Error>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cancel;
mod convert;
mod digest;
mod entry;
mod error;
pub mod image;
pub mod layer;
mod merge;
mod options;
#[cfg(feature = "async")]
mod packer;
mod pager;
mod path;
pub mod progress;
#[cfg(feature = "registry")]
pub mod registry;
#[cfg(feature = "async")]
mod replay;
pub mod sink;
pub mod squashfs;
mod tar_reader;
pub mod verify;
pub mod verity;

pub use cancel::CancelToken;
pub use convert::{convert, open_sink};
pub use digest::{Algorithm as DigestAlgorithm, Digest, InvalidDigest};
pub use entry::{Entry, EntryKind, Metadata, Xattr};
pub use error::{BoxError, Error, Report, Result};
pub use image::{Image, ImageLocation, LayerDescriptor, Platform, Selector};
pub use layer::DigestReader;
pub use merge::{Merger, Resolution, Resolver};
pub use options::{
    Algorithm, BlockSize, Compression, ConvertOptions, Format, ImageSpec, Jobs, MemoryLimit,
    Ownership, ProgressFn, ReadAhead, Reuse, SquashfsOptions, XzFilter,
};
#[cfg(feature = "async")]
pub use packer::{convert_streaming, LayerBlob, LayerMeta, StreamingPacker};
pub use path::{EntryPath, NAME_MAX, PATH_MAX, SHOWN_NAME_MAX};
pub use progress::Progress;
pub use sink::{Sink, Spilled, Summary, Warning, WarningKind};
pub use squashfs::reuse::{NotReused, ReuseReport};
pub use verity::{VerityHash, VerityInfo, VerityOptions};
