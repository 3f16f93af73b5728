//! The one error type of the library.
//!
//! Every variant says what failed and carries the context a user needs to find it: the layer index
//! and digest, the path inside the image, the file on disk. Variants are structs, never a `String`
//! catch-all, so callers can match on them; `Display` is the message the CLI prints.
//!
//! Context is added by wrapping: a problem found while reading layer 2 is an
//! [`Error::Layer`] whose `source` is the precise failure (for example [`Error::Tar`]).
//!
//! Each error's `Display` says what failed at its own level and never repeats its cause: the
//! cause is its [`source`](std::error::Error::source), so that chain printers (anyhow's `{:#}`,
//! eyre, tracing) show every cause exactly once. [`Error::report`] prints the whole chain on one
//! line, `layer 2 (sha256:…): entry etc/passwd: malformed tar stream: unexpected end of file`,
//! which is what the command-line tool prints.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

/// A `Result` whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a caller-supplied source (a failed download, for example), carried unchanged.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong while reading an image and writing an output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on a named file failed.
    #[error("cannot {op} {}", path.display())]
    Io {
        /// What was being done ("open", "read", "create", …).
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// Writing the output failed (a full disk, a closed pipe, a vanished directory).
    #[error("cannot write output {}", path.display())]
    Output {
        /// The output being written.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// The output path already exists where it must not (a non-empty directory).
    #[error("output {} already exists and is not an empty directory", path.display())]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },

    /// The path is neither an OCI image layout nor a docker-save layout.
    #[error("{} is not an image: no oci-layout/index.json or manifest.json found", path.display())]
    NotAnImage {
        /// The path given as the image.
        path: PathBuf,
    },

    /// A JSON document of the image (index, manifest, config) could not be parsed.
    #[error("invalid JSON in {what}")]
    Json {
        /// Which document: a file name or a blob digest.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// A JSON document parsed but lacks something the format requires.
    #[error("invalid {what}: {problem}")]
    InvalidDocument {
        /// Which document.
        what: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A media type that ocirender does not know how to read.
    #[error("unsupported media type {media_type:?} for {what}")]
    UnsupportedMediaType {
        /// The media type as written in the image.
        media_type: String,
        /// What it was the media type of.
        what: String,
    },

    /// A digest string is malformed (wrong algorithm, length or characters).
    #[error("invalid digest {digest:?}: {problem}")]
    InvalidDigest {
        /// The digest as written in the image.
        digest: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A blob named by a descriptor is not in the image.
    #[error("blob {digest} is missing (looked for {})", path.display())]
    BlobMissing {
        /// The blob's digest.
        digest: Digest,
        /// Where it was expected.
        path: PathBuf,
    },

    /// A blob's content does not hash to its descriptor's digest.
    #[error("digest mismatch: expected {expected}, content hashes to {found}")]
    DigestMismatch {
        /// The digest the descriptor promises.
        expected: Digest,
        /// The digest of the bytes actually read.
        found: Digest,
    },

    /// A blob is shorter or longer than its descriptor says.
    #[error("blob {digest} has {found} bytes, descriptor says {expected}")]
    SizeMismatch {
        /// The blob's digest.
        digest: Digest,
        /// The size in the descriptor.
        expected: u64,
        /// The number of bytes actually read.
        found: u64,
    },

    /// `DIR:REF` named a reference that the index does not have.
    #[error(
        "no manifest with ref {reference:?}; available refs: {}",
        list(available)
    )]
    RefNotFound {
        /// The reference asked for.
        reference: String,
        /// The refs the index has.
        available: Vec<String>,
    },

    /// The index holds several manifests and nothing says which one to use.
    #[error("the image holds {} manifests; choose one with DIR:REF or --platform: {}", choices.len(), list(choices))]
    AmbiguousManifest {
        /// A description of each candidate (ref and platform).
        choices: Vec<String>,
    },

    /// No manifest matches the requested platform.
    #[error("no manifest for platform {platform}; available: {}", list(available))]
    PlatformNotFound {
        /// The platform asked for.
        platform: String,
        /// The platforms the index offers.
        available: Vec<String>,
    },

    /// A problem inside one layer; `source` says which.
    #[error("layer {index} ({digest})")]
    Layer {
        /// Position of the layer in the manifest, 0 = oldest.
        index: usize,
        /// The layer's digest.
        digest: Digest,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// A problem with an entry of layer `index`, found while another layer was read (a hard
    /// link of a newer layer whose target an older layer lacks), where the layer's digest is
    /// unknown ([`Merger::name_layers`](crate::Merger::name_layers) was not called).
    #[error("layer {index}")]
    OfLayer {
        /// Position of the layer in the manifest, 0 = oldest.
        index: usize,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// A problem with one entry of a layer; `source` says which.
    #[error("entry {path}")]
    Entry {
        /// The entry's path as written in the layer (lossy UTF-8).
        path: String,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// The layer's bytes could not be decompressed.
    #[error("cannot decompress {codec} data")]
    Decompress {
        /// The codec in use.
        codec: &'static str,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// A layer's media type promises compression that its bytes do not carry.
    #[error(
        "media type {media_type:?} says {codec} but the blob does not start with the {codec} magic"
    )]
    WrongMagic {
        /// The media type as written in the image.
        media_type: String,
        /// The codec the media type names.
        codec: &'static str,
    },

    /// The previous image given for strict reuse cannot be used.
    #[error("cannot reuse blocks of {}: {why}", path.display())]
    ReuseRefused {
        /// The previous image.
        path: PathBuf,
        /// Why.
        why: crate::squashfs::reuse::NotReused,
    },

    /// A squashfs compressor failed while writing the output (a library error, out of memory).
    #[error("{codec} compression failed")]
    Compress {
        /// The compressor in use.
        codec: &'static str,
        /// The library's error.
        #[source]
        source: io::Error,
    },

    /// The layer's tar stream is malformed or truncated.
    #[error("malformed tar stream")]
    Tar {
        /// The tar reader's error.
        #[source]
        source: io::Error,
    },

    /// A tar header holds a value ocirender cannot accept.
    #[error("malformed tar header: {problem}")]
    TarHeader {
        /// What is wrong with the header.
        problem: crate::layer::TarProblem,
    },

    /// A path that would leave the root, or is otherwise unusable.
    #[error("refusing path {path:?}: {reason}")]
    HostilePath {
        /// The path as written (lossy UTF-8).
        path: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A whiteout whose name cannot be a whiteout (`.wh.`, `.wh..`, `.wh...`).
    #[error("invalid whiteout name {path:?}")]
    InvalidWhiteout {
        /// The whiteout's path.
        path: String,
    },

    /// A hard link whose target does not exist when the link's layer is applied.
    #[error("hard link {link:?} points to {target:?}, which does not exist")]
    HardlinkTargetMissing {
        /// The link's path.
        link: String,
        /// The missing target's path.
        target: String,
    },

    /// A hard link to a directory (not allowed on any file system).
    #[error("hard link {link:?} points to directory {target:?}")]
    HardlinkToDirectory {
        /// The link's path.
        link: String,
        /// The directory's path.
        target: String,
    },

    /// A hard link whose target is replaced later in the same layer, before the link could be
    /// bound to it.
    #[error("hard link {link:?} points to {target:?}, which the same layer replaces afterwards")]
    HardlinkTargetReplaced {
        /// The link's path.
        link: String,
        /// The target's path.
        target: String,
    },

    /// Within one layer, a non-directory replaces a directory after entries beneath it were
    /// already written. Extraction would remove them; a streaming writer cannot take them back.
    #[error(
        "layer replaces directory {path:?} by a non-directory after writing entries beneath it \
         ({written:?}); ocirender writes each entry once and cannot remove it"
    )]
    ReplacedAfterWrite {
        /// The directory's path.
        path: String,
        /// An entry beneath it that was already written.
        written: String,
    },

    /// An entry would be written beneath a symbolic link (one a lower layer planted, or one
    /// the output already holds).
    #[error("entry {path:?}{} lies beneath symlink {symlink:?}", entry_layer.map(|l| format!(" of layer {l}")).unwrap_or_default())]
    BeneathSymlink {
        /// The entry's path.
        path: String,
        /// The layer the entry comes from, when known.
        entry_layer: Option<usize>,
        /// The symlink's path.
        symlink: String,
    },

    /// Resolving a name inside the root followed more symlinks than Linux does (`ELOOP`): a
    /// loop, or a chain too long.
    #[error(
        "resolving {path:?} inside the image follows more than {hops} symlinks (a symlink loop?)"
    )]
    TooManySymlinks {
        /// The directory being resolved.
        path: String,
        /// The limit.
        hops: u32,
    },

    /// The merge, reading layers newest first, met something only resolving names in layer
    /// order gets right ([`Resolver`](crate::Resolver)): a name through a symlink of an older
    /// layer, or an entry its own layer removed after it was written. [`convert`](crate::convert)
    /// and the other drivers handle it by converting again; a caller of
    /// [`Merger`](crate::Merger) builds the [`Resolution`](crate::Resolution) and merges again
    /// with [`Merger::with_resolution`](crate::Merger::with_resolution).
    #[error("the layers need their symlinks resolved in layer order ({why})")]
    SecondPassNeeded {
        /// What the merge met.
        why: String,
    },

    /// A sparse file's data has non-zero bytes inside a region its sparse map calls a hole, so
    /// writing it sparse would lose them.
    #[error("sparse file {path:?} has non-zero data at offset {offset}, inside a hole of its sparse map")]
    SparseHoleNotZero {
        /// The file's path in the image.
        path: String,
        /// Offset of the first non-zero byte found in the hole.
        offset: u64,
    },

    /// An input-controlled size exceeds what ocirender accepts.
    #[error("{what} is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// The size found.
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },

    /// A JSON document of the image (index, manifest, config) is larger than ocirender reads.
    #[error("{what} is {size} bytes, more than the {limit} bytes accepted for a JSON document")]
    DocumentTooLarge {
        /// Which document: a file name or a blob digest.
        what: String,
        /// Its size (from its descriptor or on disk).
        size: u64,
        /// The largest size accepted.
        limit: u64,
    },

    /// An option value outside its valid range.
    #[error("invalid {name} {value:?}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// The value given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// More distinct uids and gids than a squashfs id table holds.
    #[error("the image uses {count} distinct uids/gids; squashfs holds at most 65536")]
    TooManyIds {
        /// How many distinct ids were seen.
        count: usize,
    },

    /// An entry that the squashfs format cannot represent.
    #[error("cannot store {path:?} in squashfs: {problem}")]
    Unrepresentable {
        /// The entry's path.
        path: String,
        /// Why it cannot be stored.
        problem: &'static str,
    },

    /// A layer index outside the image's layers.
    #[error("layer index {index} is out of range: the image has {count} layers")]
    LayerIndexOutOfRange {
        /// The index given.
        index: usize,
        /// The number of layers.
        count: usize,
    },

    /// The same layer was delivered twice.
    #[error("layer {index} was delivered twice")]
    DuplicateLayer {
        /// The index delivered twice.
        index: usize,
    },

    /// The layer stream ended before every layer arrived.
    #[error("the layer stream ended with {missing} of {total} layers never delivered (first missing: {first})")]
    MissingLayers {
        /// How many layers never arrived.
        missing: usize,
        /// How many layers the image has.
        total: usize,
        /// The newest layer that never arrived.
        first: usize,
    },

    /// The caller reported that it could not supply a layer.
    #[error("layer source failed")]
    LayerSource {
        /// The caller's error.
        #[source]
        source: BoxError,
    },

    /// A [`StreamingPacker`](crate::StreamingPacker) was created outside a tokio runtime.
    #[error("the streaming packer must be created inside a tokio runtime")]
    NoAsyncRuntime,

    /// The conversion stopped (after an error, or because the packer was dropped).
    #[error("the conversion has stopped")]
    Stopped,

    /// An internal invariant failed: a bug in ocirender, not a problem with the input.
    #[error("internal error: {what}; this is a bug in ocirender, please report it")]
    Bug {
        /// What broke.
        what: &'static str,
    },

    /// A layer was handed to the merge or the resolver out of order.
    #[error(
        "layer {index} given after layer {previous}: {}",
        if *newest_first { "the merge takes layers newest first" }
        else { "the resolver reads every layer, oldest first" }
    )]
    LayerOrder {
        /// The layer given.
        index: usize,
        /// The layer given before it (for the resolver: the one due, minus one).
        previous: usize,
        /// Which order was expected: newest first (the merge) or oldest first (the resolver).
        newest_first: bool,
    },

    /// An image reference (`alpine:3.20`, `ghcr.io/o/n@sha256:…`) that cannot be parsed.
    #[error("invalid image reference {reference:?}: {problem}")]
    InvalidReference {
        /// The reference as written.
        reference: String,
        /// What is wrong with it.
        problem: &'static str,
    },

    /// A registry answered a request with an unexpected HTTP status.
    #[error(
        "{registry} answered {status} to {request}{}{}",
        if message.is_empty() { String::new() } else { format!(" ({message})") },
        attempts_note(*attempts)
    )]
    HttpStatus {
        /// The registry (host and port).
        registry: String,
        /// The request, as `GET /v2/…`.
        request: String,
        /// The HTTP status code and reason (`500 Internal Server Error`).
        status: String,
        /// The registry's own error message, when its body had one.
        message: String,
        /// How many times the request was made.
        attempts: u32,
    },

    /// A registry could not be reached, or a connection broke.
    #[error("cannot reach {registry} ({request}){}", attempts_note(*attempts))]
    Transport {
        /// The registry (host and port).
        registry: String,
        /// The request, as `GET /v2/…`.
        request: String,
        /// How many times the request was made.
        attempts: u32,
        /// The HTTP client's error.
        #[source]
        source: BoxError,
    },

    /// A registry refused the credentials presented, or wants some and none were found.
    #[error(
        "{registry} refused access to {scope} {}",
        if *with_credentials {
            "with the credentials given"
        } else {
            "without credentials (log in with `ocirender login`, or put them in ~/.docker/config.json)"
        }
    )]
    Unauthorized {
        /// The registry.
        registry: String,
        /// What was asked for (`repository:library/alpine:pull`).
        scope: String,
        /// Whether credentials were presented.
        with_credentials: bool,
    },

    /// A registry's authentication challenge (`WWW-Authenticate`) or token answer is unusable.
    #[cfg(feature = "registry")]
    #[error("cannot authenticate to {registry}: {problem}")]
    AuthProtocol {
        /// The registry.
        registry: String,
        /// What is wrong (an unknown scheme, a token answer without a token, …).
        problem: crate::registry::AuthProblem,
    },

    /// The registry has no manifest for the reference.
    #[error("manifest unknown: {reference} is not in the registry")]
    ManifestNotFound {
        /// The reference, fully qualified.
        reference: String,
    },

    /// A docker credential helper failed.
    #[error("{helper} {action} for {registry} failed: {message}")]
    CredentialHelper {
        /// The helper program.
        helper: String,
        /// The registry.
        registry: String,
        /// What it was asked to do (`get`, `store`, `erase`).
        action: &'static str,
        /// What it said.
        message: String,
    },

    /// The caller asked to stop: [`ConvertOptions::cancel`](crate::ConvertOptions::cancel)
    /// was cancelled (or `pull_until`'s `stop` completed). What the run wrote is removed by
    /// the time this is returned.
    #[error("interrupted")]
    Interrupted,

    /// There is no place to store credentials.
    #[error("nowhere to store credentials: set HOME, DOCKER_CONFIG or REGISTRY_AUTH_FILE")]
    NoAuthFile,

    /// The squashfs image being read is malformed.
    #[error("malformed squashfs image {}: {problem}", path.display())]
    BadSquashfs {
        /// The image read.
        path: PathBuf,
        /// What is wrong, as a value to match on.
        problem: crate::squashfs::SquashfsProblem,
    },

    /// A dm-verity hash area cannot be read: no superblock, parameters we do not support, or
    /// a file too short for the tree it describes.
    #[error("unusable dm-verity hash tree in {}: {problem}", path.display())]
    BadVerity {
        /// The file read (the image, or the hash file).
        path: PathBuf,
        /// What is wrong, as a value to match on.
        problem: crate::verity::VerityProblem,
    },
}

impl Error {
    /// Wraps an [`io::Error`] that happened while doing `op` on `path`.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// This error and all its causes on one line, each once: `{}` of the result prints
    /// `layer 2 (sha256:…): entry a/b: malformed tar stream: unexpected end of file` where
    /// `{}` of the error alone prints `layer 2 (sha256:…)`.
    pub fn report(&self) -> Report<'_> {
        Report(self)
    }

    /// Adds the layer's index and digest to this error, once.
    pub fn in_layer(self, index: usize, digest: &Digest) -> Self {
        match self {
            // A refused previous image concerns the whole conversion, not the layer at hand.
            e @ (Error::Layer { .. } | Error::OfLayer { .. } | Error::ReuseRefused { .. }) => e,
            e => Error::Layer {
                index,
                digest: digest.clone(),
                source: Box::new(e),
            },
        }
    }

    /// Adds the entry's path to this error, once: not to an error that already names it as
    /// written (a refused path), so that a long name is not printed twice.
    pub fn in_entry(self, path: &[u8]) -> Self {
        let path = crate::path::shown_name(path);
        match self {
            e @ (Error::Entry { .. }
            | Error::Layer { .. }
            | Error::OfLayer { .. }
            | Error::ReuseRefused { .. }) => e,
            Error::HostilePath { path: p, reason } if p == path => {
                Error::HostilePath { path: p, reason }
            }
            e => Error::Entry {
                path,
                source: Box::new(e),
            },
        }
    }

    /// The innermost error, past the [`Error::Layer`] and [`Error::Entry`] context wrappers.
    pub fn root_cause(&self) -> &Error {
        match self {
            Error::Layer { source, .. }
            | Error::OfLayer { source, .. }
            | Error::Entry { source, .. } => source.root_cause(),
            e => e,
        }
    }

    /// Turns an [`io::Error`] that may carry an [`Error`] (put there by a reader inside the
    /// pipeline) back into that [`Error`]; other I/O errors become `otherwise(e)`.
    pub(crate) fn from_io(e: io::Error, otherwise: impl FnOnce(io::Error) -> Error) -> Error {
        if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
            match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                Some(Ok(inner)) => *inner,
                Some(Err(other)) => otherwise(io::Error::other(other)),
                None => otherwise(io::Error::other("unknown error")),
            }
        } else {
            otherwise(e)
        }
    }
}

impl From<crate::digest::InvalidDigest> for Error {
    fn from(e: crate::digest::InvalidDigest) -> Error {
        Error::InvalidDigest {
            digest: e.digest,
            problem: e.problem,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match e.root_cause() {
            Error::Io { source, .. } | Error::Output { source, .. } => source.kind(),
            Error::NotAnImage { .. }
            | Error::BlobMissing { .. }
            | Error::RefNotFound { .. }
            | Error::ManifestNotFound { .. } => io::ErrorKind::NotFound,
            Error::Unauthorized { .. } => io::ErrorKind::PermissionDenied,
            Error::OutputExists { .. } => io::ErrorKind::AlreadyExists,
            Error::Tar { .. }
            | Error::Decompress { .. }
            | Error::WrongMagic { .. }
            | Error::DigestMismatch { .. }
            | Error::SizeMismatch { .. }
            | Error::Json { .. }
            | Error::BadSquashfs { .. }
            | Error::BadVerity { .. } => io::ErrorKind::InvalidData,
            Error::InvalidOption { .. } | Error::InvalidReference { .. } => {
                io::ErrorKind::InvalidInput
            }
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

/// An error and its causes on one line, joined by `": "`: see [`Error::report`].
///
/// A cause is left out only where the message just before it already ends with its text: errors
/// of other crates that print their source inside their own message (against the convention
/// ours follow) are not shown twice, while a cause that merely shares words with an outer
/// message still is.
#[derive(Debug, Clone, Copy)]
pub struct Report<'a>(&'a (dyn std::error::Error + 'static));

impl<'a> Report<'a> {
    /// The report of any error, ours or not.
    pub fn new(error: &'a (dyn std::error::Error + 'static)) -> Self {
        Report(error)
    }
}

impl std::fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut last = self.0.to_string();
        f.write_str(&last)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            let text = e.to_string();
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            cause = e.source();
        }
        Ok(())
    }
}

/// ` after N attempts` when there was more than one.
fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod display_tests;
