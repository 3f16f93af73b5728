//! The `merge` target's check, as a function so that `cargo test` can run seeds through it.
//!
//! Structured inputs: the model's tree is the oracle. Raw inputs: each layer is read by
//! ocirender's tar reader into builder entries first (the `tar_entry` target fuzzes that reader
//! on its own), and the model applies those; a layer the reader refuses means the whole stack
//! must be refused. Raw layers also go through the gzip decoder, which must not change a byte
//! of the tar output.

use std::io::Write;

use ocirender::{EntryKind, Error};

use crate::builder::{Body, Layer, TarEntry};
use crate::dump::{DumpOptions, Tree};
use crate::merge_input::MergeInput;
use crate::model;
use crate::outputs::diff;
use crate::readback;
use crate::run::{self, Feed, LayerBlob, Merged, Output, OUTPUTS};

/// The largest file a raw input may declare (a sparse header can claim terabytes of holes,
/// which the merge would faithfully stream; that is slow, not wrong).
pub const MAX_FILE: u64 = 1 << 20;
/// The most file content a raw input may declare in all.
pub const MAX_TOTAL: u64 = 8 << 20;

/// Runs one input through one sink, which the input's bytes choose (each sink costs as much
/// as the merge, so checking all three would cut the rate to a third; the fuzzer still
/// reaches every sink, and a stack that breaks the merge breaks it in any sink); panics on any
/// broken invariant.
pub fn check(input: &MergeInput) {
    check_outputs(input, Pick::One)
}

/// Runs one input through every sink.
pub fn check_every_output(input: &MergeInput) {
    check_outputs(input, Pick::All)
}

/// Which sinks an input goes through.
#[derive(Clone, Copy)]
enum Pick {
    One,
    All,
}

impl Pick {
    /// The sinks for layers of these bytes.
    fn outputs<'a>(self, layers: impl Iterator<Item = &'a [u8]>) -> Vec<Output> {
        match self {
            Pick::All => OUTPUTS.to_vec(),
            Pick::One => {
                // FNV-1a: cheap, and any change to the input may move it to another sink.
                let h = layers.flatten().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
                });
                vec![OUTPUTS[(h % OUTPUTS.len() as u64) as usize]]
            }
        }
    }
}

fn check_outputs(input: &MergeInput, pick: Pick) {
    match input {
        MergeInput::Raw(layers) => check_raw(layers, pick),
        MergeInput::Layers(_) => {
            let layers = input.layers().unwrap_or_default();
            check_layers(&layers, pick)
        }
    }
}

fn check_layers(layers: &[Layer], pick: Pick) {
    let blobs: Vec<LayerBlob> = layers
        .iter()
        .enumerate()
        .map(|(i, l)| LayerBlob::new(i, l.blob_bytes(), &l.layer_media_type()))
        .collect();
    let limits = Limits::of(layers.iter().flat_map(|l| &l.entries));
    let expected = model::apply(layers);
    for output in pick.outputs(blobs.iter().map(|b| b.bytes.as_slice())) {
        // The tar sink takes the spooling path, the others the re-reading one.
        let got = run::merge(&blobs, output, Feed::Decoder, output != Output::Tar);
        compare(output, &expected, &limits, got);
    }
}

fn check_raw(tars: &[Vec<u8>], pick: Pick) {
    let mut total = 0u64;
    let mut parsed: Vec<Option<Vec<TarEntry>>> = Vec::new();
    for tar in tars {
        match parse_capped(tar, &mut total) {
            Parsed::Entries(e) => parsed.push(Some(e)),
            Parsed::Refused => parsed.push(None),
            Parsed::TooLarge => return,
        }
    }
    let all: Vec<&TarEntry> = parsed.iter().flatten().flatten().collect();
    let limits = Limits::of(all.iter().copied());
    let expected = match parsed.into_iter().collect::<Option<Vec<_>>>() {
        Some(layers) => {
            let layers: Vec<Layer> = layers
                .into_iter()
                .map(|entries| Layer {
                    entries,
                    ..Layer::new()
                })
                .collect();
            model::apply(&layers)
        }
        None => Err("ocirender's tar reader refuses a layer".to_owned()),
    };
    let direct: Vec<LayerBlob> = tars
        .iter()
        .enumerate()
        .map(|(i, t)| LayerBlob::new(i, t.clone(), ""))
        .collect();
    // The tar output is always made: the gzip check below compares with it.
    let mut outputs = pick.outputs(tars.iter().map(Vec::as_slice));
    if !outputs.contains(&Output::Tar) {
        outputs.insert(0, Output::Tar);
    }
    let mut tar_bytes = None;
    for output in outputs {
        let got = run::merge(&direct, output, Feed::Direct, output != Output::Tar);
        if output == Output::Tar {
            tar_bytes = Some(got.as_ref().map(|m| m.tar.clone()).ok());
        }
        compare(output, &expected, &limits, got);
    }
    let gzipped: Vec<LayerBlob> = tars
        .iter()
        .enumerate()
        .map(|(i, t)| LayerBlob::new(i, gzip(t), "application/vnd.oci.image.layer.v1.tar+gzip"))
        .collect();
    let via_gzip = run::merge(&gzipped, Output::Tar, Feed::Decoder, true);
    let direct_tar = tar_bytes.flatten();
    match (&direct_tar, &via_gzip) {
        (Some(a), Ok(b)) => assert!(a == &b.tar, "gzip changes the tar output"),
        (None, Err(_)) => {}
        (Some(_), Err(e)) => panic!("the gzip-compressed layers fail ({e}), the raw ones do not"),
        (None, Ok(_)) => panic!("the gzip-compressed layers merge, the raw ones do not"),
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).expect("in memory");
    e.finish().expect("in memory")
}

enum Parsed {
    Entries(Vec<TarEntry>),
    Refused,
    TooLarge,
}

/// Reads a raw layer with ocirender's tar reader into builder entries; `TooLarge` as soon as
/// a file declares more than the caps allow (whether or not the layer is valid after it).
fn parse_capped(tar: &[u8], total: &mut u64) -> Parsed {
    let mut entries = Vec::new();
    let mut too_large = false;
    let mut input = tar;
    let r = ocirender::layer::tar::for_each_entry(&mut input, &mut |e, data| {
        if let EntryKind::File { size, .. } = e.kind {
            *total = total.saturating_add(size);
            if size > MAX_FILE || *total > MAX_TOTAL {
                too_large = true;
                return Err(Error::Stopped);
            }
        }
        let body = match &e.kind {
            EntryKind::File { .. } => {
                let mut content = Vec::new();
                data.read_to_end(&mut content)
                    .map_err(|source| Error::Tar { source })?;
                Body::File(content)
            }
            EntryKind::Dir => Body::Dir,
            EntryKind::Symlink { target } => Body::Symlink(target.clone()),
            EntryKind::Hardlink { target } => Body::Hardlink(target.as_bytes().to_vec()),
            EntryKind::CharDevice { major, minor } => Body::CharDev(*major, *minor),
            EntryKind::BlockDevice { major, minor } => Body::BlockDev(*major, *minor),
            EntryKind::Fifo => Body::Fifo,
            EntryKind::Socket => unreachable!("tar has no sockets"),
        };
        entries.push(TarEntry {
            name: e.path.as_bytes().to_vec(),
            body,
            mode: e.meta.mode,
            uid: e.meta.uid,
            gid: e.meta.gid,
            mtime: e.meta.mtime,
            xattrs: e
                .meta
                .xattrs
                .iter()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        });
        Ok(())
    });
    match r {
        _ if too_large => Parsed::TooLarge,
        Ok(()) => Parsed::Entries(entries),
        Err(_) => Parsed::Refused,
    }
}

/// What the input holds that some format cannot store: a sink may refuse the stack then.
#[derive(Default)]
struct Limits {
    /// A symlink with an empty target (neither squashfs nor Linux has one).
    empty_symlink: bool,
    /// A symlink target over 4095 bytes (Linux's PATH_MAX; squashfs allows 4096).
    long_symlink: bool,
    /// A device number squashfs cannot encode (major ≥ 4096 or minor ≥ 2^20).
    big_device: bool,
}

impl Limits {
    fn of<'a>(entries: impl Iterator<Item = &'a TarEntry>) -> Limits {
        let mut l = Limits::default();
        for e in entries {
            match &e.body {
                Body::Symlink(t) if t.is_empty() => l.empty_symlink = true,
                Body::Symlink(t) if t.len() > 4095 => l.long_symlink = true,
                Body::CharDev(a, b) | Body::BlockDev(a, b) if *a >= 4096 || *b >= 1 << 20 => {
                    l.big_device = true
                }
                _ => {}
            }
        }
        l
    }

    /// Whether `err` is `output`'s refusal of something this input holds.
    fn allows(&self, output: Output, err: &Error) -> bool {
        match (output, err.root_cause()) {
            (Output::Squashfs, Error::Unrepresentable { .. }) => {
                self.empty_symlink || self.long_symlink || self.big_device
            }
            (Output::Dir, Error::Io { .. } | Error::Output { .. }) => {
                self.empty_symlink || self.long_symlink
            }
            _ => false,
        }
    }
}

/// Checks one sink's result against the model.
fn compare(
    output: Output,
    expected: &Result<Tree, String>,
    limits: &Limits,
    got: ocirender::Result<Merged>,
) {
    let opts = DumpOptions::default();
    match (expected, got) {
        (Ok(e), Ok(m)) => {
            let e = match output {
                Output::Tar => e.clone(),
                Output::Dir => readback::as_dir(e, &m.warnings),
                Output::Squashfs => readback::as_squashfs(e),
            };
            let (e, a) = (e.dump(opts), m.tree.dump(opts));
            assert!(
                e == a,
                "{output:?} output differs from the model (- model, + output):\n{}",
                diff(&e, &a)
            );
        }
        (Ok(_), Err(err)) if limits.allows(output, &err) => {}
        (Err(_), Err(_)) => {}
        (Err(why), Ok(_)) if model::refused_out_of_caution(why) => {}
        (Ok(e), Err(err)) => panic!(
            "{output:?} failed ({err}) where the model gives:\n{}",
            e.dump(opts)
        ),
        (Err(why), Ok(m)) => panic!(
            "{output:?} succeeded where the model refuses ({why}):\n{}",
            m.tree.dump(opts)
        ),
    }
}
