//! Image sources, layer decoding and tar entry parsing, end to end from files built in code.
//!
//! Every layout is written into a temporary directory with `serde_json` and real blobs, every
//! layer is a tar made here (with the `tar` crate's builder, or raw header bytes for the odd
//! cases) and compressed with the real codecs. Each test reads through the public API
//! (`Image::open` → `LayerReader` → `for_each_entry` → `finish`) and asserts on one line per
//! entry. Every error test asserts the error variant and that the message names the layer or
//! the document.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ocirender::image::{list_manifests, BlobLocation, DigestOf, Layout};
use ocirender::layer::tar::for_each_entry;
use ocirender::layer::LayerReader;
use ocirender::{
    Digest, Entry, EntryKind, Error, Image, ImageLocation, LayerDescriptor, Platform, Progress,
    Selector,
};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Builders
// ---------------------------------------------------------------------------------------------

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const TAR_ZST: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF: &str = "org.opencontainers.image.ref.name";

fn sha(bytes: &[u8]) -> String {
    Digest::of(ocirender::DigestAlgorithm::Sha256, bytes).to_string()
}

fn hex(bytes: &[u8]) -> String {
    sha(bytes)["sha256:".len()..].to_owned()
}

/// An OCI image layout in a temporary directory.
struct Oci {
    dir: tempfile::TempDir,
}

impl Oci {
    fn new() -> Oci {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        Oci { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let blobs = self.path().join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        std::fs::write(blobs.join(hex(bytes)), bytes).unwrap();
        json!({"mediaType": media_type, "digest": sha(bytes), "size": bytes.len()})
    }

    fn blob_path(&self, desc: &Value) -> PathBuf {
        let digest = desc["digest"].as_str().unwrap();
        self.path()
            .join("blobs/sha256")
            .join(&digest["sha256:".len()..])
    }

    fn config(&self, os: &str, arch: &str) -> Value {
        let config = json!({
            "architecture": arch, "os": os, "created": "2024-01-02T03:04:05Z",
            "config": {"User": "app", "Env": ["PATH=/bin"], "Entrypoint": ["/bin/sh"],
                       "Cmd": null, "WorkingDir": "/srv"},
            "rootfs": {"type": "layers", "diff_ids": []}
        });
        self.blob(
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&config).unwrap(),
        )
    }

    /// Stores a manifest over `layers` (media type, blob bytes) and returns its descriptor.
    fn manifest(&self, layers: &[(&str, Vec<u8>)], config: Value) -> Value {
        let layers: Vec<Value> = layers.iter().map(|(mt, b)| self.blob(mt, b)).collect();
        let manifest = json!({
            "schemaVersion": 2, "mediaType": MANIFEST, "config": config, "layers": layers
        });
        self.blob(MANIFEST, &serde_json::to_vec(&manifest).unwrap())
    }

    fn index(&self, manifests: Vec<Value>) {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": manifests});
        std::fs::write(
            self.path().join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    fn open(&self, spec: &str) -> ocirender::Result<Image> {
        let s = format!("{}{spec}", self.path().display());
        Image::open(&ImageLocation::parse(&s), &Selector::default())
    }
}

fn with(desc: Value, annotations: Value, platform: Option<&str>) -> Value {
    let mut desc = desc;
    desc["annotations"] = annotations;
    if let Some(p) = platform {
        let parts: Vec<&str> = p.split('/').collect();
        let mut platform = json!({"os": parts[0], "architecture": parts[1]});
        if let Some(v) = parts.get(2) {
            platform["variant"] = json!(v);
        }
        desc["platform"] = platform;
    }
    desc
}

fn named(desc: Value, name: &str) -> Value {
    with(desc, json!({REF: name}), None)
}

/// A tar built with the `tar` crate (GNU headers, so long names become `L` records).
fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    build(&mut b);
    b.into_inner().unwrap()
}

fn add_file(b: &mut tar::Builder<Vec<u8>>, path: &str, content: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, content).unwrap();
}

fn add_dir(b: &mut tar::Builder<Vec<u8>>, path: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o755);
    h.set_entry_type(tar::EntryType::Directory);
    b.append_data(&mut h, path, &[][..]).unwrap();
}

fn add_link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_size(0);
    h.set_mode(0o777);
    h.set_entry_type(kind);
    b.append_link(&mut h, path, target).unwrap();
}

/// A small layer: a directory, a file, a symlink.
fn small_tar() -> Vec<u8> {
    tar_of(|b| {
        add_dir(b, "etc/");
        add_file(b, "etc/hostname", b"box\n");
        add_link(b, tar::EntryType::Symlink, "bin/sh", "busybox");
    })
}

const SMALL_TAR_LINES: &str = "\
etc dir 0755 0:0 t=0
etc/hostname file 0644 0:0 t=1700000000 size=4 data=\"box\\n\"
bin/sh symlink 0777 0:0 t=0 -> \"busybox\"";

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 3).unwrap()
}

fn xz(data: &[u8]) -> Vec<u8> {
    liblzma::encode_all(data, 6).unwrap()
}

fn bzip2(data: &[u8]) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// One line per entry: path, type, mode, owner, time, and what the type carries.
fn line(entry: &Entry, data: &[u8]) -> String {
    let m = &entry.meta;
    let mut s = format!(
        "{} {} {:04o} {}:{} t={}",
        entry.path.lossy(),
        entry.kind.name(),
        m.mode,
        m.uid,
        m.gid,
        m.mtime
    );
    if m.mtime_nsec != 0 {
        s += &format!(".{:09}", m.mtime_nsec);
    }
    match &entry.kind {
        EntryKind::File { size, sparse } => {
            s += &format!(" size={size}");
            if let Some(map) = sparse {
                s += &format!(" sparse={map:?}");
            }
            if data.len() <= 64 {
                s += &format!(" data={:?}", String::from_utf8_lossy(data));
            } else {
                s += &format!(" sha={}", &hex(data)[..12]);
            }
        }
        EntryKind::Symlink { target } => s += &format!(" -> {:?}", String::from_utf8_lossy(target)),
        EntryKind::Hardlink { target } => s += &format!(" => {}", target.lossy()),
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            s += &format!(" dev={major},{minor}")
        }
        _ => {}
    }
    for x in &m.xattrs {
        s += &format!(
            " xattr={}={:?}",
            String::from_utf8_lossy(&x.name),
            String::from_utf8_lossy(&x.value)
        );
    }
    s
}

/// Reads every entry of a tar stream into lines.
fn lines_of(stream: &mut dyn Read) -> ocirender::Result<String> {
    let mut lines = Vec::new();
    for_each_entry(stream, &mut |entry, data| {
        let mut content = Vec::new();
        data.read_to_end(&mut content).map_err(|e| Error::Io {
            op: "read",
            path: "entry".into(),
            source: e,
        })?;
        if let EntryKind::File { size, .. } = entry.kind {
            assert_eq!(content.len() as u64, size, "{}", entry.path.lossy());
        }
        lines.push(line(&entry, &content));
        Ok(())
    })?;
    Ok(lines.join("\n"))
}

fn tar_lines(tar: &[u8]) -> ocirender::Result<String> {
    lines_of(&mut &tar[..])
}

/// Decodes a layer through `LayerReader` and the tar reader, then takes the verdict.
fn read_layer(desc: &LayerDescriptor) -> ocirender::Result<String> {
    let mut reader = LayerReader::open(desc, None)?;
    let lines = lines_of(&mut reader).map_err(unwrap_io)?;
    reader.finish()?;
    Ok(lines)
}

/// The test's own data reader turns errors into `Error::Io`; undo that to see the typed error
/// the layer reader put inside.
fn unwrap_io(e: Error) -> Error {
    match e {
        Error::Io {
            source, op: "read", ..
        } if source.get_ref().is_some_and(|i| i.is::<Error>()) => {
            *source.into_inner().unwrap().downcast::<Error>().unwrap()
        }
        e => e,
    }
}

/// A one-layer OCI image whose layer is `blob` labelled `media_type`.
fn one_layer_image(media_type: &str, blob: Vec<u8>) -> (Oci, Image) {
    let oci = Oci::new();
    let config = oci.config("linux", "amd64");
    let m = oci.manifest(&[(media_type, blob)], config);
    oci.index(vec![named(m, "latest")]);
    let image = oci.open("").unwrap();
    (oci, image)
}

fn assert_names_layer(err: &Error, index: usize, digest: &Digest) {
    let text = crate::support::error_text(err);
    assert!(text.contains(&format!("layer {index}")), "{text}");
    assert!(text.contains(&digest.to_string()), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Layouts
// ---------------------------------------------------------------------------------------------

#[test]
fn oci_layout_with_one_manifest_opens_and_reads() {
    let (oci, image) = one_layer_image(TAR_GZ, gzip(&small_tar()));
    assert_eq!(image.layout, Layout::Oci);
    assert_eq!(image.layers.len(), 1);
    let layer = &image.layers[0];
    assert_eq!(layer.digest_of, DigestOf::Blob);
    assert_eq!(layer.media_type, TAR_GZ);
    assert!(matches!(&layer.location, BlobLocation::File(p) if p.starts_with(oci.path())));
    let config = image.config.as_ref().unwrap();
    assert_eq!(config.os.as_deref(), Some("linux"));
    assert_eq!(config.user.as_deref(), Some("app"));
    assert_eq!(config.entrypoint, ["/bin/sh"]);
    assert!(config.cmd.is_empty());
    assert_eq!(config.working_dir.as_deref(), Some("/srv"));
    assert!(image.manifest_digest.is_some());
    assert_eq!(read_layer(layer).unwrap(), SMALL_TAR_LINES);
}

#[test]
fn refs_select_and_unknown_or_missing_refs_list_the_choices() {
    let oci = Oci::new();
    let a = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    let b = oci.manifest(
        &[(TAR, tar_of(|b| add_file(b, "b", b"b")))],
        oci.config("linux", "amd64"),
    );
    oci.index(vec![
        named(a, "example.com/app:v1"),
        with(
            b,
            json!({REF: "v2", "io.containerd.image.name": "docker.io/library/app:v2"}),
            None,
        ),
    ]);
    let image = oci.open(":example.com/app:v1").unwrap();
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);
    for spec in [":v2", ":app:v2", ":docker.io/library/app:v2"] {
        let image = oci.open(spec).unwrap();
        assert!(
            read_layer(&image.layers[0]).unwrap().starts_with("b file"),
            "{spec}"
        );
    }

    let err = oci.open(":v3").unwrap_err();
    assert!(matches!(&err, Error::RefNotFound { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains("example.com/app:v1"),
        "{err}"
    );
    assert!(crate::support::error_text(&err).contains("v2"), "{err}");

    let err = oci.open("").unwrap_err();
    let Error::AmbiguousManifest { choices } = &err else {
        panic!("{err}")
    };
    assert_eq!(
        choices,
        &["example.com/app:v1 (linux/amd64)", "v2 (linux/amd64)"]
    );
    // The selector's reference works like DIR:REF.
    let selector = Selector {
        reference: Some("v2".into()),
        platform: None,
    };
    let image = Image::open(
        &ImageLocation::parse(oci.path().to_str().unwrap()),
        &selector,
    )
    .unwrap();
    assert_eq!(image.layers.len(), 1);
}

#[test]
fn one_manifest_under_two_refs_is_not_ambiguous() {
    let oci = Oci::new();
    let m = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    oci.index(vec![named(m.clone(), "l2"), named(m, "latest")]);
    assert_eq!(oci.open("").unwrap().layers.len(), 1);
}

/// index.json → (ref v1) nested index → amd64, arm64/v8, arm/v7, and a BuildKit attestation.
fn multi_platform() -> Oci {
    let oci = Oci::new();
    let mut children = Vec::new();
    for (platform, name) in [
        ("linux/amd64", "amd"),
        ("linux/arm64/v8", "arm64"),
        ("linux/arm/v7", "armv7"),
    ] {
        let parts: Vec<&str> = platform.split('/').collect();
        let layer = tar_of(|b| add_file(b, name, name.as_bytes()));
        let m = oci.manifest(&[(TAR_GZ, gzip(&layer))], oci.config(parts[0], parts[1]));
        children.push(with(m, json!({}), Some(platform)));
    }
    let attestation = oci.manifest(&[], oci.config("unknown", "unknown"));
    children.push(with(
        attestation,
        json!({"vnd.docker.reference.type": "attestation-manifest"}),
        Some("unknown/unknown"),
    ));
    let nested = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": children});
    let nested = oci.blob(INDEX, &serde_json::to_vec(&nested).unwrap());
    oci.index(vec![named(nested, "v1")]);
    oci
}

fn first_file(image: &Image) -> String {
    let lines = read_layer(&image.layers[0]).unwrap();
    lines.split(' ').next().unwrap().to_owned()
}

#[test]
fn nested_multi_platform_index_selects_by_platform() {
    let oci = multi_platform();
    let open = |platform: &str| {
        let selector = Selector {
            reference: None,
            platform: Some(platform.parse().unwrap()),
        };
        let s = format!("{}:v1", oci.path().display());
        Image::open(&ImageLocation::parse(&s), &selector)
    };
    assert_eq!(first_file(&open("linux/arm64").unwrap()), "arm64");
    assert_eq!(first_file(&open("linux/arm64/v8").unwrap()), "arm64");
    assert_eq!(first_file(&open("linux/amd64").unwrap()), "amd");
    assert_eq!(first_file(&open("linux/arm").unwrap()), "armv7");

    let err = open("linux/arm/v6").unwrap_err();
    assert!(matches!(&err, Error::PlatformNotFound { .. }), "{err}");
    let text = crate::support::error_text(&err);
    assert!(
        text.contains("linux/arm/v6") && text.contains("linux/arm64/v8"),
        "{text}"
    );
    assert!(
        !text.contains("unknown"),
        "attestations are not choices: {text}"
    );

    // Without --platform the host decides, or the error lists the three real choices.
    let host = Platform::host();
    match oci.open(":v1") {
        Ok(image) => {
            let os_arch = format!("{}/{}", host.os, host.architecture);
            let expected = match os_arch.as_str() {
                "linux/amd64" => "amd",
                "linux/arm64" => "arm64",
                "linux/arm" => "armv7",
                other => panic!("host {other} chose something"),
            };
            assert_eq!(first_file(&image), expected);
        }
        Err(Error::AmbiguousManifest { choices }) => {
            assert_eq!(
                choices,
                [
                    "v1 (linux/amd64)",
                    "v1 (linux/arm64/v8)",
                    "v1 (linux/arm/v7)"
                ]
            );
        }
        Err(e) => panic!("{e}"),
    }

    let listed = list_manifests(oci.path()).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|m| m.refs == ["v1"]));
    assert_eq!(
        listed[1].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
}

#[test]
fn descriptors_without_media_type_are_judged_by_their_content() {
    let oci = Oci::new();
    let m = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    let nested =
        json!({"schemaVersion": 2, "manifests": [{"digest": m["digest"], "size": m["size"]}]});
    let nested = oci.blob(INDEX, &serde_json::to_vec(&nested).unwrap());
    oci.index(vec![
        json!({"digest": nested["digest"], "size": nested["size"]}),
    ]);
    let image = oci.open("").unwrap();
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);
}

#[test]
fn indexes_nested_too_deep_are_refused() {
    let oci = Oci::new();
    let mut desc = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    for _ in 0..10 {
        let index = json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc]});
        desc = oci.blob(INDEX, &serde_json::to_vec(&index).unwrap());
    }
    oci.index(vec![desc]);
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::InvalidDocument { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains("blob sha256:"),
        "{err}"
    );
}

#[test]
fn a_missing_config_is_no_error_but_a_broken_one_is() {
    let oci = Oci::new();
    let config = oci.config("linux", "amd64");
    let m = oci.manifest(&[(TAR, small_tar())], config.clone());
    oci.index(vec![m]);
    std::fs::remove_file(oci.blob_path(&config)).unwrap();
    let image = oci.open("").unwrap();
    assert!(image.config.is_none());
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);

    // Present but not JSON (digest and size made to match): a Json error naming the blob.
    let oci = Oci::new();
    let garbage = oci.blob("application/vnd.oci.image.config.v1+json", b"{not json");
    let m = oci.manifest(&[(TAR, small_tar())], garbage.clone());
    oci.index(vec![m]);
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::Json { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains(garbage["digest"].as_str().unwrap()),
        "{err}"
    );
}

#[test]
fn garbage_and_oversized_documents_are_named() {
    let oci = Oci::new();
    std::fs::write(oci.path().join("index.json"), b"{\"manifests\": [").unwrap();
    let err = oci.open("").unwrap_err();
    assert!(
        matches!(&err, Error::Json { what, .. } if what == "index.json"),
        "{err}"
    );
    assert!(
        crate::support::error_text(&err).contains("index.json"),
        "{err}"
    );

    // A descriptor claiming a 1 TB manifest is refused before anything is read.
    let m = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    let mut huge = m.clone();
    huge["size"] = json!(1u64 << 40);
    oci.index(vec![huge]);
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::DocumentTooLarge { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains(m["digest"].as_str().unwrap()),
        "{err}"
    );

    // A 17 MiB index.json.
    let mut big = b"{\"manifests\": [], \"x\": \"".to_vec();
    big.resize(17 << 20, b'a');
    big.extend_from_slice(b"\"}");
    std::fs::write(oci.path().join("index.json"), big).unwrap();
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::DocumentTooLarge { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains("index.json"),
        "{err}"
    );

    std::fs::write(
        oci.path().join("oci-layout"),
        br#"{"imageLayoutVersion":"2.0.0"}"#,
    )
    .unwrap();
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::InvalidDocument { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains("oci-layout"),
        "{err}"
    );
}

#[test]
fn a_tampered_manifest_blob_fails_its_digest() {
    let oci = Oci::new();
    let m = oci.manifest(&[(TAR, small_tar())], oci.config("linux", "amd64"));
    oci.index(vec![m.clone()]);
    let path = oci.blob_path(&m);
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.iter().position(|&b| b == b'2').unwrap();
    bytes[i] = b'3'; // schemaVersion 2 → 3: same size, other digest
    std::fs::write(&path, bytes).unwrap();
    let err = oci.open("").unwrap_err();
    assert!(matches!(&err, Error::DigestMismatch { .. }), "{err}");
    assert!(
        crate::support::error_text(&err).contains(m["digest"].as_str().unwrap()),
        "{err}"
    );
}

#[test]
fn a_missing_layer_blob_is_reported_at_open() {
    let (oci, image) = one_layer_image(TAR, small_tar());
    let BlobLocation::File(path) = &image.layers[0].location else {
        panic!()
    };
    std::fs::remove_file(path).unwrap();
    let err = oci.open("").unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::BlobMissing { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
    assert!(
        crate::support::error_text(&err).contains("blobs/sha256/"),
        "{err}"
    );
    // And at LayerReader::open when it vanishes after Image::open.
    let err = LayerReader::open(&image.layers[0], None).err().unwrap();
    assert!(
        matches!(err.root_cause(), Error::BlobMissing { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

#[test]
fn encrypted_layers_are_refused_at_open() {
    let oci = Oci::new();
    let m = oci.manifest(
        &[(
            "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
            gzip(&small_tar()),
        )],
        oci.config("linux", "amd64"),
    );
    oci.index(vec![m]);
    let err = oci.open("").unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::UnsupportedMediaType { .. }),
        "{err}"
    );
    assert!(
        crate::support::error_text(&err).contains("layer 0"),
        "{err}"
    );
}

/// A `docker save` directory in the legacy form: `<id>/layer.tar`, config `<hex>.json` whose
/// `rootfs.diff_ids` hold the layers' digests.
fn docker_save_legacy(dir: &Path, layers: &[Vec<u8>], tags: &[&str]) {
    let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
    let config = json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex(&config));
    std::fs::write(dir.join(&config_name), &config).unwrap();
    let mut names = Vec::new();
    for (i, layer) in layers.iter().enumerate() {
        let id = format!("{:064x}", i + 1);
        std::fs::create_dir_all(dir.join(&id)).unwrap();
        std::fs::write(dir.join(&id).join("layer.tar"), layer).unwrap();
        names.push(format!("{id}/layer.tar"));
    }
    let manifest = json!([{"Config": config_name, "RepoTags": tags, "Layers": names}]);
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}

/// A `docker save` directory as Docker ≥ 25 writes it: blobs in an OCI layout, and
/// `manifest.json` naming them. `images` = (tags, layers).
fn docker_save_new(dir: &Path, images: &[(&[&str], Vec<Vec<u8>>)]) {
    let oci = Oci {
        dir: tempfile::TempDir::new_in(dir).unwrap(),
    };
    let mut entries = Vec::new();
    let mut index = Vec::new();
    for (tags, layers) in images {
        // Real configs differ between images: their diff_ids do.
        let diff_ids: Vec<String> = layers.iter().map(|l| sha(l)).collect();
        let config = json!({"os": "linux", "architecture": "amd64", "rootfs": {"type": "layers", "diff_ids": diff_ids}});
        let config = oci.blob(
            "application/vnd.oci.image.config.v1+json",
            &serde_json::to_vec(&config).unwrap(),
        );
        let layer_pairs: Vec<(&str, Vec<u8>)> = layers.iter().map(|l| (TAR, l.clone())).collect();
        let m = oci.manifest(&layer_pairs, config.clone());
        index.push(m);
        let digest_path =
            |d: &Value| format!("blobs/sha256/{}", &d["digest"].as_str().unwrap()[7..]);
        entries.push(json!({
            "Config": digest_path(&config),
            "RepoTags": tags,
            "Layers": layers.iter().map(|l| format!("blobs/sha256/{}", hex(l))).collect::<Vec<_>>(),
        }));
    }
    oci.index(index);
    std::fs::write(
        oci.path().join("manifest.json"),
        serde_json::to_vec(&entries).unwrap(),
    )
    .unwrap();
    // Move the layout's files up into `dir`.
    for item in std::fs::read_dir(oci.path()).unwrap() {
        let item = item.unwrap();
        std::fs::rename(item.path(), dir.join(item.file_name())).unwrap();
    }
}

/// Packs the directory `dir` into a tar file (what `docker save -o` or `oci-archive` are).
fn tar_dir(dir: &Path, out: &Path) {
    let mut b = tar::Builder::new(std::fs::File::create(out).unwrap());
    b.follow_symlinks(false);
    b.append_dir_all(".", dir).unwrap();
    b.finish().unwrap();
}

fn open_path(path: &Path, reference: Option<&str>) -> ocirender::Result<Image> {
    let location = ImageLocation {
        path: path.to_owned(),
        reference: reference.map(str::to_owned),
    };
    Image::open(&location, &Selector::default())
}

#[test]
fn docker_save_legacy_directory_checks_diff_ids() {
    let dir = tempfile::tempdir().unwrap();
    docker_save_legacy(
        dir.path(),
        &[small_tar(), tar_of(|b| add_file(b, "x", b"x"))],
        &["app:1"],
    );
    let image = open_path(dir.path(), None).unwrap();
    assert_eq!(image.layout, Layout::DockerSave);
    assert_eq!(image.layers.len(), 2);
    assert_eq!(image.layers[0].digest_of, DigestOf::Uncompressed);
    assert_eq!(image.layers[0].media_type, "");
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);
    assert!(open_path(dir.path(), Some("app:1")).is_ok());
    let err = open_path(dir.path(), Some("app:2")).unwrap_err();
    assert!(
        matches!(&err, Error::RefNotFound { .. })
            && crate::support::error_text(&err).contains("app:1"),
        "{err}"
    );

    // One byte of the layer changed: the uncompressed digest catches it.
    let BlobLocation::File(path) = &image.layers[1].location else {
        panic!()
    };
    let mut bytes = std::fs::read(path).unwrap();
    bytes[600] ^= 1;
    std::fs::write(path, bytes).unwrap();
    let err = read_layer(&image.layers[1]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::DigestMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 1, &image.layers[1].digest);
}

#[test]
fn docker_save_new_directory_and_tar_select_by_repo_tags() {
    let dir = tempfile::tempdir().unwrap();
    docker_save_new(
        dir.path(),
        &[
            (&["app:1", "app:latest"], vec![small_tar()]),
            (&["db:2"], vec![tar_of(|b| add_file(b, "db", b"db"))]),
        ],
    );
    let err = open_path(dir.path(), None).unwrap_err();
    let Error::AmbiguousManifest { choices } = &err else {
        panic!("{err}")
    };
    assert_eq!(choices, &["app:1 (linux/amd64)", "db:2 (linux/amd64)"]);

    let image = open_path(dir.path(), Some("app:latest")).unwrap();
    assert_eq!(image.layout, Layout::DockerSave);
    assert_eq!(image.layers[0].digest_of, DigestOf::Blob);
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);
    assert!(image.config.is_some());

    let archive = tempfile::tempdir().unwrap();
    let tar_path = archive.path().join("save.tar");
    tar_dir(dir.path(), &tar_path);
    let image = open_path(&tar_path, Some("db:2")).unwrap();
    assert_eq!(image.layout, Layout::DockerSaveTar);
    assert!(matches!(
        image.layers[0].location,
        BlobLocation::TarMember { .. }
    ));
    assert!(read_layer(&image.layers[0]).unwrap().starts_with("db file"));
    let listed = list_manifests(&tar_path).unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].refs, ["app:1", "app:latest"]);
}

#[test]
fn docker_save_tar_follows_layer_symlinks_inside_the_archive() {
    let dir = tempfile::tempdir().unwrap();
    let layer = small_tar();
    docker_save_legacy(dir.path(), &[layer.clone(), layer], &["app:1"]);
    // Old docker save writes a duplicate layer as a symlink to the first copy.
    let second = dir.path().join(format!("{:064x}", 2)).join("layer.tar");
    std::fs::remove_file(&second).unwrap();
    std::os::unix::fs::symlink(format!("../{:064x}/layer.tar", 1), &second).unwrap();
    let archive = tempfile::tempdir().unwrap();
    let tar_path = archive.path().join("save.tar");
    tar_dir(dir.path(), &tar_path);
    let image = open_path(&tar_path, None).unwrap();
    assert_eq!(image.layout, Layout::DockerSaveTar);
    assert_eq!(image.layers[0].location, image.layers[1].location);
    assert_eq!(read_layer(&image.layers[1]).unwrap(), SMALL_TAR_LINES);
}

#[test]
fn docker_save_paths_must_stay_inside() {
    for bad in ["../outside/layer.tar", "a/../../x/layer.tar", "/etc/passwd"] {
        let dir = tempfile::tempdir().unwrap();
        docker_save_legacy(dir.path(), &[small_tar()], &["app:1"]);
        let manifest_path = dir.path().join("manifest.json");
        let mut manifest: Value =
            serde_json::from_slice(&std::fs::read(&manifest_path).unwrap()).unwrap();
        manifest[0]["Layers"][0] = json!(bad);
        std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        let err = open_path(dir.path(), None).unwrap_err();
        assert!(matches!(&err, Error::HostilePath { .. }), "{bad}: {err}");
        assert!(crate::support::error_text(&err).contains(bad), "{err}");
    }
    // A symlink inside the directory that leads out of it.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("layer.tar"), small_tar()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    docker_save_legacy(dir.path(), &[small_tar()], &["app:1"]);
    let layer = dir.path().join(format!("{:064x}", 1)).join("layer.tar");
    std::fs::remove_file(&layer).unwrap();
    std::os::unix::fs::symlink(outside.path().join("layer.tar"), &layer).unwrap();
    let err = open_path(dir.path(), None).unwrap_err();
    assert!(matches!(&err, Error::HostilePath { .. }), "{err}");
}

#[test]
fn oci_archive_tar_is_read_in_place() {
    let oci = multi_platform();
    let archive = tempfile::tempdir().unwrap();
    let tar_path = archive.path().join("image.oci.tar");
    tar_dir(oci.path(), &tar_path);
    let selector = Selector {
        reference: Some("v1".into()),
        platform: Some("linux/arm/v7".parse().unwrap()),
    };
    let image = Image::open(&ImageLocation::parse(tar_path.to_str().unwrap()), &selector).unwrap();
    assert_eq!(image.layout, Layout::OciArchive);
    let BlobLocation::TarMember { archive, len, .. } = &image.layers[0].location else {
        panic!("{:?}", image.layers[0].location)
    };
    assert_eq!(archive, &tar_path);
    assert_eq!(Some(*len), image.layers[0].size);
    assert_eq!(first_file(&image), "armv7");
}

#[test]
fn bare_manifest_finds_blobs_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let layers = [
        gzip(&small_tar()),
        gzip(&tar_of(|b| add_file(b, "two", b"2"))),
        small_tar(),
    ];
    // Three spellings of a blob's place: blobs/sha256/<hex>, <hex>, sha256:<hex>.
    std::fs::create_dir_all(d.join("blobs/sha256")).unwrap();
    std::fs::write(d.join("blobs/sha256").join(hex(&layers[0])), &layers[0]).unwrap();
    std::fs::write(d.join(hex(&layers[1])), &layers[1]).unwrap();
    std::fs::write(d.join(sha(&layers[2])), &layers[2]).unwrap();
    let config = br#"{"os":"linux","architecture":"arm64","variant":"v8"}"#;
    std::fs::write(d.join(hex(config)), config).unwrap();
    let manifest = json!({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": config.len()},
        "layers": [
            {"mediaType": TAR_GZ, "digest": sha(&layers[0]), "size": layers[0].len()},
            {"mediaType": TAR_GZ, "digest": sha(&layers[1]), "size": layers[1].len()},
            {"mediaType": TAR, "digest": sha(&layers[2]), "size": layers[2].len()},
        ]
    });
    std::fs::write(
        d.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let image = open_path(d, None).unwrap();
    assert_eq!(image.layout, Layout::BareManifest);
    assert_eq!(image.layers.len(), 3);
    assert_eq!(
        image
            .config
            .as_ref()
            .unwrap()
            .platform()
            .unwrap()
            .to_string(),
        "linux/arm64/v8"
    );
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);
    assert!(read_layer(&image.layers[1])
        .unwrap()
        .starts_with("two file"));
    assert_eq!(read_layer(&image.layers[2]).unwrap(), SMALL_TAR_LINES);
    let listed = list_manifests(d).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].platform.as_ref().unwrap().to_string(),
        "linux/arm64/v8"
    );
}

#[test]
fn a_directory_that_is_no_image_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = open_path(dir.path(), None).unwrap_err();
    assert!(matches!(&err, Error::NotAnImage { .. }), "{err}");
    let err = open_path(&dir.path().join("absent"), None).unwrap_err();
    assert!(matches!(&err, Error::NotAnImage { .. }), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Layer decoding
// ---------------------------------------------------------------------------------------------

#[test]
fn every_codec_decodes_to_the_same_entries() {
    let tar = small_tar();
    for (media_type, blob) in [
        (TAR, tar.clone()),
        (TAR_GZ, gzip(&tar)),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            gzip(&tar),
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            gzip(&tar),
        ),
        (TAR_ZST, zstd(&tar)),
        // Unlabelled or unknown: the magic decides.
        ("", xz(&tar)),
        ("application/x-whatever", bzip2(&tar)),
        ("", zstd(&tar)),
        // Mislabelled: the magic wins over the label.
        (TAR_GZ, zstd(&tar)),
        (TAR, gzip(&tar)),
    ] {
        let (_oci, image) = one_layer_image(media_type, blob);
        assert_eq!(
            read_layer(&image.layers[0]).unwrap(),
            SMALL_TAR_LINES,
            "{media_type}"
        );
    }
}

#[test]
fn multi_member_and_multi_frame_streams_are_read_whole() {
    // Split the tar in three pieces, each compressed on its own and concatenated.
    let big = tar_of(|b| {
        for i in 0..50 {
            add_file(b, &format!("f{i}"), &vec![i as u8; 10_000]);
        }
    });
    let pieces = [&big[..100_000], &big[100_000..300_000], &big[300_000..]];
    let skippable = [&[0x50, 0x2a, 0x4d, 0x18, 4, 0, 0, 0][..], b"skip"].concat();
    for (name, media_type, blob) in [
        (
            "gzip members",
            TAR_GZ,
            pieces.iter().flat_map(|p| gzip(p)).collect::<Vec<u8>>(),
        ),
        (
            "zstd frames with a skippable frame",
            TAR_ZST,
            [
                skippable.clone(),
                zstd(pieces[0]),
                skippable,
                zstd(pieces[1]),
                zstd(pieces[2]),
            ]
            .concat(),
        ),
        (
            "xz streams",
            "",
            pieces.iter().flat_map(|p| xz(p)).collect(),
        ),
        (
            "bzip2 streams",
            "",
            pieces.iter().flat_map(|p| bzip2(p)).collect(),
        ),
    ] {
        let (_oci, image) = one_layer_image(media_type, blob);
        let lines = read_layer(&image.layers[0]).unwrap();
        assert_eq!(lines.lines().count(), 50, "{name}");
        assert!(
            lines.lines().last().unwrap().starts_with("f49 file"),
            "{name}"
        );
    }
}

#[test]
fn a_compression_label_over_plain_bytes_is_a_clear_error() {
    let (_oci, image) = one_layer_image(TAR_GZ, small_tar());
    let err = read_layer(&image.layers[0]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::WrongMagic { codec: "gzip", .. }),
        "{err}"
    );
    assert!(
        crate::support::error_text(&err).contains("does not start with the gzip magic"),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

#[test]
fn trailing_garbage_inside_the_tar_is_fine_but_still_hashed() {
    let mut tar = small_tar();
    tar.extend_from_slice(&[0xAB; 3000]);
    let (_oci, image) = one_layer_image(TAR_GZ, gzip(&tar));
    assert_eq!(read_layer(&image.layers[0]).unwrap(), SMALL_TAR_LINES);

    // Change one byte of that garbage, keep the descriptor: finish() reports the mismatch.
    let (_oci, image) = one_layer_image(TAR, tar.clone());
    let BlobLocation::File(path) = &image.layers[0].location else {
        panic!()
    };
    let last = tar.len() - 1;
    tar[last] = 0;
    std::fs::write(path, &tar).unwrap();
    let mut reader = LayerReader::open(&image.layers[0], None).unwrap();
    assert_eq!(lines_of(&mut reader).unwrap(), SMALL_TAR_LINES);
    let err = reader.finish().unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::DigestMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

#[test]
fn trailing_bytes_after_the_last_gzip_member_are_an_error() {
    let mut blob = gzip(&small_tar());
    blob.extend_from_slice(b"not a gzip member");
    let (_oci, image) = one_layer_image(TAR_GZ, blob);
    let err = read_layer(&image.layers[0]).unwrap_err();
    assert!(
        matches!(
            err.root_cause(),
            Error::Decompress { codec: "gzip", .. } | Error::DigestMismatch { .. }
        ),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

/// A flipped byte inside the deflate data either breaks the inflate or decodes to other bytes,
/// which the blob's digest refuses (the layer reader leaves gzip's CRC-32 to the digest).
#[test]
fn a_flipped_byte_inside_a_gzip_layer_is_a_decompression_or_digest_error() {
    let big = tar_of(|b| {
        add_file(
            b,
            "f",
            &(0..200_000u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<_>>(),
        )
    });
    let mut blob = gzip(&big);
    let (oci, image) = one_layer_image(TAR_GZ, blob.clone());
    let mid = blob.len() / 2;
    blob[mid] ^= 0x40;
    std::fs::write(
        oci.blob_path(&json!({"digest": image.layers[0].digest.to_string()})),
        &blob,
    )
    .unwrap();
    let err = read_layer(&image.layers[0]).unwrap_err();
    assert!(
        matches!(
            err.root_cause(),
            Error::Decompress { codec: "gzip", .. } | Error::DigestMismatch { .. }
        ),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

#[test]
fn a_tampered_layer_with_its_old_descriptor_fails_the_digest() {
    let (oci, image) = one_layer_image(TAR, small_tar());
    let mut blob = small_tar();
    blob[1024] ^= 1; // the content of etc/hostname: the tar still parses
    std::fs::write(
        oci.blob_path(&json!({"digest": image.layers[0].digest.to_string()})),
        &blob,
    )
    .unwrap();
    let err = read_layer(&image.layers[0]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::DigestMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

#[test]
fn a_truncated_layer_is_a_size_mismatch_or_a_decode_error() {
    let blob = gzip(&small_tar());
    let (oci, image) = one_layer_image(TAR_GZ, blob.clone());
    let path = oci.blob_path(&json!({"digest": image.layers[0].digest.to_string()}));
    std::fs::write(&path, &blob[..blob.len() / 2]).unwrap();
    // From a file, the size is checked at open.
    let err = LayerReader::open(&image.layers[0], None).err().unwrap();
    assert!(
        matches!(err.root_cause(), Error::SizeMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);

    // From a stream with a size, the end comes too early.
    let desc = &image.layers[0];
    let half = blob[..blob.len() / 2].to_vec();
    let mut reader = LayerReader::from_reader(
        0,
        Box::new(io::Cursor::new(half.clone())),
        TAR_GZ,
        desc.digest.clone(),
        DigestOf::Blob,
        desc.size,
        None,
    )
    .unwrap();
    let err = unwrap_io(lines_of(&mut reader).unwrap_err());
    assert!(
        matches!(err.root_cause(), Error::SizeMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &desc.digest);

    // Without a size, the decoder reports it.
    let mut reader = LayerReader::from_reader(
        0,
        Box::new(io::Cursor::new(half)),
        TAR_GZ,
        desc.digest.clone(),
        DigestOf::Blob,
        None,
        None,
    )
    .unwrap();
    let err = unwrap_io(lines_of(&mut reader).unwrap_err());
    assert!(
        matches!(err.root_cause(), Error::Decompress { .. }),
        "{err}"
    );
}

#[test]
fn a_descriptor_size_that_disagrees_is_refused_at_open() {
    let (_oci, image) = one_layer_image(TAR, small_tar());
    let mut desc = image.layers[0].clone();
    desc.size = Some(u64::MAX);
    let err = LayerReader::open(&desc, None).err().unwrap();
    let Error::SizeMismatch {
        expected, found, ..
    } = err.root_cause()
    else {
        panic!("{err}")
    };
    assert_eq!((*expected, *found), (u64::MAX, small_tar().len() as u64));
    assert_names_layer(&err, 0, &desc.digest);
}

#[test]
fn a_failing_source_is_a_layer_source_error() {
    struct Failing;
    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "network down",
            ))
        }
    }
    let digest = Digest::parse(&sha(b"")).unwrap();
    let mut reader = LayerReader::from_reader(
        3,
        Box::new(Failing),
        "",
        digest.clone(),
        DigestOf::Blob,
        None,
        None,
    )
    .unwrap();
    let err = unwrap_io(lines_of(&mut reader).unwrap_err());
    assert!(
        matches!(err.root_cause(), Error::LayerSource { .. }),
        "{err}"
    );
    assert_names_layer(&err, 3, &digest);
    assert!(
        crate::support::error_text(&err).contains("network down"),
        "{err}"
    );
}

#[test]
fn dropping_a_reader_stops_and_joins_its_thread() {
    struct Endless(Arc<AtomicBool>);
    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(0x41);
            Ok(buf.len())
        }
    }
    impl Drop for Endless {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicBool::new(false));
    let digest = Digest::parse(&sha(b"")).unwrap();
    let mut reader = LayerReader::from_reader(
        0,
        Box::new(Endless(dropped.clone())),
        "",
        digest,
        DigestOf::Blob,
        None,
        None,
    )
    .unwrap();
    let mut buf = [0u8; 1000];
    reader.read_exact(&mut buf).unwrap();
    assert_eq!(reader.index(), 0);
    drop(reader);
    // The join in Drop means the thread is gone, and with it the source.
    assert!(dropped.load(Ordering::SeqCst));
}

#[test]
fn progress_reports_compressed_bytes_about_once_per_mib() {
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let tar = tar_of(|b| add_file(b, "noise", &data));
    let (_oci, image) = one_layer_image(TAR, tar.clone());
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let progress: ocirender::ProgressFn = Arc::new(move |p: &Progress| {
        if let Progress::LayerRead { index, bytes } = p {
            sink.lock().unwrap().push((*index, *bytes));
        }
    });
    let mut reader = LayerReader::open(&image.layers[0], Some(progress)).unwrap();
    lines_of(&mut reader).unwrap();
    reader.finish().unwrap();
    let events = events.lock().unwrap();
    let total = tar.len() as u64;
    assert!(events.len() >= 2 && events.len() <= 5, "{events:?}");
    assert!(events.windows(2).all(|w| w[0].1 < w[1].1), "{events:?}");
    assert_eq!(events.last().unwrap(), &(0, total));
}

#[test]
fn the_digest_verdict_survives_the_tar_reader() {
    // No end-of-archive marker: the tar reader reads to EOF and meets the verdict there.
    let mut tar = small_tar();
    tar.truncate(tar.len() - 1024);
    let (oci, image) = one_layer_image(TAR, tar.clone());
    tar[1100] ^= 1; // the padding after etc/hostname's content
    std::fs::write(
        oci.blob_path(&json!({"digest": image.layers[0].digest.to_string()})),
        &tar,
    )
    .unwrap();
    let mut reader = LayerReader::open(&image.layers[0], None).unwrap();
    let err = lines_of(&mut reader).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::DigestMismatch { .. }),
        "{err}"
    );
    assert_names_layer(&err, 0, &image.layers[0].digest);
}

// ---------------------------------------------------------------------------------------------
// Tar entries
// ---------------------------------------------------------------------------------------------

/// A raw tar header, for the cases the builder will not write.
struct Raw {
    block: [u8; 512],
}

impl Raw {
    fn new(typeflag: u8, name: &[u8], size: u64) -> Raw {
        let mut r = Raw { block: [0; 512] };
        r.block[..name.len()].copy_from_slice(name);
        r.octal(100, 8, 0o644);
        r.octal(108, 8, 0);
        r.octal(116, 8, 0);
        r.octal(124, 12, size);
        r.octal(136, 12, 1_700_000_000);
        r.block[156] = typeflag;
        r.block[257..263].copy_from_slice(b"ustar\0");
        r.block[263..265].copy_from_slice(b"00");
        r
    }

    fn octal(&mut self, at: usize, len: usize, value: u64) -> &mut Raw {
        let s = format!("{value:0width$o}\0", width = len - 1);
        self.block[at..at + len].copy_from_slice(s.as_bytes());
        self
    }

    fn base256(&mut self, at: usize, len: usize, value: i64) -> &mut Raw {
        let bytes = value.to_be_bytes();
        let fill = if value < 0 { 0xff } else { 0 };
        for b in &mut self.block[at..at + len] {
            *b = fill;
        }
        self.block[at + len - 8..at + len].copy_from_slice(&bytes);
        self.block[at] |= 0x80;
        self
    }

    fn set(&mut self, at: usize, bytes: &[u8]) -> &mut Raw {
        self.block[at..at + bytes.len()].copy_from_slice(bytes);
        self
    }

    fn bytes(&mut self) -> Vec<u8> {
        self.block[148..156].copy_from_slice(b"        ");
        let sum: u32 = self.block.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        self.block[148..156].copy_from_slice(s.as_bytes());
        self.block.to_vec()
    }
}

fn padded(data: &[u8]) -> Vec<u8> {
    let mut v = data.to_vec();
    v.resize(data.len().div_ceil(512) * 512, 0);
    v
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    let body = key.len() + value.len() + 3;
    let mut len = body + body.to_string().len();
    if len.to_string().len() != body.to_string().len() {
        len += 1;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// An `x` header and its records.
fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let data: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
    [
        Raw::new(b'x', b"PaxHeaders/x", data.len() as u64).bytes(),
        padded(&data),
    ]
    .concat()
}

/// A member: header plus padded data.
fn member(mut header: Raw, data: &[u8]) -> Vec<u8> {
    [header.bytes(), padded(data)].concat()
}

fn end() -> Vec<u8> {
    vec![0; 1024]
}

fn root_cause_of(tar: &[u8]) -> (Error, String) {
    let err = unwrap_io(tar_lines(tar).unwrap_err());
    let text = crate::support::error_text(&err);
    (err, text)
}

#[test]
fn hostile_paths_are_refused_naming_the_entry() {
    for name in [&b"../x"[..], b"a/../../x", b"ok/../.."] {
        let tar = [member(Raw::new(b'0', name, 1), b"x"), end()].concat();
        let (err, text) = root_cause_of(&tar);
        assert!(
            matches!(err.root_cause(), Error::HostilePath { .. }),
            "{text}"
        );
        // The refusal names the entry as written, and only once (issue 17: a long name was
        // printed twice, by the refusal and by the entry context around it).
        let shown = String::from_utf8_lossy(name);
        assert_eq!(text.matches(&*shown).count(), 1, "{text}");
    }
    // Absolute names are normalized into the root; absolute link targets too.
    let mut link = Raw::new(b'1', b"/abs/link", 0);
    link.set(157, b"/etc/passwd");
    let tar = [
        member(Raw::new(b'0', b"/etc/passwd", 2), b"pw"),
        member(link, b""),
        end(),
    ]
    .concat();
    assert_eq!(
        tar_lines(&tar).unwrap(),
        "etc/passwd file 0644 0:0 t=1700000000 size=2 data=\"pw\"\n\
         abs/link hardlink 0644 0:0 t=1700000000 => etc/passwd"
    );
    let mut link = Raw::new(b'1', b"l", 0);
    link.set(157, b"../x");
    let (err, text) = root_cause_of(&[member(link, b""), end()].concat());
    assert!(
        matches!(err.root_cause(), Error::HostilePath { .. }),
        "{text}"
    );
    assert!(text.contains("entry l:"), "{text}");
}

#[test]
fn long_names_pax_gnu_and_ustar_prefix() {
    let long_dir = "d".repeat(120);
    let long = format!("{long_dir}/{}", "f".repeat(150));
    let long_target = format!("/{}", "t/".repeat(80));
    // GNU: the builder writes `L` and `K` records.
    let gnu = tar_of(|b| {
        add_file(b, &long, b"gnu");
        add_link(
            b,
            tar::EntryType::Symlink,
            &format!("{long_dir}/s"),
            &long_target,
        );
    });
    assert_eq!(
        tar_lines(&gnu).unwrap(),
        format!(
            "{long} file 0644 0:0 t=1700000000 size=3 data=\"gnu\"\n\
             {long_dir}/s symlink 0777 0:0 t=0 -> {long_target:?}"
        )
    );
    // PAX path and linkpath win over the header's names.
    let mut sym = Raw::new(b'2', b"short", 0);
    sym.set(157, b"short-target");
    let paxed = [
        pax(&[("path", long.as_bytes())]),
        member(Raw::new(b'0', b"truncated", 3), b"pax"),
        pax(&[
            ("path", format!("{long_dir}/s").as_bytes()),
            ("linkpath", long_target.as_bytes()),
        ]),
        member(sym, b""),
        end(),
    ]
    .concat();
    assert_eq!(
        tar_lines(&paxed).unwrap(),
        format!(
            "{long} file 0644 0:0 t=1700000000 size=3 data=\"pax\"\n\
             {long_dir}/s symlink 0644 0:0 t=1700000000 -> {long_target:?}"
        )
    );
    // ustar: prefix + name, split by the builder's ustar header.
    let split = format!("{}/{}", "p".repeat(140), "n".repeat(90));
    let ustar = tar_of(|b| {
        let mut h = tar::Header::new_ustar();
        h.set_path(&split).unwrap();
        h.set_size(1);
        h.set_mode(0o600);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        assert_ne!(
            h.as_ustar().unwrap().prefix[0],
            0,
            "the builder used the prefix field"
        );
        b.append(&h, &b"u"[..]).unwrap();
    });
    assert_eq!(
        tar_lines(&ustar).unwrap(),
        format!("{split} file 0600 0:0 t=0 size=1 data=\"u\"")
    );
}

#[test]
fn non_utf8_names_and_binary_xattrs_survive() {
    let name = b"caf\xe9/\xff\xfe";
    let cap = b"\x01\x00\x00\x02\n\x20\x00\x00\x00";
    let tar = [
        pax(&[
            ("SCHILY.xattr.security.capability", cap),
            ("SCHILY.xattr.user.b", b"2"),
            ("LIBARCHIVE.xattr.user.%61", b"YQ=="),
        ]),
        member(Raw::new(b'0', name, 0), b""),
        end(),
    ]
    .concat();
    let mut seen = Vec::new();
    for_each_entry(&mut &tar[..], &mut |entry, _| {
        seen.push(entry);
        Ok(())
    })
    .unwrap();
    assert_eq!(seen[0].path.as_bytes(), name);
    let xattrs: Vec<(&[u8], &[u8])> = seen[0]
        .meta
        .xattrs
        .iter()
        .map(|x| (&x.name[..], &x.value[..]))
        .collect();
    assert_eq!(
        xattrs,
        [
            (&b"security.capability"[..], &cap[..]),
            (b"user.a", b"a"),
            (b"user.b", b"2")
        ]
    );
}

#[test]
fn base256_numbers_and_fractional_negative_times() {
    let mut big = Raw::new(b'0', b"big-ids", 0);
    big.base256(108, 8, 3_000_000)
        .base256(116, 8, 4_000_000)
        .base256(124, 12, 5);
    let mut old = Raw::new(b'0', b"before-1970", 0);
    old.base256(136, 12, -86_400);
    let tar = [
        member(big, b"12345"),
        member(old, b""),
        pax(&[("mtime", b"1700000000.5"), ("uid", b"4294967295")]),
        member(Raw::new(b'0', b"fraction", 0), b""),
        pax(&[("mtime", b"-1.25")]),
        member(Raw::new(b'0', b"negative-fraction", 0), b""),
        end(),
    ]
    .concat();
    assert_eq!(
        tar_lines(&tar).unwrap(),
        "big-ids file 0644 3000000:4000000 t=1700000000 size=5 data=\"12345\"\n\
         before-1970 file 0644 0:0 t=-86400 size=0 data=\"\"\n\
         fraction file 0644 4294967295:0 t=1700000000.500000000 size=0 data=\"\"\n\
         negative-fraction file 0644 0:0 t=-2.750000000 size=0 data=\"\""
    );
    // A uid beyond 32 bits is refused, naming the entry.
    let tar = [
        pax(&[("uid", b"4294967296")]),
        member(Raw::new(b'0', b"huge-uid", 0), b""),
        end(),
    ]
    .concat();
    let (err, text) = root_cause_of(&tar);
    assert!(
        matches!(err.root_cause(), Error::TarHeader { .. }),
        "{text}"
    );
    assert!(text.contains("huge-uid"), "{text}");
}

#[test]
fn every_typeflag_becomes_its_kind() {
    let mut hard = Raw::new(b'1', b"hard", 0);
    hard.set(157, b"file");
    let mut sym = Raw::new(b'2', b"sym", 0);
    sym.set(157, b"\xfftarget");
    let mut chr = Raw::new(b'3', b"null", 0);
    chr.octal(329, 8, 1).octal(337, 8, 3);
    let mut blk = Raw::new(b'4', b"sda", 0);
    blk.octal(329, 8, 8).octal(337, 8, 0);
    let tar = [
        member(Raw::new(b'0', b"file", 1), b"f"),
        member(Raw::new(0, b"old-style", 1), b"o"),
        member(Raw::new(0, b"old-dir/", 0), b""),
        member(Raw::new(b'7', b"contiguous", 1), b"c"),
        member(Raw::new(b'Z', b"unknown", 1), b"u"),
        member(hard, b""),
        member(sym, b""),
        member(chr, b""),
        member(blk, b""),
        member(Raw::new(b'5', b"dir", 0), b""),
        member(Raw::new(b'6', b"fifo", 0), b""),
        member(Raw::new(b'g', b"global", 20), b"20 comment=ignored\n"),
        member(Raw::new(b'V', b"volume label", 0), b""),
        // A hard link with (ignored) content, as some writers produce.
        member(Raw::new(b'5', b"dir-with-data", 3), b"xyz"),
        end(),
    ]
    .concat();
    assert_eq!(
        tar_lines(&tar).unwrap(),
        "file file 0644 0:0 t=1700000000 size=1 data=\"f\"\n\
         old-style file 0644 0:0 t=1700000000 size=1 data=\"o\"\n\
         old-dir dir 0644 0:0 t=1700000000\n\
         contiguous file 0644 0:0 t=1700000000 size=1 data=\"c\"\n\
         unknown file 0644 0:0 t=1700000000 size=1 data=\"u\"\n\
         hard hardlink 0644 0:0 t=1700000000 => file\n\
         sym symlink 0644 0:0 t=1700000000 -> \"\u{fffd}target\"\n\
         null chardev 0644 0:0 t=1700000000 dev=1,3\n\
         sda blockdev 0644 0:0 t=1700000000 dev=8,0\n\
         dir dir 0644 0:0 t=1700000000\n\
         fifo fifo 0644 0:0 t=1700000000\n\
         dir-with-data dir 0644 0:0 t=1700000000"
    );
}

#[test]
fn pax_sparse_formats_and_gnu_sparse_expand_to_the_same_file() {
    // Real size 5000: 512 bytes at 0 (GNU tar stores whole blocks), "XY" at 4096, hole at
    // the end.
    let expected = "sparse file 0644 0:0 t=1700000000 size=5000 sparse=[(0, 512), (4096, 2)] sha=";
    let first: Vec<u8> = (0..512u32).map(|i| (i % 200) as u8 + 1).collect();
    let stored = [&first[..], b"XY"].concat();
    let mut content = vec![0u8; 5000];
    content[..512].copy_from_slice(&first);
    content[4096..4098].copy_from_slice(b"XY");
    let expected = format!("{expected}{}", &hex(&content)[..12]);

    let v00 = [
        pax(&[
            ("GNU.sparse.size", b"5000"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.offset", b"0"),
            ("GNU.sparse.numbytes", b"512"),
            ("GNU.sparse.offset", b"4096"),
            ("GNU.sparse.numbytes", b"2"),
        ]),
        member(Raw::new(b'0', b"sparse", 514), &stored),
        end(),
    ]
    .concat();
    let v01 = [
        pax(&[
            ("GNU.sparse.size", b"5000"),
            ("GNU.sparse.numblocks", b"2"),
            ("GNU.sparse.map", b"0,512,4096,2"),
            ("GNU.sparse.name", b"sparse"),
        ]),
        member(Raw::new(b'0', b"GNUSparseFile.0/sparse", 514), &stored),
        end(),
    ]
    .concat();
    let mut map = padded(b"2\n0\n512\n4096\n2\n");
    map.extend_from_slice(&stored);
    let v10 = [
        pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse"),
            ("GNU.sparse.realsize", b"5000"),
        ]),
        member(
            Raw::new(b'0', b"GNUSparseFile.0/sparse", map.len() as u64),
            &map,
        ),
        end(),
    ]
    .concat();
    // GNU old sparse: one region in the header, the next in an extension block.
    let mut h = tar::Header::new_gnu();
    h.set_path("sparse").unwrap();
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::GNUSparse);
    h.set_size(514);
    {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.sparse[0].set_offset(0);
        gnu.sparse[0].set_length(512);
        gnu.set_real_size(5000);
        gnu.set_is_extended(true);
    }
    h.set_cksum();
    let mut ext = tar::GnuExtSparseHeader::new();
    ext.sparse_mut()[0].set_offset(4096);
    ext.sparse_mut()[0].set_length(2);
    // GNU tar ends a map that ends in a hole with an empty region at the real size.
    ext.sparse_mut()[1].set_offset(5000);
    ext.sparse_mut()[1].set_length(0);
    let gnu = [
        h.as_bytes().to_vec(),
        ext.as_bytes().to_vec(),
        padded(&stored),
        end(),
    ]
    .concat();

    // The tar crate expands GNU sparse files itself: it must agree with ours.
    let mut archive = tar::Archive::new(&gnu[..]);
    let mut theirs = Vec::new();
    let mut entry = archive.entries().unwrap().next().unwrap().unwrap();
    entry.read_to_end(&mut theirs).unwrap();
    assert_eq!(theirs, content);

    for (name, tar) in [("0.0", v00), ("0.1", v01), ("1.0", v10), ("GNU", gnu)] {
        assert_eq!(tar_lines(&tar).unwrap(), expected, "{name}");
    }
}

#[test]
fn bad_sparse_maps_are_header_errors() {
    for (name, records, data) in [
        (
            "overlap",
            &[
                ("GNU.sparse.size", &b"100"[..]),
                ("GNU.sparse.map", b"0,10,5,10"),
            ][..],
            20,
        ),
        (
            "past the end",
            &[("GNU.sparse.size", b"10"), ("GNU.sparse.map", b"0,5,8,5")],
            10,
        ),
        (
            "data disagrees",
            &[("GNU.sparse.size", b"100"), ("GNU.sparse.map", b"0,5")],
            6,
        ),
        ("no real size", &[("GNU.sparse.map", b"0,5")], 5),
        (
            "unknown version",
            &[("GNU.sparse.major", b"2"), ("GNU.sparse.minor", b"0")],
            0,
        ),
    ] {
        let tar = [
            pax(records),
            member(Raw::new(b'0', b"s", data), &vec![1; data as usize]),
            end(),
        ]
        .concat();
        let (err, text) = root_cause_of(&tar);
        assert!(
            matches!(err.root_cause(), Error::TarHeader { .. }),
            "{name}: {text}"
        );
        assert!(text.contains("entry s"), "{name}: {text}");
    }
    // A 1.0 map claiming a billion regions is refused before anything is allocated.
    let map = padded(b"1000000000\n");
    let tar = [
        pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.realsize", b"1"),
        ]),
        member(Raw::new(b'0', b"s", map.len() as u64), &map),
        end(),
    ]
    .concat();
    let (err, text) = root_cause_of(&tar);
    assert!(
        matches!(err.root_cause(), Error::TarHeader { .. }),
        "{text}"
    );
}

#[test]
fn absurd_sizes_are_truncation_or_too_large_never_allocations() {
    // A file claiming 8 GiB with 3 bytes behind it.
    let mut huge = Raw::new(b'0', b"huge", 0);
    huge.octal(124, 12, 0o77777777777);
    let (err, text) = root_cause_of(&[huge.bytes(), padded(b"abc")].concat());
    assert!(matches!(err.root_cause(), Error::Tar { .. }), "{text}");
    assert!(text.contains("huge"), "{text}");

    // Extension records over 1 MiB, whether or not the bytes are there.
    for flag in [b'x', b'L', b'K'] {
        let tar = [Raw::new(flag, b"ext", (1 << 20) + 1).bytes(), end()].concat();
        let (err, text) = root_cause_of(&tar);
        assert!(
            matches!(err.root_cause(), Error::TooLarge { limit: 1048576, .. }),
            "{text}"
        );
    }
    // A PAX record whose length runs past the extended header.
    let record = b"99999999 path=x\n";
    let tar = [
        member(Raw::new(b'x', b"ext", record.len() as u64), record),
        member(Raw::new(b'0', b"f", 0), b""),
        end(),
    ]
    .concat();
    let (err, text) = root_cause_of(&tar);
    assert!(
        matches!(err.root_cause(), Error::TarHeader { .. }),
        "{text}"
    );
    assert!(text.contains("99999999"), "{text}");
}

#[test]
fn truncated_and_corrupt_headers_are_errors() {
    let tar = small_tar();
    // Cut in the middle of the second member's data.
    let (err, text) = root_cause_of(&tar[..512 * 2 + 2]);
    assert!(matches!(err.root_cause(), Error::Tar { .. }), "{text}");
    assert!(text.contains("etc/hostname"), "{text}");
    // Cut inside a header.
    let (err, text) = root_cause_of(&tar[..512 + 100]);
    assert!(matches!(err.root_cause(), Error::Tar { .. }), "{text}");
    // A flipped byte in a header: checksum.
    let mut bad = tar.clone();
    bad[512 + 10] ^= 1;
    let (err, text) = root_cause_of(&bad);
    assert!(
        matches!(err.root_cause(), Error::TarHeader { .. }),
        "{text}"
    );
    assert!(text.contains("checksum"), "{text}");
    // A clean EOF at a header boundary is the end.
    assert_eq!(tar_lines(&tar[..512 * 3]).unwrap().lines().count(), 2);
}

#[test]
fn errors_from_the_callback_come_back_unchanged_and_unread_data_is_skipped() {
    let tar = small_tar();
    let mut count = 0;
    let err = for_each_entry(&mut &tar[..], &mut |_, _| {
        count += 1;
        Err(Error::Stopped)
    })
    .unwrap_err();
    assert!(matches!(err, Error::Stopped));
    assert_eq!(count, 1);
    let mut paths = Vec::new();
    for_each_entry(&mut &tar[..], &mut |e, _| {
        paths.push(e.path.lossy());
        Ok(())
    })
    .unwrap();
    assert_eq!(paths, ["etc", "etc/hostname", "bin/sh"]);
}

// ---------------------------------------------------------------------------------------------
// A real image
// ---------------------------------------------------------------------------------------------

/// Every layer of the real image decodes to tar entries whose content reads to its end.
#[test]
fn the_real_image_reads_end_to_end() {
    let Some(dir) = crate::support::skip::real_image("the_real_image_reads_end_to_end") else {
        return;
    };
    let location = format!("{}:latest", dir.join("oci").display());
    let image = Image::open(&ImageLocation::parse(&location), &Selector::default()).unwrap();
    assert_eq!(image.layers.len(), 3);
    let mut total = 0;
    for layer in &image.layers {
        let mut reader = LayerReader::open(layer, None).unwrap();
        let mut entries = 0;
        for_each_entry(&mut reader, &mut |_, data| {
            entries += 1;
            io::copy(data, &mut io::sink()).map_err(|e| Error::Io {
                op: "read",
                path: "entry".into(),
                source: e,
            })?;
            Ok(())
        })
        .unwrap();
        reader.finish().unwrap();
        assert!(entries > 0, "layer {}", layer.index);
        total += entries;
    }
    assert!(total > 1000, "{total} entries");
}

/// Invariants under test: whatever bytes a layer holds, the tar reader returns entries or an
/// error; it never panics, never allocates from a size field, never loops.
#[test]
fn mutated_tars_never_panic() {
    let mut map = padded(b"1\n0\n2\n");
    map.extend_from_slice(b"ab");
    let base = [
        pax(&[
            ("path", "p/".repeat(60).as_bytes()),
            ("SCHILY.xattr.user.x", b"\n\0"),
        ]),
        member(Raw::new(b'0', b"f", 3), b"abc"),
        pax(&[
            ("GNU.sparse.major", b"1"),
            ("GNU.sparse.minor", b"0"),
            ("GNU.sparse.name", b"sparse"),
            ("GNU.sparse.realsize", b"100"),
        ]),
        member(
            Raw::new(b'0', b"GNUSparseFile.0/sparse", map.len() as u64),
            &map,
        ),
        pax(&[("GNU.sparse.size", b"50"), ("GNU.sparse.map", b"0,1,10,1")]),
        member(Raw::new(b'0', b"s01", 2), b"xy"),
        small_tar(),
    ]
    .concat();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..3000 {
        let mut tar = base.clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() % tar.len() as u64) as usize;
            tar[at] = match next() % 4 {
                0 => 0,
                1 => b'9',
                2 => 0xff,
                _ => next() as u8,
            };
        }
        // Keep headers' checksums valid so the mutations reach the fields behind them.
        for block in tar.chunks_mut(512) {
            if block.len() == 512 && &block[257..262] == b"ustar" {
                block[148..156].copy_from_slice(b"        ");
                let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
                block[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            }
        }
        if round % 3 == 0 {
            tar.truncate((next() % tar.len() as u64) as usize);
        }
        let _ = for_each_entry(&mut &tar[..], &mut |_, data| {
            // A mutated sparse size may describe terabytes of holes: read a bounded prefix.
            let _ = io::copy(&mut data.take(1 << 20), &mut io::sink());
            Ok(())
        });
    }
}

/// GNU tar's own sparse archives (every format it writes) read back to the same file.
#[test]
fn gnu_tar_sparse_archives_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    let mut content = vec![0u8; 3 << 20];
    content[1 << 20..(1 << 20) + 5].copy_from_slice(b"hello");
    let end = content.len() - 3;
    content[end..].copy_from_slice(b"end");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::create(&file).unwrap();
        f.set_len(content.len() as u64).unwrap();
        f.write_all_at(b"hello", 1 << 20).unwrap();
        f.write_all_at(b"end", end as u64).unwrap();
    }
    for args in [
        &["--format=posix", "--sparse-version=0.0"][..],
        &["--format=posix", "--sparse-version=0.1"],
        &["--format=posix", "--sparse-version=1.0"],
        &["--format=gnu"],
    ] {
        let out = dir.path().join("out.tar");
        let status = std::process::Command::new("tar")
            .args(["--sparse", "-cf"])
            .arg(&out)
            .args(args)
            .arg("-C")
            .arg(dir.path())
            .arg("f")
            .status();
        // GNU tar is one of the suite's oracles (the tar outputs are extracted with it), so
        // it is required here as everywhere else.
        assert!(
            status.is_ok_and(|s| s.success()),
            "GNU tar could not write a sparse archive: install GNU tar"
        );
        let tar = std::fs::read(&out).unwrap();
        let mut seen = Vec::new();
        for_each_entry(&mut &tar[..], &mut |entry, data| {
            let mut bytes = Vec::new();
            data.read_to_end(&mut bytes).unwrap();
            seen.push((entry, bytes));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 1, "{args:?}");
        let (entry, bytes) = &seen[0];
        assert_eq!(entry.path.as_bytes(), b"f", "{args:?}");
        assert!(bytes == &content, "{args:?}: content differs");
        let EntryKind::File { size, sparse } = &entry.kind else {
            panic!("{args:?}: {entry:?}")
        };
        assert_eq!(*size, content.len() as u64);
        // Whether the file system reported the holes decides the map; when it did, the data
        // regions cover the two written spots only.
        if let Some(map) = sparse {
            let stored: u64 = map.iter().map(|r| r.1).sum();
            assert!(stored < 64 << 10, "{args:?}: {map:?}");
        }
    }
    std::fs::remove_file(&file).unwrap();
}
