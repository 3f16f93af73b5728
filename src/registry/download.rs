//! Blob downloads: bounded concurrency, newest layer first, digest checked while the bytes
//! stream, retries with backoff, resumption with `Range`, and a reader that follows a blob
//! while it is still arriving.
//!
//! ```text
//! queue (newest first) ──► N workers ──► GET blobs/<digest> ──► file (append only) ──► Growth
//!                                        Range: bytes=<have>-    hash + count          │ written,
//!                                        on a retry               progress per MiB      │ ended?
//!                                                                                       ▼
//!                                  Follower: blocking Read over the same file, never past
//!                                  `written`; waits for more, EOF at the end, error on failure
//! ```
//!
//! The file only grows: a retry that gets the whole blob again (a server that ignores `Range`)
//! skips the bytes already written, which are the same bytes (the digest names the content).
//! So a follower that has read a prefix never sees it change, and the hash over the file is
//! computed once, as the bytes arrive. A digest or size mismatch is final: the registry serves
//! the wrong content, and trying again would not change what was already handed on.
//!
//! Every way out of a download — success, a final error, the task being aborted — ends its
//! [`Growth`], so a follower blocked in `read` always wakes up.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};

use reqwest::StatusCode;
use tokio::task::JoinSet;

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use crate::options::ProgressFn;
use crate::progress::Progress;

use super::client::{with_attempts, Attempt, Client};
use super::manifest::BlobRef;

/// Bytes between two [`Progress::Download`] events of one blob.
const PROGRESS_STEP: u64 = 1 << 20;

/// How far a blob's download has come, shared with the readers that follow it.
#[derive(Default)]
pub(crate) struct Growth {
    state: Mutex<GrowState>,
    changed: Condvar,
}

#[derive(Default)]
struct GrowState {
    /// Bytes in the file that are final.
    written: u64,
    /// `Some(true)`: complete and verified; `Some(false)`: failed or abandoned.
    ended: Option<bool>,
}

impl Growth {
    fn update(&self, f: impl FnOnce(&mut GrowState)) {
        // A poisoned lock means a follower panicked; its state is still a plain counter.
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st);
        self.changed.notify_all();
    }

    fn advance(&self, written: u64) {
        self.update(|st| st.written = written);
    }

    fn complete(&self) {
        self.update(|st| st.ended = Some(true));
    }

    /// Ends the blob as failed, unless it already ended.
    pub(crate) fn fail(&self) {
        self.update(|st| {
            st.ended.get_or_insert(false);
        });
    }
}

/// Reads a blob's file as it grows: blocks until bytes past its position are final, returns
/// EOF once the download is complete, and fails once the download failed.
pub(crate) struct Follower {
    file: File,
    pos: u64,
    growth: Arc<Growth>,
}

impl Follower {
    pub(crate) fn new(file: File, growth: Arc<Growth>) -> Follower {
        Follower {
            file,
            pos: 0,
            growth,
        }
    }
}

impl Read for Follower {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let available = {
            let g = &self.growth;
            let mut st = g.state.lock().unwrap_or_else(|p| p.into_inner());
            while st.written <= self.pos && st.ended.is_none() {
                st = g.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            match st.ended {
                Some(false) => return Err(io::Error::from(Error::Stopped)),
                _ if st.written <= self.pos => return Ok(0),
                _ => st.written - self.pos,
            }
        };
        let want = buf
            .len()
            .min(usize::try_from(available).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// One blob to download into an open file.
pub(crate) struct Job {
    /// The blob.
    pub blob: BlobRef,
    /// Whether it is a layer (layers report progress and carry their index in errors).
    pub is_layer: bool,
    /// The file it goes to, empty and open for writing.
    pub file: File,
    /// The file's path, for messages.
    pub path: PathBuf,
    /// Its followers' view.
    pub growth: Arc<Growth>,
}

/// Downloads every job with `concurrency` workers, in the order given. Returns the first
/// final error (tagged with the layer) after ending every unfinished job's [`Growth`]; the
/// remaining downloads are aborted.
pub(crate) async fn download_all(
    client: Arc<Client>,
    jobs: Vec<Job>,
    concurrency: usize,
    progress: Option<ProgressFn>,
) -> Result<()> {
    let growths: Vec<Arc<Growth>> = jobs.iter().map(|j| j.growth.clone()).collect();
    let workers = concurrency.min(jobs.len()).max(1);
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<Job>>()));
    let mut set = JoinSet::new();
    for _ in 0..workers {
        let (client, queue, progress) = (client.clone(), queue.clone(), progress.clone());
        set.spawn(async move {
            loop {
                let job = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                let Some(job) = job else { return Ok(()) };
                download(&client, job, progress.as_ref()).await?;
            }
        });
    }
    let fail_all = |e: Error| {
        for g in &growths {
            g.fail();
        }
        e
    };
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(fail_all(e)),
            // A worker that panicked (a bug) or was cancelled: stop everything.
            Err(_) => return Err(fail_all(Error::Stopped)),
        }
    }
    Ok(())
}

/// Ends the growth as failed if the download did not complete (an error or an abort).
struct EndGuard(Arc<Growth>);

impl Drop for EndGuard {
    fn drop(&mut self) {
        self.0.fail();
    }
}

/// Downloads one blob into its file.
pub(crate) async fn download(
    client: &Client,
    mut job: Job,
    progress: Option<&ProgressFn>,
) -> Result<()> {
    let guard = EndGuard(job.growth.clone());
    let blob = job.blob.clone();
    let is_layer = job.is_layer;
    let tag = |e: Error| {
        if is_layer {
            e.in_layer(blob.index, &blob.digest)
        } else {
            e
        }
    };
    let mut state = Transfer {
        have: 0,
        hasher: Hasher::new(blob.digest.algorithm()),
        reported: 0,
        progress: progress.filter(|_| is_layer),
    };
    let request = format!("GET /v2/{}/blobs/{}", client.repository(), blob.digest);
    let mut attempt = 1;
    loop {
        match state.attempt(client, &mut job, &request, attempt).await {
            Attempt::Done(()) => break,
            Attempt::Final(e) => return Err(tag(e)),
            Attempt::Transient(e, asked) => {
                if attempt >= client.attempts() {
                    return Err(tag(with_attempts(e, attempt)));
                }
                if let Some(p) = state.progress {
                    p(&Progress::DownloadRetry {
                        index: blob.index,
                        attempt: attempt + 1,
                        reason: e.report().to_string(),
                    });
                }
                tokio::time::sleep(client.backoff(attempt, asked)).await;
                attempt += 1;
            }
        }
    }
    if let Some(expected) = blob.size {
        if state.have != expected {
            return Err(tag(Error::SizeMismatch {
                digest: blob.digest.clone(),
                expected,
                found: state.have,
            }));
        }
    }
    let found = state.hasher.finish();
    if found != blob.digest {
        return Err(tag(Error::DigestMismatch {
            expected: blob.digest.clone(),
            found,
        }));
    }
    if let Some(p) = state.progress {
        p(&Progress::Download {
            index: blob.index,
            bytes: state.have,
            size: blob.size,
        });
    }
    job.growth.complete();
    drop(guard);
    Ok(())
}

/// What a download has so far, across attempts.
struct Transfer<'p> {
    have: u64,
    hasher: Hasher,
    reported: u64,
    progress: Option<&'p ProgressFn>,
}

impl Transfer<'_> {
    /// One request: from `have` on when something is already there.
    async fn attempt(
        &mut self,
        client: &Client,
        job: &mut Job,
        request: &str,
        attempt: u32,
    ) -> Attempt<()> {
        let blob = &job.blob;
        let what = format!("blobs/{}", blob.digest);
        let mut resp = match client.get(&what, None, Some(self.have)).await {
            Ok(r) => r,
            Err((e, true)) => return Attempt::Transient(e, None),
            Err((e, false)) => return Attempt::Final(e),
        };
        // Where the body starts in the blob.
        let start = match resp.status() {
            StatusCode::OK => 0,
            StatusCode::PARTIAL_CONTENT => match content_range_start(resp.headers()) {
                Some(s) if s <= self.have => s,
                _ => {
                    return Attempt::Final(Error::HttpStatus {
                        registry: client.registry().to_owned(),
                        request: request.to_owned(),
                        status: resp.status().to_string(),
                        message: format!(
                            "the partial answer does not start at or before byte {}",
                            self.have
                        ),
                        attempts: attempt,
                    })
                }
            },
            StatusCode::RANGE_NOT_SATISFIABLE if Some(self.have) == blob.size => {
                return Attempt::Done(())
            }
            _ => return client.status_failure(request, resp, attempt).await,
        };
        let mut skip = self.have - start;
        loop {
            let chunk = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => return Attempt::Transient(client.transport(request, e), None),
            };
            let mut data = &chunk[..];
            if skip > 0 {
                let n = data.len().min(usize::try_from(skip).unwrap_or(usize::MAX));
                data = &data[n..];
                skip -= n as u64;
            }
            if data.is_empty() {
                continue;
            }
            let now = self.have + data.len() as u64;
            if let Some(expected) = blob.size.filter(|&s| now > s) {
                return Attempt::Final(Error::SizeMismatch {
                    digest: blob.digest.clone(),
                    expected,
                    found: now,
                });
            }
            if let Err(e) = job.file.write_all(data) {
                return Attempt::Final(Error::io("write", job.path.clone(), e));
            }
            self.hasher.update(data);
            self.have = now;
            job.growth.advance(now);
            if let Some(p) = self.progress {
                if now - self.reported >= PROGRESS_STEP {
                    self.reported = now;
                    p(&Progress::Download {
                        index: blob.index,
                        bytes: now,
                        size: blob.size,
                    });
                }
            }
        }
        // A body that ended cleanly but short (a close-delimited answer cut off) is resumed.
        match blob.size {
            Some(size) if self.have < size => Attempt::Transient(
                Error::Transport {
                    registry: client.registry().to_owned(),
                    request: request.to_owned(),
                    attempts: attempt,
                    source: format!("the answer ended after {} of {size} bytes", self.have).into(),
                },
                None,
            ),
            _ => Attempt::Done(()),
        }
    }
}

/// The first byte of a `Content-Range: bytes S-E/T` answer.
fn content_range_start(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    let v = headers.get(reqwest::header::CONTENT_RANGE)?.to_str().ok()?;
    let range = v.trim().strip_prefix("bytes")?.trim_start();
    range.split('-').next()?.trim().parse().ok()
}

/// Checks that an existing file holds exactly the blob (for a fetch into a layout that
/// already has some blobs).
pub(crate) fn file_matches(path: &std::path::Path, digest: &Digest, size: Option<u64>) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if let (Some(size), Ok(m)) = (size, f.metadata()) {
        if m.len() != size {
            return false;
        }
    }
    let mut h = Hasher::new(digest.algorithm());
    let mut buf = vec![0u8; 256 << 10];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => h.update(&buf[..n]),
            Err(_) => return false,
        }
    }
    &h.finish() == digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follower_reads_only_what_is_final_and_ends_with_the_download() {
        let t = tempfile::tempdir().unwrap();
        let path = t.path().join("blob");
        let mut w = File::create(&path).unwrap();
        let g = Arc::new(Growth::default());
        let mut f = Follower::new(File::open(&path).unwrap(), g.clone());
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            f.read_to_end(&mut out).map(|_| out)
        });
        // Bytes written but not yet declared final are not read.
        w.write_all(b"hello ").unwrap();
        g.advance(6);
        w.write_all(b"world, and more").unwrap();
        g.advance(11);
        g.complete();
        assert_eq!(reader.join().unwrap().unwrap(), b"hello world");

        let g = Arc::new(Growth::default());
        let mut f = Follower::new(File::open(&path).unwrap(), g.clone());
        let reader = std::thread::spawn(move || {
            let mut out = Vec::new();
            f.read_to_end(&mut out)
        });
        g.advance(3);
        drop(EndGuard(g));
        let err = reader.join().unwrap().unwrap_err();
        let err = Error::from_io(err, |e| Error::Tar { source: e });
        assert!(matches!(err, Error::Stopped), "{err}");
    }

    #[test]
    fn content_ranges() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(
            reqwest::header::CONTENT_RANGE,
            "bytes 100-199/200".parse().unwrap(),
        );
        assert_eq!(content_range_start(&h), Some(100));
        h.insert(
            reqwest::header::CONTENT_RANGE,
            "bytes */200".parse().unwrap(),
        );
        assert_eq!(content_range_start(&h), None);
    }
}
