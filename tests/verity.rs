//! dm-verity hash trees on squashfs output (`SquashfsOptions::verity`, `convert --verity`,
//! `verify --verity`).
//!
//! Oracles, and what each one checks:
//! - `veritysetup` (cryptsetup-bin) is the reference implementation: `veritysetup verify`
//!   must accept every tree we write (appended with `--hash-offset`, or in a separate hash
//!   file) and refuse every copy with one byte changed; `veritysetup format`, run on the image
//!   written without verity with our salt and UUID, must compute the same root hash and write
//!   the same hash area byte for byte; `veritysetup dump` shows the salt we were given.
//! - `unsquashfs` and `backhand` read the verity image (with the tree after it) to the same
//!   tree as the image written without verity; and the first `data_blocks × 4096` bytes are
//!   that image byte for byte: the tree changes nothing in the squashfs.
//! - The tree's shape (how many hash blocks each level has) is computed here from the
//!   format's rule, independently of `src/verity`, and checked against the hash area's length.
//! - `ocirender::verity::check` is checked against the above: it accepts what veritysetup
//!   accepts, and for a changed byte names what veritysetup only refuses: the data block and
//!   the file it holds (found here by searching the image for the file's own bytes), or the
//!   hash block.
//! - The CLI is checked for its contract: exit status, a message naming the bad block, the
//!   `--verity-info` JSON agreeing with the library's summary, and no output after an error.
//!
//! Images are written with no compression and no fragments where sizes must be predictable
//! (so a file's bytes appear verbatim in the image, and its size sets the image's), and with
//! the default compressor where only determinism is at stake.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::builder::{noise, Built, Codec, Corruption, ImageBuilder, Layer};
use crate::support::outputs::open_image;
use ocirender::verity::{self, VerityMismatch};
use ocirender::{
    convert, Algorithm, BlockSize, Compression, ConvertOptions, Error, Format, ImageSpec, Jobs,
    LayerMeta, SquashfsOptions, StreamingPacker, Summary, VerityHash, VerityInfo, VerityOptions,
};
use sha2::{Digest, Sha256};

/// The pinned superblock time, so that the bytes depend on nothing but the input.
const MTIME: u32 = 1_600_000_000;

/// dm-verity's data and hash block size, as we write it.
const BLOCK: u64 = 4096;

// ---------------------------------------------------------------------------------------------
// External tools and the CLI

/// The `veritysetup` binary. It lives in /usr/sbin on Debian, which a non-root PATH may lack.
fn veritysetup_path() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin".into(), "/sbin".into()]);
    dirs.iter()
        .map(|d| d.join("veritysetup"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("veritysetup not found: apt-get install cryptsetup-bin"))
}

fn veritysetup<S: AsRef<OsStr>>(args: &[S]) -> Output {
    let mut cmd = Command::new(veritysetup_path());
    cmd.args(args);
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The `veritysetup verify` arguments for a tree, appended (`--hash-offset`) or separate.
fn verify_args(image: &Path, info: &VerityInfo, root_hex: &str) -> Vec<String> {
    let mut args = vec!["verify".to_string(), image.display().to_string()];
    match &info.hash_file {
        Some(f) => args.push(f.display().to_string()),
        None => {
            args.push(image.display().to_string());
            args.push(format!("--hash-offset={}", info.hash_offset));
        }
    }
    args.push(root_hex.to_string());
    args
}

/// Whether `veritysetup verify` accepts `image` with `info`'s tree and `root_hex`.
fn veritysetup_accepts(image: &Path, info: &VerityInfo, root_hex: &str) -> (bool, String) {
    let o = veritysetup(&verify_args(image, info, root_hex));
    (o.status.success(), text(&o))
}

fn assert_veritysetup_accepts(image: &Path, info: &VerityInfo, context: &str) {
    let (ok, out) = veritysetup_accepts(image, info, &info.root_hash_hex());
    assert!(
        ok,
        "{context}: veritysetup verify refused the image:\n{out}"
    );
}

fn assert_veritysetup_refuses(image: &Path, info: &VerityInfo, root_hex: &str, context: &str) {
    let (ok, out) = veritysetup_accepts(image, info, root_hex);
    assert!(
        !ok,
        "{context}: veritysetup verify accepted a damaged image:\n{out}"
    );
}

/// `veritysetup dump` of a tree: `(field, value)` lines such as `("Salt", "0011")`.
fn veritysetup_dump(image: &Path, info: &VerityInfo) -> Vec<(String, String)> {
    let args: Vec<String> = match &info.hash_file {
        Some(f) => vec!["dump".into(), f.display().to_string()],
        None => vec![
            "dump".into(),
            image.display().to_string(),
            format!("--hash-offset={}", info.hash_offset),
        ],
    };
    let o = veritysetup(&args);
    assert!(o.status.success(), "veritysetup dump: {}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

fn dump_field(dump: &[(String, String)], field: &str) -> String {
    dump.iter()
        .find(|(k, _)| k == field)
        .unwrap_or_else(|| panic!("veritysetup dump has no {field:?}: {dump:?}"))
        .1
        .clone()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ocirender"))
}

fn cli<S: AsRef<OsStr>>(args: &[S]) -> Output {
    bin().args(args).output().expect("run ocirender")
}

/// `ocirender verify IMAGE --verity ROOT [--verity-hash-file F]`.
fn cli_verify(image: &Path, root_hex: &str, hash_file: Option<&Path>) -> Output {
    let mut args = vec!["verify", p(image), "--verity", root_hex];
    if let Some(f) = hash_file {
        args.extend(["--verity-hash-file", p(f)]);
    }
    cli(&args)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

// ---------------------------------------------------------------------------------------------
// Conversions

/// Options that make sizes predictable: no compression (a file's bytes are in the image as
/// they are), no fragments (each file's tail in its own block), a pinned time.
fn raw_options(verity: Option<VerityOptions>) -> ConvertOptions {
    ConvertOptions::default()
        .jobs(Jobs::new(2).unwrap())
        .squashfs(SquashfsOptions {
            compression: Compression::new(Algorithm::None, None).unwrap(),
            fragments: false,
            mtime: Some(MTIME),
            verity,
            ..SquashfsOptions::default()
        })
}

fn with_verity(options: &ConvertOptions, verity: VerityOptions) -> ConvertOptions {
    let mut o = options.clone();
    o.squashfs.verity = Some(verity);
    o
}

fn try_convert(image: &Path, target: &Path, options: &ConvertOptions) -> Result<Summary, Error> {
    let image = open_image(image)?;
    convert(&image, &ImageSpec::new(Format::Squashfs, target), options)
}

fn convert_to(image: &Path, target: &Path, options: &ConvertOptions) -> Summary {
    try_convert(image, target, options)
        .unwrap_or_else(|e| panic!("converting to {}: {e}", target.display()))
}

/// The entries of `dir`, sorted.
fn entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// The three conversions of one image: without verity, with the tree appended, and with it in
/// a separate hash file.
struct Trio {
    dir: tempfile::TempDir,
    plain: PathBuf,
    appended: PathBuf,
    appended_info: VerityInfo,
    separate: PathBuf,
    separate_info: VerityInfo,
}

impl Trio {
    fn new(image: &Path, options: &ConvertOptions, verity: &VerityOptions) -> Trio {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("plain.sqfs");
        let appended = dir.path().join("appended.sqfs");
        let separate = dir.path().join("separate.sqfs");
        let hash_file = dir.path().join("separate.hash");
        let mut no_verity = options.clone();
        no_verity.squashfs.verity = None;
        let s = convert_to(image, &plain, &no_verity);
        assert!(s.verity.is_none(), "a tree without verity asked for");
        let s = convert_to(image, &appended, &with_verity(options, verity.clone()));
        let appended_info = s.verity.clone().expect("no verity info in the summary");
        assert_eq!(
            s.output_bytes,
            fs::metadata(&appended).unwrap().len(),
            "the summary's output size counts the appended tree"
        );
        let s = convert_to(
            image,
            &separate,
            &with_verity(
                options,
                VerityOptions {
                    hash_file: Some(hash_file.clone()),
                    ..verity.clone()
                },
            ),
        );
        let separate_info = s.verity.clone().expect("no verity info in the summary");
        assert_eq!(
            separate_info.hash_file.as_deref(),
            Some(hash_file.as_path())
        );
        assert_eq!(s.output_bytes, fs::metadata(&separate).unwrap().len());
        Trio {
            dir,
            plain,
            appended,
            appended_info,
            separate,
            separate_info,
        }
    }

    fn hash_file(&self) -> &Path {
        self.separate_info.hash_file.as_deref().unwrap()
    }
}

/// Hash blocks in a tree over `data_blocks` blocks with `fanout` digests per hash block:
/// each level holds the digests of the one below, up to a level of one block; one data
/// block has no tree at all (its digest is the root hash).
fn tree_levels(data_blocks: u64, fanout: u64) -> Vec<u64> {
    let mut levels = Vec::new();
    let mut n = data_blocks;
    while n > 1 {
        n = n.div_ceil(fanout);
        levels.push(n);
    }
    levels
}

fn fanout(hash: VerityHash) -> u64 {
    match hash {
        VerityHash::Sha256 => BLOCK / 32,
        VerityHash::Sha512 => BLOCK / 64,
    }
}

/// An image of one file of `len` incompressible bytes (and a directory around it).
fn one_file_image(dir: &Path, len: usize, seed: u64) -> Built {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .dir("data", 0o755)
                .file("data/blob", noise(len, seed), 0o644),
        )
        .build(dir)
}

/// An image whose raw squashfs is exactly `blocks` data blocks: the file size is corrected by
/// the difference until it is (the tables grow a little with the file, so it may take more
/// than one try).
fn image_of_blocks(dir: &Path, blocks: u64, hash: VerityHash) -> Built {
    let mut len = (blocks * BLOCK) as i64 - 2048;
    for attempt in 0..8 {
        let image_dir = dir.join(format!("image-{attempt}"));
        let built = one_file_image(&image_dir, len.max(1) as usize, blocks);
        let out = dir.join(format!("probe-{attempt}.sqfs"));
        let verity = VerityOptions {
            hash,
            ..VerityOptions::default()
        };
        let got = convert_to(&built, &out, &raw_options(Some(verity)))
            .verity
            .unwrap()
            .data_blocks;
        fs::remove_file(&out).unwrap();
        if got == blocks {
            return built;
        }
        len += (blocks as i64 - got as i64) * BLOCK as i64;
    }
    panic!("could not size an image to {blocks} data blocks");
}

/// The checks every tree must pass, appended and separate.
fn check_trio(t: &Trio, hash: VerityHash, context: &str) {
    let plain = fs::read(&t.plain).unwrap();
    let appended = fs::read(&t.appended).unwrap();
    let separate = fs::read(&t.separate).unwrap();
    let hash_file = fs::read(t.hash_file()).unwrap();
    let (a, s) = (&t.appended_info, &t.separate_info);

    // The data device is the squashfs image as written without verity, padded to 4 KiB.
    assert_eq!(plain.len() as u64 % BLOCK, 0, "{context}: image not padded");
    assert_eq!(a.data_blocks * BLOCK, plain.len() as u64, "{context}");
    assert_eq!(s.data_blocks, a.data_blocks, "{context}");
    assert!(
        appended[..plain.len()] == plain[..],
        "{context}: the appended tree changed the squashfs part"
    );
    assert!(
        separate == plain,
        "{context}: the image beside a hash file differs from one without verity"
    );

    // The hash area: a superblock block, then the tree, of the shape the format prescribes.
    let levels = tree_levels(a.data_blocks, fanout(hash));
    let area = BLOCK * (1 + levels.iter().sum::<u64>());
    assert_eq!(a.hash_area_len(), area, "{context}: levels {levels:?}");
    assert_eq!(a.hash_offset, plain.len() as u64, "{context}");
    assert_eq!(s.hash_offset, 0, "{context}");
    assert_eq!(
        appended.len() as u64,
        plain.len() as u64 + area,
        "{context}"
    );
    assert_eq!(hash_file.len() as u64, area, "{context}");
    assert!(
        appended[plain.len()..] == hash_file[..],
        "{context}: the appended hash area differs from the separate hash file"
    );

    // The derived salt depends on the data only, so both places give the same tree.
    assert_eq!(a.hash, hash, "{context}");
    assert_eq!(a.salt.len(), 32, "{context}: the derived salt");
    assert_eq!(
        (&a.root_hash, &a.salt, a.uuid),
        (&s.root_hash, &s.salt, s.uuid),
        "{context}"
    );
    assert_eq!(a.root_hash.len(), hash.digest_len(), "{context}");
    assert_eq!((a.data_block_size, a.hash_block_size), (4096, 4096));

    assert_veritysetup_accepts(&t.appended, a, &format!("{context}, appended"));
    assert_veritysetup_accepts(&t.separate, s, &format!("{context}, separate"));

    for (image, info, hf) in [
        (&t.appended, a, None),
        (&t.separate, s, Some(t.hash_file())),
    ] {
        let report = verity::check(image, hf, &info.root_hash)
            .unwrap_or_else(|e| panic!("{context}: check: {e}"));
        assert_eq!(report.mismatch, None, "{context}: {}", image.display());
        assert_eq!(&report.info, info, "{context}: the tree as check reads it");
    }

    // The squashfs readers do not mind the tree after the image.
    assert_dump!(
        crate::support::oracle::unsquashfs(&t.plain),
        crate::support::oracle::unsquashfs(&t.appended),
        "{context}: unsquashfs"
    );
    assert_dump!(
        crate::support::oracle::backhand(&t.plain),
        crate::support::oracle::backhand(&t.appended),
        "{context}: backhand"
    );
}

// ---------------------------------------------------------------------------------------------
// 1. veritysetup accepts every tree, whatever its shape

#[test]
fn a_single_data_block_has_no_tree() {
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("etc/hostname", "tiny\n", 0o644))
        .build(work.path().join("image"));
    for hash in [VerityHash::Sha256, VerityHash::Sha512] {
        let verity = VerityOptions {
            hash,
            ..VerityOptions::default()
        };
        let t = Trio::new(&image, &raw_options(None), &verity);
        assert_eq!(t.appended_info.data_blocks, 1, "{hash}: not a tiny image");
        check_trio(&t, hash, &format!("one block, {hash}"));
        // No tree: the root hash is the one data block's salted digest.
        let block = fs::read(&t.plain).unwrap();
        let expected = match hash {
            VerityHash::Sha256 => Sha256::new()
                .chain_update(&t.appended_info.salt)
                .chain_update(&block)
                .finalize()
                .to_vec(),
            VerityHash::Sha512 => sha2::Sha512::new()
                .chain_update(&t.appended_info.salt)
                .chain_update(&block)
                .finalize()
                .to_vec(),
        };
        assert_eq!(t.appended_info.root_hash, expected, "{hash}");
    }
}

#[test]
fn full_and_just_overfull_first_level_blocks() {
    // A level-0 hash block holds 128 sha256 or 64 sha512 digests: exactly that many data blocks
    // fill one block, which is then the top; one more needs a second level.
    let work = tempfile::tempdir().unwrap();
    for (hash, blocks) in [
        (VerityHash::Sha256, 128),
        (VerityHash::Sha256, 129),
        (VerityHash::Sha512, 64),
        (VerityHash::Sha512, 65),
    ] {
        let dir = work.path().join(format!("{hash}-{blocks}"));
        let image = image_of_blocks(&dir, blocks, hash);
        let verity = VerityOptions {
            hash,
            ..VerityOptions::default()
        };
        let t = Trio::new(&image, &raw_options(None), &verity);
        assert_eq!(t.appended_info.data_blocks, blocks);
        let expected_levels = if blocks == fanout(hash) { 1 } else { 2 };
        assert_eq!(
            tree_levels(blocks, fanout(hash)).len(),
            expected_levels,
            "{hash}, {blocks} blocks"
        );
        check_trio(&t, hash, &format!("{hash}, {blocks} data blocks"));
    }
}

#[test]
fn multi_level_trees() {
    // sha256 over ~300 blocks: 3 level-0 blocks under a top block. sha512 (64 to a block) over
    // ~4200 blocks: 66, then 2, then 1 block, three levels (about 17 MiB of data).
    let work = tempfile::tempdir().unwrap();
    for (hash, blocks, levels) in [(VerityHash::Sha256, 300, 2), (VerityHash::Sha512, 4200, 3)] {
        let image = one_file_image(
            &work.path().join(format!("image-{hash}")),
            blocks * BLOCK as usize,
            7,
        );
        let verity = VerityOptions {
            hash,
            ..VerityOptions::default()
        };
        let t = Trio::new(&image, &raw_options(None), &verity);
        let data_blocks = t.appended_info.data_blocks;
        assert_eq!(
            tree_levels(data_blocks, fanout(hash)).len(),
            levels,
            "{hash}: {data_blocks} data blocks"
        );
        check_trio(&t, hash, &format!("{hash}, {data_blocks} data blocks"));
        fs::remove_dir_all(t.dir.path()).unwrap();
    }
}

#[test]
fn compressed_images_with_fragments_dedup_and_a_second_pass() {
    // The default compressor, small files sharing fragment blocks, duplicate files (dedup
    // rewinds the image position over blocks already hashed, and over more than the 1 MiB
    // write buffer for the big pair), and a layer that writes through an older layer's
    // symlink (the conversion runs twice). Both a derived and a given salt: only the given
    // one keeps the digests taken while writing, so only it would show a rewind that left a
    // stale digest behind.
    let work = tempfile::tempdir().unwrap();
    let big = noise(3 << 20, 11);
    let mut base = Layer::new()
        .dir("usr/lib", 0o755)
        .symlink("lib", "usr/lib")
        .file("opt/big-a", &big, 0o644)
        .file("opt/big-b", &big, 0o644);
    for i in 0..60u64 {
        base = base.file(
            format!("usr/lib/small-{i:02}"),
            noise(100 + (i as usize * 53) % 2500, i),
            0o644,
        );
    }
    let image = ImageBuilder::new()
        .layer(base)
        .layer(
            Layer::new()
                .compression(Codec::Zstd)
                .file("lib/through-the-symlink", "x\n", 0o644)
                .file("usr/lib/small-03-copy", noise(100 + 3 * 53, 3), 0o644)
                .file("opt/text", "line of text\n".repeat(50_000), 0o644),
        )
        .build(work.path().join("image"));
    let compressed = ConvertOptions::default().squashfs(SquashfsOptions {
        mtime: Some(MTIME),
        ..SquashfsOptions::default()
    });
    let s = convert_to(&image, &work.path().join("probe.sqfs"), &compressed);
    assert!(s.second_pass, "the image was meant to need a second pass");
    for (options, what) in [(compressed, "zstd"), (raw_options(None), "raw")] {
        for salt in [None, Some(b"given salt".to_vec())] {
            let verity = VerityOptions {
                salt: salt.clone(),
                ..VerityOptions::default()
            };
            let t = Trio::new(&image, &options, &verity);
            let context = format!("{what}, salt {salt:?}");
            let (a, s) = (&t.appended_info, &t.separate_info);
            if let Some(salt) = &salt {
                assert_eq!(&a.salt, salt, "{context}");
            }
            assert_veritysetup_accepts(&t.appended, a, &format!("{context}, appended"));
            assert_veritysetup_accepts(&t.separate, s, &format!("{context}, separate"));
            assert_eq!(a.root_hash, s.root_hash, "{context}");
            let plain = fs::read(&t.plain).unwrap();
            let appended = fs::read(&t.appended).unwrap();
            assert!(appended[..plain.len()] == plain[..], "{context}");
            assert_eq!(
                verity::check(&t.appended, None, &a.root_hash)
                    .unwrap()
                    .mismatch,
                None,
                "{context}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 2. A changed byte is refused, and check names it

/// The file whose bytes are flipped: distinctive and incompressible, so that with no
/// compression its bytes can be found in the image by searching for them.
const PAYLOAD: &str = "usr/bin/payload";

fn payload() -> Vec<u8> {
    noise(64 << 10, 0xfeed)
}

/// An image of about 170 data blocks: a two-level sha256 tree whose level 0 has two blocks,
/// the second one mostly unused.
fn flip_image(dir: &Path) -> Built {
    ImageBuilder::new()
        .layer(
            Layer::new()
                .file(PAYLOAD, payload(), 0o755)
                .file("usr/share/big", noise(600 << 10, 5), 0o644)
                .file("etc/motd", "hello\n", 0o644),
        )
        .build(dir)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A copy of `from` with the byte at `at` inverted.
fn flipped_copy(from: &Path, to: &Path, at: u64) {
    let mut bytes = fs::read(from).unwrap();
    bytes[at as usize] ^= 0xff;
    fs::write(to, bytes).unwrap();
}

fn check_mismatch(image: &Path, info: &VerityInfo, root: &[u8]) -> Option<VerityMismatch> {
    verity::check(image, info.hash_file.as_deref(), root)
        .unwrap_or_else(|e| panic!("check {}: {e}", image.display()))
        .mismatch
}

#[test]
fn a_flipped_data_byte_is_refused_and_named() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let t = Trio::new(&image, &raw_options(None), &VerityOptions::default());
    let plain = fs::read(&t.plain).unwrap();
    let start = find(&plain, &payload()[..256]).expect("the payload is not stored verbatim") as u64;
    // Well inside the payload: the whole 4 KiB block around it holds nothing else.
    let at = start + 20_000;
    let block = at / BLOCK;
    for (image, info) in [
        (&t.appended, &t.appended_info),
        (&t.separate, &t.separate_info),
    ] {
        let bad = t.dir.path().join("bad.sqfs");
        flipped_copy(image, &bad, at);
        let context = format!("{}, byte {at}", image.display());
        assert_veritysetup_refuses(&bad, info, &info.root_hash_hex(), &context);
        match check_mismatch(&bad, info, &info.root_hash) {
            Some(VerityMismatch::DataBlock {
                block: b,
                offset,
                holds,
            }) => {
                assert_eq!((b, offset), (block, block * BLOCK), "{context}");
                assert!(holds.contains(PAYLOAD), "{context}: holds {holds:?}");
            }
            other => panic!("{context}: {other:?}"),
        }
        let o = cli_verify(&bad, &info.root_hash_hex(), info.hash_file.as_deref());
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{context}: {err}");
        assert!(
            err.contains(&format!("data block {block} ")) && err.contains(PAYLOAD),
            "{context}: the message does not name the block and file: {err}"
        );
        // The intact image passes the same command.
        let o = cli_verify(image, &info.root_hash_hex(), info.hash_file.as_deref());
        assert!(o.status.success(), "{context}: {}", stderr(&o));
    }
}

#[test]
fn a_flipped_squashfs_superblock_byte_is_named() {
    // Byte 8 is the superblock's time: the image still reads (and the tree is still found at
    // the padded end), so only the hash says it changed.
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let t = Trio::new(&image, &raw_options(None), &VerityOptions::default());
    let info = &t.appended_info;
    let bad = t.dir.path().join("bad.sqfs");
    flipped_copy(&t.appended, &bad, 8);
    assert_veritysetup_refuses(&bad, info, &info.root_hash_hex(), "superblock");
    match check_mismatch(&bad, info, &info.root_hash) {
        Some(VerityMismatch::DataBlock { block, holds, .. }) => {
            assert_eq!(block, 0);
            assert!(holds.contains("superblock"), "holds {holds:?}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_flipped_hash_tree_byte_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let t = Trio::new(&image, &raw_options(None), &VerityOptions::default());
    let levels = tree_levels(t.appended_info.data_blocks, 128);
    assert_eq!(
        levels,
        vec![2, 1],
        "the image is meant to have a 2 + 1 block tree"
    );
    for (image, info) in [
        (&t.appended, &t.appended_info),
        (&t.separate, &t.separate_info),
    ] {
        // The file holding the tree, and where the tree starts in it: the top block first,
        // then level 0's two blocks.
        let tree_file = info
            .hash_file
            .clone()
            .unwrap_or_else(|| image.to_path_buf());
        let top = info.hash_offset + BLOCK;
        let level0 = top + BLOCK;
        let cases = [
            ("the top block", top + 40, "root"),
            (
                "level 0, block 1, a used slot",
                level0 + BLOCK + 33,
                "hash block",
            ),
            (
                "level 0, block 1, an unused slot",
                level0 + BLOCK + 4000,
                "hash block",
            ),
            (
                "the salt in the verity superblock",
                info.hash_offset + 88,
                "root",
            ),
        ];
        for (what, at, expect) in cases {
            let context = format!("{}: {what} (byte {at})", tree_file.display());
            // The CLI tells an image by its extension.
            let bad_tree = t.dir.path().join(match info.hash_file {
                Some(_) => "bad.hash",
                None => "bad.sqfs",
            });
            flipped_copy(&tree_file, &bad_tree, at);
            // Check the image with the damaged tree: the damaged copy is the image itself
            // when the tree is appended.
            let (bad_image, bad_info) = match &info.hash_file {
                Some(_) => (
                    image.clone(),
                    VerityInfo {
                        hash_file: Some(bad_tree.clone()),
                        ..info.clone()
                    },
                ),
                None => (bad_tree.clone(), info.clone()),
            };
            assert_veritysetup_refuses(&bad_image, &bad_info, &info.root_hash_hex(), &context);
            let m = check_mismatch(&bad_image, &bad_info, &info.root_hash);
            match (expect, &m) {
                ("root", Some(VerityMismatch::RootHash { found })) => {
                    assert_ne!(found, &info.root_hash, "{context}")
                }
                (
                    "hash block",
                    Some(VerityMismatch::HashBlock {
                        level: 0,
                        index: 1,
                        offset,
                    }),
                ) => assert_eq!(*offset, level0 + BLOCK, "{context}"),
                _ => panic!("{context}: expected a {expect} mismatch, got {m:?}"),
            }
            let o = cli_verify(
                &bad_image,
                &info.root_hash_hex(),
                bad_info.hash_file.as_deref(),
            );
            assert_eq!(o.status.code(), Some(1), "{context}: {}", stderr(&o));
            assert!(
                stderr(&o).contains("dm-verity"),
                "{context}: {}",
                stderr(&o)
            );
        }
    }
}

#[test]
fn non_zero_padding_under_a_matching_root_is_refused() {
    // Someone who changes the unused part of the top hash block and publishes the new root
    // hash: every digest matches, yet veritysetup refuses a tree whose spare bytes are not
    // zero, and so must check.
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let t = Trio::new(&image, &raw_options(None), &VerityOptions::default());
    let info = &t.appended_info;
    let top = info.hash_offset + BLOCK;
    let bad = t.dir.path().join("bad.sqfs");
    // The top block holds two digests (level 0 has two blocks): slot 10 is unused.
    flipped_copy(&t.appended, &bad, top + 10 * 32 + 1);
    let bytes = fs::read(&bad).unwrap();
    let top_block = &bytes[top as usize..(top + BLOCK) as usize];
    let root = Sha256::new()
        .chain_update(&info.salt)
        .chain_update(top_block)
        .finalize()
        .to_vec();
    assert_veritysetup_refuses(&bad, info, &hex::encode(&root), "padding");
    assert_eq!(
        check_mismatch(&bad, info, &root),
        Some(VerityMismatch::Padding { level: 1, index: 0 })
    );
}

// ---------------------------------------------------------------------------------------------
// 3. The same image gives the same tree

/// An image with room for scheduling to show: blocks of very different compressibility,
/// small files in fragments, duplicates.
fn busy_image(dir: &Path) -> Built {
    let mut layer = Layer::new().dir("usr/lib", 0o755);
    for i in 0..80u64 {
        layer = layer.file(
            format!("usr/lib/small-{i:02}"),
            noise(100 + (i as usize * 37) % 3000, i),
            0o644,
        );
    }
    let mut mixed = Vec::new();
    for k in 0..120u64 {
        mixed.extend(noise(3000, k));
        mixed.extend(format!("record {k}\n").repeat(300).into_bytes());
        mixed.extend(std::iter::repeat_n(0u8, 5000));
    }
    ImageBuilder::new()
        .layer(
            layer
                .file("usr/bin/tool", &mixed, 0o755)
                .file("usr/bin/tool-copy", &mixed, 0o755),
        )
        .layer(
            Layer::new()
                .compression(Codec::Zstd)
                .file("opt/data", noise(500_000, 3), 0o644),
        )
        .build(dir)
}

fn busy_options(jobs: usize, verity: VerityOptions) -> ConvertOptions {
    ConvertOptions::default()
        .jobs(Jobs::new(jobs).unwrap())
        .squashfs(SquashfsOptions {
            mtime: Some(MTIME),
            block_size: BlockSize::new(16 << 10).unwrap(),
            verity: Some(verity),
            ..SquashfsOptions::default()
        })
}

/// Converts and returns the image's bytes (tree included) and the verity info.
fn convert_bytes(image: &Path, options: &ConvertOptions) -> (Vec<u8>, VerityInfo) {
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.sqfs");
    let s = convert_to(image, &target, options);
    (fs::read(&target).unwrap(), s.verity.unwrap())
}

fn first_difference(a: &[u8], b: &[u8]) -> String {
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(at) => format!("first difference at byte {at}"),
        None => format!("lengths {} and {}", a.len(), b.len()),
    }
}

#[test]
fn the_same_image_gives_the_same_tree_for_any_jobs() {
    let work = tempfile::tempdir().unwrap();
    let image = busy_image(&work.path().join("image"));
    for salt in [None, Some(vec![0x5a; 32])] {
        let verity = VerityOptions {
            salt: salt.clone(),
            ..VerityOptions::default()
        };
        let (reference, info) = convert_bytes(&image, &busy_options(1, verity.clone()));
        for jobs in [1, 2, 8, 8] {
            let (bytes, got) = convert_bytes(&image, &busy_options(jobs, verity.clone()));
            let context = format!("salt {salt:?}, {jobs} jobs");
            assert!(
                bytes == reference,
                "{context}: {}",
                first_difference(&reference, &bytes)
            );
            assert_eq!(got, info, "{context}");
        }
        // The streaming packer writes the same image and tree as convert.
        let packed = pack(&image, &busy_options(2, verity));
        assert!(
            packed == reference,
            "salt {salt:?}, packer: {}",
            first_difference(&reference, &packed)
        );
    }
}

/// Converts with the streaming packer, layers delivered newest first.
fn pack(image: &Built, options: &ConvertOptions) -> Vec<u8> {
    let opened = open_image(image).unwrap();
    let metas: Vec<LayerMeta> = opened
        .layers
        .iter()
        .map(LayerMeta::from_descriptor)
        .collect();
    let paths: Vec<PathBuf> = image
        .layers()
        .iter()
        .map(|b| b.path.clone().unwrap())
        .collect();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("out.sqfs");
    let spec = ImageSpec::new(Format::Squashfs, &target);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let summary = rt.block_on(async {
        let packer = StreamingPacker::new(metas, spec, options.clone(), None).unwrap();
        for i in (0..paths.len()).rev() {
            packer
                .notify_layer_ready(i, paths[i].clone())
                .await
                .unwrap();
        }
        packer.finish().await.unwrap()
    });
    assert!(
        summary.verity.is_some(),
        "the packer's summary has no verity"
    );
    fs::read(target).unwrap()
}

#[test]
fn a_given_salt_is_used_verbatim() {
    let work = tempfile::tempdir().unwrap();
    let image = busy_image(&work.path().join("image"));
    let mut roots = Vec::new();
    for (salt, hash) in [
        (None, VerityHash::Sha256),
        (Some(b"\x00\x11\x22\x33".to_vec()), VerityHash::Sha256),
        (Some(b"\x00\x11\x22\x34".to_vec()), VerityHash::Sha256),
        (Some(vec![0xab; 256]), VerityHash::Sha256),
        (Some(Vec::new()), VerityHash::Sha256),
        (Some(b"\x00\x11\x22\x33".to_vec()), VerityHash::Sha512),
    ] {
        let verity = VerityOptions {
            salt: salt.clone(),
            hash,
            ..VerityOptions::default()
        };
        let out = work.path().join("out.sqfs");
        let info = convert_to(&image, &out, &busy_options(4, verity))
            .verity
            .unwrap();
        let context = format!("{hash}, salt {salt:?}");
        if let Some(salt) = &salt {
            assert_eq!(&info.salt, salt, "{context}");
        }
        let expected_hex = if info.salt.is_empty() {
            "-".to_string()
        } else {
            hex::encode(&info.salt)
        };
        assert_eq!(info.salt_hex(), expected_hex, "{context}");
        let dump = veritysetup_dump(&out, &info);
        assert_eq!(dump_field(&dump, "Salt"), expected_hex, "{context}");
        assert_eq!(
            dump_field(&dump, "Hash algorithm"),
            hash.name(),
            "{context}"
        );
        assert_eq!(dump_field(&dump, "UUID"), info.uuid_text(), "{context}");
        assert_eq!(
            dump_field(&dump, "Data blocks"),
            info.data_blocks.to_string(),
            "{context}"
        );
        assert_veritysetup_accepts(&out, &info, &context);
        roots.push(info.root_hash_hex());
    }
    // Every salt (and the other algorithm) gives a different root hash.
    let mut distinct = roots.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), roots.len(), "{roots:?}");
}

// ---------------------------------------------------------------------------------------------
// 4. veritysetup computes the same tree independently

#[test]
fn veritysetup_format_computes_the_same_tree() {
    let work = tempfile::tempdir().unwrap();
    let tiny = ImageBuilder::new()
        .layer(Layer::new().file("etc/hostname", "tiny\n", 0o644))
        .build(work.path().join("tiny"));
    let medium = one_file_image(&work.path().join("medium"), 300 * BLOCK as usize, 1);
    let large = one_file_image(&work.path().join("large"), 4200 * BLOCK as usize, 2);
    let cases = [
        (&tiny, VerityHash::Sha256, None),
        (&tiny, VerityHash::Sha512, None),
        (&medium, VerityHash::Sha256, None),
        (&medium, VerityHash::Sha256, Some(Vec::new())),
        (&medium, VerityHash::Sha256, Some(vec![7; 100])),
        (&medium, VerityHash::Sha512, None),
        (&large, VerityHash::Sha512, None),
    ];
    for (image, hash, salt) in cases {
        let verity = VerityOptions {
            hash,
            salt: salt.clone(),
            ..VerityOptions::default()
        };
        let t = Trio::new(image, &raw_options(None), &verity);
        let info = &t.separate_info;
        let context = format!("{hash}, salt {salt:?}, {} data blocks", info.data_blocks);
        let theirs = t.dir.path().join("veritysetup.hash");
        let o = veritysetup(&[
            "format".to_string(),
            format!("--hash={}", hash.name()),
            format!("--salt={}", info.salt_hex()),
            format!("--uuid={}", info.uuid_text()),
            "--data-block-size=4096".into(),
            "--hash-block-size=4096".into(),
            p(&t.plain).into(),
            p(&theirs).into(),
        ]);
        assert!(o.status.success(), "{context}: {}", text(&o));
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        let root = out
            .lines()
            .find_map(|l| l.strip_prefix("Root hash:"))
            .unwrap_or_else(|| panic!("{context}: no root hash in {out}"))
            .trim()
            .to_string();
        assert_eq!(root, info.root_hash_hex(), "{context}");
        // With the same salt and UUID, veritysetup writes our hash area byte for byte.
        let ours = fs::read(t.hash_file()).unwrap();
        let theirs = fs::read(&theirs).unwrap();
        assert!(
            ours == theirs,
            "{context}: hash areas differ: {}",
            first_difference(&theirs, &ours)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Errors

#[test]
fn the_hash_file_cannot_be_the_image() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("out.sqfs");
    // The same path, and the same file by another spelling.
    for hash_file in [target.clone(), out_dir.join(".").join("out.sqfs")] {
        let verity = VerityOptions {
            hash_file: Some(hash_file.clone()),
            ..VerityOptions::default()
        };
        match try_convert(&image, &target, &raw_options(Some(verity))) {
            Err(Error::InvalidOption { .. }) => {}
            other => panic!("{}: {other:?}", hash_file.display()),
        }
        assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "output left");
    }
}

#[test]
fn a_failed_conversion_leaves_neither_image_nor_hash_file() {
    let work = tempfile::tempdir().unwrap();
    let image = ImageBuilder::new()
        .layer(Layer::new().file("a/big", noise(1 << 20, 1), 0o644))
        .layer(
            Layer::new()
                .compression(Codec::Gzip)
                .file("b/big", noise(1 << 20, 2), 0o644),
        )
        .build(work.path().join("image"));
    // The gzip trailer's CRC: the whole layer decodes, and only its end fails, after every
    // data block has been written and hashed.
    image.corrupt_layer(1, Corruption::FlipByte(-8));
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let target = out_dir.join("out.sqfs");
    for hash_file in [None, Some(out_dir.join("out.hash"))] {
        let verity = VerityOptions {
            hash_file,
            ..VerityOptions::default()
        };
        let r = try_convert(&image, &target, &raw_options(Some(verity)));
        assert!(r.is_err(), "the corrupt layer converted");
        assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "output left");
    }
    // A hash file that cannot be created: the image must not appear without it.
    let good = flip_image(&work.path().join("good"));
    let verity = VerityOptions {
        hash_file: Some(work.path().join("missing-dir").join("out.hash")),
        ..VerityOptions::default()
    };
    let r = try_convert(&good, &target, &raw_options(Some(verity)));
    assert!(r.is_err(), "a hash file in a missing directory was written");
    assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "output left");
    // The CLI too, for a corrupt layer.
    let o = cli(&[
        "convert",
        "-q",
        "--verity-hash-file",
        p(&out_dir.join("cli.hash")),
        p(&image),
        p(&target),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "output left");
}

#[test]
fn a_salt_over_256_bytes_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let verity = VerityOptions {
        salt: Some(vec![1; 257]),
        ..VerityOptions::default()
    };
    match try_convert(&image, &out_dir.join("x.sqfs"), &raw_options(Some(verity))) {
        Err(Error::InvalidOption { .. }) => {}
        other => panic!("{other:?}"),
    }
    for salt in ["ab".repeat(257), "xyz".into()] {
        let o = cli(&[
            "convert",
            "-q",
            "--verity-salt",
            &salt,
            p(&image),
            p(&out_dir.join("x.sqfs")),
        ]);
        assert_eq!(o.status.code(), Some(2), "usage error: {}", stderr(&o));
    }
    assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "output left");
}

#[test]
fn check_without_a_tree_is_a_clear_error() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let t = Trio::new(&image, &raw_options(None), &VerityOptions::default());
    let root = t.appended_info.root_hash.clone();
    let bad_verity = |r: Result<verity::VerityReport, Error>, context: &str| -> String {
        match r {
            Err(e @ Error::BadVerity { .. }) => crate::support::error_text(&e),
            other => panic!("{context}: expected BadVerity, got {other:?}"),
        }
    };

    // An image made without --verity.
    let msg = bad_verity(verity::check(&t.plain, None, &root), "no tree");
    assert!(
        msg.contains("no hash tree") && msg.contains("--verity"),
        "not clear: {msg}"
    );
    // The same through the CLI.
    let o = cli(&["verify", p(&t.plain), "--verity", &hex::encode(&root)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no hash tree"), "{}", stderr(&o));

    // A hash file that is not one (here: the image itself), or is empty.
    let msg = bad_verity(verity::check(&t.plain, Some(&t.plain), &root), "not a tree");
    assert!(msg.contains("superblock"), "{msg}");
    let empty = t.dir.path().join("empty.hash");
    fs::write(&empty, b"").unwrap();
    bad_verity(verity::check(&t.plain, Some(&empty), &root), "empty");

    // Truncated hash files and images: errors, not panics, wherever the cut falls.
    let hash = fs::read(t.hash_file()).unwrap();
    let cut = t.dir.path().join("cut.hash");
    for len in [100, 511, 512, 4096, 4097, 8192, hash.len() - 1] {
        fs::write(&cut, &hash[..len]).unwrap();
        let msg = bad_verity(
            verity::check(&t.separate, Some(&cut), &root),
            &format!("hash file cut to {len}"),
        );
        assert!(msg.contains("cut.hash"), "names the file: {msg}");
    }
    let appended = fs::read(&t.appended).unwrap();
    let area = t.appended_info.hash_offset as usize;
    let cut_image = t.dir.path().join("cut.sqfs");
    for len in [area + 100, area + 4096, appended.len() - 1] {
        fs::write(&cut_image, &appended[..len]).unwrap();
        bad_verity(
            verity::check(&cut_image, None, &root),
            &format!("image cut to {len}"),
        );
    }
    // An image shorter than the data blocks the hash file counts.
    let short = t.dir.path().join("short.sqfs");
    fs::write(&short, &fs::read(&t.separate).unwrap()[..8192]).unwrap();
    bad_verity(
        verity::check(&short, Some(t.hash_file()), &root),
        "short image",
    );
}

#[test]
fn the_cli_refuses_verity_for_other_formats() {
    let work = tempfile::tempdir().unwrap();
    let image = flip_image(&work.path().join("image"));
    let out_dir = work.path().join("out");
    fs::create_dir(&out_dir).unwrap();
    let tar = out_dir.join("out.tar");
    let dir = out_dir.join("rootfs");
    let cases: [Vec<&str>; 3] = [
        vec!["--verity", p(&image), p(&tar)],
        vec!["--verity-hash", "sha512", p(&image), p(&tar)],
        vec!["--verity-salt", "00", "--format", "dir", p(&image), p(&dir)],
    ];
    for flags in cases {
        let mut args = vec!["convert", "-q"];
        args.extend(flags);
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("squashfs"), "{args:?}: {}", stderr(&o));
        assert_eq!(entries(&out_dir), Vec::<PathBuf>::new(), "{args:?}");
    }
    // verify --verity of a tar archive is refused too.
    let made = out_dir.join("made.tar");
    let o = cli(&["convert", "-q", p(&image), p(&made)]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&["verify", p(&made), "--verity", &"00".repeat(32)]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("squashfs"), "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// 6. --verity-info and verify

/// The image extracted to `dir` by a directory conversion: what `verify --reference` compares
/// the squashfs image with.
fn reference_dir(image: &Path, dir: &Path) -> PathBuf {
    let spec = ImageSpec::new(Format::Dir, dir);
    open_image(image)
        .and_then(|i| convert(&i, &spec, &ConvertOptions::default()))
        .unwrap();
    dir.to_path_buf()
}

#[test]
fn verity_info_json_and_verify() {
    let work = tempfile::tempdir().unwrap();
    let image = busy_image(&work.path().join("image"));
    let reference = reference_dir(&image, &work.path().join("reference"));
    // A reference that differs from the image by one file, for the comparison to fail on.
    let changed = reference_dir(&image, &work.path().join("changed"));
    fs::write(changed.join("extra"), "not in the image\n").unwrap();
    let mtime = MTIME.to_string();

    for separate in [false, true] {
        let out = work.path().join(format!("out-{separate}.sqfs"));
        let json_path = work.path().join(format!("info-{separate}.json"));
        let hash_path = work.path().join(format!("out-{separate}.hash"));
        let mut args = vec![
            "convert".to_string(),
            "--mtime".into(),
            mtime.clone(),
            "--block-size".into(),
            "16K".into(),
            "--verity-info".into(),
            p(&json_path).into(),
        ];
        if separate {
            args.extend(["--verity-hash-file".into(), p(&hash_path).into()]);
        }
        args.extend([p(&image).into(), p(&out).into()]);
        let o = cli(&args);
        assert!(o.status.success(), "{}", stderr(&o));

        // The library, with the same settings, writes the same bytes: its summary is the
        // reference for the JSON.
        let lib_out = work.path().join(format!("lib-{separate}.sqfs"));
        let verity = VerityOptions {
            hash_file: separate.then(|| hash_path.clone()),
            ..VerityOptions::default()
        };
        let mut options = busy_options(3, verity);
        if separate {
            // The library must not overwrite the CLI's hash file: give it its own.
            let own = work.path().join("lib.hash");
            options.squashfs.verity.as_mut().unwrap().hash_file = Some(own);
        }
        let summary = convert_to(&image, &lib_out, &options);
        let info = summary.verity.clone().unwrap();
        assert!(
            fs::read(&out).unwrap() == fs::read(&lib_out).unwrap(),
            "the CLI and the library wrote different images"
        );

        let json: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&json_path).unwrap()).unwrap();
        assert_eq!(json["root_hash"], info.root_hash_hex().as_str(), "{json}");
        assert_eq!(json["salt"], info.salt_hex().as_str(), "{json}");
        assert_eq!(json["data_blocks"], info.data_blocks, "{json}");
        assert_eq!(json["hash_offset"], info.hash_offset, "{json}");
        assert_eq!(json["hash_algorithm"], "sha256", "{json}");
        assert_eq!(json["uuid"], info.uuid_text().as_str(), "{json}");
        assert_eq!(json["dm_table"], info.dm_table().as_str(), "{json}");
        match separate {
            false => assert!(json["hash_file"].is_null(), "{json}"),
            true => assert_eq!(json["hash_file"], p(&hash_path), "{json}"),
        }
        // The printed summary names the same root hash.
        assert!(
            stderr(&o).contains(&info.root_hash_hex()),
            "the summary does not print the root hash: {}",
            stderr(&o)
        );

        // The JSON's parameters are the ones veritysetup needs.
        let cli_info = VerityInfo {
            hash_file: separate.then(|| hash_path.clone()),
            hash_offset: json["hash_offset"].as_u64().unwrap(),
            ..info.clone()
        };
        assert_veritysetup_accepts(&out, &cli_info, "--verity-info");

        // verify with the JSON alone (it names the hash file), then with the reference too.
        let o = cli(&["verify", p(&out), "--verity-info", p(&json_path)]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("match root hash"), "{}", stderr(&o));
        let o = cli(&[
            "verify",
            p(&out),
            "--verity-info",
            p(&json_path),
            "--reference",
            p(&reference),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("match root hash") && err.contains("equal the reference"),
            "both checks must run: {err}"
        );

        // Each check fails on its own: a damaged image fails the tree check, a changed
        // reference fails the comparison though the tree is intact.
        let bad = work.path().join("bad.sqfs");
        flipped_copy(&out, &bad, 5000);
        let o = cli(&[
            "verify",
            p(&bad),
            "--verity-info",
            p(&json_path),
            "--reference",
            p(&reference),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("data block 1 "), "{}", stderr(&o));
        let o = cli(&[
            "verify",
            p(&out),
            "--verity-info",
            p(&json_path),
            "--reference",
            p(&changed),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("match root hash"), "{}", stderr(&o));
        // A root hash that is not the image's.
        let mut wrong = info.root_hash.clone();
        wrong[0] ^= 1;
        let mut args = vec![
            "verify".to_string(),
            p(&out).into(),
            "--verity".into(),
            hex::encode(&wrong),
        ];
        if separate {
            args.extend(["--verity-hash-file".into(), p(&hash_path).into()]);
        }
        let o = cli(&args);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("root hash"), "{}", stderr(&o));
    }
}

/// `--verity-info` never replaces the image or the hash file, a failed write of it leaves
/// nothing behind, and the hash file it names is found from any working directory.
#[test]
fn the_verity_info_file_is_checked_and_written_safely() {
    let work = tempfile::tempdir().unwrap();
    let built = one_file_image(&work.path().join("img"), 10_000, 7);
    let image = format!("{}", built.path.display());
    let out = work.path().join("out.sqfs");
    let hash = work.path().join("out.hash");
    for info in [&out, &hash] {
        let o = cli(&[
            "convert",
            "-q",
            &image,
            p(&out),
            "--verity-hash-file",
            p(&hash),
            "--verity-info",
            p(info),
        ]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("must not be the image or the hash file"));
        assert!(!out.exists() && !hash.exists());
    }
    let missing = work.path().join("missing/info.json");
    let o = cli(&[
        "convert",
        "-q",
        &image,
        p(&out),
        "--verity-hash-file",
        p(&hash),
        "--verity-info",
        p(&missing),
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        !out.exists() && !hash.exists(),
        "a failed info write left output"
    );
    // Relative paths at convert time; verify from another directory.
    let o = bin()
        .current_dir(work.path())
        .args([
            "convert",
            "-q",
            &image,
            "out.sqfs",
            "--verity-hash-file",
            "out.hash",
            "--verity-info",
            "info.json",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin()
        .current_dir("/")
        .args([
            "verify",
            p(&out),
            "--verity-info",
            p(&work.path().join("info.json")),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}
