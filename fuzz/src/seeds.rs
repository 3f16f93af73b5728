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
