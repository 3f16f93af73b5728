//! The Linux kernel as an oracle: boot Debian's packaged kernel under QEMU, mount every squashfs
//! image with the kernel's own driver, and turn what it shows into a [`Tree`].
//!
//! Data flow:
//!
//! ```text
//! Harness::find ── newest /boot/vmlinuz-<release> + /lib/modules/<release>, qemu-system-x86_64,
//!   │              busybox, getfattr (optional: xattrs)
//! Harness::boot(&[Disk])
//!   ├─ vmlinux: the ELF unpacked from vmlinuz (PVH boot skips the guest's slow self-decompression)
//!   ├─ initramfs.cpio (newc, written here): /init = scripts/kernel-harness/init, busybox, the
//!   │   modules squashfs and virtio need (modules.dep order, decompressed), getfattr with the
//!   │   libraries ldd names, /harness/{disks,windows}
//!   ├─ qemu-system-x86_64 (TCG, software emulation): one boot, every image a read-only virtio
//!   │   disk whose serial number is its label
//!   └─ console.log: per disk `gzip | base64` of the guest's lines ── decode ── parse
//!        └─ one Listing per disk { tree: dump::Tree, stats, problems, kernel log }
//!           (decoded lines kept as <label>.listing beside console.log)
//! ```
//!
//! Why: unsquashfs and backhand are user-space readers with their own leniencies; the reader that
//! matters most is the kernel, which refuses what they accept (table adjacency, fragment sanity,
//! directory header counts) and shows an image through the VFS (inode numbers, nlink, i_blocks).
//! A TCG boot costs several seconds, so one boot lists every image a test has.
//!
//! What the listing can show and how it is mapped onto a [`Tree`]:
//! - type, permission bits (with setuid/setgid/sticky), uid, gid, mtime (seconds), size, device
//!   numbers, symlink targets: from busybox `stat`/`readlink`, compared exactly;
//! - content: busybox `sha256sum` for files up to 64 MiB. A larger file (a sparse file of several
//!   GiB) would take minutes to hash under TCG, so the test names [`Window`]s of it and both sides
//!   use [`windowed_sha256`] of those windows instead of the whole-file hash;
//! - hard links: paths of one non-directory inode (same `st_ino`, `nlink > 1`) form a `link=`
//!   group; a group whose size differs from `nlink`, or two unrelated entries sharing an inode
//!   number, is reported as a problem;
//! - xattrs: `getfattr -d -e hex` (the attr package's binary and its libraries are copied into the
//!   initramfs; busybox has no xattr tool). Without getfattr on the host, xattrs are not compared
//!   (a notice says so) and `OCIRENDER_REQUIRE_KERNEL=1` turns that into a failure;
//! - directory nlink: the kernel shows the stored value verbatim and the convention is the
//!   writer's (mksquashfs: 2 + subdirectories; squashfs-tools-ng: 2 + entries), so only the lower
//!   bound 2 + subdirectories is checked; atime/ctime are not compared (squashfs has only mtime).
//!
//! The test is skipped with a notice when QEMU or a kernel in /boot is missing, unless
//! `OCIRENDER_REQUIRE_KERNEL=1` (set by CI), which makes the absence a failure.
//! `OCIRENDER_KERNEL_TIMEOUT` (seconds, default 300) bounds a boot so that a hung guest fails the
//! test instead of hanging CI.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::dump::{sha256, DumpOptions, Kind, Node, Tree};

/// The guest's /init; see the script for the line format it prints.
const INIT: &str = include_str!("../../scripts/kernel-harness/init");

/// Modules the guest loads (with their dependencies) when the kernel builds them as modules.
const MODULES: &[&str] = &["virtio_pci", "virtio_blk", "squashfs"];

/// Modules a boot with a dm-verity disk loads too.
const VERITY_MODULES: &[&str] = &["dm_verity"];

/// Files above this size are hashed only through [`Window`]s (the guest's `find ! -size +65536k`).
pub const FULL_HASH_LIMIT: u64 = 64 << 20;

/// Guest memory; enough for the kernel, the initramfs and the page cache the listing needs.
const GUEST_MEMORY: &str = "512M";

const START: &[u8] = b"==== ocirender-kernel-harness start";
const DONE: &[u8] = b"==== ocirender-kernel-harness done";

/// Everything a boot needs, found on the host.
#[derive(Debug)]
pub struct Harness {
    qemu: PathBuf,
    vmlinuz: PathBuf,
    release: String,
    busybox: PathBuf,
    getfattr: Option<PathBuf>,
}

/// One image to attach.
#[derive(Clone, Debug)]
pub struct Disk {
    /// Short name (`[a-z0-9-]`, at most 20 bytes: it travels as the virtio serial number).
    pub label: String,
    /// The squashfs image.
    pub image: PathBuf,
    /// Files of this image that are compared by windows instead of a whole-file hash.
    pub windows: Vec<Window>,
    /// A dm-verity table (`DEV` for the disk, which holds data and hash tree) to mount the image
    /// through; the guest then needs dmsetup and the dm-verity module.
    pub verity: Option<String>,
}

/// A range of a file that the guest hashes on its own (4 KiB aligned; clipped at end of file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Path relative to the image root, `a/b`.
    pub path: String,
    /// Start, a multiple of 4096.
    pub offset: u64,
    /// Length, a multiple of 4096.
    pub len: u64,
}

/// What the kernel showed for one disk.
#[derive(Debug)]
pub struct Listing {
    /// The disk's label.
    pub label: String,
    /// The entries, in the shape of the canonical dump.
    pub tree: Tree,
    /// Per path: what the VFS adds beyond the dump.
    pub stats: BTreeMap<Vec<u8>, Stat>,
    /// Whether xattrs were listed (getfattr was available).
    pub xattrs_listed: bool,
    /// Errors: mount refused, tool errors (EIO while reading), inconsistent inode numbers, kernel
    /// log lines reporting squashfs errors, lines that did not parse.
    pub problems: Vec<String>,
    /// The kernel log while this disk was mounted and read.
    pub kernel_log: Vec<String>,
    /// The dm-verity table the disk was mounted through, if it was.
    pub verity: Option<String>,
    /// Guest seconds spent on this disk (mount, listing, hashing).
    pub guest_seconds: f64,
    /// The guest's lines for this disk, decoded (written to `<label>.listing` beside the console
    /// log, for a look after a failure).
    pub text: Vec<u8>,
}

/// The `stat` fields the dump does not show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    /// `st_ino`: the squashfs inode number.
    pub ino: u64,
    /// `st_nlink`.
    pub nlink: u64,
    /// `st_blocks` (512-byte units); the kernel sets it from the inode's `sparse` field.
    pub blocks: u64,
}

impl Harness {
    /// Finds QEMU, the newest packaged kernel with its modules, busybox and (optionally) getfattr.
    pub fn find() -> Result<Harness, String> {
        if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            return Err("the kernel oracle needs an x86-64 Linux host".into());
        }
        let qemu = which("qemu-system-x86_64")
            .ok_or("qemu-system-x86_64 not found (Debian package qemu-system-x86)")?;
        let busybox =
            which("busybox").ok_or("busybox not found (Debian package busybox-static)")?;
        let (vmlinuz, release) = newest_kernel(Path::new("/boot"))?;
        let modules = Path::new("/lib/modules").join(&release);
        if !modules.join("modules.dep").is_file() {
            return Err(format!(
                "{} has no modules.dep (linux-image-amd64 installs it)",
                modules.display()
            ));
        }
        fs::File::open(&vmlinuz).map_err(|e| format!("cannot read {}: {e}", vmlinuz.display()))?;
        Ok(Harness {
            qemu,
            vmlinuz,
            release,
            busybox,
            getfattr: which("getfattr"),
        })
    }

    /// [`Harness::find`], or `None` after a visible notice; with `OCIRENDER_REQUIRE_KERNEL=1` a
    /// missing piece (getfattr included) fails the test instead.
    pub fn find_or_skip(test: &str) -> Option<Harness> {
        let require = std::env::var_os("OCIRENDER_REQUIRE_KERNEL").is_some_and(|v| v == "1");
        match Harness::find() {
            Ok(h) => {
                if h.getfattr.is_none() {
                    assert!(
                        !require,
                        "{test}: OCIRENDER_REQUIRE_KERNEL=1 but getfattr is missing (Debian package attr)"
                    );
                    eprintln!(
                        "NOTICE {test}: getfattr not found, xattrs are not compared (install attr)"
                    );
                }
                eprintln!(
                    "{test}: booting {} with {}",
                    h.vmlinuz.display(),
                    h.qemu.display()
                );
                Some(h)
            }
            Err(why) => {
                assert!(!require, "{test}: OCIRENDER_REQUIRE_KERNEL=1 but {why}");
                eprintln!(
                    "SKIPPED {test}: {why}; the kernel oracle did not run \
                     (set OCIRENDER_REQUIRE_KERNEL=1 to make this a failure)"
                );
                None
            }
        }
    }

    /// Boots once with every disk attached and returns one listing per disk, in `disks` order.
    /// Panics (with the console log) when the guest does not finish or the harness itself fails.
    pub fn boot(&self, disks: &[Disk], work: &Path) -> Vec<Listing> {
        for d in disks {
            assert!(
                !d.label.is_empty()
                    && d.label.len() <= 20
                    && d.label
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "disk label {:?} must be 1-20 bytes of [a-z0-9-]",
                d.label
            );
            for w in &d.windows {
                assert!(
                    w.offset % 4096 == 0 && w.len % 4096 == 0 && w.len > 0,
                    "window {w:?} must be 4 KiB aligned"
                );
            }
        }
        let labels: BTreeSet<&str> = disks.iter().map(|d| d.label.as_str()).collect();
        assert_eq!(labels.len(), disks.len(), "disk labels must be unique");

        let kernel = self.bootable_kernel(work);
        let initramfs = work.join("initramfs.cpio");
        fs::write(&initramfs, self.initramfs(disks)).unwrap();
        let console = work.join("console.log");
        let stderr = work.join("qemu.stderr");
        let _ = fs::remove_file(&console);

        let mut cmd = Command::new(&self.qemu);
        // Always TCG: a /dev/kvm that opens is no promise that KVM works (nested setups abort
        // QEMU on MSR writes), and the test must behave the same on every machine.
        cmd.args([
            "-accel",
            "tcg",
            "-nodefaults",
            "-no-user-config",
            "-nographic",
        ])
        .args(["-monitor", "none"])
        .args(["-no-reboot", "-m", GUEST_MEMORY, "-smp", "1"])
        .arg("-serial")
        .arg(format!("file:{}", console.display()))
        .arg("-kernel")
        .arg(&kernel)
        .arg("-initrd")
        .arg(&initramfs)
        // quiet + loglevel=1: kernel messages stay in dmesg (the guest prints them per disk as
        // K lines) instead of interleaving with the listing on the console.
        .args(["-append", "console=ttyS0 panic=-1 quiet loglevel=1"]);
        for (i, d) in disks.iter().enumerate() {
            let file = d.image.display().to_string().replace(',', ",,");
            cmd.arg("-drive")
                .arg(format!(
                    "file={file},format=raw,if=none,id=d{i},readonly=on"
                ))
                .arg("-device")
                .arg(format!("virtio-blk-pci,drive=d{i},serial={}", d.label));
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&stderr).unwrap());

        let timeout = Duration::from_secs(
            std::env::var("OCIRENDER_KERNEL_TIMEOUT")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(300),
        );
        let started = Instant::now();
        let mut child = Guest(cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}")));
        let status = loop {
            if let Some(status) = child.0.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > timeout {
                drop(child);
                panic!(
                    "the guest did not power off within {timeout:?} (OCIRENDER_KERNEL_TIMEOUT)\n{}",
                    tail(&console)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let log = fs::read(&console).unwrap_or_default();
        let qemu_err = fs::read_to_string(&stderr).unwrap_or_default();
        assert!(
            status.success(),
            "qemu exited with {status}: {qemu_err}\n{}",
            tail(&console)
        );
        let listings = parse_console(&log, disks, self.getfattr.is_some()).unwrap_or_else(|why| {
            panic!(
                "kernel harness: {why}\nqemu stderr: {qemu_err}\n{}",
                tail(&console)
            )
        });
        for l in &listings {
            fs::write(work.join(format!("{}.listing", l.label)), &l.text).unwrap();
        }
        let per_disk: Vec<String> = listings
            .iter()
            .map(|l| format!("{} {:.1}s", l.label, l.guest_seconds))
            .collect();
        eprintln!(
            "kernel {}: {} disks listed in {:.1?} (guest time per disk: {})",
            self.release,
            disks.len(),
            started.elapsed(),
            per_disk.join(", ")
        );
        listings
    }

    /// The kernel image QEMU loads: the ELF inside vmlinuz when the kernel has a PVH entry point
    /// (QEMU then jumps straight into it), else vmlinuz itself. Unpacking the xz payload on the
    /// host takes a second; the guest's own decompressor needs over ten under TCG.
    fn bootable_kernel(&self, work: &Path) -> PathBuf {
        let config = Path::new("/boot").join(format!("config-{}", self.release));
        let pvh = fs::read_to_string(config).is_ok_and(|c| c.lines().any(|l| l == "CONFIG_PVH=y"));
        let image = fs::read(&self.vmlinuz).unwrap();
        match pvh.then(|| extract_vmlinux(&image)).flatten() {
            Some(elf) => {
                let path = work.join("vmlinux");
                fs::write(&path, elf).unwrap();
                path
            }
            None => self.vmlinuz.clone(),
        }
    }

    /// The initramfs: busybox, /init, modules, getfattr, and the per-boot configuration.
    fn initramfs(&self, disks: &[Disk]) -> Vec<u8> {
        let mut c = Cpio::default();
        for d in ["dev", "proc", "sys", "mnt", "tmp", "harness", "lib/modules"] {
            c.dir(d);
        }
        // The kernel opens /dev/console for /init's stdio before devtmpfs is mounted.
        c.node("dev/console", 0o020600, (5, 1));
        c.file("init", 0o755, INIT.as_bytes());
        copy_exec(&mut c, &self.busybox, "bin/busybox");
        if let Some(g) = &self.getfattr {
            copy_exec(&mut c, g, "usr/bin/getfattr");
        }
        let verity = disks.iter().any(|d| d.verity.is_some());
        let wanted: Vec<&str> = if verity {
            MODULES.iter().chain(VERITY_MODULES).copied().collect()
        } else {
            MODULES.to_vec()
        };
        if verity {
            let dmsetup = which("dmsetup")
                .or_else(|| Some(PathBuf::from("/usr/sbin/dmsetup")).filter(|p| p.is_file()))
                .expect("a verity disk needs dmsetup on the host (Debian package dmsetup)");
            copy_exec(&mut c, &dmsetup, "usr/sbin/dmsetup");
        }
        let mut tables = String::new();
        for d in disks {
            if let Some(t) = &d.verity {
                let _ = writeln!(tables, "{} {t}", d.label);
            }
        }
        c.file("harness/verity", 0o644, tables.as_bytes());
        let modules = Path::new("/lib/modules").join(&self.release);
        for (i, m) in module_load_order(&modules, &wanted)
            .unwrap_or_else(|why| panic!("kernel {}: {why}", self.release))
            .iter()
            .enumerate()
        {
            let name = module_name(m);
            c.file(
                &format!("lib/modules/{i:02}-{name}.ko"),
                0o644,
                &read_module(&modules.join(m)),
            );
        }
        c.file(
            "harness/disks",
            0o644,
            format!("{}\n", disks.len()).as_bytes(),
        );
        let mut windows = String::new();
        for d in disks {
            for w in &d.windows {
                let _ = writeln!(
                    windows,
                    "{} {} {} {}",
                    d.label,
                    w.offset / 4096,
                    w.len / 4096,
                    w.path
                );
            }
        }
        c.file("harness/windows", 0o644, windows.as_bytes());
        c.finish()
    }
}

/// The running QEMU process; killed when dropped, so that no test failure or panic leaves a
/// guest running.
struct Guest(std::process::Child);

impl Drop for Guest {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The digest a windowed file gets on both sides: sha256 over one `offset len sha256\n` line per
/// window, in the order the windows were given. `parts` holds the sha256 of each window's bytes
/// (clipped at the end of the file).
pub fn windowed_sha256(parts: impl IntoIterator<Item = (u64, u64, String)>) -> String {
    let mut text = String::new();
    for (offset, len, hash) in parts {
        let _ = writeln!(text, "{offset} {len} {hash}");
    }
    sha256(text.as_bytes())
}

impl Listing {
    /// Whether the kernel showed `expected` (under `opts`) and reported no problem; the error
    /// holds a diff, the problems and the kernel log. Xattrs are left out of the comparison, with
    /// a notice, when they could not be listed.
    pub fn check(&self, expected: &Tree, mut opts: DumpOptions) -> Result<(), String> {
        if opts.xattrs && !self.xattrs_listed {
            eprintln!(
                "NOTICE {}: xattrs not compared (no getfattr on the host)",
                self.label
            );
            opts.xattrs = false;
        }
        let want = expected.dump(opts);
        let got = self.tree.dump(opts);
        if want == got && self.problems.is_empty() {
            return Ok(());
        }
        let mut msg = format!("kernel listing of image `{}` differs\n", self.label);
        if got.is_empty() {
            msg.push_str("(the kernel listed nothing)\n");
        } else if want != got {
            msg.push_str("--- expected / +++ kernel:\n");
            msg.push_str(&line_diff(&want, &got));
        }
        for p in &self.problems {
            let _ = writeln!(msg, "problem: {p}");
        }
        for k in &self.kernel_log {
            if !self.problems.iter().any(|p| p.ends_with(k.as_str())) {
                let _ = writeln!(msg, "kernel: {k}");
            }
        }
        Err(msg)
    }
}

/// Lines only in `want` (`-`) or only in `got` (`+`), at most 60 of each kind, each cut to 300
/// characters (long symlink targets and xattr values would bury the rest).
fn line_diff(want: &str, got: &str) -> String {
    let w: BTreeSet<&str> = want.lines().collect();
    let g: BTreeSet<&str> = got.lines().collect();
    let mut out = String::new();
    for (sign, only) in [("-", w.difference(&g)), ("+", g.difference(&w))] {
        let only: Vec<_> = only.collect();
        for l in only.iter().take(60) {
            match l.char_indices().nth(300) {
                Some((cut, _)) => writeln!(out, "{sign}{}…", &l[..cut]),
                None => writeln!(out, "{sign}{l}"),
            }
            .unwrap();
        }
        if only.len() > 60 {
            let _ = writeln!(out, "{sign}… {} more", only.len() - 60);
        }
    }
    out
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The newest `vmlinuz-<release>` in `boot`, by version order of the release.
fn newest_kernel(boot: &Path) -> Result<(PathBuf, String), String> {
    let entries = fs::read_dir(boot).map_err(|e| format!("cannot list {}: {e}", boot.display()))?;
    entries
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            let release = name.strip_prefix("vmlinuz-")?.to_owned();
            Some((boot.join(&name), release))
        })
        .max_by(|a, b| version_key(&a.1).cmp(&version_key(&b.1)))
        .ok_or_else(|| {
            format!(
                "no kernel in {} (Debian package linux-image-amd64)",
                boot.display()
            )
        })
}

/// Splits `6.1.0-56-amd64` into number and text runs so that `6.10` sorts after `6.9`.
fn version_key(s: &str) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits > 0 {
            out.push((rest[..digits].parse().unwrap_or(u64::MAX), String::new()));
            rest = &rest[digits..];
        } else {
            let text = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            out.push((0, rest[..text].to_owned()));
            rest = &rest[text..];
        }
    }
    out
}

/// The uncompressed kernel ELF inside a bzImage: the payload is the first xz, zstd or gzip
/// stream (found by its magic) that inflates to an ELF file.
fn extract_vmlinux(bz_image: &[u8]) -> Option<Vec<u8>> {
    type Inflate = fn(&[u8]) -> Option<Vec<u8>>;
    let formats: [(&[u8], Inflate); 3] = [
        (b"\xfd7zXZ\x00", |b| {
            let mut out = Vec::new();
            liblzma::read::XzDecoder::new(b)
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }),
        (b"\x28\xb5\x2f\xfd", |b| {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(b)
                .ok()?
                .single_frame()
                .read_to_end(&mut out)
                .ok()?;
            Some(out)
        }),
        (b"\x1f\x8b\x08", |b| {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(b).read_to_end(&mut out).ok()?;
            Some(out)
        }),
    ];
    for (magic, inflate) in formats {
        let mut from = 0;
        while let Some(at) = find(&bz_image[from..], magic) {
            let start = from + at;
            if let Some(elf) = inflate(&bz_image[start..]).filter(|e| e.starts_with(b"\x7fELF")) {
                return Some(elf);
            }
            from = start + 1;
        }
    }
    None
}

/// `kernel/fs/squashfs/squashfs.ko.xz` → `squashfs` (modprobe treats `-` and `_` alike).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

/// The module files (relative to `modules`) to insmod, dependencies first, for `wanted`. A wanted
/// module that is built in needs nothing; one that is neither built in nor a module is an error.
pub fn module_load_order(modules: &Path, wanted: &[&str]) -> Result<Vec<String>, String> {
    let dep = fs::read_to_string(modules.join("modules.dep"))
        .map_err(|e| format!("read modules.dep: {e}"))?;
    let builtin = fs::read_to_string(modules.join("modules.builtin")).unwrap_or_default();
    let builtin: BTreeSet<String> = builtin.lines().map(module_name).collect();
    let mut deps: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    for line in dep.lines() {
        let Some((file, rest)) = line.split_once(':') else {
            continue;
        };
        let needs = rest.split_whitespace().map(str::to_owned).collect();
        deps.insert(module_name(file), (file.to_owned(), needs));
    }
    fn visit(
        file: &str,
        deps: &BTreeMap<String, (String, Vec<String>)>,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(file.to_owned()) {
            return;
        }
        if let Some((_, needs)) = deps.get(&module_name(file)) {
            for n in needs {
                visit(n, deps, seen, order);
            }
        }
        order.push(file.to_owned());
    }
    let mut order = Vec::new();
    let mut seen = BTreeSet::new();
    for w in wanted {
        match deps.get(*w) {
            Some((file, _)) => visit(file, &deps, &mut seen, &mut order),
            None if builtin.contains(*w) => {}
            None => return Err(format!("module {w} is neither built in nor in modules.dep")),
        }
    }
    Ok(order)
}

/// A module's ELF bytes; busybox insmod cannot read compressed modules, so they are inflated here.
pub fn read_module(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let name = path.to_string_lossy();
    let mut out = Vec::new();
    if name.ends_with(".ko.xz") {
        liblzma::read::XzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("unxz {name}: {e}"));
    } else if name.ends_with(".ko.zst") {
        out = zstd::stream::decode_all(&raw[..]).unwrap_or_else(|e| panic!("unzstd {name}: {e}"));
    } else if name.ends_with(".ko.gz") {
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("gunzip {name}: {e}"));
    } else {
        out = raw;
    }
    out
}

/// Adds `host` at `guest` plus every shared library `ldd` names, at the library's own path (the
/// guest runs the host's binaries: same architecture, and the libraries come along).
fn copy_exec(c: &mut Cpio, host: &Path, guest: &str) {
    c.file(guest, 0o755, &fs::read(host).unwrap());
    // ldd exits 1 for a static binary ("not a dynamic executable"): nothing to copy then.
    let Ok(out) = Command::new("ldd").arg(host).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        for lib in line.split_whitespace().filter(|w| w.starts_with('/')) {
            let bytes = fs::read(lib).unwrap_or_else(|e| panic!("read {lib}: {e}"));
            c.file(lib.trim_start_matches('/'), 0o755, &bytes);
        }
    }
}

/// A `newc` cpio archive, the format the kernel unpacks as an initramfs.
#[derive(Default)]
struct Cpio {
    out: Vec<u8>,
    dirs: BTreeSet<String>,
    files: BTreeSet<String>,
    ino: u32,
}

impl Cpio {
    fn dir(&mut self, path: &str) {
        let mut at = String::new();
        for comp in path.split('/') {
            if !at.is_empty() {
                at.push('/');
            }
            at.push_str(comp);
            if self.dirs.insert(at.clone()) {
                let name = at.clone();
                self.record(&name, 0o040755, (0, 0), &[]);
            }
        }
    }

    fn parent(&mut self, path: &str) {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent);
        }
    }

    fn file(&mut self, path: &str, perm: u32, data: &[u8]) {
        if self.files.insert(path.to_owned()) {
            self.parent(path);
            self.record(path, 0o100000 | perm, (0, 0), data);
        }
    }

    fn node(&mut self, path: &str, mode: u32, rdev: (u32, u32)) {
        self.parent(path);
        self.record(path, mode, rdev, &[]);
    }

    /// One header (`070701` and 13 hex fields), the NUL-terminated name and the data, each padded
    /// to 4 bytes.
    fn record(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.ino += 1;
        let nlink = if mode & 0o170000 == 0o040000 { 2 } else { 1 };
        let fields = [
            self.ino,
            mode,
            0,
            0,
            nlink,
            0,
            u32::try_from(data.len()).unwrap(),
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap(),
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }

    fn pad(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.record("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// The last 60 lines of the console log, for failure messages.
fn tail(console: &Path) -> String {
    let log = fs::read(console).unwrap_or_default();
    let text = String::from_utf8_lossy(&log);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(60);
    format!("console (last lines):\n{}", lines[from..].join("\n"))
}

/// Splits the console log into per-disk sections and parses each.
pub fn parse_console(log: &[u8], disks: &[Disk], xattrs: bool) -> Result<Vec<Listing>, String> {
    let lines: Vec<&[u8]> = log
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    let start = lines
        .iter()
        .position(|l| find(l, START).is_some())
        .ok_or("the guest never ran /init")?;
    if !lines.iter().any(|l| l.starts_with(DONE)) {
        return Err("the guest stopped before listing every disk".into());
    }
    let mut boot_problems = Vec::new();
    let mut sections: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut current: Option<(String, Vec<u8>)> = None;
    for line in &lines[start + 1..] {
        if let Some(label) = line.strip_prefix(b"==== begin ") {
            current = Some((String::from_utf8_lossy(label).into_owned(), Vec::new()));
        } else if line.starts_with(b"==== end ") {
            if let Some((label, body)) = current.take() {
                sections.insert(label, body);
            }
        } else if let Some((_, body)) = &mut current {
            body.extend_from_slice(line);
        } else if line.starts_with(b"E ") {
            boot_problems.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    if !boot_problems.is_empty() {
        return Err(format!("guest setup failed: {boot_problems:?}"));
    }
    disks
        .iter()
        .map(|d| {
            let body = sections
                .get(&d.label)
                .ok_or_else(|| format!("no listing for disk {}", d.label))?;
            let text = decode_section(body)
                .ok_or_else(|| format!("the listing of disk {} is not gzip | base64", d.label))?;
            let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
            let mut listing = parse_section(d, &lines, xattrs);
            listing.text = text.clone();
            Ok(listing)
        })
        .collect()
}

/// What the guest's `gzip | base64` does to a section's lines (for tests of the parser).
pub fn encode_section(plain: &[u8]) -> String {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(plain).unwrap();
    let bytes = gz.finish().unwrap();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Undoes the guest's `gzip | base64` (line breaks already removed).
fn decode_section(b64: &[u8]) -> Option<Vec<u8>> {
    let mut bytes = Vec::with_capacity(b64.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in b64.iter().filter(|&&c| c != b'=') {
        let v = BASE64.iter().position(|&a| a == c)?;
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
        }
    }
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&bytes[..])
        .read_to_end(&mut text)
        .ok()?;
    Some(text)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `./a/b` → `a/b`, `.` → `` (the Tree's keys).
fn tree_key(p: &[u8]) -> Vec<u8> {
    if p == b"." {
        return Vec::new();
    }
    p.strip_prefix(b"./").unwrap_or(p).to_vec()
}

fn parse_section(disk: &Disk, body: &[&[u8]], xattrs_listed: bool) -> Listing {
    let mut l = Listing {
        label: disk.label.clone(),
        tree: Tree::default(),
        stats: BTreeMap::new(),
        xattrs_listed,
        problems: Vec::new(),
        kernel_log: Vec::new(),
        verity: None,
        guest_seconds: 0.0,
        text: Vec::new(),
    };
    let mut uptimes = Vec::new();
    let mut hashes: BTreeMap<Vec<u8>, String> = BTreeMap::new();
    let mut windows: BTreeMap<Vec<u8>, Vec<(u64, u64, String)>> = BTreeMap::new();
    let mut targets: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let mut pending_link: Option<Vec<u8>> = None;
    let mut xattr_lines = Vec::new();
    for line in body {
        let (tag, rest) = match line.split_first() {
            Some((&t, r)) if r.first() == Some(&b' ') => (t, &r[1..]),
            _ if line.is_empty() => continue,
            _ => {
                l.problems.push(format!("unparsed line {:?}", lossy(line)));
                continue;
            }
        };
        match tag {
            b'S' => match parse_stat(rest) {
                Some((path, node, stat)) => {
                    l.tree.0.insert(path.clone(), node);
                    l.stats.insert(path, stat);
                }
                None => l.problems.push(format!("bad stat line {:?}", lossy(rest))),
            },
            b'H' => match find(rest, b"  ") {
                Some(i) => {
                    hashes.insert(
                        tree_key(&rest[i + 2..]),
                        String::from_utf8_lossy(&rest[..i]).into_owned(),
                    );
                }
                None => l.problems.push(format!("bad hash line {:?}", lossy(rest))),
            },
            b'W' => {
                let f: Vec<&[u8]> = rest.splitn(4, |&b| b == b'|').collect();
                let num = |b: &[u8]| String::from_utf8_lossy(b).parse::<u64>().ok();
                match (
                    f.as_slice(),
                    f.get(1).and_then(|b| num(b)),
                    f.get(2).and_then(|b| num(b)),
                ) {
                    ([hash, _, _, path], Some(skip), Some(count)) => {
                        windows.entry(tree_key(path)).or_default().push((
                            skip * 4096,
                            count * 4096,
                            lossy(hash),
                        ));
                    }
                    _ => l
                        .problems
                        .push(format!("bad window line {:?}", lossy(rest))),
                }
            }
            b'L' => pending_link = Some(tree_key(rest)),
            b'T' => match pending_link.take() {
                Some(p) => {
                    targets.insert(p, rest.to_vec());
                }
                None => l.problems.push("readlink target without path".into()),
            },
            b'X' => xattr_lines.push(rest),
            b'U' => uptimes.extend(lossy(rest).parse::<f64>().ok()),
            b'V' => l.verity = Some(lossy(rest)),
            // The kernel answers ENOTSUP to listxattr on an image without an xattr table.
            b'E' if rest.starts_with(b"getfattr: ")
                && rest.ends_with(b": Operation not supported") => {}
            b'E' | b'M' => l.problems.push(lossy(line)),
            b'K' => {
                let text = lossy(rest);
                if text.to_ascii_lowercase().contains("squashfs") {
                    l.problems.push(format!("kernel: {text}"));
                }
                l.kernel_log.push(text);
            }
            _ => l.problems.push(format!("unparsed line {:?}", lossy(line))),
        }
    }
    // The windows the host asked for decide the digest; a missing window line is a mismatch.
    let windowed: BTreeSet<Vec<u8>> = disk
        .windows
        .iter()
        .map(|w| w.path.as_bytes().to_vec())
        .collect();
    for (path, node) in &mut l.tree.0 {
        match &mut node.kind {
            Kind::File { size, sha256: h } => {
                if windowed.contains(path) {
                    *h = windowed_sha256(windows.remove(path).unwrap_or_default());
                } else if *size == 0 {
                    *h = sha256(b"");
                } else if let Some(found) = hashes.remove(path) {
                    *h = found;
                } else {
                    // The dump shows 16 characters of the hash; make the gap visible there too.
                    *h = "unread".repeat(11);
                    l.problems.push(format!(
                        "{}: no content hash (files over {FULL_HASH_LIMIT} bytes need windows, \
                         or sha256sum failed)",
                        lossy(path)
                    ));
                }
            }
            Kind::Symlink(t) => match targets.remove(path) {
                Some(found) => *t = found,
                None => l
                    .problems
                    .push(format!("{}: no readlink output", lossy(path))),
            },
            _ => {}
        }
    }
    if let (Some(a), Some(b)) = (uptimes.first(), uptimes.last()) {
        l.guest_seconds = b - a;
    }
    if xattrs_listed {
        parse_getfattr(&xattr_lines, &mut l);
    }
    check_inodes(&mut l);
    l
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `S ino|rawmode|uid|gid|size|mtime|nlink|major|minor|blocks|path`.
fn parse_stat(rest: &[u8]) -> Option<(Vec<u8>, Node, Stat)> {
    let f: Vec<&[u8]> = rest.splitn(11, |&b| b == b'|').collect();
    if f.len() != 11 {
        return None;
    }
    let text = |i: usize| std::str::from_utf8(f[i]).ok();
    let dec = |i: usize| text(i)?.parse::<u64>().ok();
    let hex = |i: usize| u32::from_str_radix(text(i)?, 16).ok();
    let raw_mode = hex(1)?;
    let (major, minor) = (hex(7)?, hex(8)?);
    let size = dec(4)?;
    let kind = match raw_mode & 0o170000 {
        0o100000 => Kind::File {
            size,
            sha256: String::new(),
        },
        0o040000 => Kind::Dir,
        0o120000 => Kind::Symlink(Vec::new()),
        0o020000 => Kind::CharDev(major, minor),
        0o060000 => Kind::BlockDev(major, minor),
        0o010000 => Kind::Fifo,
        0o140000 => Kind::Socket,
        _ => return None,
    };
    let mut node = Node::new(kind, raw_mode);
    node.uid = u32::try_from(dec(2)?).ok()?;
    node.gid = u32::try_from(dec(3)?).ok()?;
    node.mtime = text(5)?.parse().ok()?;
    let stat = Stat {
        ino: dec(0)?,
        nlink: dec(6)?,
        blocks: dec(9)?,
    };
    Some((tree_key(f[10]), node, stat))
}

/// getfattr `-d -e hex` output: `# file: PATH`, then `name=0xHEX` lines, then a blank line.
/// getfattr writes `./` paths without the prefix and escapes odd bytes as `\ooo`.
fn parse_getfattr(lines: &[&[u8]], l: &mut Listing) {
    let mut path: Option<Vec<u8>> = None;
    for line in lines {
        if let Some(p) = line.strip_prefix(b"# file: ") {
            let p = unescape_octal(p);
            path = Some(if p == b"." { Vec::new() } else { tree_key(&p) });
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let (Some(p), Some(eq)) = (&path, line.iter().position(|&b| b == b'=')) else {
            l.problems
                .push(format!("getfattr: unparsed {:?}", lossy(line)));
            continue;
        };
        let name = unescape_octal(&line[..eq]);
        let value = match &line[eq + 1..] {
            b"\"\"" => Some(Vec::new()),
            v => v.strip_prefix(b"0x").and_then(unhex),
        };
        match (value, l.tree.0.get_mut(p)) {
            (Some(v), Some(node)) => {
                node.xattrs.insert(name, v);
            }
            _ => l.problems.push(format!(
                "getfattr: bad line {:?} for {:?}",
                lossy(line),
                lossy(p)
            )),
        }
    }
}

fn unescape_octal(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let oct = s
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (s[i], oct) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |a, b| a.wrapping_mul(8) + (b - b'0')));
                i += 4;
            }
            (b'\\', None) if s.get(i + 1) == Some(&b'\\') => {
                out.push(b'\\');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

fn unhex(h: &[u8]) -> Option<Vec<u8>> {
    if !h.len().is_multiple_of(2) {
        return None;
    }
    h.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// Derives `link=` groups from inode numbers and reports numbers that the VFS would confuse: a
/// non-directory inode with `nlink > 1` must have exactly `nlink` paths, and every other entry an
/// inode number of its own (the kernel's inode cache is keyed by the number).
fn check_inodes(l: &mut Listing) {
    let mut by_ino: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    for (path, st) in &l.stats {
        by_ino.entry(st.ino).or_default().push(path.clone());
    }
    for (ino, paths) in &by_ino {
        let shared = paths
            .iter()
            .all(|p| l.tree.0.get(p).is_some_and(|n| n.kind != Kind::Dir) && l.stats[p].nlink > 1);
        if paths.len() > 1 && !shared {
            l.problems.push(format!(
                "inode {ino} is shared by {:?} without being a hard link",
                paths.iter().map(|p| lossy(p)).collect::<Vec<_>>()
            ));
        }
        if shared && l.stats[&paths[0]].nlink != paths.len() as u64 {
            l.problems.push(format!(
                "inode {ino} has nlink {} but {} paths: {:?}",
                l.stats[&paths[0]].nlink,
                paths.len(),
                paths.iter().map(|p| lossy(p)).collect::<Vec<_>>()
            ));
        }
    }
    // A directory's nlink may follow either convention (2 + subdirectories, or 2 + entries), but
    // never be lower than 2 + subdirectories: find's leaf optimisation would skip directories.
    let mut subdirs: BTreeMap<&[u8], u64> = BTreeMap::new();
    for (path, node) in &l.tree.0 {
        if node.kind == Kind::Dir && !path.is_empty() {
            let parent = path
                .iter()
                .rposition(|&b| b == b'/')
                .map_or(&b""[..], |i| &path[..i]);
            *subdirs.entry(parent).or_default() += 1;
        }
    }
    for (path, node) in &l.tree.0 {
        let nlink = l.stats.get(path).map_or(0, |s| s.nlink);
        let least = 2 + subdirs.get(&path[..]).copied().unwrap_or(0);
        if node.kind == Kind::Dir && nlink < least {
            l.problems.push(format!(
                "directory /{} has nlink {nlink}, below 2 + subdirectories = {least}",
                lossy(path)
            ));
        }
    }
    let stats = &l.stats;
    let tree = &l.tree;
    let ino_of = |p: &[u8]| {
        let st = stats.get(p)?;
        let node = tree.0.get(p)?;
        (node.kind != Kind::Dir && st.nlink > 1).then_some(st.ino)
    };
    let mut linked = tree.clone();
    linked.set_link_groups(ino_of);
    l.tree = linked;
}
