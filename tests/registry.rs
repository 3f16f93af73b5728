//! `pull` and `fetch` against a real registry on 127.0.0.1 (see `support/registry.rs`).
//!
//! The one assertion everywhere: what `pull` writes equals what `convert` writes for the same
//! OCI layout (byte for byte for squashfs and tar, the canonical dump for a directory). Images
//! are built in code, pushed with `skopeo copy`, and pulled through every authentication the
//! registry offers (none, Basic, Bearer token), through a proxy that cuts each blob's first
//! answer (retry + `Range` resume) or fails one layer for good (a typed error naming the layer
//! and the HTTP status, and nothing left behind), from a multi-platform index, through a
//! mirror, over HTTPS (refused with an unknown CA, accepted with `ca_certificates`), and by the
//! CLI with `login`/`logout`.
//!
//! Skipped with a notice when `docker-registry` or `skopeo` is missing, unless
//! `OCIRENDER_REQUIRE_REGISTRY=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ocirender::registry::{self, Credentials, Reference, RegistryOptions};
use ocirender::{
    convert, ConvertOptions, Error, Format, Image, ImageLocation, ImageSpec, Platform, Progress,
    Selector,
};

use crate::support::builder::{noise, Codec, ImageBuilder, Layer};
use crate::support::dump::{DumpOptions, Tree};
use crate::support::registry::{tools, Auth, Fault, Proxy, Registry, PASSWORD, USER};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Three layers (gzip, zstd, plain) with a whiteout, an opaque directory, hard links and
/// symlinks; the two older layers hold ~100 KiB of incompressible data each.
fn sample_image() -> ImageBuilder {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644)
                .dir("usr/bin", 0o755)
                .file("usr/bin/tool", noise(120_000, 1), 0o755)
                .hardlink("usr/bin/tool-alias", "usr/bin/tool")
                .dir("usr/share/data", 0o755)
                .file("usr/share/data/a", noise(70_000, 2), 0o644)
                .file("usr/share/data/b", b"bbb", 0o600)
                .compression(Codec::Gzip),
        )
        .layer(
            Layer::new()
                .whiteout("etc/passwd")
                .opaque("usr/share/data")
                .file("usr/share/data/c", b"new c", 0o644)
                .file("opt/blob", noise(100_000, 3), 0o644)
                .symlink("opt/link", "/usr/bin/tool")
                .compression(Codec::Zstd),
        )
        .layer(
            Layer::new()
                .file("opt/small", b"top layer\n", 0o640)
                .hardlink("opt/tool-again", "usr/bin/tool")
                .compression(Codec::Plain),
        )
        .tag("latest")
}

/// Fast retries: the tests inject failures on purpose.
fn quick(options: RegistryOptions) -> RegistryOptions {
    RegistryOptions {
        insecure: true,
        retry_delay: Duration::from_millis(20),
        ..options
    }
}

fn output_in(dir: &Path, format: Format) -> PathBuf {
    crate::support::outputs::output_path(dir, format)
}

/// Pulls `reference` into a fresh output of `format` inside `work`.
async fn pull_into(
    work: &Path,
    reference: &str,
    format: Format,
    options: &RegistryOptions,
    convert_options: &ConvertOptions,
) -> Result<PathBuf, Error> {
    let target = output_in(work, format);
    let reference = Reference::parse(reference).unwrap();
    registry::pull(
        &reference,
        &ImageSpec::new(format, &target),
        convert_options,
        options,
    )
    .await?;
    Ok(target)
}

/// Converts the image at `layout` (`ref`, `platform`) with `convert` into `work`.
fn convert_layout(
    work: &Path,
    layout: &Path,
    reference: &str,
    platform: Option<&str>,
    format: Format,
) -> PathBuf {
    let target = output_in(work, format);
    let image = Image::open(
        &ImageLocation {
            path: layout.to_path_buf(),
            reference: Some(reference.to_owned()),
        },
        &Selector {
            reference: None,
            platform: platform.map(|p| p.parse::<Platform>().unwrap()),
        },
    )
    .unwrap();
    convert(
        &image,
        &ImageSpec::new(format, &target),
        &ConvertOptions::default(),
    )
    .unwrap();
    target
}

/// Asserts that two outputs of `format` hold the same thing: equal bytes for files, equal
/// dumps for directories.
fn assert_same_output(expected: &Path, actual: &Path, format: Format, context: &str) {
    match format {
        Format::Dir => {
            let (e, a) = (Tree::from_dir(expected), Tree::from_dir(actual));
            crate::support::outputs::check_dump(&e, &a, DumpOptions::default(), context);
        }
        _ => {
            let (e, a) = (
                std::fs::read(expected).unwrap(),
                std::fs::read(actual).unwrap(),
            );
            assert!(
                e == a,
                "{context}: {format:?} output differs from convert's ({} vs {} bytes)",
                e.len(),
                a.len()
            );
        }
    }
}

/// Asserts that `pulled` equals `convert`'s output of `layout`'s `latest` in `format`.
fn assert_equals_convert(layout: &Path, pulled: &Path, format: Format, context: &str) {
    let expected = tempfile::tempdir().unwrap();
    let converted = convert_layout(expected.path(), layout, "latest", None, format);
    assert_same_output(&converted, pulled, format, context);
}

/// What is in a directory.
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// Collects progress events.
fn recorder() -> (ConvertOptions, Arc<Mutex<Vec<Progress>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let options = ConvertOptions::default().progress(move |p| s2.lock().unwrap().push(p.clone()));
    (options, seen)
}

/// An image pushed to a fresh registry: (registry, layout dir, its tempdir).
fn registry_with_sample(auth: Auth, repo_tag: &str) -> (Registry, tempfile::TempDir) {
    let reg = Registry::start(auth);
    let src = tempfile::tempdir().unwrap();
    sample_image().build(src.path().join("layout"));
    reg.push(&src.path().join("layout"), "latest", repo_tag, false);
    (reg, src)
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_equals_convert_in_every_format_and_leaves_no_temporary_blob() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::None, "sample/img:v1");
    let layout = src.path().join("layout");
    let temp = tempfile::tempdir().unwrap();
    let options = quick(RegistryOptions {
        temp_dir: Some(temp.path().to_path_buf()),
        ..RegistryOptions::default()
    });
    for format in Format::ALL {
        let (work, expected) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (convert_options, seen) = recorder();
        let pulled = pull_into(
            work.path(),
            &format!("{}/sample/img:v1", reg.host()),
            format,
            &options,
            &convert_options,
        )
        .await
        .unwrap();
        let reference = convert_layout(expected.path(), &layout, "latest", None, format);
        assert_same_output(&reference, &pulled, format, &format!("{format:?}"));
        assert!(
            entries(temp.path()).is_empty(),
            "temporary blobs left: {:?}",
            entries(temp.path())
        );
        // Every layer reported its download to the end.
        let seen = seen.lock().unwrap();
        for index in 0..3 {
            assert!(
                seen.iter().any(|p| matches!(p, Progress::Download { index: i, bytes, size: Some(s) } if *i == index && bytes == s)),
                "no final download event for layer {index}"
            );
        }
    }

    // By default the blobs go beside the output (a minimal container may have no /tmp): seen
    // there while a layer downloads, gone afterwards.
    let work = tempfile::tempdir().unwrap();
    let beside = Arc::new(Mutex::new(Vec::new()));
    let (b2, dir) = (beside.clone(), work.path().to_path_buf());
    let convert_options = ConvertOptions::default().progress(move |p| {
        if matches!(p, Progress::Download { .. }) {
            b2.lock().unwrap().extend(entries(&dir));
        }
    });
    let pulled = pull_into(
        work.path(),
        &format!("{}/sample/img:v1", reg.host()),
        Format::Squashfs,
        &quick(RegistryOptions::default()),
        &convert_options,
    )
    .await
    .unwrap();
    let expected = tempfile::tempdir().unwrap();
    let reference = convert_layout(expected.path(), &layout, "latest", None, Format::Squashfs);
    assert_same_output(&reference, &pulled, Format::Squashfs, "default temp dir");
    assert!(
        beside.lock().unwrap().iter().any(|p| p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".ocirender-pull-")),
        "no blob directory beside the output during the download: {:?}",
        beside.lock().unwrap()
    );
    assert_eq!(
        entries(work.path()),
        vec![pulled],
        "only the output remains"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_uses_rustls_and_trusts_only_known_authorities() {
    if !tools() {
        return;
    }
    let reg = Registry::start_tls(Auth::Basic);
    let src = tempfile::tempdir().unwrap();
    sample_image().build(src.path().join("layout"));
    reg.push(
        &src.path().join("layout"),
        "latest",
        "tls/img:latest",
        false,
    );
    let reference = format!("{}/tls/img:latest", reg.host());
    let creds = Some(Credentials::Basic {
        username: USER.into(),
        password: PASSWORD.into(),
    });
    let work = tempfile::tempdir().unwrap();
    // Not --insecure: HTTPS, and the registry's CA is unknown. A refused certificate is final:
    // tried once although three attempts are allowed.
    let untrusted = RegistryOptions {
        credentials: creds.clone(),
        attempts: 3,
        retry_delay: Duration::from_millis(20),
        ..RegistryOptions::default()
    };
    let err = pull_into(
        work.path(),
        &reference,
        Format::Tar,
        &untrusted,
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::Transport { attempts: 1, .. })
            && crate::support::error_text(&err).contains("certificate"),
        "{err}"
    );
    let trusted = RegistryOptions {
        ca_certificates: vec![reg.ca().to_path_buf()],
        ..untrusted
    };
    let pulled = pull_into(
        work.path(),
        &reference,
        Format::Tar,
        &trusted,
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert_equals_convert(&src.path().join("layout"), &pulled, Format::Tar, "HTTPS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_needs_the_right_credentials() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::Basic, "basic/img:latest");
    let reference = format!("{}/basic/img:latest", reg.host());
    let work = tempfile::tempdir().unwrap();
    // No auth file may supply credentials: only what the options say.
    let creds = |user: &str, password: &str| {
        quick(RegistryOptions {
            credentials: Some(Credentials::Basic {
                username: user.into(),
                password: password.into(),
            }),
            ..RegistryOptions::default()
        })
    };

    let wrong = pull_into(
        work.path(),
        &reference,
        Format::Tar,
        &creds(USER, "nope"),
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&wrong, Error::Unauthorized { registry, with_credentials: true, .. } if *registry == reg.host()),
        "{wrong}"
    );
    assert!(
        entries(work.path()).is_empty(),
        "{:?}",
        entries(work.path())
    );

    let pulled = pull_into(
        work.path(),
        &reference,
        Format::Tar,
        &creds(USER, PASSWORD),
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert_equals_convert(
        &src.path().join("layout"),
        &pulled,
        Format::Tar,
        "basic auth",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_tokens_come_from_the_realm_with_the_pull_scope() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::Token, "tok/img:latest");
    let reference = format!("{}/tok/img:latest", reg.host());
    let work = tempfile::tempdir().unwrap();
    let with = |creds: Option<Credentials>| {
        quick(RegistryOptions {
            credentials: creds,
            ..RegistryOptions::default()
        })
    };
    let refused_before = reg.token_server().refused();
    let wrong = pull_into(
        work.path(),
        &reference,
        Format::Squashfs,
        &with(Some(Credentials::Basic {
            username: USER.into(),
            password: "wrong".into(),
        })),
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&wrong, Error::Unauthorized { with_credentials: true, scope, .. } if scope == "repository:tok/img:pull"),
        "{wrong}"
    );
    assert!(reg.token_server().refused() > refused_before);
    assert!(
        entries(work.path()).is_empty(),
        "{:?}",
        entries(work.path())
    );

    let pulled = pull_into(
        work.path(),
        &reference,
        Format::Squashfs,
        &with(Some(Credentials::Basic {
            username: USER.into(),
            password: PASSWORD.into(),
        })),
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert_equals_convert(
        &src.path().join("layout"),
        &pulled,
        Format::Squashfs,
        "token auth",
    );
    assert!(
        reg.token_server()
            .scopes()
            .iter()
            .any(|s| s == "repository:tok/img:pull"),
        "{:?}",
        reg.token_server().scopes()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_dropped_mid_blob_are_resumed_with_range_requests() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::None, "flaky/img:latest");
    let proxy = Proxy::start(&reg.host(), Fault::CutFirstAfter(4096));
    let work = tempfile::tempdir().unwrap();
    let (convert_options, seen) = recorder();
    let pulled = pull_into(
        work.path(),
        &format!("{}/flaky/img:latest", proxy.host()),
        Format::Squashfs,
        &quick(RegistryOptions::default()),
        &convert_options,
    )
    .await
    .unwrap();
    assert_equals_convert(
        &src.path().join("layout"),
        &pulled,
        Format::Squashfs,
        "flaky network",
    );

    // The two big layers were cut, then resumed from where the cut left them.
    let requests = proxy.blob_requests();
    let built = src.path().join("layout");
    let manifest = crate::support::outputs::open_image(&built).unwrap();
    for layer in &manifest.layers[..2] {
        let digest = layer.digest.to_string();
        let mine: Vec<_> = requests.iter().filter(|r| r.digest == digest).collect();
        assert!(
            mine.first()
                .is_some_and(|r| r.sabotaged && r.range.is_none()),
            "{mine:?}"
        );
        let resumed = mine.iter().skip(1).find_map(|r| r.range.clone());
        let from: u64 = resumed
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("layer {}: no Range retry in {mine:?}", layer.index));
        assert!(
            from > 0 && from <= 4096,
            "layer {}: resumed from {from}",
            layer.index
        );
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.iter()
            .any(|p| matches!(p, Progress::DownloadRetry { attempt: 2, .. })),
        "no retry was reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layer_that_fails_for_good_names_itself_and_its_status_and_leaves_nothing() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::None, "broken/img:latest");
    let image = crate::support::outputs::open_image(&src.path().join("layout")).unwrap();
    let bad = image.layers[1].digest.clone();
    let proxy = Proxy::start(&reg.host(), Fault::Fail500(bad.to_string()));
    let temp = tempfile::tempdir().unwrap();
    for format in Format::ALL {
        let work = tempfile::tempdir().unwrap();
        let options = quick(RegistryOptions {
            attempts: 3,
            temp_dir: Some(temp.path().to_path_buf()),
            ..RegistryOptions::default()
        });
        let err = pull_into(
            work.path(),
            &format!("{}/broken/img:latest", proxy.host()),
            format,
            &options,
            &ConvertOptions::default(),
        )
        .await
        .unwrap_err();
        let Error::Layer {
            index,
            digest,
            source,
        } = &err
        else {
            panic!("{format:?}: not a layer error: {err}");
        };
        assert_eq!((*index, digest), (1, &bad), "{err}");
        assert!(
            matches!(&**source, Error::HttpStatus { status, attempts: 3, message, .. }
                if status.starts_with("500") && message.contains("injected failure")),
            "{err}"
        );
        let text = crate::support::error_text(&err);
        assert!(text.contains("layer 1") && text.contains("500"), "{text}");
        crate::support::outputs::assert_no_output(
            work.path(),
            &output_in(work.path(), format),
            format,
            &err,
        );
        assert!(
            entries(temp.path()).is_empty(),
            "temporary blobs left: {:?}",
            entries(temp.path())
        );
    }
    let attempts = proxy
        .blob_requests()
        .iter()
        .filter(|r| r.digest == bad.to_string())
        .count();
    assert_eq!(
        attempts,
        3 * Format::ALL.len(),
        "each pull tries the bad layer 3 times"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_platform_index_resolves_to_the_requested_platform() {
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let src = tempfile::tempdir().unwrap();
    let layout = src.path().join("multi");
    let amd = ImageBuilder::new().layer(Layer::new().file("arch", b"amd64\n", 0o644));
    let arm = ImageBuilder::new().layer(
        Layer::new()
            .file("arch", b"arm64\n", 0o644)
            .file("only-arm", b"", 0o644),
    );
    ImageBuilder::build_multi_platform(
        &layout,
        &[("linux/amd64", amd), ("linux/arm64", arm)],
        Some("multi"),
        true,
    );
    reg.push(&layout, "multi", "multi/img:latest", true);
    let reference = format!("{}/multi/img:latest", reg.host());
    for platform in ["linux/amd64", "linux/arm64"] {
        let (work, expected) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let options = quick(RegistryOptions {
            platform: Some(platform.parse().unwrap()),
            ..RegistryOptions::default()
        });
        let pulled = pull_into(
            work.path(),
            &reference,
            Format::Dir,
            &options,
            &ConvertOptions::default(),
        )
        .await
        .unwrap();
        let reference_out = convert_layout(
            expected.path(),
            &layout,
            "multi",
            Some(platform),
            Format::Dir,
        );
        assert_same_output(&reference_out, &pulled, Format::Dir, platform);
        let arch = std::fs::read_to_string(pulled.join("arch")).unwrap();
        assert_eq!(arch.trim(), platform.rsplit('/').next().unwrap());
    }
    let work = tempfile::tempdir().unwrap();
    let options = quick(RegistryOptions {
        platform: Some("linux/s390x".parse().unwrap()),
        ..RegistryOptions::default()
    });
    let err = pull_into(
        work.path(),
        &reference,
        Format::Tar,
        &options,
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    let Error::PlatformNotFound { available, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(available, &["linux/amd64", "linux/arm64"], "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_writes_a_layout_that_convert_skopeo_and_umoci_read() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::None, "fetch/img:v2");
    let reference = Reference::parse(&format!("{}/fetch/img:v2", reg.host())).unwrap();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("layout");
    let options = quick(RegistryOptions::default());
    let fetched = registry::fetch(&reference, &dir, None, &options, None)
        .await
        .unwrap();
    assert_eq!(fetched.ref_name, "v2");
    assert_eq!(
        (fetched.downloaded, fetched.present),
        (4, 0),
        "config + 3 layers"
    );

    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let from_fetch = convert_layout(a.path(), &dir, "v2", None, Format::Tar);
    let from_source = convert_layout(
        b.path(),
        &src.path().join("layout"),
        "latest",
        None,
        Format::Tar,
    );
    assert_same_output(&from_source, &from_fetch, Format::Tar, "fetched layout");

    let skopeo = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:v2", dir.display()))
        .output()
        .unwrap();
    assert!(
        skopeo.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&skopeo.stderr)
    );
    let raw: serde_json::Value = serde_json::from_slice(&skopeo.stdout).unwrap();
    assert_eq!(raw["layers"].as_array().unwrap().len(), 3);
    let umoci = Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        umoci.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&umoci.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&umoci.stdout).trim(), "v2");

    // Again, under another name: every blob is already there (and verified), and the layout
    // now has both names.
    let again = registry::fetch(&reference, &dir, Some("copy"), &options, None)
        .await
        .unwrap();
    assert_eq!(
        (again.downloaded, again.present, again.manifest),
        (0, 4, fetched.manifest.clone())
    );
    let umoci = Command::new("umoci")
        .args(["ls", "--layout"])
        .arg(&dir)
        .output()
        .unwrap();
    let mut tags: Vec<String> = String::from_utf8_lossy(&umoci.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    tags.sort();
    assert_eq!(tags, ["copy", "v2"]);

    // By digest, and a digest the registry does not have.
    let by_digest = format!("{}/fetch/img@{}", reg.host(), fetched.manifest);
    let work = tempfile::tempdir().unwrap();
    let pulled = pull_into(
        work.path(),
        &by_digest,
        Format::Tar,
        &options,
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert_same_output(&from_source, &pulled, Format::Tar, "pulled by digest");
    let missing = format!("{}/fetch/img@sha256:{}", reg.host(), "0".repeat(64));
    let err = pull_into(
        tempfile::tempdir().unwrap().path(),
        &missing,
        Format::Tar,
        &options,
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ManifestNotFound { .. }), "{err}");
    let err = registry::fetch(
        &Reference::parse(&format!("{}/fetch/nope:v2", reg.host())).unwrap(),
        &out.path().join("never"),
        None,
        &options,
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::ManifestNotFound { .. }), "{err}");
    assert!(
        !out.path().join("never").exists(),
        "a failed fetch left its directory"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_is_tried_before_the_registry() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::None, "mirrored/img:latest");
    // Nothing listens on port 1: only the mirror can serve this reference.
    let reference = "127.0.0.1:1/mirrored/img:latest";
    let work = tempfile::tempdir().unwrap();
    let err = pull_into(
        work.path(),
        reference,
        Format::Tar,
        &quick(RegistryOptions {
            attempts: 1,
            ..RegistryOptions::default()
        }),
        &ConvertOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Transport { .. }), "{err}");
    let options = quick(RegistryOptions {
        mirrors: vec![format!("127.0.0.1:1={}", reg.host()).parse().unwrap()],
        ..RegistryOptions::default()
    });
    let pulled = pull_into(
        work.path(),
        reference,
        Format::Tar,
        &options,
        &ConvertOptions::default(),
    )
    .await
    .unwrap();
    assert_equals_convert(
        &src.path().join("layout"),
        &pulled,
        Format::Tar,
        "through a mirror",
    );
}

/// Runs the CLI with a private HOME and auth file, so no real credentials are read or written.
fn cli(home: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    cli_with(home, args, stdin, |_| {})
}

/// [`cli`], with the command adjusted by `tweak` (more environment).
fn cli_with(
    home: &Path,
    args: &[&str],
    stdin: &str,
    tweak: impl FnOnce(&mut Command),
) -> (bool, String) {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ocirender"));
    cmd.args(args)
        .env("HOME", home)
        .env("REGISTRY_AUTH_FILE", home.join("auth.json"))
        .env_remove("DOCKER_CONFIG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("XDG_CONFIG_HOME");
    tweak(&mut cmd);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_login_pull_logout_against_a_token_registry() {
    if !tools() {
        return;
    }
    let (reg, src) = registry_with_sample(Auth::Token, "cli/img:latest");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let host = reg.host();
    let out = h.join("out.sqfs");
    let reference = format!("{host}/cli/img:latest");
    let pull = [
        "pull",
        "--insecure",
        "--quiet",
        reference.as_str(),
        out.to_str().unwrap(),
    ];

    let (ok, err) = cli(h, &pull, "");
    assert!(
        !ok && err.contains("refused access") && err.contains("without credentials"),
        "{err}"
    );
    assert!(!out.exists());

    let (ok, err) = cli(
        h,
        &["login", "--insecure", "-u", USER, "--password-stdin", &host],
        "wrong\n",
    );
    assert!(!ok && err.contains("refused access"), "{err}");
    assert!(
        !h.join("auth.json").exists(),
        "a failed login stored credentials"
    );

    let (ok, err) = cli(
        h,
        &["login", "--insecure", "-u", USER, "--password-stdin", &host],
        &format!("{PASSWORD}\n"),
    );
    assert!(ok, "{err}");
    let auth: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.join("auth.json")).unwrap()).unwrap();
    assert!(auth["auths"][&host]["auth"].is_string(), "{auth}");

    let (ok, err) = cli(h, &pull, "");
    assert!(ok, "{err}");
    assert_equals_convert(
        &src.path().join("layout"),
        &out,
        Format::Squashfs,
        "CLI pull",
    );

    let (ok, err) = cli(h, &["logout", &host], "");
    assert!(ok && err.contains("Removed"), "{err}");
    std::fs::remove_file(&out).unwrap();
    let (ok, err) = cli(h, &pull, "");
    assert!(!ok && err.contains("refused access"), "{err}");
    let (ok, err) = cli(h, &["logout", &host], "");
    assert!(ok && err.contains("Not logged in"), "{err}");
}

#[test]
fn cli_credential_helpers_supply_and_store_credentials() {
    if !tools() {
        return;
    }
    let (reg, _src) = registry_with_sample(Auth::Basic, "helper/img:latest");
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let host = reg.host();
    // A docker credential helper that knows this registry, and records what it is asked to
    // store and erase.
    let bin = h.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-ocitest");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nset -e\ncase \"$1\" in\n\
             get) read server; [ \"$server\" = \"{host}\" ] || {{ echo 'credentials not found in native keychain'; exit 1; }}\n\
             echo '{{\"ServerURL\":\"{host}\",\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' ;;\n\
             store) cat > \"{dir}/stored.json\" ;;\n\
             erase) read server; echo \"$server\" > \"{dir}/erased\" ;;\n\
             esac\n",
            dir = h.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let docker = h.join("docker");
    std::fs::create_dir(&docker).unwrap();
    std::fs::write(
        docker.join("config.json"),
        serde_json::json!({"credHelpers": {host.clone(): "ocitest"}}).to_string(),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = |c: &mut Command| {
        c.env("PATH", &path)
            .env("DOCKER_CONFIG", &docker)
            .env_remove("REGISTRY_AUTH_FILE");
    };

    let out = h.join("out.tar");
    let reference = format!("{host}/helper/img:latest");
    let (ok, err) = cli_with(
        h,
        &[
            "pull",
            "--insecure",
            "-q",
            &reference,
            out.to_str().unwrap(),
        ],
        "",
        env,
    );
    assert!(ok, "{err}");
    assert!(out.exists());

    let (ok, err) = cli_with(
        h,
        &["login", "--insecure", "-u", USER, "--password-stdin", &host],
        &format!("{PASSWORD}\n"),
        env,
    );
    assert!(ok && err.contains("docker-credential-ocitest"), "{err}");
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(h.join("stored.json")).unwrap()).unwrap();
    assert_eq!(
        stored,
        serde_json::json!({"ServerURL": host, "Username": USER, "Secret": PASSWORD})
    );
    let config = std::fs::read_to_string(docker.join("config.json")).unwrap();
    assert!(
        !config.contains(PASSWORD),
        "the password went into config.json: {config}"
    );

    let (ok, err) = cli_with(h, &["logout", &host], "", env);
    assert!(ok && err.contains("Removed"), "{err}");
    assert_eq!(
        std::fs::read_to_string(h.join("erased")).unwrap().trim(),
        host
    );
}
