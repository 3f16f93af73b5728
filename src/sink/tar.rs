//! [`TarSink`]: the merged tree as one plain tar archive (ustar headers, PAX records where
//! ustar cannot hold a value: long names and link targets, large ids, sizes and times,
//! sub-second mtimes, xattrs, sparse maps).
//!
//! ```text
//! Entry ──► [PAX `x` header + records] ──► ustar header ──► data ──► zero padding to 512
//!                                                            │
//!             dense file: reader ─► BufWriter's own buffer ──┘ (io::copy, no extra copy)
//!             sparse file: decimal map block, then only the data regions; hole bytes are
//!                          read from the reader, checked to be zero and dropped
//! finish: two zero blocks, padded to a 10240-byte record (as GNU tar does); flush; commit
//! ```
//!
//! Why ustar plus PAX: every tar reader understands ustar, and a PAX record is added only for a
//! value ustar cannot hold, so an ordinary image gives an ordinary archive. Each entry gets
//! exactly one header sequence: at most one `x` header (with every record it needs), then the
//! ustar header. Names are written without a leading `./` or `/`, directories end in `/`, the
//! root is `./`; uname and gname stay empty (ids are numeric, as in image layers).
//!
//! Sparse files use PAX sparse format 1.0 (`GNU.sparse.major=1`, `minor=0`, `GNU.sparse.name`,
//! `GNU.sparse.realsize`, header name `DIR/GNUSparseFile.0/NAME`), which GNU tar and libarchive
//! extract with the holes kept. A map ending before the file's end gets the terminating
//! `(size, 0)` region that tells GNU tar to extend the file with a hole. A map that is not
//! sorted, overlaps or runs past the file's end is ignored and the file is written dense (the
//! reader yields every byte, so nothing is lost).
//!
//! Names and link targets are bytes: a non-UTF-8 one that needs a PAX record goes there raw, as
//! GNU tar writes it (no `hdrcharset`, which GNU tar does not know and warns about).
//!
//! **Replacement.** A path delivered twice is written twice, the later entry after the earlier
//! one; extractors apply entries in archive order, so the later one wins. One case cannot be
//! expressed: a directory replaced by a non-directory. Tar has no deletion record and the
//! directory's children are already in the archive; GNU tar then refuses to put a file over the
//! non-empty directory unless run with `--recursive-unlink`, and that option also empties a
//! directory whose entry comes after its children, so it suits only archives that list parents
//! first. Extractors made for image layers (containerd's, for one) remove the directory first.
//!
//! **Sockets** have no tar type; they are left out with a [`WarningKind::EntryNotStorable`]
//! warning, as GNU tar and libarchive do, and so are hard links to them.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::sink::{OutputFile, Sink, Summary, Warning, WarningKind};

/// The tar block size: headers, padding and the end-of-archive marker come in blocks.
const BLOCK: u64 = 512;
/// GNU tar's default record (20 blocks); the archive's length is a multiple of it.
const RECORD: u64 = 10240;
/// Output buffer: big enough that file data is read straight into it in large chunks.
const BUFFER: usize = 1 << 20;
/// The 7-digit octal fields (uid, gid, device numbers) hold values below 8^7.
const OCTAL7: u64 = 1 << 21;
/// The 11-digit octal fields (size, mtime) hold values below 8^11 (8 GiB for sizes).
const OCTAL11: u64 = 1 << 33;
/// ustar `name` field length.
const NAME_LEN: usize = 100;
/// ustar `prefix` field length.
const PREFIX_LEN: usize = 155;
/// ustar `linkname` field length.
const LINK_LEN: usize = 100;
/// Zero bytes for padding and the end-of-archive marker.
const ZEROS: [u8; BLOCK as usize] = [0; BLOCK as usize];
/// Scratch buffer for hole bytes, which are read and dropped.
const HOLE_CHUNK: usize = 64 * 1024;

type Output = BufWriter<Box<dyn Write + Send>>;

/// Writes the entry stream as a tar archive.
pub struct TarSink {
    out: Output,
    /// The temporary file renamed into place by `finish`; `None` for stdout or a caller's writer.
    file: Option<OutputFile>,
    /// For standard output: the archive is staged in this anonymous temporary file and copied
    /// out by `finish`, so that a conversion that starts over (a second pass) or fails never
    /// leaves a partial archive on a pipe it cannot take back.
    staged: Option<File>,
    /// What to name in write errors: the output path, `-` or `<writer>`.
    label: PathBuf,
    /// Bytes handed to `out` so far.
    written: u64,
    pax: Pax,
    /// The entry's tar name (`a/b`, `dir/`, `./`), rebuilt for each entry.
    name: Vec<u8>,
    /// The header name of a sparse file (`dir/GNUSparseFile.0/name`).
    alias: Vec<u8>,
    /// The sparse regions of the current file, normalized.
    regions: Vec<(u64, u64)>,
    /// The decimal sparse map written at the start of a sparse file's data.
    map: Vec<u8>,
    hole: Vec<u8>,
    /// Entries left out (sockets), so that hard links to them are left out too.
    left_out: HashSet<EntryPath>,
    summary: Summary,
}

impl TarSink {
    /// Writes to the file `path` (appearing there only when finished), or to standard output
    /// when `path` is `-` (all at once when finished: the archive is staged in a temporary
    /// file in the system's temporary directory until then).
    pub fn create(path: &Path) -> Result<TarSink> {
        if path == Path::new("-") {
            let staged = tempfile::tempfile()
                .map_err(|e| Error::io("create", "a temporary file for standard output", e))?;
            let handle = staged
                .try_clone()
                .map_err(|e| Error::io("duplicate", "a temporary file", e))?;
            let mut sink = TarSink::new(Box::new(handle), None, PathBuf::from("-"));
            sink.staged = Some(staged);
            return Ok(sink);
        }
        let mut file = OutputFile::create(path)?;
        let handle = file
            .file()
            .try_clone()
            .map_err(|e| Error::io("duplicate the handle of", path, e))?;
        Ok(TarSink::new(
            Box::new(handle),
            Some(file),
            path.to_path_buf(),
        ))
    }

    /// Writes to `writer` (for library users: a pipe, a socket, a compressor). Nothing is
    /// committed at `finish` beyond flushing; if the sink is dropped unfinished, data still in
    /// its buffer is discarded.
    pub fn to_writer(writer: Box<dyn Write + Send>) -> TarSink {
        TarSink::new(writer, None, PathBuf::from("<writer>"))
    }

    fn new(writer: Box<dyn Write + Send>, file: Option<OutputFile>, label: PathBuf) -> TarSink {
        TarSink {
            out: BufWriter::with_capacity(BUFFER, writer),
            file,
            staged: None,
            label,
            written: 0,
            pax: Pax::default(),
            name: Vec::with_capacity(256),
            alias: Vec::with_capacity(256),
            regions: Vec::new(),
            map: Vec::new(),
            hole: Vec::new(),
            left_out: HashSet::new(),
            summary: Summary::default(),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out.write_all(bytes).map_err(|e| Error::Output {
            path: self.label.clone(),
            source: e,
        })?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Zero bytes up to the next block boundary.
    fn pad(&mut self) -> Result<()> {
        let rem = self.written % BLOCK;
        if rem != 0 {
            self.put(&ZEROS[..usize::try_from(BLOCK - rem).unwrap_or(0)])?;
        }
        Ok(())
    }

    fn leave_out(&mut self, entry: &Entry, what: &'static str) {
        self.left_out.insert(entry.path.clone());
        self.summary.warnings.push(Warning {
            path: entry.path.clone(),
            kind: WarningKind::EntryNotStorable { what },
        });
    }

    /// Fills `self.regions` with the map's data regions widened to 512-byte boundaries (and
    /// merged where they then touch), plus GNU tar's terminating `(size, 0)` region when the
    /// file ends in a hole; `false` if the map is unusable (the file is then written dense).
    ///
    /// Why widen: GNU tar starts each region's data on a fresh block of the archive (its writer
    /// pads every region to 512 bytes) while libarchive reads the regions back to back; the two
    /// agree only when every region but the last is a whole number of blocks, as GNU tar's own
    /// maps (made of file system blocks) always are. The few hole bytes this pulls into a
    /// region are zeros, read from the reader like any data.
    fn plan_sparse(&mut self, map: &[(u64, u64)], size: u64) -> bool {
        self.regions.clear();
        let mut end = 0;
        for &(offset, len) in map {
            if len == 0 {
                continue;
            }
            match offset.checked_add(len) {
                Some(e) if offset >= end && e <= size => end = e,
                _ => return false,
            }
            let start = offset - offset % BLOCK;
            let stop = end
                .checked_next_multiple_of(BLOCK)
                .unwrap_or(size)
                .min(size);
            match self.regions.last_mut() {
                Some((o, l)) if *o + *l >= start => *l = stop.max(*o + *l) - *o,
                _ => self.regions.push((start, stop - start)),
            }
        }
        let covered = self.regions.last().map_or(0, |&(o, l)| o + l);
        if covered < size || self.regions.is_empty() {
            self.regions.push((size, 0));
        }
        true
    }

    /// One entry: its header sequence, then its data (file content, padded to a block).
    fn write_entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        let (size, sparse) = match &entry.kind {
            EntryKind::File { size, sparse } => {
                let sparse = match sparse {
                    Some(map) => self.plan_sparse(map, *size),
                    None => false,
                };
                (*size, sparse)
            }
            _ => (0, false),
        };
        let header = self.header(entry, size, sparse);
        if !self.pax.is_empty() {
            self.write_pax_header(&entry.path, header.mtime().unwrap_or(0))?;
        }
        self.put(header.as_bytes())?;

        if let EntryKind::File { .. } = entry.kind {
            if sparse {
                let map = std::mem::take(&mut self.map);
                let r = self.put(&map);
                self.map = map;
                r?;
                let regions = std::mem::take(&mut self.regions);
                let r = self.copy_regions(&regions, size, data, &entry.path);
                self.regions = regions;
                r?;
            } else {
                self.copy_exact(data, size, &entry.path, 0)?;
            }
            self.pad()?;
            self.summary.file_bytes += size;
        }
        Ok(())
    }

    /// The entry's ustar header; what it cannot hold goes to `self.pax` (and, for a sparse
    /// file, the map to `self.map`).
    fn header(&mut self, entry: &Entry, size: u64, sparse: bool) -> Header {
        self.pax.clear();
        self.name.clear();
        if entry.path.is_root() {
            self.name.extend_from_slice(b"./");
        } else {
            self.name.extend_from_slice(entry.path.as_bytes());
            if entry.kind.is_dir() {
                self.name.push(b'/');
            }
        }
        let mut header = Header::new_ustar();
        let (kind, dev, link): (_, _, Option<&[u8]>) = match &entry.kind {
            EntryKind::File { .. } => (EntryType::Regular, None, None),
            EntryKind::Dir => (EntryType::Directory, None, None),
            EntryKind::Symlink { target } => (EntryType::Symlink, None, Some(target)),
            EntryKind::Hardlink { target } => (EntryType::Link, None, Some(target.as_bytes())),
            EntryKind::CharDevice { major, minor } => {
                (EntryType::Char, Some((*major, *minor)), None)
            }
            EntryKind::BlockDevice { major, minor } => {
                (EntryType::Block, Some((*major, *minor)), None)
            }
            // Sockets never get here: `entry` leaves them out. The arm only keeps the match
            // total.
            EntryKind::Fifo | EntryKind::Socket => (EntryType::Fifo, None, None),
        };
        header.set_entry_type(kind);

        // The name: the sparse alias, the name itself, or (with a `path` record) its first 100
        // bytes for readers that ignore PAX.
        if sparse {
            sparse_alias(&entry.path, &mut self.alias);
            set_name(&mut header, &self.alias);
        } else if !set_name(&mut header, &self.name) {
            self.pax.add(b"path", &self.name);
            set_truncated_name(&mut header, &self.name);
        }
        if let Some(l) = link {
            if l.len() > LINK_LEN {
                self.pax.add(b"linkpath", l);
            }
            let n = l.len().min(LINK_LEN);
            header.as_old_mut().linkname[..n].copy_from_slice(&l[..n]);
        }

        // Stored size: the data as it sits in the archive (map block + regions when sparse).
        let stored = if sparse {
            self.pax.add(b"GNU.sparse.major", b"1");
            self.pax.add(b"GNU.sparse.minor", b"0");
            self.pax.add(b"GNU.sparse.name", entry.path.as_bytes());
            self.pax.add_num(b"GNU.sparse.realsize", size);
            self.write_map()
        } else {
            size
        };
        if stored < OCTAL11 {
            header.set_size(stored);
        } else {
            self.pax.add_num(b"size", stored);
            header.set_size(0);
        }

        set_ids_and_time(&mut header, &mut self.pax, &entry.meta);
        if let Some(u) = header.as_ustar_mut() {
            let (major, minor) = dev.unwrap_or((0, 0));
            u.set_device_major(self.pax.octal7(b"SCHILY.devmajor", major));
            u.set_device_minor(self.pax.octal7(b"SCHILY.devminor", minor));
        }
        for x in &entry.meta.xattrs {
            self.pax.add_xattr(&x.name, &x.value);
        }
        header.set_cksum();
        header
    }

    /// Fills `self.map` with the decimal sparse map of `self.regions`, padded to a block;
    /// returns the entry's stored size (map + data regions).
    fn write_map(&mut self) -> u64 {
        self.map.clear();
        write_decimal(&mut self.map, self.regions.len() as u64);
        self.map.push(b'\n');
        let mut data_len = 0u64;
        for &(offset, len) in &self.regions {
            write_decimal(&mut self.map, offset);
            self.map.push(b'\n');
            write_decimal(&mut self.map, len);
            self.map.push(b'\n');
            data_len += len;
        }
        self.map
            .resize(self.map.len().next_multiple_of(BLOCK as usize), 0);
        self.map.len() as u64 + data_len
    }

    /// The `x` header carrying `self.pax`, and the records themselves.
    fn write_pax_header(&mut self, path: &EntryPath, mtime: u64) -> Result<()> {
        let mut x = Header::new_ustar();
        x.set_entry_type(EntryType::XHeader);
        pax_header_name(&mut x, path);
        x.set_mode(0o644);
        x.set_uid(0);
        x.set_gid(0);
        x.set_mtime(mtime);
        x.set_size(self.pax.buf.len() as u64);
        if let Some(u) = x.as_ustar_mut() {
            u.set_device_major(0);
            u.set_device_minor(0);
        }
        x.set_cksum();
        self.put(x.as_bytes())?;
        let records = std::mem::take(&mut self.pax.buf);
        let r = self.put(&records);
        self.pax.buf = records;
        r?;
        self.pad()
    }

    /// Copies `regions` of the file from `data`, reading and dropping the holes between them.
    fn copy_regions(
        &mut self,
        regions: &[(u64, u64)],
        size: u64,
        data: &mut dyn Read,
        path: &EntryPath,
    ) -> Result<()> {
        let mut pos = 0;
        for &(offset, len) in regions {
            self.skip_hole(data, pos, offset, size, path)?;
            self.copy_exact(data, len, path, offset)?;
            pos = offset + len;
        }
        self.skip_hole(data, pos, size, size, path)
    }

    /// Copies exactly `n` bytes from `data` through the output buffer (io::copy reads straight
    /// into a BufWriter's spare capacity).
    fn copy_exact(&mut self, data: &mut dyn Read, n: u64, path: &EntryPath, at: u64) -> Result<()> {
        let mut src = Source {
            inner: data,
            failed: false,
        };
        match io::copy(&mut (&mut src).take(n), &mut self.out) {
            Ok(c) if c == n => {
                self.written += n;
                Ok(())
            }
            Ok(c) => Err(data_short(path, at + c)),
            Err(e) if src.failed => Err(data_error(path, e)),
            Err(e) => Err(Error::Output {
                path: self.label.clone(),
                source: e,
            }),
        }
    }

    /// Reads the hole bytes `from..to` and checks that they are zero.
    fn skip_hole(
        &mut self,
        data: &mut dyn Read,
        from: u64,
        to: u64,
        size: u64,
        path: &EntryPath,
    ) -> Result<()> {
        if self.hole.is_empty() {
            self.hole = vec![0; HOLE_CHUNK];
        }
        let mut pos = from;
        while pos < to {
            let want = usize::try_from((to - pos).min(HOLE_CHUNK as u64)).unwrap_or(HOLE_CHUNK);
            let buf = &mut self.hole[..want];
            match data.read(buf) {
                Ok(0) => return Err(data_short(path, pos.min(size))),
                Ok(n) => {
                    // The OR-fold is fast; the position is only needed for the error.
                    let stray = (!is_zero(&buf[..n]))
                        .then(|| buf[..n].iter().position(|&b| b != 0))
                        .flatten();
                    if let Some(i) = stray {
                        return Err(Error::SparseHoleNotZero {
                            path: path.shown(),
                            offset: pos + i as u64,
                        });
                    }
                    pos += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(data_error(path, e)),
            }
        }
        Ok(())
    }
}

impl Sink for TarSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        match &entry.kind {
            EntryKind::Socket => {
                self.leave_out(entry, "socket");
                return Ok(());
            }
            EntryKind::Hardlink { target } if self.left_out.contains(target) => {
                self.leave_out(entry, "hard link to a socket");
                return Ok(());
            }
            _ => {}
        }
        self.write_entry(entry, data)?;
        self.summary.entries += 1;
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<Summary> {
        // End of archive: two zero blocks, then zeros up to the end of the 10240-byte record.
        let end = (self.written + 2 * BLOCK).next_multiple_of(RECORD);
        while self.written < end {
            self.put(&ZEROS)?;
        }
        let out = std::mem::replace(&mut self.out, discarding_writer());
        out.into_inner().map_err(|e| Error::Output {
            path: self.label.clone(),
            source: e.into_error(),
        })?;
        if let Some(file) = self.file.take() {
            file.commit()?;
        }
        if let Some(staged) = self.staged.take() {
            copy_to_stdout(staged)?;
        }
        let mut summary = std::mem::take(&mut self.summary);
        summary.output_bytes = self.written;
        Ok(summary)
    }
}

impl Drop for TarSink {
    /// Discards buffered data instead of flushing it: an unfinished archive must not be
    /// extended (stdout) and a drop must not block on a full pipe. An unfinished output file is
    /// deleted by its [`OutputFile`].
    fn drop(&mut self) {
        let out = std::mem::replace(&mut self.out, discarding_writer());
        let _ = out.into_parts();
    }
}

/// Copies the staged archive to standard output.
fn copy_to_stdout(mut staged: File) -> Result<()> {
    let failed = |e| Error::Output {
        path: PathBuf::from("-"),
        source: e,
    };
    io::Seek::seek(&mut staged, io::SeekFrom::Start(0)).map_err(failed)?;
    let fd = io::stdout()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| Error::io("duplicate", "standard output", e))?;
    let mut out = File::from(fd);
    io::copy(&mut staged, &mut out).map_err(failed)?;
    out.flush().map_err(failed)
}

fn discarding_writer() -> Output {
    BufWriter::with_capacity(0, Box::new(io::sink()))
}

/// The merge's data reader, remembering whether an error came from it (rather than from the
/// output) when `io::copy` reports one.
struct Source<'a> {
    inner: &'a mut dyn Read,
    failed: bool,
}

impl Read for Source<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed = true)
    }
}

/// Turns an error from a file's data reader into the pipeline's error, with the entry's path.
pub(super) fn data_error(path: &EntryPath, e: io::Error) -> Error {
    Error::from_io(e, |source| Error::Tar { source }).in_entry(path.as_bytes())
}

/// The error for a data reader that ends before the file's size.
pub(super) fn data_short(path: &EntryPath, at: u64) -> Error {
    let source = io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("file data ended after {at} bytes, before the size in its entry"),
    );
    Error::Tar { source }.in_entry(path.as_bytes())
}

/// Whether every byte is zero (an OR over the slice vectorizes well).
pub(super) fn is_zero(bytes: &[u8]) -> bool {
    bytes.iter().fold(0u8, |acc, &b| acc | b) == 0
}

/// Mode, uid, gid and mtime, each in the header when ustar holds it, else in a PAX record
/// (with a clamped or zero value left in the header for readers that ignore PAX).
fn set_ids_and_time(header: &mut Header, pax: &mut Pax, meta: &Metadata) {
    header.set_mode(meta.mode & 0o7777);
    header.set_uid(u64::from(pax.octal7(b"uid", meta.uid)));
    header.set_gid(u64::from(pax.octal7(b"gid", meta.gid)));
    let nsec = meta.mtime_nsec.min(999_999_999);
    let max = i64::try_from(OCTAL11 - 1).unwrap_or(i64::MAX);
    if nsec != 0 || !(0..=max).contains(&meta.mtime) {
        let mut buf = [0u8; 32];
        let n = pax_time(&mut buf, meta.mtime, nsec);
        pax.add(b"mtime", &buf[..n]);
    }
    header.set_mtime(u64::try_from(meta.mtime.clamp(0, max)).unwrap_or(0));
}

/// Formats a time as PAX writes it: `S`, `S.NNNNNNNNN`, or for times before the epoch the
/// negative decimal (`-1.5` is 1.5 s before the epoch: seconds -2, nanoseconds 500000000).
fn pax_time(buf: &mut [u8; 32], secs: i64, nsec: u32) -> usize {
    let mut w = &mut buf[..];
    let r = if nsec == 0 {
        write!(w, "{secs}")
    } else if secs >= 0 {
        write!(w, "{secs}.{nsec:09}")
    } else {
        write!(
            w,
            "-{}.{:09}",
            (secs + 1).unsigned_abs(),
            1_000_000_000 - nsec
        )
    };
    // 32 bytes hold any i64 with nine decimals, so the write cannot run out of room.
    debug_assert!(r.is_ok());
    32 - w.len()
}

/// Puts `name` in the ustar name field, or splits it at a `/` into prefix (≤ 155 bytes) and
/// name (1–100 bytes); `false` when neither fits.
fn set_name(header: &mut Header, name: &[u8]) -> bool {
    let Some(u) = header.as_ustar_mut() else {
        return false;
    };
    if name.len() <= NAME_LEN {
        u.name[..name.len()].copy_from_slice(name);
        return true;
    }
    let first = name.len() - NAME_LEN - 1;
    let last = PREFIX_LEN.min(name.len() - 2);
    if first > last {
        return false;
    }
    match name[first..=last].iter().position(|&b| b == b'/') {
        Some(i) => {
            let split = first + i;
            u.prefix[..split].copy_from_slice(&name[..split]);
            u.name[..name.len() - split - 1].copy_from_slice(&name[split + 1..]);
            true
        }
        None => false,
    }
}

/// The first 100 bytes of a name carried in a `path` record, for readers that ignore PAX.
fn set_truncated_name(header: &mut Header, name: &[u8]) {
    let n = name.len().min(NAME_LEN);
    header.as_old_mut().name[..n].copy_from_slice(&name[..n]);
}

/// The header name of a sparse file, `DIR/GNUSparseFile.0/NAME` as GNU tar writes it (process
/// id 0 for reproducible output), shortened to `GNUSparseFile.0/NAM` when it would not fit.
fn sparse_alias(path: &EntryPath, out: &mut Vec<u8>) {
    const TAG: &[u8] = b"GNUSparseFile.0/";
    let bytes = path.as_bytes();
    let (dir, base) = match bytes.iter().rposition(|&b| b == b'/') {
        Some(i) => (&bytes[..=i], &bytes[i + 1..]),
        None => (&bytes[..0], bytes),
    };
    out.clear();
    out.extend_from_slice(dir);
    out.extend_from_slice(TAG);
    out.extend_from_slice(base);
    if out.len() > NAME_LEN && !fits_split(out) {
        out.clear();
        out.extend_from_slice(TAG);
        out.extend_from_slice(&base[..base.len().min(NAME_LEN - TAG.len())]);
    }
}

fn fits_split(name: &[u8]) -> bool {
    set_name(&mut Header::new_ustar(), name)
}

/// The name of an `x` header, `PaxHeaders/NAME` (readers use it only to report problems).
fn pax_header_name(header: &mut Header, path: &EntryPath) {
    const TAG: &[u8] = b"PaxHeaders/";
    let base = path.file_name().unwrap_or(b".");
    let n = base.len().min(NAME_LEN - TAG.len());
    let field = &mut header.as_old_mut().name;
    field[..TAG.len()].copy_from_slice(TAG);
    field[TAG.len()..TAG.len() + n].copy_from_slice(&base[..n]);
}

fn write_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let s = decimal(&mut digits, n);
    out.extend_from_slice(s);
}

fn decimal(buf: &mut [u8; 20], mut n: u64) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// The records of one PAX extended header, in a buffer reused for every entry.
#[derive(Default)]
struct Pax {
    buf: Vec<u8>,
    key: Vec<u8>,
}

impl Pax {
    fn clear(&mut self) {
        self.buf.clear();
    }

    fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Appends `LEN KEY=VALUE\n`, where LEN counts the whole record including its own digits.
    /// Values are raw bytes: readers take exactly LEN bytes, so binary xattr values survive.
    fn add(&mut self, key: &[u8], value: &[u8]) {
        let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
        let mut width = count_digits(rest as u64);
        while count_digits((rest + width) as u64) > width {
            width += 1;
        }
        write_decimal(&mut self.buf, (rest + width) as u64);
        self.buf.push(b' ');
        self.buf.extend_from_slice(key);
        self.buf.push(b'=');
        self.buf.extend_from_slice(value);
        self.buf.push(b'\n');
    }

    fn add_num(&mut self, key: &[u8], n: u64) {
        let mut digits = [0u8; 20];
        let s = decimal(&mut digits, n);
        self.add(key, s);
    }

    /// `value` if a 7-digit octal field holds it; otherwise records it and returns 0 for the
    /// header field.
    fn octal7(&mut self, key: &[u8], value: u32) -> u32 {
        if u64::from(value) < OCTAL7 {
            value
        } else {
            self.add_num(key, u64::from(value));
            0
        }
    }

    /// `SCHILY.xattr.NAME=VALUE`, with `%` and `=` in NAME written `%25` and `%3D` as GNU tar
    /// does (a raw `=` would end the key early).
    fn add_xattr(&mut self, name: &[u8], value: &[u8]) {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.extend_from_slice(b"SCHILY.xattr.");
        for &b in name {
            match b {
                b'%' => key.extend_from_slice(b"%25"),
                b'=' => key.extend_from_slice(b"%3D"),
                b => key.push(b),
            }
        }
        self.add(&key, value);
        self.key = key;
    }
}

fn count_digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let mut p = Pax::default();
        p.add(key.as_bytes(), value);
        p.buf
    }

    #[test]
    fn pax_record_length_counts_its_own_digits() {
        assert_eq!(record("mtime", b"-1.5"), b"14 mtime=-1.5\n");
        assert_eq!(record("a", b"1234"), b"9 a=1234\n");
        // One more byte makes 10, which needs a second digit: 11.
        assert_eq!(record("a", b"12345"), b"11 a=12345\n");
    }

    #[test]
    fn pax_times_before_and_after_the_epoch() {
        let t = |s, ns| {
            let mut b = [0u8; 32];
            let n = pax_time(&mut b, s, ns);
            String::from_utf8(b[..n].to_vec()).unwrap()
        };
        assert_eq!(t(1700000000, 0), "1700000000");
        assert_eq!(t(1, 5), "1.000000005");
        assert_eq!(t(-2, 500_000_000), "-1.500000000");
        assert_eq!(t(-1, 1), "-0.999999999");
        assert_eq!(t(-5, 0), "-5");
        assert_eq!(t(i64::MIN, 999_999_999).len(), 30);
    }

    #[test]
    fn names_split_at_a_slash_or_not_at_all() {
        let mut h = Header::new_ustar();
        let long = [vec![b'p'; 120], b"/".to_vec(), vec![b'n'; 90]].concat();
        assert!(set_name(&mut h, &long));
        assert_eq!(&*h.path_bytes(), &long[..]);
        let mut h = Header::new_ustar();
        assert!(!set_name(&mut h, &[b'x'; 101]));
        // The part after the split may not be empty (a directory's trailing slash).
        let mut h = Header::new_ustar();
        let dir = [vec![b'd'; 101], b"/".to_vec()].concat();
        assert!(!set_name(&mut h, &dir));
    }

    #[test]
    fn sparse_plan_adds_terminator_and_rejects_bad_maps() {
        let mut s = TarSink::to_writer(Box::new(io::sink()));
        // Widened to blocks, merged when they touch, terminated when the file ends in a hole.
        assert!(s.plan_sparse(&[(0, 10), (100, 5), (2000, 5000)], 10_000));
        assert_eq!(s.regions, [(0, 512), (1536, 5632), (10_000, 0)]);
        assert!(s.plan_sparse(&[(990, 10)], 1000));
        assert_eq!(s.regions, [(512, 488)]);
        assert!(s.plan_sparse(&[(0, 0)], 1000));
        assert_eq!(s.regions, [(1000, 0)]);
        assert!(s.plan_sparse(&[], 0));
        assert_eq!(s.regions, [(0, 0)]);
        assert!(!s.plan_sparse(&[(100, 5), (0, 10)], 1000));
        assert!(!s.plan_sparse(&[(995, 10)], 1000));
        assert!(!s.plan_sparse(&[(u64::MAX, 2)], 1000));
    }
}
