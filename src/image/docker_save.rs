//! The layouts `docker save` writes — `manifest.json` in a directory or in a tar file — and a
//! bare image manifest stored as `manifest.json` beside its blobs.
//!
//! ```text
//! manifest.json [ {Config, RepoTags, Layers}, … ] ──► select by RepoTags ──► config + layers
//!   Layers[i] = "blobs/sha256/<hex>"  (Docker ≥ 25)  → digest = the name, of the blob as stored
//!   Layers[i] = "<id>/layer.tar"      (legacy)       → digest = config rootfs.diff_ids[i],
//!                                                      of the uncompressed tar
//! manifest.json { mediaType, config, layers }  (bare) ──► blobs/<alg>/<hex>, <hex>, <alg>:<hex>
//! ```
//!
//! The paths in `manifest.json` are free-form strings from the file: each must be relative,
//! without `..`, and (in a directory) must not resolve through a symlink to a file outside it.

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::path::EntryPath;

use super::select::{select, Candidate, HostTieBreak};
use super::spec::{self, ManifestJson, SaveEntry};
use super::store::{check_blob, Containment, Store};
use super::{ConfigSummary, DigestOf, LayerDescriptor, ManifestInfo, Platform};

/// The chosen image, read.
pub(crate) struct Opened {
    pub layers: Vec<LayerDescriptor>,
    pub config: Option<ConfigSummary>,
}

/// Opens the image of a `docker save` `manifest.json` (`bytes`) selected by `reference`.
pub(crate) fn open(
    store: &Store,
    bytes: &[u8],
    reference: Option<&str>,
    platform: Option<&Platform>,
) -> Result<Opened> {
    let candidates = candidates(store, bytes, platform.is_some())?;
    let chosen = select(&candidates, reference, platform, HostTieBreak::No)?;
    let entry = &chosen.item;
    let config = read_config(store, &entry.config)?;
    let diff_ids = config
        .as_ref()
        .map(|c| c.diff_ids.as_slice())
        .unwrap_or(&[]);
    let mut layers = Vec::with_capacity(entry.layers.len());
    for (index, layer) in entry.layers.iter().enumerate() {
        let name = safe_name(layer)?;
        let (digest, digest_of) = match blob_digest(&name) {
            Some(digest) => (digest, DigestOf::Blob),
            None => {
                let Some(diff_id) = diff_ids.get(index) else {
                    return Err(match &config {
                        None => Error::InvalidDocument {
                            what: "manifest.json".to_owned(),
                            problem: "a legacy layer.tar needs the image config's \
                                      rootfs.diff_ids, and the config is missing",
                        },
                        Some(_) => Error::InvalidDocument {
                            what: "manifest.json".to_owned(),
                            problem: "lists more layers than the config's rootfs.diff_ids",
                        },
                    });
                };
                (Digest::parse(diff_id)?, DigestOf::Uncompressed)
            }
        };
        let location = store
            .locate(&name, Containment::Required)?
            .ok_or_else(|| Error::BlobMissing {
                digest: digest.clone(),
                path: store.display_path(&name),
            })
            .map_err(|e| e.in_layer(index, &digest))?;
        layers.push(LayerDescriptor {
            index,
            media_type: String::new(),
            digest,
            digest_of,
            size: None,
            location,
        });
    }
    Ok(Opened { layers, config })
}

/// Every image of a `docker save` `manifest.json`, for `ocirender inspect`.
pub(crate) fn list(store: &Store, bytes: &[u8]) -> Result<Vec<ManifestInfo>> {
    Ok(candidates(store, bytes, true)?
        .into_iter()
        .map(|c| ManifestInfo {
            digest: None,
            media_type: String::new(),
            refs: c.names,
            platform: c.platform,
            size: None,
        })
        .collect())
}

/// Opens a bare manifest (`bytes`): layers and config looked up beside it.
pub(crate) fn open_bare(store: &Store, bytes: &[u8]) -> Result<super::oci_layout::Opened> {
    let manifest: ManifestJson = spec::parse(bytes, "manifest.json")?;
    super::oci_layout::check_manifest_type(&manifest, "manifest.json")?;
    let (layers, config) = super::read_manifest(store, &manifest, &[bare_fallbacks])?;
    Ok(super::oci_layout::Opened {
        manifest_digest: Digest::of(crate::DigestAlgorithm::Sha256, bytes),
        layers,
        config,
    })
}

/// The one manifest of a bare layout, for `ocirender inspect`.
pub(crate) fn list_bare(store: &Store, bytes: &[u8]) -> Result<Vec<ManifestInfo>> {
    let manifest: ManifestJson = spec::parse(bytes, "manifest.json")?;
    let platform = manifest
        .config
        .as_ref()
        .and_then(|c| {
            super::read_config(store, c, &[bare_fallbacks])
                .ok()
                .flatten()
        })
        .and_then(|c| c.platform());
    Ok(vec![ManifestInfo {
        digest: None,
        media_type: manifest.media_type.unwrap_or_default(),
        refs: Vec::new(),
        platform,
        size: Some(bytes.len() as u64),
    }])
}

/// Where else a bare layout may keep blob `digest`: `<hex>`, then `<alg>:<hex>`.
fn bare_fallbacks(digest: &Digest) -> Vec<String> {
    vec![
        digest.hex().to_owned(),
        format!("{}:{}", digest.algorithm().name(), digest.hex()),
    ]
}

fn candidates(
    store: &Store,
    bytes: &[u8],
    want_platforms: bool,
) -> Result<Vec<Candidate<SaveEntry>>> {
    let entries: Vec<SaveEntry> = spec::parse(bytes, "manifest.json")?;
    if entries.is_empty() {
        return Err(Error::InvalidDocument {
            what: "manifest.json".to_owned(),
            problem: "lists no image",
        });
    }
    let several = entries.len() > 1;
    entries
        .into_iter()
        .map(|entry| {
            let platform = if want_platforms || several {
                read_config(store, &entry.config)
                    .ok()
                    .flatten()
                    .and_then(|c| c.platform())
            } else {
                None
            };
            Ok(Candidate {
                names: entry.repo_tags.clone().unwrap_or_default(),
                platform,
                // The config's digest is the image ID: it names untagged images in messages.
                digest: safe_name(&entry.config)
                    .ok()
                    .and_then(|n| config_digest(&n)),
                item: entry,
            })
        })
        .collect()
}

/// Reads the config a `manifest.json` entry names; `None` when the file is absent.
fn read_config(store: &Store, config: &str) -> Result<Option<ConfigSummary>> {
    let name = safe_name(config)?;
    let Some(bytes) = store.read_json(&name, Containment::Required, config)? else {
        return Ok(None);
    };
    if let Some(digest) = config_digest(&name) {
        check_blob(&bytes, &digest, None)?;
    }
    super::parse_config(&bytes, config).map(Some)
}

/// The digest a config's name says it has: `blobs/sha256/<hex>`, or legacy `<hex>.json`.
fn config_digest(name: &EntryPath) -> Option<Digest> {
    blob_digest(name).or_else(|| {
        let hex = name.file_name()?.strip_suffix(b".json")?;
        Digest::parse(&format!("sha256:{}", String::from_utf8_lossy(hex))).ok()
    })
}

/// A path from `manifest.json`: relative, no `..`, normalized.
fn safe_name(path: &str) -> Result<EntryPath> {
    if path.starts_with('/') {
        return Err(Error::HostilePath {
            path: path.to_owned(),
            reason: "is absolute (manifest.json paths must be relative)",
        });
    }
    let name = EntryPath::new(path.as_bytes())?;
    if name.is_root() {
        return Err(Error::HostilePath {
            path: path.to_owned(),
            reason: "names no file",
        });
    }
    Ok(name)
}

/// The digest a `blobs/<alg>/<hex>` name stands for.
fn blob_digest(name: &EntryPath) -> Option<Digest> {
    let parts: Vec<&[u8]> = name.components().collect();
    match parts.as_slice() {
        [b"blobs", alg, hex] => Digest::parse(&format!(
            "{}:{}",
            String::from_utf8_lossy(alg),
            String::from_utf8_lossy(hex)
        ))
        .ok(),
        _ => None,
    }
}
