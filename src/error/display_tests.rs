//! The message of every error a user can see, snapshotted (insta), so that a change of wording
//! is reviewed like a change of code. Each message is shown as [`Error::report`] prints it:
//! the error's own text, then its causes, each once.
//!
//! `variant` matches every variant without a wildcard: a new variant does not compile until it
//! is named here, and the test fails until it has a sample.

use std::io;
use std::path::PathBuf;

use crate::layer::TarProblem;
use crate::squashfs::reuse::NotReused;
use crate::squashfs::{BlockProblem, SquashfsBlock, SquashfsProblem, SquashfsTable};
use crate::verity::VerityProblem;
use crate::{Digest, Error};

fn variant(e: &Error) -> &'static str {
    match e {
        Error::Io { .. } => "Io",
        Error::Output { .. } => "Output",
        Error::OutputExists { .. } => "OutputExists",
        Error::NotAnImage { .. } => "NotAnImage",
        Error::Json { .. } => "Json",
        Error::InvalidDocument { .. } => "InvalidDocument",
        Error::UnsupportedMediaType { .. } => "UnsupportedMediaType",
        Error::InvalidDigest { .. } => "InvalidDigest",
        Error::BlobMissing { .. } => "BlobMissing",
        Error::DigestMismatch { .. } => "DigestMismatch",
        Error::SizeMismatch { .. } => "SizeMismatch",
        Error::RefNotFound { .. } => "RefNotFound",
        Error::AmbiguousManifest { .. } => "AmbiguousManifest",
        Error::PlatformNotFound { .. } => "PlatformNotFound",
        Error::Layer { .. } => "Layer",
        Error::OfLayer { .. } => "OfLayer",
        Error::Entry { .. } => "Entry",
        Error::Decompress { .. } => "Decompress",
        Error::WrongMagic { .. } => "WrongMagic",
        Error::ReuseRefused { .. } => "ReuseRefused",
        Error::Compress { .. } => "Compress",
        Error::Tar { .. } => "Tar",
        Error::TarHeader { .. } => "TarHeader",
        Error::HostilePath { .. } => "HostilePath",
        Error::InvalidWhiteout { .. } => "InvalidWhiteout",
        Error::HardlinkTargetMissing { .. } => "HardlinkTargetMissing",
        Error::HardlinkToDirectory { .. } => "HardlinkToDirectory",
        Error::HardlinkTargetReplaced { .. } => "HardlinkTargetReplaced",
        Error::ReplacedAfterWrite { .. } => "ReplacedAfterWrite",
        Error::BeneathSymlink { .. } => "BeneathSymlink",
        Error::TooManySymlinks { .. } => "TooManySymlinks",
        Error::SecondPassNeeded { .. } => "SecondPassNeeded",
        Error::SparseHoleNotZero { .. } => "SparseHoleNotZero",
        Error::TooLarge { .. } => "TooLarge",
        Error::DocumentTooLarge { .. } => "DocumentTooLarge",
        Error::InvalidOption { .. } => "InvalidOption",
        Error::TooManyIds { .. } => "TooManyIds",
        Error::Unrepresentable { .. } => "Unrepresentable",
        Error::LayerIndexOutOfRange { .. } => "LayerIndexOutOfRange",
        Error::DuplicateLayer { .. } => "DuplicateLayer",
        Error::MissingLayers { .. } => "MissingLayers",
        Error::LayerSource { .. } => "LayerSource",
        Error::NoAsyncRuntime => "NoAsyncRuntime",
        Error::Stopped => "Stopped",
        Error::Bug { .. } => "Bug",
        Error::LayerOrder { .. } => "LayerOrder",
        Error::InvalidReference { .. } => "InvalidReference",
        Error::HttpStatus { .. } => "HttpStatus",
        Error::Transport { .. } => "Transport",
        Error::Unauthorized { .. } => "Unauthorized",
        #[cfg(feature = "registry")]
        Error::AuthProtocol { .. } => "AuthProtocol",
        Error::ManifestNotFound { .. } => "ManifestNotFound",
        Error::CredentialHelper { .. } => "CredentialHelper",
        Error::Interrupted => "Interrupted",
        Error::NoAuthFile => "NoAuthFile",
        Error::BadSquashfs { .. } => "BadSquashfs",
        Error::BadVerity { .. } => "BadVerity",
    }
}

/// The variants of an error and of the errors it wraps.
fn chain_variants(e: &Error) -> Vec<&'static str> {
    let mut names = vec![variant(e)];
    if let Error::Layer { source, .. }
    | Error::OfLayer { source, .. }
    | Error::Entry { source, .. } = e
    {
        names.extend(chain_variants(source));
    }
    names
}

fn digest() -> Digest {
    Digest::of(crate::DigestAlgorithm::Sha256, b"layer")
}

fn enoent() -> io::Error {
    io::Error::from_raw_os_error(2)
}

fn tar(problem: TarProblem) -> Error {
    Error::TarHeader { problem }
}

/// One error of each variant, with the context a real one carries.
fn samples() -> Vec<Error> {
    let json = serde_json::from_str::<serde_json::Value>("{").unwrap_err();
    let mut all = vec![
        Error::io("open", "/img/index.json", enoent()),
        Error::Output {
            path: "out.sqfs".into(),
            source: io::Error::from_raw_os_error(28),
        },
        Error::OutputExists { path: "out".into() },
        Error::NotAnImage {
            path: "/home/u/img".into(),
        },
        Error::Json {
            what: "index.json".into(),
            source: json,
        },
        Error::InvalidDocument {
            what: "manifest sha256:ab…".into(),
            problem: "no layers",
        },
        Error::UnsupportedMediaType {
            media_type: "application/x-foo".into(),
            what: "layer 0".into(),
        },
        Error::InvalidDigest {
            digest: "md5:00".into(),
            problem: "unknown algorithm",
        },
        Error::BlobMissing {
            digest: digest(),
            path: "/img/blobs/sha256/ab".into(),
        },
        Error::DigestMismatch {
            expected: digest(),
            found: Digest::of(crate::DigestAlgorithm::Sha256, b"other"),
        },
        Error::SizeMismatch {
            digest: digest(),
            expected: 100,
            found: 99,
        },
        Error::RefNotFound {
            reference: "v3".into(),
            available: vec!["v1".into(), "v2".into()],
        },
        Error::AmbiguousManifest {
            choices: vec!["latest (linux/amd64)".into(), "latest (linux/arm64)".into()],
        },
        Error::PlatformNotFound {
            platform: "linux/s390x".into(),
            available: vec![],
        },
        Error::Tar {
            source: io::Error::from(io::ErrorKind::UnexpectedEof),
        }
        .in_entry(b"etc/passwd")
        .in_layer(2, &digest()),
        tar(TarProblem::MultiVolume).in_entry(b"tape/part2"),
        Error::OfLayer {
            index: 1,
            source: Box::new(Error::HardlinkTargetMissing {
                link: "b".into(),
                target: "a".into(),
            }),
        },
        Error::Decompress {
            codec: "gzip",
            source: io::Error::new(io::ErrorKind::InvalidData, "corrupt deflate stream"),
        },
        Error::WrongMagic {
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
            codec: "zstd",
        },
        Error::ReuseRefused {
            path: "old.sqfs".into(),
            why: NotReused::NotOurs,
        },
        Error::Compress {
            codec: "xz",
            source: io::Error::other("out of memory"),
        },
        Error::HostilePath {
            path: "../etc".into(),
            reason: "it leaves the root",
        },
        Error::InvalidWhiteout {
            path: "a/.wh.".into(),
        },
        Error::HardlinkToDirectory {
            link: "l".into(),
            target: "d".into(),
        },
        Error::HardlinkTargetReplaced {
            link: "l".into(),
            target: "t".into(),
        },
        Error::ReplacedAfterWrite {
            path: "d".into(),
            written: "d/x".into(),
        },
        Error::BeneathSymlink {
            path: "a/x".into(),
            entry_layer: Some(1),
            symlink: "a".into(),
        },
        Error::TooManySymlinks {
            path: "a/b".into(),
            hops: 40,
        },
        Error::SecondPassNeeded {
            why: "entry a/x lies beneath symlink a".into(),
        },
        Error::SparseHoleNotZero {
            path: "f".into(),
            offset: 4096,
        },
        Error::TooLarge {
            what: "a PAX extended header",
            size: 1 << 30,
            limit: 1 << 20,
        },
        Error::DocumentTooLarge {
            what: "index.json".into(),
            size: 1 << 30,
            limit: 4 << 20,
        },
        Error::InvalidOption {
            name: "compression",
            value: "zip".into(),
            reason: "unknown algorithm",
        },
        Error::TooManyIds { count: 70000 },
        Error::Unrepresentable {
            path: "big".into(),
            problem: "file larger than squashfs can hold",
        },
        Error::LayerIndexOutOfRange { index: 5, count: 3 },
        Error::DuplicateLayer { index: 1 },
        Error::MissingLayers {
            missing: 2,
            total: 3,
            first: 2,
        },
        Error::LayerSource {
            source: "download failed".into(),
        },
        Error::NoAsyncRuntime,
        Error::Stopped,
        Error::Bug {
            what: "a link group without a source",
        },
        Error::LayerOrder {
            index: 2,
            previous: 1,
            newest_first: true,
        },
        Error::InvalidReference {
            reference: "UPPER/case".into(),
            problem: "repository names are lower case",
        },
        Error::HttpStatus {
            registry: "registry.example".into(),
            request: "GET /v2/".into(),
            status: "500 Internal Server Error".into(),
            message: "try later".into(),
            attempts: 3,
        },
        Error::Transport {
            registry: "registry.example".into(),
            request: "GET /v2/".into(),
            attempts: 1,
            source: Box::new(enoent()),
        },
        Error::Unauthorized {
            registry: "registry.example".into(),
            scope: "repository:library/alpine:pull".into(),
            with_credentials: false,
        },
        Error::ManifestNotFound {
            reference: "registry.example/app:v9".into(),
        },
        Error::CredentialHelper {
            helper: "docker-credential-pass".into(),
            registry: "registry.example".into(),
            action: "get",
            message: "not found".into(),
        },
        Error::Interrupted,
        Error::NoAuthFile,
    ];
    all.extend(squashfs_and_verity());
    all
}

/// Samples of the variants that only exist with the `registry` feature,
/// snapshotted apart so the main snapshot holds for every feature set.
fn registry_samples() -> Vec<Error> {
    #[cfg(feature = "registry")]
    return vec![Error::AuthProtocol {
        registry: "registry.example".into(),
        problem: crate::registry::AuthProblem::NoRealm,
    }];
    #[cfg(not(feature = "registry"))]
    Vec::new()
}

fn squashfs_and_verity() -> Vec<Error> {
    let path = || PathBuf::from("old.sqfs");
    vec![
        Error::BadSquashfs {
            path: path(),
            problem: SquashfsProblem::BadMagic,
        },
        Error::BadSquashfs {
            path: path(),
            problem: SquashfsProblem::BadBlock {
                block: SquashfsBlock::Data { at: 4096 },
                problem: BlockProblem::Codec {
                    codec: "zstd",
                    detail: "Unknown frame descriptor".into(),
                },
            },
        },
        Error::BadSquashfs {
            path: path(),
            problem: SquashfsProblem::IndexOutOfRange {
                table: SquashfsTable::Fragment,
                index: 3,
                count: 2,
            },
        },
        Error::BadVerity {
            path: path(),
            problem: VerityProblem::NoHashTree {
                offset: 8192,
                file_len: 8192,
            },
        },
    ]
}

/// Every variant has a sample, and every message is as reviewed.
#[test]
fn every_error_message() {
    let all = samples();
    let registry = registry_samples();
    let mut names: Vec<&str> = all
        .iter()
        .chain(&registry)
        .flat_map(chain_variants)
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut expected: Vec<&str> = ALL.to_vec();
    if !cfg!(feature = "registry") {
        expected.retain(|&n| n != "AuthProtocol");
    }
    expected.sort_unstable();
    assert_eq!(
        names, expected,
        "a variant without a sample, or ALL is stale"
    );
    let lines = |errors: &[Error]| -> String {
        errors
            .iter()
            .map(|e| format!("{}: {}\n", variant(e), e.report()))
            .collect()
    };
    insta::assert_snapshot!(lines(&all));
    if cfg!(feature = "registry") {
        insta::assert_snapshot!("every_registry_error_message", lines(&registry));
    }
}

/// Every problem of a tar header, as the user reads it.
#[test]
fn every_tar_problem() {
    let problems = [
        TarProblem::Checksum {
            computed: 4321,
            offset: 1024,
        },
        TarProblem::NegativeNumber {
            field: "device major",
            value: -1,
        },
        TarProblem::NumberTooLarge { field: "size" },
        TarProblem::NotANumber {
            field: "mtime",
            text: "12x".into(),
        },
        TarProblem::Over32Bits {
            field: "uid",
            value: 1 << 40,
        },
        TarProblem::MultiVolume,
        TarProblem::SparseWithoutGnuHeader,
        TarProblem::TooManySparseRegions { claimed: None },
        TarProblem::TooManySparseRegions {
            claimed: Some(1 << 30),
        },
        TarProblem::SparseOddValues,
        TarProblem::SparseRegionPastEnd {
            offset: 10,
            len: 20,
            size: 15,
        },
        TarProblem::SparseRegionOverlaps {
            offset: 5,
            previous_end: 10,
        },
        TarProblem::SparseDataMismatch {
            listed: 10,
            stored: 12,
        },
        TarProblem::SparseMapNotDecimal,
        TarProblem::PaxSparseWithoutSize,
        TarProblem::PaxSparseCount { said: 2, values: 3 },
        TarProblem::PaxSparseVersion {
            major: Some(2),
            minor: None,
        },
        TarProblem::PaxRecord { what: "empty key" },
        TarProblem::PaxRecordLength {
            length: "99999".into(),
            left: 10,
        },
        TarProblem::PaxNumber {
            key: "size".into(),
            value: "-1".into(),
        },
        TarProblem::PaxTime {
            value: "1e9".into(),
        },
        TarProblem::PaxBase64 {
            key: "LIBARCHIVE.xattr.user.a".into(),
        },
        TarProblem::PaxEscape {
            key: "LIBARCHIVE.xattr.user.%zz".into(),
        },
    ];
    let text: String = problems
        .into_iter()
        .map(|p| format!("{}\n", tar(p)))
        .collect();
    insta::assert_snapshot!(text);
}

/// Every reason a previous image is not reused, as the warning and the strict error say it.
#[test]
fn every_reuse_refusal() {
    let reasons = [
        NotReused::Unreadable {
            problem: "cannot open old.sqfs: No such file or directory (os error 2)".into(),
        },
        NotReused::NotOurs,
        NotReused::MadeDifferently {
            previous: "ocirender 0.3.0 gzip:9".into(),
            now: "ocirender 0.4.0 gzip:9".into(),
        },
        NotReused::Compressor {
            previous: "gzip",
            now: "zstd",
        },
        NotReused::BlockSize {
            previous: 131072,
            now: 1048576,
        },
        NotReused::CompressorOptions,
        NotReused::CompressesDifferently { offset: 96 },
        NotReused::Corrupt {
            offset: 96,
            problem: "zstd: Unknown frame descriptor".into(),
        },
        NotReused::IsHashFile,
        NotReused::Stopped,
    ];
    let text: String = reasons.iter().map(|r| format!("{r}\n")).collect();
    insta::assert_snapshot!(text);
}

const ALL: &[&str] = &[
    "Io",
    "Output",
    "OutputExists",
    "NotAnImage",
    "Json",
    "InvalidDocument",
    "UnsupportedMediaType",
    "InvalidDigest",
    "BlobMissing",
    "DigestMismatch",
    "SizeMismatch",
    "RefNotFound",
    "AmbiguousManifest",
    "PlatformNotFound",
    "Layer",
    "OfLayer",
    "Entry",
    "Decompress",
    "WrongMagic",
    "ReuseRefused",
    "Compress",
    "Tar",
    "TarHeader",
    "HostilePath",
    "InvalidWhiteout",
    "HardlinkTargetMissing",
    "HardlinkToDirectory",
    "HardlinkTargetReplaced",
    "ReplacedAfterWrite",
    "BeneathSymlink",
    "TooManySymlinks",
    "SecondPassNeeded",
    "SparseHoleNotZero",
    "TooLarge",
    "DocumentTooLarge",
    "InvalidOption",
    "TooManyIds",
    "Unrepresentable",
    "LayerIndexOutOfRange",
    "DuplicateLayer",
    "MissingLayers",
    "LayerSource",
    "NoAsyncRuntime",
    "Stopped",
    "Bug",
    "LayerOrder",
    "InvalidReference",
    "HttpStatus",
    "Transport",
    "Unauthorized",
    "AuthProtocol",
    "ManifestNotFound",
    "CredentialHelper",
    "Interrupted",
    "NoAuthFile",
    "BadSquashfs",
    "BadVerity",
];
