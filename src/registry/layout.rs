//! `fetch`: download an image into an OCI image layout directory.
//!
//! ```text
//! resolve ──► blobs missing from DIR/blobs/<alg>/ (present ones are re-hashed, not trusted)
//!         ──► download_all into DIR/blobs/<alg>/.ocirender-*.partial ──► renamed to <hex>
//!         ──► manifest blob ──► index.json: this ref's entry replaced ──► oci-layout
//! ```
//!
//! The result is what `skopeo copy docker://… oci:DIR:REF` writes: `oci-layout`, `index.json`
//! whose entry carries `org.opencontainers.image.ref.name` (and `io.containerd.image.name`,
//! the full reference), and the manifest, config and layer blobs. One platform's manifest is
//! stored, as served (a docker manifest keeps its docker media types; OCI readers accept it).
//!
//! Blobs are written under temporary names and renamed when their digest checks, and
//! `index.json` is replaced atomically last, so a failed fetch never leaves a layout that names
//! a missing or partial blob. A directory the fetch created is removed again on failure.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::spec;
use crate::options::ProgressFn;

use super::download::{download_all, file_matches, Growth, Job};
use super::manifest::{resolve, BlobRef};
use super::options::RegistryOptions;
use super::reference::Reference;

/// What a fetch wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The image manifest's digest.
    pub manifest: Digest,
    /// The ref name it is stored under in `index.json`.
    pub ref_name: String,
    /// Blobs downloaded.
    pub downloaded: usize,
    /// Blobs already in the layout (and verified).
    pub present: usize,
    /// Bytes downloaded.
    pub bytes: u64,
}

/// Downloads `reference` into the OCI image layout at `dir` (created if missing), under
/// `ref_name` (by default the reference's tag, or its digest).
///
/// An existing layout keeps its other images; an existing entry with the same ref name is
/// replaced. A directory that is neither empty nor a layout is refused.
pub async fn fetch(
    reference: &Reference,
    dir: &Path,
    ref_name: Option<&str>,
    options: &RegistryOptions,
    progress: Option<ProgressFn>,
) -> Result<Fetched> {
    let ref_name = match ref_name {
        Some(r) => r.to_owned(),
        None => reference
            .tag
            .clone()
            .or_else(|| reference.digest.as_ref().map(Digest::to_string))
            .unwrap_or_else(|| "latest".to_owned()),
    };
    let mut created = RemoveOnDrop(prepare_dir(dir)?.then(|| dir.to_owned()));
    let fetched = fetch_into(reference, dir, ref_name, options, progress).await?;
    created.0 = None;
    Ok(fetched)
}

/// Removes a directory the fetch created unless the fetch completed (an error, or the fetch
/// future dropped).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            // Best effort: the directory was ours, and what is in it is incomplete.
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

async fn fetch_into(
    reference: &Reference,
    dir: &Path,
    ref_name: String,
    options: &RegistryOptions,
    progress: Option<ProgressFn>,
) -> Result<Fetched> {
    let resolved = resolve(reference, options).await?;
    let blobs: Vec<(BlobRef, bool)> = std::iter::once((resolved.config.clone(), false))
        .chain(resolved.layers.iter().rev().map(|l| (l.clone(), true)))
        .collect();
    let mut jobs = Vec::new();
    let mut temps = Vec::new();
    let mut present = 0;
    let mut bytes = 0;
    for (blob, is_layer) in blobs {
        let target = blob_path(dir, &blob.digest)?;
        if temps
            .iter()
            .any(|(_, t): &(tempfile::NamedTempFile, PathBuf)| t == &target)
            || file_matches(&target, &blob.digest, blob.size)
        {
            present += 1;
            continue;
        }
        let (temp, file) = temp_blob(&target)?;
        bytes += blob.size.unwrap_or(0);
        jobs.push(Job {
            blob,
            is_layer,
            file,
            path: temp.path().to_path_buf(),
            growth: Arc::new(Growth::default()),
        });
        temps.push((temp, target));
    }
    let downloaded = jobs.len();
    download_all(
        resolved.client.clone(),
        jobs,
        options.concurrency.get(),
        progress,
    )
    .await?;
    for (temp, target) in temps {
        temp.persist(&target)
            .map_err(|e| Error::io("rename a blob to", target.clone(), e.error))?;
    }
    let manifest = &resolved.manifest;
    let manifest_path = blob_path(dir, &manifest.digest)?;
    if !file_matches(
        &manifest_path,
        &manifest.digest,
        Some(manifest.bytes.len() as u64),
    ) {
        write_atomically(&manifest_path, &manifest.bytes)?;
    }
    let mut descriptor = json!({
        "mediaType": manifest.media_type,
        "digest": manifest.digest.to_string(),
        "size": manifest.bytes.len(),
        "annotations": {
            spec::REF_NAME: ref_name,
            spec::CONTAINERD_NAME: reference.to_string(),
        },
    });
    if let Some(p) = &resolved.platform {
        let mut platform = json!({"os": p.os, "architecture": p.architecture});
        if let Some(v) = &p.variant {
            platform["variant"] = json!(v);
        }
        descriptor["platform"] = platform;
    }
    update_index(dir, &ref_name, descriptor)?;
    write_atomically(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    Ok(Fetched {
        manifest: manifest.digest.clone(),
        ref_name,
        downloaded,
        present,
        bytes,
    })
}

/// Creates `dir` if missing (returns true then); refuses a non-empty directory that is not an
/// OCI layout.
fn prepare_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            let is_layout = dir.join("oci-layout").exists() || dir.join("index.json").exists();
            if !is_layout && entries.next().is_some() {
                return Err(Error::OutputExists {
                    path: dir.to_owned(),
                });
            }
            Ok(false)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create", dir, e))?;
            Ok(true)
        }
        Err(e) => Err(Error::io("read", dir, e)),
    }
}

fn blob_path(dir: &Path, digest: &Digest) -> Result<PathBuf> {
    let blobs = dir.join("blobs").join(digest.algorithm().name());
    std::fs::create_dir_all(&blobs).map_err(|e| Error::io("create", blobs.clone(), e))?;
    Ok(blobs.join(digest.hex()))
}

/// A temporary file beside `target`, removed unless persisted, and a handle to write it.
fn temp_blob(target: &Path) -> Result<(tempfile::NamedTempFile, File)> {
    let dir = target.parent().unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".ocirender-")
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    let file = temp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io("open", temp.path().to_path_buf(), e))?;
    Ok((temp, file))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let (mut temp, _) = temp_blob(path)?;
    temp.write_all(bytes)
        .map_err(|e| Error::io("write", temp.path().to_path_buf(), e))?;
    temp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    Ok(())
}

/// Puts `descriptor` into `index.json`, replacing any entry with the same ref name.
fn update_index(dir: &Path, ref_name: &str, descriptor: Value) -> Result<()> {
    let path = dir.join("index.json");
    let mut index = match std::fs::read(&path) {
        Ok(bytes) => spec::parse::<Value>(&bytes, "index.json")?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            json!({"schemaVersion": 2, "mediaType": spec::OCI_INDEX, "manifests": []})
        }
        Err(e) => return Err(Error::io("read", path, e)),
    };
    let bad = || Error::InvalidDocument {
        what: "index.json".to_owned(),
        problem: "has no \"manifests\" array",
    };
    let manifests = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(bad)?;
    manifests.retain(|d| {
        d.pointer("/annotations")
            .and_then(|a| a.get(spec::REF_NAME))
            .and_then(Value::as_str)
            != Some(ref_name)
    });
    manifests.push(descriptor);
    let bytes = serde_json::to_vec(&index).map_err(|source| Error::Json {
        what: "index.json".to_owned(),
        source,
    })?;
    write_atomically(&path, &bytes)
}
