//! Property: for random layer stacks, every output equals the reference model.
//!
//! Layers are drawn over a tiny name space (`a`, `b`, `c`, each with children `x`, `y`) so
//! that collisions, whiteouts, opaque directories, replacements of directories by files (and
//! back) and hard links happen in most cases. The model (tests/support/model.rs) is the
//! oracle: where it accepts the stack, the output must dump identically; where it rejects it
//! (a hard link to a missing path, an entry beneath a symlink, …), ocirender must fail too.
//!
//! A failing case shrinks to a short stack, printed as builder code (`Layer::new().file(…)…`)
//! that can be pasted into tests/regression.rs.

mod support;

use proptest::prelude::*;

use ocirender::{ConvertOptions, Format};
use support::builder::{ImageBuilder, Layer};
use support::dump::DumpOptions;
use support::model;
use support::outputs::{convert_one, diff};

/// One builder call.
#[derive(Clone, Debug)]
enum Step {
    Dir(&'static str, u32, i64),
    File(&'static str, &'static str, u32),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    Whiteout(&'static str),
    Opaque(&'static str),
    Fifo(&'static str),
}

const PATHS: &[&str] = &["a", "b", "c", "a/x", "a/y", "b/x", "b/y", "a/x/y"];
const DIRS: &[&str] = &["", "a", "b", "a/x"];

fn path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(PATHS)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (path(), prop::sample::select(&[0o755u32, 0o700, 0o1777][..]), prop::sample::select(&[0i64, 1_700_000_000, 5][..]))
            .prop_map(|(p, m, t)| Step::Dir(p, m, t)),
        6 => (path(), prop::sample::select(&["", "1", "22", "333"][..]), prop::sample::select(&[0o644u32, 0o600, 0o4755][..]))
            .prop_map(|(p, c, m)| Step::File(p, c, m)),
        1 => (path(), prop::sample::select(&["a", "../x", "/b/y"][..])).prop_map(|(p, t)| Step::Symlink(p, t)),
        6 => (path(), path()).prop_map(|(p, t)| Step::Hardlink(p, t)),
        3 => path().prop_map(Step::Whiteout),
        2 => prop::sample::select(DIRS).prop_map(Step::Opaque),
        1 => path().prop_map(Step::Fifo),
    ]
}

fn to_layer(steps: &[Step]) -> Layer {
    steps.iter().fold(Layer::new(), |l, s| match *s {
        Step::Dir(p, m, t) => l.dir(p, m).with_mtime(t),
        Step::File(p, c, m) => l.file(p, c, m),
        Step::Symlink(p, t) => l.symlink(p, t),
        Step::Hardlink(p, t) => l.hardlink(p, t),
        Step::Whiteout(p) => l.whiteout(p),
        Step::Opaque(d) => l.opaque(d),
        Step::Fifo(p) => l.fifo(p),
    })
}

/// Stacks of 1–6 layers of 0–6 entries each. Entries that would make the stack invalid (a
/// link to a missing path, an entry beneath a symlink) are dropped as the stack is drawn, so
/// most stacks are valid; one stack in eight keeps its first invalid entry, and then ocirender
/// must refuse the stack as the model does.
fn stack() -> impl Strategy<Value = Vec<Layer>> {
    (
        prop::collection::vec(prop::collection::vec(step(), 0..=6), 1..=6),
        prop::bool::weighted(0.125),
    )
        .prop_map(|(layers, keep_invalid)| repair(layers, keep_invalid))
}

fn repair(raw: Vec<Vec<Step>>, keep_invalid: bool) -> Vec<Layer> {
    let mut done: Vec<Layer> = Vec::new();
    let mut links: Vec<&'static str> = Vec::new();
    for steps in raw {
        let mut kept: Vec<Step> = Vec::new();
        for s in steps {
            kept.push(s.clone());
            let mut trial = done.clone();
            trial.push(to_layer(&kept));
            if let Err(why) = model::apply(&trial) {
                if keep_invalid && !known_gap(&why, &s, &links) {
                    return trial;
                }
                kept.pop();
            } else if let Step::Hardlink(p, _) = s {
                links.push(p);
            }
        }
        done.push(to_layer(&kept));
    }
    done
}

/// The one invalid input ocirender does not refuse yet (tests/regression.rs,
/// `a_write_beneath_a_hard_link_to_an_older_symlink`, ignored): an entry beneath a hard link
/// whose target is a symlink. The generator never keeps it as the stack's invalid entry.
fn known_gap(why: &str, step: &Step, links: &[&str]) -> bool {
    let path = match *step {
        Step::Dir(p, ..) | Step::File(p, ..) | Step::Symlink(p, _) | Step::Hardlink(p, _) => p,
        Step::Whiteout(p) | Step::Opaque(p) | Step::Fifo(p) => p,
    };
    why.contains("beneath symlink")
        && links.iter().any(|l| {
            path.strip_prefix(l)
                .is_some_and(|rest| rest.starts_with('/'))
        })
}

/// Converts `layers` to `format` and compares with the model.
fn check(layers: &[Layer], format: Format) -> Result<(), TestCaseError> {
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layers(layers.iter().cloned())
        .build(t.path().join("img"));
    let (expected, may_refuse) = model::apply_detailed(layers);
    let actual = convert_one(&img, format, &ConvertOptions::default()).result;
    match (expected, actual) {
        // A layer replaced a directory after writing entries beneath it: extraction removes
        // them, a streaming writer refuses (the one place the rules allow a refusal).
        (Ok(_), Err(err))
            if may_refuse
                && matches!(
                    err.root_cause(),
                    ocirender::Error::ReplacedAfterWrite { .. }
                ) => {}
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
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut accepted, mut rejected, mut links, mut opaque, mut dir_over_file) = (0, 0, 0, 0, 0);
    for _ in 0..500 {
        let layers = stack().new_tree(&mut runner).unwrap().current();
        let text = format!("{layers:?}");
        match model::apply(&layers) {
            Ok(tree) => {
                accepted += 1;
                links += tree.0.values().any(|n| n.link.is_some()) as u32;
            }
            Err(_) => rejected += 1,
        }
        opaque += text.contains(".opaque(") as u32;
        let kinds: std::collections::BTreeSet<(&[u8], bool)> = layers
            .iter()
            .flat_map(|l| &l.entries)
            .map(|e| (e.name.as_slice(), e.body == support::builder::Body::Dir))
            .collect();
        dir_over_file += kinds.iter().any(|&(n, d)| d && kinds.contains(&(n, false))) as u32;
    }
    eprintln!("accepted {accepted} rejected {rejected} links {links} opaque {opaque} dir/file {dir_over_file}");
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
}
