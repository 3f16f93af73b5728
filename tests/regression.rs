//! One test per bug the fuzz targets (fuzz/) found, with the input the target reported (its
//! input type's `Debug` prints builder code) and what the fixed code does. `// See:` names the
//! target and the finding; the note says what went wrong.
//!
//! Since issue 12 names are resolved through symlinks as the runtimes resolve them: the findings
//! that once ended in a refusal (an entry beneath a symlink, one its own layer removed after it
//! was written) now convert, and are checked against the model's tree.

use crate::support::builder::{Codec, ImageBuilder, Layer};
use crate::support::dump::{DumpOptions, Tree};
use crate::support::model;
use crate::support::outputs::{convert_one, open_image};
use ocirender::sink::WarningKind;
use ocirender::{convert, ConvertOptions, Error, Format, ImageSpec};

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

/// Converts `img` to every format; each output must equal the model's tree. Where the model
/// refuses only out of caution (`model::refused_out_of_caution`), each format must either
/// refuse with `HardlinkTargetReplaced` or convert, and all that convert must agree.
fn matches_the_model(img: &ImageBuilder) {
    let expected = match model::apply(img.layer_list()) {
        Ok(tree) => Some(tree.dump(DumpOptions::default())),
        Err(why) if model::refused_out_of_caution(&why) => None,
        Err(why) => panic!("the model refuses the stack: {why}"),
    };
    let t = tempfile::tempdir().unwrap();
    let built = img.build(t.path().join("img"));
    let mut converted: Option<String> = None;
    for format in Format::ALL {
        match convert_one(&built.path, format, &ConvertOptions::default()).result {
            Ok(tree) => {
                let dump = tree.dump(DumpOptions::default());
                if let Some(expected) = expected.as_ref().or(converted.as_ref()) {
                    assert_eq!(&dump, expected, "{format:?}");
                }
                converted = Some(dump);
            }
            Err(e) if expected.is_none() => assert!(
                matches!(e.root_cause(), Error::HardlinkTargetReplaced { .. }),
                "{format:?}: {e}"
            ),
            Err(e) => panic!("{format:?}: {e}"),
        }
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

// See: issue 5, fuzz target `merge` (structured mode, crash-821da173). The directory sink
// leaves out a device it cannot create with a warning (here: a major number mknod(2) cannot
// take), but a hard link to that device then failed the whole conversion with
// HardlinkTargetMissing. Now the link is left out with the same warning. Such entries also
// replace what the path held before (a path a layer repeats): that was left in place.
#[test]
fn a_hard_link_to_a_device_the_directory_sink_cannot_create() {
    let img = ImageBuilder::new().layer(
        Layer::new()
            .file("b", "older b", 0o644)
            .file("c", "older c", 0o644)
            .block_dev("a", 2097151, 4095)
            .hardlink("b", "a")
            .block_dev("c", 4096, 0),
    );
    let t = tempfile::tempdir().unwrap();
    let built = img.build(t.path().join("img"));
    let out = t.path().join("out");
    let spec = ImageSpec::new(Format::Dir, &out);
    let summary = convert(
        &open_image(&built.path).unwrap(),
        &spec,
        &ConvertOptions::default(),
    )
    .unwrap();
    let mut not_created: Vec<String> = summary
        .warnings
        .iter()
        .filter(|w| matches!(w.kind, WarningKind::DeviceNotCreated { .. }))
        .map(|w| w.path.lossy())
        .collect();
    not_created.sort();
    assert_eq!(not_created, ["a", "b", "c"]);
    assert_eq!(
        Tree::from_dir(&out).dump(DumpOptions::default()),
        "/ dir 0755 0:0 t=0\n"
    );
}

// See: issue 5, fuzz target `merge` (structured mode, crash-acb77aff). An older layer has a
// symlink `a`; a newer layer writes `a/x` and only afterwards a directory entry `a`. Applied in
// order, `a/x` goes beneath the symlink (an error by the overlay rules), but the merge took any
// newer directory entry for `a` as replacing the symlink first. It now looks at how the oldest
// newer layer that uses `a` begins, in tar order.
#[test]
fn an_entry_beneath_an_older_symlink_before_its_layer_makes_the_directory() {
    for img in [
        ImageBuilder::new()
            .layer(Layer::new().symlink("a", "../x"))
            .layer(Layer::new().file("a/x", "x", 0o644).dir("a", 0o755)),
        ImageBuilder::new()
            .layer(Layer::new().symlink("a", "../x"))
            .layer(Layer::new().file("a/x", "x", 0o644))
            .layer(Layer::new().dir("a", 0o755)),
        ImageBuilder::new()
            .layer(Layer::new().symlink("a", "../x"))
            .layer(Layer::new().file("a/b/x", "x", 0o644).dir("a", 0o755))
            .layer(Layer::new().dir("a/b", 0o755)),
    ] {
        matches_the_model(&img);
    }
    // The directory entry first replaces the symlink, as extraction would.
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().symlink("a", "../x"))
            .layer(Layer::new().dir("a", 0o755).file("a/x", "x", 0o644)),
    );
}

// See: tests/properties.rs (proptest, tests/properties.proptest-regressions), met while fixing
// the fuzz findings above. A layer links `a` to file `b`, then replaces `b` by a link to `a`:
// extraction puts the same inode back at `b`. The merge refused (HardlinkTargetReplaced) as if
// `b` now held other content.
#[test]
fn a_path_replaced_by_a_link_to_another_name_of_its_inode() {
    matches_the_model(
        &ImageBuilder::new().layer(
            Layer::new()
                .file("b", "", 0o644)
                .hardlink("a", "b")
                .hardlink("b", "a"),
        ),
    );
}

// See: issue 5, fuzz target `merge` (structured mode, crash-ecfeb642). A layer has a device
// `a`, then a hard link `a/y` to `a`: making the link's parent replaces the device by a
// directory first, so the link points to a directory (an error). A newer layer's directory
// `a` hid the device from the output, and the merge bound the link to the hidden device.
#[test]
fn a_link_whose_parent_replaces_its_hidden_target() {
    let img = ImageBuilder::new()
        .layer(Layer::new().fifo("a").hardlink("a/y", "a"))
        .layer(Layer::new().dir("a", 0o755));
    fails_everywhere(
        &img,
        |e| matches!(e, Error::HardlinkToDirectory { .. }),
        "HardlinkToDirectory",
    );
}

// See: issue 5, fuzz target `merge` (structured mode, crash-da432d9e). A whiteout entry that is
// a hard link to `..`: the tar reader refuses the link target before the overlay rules see the
// whiteout. The reference model only looked at a whiteout's name and accepted the stack; it
// now checks link targets of every entry, as the reader does.
#[test]
fn a_whiteout_that_is_a_hard_link_to_dot_dot() {
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("a", 0o755))
        .layer(Layer::new().hardlink("a/.wh.x", ".."));
    fails_everywhere(
        &img,
        |e| matches!(e, Error::HostilePath { .. }),
        "HostilePath",
    );
}

// See: issue 5, `tests/properties.rs` (a random stack the fuzz helper's runs met once).
// The newest layer makes `b/x` a directory, replaces it by a link to the older `b/y`, then
// makes `b` a file: applied in order, `b`'s whole subtree goes. The output wrote the directory
// `b/x` before learning that `b` becomes a file, so the tar held `b/x` and then the file `b`
// (GNU tar refuses it). A directory already written beneath a path its own layer replaces
// cannot be taken back: the conversion must refuse (ReplacedAfterWrite), as the model allows.
#[test]
fn a_directory_replaced_by_a_link_beneath_a_path_its_layer_makes_a_file() {
    let img = ImageBuilder::new()
        .layer(Layer::new().file("b/y", "y", 0o644))
        .layer(
            Layer::new()
                .dir("b/x", 0o755)
                .hardlink("b/x", "b/y")
                .file("b", "", 0o644),
        );
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge` (structured mode, after the fixes above). Layer 0 writes
// `a`, links `b` to it, then replaces `a`; layer 1 links `c` to `b` and makes `a` a directory.
// Applied in order, `b` (and so `c`) keeps the first content of `a`. The model refuses such a
// stack out of caution (`model::refused_out_of_caution`); ocirender converts it correctly,
// because `a`'s old versions are hidden and the merge reads the one `b` needs again. The check
// expected a refusal; this pins the right tree instead.
#[test]
fn a_link_to_a_version_its_layer_replaces_when_a_newer_layer_hides_the_target() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .file("a", "t", 0o644)
                .hardlink("b", "a")
                .file("a", "replaced", 0o644),
        )
        .layer(Layer::new().hardlink("c", "b").dir("a/x/y", 0o2750));
    let why = model::apply(img.layer_list()).unwrap_err();
    assert!(model::refused_out_of_caution(&why), "{why}");
    let t = tempfile::tempdir().unwrap();
    let built = img.build(t.path().join("img"));
    for format in Format::ALL {
        let tree = convert_one(&built.path, format, &ConvertOptions::default())
            .result
            .unwrap_or_else(|e| panic!("{format:?}: {e}"));
        let dump = tree.dump(DumpOptions::default());
        let line = |p: &str| {
            dump.lines()
                .find(|l| l.starts_with(p))
                .unwrap_or("")
                .to_owned()
        };
        // sha256("t")
        assert!(
            line("/b ").contains("size=1 sha256=e3b98a4da31a127d"),
            "{format:?}:\n{dump}"
        );
        assert!(
            line("/c ").contains("sha256=e3b98a4da31a127d link=/b"),
            "{format:?}:\n{dump}"
        );
        assert!(line("/a ").starts_with("/a dir"), "{format:?}:\n{dump}");
        assert!(
            line("/a/x/y ").starts_with("/a/x/y dir 2750"),
            "{format:?}:\n{dump}"
        );
    }
}

// See: issue 5, fuzz target `merge` (structured mode). Layer 1 writes `a/x/y` through
// the symlink `a` of layer 0, and layer 2 then replaces `a`. The merge only checked for
// entries written through a symlink when no newer layer replaced it; but the replacement came
// after the write, which extraction would already have made through the symlink.
#[test]
fn a_write_through_an_older_symlink_resolves_even_if_a_newer_layer_replaces_it() {
    for newest in [
        Layer::new().file("a", "now a file", 0o644),
        Layer::new().whiteout("a"),
        Layer::new().block_dev("a", 3, 3),
    ] {
        let img = ImageBuilder::new()
            .layer(Layer::new().dir("b", 0o755).symlink("a", "b"))
            .layer(Layer::new().dir("a/x/y", 0o700))
            .layer(newest);
        matches_the_model(&img);
    }
}

// The same stack with the symlink removed *before* the write is valid: nothing goes through it.
#[test]
fn a_symlink_removed_before_newer_entries_use_its_path_is_fine() {
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("b", 0o755).symlink("a", "b"))
        .layer(Layer::new().whiteout("a"))
        .layer(Layer::new().dir("a/x/y", 0o700))
        .layer(Layer::new().file("c", "c", 0o644));
    matches_the_model(&img);
}

// See: issue 5, `tests/properties.rs` (a random case). Like the case above with a symlink
// instead of a directory: the symlink `a/x/y` is written, a link of the same layer replaces it,
// then the layer makes `a` a file. The written symlink cannot be taken back.
#[test]
fn a_symlink_replaced_by_a_link_beneath_a_path_its_layer_makes_a_file() {
    let img = ImageBuilder::new()
        .layer(Layer::new().file("c", "", 0o644))
        .layer(
            Layer::new()
                .symlink("a/x/y", "a")
                .hardlink("a/x/y", "c")
                .file("a", "", 0o644),
        );
    matches_the_model(&img);
}

// See: `tests/properties.rs` (a random case). Layer 1 links `b` to the symlink `a/x` of
// layer 0 (so `b` is a symlink too) and then writes `b/x` through it. The merge reads layer 1
// first and cannot know yet that the link's target is a symlink; it made `b` a directory.
// The check now waits for the link's inode.
// The same holds when the symlink is of the link's own layer, when a newer layer hides the
// link, the symlink or both, and when the link reaches the symlink through another link.
#[test]
fn a_write_beneath_a_hard_link_to_a_symlink() {
    let link_and_write = || Layer::new().hardlink("b", "a/x").fifo("b/x");
    let older = || Layer::new().symlink("a/x", "a");
    matches_the_model(&ImageBuilder::new().layer(older()).layer(link_and_write()));
    for hide in ["b", "a/x", "a"] {
        matches_the_model(
            &ImageBuilder::new()
                .layer(older())
                .layer(link_and_write())
                .layer(Layer::new().whiteout(hide)),
        );
        matches_the_model(
            &ImageBuilder::new()
                .layer(
                    Layer::new()
                        .symlink("a/x", "a")
                        .hardlink("b", "a/x")
                        .fifo("b/x"),
                )
                .layer(Layer::new().whiteout(hide)),
        );
    }
    matches_the_model(
        &ImageBuilder::new()
            .layer(older())
            .layer(Layer::new().hardlink("c", "a/x"))
            .layer(Layer::new().hardlink("b", "c").fifo("b/x")),
    );
    // A link to a file is replaced by the directory, as any file would be.
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().file("a/x", "x", 0o644))
            .layer(link_and_write()),
    );
}

// See: `tests/properties.rs` (a random case). Layer 0 puts a symlink at `a/x` and then
// makes `a` a file, which removes the symlink with `a`'s subtree; layer 1's `a/x/y` therefore
// goes through nothing. The merge kept the symlink on its list of paths written through and
// refused the stack.
#[test]
fn a_symlink_its_layer_removes_with_its_parent_is_not_written_through() {
    let img = ImageBuilder::new()
        .layer(Layer::new().symlink("a/x", "a").file("a", "", 0o644))
        .layer(Layer::new().file("a/x/y", "", 0o644));
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge`. Layer 1 puts a symlink at `a` and then writes
// `a/x/y` through it; layer 2 deletes `a`, so the output shows none of it. The merge skipped
// the check for entries it does not show; extraction would still have written through `a`.
#[test]
fn a_write_through_a_symlink_of_its_own_layer_resolves_even_when_hidden() {
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("b", 0o755))
        .layer(Layer::new().symlink("a", "b").file("a/x/y", "y", 0o644))
        .layer(Layer::new().whiteout("a"));
    matches_the_model(&img);
}

// See: `tests/properties.rs` (a random case). Layer 0 links `b/y` to the symlink `a`,
// then replaces `a` by a link to `b/y` (the same inode, so nothing changes); layer 1 replaces
// `b/y`. Because `b/y`'s own version is hidden, the merge did not see that the new link at
// `a` names the same inode and refused it (HardlinkTargetReplaced).
#[test]
fn a_path_replaced_by_a_link_to_a_hidden_name_of_its_own_inode() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .symlink("a", "a")
                .hardlink("b/y", "a")
                .hardlink("a", "b/y"),
        )
        .layer(Layer::new().file("b/y", "", 0o644));
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge`. A hard link from AUFS metadata to itself
// (`.wh..wh.aufs` → `.wh..wh.aufs`): such entries are never shown, so the merge skipped the
// self-link check that every other entry gets.
#[test]
fn aufs_metadata_linked_to_itself_is_refused() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .block_dev(".wh..wh.aufs", 3, 3)
                .hardlink(".wh..wh.aufs", ".wh..wh.aufs"),
        )
        .layer(Layer::new().fifo("a/b"));
    fails_everywhere(
        &img,
        |e| matches!(e, Error::HardlinkTargetMissing { .. }),
        "HardlinkTargetMissing",
    );
}

// See: issue 5, fuzz target `merge`. Layer 1 writes `a/x/y`, which makes `a` a
// directory, and then links to `a`; layer 2 replaces `a`, so nothing of layer 1 under `a` is
// shown. The merge looked for the link's target in older layers and bound it to layer 0's
// fifo, where extraction would have refused a hard link to a directory.
#[test]
fn a_link_to_a_directory_its_layer_made_implicitly_and_a_newer_layer_replaced() {
    for link in ["z", ".wh..wh.plnk/1"] {
        let img = ImageBuilder::new()
            .layer(Layer::new().fifo("a"))
            .layer(Layer::new().dir("a/x/y", 0o700).hardlink(link, "a"))
            .layer(Layer::new().fifo("a"));
        fails_everywhere(
            &img,
            |e| matches!(e, Error::HardlinkToDirectory { .. }),
            "HardlinkToDirectory",
        );
    }
}

// See: `tests/properties.rs` (a random case). Layer 0 puts a symlink at `a`, replaces it
// by a directory and writes `a/x` into it; layer 1 makes `a` a directory too. The symlink is
// hidden (layer 1 decides `a`'s type) but the directory entry of layer 0 still describes `a`:
// the merge kept the hidden symlink as `a`'s version in layer 0 and refused `a/x` as written
// through it.
#[test]
fn a_hidden_symlink_its_layer_replaces_by_a_directory_is_not_written_through() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .symlink("a", "a")
                .dir("a", 0o755)
                .file("a/x", "", 0o644),
        )
        .layer(Layer::new().file("a/x", "", 0o644));
    matches_the_model(&img);
}

// See: `tests/properties.rs` (a random case). Layer 0 puts a symlink at `a/x`, makes `a`
// a file (removing the symlink with `a`'s subtree) and then writes `a/x/y`, which makes `a` a
// directory again; layer 1 hides everything. The merge kept the removed symlink as `a/x`'s
// version in layer 0 and refused `a/x/y` as written through it.
#[test]
fn a_hidden_symlink_removed_with_its_parent_is_not_written_through() {
    let img = ImageBuilder::new()
        .layer(
            Layer::new()
                .symlink("a/x", "a")
                .file("a", "", 0o644)
                .file("a/x/y", "", 0o644),
        )
        .layer(Layer::new().opaque(""));
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge`. AUFS metadata below an ordinary directory
// (`a/.wh..wh..wh..opq`; the name is not the opaque marker): never shown, but extraction
// creates `a` for it as for any entry. The merge dropped AUFS entries before their parents
// were made.
#[test]
fn aufs_metadata_makes_its_parents_directories() {
    for name in ["a/.wh..wh..wh..opq", "a/.wh..wh.plnk/1", "a/b/.wh..wh.aufs"] {
        let img = ImageBuilder::new()
            .layer(Layer::new().fifo("c"))
            .layer(Layer::new().file(name, "", 0o644));
        matches_the_model(&img);
    }
    // Beneath a symlink, it is written through it.
    let img = ImageBuilder::new()
        .layer(Layer::new().symlink("a", "c"))
        .layer(Layer::new().file("a/.wh..wh.aufs", "", 0o644));
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge`. Layer 1 writes `a/z` through the symlink `a` of
// layer 0 and only then makes `a` a fifo; layer 2 replaces `a` again. The merge counted layer
// 1's fifo as removing the symlink before the write, whatever their order.
#[test]
fn a_write_through_an_older_symlink_its_layer_replaces_afterwards_resolves() {
    for first in ["a/z", "a/.wh..wh.aufs"] {
        let img = ImageBuilder::new()
            .layer(Layer::new().symlink("a", "x"))
            .layer(Layer::new().file(first, "", 0o644).fifo("a/x/y").fifo("a"))
            .layer(Layer::new().fifo("a"));
        matches_the_model(&img);
    }
    // Replaced before the write, the symlink is not written through.
    let img = ImageBuilder::new()
        .layer(Layer::new().symlink("a", "x"))
        .layer(Layer::new().fifo("a").file("a/z", "", 0o644))
        .layer(Layer::new().fifo("a"));
    matches_the_model(&img);
}

// Found while fixing the one above, and then by fuzz target `merge`: the same write,
// but the symlink's layer first used `a` as a directory itself (`a/b`, or a directory entry
// `a`). The merge kept only the oldest layer's first use of `a`, so it no longer knew that a
// newer layer used it after.
#[test]
fn a_write_through_an_older_symlink_that_replaced_a_directory_of_its_own_layer() {
    let img = ImageBuilder::new()
        .layer(Layer::new().file("a/b", "", 0o644).symlink("a", "x"))
        .layer(Layer::new().file("a/z", "", 0o644))
        .layer(Layer::new().fifo("a"));
    matches_the_model(&img);
    let img = ImageBuilder::new()
        .layer(Layer::new().dir("a", 0o755))
        .layer(Layer::new().dir("a", 0o755).symlink("a", "x"))
        .layer(Layer::new().symlink("a/x", "a"))
        .layer(Layer::new().file("a", "y", 0o755).dir("a", 0o755));
    matches_the_model(&img);
}

// See: issue 5, fuzz target `merge`. Layer 1 links `b` to a symlink (so `b` is a
// symlink too); a newer layer writes `b/y` through it. The merge checked only symlink entries
// for newer writes beneath them, not hard links to symlinks. The link's inode may be decided
// in its own layer or in an older one.
#[test]
fn a_newer_write_beneath_a_hard_link_to_a_symlink() {
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().symlink("s", "x/y").hardlink("b", "s"))
            .layer(Layer::new().dir("b/y", 0o755)),
    );
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().symlink("s", "x/y"))
            .layer(Layer::new().hardlink("b", "s"))
            .layer(Layer::new().dir("b/y", 0o755)),
    );
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().symlink("s", "x/y"))
            .layer(Layer::new().hardlink("b", "s"))
            .layer(Layer::new().dir("b/y", 0o755))
            .layer(Layer::new().fifo("b")),
    );
    // A link to a file is replaced by the directory like the file would be.
    matches_the_model(
        &ImageBuilder::new()
            .layer(Layer::new().file("s", "s", 0o644))
            .layer(Layer::new().hardlink("b", "s"))
            .layer(Layer::new().dir("b/y", 0o755)),
    );
}

// See: issue 5, fuzz target `merge`. A symlink target of 4096 bytes (as long as
// squashfs and the kernel take): the image was right, but the check's reader, backhand, asserts
// targets shorter than 256 bytes. Readers now skip backhand for such images; unsquashfs must
// still read every length.
#[test]
fn long_symlink_targets_in_squashfs() {
    for n in [255usize, 256, 4095] {
        let img = ImageBuilder::new().layer(Layer::new().symlink("x", "t".repeat(n).as_str()));
        matches_the_model(&img);
    }
}

// See: issue 12, `scripts/fuzz.sh 900 merge` on main from fresh seeds (11 minutes in): squashfs
// succeeded where the model refused. Layer 1 links `b` to `a`, which is a directory at that
// moment (layer 0 made it one), then replaces `b` by a fifo and a file. link(2) would refuse
// the link, but nothing can ever see it: the path is replaced within its layer, before any
// other entry could use it. The output is the tree extraction leaves without the link; the
// model defers a bad link's error to the end of its layer, where this one no longer exists.
// (The reported input named an xattr `user.`, which Linux and squashfs cannot hold and the
// squashfs sink leaves out with a warning; it played no part and is `user.b` here.)
#[test]
fn a_hard_link_to_a_directory_replaced_later_in_its_own_layer() {
    let img = ImageBuilder::new()
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
                .with_xattr("user.b", "v")
                .dir("a", 0o755)
                .dir("a", 0o755)
                .dir("a", 0o755)
                .compression(Codec::Plain),
        )
        .layer(Layer::new().compression(Codec::Plain));
    matches_the_model(&img);
}

// See: issue 12, fuzz target `merge` (structured mode, crash-ee2ff884, the 900 s run on
// c3f1be0's successor). A layer links `a` to itself (a link to nothing) and `b` to `a`, then
// makes both directories. The merge judges both links at the end of the layer, when neither
// is there any more, and converts; the model refused `b → a` at once. Both now treat a link to
// a pending bad link as pending too: harmless when replaced, an error when it remains.
#[test]
fn a_link_to_a_pending_bad_link_is_judged_at_the_end_of_the_layer() {
    let img = ImageBuilder::new()
        .layer(Layer::new())
        .layer(
            Layer::new()
                .hardlink("a", "a")
                .hardlink("b", "a")
                .file("a/x", "t\0\0\0e ", 0o755)
                .file("b/y", "", 0o755)
                .dir("a", 0o755)
                .dir("a", 0o755),
        )
        .layer(Layer::new().compression(Codec::Plain));
    matches_the_model(&img);
    // Replaced by files instead of directories: the same.
    let files = ImageBuilder::new().layer(
        Layer::new()
            .hardlink("a", "nothing")
            .hardlink("b", "a")
            .file("b", "x", 0o644)
            .file("a", "y", 0o644),
    );
    matches_the_model(&files);
    // Only `a` replaced: `b` still links to nothing when the layer ends.
    let remains = ImageBuilder::new().layer(
        Layer::new()
            .hardlink("a", "a")
            .hardlink("b", "a")
            .file("a", "x", 0o644),
    );
    fails_everywhere(
        &remains,
        |e| matches!(e, Error::HardlinkTargetMissing { .. }),
        "HardlinkTargetMissing",
    );
}

// See: issue 12, fuzz target `merge` (structured mode, crash-e8029ad7, the second 900 s run;
// reduced by hand). The newest layer makes `a/x` a directory over an older symlink, writes
// `a/x/y`, then replaces `a` by a file. The second pass drops the removed entries from the
// output, but skipped what `dir a/x` replaced: only `a/x/y`'s use of `a/x` as a parent was
// recorded, so the older symlink looked written through (BeneathSymlink). A removed entry now
// records what it replaced, as when it is not removed.
#[test]
fn a_directory_over_an_older_symlink_that_its_layer_removes_afterwards() {
    let base = |last: Layer| {
        ImageBuilder::new()
            .layer(Layer::new().file("a/x", "x", 0o644))
            .layer(Layer::new().whiteout("a").symlink("a/x", "/b/y"))
            .layer(last)
    };
    let dirs = || Layer::new().dir("a/x", 0o755).dir("a/x/y", 0o755);
    matches_the_model(&base(dirs().file("a", "", 0o644)));
    matches_the_model(&base(dirs().file("a", "", 0o644).symlink("a", "a/x")));
    // Without the directory entry first, `a/x/y` does go through the symlink.
    matches_the_model(&base(Layer::new().dir("a/x/y", 0o755).file("a", "", 0o644)));
}

// See: issue 12, fuzz target `merge` (structured mode, the third 900 s run; reduced by hand).
// `b` is a symlink to a 300-byte name, and `b/x` is written through it: the resolved path has
// a component the kernel refuses (ENAMETOOLONG), so extraction fails. The merge refused it
// (HostilePath); the model, which did not limit names it built from symlink targets, gave a
// tree. Now both refuse.
#[test]
fn a_name_through_a_symlink_to_an_overlong_component_is_refused() {
    let long = "t".repeat(300);
    let img = ImageBuilder::new().layer(Layer::new().symlink("b", &long).symlink("b/x", "a"));
    fails_everywhere(
        &img,
        |e| matches!(e, Error::HostilePath { .. }),
        "HostilePath",
    );
}
