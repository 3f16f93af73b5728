//! Seed inputs, built in code from the same builder the tests use (no downloads): each target's
//! seeds are values of its input type, encoded, or tar streams and layouts the builder writes.

use crate::builder::{Codec, Layer, LongNames};
use crate::merge_input::{Content, LayerSpec, MergeInput, Name, Op, Target};

fn n(i: usize) -> Name {
    Name::Table(i)
}

/// Structured layer stacks: one per case of DESIGN.md's list that the DSL can spell.
pub fn merge_structured() -> Vec<MergeInput> {
    use Op::*;
    let layer = |ops: Vec<Op>| LayerSpec {
        codec: 0,
        long_names: 0,
        trailing: Vec::new(),
        ops,
    };
    let file = |i: usize, c: &[u8]| File(n(i), Content::Bytes(c.to_vec()), 1);
    let stacks: Vec<Vec<LayerSpec>> = vec![
        // Plain files and directories, metadata modifiers.
        vec![layer(vec![
            Dir(n(0), 0, 0),
            file(3, b"hello"),
            Owner(2, 3),
            Xattr(0, b"v".to_vec()),
            Symlink(n(2), Target::Table(0)),
            Fifo(n(5)),
            CharDev(n(6), 1, 2),
        ])],
        // 1. Same-layer entry plus whiteout, both orders.
        vec![
            layer(vec![file(0, b"old")]),
            layer(vec![file(0, b"new"), Whiteout(n(0))]),
        ],
        vec![
            layer(vec![file(0, b"old")]),
            layer(vec![Whiteout(n(0)), file(0, b"new")]),
        ],
        // 2. Opaque marker after same-layer children.
        vec![
            layer(vec![file(3, b"lower"), file(4, b"lower")]),
            layer(vec![Dir(n(0), 2, 1), file(3, b"upper"), Opaque(n(0))]),
        ],
        // 3. Whiteouts in a lower layer below a shadow in a newer one.
        vec![
            layer(vec![file(7, b"x")]),
            layer(vec![Whiteout(n(3)), Opaque(n(0))]),
            layer(vec![file(3, b"shadow")]),
        ],
        // 4. Non-dir over dir and dir over non-dir.
        vec![
            layer(vec![file(3, b"x"), file(5, b"y")]),
            layer(vec![file(0, b"now a file"), Dir(n(1), 4, 2)]),
            layer(vec![Dir(n(0), 0, 3)]),
        ],
        // 5./6. Hard links to lower targets that later go away.
        vec![
            layer(vec![file(3, b"target")]),
            layer(vec![Hardlink(n(1), n(3))]),
            layer(vec![Whiteout(n(3))]),
        ],
        vec![
            layer(vec![
                file(0, b"t"),
                Hardlink(n(1), n(0)),
                file(0, b"replaced"),
            ]),
            layer(vec![Hardlink(n(2), n(1)), Dir(n(1), 0, 0)]),
        ],
        // 7. A whiteout with content; 8. invalid names.
        vec![
            layer(vec![file(0, b"a")]),
            layer(vec![file(26, b"not empty")]),
        ],
        vec![layer(vec![file(22, b"")])],
        vec![layer(vec![file(18, b"escape")])],
        // 9. Paths through a lower symlink.
        vec![
            layer(vec![Symlink(n(0), Target::Table(1))]),
            layer(vec![file(3, b"beneath")]),
        ],
        // 10. Opaque marker with no dir entry; 11. AUFS metadata.
        vec![
            layer(vec![Dir(n(0), 2, 2), file(3, b"x")]),
            layer(vec![
                Opaque(n(0)),
                file(19, b"plnk"),
                Hardlink(n(2), n(19)),
                file(20, b""),
            ]),
        ],
        // 12. Duplicates in one layer; 13. long, prefixed and non-UTF-8 names, sparse files.
        vec![layer(vec![
            file(0, b"1"),
            file(0, b"2"),
            Dir(n(0), 1, 4),
            Dir(n(0), 2, 5),
        ])],
        vec![
            LayerSpec {
                long_names: 1,
                ..layer(vec![
                    file(28, b"long"),
                    file(29, b"longer"),
                    Symlink(n(15), Target::Raw(vec![b't'; 160])),
                    Hardlink(n(16), n(29)),
                ])
            },
            LayerSpec {
                long_names: 2,
                codec: 3,
                ..layer(vec![
                    file(28, b"prefix"),
                    Sparse(
                        n(14),
                        vec![
                            (100, Content::Fill(7, 5000)),
                            (4096, Content::Bytes(b"x".to_vec())),
                        ],
                        3000,
                    ),
                ])
            },
        ],
        // 14. Multi-member gzip, multi-frame zstd, trailing garbage.
        vec![
            LayerSpec {
                codec: 2,
                trailing: b"garbage".to_vec(),
                ..layer(vec![file(0, b"gz"), Dir(n(1), 0, 0)])
            },
            LayerSpec {
                codec: 4,
                ..layer(vec![file(5, b"zstd")])
            },
        ],
        // Big files: several 4 KiB squashfs blocks, all-zero blocks, duplicates.
        vec![layer(vec![
            File(n(0), Content::Fill(0, 20_000), 1),
            File(n(1), Content::Fill(9, 12_288), 1),
            File(n(2), Content::Fill(9, 12_288), 3),
            Mtime(4),
            Xattr(2, b"y".to_vec()),
        ])],
    ];
    stacks.into_iter().map(MergeInput::Layers).collect()
}

/// Raw layer stacks: tar streams as the builder writes them.
pub fn merge_raw() -> Vec<MergeInput> {
    raw_layers()
        .into_iter()
        .map(|stack| MergeInput::Raw(stack.iter().map(Layer::to_tar_bytes).collect()))
        .collect()
}

/// Builder layers that exercise the tar reader: every entry type, PAX and GNU long names,
/// ustar prefixes, sparse files, binary xattrs, base-256 numbers, trailing garbage.
pub fn raw_layers() -> Vec<Vec<Layer>> {
    let long = [vec![b'l'; 50], b"/".to_vec(), vec![b'm'; 70]].concat();
    vec![
        vec![Layer::new()
            .dir("etc", 0o755)
            .file("etc/passwd", b"root:x:0:0\n", 0o644)
            .with_owner(0, 0)
            .symlink("bin", "usr/bin")
            .hardlink("etc/passwd2", "etc/passwd")
            .fifo("run/fifo")
            .char_dev("dev/null", 1, 3)
            .block_dev("dev/sda", 8, 0)],
        vec![
            Layer::new()
                .file("a/x", b"lower", 0o644)
                .file("b", b"b", 0o600),
            Layer::new()
                .whiteout("a/x")
                .opaque("a")
                .file("a/y", b"upper", 0o644),
        ],
        vec![Layer::new()
            .long_names(LongNames::Gnu)
            .file(&long, b"gnu long name", 0o644)
            .hardlink("short", &long)],
        vec![Layer::new()
            .long_names(LongNames::UstarPrefix)
            .file(&long, b"prefix", 0o644)
            .file("x", b"xattrs", 0o644)
            .with_xattr("user.bin", b"\x00\n=\xff")
            .with_mtime(-5)
            .with_owner(4_000_000, 70_000)],
        vec![Layer::new()
            .sparse_file(
                "sparse",
                70_000,
                &[(512, &[1u8; 1024][..]), (65_536, b"end")],
            )
            .trailing_garbage(b"not a header")],
        vec![Layer::new()
            .compression(Codec::Plain)
            .file("only", b"1", 0o644)],
    ]
}

/// Trees for the squashfs writer: every inode type, links, xattrs, large and sparse files,
/// a directory past 256 entries, each compressor.
pub fn trees() -> Vec<crate::tree_input::TreeInput> {
    use crate::tree_input::{KindSpec, MetaSpec, NameSpec, NodeSpec, TreeInput};
    let meta = MetaSpec {
        mode: 0o644,
        uid: 2,
        gid: 3,
        mtime: 0,
        xattrs: vec![(0, b"1".to_vec()), (2, b"y".to_vec())],
    };
    let node = |parent: usize, name: usize, kind: KindSpec| NodeSpec {
        parent,
        name: NameSpec::Table(name),
        kind,
        meta: MetaSpec {
            mode: 0o755,
            ..MetaSpec::default()
        },
    };
    let everything = vec![
        node(0, 0, KindSpec::Dir),
        NodeSpec {
            meta: meta.clone(),
            ..node(
                1,
                1,
                KindSpec::File(vec![Content::Bytes(b"hello".to_vec())], false),
            )
        },
        node(
            1,
            2,
            KindSpec::File(
                vec![
                    Content::Fill(0, 9000),
                    Content::Fill(3, 5000),
                    Content::Bytes(b"tail".to_vec()),
                ],
                true,
            ),
        ),
        node(0, 3, KindSpec::Symlink(Target::Table(1))),
        node(0, 4, KindSpec::Device(true, 1, 2)),
        node(0, 5, KindSpec::Device(false, 3, 1)),
        node(0, 6, KindSpec::Special(false)),
        node(0, 7, KindSpec::Special(true)),
        node(0, 8, KindSpec::Hardlink(0)),
        node(1, 9, KindSpec::Hardlink(1)),
        NodeSpec {
            name: NameSpec::Raw(vec![b'L'; 255]),
            meta,
            ..node(1, 0, KindSpec::File(vec![Content::Fill(7, 12_288)], false))
        },
    ];
    let mut out = Vec::new();
    for algorithm in 0..5 {
        out.push(TreeInput {
            algorithm,
            block_size: algorithm % 4,
            flags: if algorithm == 0 { 8 } else { 0 },
            order: algorithm % 3,
            root: MetaSpec {
                mode: 0o755,
                ..MetaSpec::default()
            },
            nodes: everything.clone(),
        });
    }
    out.push(TreeInput {
        algorithm: 0,
        block_size: 0,
        flags: 7,
        order: 1,
        root: MetaSpec {
            mode: 0o700,
            uid: 1,
            gid: 1,
            mtime: 4,
            xattrs: vec![(1, b"root".to_vec())],
        },
        nodes: vec![
            node(0, 0, KindSpec::Dir),
            node(1, 0, KindSpec::Many(0, 300)),
            node(0, 1, KindSpec::Many(1, 40)),
            node(1, 2, KindSpec::Hardlink(5)),
        ],
    });
    out
}

/// Tar streams for the tar reader: the raw layers, and hand-made headers the builder's writer
/// does not produce (GNU sparse, base-256 sizes, a PAX `size` record).
pub fn tars() -> Vec<Vec<u8>> {
    use crate::builder::raw;
    let mut out: Vec<Vec<u8>> = raw_layers()
        .iter()
        .flatten()
        .map(Layer::to_tar_bytes)
        .collect();
    // Base-256 size.
    let mut t = raw::header(b"big", b'0', 3, 0o644, 0, 0, 0, b"", (0, 0)).to_vec();
    t.extend_from_slice(b"abc");
    raw::pad(&mut t);
    t.extend(raw::end());
    raw::set_size_base256(&mut t, 0, 3);
    out.push(t);
    // A PAX size record overriding the header.
    let mut t = raw::pax_header(&raw::pax_record(b"size", b"5"));
    t.extend_from_slice(&raw::header(
        b"paxsize",
        b'0',
        0,
        0o644,
        0,
        0,
        0,
        b"",
        (0, 0),
    ));
    t.extend_from_slice(b"12345");
    raw::pad(&mut t);
    t.extend(raw::end());
    out.push(t);
    // An old GNU sparse header ('S') with one region.
    let mut h = raw::header(b"gnusparse", b'S', 4, 0o644, 0, 0, 0, b"", (0, 0));
    h[257..265].copy_from_slice(b"ustar  \0");
    raw::octal(&mut h[386..398], 1000); // sparse[0].offset
    raw::octal(&mut h[398..410], 4); // sparse[0].numbytes
    raw::octal(&mut h[483..495], 2000); // realsize
    raw::set_checksum(&mut h);
    let mut t = h.to_vec();
    t.extend_from_slice(b"data");
    raw::pad(&mut t);
    t.extend(raw::end());
    out.push(t);
    out
}

/// Image layouts: an OCI layout with a nested index and platforms, a docker-save directory and
/// tar, a bare manifest, each pointing at real blobs.
pub fn layouts() -> Vec<crate::layout_input::LayoutInput> {
    use crate::layout_input::{BlobSpec, Key, LayoutInput, J};
    let k = |name: &str| {
        Key::Table(
            crate::layout_input::KEYS
                .iter()
                .position(|x| *x == name)
                .expect("a known key"),
        )
    };
    let s = |v: &str| {
        J::Str(
            crate::layout_input::STRINGS
                .iter()
                .position(|x| *x == v)
                .expect("a known string"),
        )
    };
    let desc = |media: &str, blob: usize| {
        J::Obj(vec![
            (k("mediaType"), s(media)),
            (k("digest"), J::Digest(blob)),
            (k("size"), J::Size(blob, 0)),
        ])
    };
    let layer = |ops| {
        BlobSpec::Layer(LayerSpec {
            codec: 1,
            long_names: 0,
            trailing: Vec::new(),
            ops,
        })
    };
    use crate::merge_input::{Content, Name, Op};
    let l0 = layer(vec![
        Op::Dir(Name::Table(0), 0, 0),
        Op::File(Name::Table(3), Content::Bytes(b"x".to_vec()), 1),
    ]);
    let l1 = layer(vec![Op::Whiteout(Name::Table(3))]);
    let config = BlobSpec::Json(J::Obj(vec![
        (k("architecture"), s("amd64")),
        (k("os"), s("linux")),
        (
            k("rootfs"),
            J::Obj(vec![(
                k("diff_ids"),
                J::Arr(vec![J::Digest(0), J::Digest(1)]),
            )]),
        ),
    ]));
    let manifest = |config: usize| {
        BlobSpec::Json(J::Obj(vec![
            (k("schemaVersion"), J::Number(2)),
            (
                k("mediaType"),
                s("application/vnd.oci.image.manifest.v1+json"),
            ),
            (
                k("config"),
                desc("application/vnd.oci.image.config.v1+json", config),
            ),
            (
                k("layers"),
                J::Arr(vec![
                    desc("application/vnd.oci.image.layer.v1.tar+gzip", 0),
                    desc("application/vnd.oci.image.layer.v1.tar+gzip", 1),
                ]),
            ),
        ]))
    };
    let platform = J::Obj(vec![(k("os"), s("linux")), (k("architecture"), s("amd64"))]);
    let nested = BlobSpec::Json(J::Obj(vec![
        (k("schemaVersion"), J::Number(2)),
        (k("mediaType"), s("application/vnd.oci.image.index.v1+json")),
        (
            k("manifests"),
            J::Arr(vec![J::Obj(vec![
                (
                    k("mediaType"),
                    s("application/vnd.oci.image.manifest.v1+json"),
                ),
                (k("digest"), J::Digest(3)),
                (k("size"), J::Size(3, 0)),
                (k("platform"), platform),
            ])]),
        ),
    ]));
    let index = |target: usize, media: &str| {
        J::Obj(vec![
            (k("schemaVersion"), J::Number(2)),
            (
                k("manifests"),
                J::Arr(vec![J::Obj(vec![
                    (k("mediaType"), s(media)),
                    (k("digest"), J::Digest(target)),
                    (k("size"), J::Size(target, 0)),
                    (
                        k("annotations"),
                        J::Obj(vec![(k("org.opencontainers.image.ref.name"), s("latest"))]),
                    ),
                ])]),
            ),
        ])
    };
    let oci_layout = J::Obj(vec![(k("imageLayoutVersion"), s("1.0.0"))]);
    let oci = |packed: bool, reference: usize| LayoutInput {
        packed,
        reference,
        blobs: vec![
            (l0.clone(), 0),
            (l1.clone(), 0),
            (config.clone(), 0),
            (manifest(2), 0),
            (nested.clone(), 0),
        ],
        files: vec![
            (1, oci_layout.clone()),
            (0, index(4, "application/vnd.oci.image.index.v1+json")),
        ],
    };
    let docker = |packed: bool| LayoutInput {
        packed,
        reference: 99,
        blobs: vec![(l0.clone(), 2), (l1.clone(), 2), (config.clone(), 1)],
        files: vec![(
            2,
            J::Arr(vec![J::Obj(vec![
                (k("Config"), J::Path(2)),
                (k("RepoTags"), J::Arr(vec![s("repo:tag")])),
                (k("Layers"), J::Arr(vec![J::Path(0), J::Path(1)])),
            ])]),
        )],
    };
    let bare = LayoutInput {
        packed: false,
        reference: 99,
        blobs: vec![(l0.clone(), 3), (l1.clone(), 3), (config.clone(), 3)],
        files: vec![(
            2,
            J::Obj(vec![
                (k("schemaVersion"), J::Number(2)),
                (
                    k("config"),
                    desc("application/vnd.oci.image.config.v1+json", 2),
                ),
                (
                    k("layers"),
                    J::Arr(vec![
                        desc("application/vnd.oci.image.layer.v1.tar+gzip", 0),
                        desc("application/vnd.oci.image.layer.v1.tar+gzip", 1),
                    ]),
                ),
            ]),
        )],
    };
    let latest = crate::layout_input::STRINGS
        .iter()
        .position(|x| *x == "latest")
        .expect("known");
    vec![
        oci(false, 99),
        oci(true, latest),
        docker(false),
        docker(true),
        bare,
    ]
}

/// A seed image of the `squashfs_reader` target: its bytes and how they were made.
pub struct SeedImage {
    /// How it was made (writer, compressor, options), for reproducers and gen_corpus.
    pub name: String,
    /// The image.
    pub bytes: Vec<u8>,
}

/// Images ocirender's own writer makes: every compressor (and none), mostly 4 KiB blocks,
/// with and without fragments, dedup and the export table, compressor options blocks, an
/// appended dm-verity tree; trees with every entry type, xattrs, hard links, a 255-byte name,
/// a 300-entry directory (two directory headers, an index), a chain of 40 directories, and
/// that chain patched into two cycles (an entry pointing at the root, one at an ancestor).
/// Each stays under the target's `-max_len` (64 KiB) even uncompressed.
pub fn squashfs_images() -> Vec<SeedImage> {
    use crate::tree_input::{KindSpec, MetaSpec, NameSpec, NodeSpec, TreeInput};
    let plain = MetaSpec {
        mode: 0o755,
        ..MetaSpec::default()
    };
    let node = |parent: usize, name: usize, kind: KindSpec| NodeSpec {
        parent,
        name: NameSpec::Table(name),
        kind,
        meta: plain.clone(),
    };
    let owned = MetaSpec {
        mode: 0o4755,
        uid: 2,
        gid: 7,
        mtime: 3,
        xattrs: vec![
            (0, b"1".to_vec()),
            (2, b"y".to_vec()),
            (3, b"label".to_vec()),
        ],
    };
    let two_blocks_and_a_tail = || {
        KindSpec::File(
            vec![Content::Fill(3, 8192), Content::Bytes(b"tail".to_vec())],
            false,
        )
    };
    // Directories by position: 0 the root, 1 `a`, 2 `a/B`, 3 `big`.
    let small = vec![
        node(0, 0, KindSpec::Dir),
        node(1, 1, KindSpec::Dir),
        NodeSpec {
            meta: owned.clone(),
            ..node(
                1,
                2,
                KindSpec::File(vec![Content::Bytes(b"hello".to_vec())], false),
            )
        },
        node(1, 3, two_blocks_and_a_tail()),
        node(2, 4, two_blocks_and_a_tail()),
        node(
            2,
            5,
            KindSpec::File(
                vec![Content::Fill(0, 9000), Content::Bytes(b"island".to_vec())],
                true,
            ),
        ),
        node(0, 6, KindSpec::Symlink(Target::Table(3))),
        node(0, 7, KindSpec::Symlink(Target::Raw(vec![b't'; 300]))),
        node(0, 4, KindSpec::Device(true, 1, 2)),
        node(0, 5, KindSpec::Device(false, 3, 1)),
        node(0, 8, KindSpec::Special(false)),
        node(2, 8, KindSpec::Special(true)),
        node(0, 9, KindSpec::Hardlink(0)),
        node(2, 9, KindSpec::Hardlink(0)),
        NodeSpec {
            name: NameSpec::Raw(vec![b'L'; 255]),
            meta: owned,
            ..node(
                1,
                0,
                KindSpec::File(vec![Content::Bytes(b"long".to_vec())], false),
            )
        },
    ];
    let mut everything = small.clone();
    everything.push(NodeSpec {
        name: NameSpec::Raw(b"big".to_vec()),
        ..node(0, 0, KindSpec::Dir)
    });
    everything.push(node(3, 0, KindSpec::Many(1, 300)));
    everything.push(node(0, 0, KindSpec::Many(2, 20)));
    // 40 directories `d00/d01/…/d39`, each inside the one before, a file at the bottom.
    let mut deep: Vec<NodeSpec> = (0..40)
        .map(|i| NodeSpec {
            name: NameSpec::Raw(format!("d{i:02}").into_bytes()),
            ..node(i, 0, KindSpec::Dir)
        })
        .collect();
    deep.push(node(40, 1, two_blocks_and_a_tail()));
    let root = MetaSpec {
        mode: 0o755,
        xattrs: vec![(1, b"root".to_vec())],
        ..MetaSpec::default()
    };
    let tree = |algorithm: usize, block_size: usize, flags: u8, nodes: &[NodeSpec]| TreeInput {
        algorithm,
        block_size,
        flags,
        order: 0,
        root: root.clone(),
        nodes: nodes.to_vec(),
    };
    // tree_input::ALGORITHMS: lz4, gzip, zstd, xz, none; BLOCK_SIZES: 4K, 8K, 64K, 128K.
    let mut out = Vec::new();
    for algorithm in 0..5 {
        let t = tree(algorithm, 0, 0, &everything);
        out.push(write_seed(&t, false, "everything"));
    }
    out.push(write_seed(
        &tree(4, 0, 7, &everything),
        false,
        "everything, no fragments, dedup or export table",
    ));
    out.push(write_seed(&tree(4, 0, 0, &small), true, "small, verity"));
    out.push(write_seed(&tree(2, 1, 0, &small), true, "small, verity"));
    let chain = write_seed(&tree(4, 0, 0, &deep), false, "40 directories deep");
    // The same chain made a cycle, as a hostile image would (issue 17): the entry `d39` points
    // at the root inode, and `d20` at `d10`'s.
    let root = u64_at(&chain.bytes, 32);
    let d10 = entry_ref(&chain.bytes, b"d10").expect("the chain has d10");
    for (name, target, what) in [(&b"d39"[..], root, "the root"), (b"d20", d10, "d10")] {
        let mut bytes = chain.bytes.clone();
        redirect(&mut bytes, name, target).expect("the chain has the entry");
        out.push(SeedImage {
            name: format!(
                "{}, its entry {} pointing at {what}",
                chain.name,
                String::from_utf8_lossy(name)
            ),
            bytes,
        });
    }
    out.push(chain);
    out.push(write_seed(&tree(1, 3, 0, &small), false, "small"));
    out.push(write_seed(&tree(4, 0, 0, &[]), false, "only the root"));
    out
}

fn u64_at(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().expect("8 bytes"))
}

/// The directory table of an image whose metadata is stored uncompressed, as image offsets:
/// `map[i]` is where byte `i` of the table's content lies (the blocks' 2-byte headers left
/// out). Reads raw blocks from the superblock's `dir_table` on until one is not raw (what
/// follows the table may be read too, which does no harm to a search for a name).
fn directory_bytes(image: &[u8]) -> Vec<usize> {
    let mut map = Vec::new();
    let mut at = u64_at(image, 72) as usize;
    while at + 2 <= image.len() {
        let header = u16::from_le_bytes([image[at], image[at + 1]]);
        let len = usize::from(header & 0x7fff);
        if header & 0x8000 == 0 || len == 0 || at + 2 + len > image.len() {
            break;
        }
        map.extend(at + 2..at + 2 + len);
        at += 2 + len;
    }
    map
}

/// Where the directory entry `name` (a directory, alone in its header's group) lies: the
/// table's byte map ([`directory_bytes`]) and the table position of its header, which the
/// entry follows.
fn find_entry(image: &[u8], name: &[u8]) -> Option<(Vec<usize>, usize)> {
    let map = directory_bytes(image);
    let table: Vec<u8> = map.iter().map(|&i| image[i]).collect();
    // Entry: offset u16, inode delta i16, type u16 (1: directory), name size − 1 u16, name.
    let mut pattern = vec![1, 0];
    pattern.extend_from_slice(&(name.len() as u16 - 1).to_le_bytes());
    pattern.extend_from_slice(name);
    let found = table.windows(pattern.len()).position(|w| w == pattern)?;
    let entry = found.checked_sub(4)?;
    // Header: count − 1 u32 (0: one entry), start block u32, inode number u32.
    let header = entry.checked_sub(12)?;
    (table[header..header + 4] == [0, 0, 0, 0]).then_some((map, header))
}

/// The inode reference (block << 16 | offset) the directory entry `name` holds.
fn entry_ref(image: &[u8], name: &[u8]) -> Option<u64> {
    let (map, header) = find_entry(image, name)?;
    let byte = |i: usize| u64::from(image[map[header + i]]);
    let block = (0..4).fold(0, |acc, i| acc | byte(4 + i) << (8 * i));
    let offset = byte(12) | byte(13) << 8;
    Some(block << 16 | offset)
}

/// Points the directory entry `name` at the inode `target` (block << 16 | offset).
fn redirect(image: &mut [u8], name: &[u8], target: u64) -> Option<()> {
    let (map, header) = find_entry(image, name)?;
    let block = u32::try_from(target >> 16).ok()?.to_le_bytes();
    let offset = ((target & 0xffff) as u16).to_le_bytes();
    for (i, b) in block.into_iter().enumerate() {
        image[map[header + 4 + i]] = b;
    }
    for (i, b) in offset.into_iter().enumerate() {
        image[map[header + 12 + i]] = b;
    }
    Some(())
}

/// `tree` written by `SquashfsSink` (with an appended verity tree if asked).
fn write_seed(tree: &crate::tree_input::TreeInput, verity: bool, what: &str) -> SeedImage {
    use ocirender::squashfs::SquashfsSink;
    use ocirender::{Jobs, Sink, VerityOptions};
    let mut options = tree.options();
    if verity {
        options.verity = Some(VerityOptions::default());
    }
    let name = format!(
        "ocirender {} {} KiB blocks{}{}{}{}: {what}",
        options.compression.algorithm().name(),
        options.block_size.get() / 1024,
        if options.fragments {
            ""
        } else {
            ", no fragments"
        },
        if options.dedup { "" } else { ", no dedup" },
        if options.exportable {
            ""
        } else {
            ", no export table"
        },
        if verity { ", verity" } else { "" },
    );
    let scratch = crate::scratch();
    let img = scratch.path().join("seed.sqfs");
    let mut sink = SquashfsSink::create(&img, &options, Jobs::new(1).expect("1"), None)
        .expect("create a seed image");
    for (e, data) in tree.plan().entries {
        sink.entry(&e, &mut data.as_slice())
            .expect("write a seed entry");
    }
    Box::new(sink).finish().expect("finish a seed image");
    let bytes = std::fs::read(&img).expect("read the seed image");
    SeedImage { name, bytes }
}

/// What `mksquashfs` runs with for each seed (besides reproducibility flags): each
/// compressor, compressor options blocks, uncompressed tables and data, no fragments, always
/// fragments, no export table, no xattrs, no padding, and lzo (which the reader refuses).
pub const MKSQUASHFS_ARGS: [&[&str]; 9] = [
    &["-comp", "gzip", "-b", "4096"],
    &["-noI", "-noD", "-noF", "-noX", "-b", "4096"],
    &["-comp", "xz", "-b", "4096", "-Xbcj", "x86"],
    &["-comp", "lz4", "-Xhc", "-b", "4096"],
    &["-comp", "zstd", "-Xcompression-level", "3", "-b", "8192"],
    &[
        "-noI",
        "-noD",
        "-noF",
        "-noX",
        "-b",
        "4096",
        "-no-fragments",
        "-no-exports",
        "-no-xattrs",
        "-nopad",
    ],
    &[
        "-noI",
        "-comp",
        "gzip",
        "-Xcompression-level",
        "1",
        "-b",
        "4096",
        "-always-use-fragments",
    ],
    &[
        "-noI",
        "-noX",
        "-comp",
        "zstd",
        "-b",
        "65536",
        "-no-duplicates",
    ],
    &["-comp", "lzo", "-b", "4096"],
];

/// Images `mksquashfs` (squashfs-tools) makes of a small tree ([`mksquashfs_source`]) with
/// each of [`MKSQUASHFS_ARGS`]; `Err` says why there are none (no mksquashfs on PATH). A
/// compressor this mksquashfs was built without is skipped.
pub fn mksquashfs_images() -> Result<Vec<SeedImage>, String> {
    use std::process::Command;
    match Command::new("mksquashfs").arg("-version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => return Err(format!("`mksquashfs -version` failed: {}", o.status)),
        Err(e) => return Err(format!("no mksquashfs (squashfs-tools) on PATH: {e}")),
    }
    let scratch = crate::scratch();
    let src = scratch.path().join("src");
    mksquashfs_source(&src);
    let mut out = Vec::new();
    for (i, args) in MKSQUASHFS_ARGS.iter().enumerate() {
        let img = scratch.path().join(format!("{i}.sqfs"));
        let run = Command::new("mksquashfs")
            .arg(&src)
            .arg(&img)
            .args(["-noappend", "-no-progress", "-quiet", "-processors", "1"])
            .args(["-all-time", "1000", "-mkfs-time", "1000"])
            .args(*args)
            .output()
            .map_err(|e| format!("run mksquashfs: {e}"))?;
        if !run.status.success() {
            eprintln!(
                "mksquashfs {}: {} (seed skipped)",
                args.join(" "),
                String::from_utf8_lossy(&run.stderr).trim()
            );
            continue;
        }
        out.push(SeedImage {
            name: format!("mksquashfs {}", args.join(" ")),
            bytes: std::fs::read(&img).map_err(|e| format!("read {}: {e}", img.display()))?,
        });
    }
    Ok(out)
}

/// The tree the mksquashfs seeds hold: files of one byte to three 4 KiB blocks and a tail, a
/// duplicate, a sparse file, an empty file, symlinks (one of 200 bytes), a hard link, a fifo,
/// devices, xattrs, other owners and modes, 12 nested directories and a 300-entry directory.
/// What the file system or the user cannot make (devices without root, xattrs on a file
/// system without them) is left out.
pub fn mksquashfs_source(root: &std::path::Path) {
    use std::fs;
    use std::os::unix::fs::{lchown, symlink, PermissionsExt};
    let p = |s: &str| root.join(s);
    let nested = "d0/d1/d2/d3/d4/d5/d6/d7/d8/d9/d10/d11";
    for d in ["usr/bin", "etc", "big", nested] {
        fs::create_dir_all(p(d)).expect("create a source directory");
    }
    let write = |name: &str, data: &[u8]| fs::write(p(name), data).expect("write a source file");
    write("etc/passwd", b"root:x:0:0::/root:/bin/sh\n");
    write("empty", b"");
    write("one", b"1");
    let noise: Vec<u8> = (0..3 * 4096 + 100u64)
        .map(|i| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8)
        .collect();
    write("usr/bin/noise", &noise);
    write("usr/bin/copy", &noise);
    write("usr/bin/text", &b"squashfs ".repeat(1000));
    write(&format!("{nested}/bottom"), b"deep");
    let mut sparse = vec![0u8; 5 * 4096];
    sparse[2 * 4096 + 7..2 * 4096 + 13].copy_from_slice(b"island");
    write("sparse", &sparse);
    for i in 0..300 {
        write(&format!("big/f{i:03}"), b"");
    }
    fs::set_permissions(p("usr/bin/text"), fs::Permissions::from_mode(0o4755))
        .expect("chmod a source file");
    fs::hard_link(p("usr/bin/text"), p("hardlink")).expect("hard link a source file");
    symlink("usr/bin/text", p("link")).expect("symlink");
    symlink("x".repeat(200), p("long-link")).expect("symlink");
    let _ = lchown(p("etc/passwd"), Some(1000), Some(100));
    let _ = lchown(p("usr/bin/noise"), Some(65534), Some(65534));
    let mknod = |name: &str, kind: rustix::fs::FileType, dev: u64| {
        let _ = rustix::fs::mknodat(
            rustix::fs::CWD,
            p(name),
            kind,
            rustix::fs::Mode::from_raw_mode(0o640),
            dev,
        );
    };
    mknod("fifo", rustix::fs::FileType::Fifo, 0);
    mknod(
        "null",
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::makedev(1, 3),
    );
    mknod(
        "disk",
        rustix::fs::FileType::BlockDevice,
        rustix::fs::makedev(259, 70000),
    );
    let set = |name: &str, key: &str, value: &[u8]| {
        let _ = rustix::fs::lsetxattr(p(name), key, value, rustix::fs::XattrFlags::empty());
    };
    set("usr/bin/text", "user.comment", b"hello");
    set("usr/bin/text", "trusted.overlay.opaque", b"y");
    set("etc", "user.dir", &[0, 1, 2, 255]);
    set("one", "security.selinux", b"system_u:object_r:etc_t:s0");
}
