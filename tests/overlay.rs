//! The overlay rules of DESIGN.md as a table: layers in, expected tree out, for every format.
//!
//! Each case's expectation is written by hand (never computed by the model), as the canonical
//! dump of tests/support/dump.rs; `data="…"` stands for the `size=… sha256=…` of that content.
//! Every case runs through `ocirender::convert` to squashfs, tar and dir (one test per
//! format, each reporting every failing case at once), and once more through the reference
//! model, so the hand-written table and the model check each other.
//!
//! Error cases name the root-cause variant and words the message must contain (the paths
//! involved); for every format the conversion must fail that way and leave no output behind
//! (checked by `support::outputs::convert_one`).

use crate::support::builder::{Body, Codec, ImageBuilder, Layer, LongNames};
use crate::support::dump::DumpOptions;
use crate::support::model;
use crate::support::outputs::{convert_all, convert_one, diff, expand_expected, open_image};
use ocirender::{convert, ConvertOptions, Error, Format, ImageSpec, MemoryLimit};

/// What a case must produce.
enum Expect {
    /// This dump (hand-written).
    Tree(String),
    /// An error whose root cause is `variant` and whose message contains every word of
    /// `mentions`.
    Error {
        variant: &'static str,
        is: fn(&Error) -> bool,
        mentions: Vec<String>,
    },
}

struct Case {
    name: &'static str,
    layers: Vec<Layer>,
    expect: Expect,
}

fn ok(name: &'static str, layers: Vec<Layer>, expected: &str) -> Case {
    Case {
        name,
        layers,
        expect: Expect::Tree(expand_expected(expected)),
    }
}

macro_rules! fails {
    ($name:expr, $layers:expr, $variant:ident, [$($mention:expr),+ $(,)?]) => {
        Case {
            name: $name,
            layers: $layers,
            expect: Expect::Error {
                variant: stringify!($variant),
                is: |e| matches!(e, Error::$variant { .. }),
                mentions: vec![$($mention.to_string()),+],
            },
        }
    };
}

/// A lower layer many cases start from.
fn etc() -> Layer {
    Layer::new()
        .dir("etc", 0o755)
        .file("etc/passwd", "root", 0o644)
        .file("etc/shadow", "secret", 0o600)
}

fn cases() -> Vec<Case> {
    let mut cases = vec![
        // ---- whiteouts -------------------------------------------------------------------
        ok(
            "simple whiteout",
            vec![etc(), Layer::new().whiteout("etc/shadow")],
            r#"
            / dir 0755 0:0 t=0
            /etc dir 0755 0:0 t=1700000000
            /etc/passwd file 0644 0:0 t=1700000000 data="root"
            "#,
        ),
        ok(
            "nested whiteouts remove whole subtrees",
            vec![
                Layer::new()
                    .dir("usr", 0o755)
                    .dir("usr/share", 0o755)
                    .dir("usr/share/doc", 0o755)
                    .file("usr/share/doc/README", "r", 0o644)
                    .file("usr/share/x", "x", 0o644)
                    .dir("usr/lib", 0o755)
                    .file("usr/lib/a", "a", 0o644)
                    .dir("usr/lib/deep", 0o755)
                    .dir("usr/lib/deep/er", 0o755)
                    .file("usr/lib/deep/er/f", "f", 0o644),
                Layer::new().whiteout("usr/share").whiteout("usr/lib/deep/er/f"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /usr dir 0755 0:0 t=1700000000
            /usr/lib dir 0755 0:0 t=1700000000
            /usr/lib/a file 0644 0:0 t=1700000000 data="a"
            /usr/lib/deep dir 0755 0:0 t=1700000000
            /usr/lib/deep/er dir 0755 0:0 t=1700000000
            "#,
        ),
        ok(
            "a whiteout of a path that never existed is a no-op and creates no parent",
            vec![
                Layer::new().file("a", "a", 0o644),
                Layer::new().whiteout("ghost").whiteout("nodir/ghost").whiteout("a/ghost"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a file 0644 0:0 t=1700000000 data="a"
            "#,
        ),
        ok(
            "opaque directory, marker before the same-layer children",
            vec![opt_lower(), Layer::new().opaque("opt").file("opt/new", "n", 0o644).dir("opt/sub", 0o700)],
            OPT_EXPECTED,
        ),
        ok(
            "opaque directory, marker after the same-layer children (case 2)",
            vec![opt_lower(), Layer::new().file("opt/new", "n", 0o644).dir("opt/sub", 0o700).opaque("opt")],
            OPT_EXPECTED,
        ),
        ok(
            "an opaque marker without a dir entry in its layer keeps the lower dir's metadata (case 10)",
            vec![
                Layer::new()
                    .dir("d", 0o750)
                    .with_owner(5, 6)
                    .with_mtime(111)
                    .with_xattr("user.k", "v")
                    .file("d/x", "x", 0o644)
                    .dir("e", 0o700)
                    .with_mtime(222)
                    .file("e/old", "o", 0o644),
                Layer::new().opaque("d").opaque("e").file("e/new", "n", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0750 5:6 t=111 xattr=user.k:76
            /e dir 0700 0:0 t=222
            /e/new file 0644 0:0 t=1700000000 data="n"
            "#,
        ),
        ok(
            "whiteout and re-create in one layer, both orders",
            vec![
                Layer::new().file("a", "old", 0o644).file("b", "old", 0o644).dir("d", 0o755).file("d/old", "o", 0o644),
                Layer::new()
                    .whiteout("a")
                    .file("a", "new", 0o644)
                    .file("b", "new", 0o644)
                    .whiteout("b")
                    .whiteout("d")
                    .dir("d", 0o700)
                    .file("d/new", "n", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a file 0644 0:0 t=1700000000 data="new"
            /b file 0644 0:0 t=1700000000 data="new"
            /d dir 0700 0:0 t=1700000000
            /d/new file 0644 0:0 t=1700000000 data="n"
            "#,
        ),
        ok(
            "a file and its whiteout in one layer: the file stays, both orders (case 1)",
            vec![
                Layer::new().dir("keep", 0o755),
                Layer::new().file("x", "x", 0o644).whiteout("x").whiteout("y").file("y", "y", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /keep dir 0755 0:0 t=1700000000
            /x file 0644 0:0 t=1700000000 data="x"
            /y file 0644 0:0 t=1700000000 data="y"
            "#,
        ),
        ok(
            "whiteouts under a path the same layer turns into a file are moot",
            vec![
                Layer::new().dir("d", 0o755).file("d/x", "x", 0o644).file("d/y", "y", 0o644),
                Layer::new().whiteout("d/x").file("d", "file", 0o644).whiteout("d/y"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d file 0644 0:0 t=1700000000 data="file"
            "#,
        ),
        ok(
            "whiteouts stored as hard links or with content are whiteouts (case 7)",
            vec![
                Layer::new().file("a", "A", 0o644).file("b", "B", 0o644).file("c", "C", 0o644),
                Layer::new()
                    .entry(".wh.a", Body::Hardlink(b"c".to_vec()), 0o644)
                    .file(".wh.b", "not empty", 0o644)
                    .entry(".wh.zz", Body::Hardlink(b"nowhere".to_vec()), 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /c file 0644 0:0 t=1700000000 data="C"
            "#,
        ),
        // ---- case 3: a deletion in layer k below a deletion or shadow in layer m > k ------
        ok(
            "case 3: opaque in k, the dir deleted in m, re-created in n",
            vec![
                Layer::new().dir("d", 0o755).file("d/a", "a", 0o644),
                Layer::new().opaque("d").file("d/b", "b", 0o644),
                Layer::new().whiteout("d"),
                Layer::new().dir("d", 0o700).file("d/c", "c", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0700 0:0 t=1700000000
            /d/c file 0644 0:0 t=1700000000 data="c"
            "#,
        ),
        ok(
            "case 3: whiteout in k below a shadowing file in m, dirs re-created in n",
            vec![
                Layer::new().dir("d", 0o755).dir("d/x", 0o755).file("d/x/1", "1", 0o644).file("d/keep", "k", 0o644),
                Layer::new().whiteout("d/x"),
                Layer::new().file("d", "shadow", 0o644),
                Layer::new().dir("d", 0o711).dir("d/x", 0o700),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0711 0:0 t=1700000000
            /d/x dir 0700 0:0 t=1700000000
            "#,
        ),
        ok(
            "case 3: nothing deleted or shadowed comes back",
            vec![
                Layer::new().dir("a", 0o700).file("a/f", "f", 0o644),
                Layer::new().whiteout("a/f").file("a/g", "g", 0o644),
                Layer::new().file("a", "shadow", 0o644),
                Layer::new().whiteout("a"),
                Layer::new().dir("a", 0o755),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a dir 0755 0:0 t=1700000000
            "#,
        ),
        ok(
            "case 3: opaque in k, its own child deleted in m",
            vec![
                Layer::new().dir("d", 0o750).file("d/x", "x", 0o644).file("d/y", "y", 0o644),
                Layer::new().opaque("d").file("d/z", "z", 0o644),
                Layer::new().whiteout("d/z"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0750 0:0 t=1700000000
            "#,
        ),
        ok(
            "case 3: opaque in k below a shadowing symlink in m, dir re-created in n",
            vec![
                Layer::new().dir("d", 0o755).file("d/x", "x", 0o644),
                Layer::new().opaque("d").file("d/y", "y", 0o644),
                Layer::new().symlink("d", "elsewhere"),
                Layer::new().dir("d", 0o700).file("d/w", "w", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0700 0:0 t=1700000000
            /d/w file 0644 0:0 t=1700000000 data="w"
            "#,
        ),
        ok(
            "case 3: whiteout in k, re-created in m, opaque in n hides the re-creation",
            vec![
                Layer::new().dir("d", 0o750).file("d/x", "old", 0o644),
                Layer::new().whiteout("d/x"),
                Layer::new().file("d/x", "new", 0o644),
                Layer::new().opaque("d").file("d/y", "y", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0750 0:0 t=1700000000
            /d/y file 0644 0:0 t=1700000000 data="y"
            "#,
        ),
        // ---- replacements ----------------------------------------------------------------
        ok(
            "duplicate paths in one layer: the later entry wins (case 12)",
            vec![Layer::new()
                .file("f", "first", 0o644)
                .file("f", "second", 0o600)
                .file("fd", "file", 0o644)
                .dir("fd", 0o700)
                .dir("df", 0o755)
                .file("df", "now a file", 0o640)
                .symlink("s", "one")
                .symlink("s", "two")],
            r#"
            / dir 0755 0:0 t=0
            /df file 0640 0:0 t=1700000000 data="now a file"
            /f file 0600 0:0 t=1700000000 data="second"
            /fd dir 0700 0:0 t=1700000000
            /s symlink 0777 0:0 t=1700000000 -> two
            "#,
        ),
        ok(
            "replacement without whiteouts: dir by file, dir by symlink, file by dir, symlink by dir (case 4)",
            vec![
                Layer::new()
                    .dir("a", 0o755)
                    .file("a/x", "x", 0o644)
                    .dir("b", 0o755)
                    .dir("b/sub", 0o755)
                    .file("b/sub/y", "y", 0o644)
                    .file("c", "c", 0o644)
                    .with_owner(1, 1)
                    .symlink("d", "elsewhere"),
                Layer::new()
                    .file("a", "file now", 0o600)
                    .symlink("b", "target")
                    .dir("c", 0o711)
                    .with_owner(2, 3)
                    .with_mtime(5)
                    .dir("d", 0o700)
                    .file("d/z", "z", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a file 0600 0:0 t=1700000000 data="file now"
            /b symlink 0777 0:0 t=1700000000 -> target
            /c dir 0711 2:3 t=5
            /d dir 0700 0:0 t=1700000000
            /d/z file 0644 0:0 t=1700000000 data="z"
            "#,
        ),
        ok(
            "implicit parents are 0755 root:root t=0; a newer dir entry sets them",
            vec![
                Layer::new().file("a/b/c", "c", 0o644).file("x/y/z", "z", 0o600).with_owner(7, 7),
                Layer::new().dir("a", 0o700).with_owner(1, 1).with_mtime(5),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a dir 0700 1:1 t=5
            /a/b dir 0755 0:0 t=0
            /a/b/c file 0644 0:0 t=1700000000 data="c"
            /x dir 0755 0:0 t=0
            /x/y dir 0755 0:0 t=0
            /x/y/z file 0600 7:7 t=1700000000 data="z"
            "#,
        ),
        ok(
            // DESIGN does not say; the rule we keep (and the merge implements): a parent that a
            // lower layer left as a non-directory is replaced by a default directory.
            "an implicit parent replaces a lower non-directory",
            vec![Layer::new().file("f", "file", 0o644), Layer::new().file("f/child", "c", 0o644)],
            r#"
            / dir 0755 0:0 t=0
            /f dir 0755 0:0 t=0
            /f/child file 0644 0:0 t=1700000000 data="c"
            "#,
        ),
    ];
    cases.push(ok(
        "`./` prefixes, odd spellings and `.` root entries",
        vec![
            Layer::new()
                .dir("./", 0o750)
                .with_owner(1, 2)
                .with_mtime(99)
                .dir("./etc/", 0o755)
                .file("./etc//hosts", "h", 0o644)
                .file("/abs/path", "a", 0o644),
            Layer::new()
                .dir(".", 0o711)
                .with_mtime(100)
                .file("etc/hosts/", "h2", 0o644)
                .file("//etc/./x", "x", 0o644),
        ],
        r#"
        / dir 0711 0:0 t=100
        /abs dir 0755 0:0 t=0
        /abs/path file 0644 0:0 t=1700000000 data="a"
        /etc dir 0755 0:0 t=1700000000
        /etc/hosts file 0644 0:0 t=1700000000 data="h2"
        /etc/x file 0644 0:0 t=1700000000 data="x"
        "#,
    ));
    cases.extend(hard_link_cases());
    cases.extend(special_name_cases());
    cases.extend(encoding_cases());
    cases.extend(error_cases());
    cases.extend(found_by_properties());
    cases
}

fn opt_lower() -> Layer {
    Layer::new()
        .dir("opt", 0o755)
        .file("opt/old", "o", 0o644)
        .dir("opt/sub", 0o755)
        .file("opt/sub/deep", "d", 0o644)
}

/// The opaque marker hides `old` and `sub` with its subtree; `sub` comes back empty with the
/// new layer's metadata; `opt` itself keeps the lower layer's metadata.
const OPT_EXPECTED: &str = r#"
    / dir 0755 0:0 t=0
    /opt dir 0755 0:0 t=1700000000
    /opt/new file 0644 0:0 t=1700000000 data="n"
    /opt/sub dir 0700 0:0 t=1700000000
"#;

fn hard_link_cases() -> Vec<Case> {
    vec![
        ok(
            "hard links inside one layer (absolute target normalized)",
            vec![Layer::new()
                .dir("bin", 0o755)
                .file("bin/busybox", "bb", 0o755)
                .hardlink("bin/sh", "bin/busybox")
                .hardlink("bin/ls", "/bin/busybox")],
            r#"
            / dir 0755 0:0 t=0
            /bin dir 0755 0:0 t=1700000000
            /bin/busybox file 0755 0:0 t=1700000000 data="bb" link=/bin/busybox
            /bin/ls file 0755 0:0 t=1700000000 data="bb" link=/bin/busybox
            /bin/sh file 0755 0:0 t=1700000000 data="bb" link=/bin/busybox
            "#,
        ),
        ok(
            "a hard link to a target in a lower layer (case 6)",
            vec![
                Layer::new().dir("lib", 0o755).file("lib/t", "T", 0o640).with_owner(3, 4),
                Layer::new().hardlink("lib/l", "lib/t"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /lib dir 0755 0:0 t=1700000000
            /lib/l file 0640 3:4 t=1700000000 data="T" link=/lib/l
            /lib/t file 0640 3:4 t=1700000000 data="T" link=/lib/l
            "#,
        ),
        ok(
            "deleting a link's first name promotes the link; a group of 3 stays one group",
            vec![
                Layer::new()
                    .file("a", "A", 0o644)
                    .hardlink("b", "a")
                    .hardlink("c", "a")
                    .file("x", "X", 0o644)
                    .hardlink("y", "x"),
                Layer::new().whiteout("a").whiteout("x"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /b file 0644 0:0 t=1700000000 data="A" link=/b
            /c file 0644 0:0 t=1700000000 data="A" link=/b
            /y file 0644 0:0 t=1700000000 data="X"
            "#,
        ),
        ok(
            "a link to a first name a newer layer deletes keeps that name's owner, mode, time and xattrs",
            vec![
                Layer::new()
                    .file("a", "A", 0o600)
                    .with_owner(5, 6)
                    .with_mtime(123)
                    .with_xattr("user.k", "v")
                    .file("other", "O", 0o644)
                    .hardlink("b", "a"),
                Layer::new().whiteout("a"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /b file 0600 5:6 t=123 data="A" xattr=user.k:76
            /other file 0644 0:0 t=1700000000 data="O"
            "#,
        ),
        ok(
            "links keep the old content when a newer layer replaces the target by a file, dir or symlink (case 5)",
            vec![
                Layer::new()
                    .file("t", "old", 0o644)
                    .hardlink("l", "t")
                    .file("u", "old-u", 0o644)
                    .hardlink("m", "u")
                    .file("v", "old-v", 0o644)
                    .hardlink("n", "v"),
                Layer::new()
                    .file("t", "new", 0o644)
                    .dir("u", 0o755)
                    .file("u/inside", "i", 0o644)
                    .symlink("v", "t"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /l file 0644 0:0 t=1700000000 data="old"
            /m file 0644 0:0 t=1700000000 data="old-u"
            /n file 0644 0:0 t=1700000000 data="old-v"
            /t file 0644 0:0 t=1700000000 data="new"
            /u dir 0755 0:0 t=1700000000
            /u/inside file 0644 0:0 t=1700000000 data="i"
            /v symlink 0777 0:0 t=1700000000 -> t
            "#,
        ),
        ok(
            "a link into a lower layer keeps that content when a later layer replaces the target",
            vec![
                Layer::new().file("t", "v0", 0o644),
                Layer::new().hardlink("l", "t"),
                Layer::new().file("t", "v2", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /l file 0644 0:0 t=1700000000 data="v0"
            /t file 0644 0:0 t=1700000000 data="v2"
            "#,
        ),
        ok(
            "a link to a lower file whose name its own layer replaces afterwards binds to the lower file",
            vec![
                Layer::new().file("t", "lower", 0o644),
                Layer::new().hardlink("l", "t").file("t", "upper", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /l file 0644 0:0 t=1700000000 data="lower"
            /t file 0644 0:0 t=1700000000 data="upper"
            "#,
        ),
        ok(
            "hard links to devices and fifos share the node",
            vec![Layer::new().char_dev("null", 1, 3).hardlink("null2", "null").fifo("p").hardlink("p2", "p")],
            r#"
            / dir 0755 0:0 t=0
            /null chardev 0666 0:0 t=1700000000 dev=1,3 link=/null
            /null2 chardev 0666 0:0 t=1700000000 dev=1,3 link=/null
            /p fifo 0644 0:0 t=1700000000 link=/p
            /p2 fifo 0644 0:0 t=1700000000 link=/p
            "#,
        ),
    ]
}

fn special_name_cases() -> Vec<Case> {
    vec![ok(
        "AUFS metadata never reaches the output; links into plnk keep their content (case 11)",
        vec![
            Layer::new()
                .dir(".wh..wh.plnk", 0o700)
                .file(".wh..wh.plnk/1234.5678", "shared", 0o755)
                .dir("usr", 0o755)
                .dir("usr/bin", 0o755)
                .hardlink("usr/bin/x", ".wh..wh.plnk/1234.5678")
                .hardlink("usr/bin/y", ".wh..wh.plnk/1234.5678")
                .file(".wh..wh.aufs", "", 0o600)
                .dir(".wh..wh.orph", 0o700)
                .file(".wh..wh.orph/junk", "j", 0o644),
            Layer::new().file("usr/.wh..wh.aufs", "", 0o600),
        ],
        r#"
        / dir 0755 0:0 t=0
        /usr dir 0755 0:0 t=1700000000
        /usr/bin dir 0755 0:0 t=1700000000
        /usr/bin/x file 0755 0:0 t=1700000000 data="shared" link=/usr/bin/x
        /usr/bin/y file 0755 0:0 t=1700000000 data="shared" link=/usr/bin/x
        "#,
    )]
}

/// The capability xattr of `setcap cap_net_bind_service+ep` (VFS_CAP_REVISION_2).
const CAP: &[u8] =
    b"\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";

fn encoding_cases() -> Vec<Case> {
    let long_dir = "d".repeat(120);
    let long_file = "f".repeat(150);
    let long_target = "t/".repeat(90);
    let long_names = |style: LongNames, top: &str| {
        Layer::new()
            .long_names(style)
            .dir(format!("{top}/{long_dir}"), 0o755)
            .file(format!("{top}/{long_dir}/{long_file}"), "long", 0o644)
            .symlink(format!("{top}/{long_dir}/s"), &long_target)
            .hardlink(
                format!("{top}/{long_dir}/h"),
                format!("{top}/{long_dir}/{long_file}"),
            )
    };
    let mut long_expected = String::from("/ dir 0755 0:0 t=0\n");
    for top in ["gnu", "pax", "ustar"] {
        long_expected += &format!(
            "/{top} dir 0755 0:0 t=0
             /{top}/{long_dir} dir 0755 0:0 t=1700000000
             /{top}/{long_dir}/{long_file} file 0644 0:0 t=1700000000 data=\"long\" link=/{top}/{long_dir}/{long_file}
             /{top}/{long_dir}/h file 0644 0:0 t=1700000000 data=\"long\" link=/{top}/{long_dir}/{long_file}
             /{top}/{long_dir}/s symlink 0777 0:0 t=1700000000 -> {long_target}\n"
        );
    }
    let codec_layers: Vec<Layer> = Codec::ALL
        .iter()
        .map(|&c| {
            Layer::new()
                .file(format!("{c:?}"), format!("{c:?}"), 0o644)
                .compression(c)
        })
        .collect();
    let mut codec_layers = codec_layers;
    codec_layers.push(Layer::new().whiteout("Gzip").compression(Codec::Bzip2));
    let mut sixty_four = Vec::new();
    for i in 0..64 {
        let mut l = Layer::new()
            .file(format!("keep/{i:02}"), format!("{i}"), 0o644)
            .file(format!("tmp/{i}"), "t", 0o644);
        if i > 0 {
            l = l
                .whiteout(format!("tmp/{}", i - 1))
                .whiteout(format!("keep/{:02}", i - 1))
                .file(format!("keep/{:02}", i - 1), "again", 0o600);
        }
        sixty_four.push(l.compression(if i % 2 == 0 {
            Codec::Gzip
        } else {
            Codec::Plain
        }));
    }
    let mut sixty_four_expected = String::from("/ dir 0755 0:0 t=0\n/keep dir 0755 0:0 t=0\n");
    for i in 0..63 {
        sixty_four_expected += &format!("/keep/{i:02} file 0600 0:0 t=1700000000 data=\"again\"\n");
    }
    sixty_four_expected +=
        "/keep/63 file 0644 0:0 t=1700000000 data=\"63\"\n/tmp dir 0755 0:0 t=0\n";
    sixty_four_expected += "/tmp/63 file 0644 0:0 t=1700000000 data=\"t\"\n";

    vec![
        Case {
            name: "long names and link targets: PAX, GNU, ustar prefix (case 13)",
            layers: vec![
                long_names(LongNames::Pax, "pax"),
                long_names(LongNames::Gnu, "gnu"),
                long_names(LongNames::UstarPrefix, "ustar"),
            ],
            expect: Expect::Tree(expand_expected(&long_expected)),
        },
        ok(
            "xattrs with binary values and non-UTF-8 names (case 13)",
            vec![Layer::new()
                .dir("d", 0o755)
                .with_xattr("user.dir", "dirval")
                .file("d/f", "x", 0o644)
                .with_xattr("user.bin", b"\x00\x01\xff\n".as_slice())
                .with_xattr("security.capability", CAP)
                .with_xattr("trusted.t", "t")
                .file(b"d/caf\xe9".as_slice(), "latin1", 0o644)
                .file("d/sp ace", "s", 0o644)
                .symlink(b"d/l\xff".as_slice(), b"caf\xe9".as_slice())],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0755 0:0 t=1700000000 xattr=user.dir:64697276616c
            /d/caf\xe9 file 0644 0:0 t=1700000000 data="latin1"
            /d/f file 0644 0:0 t=1700000000 data="x" xattr=security.capability:0100000200040000000000000000000000000000 xattr=trusted.t:74 xattr=user.bin:0001ff0a
            /d/l\xff symlink 0777 0:0 t=1700000000 -> caf\xe9
            /d/sp\x20ace file 0644 0:0 t=1700000000 data="s"
            "#,
        ),
        ok(
            "PAX 1.0 sparse files (case 13)",
            vec![Layer::new()
                .sparse_file("sparse", 3 << 20, &[(0, &[b'a'; 1024]), (1 << 20, &[b'b'; 512]), (2 << 20, b"end")])
                .sparse_file("tail", 100_000, &[(99_990, b"0123456789")])
                .sparse_file("holes-only", 65_536, &[])],
            // sha256 prefixes computed independently (python: bytearray, hashlib).
            r#"
            / dir 0755 0:0 t=0
            /holes-only file 0644 0:0 t=1700000000 size=65536 sha256=de2f256064a0af79
            /sparse file 0644 0:0 t=1700000000 size=3145728 sha256=87331ce9b2b5a95e
            /tail file 0644 0:0 t=1700000000 size=100000 sha256=cd333edc8868c083
            "#,
        ),
        ok(
            "modes, ids, times, devices and fifos are preserved",
            vec![Layer::new()
                .dir("dev", 0o755)
                .char_dev("dev/null", 1, 3)
                .block_dev("dev/sda", 8, 0)
                .char_dev("dev/big", 4000, 300_000)
                .fifo("dev/fifo")
                .with_mode(0o600)
                .file("su", "s", 0o4755)
                .file("sgid", "g", 0o2711)
                .with_owner(0, 5)
                .dir("tmp", 0o1777)
                .file("ids", "i", 0o640)
                .with_owner(4_000_000_000, 3_000_000_000)
                .file("old", "o", 0o644)
                .with_mtime(1)
                .file("late", "l", 0o644)
                .with_mtime(4_000_000_000)
                .file("none", "", 0o000)],
            r#"
            / dir 0755 0:0 t=0
            /dev dir 0755 0:0 t=1700000000
            /dev/big chardev 0666 0:0 t=1700000000 dev=4000,300000
            /dev/fifo fifo 0600 0:0 t=1700000000
            /dev/null chardev 0666 0:0 t=1700000000 dev=1,3
            /dev/sda blockdev 0660 0:0 t=1700000000 dev=8,0
            /ids file 0640 4000000000:3000000000 t=1700000000 data="i"
            /late file 0644 0:0 t=4000000000 data="l"
            /none file 0000 0:0 t=1700000000 data=""
            /old file 0644 0:0 t=1 data="o"
            /sgid file 2711 0:5 t=1700000000 data="g"
            /su file 4755 0:0 t=1700000000 data="s"
            /tmp dir 1777 0:0 t=1700000000
            "#,
        ),
        ok(
            "every layer codec: plain, gzip, multi-member gzip, zstd, multi-frame zstd, xz, bzip2 (case 14)",
            codec_layers,
            r#"
            / dir 0755 0:0 t=0
            /Bzip2 file 0644 0:0 t=1700000000 data="Bzip2"
            /GzipMultiMember file 0644 0:0 t=1700000000 data="GzipMultiMember"
            /Plain file 0644 0:0 t=1700000000 data="Plain"
            /Xz file 0644 0:0 t=1700000000 data="Xz"
            /Zstd file 0644 0:0 t=1700000000 data="Zstd"
            /ZstdMultiFrame file 0644 0:0 t=1700000000 data="ZstdMultiFrame"
            "#,
        ),
        ok(
            "trailing garbage and extra zero blocks after the end-of-archive marker (case 14)",
            vec![
                Layer::new().file("a", "a", 0o644).trailing_garbage(b"this is not tar\n".repeat(40)),
                Layer::new().file("b", "b", 0o644).trailing_garbage(vec![0u8; 5120]).compression(Codec::Plain),
                Layer::new().file("c", "c", 0o644).trailing_garbage(b"junk".as_slice()).compression(Codec::Zstd),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a file 0644 0:0 t=1700000000 data="a"
            /b file 0644 0:0 t=1700000000 data="b"
            /c file 0644 0:0 t=1700000000 data="c"
            "#,
        ),
        Case {
            name: "64 layers, each adding and deleting files",
            layers: sixty_four,
            expect: Expect::Tree(expand_expected(&sixty_four_expected)),
        },
    ]
}

fn error_cases() -> Vec<Case> {
    let mut cases = vec![
        fails!(
            "a hard link to a missing target names both paths",
            vec![
                Layer::new().file("present", "p", 0o644),
                Layer::new().hardlink("lnk", "missing-target")
            ],
            HardlinkTargetMissing,
            ["lnk", "missing-target"]
        ),
        fails!(
            "a hard link whose target a layer between deleted",
            vec![
                Layer::new().file("gone-target", "g", 0o644),
                Layer::new().whiteout("gone-target"),
                Layer::new().hardlink("late-link", "gone-target"),
            ],
            HardlinkTargetMissing,
            ["late-link", "gone-target"]
        ),
        fails!(
            "a hard link to itself, with nothing there",
            vec![Layer::new().hardlink("self-link", "self-link")],
            HardlinkTargetMissing,
            ["self-link"]
        ),
        fails!(
            "a hard link to a directory",
            vec![Layer::new()
                .dir("some-dir", 0o755)
                .hardlink("dir-link", "some-dir")],
            HardlinkToDirectory,
            ["dir-link", "some-dir"]
        ),
        fails!(
            "a hard link to a file its own layer replaces afterwards",
            vec![Layer::new()
                .file("replaced-target", "old", 0o644)
                .hardlink("same-layer-link", "replaced-target")
                .file("replaced-target", "new", 0o644)],
            HardlinkTargetReplaced,
            ["same-layer-link", "replaced-target"]
        ),
        ok(
            "an entry beneath a symlink from a lower layer lands where it points (case 9)",
            vec![
                Layer::new().symlink("sl", "/etc"),
                Layer::new().file("sl/passwd", "x", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /etc dir 0755 0:0 t=0
            /etc/passwd file 0644 0:0 t=1700000000 data="x"
            /sl symlink 0777 0:0 t=1700000000 -> /etc
            "#,
        ),
        ok(
            "a directory beneath a symlink from a lower layer lands where it points (case 9)",
            vec![
                Layer::new().dir("real", 0o755).symlink("link-dir", "real"),
                Layer::new().dir("link-dir/sub", 0o755),
            ],
            r#"
            / dir 0755 0:0 t=0
            /link-dir symlink 0777 0:0 t=1700000000 -> real
            /real dir 0755 0:0 t=1700000000
            /real/sub dir 0755 0:0 t=1700000000
            "#,
        ),
        fails!(
            "a `..` component in a name (case 8)",
            vec![Layer::new()
                .file("ok", "", 0o644)
                .file("../escape", "x", 0o644)],
            HostilePath,
            ["../escape"]
        ),
        fails!(
            "a `..` that climbs out from deeper down (case 8)",
            vec![Layer::new()
                .dir("a", 0o755)
                .file("a/../../escape", "x", 0o644)],
            HostilePath,
            ["a/../../escape"]
        ),
        fails!(
            "a `..` in a hard link target (case 8)",
            vec![Layer::new()
                .file("f", "f", 0o644)
                .hardlink("hl", "../outside")],
            HostilePath,
            ["../outside"]
        ),
    ];
    for bad in [".wh.", ".wh..", ".wh..."] {
        cases.push(Case {
            name: "invalid whiteout names (case 8)",
            layers: vec![
                Layer::new().dir("d", 0o755),
                Layer::new().file(format!("d/{bad}"), "", 0o644),
            ],
            expect: Expect::Error {
                variant: "InvalidWhiteout",
                is: |e| matches!(e, Error::InvalidWhiteout { .. }),
                mentions: vec![format!("d/{bad}")],
            },
        });
    }
    cases
}

/// Disagreements the property test found between the model and an early merge; each is a rule
/// of DESIGN.md applied to a small stack.
fn found_by_properties() -> Vec<Case> {
    vec![
        ok(
            "a directory stays when a newer layer deletes all its children",
            vec![
                Layer::new().file("a/x", "x", 0o644).dir("b", 0o700).file("b/x", "x", 0o644),
                Layer::new().whiteout("a/x").whiteout("b/x"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a dir 0755 0:0 t=0
            /b dir 0700 0:0 t=1700000000
            "#,
        ),
        ok(
            "a layer replacing a directory after writing beneath it removes what it wrote (newer layer keeps the dir)",
            vec![
                Layer::new().file("d/x", "x", 0o644).fifo("d/p").file("d", "file", 0o644),
                Layer::new().dir("d", 0o700).file("d/y", "y", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /d dir 0700 0:0 t=1700000000
            /d/y file 0644 0:0 t=1700000000 data="y"
            "#,
        ),
        ok(
            "a layer replacing a directory after writing beneath it removes what it wrote (case 12)",
            vec![Layer::new().dir("df", 0o755).file("df/child", "c", 0o644).file("df", "f", 0o640)],
            r#"
            / dir 0755 0:0 t=0
            /df file 0640 0:0 t=1700000000 data="f"
            "#,
        ),
        ok(
            "a link to a lower file survives its own layer replacing the file's parent",
            vec![
                Layer::new().dir("b", 0o755).file("b/x", "x", 0o644),
                Layer::new().hardlink("c", "b/x").file("b", "now a file", 0o644),
            ],
            r#"
            / dir 0755 0:0 t=0
            /b file 0644 0:0 t=1700000000 data="now a file"
            /c file 0644 0:0 t=1700000000 data="x"
            "#,
        ),
        ok(
            "a directory that replaces a same-layer non-directory keeps its own metadata",
            vec![
                Layer::new().dir("a", 0o711).fifo("a/x").dir("a/x", 0o700).with_mtime(7),
                Layer::new().dir("a/x/y", 0o750),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a dir 0711 0:0 t=1700000000
            /a/x dir 0700 0:0 t=7
            /a/x/y dir 0750 0:0 t=1700000000
            "#,
        ),
        ok(
            "a default directory that replaced a lower file stays when its children go",
            vec![
                Layer::new().file("a", "file", 0o644),
                Layer::new().file("a/y", "y", 0o644),
                Layer::new().whiteout("a/y"),
            ],
            r#"
            / dir 0755 0:0 t=0
            /a dir 0755 0:0 t=0
            "#,
        ),
    ]
}

// ---------------------------------------------------------------------------------------------

/// Checks one case's outcome (a dump, or an error's message and, from ocirender, the error);
/// `None` when it is as expected.
fn judge(
    case: &Case,
    who: &str,
    result: Result<String, (String, Option<&Error>)>,
) -> Option<String> {
    match (&case.expect, result) {
        (Expect::Tree(want), Ok(got)) if *want == got => None,
        (Expect::Tree(want), Ok(got)) => Some(format!(
            "{who}: dumps differ (- expected, + actual):\n{}",
            diff(want, &got)
        )),
        (Expect::Tree(_), Err((msg, _))) => Some(format!("{who}: failed: {msg}")),
        (
            Expect::Error {
                variant,
                is,
                mentions,
            },
            Err((msg, err)),
        ) => {
            let mut problems = Vec::new();
            // The model's errors are plain strings: only their mentions are checked.
            if let Some(e) = err {
                if !is(e.root_cause()) {
                    problems.push(format!(
                        "root cause is {:?}, want {variant}",
                        e.root_cause()
                    ));
                }
            }
            for m in mentions {
                if !msg.contains(m.as_str()) {
                    problems.push(format!("message does not mention {m:?}"));
                }
            }
            (!problems.is_empty()).then(|| format!("{who}: error {msg:?}: {}", problems.join("; ")))
        }
        (Expect::Error { variant, .. }, Ok(got)) => Some(format!(
            "{who}: succeeded, want a {variant} error; output:\n{got}"
        )),
    }
}

/// Runs every case through `format`; panics listing every case that fails.
fn run_format(format: Format) {
    let mut failures = Vec::new();
    for case in cases() {
        let t = tempfile::tempdir().unwrap();
        let img = ImageBuilder::new()
            .layers(case.layers.iter().cloned())
            .build(t.path().join("img"));
        // A panic is a failure of its case; the other cases still run.
        let run =
            std::panic::catch_unwind(|| convert_one(&img, format, &ConvertOptions::default()));
        let verdict = match run {
            Ok(converted) => {
                let result = match &converted.result {
                    Ok(tree) => Ok(tree.dump(DumpOptions::default())),
                    Err(e) => Err((crate::support::error_text(e), Some(e))),
                };
                judge(&case, format.name(), result)
            }
            Err(panic) => Some(format!(
                "{}: panicked: {}",
                format.name(),
                panic_message(&panic)
            )),
        };
        if let Some(f) = verdict {
            failures.push(format!("case {:?}\n{f}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of the overlay cases fail:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    match (panic.downcast_ref::<&str>(), panic.downcast_ref::<String>()) {
        (Some(s), _) => s.to_string(),
        (_, Some(s)) => s.clone(),
        _ => "(no message)".into(),
    }
}

#[test]
fn the_model_agrees_with_every_hand_written_case() {
    let mut failures = Vec::new();
    for case in cases() {
        let result = model::apply(&case.layers)
            .map(|t| t.dump(DumpOptions::default()))
            .map_err(|m| (m, None));
        let verdict = judge(&case, "model", result);
        if let Some(f) = verdict {
            failures.push(format!("case {:?}\n{f}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn squashfs_output_matches_every_case() {
    run_format(Format::Squashfs);
}

/// The squashfs image of every case is the same byte for byte when the writer's tree spills
/// from the first entry (`ConvertOptions::memory_limit` 0), and a failing case fails the
/// same way.
#[test]
fn every_case_gives_the_same_squashfs_when_the_tree_spills() {
    let (mut failures, mut images, mut errors) = (Vec::new(), 0, 0);
    for case in cases() {
        let t = tempfile::tempdir().unwrap();
        let img = ImageBuilder::new()
            .layers(case.layers.iter().cloned())
            .build(t.path().join("img"));
        let mut outcome = Vec::new();
        for (name, limit) in [
            ("memory.sqfs", MemoryLimit::UNLIMITED),
            ("spilled.sqfs", MemoryLimit::bytes(0)),
        ] {
            let out = t.path().join(name);
            let options = ConvertOptions::default().memory_limit(limit);
            let r = open_image(&img).and_then(|image| {
                convert(&image, &ImageSpec::new(Format::Squashfs, &out), &options)
            });
            outcome.push(match r {
                Ok(_) => Ok(std::fs::read(&out).unwrap()),
                Err(e) => Err(crate::support::error_text(&e)),
            });
        }
        match (&outcome[0], &outcome[1]) {
            (Ok(a), Ok(b)) if a == b => images += 1,
            (Err(a), Err(b)) if a == b => errors += 1,
            (Ok(_), Ok(_)) => failures.push(format!("{}: images differ", case.name)),
            (a, b) => failures.push(format!(
                "{}: in memory {:?}, spilled {:?}",
                case.name,
                a.as_ref().map(|_| "image"),
                b.as_ref().map(|_| "image")
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{images} identical images, {errors} identical errors");
    assert!(
        images >= 40 && errors >= 10,
        "{images} images, {errors} errors"
    );
}

#[test]
fn tar_output_matches_every_case() {
    run_format(Format::Tar);
}

#[test]
fn dir_output_matches_every_case() {
    run_format(Format::Dir);
}

/// Every tricky case of DESIGN.md has a row (tagged "(case N)", or named "case 3: …").
#[test]
fn the_table_covers_the_tricky_cases() {
    let names: Vec<&str> = cases().iter().map(|c| c.name).collect();
    for n in 1..=14 {
        let tag = format!("(case {n})");
        let covered = names.iter().any(|name| name.contains(&tag)) || [3].contains(&n);
        assert!(covered, "DESIGN's tricky case {n} has no case in the table");
    }
    assert!(names.iter().filter(|n| n.starts_with("case 3:")).count() >= 5);
}

/// A small distribution-like image, the same in every format and with any number of threads.
#[test]
fn a_small_distro_image_in_every_format_and_thread_count() {
    let t = tempfile::tempdir().unwrap();
    let layers = vec![
        Layer::new()
            .dir("bin", 0o755)
            .file("bin/busybox", vec![0xb0; 300_000], 0o755)
            .hardlink("bin/sh", "bin/busybox")
            .symlink("bin/ls", "busybox")
            .dir("etc", 0o755)
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0o644)
            .dir("tmp", 0o1777),
        Layer::new()
            .file("etc/passwd", "root:x:0:0:root:/root:/bin/ash\n", 0o644)
            .whiteout("tmp")
            .dir("var/cache", 0o700)
            .file("var/cache/blob", vec![0u8; 200_000], 0o600)
            .compression(Codec::Zstd),
    ];
    let img = ImageBuilder::new()
        .layers(layers.clone())
        .build(t.path().join("img"));
    let expected = r#"
        / dir 0755 0:0 t=0
        /bin dir 0755 0:0 t=1700000000
        /bin/busybox file 0755 0:0 t=1700000000 size=300000 sha256=SHA_BUSYBOX link=/bin/busybox
        /bin/ls symlink 0777 0:0 t=1700000000 -> busybox
        /bin/sh file 0755 0:0 t=1700000000 size=300000 sha256=SHA_BUSYBOX link=/bin/busybox
        /etc dir 0755 0:0 t=1700000000
        /etc/passwd file 0644 0:0 t=1700000000 data="root:x:0:0:root:/root:/bin/ash\n"
        /var dir 0755 0:0 t=0
        /var/cache dir 0700 0:0 t=1700000000
        /var/cache/blob file 0600 0:0 t=1700000000 size=200000 sha256=SHA_ZEROS
    "#
    // Hashes of 300000 × 0xb0 and 200000 zero bytes (sha256sum, first 16 digits).
    .replace("SHA_BUSYBOX", "0ba651f9dc3bda73")
    .replace("SHA_ZEROS", "4cbbd9be0cba6858");
    assert_dump!(expected.as_str(), model::apply(&layers).unwrap(), "model");
    for jobs in [1, 2, 8] {
        let options = ConvertOptions::default().jobs(ocirender::Jobs::new(jobs).unwrap());
        for (format, result) in convert_all(&img, &options) {
            let tree = result.unwrap_or_else(|e| panic!("{format:?}, {jobs} jobs: {e}"));
            assert_dump!(expected.as_str(), tree, "{format:?} with {jobs} jobs");
        }
    }
}
