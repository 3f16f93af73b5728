//! Renders the library's progress events: an indicatif bar on a terminal, log lines with
//! `--progress=plain`, nothing with `--quiet`. Warnings are always printed unless quiet.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};
use ocirender::{Progress, ProgressFn};

use crate::args::ProgressMode;

struct State {
    bar: Option<ProgressBar>,
    plain: bool,
    quiet: bool,
    layer_bytes: HashMap<usize, u64>,
    /// Downloaded bytes per layer (registry pulls).
    downloaded: HashMap<usize, u64>,
    layers: usize,
    layers_done: usize,
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
    let state = Arc::new(Mutex::new(State {
        bar,
        plain: !quiet && mode == ProgressMode::Plain,
        quiet,
        layer_bytes: HashMap::new(),
        downloaded: HashMap::new(),
        layers: 0,
        layers_done: 0,
        last_line: Instant::now(),
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
                if self.plain {
                    eprintln!(
                        "{} layers, {} compressed",
                        layers,
                        HumanBytes(*compressed_bytes)
                    );
                }
            }
            Progress::LayerStarted { index, size } => {
                if self.plain {
                    let size = size.map(|s| HumanBytes(s).to_string()).unwrap_or_default();
                    eprintln!("layer {index}: started {size}");
                }
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
                if self.plain {
                    eprintln!("layer {index}: done ({}/{})", self.layers_done, self.layers);
                }
                self.message();
            }
            Progress::Written { entries, bytes }
                if self.plain && self.last_line.elapsed() > Duration::from_secs(5) =>
            {
                self.last_line = Instant::now();
                eprintln!("{entries} entries, {} written", HumanBytes(*bytes));
            }
            Progress::Download { index, bytes, size } => {
                self.downloaded.insert(*index, *bytes);
                if self.plain && Some(*bytes) == *size {
                    eprintln!("layer {index}: downloaded {}", HumanBytes(*bytes));
                }
                self.message();
            }
            Progress::DownloadRetry {
                index,
                attempt,
                reason,
            } if !self.quiet => {
                self.line(format!(
                    "layer {index}: retrying (attempt {attempt}): {reason}"
                ));
            }
            Progress::Warning(w) if !self.quiet => self.line(format!("warning: {w}")),
            Progress::Finished(_) => {
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
            _ => {}
        }
    }

    /// A line of its own, above the bar when there is one.
    fn line(&self, line: String) {
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn message(&self) {
        if let Some(b) = &self.bar {
            let mut m = format!("layers {}/{}", self.layers_done, self.layers);
            if !self.downloaded.is_empty() {
                let down: u64 = self.downloaded.values().sum();
                m.push_str(&format!(", {} downloaded", HumanBytes(down)));
            }
            b.set_message(m);
        }
    }
}
