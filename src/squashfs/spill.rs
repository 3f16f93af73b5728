//! [`Spill`]: the squashfs tree once it outgrows the memory budget — sorted runs of path records
//! in one unnamed temporary file beside the output, merged back in path order at the end and
//! written by a streaming walk ([`super::spill_walk`]).
//!
//! A record is (key, seq, kind, metadata). The key is the path with its components separated by
//! NUL bytes, which no name holds, so the unsigned byte order of keys is the depth-first order
//! the tables are written in: a directory, then everything beneath it, children in name order
//! (with `/` as separator, `a-b` would sort between `a` and `a/x`). `seq` is the arrival order;
//! the records of one path come out in that order, which lets the walk replay the in-memory
//! tree's replacement rules exactly. The file is unnamed (`O_TMPFILE` or unlinked at once), so
//! it is gone after success, error, Ctrl-C or a kill.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use hashbrown::HashMap;

use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::squashfs::tree::NodeMeta;

/// What a record holds at its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RecKind {
    /// A directory.
    Dir,
    /// A regular file: its placement id in the [`FileStore`](super::block_writer::FileStore).
    File(u32),
    /// A symlink and its target.
    Symlink(Box<[u8]>),
    /// A character device (`new_encode_dev` number).
    CharDev(u32),
    /// A block device.
    BlockDev(u32),
    /// A named pipe.
    Fifo,
    /// A socket.
    Socket,
    /// A hard link to the record with this `seq`, resolved when the link arrived.
    Link(u64),
    /// A hard link whose target path is looked up at the end ([`Spill::pending`]).
    PendingLink,
}

impl RecKind {
    fn tag(&self) -> u8 {
        match self {
            RecKind::Dir => 0,
            RecKind::File(_) => 1,
            RecKind::Symlink(_) => 2,
            RecKind::CharDev(_) => 3,
            RecKind::BlockDev(_) => 4,
            RecKind::Fifo => 5,
            RecKind::Socket => 6,
            RecKind::Link(_) => 7,
            RecKind::PendingLink => 8,
        }
    }
}

/// One path record.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    /// The path, components separated by NUL.
    pub key: Vec<u8>,
    /// Arrival order (unique).
    pub seq: u64,
    pub kind: RecKind,
    pub meta: NodeMeta,
}

impl Record {
    pub(crate) fn empty() -> Record {
        Record {
            key: Vec::new(),
            seq: 0,
            kind: RecKind::Fifo,
            meta: NodeMeta::implicit_dir(),
        }
    }

    fn order(&self, other: &Record) -> Ordering {
        self.key.cmp(&other.key).then(self.seq.cmp(&other.seq))
    }
}

/// The key of `path`: its components joined by NUL.
pub(crate) fn key_of(path: &EntryPath) -> Vec<u8> {
    path.as_bytes()
        .iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect()
}

/// A hard link that arrived after the spill began: its target path is looked up in the walk.
#[derive(Debug)]
pub(crate) struct PendingLink {
    /// The link record's `seq`.
    pub seq: u64,
    /// The link's path (for errors).
    pub link: EntryPath,
    /// The target's path.
    pub target: EntryPath,
}

/// A leaf that hard links point at: its data, kept in memory since its names may be met
/// before or after its own record, or never (a target whose name was replaced).
#[derive(Clone, Debug)]
pub(crate) struct Canon {
    pub kind: RecKind,
    pub meta: NodeMeta,
}

/// How much was spilled, for the summary and progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SpillStats {
    /// Bytes written to the spill file.
    pub bytes: u64,
    /// Sorted runs written.
    pub runs: u32,
    /// Records written.
    pub records: u64,
}

/// Byte stretches of the spill file: one per run.
type Run = (u64, u64);

/// The spilled tree while entries arrive.
pub(crate) struct Spill {
    dir: PathBuf,
    file: Option<File>,
    runs: Vec<Run>,
    /// Encoded records not yet written, and their offsets (a run is far below 4 GiB).
    buf: Vec<u8>,
    offs: Vec<u32>,
    run_bytes: usize,
    next_seq: u64,
    /// The root's metadata (the root is never a record).
    pub root: NodeMeta,
    /// Leaves hard links point at, by `seq`.
    pub canon: HashMap<u64, Canon>,
    /// Links whose targets the walk looks up.
    pub pending: Vec<PendingLink>,
    pub stats: SpillStats,
}

/// Largest key (a path is far shorter; this only bounds what a damaged file could claim).
const KEY_MAX: usize = 1 << 20;

/// Room kept past a run's mark for the record that crosses it: a long path with a symlink
/// target fits; a longer record grows the buffer once.
const RECORD_SLACK: usize = 64 << 10;

/// Bytes of sorted records gathered before each write of a run.
const STAGING: usize = 256 << 10;

impl Spill {
    /// A spill writing runs of about `run_bytes` into a file in `dir`; records get `seq`s from
    /// `first_seq` on.
    pub(crate) fn new(dir: &Path, run_bytes: usize, first_seq: u64, root: NodeMeta) -> Spill {
        Spill {
            dir: dir.to_path_buf(),
            file: None,
            runs: Vec::new(),
            buf: Vec::new(),
            offs: Vec::new(),
            run_bytes,
            next_seq: first_seq,
            root,
            canon: HashMap::new(),
            pending: Vec::new(),
            stats: SpillStats::default(),
        }
    }

    /// Bytes held in memory.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buf.capacity()
            + self.offs.capacity() * 4
            + self.canon.capacity() * (std::mem::size_of::<(u64, Canon)>() + 1)
            + self.pending.capacity() * std::mem::size_of::<PendingLink>()
    }

    /// The next arrival number.
    pub(crate) fn take_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// Adds a record with the next `seq`; writes a run when the buffer is full.
    pub(crate) fn push(&mut self, key: &[u8], kind: &RecKind, meta: &NodeMeta) -> Result<u64> {
        let seq = self.take_seq();
        self.push_at(key, seq, kind, meta)?;
        Ok(seq)
    }

    /// Adds a record with `seq` given.
    pub(crate) fn push_at(
        &mut self,
        key: &[u8],
        seq: u64,
        kind: &RecKind,
        meta: &NodeMeta,
    ) -> Result<()> {
        if self.buf.capacity() == 0 {
            // Reserved once, with room for the record that crosses the mark: growing by
            // doubling would leave a buffer of twice the run.
            self.buf.reserve_exact(self.run_bytes + RECORD_SLACK);
        }
        self.offs.push(self.buf.len() as u32);
        encode(&mut self.buf, key, seq, kind, meta);
        if self.buf.len() >= self.run_bytes {
            self.write_run()?;
        }
        Ok(())
    }

    /// A hard link at `link` to `target`, looked up in the walk.
    pub(crate) fn push_link(&mut self, link: &EntryPath, target: &EntryPath) -> Result<()> {
        let seq = self.take_seq();
        self.pending.push(PendingLink {
            seq,
            link: link.clone(),
            target: target.clone(),
        });
        // A link's own metadata is not stored.
        self.push_at(
            &key_of(link),
            seq,
            &RecKind::PendingLink,
            &NodeMeta::implicit_dir(),
        )
    }

    fn io_err(&self, e: io::Error) -> Error {
        Error::io("write the spilled directory tree in", &self.dir, e)
    }

    /// Sorts the buffered records and appends them to the file as one run.
    fn write_run(&mut self) -> Result<()> {
        if self.offs.is_empty() {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(tempfile::tempfile_in(&self.dir).map_err(|e| self.io_err(e))?);
        }
        let buf = &self.buf;
        self.offs.sort_unstable_by(|&a, &b| {
            let (ka, sa) = key_seq(buf, a as usize);
            let (kb, sb) = key_seq(buf, b as usize);
            ka.cmp(kb).then(sa.cmp(&sb))
        });
        let start = self.runs.last().map_or(0, |r| r.0 + r.1);
        let file = self
            .file
            .as_ref()
            .ok_or_else(|| self.io_err(io::Error::other("no file")))?;
        // Through a small staging buffer: a sorted copy of the whole run would double what the
        // run holds in memory just when the buffer is full.
        let mut out = Vec::with_capacity(STAGING);
        let mut at = start;
        for &o in &self.offs {
            let o = o as usize;
            out.extend_from_slice(&buf[o..o + record_len(buf, o)]);
            if out.len() >= STAGING {
                file.write_all_at(&out, at).map_err(|e| self.io_err(e))?;
                at += out.len() as u64;
                out.clear();
            }
        }
        file.write_all_at(&out, at).map_err(|e| self.io_err(e))?;
        at += out.len() as u64;
        self.runs.push((start, at - start));
        self.stats.bytes += at - start;
        self.stats.runs += 1;
        self.stats.records += self.offs.len() as u64;
        self.buf.clear();
        self.offs.clear();
        Ok(())
    }

    /// Writes what is buffered and frees the buffer; the runs are then complete.
    pub(crate) fn close(&mut self) -> Result<()> {
        self.write_run()?;
        self.buf = Vec::new();
        self.offs = Vec::new();
        Ok(())
    }

    /// All records in (key, seq) order (after [`Spill::close`]).
    pub(crate) fn merged(&self) -> Result<Merged<'_>> {
        let per_run = (self.run_bytes / self.runs.len().max(1)).clamp(4096, 256 * 1024);
        let mut m = Merged {
            readers: Vec::new(),
            heads: Vec::new(),
            heap: Vec::new(),
            dir: &self.dir,
        };
        if let Some(file) = &self.file {
            for &(start, len) in &self.runs {
                let mut r = RunReader {
                    file,
                    pos: start,
                    end: start + len,
                    buf: vec![0; per_run],
                    at: 0,
                    len: 0,
                };
                let mut head = Record::empty();
                if read_record(&mut r, &mut head).map_err(|e| m.err(e))? {
                    m.heap.push(m.readers.len());
                    m.readers.push(r);
                    m.heads.push(head);
                }
            }
        }
        for i in (0..m.heap.len() / 2).rev() {
            m.sift_down(i);
        }
        Ok(m)
    }
}

fn key_seq(buf: &[u8], off: usize) -> (&[u8], u64) {
    let klen = u32::from_le_bytes(buf[off..off + 4].try_into().unwrap_or([0; 4])) as usize;
    let key = &buf[off + 4..off + 4 + klen];
    let s = off + 4 + klen;
    let seq = u64::from_le_bytes(buf[s..s + 8].try_into().unwrap_or([0; 8]));
    (key, seq)
}

/// Metadata bytes of a record: mode, uid, gid, mtime, xattrs.
const META_LEN: usize = 2 + 4 + 4 + 4 + 4;

fn record_len(buf: &[u8], off: usize) -> usize {
    let (key, _) = key_seq(buf, off);
    let t = off + 4 + key.len() + 8;
    let payload = match buf[t] {
        1 | 3 | 4 => 4,
        2 => 2 + usize::from(u16::from_le_bytes([buf[t + 1], buf[t + 2]])),
        7 => 8,
        _ => 0,
    };
    4 + key.len() + 8 + 1 + payload + META_LEN
}

fn encode(buf: &mut Vec<u8>, key: &[u8], seq: u64, kind: &RecKind, meta: &NodeMeta) {
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.push(kind.tag());
    match kind {
        RecKind::File(v) | RecKind::CharDev(v) | RecKind::BlockDev(v) => {
            buf.extend_from_slice(&v.to_le_bytes())
        }
        RecKind::Symlink(t) => {
            // Targets are 1–4096 bytes (checked before they get here).
            buf.extend_from_slice(&(t.len() as u16).to_le_bytes());
            buf.extend_from_slice(t);
        }
        RecKind::Link(c) => buf.extend_from_slice(&c.to_le_bytes()),
        RecKind::Dir | RecKind::Fifo | RecKind::Socket | RecKind::PendingLink => {}
    }
    buf.extend_from_slice(&meta.mode.to_le_bytes());
    buf.extend_from_slice(&meta.uid.to_le_bytes());
    buf.extend_from_slice(&meta.gid.to_le_bytes());
    buf.extend_from_slice(&meta.mtime.to_le_bytes());
    buf.extend_from_slice(&meta.xattrs.to_le_bytes());
}

/// Reads one run of the spill file through its own buffer (positioned reads, so the runs share
/// one descriptor).
struct RunReader<'f> {
    file: &'f File,
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

impl Read for RunReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.at == self.len {
            let want = (self.end - self.pos).min(self.buf.len() as u64) as usize;
            if want == 0 {
                return Ok(0);
            }
            self.file.read_exact_at(&mut self.buf[..want], self.pos)?;
            self.pos += want as u64;
            self.at = 0;
            self.len = want;
        }
        let n = out.len().min(self.len - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

fn corrupt(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("spill file damaged: {what}"),
    )
}

fn u32_of(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

fn u64_of(r: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    r.read_exact(&mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Reads the next record of a run into `rec`; `false` at the run's end.
fn read_record(r: &mut RunReader<'_>, rec: &mut Record) -> io::Result<bool> {
    let mut b = [0u8; 4];
    if r.read(&mut b[..1])? == 0 {
        return Ok(false);
    }
    r.read_exact(&mut b[1..])?;
    let klen = u32::from_le_bytes(b) as usize;
    if klen == 0 || klen > KEY_MAX {
        return Err(corrupt("key length"));
    }
    rec.key.resize(klen, 0);
    r.read_exact(&mut rec.key)?;
    rec.seq = u64_of(r)?;
    let mut tag = [0u8; 1];
    r.read_exact(&mut tag)?;
    rec.kind = match tag[0] {
        0 => RecKind::Dir,
        1 => RecKind::File(u32_of(r)?),
        2 => {
            let mut l = [0u8; 2];
            r.read_exact(&mut l)?;
            let mut t = vec![0u8; usize::from(u16::from_le_bytes(l))];
            r.read_exact(&mut t)?;
            RecKind::Symlink(t.into_boxed_slice())
        }
        3 => RecKind::CharDev(u32_of(r)?),
        4 => RecKind::BlockDev(u32_of(r)?),
        5 => RecKind::Fifo,
        6 => RecKind::Socket,
        7 => RecKind::Link(u64_of(r)?),
        8 => RecKind::PendingLink,
        _ => return Err(corrupt("record kind")),
    };
    let mut m = [0u8; META_LEN];
    r.read_exact(&mut m)?;
    rec.meta = NodeMeta {
        mode: u16::from_le_bytes([m[0], m[1]]),
        uid: u32::from_le_bytes([m[2], m[3], m[4], m[5]]),
        gid: u32::from_le_bytes([m[6], m[7], m[8], m[9]]),
        mtime: u32::from_le_bytes([m[10], m[11], m[12], m[13]]),
        xattrs: u32::from_le_bytes([m[14], m[15], m[16], m[17]]),
    };
    Ok(true)
}

/// The k-way merge of the runs: records in (key, seq) order.
pub(crate) struct Merged<'f> {
    readers: Vec<RunReader<'f>>,
    heads: Vec<Record>,
    /// Readers with a head, as a binary min-heap by their heads.
    heap: Vec<usize>,
    dir: &'f Path,
}

impl Merged<'_> {
    fn err(&self, e: io::Error) -> Error {
        Error::io("read the spilled directory tree in", self.dir, e)
    }

    fn less(&self, a: usize, b: usize) -> bool {
        self.heads[self.heap[a]].order(&self.heads[self.heap[b]]) == Ordering::Less
    }

    fn sift_down(&mut self, mut i: usize) {
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut m = i;
            if l < self.heap.len() && self.less(l, m) {
                m = l;
            }
            if r < self.heap.len() && self.less(r, m) {
                m = r;
            }
            if m == i {
                return;
            }
            self.heap.swap(i, m);
            i = m;
        }
    }

    /// Moves the next record into `out`; `false` when all runs are read.
    pub(crate) fn next_into(&mut self, out: &mut Record) -> Result<bool> {
        let Some(&top) = self.heap.first() else {
            return Ok(false);
        };
        std::mem::swap(out, &mut self.heads[top]);
        let more = read_record(&mut self.readers[top], &mut self.heads[top]);
        match more.map_err(|e| self.err(e))? {
            true => {}
            false => {
                let last = self.heap.len() - 1;
                self.heap.swap(0, last);
                self.heap.pop();
            }
        }
        self.sift_down(0);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(mode: u16) -> NodeMeta {
        NodeMeta {
            mode,
            ..NodeMeta::implicit_dir()
        }
    }

    #[test]
    fn runs_merge_back_in_key_then_arrival_order() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny runs: nearly every record its own run.
        let mut s = Spill::new(dir.path(), 40, 1, NodeMeta::implicit_dir());
        let kinds = [
            RecKind::Dir,
            RecKind::File(7),
            RecKind::Symlink(b"../t".to_vec().into_boxed_slice()),
            RecKind::CharDev(0x0501),
            RecKind::BlockDev(0x0802),
            RecKind::Fifo,
            RecKind::Socket,
            RecKind::Link(3),
            RecKind::PendingLink,
        ];
        let mut want = Vec::new();
        for i in 0..300u32 {
            let path = format!("d{}/{}", i % 7, (i * 37) % 101);
            let key = key_of(&EntryPath::new(path.as_bytes()).unwrap());
            let kind = kinds[i as usize % kinds.len()].clone();
            let m = meta((i % 0o7777) as u16);
            let seq = s.push(&key, &kind, &m).unwrap();
            want.push((key, seq, kind, m));
        }
        s.close().unwrap();
        assert!(s.stats.runs > 10, "{:?}", s.stats);
        want.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut m = s.merged().unwrap();
        let mut got = Vec::new();
        let mut r = Record::empty();
        while m.next_into(&mut r).unwrap() {
            got.push((r.key.clone(), r.seq, r.kind.clone(), r.meta));
        }
        assert_eq!(got, want);
    }

    #[test]
    fn nul_separated_keys_sort_a_directory_before_its_siblings_suffixes() {
        let k = |s: &str| key_of(&EntryPath::new(s.as_bytes()).unwrap());
        let mut keys = vec![k("a-b"), k("a/x"), k("a"), k("a/x/y"), k("a0")];
        keys.sort();
        assert_eq!(keys, vec![k("a"), k("a/x"), k("a/x/y"), k("a-b"), k("a0")]);
    }
}
