//! A tar stream → [`Entry`] values (a layer's, or the archive of a `docker save` image): PAX and GNU long names and link targets, PAX and GNU
//! sparse files (expanded), base-256 numbers, xattrs, non-UTF-8 names kept as bytes.
//!
//! ```text
//! 512-byte header ──► x / L / K / g / V ? ──► kept (bounded) for the next entry, or skipped
//!        │                                      │
//!        ▼                                      ▼
//!   Member (type, raw path, link, sizes, sparse map) ──► Entry + data reader ──► f(entry, data)
//!        │                                                                          │
//!        └─────────────── skip what f left unread, then the padding ◄───────────────┘
//! ```
//!
//! Why not `tar::Archive::entries()`: the `tar` crate (0.4) reads PAX and GNU long-name
//! records with an unbounded `read_to_end`, splits PAX records on newlines (so a binary xattr
//! value can hide a forged `path=` or `size=` record that then moves the entry boundaries), does
//! not expand PAX sparse files and does not expose the GNU sparse map. The header *layout* is
//! still the crate's: [`tar::Header`] gives the ustar/GNU field views, and this module does the
//! stepping, bounded reads and number parsing (octal or base-256, negative times included).
//!
//! Invariants: at most [`MAX_EXTENSION`] bytes of one extension record are ever held in memory
//! (and [`MAX_EXTENSIONS_PER_ENTRY`] before one entry); a size field larger than what the
//! stream holds is found by reading, never by allocating; every path goes through
//! [`EntryPath::new`].

use std::io::{self, BufReader, Read};

use tar::Header;

use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::path::EntryPath;

mod pax;
mod problem;
mod sparse;

pub use problem::TarProblem;

use pax::{normalize_xattrs, Pax};
use sparse::{Expand, MAX_SPARSE_REGIONS};

/// The largest PAX extended header or GNU long name/link record accepted.
pub const MAX_EXTENSION: u64 = 1 << 20;

/// The most extension-record bytes accepted before one entry (several `x`, `L`, `K` records).
pub const MAX_EXTENSIONS_PER_ENTRY: u64 = 4 << 20;

const BLOCK: u64 = 512;

/// Calls `f` for every entry of the tar stream, in order, with a reader of the entry's content
/// (exactly `size` bytes for a regular file, holes expanded; empty otherwise). Content that `f`
/// leaves unread is skipped. Returns at the end-of-archive marker (or at EOF), leaving whatever
/// follows unread. Errors from `f` are returned unchanged; errors of the stream are
/// [`Error::Tar`] / [`Error::TarHeader`], tagged with
/// the entry's path when it is known.
pub fn for_each_entry(
    stream: &mut dyn Read,
    f: &mut dyn FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    let mut walker = Walker::new(stream);
    while let Some(member) = walker.next_member()? {
        let entry = member
            .to_entry()
            .map_err(|e| e.in_entry(member.raw_path()))?;
        let mut data = Region {
            inner: &mut walker.input,
            remaining: member.stored,
            path: member.raw_path(),
        };
        match (&entry.kind, &member.sparse) {
            (EntryKind::File { size, .. }, Some(sparse)) => {
                let size = *size;
                f(entry, &mut Expand::new(&mut data, &sparse.map, size))?
            }
            (EntryKind::File { .. }, None) => f(entry, &mut data)?,
            _ => f(entry, &mut io::empty())?,
        }
        // Whatever `f` left unread (all of it for non-files, the stored bytes of a sparse
        // file), then the padding to the next header: skipped by the input itself (a seek, or
        // reads into its scratch buffer), not copied out through a buffer of our own.
        let unread = data.remaining;
        for n in [unread, padding(member.stored_with_map)] {
            walker.input.skip(n).map_err(|e| tar_error(e, &member))?;
        }
    }
    Ok(())
}

fn tar_error(e: io::Error, member: &Member) -> Error {
    Error::from_io(e, |source| Error::Tar { source }).in_entry(member.raw_path())
}

/// Bytes of padding after `len` bytes of data.
fn padding(len: u64) -> u64 {
    (BLOCK - len % BLOCK) % BLOCK
}

/// The bytes a tar walker reads, with a way to jump forward and a count of the position.
pub(crate) trait TarInput: Read {
    /// Moves `n` bytes forward; an error if the stream ends first.
    fn skip(&mut self, n: u64) -> io::Result<()>;
    /// Bytes consumed so far.
    fn position(&self) -> u64;
}

/// A plain stream: skipping is reading.
pub(crate) struct Stream<'a> {
    inner: &'a mut dyn Read,
    pos: u64,
    /// Where skipped bytes land: zeroed once, on the first skip, instead of a fresh zeroed
    /// buffer per skip (which cost more than the skip itself for small entries).
    scratch: Vec<u8>,
}

/// The size of [`Stream`]'s scratch buffer.
const SKIP_CHUNK: usize = 16 << 10;

impl Read for Stream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl TarInput for Stream<'_> {
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        if n > 0 && self.scratch.is_empty() {
            self.scratch = vec![0; SKIP_CHUNK];
        }
        while n > 0 {
            let want = usize::try_from(n).map_or(SKIP_CHUNK, |n| n.min(SKIP_CHUNK));
            match self.inner.read(&mut self.scratch[..want]) {
                Ok(0) => return Err(truncated("the tar stream ends inside an entry's data")),
                Ok(got) => {
                    self.pos += got as u64;
                    n -= got as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn position(&self) -> u64 {
        self.pos
    }
}

/// A tar file on disk: skipping is seeking, so indexing a large archive reads only headers.
pub(crate) struct SeekableFile {
    inner: BufReader<std::fs::File>,
    pos: u64,
    len: u64,
}

impl SeekableFile {
    pub(crate) fn new(file: std::fs::File) -> io::Result<SeekableFile> {
        let len = file.metadata()?.len();
        Ok(SeekableFile {
            inner: BufReader::with_capacity(64 << 10, file),
            pos: 0,
            len,
        })
    }
}

impl Read for SeekableFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl TarInput for SeekableFile {
    fn skip(&mut self, n: u64) -> io::Result<()> {
        let target = self
            .pos
            .checked_add(n)
            .filter(|&t| t <= self.len)
            .ok_or_else(|| truncated("the tar file ends inside a member's data"))?;
        let delta = i64::try_from(n).map_err(|_| truncated("member too large"))?;
        self.inner.seek_relative(delta)?;
        self.pos = target;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.pos
    }
}

fn truncated(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, what)
}

/// Exactly `remaining` bytes of the stream; an early end is a truncation error naming `path`.
struct Region<'a, R> {
    inner: &'a mut R,
    remaining: u64,
    path: &'a [u8],
}

impl<R: Read> Read for Region<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = usize::try_from(self.remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let got = self.inner.read(&mut buf[..n])?;
        if got == 0 {
            let e = Error::Tar {
                source: truncated("the tar stream ends inside an entry's data"),
            };
            return Err(io::Error::from(e.in_entry(self.path)));
        }
        self.remaining -= got as u64;
        Ok(got)
    }
}

/// A sparse file's data map (validated; the real size is the entry's size).
pub(crate) struct SparseInfo {
    pub map: Vec<(u64, u64)>,
}

/// One entry as the archive describes it, extension records folded in.
pub(crate) struct Member {
    typeflag: u8,
    path: Vec<u8>,
    link: Vec<u8>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: (i64, u32),
    devmajor: u32,
    devminor: u32,
    xattrs: Vec<crate::entry::Xattr>,
    /// The expanded size of a regular file.
    pub size: u64,
    /// Bytes of content data that follow in the archive (after a PAX 1.0 map).
    pub stored: u64,
    /// Bytes following the header up to the padding, a PAX 1.0 map included.
    pub stored_with_map: u64,
    /// Stream position of the first data byte.
    pub data_offset: u64,
    pub sparse: Option<SparseInfo>,
}

impl Member {
    /// The path as the archive spells it (before normalization).
    pub fn raw_path(&self) -> &[u8] {
        &self.path
    }

    /// The link target as the archive spells it (empty for other types).
    pub fn raw_link(&self) -> &[u8] {
        &self.link
    }

    /// The raw typeflag byte.
    pub fn typeflag(&self) -> u8 {
        self.typeflag
    }

    /// The crate's [`Entry`] for this member.
    pub fn to_entry(&self) -> Result<Entry> {
        let path = EntryPath::new(&self.path)?;
        let kind = match self.typeflag {
            b'1' => EntryKind::Hardlink {
                target: EntryPath::new(&self.link)?,
            },
            b'2' => EntryKind::Symlink {
                target: self.link.clone(),
            },
            b'3' => EntryKind::CharDevice {
                major: self.devmajor,
                minor: self.devminor,
            },
            b'4' => EntryKind::BlockDevice {
                major: self.devmajor,
                minor: self.devminor,
            },
            b'5' | b'D' => EntryKind::Dir,
            b'6' => EntryKind::Fifo,
            // An old-style regular typeflag on a name ending in '/' is a directory (v7 tar).
            0 if self.path.ends_with(b"/") => EntryKind::Dir,
            _ => EntryKind::File {
                size: self.size,
                sparse: self.sparse.as_ref().map(|s| s.map.clone()),
            },
        };
        let id = |field: &'static str, value: u64| {
            u32::try_from(value).map_err(|_| Error::TarHeader {
                problem: TarProblem::Over32Bits { field, value },
            })
        };
        Ok(Entry {
            path,
            kind,
            meta: Metadata {
                mode: self.mode & 0o7777,
                uid: id("uid", self.uid)?,
                gid: id("gid", self.gid)?,
                mtime: self.mtime.0,
                mtime_nsec: self.mtime.1,
                xattrs: self.xattrs.clone(),
            },
        })
    }
}

/// Steps through the headers of a tar stream.
pub(crate) struct Walker<R> {
    pub(crate) input: R,
    header: Header,
    pax: Pax,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    scratch: Vec<u8>,
    done: bool,
}

impl<'a> Walker<Stream<'a>> {
    /// A walker over a stream that can only be read.
    pub(crate) fn new(stream: &'a mut dyn Read) -> Self {
        Walker::with_input(Stream {
            inner: stream,
            pos: 0,
            scratch: Vec::new(),
        })
    }
}

impl<R: TarInput> Walker<R> {
    /// A walker over any tar input.
    pub(crate) fn with_input(input: R) -> Self {
        Walker {
            input,
            header: Header::new_old(),
            pax: Pax::default(),
            long_name: None,
            long_link: None,
            scratch: Vec::new(),
            done: false,
        }
    }

    /// The next entry-producing member, with its extension records applied; `None` at the
    /// end-of-archive marker or at a clean EOF. The member's data is next in the input: read
    /// `stored_with_map` bytes (or [`Walker::skip_data`]) before calling again.
    pub(crate) fn next_member(&mut self) -> Result<Option<Member>> {
        if self.done {
            return Ok(None);
        }
        let mut extension_bytes = 0u64;
        self.pax.clear();
        self.long_name = None;
        self.long_link = None;
        loop {
            if !self.read_header()? {
                self.done = true;
                if extension_bytes > 0 {
                    return Err(Error::Tar {
                        source: truncated("the archive ends after extension records"),
                    });
                }
                return Ok(None);
            }
            let typeflag = self.header.as_old().linkflag[0];
            let header_size = field_u64(&self.header.as_old().size, "size")?;
            match typeflag {
                b'x' | b'L' | b'K' => {
                    let what = match typeflag {
                        b'x' => "PAX extended header",
                        b'L' => "GNU long name record",
                        _ => "GNU long link-name record",
                    };
                    if header_size > MAX_EXTENSION {
                        return Err(Error::TooLarge {
                            what,
                            size: header_size,
                            limit: MAX_EXTENSION,
                        });
                    }
                    extension_bytes += header_size;
                    if extension_bytes > MAX_EXTENSIONS_PER_ENTRY {
                        return Err(Error::TooLarge {
                            what: "extension records before one entry",
                            size: extension_bytes,
                            limit: MAX_EXTENSIONS_PER_ENTRY,
                        });
                    }
                    self.read_extension(header_size)?;
                    let data = &self.scratch;
                    match typeflag {
                        b'x' => self.pax.apply(data)?,
                        b'L' => self.long_name = Some(until_nul(data).to_vec()),
                        _ => self.long_link = Some(until_nul(data).to_vec()),
                    }
                }
                // Global PAX headers and volume labels describe no file.
                b'g' | b'V' => {
                    // header_size came from an i64: adding the padding cannot overflow.
                    self.skip_exact(header_size + padding(header_size))?
                }
                b'M' => {
                    return Err(Error::TarHeader {
                        problem: TarProblem::MultiVolume,
                    })
                }
                _ => return self.member(typeflag, header_size).map(Some),
            }
        }
    }

    /// Skips the data of a member returned by [`Walker::next_member`], padding included.
    pub(crate) fn skip_data(&mut self, member: &Member) -> Result<()> {
        let len = member.stored_with_map;
        // A PAX size may be any u64; one that overflows cannot be in the stream anyway.
        let total = len.checked_add(padding(len)).ok_or_else(|| Error::Tar {
            source: truncated("an entry's size exceeds any stream"),
        })?;
        self.skip_exact(total)
    }

    fn skip_exact(&mut self, n: u64) -> Result<()> {
        self.input
            .skip(n)
            .map_err(|e| Error::from_io(e, |source| Error::Tar { source }))
    }

    /// Reads the next header block; `false` at the end-of-archive marker or a clean EOF.
    fn read_header(&mut self) -> Result<bool> {
        let block = self.header.as_mut_bytes();
        let mut filled = 0;
        while filled < block.len() {
            match self.input.read(&mut block[filled..]) {
                Ok(0) if filled == 0 => return Ok(false),
                Ok(0) => {
                    return Err(Error::Tar {
                        source: truncated("the tar stream ends inside a header"),
                    })
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::from_io(e, |source| Error::Tar { source })),
            }
        }
        let block = self.header.as_bytes();
        if block.iter().all(|&b| b == 0) {
            return Ok(false);
        }
        self.check_checksum()?;
        Ok(true)
    }

    fn check_checksum(&self) -> Result<()> {
        let bytes = self.header.as_bytes();
        let (mut unsigned, mut signed) = (0u32, 0i32);
        for (i, &b) in bytes.iter().enumerate() {
            let b = if (148..156).contains(&i) { b' ' } else { b };
            unsigned += u32::from(b);
            signed += i32::from(b as i8);
        }
        let stored = parse_number(&self.header.as_old().cksum);
        let ok = match stored {
            Some(v) => v == i64::from(unsigned) || v == i64::from(signed),
            None => false,
        };
        if ok {
            Ok(())
        } else {
            Err(Error::TarHeader {
                problem: TarProblem::Checksum {
                    computed: unsigned,
                    offset: self.input.position().saturating_sub(BLOCK),
                },
            })
        }
    }

    /// Reads an extension record of `size` (≤ [`MAX_EXTENSION`]) bytes and its padding.
    fn read_extension(&mut self, size: u64) -> Result<()> {
        let len = usize::try_from(size).unwrap_or(usize::MAX);
        self.scratch.clear();
        let read = (&mut self.input)
            .take(size)
            .read_to_end(&mut self.scratch)
            .map_err(|e| Error::from_io(e, |source| Error::Tar { source }))?;
        if read < len {
            return Err(Error::Tar {
                source: truncated("the tar stream ends inside an extension record"),
            });
        }
        self.input
            .skip(padding(size))
            .map_err(|e| Error::from_io(e, |source| Error::Tar { source }))?;
        Ok(())
    }

    /// Builds the member for the current (entry-producing) header.
    fn member(&mut self, typeflag: u8, header_size: u64) -> Result<Member> {
        let old = self.header.as_old();
        let mut pax = std::mem::take(&mut self.pax);
        let path = match (&pax.sparse.name, &pax.path, &self.long_name) {
            (Some(name), _, _) if pax.sparse.is_present() => name.clone(),
            (_, Some(p), _) => p.clone(),
            (_, _, Some(long)) => long.clone(),
            _ => header_path(self.header.as_bytes()),
        };
        let link = match (&pax.linkpath, &self.long_link) {
            (Some(p), _) => p.clone(),
            (_, Some(long)) => long.clone(),
            _ => until_nul(&old.linkname).to_vec(),
        };
        let in_entry = |e: Error| e.in_entry(&path);
        let mode = field_u64(&old.mode, "mode").map_err(in_entry)?;
        let uid = match pax.uid {
            Some(uid) => uid,
            None => field_u64(&old.uid, "uid").map_err(in_entry)?,
        };
        let gid = match pax.gid {
            Some(gid) => gid,
            None => field_u64(&old.gid, "gid").map_err(in_entry)?,
        };
        let mtime = match pax.mtime {
            Some(t) => t,
            None => (
                parse_number(&old.mtime).ok_or_else(|| {
                    in_entry(Error::TarHeader {
                        problem: TarProblem::NotANumber {
                            field: "mtime",
                            text: String::from_utf8_lossy(&old.mtime).into_owned(),
                        },
                    })
                })?,
                0,
            ),
        };
        let (devmajor, devminor) = device_fields(self.header.as_bytes());
        let device = |field: &[u8], what: &'static str| -> Result<u32> {
            if !matches!(typeflag, b'3' | b'4') {
                return Ok(0);
            }
            field_u64(field, what)
                .and_then(|v| {
                    u32::try_from(v).map_err(|_| Error::TarHeader {
                        problem: TarProblem::Over32Bits {
                            field: what,
                            value: v,
                        },
                    })
                })
                .map_err(in_entry)
        };
        let devmajor = device(devmajor, "device major")?;
        let devminor = device(devminor, "device minor")?;
        let stored_with_map = pax.size.unwrap_or(header_size);
        let regular = matches!(typeflag, 0 | b'0' | b'7');
        let data_offset = self.input.position();

        let mut member = Member {
            typeflag,
            path,
            link,
            mode: u32::try_from(mode).unwrap_or(u32::MAX),
            uid,
            gid,
            mtime,
            devmajor,
            devminor,
            xattrs: normalize_xattrs(std::mem::take(&mut pax.xattrs)),
            size: stored_with_map,
            stored: stored_with_map,
            stored_with_map,
            data_offset,
            sparse: None,
        };
        if typeflag == b'S' {
            let map = self
                .gnu_sparse_map(stored_with_map)
                .map_err(in_entry_of(&member))?;
            member.size = map.1;
            member.sparse = Some(SparseInfo { map: map.0 });
            member.data_offset = self.input.position();
        } else if regular && pax.sparse.is_present() {
            self.pax_sparse(&mut member, &pax)
                .map_err(in_entry_of(&member))?;
        }
        Ok(member)
    }

    /// Reads the GNU old sparse map: four entries in the header, then 21 per extension block.
    /// Returns the map and the real size.
    fn gnu_sparse_map(&mut self, stored: u64) -> Result<(Vec<(u64, u64)>, u64)> {
        let gnu = self.header.as_gnu().ok_or(Error::TarHeader {
            problem: TarProblem::SparseWithoutGnuHeader,
        })?;
        let real_size = field_u64(&gnu.realsize, "sparse real size")?;
        let mut pairs = Vec::new();
        let push = |entries: &[tar::GnuSparseHeader], pairs: &mut Vec<u64>| -> Result<()> {
            for e in entries {
                // GNU tar ends the list at the first entry without an offset.
                if e.offset[0] == 0 {
                    break;
                }
                if pairs.len() >= 2 * MAX_SPARSE_REGIONS {
                    return Err(Error::TarHeader {
                        problem: TarProblem::TooManySparseRegions { claimed: None },
                    });
                }
                pairs.push(field_u64(&e.offset, "sparse offset")?);
                pairs.push(field_u64(&e.numbytes, "sparse length")?);
            }
            Ok(())
        };
        push(&gnu.sparse, &mut pairs)?;
        let mut extended = gnu.isextended[0] != 0;
        let mut ext = tar::GnuExtSparseHeader::new();
        while extended {
            self.input
                .read_exact(ext.as_mut_bytes())
                .map_err(|e| Error::from_io(e, |source| Error::Tar { source }))?;
            push(&ext.sparse, &mut pairs)?;
            extended = ext.isextended[0] != 0;
        }
        let map = sparse::validate(&pairs, real_size, stored)?;
        Ok((map, real_size))
    }

    /// Applies a PAX sparse format (0.0, 0.1 or 1.0) to `member`.
    fn pax_sparse(&mut self, member: &mut Member, pax: &Pax) -> Result<()> {
        let records = &pax.sparse;
        let real_size = records.size.or(records.realsize).ok_or(Error::TarHeader {
            problem: TarProblem::PaxSparseWithoutSize,
        })?;
        let pairs = match (records.major, records.minor) {
            (Some(1), Some(0)) => {
                let mut region = Region {
                    inner: &mut self.input,
                    remaining: member.stored_with_map,
                    path: &member.path,
                };
                let (pairs, used) = sparse::read_map_1x0(&mut region)?;
                member.stored = member.stored_with_map - used;
                member.data_offset += used;
                pairs
            }
            (None | Some(0), None | Some(0 | 1)) => {
                let pairs = records.map.clone();
                if let Some(n) = records.numblocks {
                    if u64::try_from(pairs.len() / 2).ok() != Some(n)
                        || !pairs.len().is_multiple_of(2)
                    {
                        return Err(Error::TarHeader {
                            problem: TarProblem::PaxSparseCount {
                                said: n,
                                values: pairs.len(),
                            },
                        });
                    }
                }
                pairs
            }
            (major, minor) => {
                return Err(Error::TarHeader {
                    problem: TarProblem::PaxSparseVersion { major, minor },
                })
            }
        };
        member.sparse = Some(SparseInfo {
            map: sparse::validate(&pairs, real_size, member.stored)?,
        });
        member.size = real_size;
        Ok(())
    }
}

/// Parses an unsigned numeric header field.
fn field_u64(bytes: &[u8], field: &'static str) -> Result<u64> {
    let problem = match parse_number(bytes) {
        Some(value) => match u64::try_from(value) {
            Ok(v) => return Ok(v),
            Err(_) => TarProblem::NegativeNumber { field, value },
        },
        // A base-256 field is binary: its bytes say nothing as text.
        None if bytes.first().is_some_and(|b| b & 0x80 != 0) => {
            TarProblem::NumberTooLarge { field }
        }
        None => TarProblem::NotANumber {
            field,
            text: String::from_utf8_lossy(bytes).into_owned(),
        },
    };
    Err(Error::TarHeader { problem })
}

fn in_entry_of(member: &Member) -> impl Fn(Error) -> Error + '_ {
    move |e| e.in_entry(&member.path)
}

/// Which layout the bytes after the v7 fields (257..512) of a header follow, from the magic
/// and version fields (257..263, 263..265).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// No known magic: a v7 header, whose bytes past 257 are padding, not fields.
    V7,
    /// Magic `ustar\0`, whatever the version: POSIX ustar/pax (and star). Device numbers at
    /// 329..345, the path prefix at 345..500.
    Ustar,
    /// Magic `ustar ` with version ` \0` (`ustar  \0`, GNU tar's `OLDGNU_MAGIC`): device
    /// numbers at 329..345 as in ustar, but 345..500 hold atime, ctime, the old sparse map and
    /// the real size, not a prefix.
    Gnu,
}

/// The layout of `block`, decided as GNU tar (`decode_header` in `src/list.c`) and Go's
/// `archive/tar` (`getFormat` in `format.go`) both decide it: `ustar\0` in the magic field
/// is ustar *whatever the version field holds* (GNU tar compares the magic with `strcmp`
/// against `"ustar"`, Go compares the six magic bytes only), so `ustar\0` + `00`,
/// `ustar\0` + ` \0` and any other version all qualify; the GNU layout needs all eight bytes
/// `ustar  \0`; anything else is v7.
fn layout(block: &[u8; 512]) -> Layout {
    if &block[257..263] == b"ustar\0" {
        Layout::Ustar
    } else if &block[257..265] == b"ustar  \0" {
        Layout::Gnu
    } else {
        Layout::V7
    }
}

/// The device major and minor fields (all NULs, so 0, in a v7 header, which has none): at
/// the same offsets in the ustar and GNU layouts. GNU tar and Go read them in every non-v7
/// header.
fn device_fields(block: &[u8; 512]) -> (&[u8], &[u8]) {
    match layout(block) {
        Layout::V7 => (&[0; 8], &[0; 8]),
        Layout::Ustar | Layout::Gnu => (&block[329..337], &block[337..345]),
    }
}

/// The path a header spells: the prefix joined to the name with a `/` when the header has a
/// non-empty prefix, or the name alone. Bytes, never decoded; never fails.
///
/// When a header has a prefix (GNU tar and Go agree on the first two rules, Python's
/// `tarfile` on the first; the third is Go's):
///
/// * **ustar** (`ustar\0`, any version; see [`layout`]): bytes 345..500 up to the first NUL
///   (GNU tar `read_header`: `h->prefix[0] && strcmp (h->magic, TMAGIC) == 0`; Go
///   `readHeader`: `format.has(FormatUSTAR | FormatPAX)`; Python `tarfile` joins it too).
///   Checking the version as well, as `tar::Header::as_ustar` does, misreads archives whose
///   writers put ` \0` or other bytes there. The one refinement, Go's: a star header (ustar
///   magic and `tar\0` in bytes 508..512) has a 131-byte prefix, atime and ctime following
///   at 476..500, so only 345..476 is read.
/// * **v7** (no magic): never. The bytes are padding in v7; GNU tar and Go ignore them.
///   (Python's `tarfile` joins bytes 345..500 whatever the magic, which only matters for
///   headers that put something there; we side with the two that check the magic.)
/// * **GNU** (`ustar  \0`): bytes 345..369 are the atime and ctime fields. GNU tar never reads
///   a prefix here. But Go up to 1.7 wrote the ustar prefix into GNU-magic headers (its
///   writer split a long name into prefix/name, then switched the magic to GNU's whenever a
///   number had needed base-256; golang.org/issue/12594), and those archives mean
///   `prefix/name`. Go ≥ 1.8 reads them back with this test, which we copy
///   (golang.org/issue/21005): the bytes are a prefix only if the atime or the ctime field,
///   when its first byte is not NUL, fails to parse as a number (octal after trimming spaces
///   and NULs, up to the next NUL, or base-256), *and* the would-be prefix (345..500 up to
///   the first NUL) is all ASCII. Real atime/ctime values (GNU tar writes them in old-GNU
///   `--incremental` archives) and the usual all-NUL fields parse, so they are never taken
///   for a prefix. A prefix made only of octal digits cannot be told from a time and is
///   lost, as in Go. One addition to Go: never for a GNU sparse (`S`) entry, whose bytes
///   386..495 are the sparse map and real size (Python's `tarfile` never joins a prefix to
///   `S` either, and Go ≤ 1.7 wrote no `S` entries).
fn header_path(block: &[u8; 512]) -> Vec<u8> {
    let name = until_nul(&block[..100]);
    let prefix: &[u8] = match layout(block) {
        Layout::V7 => &[],
        Layout::Ustar if &block[508..512] == b"tar\0" => until_nul(&block[345..476]),
        Layout::Ustar => until_nul(&block[345..500]),
        Layout::Gnu => old_go_prefix(block),
    };
    if prefix.is_empty() {
        return name.to_vec();
    }
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    path.extend_from_slice(prefix);
    path.push(b'/');
    path.extend_from_slice(name);
    path
}

/// The prefix a Go ≤ 1.7 writer left in a GNU-magic header, or empty (see [`header_path`]).
fn old_go_prefix(block: &[u8; 512]) -> &[u8] {
    const GNU_SPARSE: u8 = b'S';
    if block[156] == GNU_SPARSE {
        return &[];
    }
    let (atime, ctime) = (&block[345..357], &block[357..369]);
    if gnu_time_parses(atime) && gnu_time_parses(ctime) {
        return &[];
    }
    let prefix = until_nul(&block[345..500]);
    if prefix.is_ascii() {
        prefix
    } else {
        &[]
    }
}

/// Whether Go's `archive/tar` reads a GNU atime/ctime `field` without error: a field whose
/// first byte is NUL is not parsed at all; a high first bit is base-256 (which fails only by
/// overflowing 63 bits); otherwise `parseOctal`: trim spaces and NULs at both ends, cut at
/// the first NUL left, and what remains must be octal digits (or nothing).
fn gnu_time_parses(field: &[u8]) -> bool {
    match field.first() {
        None | Some(0) => true,
        Some(b) if b & 0x80 != 0 => parse_number(field).is_some(),
        Some(_) => {
            let pad = |b: &u8| *b == b' ' || *b == 0;
            let start = field.iter().position(|b| !pad(b)).unwrap_or(field.len());
            let end = field.iter().rposition(|b| !pad(b)).map_or(start, |i| i + 1);
            until_nul(&field[start..end.max(start)])
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
        }
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(i) => &bytes[..i],
        None => bytes,
    }
}

/// Parses a numeric header field: octal text (spaces and NULs around it ignored; empty is 0)
/// or GNU base-256 (high bit set; two's complement when the sign bit is set too).
pub(crate) fn parse_number(field: &[u8]) -> Option<i64> {
    let first = *field.first()?;
    if first & 0x80 != 0 {
        let negative = first & 0x40 != 0;
        let invert = if negative { 0xff } else { 0 };
        let mut value: u64 = 0;
        for (i, &b) in field.iter().enumerate() {
            let mut b = b ^ invert;
            if i == 0 {
                b &= 0x7f;
            }
            if value >> 56 != 0 {
                return None;
            }
            value = value << 8 | u64::from(b);
        }
        let value = i64::try_from(value).ok()?;
        // -a-1 == !a: the inverted bits hold the magnitude minus one.
        return Some(if negative { !value } else { value });
    }
    let text = until_nul(field);
    let text = trim_spaces(text);
    if text.is_empty() {
        return Some(0);
    }
    text.iter().try_fold(0i64, |n, &d| match d {
        b'0'..=b'7' => n.checked_mul(8)?.checked_add(i64::from(d - b'0')),
        _ => None,
    })
}

fn trim_spaces(mut s: &[u8]) -> &[u8] {
    while let [b' ', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' '] = s {
        s = rest;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header block for `name` with `magic` (8 bytes: magic + version) and `tail` written
    /// from byte 345, checksum filled in.
    fn block(name: &[u8], typeflag: u8, magic: &[u8; 8], tail: &[u8]) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..name.len()].copy_from_slice(name);
        b[100..108].copy_from_slice(b"0000644\0");
        b[108..116].copy_from_slice(b"0000000\0");
        b[116..124].copy_from_slice(b"0000000\0");
        b[124..136].copy_from_slice(b"00000000000\0");
        b[136..148].copy_from_slice(b"14524563000\0");
        b[156] = typeflag;
        b[257..265].copy_from_slice(magic);
        b[345..345 + tail.len()].copy_from_slice(tail);
        b[148..156].fill(b' ');
        let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        b
    }

    /// A negative device number (base-256, as GNU tar writes -1) is named as such, not
    /// printed as its raw bytes.
    #[test]
    fn a_negative_number_field_says_so() {
        let minus_one = [0xffu8; 8];
        let err = field_u64(&minus_one, "devmajor").unwrap_err();
        let Error::TarHeader { problem } = err else {
            panic!("{err:?}")
        };
        assert_eq!(
            problem,
            TarProblem::NegativeNumber {
                field: "devmajor",
                value: -1
            }
        );
        assert_eq!(problem.to_string(), "devmajor field is negative (-1)");
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        let err = field_u64(&huge, "size").unwrap_err();
        assert!(
            matches!(
                err,
                Error::TarHeader {
                    problem: TarProblem::NumberTooLarge { field: "size" }
                }
            ),
            "{err}"
        );
        assert_eq!(field_u64(b"0000017\0", "mode").unwrap(), 15);
    }

    const POSIX: &[u8; 8] = b"ustar\x0000";
    const USTAR_SPACE: &[u8; 8] = b"ustar\0 \0";
    const GNU: &[u8; 8] = b"ustar  \0";
    const V7: &[u8; 8] = &[0; 8];

    /// Paths as [`for_each_entry`] reads them from `blocks` (the end marker is added).
    fn paths(blocks: &[[u8; 512]]) -> Vec<Vec<u8>> {
        let mut tar: Vec<u8> = blocks.concat();
        tar.extend_from_slice(&[0; 1024]);
        let mut out = Vec::new();
        for_each_entry(&mut tar.as_slice(), &mut |e, _| {
            out.push(e.path.as_bytes().to_vec());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn prefix_in_ustar_headers_whatever_the_version() {
        for magic in [POSIX, USTAR_SPACE, b"ustar\0\0\0", b"ustar\0xy"] {
            let b = block(b"file", b'0', magic, b"usr/share/doc");
            assert_eq!(header_path(&b), b"usr/share/doc/file", "{magic:?}");
        }
        // No prefix: the name alone.
        assert_eq!(header_path(&block(b"file", b'0', POSIX, b"")), b"file");
        // A prefix filling all 155 bytes, without a NUL, and a non-UTF-8 one: bytes as they are.
        let long = [b'p'; 155];
        let mut want = long.to_vec();
        want.extend_from_slice(b"/n");
        assert_eq!(header_path(&block(b"n", b'0', POSIX, &long)), want);
        assert_eq!(
            header_path(&block(b"n", b'0', POSIX, b"d\xff\xfe")),
            b"d\xff\xfe/n"
        );
        assert_eq!(
            paths(&[
                block(b"a", b'0', POSIX, b"x/y"),
                block(b"b", b'0', USTAR_SPACE, b"x/z")
            ]),
            [b"x/y/a".to_vec(), b"x/z/b".to_vec()]
        );
    }

    #[test]
    fn star_prefix_is_131_bytes() {
        let mut tail = [0u8; 167];
        tail[..4].copy_from_slice(b"star");
        // atime and ctime right after the 131-byte prefix; "tar\0" at 508.
        tail[131..143].copy_from_slice(b"14524563000 ");
        tail[143..155].copy_from_slice(b"14524563000 ");
        tail[163..167].copy_from_slice(b"tar\0");
        assert_eq!(header_path(&block(b"f", b'0', POSIX, &tail)), b"star/f");
        // A full 131-byte star prefix stops before the atime.
        tail[..131].fill(b'q');
        let mut want = vec![b'q'; 131];
        want.extend_from_slice(b"/f");
        assert_eq!(header_path(&block(b"f", b'0', POSIX, &tail)), want);
    }

    #[test]
    fn v7_headers_have_no_prefix() {
        let b = block(b"file", b'0', V7, b"not/a/prefix");
        assert_eq!(header_path(&b), b"file");
        // Nor does a magic that is neither ustar nor exactly GNU's.
        for magic in [b"ustar 00", b"ustar   ", b"USTAR\x0000", b"ustar \0\0"] {
            assert_eq!(header_path(&block(b"file", b'0', magic, b"x")), b"file");
        }
        assert_eq!(paths(&[b]), [b"file".to_vec()]);
    }

    #[test]
    fn gnu_headers_with_an_old_go_prefix() {
        // Go <= 1.7 wrote the ustar prefix into GNU-magic headers: the "atime" does not parse.
        let b = block(b"file", b'0', GNU, b"usr/local/go/src/archive/tar");
        assert_eq!(header_path(&b), b"usr/local/go/src/archive/tar/file");
        assert_eq!(paths(&[b]), [b"usr/local/go/src/archive/tar/file".to_vec()]);
        // Only the ctime field fails (the first 12 bytes are octal digits).
        let b = block(b"f", b'0', GNU, b"0123456701234/x");
        assert_eq!(header_path(&b), b"0123456701234/x/f");
        // A non-ASCII would-be prefix is dropped, as Go drops it.
        assert_eq!(header_path(&block(b"f", b'0', GNU, b"caf\xc3\xa9/x")), b"f");
        // Never in a GNU sparse entry.
        assert_eq!(header_path(&block(b"f", b'S', GNU, b"some/dir")), b"f");
    }

    #[test]
    fn gnu_headers_with_real_times_have_no_prefix() {
        let mut tail = [0u8; 24];
        tail[..12].copy_from_slice(b"14524563000\0"); // atime, octal
        tail[12..24].copy_from_slice(b"14524563001\0"); // ctime
        let b = block(b"file", b'0', GNU, &tail);
        assert_eq!(header_path(&b), b"file");
        assert_eq!(paths(&[b]), [b"file".to_vec()]);
        // Space-padded, only one of the two set, base-256, all NULs: still times.
        let cases: [&[u8]; 5] = [
            b" 14524563000 14524563000",
            b"14524563000 ",
            b"\0\0\0\0\0\0\0\0\0\0\0\0 1452456300 ",
            b"\x80\0\0\0\0\0\0\0\x65\x4c\x6a\x00",
            b"",
        ];
        for tail in cases {
            assert_eq!(header_path(&block(b"f", b'0', GNU, tail)), b"f", "{tail:?}");
        }
        // Base-256 beyond 63 bits does not parse: taken for a (non-ASCII, so dropped) prefix.
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert_eq!(header_path(&block(b"f", b'0', GNU, &huge)), b"f");
    }

    #[test]
    fn gnu_time_parsing_follows_go() {
        assert!(gnu_time_parses(b"\0garbage\0\0\0\0"));
        assert!(gnu_time_parses(b"   \0\0\0\0\0\0\0\0\0"));
        assert!(gnu_time_parses(b"17\0garbage\0\0"));
        assert!(gnu_time_parses(&[0xff; 12])); // base-256 -1
        let mut huge = [0xffu8; 12];
        huge[0] = 0x80;
        assert!(!gnu_time_parses(&huge));
        assert!(!gnu_time_parses(b"usr/local/sh"));
        assert!(!gnu_time_parses(b"128\0\0\0\0\0\0\0\0\0"));
        assert!(!gnu_time_parses(b"1 2\0\0\0\0\0\0\0\0\0"));
        assert!(!gnu_time_parses(b"+1\0\0\0\0\0\0\0\0\0\0"));
    }

    #[test]
    fn device_numbers_in_every_ustar_family_header() {
        for (magic, want) in [
            (POSIX, (1, 3)),
            (USTAR_SPACE, (1, 3)),
            (GNU, (1, 3)),
            (V7, (0, 0)),
        ] {
            let mut b = block(b"null", b'3', magic, b"");
            b[329..337].copy_from_slice(b"0000001\0");
            b[337..345].copy_from_slice(b"0000003\0");
            b[148..156].fill(b' ');
            let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
            b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
            let mut tar = b.to_vec();
            tar.extend_from_slice(&[0; 1024]);
            let mut got = None;
            for_each_entry(&mut tar.as_slice(), &mut |e, _| {
                got = Some(e.kind);
                Ok(())
            })
            .unwrap();
            assert_eq!(
                got,
                Some(EntryKind::CharDevice {
                    major: want.0,
                    minor: want.1
                }),
                "{magic:?}"
            );
        }
    }

    #[test]
    fn no_header_content_panics() {
        // Every byte value at every offset past the v7 fields, under each magic.
        for magic in [POSIX, USTAR_SPACE, GNU, V7] {
            for at in 345..512 {
                for v in [0u8, b' ', b'0', b'7', b'8', b'/', 0x80, 0xff] {
                    let mut b = block(b"f", b'0', magic, b"");
                    b[at] = v;
                    let _ = header_path(&b);
                    let _ = device_fields(&b);
                }
            }
        }
    }

    #[test]
    fn numbers_octal_and_base256() {
        assert_eq!(parse_number(b"0000644\0"), Some(0o644));
        assert_eq!(parse_number(b"  644 \0"), Some(0o644));
        assert_eq!(parse_number(b"\0\0\0\0"), Some(0));
        assert_eq!(parse_number(b"0009"), None);
        assert_eq!(parse_number(&[0x80, 0, 0, 0, 0, 0, 0x01, 0x00]), Some(256));
        assert_eq!(parse_number(&[0xff; 12]), Some(-1));
        let mut minus_two = [0xffu8; 12];
        minus_two[11] = 0xfe;
        assert_eq!(parse_number(&minus_two), Some(-2));
        // More than 63 bits of magnitude.
        assert_eq!(
            parse_number(&[0x80, 0, 0, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
            None
        );
    }
}
