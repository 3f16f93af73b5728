//! From a reference to an image manifest: tag or digest ──► index? ──► platform ──► manifest.
//!
//! ```text
//! GET manifests/<tag|digest> ──► digest checked (a digest reference must match; a tag's is
//!   (Accept: OCI + docker        computed from the bytes, never taken from a header)
//!    index and manifest)   ──► index / manifest list ──► candidates (attestations skipped)
//!                          │        ──► select by platform (default: the host's) ──► GET by digest
//!                          └─► image manifest ──► config + layers (media types checked now, so
//!                                                 an unreadable layer fails before any download)
//! mirrors first, then the registry: a mirror that fails for any reason is skipped
//! ```

use std::sync::Arc;

use crate::digest::{Algorithm, Digest};
use crate::error::{Error, Result};
use crate::image::oci_layout::is_attestation;
use crate::image::select::{select, Candidate, HostTieBreak};
use crate::image::spec::{self, DocKind, IndexJson, ManifestJson, PlatformJson, Shape};
use crate::image::Platform;
use crate::layer::decompress::Codec;

use super::client::Client;
use super::options::RegistryOptions;
use super::reference::Reference;

/// What the manifest endpoint is asked to return, most wanted first.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// How many indexes deep a reference may lead before its image manifest.
const MAX_DEPTH: usize = 4;

/// A blob a manifest names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BlobRef {
    /// Position among the manifest's layers (0 = oldest); 0 for the config.
    pub index: usize,
    /// Media type as the manifest writes it (may be empty).
    pub media_type: String,
    /// The blob's digest.
    pub digest: Digest,
    /// Its size, when the manifest states it.
    pub size: Option<u64>,
}

/// A JSON document as the registry served it, digest checked.
#[derive(Clone, Debug)]
pub(crate) struct Document {
    /// Its bytes, exactly as served (the digest covers them).
    pub bytes: Vec<u8>,
    /// Its media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
}

/// An image manifest found from a reference.
pub(crate) struct Resolved {
    /// The client that found it (and fetches its blobs).
    pub client: Arc<Client>,
    /// The image manifest.
    pub manifest: Document,
    /// The platform the index listed it under, when it came from an index.
    pub platform: Option<Platform>,
    /// The config blob.
    pub config: BlobRef,
    /// The layers, oldest first.
    pub layers: Vec<BlobRef>,
}

/// Finds the image manifest `reference` names, trying mirrors first.
pub(crate) async fn resolve(reference: &Reference, options: &RegistryOptions) -> Result<Resolved> {
    let mirrors = options
        .mirrors
        .iter()
        .filter(|m| m.of == reference.registry)
        .map(|m| m.host.as_str());
    for host in mirrors {
        // A mirror that fails for any reason is skipped; the registry itself decides.
        if let Ok(r) = resolve_at(reference, host, options).await {
            return Ok(r);
        }
    }
    resolve_at(reference, reference.api_host(), options).await
}

async fn resolve_at(
    reference: &Reference,
    host: &str,
    options: &RegistryOptions,
) -> Result<Resolved> {
    let client = Arc::new(Client::new(
        &reference.registry,
        host,
        &reference.repository,
        options,
    )?);
    let mut want = reference.clone();
    let mut platform = None;
    for _ in 0..MAX_DEPTH {
        let doc = fetch_document(&client, &want).await?;
        match kind_of(&doc)? {
            DocKind::Index => {
                let (digest, p) = choose(&doc, options.platform.as_ref())?;
                platform = p;
                want = reference.with_digest(digest);
            }
            DocKind::Manifest => {
                let (config, layers) = read_manifest(&doc)?;
                return Ok(Resolved {
                    client,
                    manifest: doc,
                    platform,
                    config,
                    layers,
                });
            }
            DocKind::Other => {
                return Err(Error::UnsupportedMediaType {
                    media_type: doc.media_type,
                    what: format!("{want} (expected an image manifest or index)"),
                })
            }
        }
    }
    Err(Error::InvalidDocument {
        what: reference.to_string(),
        problem: "indexes nested more than 4 levels deep",
    })
}

/// `GET manifests/<ref>`, digest checked.
async fn fetch_document(client: &Client, reference: &Reference) -> Result<Document> {
    let what = format!("manifests/{}", reference.manifest_ref());
    let (bytes, headers) = client
        .get_bytes(&what, Some(ACCEPT), spec::MAX_JSON)
        .await
        .map_err(|e| match e {
            Error::HttpStatus { ref status, .. } if status.starts_with("404") => {
                Error::ManifestNotFound {
                    reference: reference.to_string(),
                }
            }
            e => e,
        })?;
    let digest = match &reference.digest {
        Some(expected) => {
            let found = Digest::of(expected.algorithm(), &bytes);
            if &found != expected {
                return Err(Error::DigestMismatch {
                    expected: expected.clone(),
                    found,
                });
            }
            found
        }
        None => Digest::of(Algorithm::Sha256, &bytes),
    };
    let header_type = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or(v).trim().to_owned())
        .filter(|v| DocKind::of(v) != DocKind::Other);
    let media_type = match header_type {
        Some(t) => t,
        None => {
            let shape: Shape = spec::parse(&bytes, &reference.to_string())?;
            shape
                .media_type
                .clone()
                .unwrap_or_else(|| match shape.kind() {
                    DocKind::Index => spec::OCI_INDEX.to_owned(),
                    _ => spec::OCI_MANIFEST.to_owned(),
                })
        }
    };
    Ok(Document {
        bytes,
        media_type,
        digest,
    })
}

fn kind_of(doc: &Document) -> Result<DocKind> {
    Ok(match DocKind::of(&doc.media_type) {
        DocKind::Other => {
            spec::parse::<Shape>(&doc.bytes, &format!("manifest {}", doc.digest))?.kind()
        }
        k => k,
    })
}

/// Picks the manifest for `platform` (or the host's) from an index.
fn choose(doc: &Document, platform: Option<&Platform>) -> Result<(Digest, Option<Platform>)> {
    let what = format!("index {}", doc.digest);
    let index: IndexJson = spec::parse(&doc.bytes, &what)?;
    let mut candidates = Vec::new();
    for desc in &index.manifests {
        if is_attestation(desc) {
            continue;
        }
        let kind = desc
            .media_type
            .as_deref()
            .map_or(DocKind::Manifest, DocKind::of);
        if kind == DocKind::Other {
            continue;
        }
        let digest = Digest::parse(&desc.digest)?;
        candidates.push(Candidate {
            names: Vec::new(),
            platform: desc.platform.as_ref().and_then(PlatformJson::to_platform),
            digest: Some(digest.clone()),
            item: digest,
        });
    }
    if candidates.is_empty() {
        return Err(Error::InvalidDocument {
            what,
            problem: "lists no image manifest",
        });
    }
    let host = Platform::host();
    let wanted = platform.unwrap_or(&host);
    let chosen = select(&candidates, None, Some(wanted), HostTieBreak::Yes)?;
    Ok((chosen.item.clone(), chosen.platform.clone()))
}

/// The config and layers of an image manifest; refuses layers ocirender cannot decode.
fn read_manifest(doc: &Document) -> Result<(BlobRef, Vec<BlobRef>)> {
    let what = format!("manifest {}", doc.digest);
    let manifest: ManifestJson = spec::parse(&doc.bytes, &what)?;
    if let Some(t) = manifest.media_type.as_deref() {
        if DocKind::of(t) != DocKind::Manifest {
            return Err(Error::UnsupportedMediaType {
                media_type: t.to_owned(),
                what: format!("{what} (expected an image manifest)"),
            });
        }
    }
    let config = manifest.config.as_ref().ok_or(Error::InvalidDocument {
        what: what.clone(),
        problem: "has no config",
    })?;
    let config = BlobRef {
        index: 0,
        media_type: config.media_type.clone().unwrap_or_default(),
        digest: Digest::parse(&config.digest)?,
        size: config.size,
    };
    let mut layers = Vec::with_capacity(manifest.layers.len());
    for (index, l) in manifest.layers.iter().enumerate() {
        let digest = Digest::parse(&l.digest)?;
        let media_type = l.media_type.clone().unwrap_or_default();
        Codec::from_media_type(&media_type).map_err(|e| e.in_layer(index, &digest))?;
        layers.push(BlobRef {
            index,
            media_type,
            digest,
            size: l.size,
        });
    }
    Ok((config, layers))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(json: serde_json::Value, media_type: &str) -> Document {
        let bytes = serde_json::to_vec(&json).unwrap();
        Document {
            digest: Digest::of(Algorithm::Sha256, &bytes),
            bytes,
            media_type: media_type.to_owned(),
        }
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn an_index_yields_the_requested_platform_and_skips_attestations() {
        let index = doc(
            serde_json::json!({"schemaVersion": 2, "manifests": [
                {"mediaType": spec::OCI_MANIFEST, "digest": d('a'), "size": 1,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": spec::OCI_MANIFEST, "digest": d('b'), "size": 1,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
                {"mediaType": spec::OCI_MANIFEST, "digest": d('c'), "size": 1,
                 "platform": {"os": "unknown", "architecture": "unknown"}},
            ]}),
            spec::OCI_INDEX,
        );
        let arm: Platform = "linux/arm64".parse().unwrap();
        let (digest, p) = choose(&index, Some(&arm)).unwrap();
        assert_eq!(digest.to_string(), d('b'));
        assert_eq!(p.unwrap().to_string(), "linux/arm64/v8");
        let s390: Platform = "linux/s390x".parse().unwrap();
        let err = choose(&index, Some(&s390)).unwrap_err();
        assert!(matches!(err, Error::PlatformNotFound { .. }), "{err}");
        assert!(!err.to_string().contains("unknown"), "{err}");
    }

    #[test]
    fn manifests_name_config_and_layers_and_refuse_unknown_layer_types() {
        let m = doc(
            serde_json::json!({"schemaVersion": 2, "mediaType": spec::OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d('c'), "size": 2},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d('1'), "size": 10},
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": d('2'), "size": 20},
            ]}),
            spec::OCI_MANIFEST,
        );
        let (config, layers) = read_manifest(&m).unwrap();
        assert_eq!(config.digest.to_string(), d('c'));
        assert_eq!(layers.len(), 2);
        assert_eq!((layers[1].index, layers[1].size), (1, Some(20)));
        let encrypted = doc(
            serde_json::json!({"schemaVersion": 2,
                "config": {"digest": d('c'), "size": 2},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", "digest": d('1'), "size": 1}]}),
            spec::OCI_MANIFEST,
        );
        let err = read_manifest(&encrypted).unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::UnsupportedMediaType { .. }),
            "{err}"
        );
        assert!(matches!(err, Error::Layer { index: 0, .. }), "{err}");
    }
}
