//! The streaming packer against `convert`: layers delivered in every order, with random delays,
//! as files, async streams and blocking readers, give the same output as `convert` on the same
//! image (byte-identical squashfs and tar, the same tree for a directory); and every way a
//! delivery can go wrong ends with a typed error, no output left behind and no thread left
//! running. No test waits without a bound: every wait has a timeout.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::support::builder::{noise, Codec, Corruption, ImageBuilder, Layer};
use crate::support::dump::{DumpOptions, Tree};
use crate::support::outputs::{assert_no_output, open_image, output_path};
use ocirender::{
    convert, convert_streaming, ConvertOptions, Error, Format, ImageSpec, Jobs, LayerBlob,
    LayerMeta, Progress, SquashfsOptions, StreamingPacker,
};
use tokio::io::AsyncWriteExt;

/// The longest any single conversion or wait in these tests may take before it counts as a
/// hang.
const LIMIT: Duration = Duration::from_secs(60);

/// Four layers whose result depends on their order: whiteouts and an opaque directory hide
/// older content, a newer file replaces an older one, a hard link reaches into an older layer,
/// and one layer is larger than a decoder's queue (so decoding really waits on the merge).
/// Every codec family appears.
fn four_layers() -> ImageBuilder {
    let text: Vec<u8> = (0..40_000u32)
        .flat_map(|i| format!("line {i} of some text\n").into_bytes())
        .collect();
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/os-release", "base\n", 0o644)
                .file("usr/bin/big", noise(5 << 20, 1), 0o755)
                .dir("var/cache", 0o755)
                .file("var/cache/a", "a", 0o644)
                .file("var/cache/b", "b", 0o644)
                .file("opt/old", "old", 0o644),
        )
        .layer(
            Layer::new()
                .compression(Codec::Zstd)
                .whiteout("var/cache/a")
                .file("etc/hostname", "one\n", 0o644)
                .file("usr/share/doc.txt", &text, 0o644),
        )
        .layer(
            Layer::new()
                .compression(Codec::Plain)
                .opaque("var/cache")
                .file("var/cache/c", "c", 0o600)
                .hardlink("etc/hostname.link", "etc/hostname"),
        )
        .layer(
            Layer::new()
                .compression(Codec::GzipMultiMember)
                .file("etc/os-release", "top\n", 0o644)
                .whiteout("opt")
                .file("usr/bin/small", noise(70_000, 2), 0o755),
        )
}

/// A built image and what `convert` makes of it, in every format.
struct Fixture {
    _dir: tempfile::TempDir,
    metas: Vec<LayerMeta>,
    paths: Vec<PathBuf>,
    expected: Vec<(Format, Output)>,
}

/// An output as compared: the bytes of a file, the dump of a directory.
#[derive(Debug, PartialEq, Eq)]
enum Output {
    Bytes(Vec<u8>),
    Dump(String),
}

fn options() -> ConvertOptions {
    ConvertOptions::default()
        .jobs(Jobs::new(2).unwrap())
        .squashfs(SquashfsOptions {
            mtime: Some(1_700_000_000),
            ..SquashfsOptions::default()
        })
}

fn read(format: Format, target: &Path) -> Output {
    match format {
        Format::Dir => Output::Dump(Tree::from_dir(target).dump(DumpOptions::default())),
        _ => Output::Bytes(std::fs::read(target).unwrap()),
    }
}

impl Fixture {
    fn new(builder: ImageBuilder) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let image = builder.build(dir.path().join("image"));
        let opened = open_image(&image).unwrap();
        let metas = opened
            .layers
            .iter()
            .map(LayerMeta::from_descriptor)
            .collect();
        let paths = image
            .layers()
            .iter()
            .map(|b| b.path.clone().unwrap())
            .collect();
        let expected = Format::ALL
            .iter()
            .map(|&format| {
                let out = tempfile::tempdir().unwrap();
                let target = output_path(out.path(), format);
                convert(&opened, &ImageSpec::new(format, &target), &options()).unwrap();
                (format, read(format, &target))
            })
            .collect();
        Fixture {
            _dir: dir,
            metas,
            paths,
            expected,
        }
    }

    fn expected(&self, format: Format) -> &Output {
        &self.expected.iter().find(|(f, _)| *f == format).unwrap().1
    }

    fn packer(&self, format: Format, out: &Path) -> StreamingPacker {
        let spec = ImageSpec::new(format, output_path(out, format));
        StreamingPacker::new(self.metas.clone(), spec, options(), None).unwrap()
    }

    /// Checks a successful conversion into `out`: the same output as `convert`'s, nothing else
    /// left beside it.
    fn check(&self, format: Format, out: &Path, context: &str) {
        let target = output_path(out, format);
        let left: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| *p != target)
            .collect();
        assert!(left.is_empty(), "{context}: stray files {left:?}");
        let got = read(format, &target);
        if &got != self.expected(format) {
            match (&got, self.expected(format)) {
                (Output::Dump(a), Output::Dump(b)) => {
                    panic!(
                        "{context}: tree differs:\n{}",
                        crate::support::outputs::diff(b, a)
                    )
                }
                _ => panic!("{context}: {format:?} output differs from convert's"),
            }
        }
    }
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not end within {LIMIT:?}"),
    }
}

/// Every permutation of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut all = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            all.push(q);
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_arrival_order_gives_converts_output() {
    let fx = Fixture::new(four_layers());
    let orders = permutations(4);
    assert_eq!(orders.len(), 24);
    for format in Format::ALL {
        for order in &orders {
            let out = tempfile::tempdir().unwrap();
            let packer = fx.packer(format, out.path());
            for &i in order {
                packer
                    .notify_layer_ready(i, fx.paths[i].clone())
                    .await
                    .unwrap();
            }
            let summary = bounded("finish", packer.finish()).await.unwrap();
            assert!(summary.entries > 10);
            fx.check(format, out.path(), &format!("{format:?}, order {order:?}"));
        }
    }
}

/// A small deterministic generator for delays.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_with_random_delays() {
    let fx = Fixture::new(four_layers());
    let mut rng = Rng(7);
    for round in 0..6 {
        let format = Format::ALL[round % 3];
        let out = tempfile::tempdir().unwrap();
        let packer = Arc::new(fx.packer(format, out.path()));
        let mut tasks = Vec::new();
        let mut delays = Vec::new();
        for i in 0..4 {
            let delay = Duration::from_millis(rng.below(40));
            delays.push(delay);
            let (packer, path) = (packer.clone(), fx.paths[i].clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                packer.notify_layer_ready(i, path).await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        let packer = Arc::into_inner(packer).unwrap();
        bounded("finish", packer.finish()).await.unwrap();
        fx.check(
            format,
            out.path(),
            &format!("{format:?}, delays {delays:?}"),
        );
    }
}

/// Writes `bytes` into `w` in pieces of `piece` bytes, yielding to other tasks between them.
async fn feed_slowly(mut w: tokio::io::DuplexStream, bytes: Vec<u8>, piece: usize) {
    for chunk in bytes.chunks(piece) {
        if w.write_all(chunk).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
    let _ = w.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_as_async_streams_fed_slowly() {
    let fx = Fixture::new(four_layers());
    for (format, order) in [
        (Format::Squashfs, [0, 1, 2, 3]),
        (Format::Tar, [2, 0, 3, 1]),
        (Format::Dir, [3, 2, 1, 0]),
    ] {
        let out = tempfile::tempdir().unwrap();
        let packer = fx.packer(format, out.path());
        let mut feeders = Vec::new();
        for i in order {
            // A small pipe: the feeder can only run as fast as the packer reads.
            let (reader, writer) = tokio::io::duplex(16 << 10);
            packer.notify_layer_stream(i, reader).await.unwrap();
            let bytes = std::fs::read(&fx.paths[i]).unwrap();
            feeders.push(tokio::spawn(feed_slowly(writer, bytes, 7000)));
        }
        bounded("finish", packer.finish()).await.unwrap();
        for f in feeders {
            f.await.unwrap();
        }
        fx.check(
            format,
            out.path(),
            &format!("{format:?}, streams {order:?}"),
        );
    }
}

/// A blocking reader that hands out at most 1000 bytes per call.
struct Trickle(io::Cursor<Vec<u8>>);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(1000);
        self.0.read(&mut buf[..n])
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_as_blocking_readers() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let packer = fx.packer(format, out.path());
        for i in [1, 3, 0, 2] {
            let bytes = std::fs::read(&fx.paths[i]).unwrap();
            let reader: Box<dyn Read + Send> = Box::new(Trickle(io::Cursor::new(bytes)));
            packer.notify_layer_reader(i, reader).await.unwrap();
        }
        bounded("finish", packer.finish()).await.unwrap();
        fx.check(format, out.path(), &format!("{format:?}, readers"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_sources_and_convert_streaming_in_any_order() {
    let fx = Fixture::new(four_layers());
    // A file, a stream, a reader and a file again.
    let out = tempfile::tempdir().unwrap();
    let packer = fx.packer(Format::Tar, out.path());
    let (reader, writer) = tokio::io::duplex(4096);
    packer.notify_layer_stream(2, reader).await.unwrap();
    let feeder = tokio::spawn(feed_slowly(
        writer,
        std::fs::read(&fx.paths[2]).unwrap(),
        999,
    ));
    packer
        .notify_layer_ready(0, fx.paths[0].clone())
        .await
        .unwrap();
    let bytes = std::fs::read(&fx.paths[3]).unwrap();
    packer
        .notify_layer_reader(3, Box::new(io::Cursor::new(bytes)))
        .await
        .unwrap();
    packer
        .notify_layer_ready(1, fx.paths[1].clone())
        .await
        .unwrap();
    bounded("finish", packer.finish()).await.unwrap();
    feeder.await.unwrap();
    fx.check(Format::Tar, out.path(), "mixed sources");

    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let blobs: Vec<_> = [3, 1, 0, 2]
            .iter()
            .map(|&i| Ok::<_, io::Error>(fx.blob(i)))
            .collect();
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        bounded(
            "convert_streaming",
            convert_streaming(futures::stream::iter(blobs), 4, spec, options()),
        )
        .await
        .unwrap();
        fx.check(
            format,
            out.path(),
            &format!("{format:?}, convert_streaming"),
        );
    }
}

impl Fixture {
    fn blob(&self, i: usize) -> LayerBlob {
        LayerBlob {
            index: i,
            path: self.paths[i].clone(),
            media_type: self.metas[i].media_type.clone(),
            digest: self.metas[i].digest.clone(),
        }
    }
}

/// Runs `deliver` against a packer writing `format` into a fresh directory, then `finish`;
/// returns the result, after checking that a failure left nothing behind.
async fn failing<F>(fx: &Fixture, format: Format, deliver: F) -> Error
where
    F: AsyncFnOnce(&StreamingPacker),
{
    let out = tempfile::tempdir().unwrap();
    let packer = fx.packer(format, out.path());
    deliver(&packer).await;
    let err = bounded("finish", packer.finish())
        .await
        .expect_err("the conversion should fail");
    assert_no_output(out.path(), &output_path(out.path(), format), format, &err);
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_index_is_refused_and_stops_the_conversion() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        let err = failing(&fx, format, async |p| {
            p.notify_layer_ready(3, fx.paths[3].clone()).await.unwrap();
            p.notify_layer_ready(2, fx.paths[2].clone()).await.unwrap();
            let e = p.notify_layer_ready(3, fx.paths[3].clone()).await;
            assert!(
                matches!(e, Err(Error::DuplicateLayer { index: 3 })),
                "{e:?}"
            );
            // Once stopped, deliveries are refused as such.
            let e = p.notify_layer_ready(1, fx.paths[1].clone()).await;
            assert!(matches!(e, Err(Error::Stopped)), "{e:?}");
        })
        .await;
        assert!(
            matches!(err, Error::DuplicateLayer { index: 3 }),
            "{format:?}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_range_index_is_refused_and_stops_the_conversion() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        let err = failing(&fx, format, async |p| {
            p.notify_layer_ready(3, fx.paths[3].clone()).await.unwrap();
            let e = p.notify_layer_ready(4, fx.paths[0].clone()).await;
            assert!(
                matches!(e, Err(Error::LayerIndexOutOfRange { index: 4, count: 4 })),
                "{e:?}"
            );
        })
        .await;
        assert!(
            matches!(err, Error::LayerIndexOutOfRange { index: 4, count: 4 }),
            "{format:?}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_never_delivered_is_reported_missing() {
    let fx = Fixture::new(four_layers());
    // The merge stops at the newest missing layer: the oldest, a middle one, the newest.
    for (never, delivered) in [(0, vec![3, 1, 2]), (2, vec![0, 3, 1]), (3, vec![2, 1, 0])] {
        for format in Format::ALL {
            let err = failing(&fx, format, async |p| {
                for &i in &delivered {
                    p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
                }
            })
            .await;
            assert!(
                matches!(
                    err,
                    Error::MissingLayers {
                        missing: 1,
                        total: 4,
                        first
                    } if first == never
                ),
                "{format:?}, layer {never} missing: {err:?}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_streaming_failures() {
    let fx = Fixture::new(four_layers());
    let run = |items: Vec<Result<LayerBlob, io::Error>>| {
        let out = tempfile::tempdir().unwrap();
        let spec = ImageSpec::new(Format::Squashfs, output_path(out.path(), Format::Squashfs));
        async move {
            let err = bounded(
                "convert_streaming",
                convert_streaming(futures::stream::iter(items), 4, spec, options()),
            )
            .await
            .expect_err("should fail");
            assert_no_output(
                out.path(),
                &output_path(out.path(), Format::Squashfs),
                Format::Squashfs,
                &err,
            );
            err
        }
    };
    // The stream ends with layers 2 and 0 never sent.
    let err = run(vec![Ok(fx.blob(3)), Ok(fx.blob(1))]).await;
    assert!(
        matches!(
            err,
            Error::MissingLayers {
                missing: 2,
                total: 4,
                first: 2
            }
        ),
        "{err:?}"
    );
    // An error item is the caller's, carried unchanged.
    let err = run(vec![
        Ok(fx.blob(3)),
        Err(io::Error::other("registry said 503")),
        Ok(fx.blob(2)),
    ])
    .await;
    match &err {
        Error::LayerSource { source } => assert_eq!(source.to_string(), "registry said 503"),
        other => panic!("{other:?}"),
    }
    // A layer twice, an index out of range.
    let err = run(vec![Ok(fx.blob(3)), Ok(fx.blob(0)), Ok(fx.blob(3))]).await;
    assert!(matches!(err, Error::DuplicateLayer { index: 3 }), "{err:?}");
    let mut bad = fx.blob(1);
    bad.index = 9;
    let err = run(vec![Ok(fx.blob(3)), Ok(bad)]).await;
    assert!(
        matches!(err, Error::LayerIndexOutOfRange { index: 9, count: 4 }),
        "{err:?}"
    );
}

/// The caller's own error type, to check that it comes back unchanged.
#[derive(Debug)]
struct DownloadFailed(usize);

impl std::fmt::Display for DownloadFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "download of layer {} failed", self.0)
    }
}

impl std::error::Error for DownloadFailed {}

fn caller_error(err: &Error) -> &DownloadFailed {
    match err {
        Error::LayerSource { source } => source
            .downcast_ref::<DownloadFailed>()
            .unwrap_or_else(|| panic!("not the caller's error: {source}")),
        other => panic!("expected LayerSource, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_error_fails_with_the_callers_error() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        // Before anything arrived.
        let err = failing(&fx, format, async |p| {
            p.notify_error(DownloadFailed(3)).await;
            let e = p.notify_layer_ready(3, fx.paths[3].clone()).await;
            assert!(matches!(e, Err(Error::Stopped)), "{e:?}");
        })
        .await;
        assert_eq!(caller_error(&err).0, 3);
        // While the merge waits for a layer.
        let err = failing(&fx, format, async |p| {
            p.notify_layer_ready(3, fx.paths[3].clone()).await.unwrap();
            p.notify_layer_ready(1, fx.paths[1].clone()).await.unwrap();
            p.notify_error(DownloadFailed(2)).await;
        })
        .await;
        assert_eq!(caller_error(&err).0, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_error_interrupts_a_stalled_stream() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        let mut keep = None;
        let err = failing(&fx, format, async |p| {
            // Layer 3 streams half its bytes, then the download stalls with the pipe open.
            let bytes = std::fs::read(&fx.paths[3]).unwrap();
            let (reader, mut writer) = tokio::io::duplex(1 << 20);
            writer.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
            p.notify_layer_stream(3, reader).await.unwrap();
            p.notify_error(DownloadFailed(3)).await;
            keep = Some(writer);
        })
        .await;
        assert_eq!(caller_error(&err).0, 3);
        drop(keep);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_fails_fails_the_conversion() {
    let fx = Fixture::new(four_layers());
    /// An async reader that gives some bytes, then an error.
    struct Broken(Vec<u8>);
    impl tokio::io::AsyncRead for Broken {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<io::Result<()>> {
            if self.0.is_empty() {
                return std::task::Poll::Ready(Err(io::Error::other("connection reset")));
            }
            let n = self.0.len().min(buf.remaining()).min(5000);
            buf.put_slice(&self.0[..n]);
            self.0.drain(..n);
            std::task::Poll::Ready(Ok(()))
        }
    }
    let err = failing(&fx, Format::Tar, async |p| {
        let bytes = std::fs::read(&fx.paths[3]).unwrap();
        let half = bytes[..bytes.len() / 2].to_vec();
        p.notify_layer_stream(3, Broken(half)).await.unwrap();
        for i in [2, 1, 0] {
            p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
        }
    })
    .await;
    match err.root_cause() {
        Error::LayerSource { source } => assert!(source.to_string().contains("connection reset")),
        _ => panic!("{err:?}"),
    }
    assert!(matches!(err, Error::Layer { index: 3, .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_layer_fails_with_its_digest() {
    let fx = Fixture::new(four_layers());
    for format in Format::ALL {
        // Valid bytes, but not the bytes the manifest promised: layer 1's blob as layer 2.
        let err = failing(&fx, format, async |p| {
            for i in [3, 0] {
                p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
            }
            p.notify_layer_ready(2, fx.paths[1].clone()).await.unwrap();
            p.notify_layer_ready(1, fx.paths[1].clone()).await.unwrap();
        })
        .await;
        match err.root_cause() {
            // The blob's size differs from the descriptor's before any byte is hashed.
            Error::SizeMismatch { .. } | Error::DigestMismatch { .. } => {}
            _ => panic!("{format:?}: {err:?}"),
        }
        assert!(matches!(err, Error::Layer { index: 2, .. }), "{err:?}");
    }
    // A layer whose size is unknown and whose content is another valid layer's: only the
    // digest can tell.
    let mut metas = fx.metas.clone();
    metas[2].size = None;
    for format in Format::ALL {
        let out = tempfile::tempdir().unwrap();
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        let p = StreamingPacker::new(metas.clone(), spec, options(), None).unwrap();
        for (i, blob) in [(3, 3), (2, 1), (1, 1), (0, 0)] {
            p.notify_layer_ready(i, fx.paths[blob].clone())
                .await
                .unwrap_or(());
        }
        let err = bounded("finish", p.finish()).await.unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::DigestMismatch { .. }),
            "{format:?}: {err:?}"
        );
        assert!(matches!(err, Error::Layer { index: 2, .. }), "{err:?}");
        assert_no_output(out.path(), &output_path(out.path(), format), format, &err);
    }
    // Damaged bytes inside the blob.
    let dir = tempfile::tempdir().unwrap();
    let damaged = four_layers().build(dir.path().join("image"));
    damaged.corrupt_layer(1, Corruption::FlipByte(-12));
    let damaged_path = damaged.layers()[1].path.clone().unwrap();
    let err = failing(&fx, Format::Squashfs, async |p| {
        for i in [3, 2, 0] {
            p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
        }
        p.notify_layer_ready(1, damaged_path.clone()).await.unwrap();
    })
    .await;
    assert!(matches!(err, Error::Layer { index: 1, .. }), "{err:?}");
}

/// Threads of this process that the packer starts: its two threads and the layers' decoders.
fn packer_threads() -> Vec<String> {
    threads(|name| {
        name == "ocirender-merge" || name == "ocirender-order" || name.starts_with("layer-")
    })
}

/// Threads of this process whose name `wanted` accepts.
fn threads(wanted: impl Fn(&str) -> bool) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        if let Ok(name) = std::fs::read_to_string(task.path().join("comm")) {
            let name = name.trim().to_owned();
            if wanted(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The squashfs writer's compression threads (a rayon pool, which ends them asynchronously
/// when the sink drops it).
fn compression_threads() -> Vec<String> {
    threads(|name| name.starts_with("ocirender-sqfs"))
}

/// Polls `cond` every 10 ms until it holds, for at most [`LIMIT`].
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < LIMIT, "{what}: not within {LIMIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs in a process of its own (started by `no_thread_outlives_the_packer`), so that the
/// threads it sees are its own: after `finish`, and shortly after dropping an unfinished
/// packer, no thread of the library is left and no output either.
#[test]
fn thread_probe() {
    if std::env::var_os("OCIRENDER_THREAD_PROBE").is_none() {
        return;
    }
    let fx = Fixture::new(four_layers());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(packer_threads(), Vec::<String>::new());
        let out = tempfile::tempdir().unwrap();
        let p = fx.packer(Format::Squashfs, out.path());
        for i in [2, 3, 0, 1] {
            p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
        }
        bounded("finish", p.finish()).await.unwrap();
        assert_eq!(packer_threads(), Vec::<String>::new(), "after finish");
        tokio::task::spawn_blocking(|| {
            eventually("compression threads end after finish", || {
                compression_threads().is_empty()
            })
        })
        .await
        .unwrap();

        for format in Format::ALL {
            let out = tempfile::tempdir().unwrap();
            let p = fx.packer(format, out.path());
            // The merge runs the newest layer; a stream for layer 2 stalls half-way, so the
            // merge is inside it when the packer goes.
            p.notify_layer_ready(3, fx.paths[3].clone()).await.unwrap();
            let bytes = std::fs::read(&fx.paths[2]).unwrap();
            let (reader, mut writer) = tokio::io::duplex(1 << 20);
            writer.write_all(&bytes[..bytes.len() / 2]).await.unwrap();
            p.notify_layer_stream(2, reader).await.unwrap();
            // A new thread names itself once it runs: wait until the merge and layer 2's
            // decoder are there under their names.
            tokio::task::spawn_blocking(|| {
                eventually("the merge waits inside layer 2", || {
                    let names = packer_threads();
                    ["ocirender-merge", "layer-2"]
                        .iter()
                        .all(|n| names.iter().any(|m| m == n))
                })
            })
            .await
            .unwrap();
            drop(p);
            let target = output_path(out.path(), format);
            tokio::task::spawn_blocking(move || {
                eventually("threads end after drop", || {
                    packer_threads().is_empty() && compression_threads().is_empty()
                });
            })
            .await
            .unwrap();
            assert_no_output(out.path(), &target, format, &Error::Stopped);
            drop(writer);
        }
    });
}

#[test]
fn no_thread_outlives_the_packer() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "packer::thread_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("OCIRENDER_THREAD_PROBE", "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "thread probe failed:\n{text}");
    assert!(text.contains("1 passed"), "the probe did not run:\n{text}");
}

#[test]
fn nothing_blocks_a_current_thread_runtime() {
    let fx = Fixture::new(four_layers());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let out = tempfile::tempdir().unwrap();
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let spec = ImageSpec::new(Format::Squashfs, output_path(out.path(), Format::Squashfs));
        let packer =
            StreamingPacker::new(fx.metas.clone(), spec, options(), Some(events_tx)).unwrap();
        // A task on this (only) runtime thread counts its turns for the whole conversion.
        let turns = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = {
            let turns = turns.clone();
            tokio::spawn(async move {
                loop {
                    turns.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        // Layer 3 is fed by another task of this thread, slowly; layers 2 and 1 are files.
        let (reader, writer) = tokio::io::duplex(8 << 10);
        packer.notify_layer_stream(3, reader).await.unwrap();
        let feeder = tokio::spawn(feed_slowly(
            writer,
            std::fs::read(&fx.paths[3]).unwrap(),
            3000,
        ));
        for i in [2, 1] {
            packer
                .notify_layer_ready(i, fx.paths[i].clone())
                .await
                .unwrap();
        }
        // The merge gets through layers 3, 2 and 1 while this thread only awaits: it can,
        // only if nothing the packer does holds the thread.
        let before = turns.load(std::sync::atomic::Ordering::Relaxed);
        bounded("layers 3, 2, 1", async {
            let mut finished = Vec::new();
            while finished.len() < 3 {
                if let Some(Progress::LayerFinished { index }) = events.recv().await {
                    finished.push(index);
                }
            }
            assert_eq!(finished, [3, 2, 1]);
        })
        .await;
        assert!(turns.load(std::sync::atomic::Ordering::Relaxed) > before);
        feeder.await.unwrap();
        packer
            .notify_layer_ready(0, fx.paths[0].clone())
            .await
            .unwrap();
        bounded("finish", packer.finish()).await.unwrap();
        counter.abort();
        fx.check(Format::Squashfs, out.path(), "current-thread runtime");
    });
}

#[test]
fn a_packer_needs_a_runtime() {
    let fx = Fixture::new(ImageBuilder::new().layer(Layer::new().file("a", "a", 0o644)));
    let out = tempfile::tempdir().unwrap();
    let spec = ImageSpec::new(Format::Tar, output_path(out.path(), Format::Tar));
    let r = StreamingPacker::new(fx.metas.clone(), spec, options(), None);
    assert!(matches!(r, Err(Error::NoAsyncRuntime)), "{:?}", r.err());
    assert!(std::fs::read_dir(out.path()).unwrap().next().is_none());
}

#[tokio::test]
async fn layer_metas_must_cover_every_index_once() {
    let fx = Fixture::new(four_layers());
    let out = tempfile::tempdir().unwrap();
    let spec = || ImageSpec::new(Format::Tar, output_path(out.path(), Format::Tar));
    let mut dup = fx.metas.clone();
    dup[1].index = 2;
    let r = StreamingPacker::new(dup, spec(), options(), None);
    assert!(
        matches!(r, Err(Error::DuplicateLayer { index: 2 })),
        "{:?}",
        r.err()
    );
    let mut far = fx.metas.clone();
    far[0].index = 4;
    let r = StreamingPacker::new(far, spec(), options(), None);
    assert!(
        matches!(r, Err(Error::LayerIndexOutOfRange { index: 4, count: 4 })),
        "{:?}",
        r.err()
    );
    // Any order is fine.
    let mut shuffled = fx.metas.clone();
    shuffled.reverse();
    let p = StreamingPacker::new(shuffled, spec(), options(), None).unwrap();
    for i in 0..4 {
        p.notify_layer_ready(i, fx.paths[i].clone()).await.unwrap();
    }
    bounded("finish", p.finish()).await.unwrap();
    fx.check(Format::Tar, out.path(), "metas in reverse order");
}
