//! The `ocirender` command: a thin shell over the library. Errors are printed with every
//! cause, once, as `ocirender: …` ([`ocirender::Report`]); the exit status is 0 on success, 1 on failure (2 for usage
//! errors, from clap), 130 or 143 after SIGINT or SIGTERM stopped `convert`, `pull` or `fetch`
//! (which remove their partial output first: [`signals`]), and a closed standard output
//! (`ocirender convert img - | head`) is not a failure.

mod allocator;
mod args;
mod listing;
mod login;
mod report;
mod signals;

use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use indicatif::HumanBytes;
use ocirender::{convert, Image, ImageLocation, ImageSpec};

use args::{Cli, Command, ConvertArgs, FetchArgs, InspectArgs, PullArgs, VerifyArgs};
use ocirender::registry::{self, Reference};
use ocirender::Summary;
use signals::{Interrupted, Signals};

fn main() -> ExitCode {
    allocator::tune();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<Interrupted>() {
            // One line, the interruption's own: the context ("cannot convert …") adds nothing.
            Some(i) => {
                eprintln!("ocirender: {i}");
                ExitCode::from(i.signal.exit_code())
            }
            None => {
                eprintln!("ocirender: {}", ocirender::Report::new(e.as_ref()));
                ExitCode::FAILURE
            }
        },
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || matches!(
                c.downcast_ref::<ocirender::Error>(),
                Some(ocirender::Error::Output { source, .. }) if source.kind() == io::ErrorKind::BrokenPipe
            )
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Convert(a) => run_convert(a),
        Command::Inspect(a) => run_inspect(a),
        Command::Verify(a) => run_verify(a),
        Command::Ls(a) => listing::run_ls(a),
        Command::Pull(a) => run_pull(a),
        Command::Fetch(a) => run_fetch(a),
        Command::Login(a) => login::run_login(a),
        Command::Logout(a) => login::run_logout(a),
    }
}

fn open_image(image: &str, selector: &ocirender::Selector) -> anyhow::Result<Image> {
    let location = ImageLocation::parse(image);
    Image::open(&location, selector).with_context(|| format!("cannot open image {image}"))
}

/// Refuses `--reuse` for outputs that are not squashfs images.
fn check_reuse_output(spec: &ImageSpec, squashfs: &args::SquashfsArgs) -> anyhow::Result<()> {
    if squashfs.reuse.is_some() && spec.format() != ocirender::Format::Squashfs {
        anyhow::bail!(
            "--reuse needs a squashfs output, not {} ({})",
            spec.format().name(),
            spec.path().display()
        );
    }
    Ok(())
}

/// Refuses verity flags for outputs that are not squashfs images.
fn check_verity_output(spec: &ImageSpec, verity: &args::VerityArgs) -> anyhow::Result<()> {
    if verity.options().is_some() && spec.format() != ocirender::Format::Squashfs {
        anyhow::bail!(
            "--verity needs a squashfs output, not {} ({})",
            spec.format().name(),
            spec.path().display()
        );
    }
    Ok(())
}

/// Writes `--verity-info`: the parameters as JSON, through a temporary file so that a reader
/// never sees half of it.
fn write_verity_info(path: &Path, info: &ocirender::VerityInfo) -> anyhow::Result<()> {
    // The hash file by its absolute path, so that `verify --verity-info` finds it from anywhere.
    let mut info = info.clone();
    if let Some(h) = &info.hash_file {
        info.hash_file = Some(std::fs::canonicalize(h).unwrap_or_else(|_| h.clone()));
    }
    let mut text = serde_json::to_string_pretty(&info.to_json())?;
    text.push('\n');
    let out = ocirender::sink::OutputFile::create(path)
        .and_then(|mut f| {
            f.file()
                .write_all(text.as_bytes())
                .map_err(|e| ocirender::Error::io("write", path, e))?;
            f.commit()
        })
        .with_context(|| format!("cannot write the verity info {}", path.display()));
    out
}

/// Refuses a `--verity-info` path that names the output or the hash file.
fn check_verity_info_path(spec: &ImageSpec, a: &args::VerityArgs) -> anyhow::Result<()> {
    if let Some(info) = &a.verity_info {
        let same = |p: &Path| {
            p == info.as_path()
                || matches!((std::fs::canonicalize(p), std::fs::canonicalize(info)), (Ok(x), Ok(y)) if x == y)
        };
        if same(spec.path()) || a.verity_hash_file.as_deref().is_some_and(same) {
            anyhow::bail!(
                "--verity-info {} must not be the image or the hash file",
                info.display()
            );
        }
    }
    Ok(())
}

/// Writes `--verity-info`; if that fails, the image and hash file go too, so that a failed
/// command leaves nothing behind.
fn finish_verity(spec: &ImageSpec, a: &args::VerityArgs, summary: &Summary) -> anyhow::Result<()> {
    if let (Some(path), Some(info)) = (&a.verity_info, &summary.verity) {
        if let Err(e) = write_verity_info(path, info) {
            let _ = std::fs::remove_file(spec.path());
            if let Some(h) = &info.hash_file {
                let _ = std::fs::remove_file(h);
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `e`, unless a signal stopped the command: then the interruption, which `e` only shows.
/// (A command that completed despite a late signal has succeeded.)
fn or_interrupted(
    signals: &Signals,
    e: ocirender::Error,
    cleanup: impl FnOnce() -> String,
) -> anyhow::Error {
    match signals.received() {
        Some(signal) => anyhow::Error::new(Interrupted {
            signal,
            cleanup: cleanup(),
        }),
        None => e.into(),
    }
}

/// What an interrupted conversion did about its output.
fn output_cleanup(spec: &ImageSpec) -> String {
    if spec.path().as_os_str() == "-" {
        // The archive is staged until the end, so an interrupted one never began.
        "nothing was written to standard output".to_owned()
    } else {
        format!("removed the partial output {}", spec.path().display())
    }
}

fn run_convert(a: ConvertArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let signals = Signals::watch()?;
    let spec = ImageSpec::infer(&a.output, a.format.map(Into::into))?;
    check_verity_output(&spec, &a.squashfs.verity)?;
    check_reuse_output(&spec, &a.squashfs)?;
    check_verity_info_path(&spec, &a.squashfs.verity)?;
    let quiet = a.output_opts.quiet;
    let mut options = a.options()?;
    options.progress = Some(report::reporter(a.output_opts.progress, quiet));
    options.cancel = signals.token();
    let image = open_image(&a.image, &a.selector())?;
    let summary = convert(&image, &spec, &options)
        .map_err(|e| or_interrupted(&signals, e, || output_cleanup(&spec)))
        .with_context(|| {
            format!(
                "cannot convert {} to {} {}",
                a.image,
                spec.format().name(),
                a.output.display()
            )
        })?;
    finish_verity(&spec, &a.squashfs.verity, &summary)?;
    if !quiet {
        print_summary(&spec, &summary, started);
    }
    Ok(())
}

fn print_summary(spec: &ImageSpec, summary: &Summary, started: Instant) {
    let mut err = io::stderr().lock();
    let _ = writeln!(
        err,
        "wrote {} ({}): {} entries, {} of files, {} output, {:.1}s{}",
        spec.path().display(),
        spec.format().name(),
        summary.entries,
        HumanBytes(summary.file_bytes),
        HumanBytes(summary.output_bytes),
        started.elapsed().as_secs_f64(),
        if summary.second_pass {
            " (two passes: names resolved through symlinks in layer order)"
        } else {
            ""
        }
    );
    if let Some(v) = &summary.verity {
        let place = match &v.hash_file {
            Some(f) => format!("in {}", f.display()),
            None => format!("appended at offset {}", v.hash_offset),
        };
        let _ = writeln!(
            err,
            "verity: root hash {}\n        salt {}, {} data blocks of {} bytes, {} hash tree {place}",
            v.root_hash_hex(),
            v.salt_hex(),
            v.data_blocks,
            v.data_block_size,
            v.hash
        );
    }
    if summary.spilled.runs > 0 {
        let _ = writeln!(
            err,
            "memory budget reached: {} path records ({}) of the squashfs tree spilled to disk in {} sorted run{}",
            summary.spilled.records,
            HumanBytes(summary.spilled.bytes),
            summary.spilled.runs,
            if summary.spilled.runs == 1 { "" } else { "s" }
        );
    }
    if summary.spilled.files_bytes > 0 {
        let _ = writeln!(
            err,
            "memory budget reached: the squashfs writer's file placements kept their least used pages on disk ({} written)",
            HumanBytes(summary.spilled.files_bytes)
        );
    }
    if summary.spilled.export_bytes > 0 {
        let _ = writeln!(
            err,
            "memory budget reached: the squashfs export table kept its least used pages on disk ({} written)",
            HumanBytes(summary.spilled.export_bytes)
        );
    }
    if summary.spilled.merge_bytes > 0 {
        let _ = writeln!(
            err,
            "memory budget reached: the merge's path table and hiding records kept their least used pages on disk ({} written)",
            HumanBytes(summary.spilled.merge_bytes)
        );
    }
    if let Some(r) = summary.reuse.as_ref().filter(|r| r.refused.is_none()) {
        let total = r.blocks_reused + r.blocks_compressed;
        let saved = r
            .compress_time_saved
            .map(|t| format!(", about {:.1}s of compression saved", t.as_secs_f64()))
            .unwrap_or_default();
        let _ = writeln!(
            err,
            "reuse: {} of {total} blocks ({} of {}) copied from {} ({} blocks indexed in {:.1}s){saved}",
            r.blocks_reused,
            HumanBytes(r.bytes_reused),
            HumanBytes(r.bytes_reused + r.bytes_compressed),
            r.previous.display(),
            r.blocks_indexed,
            r.index_time.as_secs_f64(),
        );
    }
    for w in &summary.warnings {
        let _ = writeln!(err, "warning: {w}");
    }
}

/// The runtime for registry commands: downloads are I/O-bound, hashing and file writes are
/// short, so a small pool suffices (the conversion runs on its own threads).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run_pull(a: PullArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let signals = Signals::watch()?;
    let reference = Reference::parse(&a.reference)?;
    let spec = ImageSpec::infer(&a.output, a.format.map(Into::into))?;
    check_verity_output(&spec, &a.squashfs.verity)?;
    check_reuse_output(&spec, &a.squashfs)?;
    check_verity_info_path(&spec, &a.squashfs.verity)?;
    let quiet = a.output_opts.quiet;
    let mut options = a.options()?;
    options.progress = Some(report::reporter(a.output_opts.progress, quiet));
    options.cancel = signals.token();
    let registry_options = a.registry.options(a.platform.clone());
    let summary = runtime()?
        .block_on(registry::pull(
            &reference,
            &spec,
            &options,
            &registry_options,
        ))
        .map_err(|e| or_interrupted(&signals, e, || output_cleanup(&spec)))
        .with_context(|| {
            format!(
                "cannot pull {reference} to {} {}",
                spec.format().name(),
                a.output.display()
            )
        })?;
    finish_verity(&spec, &a.squashfs.verity, &summary)?;
    if !quiet {
        print_summary(&spec, &summary, started);
    }
    Ok(())
}

fn run_fetch(a: FetchArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let signals = Signals::watch()?;
    let token = signals.token();
    let reference = Reference::parse(&a.reference)?;
    let quiet = a.output_opts.quiet;
    let progress = report::reporter(a.output_opts.progress, quiet);
    let registry_options = a.registry.options(a.platform.clone());
    let rt = runtime()?;
    let fetched = rt
        .block_on(async {
            tokio::select! {
                r = registry::fetch(
                    &reference,
                    &a.dir,
                    a.ref_name.as_deref(),
                    &registry_options,
                    Some(progress),
                ) => r,
                // Dropping the fetch removes its partial blobs (and the directory it created).
                () = token.cancelled() => Err(ocirender::Error::Interrupted),
            }
        })
        .map_err(|e| {
            let cleanup = || format!("removed the partial downloads into {}", a.dir.display());
            or_interrupted(&signals, e, cleanup)
        })
        .with_context(|| format!("cannot fetch {reference} into {}", a.dir.display()))?;
    if !quiet {
        let _ = writeln!(
            io::stderr().lock(),
            "wrote {}:{} (manifest {}): {} blobs downloaded ({}), {} already present, {:.1}s",
            a.dir.display(),
            fetched.ref_name,
            fetched.manifest,
            fetched.downloaded,
            HumanBytes(fetched.bytes),
            fetched.present,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The verdict travels as an error so `main` exits 1 with the count as the one message.
/// The hash tree is checked first (it needs no reference), then the contents.
fn run_verify(a: VerifyArgs) -> anyhow::Result<()> {
    let spec = ImageSpec::infer(&a.output, a.format.map(Into::into))?;
    let root = match (&a.verity, &a.verity_info) {
        (Some(hex), _) => Some(
            hex::decode(hex.trim())
                .with_context(|| format!("--verity {hex:?} is not a hex root hash"))?,
        ),
        (None, Some(file)) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Some(
                ocirender::VerityInfo::root_hash_from_json(&text)
                    .with_context(|| format!("{} has no \"root_hash\" in hex", file.display()))?,
            )
        }
        (None, None) => None,
    };
    if let Some(root) = root {
        if spec.format() != ocirender::Format::Squashfs {
            anyhow::bail!(
                "--verity checks squashfs images, not {}",
                spec.format().name()
            );
        }
        // A relative hash file in the info is relative to the info file's directory.
        let hash_file = a.verity_hash_file.clone().or_else(|| {
            let info = a.verity_info.as_ref()?;
            let text = std::fs::read_to_string(info).ok()?;
            let file = ocirender::VerityInfo::hash_file_from_json(&text)?;
            Some(match info.parent() {
                Some(dir) if file.is_relative() => dir.join(file),
                _ => file,
            })
        });
        let report = ocirender::verity::check(&a.output, hash_file.as_deref(), &root)
            .with_context(|| format!("cannot check the hash tree of {}", a.output.display()))?;
        if let Some(m) = &report.mismatch {
            anyhow::bail!("{} fails dm-verity: {m}", a.output.display());
        }
        eprintln!(
            "{}: {} data blocks match root hash {}",
            a.output.display(),
            report.info.data_blocks,
            report.info.root_hash_hex()
        );
    }
    let Some(reference) = &a.reference else {
        return Ok(());
    };
    let options = ocirender::verify::VerifyOptions {
        ownership: !a.ignore_ownership,
        mtime: !a.ignore_mtime,
        xattrs: !a.ignore_xattrs,
    };
    let report = ocirender::verify::verify(&spec, reference, &options).with_context(|| {
        format!(
            "cannot compare {} with {}",
            a.output.display(),
            reference.display()
        )
    })?;
    let mut out = io::stdout().lock();
    for d in &report.diffs {
        writeln!(out, "{d}")?;
    }
    out.flush()?;
    if report.is_clean() {
        eprintln!(
            "{} entries equal the reference ({})",
            report.output_entries,
            reference.display()
        );
        Ok(())
    } else {
        anyhow::bail!(
            "{} differences between {} ({} entries) and {} ({} entries)",
            report.diffs.len(),
            a.output.display(),
            report.output_entries,
            reference.display(),
            report.reference_entries
        )
    }
}

fn run_inspect(a: InspectArgs) -> anyhow::Result<()> {
    let selector = ocirender::Selector {
        reference: None,
        platform: a.platform.clone(),
    };
    let location = ImageLocation::parse(&a.image);
    let manifests = ocirender::image::list_manifests(&location.path)
        .with_context(|| format!("cannot read image {}", a.image))?;
    let image = Image::open(&location, &selector);
    let mut out = io::stdout().lock();
    if a.json {
        let value = inspect_json(&manifests, image.as_ref().ok());
        serde_json::to_writer_pretty(&mut out, &value)?;
        writeln!(out)?;
    } else {
        writeln!(out, "manifests:")?;
        for m in &manifests {
            let platform = m
                .platform
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let digest = m.digest.as_ref().map(|d| d.to_string()).unwrap_or_default();
            writeln!(
                out,
                "  {:<20} {:<16} {}",
                m.refs.join(","),
                platform,
                digest
            )?;
        }
        match &image {
            Ok(img) => {
                if let Some(d) = &img.manifest_digest {
                    writeln!(out, "chosen manifest: {d}")?;
                }
                writeln!(out, "layers:")?;
                for l in &img.layers {
                    let size = l.size.map(|s| s.to_string()).unwrap_or_else(|| "?".into());
                    writeln!(
                        out,
                        "  {:>3} {:<50} {:>12} {}",
                        l.index, l.media_type, size, l.digest
                    )?;
                }
                if let Some(c) = &img.config {
                    writeln!(out, "config:")?;
                    let plat = [
                        c.os.as_deref(),
                        c.architecture.as_deref(),
                        c.variant.as_deref(),
                    ]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/");
                    writeln!(out, "  platform:    {plat}")?;
                    if let Some(v) = &c.created {
                        writeln!(out, "  created:     {v}")?;
                    }
                    if let Some(v) = &c.user {
                        writeln!(out, "  user:        {v}")?;
                    }
                    if !c.entrypoint.is_empty() {
                        writeln!(out, "  entrypoint:  {:?}", c.entrypoint)?;
                    }
                    if !c.cmd.is_empty() {
                        writeln!(out, "  cmd:         {:?}", c.cmd)?;
                    }
                    if let Some(v) = &c.working_dir {
                        writeln!(out, "  working dir: {v}")?;
                    }
                    for e in &c.env {
                        writeln!(out, "  env:         {e}")?;
                    }
                }
            }
            Err(e) => writeln!(out, "no manifest chosen: {e}")?,
        }
    }
    Ok(())
}

fn inspect_json(
    manifests: &[ocirender::image::ManifestInfo],
    image: Option<&Image>,
) -> serde_json::Value {
    use serde_json::json;
    let manifests: Vec<_> = manifests
        .iter()
        .map(|m| {
            json!({
                "digest": m.digest.as_ref().map(|d| d.to_string()),
                "mediaType": m.media_type,
                "refs": m.refs,
                "platform": m.platform.as_ref().map(|p| p.to_string()),
                "size": m.size,
            })
        })
        .collect();
    let chosen = image.map(|img| {
        json!({
            "manifest": img.manifest_digest.as_ref().map(|d| d.to_string()),
            "layers": img.layers.iter().map(|l| json!({
                "index": l.index,
                "mediaType": l.media_type,
                "digest": l.digest.to_string(),
                "size": l.size,
            })).collect::<Vec<_>>(),
            "config": img.config.as_ref().map(|c| json!({
                "os": c.os, "architecture": c.architecture, "variant": c.variant,
                "created": c.created, "user": c.user, "env": c.env,
                "entrypoint": c.entrypoint, "cmd": c.cmd, "workingDir": c.working_dir,
                "diffIds": c.diff_ids,
            })),
        })
    });
    json!({ "manifests": manifests, "image": chosen })
}
