//! [`CancelToken`]: a request to stop a conversion, from another thread (a signal handler's
//! watcher, a UI, a deadline).
//!
//! ```text
//! caller ──cancel()──► Arc<flag> ◄── checked by: the merge, before each entry and each read of
//!                                    layer or file data (one relaxed atomic load per read)
//!                                    the second-pass resolver, per read of a layer
//!                                    the streaming packer and `registry::pull` (woken at once)
//! ```
//!
//! Why a flag polled at those points rather than killing threads: every stage then ends through
//! its ordinary error path, so each guard's `Drop` runs and removes what the run created (the
//! partial output file or directory, spool and copy files), and the conversion returns
//! [`Error::Interrupted`] only once all of that is done. A read that blocks (a caller-supplied
//! reader waiting for data) cannot be cut short; it is noticed when that read returns.

use std::fmt;
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A cheap, cloneable request to stop: every clone sees [`CancelToken::cancel`] of any other.
///
/// ```no_run
/// # use ocirender::{convert, CancelToken, ConvertOptions, Image, ImageSpec};
/// # fn example(image: &Image, spec: &ImageSpec) {
/// let cancel = CancelToken::new();
/// let options = ConvertOptions::default().cancel(cancel.clone());
/// // From another thread: `cancel.cancel()`, and `convert` returns `Error::Interrupted`
/// // after removing its partial output.
/// let result = convert(image, spec, &options);
/// # }
/// ```
#[derive(Clone, Default)]
pub struct CancelToken {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    cancelled: AtomicBool,
    /// Wakes the async waiters of [`CancelToken::cancelled`].
    #[cfg(feature = "async")]
    notify: tokio::sync::Notify,
}

impl CancelToken {
    /// A token that has not been cancelled.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks every holder of a clone to stop. Cancelling twice is the same as once.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        #[cfg(feature = "async")]
        self.inner.notify.notify_waiters();
    }

    /// Whether [`CancelToken::cancel`] was called on this token or a clone.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::Relaxed)
    }

    /// [`Error::Interrupted`] once cancelled.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_cancelled() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }

    /// Completes once the token is cancelled (at once if it already is).
    #[cfg(feature = "async")]
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a cancel between the two is not missed.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }

    /// `inner`, failing each read with [`Error::Interrupted`] (inside an [`io::Error`]) once
    /// the token is cancelled.
    pub(crate) fn reader<R: Read>(&self, inner: R) -> Cancellable<'_, R> {
        Cancellable { inner, token: self }
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken")
            .field("cancelled", &self.is_cancelled())
            .finish()
    }
}

/// A reader that stops at a cancelled [`CancelToken`]; see [`CancelToken::reader`].
pub(crate) struct Cancellable<'a, R> {
    inner: R,
    token: &'a CancelToken,
}

impl<R: Read> Read for Cancellable<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Of kind `Other` (see `From<Error> for io::Error`), never `Interrupted`, which read
        // loops retry.
        self.token.check().map_err(io::Error::from)?;
        self.inner.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_request() {
        let a = CancelToken::new();
        let b = a.clone();
        assert!(!b.is_cancelled() && b.check().is_ok());
        a.cancel();
        assert!(b.is_cancelled());
        assert!(matches!(b.check(), Err(Error::Interrupted)));
        assert!(!CancelToken::new().is_cancelled(), "a new token is its own");
    }

    #[test]
    fn reader_stops_once_cancelled() {
        let token = CancelToken::new();
        let data = [7u8; 10];
        let mut r = token.reader(&data[..]);
        let mut buf = [0u8; 4];
        assert_eq!(r.read(&mut buf).unwrap(), 4);
        token.cancel();
        let e = r.read(&mut buf).unwrap_err();
        let e = Error::from_io(e, |e| Error::Tar { source: e });
        assert!(matches!(e, Error::Interrupted), "{e:?}");
    }

    #[cfg(feature = "async")]
    #[test]
    fn cancelled_wakes_a_waiter() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let token = CancelToken::new();
        let t2 = token.clone();
        let waiter = std::thread::spawn(move || rt.block_on(t2.cancelled()));
        std::thread::sleep(std::time::Duration::from_millis(20));
        token.cancel();
        waiter.join().unwrap();
        // Already cancelled: completes at once.
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(token.cancelled());
    }
}
