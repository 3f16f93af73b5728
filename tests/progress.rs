//! Progress events, for every sink, from `convert` and from the streaming packer: `Started`
//! first with the image's size, each layer started and finished once and newest first, the
//! bytes read of each layer rising to its blob's size, entries and bytes written rising to the
//! totals, the squashfs compression backlog (from the squashfs sink only), and `Finished` last
//! with the very `Summary` the conversion returns.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::support::builder::{noise, Codec, ImageBuilder, Layer};
use crate::support::outputs::{open_image, output_path};
use ocirender::{
    convert, BlockSize, ConvertOptions, Format, ImageSpec, Jobs, LayerMeta, Progress,
    SquashfsOptions, StreamingPacker, Summary,
};

const LIMIT: Duration = Duration::from_secs(60);

/// Four layers; two blobs are over 2 MiB compressed (several `LayerRead` events each), and
/// with 4 KiB squashfs blocks the data makes well over 256 blocks (so the squashfs writer
/// reports its backlog). Hard links and a replaced file make entries and bytes differ from a
/// plain sum over the layers.
fn image() -> ImageBuilder {
    let mut many = Layer::new().compression(Codec::Zstd);
    for i in 0..1500 {
        many = many.file(format!("usr/share/f{i:04}"), format!("{i}\n"), 0o644);
    }
    ImageBuilder::new()
        .layer(
            Layer::new()
                .file("usr/bin/big", noise(3 << 20, 1), 0o755)
                .file("etc/config", "v1\n", 0o644),
        )
        .layer(many)
        .layer(
            Layer::new()
                .compression(Codec::Plain)
                .file("etc/config", "v2\n", 0o644)
                .hardlink("usr/bin/big-link", "usr/bin/big"),
        )
        .layer(Layer::new().compression(Codec::GzipMultiMember).file(
            "opt/blob",
            noise(2_500_000, 2),
            0o644,
        ))
}

fn options() -> ConvertOptions {
    ConvertOptions::default()
        .jobs(Jobs::new(2).unwrap())
        .squashfs(SquashfsOptions {
            block_size: BlockSize::new(4096).unwrap(),
            mtime: Some(1_700_000_000),
            ..SquashfsOptions::default()
        })
}

struct Fixture {
    _dir: tempfile::TempDir,
    image: ocirender::Image,
    metas: Vec<LayerMeta>,
    paths: Vec<PathBuf>,
    /// Blob sizes by layer index.
    sizes: Vec<u64>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let built = image().build(dir.path().join("image"));
        let image = open_image(&built).unwrap();
        let metas: Vec<LayerMeta> = image
            .layers
            .iter()
            .map(LayerMeta::from_descriptor)
            .collect();
        let paths: Vec<PathBuf> = built
            .layers()
            .iter()
            .map(|b| b.path.clone().unwrap())
            .collect();
        let sizes = paths
            .iter()
            .map(|p| std::fs::metadata(p).unwrap().len())
            .collect();
        Fixture {
            _dir: dir,
            image,
            metas,
            paths,
            sizes,
        }
    }

    /// `convert` into `format`, with the events it sent.
    fn convert(&self, format: Format) -> (Summary, Vec<Progress>) {
        let out = tempfile::tempdir().unwrap();
        let (f, rx) = ocirender::progress::channel();
        let mut options = options();
        options.progress = Some(f);
        let target = output_path(out.path(), format);
        let summary = convert(&self.image, &ImageSpec::new(format, &target), &options).unwrap();
        drop(options);
        (summary, rx.try_iter().collect())
    }

    /// The streaming packer into `format`, layers delivered in `order`, with the events sent
    /// to its channel and to the options' callback.
    fn pack(&self, format: Format, order: &[usize]) -> (Summary, Vec<Progress>, Vec<Progress>) {
        let out = tempfile::tempdir().unwrap();
        let (f, callback_rx) = ocirender::progress::channel();
        let mut options = options();
        options.progress = Some(f);
        let spec = ImageSpec::new(format, output_path(out.path(), format));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (summary, channel) = rt.block_on(async {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let packer = StreamingPacker::new(self.metas.clone(), spec, options, Some(tx)).unwrap();
            for &i in order {
                packer
                    .notify_layer_ready(i, self.paths[i].clone())
                    .await
                    .unwrap();
            }
            let summary = tokio::time::timeout(LIMIT, packer.finish())
                .await
                .expect("the packer did not finish in time")
                .unwrap();
            let mut events = Vec::new();
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
            (summary, events)
        });
        (summary, channel, callback_rx.try_iter().collect())
    }
}

/// Checks everything the events of one conversion promise; returns the layer-level sequence
/// (`Started`, `LayerStarted`, `LayerFinished`), which is the same for every sink.
fn check_events(
    fx: &Fixture,
    format: Format,
    summary: &Summary,
    events: &[Progress],
    context: &str,
) -> Vec<Progress> {
    let total: u64 = fx.sizes.iter().sum();
    assert_eq!(
        events.first(),
        Some(&Progress::Started {
            layers: 4,
            compressed_bytes: total
        }),
        "{context}: first event"
    );
    assert_eq!(
        events.last(),
        Some(&Progress::Finished(summary.clone())),
        "{context}: last event"
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, Progress::Started { .. } | Progress::Finished(_)))
            .count(),
        2,
        "{context}: one Started, one Finished"
    );

    // Layers: started and finished once each, newest first, one at a time.
    let layer_steps: Vec<(char, usize)> = events
        .iter()
        .filter_map(|e| match e {
            Progress::LayerStarted { index, size } => {
                assert_eq!(
                    *size,
                    Some(fx.sizes[*index]),
                    "{context}: layer {index} size"
                );
                Some(('s', *index))
            }
            Progress::LayerFinished { index } => Some(('f', *index)),
            _ => None,
        })
        .collect();
    assert_eq!(
        layer_steps,
        [3, 2, 1, 0]
            .iter()
            .flat_map(|&i| [('s', i), ('f', i)])
            .collect::<Vec<_>>(),
        "{context}: layer steps"
    );

    // Bytes read: per layer, rising, ending at the blob's size before the layer finishes.
    let mut read: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
    let mut finished = Vec::new();
    for e in events {
        match e {
            Progress::LayerRead { index, bytes } => {
                assert!(
                    !finished.contains(index),
                    "{context}: layer {index} read after it finished"
                );
                read.entry(*index).or_default().push(*bytes);
            }
            Progress::LayerFinished { index } => finished.push(*index),
            _ => {}
        }
    }
    assert_eq!(
        read.keys().copied().collect::<Vec<_>>(),
        [0, 1, 2, 3],
        "{context}: every layer reports reading"
    );
    for (index, steps) in &read {
        assert!(
            steps.windows(2).all(|w| w[0] < w[1]),
            "{context}: layer {index} read counts {steps:?}"
        );
        assert_eq!(
            steps.last(),
            Some(&fx.sizes[*index]),
            "{context}: layer {index} read counts {steps:?}"
        );
        if fx.sizes[*index] > 2 << 20 {
            assert!(steps.len() >= 2, "{context}: layer {index}: {steps:?}");
        }
    }

    // Written: rising, and the last one gives the summary's totals.
    let written: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Written { entries, bytes } => Some((*entries, *bytes)),
            _ => None,
        })
        .collect();
    assert!(written.len() >= 2, "{context}: Written {written:?}");
    assert!(
        written
            .windows(2)
            .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1),
        "{context}: Written not rising: {written:?}"
    );
    assert_eq!(
        written.last(),
        Some(&(summary.entries, summary.file_bytes)),
        "{context}: the last Written against the summary"
    );

    // The compression backlog: the squashfs sink only, and never more than was submitted.
    let backlog: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            Progress::Backlog { blocks } => Some(*blocks),
            _ => None,
        })
        .collect();
    if format == Format::Squashfs {
        assert!(!backlog.is_empty(), "{context}: no Backlog event");
        assert!(backlog.iter().all(|&b| b >= 1), "{context}: {backlog:?}");
    } else {
        assert!(backlog.is_empty(), "{context}: Backlog from {format:?}");
    }
    assert!(
        !events.iter().any(|e| matches!(e, Progress::Warning(_))),
        "{context}: unexpected warnings"
    );

    events
        .iter()
        .filter(|e| {
            matches!(
                e,
                Progress::Started { .. }
                    | Progress::LayerStarted { .. }
                    | Progress::LayerFinished { .. }
            )
        })
        .cloned()
        .collect()
}

#[test]
fn convert_reports_every_step_for_every_sink() {
    let fx = Fixture::new();
    let mut sequences = Vec::new();
    let mut totals = Vec::new();
    for format in Format::ALL {
        let (summary, events) = fx.convert(format);
        assert!(summary.entries > 1500);
        sequences.push(check_events(
            &fx,
            format,
            &summary,
            &events,
            &format!("convert, {format:?}"),
        ));
        totals.push((summary.entries, summary.file_bytes));
    }
    // The same layer steps and the same totals whatever the sink.
    assert!(sequences.windows(2).all(|w| w[0] == w[1]), "{sequences:?}");
    assert!(totals.windows(2).all(|w| w[0] == w[1]), "{totals:?}");
}

#[test]
fn the_packer_reports_the_same_steps_on_its_channel_and_callback() {
    let fx = Fixture::new();
    let (reference, _) = fx.convert(Format::Tar);
    for (format, order) in [
        (Format::Squashfs, [0, 1, 2, 3]),
        (Format::Tar, [3, 1, 2, 0]),
        (Format::Dir, [2, 3, 0, 1]),
    ] {
        let context = format!("packer, {format:?}, order {order:?}");
        let (summary, channel, callback) = fx.pack(format, &order);
        assert_eq!(
            (summary.entries, summary.file_bytes),
            (reference.entries, reference.file_bytes),
            "{context}"
        );
        check_events(
            &fx,
            format,
            &summary,
            &channel,
            &format!("{context}, channel"),
        );
        check_events(
            &fx,
            format,
            &summary,
            &callback,
            &format!("{context}, callback"),
        );
        // Both receive every event (events from different threads may interleave differently).
        let sorted = |events: &[Progress]| {
            let mut v: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
            v.sort();
            v
        };
        assert_eq!(sorted(&channel), sorted(&callback), "{context}");
    }
}
