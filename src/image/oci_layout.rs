//! OCI image layout directories (and `oci-archive` tar files): `oci-layout`, `index.json`,
//! nested indexes, blobs.
//!
//! ```text
//! index.json ──► descriptor ──► index / manifest list? ──► its descriptors (≤ MAX_DEPTH deep,
//!                    │          (read, digest-checked)     each index once: cycles end)
//!                    ├─► image manifest ──► a candidate (names inherited from the indexes
//!                    │                      above it, platform from its descriptor)
//!                    ├─► no mediaType ──► read the blob and judge by its shape
//!                    └─► attestation / artifact / config ──► skipped
//! candidates ──► select (ref, platform, host) ──► manifest blob ──► layers + config
//! ```

use std::collections::HashSet;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::path::EntryPath;

use super::select::{select, Candidate, HostTieBreak};
use super::spec::{
    self, Descriptor, DocKind, IndexJson, ManifestJson, OciLayoutFile, PlatformJson, Shape,
};
use super::store::{Containment, Store};
use super::{ConfigSummary, LayerDescriptor, ManifestInfo, Platform};

/// How deep indexes may nest below `index.json`.
const MAX_DEPTH: usize = 8;

/// An image manifest an index offers.
#[derive(Debug)]
pub(crate) struct Found {
    digest: Digest,
    media_type: String,
    size: Option<u64>,
}

/// The chosen manifest, read.
pub(crate) struct Opened {
    pub manifest_digest: Digest,
    pub layers: Vec<LayerDescriptor>,
    pub config: Option<ConfigSummary>,
}

/// Opens the manifest of the layout in `store` that `reference` and `platform` select.
pub(crate) fn open(
    store: &Store,
    reference: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Opened> {
    let mut candidates = candidates(store)?;
    if platform.is_some() || candidates.len() > 1 {
        fill_platforms(store, &mut candidates);
    }
    let chosen = select(&candidates, reference, platform, HostTieBreak::Yes)?;
    let found = &chosen.item;
    let bytes = store.read_blob(&found.digest, found.size, &[])?;
    let what = format!("blob {}", found.digest);
    let manifest: ManifestJson = spec::parse(&bytes, &what)?;
    check_manifest_type(&manifest, &what)?;
    let (layers, config) = super::read_manifest(store, &manifest, &[])?;
    Ok(Opened {
        manifest_digest: found.digest.clone(),
        layers,
        config,
    })
}

/// Every image manifest the layout offers, for `ocirender inspect`.
pub(crate) fn list(store: &Store) -> Result<Vec<ManifestInfo>> {
    let mut candidates = candidates(store)?;
    fill_platforms(store, &mut candidates);
    Ok(candidates
        .into_iter()
        .map(|c| ManifestInfo {
            digest: Some(c.item.digest),
            media_type: c.item.media_type,
            refs: c.names,
            platform: c.platform,
            size: c.item.size,
        })
        .collect())
}

/// Refuses a manifest blob whose own `mediaType` says it is something else.
pub(crate) fn check_manifest_type(manifest: &ManifestJson, what: &str) -> Result<()> {
    match manifest.media_type.as_deref().map(DocKind::of) {
        None | Some(DocKind::Manifest) => Ok(()),
        Some(_) => Err(Error::UnsupportedMediaType {
            media_type: manifest.media_type.clone().unwrap_or_default(),
            what: format!("{what} (expected an image manifest)"),
        }),
    }
}

/// Reads `oci-layout` and `index.json` and walks the indexes.
fn candidates(store: &Store) -> Result<Vec<Candidate<Found>>> {
    let name = |s: &str| EntryPath::new(s.as_bytes());
    if let Some(bytes) = store.read_json(&name("oci-layout")?, Containment::Free, "oci-layout")? {
        let layout: OciLayoutFile = spec::parse(&bytes, "oci-layout")?;
        if !layout.image_layout_version.starts_with("1.") {
            return Err(Error::InvalidDocument {
                what: "oci-layout".to_owned(),
                problem: "unsupported imageLayoutVersion (1.x is supported)",
            });
        }
    }
    let bytes = store
        .read_json(&name("index.json")?, Containment::Free, "index.json")?
        .ok_or_else(|| Error::NotAnImage {
            path: store.root().to_owned(),
        })?;
    let index: IndexJson = spec::parse(&bytes, "index.json")?;
    let mut walk = Walk {
        store,
        visited: HashSet::new(),
        found: Vec::new(),
    };
    walk.index(&index, &[], 0)?;
    if walk.found.is_empty() {
        return Err(Error::InvalidDocument {
            what: "index.json".to_owned(),
            problem: "lists no image manifest",
        });
    }
    Ok(walk.found)
}

struct Walk<'s> {
    store: &'s Store,
    visited: HashSet<Digest>,
    found: Vec<Candidate<Found>>,
}

impl Walk<'_> {
    fn index(&mut self, index: &IndexJson, inherited: &[String], depth: usize) -> Result<()> {
        for desc in &index.manifests {
            if is_attestation(desc) {
                continue;
            }
            let digest = Digest::parse(&desc.digest)?;
            let mut names = inherited.to_vec();
            for key in [spec::REF_NAME, spec::CONTAINERD_NAME] {
                if let Some(name) = desc.annotation(key) {
                    if !names.iter().any(|n| n == name) {
                        names.push(name.to_owned());
                    }
                }
            }
            let what = format!("blob {digest}");
            let mut blob = None;
            let kind = match &desc.media_type {
                Some(media_type) => DocKind::of(media_type),
                None => {
                    let bytes = self.store.read_blob(&digest, desc.size, &[])?;
                    let kind = spec::parse::<Shape>(&bytes, &what)?.kind();
                    blob = Some(bytes);
                    kind
                }
            };
            match kind {
                DocKind::Index => {
                    if depth + 1 >= MAX_DEPTH {
                        return Err(Error::InvalidDocument {
                            what,
                            problem: "indexes nested more than 8 levels deep",
                        });
                    }
                    // An index reached twice (a cycle, or a shared child) is walked once.
                    if !self.visited.insert(digest.clone()) {
                        continue;
                    }
                    let bytes = match blob {
                        Some(bytes) => bytes,
                        None => self.store.read_blob(&digest, desc.size, &[])?,
                    };
                    let child: IndexJson = spec::parse(&bytes, &what)?;
                    self.index(&child, &names, depth + 1)?;
                }
                DocKind::Manifest => self.found.push(Candidate {
                    names,
                    platform: desc.platform.as_ref().and_then(PlatformJson::to_platform),
                    digest: Some(digest.clone()),
                    item: Found {
                        media_type: desc
                            .media_type
                            .clone()
                            .unwrap_or_else(|| spec::OCI_MANIFEST.to_owned()),
                        digest,
                        size: desc.size,
                    },
                }),
                DocKind::Other => {}
            }
        }
        Ok(())
    }
}

/// BuildKit attestations: platform `unknown/unknown`, or the docker reference-type annotation.
pub(crate) fn is_attestation(desc: &Descriptor) -> bool {
    desc.annotation(spec::DOCKER_REFERENCE_TYPE) == Some("attestation-manifest")
        || desc
            .platform
            .as_ref()
            .is_some_and(|p| p.os == "unknown" && p.architecture == "unknown")
}

/// Gives candidates that their index does not place a platform from their config, when it
/// can be read (a best effort: failures leave the platform unknown).
fn fill_platforms(store: &Store, candidates: &mut [Candidate<Found>]) {
    for c in candidates.iter_mut().filter(|c| c.platform.is_none()) {
        let config = store
            .read_blob(&c.item.digest, c.item.size, &[])
            .and_then(|bytes| spec::parse::<ManifestJson>(&bytes, "manifest"))
            .ok()
            .and_then(|m| m.config)
            .and_then(|config| super::read_config(store, &config, &[]).ok().flatten());
        c.platform = config.and_then(|c| c.platform());
    }
}
