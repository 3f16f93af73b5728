//! Image sources: find the manifest and the layer blobs of an image on disk.
//!
//! ```text
//! path ──► Store (directory, or tar file indexed by member) ──► which layout?
//!   manifest.json is an array ──► docker save (directory or tar)      ─┐
//!   index.json (+ oci-layout) ──► OCI layout (directory or oci-archive) ├─► select ─► manifest
//!   manifest.json is an object ─► bare manifest beside its blobs       ─┘      │
//!                                   Image { layers oldest-first, config, … } ◄─┘
//! ```
//!
//! Three layouts are read: an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`, nested indexes; a directory, or a tar of one as `skopeo` writes an
//! `oci-archive`), what `docker save` writes (`manifest.json`, as a directory or still packed in
//! its tar file; Docker ≥ 25 adds an OCI layout beside it, and `manifest.json` is preferred for
//! its `RepoTags`), and a bare image manifest stored as `manifest.json` beside its blobs.
//! [`Image::open`] picks the manifest (by `DIR:REF`, by platform, or the only one) and returns
//! the layers oldest-first with everything needed to open and verify each blob; nothing is
//! decompressed here.
//!
//! Every document is untrusted: JSON is read under a 16 MiB cap, digests are validated before
//! they become paths, documents read from blobs are digest-checked, and errors name the
//! document (`index.json`, `blob sha256:…`).

mod docker_save;
pub(crate) mod oci_layout;
mod reference;
pub(crate) mod select;
pub(crate) mod spec;
mod store;

use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::layer::decompress::Codec;
use crate::path::EntryPath;

pub use reference::{ImageLocation, Platform};

use spec::{ConfigJson, Descriptor, ManifestJson};
use store::{Containment, Store};

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
    /// A tar file holding an OCI image layout (`oci-archive`).
    OciArchive,
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
        let store = Store::open(&location.path)?;
        let reference = location
            .reference
            .as_deref()
            .or(selector.reference.as_deref());
        let platform = selector.platform.as_ref();
        let image = |layout, manifest_digest, config, layers| Image {
            path: location.path.clone(),
            layout,
            manifest_digest,
            config,
            layers,
        };
        Ok(match detect(&store)? {
            Detected::DockerSave(bytes) => {
                let opened = docker_save::open(&store, &bytes, reference, platform)?;
                let layout = if store.is_archive() {
                    Layout::DockerSaveTar
                } else {
                    Layout::DockerSave
                };
                image(layout, None, opened.config, opened.layers)
            }
            Detected::Oci => {
                let opened = oci_layout::open(&store, reference, platform)?;
                let layout = if store.is_archive() {
                    Layout::OciArchive
                } else {
                    Layout::Oci
                };
                image(
                    layout,
                    Some(opened.manifest_digest),
                    opened.config,
                    opened.layers,
                )
            }
            Detected::Bare(bytes) => {
                // A bare manifest has no names to match.
                if let Some(reference) = reference {
                    return Err(Error::RefNotFound {
                        reference: reference.to_owned(),
                        available: Vec::new(),
                    });
                }
                let opened = docker_save::open_bare(&store, &bytes)?;
                image(Layout::BareManifest, None, opened.config, opened.layers)
            }
        })
    }

    /// Sum of the layers' sizes where known.
    pub fn compressed_size(&self) -> u64 {
        self.layers.iter().filter_map(|l| l.size).sum()
    }
}

/// Lists every manifest the image at `path` offers (for `ocirender inspect`).
pub fn list_manifests(path: &Path) -> Result<Vec<ManifestInfo>> {
    let store = Store::open(path)?;
    match detect(&store)? {
        Detected::DockerSave(bytes) => docker_save::list(&store, &bytes),
        Detected::Oci => oci_layout::list(&store),
        Detected::Bare(bytes) => docker_save::list_bare(&store, &bytes),
    }
}

impl ConfigSummary {
    /// The platform the configuration names, when it names both OS and architecture.
    pub fn platform(&self) -> Option<Platform> {
        match (&self.os, &self.architecture) {
            (Some(os), Some(architecture)) if !os.is_empty() && !architecture.is_empty() => {
                Some(Platform {
                    os: os.clone(),
                    architecture: architecture.clone(),
                    variant: self.variant.clone().filter(|v| !v.is_empty()),
                })
            }
            _ => None,
        }
    }
}

/// The layout found in a store, with the `manifest.json` bytes already read.
enum Detected {
    DockerSave(Vec<u8>),
    Oci,
    Bare(Vec<u8>),
}

fn detect(store: &Store) -> Result<Detected> {
    let manifest_json = EntryPath::new(b"manifest.json")?;
    if let Some(bytes) = store.read_json(&manifest_json, Containment::Required, "manifest.json")? {
        return match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'[') => Ok(Detected::DockerSave(bytes)),
            Some(b'{') if store.exists("index.json") => Ok(Detected::Oci),
            Some(b'{') => Ok(Detected::Bare(bytes)),
            _ => Err(spec::parse::<serde_json::Value>(&bytes, "manifest.json")
                .err()
                .unwrap_or(Error::InvalidDocument {
                    what: "manifest.json".to_owned(),
                    problem: "is neither a docker-save array nor an image manifest",
                })),
        };
    }
    if store.exists("index.json") {
        return Ok(Detected::Oci);
    }
    Err(Error::NotAnImage {
        path: store.root().to_owned(),
    })
}

/// Extra names under which a layout may keep a blob, beside `blobs/<alg>/<hex>`.
type Fallback = fn(&Digest) -> Vec<String>;

fn fallback_names(fallbacks: &[Fallback], digest: &Digest) -> Vec<String> {
    fallbacks.iter().flat_map(|f| f(digest)).collect()
}

/// The layers and config of an image manifest whose blobs are in `store`.
fn read_manifest(
    store: &Store,
    manifest: &ManifestJson,
    fallbacks: &[Fallback],
) -> Result<(Vec<LayerDescriptor>, Option<ConfigSummary>)> {
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (index, layer) in manifest.layers.iter().enumerate() {
        let digest = Digest::parse(&layer.digest)?;
        let in_layer = |e: Error| e.in_layer(index, &digest);
        let media_type = layer.media_type.clone().unwrap_or_default();
        Codec::from_media_type(&media_type).map_err(in_layer)?;
        let (name, location) = store.find_blob(&digest, &fallback_names(fallbacks, &digest))?;
        let location = location.ok_or_else(|| {
            in_layer(Error::BlobMissing {
                digest: digest.clone(),
                path: store.display_path(&name),
            })
        })?;
        layers.push(LayerDescriptor {
            index,
            media_type,
            digest: digest.clone(),
            digest_of: DigestOf::Blob,
            size: layer.size,
            location,
        });
    }
    let config = match &manifest.config {
        Some(config) => read_config(store, config, fallbacks)?,
        None => None,
    };
    Ok((layers, config))
}

/// Reads the config blob `desc` names; `None` when the blob is absent (conversion does not need
/// it), an error when it is present but wrong.
fn read_config(
    store: &Store,
    desc: &Descriptor,
    fallbacks: &[Fallback],
) -> Result<Option<ConfigSummary>> {
    let digest = Digest::parse(&desc.digest)?;
    let fallbacks = fallback_names(fallbacks, &digest);
    if store.find_blob(&digest, &fallbacks)?.1.is_none() {
        return Ok(None);
    }
    let bytes = store.read_blob(&digest, desc.size, &fallbacks)?;
    parse_config(&bytes, &format!("blob {digest}")).map(Some)
}

/// Parses an image configuration.
fn parse_config(bytes: &[u8], what: &str) -> Result<ConfigSummary> {
    let config: ConfigJson = spec::parse(bytes, what)?;
    let run = config.config;
    let (user, env, entrypoint, cmd, working_dir) = match run {
        Some(r) => (r.user, r.env, r.entrypoint, r.cmd, r.working_dir),
        None => (None, None, None, None, None),
    };
    Ok(ConfigSummary {
        os: config.os,
        architecture: config.architecture,
        variant: config.variant,
        created: config.created,
        user: user.filter(|u| !u.is_empty()),
        env: env.unwrap_or_default(),
        entrypoint: entrypoint.unwrap_or_default(),
        cmd: cmd.unwrap_or_default(),
        working_dir: working_dir.filter(|w| !w.is_empty()),
        diff_ids: config.rootfs.and_then(|r| r.diff_ids).unwrap_or_default(),
    })
}
