//! Interrupted and racing runs (issue 17, points 2 and 5): whatever stops a conversion, the
//! output path holds the whole output or nothing, and nothing else is left beside it.
//!
//! - The CLI: the real binary converts a generated image of about 200 MiB while a test
//!   sends SIGINT or SIGTERM at several moments (as soon as the output is open, after half the
//!   layers, during the last layer), for every format. It must exit 130 or 143 with one
//!   `interrupted (SIG…): removed the partial output OUT` line and leave the work directory as
//!   it was; or, if it had finished before the signal landed, exit 0 with a complete output.
//!   kill -9 cannot be handled: the one thing it may leave is named `.NAME.XXXXXX.partial`.
//! - `pull` and `fetch`, stopped by a signal while waiting for a registry that never answers,
//!   exit the same way.
//! - The library: a [`CancelToken`] cancelled at each stage of `convert` (before it starts, at
//!   each progress event kind, in the middle of a file's data) gives `Error::Interrupted` and a
//!   clean directory, for every format; the streaming packer stops on the same token even
//!   while it waits for a layer that never comes.
//! - Two conversions racing to one output end with one complete output and no partial file.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::support::builder::{noise, ImageBuilder, Layer};
use crate::support::outputs::{open_image, output_path};
use ocirender::{
    convert, CancelToken, ConvertOptions, Entry, EntryKind, EntryPath, Error, Format, ImageSpec,
    Merger, Metadata, Progress,
};
use rustix::process::{kill_process, Pid, Signal};

// ---------------------------------------------------------------------------------------------
// Images

/// Layers of the big image.
const BIG_LAYERS: usize = 4;
/// Small files per layer of the big image.
const BIG_FILES: usize = 1200;
/// Size of each small file.
const SMALL: usize = 4096;
/// Size of the one big file in each layer (in the middle of the layer's stream).
const BIG: usize = 48 << 20;
/// Entries of the big image: per layer its directory, 12 subdirectories, the small files and
/// the big one; plus the root.
const BIG_ENTRIES: usize = BIG_LAYERS * (1 + 12 + BIG_FILES + 1) + 1;
/// Bumped whenever the big image changes, so that a cached copy is rebuilt.
const BIG_VERSION: u32 = 1;

/// The big image: about 200 MiB of incompressible data in plain tar layers, so that each
/// conversion takes a second or more (on 2 shared cores: squashfs with gzip:1 5 s, tar 1 s,
/// dir 3.7 s). Built once, under cargo's
/// target temporary directory (renamed into place whole), and reused by later runs.
fn big_image() -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    IMAGE.get_or_init(|| {
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = tmp.join(format!("interrupt-image-v{BIG_VERSION}"));
        if dir.join("index.json").exists() {
            return dir;
        }
        let work = tempfile::tempdir_in(tmp).unwrap();
        let layers = (0..BIG_LAYERS).map(|k| {
            let mut layer = Layer::new().dir(format!("l{k}"), 0o755);
            for d in 0..12 {
                layer = layer.dir(format!("l{k}/d{d}"), 0o755);
            }
            for i in 0..BIG_FILES {
                if i == BIG_FILES / 2 {
                    layer = layer.file(format!("l{k}/big"), noise(BIG, 1000 + k as u64), 0o644);
                }
                let seed = (k * BIG_FILES + i) as u64;
                let name = format!("l{k}/d{}/f{i}", i % 12);
                layer = layer.file(name, noise(SMALL, seed), 0o644);
            }
            layer
        });
        ImageBuilder::new()
            .layers(layers)
            .build(work.path().join("img"));
        // Another test process may have won the race: its copy is as good as ours.
        if std::fs::rename(work.path().join("img"), &dir).is_err() {
            assert!(dir.join("index.json").exists(), "cannot place {dir:?}");
        }
        dir
    })
}

/// A small image: three layers, one of them a 24 MiB file, some entries in each.
fn small_image(dir: &Path) -> PathBuf {
    let path = dir.join("small");
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
                .file("etc/motd", b"hello\n", 0o644),
        )
        .layer(
            Layer::new()
                .dir("data", 0o700)
                .file("data/big", noise(24 << 20, 7), 0o600)
                .file("data/after", b"after\n", 0o644),
        )
        .layer(
            Layer::new()
                .file("etc/motd", b"replaced\n", 0o644)
                .hardlink("etc/motd2", "etc/motd")
                .symlink("link", "etc/passwd"),
        )
        .build(&path);
    path
}

/// What is in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Entries of a complete output of the big image, counted by an independent reader.
fn count_entries(target: &Path, format: Format) -> usize {
    let lines = |cmd: &mut Command| {
        let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        assert!(out.status.success(), "{cmd:?}: {}", out.status);
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    match format {
        // `squashfs-root` and then every path beneath it.
        Format::Squashfs => lines(
            Command::new("unsquashfs")
                .args(["-no-progress", "-l"])
                .arg(target),
        ),
        Format::Tar => lines(Command::new("tar").arg("-tf").arg(target)),
        Format::Dir => walk(target) + 1,
    }
}

fn walk(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            1 + if e.file_type().unwrap().is_dir() {
                walk(&e.path())
            } else {
                0
            }
        })
        .sum()
}

// ---------------------------------------------------------------------------------------------
// The CLI, signalled

/// A running `ocirender convert`, its stderr read line by line.
struct Run {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Run {
    fn convert(image: &Path, target: &Path, format: Format) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocirender"));
        cmd.args(["convert", "--progress=plain", "--format", format.name()]);
        if format == Format::Squashfs {
            // gzip on incompressible data (about 5 s here, where zstd takes 1 s): the
            // compression backlog is full when the signal comes.
            cmd.args(["--compression", "gzip:1"]);
        }
        cmd.arg(image).arg(target);
        Run::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Run {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run ocirender");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Run {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stderr line containing `text`; false if the process ended first.
    fn wait_for(&mut self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let hit = line.contains(text);
                    self.seen.push(line);
                    if hit {
                        return true;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
        panic!("no line with {text:?} within 120 s: {:?}", self.seen);
    }

    fn signal(&self, signal: Signal) {
        // It may have ended already (ESRCH), which the caller's check of the status covers.
        let _ = kill_process(Pid::from_child(&self.child), signal);
    }

    /// Waits for the process; its status and every stderr line.
    fn finish(mut self) -> (ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, self.seen)
    }
}

/// When a signal is sent, by the progress line that announces the moment.
#[derive(Clone, Copy, Debug)]
enum Moment {
    /// The output is open and nothing is written yet (`N layers, … compressed`).
    Early,
    /// Half the layers are merged.
    Mid,
    /// The last (oldest) layer is being merged.
    Late,
}

impl Moment {
    const ALL: [Moment; 3] = [Moment::Early, Moment::Mid, Moment::Late];

    fn line(self) -> String {
        match self {
            Moment::Early => "compressed".to_owned(),
            Moment::Mid => format!("layer {}: done", BIG_LAYERS / 2),
            Moment::Late => "layer 0: merging".to_owned(),
        }
    }
}

/// Converts the big image to `format`, sends `signal` at `moment`, and checks the outcome:
/// interrupted (130/143, the message, the work directory as it was) or finished (0, complete).
/// Returns whether it was interrupted.
/// The exit status and signal name the CLI reports for `signal` (130/143, as shells do).
fn expected_exit(signal: Signal) -> (i32, &'static str) {
    if signal == Signal::INT {
        (130, "SIGINT")
    } else {
        (143, "SIGTERM")
    }
}

fn interrupt_once(format: Format, signal: Signal, moment: Moment, existing_dir: bool) -> bool {
    let work = tempfile::tempdir().unwrap();
    let target = output_path(work.path(), format);
    if existing_dir {
        std::fs::create_dir(&target).unwrap();
    }
    let before = listing(work.path());
    let mut run = Run::convert(big_image(), &target, format);
    let context = format!("{format:?}, {signal:?} at {moment:?}");
    assert!(
        run.wait_for(&moment.line()),
        "{context}: ended before the moment: {:?}",
        run.finish()
    );
    run.signal(signal);
    let (status, lines) = run.finish();
    let (code, name) = expected_exit(signal);
    if status.code() == Some(0) {
        // It finished before the signal landed: then the output is whole.
        assert_eq!(count_entries(&target, format), BIG_ENTRIES, "{context}");
        let mut expected = before.clone();
        expected.retain(|n| *n != target.file_name().unwrap().to_string_lossy());
        expected.push(target.file_name().unwrap().to_string_lossy().into_owned());
        expected.sort();
        assert_eq!(listing(work.path()), expected, "{context}: finished");
        return false;
    }
    assert_eq!(status.code(), Some(code), "{context}: {status}: {lines:?}");
    let message = format!(
        "ocirender: interrupted ({name}): removed the partial output {}",
        target.display()
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("ocirender:"))
            .collect::<Vec<_>>(),
        vec![&message],
        "{context}: stderr {lines:?}"
    );
    assert_eq!(listing(work.path()), before, "{context}: debris left");
    if existing_dir {
        assert!(
            listing(&target).is_empty(),
            "{context}: the existing directory is not empty again"
        );
    }
    true
}

/// Every signal at every moment for `format`; the early signal always lands mid-run.
fn interrupt_format(format: Format) {
    let mut interrupted = 0;
    for signal in [Signal::INT, Signal::TERM] {
        for moment in Moment::ALL {
            let stopped = interrupt_once(format, signal, moment, false);
            if matches!(moment, Moment::Early) {
                assert!(
                    stopped,
                    "{format:?}: the early {signal:?} did not interrupt"
                );
            }
            interrupted += usize::from(stopped);
        }
    }
    eprintln!("{format:?}: {interrupted} of 6 runs interrupted, the others had finished");
}

#[test]
fn signals_stop_squashfs_without_debris() {
    interrupt_format(Format::Squashfs);
}

#[test]
fn signals_stop_tar_without_debris() {
    interrupt_format(Format::Tar);
}

#[test]
fn signals_stop_dir_without_debris() {
    interrupt_format(Format::Dir);
    // An existing empty directory as the target: empty again afterwards.
    assert!(interrupt_once(
        Format::Dir,
        Signal::INT,
        Moment::Early,
        true
    ));
    interrupt_once(Format::Dir, Signal::TERM, Moment::Mid, true);
}

#[test]
fn a_second_signal_exits_at_once() {
    let work = tempfile::tempdir().unwrap();
    let target = output_path(work.path(), Format::Squashfs);
    let mut run = Run::convert(big_image(), &target, Format::Squashfs);
    assert!(run.wait_for(&Moment::Early.line()));
    run.signal(Signal::TERM);
    std::thread::sleep(Duration::from_millis(5));
    run.signal(Signal::INT);
    let (status, lines) = run.finish();
    // Either the first signal's clean-up was done before the second came (its status and
    // message), or the second cut it short (its status, and it says so; a `.partial` may be
    // left, which is what kill -9 leaves too). The watcher may take the two in either order
    // when both are pending.
    let name = match status.code() {
        Some(143) => "SIGTERM",
        Some(130) => "SIGINT",
        other => panic!("exit {other:?}: {lines:?}"),
    };
    assert!(
        lines.iter().any(|l| {
            l.starts_with(&format!(
                "ocirender: interrupted ({name}): removed the partial output"
            )) || l.starts_with(&format!("ocirender: {name} again: exiting at once"))
        }),
        "{name}: {lines:?}"
    );
    assert!(!target.exists(), "the output path holds a partial output");
}

#[test]
fn kill_9_leaves_only_a_partial_name() {
    for format in Format::ALL {
        let work = tempfile::tempdir().unwrap();
        let target = output_path(work.path(), format);
        let mut run = Run::convert(big_image(), &target, format);
        assert!(run.wait_for(&Moment::Mid.line()), "{format:?}");
        run.signal(Signal::KILL);
        let (status, lines) = run.finish();
        if status.code() == Some(0) {
            eprintln!("{format:?}: finished before kill -9");
            continue;
        }
        let left = listing(work.path());
        let name = target.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(left.len(), 1, "{format:?}: {left:?} ({lines:?})");
        let prefix = format!(".{name}.");
        let random = left[0]
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".partial"));
        assert!(
            random.is_some_and(|r| r.len() == 6),
            "{format:?}: the leftover {:?} is not named .{name}.XXXXXX.partial",
            left[0]
        );
        assert!(!target.exists(), "{format:?}: something at the final path");
        let kind = std::fs::symlink_metadata(work.path().join(&left[0])).unwrap();
        assert_eq!(kind.is_dir(), format == Format::Dir, "{format:?}");
    }
}

/// A registry that accepts connections and never answers: `pull` and `fetch` wait in their
/// first request until a signal stops them.
struct SilentRegistry {
    port: u16,
    connected: mpsc::Receiver<()>,
}

impl SilentRegistry {
    fn start() -> SilentRegistry {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, connected) = mpsc::channel();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                held.push(conn);
                if tx.send(()).is_err() {
                    return;
                }
            }
        });
        SilentRegistry { port, connected }
    }

    /// Waits until the command has connected (its signal watcher is in place by then).
    fn wait_for_connection(&self) {
        self.connected
            .recv_timeout(Duration::from_secs(60))
            .expect("the command never connected");
    }
}

/// `pull` and `fetch` stop on SIGINT and SIGTERM too, with their own message, and leave the
/// work directory as it was (`fetch` removes the layout directory it created).
#[test]
fn pull_and_fetch_stop_on_signals() {
    for (command, signal) in [("pull", Signal::TERM), ("fetch", Signal::INT)] {
        let registry = SilentRegistry::start();
        let work = tempfile::tempdir().unwrap();
        let target = work.path().join(if command == "pull" {
            "out.sqfs"
        } else {
            "layout"
        });
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocirender"));
        cmd.args([command, "--insecure"])
            .arg(format!("127.0.0.1:{}/sample/img:v1", registry.port))
            .arg(&target);
        let run = Run::spawn(cmd);
        registry.wait_for_connection();
        run.signal(signal);
        let (status, lines) = run.finish();
        let (code, name) = expected_exit(signal);
        assert_eq!(status.code(), Some(code), "{command}: {lines:?}");
        let expected = if command == "pull" {
            format!("removed the partial output {}", target.display())
        } else {
            format!("removed the partial downloads into {}", target.display())
        };
        assert_eq!(
            lines,
            vec![format!("ocirender: interrupted ({name}): {expected}")],
            "{command}"
        );
        assert_eq!(listing(work.path()), Vec::<String>::new(), "{command}");
    }
}

/// A failure with no signal is reported as the failure it is.
#[test]
fn a_signal_free_failure_is_not_an_interruption() {
    let work = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ocirender"))
        .args(["convert", "-q", "/nonexistent/image"])
        .arg(work.path().join("x.sqfs"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("interrupted"));
}

// ---------------------------------------------------------------------------------------------
// Two conversions, one output

#[test]
fn concurrent_converts_leave_one_complete_output() {
    let work = tempfile::tempdir().unwrap();
    let image = small_image(work.path());
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let target = output_path(out.path(), format);
        let runs: Vec<Child> = (0..2)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_ocirender"))
                    .args(["convert", "-q", "--format", format.name()])
                    .arg(&image)
                    .arg(&target)
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let results: Vec<(ExitStatus, String)> = runs
            .into_iter()
            .map(|mut c| {
                let mut err = String::new();
                c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
                (c.wait().unwrap(), err)
            })
            .collect();
        let ok = results.iter().filter(|(s, _)| s.success()).count();
        match format {
            // The later rename replaces the earlier file: both succeed.
            Format::Squashfs | Format::Tar => assert_eq!(ok, 2, "{format:?}: {results:?}"),
            // The later rename finds a full directory: it fails and removes its own tree,
            // unless it started after the first had finished (then it is refused at once).
            Format::Dir => {
                assert_eq!(ok, 1, "{format:?}: {results:?}");
                let (_, err) = results.iter().find(|(s, _)| !s.success()).unwrap();
                assert!(err.contains("already exists"), "{format:?}: {err}");
            }
        }
        assert_eq!(
            listing(out.path()),
            vec![target.file_name().unwrap().to_string_lossy().into_owned()],
            "{format:?}: only the output remains"
        );
        // 9 entries: ., etc, etc/passwd, etc/motd, etc/motd2, data, data/big, data/after, link.
        assert_eq!(count_entries(&target, format), 9, "{format:?}");
        if format == Format::Squashfs {
            let reader = ocirender::squashfs::SquashfsReader::open(&target).unwrap();
            drop(reader);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The library

/// Converts the small image to `format` with a token cancelled when `when` says so; returns
/// the result, having checked that the work directory holds nothing.
fn convert_cancelled(
    format: Format,
    when: impl Fn(&Progress) -> bool + Send + Sync + 'static,
) -> Result<ocirender::Summary, Error> {
    let work = tempfile::tempdir().unwrap();
    let image_dir = small_image(work.path());
    let out = tempfile::tempdir().unwrap();
    let target = output_path(out.path(), format);
    let token = CancelToken::new();
    let cancel = token.clone();
    let options = ConvertOptions::default().cancel(token).progress(move |p| {
        if when(p) {
            cancel.cancel();
        }
    });
    let image = open_image(&image_dir).unwrap();
    let r = convert(&image, &ImageSpec::new(format, &target), &options);
    if r.is_err() {
        assert_eq!(
            listing(out.path()),
            Vec::<String>::new(),
            "{format:?}: debris"
        );
    }
    r
}

#[test]
fn a_cancelled_token_stops_convert_at_every_stage() {
    type When = fn(&Progress) -> bool;
    let stages: [(&str, When); 5] = [
        ("started", |p| matches!(p, Progress::Started { .. })),
        ("newest layer", |p| {
            matches!(p, Progress::LayerStarted { index: 2, .. })
        }),
        ("middle layer", |p| {
            matches!(p, Progress::LayerStarted { index: 1, .. })
        }),
        ("oldest layer done", |p| {
            matches!(p, Progress::LayerFinished { index: 0 })
        }),
        ("entries written", |p| matches!(p, Progress::Written { .. })),
    ];
    for format in Format::ALL {
        for (stage, when) in stages {
            let r = convert_cancelled(format, when);
            assert!(
                matches!(r, Err(Error::Interrupted)),
                "{format:?} at {stage}: {r:?}"
            );
        }
    }
}

#[test]
fn a_token_cancelled_before_convert_writes_nothing() {
    for format in Format::ALL {
        let work = tempfile::tempdir().unwrap();
        let image = open_image(&small_image(work.path())).unwrap();
        let out = tempfile::tempdir().unwrap();
        let token = CancelToken::new();
        token.cancel();
        let options = ConvertOptions::default().cancel(token);
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        let r = convert(&image, &spec, &options);
        assert!(matches!(r, Err(Error::Interrupted)), "{format:?}: {r:?}");
        assert_eq!(listing(out.path()), Vec::<String>::new(), "{format:?}");
    }
}

/// File data that cancels `token` once half of it has been read: the sink must stop inside
/// the file, at its next chunk, and not write the rest.
struct CancelHalfway {
    left: u64,
    half: u64,
    token: CancelToken,
    read_after_cancel: Arc<AtomicBool>,
}

impl Read for CancelHalfway {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.token.is_cancelled() {
            self.read_after_cancel.store(true, Ordering::SeqCst);
        }
        let n = buf.len().min(self.left as usize).min(64 << 10);
        buf[..n].fill(0x5a);
        self.left -= n as u64;
        if self.left <= self.half {
            self.token.cancel();
        }
        Ok(n)
    }
}

#[test]
fn a_token_cancelled_inside_a_file_stops_at_the_next_chunk() {
    const SIZE: u64 = 32 << 20;
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        let token = CancelToken::new();
        let options = ConvertOptions::default().cancel(token.clone());
        let sink = ocirender::open_sink(&spec, &options).unwrap();
        let mut merger = Merger::new(sink, 1, &options);
        let after = Arc::new(AtomicBool::new(false));
        let file = Entry {
            path: EntryPath::new(b"big").unwrap(),
            kind: EntryKind::File {
                size: SIZE,
                sparse: None,
            },
            meta: Metadata {
                mode: 0o644,
                ..Metadata::default()
            },
        };
        let data = CancelHalfway {
            left: SIZE,
            half: SIZE / 2,
            token: token.clone(),
            read_after_cancel: after.clone(),
        };
        let r = merger.layer_entries(0, [(file, Box::new(data) as Box<dyn Read>)]);
        let e = r.expect_err("the cancelled layer succeeded");
        assert!(
            matches!(e.root_cause(), Error::Interrupted),
            "{format:?}: {e}"
        );
        assert!(
            !after.load(Ordering::SeqCst),
            "{format:?}: data was read after the cancel"
        );
        drop(merger);
        assert_eq!(listing(out.path()), Vec::<String>::new(), "{format:?}");
    }
}

/// The directory sink's layouts: a tree built beside the target replaces an existing empty
/// directory; a mount point (here a tmpfs, when this process may mount) gets the tree inside
/// it, and is left empty by a cancelled run.
#[test]
fn dir_output_into_an_existing_directory_and_a_mount_point() {
    let work = tempfile::tempdir().unwrap();
    let image = open_image(&small_image(work.path())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("empty");
    std::fs::create_dir(&target).unwrap();
    let spec = ImageSpec::new(Format::Dir, &target);
    convert(&image, &spec, &ConvertOptions::default()).unwrap();
    assert_eq!(count_entries(&target, Format::Dir), 9);
    assert_eq!(listing(out.path()), vec!["empty"]);

    let Some(mount) = Tmpfs::mount(&out.path().join("mnt")) else {
        crate::support::skip::skip(
            "dir_output_into_an_existing_directory_and_a_mount_point (its mount point case)",
            "ROOT",
            "cannot mount a tmpfs here",
        );
        return;
    };
    let spec = ImageSpec::new(Format::Dir, &mount.0);
    let cancel = CancelToken::new();
    let c2 = cancel.clone();
    let options = ConvertOptions::default().cancel(cancel).progress(move |p| {
        if matches!(p, Progress::LayerStarted { index: 1, .. }) {
            c2.cancel();
        }
    });
    let r = convert(&image, &spec, &options);
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert_eq!(listing(&mount.0), Vec::<String>::new(), "cancelled: debris");
    convert(&image, &spec, &ConvertOptions::default()).unwrap();
    assert_eq!(count_entries(&mount.0, Format::Dir), 9);
    assert!(
        !listing(&mount.0).iter().any(|n| n.ends_with(".partial")),
        "{:?}",
        listing(&mount.0)
    );
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Option<Tmpfs> {
        std::fs::create_dir(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "ocirender-test"])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The streaming packer stops on the token while it waits for a layer that never comes: its
/// partial output goes at once (not at `finish`), and `finish` says `Interrupted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_token_stops_the_streaming_packer() {
    let work = tempfile::tempdir().unwrap();
    let image = open_image(&small_image(work.path())).unwrap();
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        let token = CancelToken::new();
        let options = ConvertOptions::default().cancel(token.clone());
        let metas = image
            .layers
            .iter()
            .map(ocirender::LayerMeta::from_descriptor)
            .collect();
        let packer = ocirender::StreamingPacker::new(metas, spec, options, None).unwrap();
        // The newest layer only: the merge takes it and then waits for layer 1.
        let newest = &image.layers[2];
        let ocirender::image::BlobLocation::File(path) = &newest.location else {
            panic!("the layout's blobs are files");
        };
        packer.notify_layer_ready(2, path.clone()).await.unwrap();
        assert!(
            !listing(out.path()).is_empty(),
            "{format:?}: no partial output"
        );
        token.cancel();
        let deadline = Instant::now() + Duration::from_secs(20);
        while !listing(out.path()).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{format:?}: partial output still there: {:?}",
                listing(out.path())
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let late = packer.notify_layer_ready(1, path.clone()).await;
        assert!(
            matches!(late, Err(Error::Interrupted)),
            "{format:?}: {late:?}"
        );
        let r = packer.finish().await;
        assert!(matches!(r, Err(Error::Interrupted)), "{format:?}: {r:?}");
        assert_eq!(listing(out.path()), Vec::<String>::new(), "{format:?}");
    }
}
