//! Property: for random layer stacks, every output equals the reference model.
//!
//! Layers are drawn over a tiny name space (`a`, `b`, `c`, each with children `x`, `y`) so
//! that collisions, whiteouts, opaque directories, replacements of directories by files (and
//! back) and hard links happen in most cases. Names are also spelled with `.`, `..` and `//`
//! components that stay inside the root (`a/x/..` is `a`), and symlinks point at the same
//! names, absolutely or relatively, through `..`, to each other (chains, loops) or to nothing,
//! so that entries, hard-link targets, whiteouts and opaque markers often resolve through a
//! symlink. The model (tests/support/model.rs) is the oracle: where it accepts the stack, the
//! output must dump identically; where it rejects it (a hard link to a missing path, a symlink
//! loop, …), ocirender must fail too.
//!
//! A failing case shrinks to a short stack, printed as builder code (`Layer::new().file(…)…`)
//! that can be pasted into tests/regression.rs.

use proptest::prelude::*;

use crate::support::builder::{ImageBuilder, Layer};
use crate::support::dump::DumpOptions;
use crate::support::model;
use crate::support::outputs::{convert_one, diff};
use ocirender::{ConvertOptions, Format};

/// One builder call.
#[derive(Clone, Debug)]
enum Step {
    Dir(&'static str, u32, i64),
    File(&'static str, &'static str, u32),
    Symlink(&'static str, &'static str),
    /// Symlinks that resolve to each other (one of [`LOOPS`]).
    Loop(&'static [(&'static str, &'static str)]),
    Hardlink(&'static str, &'static str),
    Whiteout(&'static str),
    Opaque(&'static str),
    Fifo(&'static str),
    /// Several steps (one of [`SCENES`]).
    Scene(&'static [Step]),
}

/// Entry names and hard-link targets. `c` has no children but through symlinks (`c/x` is
/// often `a/x`); the last four are other spellings of names before them (`a`, `b/x`, `a/y`,
/// `b/x`).
const PATHS: &[&str] = &[
    "a", "b", "c", "a/x", "a/y", "b/x", "b/y", "a/x/y", "c/x", "c/y", "a/x/..", "c/../b/x",
    "./a//y/", "b/y/../x",
];
/// What whiteouts hide (`Layer::whiteout` puts `.wh.` before the last component): the same
/// names, and spellings with `..` in the parent (`c/../a` is `.wh.a`, `a/y/../x` is
/// `a/.wh.x`, `e/../c` is `.wh.c` through a parent that does not exist).
const WHITEOUTS: &[&str] = &[
    "a", "b", "c", "a/x", "a/y", "b/x", "b/y", "a/x/y", "c/x", "c/y", "c/../a", "a/y/../x",
    "./b//y", "e/../c",
];
/// Directories made opaque (`a/x/..` is `a`, `c/../b` is `b`).
const DIRS: &[&str] = &["", "a", "b", "a/x", "c", "b/x", "a/x/..", "c/../b"];
/// Symlink targets: absolute and relative names of the name space (`a -> b` next to
/// `b -> a` is a loop, `c -> a` next to `a -> b` a chain), through `..` (clamped at the root:
/// `../../c` from `a/x` is `c`), and to nothing (`/e`).
const TARGETS: &[&str] = &[
    "a", "b", "c", "x", "../x", "/b/y", "/a", "/b", "../b", "x/../b", "/c/../a", "../../c", "/e",
    "y/..",
];

/// Where symlinks go: mostly names with children in [`PATHS`], so that later entries, link
/// targets and markers go through them.
const SYMLINKS: &[&str] = &["a", "b", "c", "a/x", "a/y", "b/y", "c/../b", "a/x/.."];
/// Symlink loops: two names, one name, relative and absolute, with `..` on the way.
const LOOPS: &[&[(&str, &str)]] = &[
    &[("a", "b"), ("b", "a")],
    &[("a/x", "y"), ("a/y", "../a/x")],
    &[("c", "/c")],
    &[("b", "../c/..//b")],
];

/// Short sequences that random steps rarely line up: a hard link whose target goes through a
/// symlink (relative, absolute, to a symlinked parent), a chain, a hard link to a symlink with
/// an entry beneath it.
const SCENES: &[&[Step]] = &[
    &[
        Step::Symlink("c", "a"),
        Step::File("a/x", "1", 0o644),
        Step::Hardlink("b/y", "c/x"),
    ],
    &[
        Step::Dir("b", 0o755, 0),
        Step::Symlink("a/y", "../b"),
        Step::File("b/x", "22", 0o600),
        Step::Hardlink("c", "a/y/x"),
    ],
    &[
        Step::Symlink("c", "/a/x"),
        Step::Symlink("b", "c"),
        Step::File("b/y", "333", 0o644),
        Step::Hardlink("a/y", "b/y"),
    ],
    &[
        Step::Symlink("b", "/a"),
        Step::Hardlink("c", "b"),
        Step::File("c/x", "1", 0o644),
    ],
];

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(PATHS)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (path(), prop::sample::select(&[0o755u32, 0o700, 0o1777][..]), prop::sample::select(&[0i64, 1_700_000_000, 5][..]))
            .prop_map(|(p, m, t)| Step::Dir(p, m, t)),
        6 => (path(), prop::sample::select(&["", "1", "22", "333"][..]), prop::sample::select(&[0o644u32, 0o600, 0o4755][..]))
            .prop_map(|(p, c, m)| Step::File(p, c, m)),
        6 => (prop::sample::select(SYMLINKS), prop::sample::select(TARGETS)).prop_map(|(p, t)| Step::Symlink(p, t)),
        1 => prop::sample::select(LOOPS).prop_map(Step::Loop),
        6 => (path(), path()).prop_map(|(p, t)| Step::Hardlink(p, t)),
        3 => prop::sample::select(WHITEOUTS).prop_map(Step::Whiteout),
        2 => prop::sample::select(DIRS).prop_map(Step::Opaque),
        1 => path().prop_map(Step::Fifo),
        1 => prop::sample::select(SCENES).prop_map(Step::Scene),
    ]
}

fn to_layer(steps: &[Step]) -> Layer {
    steps.iter().fold(Layer::new(), add)
}

fn add(l: Layer, s: &Step) -> Layer {
    match *s {
        Step::Dir(p, m, t) => l.dir(p, m).with_mtime(t),
        Step::File(p, c, m) => l.file(p, c, m),
        Step::Symlink(p, t) => l.symlink(p, t),
        Step::Loop(links) => links.iter().fold(l, |l, &(p, t)| l.symlink(p, t)),
        Step::Hardlink(p, t) => l.hardlink(p, t),
        Step::Whiteout(p) => l.whiteout(p),
        Step::Opaque(d) => l.opaque(d),
        Step::Fifo(p) => l.fifo(p),
        Step::Scene(steps) => steps.iter().fold(l, add),
    }
}

/// Stacks of 1–6 layers of 0–6 entries each. Entries that would make the stack invalid (a
/// link to a missing path, a name resolved through a symlink loop) are dropped as the stack is
/// drawn, so most stacks are valid; one stack in eight keeps its first invalid entry, and then
/// ocirender must refuse the stack as the model does.
fn stack() -> impl Strategy<Value = Vec<Layer>> {
    (
        prop::collection::vec(prop::collection::vec(step(), 0..=6), 1..=6),
        prop::bool::weighted(0.125),
    )
        .prop_map(|(layers, keep_invalid)| repair(layers, keep_invalid))
}

fn repair(raw: Vec<Vec<Step>>, keep_invalid: bool) -> Vec<Layer> {
    let mut done: Vec<Layer> = Vec::new();
    for steps in raw {
        // Indices of links to nothing (or to a directory) that may not wait for a later entry
        // to replace them: those that were still there at the end of the layer last time.
        let mut strict = std::collections::BTreeSet::new();
        let layer = loop {
            let mut kept: Vec<Step> = Vec::new();
            let mut waiting = Vec::new();
            for (k, s) in steps.iter().enumerate() {
                kept.push(s.clone());
                let mut trial = done.clone();
                trial.push(to_layer(&kept));
                match model::apply(&trial) {
                    Ok(_) => {}
                    // Only an error if still there at the end of the layer: keep it for now, so
                    // that stacks have links replaced by a later entry of their layer.
                    Err(why)
                        if model::refused_for_an_unreplaced_link(&why) && !strict.contains(&k) =>
                    {
                        waiting.push(k);
                    }
                    Err(_) if keep_invalid => return trial,
                    Err(_) => {
                        kept.pop();
                    }
                }
            }
            let mut trial = done.clone();
            trial.push(to_layer(&kept));
            match model::apply(&trial) {
                Ok(_) => break to_layer(&kept),
                Err(_) if keep_invalid => return trial,
                Err(_) => strict.extend(waiting),
            }
        };
        done.push(layer);
    }
    done
}

/// Converts `layers` to `format` and compares with the model.
fn check(layers: &[Layer], format: Format) -> Result<(), TestCaseError> {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layers(layers.iter().cloned())
        .build(t.path().join("img"));
    let expected = model::apply(layers);
    let actual = convert_one(&img, format, &ConvertOptions::default()).result;
    match (expected, actual) {
        (Ok(e), Ok(a)) => {
            let (e, a) = (
                e.dump(DumpOptions::default()),
                a.dump(DumpOptions::default()),
            );
            prop_assert!(
                e == a,
                "{format:?} differs from the model (- model, + output):\n{}",
                diff(&e, &a)
            );
        }
        (Err(_), Err(_)) => {}
        (Err(why), Ok(_)) if model::refused_out_of_caution(&why) => {}
        (Ok(e), Err(err)) => {
            prop_assert!(
                false,
                "{format:?} failed ({err}) where the model gives:\n{}",
                e.dump(DumpOptions::default())
            )
        }
        (Err(why), Ok(a)) => {
            prop_assert!(
                false,
                "{format:?} succeeded where the model refuses ({why}):\n{}",
                a.dump(DumpOptions::default())
            )
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn dir_and_tar_outputs_equal_the_model(layers in stack()) {
        check(&layers, Format::Dir)?;
        check(&layers, Format::Tar)?;
    }
}

proptest! {
    // unsquashfs runs once per case: fewer cases keep the file's runtime reasonable.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn squashfs_output_equals_the_model(layers in stack()) {
        check(&layers, Format::Squashfs)?;
    }
}

/// The generator reaches the interesting cases often (a weak generator makes a weak property).
#[test]
fn stacks_hit_the_tricky_cases() {
    use crate::support::builder::Body;
    use crate::support::dump::Kind;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut rejected, mut links, mut opaque, mut dir_over_file) = (0, 0, 0, 0, 0);
    let (mut loops, mut dotted, mut symlink_links, mut pending_links) = (0, 0, 0, 0);
    let mut through: std::collections::BTreeMap<&str, u32> = Default::default();
    for _ in 0..500 {
        let layers = stack().new_tree(&mut runner).unwrap().current();
        let text = format!("{layers:?}");
        match model::apply(&layers) {
            Ok(tree) => {
                accepted += 1;
                links += tree.0.values().any(|n| n.link.is_some()) as u32;
                symlink_links += tree
                    .0
                    .values()
                    .any(|n| n.link.is_some() && matches!(n.kind, Kind::Symlink(_)))
                    as u32;
                for (what, n) in model::symlink_resolutions(&layers) {
                    *through.entry(what).or_default() += (n > 0) as u32;
                }
            }
            Err(why) => {
                rejected += 1;
                loops += why.contains(model::TOO_MANY_LINKS) as u32;
            }
        }
        opaque += text.contains(".opaque(") as u32;
        let entries = || layers.iter().flat_map(|l| &l.entries);
        let kinds: std::collections::BTreeSet<(&[u8], bool)> = entries()
            .map(|e| (e.name.as_slice(), e.body == Body::Dir))
            .collect();
        dir_over_file += kinds.iter().any(|&(n, d)| d && kinds.contains(&(n, false))) as u32;
        dotted += entries().any(|e| {
            e.name
                .split(|&b| b == b'/')
                .any(|c| matches!(c, b"" | b"." | b".."))
        }) as u32;
        // A link to nothing or to a directory that a later entry of its layer replaces.
        pending_links += (0..layers.len()).any(|li| {
            let l = &layers[li];
            model::apply(&layers[..=li]).is_ok()
                && (0..l.entries.len()).any(|k| {
                    let mut upto = layers[..li].to_vec();
                    upto.push(Layer {
                        entries: l.entries[..=k].to_vec(),
                        ..l.clone()
                    });
                    model::apply(&upto)
                        .is_err_and(|why| model::refused_for_an_unreplaced_link(&why))
                })
        }) as u32;
    }
    let through_entry = through.get("entry").copied().unwrap_or(0);
    let through_whiteout = through.get("whiteout").copied().unwrap_or(0);
    let through_opaque = through.get("opaque").copied().unwrap_or(0);
    let through_target = through.get("hardlink target").copied().unwrap_or(0);
    eprintln!(
        "accepted {accepted} rejected {rejected} links {links} opaque {opaque} \
         dir/file {dir_over_file} loops {loops} dotted {dotted} symlink-links {symlink_links} \
         pending-links {pending_links} through {through:?}"
    );
    assert!(
        accepted >= 400,
        "only {accepted} of 500 stacks are valid ({rejected} rejected)"
    );
    assert!(
        links >= 30,
        "only {links} accepted stacks keep a hard-link group"
    );
    assert!(
        opaque >= 150 && dir_over_file >= 150,
        "opaque {opaque}, dir/file {dir_over_file}"
    );
    assert!(
        dotted >= 200 && symlink_links >= 15 && loops >= 5 && pending_links >= 50,
        "dotted {dotted}, symlink-links {symlink_links}, loops {loops}, pending-links {pending_links}"
    );
    assert!(
        through_entry >= 100 && through_target >= 60,
        "through a symlink: {through:?}"
    );
    assert!(
        through_whiteout >= 20 && through_opaque >= 15,
        "through a symlink: {through:?}"
    );
}
