//! Overlay rules at the merge's level: layers given as entries, the result recorded by an
//! in-memory sink that applies the Sink contract (replacement, subtree removal) and checks its
//! promises (a hard link's target is already there and is not a directory).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::{Arc, Mutex};

use super::{paths, Merger, Resolution, Resolver};
use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::options::ConvertOptions;
use crate::path::EntryPath;
use crate::sink::{Sink, Summary};

#[derive(Clone, Debug)]
struct Rec {
    kind: String,
    mode: u32,
    /// Content for files, target for links, inode id for files.
    detail: String,
    ino: usize,
}

#[derive(Default)]
struct State {
    tree: BTreeMap<Vec<u8>, Rec>,
    next_ino: usize,
    deliveries: usize,
}

struct RecordingSink(Arc<Mutex<State>>);

impl Sink for RecordingSink {
    fn entry(&mut self, e: &Entry, data: &mut dyn Read) -> Result<()> {
        let mut st = self.0.lock().unwrap();
        st.deliveries += 1;
        let key = e.path.as_bytes().to_vec();
        let is_dir = e.kind.is_dir();
        if let Some(old) = st.tree.get(&key) {
            if old.kind == "dir" && !is_dir {
                let prefix = [key.as_slice(), b"/"].concat();
                st.tree.retain(|k, _| !k.starts_with(&prefix));
            }
        }
        let ino = st.next_ino;
        st.next_ino += 1;
        let rec = match &e.kind {
            EntryKind::File { size, .. } => {
                let mut buf = Vec::new();
                data.read_to_end(&mut buf).unwrap();
                assert_eq!(buf.len() as u64, *size, "data length for {:?}", e.path);
                Rec {
                    kind: "file".into(),
                    mode: e.meta.mode,
                    detail: String::from_utf8_lossy(&buf).into_owned(),
                    ino,
                }
            }
            EntryKind::Dir => Rec {
                kind: "dir".into(),
                mode: e.meta.mode,
                detail: String::new(),
                ino,
            },
            EntryKind::Symlink { target } => Rec {
                kind: "symlink".into(),
                mode: 0o777,
                detail: String::from_utf8_lossy(target).into_owned(),
                ino,
            },
            EntryKind::Hardlink { target } => {
                let t = st
                    .tree
                    .get(target.as_bytes())
                    .unwrap_or_else(|| panic!("link {:?} before its target {:?}", e.path, target))
                    .clone();
                assert_ne!(t.kind, "dir", "link to a directory");
                t
            }
            other => Rec {
                kind: other.name().into(),
                mode: e.meta.mode,
                detail: String::new(),
                ino,
            },
        };
        st.tree.insert(key, rec);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<Summary> {
        Ok(Summary::default())
    }
}

fn e(path: &str, kind: EntryKind) -> Entry {
    Entry {
        path: EntryPath::new(path.as_bytes()).unwrap(),
        kind,
        meta: Metadata {
            mode: 0o644,
            ..Metadata::default()
        },
    }
}

type Item = (Entry, Vec<u8>);

fn f(path: &str, content: &str) -> Item {
    let kind = EntryKind::File {
        size: content.len() as u64,
        sparse: None,
    };
    (e(path, kind), content.as_bytes().to_vec())
}
fn d(path: &str) -> Item {
    let mut x = e(path, EntryKind::Dir);
    x.meta.mode = 0o700;
    (x, vec![])
}
fn sl(path: &str, target: &str) -> Item {
    let kind = EntryKind::Symlink {
        target: target.as_bytes().to_vec(),
    };
    (e(path, kind), vec![])
}
fn ln(path: &str, target: &str) -> Item {
    let kind = EntryKind::Hardlink {
        target: EntryPath::new(target.as_bytes()).unwrap(),
    };
    (e(path, kind), vec![])
}
fn wh(path: &str) -> Item {
    let p = EntryPath::new(path.as_bytes()).unwrap();
    let name = [b".wh.", p.file_name().unwrap()].concat();
    let full = p.parent().unwrap().join(&name).unwrap();
    f(&full.lossy(), "")
}
fn opq(dir: &str) -> Item {
    f(&format!("{dir}/.wh..wh..opq"), "")
}

/// Merges `layers` (oldest first, as an image lists them) and dumps the result: one line per
/// path, `path kind detail`, with `#N` marking hard-link groups.
fn merge(layers: &[Vec<Item>]) -> Result<String> {
    merge_with(layers, false)
}

/// One pass of the merge; the recorded tree.
fn merge_pass(layers: &[Vec<Item>], resolution: Option<Resolution>) -> Result<Arc<Mutex<State>>> {
    let state = Arc::new(Mutex::new(State::default()));
    let sink = Box::new(RecordingSink(state.clone()));
    let options = ConvertOptions::default();
    let mut m = match resolution {
        Some(r) => Merger::with_resolution(sink, layers.len(), &options, r),
        None => Merger::new(sink, layers.len(), &options),
    };
    for (i, layer) in layers.iter().enumerate().rev() {
        let items = layer.iter().map(|(e, data)| {
            let r: Box<dyn Read> = Box::new(std::io::Cursor::new(data.clone()));
            (e.clone(), r)
        });
        m.layer_entries(i, items)?;
    }
    m.finish()?;
    Ok(state)
}

/// The merge as `convert` drives it: a second pass with names resolved when the first asks.
fn merge_twice(layers: &[Vec<Item>]) -> Result<(Arc<Mutex<State>>, bool)> {
    match merge_pass(layers, None) {
        Err(e) if matches!(e.root_cause(), Error::SecondPassNeeded { .. }) => {
            let mut resolver = Resolver::new(layers.len());
            for (i, layer) in layers.iter().enumerate() {
                resolver.layer_entries(i, layer.iter().map(|(e, _)| e))?;
            }
            Ok((merge_pass(layers, Some(resolver.finish()))?, true))
        }
        r => Ok((r?, false)),
    }
}

fn merge_with(layers: &[Vec<Item>], show_modes: bool) -> Result<String> {
    let (state, _) = merge_twice(layers)?;
    let st = state.lock().unwrap();
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    for r in st.tree.values() {
        *counts.entry(r.ino).or_default() += 1;
    }
    let mut groups: BTreeMap<usize, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (k, r) in &st.tree {
        let mut line = format!("/{} {}", String::from_utf8_lossy(k), r.kind);
        if show_modes {
            line += &format!(" {:o}", r.mode);
        }
        if !r.detail.is_empty() {
            line += &format!(" {}", r.detail);
        }
        if counts[&r.ino] > 1 {
            let n = groups.len() + 1;
            line += &format!(" #{}", groups.entry(r.ino).or_insert(n));
        }
        out.push(line);
    }
    Ok(out.join("\n"))
}

fn lines(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! check {
    ($layers:expr, $expected:expr) => {
        assert_eq!(merge(&$layers).unwrap(), lines($expected));
    };
}

#[test]
fn simple_and_nested_whiteouts() {
    check!(
        [
            vec![
                d("a"),
                f("a/x", "1"),
                d("a/b"),
                f("a/b/y", "2"),
                f("c", "3")
            ],
            vec![wh("a/b"), wh("c"), wh("nothing")],
        ],
        "/ dir
         /a dir
         /a/x file 1"
    );
}

#[test]
fn opaque_keeps_same_layer_children_in_either_position() {
    for layer1 in [
        vec![opq("a"), f("a/new", "n")],
        vec![f("a/new", "n"), opq("a")],
    ] {
        check!(
            [vec![d("a"), f("a/old", "o")], layer1],
            "/ dir
             /a dir
             /a/new file n"
        );
    }
}

#[test]
fn opaque_without_dir_entry_keeps_lower_metadata() {
    let out = merge_with(&[vec![d("a"), f("a/old", "o")], vec![opq("a")]], true).unwrap();
    assert_eq!(out, lines("/ dir 755\n/a dir 700"));
}

#[test]
fn whiteout_and_recreate_in_one_layer_both_orders() {
    for layer1 in [vec![wh("a"), f("a", "new")], vec![f("a", "new"), wh("a")]] {
        check!([vec![f("a", "old")], layer1], "/ dir\n/a file new");
    }
}

#[test]
fn whiteout_of_dir_then_recreate_drops_old_children() {
    check!(
        [
            vec![d("a"), f("a/x", "1")],
            vec![wh("a"), d("a"), f("a/y", "2")],
        ],
        "/ dir\n/a dir\n/a/y file 2"
    );
}

#[test]
fn duplicate_path_in_one_layer_later_wins() {
    check!([vec![f("a", "1"), f("a", "2")]], "/ dir\n/a file 2");
    check!([vec![d("a"), f("a", "file")]], "/ dir\n/a file file");
    // Entries written beneath the replaced directory go with it, as extraction removes them
    // (a second pass, which knows it, never writes them).
    check!(
        [vec![d("a"), f("a/x", "1"), f("a", "file")]],
        "/ dir\n/a file file"
    );
    let layers = [vec![d("a"), f("a/x", "1"), f("a", "file")]];
    assert!(merge_twice(&layers).unwrap().1, "the first pass wrote a/x");
    check!(
        [vec![f("a", "file"), d("a"), f("a/x", "1")]],
        "/ dir\n/a dir\n/a/x file 1"
    );
}

#[test]
fn file_under_same_layer_file_turns_it_into_a_dir() {
    check!(
        [vec![f("a", "file"), f("a/x", "1")]],
        "/ dir\n/a dir\n/a/x file 1"
    );
}

#[test]
fn replacements_without_whiteouts() {
    // dir replaced by file, by symlink; file replaced by dir.
    check!(
        [
            vec![d("a"), f("a/x", "1"), d("b"), f("b/y", "2"), f("c", "3")],
            vec![f("a", "file"), sl("b", "a"), d("c")],
        ],
        "/ dir\n/a file file\n/b symlink a\n/c dir"
    );
    let out = merge_with(&[vec![f("c", "3")], vec![d("c")]], true).unwrap();
    assert_eq!(
        out,
        lines("/ dir 755\n/c dir 700"),
        "the dir keeps its own attributes"
    );
}

#[test]
fn lower_dir_shadowed_by_file_then_dir_again() {
    // layer 0: a/ with x; layer 1: a is a file; layer 2: a/ again with y → x is gone.
    check!(
        [
            vec![d("a"), f("a/x", "1")],
            vec![f("a", "file")],
            vec![d("a"), f("a/y", "2")],
        ],
        "/ dir\n/a dir\n/a/y file 2"
    );
}

#[test]
fn whiteouts_under_a_path_the_same_layer_makes_a_file_are_moot() {
    check!(
        [vec![d("a"), f("a/x", "1")], vec![f("a", "file"), wh("a/x")]],
        "/ dir\n/a file file"
    );
}

#[test]
fn opaque_in_older_layer_below_newer_deletion() {
    // Case 3: layer 2 deletes d; the opaque marker in layer 1 must not resurrect anything.
    check!(
        [
            vec![d("d"), f("d/x", "1")],
            vec![opq("d"), f("d/y", "2")],
            vec![wh("d")],
        ],
        "/ dir"
    );
    check!(
        [
            vec![d("d"), f("d/x", "1")],
            vec![wh("d/x"), f("d/y", "2")],
            vec![f("d/x", "3")],
        ],
        "/ dir\n/d dir\n/d/x file 3\n/d/y file 2"
    );
}

#[test]
fn hard_links_in_one_layer_and_across_layers() {
    check!(
        [vec![f("a", "A"), ln("b", "a")], vec![ln("c", "a")],],
        "/ dir\n/a file A #1\n/b file A #1\n/c file A #1"
    );
}

#[test]
fn hard_link_survives_deletion_of_its_first_name() {
    check!(
        [vec![f("a", "A"), ln("b", "a"), ln("c", "a")], vec![wh("a")]],
        "/ dir\n/b file A #1\n/c file A #1"
    );
}

#[test]
fn hard_link_keeps_old_content_when_target_is_replaced() {
    check!(
        [vec![f("a", "old"), ln("b", "a")], vec![f("a", "new")]],
        "/ dir\n/a file new\n/b file old"
    );
    // Target in a lower layer than the link.
    check!(
        [vec![f("a", "old")], vec![ln("b", "a")], vec![f("a", "new")]],
        "/ dir\n/a file new\n/b file old"
    );
}

#[test]
fn hard_link_target_turned_into_dir_or_symlink() {
    check!(
        [vec![f("a", "A"), ln("b", "a")], vec![d("a")]],
        "/ dir\n/a dir\n/b file A"
    );
    check!(
        [
            vec![f("a", "A"), ln("b", "a"), ln("c", "a")],
            vec![sl("a", "x")]
        ],
        "/ dir\n/a symlink x\n/b file A #1\n/c file A #1"
    );
}

#[test]
fn hard_link_binds_to_the_version_at_its_time() {
    // The link in layer 1 means a@0 ("v0"), not a@2.
    check!(
        [vec![f("a", "v0")], vec![ln("b", "a")], vec![f("a", "v2")]],
        "/ dir\n/a file v2\n/b file v0"
    );
    // A link after a same-layer duplicate means the later version.
    check!(
        [vec![f("a", "1"), f("a", "2"), ln("b", "a")]],
        "/ dir\n/a file 2 #1\n/b file 2 #1"
    );
    // A link of a newer layer means the last version of an older layer.
    check!(
        [vec![f("a", "1"), f("a", "2")], vec![ln("b", "a")]],
        "/ dir\n/a file 2 #1\n/b file 2 #1"
    );
}

#[test]
fn hard_link_to_symlink_and_chains() {
    check!(
        [vec![sl("s", "t"), ln("s2", "s")]],
        "/ dir\n/s symlink t #1\n/s2 symlink t #1"
    );
    check!(
        [
            vec![f("a", "A"), ln("b", "a")],
            vec![ln("c", "b")],
            vec![wh("a"), wh("b")]
        ],
        "/ dir\n/c file A"
    );
}

#[test]
fn hard_link_errors() {
    let err = merge(&[vec![ln("b", "missing")]]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::HardlinkTargetMissing { .. }),
        "{err}"
    );
    assert!(err.report().to_string().contains("missing"), "{err}");
    let err = merge(&[vec![d("a"), ln("b", "a")]]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::HardlinkToDirectory { .. }),
        "{err}"
    );
    // The target existed once, but a layer between it and the link deleted it.
    let err = merge(&[vec![f("a", "A")], vec![wh("a")], vec![ln("b", "a")]]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::HardlinkTargetMissing { .. }),
        "{err}"
    );
}

#[test]
fn a_non_directory_naming_the_root_is_skipped() {
    check!(
        [vec![d("a"), f("a/..", "x"), sl(".", "a"), ln("./", "a")]],
        "/ dir\n/a dir"
    );
}

#[test]
fn a_bad_hard_link_its_own_layer_replaces_is_harmless() {
    // To a directory (one its own path made, one of the layer, one of an older layer), or to
    // nothing: a later entry of the layer replaces the link, so nothing can see it.
    check!(
        [vec![ln("a/x", "a"), f("a/x", "X")]],
        "/ dir\n/a dir\n/a/x file X"
    );
    check!(
        [vec![d("a"), ln("b", "a"), d("b")]],
        "/ dir\n/a dir\n/b dir"
    );
    check!(
        [vec![d("a")], vec![ln("b", "a"), f("b", "B")]],
        "/ dir\n/a dir\n/b file B"
    );
    check!(
        [vec![ln("b", "missing"), f("b/c", "C")]],
        "/ dir\n/b dir\n/b/c file C"
    );
    // A newer layer's link to the replaced name binds to what replaced it.
    check!(
        [vec![ln("b", "missing"), f("b", "B")], vec![ln("c", "b")]],
        "/ dir\n/b file B #1\n/c file B #1"
    );
    // A link to itself finds nothing, even where the path held a symlink (which names
    // resolved through until then).
    check!(
        [
            vec![sl("a", "b"), sl("b", "a")],
            vec![d("b")],
            vec![d("a/y"), ln("a", "a"), f("a/x", "X")]
        ],
        "/ dir\n/a dir\n/a/x file X\n/b dir\n/b/y dir"
    );
    // Still there at the end of the layer (shown or hidden): an error.
    for hide in [vec![], vec![wh("b")]] {
        let err = merge(&[vec![d("a"), ln("b", "a")], hide]).unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::HardlinkToDirectory { .. }),
            "{err}"
        );
        assert!(err.report().to_string().contains("\"b\""), "{err}");
    }
}

#[test]
fn entries_beneath_a_symlink_land_where_it_points() {
    let out = "/ dir\n/a symlink /etc\n/etc dir\n/etc/passwd file x";
    check!([vec![sl("a", "/etc")], vec![f("a/passwd", "x")]], out);
    check!([vec![sl("a", "/etc"), f("a/passwd", "x")]], out);
    // Relative, clamped at the root, chained; a hard link and a whiteout through one.
    check!(
        [vec![sl("a", "../../b"), sl("c", "a/"), f("c/x", "1")]],
        "/ dir\n/a symlink ../../b\n/b dir\n/b/x file 1\n/c symlink a/"
    );
    check!(
        [
            vec![d("d"), f("d/f", "F"), sl("l", "d")],
            vec![ln("h", "l/f"), wh("l/g")]
        ],
        "/ dir\n/d dir\n/d/f file F #1\n/h file F #1\n/l symlink d"
    );
    check!(
        [vec![d("d"), f("d/f", "F"), sl("l", "d")], vec![wh("l/f")]],
        "/ dir\n/d dir\n/l symlink d"
    );
    // A loop is an error naming the path.
    let err = merge(&[vec![sl("a", "b"), sl("b", "a"), f("a/x", "")]]).unwrap_err();
    assert!(
        matches!(err.root_cause(), Error::TooManySymlinks { .. }),
        "{err}"
    );
    // A newer symlink replacing a lower directory simply hides the lower children.
    check!(
        [vec![d("a"), f("a/x", "1")], vec![sl("a", "b")]],
        "/ dir\n/a symlink b"
    );
}

#[test]
fn invalid_whiteouts_are_errors() {
    for bad in ["a/.wh.", "a/.wh..", "a/.wh..."] {
        let err = merge(&[vec![f(bad, "")]]).unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::InvalidWhiteout { .. }),
            "{bad}: {err}"
        );
    }
}

#[test]
fn whiteout_as_hardlink_or_with_content_is_a_whiteout() {
    check!(
        [
            vec![f("a", "A"), f("b", "B")],
            vec![ln(".wh.a", "b"), f(".wh.b", "junk")]
        ],
        "/ dir"
    );
}

#[test]
fn aufs_metadata_never_appears_but_links_into_plnk_resolve() {
    check!(
        [vec![
            d(".wh..wh.plnk"),
            f(".wh..wh.plnk/1.2", "P"),
            ln("x", ".wh..wh.plnk/1.2"),
            f(".wh..wh.aufs", ""),
            d(".wh..wh.orph"),
        ]],
        "/ dir\n/x file P"
    );
}

#[test]
fn root_entry_and_implicit_parents() {
    let mut root = d(".");
    root.0.meta.mode = 0o750;
    let out = merge_with(&[vec![root, f("x/y/z", "1")]], true).unwrap();
    assert_eq!(
        out,
        lines("/ dir 750\n/x dir 755\n/x/y dir 755\n/x/y/z file 644 1")
    );
    // The newest explicit directory entry sets the metadata.
    let mut newer = d("x");
    newer.0.meta.mode = 0o711;
    let out = merge_with(&[vec![d("x")], vec![newer]], true).unwrap();
    assert_eq!(out, lines("/ dir 755\n/x dir 711"));
}

#[test]
fn implicit_dir_over_lower_file() {
    // A newer entry beneath a path that an older layer has as a file: the directory wins with
    // default metadata, and an even older directory entry does not describe it.
    let out = merge_with(
        &[
            vec![d("a"), f("a/old", "o")],
            vec![f("a", "file")],
            vec![f("a/new", "n")],
        ],
        true,
    )
    .unwrap();
    assert_eq!(out, lines("/ dir 755\n/a dir 755\n/a/new file 644 n"));
}

#[test]
fn hidden_entries_still_create_their_parents() {
    // a/x made `a` a directory in layer 0; layer 1 deleting a/x leaves `a` empty, and a lower
    // file at `a` stays replaced.
    check!(
        [vec![f("a", "file")], vec![f("a/y", "y")], vec![wh("a/y")]],
        "/ dir\n/a dir"
    );
    check!([vec![f("a/x", "x")], vec![wh("a/x")]], "/ dir\n/a dir");
}

#[test]
fn dir_replacing_same_layer_nondir_keeps_its_metadata() {
    let mut x = d("a/x");
    x.0.meta.mode = 0o711;
    let out = merge_with(
        &[vec![d("a"), f("a/x", "fifo-ish"), x], vec![d("a/x/y")]],
        true,
    )
    .unwrap();
    assert_eq!(
        out,
        lines("/ dir 755\n/a dir 700\n/a/x dir 711\n/a/x/y dir 700")
    );
}

#[test]
fn link_to_lower_file_survives_its_layer_replacing_the_parent_afterwards() {
    check!(
        [
            vec![d("b"), f("b/x", "x")],
            vec![ln("c", "b/x"), f("b", "now a file")]
        ],
        "/ dir\n/b file now a file\n/c file x"
    );
    // ...but not when the parent was replaced before the link.
    let err = merge(&[
        vec![d("b"), f("b/x", "x")],
        vec![f("b", "file"), ln("c", "b/x")],
    ]);
    assert!(err.is_err());
}

#[test]
fn self_links_find_nothing() {
    // (Both passes refuse it.)
    // Extraction clears the link's path first: whatever was there is gone.
    for layers in [
        vec![vec![ln("a", "a")]],
        vec![vec![f("a", "A")], vec![ln("a", "a")]],
    ] {
        let err = merge(&layers).unwrap_err();
        assert!(
            matches!(err.root_cause(), Error::HardlinkTargetMissing { .. }),
            "{err}"
        );
    }
}

#[test]
fn many_layers() {
    let mut layers = Vec::new();
    for i in 0..64 {
        let mut l = vec![f(&format!("f{i}"), &i.to_string())];
        if i > 0 {
            l.push(wh(&format!("f{}", i - 1)));
        }
        layers.push(l);
    }
    check!(layers, "/ dir\n/f63 file 63");
}

#[test]
fn layers_must_come_newest_first() {
    let sink = RecordingSink(Arc::default());
    let mut m = Merger::new(Box::new(sink), 3, &ConvertOptions::default());
    m.layer_entries(1, Vec::<(Entry, Box<dyn Read>)>::new())
        .unwrap();
    assert!(m
        .layer_entries(2, Vec::<(Entry, Box<dyn Read>)>::new())
        .is_err());
    assert!(m
        .layer_entries(1, Vec::<(Entry, Box<dyn Read>)>::new())
        .is_err());
    assert!(m
        .layer_entries(7, Vec::<(Entry, Box<dyn Read>)>::new())
        .is_err());
}

#[test]
fn more_layers_than_the_path_tree_numbers_are_refused() {
    let empty = || Vec::<(Entry, Box<dyn Read>)>::new();
    let most = paths::MAX_LAYERS - 1;
    let mut m = Merger::new(
        Box::new(RecordingSink(Arc::default())),
        most,
        &ConvertOptions::default(),
    );
    m.layer_entries(most - 1, empty()).unwrap();
    m.layer_entries(0, empty()).unwrap();
    let mut m = Merger::new(
        Box::new(RecordingSink(Arc::default())),
        most + 1,
        &ConvertOptions::default(),
    );
    let err = m.layer_entries(most, empty()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::TooLarge {
                what: "number of layers",
                size: 65535,
                limit: 65534
            }
        ),
        "{err:?}"
    );
}

#[test]
fn the_newest_of_many_layers_still_hides_the_oldest() {
    // Layer numbers are stored in 16 bits: the extremes must still compare as layers do.
    let most = paths::MAX_LAYERS - 1;
    let mut layers: Vec<Vec<Item>> = vec![Vec::new(); most];
    layers[0] = vec![d("d"), f("d/old", "0"), f("gone", "0"), f("kept", "0")];
    layers[most - 1] = vec![opq("d"), f("d/new", "1"), wh("gone")];
    check!(layers, "/ dir\n/d dir\n/d/new file 1\n/kept file 0");
}
