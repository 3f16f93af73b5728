//! The `image_layout` target's input: an image directory written from JSON documents and
//! blobs.
//!
//! Blobs are stored under their real digest, and JSON can refer to a blob's digest, size or
//! path by index, so documents point at blobs that exist (a fuzzer cannot guess a sha256). A
//! blob's JSON may refer only to blobs before it (its own digest depends on the text); the
//! top-level files (`index.json`, `manifest.json`, …) to any. Keys and strings come from the
//! OCI and docker-save vocabulary or are arbitrary; `Raw` splices any text, valid JSON or not.
//! The directory may also be packed into a tar file (docker-save tar, oci-archive).
//!
//! `Debug` prints the files as they are written.

use std::fmt;
use std::fs;
use std::path::Path;

use arbitrary::{Arbitrary, Unstructured};
use sha2::Digest as _;

use crate::builder::Layer;
use crate::codec::{self, lit, Enc};
use crate::merge_input::LayerSpec;

/// Most blobs.
pub const MAX_BLOBS: usize = 8;
/// Most top-level files.
pub const MAX_FILES: usize = 5;
/// Deepest JSON nesting.
pub const MAX_DEPTH: usize = 5;

/// Top-level file names.
pub const FILES: [&str; 6] = [
    "index.json",
    "oci-layout",
    "manifest.json",
    "repositories",
    "blobs/sha256/index.json",
    "version",
];
/// Object keys.
pub const KEYS: [&str; 28] = [
    "schemaVersion",
    "mediaType",
    "manifests",
    "digest",
    "size",
    "platform",
    "architecture",
    "os",
    "variant",
    "annotations",
    "org.opencontainers.image.ref.name",
    "layers",
    "config",
    "Config",
    "RepoTags",
    "Layers",
    "rootfs",
    "diff_ids",
    "imageLayoutVersion",
    "urls",
    "os.version",
    "history",
    "created",
    "Env",
    "Cmd",
    "Entrypoint",
    "User",
    "LayerSources",
];
/// String values.
pub const STRINGS: [&str; 20] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "linux",
    "amd64",
    "arm64",
    "v8",
    "latest",
    "1.0.0",
    "sha256:",
    "layers",
    "repo:tag",
    "",
];
/// Numbers.
pub const NUMBERS: [&str; 8] = [
    "0",
    "1",
    "2",
    "-1",
    "9007199254740993",
    "1e400",
    "1.5",
    "18446744073709551616",
];

/// A JSON value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum J {
    /// `null`, `true` or `false`.
    Atom(u8),
    /// One of [`NUMBERS`].
    Number(usize),
    /// A string: one of [`STRINGS`].
    Str(usize),
    /// Any string.
    RawStr(Vec<u8>),
    /// An array.
    Arr(Vec<J>),
    /// An object; keys index [`KEYS`] or are arbitrary.
    Obj(Vec<(Key, J)>),
    /// `"sha256:<hex>"` of a blob.
    Digest(usize),
    /// A blob's size, plus a small error.
    Size(usize, i8),
    /// The path a blob is stored at (docker-save `Config` and `Layers`).
    Path(usize),
    /// Text spliced as it is.
    Raw(Vec<u8>),
}

/// An object key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// One of [`KEYS`].
    Table(usize),
    /// Any string.
    Raw(Vec<u8>),
}

/// A blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BlobSpec {
    /// A JSON document.
    Json(J),
    /// A layer from the merge DSL (compressed with its codec).
    Layer(LayerSpec),
    /// Any bytes.
    Bytes(Vec<u8>),
}

/// Where a blob is stored.
pub const BLOB_PLACES: [&str; 4] = ["blobs/sha256/{}", "{}.json", "{}/layer.tar", "{}"];

/// A whole image directory.
#[derive(Clone, PartialEq, Eq)]
pub struct LayoutInput {
    /// Pack the directory into a tar file and open that.
    pub packed: bool,
    /// A `DIR:REF` reference: index into [`STRINGS`] (past its end: none).
    pub reference: usize,
    /// Blobs with where they go (index into [`BLOB_PLACES`]); a blob of place ≥ 4 is not
    /// written at all (a missing blob).
    pub blobs: Vec<(BlobSpec, usize)>,
    /// Top-level files: index into [`FILES`], content.
    pub files: Vec<(usize, J)>,
}

impl J {
    fn decode(u: &mut Unstructured<'_>, blobs: usize, depth: usize) -> J {
        let t = codec::pick(u, 12);
        match t {
            0 => J::Atom(codec::pick(u, 3) as u8),
            1 => J::Number(codec::pick(u, NUMBERS.len())),
            2 | 3 => J::Str(codec::pick(u, STRINGS.len())),
            4 => J::RawStr(codec::short_bytes(u, 64)),
            5 if depth < MAX_DEPTH => {
                let n = codec::pick(u, 4);
                J::Arr((0..n).map(|_| J::decode(u, blobs, depth + 1)).collect())
            }
            6 | 7 if depth < MAX_DEPTH => {
                let n = codec::pick(u, 6);
                J::Obj(
                    (0..n)
                        .map(|_| {
                            let k = if codec::u8(u) < 240 {
                                Key::Table(codec::pick(u, KEYS.len()))
                            } else {
                                Key::Raw(codec::short_bytes(u, 32))
                            };
                            (k, J::decode(u, blobs, depth + 1))
                        })
                        .collect(),
                )
            }
            8 if blobs > 0 => J::Digest(codec::pick(u, blobs)),
            9 if blobs > 0 => J::Size(codec::pick(u, blobs), codec::u8(u) as i8 % 3),
            10 if blobs > 0 => J::Path(codec::pick(u, blobs)),
            11 => J::Raw(codec::short_bytes(u, 64)),
            _ => J::Atom(0),
        }
    }

    fn encode(&self, e: &mut Enc) {
        match self {
            J::Atom(a) => {
                e.pick(0).pick(usize::from(*a));
            }
            J::Number(i) => {
                e.pick(1).pick(*i);
            }
            J::Str(i) => {
                e.pick(2).pick(*i);
            }
            J::RawStr(b) => {
                e.pick(4).short_bytes(b);
            }
            J::Arr(v) => {
                e.pick(5).pick(v.len());
                for x in v {
                    x.encode(e);
                }
            }
            J::Obj(v) => {
                e.pick(6).pick(v.len());
                for (k, x) in v {
                    match k {
                        Key::Table(i) => e.u8(0).pick(*i),
                        Key::Raw(b) => e.u8(240).short_bytes(b),
                    };
                    x.encode(e);
                }
            }
            J::Digest(i) => {
                e.pick(8).pick(*i);
            }
            J::Size(i, d) => {
                e.pick(9).pick(*i).u8(*d as u8);
            }
            J::Path(i) => {
                e.pick(10).pick(*i);
            }
            J::Raw(b) => {
                e.pick(11).short_bytes(b);
            }
        }
    }

    /// The JSON text; `blobs` are the blobs written so far (`(bytes, path)`).
    pub fn render(&self, blobs: &[(Vec<u8>, String)], out: &mut Vec<u8>) {
        let string = |s: &[u8], out: &mut Vec<u8>| {
            let text = serde_json::to_string(&String::from_utf8_lossy(s)).expect("a string");
            out.extend_from_slice(text.as_bytes());
        };
        match self {
            J::Atom(a) => {
                out.extend_from_slice([&b"null"[..], b"true", b"false"][usize::from(*a) % 3])
            }
            J::Number(i) => out.extend_from_slice(NUMBERS[*i].as_bytes()),
            J::Str(i) => string(STRINGS[*i].as_bytes(), out),
            J::RawStr(b) => string(b, out),
            J::Arr(v) => {
                out.push(b'[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    x.render(blobs, out);
                }
                out.push(b']');
            }
            J::Obj(v) => {
                out.push(b'{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    match k {
                        Key::Table(i) => string(KEYS[*i].as_bytes(), out),
                        Key::Raw(b) => string(b, out),
                    }
                    out.push(b':');
                    x.render(blobs, out);
                }
                out.push(b'}');
            }
            J::Digest(i) => match blobs.get(*i) {
                Some((b, _)) => string(format!("sha256:{}", hex(b)).as_bytes(), out),
                None => out.extend_from_slice(b"null"),
            },
            J::Size(i, d) => match blobs.get(*i) {
                Some((b, _)) => {
                    out.extend_from_slice((b.len() as i64 + i64::from(*d)).to_string().as_bytes())
                }
                None => out.extend_from_slice(b"0"),
            },
            J::Path(i) => match blobs.get(*i) {
                Some((_, p)) => string(p.as_bytes(), out),
                None => out.extend_from_slice(b"\"\""),
            },
            J::Raw(b) => out.extend_from_slice(b),
        }
    }
}

fn hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

impl<'a> Arbitrary<'a> for LayoutInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let packed = codec::u8(u) & 1 == 1;
        let reference = codec::pick(u, STRINGS.len() + 4);
        let nblobs = codec::pick(u, MAX_BLOBS + 1);
        let mut blobs = Vec::new();
        for i in 0..nblobs {
            let place = codec::pick(u, BLOB_PLACES.len() + 1);
            let spec = match codec::pick(u, 3) {
                0 => BlobSpec::Json(J::decode(u, i, 0)),
                1 => BlobSpec::Layer(LayerSpec::decode(u, crate::merge_input::names().len())),
                _ => BlobSpec::Bytes(codec::bytes(u, 4096)),
            };
            blobs.push((spec, place));
        }
        let nfiles = codec::pick(u, MAX_FILES + 1);
        let files = (0..nfiles)
            .map(|_| (codec::pick(u, FILES.len()), J::decode(u, nblobs, 0)))
            .collect();
        Ok(LayoutInput {
            packed,
            reference,
            blobs,
            files,
        })
    }
}

impl LayoutInput {
    /// The bytes this input decodes from.
    pub fn encode(&self) -> Vec<u8> {
        let mut e = Enc::default();
        e.u8(u8::from(self.packed))
            .pick(self.reference)
            .pick(self.blobs.len());
        for (spec, place) in &self.blobs {
            e.pick(*place);
            match spec {
                BlobSpec::Json(j) => {
                    e.pick(0);
                    j.encode(&mut e);
                }
                BlobSpec::Layer(l) => {
                    e.pick(1);
                    l.encode(&mut e);
                }
                BlobSpec::Bytes(b) => {
                    e.pick(2).bytes(b);
                }
            }
        }
        e.pick(self.files.len());
        for (f, j) in &self.files {
            e.pick(*f);
            j.encode(&mut e);
        }
        e.0
    }

    /// The `DIR:REF` reference, if any.
    pub fn reference(&self) -> Option<&'static str> {
        STRINGS.get(self.reference).copied()
    }

    /// The files to write: `(relative path, bytes)`.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut blobs: Vec<(Vec<u8>, String)> = Vec::new();
        let mut out = Vec::new();
        for (spec, place) in &self.blobs {
            let bytes = match spec {
                BlobSpec::Json(j) => {
                    let mut b = Vec::new();
                    j.render(&blobs, &mut b);
                    b
                }
                BlobSpec::Layer(l) => l.to_layer().blob_bytes(),
                BlobSpec::Bytes(b) => b.clone(),
            };
            let path = BLOB_PLACES
                .get(*place)
                .map(|p| p.replace("{}", &hex(&bytes)))
                .unwrap_or_default();
            if !path.is_empty() {
                out.push((path.clone(), bytes.clone()));
            }
            blobs.push((bytes, path));
        }
        for (f, j) in &self.files {
            let mut b = Vec::new();
            j.render(&blobs, &mut b);
            out.push((FILES[*f].to_owned(), b));
        }
        out
    }

    /// Writes the image into `dir` (or packs it into `dir.tar`); returns the path to open.
    pub fn write(&self, dir: &Path) -> std::path::PathBuf {
        let files = self.files();
        if self.packed {
            let mut layer = Layer::new();
            for (p, b) in &files {
                layer = layer.file(p, b, 0o644);
            }
            let tar = dir.with_extension("tar");
            fs::write(&tar, layer.to_tar_bytes()).expect("write the tar file");
            return tar;
        }
        for (p, b) in &files {
            let path = dir.join(p);
            if let Some(parent) = path.parent() {
                let _ = fs::create_dir_all(parent);
            }
            // A name may collide with a directory another file needs; skip it then.
            let _ = fs::write(&path, b);
        }
        dir.to_path_buf()
    }
}

/// The files as they are written.
impl fmt::Debug for LayoutInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "// packed: {}, reference: {:?}",
            self.packed,
            self.reference()
        )?;
        for (p, b) in self.files() {
            writeln!(f, "fs::write(dir.join({p:?}), {})?;", lit(&b))?;
        }
        Ok(())
    }
}
