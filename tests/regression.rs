//! One test per bug the fuzz targets (fuzz/) found, with the input the target reported (its
//! input type's `Debug` prints builder code) and what the fixed code does. `// See:` names the
//! target and the finding; the note says what went wrong.

mod support;

use ocirender::{ConvertOptions, Error, Format};
use support::builder::{ImageBuilder, Layer};
use support::dump::DumpOptions;
use support::model;
use support::outputs::{convert_one, diff};

/// Converts `img` to every format; each must fail with a root cause that `is` accepts (and
/// leave no output, which `convert_one` checks).
fn fails_everywhere(img: &ImageBuilder, is: fn(&Error) -> bool, what: &str) {
    let t = tempfile::tempdir().unwrap();
    let built = img.build(t.path().join("img"));
    for format in Format::ALL {
        match convert_one(&built.path, format, &ConvertOptions::default()).result {
            Ok(tree) => panic!(
                "{format:?}: converted where {what} was expected:\n{}",
                tree.dump(DumpOptions::default())
            ),
            Err(e) => assert!(is(e.root_cause()), "{format:?}: {e} is not {what}"),
        }
    }
    assert!(
        model::apply(img.layer_list()).is_err(),
        "the model accepts the stack"
    );
}

/// Converts `img` to every format; each output must equal the model's tree.
fn matches_the_model(img: &ImageBuilder) {
    let t = tempfile::tempdir().unwrap();
    let built = img.build(t.path().join("img"));
    let expected = model::apply(img.layer_list())
        .expect("the model accepts the stack")
        .dump(DumpOptions::default());
    for format in Format::ALL {
        let tree = convert_one(&built.path, format, &ConvertOptions::default())
            .result
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let actual = tree.dump(DumpOptions::default());
        assert!(
            expected == actual,
            "{format:?} differs from the model (- model, + output):\n{}",
            diff(&expected, &actual)
        );
    }
}

// See: issue 5, fuzz target `merge` (structured mode; its own seed for DESIGN.md case 5).
// A layer wrote `a`, linked `b` to it, then replaced `a`; `b` itself was hidden (a newer layer
// makes `b` a directory), but a newer link `c → b` bound to `b`'s version, which still named
// the inode *delivered at path `a`* — by then the new `a`. The output linked `c` to the new
// content instead of refusing (the rules cannot bind such a link: HardlinkTargetReplaced).
#[test]
fn a_hidden_link_to_a_file_its_layer_replaces_afterwards() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("a", "t", 0o644)
                .hardlink("b", "a")
                .file("a", "replaced", 0o644),
        )
        .layer(Layer::new().hardlink("c", "b").dir("b", 0o755));
    fails_everywhere(
        &img,
        |e| matches!(e, Error::HardlinkTargetReplaced { .. }),
        "HardlinkTargetReplaced",
    );
}
