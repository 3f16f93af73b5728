//! Damaged, truncated, tampered and hostile images, end to end through `convert`.
//!
//! Invariants under test, for every format: the conversion returns `Err` (never panics, never
//! allocates what a size field claims), the root cause is the variant that names the problem,
//! the message says where (layer index and digest, or the file), and no output survives: no
//! file at the target and no `*.partial` beside it (tar, squashfs); for a directory, nothing
//! written anywhere in the sandbox around it, and the directory removed (or left empty when it
//! existed before). Symlinks that point out of the image are the exception: names through them
//! resolve inside the root, so such an image converts, and nothing lands outside.

use std::fs;
use std::path::{Path, PathBuf};

use crate::support::builder::{raw, Built, Codec, Corruption, ImageBuilder, Layer};
use crate::support::dump::DumpOptions;
use crate::support::outputs::{convert_one, open_image, output_path};
use ocirender::{convert, ConvertOptions, Error, Format, ImageSpec};

/// Two ordinary layers and a third that tests damage; `codec` is the third's.
fn image(dir: &Path, codec: Codec) -> Built {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/passwd", "root:x:0:0\n", 0o644),
        )
        .layer(
            Layer::new()
                .dir("usr", 0o755)
                .file("usr/data", vec![7u8; 200_000], 0o644)
                .compression(Codec::Zstd),
        )
        .layer(
            Layer::new()
                .dir("opt", 0o755)
                .file(
                    "opt/big",
                    (0..300_000u32)
                        .map(|i| (i * 7 % 251) as u8)
                        .collect::<Vec<_>>(),
                    0o644,
                )
                .file("opt/small", "s", 0o644)
                .compression(codec),
        )
        .build(dir.join("img"))
}

/// Every path below `root`, relative, sorted.
fn listing(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
            if p.is_dir() && !p.is_symlink() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Converts `img` to `format` with the output three directories down in an empty sandbox,
/// and checks that a failure leaves the sandbox as it was. `existing`: the output directory
/// exists (empty) before the conversion.
fn convert_in_sandbox(img: &Path, format: Format, existing: bool) -> Result<(), Error> {
    let sandbox = tempfile::tempdir().unwrap();
    let work = sandbox.path().join("a/b/c");
    fs::create_dir_all(&work).unwrap();
    let target = output_path(&work, format);
    if existing {
        fs::create_dir(&target).unwrap();
    }
    let before = listing(sandbox.path());
    let result = open_image(img).and_then(|i| {
        convert(
            &i,
            &ImageSpec::new(format, &target),
            &ConvertOptions::default(),
        )
    });
    if let Err(e) = &result {
        let after = listing(sandbox.path());
        assert_eq!(after, before, "{format:?}: the failed conversion ({e}) left files behind (or removed a directory it did not create)");
        if existing {
            assert!(
                target.is_dir(),
                "{format:?}: the existing output directory was removed"
            );
        }
    }
    result.map(|_| ())
}

/// Converts `img` to every format (and to an existing directory) and checks the error.
fn assert_fails(img: &Path, what: &str, is: fn(&Error) -> bool, variants: &str, mentions: &[&str]) {
    let runs = [
        (Format::Squashfs, false),
        (Format::Tar, false),
        (Format::Dir, false),
        (Format::Dir, true),
    ];
    for (format, existing) in runs {
        let context = format!(
            "{what}, {format:?}{}",
            if existing {
                " into an existing dir"
            } else {
                ""
            }
        );
        let err = match convert_in_sandbox(img, format, existing) {
            Ok(()) => panic!("{context}: the conversion succeeded"),
            Err(e) => e,
        };
        let cause = err.root_cause();
        assert!(
            is(cause),
            "{context}: root cause {cause:?}, want {variants}; error: {err}"
        );
        let msg = crate::support::error_text(&err);
        for m in mentions {
            assert!(
                msg.contains(m),
                "{context}: the message does not name {m:?}: {msg}"
            );
        }
    }
}

/// What a message about layer `k` of `img` must name.
fn layer_words(img: &Built, k: usize) -> [String; 2] {
    [format!("layer {k}"), img.layer_digest(k).to_string()]
}

macro_rules! is {
    ($($variant:ident)|+) => {
        (|e: &Error| matches!(e, $(Error::$variant { .. })|+), stringify!($($variant)|+))
    };
}

fn check(img: &Path, what: &str, (is, variants): (fn(&Error) -> bool, &str), mentions: &[String]) {
    let mentions: Vec<&str> = mentions.iter().map(String::as_str).collect();
    assert_fails(img, what, is, variants, &mentions);
}

/// Sanity: the undamaged image converts, so each failure below is the damage's doing.
#[test]
fn the_undamaged_image_converts() {
    let t = tempfile::tempdir().unwrap();
    for codec in [Codec::Gzip, Codec::Plain] {
        let img = image(t.path(), codec);
        for format in Format::ALL {
            convert_in_sandbox(&img, format, false)
                .unwrap_or_else(|e| panic!("{codec:?} {format:?}: {e}"));
        }
        fs::remove_dir_all(t.path().join("img")).unwrap();
    }
}

#[test]
fn a_byte_flipped_in_the_gzip_checksum() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Gzip);
    // The CRC-32 in the member trailer: the data decodes, the check fails at the end.
    img.corrupt_layer(2, Corruption::FlipByte(-8));
    check(
        &img,
        "gzip CRC flipped",
        is!(Decompress | DigestMismatch),
        &layer_words(&img, 2),
    );
}

#[test]
fn a_byte_flipped_inside_the_gzip_data() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Gzip);
    let len = img.layers()[2].size as i64;
    img.corrupt_layer(2, Corruption::FlipByte(len / 2));
    // Corrupt data may reach the tar reader before the decoder or the digest notices.
    check(
        &img,
        "gzip data flipped",
        is!(Decompress | DigestMismatch | Tar | TarHeader),
        &layer_words(&img, 2),
    );
}

#[test]
fn a_truncated_layer() {
    let t = tempfile::tempdir().unwrap();
    for codec in [Codec::Gzip, Codec::Plain] {
        let img = image(t.path(), codec);
        let half = img.layers()[2].size / 2;
        img.corrupt_layer(2, Corruption::Truncate(half));
        let what = format!("{codec:?} layer truncated");
        check(
            &img,
            &what,
            is!(Decompress | SizeMismatch | DigestMismatch | Tar),
            &layer_words(&img, 2),
        );
        fs::remove_dir_all(t.path().join("img")).unwrap();
    }
}

#[test]
fn a_missing_blob() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Gzip);
    img.corrupt_layer(1, Corruption::Delete);
    let hex = img.layers()[1].hex().to_string();
    check(&img, "layer blob deleted", is!(BlobMissing), &[hex]);
}

#[test]
fn a_tampered_layer_with_the_same_size() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Plain);
    // A byte of opt/big's content: still a valid tar of the same size, but not the blob the
    // descriptor names.
    let mut blob = fs::read(img.layers()[2].path.as_ref().unwrap()).unwrap();
    let at = blob.windows(4).position(|w| w == [0, 7, 14, 21]).unwrap() + 2;
    blob[at] ^= 0x55;
    assert_eq!(blob.len() as u64, img.layers()[2].size);
    img.corrupt_layer(2, Corruption::Replace(blob));
    check(
        &img,
        "plain layer tampered",
        is!(DigestMismatch),
        &layer_words(&img, 2),
    );
}

#[test]
fn a_layer_replaced_by_another_valid_layer() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Gzip);
    let other = Layer::new().file("evil", "payload", 0o755).blob_bytes();
    img.corrupt_layer(2, Corruption::Replace(other));
    check(
        &img,
        "layer swapped",
        is!(DigestMismatch | SizeMismatch),
        &layer_words(&img, 2),
    );
}

#[test]
fn garbage_json() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path(), Codec::Gzip);
    img.replace_index_json(b"{\"schemaVersion\": 2, \"manifests\": [ nonsense");
    check(
        &img,
        "index.json garbage",
        is!(Json),
        &["index.json".to_string()],
    );

    let mut img = image(&t.path().join("m"), Codec::Gzip);
    img.replace_manifest(b"\x00\x01 not json at all");
    let hex = img.manifests[0]
        .manifest
        .as_ref()
        .unwrap()
        .hex()
        .to_string();
    check(&img, "manifest garbage", is!(Json), &[hex]);

    let mut img = image(&t.path().join("n"), Codec::Gzip);
    img.replace_manifest(
        br#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}"#,
    );
    let hex = img.manifests[0]
        .manifest
        .as_ref()
        .unwrap()
        .hex()
        .to_string();
    check(
        &img,
        "manifest without layers",
        is!(Json | InvalidDocument),
        &[hex],
    );

    let mut img = image(&t.path().join("c"), Codec::Gzip);
    img.replace_config(b"[1, 2,");
    let hex = img.manifests[0].config.hex().to_string();
    check(&img, "config garbage", is!(Json), &[hex]);
}

#[test]
fn absurd_descriptor_sizes() {
    let t = tempfile::tempdir().unwrap();
    let mut img = image(t.path(), Codec::Gzip);
    img.edit_manifest(|m| m["layers"][1]["size"] = serde_json::json!(1u64 << 62));
    check(
        &img,
        "layer size 2^62",
        is!(SizeMismatch | TooLarge | DocumentTooLarge),
        &layer_words(&img, 1),
    );

    let img = image(&t.path().join("i"), Codec::Gzip);
    let index = fs::read_to_string(img.join("index.json")).unwrap();
    let size = img.manifests[0].manifest.as_ref().unwrap().size;
    let edited = index.replace(
        &format!("\"size\": {size}"),
        &format!("\"size\": {}", 1u64 << 62),
    );
    assert_ne!(
        edited, index,
        "the manifest descriptor's size was not found in index.json"
    );
    img.replace_index_json(edited.as_bytes());
    let hex = img.manifests[0]
        .manifest
        .as_ref()
        .unwrap()
        .hex()
        .to_string();
    check(
        &img,
        "manifest size 2^62",
        is!(SizeMismatch | TooLarge | DocumentTooLarge),
        &[hex],
    );
}

/// A plain layer holding `tar` (digest and size right: the damage is inside the tar).
fn raw_layer_image(dir: &Path, tar: Vec<u8>) -> Built {
    ImageBuilder::new()
        .layer(Layer::new().file("base", "b", 0o644))
        .layer(Layer::from_tar_bytes(tar).compression(Codec::Plain))
        .build(dir)
}

#[test]
fn a_tar_header_with_an_absurd_size() {
    let t = tempfile::tempdir().unwrap();
    let mut tar = Layer::new()
        .file("huge", "only a few bytes", 0o644)
        .to_tar_bytes();
    raw::set_size_base256(&mut tar, 0, 1 << 62);
    let img = raw_layer_image(&t.path().join("a"), tar);
    check(
        &img,
        "size field 2^62",
        is!(Tar | TarHeader | TooLarge),
        &layer_words(&img, 1),
    );

    // The largest octal size (8 GiB − 1) over a short stream: a truncation, not an allocation.
    let mut h = raw::header(b"big", b'0', 0, 0o644, 0, 0, 0, b"", (0, 0));
    h[124..136].copy_from_slice(b"77777777777\0");
    raw::set_checksum(&mut h);
    let mut tar = h.to_vec();
    tar.extend_from_slice(&[b'x'; 4096]);
    tar.extend(raw::end());
    let img = raw_layer_image(&t.path().join("b"), tar);
    check(
        &img,
        "size field 8 GiB",
        is!(Tar | TarHeader | TooLarge),
        &layer_words(&img, 1),
    );
}

#[test]
fn extended_headers_with_absurd_lengths() {
    let t = tempfile::tempdir().unwrap();
    let file = |name: &[u8]| {
        let mut f = raw::header(name, b'0', 1, 0o644, 0, 0, 0, b"", (0, 0)).to_vec();
        f.extend_from_slice(&[b'x'; 512]);
        f.extend(raw::end());
        f
    };
    // A PAX record whose length prefix claims far more than the header holds.
    let mut tar = raw::pax_header(b"99999999999999999999 path=x\n");
    tar.extend(file(b"f"));
    let img = raw_layer_image(&t.path().join("a"), tar);
    check(
        &img,
        "PAX record length 10^20",
        is!(Tar | TarHeader | TooLarge),
        &layer_words(&img, 1),
    );

    // Extended headers whose own size field says 1 TiB: PAX (`x`) and GNU long name (`L`).
    for typeflag in [b'x', b'L'] {
        let mut tar =
            raw::header(b"././@LongLink", typeflag, 0, 0o644, 0, 0, 0, b"", (0, 0)).to_vec();
        raw::set_size_base256(&mut tar, 0, 1 << 40);
        tar.extend_from_slice(&raw::pax_record(b"path", b"x"));
        raw::pad(&mut tar);
        tar.extend(file(b"f"));
        let img = raw_layer_image(&t.path().join(format!("t{typeflag}")), tar);
        let what = format!("{} header of 1 TiB", typeflag as char);
        check(
            &img,
            &what,
            is!(Tar | TarHeader | TooLarge),
            &layer_words(&img, 1),
        );
    }
}

#[test]
fn hostile_paths() {
    let t = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Layer, &str)> = vec![
        (
            "name ../../etc/x",
            Layer::new().file("../../etc/x", "pwned", 0o644),
            "../../etc/x",
        ),
        (
            "name a/../../x",
            Layer::new()
                .dir("a", 0o755)
                .file("a/../../x", "pwned", 0o644),
            "a/../../x",
        ),
        (
            "hard link to ../x",
            Layer::new().file("f", "f", 0o644).hardlink("hl", "../x"),
            "../x",
        ),
        (
            "hard link to ../../../../etc/passwd",
            Layer::new().hardlink("hl", "../../../../etc/passwd"),
            "../../../../etc/passwd",
        ),
    ];
    for (i, (what, layer, path)) in cases.into_iter().enumerate() {
        let img = ImageBuilder::new()
            .layer(Layer::new().file("base", "b", 0o644))
            .layer(layer)
            .build(t.path().join(format!("{i}")));
        let mut words = layer_words(&img, 1).to_vec();
        words.push(path.to_string());
        check(&img, what, is!(HostilePath), &words);
    }
}

/// A symlink that points outside (absolutely, or by climbing with `..`) is resolved inside the
/// image's root, as the runtimes resolve it: what goes beneath it lands in the root, never
/// outside it, in every format.
#[test]
fn writing_through_a_symlink_stays_inside_the_root() {
    let t = tempfile::tempdir().unwrap();
    let outside = t.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let abs = outside.to_str().unwrap().to_string();
    let inside = abs.trim_start_matches('/').to_string();
    let cases: Vec<(&str, Vec<Layer>, String)> = vec![
        (
            "file beneath an absolute symlink",
            vec![
                Layer::new().symlink("s", &abs),
                Layer::new().file("s/pwned", "x", 0o644),
            ],
            format!("/{inside}/pwned file"),
        ),
        (
            "file beneath a relative symlink",
            vec![
                Layer::new().symlink("up", "../../../../../../.."),
                Layer::new().file("up/pwned", "x", 0o644),
            ],
            "/pwned file".to_string(),
        ),
        (
            "hard link beneath a symlink",
            vec![
                Layer::new().file("f", "f", 0o644).symlink("s", &abs),
                Layer::new().hardlink("s/pwned", "f"),
            ],
            format!("/{inside}/pwned file"),
        ),
    ];
    for (i, (what, layers, line)) in cases.into_iter().enumerate() {
        let img = ImageBuilder::new()
            .layers(layers)
            .build(t.path().join(format!("{i}")));
        for format in Format::ALL {
            let tree = convert_one(&img.path, format, &ConvertOptions::default())
                .result
                .unwrap_or_else(|e| panic!("{what}, {format:?}: {e}"));
            let dump = tree.dump(DumpOptions::default());
            assert!(
                dump.lines().any(|l| l.starts_with(&line)),
                "{what}, {format:?}: no {line:?} in\n{dump}"
            );
            assert!(
                listing(&outside).is_empty(),
                "{what}, {format:?}: something was written through the symlink"
            );
        }
    }
}

#[test]
fn a_layer_that_is_not_tar() {
    let t = tempfile::tempdir().unwrap();
    let text = b"This is a README, not a tar archive.\n".repeat(30);
    for codec in [Codec::Plain, Codec::Gzip] {
        let img = ImageBuilder::new()
            .layer(Layer::new().file("base", "b", 0o644))
            .layer(Layer::from_tar_bytes(text.clone()).compression(codec))
            .build(t.path().join(format!("{codec:?}")));
        let what = format!("{codec:?} text layer");
        check(&img, &what, is!(Tar | TarHeader), &layer_words(&img, 1));
    }
    // The media type says gzip; the bytes are a plain tar.
    let img = ImageBuilder::new()
        .layer(Layer::new().file("base", "b", 0o644))
        .layer(
            Layer::new()
                .file("x", "x", 0o644)
                .compression(Codec::Plain)
                .media_type(Codec::Gzip.media_type()),
        )
        .build(t.path().join("mislabeled"));
    // DESIGN: a media type that claims compression over uncompressed data is an error.
    check(
        &img,
        "gzip media type over a plain tar",
        is!(Decompress | UnsupportedMediaType | WrongMagic),
        &layer_words(&img, 1),
    );
}

/// See: issue 17, point 4 (a 100 KB name gave a 200 KB message: the name whole, twice), and
/// point 3 (names deeper than PATH_MAX are refused, as the runtimes' extraction refuses them,
/// so that a few KB of layer cannot build a tree thousands of levels deep).
#[test]
fn long_names_are_refused_with_short_messages() {
    let t = tempfile::tempdir().unwrap();
    let long_component = "x".repeat(100_000);
    let too_deep = format!("{}f", "a/".repeat(3000));
    // `l` resolves to 3,000 bytes; a 1,201-byte name beneath it lands past PATH_MAX.
    let stacked = format!("l/{}f", "c/".repeat(600));
    let cases: Vec<(&str, Vec<Layer>, &str)> = vec![
        (
            "a 100,000-byte component",
            vec![Layer::new().file(&long_component, "x", 0o644)],
            "(100000 bytes)",
        ),
        (
            "a name 3,000 directories deep",
            vec![Layer::new().file(&too_deep, "x", 0o644)],
            "is longer than PATH_MAX (4095 bytes)",
        ),
        (
            "a name that symlinks stack past PATH_MAX",
            vec![
                Layer::new().symlink("l", "b/".repeat(1500).trim_end_matches('/')),
                Layer::new().file(&stacked, "x", 0o644),
            ],
            "resolves through symlinks to a path longer than PATH_MAX",
        ),
    ];
    for (i, (what, layers, words)) in cases.into_iter().enumerate() {
        let img = ImageBuilder::new()
            .layer(Layer::new().file("base", "b", 0o644))
            .layers(layers)
            .build(t.path().join(format!("{i}")));
        let last = img.layers().len() - 1;
        let mut mentions = layer_words(&img, last).to_vec();
        mentions.push(words.to_string());
        check(&img, what, is!(HostilePath), &mentions);
        let err = convert_in_sandbox(&img, Format::Tar, false).unwrap_err();
        let msg = crate::support::error_text(&err);
        assert!(
            msg.len() < 700,
            "{what}: a {}-byte message: {msg}",
            msg.len()
        );
        assert_eq!(msg.matches('…').count(), 1, "{what}: the name once: {msg}");

        // The CLI prints the same one short line.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ocirender"))
            .args(["convert", "--quiet", img.to_str().unwrap()])
            .arg(t.path().join(format!("{i}.tar")))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
        assert!(
            stderr.len() < 900 && stderr.lines().count() == 1 && stderr.contains(words),
            "{what}: {stderr}"
        );
    }
}
