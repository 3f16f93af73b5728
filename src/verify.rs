//! `verify`: compare an output (squashfs image, tar archive or directory) with a reference
//! directory, entry by entry, without mounting anything.
//!
//! Each side is read into a map from path to a `Record` (type, permissions, ownership, time,
//! size and sha256 of content, symlink target, device numbers, xattrs, hard-link group), then the
//! two maps are walked together. The squashfs side is read in-process by
//! [`SquashfsReader`](crate::squashfs::reader::SquashfsReader), the tar side by the same tar
//! parser the layers go through (so PAX, sparse and long names are understood), the directory
//! side with `lstat`, never following symlinks.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::entry::{Entry, EntryKind, Xattr};
use crate::error::{Error, Result};
use crate::options::ImageSpec;
use crate::path::EntryPath;

/// What to compare besides type, permissions, content, targets and device numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Compare uid and gid. By default, on.
    pub ownership: bool,
    /// Compare modification times (whole seconds; squashfs keeps no more). By default, on.
    pub mtime: bool,
    /// Compare extended attributes. By default, on.
    pub xattrs: bool,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            ownership: true,
            mtime: true,
            xattrs: true,
        }
    }
}

/// The outcome of [`verify`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Entries found in the output.
    pub output_entries: usize,
    /// Entries found in the reference.
    pub reference_entries: usize,
    /// Every difference, in path order.
    pub diffs: Vec<Diff>,
}

impl VerifyReport {
    /// Whether output and reference agree.
    pub fn is_clean(&self) -> bool {
        self.diffs.is_empty()
    }
}

/// One difference between output and reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diff {
    /// The path concerned.
    pub path: EntryPath,
    /// How it differs.
    pub kind: DiffKind,
}

/// How an entry differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DiffKind {
    /// Present only in the output (`+`).
    OnlyInOutput,
    /// Present only in the reference (`-`).
    OnlyInReference,
    /// Present in both with different attributes (`~`).
    Differs(Vec<FieldDiff>),
}

/// One attribute that differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldDiff {
    /// The attribute: `type`, `mode`, `uid`, `gid`, `mtime`, `size`, `sha256`, `target`,
    /// `device`, `xattrs` or `link`.
    pub field: &'static str,
    /// Its value in the output.
    pub output: String,
    /// Its value in the reference.
    pub reference: String,
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DiffKind::OnlyInOutput => write!(f, "+ {}", self.path.display()),
            DiffKind::OnlyInReference => write!(f, "- {}", self.path.display()),
            DiffKind::Differs(fields) => {
                write!(f, "~ {}:", self.path.display())?;
                for d in fields {
                    write!(f, " {} {} != {}", d.field, d.output, d.reference)?;
                }
                Ok(())
            }
        }
    }
}

/// The comparable description of one entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) kind: &'static str,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) mtime: i64,
    pub(crate) size: u64,
    pub(crate) sha256: Option<[u8; 32]>,
    pub(crate) target: Vec<u8>,
    pub(crate) device: (u32, u32),
    pub(crate) xattrs: Vec<Xattr>,
    /// An identity shared by the names of one inode (0: none known).
    pub(crate) inode: u64,
}

impl Record {
    /// The record of a non-file entry, or of a file whose content is hashed separately.
    pub(crate) fn from_entry(e: &Entry) -> Record {
        let (kind, target, device, size) = match &e.kind {
            EntryKind::File { size, .. } => ("file", Vec::new(), (0, 0), *size),
            EntryKind::Dir => ("dir", Vec::new(), (0, 0), 0),
            EntryKind::Symlink { target } => ("symlink", target.clone(), (0, 0), 0),
            EntryKind::Hardlink { .. } => ("hardlink", Vec::new(), (0, 0), 0),
            EntryKind::CharDevice { major, minor } => ("chardev", Vec::new(), (*major, *minor), 0),
            EntryKind::BlockDevice { major, minor } => {
                ("blockdev", Vec::new(), (*major, *minor), 0)
            }
            EntryKind::Fifo => ("fifo", Vec::new(), (0, 0), 0),
            EntryKind::Socket => ("socket", Vec::new(), (0, 0), 0),
        };
        let mut xattrs = e.meta.xattrs.clone();
        xattrs.sort();
        Record {
            kind,
            mode: if kind == "symlink" {
                0o777
            } else {
                e.meta.mode & 0o7777
            },
            uid: e.meta.uid,
            gid: e.meta.gid,
            mtime: e.meta.mtime,
            size,
            sha256: None,
            target,
            device,
            xattrs,
            inode: 0,
        }
    }
}

/// A tree read from one side: path bytes → record.
pub(crate) type Records = BTreeMap<Vec<u8>, Record>;

/// Compares the output `spec` describes with the directory `reference`.
pub fn verify(spec: &ImageSpec, reference: &Path, options: &VerifyOptions) -> Result<VerifyReport> {
    let output = match spec {
        ImageSpec::Dir { path } => read_dir_tree(path)?,
        ImageSpec::Tar { path } => read_tar(path)?,
        ImageSpec::Squashfs { path } => read_squashfs(path)?,
    };
    let reference = read_dir_tree(reference)?;
    Ok(compare(&output, &reference, options))
}

/// Hashes everything `r` yields.
pub(crate) fn sha256_of(r: &mut dyn Read) -> io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().into())
}

/// Reads a directory tree with `lstat`, never following symlinks.
pub(crate) fn read_dir_tree(root: &Path) -> Result<Records> {
    let mut out = Records::new();
    let md = fs::symlink_metadata(root).map_err(|e| Error::io("read", root, e))?;
    if !md.is_dir() {
        return Err(Error::io(
            "read directory",
            root,
            io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
        ));
    }
    let mut stack = vec![(root.to_path_buf(), Vec::new())];
    while let Some((dir_path, rel)) = stack.pop() {
        let md = fs::symlink_metadata(&dir_path).map_err(|e| Error::io("lstat", &dir_path, e))?;
        out.insert(rel.clone(), record_of(&dir_path, &md)?);
        if !md.is_dir() {
            continue;
        }
        let rd = fs::read_dir(&dir_path).map_err(|e| Error::io("list", &dir_path, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("list", &dir_path, e))?;
            let name = ent.file_name();
            let mut child = rel.clone();
            if !child.is_empty() {
                child.push(b'/');
            }
            child.extend_from_slice(name.as_bytes());
            stack.push((ent.path(), child));
        }
    }
    Ok(out)
}

fn record_of(path: &Path, md: &fs::Metadata) -> Result<Record> {
    let ft = md.file_type();
    let dev = md.rdev();
    let device = (
        (((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff)) as u32,
        (((dev >> 12) & 0xffff_ff00) | (dev & 0xff)) as u32,
    );
    let (kind, target, device, size, sha256) = if ft.is_dir() {
        ("dir", Vec::new(), (0, 0), 0, None)
    } else if ft.is_file() {
        let mut f = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
        let h = sha256_of(&mut f).map_err(|e| Error::io("read", path, e))?;
        ("file", Vec::new(), (0, 0), md.len(), Some(h))
    } else if ft.is_symlink() {
        let t = fs::read_link(path).map_err(|e| Error::io("readlink", path, e))?;
        (
            "symlink",
            t.as_os_str().as_bytes().to_vec(),
            (0, 0),
            0,
            None,
        )
    } else if ft.is_char_device() {
        ("chardev", Vec::new(), device, 0, None)
    } else if ft.is_block_device() {
        ("blockdev", Vec::new(), device, 0, None)
    } else if ft.is_fifo() {
        ("fifo", Vec::new(), (0, 0), 0, None)
    } else {
        ("socket", Vec::new(), (0, 0), 0, None)
    };
    Ok(Record {
        kind,
        mode: if kind == "symlink" {
            0o777
        } else {
            md.mode() & 0o7777
        },
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        size,
        sha256,
        target,
        device,
        xattrs: read_xattrs(path)?,
        inode: if !ft.is_dir() && md.nlink() > 1 {
            // Unique across the tree: device and inode number together.
            (md.dev() << 40) ^ md.ino()
        } else {
            0
        },
    })
}

fn read_xattrs(path: &Path) -> Result<Vec<Xattr>> {
    let mut names = vec![0u8; 4096];
    let n = loop {
        match rustix::fs::llistxattr(path, &mut names) {
            Ok(n) => break n,
            Err(rustix::io::Errno::RANGE) if names.len() < (1 << 20) => {
                let len = names.len() * 4;
                names.resize(len, 0);
            }
            // No xattr support on this file system (or this file type): nothing to compare.
            Err(rustix::io::Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list xattrs of", path, e.into())),
        }
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let Ok(cname) = std::ffi::CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 4096];
        let len = loop {
            match rustix::fs::lgetxattr(path, cname.as_c_str(), &mut value) {
                Ok(len) => break len,
                Err(rustix::io::Errno::RANGE) if value.len() < (1 << 20) => {
                    let len = value.len() * 4;
                    value.resize(len, 0);
                }
                Err(e) => return Err(Error::io("read xattr of", path, e.into())),
            }
        };
        value.truncate(len);
        out.push(Xattr {
            name: name.to_vec(),
            value,
        });
    }
    out.sort();
    Ok(out)
}

/// Reads a squashfs image in-process with [`SquashfsReader`](crate::squashfs::SquashfsReader).
pub(crate) fn read_squashfs(path: &Path) -> Result<Records> {
    let reader = crate::squashfs::SquashfsReader::open(path)?;
    let mut out = Records::new();
    reader.walk(|p, entry| {
        let e = Entry {
            path: p.clone(),
            kind: entry.kind.clone(),
            meta: entry.meta.clone(),
        };
        let mut r = Record::from_entry(&e);
        if !entry.is_dir() && entry.nlink > 1 {
            r.inode = u64::from(entry.inode_number);
        }
        if let EntryKind::File { .. } = entry.kind {
            let mut h = HashWriter(Sha256::new());
            reader.read_file(entry, &mut h)?;
            r.sha256 = Some(h.0.finalize().into());
        }
        out.insert(p.as_bytes().to_vec(), r);
        Ok(())
    })?;
    Ok(out)
}

struct HashWriter(Sha256);

impl io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads a plain tar archive the way extraction would see it: a later entry for a path replaces
/// an earlier one; hard links share their target's identity.
pub(crate) fn read_tar(path: &Path) -> Result<Records> {
    let file = fs::File::open(path).map_err(|e| Error::io("open", path, e))?;
    let mut reader = io::BufReader::with_capacity(1 << 20, file);
    let mut out = Records::new();
    let mut next_inode = 1u64;
    crate::tar_reader::for_each_entry(&mut reader, &mut |e, data| {
        let key = e.path.as_bytes().to_vec();
        if !e.kind.is_dir() {
            if let Some(old) = out.get(&key) {
                if old.kind == "dir" {
                    let prefix = [key.as_slice(), b"/"].concat();
                    out.retain(|k, _| !k.starts_with(&prefix));
                }
            }
        }
        let record = match &e.kind {
            EntryKind::Hardlink { target } => {
                let Some(t) = out.get_mut(target.as_bytes()) else {
                    return Err(Error::HardlinkTargetMissing {
                        link: e.path.shown(),
                        target: target.shown(),
                    });
                };
                if t.inode == 0 {
                    t.inode = next_inode;
                    next_inode += 1;
                }
                t.clone()
            }
            EntryKind::File { .. } => {
                let mut r = Record::from_entry(&e);
                r.sha256 = Some(sha256_of(data).map_err(|err| Error::Tar { source: err })?);
                r
            }
            _ => Record::from_entry(&e),
        };
        out.insert(key, record);
        Ok(())
    })?;
    Ok(out)
}

/// Walks both sides in path order.
pub(crate) fn compare(output: &Records, reference: &Records, o: &VerifyOptions) -> VerifyReport {
    let out_links = link_groups(output);
    let ref_links = link_groups(reference);
    let mut diffs = Vec::new();
    let mut a = output.iter().peekable();
    let mut b = reference.iter().peekable();
    loop {
        let (kind, key) = match (a.peek(), b.peek()) {
            (None, None) => break,
            (Some((ka, _)), None) => (DiffKind::OnlyInOutput, (*ka).clone()),
            (None, Some((kb, _))) => (DiffKind::OnlyInReference, (*kb).clone()),
            (Some((ka, ra)), Some((kb, rb))) => match ka.cmp(kb) {
                std::cmp::Ordering::Less => (DiffKind::OnlyInOutput, (*ka).clone()),
                std::cmp::Ordering::Greater => (DiffKind::OnlyInReference, (*kb).clone()),
                std::cmp::Ordering::Equal => {
                    let fields = differences(ka, ra, rb, &out_links, &ref_links, o);
                    let key = (*ka).clone();
                    a.next();
                    b.next();
                    if !fields.is_empty() {
                        diffs.push(Diff {
                            path: EntryPath::new(&key).unwrap_or_default(),
                            kind: DiffKind::Differs(fields),
                        });
                    }
                    continue;
                }
            },
        };
        match kind {
            DiffKind::OnlyInOutput => a.next(),
            _ => b.next(),
        };
        diffs.push(Diff {
            path: EntryPath::new(&key).unwrap_or_default(),
            kind,
        });
    }
    VerifyReport {
        output_entries: output.len(),
        reference_entries: reference.len(),
        diffs,
    }
}

/// For each path that shares an inode with others, the first path of its group.
fn link_groups(records: &Records) -> BTreeMap<&[u8], &[u8]> {
    let mut first: BTreeMap<u64, &[u8]> = BTreeMap::new();
    let mut count: BTreeMap<u64, usize> = BTreeMap::new();
    for (k, r) in records {
        if r.inode != 0 {
            first.entry(r.inode).or_insert(k.as_slice());
            *count.entry(r.inode).or_default() += 1;
        }
    }
    records
        .iter()
        .filter(|(_, r)| r.inode != 0 && count[&r.inode] > 1)
        .map(|(k, r)| (k.as_slice(), first[&r.inode]))
        .collect()
}

fn differences(
    key: &[u8],
    a: &Record,
    b: &Record,
    la: &BTreeMap<&[u8], &[u8]>,
    lb: &BTreeMap<&[u8], &[u8]>,
    o: &VerifyOptions,
) -> Vec<FieldDiff> {
    let mut d = Vec::new();
    let mut field = |name: &'static str, x: String, y: String| {
        if x != y {
            d.push(FieldDiff {
                field: name,
                output: x,
                reference: y,
            });
        }
    };
    field("type", a.kind.into(), b.kind.into());
    if a.kind != b.kind {
        return d;
    }
    field("mode", format!("{:04o}", a.mode), format!("{:04o}", b.mode));
    if o.ownership {
        field("uid", a.uid.to_string(), b.uid.to_string());
        field("gid", a.gid.to_string(), b.gid.to_string());
    }
    if o.mtime {
        field("mtime", a.mtime.to_string(), b.mtime.to_string());
    }
    if a.kind == "file" {
        field("size", a.size.to_string(), b.size.to_string());
        field("sha256", hex(a.sha256), hex(b.sha256));
    }
    field(
        "target",
        String::from_utf8_lossy(&a.target).into_owned(),
        String::from_utf8_lossy(&b.target).into_owned(),
    );
    field(
        "device",
        format!("{},{}", a.device.0, a.device.1),
        format!("{},{}", b.device.0, b.device.1),
    );
    if o.xattrs {
        field("xattrs", xattrs(&a.xattrs), xattrs(&b.xattrs));
    }
    let show = |m: &BTreeMap<&[u8], &[u8]>| {
        m.get(key)
            .map(|p| format!("/{}", String::from_utf8_lossy(p)))
            .unwrap_or_else(|| "(none)".into())
    };
    field("link", show(la), show(lb));
    d
}

fn hex(h: Option<[u8; 32]>) -> String {
    match h {
        Some(h) => h[..8].iter().map(|b| format!("{b:02x}")).collect(),
        None => "-".into(),
    }
}

fn xattrs(x: &[Xattr]) -> String {
    let parts: Vec<String> = x
        .iter()
        .map(|x| {
            let v: String = x.value.iter().map(|b| format!("{b:02x}")).collect();
            format!("{}={v}", String::from_utf8_lossy(&x.name))
        })
        .collect();
    format!("[{}]", parts.join(","))
}
