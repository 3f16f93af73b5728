//! `verify`: every output of an image verifies clean against an independent unpack (umoci's),
//! and a single changed byte or mode in the reference is reported, naming the path, by the
//! library and by `ocirender verify` (exit 1).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use crate::support::builder::{ImageBuilder, Layer};
use ocirender::verify::{verify, DiffKind, VerifyOptions};
use ocirender::{ConvertOptions, Format, ImageSpec};

/// An image whose every directory is explicit (umoci gives implicit directories the time of
/// extraction, which no converter can reproduce).
fn image(dir: &Path) -> crate::support::builder::Built {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir(".", 0o755)
                .dir("etc", 0o755)
                .file("etc/hosts", "127.0.0.1 localhost\n", 0o644)
                .dir("bin", 0o755)
                .file("bin/tool", vec![7u8; 200_000], 0o4755)
                .hardlink("bin/tool2", "bin/tool")
                .symlink("bin/alias", "tool")
                .fifo("pipe")
                .dir("var", 0o1777)
                .file("var/secret", "s", 0o600)
                .with_owner(1000, 1000)
                .with_xattr("user.note", [0u8, 1, 2]),
        )
        .layer(
            Layer::new()
                .whiteout("var/secret")
                .file("etc/hosts", "::1 localhost\n", 0o644),
        )
        .tag("latest")
        .build(dir.join("img"))
}

fn umoci_unpack(img: &Path, into: &Path) -> std::path::PathBuf {
    let out = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", img.display()))
        .arg(into)
        .output()
        .expect("umoci not found: apt-get install umoci");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    into.join("rootfs")
}

#[test]
fn every_output_verifies_clean_and_changes_are_named() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let reference = umoci_unpack(&img, &t.path().join("bundle"));
    let outputs: Vec<ImageSpec> = Format::ALL
        .iter()
        .map(|&f| {
            let spec = ImageSpec::new(f, crate::support::outputs::output_path(t.path(), f));
            let image = crate::support::outputs::open_image(&img).unwrap();
            ocirender::convert(&image, &spec, &ConvertOptions::default()).unwrap();
            spec
        })
        .collect();
    for spec in &outputs {
        let report = verify(spec, &reference, &VerifyOptions::default()).unwrap();
        assert!(
            report.is_clean(),
            "{:?}: {:#?}",
            spec.format(),
            report.diffs
        );
        assert_eq!(report.output_entries, report.reference_entries);
        assert!(report.output_entries >= 9);
    }

    // One flipped byte in a 200 KB file, one changed mode.
    let tool = reference.join("bin/tool");
    let mut bytes = std::fs::read(&tool).unwrap();
    bytes[123_456] ^= 1;
    std::fs::write(&tool, bytes).unwrap();
    // Keep the time: only the content may differ.
    let touched = Command::new("touch")
        .args(["-d", "@1700000000"])
        .arg(&tool)
        .output()
        .unwrap();
    assert!(touched.status.success());
    std::fs::set_permissions(
        reference.join("etc/hosts"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    for spec in &outputs {
        let report = verify(spec, &reference, &VerifyOptions::default()).unwrap();
        let named: Vec<(String, Vec<&str>)> = report
            .diffs
            .iter()
            .map(|d| match &d.kind {
                DiffKind::Differs(f) => (d.path.lossy(), f.iter().map(|f| f.field).collect()),
                other => panic!(
                    "{:?}: unexpected {other:?} for {}",
                    spec.format(),
                    d.path.lossy()
                ),
            })
            .collect();
        assert!(
            named.contains(&("bin/tool".into(), vec!["sha256"]))
                && named.contains(&("bin/tool2".into(), vec!["sha256"]))
                && named.contains(&("etc/hosts".into(), vec!["mode"])),
            "{:?}: {named:?}",
            spec.format()
        );
        let o = Command::new(env!("CARGO_BIN_EXE_ocirender"))
            .args(["verify"])
            .arg(spec.path())
            .arg("--reference")
            .arg(&reference)
            .args(["--format", spec.format().name()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1));
        let stdout = String::from_utf8_lossy(&o.stdout);
        assert!(stdout.contains("~ /bin/tool: sha256"), "{stdout}");
        assert!(
            stdout.contains("~ /etc/hosts: mode 0644 != 0640"),
            "{stdout}"
        );
    }

    // An extra and a missing entry.
    std::fs::write(reference.join("extra"), "x").unwrap();
    std::fs::remove_file(reference.join("pipe")).unwrap();
    let report = verify(&outputs[0], &reference, &VerifyOptions::default()).unwrap();
    let lines: Vec<String> = report.diffs.iter().map(|d| d.to_string()).collect();
    assert!(lines.contains(&"- /extra".to_string()), "{lines:?}");
    assert!(lines.contains(&"+ /pipe".to_string()), "{lines:?}");
}

#[test]
fn ownership_and_times_can_be_ignored() {
    let t = tempfile::tempdir().unwrap();
    let img = image(t.path());
    let out = t.path().join("out");
    let image = crate::support::outputs::open_image(&img).unwrap();
    let spec = ImageSpec::Dir { path: out.clone() };
    ocirender::convert(&image, &spec, &ConvertOptions::default()).unwrap();
    let reference = t.path().join("out-copy");
    let o = Command::new("cp")
        .args(["-a"])
        .arg(&out)
        .arg(&reference)
        .output()
        .unwrap();
    assert!(o.status.success());
    std::os::unix::fs::lchown(reference.join("etc/hosts"), Some(5), Some(6)).unwrap();
    let touched = Command::new("touch")
        .args(["-h", "-d", "2001-01-01"])
        .arg(reference.join("bin/alias"))
        .output()
        .unwrap();
    assert!(touched.status.success());
    let strict = verify(&spec, &reference, &VerifyOptions::default()).unwrap();
    assert_eq!(strict.diffs.len(), 2, "{:#?}", strict.diffs);
    let lenient = VerifyOptions {
        ownership: false,
        mtime: false,
        xattrs: true,
    };
    assert!(verify(&spec, &reference, &lenient).unwrap().is_clean());
}
