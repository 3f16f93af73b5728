//! Command-line arguments (what users type) and their translation into library options (what
//! the library needs). Defaults are stated in each flag's help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ocirender::registry::{Concurrency, Mirror, RegistryOptions};
use ocirender::{
    BlockSize, Compression, ConvertOptions, Format, Jobs, MemoryLimit, Ownership, Platform,
    ReadAhead, Reuse, Selector, SquashfsOptions, VerityHash, VerityOptions, XzFilter,
};

/// Convert OCI container images into squashfs images, tar archives or directories.
#[derive(Parser, Debug)]
#[command(name = "ocirender", version, about, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Convert an image (OCI layout or docker-save, optionally DIR:REF) into OUTPUT.
    Convert(ConvertArgs),
    /// Show an image's manifests, layers and configuration.
    Inspect(InspectArgs),
    /// Compare an output (squashfs, tar or directory) with a reference directory; exit 1 on any
    /// difference (`+` only in output, `-` only in reference, `~` differs).
    Verify(VerifyArgs),
    /// List a squashfs image's contents like `ls -l` (read in-process, no mount).
    Ls(LsArgs),
    /// Download an image from a registry and convert it while it downloads.
    Pull(PullArgs),
    /// Download an image from a registry into an OCI image layout directory.
    Fetch(FetchArgs),
    /// Store credentials for a registry (where docker and podman look for them).
    Login(LoginArgs),
    /// Remove a registry's stored credentials.
    Logout(LogoutArgs),
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// The output to check: a .sqfs/.squashfs image, a .tar archive or a directory.
    pub output: PathBuf,
    /// The reference directory (e.g. `umoci unpack`'s rootfs) to compare the contents with.
    #[arg(long, required_unless_present_any = ["verity", "verity_info"])]
    pub reference: Option<PathBuf>,
    /// Check a squashfs image's dm-verity hash tree and data against this root hash (hex).
    #[arg(long, value_name = "ROOT_HASH", conflicts_with = "verity_info")]
    pub verity: Option<String>,
    /// Check the dm-verity hash tree against the root hash in this file (what `convert
    /// --verity-info` wrote).
    #[arg(long, value_name = "FILE")]
    pub verity_info: Option<PathBuf>,
    /// The hash tree is in this file, not appended to the image.
    #[arg(long, value_name = "FILE")]
    pub verity_hash_file: Option<PathBuf>,
    /// The output's format. By default, from the extension (a directory is a directory).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Do not compare uid and gid.
    #[arg(long)]
    pub ignore_ownership: bool,
    /// Do not compare modification times.
    #[arg(long)]
    pub ignore_mtime: bool,
    /// Do not compare extended attributes.
    #[arg(long)]
    pub ignore_xattrs: bool,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// The squashfs image.
    pub image: PathBuf,
    /// A path inside the image. By default, the root.
    pub path: Option<String>,
    /// List subdirectories recursively.
    #[arg(long, short = 'R')]
    pub recursive: bool,
}

#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// The image: an OCI layout directory, a docker-save directory or tar file, optionally
    /// followed by `:REF` to pick a manifest by its ref name.
    pub image: String,
    /// Where to write: a .sqfs/.squashfs file, a .tar file (`-` for standard output) or a
    /// directory.
    pub output: PathBuf,
    /// Output format. By default, from OUTPUT's extension (.sqfs/.squashfs → squashfs, .tar →
    /// tar); required otherwise.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Pick the manifest for this platform (os/arch[/variant]) from a multi-platform index. By
    /// default, the only one, or the host's.
    #[arg(long)]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub squashfs: SquashfsArgs,
    /// Directory output: do not set file ownership (the default when not running as root).
    #[arg(long)]
    pub ignore_ownership: bool,
    #[command(flatten)]
    pub output_opts: OutputArgs,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The image, as docker writes it: `alpine`, `alpine:3.20`, `ghcr.io/o/n@sha256:…`,
    /// `localhost:5000/x:y`.
    pub reference: String,
    /// Where to write: a .sqfs/.squashfs file, a .tar file (`-` for standard output) or a
    /// directory.
    pub output: PathBuf,
    /// Output format. By default, from OUTPUT's extension (.sqfs/.squashfs → squashfs, .tar →
    /// tar); required otherwise.
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Pick the manifest for this platform (os/arch[/variant]) from a multi-platform index. By
    /// default, the host's.
    #[arg(long)]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub squashfs: SquashfsArgs,
    /// Directory output: do not set file ownership (the default when not running as root).
    #[arg(long)]
    pub ignore_ownership: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_opts: OutputArgs,
}

#[derive(Args, Debug)]
pub struct FetchArgs {
    /// The image, as docker writes it (`alpine:3.20`, `localhost:5000/x:y`).
    pub reference: String,
    /// The OCI image layout directory to write (created if missing; an existing layout keeps
    /// its other images).
    pub dir: PathBuf,
    /// The ref name to store the image under in index.json. By default, the reference's tag
    /// (or digest).
    #[arg(long = "ref", value_name = "NAME")]
    pub ref_name: Option<String>,
    /// Pick the manifest for this platform (os/arch[/variant]). By default, the host's.
    #[arg(long)]
    pub platform: Option<Platform>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    #[command(flatten)]
    pub output_opts: OutputArgs,
}

#[derive(Args, Debug)]
pub struct RegistryArgs {
    /// Speak plain HTTP to the registry (a test registry on this machine). By default, HTTPS.
    #[arg(long)]
    pub insecure: bool,
    /// Try this registry first: HOST mirrors Docker Hub, REGISTRY=HOST mirrors REGISTRY. May
    /// be repeated.
    #[arg(long, value_name = "[REGISTRY=]HOST")]
    pub mirror: Vec<Mirror>,
    /// Trust the certificate authorities in this PEM file too (besides the built-in and the
    /// system's). May be repeated.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Vec<PathBuf>,
    /// Layers downloaded at once.
    #[arg(long, default_value = "3")]
    pub concurrency: Concurrency,
    /// Attempts per request before a dropped connection or a 5xx answer is final.
    #[arg(long, default_value = "5")]
    pub attempts: u32,
    /// Where to keep downloaded layers while they convert. By default, the output's directory.
    #[arg(long, value_name = "DIR")]
    pub tmpdir: Option<PathBuf>,
}

impl RegistryArgs {
    /// The library options these arguments ask for.
    pub fn options(&self, platform: Option<Platform>) -> RegistryOptions {
        RegistryOptions {
            platform,
            insecure: self.insecure,
            mirrors: self.mirror.clone(),
            ca_certificates: self.ca_cert.clone(),
            concurrency: self.concurrency,
            attempts: self.attempts.max(1),
            temp_dir: self.tmpdir.clone(),
            ..RegistryOptions::default()
        }
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (`ghcr.io`, `localhost:5000`; `docker.io` for Docker Hub).
    pub registry: String,
    /// The user name. By default, asked for on the terminal.
    #[arg(long, short)]
    pub username: Option<String>,
    /// Read the password (or token) from standard input, up to the first newline.
    #[arg(long)]
    pub password_stdin: bool,
    /// Speak plain HTTP to the registry.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// The registry.
    pub registry: String,
}

#[derive(Args, Debug)]
pub struct SquashfsArgs {
    /// Squashfs compressor ALGO[:LEVEL]: gzip (1-9), zstd (1-22), xz (0-9), lz4 (0 fast, 1-12
    /// high compression) or none.
    #[arg(long, default_value = "zstd")]
    pub compression: Compression,
    /// Squashfs block size, 4K to 1M, a power of two.
    #[arg(long, default_value = "128K")]
    pub block_size: BlockSize,
    /// Store the tail ends of files in their own blocks instead of shared fragment blocks.
    #[arg(long)]
    pub no_fragments: bool,
    /// Do not detect files with identical content.
    #[arg(long)]
    pub no_dedup: bool,
    /// xz branch filters to try per block (x86, arm, armthumb, powerpc, sparc, ia64),
    /// comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub xz_filter: Vec<XzFilter>,
    /// The superblock's time in seconds since the epoch. By default $SOURCE_DATE_EPOCH if set,
    /// else the newest mtime in the image (so the same image gives the same bytes).
    #[arg(long)]
    pub mtime: Option<u32>,
    /// Compression threads. By default, one per core.
    #[arg(long, short)]
    pub jobs: Option<usize>,
    /// How far layer decoding runs ahead of the merge: `off`, N layers, or N:MIB (N layers,
    /// MIB mebibytes of decoded data each). More trades memory for overlap. By default, 1:16.
    #[arg(long, value_name = "N[:MIB]|off", default_value = "1:16")]
    pub read_ahead: ReadAhead,
    /// Memory for what is kept per path (the merge's record of every path, the squashfs
    /// tree): past it, the squashfs tree spills to sorted runs in a temporary file beside the
    /// output (same output, more time). SIZE is bytes with an optional K, M, G suffix, or
    /// `unlimited`.
    #[arg(long, value_name = "SIZE", default_value = "256M")]
    pub memory_limit: MemoryLimit,
    /// Copy the compressed blocks that PREVIOUS (an earlier squashfs of this tool, made with
    /// the same compression settings) already holds instead of compressing them again. The
    /// output is the same as without it; PREVIOUS may be the output path itself.
    #[arg(long, value_name = "PREVIOUS")]
    pub reuse: Option<PathBuf>,
    /// Fail when the --reuse image cannot be used, instead of warning and compressing every
    /// block.
    #[arg(long, requires = "reuse")]
    pub reuse_strict: bool,
    #[command(flatten)]
    pub verity: VerityArgs,
}

#[derive(Args, Debug)]
pub struct VerityArgs {
    /// Append a dm-verity hash tree to the squashfs image (veritysetup's format 1, 4 KiB
    /// blocks) and print its root hash.
    #[arg(long)]
    pub verity: bool,
    /// The verity salt in hex (`-` for none). By default, derived from the image content, so
    /// the same image gives the same root hash. Implies --verity.
    #[arg(long, value_name = "HEX", value_parser = parse_salt)]
    pub verity_salt: Option<Salt>,
    /// The verity hash algorithm: sha256 or sha512. Implies --verity.
    #[arg(long, value_name = "ALGO")]
    pub verity_hash: Option<VerityHash>,
    /// Write the hash tree to FILE instead of appending it to the image. Implies --verity.
    #[arg(long, value_name = "FILE")]
    pub verity_hash_file: Option<PathBuf>,
    /// Write the verity parameters (root hash, salt, offsets, a dm table line) to FILE as
    /// JSON. Implies --verity.
    #[arg(long, value_name = "FILE")]
    pub verity_info: Option<PathBuf>,
}

/// A verity salt (a newtype: clap would read `Vec<u8>` as many arguments).
#[derive(Clone, Debug)]
pub struct Salt(Vec<u8>);

fn parse_salt(text: &str) -> Result<Salt, String> {
    ocirender::verity::parse_salt(text).map(Salt)
}

impl VerityArgs {
    /// The verity options, when any verity flag is given.
    pub fn options(&self) -> Option<VerityOptions> {
        let wanted = self.verity
            || self.verity_salt.is_some()
            || self.verity_hash.is_some()
            || self.verity_hash_file.is_some()
            || self.verity_info.is_some();
        wanted.then(|| VerityOptions {
            hash: self.verity_hash.unwrap_or_default(),
            salt: self.verity_salt.as_ref().map(|s| s.0.clone()),
            hash_file: self.verity_hash_file.clone(),
        })
    }
}

#[derive(Args, Debug)]
pub struct OutputArgs {
    /// Print nothing but errors.
    #[arg(long, short)]
    pub quiet: bool,
    /// Progress display: a bar when stderr is a terminal (auto), log lines (plain), or none.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The image, optionally DIR:REF.
    pub image: String,
    /// Pick the manifest for this platform (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<Platform>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Squashfs,
    Tar,
    Dir,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Squashfs => Format::Squashfs,
            FormatArg::Tar => Format::Tar,
            FormatArg::Dir => Format::Dir,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    None,
}

impl ConvertArgs {
    /// The library options these arguments ask for (progress is attached by the caller).
    pub fn options(&self) -> anyhow::Result<ConvertOptions> {
        self.squashfs.options(self.ignore_ownership)
    }

    pub fn selector(&self) -> Selector {
        Selector {
            reference: None,
            platform: self.platform.clone(),
        }
    }
}

impl PullArgs {
    /// The conversion options these arguments ask for (progress is attached by the caller).
    pub fn options(&self) -> anyhow::Result<ConvertOptions> {
        self.squashfs.options(self.ignore_ownership)
    }
}

impl SquashfsArgs {
    /// The conversion options of `convert` and `pull`.
    fn options(&self, ignore_ownership: bool) -> anyhow::Result<ConvertOptions> {
        let jobs = match self.jobs {
            Some(n) => Jobs::new(n)?,
            None => Jobs::available(),
        };
        let mtime = match self.mtime {
            Some(t) => Some(t),
            None => source_date_epoch()?,
        };
        Ok(ConvertOptions::default()
            .jobs(jobs)
            .read_ahead(self.read_ahead)
            .memory_limit(self.memory_limit)
            .ownership(if ignore_ownership {
                Ownership::Ignore
            } else {
                Ownership::Auto
            })
            .squashfs(SquashfsOptions {
                compression: self.compression,
                block_size: self.block_size,
                fragments: !self.no_fragments,
                dedup: !self.no_dedup,
                mtime,
                xz_filters: self.xz_filter.clone(),
                verity: self.verity.options(),
                reuse: self.reuse.as_ref().map(|previous| Reuse {
                    previous: previous.clone(),
                    strict: self.reuse_strict,
                }),
                ..SquashfsOptions::default()
            }))
    }
}

fn source_date_epoch() -> anyhow::Result<Option<u32>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) if !v.is_empty() => {
            let t: u32 = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")
            })?;
            Ok(Some(t))
        }
        _ => Ok(None),
    }
}
