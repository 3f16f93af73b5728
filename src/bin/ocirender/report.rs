//! Renders the library's progress events: an indicatif bar on a terminal (compressed bytes read
//! of all layers, rate, ETA, layers done, entries written, squashfs backlog), log lines with
//! `--progress=plain` (one per layer start and end, a counter line at most every 5 seconds),
//! download lines and retries for `pull`, nothing with `--quiet` or `--progress=none`. Warnings are printed once, from the summary, by
//! the caller.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocirender::{Progress, ProgressFn};

use crate::args::ProgressMode;

/// Seconds between two counter lines in plain mode.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

struct State {
    bar: Option<ProgressBar>,
    plain: bool,
    /// Compressed bytes read, per layer (decoders run concurrently).
    layer_bytes: HashMap<usize, u64>,
    /// Downloaded bytes per layer (registry pulls).
    downloaded: HashMap<usize, u64>,
    /// Nothing at all is printed (retries included).
    quiet: bool,
    layers: usize,
    layers_done: usize,
    entries: u64,
    written: u64,
    backlog: usize,
    /// Bytes of blocks copied from a previous image (`--reuse`).
    reused: u64,
    /// Bytes of the squashfs tree spilled to disk (`--memory-limit`).
    spilled: u64,
    /// Bytes of the merge's path table paged out to disk (`--memory-limit`).
    paged: u64,
    last_line: Instant,
}

/// Builds the progress callback for a conversion.
pub fn reporter(mode: ProgressMode, quiet: bool) -> ProgressFn {
    let bar_wanted = !quiet && mode == ProgressMode::Auto && std::io::stderr().is_terminal();
    let bar = bar_wanted.then(|| {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    });
    let now = Instant::now();
    let state = Arc::new(Mutex::new(State {
        bar,
        plain: !quiet && mode == ProgressMode::Plain,
        layer_bytes: HashMap::new(),
        downloaded: HashMap::new(),
        quiet,
        layers: 0,
        layers_done: 0,
        entries: 0,
        written: 0,
        backlog: 0,
        reused: 0,
        spilled: 0,
        paged: 0,
        last_line: now,
    }));
    Arc::new(move |event: &Progress| {
        let Ok(mut st) = state.lock() else { return };
        st.handle(event);
    })
}

impl State {
    fn handle(&mut self, event: &Progress) {
        match event {
            Progress::Started {
                layers,
                compressed_bytes,
            } => {
                self.layers = *layers;
                if let Some(b) = &self.bar {
                    b.set_length(*compressed_bytes);
                }
                self.line(format_args!(
                    "{} layers, {} compressed",
                    layers,
                    HumanBytes(*compressed_bytes)
                ));
            }
            Progress::LayerStarted { index, size } => {
                let size = size.map(|s| format!(" ({})", HumanBytes(s)));
                self.line(format_args!(
                    "layer {index}: merging{}",
                    size.unwrap_or_default()
                ));
                self.message();
            }
            Progress::LayerRead { index, bytes } => {
                self.layer_bytes.insert(*index, *bytes);
                if let Some(b) = &self.bar {
                    b.set_position(self.layer_bytes.values().sum());
                }
            }
            Progress::LayerFinished { index } => {
                self.layers_done += 1;
                self.line(format_args!(
                    "layer {index}: done ({}/{} layers, {} entries, {} written)",
                    self.layers_done,
                    self.layers,
                    self.entries,
                    HumanBytes(self.written)
                ));
                self.message();
            }
            Progress::Written { entries, bytes } => {
                self.entries = *entries;
                self.written = *bytes;
                if self.last_line.elapsed() >= PLAIN_INTERVAL {
                    self.last_line = Instant::now();
                    self.line(format_args!(
                        "{entries} entries, {} written, {} read, backlog {} blocks{}",
                        HumanBytes(*bytes),
                        HumanBytes(self.layer_bytes.values().sum()),
                        self.backlog,
                        self.reused_text()
                    ));
                }
                self.message();
            }
            Progress::Spilled { bytes, runs } => {
                if *runs <= 1 {
                    self.line(format_args!(
                        "memory budget reached: the squashfs tree goes on in sorted runs on disk"
                    ));
                }
                self.spilled = *bytes;
                self.message();
            }
            Progress::Paged { bytes } => {
                if self.paged == 0 {
                    self.line(format_args!(
                        "memory budget reached: the merge's path table keeps its least used pages on disk"
                    ));
                }
                self.paged = *bytes;
                self.message();
            }
            Progress::Backlog { blocks } => self.backlog = *blocks,
            Progress::Reused { bytes, .. } => self.reused = *bytes,
            Progress::SecondPass { why } => {
                self.layers_done = 0;
                self.entries = 0;
                self.written = 0;
                self.layer_bytes.clear();
                if let Some(b) = &self.bar {
                    b.set_position(0);
                }
                self.line(format_args!(
                    "converting again with symlinks resolved in layer order: {why}"
                ));
                self.message();
            }
            Progress::Download { index, bytes, size } => {
                self.downloaded.insert(*index, *bytes);
                if Some(*bytes) == *size {
                    self.line(format_args!(
                        "layer {index}: downloaded {}",
                        HumanBytes(*bytes)
                    ));
                }
                self.message();
            }
            // A retry is worth seeing even with a bar: the pull is slower than it should be.
            Progress::DownloadRetry {
                index,
                attempt,
                reason,
            } if !self.quiet => {
                let text = format!("layer {index}: retrying (attempt {attempt}): {reason}");
                match &self.bar {
                    Some(b) => b.println(text),
                    None => eprintln!("{text}"),
                }
            }
            // The command prints the summary line itself.
            Progress::Finished(_) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    /// A log line, in plain mode only.
    fn line(&self, text: std::fmt::Arguments<'_>) {
        if self.plain {
            eprintln!("{text}");
        }
    }

    fn message(&self) {
        if let Some(b) = &self.bar {
            let backlog = if self.backlog > 0 {
                format!(", backlog {}", self.backlog)
            } else {
                String::new()
            };
            let downloaded = if self.downloaded.is_empty() {
                String::new()
            } else {
                let down: u64 = self.downloaded.values().sum();
                format!(", {} downloaded", HumanBytes(down))
            };
            b.set_message(format!(
                "layers {}/{}, {} entries{backlog}{downloaded}{}",
                self.layers_done,
                self.layers,
                self.entries,
                self.reused_text()
            ));
        }
    }

    fn reused_text(&self) -> String {
        let mut text = String::new();
        if self.reused > 0 {
            text += &format!(", {} reused", HumanBytes(self.reused));
        }
        if self.spilled + self.paged > 0 {
            text += &format!(", {} spilled", HumanBytes(self.spilled + self.paged));
        }
        text
    }
}
