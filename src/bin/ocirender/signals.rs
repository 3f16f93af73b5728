//! SIGINT and SIGTERM for the commands that write (`convert`, `pull`, `fetch`).
//!
//! ```text
//! signal thread (own small runtime) ──first signal──► CancelToken::cancel ──► the library stops
//!                                   │                 at its next check, removes what it wrote,
//!                                   │                 returns; the command exits 130 / 143
//!                                   └─second signal─► exit at once (128 + signal number)
//! ```
//!
//! Why a thread of its own: `convert` blocks the main thread without an async runtime, and the
//! watcher must be in place before the command starts writing, so that from then on no signal
//! kills the process by default action with a partial output left behind. The exit statuses
//! are the shell's convention for a death by signal (128 + 2, 128 + 15), which scripts test.

use std::fmt;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use ocirender::CancelToken;
use tokio::signal::unix::{signal, SignalKind};

/// The signals handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGINT (Ctrl-C).
    Int,
    /// SIGTERM (`kill`, a service manager stopping us).
    Term,
}

impl Signal {
    /// The signal's name, as `kill -l` spells it with its prefix.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Int => "SIGINT",
            Signal::Term => "SIGTERM",
        }
    }

    /// 128 + the signal's number.
    pub fn exit_code(self) -> u8 {
        match self {
            Signal::Int => 130,
            Signal::Term => 143,
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Watches SIGINT and SIGTERM for the rest of the process's life.
pub struct Signals {
    token: CancelToken,
    received: Arc<OnceLock<Signal>>,
}

impl Signals {
    /// Installs the handlers (before this returns) and starts the watcher thread.
    pub fn watch() -> anyhow::Result<Signals> {
        let token = CancelToken::new();
        let received = Arc::new(OnceLock::new());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
        let (cancel, first) = (token.clone(), received.clone());
        std::thread::Builder::new()
            .name("ocirender-signals".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                runtime.block_on(async move {
                    let (mut int, mut term) = match signal(SignalKind::interrupt())
                        .and_then(|i| Ok((i, signal(SignalKind::terminate())?)))
                    {
                        Ok(streams) => {
                            let _ = ready_tx.send(Ok(()));
                            streams
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    loop {
                        let got = tokio::select! {
                            Some(()) = int.recv() => Signal::Int,
                            Some(()) = term.recv() => Signal::Term,
                            else => return,
                        };
                        if first.set(got).is_err() {
                            eprintln!(
                                "ocirender: {got} again: exiting at once; a partial output \
                                 may be left, named *.partial"
                            );
                            std::process::exit(got.exit_code().into());
                        }
                        cancel.cancel();
                    }
                });
            })
            .context("cannot start the signal watcher")?;
        ready_rx
            .recv()
            .context("the signal watcher ended early")?
            .context("cannot watch SIGINT and SIGTERM")?;
        Ok(Signals { token, received })
    }

    /// The token that the first signal cancels.
    pub fn token(&self) -> CancelToken {
        self.token.clone()
    }

    /// The first signal received, if any.
    pub fn received(&self) -> Option<Signal> {
        self.received.get().copied()
    }
}

/// A command stopped by a signal, after cleaning up: `main` prints it and exits with the
/// signal's status.
#[derive(Debug)]
pub struct Interrupted {
    /// The first signal.
    pub signal: Signal,
    /// What was done about the partial output.
    pub cleanup: String,
}

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupted ({}): {}", self.signal, self.cleanup)
    }
}

impl std::error::Error for Interrupted {}
