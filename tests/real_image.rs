//! End to end on a real image: the Debian image that `../shared/corpus/build-deb-image.sh`
//! builds (three layers: debootstrap minbase, apt-installed packages, and an edit layer with
//! whiteouts, replacements, hard links, a fifo and a sparse file), converted to every format and
//! compared with umoci's own unpack (`ref/rootfs`) by oracles we did not write: `Tree::from_dir`
//! on the directory output, GNU tar's extraction of the tar output, unsquashfs's extraction of
//! the squashfs output for each compressor.
//!
//! Build the image, then run: `OCIRENDER_REAL_IMAGE=/tmp/deb cargo test --release --test
//! it real_image:: -- --nocapture` (or `scripts/check-real-image.sh /tmp/deb`). Without the variable
//! the test says so on stderr and passes, unless `OCIRENDER_REQUIRE_REAL_IMAGE=1`.

use std::path::Path;
use std::process::Command;

use crate::support::dump::{DumpOptions, Tree};
use ocirender::{
    convert, Compression, ConvertOptions, Image, ImageLocation, ImageSpec, Selector,
    SquashfsOptions,
};

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_same(what: &str, output: &Tree, reference: &Tree) {
    // umoci unpack gives the rootfs directory the root entry's attributes except its mtime,
    // which changes when umoci writes its children; compare the rest.
    let opts = DumpOptions::default();
    let mut a = output.clone();
    let mut b = reference.clone();
    for t in [&mut a, &mut b] {
        if let Some(root) = t.0.get_mut(&Vec::new()) {
            root.mtime = 0;
        }
    }
    let (da, db) = (a.dump(opts), b.dump(opts));
    if da != db {
        let la: Vec<&str> = da.lines().collect();
        let lb: Vec<&str> = db.lines().collect();
        let only_out: Vec<_> = la.iter().filter(|l| !lb.contains(l)).take(20).collect();
        let only_ref: Vec<_> = lb.iter().filter(|l| !la.contains(l)).take(20).collect();
        panic!("{what} differs from umoci's unpack\n+ {only_out:#?}\n- {only_ref:#?}");
    }
    eprintln!("{what}: {} entries equal umoci's unpack", a.0.len());
}

fn image(dir: &Path) -> Image {
    let loc = ImageLocation::parse(&format!("{}:latest", dir.join("oci").display()));
    Image::open(&loc, &Selector::default()).expect("open the real image")
}

#[test]
fn real_image_every_format_equals_umoci_unpack() {
    let Some(dir) = crate::support::skip::real_image("real_image_every_format_equals_umoci_unpack")
    else {
        return;
    };
    let reference = Tree::from_dir(&dir.join("ref/rootfs"));
    let img = image(&dir);
    let tmp = tempfile::tempdir_in("/tmp").unwrap();

    let out = tmp.path().join("dir");
    convert(
        &img,
        &ImageSpec::Dir { path: out.clone() },
        &ConvertOptions::default(),
    )
    .unwrap();
    assert_same("directory output", &Tree::from_dir(&out), &reference);
    std::fs::remove_dir_all(&out).unwrap();

    let tar = tmp.path().join("out.tar");
    convert(
        &img,
        &ImageSpec::Tar { path: tar.clone() },
        &ConvertOptions::default(),
    )
    .unwrap();
    let x = tmp.path().join("tar-x");
    std::fs::create_dir(&x).unwrap();
    run(Command::new("tar")
        .args([
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--delay-directory-restore",
            "-P",
            "-xpf",
        ])
        .arg(&tar)
        .arg("-C")
        .arg(&x));
    assert_same("tar output (GNU tar)", &Tree::from_dir(&x), &reference);
    std::fs::remove_dir_all(&x).unwrap();
    std::fs::remove_file(&tar).unwrap();

    for comp in ["gzip", "zstd", "xz", "lz4"] {
        let sqfs = tmp.path().join(format!("{comp}.sqfs"));
        let options = ConvertOptions::default().squashfs(SquashfsOptions {
            compression: comp.parse::<Compression>().unwrap(),
            ..SquashfsOptions::default()
        });
        convert(&img, &ImageSpec::Squashfs { path: sqfs.clone() }, &options).unwrap();
        let x = tmp.path().join("sqfs-x");
        run(Command::new("unsquashfs")
            .args(["-no-progress", "-d"])
            .arg(&x)
            .arg(&sqfs));
        assert_same(
            &format!("squashfs {comp} (unsquashfs)"),
            &Tree::from_dir(&x),
            &reference,
        );
        std::fs::remove_dir_all(&x).unwrap();
        std::fs::remove_file(&sqfs).unwrap();
    }
}
