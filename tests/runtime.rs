//! The container runtimes' own extraction tests, translated into layer stacks.
//!
//! Each case is one test of containerd (`pkg/archive` TestBreakouts, TestApplyTar, TestDiffTar,
//! TestSymlinks, TestRelativeSymlinks, TestPrefixHeaderReadable; continuity's `fs` TestRootPath
//! and `fstest` FSSuite, the resolver and the suites containerd's applier is checked with), moby
//! (`pkg/archive` and `pkg/chrootarchive` before they moved to moby/go-archive: TestUntar*,
//! TestApplyLayer*, TestImpliedDirectoryPermissions…), umoci (`oci/layer` TestUnpackEntry*,
//! TestUnpackOpaqueWhiteout, TestUnpackHardlink) and go-containerregistry (`pkg/v1/mutate`
//! TestExtract*, TestWhiteoutDir), named after it in a comment. A test's starting state (an
//! `fstest.Apply` the runtime writes to disk first, or a layer it unpacked before) is a lower
//! layer; the tar it applies is the layer above. Every expected tree is derived by hand from what
//! the runtime's applier leaves on disk (its source: containerd `applyNaive`, continuity
//! `RootPath`/`walkLinks`, umoci `UnpackEntry`, moby `createTarFile`), never from ocirender's
//! output, and checked in all three formats.
//!
//! The rules applied where the runtimes differ are DESIGN.md's (and containerd's where it says
//! nothing): parent symlinks resolve inside the root (absolute targets from the root, `..`
//! stopping at the root, a missing component taken as a plain directory, chains followed; a loop
//! or more than 40 hops is an error, where continuity allows 255); hard-link targets and
//! whiteout parents resolve the same way; the last component of a name is never followed (an
//! entry replaces a symlink, a hard link to a symlink is a symlink, as link(2) makes it); names
//! are cleaned lexically; a name or hard-link target that leaves the root by `..` is an error
//! naming the entry and its layer (containerd and umoci clamp such names to the root, moby
//! clamps a leading `/..`), where a runtime only meant to show that nothing escaped; whiteouts
//! and opaque markers hide lower layers only, wherever they sit in their layer; a whiteout of
//! nothing is a no-op and creates no parent (containerd's `mkparent` runs first and leaves the
//! parent behind); invalid whiteout names are errors; symlinks are stored as written, whatever
//! their target (moby refuses, and go-containerregistry drops, relative targets that climb out).
//!
//! What is not modelled is left out of the comparison and said at the case: the host (files
//! outside the root, the current user's uid, `time.Now()` mtimes: every entry here is root-owned
//! with mtime 1700000000), and directory mtimes, which the runtimes set from the clock for
//! implied directories (compared only where a test is about them, umoci's whiteout tests).
//! containerd also applies a hard-link header's mode, owner and mtime to the shared inode;
//! the hard links here carry their target's metadata, so that difference never shows.
//!
//! A subset runs through every other way in: the streaming packer with layers delivered in
//! order and shuffled (as files, async streams and blocking readers), `convert_streaming`,
//! `registry::pull` from a local registry (skipped without `docker-registry` and `skopeo`, as in
//! tests/registry.rs), and a tar written to standard output.

use std::io::{self, Read, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::builder::{raw, Built, ImageBuilder, Layer, MTIME};
use crate::support::dump::{DumpOptions, Kind, Node, Tree};
use crate::support::outputs::{
    assert_no_output, convert_one, diff, open_image, output_path, read_output,
};
use ocirender::{
    convert_streaming, ConvertOptions, Error, Format, ImageSpec, Jobs, LayerBlob, LayerMeta,
    StreamingPacker,
};
use tokio::io::AsyncWriteExt;

// ---------------------------------------------------------------------------------------------
// Cases and their expectations

/// What is compared: everything but directory mtimes (see the module documentation).
const OPTS: DumpOptions = DumpOptions {
    ownership: true,
    mtime: true,
    dir_mtime: false,
    xattrs: true,
};

/// What a case must produce.
enum Expect {
    /// This tree (hand-written).
    Tree(Tree),
    /// An error whose root cause is the variant named, with a message that contains every one of
    /// `mentions` (the entry, its layer).
    Error {
        variant: &'static str,
        mentions: Vec<String>,
    },
}

/// One runtime test as a layer stack (oldest first) and what it must give.
struct Case {
    layers: Vec<Layer>,
    expect: Expect,
    opts: DumpOptions,
}

/// A case whose result is the tree `lines` describe (see [`parse_line`]); the root is a 0755
/// directory unless a line `/` says otherwise.
fn ok(layers: Vec<Layer>, lines: &[&str]) -> Case {
    let mut tree = Tree::default();
    for line in lines {
        let (path, node) = parse_line(line);
        let shown = String::from_utf8_lossy(&path).into_owned();
        assert!(
            tree.0.insert(path, node).is_none(),
            "{shown:?} is listed twice"
        );
    }
    tree.0
        .entry(Vec::new())
        .or_insert_with(|| Node::new(Kind::Dir, 0o755));
    Case {
        layers,
        expect: Expect::Tree(tree),
        opts: OPTS,
    }
}

/// A case that must fail with `variant` (the root cause's name), the message mentioning each of
/// `mentions`.
fn refused(layers: Vec<Layer>, variant: &'static str, mentions: &[&str]) -> Case {
    Case {
        layers,
        expect: Expect::Error {
            variant,
            mentions: mentions.iter().map(|m| m.to_string()).collect(),
        },
        opts: OPTS,
    }
}

/// A name or hard-link target that leaves the root, refused.
fn hostile(layers: Vec<Layer>, mentions: &[&str]) -> Case {
    refused(layers, "HostilePath", mentions)
}

/// An invalid whiteout name, refused.
fn invalid_whiteout(layers: Vec<Layer>, mentions: &[&str]) -> Case {
    refused(layers, "InvalidWhiteout", mentions)
}

/// A symlink loop (or a chain too long) on the way to an entry.
fn symlink_loop(layers: Vec<Layer>, mentions: &[&str]) -> Case {
    refused(layers, "TooManySymlinks", mentions)
}

impl Case {
    /// The paths of `group` are one inode (hard links).
    fn linked(mut self, group: &[&str]) -> Case {
        let Expect::Tree(tree) = &mut self.expect else {
            panic!("links on an error case");
        };
        let keys: Vec<Vec<u8>> = group
            .iter()
            .map(|p| p.trim_matches('/').as_bytes().to_vec())
            .collect();
        let first = keys.iter().min().unwrap().clone();
        for k in &keys {
            let node = tree.0.get_mut(k).unwrap_or_else(|| {
                panic!(
                    "linked path {:?} is not in the tree",
                    String::from_utf8_lossy(k)
                )
            });
            node.link = Some(first.clone());
        }
        self
    }

    /// Compares directory mtimes too (every directory of the case has an entry).
    fn with_dir_mtimes(mut self) -> Case {
        self.opts.dir_mtime = true;
        self
    }
}

/// One expected entry: `PATH [MODE] [UID:GID] [t=MTIME] [fifo]`, then ` = CONTENT` for a file or
/// ` -> TARGET` for a symlink; a path ending in `/` is a directory, `/` alone the root, and a
/// path with spaces is quoted `'…'`. Defaults: 0755 directories, 0644 files, owner 0:0, mtime
/// [`MTIME`] (directory mtimes are only compared by [`Case::with_dir_mtimes`]).
fn parse_line(line: &str) -> (Vec<u8>, Node) {
    let body_at = [" = ", " -> "]
        .iter()
        .filter_map(|sep| line.find(sep).map(|i| (i, *sep)))
        .min();
    let (head, kind) = match body_at {
        Some((i, " = ")) => (
            &line[..i],
            Some(Kind::File {
                size: 0,
                sha256: line[i + 3..].to_owned(),
            }),
        ),
        Some((i, _)) => (
            &line[..i],
            Some(Kind::Symlink(line.as_bytes()[i + 4..].to_vec())),
        ),
        None => match line.strip_suffix(" =") {
            Some(h) => (
                h,
                Some(Kind::File {
                    size: 0,
                    sha256: String::new(),
                }),
            ),
            None => (line, None),
        },
    };
    let (path, rest) = match head.strip_prefix('\'') {
        Some(q) => {
            let end = q.find('\'').expect("closing quote");
            (&q[..end], &q[end + 1..])
        }
        None => head.split_once(' ').unwrap_or((head, "")),
    };
    let mut kind = kind.unwrap_or(if path.ends_with('/') {
        Kind::Dir
    } else {
        Kind::Fifo
    });
    let mut mode = match kind {
        Kind::Dir => 0o755,
        _ => 0o644,
    };
    let (mut uid, mut gid, mut mtime) = (0, 0, MTIME);
    let mut fifo = false;
    for token in rest.split_whitespace() {
        if let Some(t) = token.strip_prefix("t=") {
            mtime = t.parse().unwrap();
        } else if let Some((u, g)) = token.split_once(':') {
            (uid, gid) = (u.parse().unwrap(), g.parse().unwrap());
        } else if token == "fifo" {
            fifo = true;
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            mode = u32::from_str_radix(token, 8).unwrap();
        } else {
            panic!("cannot read {token:?} in {line:?}");
        }
    }
    assert!(
        fifo == (kind == Kind::Fifo),
        "{line:?}: a non-directory needs `= CONTENT`, `-> TARGET` or `fifo`"
    );
    if let Kind::File { sha256, .. } = &kind {
        // The content was parked in `sha256`; now hash it.
        let content = sha256.clone().into_bytes();
        kind = Node::file(&content, 0).kind;
    }
    let mut node = Node::new(kind, mode);
    (node.uid, node.gid, node.mtime) = (uid, gid, mtime);
    let key = if path == "/" {
        Vec::new()
    } else {
        path.trim_end_matches('/').as_bytes().to_vec()
    };
    (key, node)
}

/// The name of an error's variant (`HostilePath`), from its `Debug` form, so that the cases do
/// not depend on which variants exist while the merge is being changed.
fn variant_name(e: &Error) -> String {
    format!("{e:?}")
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// Checks one outcome (a tree, or an error's message and, when it came from the library, the
/// error); `None` when it is as expected.
fn judge(case: &Case, got: Result<Tree, (String, Option<&Error>)>) -> Option<String> {
    match (&case.expect, got) {
        (Expect::Tree(want), Ok(tree)) => {
            let (w, g) = (want.dump(case.opts), tree.dump(case.opts));
            (w != g).then(|| format!("trees differ (- expected, + actual):\n{}", diff(&w, &g)))
        }
        (Expect::Tree(want), Err((msg, _))) => Some(format!(
            "failed: {msg}\nexpected:\n{}",
            want.dump(case.opts)
        )),
        (Expect::Error { variant, .. }, Ok(tree)) => Some(format!(
            "succeeded, want a {variant} error; output:\n{}",
            tree.dump(case.opts)
        )),
        (Expect::Error { variant, mentions }, Err((msg, err))) => {
            let mut problems = Vec::new();
            if let Some(e) = err {
                let found = variant_name(e.root_cause());
                if found != *variant {
                    problems.push(format!("root cause is {found}, want {variant}"));
                }
            }
            for m in mentions {
                if !msg.contains(m.as_str()) {
                    problems.push(format!("the message does not mention {m:?}"));
                }
            }
            (!problems.is_empty()).then(|| format!("error {msg:?}: {}", problems.join("; ")))
        }
    }
}

fn from_library(r: &Result<Tree, Error>) -> Result<Tree, (String, Option<&Error>)> {
    match r {
        Ok(t) => Ok(t.clone()),
        Err(e) => Err((crate::support::error_text(e), Some(e))),
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".into(),
    }
}

fn build(case: &Case, dir: &Path) -> Built {
    ImageBuilder::new()
        .layers(case.layers.iter().cloned())
        .tag("latest")
        .build(dir.join("img"))
}

/// Converts the case with `convert` to every format; panics listing every format that fails.
fn check_formats(name: &str, case: Case) {
    let t = tempfile::tempdir().unwrap();
    let img = build(&case, t.path());
    let mut failures = Vec::new();
    for format in Format::ALL {
        let run =
            std::panic::catch_unwind(|| convert_one(&img, format, &ConvertOptions::default()));
        let verdict = match run {
            Ok(converted) => judge(&case, from_library(&converted.result)),
            Err(panic) => Some(format!("panicked: {}", panic_message(&*panic))),
        };
        if let Some(v) = verdict {
            failures.push(format!("{}: {v}", format.name()));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of 3 formats fail\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// The same layers, one entry per layer (only for a case whose layer has no whiteout and no
/// replacement, where applying the entries one by one gives what applying the layer gives).
fn one_entry_per_layer(case: Case) -> Case {
    let layers = case
        .layers
        .iter()
        .flat_map(|l| {
            l.entries.iter().map(|e| Layer {
                entries: vec![e.clone()],
                ..Layer::new()
            })
        })
        .collect();
    Case { layers, ..case }
}

// ---------------------------------------------------------------------------------------------
// The cases, by origin. `Layer::new()` names are written as the runtime's test writes them
// (leading `/`, doubled `/` of Go's `FileInfoHeader` for directories given with a trailing
// slash), so name cleaning is exercised as there.

mod cases {
    use super::*;

    /// containerd's `fstest` base states begin from this: `/etc` 0755 with `passwd`.
    fn etc_passwd(content: &str) -> Layer {
        Layer::new()
            .dir("etc/", 0o755)
            .file("etc/passwd", content, 0o644)
    }

    // ---- containerd pkg/archive TestBreakouts ------------------------------------------------
    // One tar each (`w`), applied over `apply` (a lower layer) where the test has one.

    // containerd TestBreakouts/SymlinkAbsolute
    pub fn containerd_breakouts_symlink_absolute() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o755)
                .symlink("localetc", "/etc")
                .file("/localetc/unbroken", "unbroken", 0o644)],
            &["etc/", "etc/unbroken = unbroken", "localetc -> /etc"],
        )
    }

    // containerd TestBreakouts/SymlinkUpAndOut
    pub fn containerd_breakouts_symlink_up_and_out() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o755)
                .dir("dummy/", 0o755)
                .symlink("localetc", "/dummy/../etc")
                .file("/localetc/unbroken", "unbroken", 0o644)],
            &[
                "dummy/",
                "etc/",
                "etc/unbroken = unbroken",
                "localetc -> /dummy/../etc",
            ],
        )
    }

    // containerd TestBreakouts/SymlinkMultipleAbsolute
    pub fn containerd_breakouts_symlink_multiple_absolute() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o755)
                .dir("dummy/", 0o755)
                .symlink("/dummy/etc", "/etc")
                .symlink("localetc", "/dummy/etc")
                .file("/dummy/etc/unbroken", "unbroken", 0o644)],
            &[
                "dummy/",
                "dummy/etc -> /etc",
                "etc/",
                "etc/unbroken = unbroken",
                "localetc -> /dummy/etc",
            ],
        )
    }

    // containerd TestBreakouts/SymlinkMultipleRelative
    pub fn containerd_breakouts_symlink_multiple_relative() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o755)
                .dir("dummy/", 0o755)
                .symlink("/dummy/etc", "/etc")
                .symlink("localetc", "./dummy/etc")
                .file("/dummy/etc/unbroken", "unbroken", 0o644)],
            &[
                "dummy/",
                "dummy/etc -> /etc",
                "etc/",
                "etc/unbroken = unbroken",
                "localetc -> ./dummy/etc",
            ],
        )
    }

    // containerd TestBreakouts/SymlinkEmptyFile: the empty file replaces etc/emptied through the
    // symlink.
    pub fn containerd_breakouts_symlink_empty_file() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o755)
                .file("etc/emptied", "notempty", 0o644)
                .symlink("localetc", "/etc")
                .file("/localetc/emptied", "", 0o644)],
            &["etc/", "etc/emptied =", "localetc -> /etc"],
        )
    }

    // containerd TestBreakouts/HardlinkRelative: `../../etc` from breakouts/ stops at the root.
    pub fn containerd_breakouts_hardlink_relative() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .dir("breakouts/", 0o755)
                .symlink("breakouts/d1", "../../etc")
                .hardlink("breakouts/mypasswd", "/breakouts/d1/passwd")],
            &[
                "breakouts/",
                "breakouts/d1 -> ../../etc",
                "breakouts/mypasswd = inside",
                "etc/ 0770",
                "etc/passwd = inside",
            ],
        )
        .linked(&["breakouts/mypasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/HardlinkDownAndOut
    pub fn containerd_breakouts_hardlink_down_and_out() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .dir("breakouts/", 0o755)
                .dir("downandout/", 0o755)
                .symlink("breakouts/d1", "../downandout/../../etc")
                .hardlink("breakouts/mypasswd", "/breakouts/d1/passwd")],
            &[
                "breakouts/",
                "breakouts/d1 -> ../downandout/../../etc",
                "breakouts/mypasswd = inside",
                "downandout/",
                "etc/ 0770",
                "etc/passwd = inside",
            ],
        )
        .linked(&["breakouts/mypasswd", "etc/passwd"])
    }

    fn localetc_hardlink(target: &str) -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .symlink("localetc", target)
                .hardlink("localpasswd", "/localetc/passwd")],
            &[
                "etc/ 0770",
                "etc/passwd = inside",
                &format!("localetc -> {target}"),
                "localpasswd = inside",
            ],
        )
        .linked(&["localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/HardlinkAbsolute
    pub fn containerd_breakouts_hardlink_absolute() -> Case {
        localetc_hardlink("/etc")
    }

    // containerd TestBreakouts/HardlinkRelativeLong
    pub fn containerd_breakouts_hardlink_relative_long() -> Case {
        localetc_hardlink("../../../../../../../etc")
    }

    // containerd TestBreakouts/HardlinkRelativeUpAndOut: `upandout` does not exist; continuity's
    // walkLinks takes a missing component as a plain name, so `upandout/..` is the root.
    pub fn containerd_breakouts_hardlink_relative_up_and_out() -> Case {
        localetc_hardlink("upandout/../../../etc")
    }

    // containerd TestBreakouts/HardlinkDirectRelative: containerd clamps the target to the
    // root; here a hard-link target that leaves the root is an error naming the entry.
    pub fn containerd_breakouts_hardlink_direct_relative() -> Case {
        hostile(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .hardlink("localpasswd", "../../../../../etc/passwd")],
            &["localpasswd", "../../../../../etc/passwd", "layer 0"],
        )
    }

    // containerd TestBreakouts/HardlinkDirectAbsolute
    pub fn containerd_breakouts_hardlink_direct_absolute() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .hardlink("localpasswd", "/etc/passwd")],
            &["etc/ 0770", "etc/passwd = inside", "localpasswd = inside"],
        )
        .linked(&["localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/SymlinkParentDirectory: containerd skips an entry named `..` (it
    // resolves to the root); here the name leaves the root and is refused.
    pub fn containerd_breakouts_symlink_parent_directory() -> Case {
        hostile(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .symlink("..", "/etc/")
                .hardlink("localpasswd", "/etc/passwd")],
            &["..", "layer 0"],
        )
    }

    // containerd TestBreakouts/SymlinkEmptyFilename: a symlink named "" is the root, which
    // containerd skips ("file ignored: resolved to root").
    pub fn containerd_breakouts_symlink_empty_filename() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .symlink("", "/etc/")
                .hardlink("localpasswd", "/etc/passwd")],
            &["etc/ 0770", "etc/passwd = inside", "localpasswd = inside"],
        )
        .linked(&["localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/SymlinkParentRelative: the name `localetc/sub/..` is cleaned to
    // `localetc` before anything (no `localetc/sub` appears).
    pub fn containerd_breakouts_symlink_parent_relative() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .symlink("localetc/sub/..", "/etc/")
                .hardlink("/localetc/localpasswd", "/etc/passwd")],
            &[
                "etc/ 0770",
                "etc/localpasswd = inside",
                "etc/passwd = inside",
                "localetc -> /etc/",
            ],
        )
        .linked(&["etc/localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/SymlinkSlashEnded
    pub fn containerd_breakouts_symlink_slash_ended() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .dir("localetc//", 0o770)
                .hardlink("/localetc/localpasswd", "/etc/passwd")],
            &[
                "etc/ 0770",
                "etc/passwd = inside",
                "localetc/ 0770",
                "localetc/localpasswd = inside",
            ],
        )
        .linked(&["localetc/localpasswd", "etc/passwd"])
    }

    fn symlink_override_directory(target: &str) -> Case {
        ok(
            vec![
                etc_passwd("inside").dir("localetc/", 0o755),
                Layer::new()
                    .symlink("localetc", target)
                    .hardlink("/localetc/localpasswd", "/etc/passwd"),
            ],
            &[
                "etc/",
                "etc/localpasswd = inside",
                "etc/passwd = inside",
                &format!("localetc -> {target}"),
            ],
        )
        .linked(&["etc/localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/SymlinkOverrideDirectory: the symlink replaces the lower
    // directory, and the link goes through it.
    pub fn containerd_breakouts_symlink_override_directory() -> Case {
        symlink_override_directory("/etc")
    }

    // containerd TestBreakouts/SymlinkOverrideDirectoryRelative
    pub fn containerd_breakouts_symlink_override_directory_relative() -> Case {
        symlink_override_directory("../../etc")
    }

    // containerd TestBreakouts/DirectoryOverrideSymlink: the directory replaces the lower
    // symlink (the last component is never followed).
    pub fn containerd_breakouts_directory_override_symlink() -> Case {
        ok(
            vec![
                etc_passwd("inside").symlink("localetc", "/etc"),
                Layer::new()
                    .dir("/localetc//", 0o755)
                    .hardlink("/localetc/localpasswd", "/etc/passwd"),
            ],
            &[
                "etc/",
                "etc/passwd = inside",
                "localetc/",
                "localetc/localpasswd = inside",
            ],
        )
        .linked(&["localetc/localpasswd", "etc/passwd"])
    }

    // containerd TestBreakouts/DirectoryOverrideSymlinkAndHardlink: the base state's
    // `fstest.Link` made /etc/localpasswd through the symlink; the new file under the new
    // directory is another inode.
    pub fn containerd_breakouts_directory_override_symlink_and_hardlink() -> Case {
        ok(
            vec![
                etc_passwd("inside")
                    .symlink("localetc", "etc")
                    .hardlink("localetc/localpasswd", "etc/passwd"),
                Layer::new().dir("/localetc//", 0o755).file(
                    "/localetc/localpasswd",
                    "different",
                    0o644,
                ),
            ],
            &[
                "etc/",
                "etc/localpasswd = inside",
                "etc/passwd = inside",
                "localetc/",
                "localetc/localpasswd = different",
            ],
        )
        .linked(&["etc/localpasswd", "etc/passwd"])
    }

    fn bad_whiteout(name: &str) -> Case {
        invalid_whiteout(
            vec![etc_passwd("inside"), Layer::new().file(name, "", 0o644)],
            &[name, "layer 1"],
        )
    }

    // containerd TestBreakouts/WhiteoutRootParent
    pub fn containerd_breakouts_whiteout_root_parent() -> Case {
        bad_whiteout(".wh...")
    }

    // containerd TestBreakouts/WhiteoutParent
    pub fn containerd_breakouts_whiteout_parent() -> Case {
        bad_whiteout("etc/.wh...")
    }

    // containerd TestBreakouts/WhiteoutRoot
    pub fn containerd_breakouts_whiteout_root() -> Case {
        bad_whiteout(".wh..")
    }

    // containerd TestBreakouts/WhiteoutCurrentDirectory
    pub fn containerd_breakouts_whiteout_current_directory() -> Case {
        bad_whiteout("etc/.wh..")
    }

    // containerd TestBreakouts/WhiteoutSymlink: the whiteout removes the symlink, not what it
    // points to.
    pub fn containerd_breakouts_whiteout_symlink() -> Case {
        ok(
            vec![
                etc_passwd("all users").symlink("localetc", "/etc"),
                Layer::new().whiteout("localetc"),
            ],
            &["etc/", "etc/passwd = all users"],
        )
    }

    // containerd TestBreakouts/WhiteoutSymlinkPath: the whiteout's parent resolves through the
    // symlink.
    pub fn containerd_breakouts_whiteout_symlink_path() -> Case {
        ok(
            vec![
                etc_passwd("all users")
                    .file("etc/whitedout", "ahhhh whiteout", 0o644)
                    .symlink("localetc", "/etc"),
                Layer::new().whiteout("localetc/whitedout"),
            ],
            &["etc/", "etc/passwd = all users", "localetc -> /etc"],
        )
    }

    // containerd TestBreakouts/WhiteoutDirectoryName: only the last component makes a whiteout;
    // `.wh.etc/` is a plain (implied) directory.
    pub fn containerd_breakouts_whiteout_directory_name() -> Case {
        ok(
            vec![
                etc_passwd("all users")
                    .file("etc/whitedout", "ahhhh whiteout", 0o644)
                    .symlink("localetc", "/etc"),
                Layer::new().file(".wh.etc/somefile", "non-empty", 0o644),
            ],
            &[
                ".wh.etc/",
                ".wh.etc/somefile = non-empty",
                "etc/",
                "etc/passwd = all users",
                "etc/whitedout = ahhhh whiteout",
                "localetc -> /etc",
            ],
        )
    }

    // containerd TestBreakouts/WhiteoutDeadSymlinkParent: the parent resolves to /dne, which
    // does not exist: a no-op. (containerd's mkparent creates /dne before the whiteout is
    // handled; a whiteout of nothing creates no parent here.)
    pub fn containerd_breakouts_whiteout_dead_symlink_parent() -> Case {
        ok(
            vec![
                etc_passwd("all users").symlink("localetc", "/dne"),
                Layer::new().whiteout("localetc/etc"),
            ],
            &["etc/", "etc/passwd = all users", "localetc -> /dne"],
        )
    }

    // containerd TestBreakouts/WhiteoutRelativePath: `dne/../.wh.etc` is cleaned to `.wh.etc`
    // and removes etc.
    pub fn containerd_breakouts_whiteout_relative_path() -> Case {
        ok(
            vec![
                etc_passwd("all users").symlink("localetc", "/dne"),
                Layer::new().file("dne/../.wh.etc", "", 0o644),
            ],
            &["localetc -> /dne"],
        )
    }

    // containerd TestBreakouts/SymlinkOverridePath (the test's temp-dir name is `x` here): the
    // symlink replaces foo/ with its subtree, the second file goes through it to /tmp in the
    // root, and the directories replace the symlink again.
    pub fn containerd_breakouts_symlink_override_path() -> Case {
        ok(
            vec![Layer::new()
                .dir("foo/", 0o755)
                .dir("foo/tmp/", 0o755)
                .file("foo/tmp/breakout-x", [0, 1, 2], 0o644)
                .symlink("foo", "/")
                .file("foo/tmp/breakout-x", [3, 4, 5], 0o644)
                .dir("foo/", 0o755)
                .dir("foo/tmp/", 0o755)
                .file("foo/tmp/breakout-x", [6, 7, 8], 0o644)],
            &[
                "foo/",
                "foo/tmp/",
                "foo/tmp/breakout-x = \x06\x07\x08",
                "tmp/",
                "tmp/breakout-x = \x03\x04\x05",
            ],
        )
    }

    // containerd TestBreakouts/HardlinkSymlinkBeforeCreateTarget: a hard link to a symlink is
    // the symlink (link(2) does not follow), made before the file it points to exists.
    pub fn containerd_breakouts_hardlink_symlink_before_create_target() -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .symlink("localpasswd", "/etc/passwd")
                .hardlink("localpasswd-dup", "localpasswd")
                .file("/etc/passwd", "after", 0o644)],
            &[
                "etc/ 0770",
                "etc/passwd = after",
                "localpasswd -> /etc/passwd",
                "localpasswd-dup -> /etc/passwd",
            ],
        )
        .linked(&["localpasswd", "localpasswd-dup"])
    }

    fn hardlink_to_symlink(target: &str) -> Case {
        ok(
            vec![Layer::new()
                .dir("etc/", 0o770)
                .file("/etc/passwd", "inside", 0o644)
                .symlink("passwdlink", target)
                .hardlink("localpasswd", "/passwdlink")],
            &[
                "etc/ 0770",
                "etc/passwd = inside",
                &format!("localpasswd -> {target}"),
                &format!("passwdlink -> {target}"),
            ],
        )
        .linked(&["localpasswd", "passwdlink"])
    }

    // containerd TestBreakouts/HardlinkSymlinkRelative
    pub fn containerd_breakouts_hardlink_symlink_relative() -> Case {
        hardlink_to_symlink("../../../../../etc/passwd")
    }

    // containerd TestBreakouts/HardlinkSymlinkAbsolute
    pub fn containerd_breakouts_hardlink_symlink_absolute() -> Case {
        hardlink_to_symlink("/etc/passwd")
    }

    // containerd TestBreakouts/HardlinkSymlinkChmod: the two host files of the test (a 0400
    // file and a symlink's absolute name, outside the root) become names inside the root: the
    // symlink lands at /td/…, the hard link to it is a second name of the symlink, and nothing
    // is chmod-ed.
    pub fn containerd_breakouts_hardlink_symlink_chmod() -> Case {
        ok(
            vec![Layer::new()
                .symlink("/td/also-exists-outside-root", "/td/perm400")
                .hardlink("sketchylink", "/td/also-exists-outside-root")],
            &[
                "sketchylink -> /td/perm400",
                "td/",
                "td/also-exists-outside-root -> /td/perm400",
            ],
        )
        .linked(&["sketchylink", "td/also-exists-outside-root"])
    }

    // ---- containerd pkg/archive, other tests ------------------------------------------------

    // containerd TestApplyTar/DirectoryCreation: missing parents are created 0755.
    pub fn containerd_apply_tar_directory_creation() -> Case {
        ok(
            vec![
                Layer::new().dir("etc/", 0o755),
                Layer::new()
                    .dir("/etc/subdir/", 0o755)
                    .dir("/etc/subdir2//", 0o755)
                    .dir("/etc/subdir2/more/", 0o755)
                    .dir("/other/noparent-1/1/", 0o755)
                    .dir("/other/noparent-2/2//", 0o755),
            ],
            &[
                "etc/",
                "etc/subdir/",
                "etc/subdir2/",
                "etc/subdir2/more/",
                "other/",
                "other/noparent-1/",
                "other/noparent-1/1/",
                "other/noparent-2/",
                "other/noparent-2/2/",
            ],
        )
    }

    /// The gzip blob of containerd's (and moby's) TestPrefixHeaderReadable, written by a Go ≤ 1.7
    /// `archive/tar` that put a ustar prefix into a GNU header (with a base-256 uid).
    const PREFIX_HEADER_GZ: &[u8] = b"\
        \x1f\x8b\x08\x08\x44\x21\x68\x59\x00\x03\x74\x2e\x74\x61\x72\x00\x4b\xcb\xcf\x67\
        \xa0\x35\x30\x80\x00\x86\x06\x10\x47\x01\xc1\x37\x40\x00\x54\xb6\xb1\xa1\xa9\x99\
        \x09\x48\x25\x1d\x40\x69\x71\x49\x62\x91\x02\xe5\x76\xa1\x79\x84\x21\x91\xd6\x80\
        \x72\xaf\x8f\x82\x51\x30\x0a\x46\x36\x00\x00\xf0\x1c\x1e\x95\x00\x06\x00\x00";

    // containerd TestPrefixHeaderReadable (moby has it too): Go's reader sees that the GNU
    // atime/ctime fields do not parse and reads them as the ustar prefix, so the file is
    // `a…a/foo` (97 `a`s: 100 - len("foo")). The entry has mode 0, uid 2097152 (base-256) and
    // mtime 0; the test applies it WithNoSameOwner, the header's owner is kept here.
    pub fn containerd_prefix_header_readable() -> Case {
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(PREFIX_HEADER_GZ)
            .read_to_end(&mut tar)
            .unwrap();
        let dir = "a".repeat(97);
        ok(
            vec![Layer::from_tar_bytes(tar)],
            &[
                &format!("{dir}/"),
                &format!("{dir}/foo 0000 2097152:0 t=0 ="),
            ],
        )
    }

    /// containerd's (and continuity's) `baseApplier`, as the differ writes it from scratch.
    fn base_applier() -> Layer {
        Layer::new()
            .dir("etc/", 0o755)
            .file("etc/hosts", "127.0.0.1 localhost", 0o644)
            .hardlink("etc/hosts.allow", "etc/hosts")
            .dir("home/", 0o755)
            .dir("home/derek/", 0o700)
            .dir("usr/", 0o755)
            .dir("usr/local/", 0o755)
            .dir("usr/local/lib/", 0o755)
            .file("usr/local/lib/libnothing.so", [0, 0], 0o755)
            .symlink("usr/local/lib/libnothing.so.2", "libnothing.so")
    }

    const BASE_TREE: &[&str] = &[
        "etc/",
        "etc/hosts = 127.0.0.1 localhost",
        "etc/hosts.allow = 127.0.0.1 localhost",
        "home/",
        "home/derek/ 0700",
        "usr/",
        "usr/local/",
        "usr/local/lib/",
        "usr/local/lib/libnothing.so 0755 = \0\0",
        "usr/local/lib/libnothing.so.2 -> libnothing.so",
    ];

    fn with_base(lines: &[&str]) -> Vec<String> {
        BASE_TREE
            .iter()
            .chain(lines)
            .map(|l| l.to_string())
            .collect()
    }

    fn relative_symlinks(links: &[(&str, &str)]) -> Case {
        let mut layer = base_applier();
        let mut lines = Vec::new();
        for (name, target) in links {
            layer = layer.symlink(name, target);
            lines.push(format!("{name} -> {target}"));
        }
        let lines = with_base(&lines.iter().map(String::as_str).collect::<Vec<_>>());
        ok(
            vec![layer],
            &lines.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .linked(&["etc/hosts", "etc/hosts.allow"])
    }

    // containerd TestRelativeSymlinks (1st applier): symlinks whose targets climb out are
    // stored as written.
    pub fn containerd_relative_symlinks_other_etc_updown() -> Case {
        relative_symlinks(&[
            ("home/derek/etc", "../../etc"),
            ("home/derek/other", "../other"),
            ("home/derek/updown", "up/../../other"),
        ])
    }

    // containerd TestRelativeSymlinks (2nd applier)
    pub fn containerd_relative_symlinks_deep_breakout() -> Case {
        relative_symlinks(&[("home/derek/breakout", "../../../breakout")])
    }

    // containerd TestRelativeSymlinks (3rd applier)
    pub fn containerd_relative_symlinks_root_breakout() -> Case {
        relative_symlinks(&[("breakout", "../../breakout")])
    }

    // containerd TestRelativeSymlinks (4th applier)
    pub fn containerd_relative_symlinks_up_and_out() -> Case {
        relative_symlinks(&[("breakout", "etc/../../upandout")])
    }

    // containerd TestRelativeSymlinks (5th applier)
    pub fn containerd_relative_symlinks_down_and_out() -> Case {
        relative_symlinks(&[("home/breakout", "derek/../../../downandout")])
    }

    // containerd TestRelativeSymlinks (6th applier)
    pub fn containerd_relative_symlinks_localetc() -> Case {
        relative_symlinks(&[("localetc", "/etc")])
    }

    // containerd TestSymlinks (1st pair): the second layer is the diff (symlinks replacing and
    // adding symlinks).
    pub fn containerd_symlinks_replace_relative_by_absolute() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bin/", 0o755)
                    .file("bin/superbinary", [0, 0], 0o755)
                    .symlink("bin/other1", "../bin/superbinary"),
                Layer::new()
                    .dir("bin/", 0o755)
                    .symlink("bin/other1", "/bin/superbinary")
                    .symlink("bin/other2", "../bin/superbinary")
                    .symlink("bin/other3", "superbinary"),
            ],
            &[
                "bin/",
                "bin/other1 -> /bin/superbinary",
                "bin/other2 -> ../bin/superbinary",
                "bin/other3 -> superbinary",
                "bin/superbinary 0755 = \0\0",
            ],
        )
    }

    // containerd TestSymlinks (2nd pair)
    pub fn containerd_symlinks_to_absolute_symlink() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bin/", 0o755)
                    .dir("sbin/", 0o755)
                    .file("sbin/superbinary", [0, 0], 0o755)
                    .symlink("bin/superbinary", "/sbin/superbinary")
                    .symlink("bin/other1", "../bin/superbinary"),
                Layer::new()
                    .dir("bin/", 0o755)
                    .symlink("bin/other1", "/bin/superbinary")
                    .symlink("bin/other2", "superbinary"),
            ],
            &[
                "bin/",
                "bin/other1 -> /bin/superbinary",
                "bin/other2 -> superbinary",
                "bin/superbinary -> /sbin/superbinary",
                "sbin/",
                "sbin/superbinary 0755 = \0\0",
            ],
        )
    }

    // containerd TestSymlinks (3rd pair)
    pub fn containerd_symlinks_to_relative_symlink() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bin/", 0o755)
                    .dir("sbin/", 0o755)
                    .file("sbin/superbinary", [0, 0], 0o755)
                    .symlink("bin/superbinary", "../sbin/superbinary")
                    .symlink("bin/other1", "../bin/superbinary"),
                Layer::new()
                    .dir("bin/", 0o755)
                    .symlink("bin/other1", "/bin/superbinary"),
            ],
            &[
                "bin/",
                "bin/other1 -> /bin/superbinary",
                "bin/superbinary -> ../sbin/superbinary",
                "sbin/",
                "sbin/superbinary 0755 = \0\0",
            ],
        )
    }

    // containerd TestSymlinks (4th pair)
    pub fn containerd_symlinks_replace_both() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bin/", 0o755)
                    .file("bin/actualbinary", [0, 0], 0o755)
                    .symlink("bin/superbinary", "actualbinary")
                    .symlink("bin/other1", "../bin/superbinary")
                    .symlink("bin/other2", "superbinary"),
                Layer::new()
                    .dir("bin/", 0o755)
                    .symlink("bin/other1", "/bin/superbinary")
                    .symlink("bin/other2", "superbinary"),
            ],
            &[
                "bin/",
                "bin/actualbinary 0755 = \0\0",
                "bin/other1 -> /bin/superbinary",
                "bin/other2 -> superbinary",
                "bin/superbinary -> actualbinary",
            ],
        )
    }

    // containerd TestSymlinks (5th pair): a directory replaces a lower symlink.
    pub fn containerd_symlinks_directory_replaces_symlink() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bin/", 0o755)
                    .file("bin/actualbinary", [0, 0], 0o755)
                    .symlink("bin/myapp", "actualbinary"),
                Layer::new().dir("bin/", 0o755).dir("bin/myapp/", 0o755),
            ],
            &["bin/", "bin/actualbinary 0755 = \0\0", "bin/myapp/"],
        )
    }

    // containerd TestDiffTar/ParentInclusion: state a, then the diff the test expects.
    pub fn containerd_diff_tar_parent_inclusion() -> Case {
        ok(
            vec![
                Layer::new().dir("d1/", 0o755).dir("d2/", 0o770),
                Layer::new()
                    .dir("d1/", 0o755)
                    .dir("d1/d/", 0o700)
                    .dir("d2/", 0o770)
                    .file("d2/f", "ok", 0o644),
            ],
            &["d1/", "d1/d/ 0700", "d2/ 0770", "d2/f = ok"],
        )
    }

    // containerd TestDiffTar/HardlinkParentInclusion: lower names replaced by hard links to
    // new files, whiteouts of lower hard links.
    pub fn containerd_diff_tar_hardlink_parent_inclusion() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o755)
                    .file("d1/f1", "link me", 0o644)
                    .dir("d2/", 0o755)
                    .file("d2/f1", "link me", 0o644)
                    .dir("d3/", 0o755)
                    .dir("d4/", 0o755)
                    .file("d4/f1", "link me", 0o644)
                    .dir("d5/", 0o755)
                    .file("d5/f1", "link me", 0o644)
                    .dir("d6/", 0o755)
                    .hardlink("d6/l1", "d1/f1")
                    .hardlink("d6/l2", "d5/f1"),
                Layer::new()
                    .dir("d2/", 0o755)
                    .file("d2/l1", "link me", 0o644)
                    .dir("d1/", 0o755)
                    .hardlink("d1/f1", "d2/l1")
                    .dir("d3/", 0o755)
                    .file("d3/l1", "link me", 0o644)
                    .dir("d4/", 0o755)
                    .hardlink("d4/f1", "d3/l1")
                    .dir("d6/", 0o755)
                    .whiteout("d6/l1")
                    .whiteout("d6/l2"),
            ],
            &[
                "d1/",
                "d1/f1 = link me",
                "d2/",
                "d2/f1 = link me",
                "d2/l1 = link me",
                "d3/",
                "d3/l1 = link me",
                "d4/",
                "d4/f1 = link me",
                "d5/",
                "d5/f1 = link me",
                "d6/",
            ],
        )
        .linked(&["d1/f1", "d2/l1"])
        .linked(&["d3/l1", "d4/f1"])
    }

    // containerd TestDiffTar/UpdateDirectoryPermission
    pub fn containerd_diff_tar_update_directory_permission() -> Case {
        ok(
            vec![
                Layer::new().dir("d1/", 0o755).dir("d2/", 0o770),
                Layer::new()
                    .dir("d1/", 0o777)
                    .dir("d1/d/", 0o700)
                    .dir("d2/", 0o770)
                    .file("d2/f", "ok", 0o644),
            ],
            &["d1/ 0777", "d1/d/ 0700", "d2/ 0770", "d2/f = ok"],
        )
    }

    // containerd TestDiffTar/HardlinkUpdatedParent
    pub fn containerd_diff_tar_hardlink_updated_parent() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o755)
                    .file("d1/f1", "link me", 0o644)
                    .dir("d2/", 0o755)
                    .file("d2/f1", "link me", 0o644)
                    .dir("d3/", 0o755)
                    .file("d3/f1", "link me", 0o644)
                    .dir("d4/", 0o755),
                Layer::new()
                    .dir("d1/", 0o777)
                    .dir("d2/", 0o755)
                    .file("d2/l1", "link me", 0o644)
                    .hardlink("d1/f1", "d2/l1")
                    .dir("d4/", 0o777)
                    .file("d4/l1", "link me", 0o644)
                    .dir("d3/", 0o755)
                    .hardlink("d3/f1", "d4/l1"),
            ],
            &[
                "d1/ 0777",
                "d1/f1 = link me",
                "d2/",
                "d2/f1 = link me",
                "d2/l1 = link me",
                "d3/",
                "d3/f1 = link me",
                "d4/ 0777",
                "d4/l1 = link me",
            ],
        )
        .linked(&["d1/f1", "d2/l1"])
        .linked(&["d3/f1", "d4/l1"])
    }

    // containerd TestDiffTar/WhiteoutIncludesParents
    pub fn containerd_diff_tar_whiteout_includes_parents() -> Case {
        let mut lower = Layer::new();
        for d in ["d1", "d2", "d3", "d4", "d5"] {
            lower = lower
                .dir(format!("{d}/"), 0o755)
                .file(format!("{d}/f1"), "content", 0o644);
            if d == "d2" {
                lower = lower.file("d2/f2", "content", 0o644);
            }
        }
        ok(
            vec![
                lower,
                Layer::new()
                    .dir("d1/", 0o755)
                    .whiteout("d1/f1")
                    .dir("d2/", 0o755)
                    .whiteout("d2/f1")
                    .file("d2/f2", "content", 0o777)
                    .dir("d3/", 0o755)
                    .whiteout("d3/f1")
                    .file("d3/f2", "content", 0o644)
                    .dir("d4/", 0o755)
                    .file("d4/f0", "content", 0o644)
                    .whiteout("d4/f1")
                    .whiteout("d5"),
            ],
            &[
                "d1/",
                "d2/",
                "d2/f2 0777 = content",
                "d3/",
                "d3/f2 = content",
                "d4/",
                "d4/f0 = content",
            ],
        )
    }

    // containerd TestDiffTar/WhiteoutParentRemoval
    pub fn containerd_diff_tar_whiteout_parent_removal() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o755)
                    .dir("d2/", 0o755)
                    .file("d2/f1", "content", 0o644),
                Layer::new().whiteout("d1").whiteout("d2").dir("d3/", 0o755),
            ],
            &["d3/"],
        )
    }

    // containerd applyNaive (no test of its own; the rule SymlinkOverridePath relies on): an
    // entry that is not a directory replaces a directory of its own layer with everything the
    // layer wrote beneath it (`os.RemoveAll`).
    pub fn containerd_apply_naive_directory_replaced_by_file_in_its_layer() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d/", 0o755)
                    .file("d/old", "o", 0o644)
                    .file("keep", "k", 0o644),
                Layer::new()
                    .dir("d/", 0o700)
                    .dir("d/sub/", 0o755)
                    .file("d/sub/x", "x", 0o644)
                    .file("d/y", "y", 0o644)
                    .file("d", "now a file", 0o640),
            ],
            &["d 0640 = now a file", "keep = k"],
        )
    }

    // ---- continuity fstest FSSuite (containerd TestDiffApply, TestOverlayApply) --------------
    // Each applier is a layer, written as containerd's differ writes the change (parents of
    // changed entries included, whiteouts for removals, hard links to a name of the inode).

    // continuity FSSuite/Basic
    pub fn continuity_fssuite_basic() -> Case {
        ok(
            vec![
                base_applier(),
                Layer::new()
                    .dir("etc/", 0o755)
                    .file("etc/badfile", "", 0o666)
                    .file("etc/fstab", "/dev/sda1\t/\text4\tdefaults 1 1\n", 0o600)
                    .file("etc/hosts", "127.0.0.1 localhost.localdomain", 0o644)
                    .hardlink("etc/hosts.allow", "etc/hosts")
                    .dir("home/derek/", 0o700)
                    .file("home/derek/.zshrc", "#ZSH is just better\n", 0o640),
                Layer::new()
                    .dir("etc/", 0o755)
                    .whiteout("etc/badfile")
                    .dir("home/", 0o755)
                    .whiteout("home/derek")
                    .dir("home/notderek/", 0o700)
                    .file("home/notderek/.zshrc", "#ZSH is just better\n", 0o640),
                Layer::new()
                    .dir("etc/", 0o755)
                    .whiteout("etc/hosts.allow")
                    .whiteout("usr"),
                Layer::new()
                    .dir("etc/", 0o755)
                    .file("etc/hosts.allow", "127.0.0.1 localhost.localdomain", 0o644)
                    .hardlink("etc/hosts", "etc/hosts.allow")
                    .dir("home/", 0o755)
                    .whiteout("home/notderek")
                    .dir("home/derek/", 0o700)
                    .file("home/derek/.bashrc", "#not going away\n", 0o640),
            ],
            &[
                "etc/",
                "etc/fstab 0600 = /dev/sda1\t/\text4\tdefaults 1 1\n",
                "etc/hosts = 127.0.0.1 localhost.localdomain",
                "etc/hosts.allow = 127.0.0.1 localhost.localdomain",
                "home/",
                "home/derek/ 0700",
                "home/derek/.bashrc 0640 = #not going away\n",
            ],
        )
        .linked(&["etc/hosts", "etc/hosts.allow"])
    }

    // continuity FSSuite/Deletion
    pub fn continuity_fssuite_deletion() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("lib/", 0o700)
                    .file("lib/hidden", "", 0o644)
                    .dir("test/", 0o755)
                    .dir("test/somedir/", 0o755),
                Layer::new()
                    .dir("lib/", 0o700)
                    .whiteout("lib/hidden")
                    .file("lib/not-hidden", "", 0o644)
                    .dir("test/", 0o755)
                    .file("test/a", "", 0o644)
                    .file("test/b", "", 0o644)
                    .dir("test/otherdir/", 0o755)
                    .file("test/otherdir/.empty", "", 0o644),
                Layer::new()
                    .dir("lib/", 0o700)
                    .file("lib/newfile", "", 0o644)
                    .dir("test/", 0o755)
                    .whiteout("test/a")
                    .whiteout("test/b")
                    .whiteout("test/otherdir"),
            ],
            &[
                "lib/ 0700",
                "lib/newfile =",
                "lib/not-hidden =",
                "test/",
                "test/somedir/",
            ],
        )
    }

    // continuity FSSuite/Update
    pub fn continuity_fssuite_update() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o755)
                    .file("d1/f1", "something...", 0o644)
                    .file("d1/f2", "else...", 0o644)
                    .file("d1/f3", "entirely...", 0o644)
                    .dir("d2/", 0o700),
                Layer::new()
                    .dir("d1/", 0o755)
                    .file("d1/f1", "file content of a different length", 0o664)
                    .file("d1/f2", "else...", 0o766)
                    .file("d1/f3", "updated content", 0o664)
                    .dir("d2/", 0o777),
            ],
            &[
                "d1/",
                "d1/f1 0664 = file content of a different length",
                "d1/f2 0766 = else...",
                "d1/f3 0664 = updated content",
                "d2/ 0777",
            ],
        )
    }

    // continuity FSSuite/DirectoryPermission
    pub fn continuity_fssuite_directory_permission() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o700)
                    .dir("d2/", 0o751)
                    .dir("d3/", 0o777),
                Layer::new()
                    .dir("d1/", 0o700)
                    .dir("d1/d/", 0o700)
                    .file("d1/d/f", "irrelevant", 0o644)
                    .file("d1/f", "irrelevant", 0o644)
                    .dir("d2/", 0o751)
                    .file("d2/f", "irrelevant", 0o644)
                    .dir("d3/", 0o777)
                    .file("d3/f", "irrelevant", 0o644),
            ],
            &[
                "d1/ 0700",
                "d1/d/ 0700",
                "d1/d/f = irrelevant",
                "d1/f = irrelevant",
                "d2/ 0751",
                "d2/f = irrelevant",
                "d3/ 0777",
                "d3/f = irrelevant",
            ],
        )
    }

    // continuity FSSuite/ParentDirectoryPermission, with the diff of TestOverlayApplyNoParents
    // (no parent directory entries): the lower directories keep their modes.
    pub fn continuity_fssuite_parent_directory_permission() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("d1/", 0o700)
                    .dir("d1/a/", 0o700)
                    .dir("d1/a/b/", 0o700)
                    .dir("d1/a/b/c/", 0o700)
                    .file("d1/a/b/f", "content1", 0o644)
                    .dir("d2/", 0o751)
                    .dir("d2/a/", 0o751)
                    .dir("d2/a/b/", 0o751)
                    .dir("d2/a/b/c/", 0o751)
                    .file("d2/a/b/f", "content1", 0o644),
                Layer::new()
                    .file("d1/a/b/f", "content1", 0o644)
                    .file("d2/a/b/f", "content2", 0o644),
            ],
            &[
                "d1/ 0700",
                "d1/a/ 0700",
                "d1/a/b/ 0700",
                "d1/a/b/c/ 0700",
                "d1/a/b/f = content1",
                "d2/ 0751",
                "d2/a/ 0751",
                "d2/a/b/ 0751",
                "d2/a/b/c/ 0751",
                "d2/a/b/f = content2",
            ],
        )
    }

    /// continuity's base, then /etc/hosts rewritten in place (its hard link follows).
    fn hosts_rewritten() -> Vec<Layer> {
        vec![
            base_applier(),
            Layer::new()
                .dir("etc/", 0o755)
                .file("etc/hosts", "127.0.0.1 localhost.localdomain", 0o644)
                .hardlink("etc/hosts.allow", "etc/hosts"),
        ]
    }

    fn base_with_new_hosts(extra: &[&str]) -> Vec<String> {
        let mut lines: Vec<String> = BASE_TREE
            .iter()
            .filter(|l| !l.starts_with("etc/hosts"))
            .map(|l| l.to_string())
            .collect();
        lines.extend(extra.iter().map(|l| l.to_string()));
        lines
    }

    fn lines_of(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }

    // continuity FSSuite/HardlinkUnmodified: a new name for a lower inode that has two names.
    pub fn continuity_fssuite_hardlink_unmodified() -> Case {
        let mut layers = hosts_rewritten();
        layers.push(
            Layer::new()
                .dir("etc/", 0o755)
                .hardlink("etc/hosts.deny", "etc/hosts"),
        );
        let lines = base_with_new_hosts(&[
            "etc/hosts = 127.0.0.1 localhost.localdomain",
            "etc/hosts.allow = 127.0.0.1 localhost.localdomain",
            "etc/hosts.deny = 127.0.0.1 localhost.localdomain",
        ]);
        ok(layers, &lines_of(&lines)).linked(&["etc/hosts", "etc/hosts.allow", "etc/hosts.deny"])
    }

    // continuity FSSuite/HardlinkBeforeUnmodified: the new name sorts before the target.
    pub fn continuity_fssuite_hardlink_before_unmodified() -> Case {
        let mut layers = hosts_rewritten();
        layers.push(
            Layer::new()
                .dir("etc/", 0o755)
                .hardlink("etc/before-hosts", "etc/hosts"),
        );
        let lines = base_with_new_hosts(&[
            "etc/before-hosts = 127.0.0.1 localhost.localdomain",
            "etc/hosts = 127.0.0.1 localhost.localdomain",
            "etc/hosts.allow = 127.0.0.1 localhost.localdomain",
        ]);
        ok(layers, &lines_of(&lines)).linked(&["etc/before-hosts", "etc/hosts", "etc/hosts.allow"])
    }

    // continuity FSSuite/HardlinkBeforeModified: /etc/hosts is a new inode (removed and
    // created) with a new name; its old name hosts.allow keeps the old content.
    pub fn continuity_fssuite_hardlink_before_modified() -> Case {
        let mut layers = hosts_rewritten();
        layers.push(
            Layer::new()
                .dir("etc/", 0o755)
                .file("etc/before-hosts", "127.0.0.1 localhost", 0o644)
                .hardlink("etc/hosts", "etc/before-hosts"),
        );
        let lines = base_with_new_hosts(&[
            "etc/before-hosts = 127.0.0.1 localhost",
            "etc/hosts = 127.0.0.1 localhost",
            "etc/hosts.allow = 127.0.0.1 localhost.localdomain",
        ]);
        ok(layers, &lines_of(&lines)).linked(&["etc/before-hosts", "etc/hosts"])
    }

    // ---- continuity fs TestRootPath (the resolver of containerd's applier) -------------------
    // The symlinks are a lower layer (a test's `scope`, where it has one, is the image root);
    // RootPath's check "U resolves to R" becomes a file written at U/x in the next layer, which
    // must land at R/x (the applier resolves a name's parents, never its last component).

    // continuity TestRootPath/SymlinkAbsolute
    pub fn continuity_root_path_symlink_absolute() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("fs/", 0o755)
                    .dir("fs/a/", 0o755)
                    .symlink("fs/a/d", "/b"),
                Layer::new().file("fs/a/d/c/data", "data", 0o644),
            ],
            &[
                "b/",
                "b/c/",
                "b/c/data = data",
                "fs/",
                "fs/a/",
                "fs/a/d -> /b",
            ],
        )
    }

    // continuity TestRootPath/SymlinkRelativePath
    pub fn continuity_root_path_symlink_relative_path() -> Case {
        ok(
            vec![
                Layer::new().dir("fs/", 0o755).symlink("fs/i", "a"),
                Layer::new().file("fs/i/x", "x", 0o644),
            ],
            &["fs/", "fs/a/", "fs/a/x = x", "fs/i -> a"],
        )
    }

    // continuity TestRootPath/SymlinkLastLink: RootPath follows a last link; the applier does
    // not, so a file at that name replaces the symlink (and /b never appears).
    pub fn continuity_root_path_symlink_last_link() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("fs/", 0o755)
                    .dir("fs/a/", 0o755)
                    .symlink("fs/a/d", "/b"),
                Layer::new().file("fs/a/d", "replaced", 0o644),
            ],
            &["fs/", "fs/a/", "fs/a/d = replaced"],
        )
    }

    // continuity TestRootPath/SymlinkRelativeLinkChangeScope (first check)
    pub fn continuity_root_path_relative_link_change_scope() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("fs/", 0o755)
                    .dir("fs/a/", 0o755)
                    .symlink("fs/a/e", "../b"),
                Layer::new().file("fs/a/e/c/data", "data", 0o644),
            ],
            &[
                "fs/",
                "fs/a/",
                "fs/a/e -> ../b",
                "fs/b/",
                "fs/b/c/",
                "fs/b/c/data = data",
            ],
        )
    }

    // continuity TestRootPath/SymlinkRelativeLinkChangeScope (second check, scope fs/a): `..`
    // stops at the root.
    pub fn continuity_root_path_relative_link_change_scope_scoped() -> Case {
        ok(
            vec![
                Layer::new().symlink("e", "../b"),
                Layer::new().file("e/x", "x", 0o644),
            ],
            &["b/", "b/x = x", "e -> ../b"],
        )
    }

    // continuity TestRootPath/SymlinkDeepRelativeLinkChangeScope
    pub fn continuity_root_path_deep_relative_link_change_scope() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("fs/", 0o755)
                    .dir("fs/a/", 0o755)
                    .symlink("fs/a/f", "../../../../test"),
                Layer::new().file("fs/a/f/x", "x", 0o644),
            ],
            &[
                "fs/",
                "fs/a/",
                "fs/a/f -> ../../../../test",
                "test/",
                "test/x = x",
            ],
        )
    }

    // continuity TestRootPath/SymlinkRelativeLinkChain
    pub fn continuity_root_path_relative_link_chain() -> Case {
        let up = "../../../../../../../../../../../../root";
        ok(
            vec![
                Layer::new()
                    .dir("fs/", 0o755)
                    .dir("fs/b/", 0o755)
                    .symlink("fs/b/h", "../g")
                    .symlink("fs/g", up),
                Layer::new().file("fs/b/h/x", "x", 0o644),
            ],
            &[
                "fs/",
                "fs/b/",
                "fs/b/h -> ../g",
                &format!("fs/g -> {up}"),
                "root/",
                "root/x = x",
            ],
        )
    }

    // continuity TestRootPath/SymlinkBreakoutPath (scope fs/j)
    pub fn continuity_root_path_breakout_path() -> Case {
        ok(
            vec![
                Layer::new().symlink("k", "../i/a"),
                Layer::new().file("k/x", "x", 0o644),
            ],
            &["i/", "i/a/", "i/a/x = x", "k -> ../i/a"],
        )
    }

    fn to_root(target: &str) -> Case {
        ok(
            vec![
                Layer::new().symlink("foo", target),
                Layer::new().file("foo/x", "x", 0o644),
            ],
            &[&format!("foo -> {target}"), "x = x"],
        )
    }

    // continuity TestRootPath/SymlinkToRoot
    pub fn continuity_root_path_symlink_to_root() -> Case {
        to_root("/")
    }

    // continuity TestRootPath/SymlinkSlashDotdot
    pub fn continuity_root_path_symlink_slash_dotdot() -> Case {
        to_root("/../../")
    }

    // continuity TestRootPath/SymlinkDotdot
    pub fn continuity_root_path_symlink_dotdot() -> Case {
        to_root("../../")
    }

    // continuity TestRootPath/SymlinkRelativePath2
    pub fn continuity_root_path_symlink_relative_path2() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("bar/", 0o755)
                    .symlink("bar/foo", "baz/target"),
                Layer::new().file("bar/foo/x", "x", 0o644),
            ],
            &[
                "bar/",
                "bar/baz/",
                "bar/baz/target/",
                "bar/baz/target/x = x",
                "bar/foo -> baz/target",
            ],
        )
    }

    // continuity TestRootPath/SymlinkSelf (scope root): errTooManyLinks.
    pub fn continuity_root_path_symlink_self() -> Case {
        symlink_loop(
            vec![
                Layer::new().symlink("foo", "foo"),
                Layer::new().file("foo/x", "x", 0o644),
            ],
            &["foo/x", "layer 1"],
        )
    }

    // continuity TestRootPath/SymlinkCircular
    pub fn continuity_root_path_symlink_circular() -> Case {
        symlink_loop(
            vec![
                Layer::new().symlink("bar", "foo").symlink("foo", "bar"),
                Layer::new().file("foo/x", "x", 0o644),
            ],
            &["foo/x", "layer 1"],
        )
    }

    // continuity TestRootPath/SymlinkCircularUnderRoot (scope root)
    pub fn continuity_root_path_symlink_circular_under_root() -> Case {
        symlink_loop(
            vec![
                Layer::new()
                    .symlink("bar", "baz")
                    .symlink("baz", "../bak")
                    .symlink("bak", "/bar"),
                Layer::new().file("bar/x", "x", 0o644),
            ],
            &["bar/x", "layer 1"],
        )
    }

    // continuity TestRootPath/SymlinkComplexChain (scope root, itself a symlink to root2 whose
    // content is the image here): a/b/c/x/y/z resolves to w/z.
    pub fn continuity_root_path_symlink_complex_chain() -> Case {
        ok(
            vec![
                Layer::new()
                    .symlink("a", "r/s")
                    .symlink("r", "../root/t")
                    .dir("root/", 0o755)
                    .dir("root/t/", 0o755)
                    .dir("root/t/s/", 0o755)
                    .symlink("root/t/s/b", "/../u")
                    .dir("u/", 0o755)
                    .symlink("u/c", ".")
                    .dir("u/x/", 0o755)
                    .symlink("u/x/y", "../v")
                    .symlink("u/v", "/../w"),
                Layer::new().file("a/b/c/x/y/z", "z", 0o644),
            ],
            &[
                "a -> r/s",
                "r -> ../root/t",
                "root/",
                "root/t/",
                "root/t/s/",
                "root/t/s/b -> /../u",
                "u/",
                "u/c -> .",
                "u/v -> /../w",
                "u/x/",
                "u/x/y -> ../v",
                "w/",
                "w/z = z",
            ],
        )
    }

    // continuity TestRootPath/SymlinkBreakoutNonExistent (scope root): a missing component is
    // taken as a plain name, so `/idontexist/..` is the root.
    pub fn continuity_root_path_breakout_non_existent() -> Case {
        ok(
            vec![
                Layer::new()
                    .symlink("slash", "/")
                    .symlink("sym", "/idontexist/../slash"),
                Layer::new().file("sym/file", "f", 0o644),
            ],
            &["file = f", "slash -> /", "sym -> /idontexist/../slash"],
        )
    }

    // continuity TestRootPath/SymlinkNoLexicalCleaning (scope root): a target's `..` applies to
    // where the symlink before it led (/foo/bar/.. is /foo), not lexically (which gives /baz).
    pub fn continuity_root_path_no_lexical_cleaning() -> Case {
        ok(
            vec![
                Layer::new()
                    .symlink("sym", "/foo/bar")
                    .symlink("hello", "/sym/../baz"),
                Layer::new().file("hello/x", "x", 0o644),
            ],
            &[
                "foo/",
                "foo/baz/",
                "foo/baz/x = x",
                "hello -> /sym/../baz",
                "sym -> /foo/bar",
            ],
        )
    }

    // ---- Our rule where continuity differs: Linux's 40 hops, not 255 -------------------------

    /// `s1 -> s2 -> … -> sN -> d` in one layer, a file at s1/x in the next.
    fn chain(n: usize) -> Vec<Layer> {
        let mut lower = Layer::new().dir("d/", 0o755);
        for i in 1..=n {
            let next = if i == n {
                "d".to_string()
            } else {
                format!("s{}", i + 1)
            };
            lower = lower.symlink(format!("s{i}"), next);
        }
        vec![lower, Layer::new().file("s1/x", "x", 0o644)]
    }

    // DESIGN.md rule (Linux MAXSYMLINKS): a chain of 40 symlinks resolves.
    pub fn rule_chain_of_40_symlinks_resolves() -> Case {
        let mut lines = vec!["d/".to_string(), "d/x = x".to_string()];
        for i in 1..=40 {
            let next = if i == 40 {
                "d".to_string()
            } else {
                format!("s{}", i + 1)
            };
            lines.push(format!("s{i} -> {next}"));
        }
        ok(chain(40), &lines_of(&lines))
    }

    // DESIGN.md rule (Linux MAXSYMLINKS): a 41st hop is an error naming the entry.
    pub fn rule_chain_of_41_symlinks_is_too_many() -> Case {
        symlink_loop(chain(41), &["s1/x", "layer 1"])
    }

    // ---- moby pkg/archive (before its move to moby/go-archive) -------------------------------
    // testBreakout puts a `victim` directory beside the destination; these run its headers
    // (TestApplyLayerInvalid* has the same headers through ApplyLayer).

    // moby TestUntarInvalidFilenames (1st)
    pub fn moby_untar_invalid_filenames_dotdot() -> Case {
        hostile(
            vec![Layer::new().file("../victim/dotdot", "", 0o644)],
            &["../victim/dotdot", "layer 0"],
        )
    }

    // moby TestUntarInvalidFilenames (2nd): moby and containerd clean `/../` to `/`; a `..`
    // that leaves the root is refused here wherever it is.
    pub fn moby_untar_invalid_filenames_slash_dotdot() -> Case {
        hostile(
            vec![Layer::new().file("/../victim/slash-dotdot", "", 0o644)],
            &["/../victim/slash-dotdot", "layer 0"],
        )
    }

    // moby TestUntarHardlinkToSymlink: symlink2 is a second name of the symlink.
    pub fn moby_untar_hardlink_to_symlink() -> Case {
        ok(
            vec![Layer::new()
                .symlink("symlink1", "regfile")
                .hardlink("symlink2", "symlink1")
                .file("regfile", "", 0o644)],
            &["regfile =", "symlink1 -> regfile", "symlink2 -> regfile"],
        )
        .linked(&["symlink1", "symlink2"])
    }

    // moby TestUntarInvalidHardlink (1st)
    pub fn moby_untar_invalid_hardlink_dotdot() -> Case {
        hostile(
            vec![Layer::new().hardlink("dotdot", "../victim/hello")],
            &["dotdot", "../victim/hello", "layer 0"],
        )
    }

    // moby TestUntarInvalidHardlink (2nd)
    pub fn moby_untar_invalid_hardlink_slash_dotdot() -> Case {
        hostile(
            vec![Layer::new().hardlink("slash-dotdot", "/../victim/hello")],
            &["slash-dotdot", "/../victim/hello", "layer 0"],
        )
    }

    fn loophole_hardlink(then: Layer) -> Case {
        let mut layer = Layer::new().hardlink("loophole-victim", "../victim");
        layer.entries.extend(then.entries);
        hostile(vec![layer], &["loophole-victim", "../victim", "layer 0"])
    }

    // moby TestUntarInvalidHardlink (3rd: write victim/file)
    pub fn moby_untar_invalid_hardlink_write_through() -> Case {
        loophole_hardlink(Layer::new().file("loophole-victim/file", "", 0o644))
    }

    // moby TestUntarInvalidHardlink (4th: read victim/hello by symlink)
    pub fn moby_untar_invalid_hardlink_then_symlink() -> Case {
        loophole_hardlink(Layer::new().symlink("symlink", "loophole-victim/hello"))
    }

    // moby TestUntarInvalidHardlink (5th: read victim/hello by hard link)
    pub fn moby_untar_invalid_hardlink_then_hardlink() -> Case {
        loophole_hardlink(Layer::new().hardlink("hardlink", "loophole-victim/hello"))
    }

    // moby TestUntarInvalidHardlink (6th: remove victim)
    pub fn moby_untar_invalid_hardlink_then_replace() -> Case {
        loophole_hardlink(Layer::new().file("loophole-victim", "", 0o644))
    }

    // moby TestUntarInvalidSymlink (1st): moby refuses a symlink whose target leaves the root;
    // here (as in containerd) a symlink is stored as written.
    pub fn moby_untar_invalid_symlink_dotdot() -> Case {
        ok(
            vec![Layer::new().symlink("dotdot", "../victim/hello")],
            &["dotdot -> ../victim/hello"],
        )
    }

    // moby TestUntarInvalidSymlink (2nd)
    pub fn moby_untar_invalid_symlink_slash_dotdot() -> Case {
        ok(
            vec![Layer::new().symlink("slash-dotdot", "/../victim/hello")],
            &["slash-dotdot -> /../victim/hello"],
        )
    }

    // moby TestUntarInvalidSymlink (3rd: write victim/file): the file goes to /victim in the
    // root.
    pub fn moby_untar_invalid_symlink_write_through() -> Case {
        ok(
            vec![Layer::new().symlink("loophole-victim", "../victim").file(
                "loophole-victim/file",
                "",
                0o644,
            )],
            &["loophole-victim -> ../victim", "victim/", "victim/file ="],
        )
    }

    // moby TestUntarInvalidSymlink (4th: symlink through symlink)
    pub fn moby_untar_invalid_symlink_then_symlink() -> Case {
        ok(
            vec![Layer::new()
                .symlink("loophole-victim", "../victim")
                .symlink("symlink", "loophole-victim/hello")],
            &[
                "loophole-victim -> ../victim",
                "symlink -> loophole-victim/hello",
            ],
        )
    }

    // moby TestUntarInvalidSymlink (5th: hard link through symlink): /victim/hello does not
    // exist in the root, so the link has no target.
    pub fn moby_untar_invalid_symlink_then_hardlink() -> Case {
        refused(
            vec![Layer::new()
                .symlink("loophole-victim", "../victim")
                .hardlink("hardlink", "loophole-victim/hello")],
            "HardlinkTargetMissing",
            &["hardlink", "hello"],
        )
    }

    // moby TestUntarInvalidSymlink (6th: remove victim): the file replaces the symlink.
    pub fn moby_untar_invalid_symlink_then_replace() -> Case {
        ok(
            vec![Layer::new().symlink("loophole-victim", "../victim").file(
                "loophole-victim",
                "",
                0o644,
            )],
            &["loophole-victim ="],
        )
    }

    // moby TestUntarInvalidSymlink (7th: victim/newdir/newfile through dir/loophole)
    pub fn moby_untar_invalid_symlink_nested() -> Case {
        ok(
            vec![Layer::new().symlink("dir/loophole", "../../victim").file(
                "dir/loophole/newdir/newfile",
                "",
                0o644,
            )],
            &[
                "dir/",
                "dir/loophole -> ../../victim",
                "victim/",
                "victim/newdir/",
                "victim/newdir/newfile =",
            ],
        )
    }

    // moby TestImpliedDirectoryPermissions: Go writes a zero typeflag as a file, or a directory
    // when the name ends in `/`; implied directories are 0755 (ImpliedDirectoryMode).
    pub fn moby_implied_directory_permissions() -> Case {
        ok(
            vec![Layer::new()
                .file("deeply/nested/and/implied", "", 0)
                .dir("explicit/", 0o644)
                .dir("explicit/permissions/", 0o600)
                .file("explicit/permissions/specified", "", 0o400)],
            &[
                "deeply/",
                "deeply/nested/",
                "deeply/nested/and/",
                "deeply/nested/and/implied 0000 =",
                "explicit/ 0644",
                "explicit/permissions/ 0600",
                "explicit/permissions/specified 0400 =",
            ],
        )
    }

    // moby TestUntarParentPathPermissions
    pub fn moby_untar_parent_path_permissions() -> Case {
        ok(
            vec![Layer::new().file("foo/bar", "", 0)],
            &["foo/", "foo/bar 0000 ="],
        )
    }

    // moby TestXGlobalNoParent: a PAX global header (Go names it foo/GlobalHead.0.0) creates
    // nothing, not even its parent.
    pub fn moby_x_global_no_parent() -> Case {
        let mut tar =
            raw::header(b"foo/GlobalHead.0.0", b'g', 0, 0o644, 0, 0, 0, b"", (0, 0)).to_vec();
        tar.extend(raw::end());
        ok(vec![Layer::from_tar_bytes(tar)], &[])
    }

    // moby TestChrootApplyDotDotFile: `..gitme` is a plain name.
    pub fn moby_chroot_apply_dot_dot_file() -> Case {
        ok(
            vec![Layer::new().file("..gitme", "", 0o644)],
            &["..gitme ="],
        )
    }

    /// moby's makeTestLayer: directories (names ending in `/`) 0700, empty files 0600.
    fn moby_layer(paths: &[&str]) -> Layer {
        paths.iter().fold(Layer::new(), |l, p| {
            if p.ends_with('/') {
                l.dir(p, 0o700)
            } else {
                l.file(p, "", 0o600)
            }
        })
    }

    fn moby_whiteouts(stages: usize) -> Vec<Layer> {
        let base = [
            ".baz",
            "bar/",
            "bar/bax",
            "bar/bay/",
            "baz",
            "foo/",
            "foo/.abc",
            "foo/.bcd/",
            "foo/.bcd/a",
            "foo/cde/",
            "foo/cde/def",
            "foo/cde/efg",
            "foo/fgh",
            "foobar",
        ];
        let changes: [&[&str]; 4] = [
            &base,
            &[
                ".bay",
                ".wh.baz",
                "foo/",
                "foo/.bce",
                "foo/.wh..wh..opq",
                "foo/cde/",
                "foo/cde/efg",
            ],
            &[
                ".bay",
                ".wh..baz",
                ".wh.foobar",
                "foo/",
                "foo/.abc",
                "foo/.wh.cde",
                "bar/",
            ],
            &[".abc", ".wh..wh..opq", "foobar"],
        ];
        changes[..stages].iter().map(|c| moby_layer(c)).collect()
    }

    // moby TestApplyLayerWhiteouts (1st layer)
    pub fn moby_apply_layer_whiteouts_1() -> Case {
        ok(
            moby_whiteouts(1),
            &[
                ".baz 0600 =",
                "bar/ 0700",
                "bar/bax 0600 =",
                "bar/bay/ 0700",
                "baz 0600 =",
                "foo/ 0700",
                "foo/.abc 0600 =",
                "foo/.bcd/ 0700",
                "foo/.bcd/a 0600 =",
                "foo/cde/ 0700",
                "foo/cde/def 0600 =",
                "foo/cde/efg 0600 =",
                "foo/fgh 0600 =",
                "foobar 0600 =",
            ],
        )
    }

    // moby TestApplyLayerWhiteouts (2nd layer: a whiteout, foo/ opaque with new children)
    pub fn moby_apply_layer_whiteouts_2() -> Case {
        ok(
            moby_whiteouts(2),
            &[
                ".bay 0600 =",
                ".baz 0600 =",
                "bar/ 0700",
                "bar/bax 0600 =",
                "bar/bay/ 0700",
                "foo/ 0700",
                "foo/.bce 0600 =",
                "foo/cde/ 0700",
                "foo/cde/efg 0600 =",
                "foobar 0600 =",
            ],
        )
    }

    // moby TestApplyLayerWhiteouts (3rd layer: `.wh..baz` removes `.baz`)
    pub fn moby_apply_layer_whiteouts_3() -> Case {
        ok(
            moby_whiteouts(3),
            &[
                ".bay 0600 =",
                "bar/ 0700",
                "bar/bax 0600 =",
                "bar/bay/ 0700",
                "foo/ 0700",
                "foo/.abc 0600 =",
                "foo/.bce 0600 =",
            ],
        )
    }

    // moby TestApplyLayerWhiteouts (4th layer: the root made opaque)
    pub fn moby_apply_layer_whiteouts_4() -> Case {
        ok(moby_whiteouts(4), &[".abc 0600 =", "foobar 0600 ="])
    }

    // ---- umoci oci/layer ----------------------------------------------------------------------

    // umoci TestUnpackEntrySanitiseScoping/GarbagePrefix: umoci writes /../file as /file; a
    // name that leaves the root is refused here.
    pub fn umoci_sanitise_scoping_garbage_prefix() -> Case {
        hostile(
            vec![Layer::new().file("/../file", "container content", 0o644)],
            &["/../file", "layer 0"],
        )
    }

    // umoci TestUnpackEntrySanitiseScoping/DotDotPrefix
    pub fn umoci_sanitise_scoping_dotdot_prefix() -> Case {
        hostile(
            vec![Layer::new().file("../file", "container content", 0o644)],
            &["../file", "layer 0"],
        )
    }

    /// umoci's symlink scoping: a symlink `link` to `prefix` made before, then `link/file`.
    fn symlink_scoping(prefix: &str) -> Case {
        ok(
            vec![
                Layer::new().symlink("link", prefix),
                Layer::new().file("link/file", "container content", 0o644),
            ],
            &["file = container content", &format!("link -> {prefix}")],
        )
    }

    // umoci TestUnpackEntrySymlinkScoping/RootPrefix
    pub fn umoci_symlink_scoping_root_prefix() -> Case {
        symlink_scoping("/")
    }

    // umoci TestUnpackEntrySymlinkScoping/GarbagePrefix1
    pub fn umoci_symlink_scoping_garbage_prefix1() -> Case {
        symlink_scoping("/../")
    }

    // umoci TestUnpackEntrySymlinkScoping/GarbagePrefix2
    pub fn umoci_symlink_scoping_garbage_prefix2() -> Case {
        symlink_scoping("/../../../../../../../../../../../../../../../")
    }

    // umoci TestUnpackEntrySymlinkScoping/GarbagePrefix3
    pub fn umoci_symlink_scoping_garbage_prefix3() -> Case {
        symlink_scoping("/./.././.././.././.././.././.././.././.././../")
    }

    // umoci TestUnpackEntrySymlinkScoping/DotDotPrefix
    pub fn umoci_symlink_scoping_dotdot_prefix() -> Case {
        symlink_scoping("..")
    }

    // umoci TestUnpackEntryNonDirParent: the implied directory replaces the file of its own
    // layer (containerd's mkparent would fail with ENOTDIR).
    pub fn umoci_unpack_entry_non_dir_parent() -> Case {
        ok(
            vec![Layer::new()
                .file("nondir", "", 0o777)
                .file("nondir/foo/bar/baz", "", 0o777)],
            &[
                "nondir/",
                "nondir/foo/",
                "nondir/foo/bar/",
                "nondir/foo/bar/baz 0777 =",
            ],
        )
    }

    // umoci TestUnpackEntryParentDir
    pub fn umoci_unpack_entry_parent_dir() -> Case {
        ok(
            vec![Layer::new().file("a/b/c/file", "creating parentdirs", 0o644)],
            &["a/", "a/b/", "a/b/c/", "a/b/c/file = creating parentdirs"],
        )
    }

    /// umoci TestUnpackEntryWhiteout: `path` (a file, or a directory with children) exists with
    /// its parent's mtime set to 123; a whiteout removes it and leaves the parent's metadata.
    fn umoci_whiteout(path: &str, dir: bool) -> Case {
        let (raw_dir, raw_file) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => ("", path),
        };
        let mut lower = Layer::new().dir("./", 0o755);
        if raw_dir.is_empty() {
            lower = lower.with_mtime(123);
        }
        let mut lines = vec![if raw_dir.is_empty() { "/ t=123" } else { "/" }.to_string()];
        let mut at = 0;
        while let Some(i) = raw_dir[at..].find('/') {
            let d = &raw_dir[..at + i + 1];
            lower = lower.dir(d, 0o755);
            if d == raw_dir {
                lower = lower.with_mtime(123);
                lines.push(format!("{d} t=123"));
            } else {
                lines.push(d.to_string());
            }
            at += i + 1;
        }
        if dir {
            lower = lower
                .dir(format!("{path}/"), 0o755)
                .file(format!("{path}/file1"), "some value", 0o644)
                .file(format!("{path}/file2"), "some value", 0o644)
                .dir(format!("{path}/.subdir/"), 0o755)
                .file(format!("{path}/.subdir/file3"), "some value", 0o644);
        } else if !raw_file.is_empty() {
            lower = lower.file(path, "some value", 0o644);
        }
        let wh = format!("{raw_dir}.wh.{raw_file}");
        let layers = vec![lower, Layer::new().file(&wh, "", 0)];
        if raw_file.is_empty() {
            return invalid_whiteout(layers, &[&wh, "layer 1"]);
        }
        ok(layers, &lines_of(&lines)).with_dir_mtimes()
    }

    // umoci TestUnpackEntryWhiteout/EmptyWhiteoutName-Root
    pub fn umoci_whiteout_empty_name_root() -> Case {
        umoci_whiteout("", false)
    }

    // umoci TestUnpackEntryWhiteout/EmptyWhiteoutName
    pub fn umoci_whiteout_empty_name() -> Case {
        umoci_whiteout("some/path/", false)
    }

    // umoci TestUnpackEntryWhiteout/FileInRoot
    pub fn umoci_whiteout_file_in_root() -> Case {
        umoci_whiteout("rootpath", false)
    }

    // umoci TestUnpackEntryWhiteout/HiddenFileInRoot (`.wh..hiddenroot` is no metadata name)
    pub fn umoci_whiteout_hidden_file_in_root() -> Case {
        umoci_whiteout(".hiddenroot", false)
    }

    // umoci TestUnpackEntryWhiteout/FileInSubdir
    pub fn umoci_whiteout_file_in_subdir() -> Case {
        umoci_whiteout("some/path/file", false)
    }

    // umoci TestUnpackEntryWhiteout/HiddenFileInSubdir
    pub fn umoci_whiteout_hidden_file_in_subdir() -> Case {
        umoci_whiteout("another/path/.hiddenfile", false)
    }

    // umoci TestUnpackEntryWhiteout/DirInRoot
    pub fn umoci_whiteout_dir_in_root() -> Case {
        umoci_whiteout("rootpath", true)
    }

    // umoci TestUnpackEntryWhiteout/HiddenDirInRoot
    pub fn umoci_whiteout_hidden_dir_in_root() -> Case {
        umoci_whiteout(".hiddenroot", true)
    }

    // umoci TestUnpackEntryWhiteout/DirInSubdir
    pub fn umoci_whiteout_dir_in_subdir() -> Case {
        umoci_whiteout("some/path/dir", true)
    }

    // umoci TestUnpackEntryWhiteout/HiddenDirInSubdir
    pub fn umoci_whiteout_hidden_dir_in_subdir() -> Case {
        umoci_whiteout("another/path/.hiddendir", true)
    }

    /// umoci's tarFromDentry (mode 0777, no content) under test-subdir/: `kind` is `f`, `d`,
    /// `p` (fifo) or `-> TARGET`.
    fn dentry(layer: Layer, path: &str, kind: &str) -> Layer {
        let name = format!("test-subdir/{path}");
        match kind {
            "f" => layer.file(name, "", 0o777),
            "d" => layer.dir(name, 0o777),
            "p" => layer.fifo(name).with_mode(0o777),
            k => layer.symlink(name, k.strip_prefix("-> ").unwrap()),
        }
    }

    /// umoci TestUnpackOpaqueWhiteout: the lower entries, then a layer with the upper entries and
    /// test-subdir's opaque marker after them.
    fn umoci_opaque(entries: &[(&str, &str, bool)]) -> Vec<Layer> {
        let mut lower = Layer::new().dir("test-subdir/", 0o755);
        let mut upper = Layer::new();
        for &(path, kind, is_upper) in entries {
            if is_upper {
                upper = dentry(upper, path, kind);
            } else {
                lower = dentry(lower, path, kind);
            }
        }
        vec![lower, upper.opaque("test-subdir")]
    }

    const ONE_LEVEL: [(&str, &str); 4] = [
        ("file", "f"),
        ("link", "-> .."),
        ("badlink", "-> ./nothing"),
        ("fifo", "p"),
    ];

    const TWO_LEVEL: [(&str, &str); 8] = [
        ("file", "f"),
        ("link", "-> .."),
        ("badlink", "-> ./nothing"),
        ("dir", "d"),
        ("dir/file", "f"),
        ("dir/link", "-> ../badlink"),
        (
            "dir/verybadlink",
            "-> ../../../../../../../../../../../../etc/shadow",
        ),
        (
            "dir/verybadlink2",
            "-> /../../../../../../../../../../../../etc/shadow",
        ),
    ];

    const MULTI_LEVEL: [(&str, &str); 20] = [
        ("level1_file", "f"),
        ("level1_link", "-> .."),
        ("level1a", "d"),
        ("level1a/level2_file", "f"),
        ("level1a/level2_link", "-> ../../../"),
        ("level1a/level2a", "d"),
        ("level1a/level2a/level3_fileA", "f"),
        ("level1a/level2a/level3_fileB", "f"),
        ("level1a/level2b", "d"),
        ("level1a/level2b/level3_fileA", "f"),
        ("level1a/level2b/level3_fileB", "f"),
        ("level1a/level2b/level3", "d"),
        ("level1a/level2b/level3/level4", "d"),
        ("level1a/level2b/level3/level4", "d"),
        ("level1a/level2b/level3_fileA", "f"),
        ("level1b", "d"),
        ("level1b/level2_fileA", "f"),
        ("level1b/level2_fileB", "f"),
        ("level1b/level2", "d"),
        ("level1b/level2/level3_file", "f"),
    ];

    fn all_lower(
        entries: &[(&'static str, &'static str)],
    ) -> Vec<(&'static str, &'static str, bool)> {
        entries.iter().map(|&(p, k)| (p, k, false)).collect()
    }

    fn marked(
        entries: &[(&'static str, &'static str)],
        upper: &[bool],
    ) -> Vec<(&'static str, &'static str, bool)> {
        entries
            .iter()
            .zip(upper)
            .map(|(&(p, k), &u)| (p, k, u))
            .collect()
    }

    // umoci TestUnpackOpaqueWhiteout/EmptyDir
    pub fn umoci_opaque_empty_dir() -> Case {
        ok(umoci_opaque(&[]), &["test-subdir/"])
    }

    // umoci TestUnpackOpaqueWhiteout/OneLevel: the upper layer's entries survive the marker
    // that follows them; the lower ones go.
    pub fn umoci_opaque_one_level() -> Case {
        ok(
            umoci_opaque(&marked(&ONE_LEVEL, &[false, true, true, false])),
            &[
                "test-subdir/",
                "test-subdir/badlink -> ./nothing",
                "test-subdir/link -> ..",
            ],
        )
    }

    // umoci TestUnpackOpaqueWhiteout/OneLevelNoUpper
    pub fn umoci_opaque_one_level_no_upper() -> Case {
        ok(umoci_opaque(&all_lower(&ONE_LEVEL)), &["test-subdir/"])
    }

    // umoci TestUnpackOpaqueWhiteout/TwoLevel
    pub fn umoci_opaque_two_level() -> Case {
        ok(
            umoci_opaque(&marked(
                &TWO_LEVEL,
                &[true, false, false, true, true, false, true, false],
            )),
            &[
                "test-subdir/",
                "test-subdir/dir/ 0777",
                "test-subdir/dir/file 0777 =",
                "test-subdir/dir/verybadlink -> ../../../../../../../../../../../../etc/shadow",
                "test-subdir/file 0777 =",
            ],
        )
    }

    // umoci TestUnpackOpaqueWhiteout/TwoLevelNoUpper
    pub fn umoci_opaque_two_level_no_upper() -> Case {
        ok(umoci_opaque(&all_lower(&TWO_LEVEL)), &["test-subdir/"])
    }

    // umoci TestUnpackOpaqueWhiteout/MultiLevel
    pub fn umoci_opaque_multi_level() -> Case {
        let upper = [
            true, false, true, false, true, false, false, false, true, true, false, false, false,
            false, true, false, false, false, false, false,
        ];
        ok(
            umoci_opaque(&marked(&MULTI_LEVEL, &upper)),
            &[
                "test-subdir/",
                "test-subdir/level1_file 0777 =",
                "test-subdir/level1a/ 0777",
                "test-subdir/level1a/level2_link -> ../../../",
                "test-subdir/level1a/level2b/ 0777",
                "test-subdir/level1a/level2b/level3_fileA 0777 =",
            ],
        )
    }

    // umoci TestUnpackOpaqueWhiteout/MultiLevelNoUpper
    pub fn umoci_opaque_multi_level_no_upper() -> Case {
        ok(umoci_opaque(&all_lower(&MULTI_LEVEL)), &["test-subdir/"])
    }

    // umoci TestUnpackOpaqueWhiteout/MissingUpperAncestor: some/ and some/dir/ survive as the
    // parents of the upper file. umoci keeps the lower directories (0777) because it unpacked
    // them first; with the marker hiding the lower layer wherever it sits, they are the upper
    // layer's implied directories (0755).
    pub fn umoci_opaque_missing_upper_ancestor() -> Case {
        ok(
            umoci_opaque(&[
                ("some", "d", false),
                ("some/dir", "d", false),
                ("some/dir/somewhere", "f", true),
                ("another", "d", false),
                ("another/dir", "d", false),
                ("another/dir/somewhere", "f", false),
            ]),
            &[
                "test-subdir/",
                "test-subdir/some/",
                "test-subdir/some/dir/",
                "test-subdir/some/dir/somewhere 0777 =",
            ],
        )
    }

    // umoci TestUnpackOpaqueWhiteout/UpperWhiteout: whiteouts of the upper layer hide the
    // lower layer only, before or after the file they name.
    pub fn umoci_opaque_upper_whiteout() -> Case {
        ok(
            umoci_opaque(&[
                (".wh.fileB", "f", true),
                ("fileA", "f", true),
                ("fileB", "f", true),
                ("fileC", "f", false),
                (".wh.fileA", "f", true),
                (".wh.fileC", "f", true),
            ]),
            &[
                "test-subdir/",
                "test-subdir/fileA 0777 =",
                "test-subdir/fileB 0777 =",
            ],
        )
    }

    // umoci TestUnpackOpaqueWhiteout/UpperDirWhiteout
    pub fn umoci_opaque_upper_dir_whiteout() -> Case {
        let bad = "-> ../../../../../../../../../../../../etc/shadow";
        let bad2 = "-> /../../../../../../../../../../../../etc/shadow";
        ok(
            umoci_opaque(&[
                (".wh.dir2", "f", true),
                ("file", "f", false),
                ("dir1", "d", true),
                ("dir1/file", "f", true),
                ("dir1/link", "-> ../badlink", false),
                ("dir1/verybadlink", bad, true),
                ("dir1/verybadlink2", bad2, false),
                (".wh.dir1", "f", true),
                ("dir2", "d", true),
                ("dir2/file", "f", true),
                ("dir2/link", "-> ../badlink", false),
            ]),
            &[
                "test-subdir/",
                "test-subdir/dir1/ 0777",
                "test-subdir/dir1/file 0777 =",
                "test-subdir/dir1/verybadlink -> ../../../../../../../../../../../../etc/shadow",
                "test-subdir/dir2/ 0777",
                "test-subdir/dir2/file 0777 =",
            ],
        )
    }

    // umoci TestUnpackHardlink, with its last link's target `../../../link` written `link`:
    // the links' headers carry another owner, which must not apply; a hard link to a symlink
    // is that symlink.
    pub fn umoci_unpack_hardlink() -> Case {
        ok(
            vec![Layer::new()
                .file("regular", "some content we won't check", 0o644)
                .hardlink("hard link", "/regular")
                .with_owner(1337, 2020)
                .symlink("link", "../../../regular")
                .hardlink("hard link to symlink", "link")
                .with_owner(1337, 2020)],
            &[
                "'hard link' = some content we won't check",
                "'hard link to symlink' -> ../../../regular",
                "link -> ../../../regular",
                "regular = some content we won't check",
            ],
        )
        .linked(&["hard link", "regular"])
        .linked(&["hard link to symlink", "link"])
    }

    // umoci TestUnpackHardlink as written: the target `../../../link` leaves the root (umoci
    // clamps it), refused here.
    pub fn umoci_unpack_hardlink_climbing_target() -> Case {
        hostile(
            vec![Layer::new()
                .file("regular", "some content we won't check", 0o644)
                .hardlink("hard link", "/regular")
                .symlink("link", "../../../regular")
                .hardlink("hard link to symlink", "../../../link")],
            &["hard link to symlink", "../../../link", "layer 0"],
        )
    }

    // ---- go-containerregistry pkg/v1/mutate -------------------------------------------------

    /// The `./`-rooted layers of ggcr's testdata tarballs (made by Bazel, mode 0555 files).
    fn bazel_layer() -> Layer {
        Layer::new().dir("./", 0o755).with_mtime(0)
    }

    // ggcr TestExtractWhiteout (testdata/whiteout_image.tar)
    pub fn ggcr_extract_whiteout() -> Case {
        ok(
            vec![
                bazel_layer()
                    .file("./bar.txt", "bar\n", 0o555)
                    .file("./foo.txt", "foo\n", 0o555),
                bazel_layer().file("./.wh.foo.txt", "", 0o555),
                Layer::new(),
            ],
            &["bar.txt 0555 = bar\n"],
        )
    }

    // ggcr TestExtractWhiteoutDir (testdata/whiteout_dir.tar)
    pub fn ggcr_extract_whiteout_dir() -> Case {
        ok(
            vec![
                Layer::new().dir("a/", 0o755).file("a/foo", "", 0o644),
                Layer::new().dir("b/", 0o755).file("b/bar", "", 0o644),
                Layer::new().file(".wh.a", "", 0o644),
                Layer::new().dir("a/", 0o755).file("a/baz", "", 0o644),
            ],
            &["a/", "a/baz =", "b/", "b/bar ="],
        )
    }

    // ggcr TestExtractOverwrittenFile (testdata/overwritten_file.tar): a symlink replaces the
    // lower file.
    pub fn ggcr_extract_overwritten_file() -> Case {
        ok(
            vec![
                bazel_layer().file("./foo.txt", "foo\n", 0o555),
                bazel_layer()
                    .file("./bar.txt", "bar\n", 0o555)
                    .symlink("./foo.txt", "bar.txt"),
                Layer::new(),
            ],
            &["bar.txt 0555 = bar\n", "foo.txt -> bar.txt"],
        )
    }

    // ggcr TestExtractOpaqueWhiteout: the marker after the layer's files.
    pub fn ggcr_extract_opaque_whiteout() -> Case {
        ok(
            vec![
                Layer::new()
                    .file("d/a.txt", "a", 0o644)
                    .file("d/b.txt", "b", 0o644),
                Layer::new().file("d/c.txt", "c", 0o644).opaque("d"),
            ],
            &["d/", "d/c.txt = c"],
        )
    }

    // ggcr TestExtractRoundTrip
    pub fn ggcr_extract_round_trip() -> Case {
        ok(
            vec![Layer::new()
                .dir("app/", 0o755)
                .dir("app/bin/", 0o755)
                .dir("app/lib/", 0o755)
                .dir("app/node_modules/", 0o755)
                .dir("app/node_modules/.bin/", 0o755)
                .dir("restricted/", 0o700)
                .file("app/main.js", "console.log('hello')\n", 0o644)
                .file("app/bin/run.sh", "#!/bin/sh\n\n", 0o755)
                .file("restricted/secret.key", "secret\n", 0o600)
                .file("app/lib/utils.js", "// ok\n", 0o644)
                .symlink("app/node_modules/.bin/acorn", "../acorn/bin/acorn")
                .symlink("app/node_modules/.bin/eslint", "../eslint/bin/eslint.js")
                .symlink("app/link-to-main", "/app/main.js")
                .symlink("app/modules", "node_modules")
                .hardlink("app/main-hardlink.js", "app/main.js")],
            &[
                "app/",
                "app/bin/",
                "app/bin/run.sh 0755 = #!/bin/sh\n\n",
                "app/lib/",
                "app/lib/utils.js = // ok\n",
                "app/link-to-main -> /app/main.js",
                "app/main-hardlink.js = console.log('hello')\n",
                "app/main.js = console.log('hello')\n",
                "app/modules -> node_modules",
                "app/node_modules/",
                "app/node_modules/.bin/",
                "app/node_modules/.bin/acorn -> ../acorn/bin/acorn",
                "app/node_modules/.bin/eslint -> ../eslint/bin/eslint.js",
                "restricted/ 0700",
                "restricted/secret.key 0600 = secret\n",
            ],
        )
        .linked(&["app/main-hardlink.js", "app/main.js"])
    }

    // ggcr TestExtractSymlinkFiltering: ggcr drops the two symlinks whose relative targets
    // climb out; as containerd does, every symlink is kept as written (backslashes are plain
    // bytes on Linux).
    pub fn ggcr_extract_symlink_filtering() -> Case {
        ok(
            vec![Layer::new()
                .symlink("usr/local/bin/ld.so", "../lib/ld-linux.so.2")
                .symlink("usr/local/lib/containers/app/var/lock", "../run/lock")
                .symlink("app/bin/win-rel", "..\\lib\\tool")
                .symlink("usr/local/bin/abs-link", "/etc/passwd")
                .symlink("etc/foo", "../../../tmp/evil")
                .symlink("etc/win-escape", "..\\..\\tmp\\evil")],
            &[
                "app/",
                "app/bin/",
                "app/bin/win-rel -> ..\\lib\\tool",
                "etc/",
                "etc/foo -> ../../../tmp/evil",
                "etc/win-escape -> ..\\..\\tmp\\evil",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/abs-link -> /etc/passwd",
                "usr/local/bin/ld.so -> ../lib/ld-linux.so.2",
                "usr/local/lib/",
                "usr/local/lib/containers/",
                "usr/local/lib/containers/app/",
                "usr/local/lib/containers/app/var/",
                "usr/local/lib/containers/app/var/lock -> ../run/lock",
            ],
        )
    }

    // ggcr TestExtractRejectsUnsafeArchivePaths/. : a regular file named `.` is the root, which
    // containerd skips ("resolved to root").
    pub fn ggcr_unsafe_paths_dot() -> Case {
        ok(vec![Layer::new().file(".", "data", 0o644)], &[])
    }

    // ggcr TestExtractRejectsUnsafeArchivePaths/tmp/safe
    pub fn ggcr_unsafe_paths_tmp_safe() -> Case {
        ok(
            vec![Layer::new().file("tmp/safe", "data", 0o644)],
            &["tmp/", "tmp/safe = data"],
        )
    }

    // ggcr TestExtractRejectsUnsafeArchivePaths/../tmp/evil
    pub fn ggcr_unsafe_paths_dotdot() -> Case {
        hostile(
            vec![Layer::new().file("../tmp/evil", "data", 0o644)],
            &["../tmp/evil", "layer 0"],
        )
    }

    // ggcr TestExtractRejectsUnsafeArchivePaths, the Windows spellings (one layer): ggcr
    // refuses them; on Linux `\` and `C:` are name bytes, so containerd writes each as named.
    pub fn ggcr_unsafe_paths_windows_spellings() -> Case {
        ok(
            vec![Layer::new()
                .file("..\\..\\tmp\\evil", "data", 0o644)
                .file("\\tmp\\evil", "data", 0o644)
                .file("C:\\tmp\\evil", "data", 0o644)
                .file("C:/tmp/evil", "data", 0o644)
                .file("C:..\\evil", "data", 0o644)],
            &[
                "..\\..\\tmp\\evil = data",
                "C:/",
                "C:/tmp/",
                "C:/tmp/evil = data",
                "C:..\\evil = data",
                "C:\\tmp\\evil = data",
                "\\tmp\\evil = data",
            ],
        )
    }

    // ggcr TestWhiteoutDir (inWhiteoutDir): entries under a whited-out directory go, their
    // neighbours stay.
    pub fn ggcr_whiteout_dir() -> Case {
        ok(
            vec![
                Layer::new()
                    .dir("usr/bin/", 0o755)
                    .file("baz/foo.txt", "", 0o644)
                    .file("baz/bar/foo.txt", "", 0o644)
                    .file("red/blue", "", 0o644)
                    .file("red/green", "", 0o644)
                    .file("red/yellow.txt", "", 0o644),
                Layer::new().whiteout("baz").whiteout("red/blue"),
            ],
            &[
                "red/",
                "red/green =",
                "red/yellow.txt =",
                "usr/",
                "usr/bin/",
            ],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// One test per case, each converting to all three formats.

macro_rules! runtime_cases {
    ($($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                check_formats(stringify!($name), cases::$name());
            }
        )+

        /// Every case, by name.
        const ALL_CASES: &[(&str, fn() -> Case)] = &[$((stringify!($name), cases::$name)),+];
    };
}

runtime_cases!(
    containerd_breakouts_symlink_absolute,
    containerd_breakouts_symlink_up_and_out,
    containerd_breakouts_symlink_multiple_absolute,
    containerd_breakouts_symlink_multiple_relative,
    containerd_breakouts_symlink_empty_file,
    containerd_breakouts_hardlink_relative,
    containerd_breakouts_hardlink_down_and_out,
    containerd_breakouts_hardlink_absolute,
    containerd_breakouts_hardlink_relative_long,
    containerd_breakouts_hardlink_relative_up_and_out,
    containerd_breakouts_hardlink_direct_relative,
    containerd_breakouts_hardlink_direct_absolute,
    containerd_breakouts_symlink_parent_directory,
    containerd_breakouts_symlink_empty_filename,
    containerd_breakouts_symlink_parent_relative,
    containerd_breakouts_symlink_slash_ended,
    containerd_breakouts_symlink_override_directory,
    containerd_breakouts_symlink_override_directory_relative,
    containerd_breakouts_directory_override_symlink,
    containerd_breakouts_directory_override_symlink_and_hardlink,
    containerd_breakouts_whiteout_root_parent,
    containerd_breakouts_whiteout_parent,
    containerd_breakouts_whiteout_root,
    containerd_breakouts_whiteout_current_directory,
    containerd_breakouts_whiteout_symlink,
    containerd_breakouts_whiteout_symlink_path,
    containerd_breakouts_whiteout_directory_name,
    containerd_breakouts_whiteout_dead_symlink_parent,
    containerd_breakouts_whiteout_relative_path,
    containerd_breakouts_symlink_override_path,
    containerd_breakouts_hardlink_symlink_before_create_target,
    containerd_breakouts_hardlink_symlink_relative,
    containerd_breakouts_hardlink_symlink_absolute,
    containerd_breakouts_hardlink_symlink_chmod,
    containerd_apply_tar_directory_creation,
    containerd_prefix_header_readable,
    containerd_relative_symlinks_other_etc_updown,
    containerd_relative_symlinks_deep_breakout,
    containerd_relative_symlinks_root_breakout,
    containerd_relative_symlinks_up_and_out,
    containerd_relative_symlinks_down_and_out,
    containerd_relative_symlinks_localetc,
    containerd_symlinks_replace_relative_by_absolute,
    containerd_symlinks_to_absolute_symlink,
    containerd_symlinks_to_relative_symlink,
    containerd_symlinks_replace_both,
    containerd_symlinks_directory_replaces_symlink,
    containerd_diff_tar_parent_inclusion,
    containerd_diff_tar_hardlink_parent_inclusion,
    containerd_diff_tar_update_directory_permission,
    containerd_diff_tar_hardlink_updated_parent,
    containerd_diff_tar_whiteout_includes_parents,
    containerd_diff_tar_whiteout_parent_removal,
    containerd_apply_naive_directory_replaced_by_file_in_its_layer,
    continuity_fssuite_basic,
    continuity_fssuite_deletion,
    continuity_fssuite_update,
    continuity_fssuite_directory_permission,
    continuity_fssuite_parent_directory_permission,
    continuity_fssuite_hardlink_unmodified,
    continuity_fssuite_hardlink_before_unmodified,
    continuity_fssuite_hardlink_before_modified,
    continuity_root_path_symlink_absolute,
    continuity_root_path_symlink_relative_path,
    continuity_root_path_symlink_last_link,
    continuity_root_path_relative_link_change_scope,
    continuity_root_path_relative_link_change_scope_scoped,
    continuity_root_path_deep_relative_link_change_scope,
    continuity_root_path_relative_link_chain,
    continuity_root_path_breakout_path,
    continuity_root_path_symlink_to_root,
    continuity_root_path_symlink_slash_dotdot,
    continuity_root_path_symlink_dotdot,
    continuity_root_path_symlink_relative_path2,
    continuity_root_path_symlink_self,
    continuity_root_path_symlink_circular,
    continuity_root_path_symlink_circular_under_root,
    continuity_root_path_symlink_complex_chain,
    continuity_root_path_breakout_non_existent,
    continuity_root_path_no_lexical_cleaning,
    rule_chain_of_40_symlinks_resolves,
    rule_chain_of_41_symlinks_is_too_many,
    moby_untar_invalid_filenames_dotdot,
    moby_untar_invalid_filenames_slash_dotdot,
    moby_untar_hardlink_to_symlink,
    moby_untar_invalid_hardlink_dotdot,
    moby_untar_invalid_hardlink_slash_dotdot,
    moby_untar_invalid_hardlink_write_through,
    moby_untar_invalid_hardlink_then_symlink,
    moby_untar_invalid_hardlink_then_hardlink,
    moby_untar_invalid_hardlink_then_replace,
    moby_untar_invalid_symlink_dotdot,
    moby_untar_invalid_symlink_slash_dotdot,
    moby_untar_invalid_symlink_write_through,
    moby_untar_invalid_symlink_then_symlink,
    moby_untar_invalid_symlink_then_hardlink,
    moby_untar_invalid_symlink_then_replace,
    moby_untar_invalid_symlink_nested,
    moby_implied_directory_permissions,
    moby_untar_parent_path_permissions,
    moby_x_global_no_parent,
    moby_chroot_apply_dot_dot_file,
    moby_apply_layer_whiteouts_1,
    moby_apply_layer_whiteouts_2,
    moby_apply_layer_whiteouts_3,
    moby_apply_layer_whiteouts_4,
    umoci_sanitise_scoping_garbage_prefix,
    umoci_sanitise_scoping_dotdot_prefix,
    umoci_symlink_scoping_root_prefix,
    umoci_symlink_scoping_garbage_prefix1,
    umoci_symlink_scoping_garbage_prefix2,
    umoci_symlink_scoping_garbage_prefix3,
    umoci_symlink_scoping_dotdot_prefix,
    umoci_unpack_entry_non_dir_parent,
    umoci_unpack_entry_parent_dir,
    umoci_whiteout_empty_name_root,
    umoci_whiteout_empty_name,
    umoci_whiteout_file_in_root,
    umoci_whiteout_hidden_file_in_root,
    umoci_whiteout_file_in_subdir,
    umoci_whiteout_hidden_file_in_subdir,
    umoci_whiteout_dir_in_root,
    umoci_whiteout_hidden_dir_in_root,
    umoci_whiteout_dir_in_subdir,
    umoci_whiteout_hidden_dir_in_subdir,
    umoci_opaque_empty_dir,
    umoci_opaque_one_level,
    umoci_opaque_one_level_no_upper,
    umoci_opaque_two_level,
    umoci_opaque_two_level_no_upper,
    umoci_opaque_multi_level,
    umoci_opaque_multi_level_no_upper,
    umoci_opaque_missing_upper_ancestor,
    umoci_opaque_upper_whiteout,
    umoci_opaque_upper_dir_whiteout,
    umoci_unpack_hardlink,
    umoci_unpack_hardlink_climbing_target,
    ggcr_extract_whiteout,
    ggcr_extract_whiteout_dir,
    ggcr_extract_overwritten_file,
    ggcr_extract_opaque_whiteout,
    ggcr_extract_round_trip,
    ggcr_extract_symlink_filtering,
    ggcr_unsafe_paths_dot,
    ggcr_unsafe_paths_tmp_safe,
    ggcr_unsafe_paths_dotdot,
    ggcr_unsafe_paths_windows_spellings,
    ggcr_whiteout_dir,
);

/// The hand-written trees are trees: every path's parent is a directory in it, the members of
/// a hard-link group are alike, and no case is listed twice.
#[test]
fn every_expected_tree_is_well_formed() {
    let mut seen = std::collections::HashSet::new();
    for (name, case) in ALL_CASES {
        assert!(seen.insert(*name), "{name} is listed twice");
        let Expect::Tree(tree) = case().expect else {
            continue;
        };
        for (path, node) in &tree.0 {
            let shown = String::from_utf8_lossy(path);
            if !path.is_empty() {
                let parent = match path.iter().rposition(|&b| b == b'/') {
                    Some(i) => &path[..i],
                    None => &[][..],
                };
                assert!(
                    matches!(tree.0.get(parent), Some(n) if n.kind == Kind::Dir),
                    "{name}: the parent of {shown:?} is not a directory of the tree"
                );
            }
            if let Some(first) = &node.link {
                let head = &tree.0[first];
                assert!(
                    head.kind == node.kind && head.mode == node.mode && head.kind != Kind::Dir,
                    "{name}: {shown:?} is linked to a different entry"
                );
            }
        }
    }
    assert!(ALL_CASES.len() >= 60, "{} cases", ALL_CASES.len());
}

// ---------------------------------------------------------------------------------------------
// The subset through the other ways in.

/// The longest any conversion of this file may take before it counts as a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// Cases that need resolving in layer order: a symlink of an old layer with entries beneath it
/// in a newer one, a chain, a hard link through a symlink, a whiteout through a symlink, a
/// directory replaced after entries beneath it in its own layer, a hard link to a symlink.
/// Single-layer cases whose layer has no whiteout and no replacement also run spread one entry
/// per layer, so that their layers can arrive out of order.
fn streaming_subset() -> Vec<(&'static str, Case)> {
    vec![
        (
            "umoci_symlink_scoping_garbage_prefix2",
            cases::umoci_symlink_scoping_garbage_prefix2(),
        ),
        (
            "continuity_root_path_relative_link_chain",
            cases::continuity_root_path_relative_link_chain(),
        ),
        (
            "continuity_root_path_symlink_complex_chain",
            cases::continuity_root_path_symlink_complex_chain(),
        ),
        (
            "containerd_breakouts_symlink_multiple_absolute, one entry per layer",
            one_entry_per_layer(cases::containerd_breakouts_symlink_multiple_absolute()),
        ),
        (
            "containerd_breakouts_hardlink_relative, one entry per layer",
            one_entry_per_layer(cases::containerd_breakouts_hardlink_relative()),
        ),
        (
            "containerd_breakouts_directory_override_symlink_and_hardlink",
            cases::containerd_breakouts_directory_override_symlink_and_hardlink(),
        ),
        (
            "containerd_breakouts_whiteout_symlink_path",
            cases::containerd_breakouts_whiteout_symlink_path(),
        ),
        (
            "containerd_breakouts_symlink_override_path",
            cases::containerd_breakouts_symlink_override_path(),
        ),
        (
            "containerd_apply_naive_directory_replaced_by_file_in_its_layer",
            cases::containerd_apply_naive_directory_replaced_by_file_in_its_layer(),
        ),
        (
            "containerd_breakouts_hardlink_symlink_before_create_target, one entry per layer",
            one_entry_per_layer(
                cases::containerd_breakouts_hardlink_symlink_before_create_target(),
            ),
        ),
    ]
}

/// Oldest first, newest first, and one shuffle (for three layers or more).
fn orders(n: usize) -> Vec<Vec<usize>> {
    let mut all = vec![(0..n).collect::<Vec<_>>()];
    if n > 1 {
        all.push((0..n).rev().collect());
    }
    if n > 2 {
        // A fixed shuffle: odd indexes descending, then even ones ascending.
        let mut s: Vec<usize> = (0..n).filter(|i| i % 2 == 1).rev().collect();
        s.extend((0..n).filter(|i| i % 2 == 0));
        all.push(s);
    }
    all
}

/// A shuffled order (not oldest first when there are two layers or more).
fn shuffled(n: usize) -> Vec<usize> {
    orders(n).pop().unwrap()
}

fn options() -> ConvertOptions {
    ConvertOptions::default().jobs(Jobs::new(2).unwrap())
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(LIMIT, f).await {
        Ok(v) => v,
        Err(_) => panic!("{what} did not end within {LIMIT:?}"),
    }
}

/// Reads a finished output back, or checks that a failed one left nothing.
fn outcome(out: &Path, format: Format, result: ocirender::Result<()>) -> Result<Tree, Error> {
    let target = output_path(out, format);
    match result {
        Ok(()) => Ok(read_output(&target, format)),
        Err(e) => {
            assert_no_output(out, &target, format, &e);
            Err(e)
        }
    }
}

/// How the packer gets its layers.
#[derive(Clone, Copy, Debug)]
enum Delivery {
    /// `notify_layer_ready` with the blob's path.
    Files,
    /// `notify_layer_stream`, fed through a small pipe.
    Streams,
    /// `notify_layer_reader` with a blocking reader.
    Readers,
}

/// Writes `bytes` into `w` in small pieces, yielding between them.
async fn feed(mut w: tokio::io::DuplexStream, bytes: Vec<u8>) {
    for chunk in bytes.chunks(3000) {
        if w.write_all(chunk).await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
    let _ = w.shutdown().await;
}

/// Runs the image through a `StreamingPacker`, delivering the layers in `order`.
async fn through_packer(
    img: &Built,
    format: Format,
    order: &[usize],
    how: Delivery,
) -> Result<Tree, Error> {
    let opened = open_image(img).unwrap();
    let metas: Vec<LayerMeta> = opened
        .layers
        .iter()
        .map(LayerMeta::from_descriptor)
        .collect();
    let paths: Vec<PathBuf> = img
        .layers()
        .iter()
        .map(|b| b.path.clone().unwrap())
        .collect();
    let out = tempfile::tempdir().unwrap();
    let spec = ImageSpec::new(format, output_path(out.path(), format));
    let packer = StreamingPacker::new(metas, spec, options(), None)?;
    let mut feeders = Vec::new();
    let mut delivered = Ok(());
    for &i in order {
        let sent = match how {
            Delivery::Files => packer.notify_layer_ready(i, paths[i].clone()).await,
            Delivery::Streams => {
                let (reader, writer) = tokio::io::duplex(4096);
                let sent = packer.notify_layer_stream(i, reader).await;
                feeders.push(tokio::spawn(feed(
                    writer,
                    std::fs::read(&paths[i]).unwrap(),
                )));
                sent
            }
            Delivery::Readers => {
                let bytes = std::fs::read(&paths[i]).unwrap();
                packer
                    .notify_layer_reader(i, Box::new(io::Cursor::new(bytes)))
                    .await
            }
        };
        if sent.is_err() {
            // The conversion stopped; `finish` says why.
            delivered = sent;
            break;
        }
    }
    let finished = bounded("finish", packer.finish()).await.map(|_| ());
    for f in feeders {
        f.await.unwrap();
    }
    outcome(out.path(), format, finished.and(delivered))
}

/// Runs the image through `convert_streaming`, the layers in `order`.
async fn through_convert_streaming(
    img: &Built,
    format: Format,
    order: &[usize],
) -> Result<Tree, Error> {
    let opened = open_image(img).unwrap();
    let blobs: Vec<_> = order
        .iter()
        .map(|&i| {
            let meta = LayerMeta::from_descriptor(&opened.layers[i]);
            Ok::<_, io::Error>(LayerBlob {
                index: i,
                path: img.layers()[i].path.clone().unwrap(),
                media_type: meta.media_type,
                digest: meta.digest,
            })
        })
        .collect();
    let out = tempfile::tempdir().unwrap();
    let spec = ImageSpec::new(format, output_path(out.path(), format));
    let result = bounded(
        "convert_streaming",
        convert_streaming(futures::stream::iter(blobs), order.len(), spec, options()),
    )
    .await
    .map(|_| ());
    outcome(out.path(), format, result)
}

/// Runs `f` over the subset; panics listing every failure.
async fn over_subset<F>(what: &str, mut f: F)
where
    F: AsyncFnMut(&str, &Case, &Built) -> Vec<(String, Result<Tree, Error>)>,
{
    let mut failures = Vec::new();
    for (name, case) in streaming_subset() {
        let t = tempfile::tempdir().unwrap();
        let img = build(&case, t.path());
        for (how, result) in f(name, &case, &img).await {
            if let Some(v) = judge(&case, from_library(&result)) {
                failures.push(format!("{name}, {how}: {v}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{what}: {} runs fail\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_packer_with_files_in_every_order() {
    over_subset("notify_layer_ready", async |_, case: &Case, img: &Built| {
        let mut runs = Vec::new();
        for order in orders(case.layers.len()) {
            for format in Format::ALL {
                let r = through_packer(img, format, &order, Delivery::Files).await;
                runs.push((format!("{}, files {order:?}", format.name()), r));
            }
        }
        runs
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_packer_with_streams_and_readers_shuffled() {
    over_subset(
        "notify_layer_stream / notify_layer_reader",
        async |_, case: &Case, img: &Built| {
            let order = shuffled(case.layers.len());
            let mut runs = Vec::new();
            for format in Format::ALL {
                for how in [Delivery::Streams, Delivery::Readers] {
                    let r = through_packer(img, format, &order, how).await;
                    runs.push((format!("{}, {how:?} {order:?}", format.name()), r));
                }
            }
            runs
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn convert_streaming_shuffled() {
    over_subset("convert_streaming", async |_, case: &Case, img: &Built| {
        let order = shuffled(case.layers.len());
        let mut runs = Vec::new();
        for format in Format::ALL {
            let r = through_convert_streaming(img, format, &order).await;
            runs.push((format!("{}, {order:?}", format.name()), r));
        }
        runs
    })
    .await;
}

#[cfg(feature = "registry")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_from_a_registry() {
    use crate::support::registry::{tools, Auth, Registry};
    use ocirender::registry::{self, Reference, RegistryOptions};
    if !tools() {
        return;
    }
    let reg = Registry::start(Auth::None);
    let registry_options = RegistryOptions {
        insecure: true,
        retry_delay: Duration::from_millis(20),
        ..RegistryOptions::default()
    };
    let mut n = 0;
    over_subset("registry::pull", async |_, _: &Case, img: &Built| {
        n += 1;
        let repo = format!("runtime/case{n}:v1");
        reg.push(img, "latest", &repo, false);
        let reference = Reference::parse(&format!("{}/{repo}", reg.host())).unwrap();
        let mut runs = Vec::new();
        for format in Format::ALL {
            let out = tempfile::tempdir().unwrap();
            let spec = ImageSpec::new(format, output_path(out.path(), format));
            let pulled = bounded(
                "pull",
                registry::pull(&reference, &spec, &options(), &registry_options),
            )
            .await
            .map(|_| ());
            runs.push((
                format.name().to_string(),
                outcome(out.path(), format, pulled),
            ));
        }
        runs
    })
    .await;
}

const STDOUT_CHILD: &str = "OCIRENDER_RUNTIME_TAR_TO_STDOUT";

/// Not a test on its own: the child process of `tar_to_standard_output`, which converts the
/// image the variable names to a tar on standard output.
#[test]
fn tar_stdout_child() {
    let Some(image) = std::env::var_os(STDOUT_CHILD) else {
        return;
    };
    let spec = ImageSpec::new(Format::Tar, "-");
    let result = open_image(Path::new(&image))
        .and_then(|img| ocirender::convert(&img, &spec, &ConvertOptions::default()));
    // Exit before the test harness prints its result line to the same stdout.
    match result {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(io::stderr(), "{e}");
            std::process::exit(3)
        }
    }
}

#[test]
fn tar_to_standard_output() {
    let mut failures = Vec::new();
    for (name, case) in streaming_subset() {
        let t = tempfile::tempdir().unwrap();
        let img = build(&case, t.path());
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "runtime::tar_stdout_child",
                "--test-threads=1",
                "--quiet",
            ])
            .env(STDOUT_CHILD, &img.path)
            .output()
            .unwrap();
        let got = if out.status.success() {
            // The harness announces the test on stdout before the archive.
            let marker = b"running 1 test\n";
            let start = out
                .stdout
                .windows(marker.len())
                .position(|w| w == marker)
                .expect("harness line")
                + marker.len();
            let archive = t.path().join("stdout.tar");
            std::fs::write(&archive, &out.stdout[start..]).unwrap();
            Ok(read_output(&archive, Format::Tar))
        } else {
            Err((String::from_utf8_lossy(&out.stderr).into_owned(), None))
        };
        if let Some(v) = judge(&case, got) {
            failures.push(format!("{name}: {v}"));
        }
    }
    assert!(
        failures.is_empty(),
        "tar to standard output: {} cases fail\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
