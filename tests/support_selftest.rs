//! The test kit checked against real tools, so that the overlay and property tests can trust
//! it without the library: the builder's images are unpacked by `umoci` (real overlay
//! semantics, Go's archive/tar) and by GNU tar, and the result must equal `model::apply`.
//!
//! Only cases where umoci and our rules agree are here; DESIGN's tricky cases 1, 2, 3, 7 and 9
//! (where umoci, or our chosen rule, differs) are covered by tests/overlay.rs alone.

use std::fs;
use std::path::Path;
use std::process::Command;

use crate::support::builder::{Body, Codec, ImageBuilder, Layer, LongNames, MTIME};
use crate::support::dump::{DumpOptions, Tree};
use crate::support::model;
use crate::support::outputs::{check_dump, expand_expected};

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Unpacks `image_dir:tag` with umoci and reads the rootfs.
fn umoci_unpack(image_dir: &Path, tag: &str) -> Tree {
    let t = tempfile::tempdir().unwrap();
    let bundle = t.path().join("bundle");
    run(Command::new("umoci")
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", image_dir.display()))
        .arg(&bundle));
    without_root(Tree::from_dir(&bundle.join("rootfs")))
}

/// umoci creates the rootfs directory itself (mode 0755, mtime of the unpack) and never gives it
/// the image's root metadata, so the root is left out of these comparisons; tests/overlay.rs
/// checks the root against ocirender's outputs.
fn without_root(mut t: Tree) -> Tree {
    t.0.remove(&Vec::new());
    t
}

/// What umoci changes: directories that no layer describes get the time of the unpack (umoci
/// creates missing parents with MkdirAll and restores mtimes only of directories that existed
/// before an entry was written into them), so cases with implicit parents hide directory mtimes.
const NO_DIR_MTIME: DumpOptions = DumpOptions {
    ownership: true,
    mtime: true,
    dir_mtime: false,
    xattrs: true,
};
const ALL: DumpOptions = DumpOptions {
    ownership: true,
    mtime: true,
    dir_mtime: true,
    xattrs: true,
};

/// Builds `layers` as an OCI layout, unpacks it with umoci, compares with the model.
fn check_umoci(name: &str, layers: Vec<Layer>, opts: DumpOptions) {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layers(layers.clone())
        .tag("t")
        .build(t.path().join("img"));
    let expected =
        without_root(model::apply(&layers).unwrap_or_else(|e| panic!("{name}: model: {e}")));
    let actual = umoci_unpack(&img, "t");
    check_dump(&expected, &actual, opts, &format!("{name}: model vs umoci"));
}

fn base_layer() -> Layer {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/passwd", "root:x:0:0\n", 0o644)
        .file("etc/shadow", "root:*:1\n", 0o640)
        .with_owner(0, 42)
        .dir("usr", 0o755)
        .dir("usr/bin", 0o755)
        .file("usr/bin/su", "#!su", 0o4755)
        .file("usr/bin/wall", "#!wall", 0o2755)
        .with_owner(0, 5)
        .dir("tmp", 0o1777)
        .symlink("bin", "usr/bin")
        .dir("home", 0o755)
        .dir("home/u", 0o700)
        .with_owner(1000, 1000)
        .with_mtime(1_600_000_000)
        .file("home/u/.profile", "export A=1\n", 0o600)
        .with_owner(1000, 1000)
        .with_mtime(1_500_000_000)
}

#[test]
fn umoci_agrees_on_ordinary_trees() {
    check_umoci("base", vec![base_layer()], ALL);
    check_umoci(
        "devices",
        vec![Layer::new()
            .dir("dev", 0o755)
            .char_dev("dev/null", 1, 3)
            .block_dev("dev/sda", 8, 0)
            .fifo("dev/pipe")
            .char_dev("dev/big", 4000, 300000)],
        ALL,
    );
    check_umoci(
        "big ids and odd times",
        vec![Layer::new()
            .dir("d", 0o755)
            .file("d/f", "x", 0o644)
            .with_owner(3_000_000, 4_000_000_000)
            .with_mtime(1)
            .file("d/g", "y", 0o644)
            .with_mtime(9_000_000_000)],
        ALL,
    );
}

#[test]
fn umoci_agrees_on_whiteouts_and_replacements() {
    let l2 = Layer::new()
        .whiteout("etc/shadow")
        .whiteout("home/u")
        .whiteout("never/existed")
        .whiteout("etc/nothing")
        .dir("etc", 0o700)
        .with_mtime(5)
        .file("usr/bin", "now a file", 0o755) // dir → file, no whiteout: subtree goes
        .dir("bin", 0o755) // symlink → dir
        .file("bin/x", "x", 0o755);
    check_umoci("whiteouts", vec![base_layer(), l2.clone()], ALL);
    let l3 = Layer::new()
        .dir("opt", 0o755)
        .file("opt/keep", "k", 0o644)
        .dir("opt/sub", 0o755)
        .file("opt/sub/old", "o", 0o644);
    let l4 = Layer::new()
        .opaque("opt")
        .file("opt/new", "n", 0o644)
        .dir("opt/sub", 0o750)
        .whiteout("tmp");
    check_umoci("opaque", vec![base_layer(), l2, l3, l4], ALL);
    check_umoci(
        "same-layer duplicates",
        vec![Layer::new()
            .dir("a", 0o755)
            .file("a/f", "1", 0o644)
            .file("a/f", "2", 0o600)
            .file("b", "file first", 0o644)
            .dir("b", 0o711)
            .dir("c", 0o755)
            .file("c/x", "x", 0o644)
            .file("c", "file last", 0o644)
            .symlink("s", "a")
            .symlink("s", "c")],
        ALL,
    );
}

#[test]
fn umoci_agrees_on_hard_links() {
    let l1 = Layer::new()
        .dir("d", 0o755)
        .file("d/a", "content A", 0o640)
        .with_owner(7, 8)
        .hardlink("d/b", "d/a")
        .hardlink("d/c", "d/a")
        .file("d/t", "target T", 0o644)
        .symlink("d/s", "d/a")
        .hardlink("d/s2", "d/s");
    let l2 = Layer::new()
        .hardlink("d/x", "d/t") // target in a lower layer
        .whiteout("d/a") // promotion: b and c stay one group
        .file("d/t", "new T", 0o644); // x keeps the old content
    check_umoci("hard links", vec![l1, l2], ALL);
}

#[test]
fn umoci_agrees_on_names_and_attributes() {
    let long_dir = "d".repeat(120);
    let long_name = format!("{long_dir}/{}", "f".repeat(90));
    let longer = format!("{long_dir}/{}", "g".repeat(200));
    let long_target = "t/".repeat(80);
    for style in [LongNames::Pax, LongNames::Gnu, LongNames::UstarPrefix] {
        check_umoci(
            &format!("long names {style:?}"),
            vec![Layer::new()
                .long_names(style)
                .dir(&long_dir, 0o755)
                .file(&long_name, "long", 0o644)
                .file(&longer, "longer", 0o644)
                .symlink(format!("{long_dir}/s"), &long_target)
                .hardlink(format!("{long_dir}/h"), &long_name)
                .hardlink(format!("{long_dir}/{}", "h".repeat(150)), &longer)],
            ALL,
        );
    }
    check_umoci(
        "odd spellings and non-UTF-8",
        vec![Layer::new()
            .dir("./a/", 0o755)
            .file("./a//b", "b", 0o644)
            .file("/a/./c", "c", 0o644)
            .dir(b"caf\xe9".as_slice(), 0o755)
            .file(b"caf\xe9/\xff\xfe".as_slice(), "latin1", 0o644)
            .file("a/sp ace\ttab\nnl", "ws", 0o644)],
        ALL,
    );
    check_umoci(
        "xattrs",
        vec![Layer::new()
            .dir("d", 0o755)
            .with_xattr("user.dir", "on a dir")
            .file("d/f", "x", 0o644)
            .with_xattr("user.bin", b"\x00\x01\xff\n=".as_slice())
            .with_xattr("trusted.t", "trusted")],
        ALL,
    );
    let mut big = vec![0u8; 3 << 20];
    big[100_000..100_004].copy_from_slice(b"mid!");
    check_umoci(
        "sparse",
        vec![Layer::new()
            .sparse_file(
                "holes",
                1 << 20,
                &[
                    (0, &[b'h'; 512]),
                    (70_000, &[b'm'; 1024]),
                    (600_000, b"tail"),
                ],
            )
            .sparse_file("ends-in-data", 10_000, &[(9_990, b"0123456789")])
            .sparse_file("all-hole", 50_000, &[])
            .file("dense", &big, 0o644)],
        ALL,
    );
}

#[test]
fn umoci_agrees_on_implicit_parents() {
    check_umoci(
        "implicit parents",
        vec![
            Layer::new()
                .file("a/b/c", "deep", 0o644)
                .symlink("x/y", "../a"),
            Layer::new()
                .dir("a", 0o700)
                .with_mtime(77)
                .file("a/b/d", "d", 0o644),
        ],
        NO_DIR_MTIME,
    );
}

#[test]
fn umoci_agrees_on_every_codec_it_reads() {
    // umoci reads plain and gzip layers (also multi-member gzip).
    for codec in [Codec::Plain, Codec::Gzip, Codec::GzipMultiMember] {
        check_umoci(
            &format!("{codec:?}"),
            vec![base_layer().compression(codec)],
            ALL,
        );
    }
}

/// Every codec decompresses, with the command-line tool, to the layer's tar bytes.
#[test]
fn every_codec_decompresses_with_the_standard_tools() {
    let layer = base_layer().trailing_garbage(vec![0x5a; 700]);
    let tar = layer.to_tar_bytes();
    for codec in Codec::ALL {
        let t = tempfile::tempdir().unwrap();
        let blob = t.path().join("blob");
        fs::write(&blob, codec.compress(&tar)).unwrap();
        let tool = match codec {
            Codec::Plain => continue,
            Codec::Gzip | Codec::GzipMultiMember => "gzip",
            Codec::Zstd | Codec::ZstdMultiFrame => "zstd",
            Codec::Xz => "xz",
            Codec::Bzip2 => "bzip2",
        };
        let out = Command::new(tool).arg("-dc").arg(&blob).output().unwrap();
        assert!(out.status.success(), "{tool} -dc failed for {codec:?}");
        assert!(out.stdout == tar, "{codec:?}: {tool} gives other bytes");
    }
    // The multi-part codecs really have several parts.
    let gz = Codec::GzipMultiMember.compress(&tar);
    assert!(
        gz.windows(3).filter(|w| w == &[0x1f, 0x8b, 0x08]).count() >= 3,
        "gzip members"
    );
    let zs = Codec::ZstdMultiFrame.compress(&tar);
    assert!(
        zs.windows(4)
            .filter(|w| w == &[0x28, 0xb5, 0x2f, 0xfd])
            .count()
            >= 3,
        "zstd frames"
    );
    assert!(
        zs.windows(4).any(|w| w == [0x50, 0x2a, 0x4d, 0x18]),
        "skippable frame"
    );
}

/// Single layers with no whiteouts, extracted by GNU tar, equal the model: a second reader of
/// the tar writer (long names in every style, sparse maps, xattrs, devices, non-UTF-8 names).
#[test]
fn gnu_tar_reads_the_tar_writer() {
    let long = format!("{}/{}", "p".repeat(140), "q".repeat(99));
    let layers = [
        base_layer(),
        Layer::new()
            .dir("dev", 0o755)
            .char_dev("dev/null", 1, 3)
            .block_dev("dev/loop0", 7, 0)
            .fifo("dev/fifo"),
        Layer::new()
            .sparse_file("s", 1 << 20, &[(4096, &[b'd'; 512]), (500_000, b"more")])
            .file("x", "x", 0o644)
            .with_xattr("user.v", b"\x00\xff".as_slice())
            .with_xattr(
                "security.capability",
                b"\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                    .as_slice(),
            ),
        Layer::new()
            .long_names(LongNames::Gnu)
            .file(&long, "g", 0o644)
            .symlink("l", "z".repeat(300)),
        Layer::new()
            .long_names(LongNames::UstarPrefix)
            .file(&long, "u", 0o644),
        Layer::new()
            .file(&long, "p", 0o644)
            .hardlink("h", &long)
            .file(b"\xc3\x28".as_slice(), "bad utf8", 0o644),
    ];
    for (i, layer) in layers.into_iter().enumerate() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir(&root).unwrap();
        let tarfile = t.path().join("l.tar");
        fs::write(&tarfile, layer.to_tar_bytes()).unwrap();
        run(Command::new("tar")
            .args(["--xattrs", "--xattrs-include=*", "--numeric-owner", "-xpf"])
            .arg(&tarfile)
            .arg("-C")
            .arg(&root));
        let expected = without_root(model::apply(std::slice::from_ref(&layer)).unwrap());
        // GNU tar, like umoci, gives parents no entry describes the time of the extraction.
        let got = without_root(Tree::from_dir(&root));
        check_dump(
            &expected,
            &got,
            NO_DIR_MTIME,
            &format!("layer {i} vs GNU tar: {layer:?}"),
        );
    }
}

/// The other layouts, read by skopeo (which checks every digest and size) into an OCI layout
/// that umoci unpacks.
#[test]
fn skopeo_reads_the_other_layouts() {
    let layers = vec![
        base_layer(),
        Layer::new()
            .whiteout("etc/shadow")
            .file("new", "n", 0o644)
            .compression(Codec::Plain),
    ];
    let expected = without_root(model::apply(&layers).unwrap());
    let img = ImageBuilder::new().layers(layers).tag("example.com/app:v1");
    let t = tempfile::tempdir().unwrap();
    let via_skopeo = |src: String, name: &str| {
        let dest = t.path().join(format!("{name}-oci"));
        run(Command::new("skopeo")
            .args(["copy", "--quiet", &src])
            .arg(format!("oci:{}:t", dest.display())));
        check_dump(&expected, &umoci_unpack(&dest, "t"), ALL, name);
    };
    let tarball = img.build_docker_save_tar(t.path().join("save.tar"));
    via_skopeo(
        format!("docker-archive:{}", tarball.display()),
        "docker save tar",
    );
    let bare = img.build_bare_manifest(t.path().join("bare"));
    via_skopeo(format!("dir:{}", bare.display()), "bare manifest");
    // The docker-save directory is the tar's content.
    let dir = img.build_docker_save(t.path().join("save-dir"));
    let listing = run(Command::new("tar").arg("-tf").arg(&tarball.path));
    for entry in ["manifest.json", "repositories"] {
        assert!(
            dir.path.join(entry).is_file() && listing.lines().any(|l| l == entry),
            "{entry}"
        );
    }
    for (blob, layer) in dir.layers().iter().zip(img.layer_list()) {
        let p = blob.path.as_ref().unwrap();
        assert_eq!(fs::read(p).unwrap(), layer.blob_bytes(), "{p:?}");
        assert_eq!(
            format!(
                "sha256:{}",
                crate::support::dump::sha256(&layer.to_tar_bytes())
            ),
            blob.digest,
            "diff_id of {p:?}"
        );
    }
}

#[test]
fn skopeo_picks_platforms_from_multi_platform_indexes() {
    let amd = ImageBuilder::new().layer(Layer::new().file("arch", "amd64", 0o644));
    let arm = ImageBuilder::new().layer(Layer::new().file("arch", "arm64", 0o644));
    let images = [("linux/amd64", amd), ("linux/arm64/v8", arm)];
    let t = tempfile::tempdir().unwrap();
    let img =
        ImageBuilder::build_multi_platform(t.path().join("img"), &images, Some("multi"), true);
    assert_eq!(img.manifests.len(), 2);
    for arch in ["amd64", "arm64"] {
        let dest = t.path().join(format!("{arch}-oci"));
        run(Command::new("skopeo")
            .args([
                "copy",
                "--quiet",
                "--override-os",
                "linux",
                "--override-arch",
                arch,
            ])
            .arg(format!("oci:{}:multi", img.display()))
            .arg(format!("oci:{}:t", dest.display())));
        let expected = format!("/arch file 0644 0:0 t={MTIME} data=\"{arch}\"");
        check_dump(
            &expand_expected(&expected),
            &umoci_unpack(&dest, "t"),
            ALL,
            arch,
        );
    }
    // Flat: index.json lists the platform manifests itself (skopeo cannot choose among entries
    // that share a ref, so only the structure is checked).
    let flat = ImageBuilder::build_multi_platform(t.path().join("flat"), &images, None, false);
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(flat.join("index.json")).unwrap()).unwrap();
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let p = &d["platform"];
            format!(
                "{}/{}/{}",
                p["os"].as_str().unwrap(),
                p["architecture"].as_str().unwrap(),
                p["variant"].as_str().unwrap_or("-")
            )
        })
        .collect();
    assert_eq!(platforms, ["linux/amd64/-", "linux/arm64/v8"]);
    for (d, m) in index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&flat.manifests)
    {
        assert_eq!(d["digest"], m.manifest.as_ref().unwrap().digest.as_str());
    }
}

/// The corruption helpers really damage the image: umoci (which checks every digest and size)
/// refuses each damaged copy, and accepts the undamaged one.
#[test]
fn umoci_refuses_what_the_corruption_helpers_damage() {
    use crate::support::builder::Corruption;
    let t = tempfile::tempdir().unwrap();
    let build = |name: &str| {
        ImageBuilder::new()
            .layer(base_layer())
            .layer(Layer::new().file("x", vec![9u8; 100_000], 0o644))
            .tag("t")
            .build(t.path().join(name))
    };
    let unpacks = |img: &Path| {
        let bundle = tempfile::tempdir().unwrap();
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:t", img.display()))
            .arg(bundle.path().join("b"))
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(unpacks(&build("good")));
    type Damage = Box<dyn Fn(&mut crate::support::builder::Built)>;
    let damage: Vec<(&str, Damage)> = vec![
        (
            "flip",
            Box::new(|b| b.corrupt_layer(1, Corruption::FlipByte(-8))),
        ),
        (
            "truncate",
            Box::new(|b| b.corrupt_layer(1, Corruption::Truncate(50))),
        ),
        (
            "delete",
            Box::new(|b| b.corrupt_layer(0, Corruption::Delete)),
        ),
        (
            "replace",
            Box::new(|b| b.corrupt_layer(1, Corruption::Replace(Layer::new().blob_bytes()))),
        ),
        ("manifest", Box::new(|b| b.replace_manifest(b"not json"))),
        ("config", Box::new(|b| b.replace_config(b"{"))),
        (
            "size",
            Box::new(|b| {
                b.edit_manifest(|m| m["layers"][0]["size"] = serde_json::json!(1u64 << 62))
            }),
        ),
    ];
    for (name, hurt) in damage {
        let mut img = build(name);
        hurt(&mut img);
        assert!(!unpacks(&img), "umoci unpacked the image damaged by {name}");
    }
}

/// The model itself, on the rules umoci cannot check (cases umoci resolves differently).
#[test]
fn model_applies_the_chosen_rules() {
    let m = |layers: &[Layer]| model::apply(layers).unwrap().dump(ALL);
    // A whiteout applies to lower layers only, whatever its place in its layer.
    let both_orders = m(&[
        Layer::new().file("a", "old", 0o644).file("b", "old", 0o644),
        Layer::new()
            .file("a", "new", 0o644)
            .whiteout("a")
            .whiteout("b")
            .file("b", "new", 0o644),
    ]);
    assert_eq!(
        both_orders,
        expand_expected(&format!(
            "/ dir 0755 0:0 t=0\n/a file 0644 0:0 t={MTIME} data=\"new\"\n/b file 0644 0:0 t={MTIME} data=\"new\""
        ))
    );
    // An opaque marker after same-layer children keeps them.
    let opaque_after = m(&[
        Layer::new().dir("d", 0o755).file("d/old", "o", 0o644),
        Layer::new().file("d/new", "n", 0o644).opaque("d"),
    ]);
    assert!(
        opaque_after.contains("/d/new ") && !opaque_after.contains("/d/old"),
        "{opaque_after}"
    );
    // Errors name the paths.
    let err = |layers: &[Layer]| model::apply(layers).unwrap_err();
    assert!(err(&[Layer::new().hardlink("l", "gone")]).contains("\"gone\""));
    assert!(err(&[Layer::new().dir("d", 0o755).hardlink("l", "d")]).contains("directory \"d\""));
    assert!(err(&[Layer::new().file("../x", "", 0o644)]).contains(".."));
    assert!(err(&[Layer::new().file("a", "", 0o644).hardlink("b", "../a")]).contains(".."));
    for bad in [".wh.", ".wh..", ".wh..."] {
        assert!(
            err(&[Layer::new().file(format!("d/{bad}"), "", 0o644)]).contains("invalid whiteout")
        );
    }
    // An entry beneath a symlink lands where the symlink leads (more in
    // `model_extracts_in_order_with_scoped_symlink_resolution`).
    assert!(m(&[
        Layer::new().symlink("s", "/etc"),
        Layer::new().file("s/passwd", "", 0o644)
    ])
    .contains("\n/etc/passwd file "));
    // AUFS metadata never shows; a link into plnk keeps the content.
    let aufs = m(&[Layer::new()
        .file(".wh..wh.plnk/1.2", "linked", 0o644)
        .hardlink("x", ".wh..wh.plnk/1.2")
        .file(".wh..wh.aufs", "", 0o644)
        .dir(".wh..wh.orph", 0o755)]);
    assert_eq!(
        aufs,
        expand_expected(&format!(
            "/ dir 0755 0:0 t=0\n/x file 0644 0:0 t={MTIME} data=\"linked\""
        ))
    );
    // Whiteouts stored as hard links or with content are whiteouts.
    let odd = m(&[
        Layer::new().file("a", "A", 0o644).file("b", "B", 0o644),
        Layer::new()
            .entry(".wh.a", Body::Hardlink(b"b".to_vec()), 0o644)
            .file(".wh.b", "junk", 0o644),
    ]);
    assert_eq!(odd, "/ dir 0755 0:0 t=0\n");
}

/// The model's rules one by one (containerd's `applyNaive`: extract in order, with scoped
/// symlink resolution), each with a hand-computed tree.
#[test]
fn model_extracts_in_order_with_scoped_symlink_resolution() {
    let m = |layers: &[Layer]| model::apply(layers).unwrap_or_else(|e| panic!("{e}"));
    let expect = |layers: &[Layer], text: &str| {
        assert_eq!(m(layers).dump(ALL), expand_expected(text), "{layers:?}");
    };
    let err = |layers: &[Layer]| match model::apply(layers) {
        Ok(t) => panic!("the model accepts {layers:?}:\n{}", t.dump(ALL)),
        Err(e) => e,
    };
    let root = "/ dir 0755 0:0 t=0";

    // Names are cleaned lexically first.
    expect(
        &[Layer::new()
            .dir("a/sub/..", 0o700)
            .file("./a//b/", "b", 0o644)],
        &format!(
            "{root}\n/a dir 0700 0:0 t=1700000000\n/a/b file 0644 0:0 t=1700000000 data=\"b\""
        ),
    );
    expect(
        &[
            Layer::new()
                .dir("etc", 0o755)
                .file("etc/passwd", "p", 0o644),
            Layer::new().file("dne/../.wh.etc", "", 0o644),
        ],
        root,
    );
    // Only names that go above the root are errors, and they are named.
    assert!(err(&[Layer::new().file("../x", "", 0o644)]).contains("\"../x\""));
    assert!(err(&[Layer::new().dir("a/../../x", 0o755)]).contains("\"a/../../x\""));
    let e = err(&[Layer::new().file("a", "", 0o644).hardlink("b", "a/../../a")]);
    assert!(e.contains("\"a/../../a\""), "{e}");
    // A non-directory that names the root is skipped, as the runtimes skip it.
    expect(&[Layer::new().file("./", "", 0o644)], root);

    // An absolute symlink restarts at the root; the symlink stays.
    let etc = format!(
        "{root}
        /etc symlink 0777 0:0 t=1700000000 -> /etc2
        /etc2 dir 0755 0:0 t=0
        /etc2/file file 0644 0:0 t=1700000000 data=\"f\""
    );
    expect(
        &[Layer::new()
            .symlink("etc", "/etc2")
            .file("etc/file", "f", 0o644)],
        &etc,
    );
    expect(
        &[
            Layer::new().symlink("etc", "/etc2"),
            Layer::new().file("etc/file", "f", 0o644),
        ],
        &etc,
    );
    // A relative one goes on from the symlink's parent; `..` stops at the root.
    expect(
        &[Layer::new()
            .dir("d2", 0o700)
            .symlink("d", "../d2")
            .file("d/f", "f", 0o600)
            .symlink("s", "x/../d2")
            .file("s/g", "g", 0o644)],
        &format!(
            "{root}
            /d symlink 0777 0:0 t=1700000000 -> ../d2
            /d2 dir 0700 0:0 t=1700000000
            /d2/f file 0600 0:0 t=1700000000 data=\"f\"
            /d2/g file 0644 0:0 t=1700000000 data=\"g\"
            /s symlink 0777 0:0 t=1700000000 -> x/../d2"
        ),
    );
    expect(
        &[Layer::new()
            .symlink("a/l", "../../../b")
            .file("a/l/f", "f", 0o644)],
        &format!(
            "{root}
            /a dir 0755 0:0 t=0
            /a/l symlink 0777 0:0 t=1700000000 -> ../../../b
            /b dir 0755 0:0 t=0
            /b/f file 0644 0:0 t=1700000000 data=\"f\""
        ),
    );
    // A chain is followed to its end.
    expect(
        &[Layer::new()
            .dir("d", 0o755)
            .symlink("l1", "l2")
            .symlink("l2", "/d")
            .file("l1/f", "c", 0o644)],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/f file 0644 0:0 t=1700000000 data=\"c\"
            /l1 symlink 0777 0:0 t=1700000000 -> l2
            /l2 symlink 0777 0:0 t=1700000000 -> /d"
        ),
    );
    // 40 symlinks followed are fine, 41 are a loop; a loop is an error naming the entry.
    let chain = |n: usize| {
        (0..n)
            .fold(Layer::new(), |l, i| {
                l.symlink(format!("l{i}"), format!("l{}", i + 1))
            })
            .file(format!("l{n}"), "", 0o644)
            .file("l0/f", "", 0o644)
    };
    assert!(model::apply(&[chain(model::MAX_SYMLINK_FOLLOWS)]).is_ok());
    let e = err(&[chain(model::MAX_SYMLINK_FOLLOWS + 1)]);
    assert!(
        e.contains("\"l0/f\"") && e.contains(model::TOO_MANY_LINKS),
        "{e}"
    );
    let looped = Layer::new().symlink("a", "b").symlink("b", "a");
    let e = err(&[looped.clone().file("a/f", "", 0o644)]);
    assert!(
        e.contains("\"a/f\"") && e.contains(model::TOO_MANY_LINKS),
        "{e}"
    );
    let e = err(&[Layer::new().symlink("s", "./s").dir("s/d", 0o755)]);
    assert!(
        e.contains("\"s/d\"") && e.contains(model::TOO_MANY_LINKS),
        "{e}"
    );
    let e = err(&[looped.clone(), Layer::new().whiteout("a/f")]);
    assert!(
        e.contains("\"a/.wh.f\"") && e.contains(model::TOO_MANY_LINKS),
        "{e}"
    );
    let e = err(&[looped.clone().file("f", "", 0o644).hardlink("h", "b/f")]);
    assert!(
        e.contains("\"b/f\"") && e.contains(model::TOO_MANY_LINKS),
        "{e}"
    );
    // The loop itself, and names at it (the last component is not followed), are fine.
    expect(
        &[looped.file("a", "", 0o644)],
        &format!(
            "{root}
            /a file 0644 0:0 t=1700000000 data=\"\"
            /b symlink 0777 0:0 t=1700000000 -> a"
        ),
    );

    // The last component is never followed: a file replaces a symlink, a directory over a
    // symlink to a directory replaces it too.
    expect(
        &[Layer::new()
            .dir("d", 0o755)
            .file("d/x", "x", 0o644)
            .symlink("s", "d")
            .symlink("t", "d")
            .file("s", "s", 0o600)
            .dir("t", 0o700)],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/x file 0644 0:0 t=1700000000 data=\"x\"
            /s file 0600 0:0 t=1700000000 data=\"s\"
            /t dir 0700 0:0 t=1700000000"
        ),
    );
    // A directory replaced by a non-directory later in its own layer loses its subtree.
    expect(
        &[
            Layer::new().dir("d", 0o755).file("d/old", "o", 0o644),
            Layer::new()
                .file("d/new", "n", 0o644)
                .dir("d/sub", 0o755)
                .fifo("d"),
        ],
        &format!("{root}\n/d fifo 0644 0:0 t=1700000000"),
    );

    // Hard links: the target's parent is resolved, its last component is not followed.
    expect(
        &[Layer::new()
            .dir("d", 0o755)
            .file("d/f", "f", 0o644)
            .symlink("l", "d")
            .hardlink("h", "l/f")],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/f file 0644 0:0 t=1700000000 data=\"f\" link=/d/f
            /h file 0644 0:0 t=1700000000 data=\"f\" link=/d/f
            /l symlink 0777 0:0 t=1700000000 -> d"
        ),
    );
    // A hard link to a symlink is a symlink, and is followed as one.
    expect(
        &[
            Layer::new().symlink("s", "d"),
            Layer::new().hardlink("h", "s").file("h/x", "x", 0o644),
        ],
        &format!(
            "{root}
            /d dir 0755 0:0 t=0
            /d/x file 0644 0:0 t=1700000000 data=\"x\"
            /h symlink 0777 0:0 t=1700000000 -> d link=/h
            /s symlink 0777 0:0 t=1700000000 -> d link=/h"
        ),
    );
    // A hard link to nothing or to a directory is an error if it is still there at the end of
    // its layer; not if a later entry replaced it, itself or an ancestor.
    assert!(err(&[Layer::new().hardlink("l", "gone")]).contains("\"gone\""));
    let e = err(&[Layer::new().dir("d", 0o755).hardlink("l", "d")]);
    assert!(e.contains("directory \"d\""), "{e}");
    // (`s/..` is cleaned to the root before anything is resolved.)
    let e = err(&[Layer::new()
        .dir("d", 0o755)
        .symlink("s", "d")
        .hardlink("l", "s/..")]);
    assert!(e.contains("directory \"s/..\" (resolved: \"\")"), "{e}");
    let e = err(&[Layer::new().hardlink("l", "gone").file("m", "", 0o644)]);
    assert!(model::refused_for_an_unreplaced_link(&e), "{e}");
    expect(
        &[Layer::new()
            .hardlink("l", "gone")
            .file("l", "l", 0o644)
            .hardlink("d/l", "gone")
            .file("d", "d", 0o644)
            .hardlink("p", "gone")
            .file("p/x", "x", 0o644)],
        &format!(
            "{root}
            /d file 0644 0:0 t=1700000000 data=\"d\"
            /l file 0644 0:0 t=1700000000 data=\"l\"
            /p dir 0755 0:0 t=0
            /p/x file 0644 0:0 t=1700000000 data=\"x\""
        ),
    );
    // A link to such a pending link is pending too: harmless once replaced, an error (naming
    // it) when it remains.
    expect(
        &[Layer::new()
            .hardlink("b", "gone")
            .hardlink("c", "b")
            .file("b", "", 0o644)
            .file("c", "", 0o644)],
        &format!(
            "{root}\n/b file 0644 0:0 t=1700000000 data=\"\"\n/c file 0644 0:0 t=1700000000 data=\"\""
        ),
    );
    let e = err(&[Layer::new()
        .hardlink("b", "gone")
        .hardlink("c", "b")
        .file("b", "", 0o644)]);
    assert!(
        e.contains("\"c\"") && model::refused_for_an_unreplaced_link(&e),
        "{e}"
    );
    // The pinned fuzz case: the link `b -> a` (a directory) is replaced by later entries.
    let pinned = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("a", "x", 0o644)
                .with_xattr("user.a", "v")
                .dir("a/x/y", 0o644)
                .with_mtime(0)
                .dir("a/x/y", 0o7777)
                .with_mtime(0)
                .fifo("b")
                .file("b", "", 0o644),
        )
        .layer(
            Layer::new()
                .hardlink("b", "a")
                .dir("a/x/y", 0o644)
                .with_mtime(0)
                .fifo("b")
                .file("b", "", 0o1777)
                .with_xattr("user.", "v")
                .dir("a", 0o755)
                .dir("a", 0o755)
                .dir("a", 0o755)
                .compression(Codec::Plain),
        )
        .layer(Layer::new().compression(Codec::Plain));
    expect(
        pinned.layer_list(),
        &format!(
            "{root}
            /a dir 0755 0:0 t=1700000000
            /a/x dir 0755 0:0 t=0
            /a/x/y dir 0644 0:0 t=0
            /b file 1777 0:0 t=1700000000 data=\"\" xattr=user.:76"
        ),
    );

    // Whiteouts and opaque markers resolve their parent against the lower layers' tree; the
    // whited-out name itself is not followed.
    let lower = Layer::new()
        .dir("d", 0o755)
        .file("d/f", "f", 0o644)
        .file("d/g", "g", 0o644)
        .symlink("l", "d");
    let l = "/l symlink 0777 0:0 t=1700000000 -> d";
    expect(
        &[lower.clone(), Layer::new().whiteout("l/f")],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/g file 0644 0:0 t=1700000000 data=\"g\"
            {l}"
        ),
    );
    expect(
        &[lower.clone(), Layer::new().whiteout("l")],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/f file 0644 0:0 t=1700000000 data=\"f\"
            /d/g file 0644 0:0 t=1700000000 data=\"g\""
        ),
    );
    // All of a layer's markers see the lower tree: `.wh.l` does not hide `l` from `l/.wh.f`.
    expect(
        &[lower.clone(), Layer::new().whiteout("l").whiteout("l/f")],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/g file 0644 0:0 t=1700000000 data=\"g\""
        ),
    );
    // And not this layer's entries: the symlink `l` put in place here does not move `l/.wh.f`.
    expect(
        &[
            lower.clone().symlink("e", "d"),
            Layer::new().symlink("l", "e").whiteout("l/g"),
        ],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/f file 0644 0:0 t=1700000000 data=\"f\"
            /e symlink 0777 0:0 t=1700000000 -> d
            /l symlink 0777 0:0 t=1700000000 -> e"
        ),
    );
    expect(
        &[
            lower.clone(),
            Layer::new().file("l/new", "n", 0o644).opaque("l"),
        ],
        &format!(
            "{root}
            /d dir 0755 0:0 t=1700000000
            /d/new file 0644 0:0 t=1700000000 data=\"n\"
            {l}"
        ),
    );
    // Invalid whiteout names stay errors.
    for bad in [".wh.", ".wh..", ".wh..."] {
        let e = err(&[Layer::new().file(format!("l/{bad}"), "", 0o644)]);
        assert!(e.contains("invalid whiteout"), "{e}");
    }
}

/// `assert_dump!` shows what differs, line by line.
#[test]
#[should_panic(
    expected = "- /a file 0644 0:0 t=1700000000 size=1 sha256=ca978112ca1bbdca\n+ /a file 0644 0:0 t=1700000000 size=1 sha256=3e23e8160039594a\n  /b"
)]
fn assert_dump_prints_a_line_diff() {
    let tree = model::apply(&[Layer::new().file("a", "b", 0o644).dir("b", 0o755)]).unwrap();
    assert_dump!(
        r#"
        / dir 0755 0:0 t=0
        /a file 0644 0:0 t=1700000000 data="a"
        /b dir 0755 0:0 t=1700000000
        "#,
        tree
    );
}

/// Hand-written expectations: indentation and blank lines go, `data="…"` becomes size and hash.
#[test]
fn expected_text_expands_data() {
    let text =
        "\n    /a file 0644 0:0 t=0 data=\"x\\n\\x00\\\"\" link=/a\n\n  /b dir 0755 0:0 t=0\n";
    let sha = crate::support::dump::sha256(b"x\n\0\"");
    assert_eq!(
        expand_expected(text),
        format!(
            "/a file 0644 0:0 t=0 size=4 sha256={} link=/a\n/b dir 0755 0:0 t=0\n",
            &sha[..16]
        )
    );
}
