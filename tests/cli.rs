//! The command-line contract that scripts depend on (DESIGN.md "CLI contract"): formats from
//! extensions, `DIR:REF`, exit codes, one clear message on failure, no partial output, `-` for
//! standard output, a closed pipe is not a failure, `--quiet`, `inspect --json`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::builder::{Corruption, ImageBuilder, Layer};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocirender"))
}

fn example() -> String {
    format!("{}/examples/image:latest", env!("CARGO_MANIFEST_DIR"))
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run ocirender")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

#[test]
fn format_follows_the_extension() {
    let t = tempfile::tempdir().unwrap();
    for (name, magic_at, magic) in [
        ("x.sqfs", 0, &b"hsqs"[..]),
        ("x.squashfs", 0, b"hsqs"),
        ("x.tar", 257, b"ustar"),
    ] {
        let out = t.path().join(name);
        let o = run(&["convert", "--quiet", &example(), out.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(&bytes[magic_at..magic_at + magic.len()], magic, "{name}");
    }
}

#[test]
fn a_memory_limit_spills_and_says_so_without_changing_the_image() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = (t.path().join("a.sqfs"), t.path().join("b.sqfs"));
    let o = run(&["convert", &example(), a.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("spilled"), "{}", stderr(&o));
    let o = run(&[
        "convert",
        "--memory-limit",
        "0",
        "--progress",
        "plain",
        &example(),
        b.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("memory budget reached"), "{err}");
    assert!(err.contains("spilled to disk in 1 sorted run"), "{err}");
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(
        entries(t.path()),
        [a, b],
        "nothing else left beside the output"
    );
    let o = run(&["convert", "--memory-limit", "lots", &example(), "x.sqfs"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("memory limit"), "{}", stderr(&o));
}

#[test]
fn unknown_extension_needs_a_format() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("x.img");
    let o = run(&["convert", &example(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--format"), "{}", stderr(&o));
    assert!(!out.exists());
    let o = run(&[
        "convert",
        "-q",
        "--format",
        "squashfs",
        &example(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.exists());
}

#[test]
fn directory_output() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("rootfs");
    let o = run(&[
        "convert",
        "-q",
        "--format",
        "dir",
        &example(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read(out.join("etc/motd")).unwrap(),
        b"Updated by layer 1.\n"
    );
    // A non-empty directory is refused, and left as it was.
    let o = run(&[
        "convert",
        "-q",
        "--format",
        "dir",
        &example(),
        out.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"), "{}", stderr(&o));
    assert!(out.join("etc/motd").exists());
}

#[test]
fn tar_to_standard_output() {
    let o = bin()
        .args(["convert", "-q", &example(), "-", "--format", "tar"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut names = Vec::new();
    let mut ar = tar::Archive::new(&o.stdout[..]);
    for e in ar.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().to_string_lossy().into_owned());
    }
    assert!(names.contains(&"etc/motd".to_string()), "{names:?}");
}

#[test]
fn a_closed_pipe_is_not_a_failure() {
    let mut child = bin()
        .args(["convert", "-q", &example(), "-", "--format", "tar"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn failures_give_one_message_and_no_output() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("x.sqfs");
    let o = run(&["convert", "/nonexistent/image", out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.starts_with("ocirender: "), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("/nonexistent/image"), "{err}");
    assert!(entries(t.path()).is_empty(), "{:?}", entries(t.path()));

    // A corrupt layer: the error names the layer; nothing is left behind.
    let img = ImageBuilder::new()
        .layer(Layer::new().file("a", "hello", 0o644))
        .build(t.path().join("img"));
    img.corrupt_layer(0, Corruption::FlipByte(40));
    let o = run(&["convert", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("layer 0"), "{}", stderr(&o));
    assert!(!out.exists());
    assert_eq!(entries(t.path()), vec![t.path().join("img")]);
}

#[test]
fn usage_errors_exit_2() {
    for args in [
        vec!["convert"],
        vec!["convert", "img", "out.sqfs", "--compression", "brotli"],
        vec!["convert", "img", "out.sqfs", "--block-size", "3K"],
        vec!["convert", "img", "out.sqfs", "--compression", "zstd:99"],
        vec!["frobnicate"],
    ] {
        let o = run(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
    }
}

/// Copies `b`'s blobs and manifests into the layout `a`, so `a` holds both images.
fn merge_layouts(a: &Path, b: &Path) {
    for e in std::fs::read_dir(b.join("blobs/sha256")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), a.join("blobs/sha256").join(e.file_name())).unwrap();
    }
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("index.json")).unwrap()).unwrap()
    };
    let mut index = read(a);
    let more = read(b)["manifests"].as_array().unwrap().clone();
    index["manifests"].as_array_mut().unwrap().extend(more);
    std::fs::write(a.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

#[test]
fn refs_select_and_ambiguity_lists_them() {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layer(Layer::new().file("one", "1", 0o644))
        .tag("first")
        .build(t.path().join("a"));
    // A second manifest in the same layout.
    let img2 = ImageBuilder::new()
        .layer(Layer::new().file("two", "2", 0o644))
        .tag("second")
        .build(t.path().join("b"));
    merge_layouts(&img, &img2);
    let out = t.path().join("o.tar");
    let o = run(&["convert", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("first") && err.contains("second"), "{err}");
    let o = run(&[
        "convert",
        "-q",
        &format!("{}:second", img.display()),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut ar = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let names: Vec<String> = ar
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.contains(&"two".to_string()) && !names.contains(&"one".to_string()),
        "{names:?}"
    );
}

#[test]
fn quiet_prints_nothing_and_default_prints_a_summary() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("x.sqfs");
    let o = run(&["convert", "--quiet", &example(), out.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(o.stderr.is_empty() && o.stdout.is_empty(), "{}", stderr(&o));
    let o = run(&["convert", &example(), out.to_str().unwrap()]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("entries"), "{}", stderr(&o));
    let o = run(&[
        "convert",
        "--progress",
        "plain",
        &example(),
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success());
    assert!(stderr(&o).contains("layer 2: merging"), "{}", stderr(&o));
}

#[test]
fn inspect_text_and_json() {
    let o = run(&["inspect", &example()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("latest") && text.contains("layers:"),
        "{text}"
    );
    let o = run(&["inspect", "--json", &example()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("inspect --json is JSON");
    assert_eq!(v["image"]["layers"].as_array().unwrap().len(), 3);
    assert_eq!(v["manifests"][0]["refs"][0], "latest");
    assert_eq!(v["image"]["config"]["os"], "linux");
}

#[test]
fn source_date_epoch_pins_the_squashfs_time() {
    let t = tempfile::tempdir().unwrap();
    let a = t.path().join("a.sqfs");
    let b = t.path().join("b.sqfs");
    for out in [&a, &b] {
        let o = bin()
            .args(["convert", "-q", &example(), out.to_str().unwrap()])
            .env("SOURCE_DATE_EPOCH", "1234567890")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let (x, y) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!(x, y, "same input, same bytes");
    // Superblock mtime: bytes 8..12.
    assert_eq!(u32::from_le_bytes(x[8..12].try_into().unwrap()), 1234567890);
}

#[test]
fn tar_to_standard_output_through_a_second_pass() {
    // A merged-/usr base (`bin -> usr/bin`) and a layer that writes `bin/app` directly: the
    // first pass learns about the symlink only at the oldest layer, after the newer layer's
    // entries went out, and must start over without a partial archive on standard output.
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("usr/bin", 0o755)
                .file("usr/bin/sh", "sh", 0o755)
                .symlink("bin", "usr/bin"),
        )
        .layer(Layer::new().file("bin/app", "app", 0o755))
        .build(t.path().join("img"));
    let o = bin()
        .args([
            "convert",
            img.path.to_str().unwrap(),
            "-",
            "--format",
            "tar",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("two passes"), "{}", stderr(&o));
    let mut seen = Vec::new();
    let mut ar = tar::Archive::new(&o.stdout[..]);
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        seen.push(e.path().unwrap().to_string_lossy().into_owned());
    }
    let trimmed: Vec<&str> = seen.iter().map(|s| s.trim_end_matches('/')).collect();
    for want in ["bin", "usr/bin/app", "usr/bin/sh"] {
        assert_eq!(
            trimmed.iter().filter(|s| **s == want).count(),
            1,
            "{want}: {seen:?}"
        );
    }
    assert!(!trimmed.contains(&"bin/app"), "{seen:?}");
}
