//! Image sources: find the manifest and the layer blobs of an image on disk.
//!
//! Three layouts are read: an OCI image layout directory (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`, nested indexes), what `docker save` writes (`manifest.json`, as a
//! directory or still packed in its tar file), and a bare image manifest stored as
//! `manifest.json` beside its blobs. [`Image::open`] picks the manifest (by `DIR:REF`, by
//! platform, or the only one) and returns the layers oldest-first with everything needed to open
//! and verify each blob; nothing is decompressed here.

mod docker_save;
mod oci_layout;
mod reference;

use std::path::PathBuf;

use crate::digest::Digest;
use crate::error::Result;

pub use reference::{ImageLocation, Platform};

/// Which manifest to use when the image holds several.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selector {
    /// The `org.opencontainers.image.ref.name` (or docker `RepoTags` entry) to pick.
    pub reference: Option<String>,
    /// The platform to pick from a multi-platform index. By default, the only manifest, or the
    /// one matching the host when there are several.
    pub platform: Option<Platform>,
}

/// The on-disk layout an image was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// An OCI image layout directory.
    Oci,
    /// A `docker save` directory.
    DockerSave,
    /// A `docker save` tar file.
    DockerSaveTar,
    /// A bare `manifest.json` beside its blobs.
    BareManifest,
}

/// An opened image: the chosen manifest's layers, oldest first.
#[derive(Clone, Debug)]
pub struct Image {
    /// Where the image was read from.
    pub path: PathBuf,
    /// Which layout it is.
    pub layout: Layout,
    /// Digest of the chosen manifest, when it is a blob.
    pub manifest_digest: Option<Digest>,
    /// Summary of the image configuration, when the image has one.
    pub config: Option<ConfigSummary>,
    /// The layers, index 0 = oldest (base).
    pub layers: Vec<LayerDescriptor>,
}

/// One layer blob and how to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerDescriptor {
    /// Position in the manifest, 0 = oldest.
    pub index: usize,
    /// Media type as written in the manifest (`application/vnd.oci.image.layer.v1.tar+gzip`, …),
    /// empty when the layout has none (legacy docker save).
    pub media_type: String,
    /// The digest the bytes are checked against (see [`LayerDescriptor::digest_of`]).
    pub digest: Digest,
    /// What [`LayerDescriptor::digest`] is the digest of.
    pub digest_of: DigestOf,
    /// The blob's size when the manifest states it.
    pub size: Option<u64>,
    /// Where the blob's bytes are.
    pub location: BlobLocation,
}

/// What a layer's digest covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestOf {
    /// The blob as stored (OCI descriptors).
    Blob,
    /// The uncompressed tar (a legacy docker-save `diff_id`).
    Uncompressed,
}

/// Where a blob's bytes are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobLocation {
    /// A whole file.
    File(PathBuf),
    /// A member of a tar file: `len` bytes at `offset`.
    TarMember {
        /// The tar file.
        archive: PathBuf,
        /// Byte offset of the member's data.
        offset: u64,
        /// Length of the member's data.
        len: u64,
    },
}

/// The parts of an image configuration people look at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSummary {
    /// Operating system (`linux`).
    pub os: Option<String>,
    /// CPU architecture (`amd64`).
    pub architecture: Option<String>,
    /// Architecture variant (`v8`).
    pub variant: Option<String>,
    /// Creation time as written.
    pub created: Option<String>,
    /// Default user.
    pub user: Option<String>,
    /// Environment.
    pub env: Vec<String>,
    /// Entrypoint.
    pub entrypoint: Vec<String>,
    /// Default command.
    pub cmd: Vec<String>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Uncompressed layer digests (`rootfs.diff_ids`).
    pub diff_ids: Vec<String>,
}

/// One manifest an image offers, for listings and error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestInfo {
    /// The manifest's digest (absent for docker-save entries).
    pub digest: Option<Digest>,
    /// Its media type.
    pub media_type: String,
    /// Its `org.opencontainers.image.ref.name` or docker tags.
    pub refs: Vec<String>,
    /// Its platform, when the index says.
    pub platform: Option<Platform>,
    /// Its size in bytes, when known.
    pub size: Option<u64>,
}

impl Image {
    /// Opens the image at `location` and picks one manifest.
    ///
    /// `location.reference` (from `DIR:REF`) takes precedence over `selector.reference`.
    pub fn open(location: &ImageLocation, selector: &Selector) -> Result<Image> {
        todo!("helper A")
    }

    /// Sum of the layers' sizes where known.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().filter_map(|l| l.size).sum()
    }
}

/// Lists every manifest the image at `path` offers (for `ocirender inspect`).
pub fn list_manifests(path: &std::path::Path) -> Result<Vec<ManifestInfo>> {
    todo!("helper A")
}
