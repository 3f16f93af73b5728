//! `pull`: download an image's layers and convert them while they arrive.
//!
//! ```text
//! resolve ──► StreamingPacker::new (output opened) ──► per layer, newest first:
//!               temp file + Growth ──► Follower ──notify_layer_reader──► packer (merge thread)
//!             download_all (N workers, newest first) ──► files grow ──► followers read on
//!             ════ both run at once; the first failure stops the other ════
//! ```
//!
//! Why followers over growing files, rather than handing over a layer when its download is
//! complete (`notify_layer_ready`) or streaming the HTTP body itself (`notify_layer_stream`):
//! - the merge starts on the newest layer with its first bytes, instead of after its last, so
//!   conversion overlaps the download of the very layer it is converting;
//! - downloads never wait for the merge: a layer whose turn has not come keeps downloading at
//!   full speed into its file, where a streamed body would be back-pressured and stall;
//! - a dropped connection is resumed with `Range` into the same file, invisibly to the merge,
//!   which only ever sees final bytes.
//!
//! The price is disk space for the compressed blobs, in a temporary directory that is removed
//! on every way out (success, error, cancellation). A layer that fails for good ends the pull
//! with its error (layer index, digest, HTTP status); the packer then removes its partial
//! output before `pull` returns.

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::DigestOf;
use crate::options::{ConvertOptions, ImageSpec};
use crate::packer::{LayerMeta, StreamingPacker};
use crate::sink::Summary;

use super::download::{download_all, Follower, Growth, Job};
use super::manifest::resolve;
use super::options::RegistryOptions;
use super::reference::Reference;

/// Pulls `reference` and converts it into the output `spec` describes, downloading layers
/// (newest first, [`RegistryOptions::concurrency`] at once) while earlier ones convert.
///
/// Nothing is left at the output path on error, and no temporary blob remains in any case.
/// Cancelling [`ConvertOptions::cancel`] stops it as [`pull_until`]'s `stop` does.
pub async fn pull(
    reference: &Reference,
    spec: &ImageSpec,
    convert: &ConvertOptions,
    options: &RegistryOptions,
) -> Result<Summary> {
    pull_until(reference, spec, convert, options, std::future::pending()).await
}

/// [`pull`] that gives up when `stop` completes (a Ctrl-C, a deadline) or
/// [`ConvertOptions::cancel`] is cancelled: the downloads are aborted, the merge is stopped
/// and has removed its partial output when this returns [`Error::Interrupted`].
///
/// Dropping a [`pull`] future also stops everything, but the merge thread then removes its
/// output shortly after, not before the drop returns; a program about to exit wants this.
pub async fn pull_until(
    reference: &Reference,
    spec: &ImageSpec,
    convert: &ConvertOptions,
    options: &RegistryOptions,
    stop: impl std::future::Future<Output = ()>,
) -> Result<Summary> {
    let stop = async {
        tokio::select! {
            () = stop => {}
            () = convert.cancel.cancelled() => {}
        }
    };
    tokio::pin!(stop);
    let resolved = tokio::select! {
        r = resolve(reference, options) => r?,
        () = &mut stop => return Err(Error::Interrupted),
    };
    let temp = temp_dir(options, spec)?;
    let metas = resolved
        .layers
        .iter()
        .map(|l| LayerMeta {
            index: l.index,
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            digest_of: DigestOf::Blob,
            size: l.size,
        })
        .collect();
    // Progress goes through `convert.progress` (the callback), not the packer's channel.
    let packer = StreamingPacker::new(metas, spec.clone(), convert.clone(), None)?;

    let mut jobs = Vec::with_capacity(resolved.layers.len());
    for blob in resolved.layers.iter().rev() {
        let path = temp.path().join(blob_name(blob.index, &blob.digest));
        let file = File::create(&path).map_err(|e| Error::io("create", path.clone(), e))?;
        let reader = File::open(&path).map_err(|e| Error::io("open", path.clone(), e))?;
        let growth = Arc::new(Growth::default());
        // A second pass reads the blob again from its file, following the download if it is
        // still running: never a second download.
        let reopen = {
            let (path, growth) = (path.clone(), growth.clone());
            Box::new(move || -> Result<Box<dyn std::io::Read + Send>> {
                let file = File::open(&path).map_err(|e| Error::io("open", path.clone(), e))?;
                Ok(Box::new(Follower::new(file, growth.clone())))
            })
        };
        packer.notify_layer_replayable(
            blob.index,
            Box::new(Follower::new(reader, growth.clone())),
            reopen,
        )?;
        jobs.push(Job {
            blob: blob.clone(),
            is_layer: true,
            file,
            path,
            growth,
        });
    }

    let growths: Vec<Arc<Growth>> = jobs.iter().map(|j| j.growth.clone()).collect();
    let downloads = download_all(
        resolved.client.clone(),
        jobs,
        options.concurrency.get(),
        convert.progress.clone(),
    );
    let conversion = packer.finish();
    tokio::pin!(downloads, conversion);
    let result = tokio::select! {
        d = &mut downloads => match d {
            // Every follower has been ended, so the merge stops promptly and removes its output;
            // the download's error says what really happened.
            Err(e) => {
                let _ = conversion.await;
                Err(e)
            }
            Ok(()) => conversion.await,
        },
        c = &mut conversion => match c {
            // A follower saw its download end in failure: the merge may notice before the
            // downloads' own result is in. The download's error says what really happened,
            // and it is due at once.
            Err(e) if matches!(e.root_cause(), Error::Stopped) => match downloads.await {
                Err(d) => Err(d),
                Ok(()) => Err(e),
            },
            // Dropping the downloads (below) aborts them.
            Err(e) => Err(e),
            // Every layer was read to its end, so every download is complete or finishing.
            Ok(summary) => downloads.await.map(|()| summary),
        },
        () = &mut stop => {
            for g in &growths {
                g.fail();
            }
            let _ = conversion.await;
            Err(Error::Interrupted)
        }
    };
    drop(temp);
    result
}

/// A temporary blob's file name: its layer index (for people looking) and digest.
fn blob_name(index: usize, digest: &Digest) -> String {
    format!("layer{index}-{}", digest.hex())
}

/// The directory for the blobs: [`RegistryOptions::temp_dir`], or else the output's directory,
/// so that a minimal container without `/tmp` can pull (and the blobs land on the filesystem
/// the output is written to anyway).
fn temp_dir(options: &RegistryOptions, spec: &ImageSpec) -> Result<tempfile::TempDir> {
    let dir = match &options.temp_dir {
        Some(dir) => dir.clone(),
        // A bare file name (or `-`, tar on standard output) has the empty path as its parent.
        None => match spec.path().parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        },
    };
    // `.partial`: what a killed pull leaves says what it is (see README "Reliability").
    tempfile::Builder::new()
        .prefix(".ocirender-pull-")
        .suffix(".partial")
        .tempdir_in(&dir)
        .map_err(|e| Error::io("create a temporary directory in", dir, e))
}
