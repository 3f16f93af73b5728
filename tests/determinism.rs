//! The same image gives the same bytes, however the work is scheduled: squashfs and tar outputs
//! of `convert` and of the streaming packer (layers delivered in several orders) are identical
//! for 1, 2 and 8 jobs. The image is made so that scheduling has room to show: many data blocks
//! of very different compressibility (compression threads finish out of order), many small
//! files (fragments), the same content in several files and layers (dedup), hard links, and
//! files replaced or hidden by newer layers. The superblock time is pinned, so the bytes depend
//! on nothing but the input.

use std::path::PathBuf;
use std::time::Duration;

use crate::support::builder::{noise, Codec, ImageBuilder, Layer};
use crate::support::outputs::{open_image, output_path};
use ocirender::{
    convert, BlockSize, ConvertOptions, Format, ImageSpec, Jobs, LayerMeta, SquashfsOptions,
    StreamingPacker,
};

/// The pinned superblock modification time.
const MTIME: u32 = 1_600_000_000;

/// How long one packer conversion may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// A file whose blocks alternate between incompressible, text-like and zero runs, so that
/// neighbouring blocks take very different times to compress.
fn mixed(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut k = 0u64;
    while out.len() < len {
        match k % 3 {
            0 => out.extend(noise(3000, seed + k)),
            1 => out.extend(format!("record {k} of {seed}\n").repeat(200).into_bytes()),
            _ => out.extend(std::iter::repeat_n(0u8, 5000)),
        }
        k += 1;
    }
    out.truncate(len);
    out
}

fn image() -> ImageBuilder {
    let mut base = Layer::new().dir("usr/lib", 0o755);
    for i in 0..150u64 {
        // Small files of many sizes: they share fragment blocks.
        base = base.file(
            format!("usr/lib/small-{i:03}"),
            noise(100 + (i as usize * 37) % 3000, i),
            0o644,
        );
    }
    let shared = mixed(300_000, 99);
    ImageBuilder::new()
        .layer(
            base.file("usr/bin/tool", mixed(700_000, 1), 0o755)
                .file("usr/share/copy-a", &shared, 0o644)
                .file("etc/config", "v1\n", 0o644)
                .dir("var/lib/state", 0o755)
                .file("var/lib/state/old", "old\n", 0o644),
        )
        .layer(
            Layer::new()
                .compression(Codec::Zstd)
                .file("usr/share/copy-b", &shared, 0o644)
                .file("usr/bin/tool", mixed(650_000, 2), 0o755)
                .hardlink("usr/bin/tool-link", "usr/lib/small-007")
                .whiteout("usr/lib/small-010"),
        )
        .layer(
            Layer::new()
                .compression(Codec::Plain)
                .opaque("var/lib/state")
                .file("var/lib/state/new", "new\n", 0o600)
                .file("opt/data.bin", noise(400_000, 3), 0o644),
        )
        .layer(
            Layer::new()
                .compression(Codec::GzipMultiMember)
                .file("etc/config", "v2\n", 0o644)
                .file("opt/log.txt", mixed(250_000, 4), 0o644)
                .symlink("opt/current", "data.bin"),
        )
}

fn options(jobs: usize, block_size: u32) -> ConvertOptions {
    ConvertOptions::default()
        .jobs(Jobs::new(jobs).unwrap())
        .squashfs(SquashfsOptions {
            mtime: Some(MTIME),
            block_size: BlockSize::new(block_size).unwrap(),
            ..SquashfsOptions::default()
        })
}

/// Arrival orders for the packer: oldest first, newest first, and two mixed.
const ORDERS: [[usize; 4]; 4] = [[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1]];

const JOBS: [usize; 3] = [1, 2, 8];

struct Fixture {
    _dir: tempfile::TempDir,
    image: ocirender::Image,
    metas: Vec<LayerMeta>,
    paths: Vec<PathBuf>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let built = image().build(dir.path().join("image"));
        let image = open_image(&built).unwrap();
        let metas = image
            .layers
            .iter()
            .map(LayerMeta::from_descriptor)
            .collect();
        let paths = built
            .layers()
            .iter()
            .map(|b| b.path.clone().unwrap())
            .collect();
        Fixture {
            _dir: dir,
            image,
            metas,
            paths,
        }
    }

    fn convert(&self, format: Format, options: &ConvertOptions) -> Vec<u8> {
        let out = tempfile::tempdir().unwrap();
        let target = output_path(out.path(), format);
        convert(&self.image, &ImageSpec::new(format, &target), options).unwrap();
        std::fs::read(target).unwrap()
    }

    fn pack(
        &self,
        rt: &tokio::runtime::Runtime,
        format: Format,
        options: &ConvertOptions,
        order: &[usize],
    ) -> Vec<u8> {
        let out = tempfile::tempdir().unwrap();
        let target = output_path(out.path(), format);
        let spec = ImageSpec::new(format, &target);
        rt.block_on(async {
            let packer =
                StreamingPacker::new(self.metas.clone(), spec, options.clone(), None).unwrap();
            for &i in order {
                packer
                    .notify_layer_ready(i, self.paths[i].clone())
                    .await
                    .unwrap();
            }
            tokio::time::timeout(LIMIT, packer.finish())
                .await
                .expect("the packer did not finish in time")
                .unwrap();
        });
        std::fs::read(target).unwrap()
    }
}

/// Where two outputs first differ, for a readable failure.
fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(at) => format!(
            "first difference at byte {at} (lengths {}, {})",
            a.len(),
            b.len()
        ),
        None => format!("lengths differ: {} vs {}", a.len(), b.len()),
    }
}

fn assert_same(reference: &[u8], got: &[u8], context: &str) {
    assert!(
        reference == got,
        "{context}: {}",
        first_difference(reference, got)
    );
}

/// The squashfs superblock's modification time (bytes 8..12).
fn superblock_mtime(image: &[u8]) -> u32 {
    u32::from_le_bytes(image[8..12].try_into().unwrap())
}

fn check_format(fx: &Fixture, rt: &tokio::runtime::Runtime, format: Format, block_size: u32) {
    let reference = fx.convert(format, &options(1, block_size));
    assert!(reference.len() > 100_000, "{format:?}: output too small");
    if format == Format::Squashfs {
        assert_eq!(&reference[..4], b"hsqs");
        assert_eq!(superblock_mtime(&reference), MTIME);
    }
    for jobs in JOBS {
        let options = options(jobs, block_size);
        let context = format!("{format:?}, block size {block_size}, {jobs} jobs");
        assert_same(
            &reference,
            &fx.convert(format, &options),
            &format!("{context}, convert"),
        );
        for order in &ORDERS {
            assert_same(
                &reference,
                &fx.pack(rt, format, &options, order),
                &format!("{context}, packer, arrival order {order:?}"),
            );
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn squashfs_bytes_do_not_depend_on_jobs_or_arrival_order() {
    let fx = Fixture::new();
    let rt = runtime();
    // The default block size, and a small one that makes many more blocks to schedule.
    for block_size in [128 << 10, 4096] {
        check_format(&fx, &rt, Format::Squashfs, block_size);
    }
}

#[test]
fn tar_bytes_do_not_depend_on_jobs_or_arrival_order() {
    let fx = Fixture::new();
    let rt = runtime();
    check_format(&fx, &rt, Format::Tar, 128 << 10);
}

#[test]
fn the_pinned_time_is_the_only_time_in_the_superblock() {
    // Two conversions with different pinned times differ exactly in the superblock's time
    // field: nothing else in the image comes from the clock.
    let fx = Fixture::new();
    let a = fx.convert(Format::Squashfs, &options(2, 128 << 10));
    let mut other = options(2, 128 << 10);
    other.squashfs.mtime = Some(MTIME + 1);
    let b = fx.convert(Format::Squashfs, &other);
    assert_eq!(a.len(), b.len());
    let differing: Vec<usize> = (0..a.len()).filter(|&i| a[i] != b[i]).collect();
    assert!(
        !differing.is_empty() && differing.iter().all(|i| (8..12).contains(i)),
        "bytes that differ: {differing:?}"
    );
    assert_eq!(superblock_mtime(&b), MTIME + 1);
}
