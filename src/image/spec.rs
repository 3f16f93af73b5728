//! The JSON documents of OCI and Docker images, as serde reads them.
//!
//! Only the fields ocirender uses are declared; unknown fields are ignored, so newer writers
//! stay readable. Nothing here is trusted: digests are strings until [`crate::Digest::parse`]
//! validates them, and every document was read under a size cap before it got here.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::error::{Error, Result};

/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker manifest list.
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// Docker image manifest, schema 2.
pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// The annotation that names a manifest in an OCI layout's index.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The full image name containerd (and Docker ≥ 25) writes beside the ref name.
pub(crate) const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// BuildKit's marker of an attestation manifest.
pub(crate) const DOCKER_REFERENCE_TYPE: &str = "vnd.docker.reference.type";

/// The largest JSON document (index, manifest, config) read into memory.
pub(crate) const MAX_JSON: u64 = 16 << 20;

/// What a media type says a JSON document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DocKind {
    Index,
    Manifest,
    /// Something else (a config, an artifact): not an image.
    Other,
}

impl DocKind {
    pub(crate) fn of(media_type: &str) -> DocKind {
        match media_type {
            OCI_INDEX | DOCKER_LIST => DocKind::Index,
            OCI_MANIFEST | DOCKER_MANIFEST => DocKind::Manifest,
            _ => DocKind::Other,
        }
    }
}

/// `oci-layout`.
#[derive(Deserialize)]
pub(crate) struct OciLayoutFile {
    #[serde(rename = "imageLayoutVersion")]
    pub image_layout_version: String,
}

/// A content descriptor.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct Descriptor {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    pub digest: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub platform: Option<PlatformJson>,
}

impl Descriptor {
    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

/// The platform object of an index entry.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct PlatformJson {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl PlatformJson {
    /// The platform an index entry declares: none unless both os and architecture are given.
    pub fn to_platform(&self) -> Option<crate::image::Platform> {
        (!self.os.is_empty() && !self.architecture.is_empty()).then(|| crate::image::Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        })
    }
}

/// An image index or Docker manifest list.
#[derive(Deserialize)]
pub(crate) struct IndexJson {
    pub manifests: Vec<Descriptor>,
}

/// An image manifest.
#[derive(Deserialize)]
pub(crate) struct ManifestJson {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
}

/// The shape of a document whose descriptor gave no media type.
#[derive(Deserialize)]
pub(crate) struct Shape {
    #[serde(rename = "mediaType", default)]
    pub media_type: Option<String>,
    #[serde(default)]
    pub manifests: Option<serde::de::IgnoredAny>,
    #[serde(default)]
    pub layers: Option<serde::de::IgnoredAny>,
}

impl Shape {
    pub(crate) fn kind(&self) -> DocKind {
        match self.media_type.as_deref().map(DocKind::of) {
            Some(DocKind::Other) | None => {
                if self.manifests.is_some() {
                    DocKind::Index
                } else if self.layers.is_some() {
                    DocKind::Manifest
                } else {
                    DocKind::Other
                }
            }
            Some(kind) => kind,
        }
    }
}

/// One element of a `docker save` `manifest.json` array.
#[derive(Debug, Deserialize)]
pub(crate) struct SaveEntry {
    #[serde(rename = "Config")]
    pub config: String,
    #[serde(rename = "RepoTags", default)]
    pub repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

/// An image configuration, the parts ocirender reports.
#[derive(Deserialize)]
pub(crate) struct ConfigJson {
    #[serde(default)]
    pub architecture: Option<String>,
    #[serde(default)]
    pub os: Option<String>,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: Option<RunConfig>,
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// `config` inside an image configuration.
#[derive(Deserialize)]
pub(crate) struct RunConfig {
    #[serde(rename = "User", default)]
    pub user: Option<String>,
    #[serde(rename = "Env", default)]
    pub env: Option<Vec<String>>,
    #[serde(rename = "Entrypoint", default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default)]
    pub cmd: Option<Vec<String>>,
    #[serde(rename = "WorkingDir", default)]
    pub working_dir: Option<String>,
}

/// `rootfs` inside an image configuration.
#[derive(Deserialize)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Option<Vec<String>>,
}

/// Parses `bytes` as a `T`, naming the document `what` in errors.
pub(crate) fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| Error::Json {
        what: what.to_owned(),
        source,
    })
}
