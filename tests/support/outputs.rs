//! Run `ocirender::convert` to every format and read each output back as a [`Tree`].
//!
//! Readers are independent of ocirender: a directory is walked with lstat, a tar archive is
//! extracted by GNU tar, a squashfs image by `unsquashfs` (both as root, so ownership, devices
//! and xattrs come back). Every conversion also checks the no-partial-output rule: after an
//! error nothing is left at the target and no `*.partial` temporary file remains beside it;
//! after success no temporary file remains either.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ocirender::{convert, ConvertOptions, Format, Image, ImageLocation, ImageSpec, Selector};

use super::dump::{DumpOptions, Tree};

/// The result of one conversion.
pub struct Converted {
    /// The format converted to.
    pub format: Format,
    /// The output read back, or the conversion's error.
    pub result: Result<Tree, ocirender::Error>,
}

/// Converts the image at `image_dir` (its only manifest) to every format and reads the outputs
/// back. Panics if an error left output behind.
pub fn convert_all(
    image_dir: &Path,
    options: &ConvertOptions,
) -> Vec<(Format, Result<Tree, ocirender::Error>)> {
    Format::ALL
        .iter()
        .map(|&f| (f, convert_one(image_dir, f, options).result))
        .collect()
}

/// Opens the image at `image_dir` with no ref and no platform.
pub fn open_image(image_dir: &Path) -> Result<Image, ocirender::Error> {
    let location = ImageLocation {
        path: image_dir.to_path_buf(),
        reference: None,
    };
    Image::open(&location, &Selector::default())
}

/// Converts the image at `image_dir` to `format` in a fresh temporary directory and reads the
/// output back. Panics if output is left behind after an error, or a temporary file after
/// success.
pub fn convert_one(image_dir: &Path, format: Format, options: &ConvertOptions) -> Converted {
    let work = tempfile::tempdir().unwrap();
    let target = output_path(work.path(), format);
    let result = open_image(image_dir)
        .and_then(|image| convert(&image, &ImageSpec::new(format, &target), options));
    let result = match result {
        Ok(_) => {
            let stray = partial_files(work.path());
            assert!(
                stray.is_empty(),
                "{format:?}: temporary files left after success: {stray:?}"
            );
            Ok(read_output(&target, format))
        }
        Err(e) => {
            assert_no_output(work.path(), &target, format, &e);
            Err(e)
        }
    };
    Converted { format, result }
}

/// Where a conversion to `format` writes inside `dir`.
pub fn output_path(dir: &Path, format: Format) -> PathBuf {
    match format {
        Format::Squashfs => dir.join("out.sqfs"),
        Format::Tar => dir.join("out.tar"),
        Format::Dir => dir.join("out"),
    }
}

/// `*.partial` files in `dir`.
pub fn partial_files(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".partial"))
        .collect()
}

/// After a failed conversion: no file at `target` and nothing else in `dir` (a directory output
/// may be left as an empty directory).
pub fn assert_no_output(dir: &Path, target: &Path, format: Format, err: &ocirender::Error) {
    let mut left: Vec<PathBuf> = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let empty_dir = format == Format::Dir
            && p == target
            && p.is_dir()
            && fs::read_dir(&p).unwrap().next().is_none();
        if !empty_dir {
            left.push(p);
        }
    }
    assert!(
        left.is_empty(),
        "{format:?}: the failed conversion ({err}) left {left:?}"
    );
}

/// Reads an output back as a tree.
pub fn read_output(target: &Path, format: Format) -> Tree {
    match format {
        Format::Dir => Tree::from_dir(target),
        Format::Tar => {
            let x = tempfile::tempdir().unwrap();
            let root = x.path().join("root");
            // The root starts 0700 with a current mtime, so an archive that does not carry the
            // root's metadata shows up as a difference.
            fs::create_dir(&root).unwrap();
            fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
                .unwrap();
            // --delay-directory-restore: hard links come after their directories (the merge
            // delivers them last), and creating one would bump a directory mtime already
            // restored; GNU tar then restores directories at the very end instead.
            run(Command::new("tar")
                .args([
                    "--xattrs",
                    "--xattrs-include=*",
                    "--numeric-owner",
                    "--delay-directory-restore",
                    "-P",
                    "-xpf",
                ])
                .arg(target)
                .arg("-C")
                .arg(&root));
            Tree::from_dir(&root)
        }
        Format::Squashfs => {
            let x = tempfile::tempdir().unwrap();
            let root = x.path().join("root");
            let mut cmd = Command::new("unsquashfs");
            cmd.args(["-no-progress", "-d"]).arg(&root).arg(target);
            match cmd.output() {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    panic!("unsquashfs not found: apt-get install squashfs-tools")
                }
                Err(e) => panic!("{cmd:?}: {e}"),
                Ok(out) => assert!(
                    out.status.success(),
                    "{cmd:?} failed ({}):\n{}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            }
            let tree = Tree::from_dir(&root);
            // The second reader: backhand, in process (it sees no xattrs and no link identity,
            // and no long symlink targets).
            if super::oracle::backhand_can_read(&tree) {
                let plain = |t: &Tree| {
                    super::oracle::without_links_and_xattrs(t).dump(DumpOptions::default())
                };
                assert_eq!(
                    plain(&super::oracle::backhand(target)),
                    plain(&tree),
                    "backhand and unsquashfs read {} differently",
                    target.display()
                );
            }
            tree
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Something that can be shown as a canonical dump.
pub trait AsDump {
    /// The dump text.
    fn as_dump(&self, opts: DumpOptions) -> String;
}

impl AsDump for Tree {
    fn as_dump(&self, opts: DumpOptions) -> String {
        self.dump(opts)
    }
}

impl AsDump for str {
    /// Hand-written expectations: blank lines and indentation are ignored, and `data="…"`
    /// (Rust-like escapes `\n`, `\\`, `\"`, `\xNN`) stands for `size=N sha256=…` of that
    /// content.
    fn as_dump(&self, _: DumpOptions) -> String {
        expand_expected(self)
    }
}

impl AsDump for String {
    fn as_dump(&self, opts: DumpOptions) -> String {
        self.as_str().as_dump(opts)
    }
}

impl<T: AsDump + ?Sized> AsDump for &T {
    fn as_dump(&self, opts: DumpOptions) -> String {
        (**self).as_dump(opts)
    }
}

/// Normalizes a hand-written dump (see [`AsDump`] for `str`).
pub fn expand_expected(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.find("data=\"") {
            None => out.push_str(line),
            Some(i) => {
                let (content, rest) = unquote(&line[i + 6..]);
                let sha = super::dump::sha256(&content);
                out.push_str(&line[..i]);
                out.push_str(&format!("size={} sha256={}", content.len(), &sha[..16]));
                out.push_str(rest);
            }
        }
        out.push('\n');
    }
    out
}

/// Parses a quoted string body up to its closing `"`; returns the bytes and what follows.
fn unquote(s: &str) -> (Vec<u8>, &str) {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => return (out, &s[i + 1..]),
            b'\\' => {
                match b[i + 1] {
                    b'n' => out.push(b'\n'),
                    b'0' => out.push(0),
                    b'x' => {
                        out.push(u8::from_str_radix(&s[i + 2..i + 4], 16).unwrap());
                        i += 2;
                    }
                    c => out.push(c),
                }
                i += 2;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    panic!("unterminated data=\"…\" in expected dump")
}

/// A line diff, `-` expected, `+` actual, ` ` both (LCS; inputs are small).
pub fn diff(expected: &str, actual: &str) -> String {
    let a: Vec<&str> = expected.lines().collect();
    let b: Vec<&str> = actual.lines().collect();
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, String::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out += &format!("  {}\n", a[i]);
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] > lcs[i + 1][j]) {
            out += &format!("+ {}\n", b[j]);
            j += 1;
        } else {
            out += &format!("- {}\n", a[i]);
            i += 1;
        }
    }
    out
}

/// Compares two dumps; on a difference panics with a diff and `context`.
pub fn check_dump(expected: &dyn AsDump, actual: &dyn AsDump, opts: DumpOptions, context: &str) {
    let (e, a) = (expected.as_dump(opts), actual.as_dump(opts));
    if e != a {
        panic!(
            "{context}: dumps differ (- expected, + actual):\n{}",
            diff(&e, &a)
        );
    }
}

/// `assert_dump!(expected, actual)`: compares canonical dumps (a hand-written `&str` or a
/// [`Tree`] on either side) and prints a line diff on failure. Optional: `opts = DumpOptions`,
/// then a format string for context.
#[macro_export]
macro_rules! assert_dump {
    ($expected:expr, $actual:expr, opts = $opts:expr) => {
        $crate::support::outputs::check_dump(&$expected, &$actual, $opts, "assert_dump")
    };
    ($expected:expr, $actual:expr, opts = $opts:expr, $($ctx:tt)+) => {
        $crate::support::outputs::check_dump(&$expected, &$actual, $opts, &format!($($ctx)+))
    };
    ($expected:expr, $actual:expr) => {
        $crate::assert_dump!($expected, $actual, opts = $crate::support::dump::DumpOptions::default())
    };
    ($expected:expr, $actual:expr, $($ctx:tt)+) => {
        $crate::assert_dump!($expected, $actual, opts = $crate::support::dump::DumpOptions::default(), $($ctx)+)
    };
}
