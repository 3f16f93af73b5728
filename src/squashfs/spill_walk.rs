//! The end of a spilled tree: two streaming walks over the merged runs that write exactly the
//! tables the in-memory [`Tree::serialize`](super::tree::Tree) writes.
//!
//! Records come in key order — depth first, children in name order — so a stack of open
//! directories is all the walk holds: memory is the depth times the widest directory's
//! listing, not the number of paths. Each path's records come in arrival order and replay the
//! in-memory rules:
//! - a directory over a directory keeps the children and takes the newer metadata; anything
//!   else replaces the path and kills what was beneath it, so beneath a path a record is live
//!   only if it arrived after the last replacement of every ancestor (`Frame::kill`);
//! - a path with no live record but live descendants that arrived after the last kill is a
//!   directory the descendants created (0755 root:root, time 0);
//! - a record that arrived while an ancestor was a non-directory is the error the in-memory
//!   tree reports at once ("one of its parents is not a directory").
//!
//! The first walk only counts: inode numbers are handed out before a directory's contents
//! (mksquashfs's order), and a directory's inode names its parent's number, so the root's
//! number (the inode count) must be known before the first directory under it is written. It
//! also decides which record-less directories are live, resolves hard links that arrived
//! after the spill began, and counts each linked inode's names. The second walk writes.

use hashbrown::{HashMap, HashSet};

use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::squashfs::export::ExportTable;
use crate::squashfs::format::{inode_type, MetaRef, DIR_HEADER_MAX};
use crate::squashfs::inode::InodeData;
use crate::squashfs::spill::{Canon, RecKind, Record, Spill};
use crate::squashfs::tree::{file_inode, put_inode, NodeMeta, Serialized, Tables};

/// What a link that arrived after the spill began turned out to point at.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The leaf record with this `seq`.
    Canon(u64),
    /// The same inode as the pending link with this `seq`.
    Chase(u64),
}

/// What a frame of the walk stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FrameKind {
    /// A directory with a live record.
    Dir,
    /// A path without a live record: a directory if something live is beneath it. The number
    /// is its place among such paths in walk order.
    Implicit(usize),
    /// A non-directory (only ever holds dead or invalid records beneath it).
    Leaf,
}

/// An open path of the walk.
struct Frame {
    /// The frame's key is `Walk::key[..key_len]`; its name starts at `name_start`.
    key_len: usize,
    name_start: usize,
    /// A record beneath whose node was created at or before this `seq` is dead.
    kill: u64,
    /// This path's records in `Walk::history[hist..]`, when one is not a directory.
    hist: usize,
    kind: FrameKind,
    alive: bool,
    meta: NodeMeta,
    ino: u32,
    live_children: bool,
    /// The earliest record beneath (`u64::MAX`: none yet): when other paths first made this
    /// one a directory.
    first_beneath: u64,
    /// Pending links to this path that no record of it answers: links to a directory if
    /// something beneath came first, else to nothing (first walk).
    dir_links: Vec<usize>,
    /// The listing: names, and (end of name, inode ref, inode number, basic type).
    names: Vec<u8>,
    entries: Vec<(u32, u64, u32, u16)>,
    subdirs: u32,
}

impl Frame {
    /// A frame with nothing beneath it yet, at the root's place (the caller sets where).
    fn new(kind: FrameKind, alive: bool, meta: NodeMeta, ino: u32) -> Frame {
        Frame {
            key_len: 0,
            name_start: 0,
            kill: 0,
            hist: 0,
            kind,
            alive,
            meta,
            ino,
            live_children: false,
            first_beneath: u64::MAX,
            dir_links: Vec::new(),
            names: Vec::new(),
            entries: Vec::new(),
            subdirs: 0,
        }
    }
}

/// The walk's state; `tables` is `None` in the counting walk.
struct Walk<'t, 'a> {
    tables: Option<&'t mut Tables<'a>>,
    root: NodeMeta,
    frames: Vec<Frame>,
    key: Vec<u8>,
    /// (seq, is a directory) of the open frames' records, for frames that have a non-directory.
    history: Vec<(u64, bool)>,
    /// Frames whose history holds a non-directory: only then are ancestors checked.
    nondir_frames: usize,
    canon: HashMap<u64, Canon>,
    /// Pending links by their target's key (first walk).
    by_target: HashMap<Vec<u8>, Vec<usize>>,
    pending: Vec<(u64, EntryPath, EntryPath)>,
    targets: Vec<Option<Target>>,
    /// Live names of leaves that links point at: link records' seqs and the canonical record.
    live_links: Vec<(u64, Option<u64>)>,
    canon_own: HashSet<u64>,
    /// Which record-less directories are live, by their number (first walk sets, second reads).
    implicit_alive: Vec<bool>,
    implicit_next: usize,
    /// The earliest error by arrival: the one the in-memory tree would have stopped at.
    first_error: Option<(u64, Error)>,
    /// Inodes counted (first walk) or numbered (second).
    inodes: u32,
    entries: u64,
    // The second walk.
    root_ino: u32,
    link_canon: HashMap<u64, u64>,
    nlinks: HashMap<u64, u32>,
    written: HashMap<u64, (u32, u64, u16)>,
    export: ExportTable,
    newest_mtime: u32,
    file_bytes: u64,
    scratch: Vec<u8>,
    root_ref: u64,
}

fn path_of(key: &[u8]) -> Option<EntryPath> {
    let bytes: Vec<u8> = key.iter().map(|&b| if b == 0 { b'/' } else { b }).collect();
    EntryPath::new(&bytes).ok()
}

fn kind_type(kind: &RecKind) -> u16 {
    match kind {
        RecKind::Dir => inode_type::DIR,
        RecKind::File(_) | RecKind::Link(_) | RecKind::PendingLink => inode_type::FILE,
        RecKind::Symlink(_) => inode_type::SYMLINK,
        RecKind::CharDev(_) => inode_type::CHAR_DEV,
        RecKind::BlockDev(_) => inode_type::BLOCK_DEV,
        RecKind::Fifo => inode_type::FIFO,
        RecKind::Socket => inode_type::SOCKET,
    }
}

/// Writes the inode and directory tables of a spilled tree (after [`Spill::close`]).
pub(crate) fn serialize(mut spill: Spill, t: &mut Tables<'_>) -> Result<Serialized> {
    let pending: Vec<(u64, EntryPath, EntryPath)> = std::mem::take(&mut spill.pending)
        .into_iter()
        .map(|p| (p.seq, p.link, p.target))
        .collect();
    let mut by_target: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for (i, (_, _, target)) in pending.iter().enumerate() {
        by_target
            .entry(crate::squashfs::spill::key_of(target))
            .or_default()
            .push(i);
    }
    let mut w = Walk {
        tables: None,
        root: spill.root,
        frames: Vec::new(),
        key: Vec::new(),
        history: Vec::new(),
        nondir_frames: 0,
        canon: std::mem::take(&mut spill.canon),
        by_target,
        targets: vec![None; pending.len()],
        pending,
        live_links: Vec::new(),
        canon_own: HashSet::new(),
        implicit_alive: Vec::new(),
        implicit_next: 0,
        first_error: None,
        inodes: 0,
        entries: 0,
        root_ino: 0,
        link_canon: HashMap::new(),
        nlinks: HashMap::new(),
        written: HashMap::new(),
        export: ExportTable::new(0, None),
        newest_mtime: 0,
        file_bytes: 0,
        scratch: Vec::new(),
        root_ref: 0,
    };
    w.run(&spill)?;
    w.after_count()?;
    let inode_count = w.root_ino;
    w.tables = Some(t);
    w.inodes = 0;
    w.entries = 0;
    w.implicit_next = 0;
    w.export = ExportTable::new(
        inode_count,
        w.tables.as_ref().and_then(|t| t.export_paging.as_ref()),
    );
    w.run(&spill)?;
    Ok(Serialized {
        root: MetaRef::unpack(w.root_ref),
        inode_count,
        export: std::mem::replace(&mut w.export, ExportTable::new(0, None)),
        newest_mtime: w.newest_mtime,
        entries: w.entries + 1,
        file_bytes: w.file_bytes,
    })
}

impl Walk<'_, '_> {
    fn counting(&self) -> bool {
        self.tables.is_none()
    }

    /// One walk over all records, the root first and last.
    fn run(&mut self, spill: &Spill) -> Result<()> {
        self.key.clear();
        self.history.clear();
        self.nondir_frames = 0;
        let root_ino = self.root_ino;
        self.frames
            .push(Frame::new(FrameKind::Dir, true, self.root, root_ino));
        let mut merged = spill.merged()?;
        let mut group: Vec<Record> = Vec::new();
        let mut next = Record::empty();
        let mut have = merged.next_into(&mut next)?;
        while have {
            group.clear();
            group.push(std::mem::replace(&mut next, Record::empty()));
            loop {
                have = merged.next_into(&mut next)?;
                if !have || next.key != group[0].key {
                    break;
                }
                group.push(std::mem::replace(&mut next, Record::empty()));
            }
            self.group(&group)?;
        }
        while !self.frames.is_empty() {
            self.pop()?;
        }
        Ok(())
    }

    /// Keeps the error of the earliest arrival. For one arrival the in-memory tree looks at
    /// the parents before a link's target, so a parent error wins over a link error.
    fn error_at(&mut self, seq: u64, e: Error) {
        let rank = |e: &Error| u8::from(!matches!(e, Error::Unrepresentable { .. }));
        let earlier = match &self.first_error {
            None => true,
            Some((s, old)) => (seq, rank(&e)) < (*s, rank(old)),
        };
        if earlier {
            self.first_error = Some((seq, e));
        }
    }

    fn top(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    /// Whether the top frame's path is an ancestor of `key`.
    fn top_holds(&self, key: &[u8]) -> bool {
        let Some(f) = self.frames.last() else {
            return false;
        };
        f.key_len == 0
            || (key.len() > f.key_len
                && key[f.key_len] == 0
                && key.starts_with(&self.key[..f.key_len]))
    }

    /// One path's records (arrival order).
    fn group(&mut self, recs: &[Record]) -> Result<()> {
        let key = &recs[0].key;
        while self.frames.len() > 1 && !self.top_holds(key) {
            self.pop()?;
        }
        // Record-less directories between the deepest open frame and this path.
        let top_len = self.frames.last().map_or(0, |f| f.key_len);
        let mut start = if top_len == 0 { 0 } else { top_len + 1 };
        while let Some(i) = key[start..].iter().position(|&b| b == 0) {
            self.push_frame(
                key,
                start,
                start + i,
                FrameKind::Implicit(0),
                NodeMeta::implicit_dir(),
                &[],
            )?;
            start += i + 1;
        }
        self.check_parents(key, recs);
        let deferred = if self.counting() {
            self.resolve_links(key, recs)
        } else {
            Vec::new()
        };
        let parent_kill = self.frames.last().map_or(0, |f| f.kill);
        // Dead or not: what matters is whether the parent was a directory when a link came.
        let top = self.top();
        top.first_beneath = top.first_beneath.min(recs[0].seq);
        self.group_frame(key, start, recs, parent_kill)?;
        if !deferred.is_empty() {
            self.top().dir_links = deferred;
        }
        Ok(())
    }

    /// Opens the frame of a path with records (`start`: where its name begins in `key`).
    fn group_frame(
        &mut self,
        key: &[u8],
        start: usize,
        recs: &[Record],
        parent_kill: u64,
    ) -> Result<()> {
        let first_live = recs.partition_point(|r| r.seq <= parent_kill);
        let rem = &recs[first_live..];
        let Some(last) = rem.last() else {
            return self.push_frame(
                key,
                start,
                key.len(),
                FrameKind::Implicit(0),
                NodeMeta::implicit_dir(),
                recs,
            );
        };
        if last.kind == RecKind::Dir {
            self.push_frame(key, start, key.len(), FrameKind::Dir, last.meta, recs)
        } else {
            self.leaf(last, start)?;
            self.push_frame(key, start, key.len(), FrameKind::Leaf, last.meta, recs)?;
            self.top().kill = last.seq;
            Ok(())
        }
    }

    /// Opens a frame for `key[..end]` (name from `name_start`), with the path's records.
    fn push_frame(
        &mut self,
        key: &[u8],
        name_start: usize,
        end: usize,
        kind: FrameKind,
        meta: NodeMeta,
        recs: &[Record],
    ) -> Result<()> {
        self.key
            .truncate(self.frames.last().map_or(0, |f| f.key_len));
        if name_start > 0 {
            self.key.push(0);
        }
        self.key.extend_from_slice(&key[name_start..end]);
        let parent = self.frames.last();
        let parent_kill = parent.map_or(0, |f| f.kill);
        let hist = self.history.len();
        if recs.iter().any(|r| r.kind != RecKind::Dir) {
            self.history
                .extend(recs.iter().map(|r| (r.seq, r.kind == RecKind::Dir)));
            self.nondir_frames += 1;
        }
        let max_nondir = recs
            .iter()
            .filter(|r| r.seq > parent_kill && r.kind != RecKind::Dir)
            .map(|r| r.seq)
            .max()
            .unwrap_or(0);
        let kind = match kind {
            FrameKind::Implicit(_) => {
                let n = self.implicit_next;
                self.implicit_next += 1;
                if self.counting() {
                    self.implicit_alive.push(false);
                }
                FrameKind::Implicit(n)
            }
            k => k,
        };
        let alive = match kind {
            FrameKind::Dir => true,
            FrameKind::Implicit(n) => !self.counting() && self.implicit_alive.get(n) == Some(&true),
            FrameKind::Leaf => false,
        };
        let mut ino = 0;
        if alive || (kind == FrameKind::Dir && self.counting()) {
            ino = self.number()?;
            self.entries += 1;
        }
        if kind == FrameKind::Dir {
            self.top().live_children = true;
        }
        self.frames.push(Frame {
            key_len: self.key.len(),
            name_start: self.key.len() - (end - name_start),
            kill: parent_kill.max(max_nondir),
            hist,
            ..Frame::new(kind, alive, meta, ino)
        });
        if self.counting() && recs.is_empty() {
            // A path no record names: links to it wait for what is beneath.
            if let Some(list) = self.by_target.remove(&key[..end]) {
                self.top().dir_links = list;
            }
        }
        Ok(())
    }

    /// The next inode number (counts in the first walk).
    fn number(&mut self) -> Result<u32> {
        self.inodes = self
            .inodes
            .checked_add(1)
            .filter(|&n| n < u32::MAX - 1)
            .ok_or(Error::TooLarge {
                what: "number of inodes",
                size: u64::from(u32::MAX),
                limit: u64::from(u32::MAX - 2),
            })?;
        Ok(self.inodes)
    }

    /// Closes the top frame: a live directory's listing and inode are written.
    fn pop(&mut self) -> Result<()> {
        let Some(f) = self.frames.pop() else {
            return Ok(());
        };
        let writes = !self.counting() && f.alive && f.kind != FrameKind::Leaf;
        let name = if writes {
            self.key[f.name_start..f.key_len].to_vec()
        } else {
            Vec::new()
        };
        self.key
            .truncate(self.frames.last().map_or(0, |p| p.key_len));
        if self.history.len() > f.hist {
            self.history.truncate(f.hist);
            self.nondir_frames -= 1;
        }
        for &p in &f.dir_links {
            // The path was a directory when the link came if something beneath came first;
            // else the link named nothing (reported after the walk).
            let s = self.pending[p].0;
            if f.first_beneath <= s {
                let e = self.link_error(p, true);
                self.error_at(s, e);
            }
        }
        if let Some(parent) = self.frames.last_mut() {
            parent.first_beneath = parent.first_beneath.min(f.first_beneath);
        }
        if let (FrameKind::Implicit(n), true) = (f.kind, self.counting()) {
            if f.live_children {
                self.implicit_alive[n] = true;
                self.number()?;
                self.entries += 1;
                if let Some(p) = self.frames.last_mut() {
                    p.live_children = true;
                }
            }
        }
        if writes {
            self.write_dir(f, &name)?;
        }
        Ok(())
    }

    fn write_dir(&mut self, f: Frame, name: &[u8]) -> Result<()> {
        let Some(t) = self.tables.as_deref_mut() else {
            return Ok(());
        };
        let mut listing = t.dirs.begin();
        let mut start = 0usize;
        for &(end, r, ino, ty) in &f.entries {
            listing.add(&f.names[start..end as usize], MetaRef::unpack(r), ino, ty)?;
            start = end as usize;
        }
        let listing = listing.end()?;
        let parent = match self.frames.last() {
            Some(p) => p.ino,
            // mksquashfs's convention for the root: one past the last inode number.
            None => self.root_ino.saturating_add(1),
        };
        let data = InodeData::Dir {
            start_block: listing.start.block,
            offset: listing.start.offset,
            file_size: listing.file_size,
            nlink: f.subdirs.saturating_add(2),
            parent,
            index: &listing.index,
            big: listing.entries >= DIR_HEADER_MAX,
        };
        self.newest_mtime = self.newest_mtime.max(f.meta.mtime);
        let r = put_inode(&f.meta, f.ino, &data, t, &mut self.scratch)?;
        self.set_export(f.ino, r);
        match self.frames.last_mut() {
            None => self.root_ref = r,
            Some(p) => {
                p.subdirs += 1;
                p.names.extend_from_slice(name);
                p.entries
                    .push((p.names.len() as u32, r, f.ino, inode_type::DIR));
            }
        }
        Ok(())
    }

    fn set_export(&mut self, ino: u32, r: u64) {
        self.export.set(ino, r);
    }

    /// The range of frame `j`'s records in `history`.
    fn hist_of(&self, j: usize) -> &[(u64, bool)] {
        let end = self
            .frames
            .get(j + 1)
            .map_or(self.history.len(), |f| f.hist);
        &self.history[self.frames[j].hist..end]
    }

    /// Whether an ancestor among the first `depth` open frames was replaced by a
    /// non-directory after `from` and before `to` (which kills what was beneath it).
    fn replaced_between(&self, depth: usize, from: u64, to: u64) -> bool {
        (0..depth).any(|j| {
            self.hist_of(j)
                .iter()
                .any(|&(s, dir)| !dir && s > from && s < to)
        })
    }

    /// Records that arrived while an ancestor was a non-directory are errors.
    fn check_parents(&mut self, key: &[u8], recs: &[Record]) {
        if self.nondir_frames == 0 {
            return;
        }
        for r in recs {
            let s = r.seq;
            let bad = (0..self.frames.len()).any(|j| {
                let h = self.hist_of(j);
                let before = h.partition_point(|&(q, _)| q < s);
                match before.checked_sub(1).map(|i| h[i]) {
                    Some((a, false)) => !self.replaced_between(j, a, s),
                    _ => false,
                }
            });
            if bad {
                let path = path_of(key).map_or_else(String::new, |p| p.shown());
                self.error_at(
                    s,
                    Error::Unrepresentable {
                        path,
                        problem: "one of its parents is not a directory",
                    },
                );
            }
        }
    }

    /// Resolves the pending links whose target is `key` (first walk): each to the record the
    /// path held when the link arrived, if the path was reachable then.
    /// Links that no record before them answers are returned: they wait for the frame's end.
    fn resolve_links(&mut self, key: &[u8], recs: &[Record]) -> Vec<usize> {
        let mut deferred = Vec::new();
        let Some(list) = self.by_target.remove(key) else {
            return deferred;
        };
        let depth = self.frames.len();
        for p in list {
            let s = self.pending[p].0;
            let at = recs.partition_point(|r| r.seq < s);
            let Some(r) = at.checked_sub(1).map(|i| &recs[i]) else {
                deferred.push(p);
                continue;
            };
            if self.replaced_between(depth, r.seq, s) {
                continue;
            }
            self.targets[p] = match &r.kind {
                RecKind::Dir => {
                    let e = self.link_error(p, true);
                    self.error_at(s, e);
                    continue;
                }
                RecKind::Link(c) => Some(Target::Canon(*c)),
                RecKind::PendingLink => Some(Target::Chase(r.seq)),
                kind => {
                    self.canon.entry(r.seq).or_insert_with(|| Canon {
                        kind: kind.clone(),
                        meta: r.meta,
                    });
                    Some(Target::Canon(r.seq))
                }
            };
        }
        deferred
    }

    fn link_error(&self, p: usize, directory: bool) -> Error {
        let (_, link, target) = &self.pending[p];
        let (link, target) = (link.shown(), target.shown());
        if directory {
            Error::HardlinkToDirectory { link, target }
        } else {
            Error::HardlinkTargetMissing { link, target }
        }
    }

    /// After the first walk: the earliest error, else link targets, names per linked inode
    /// and the inode count.
    fn after_count(&mut self) -> Result<()> {
        for p in 0..self.pending.len() {
            if self.targets[p].is_none() && !self.first_error_before(self.pending[p].0) {
                let e = self.link_error(p, false);
                self.error_at(self.pending[p].0, e);
            }
        }
        if let Some((_, e)) = self.first_error.take() {
            return Err(e);
        }
        // Pending links are in arrival order, and a link only ever names an earlier one.
        for (p, target) in self.targets.iter().enumerate() {
            let c = match target {
                Some(Target::Canon(c)) => *c,
                Some(Target::Chase(x)) => self.link_canon.get(x).copied().unwrap_or(*x),
                None => continue,
            };
            self.link_canon.insert(self.pending[p].0, c);
        }
        for &c in &self.canon_own {
            *self.nlinks.entry(c).or_insert(0) += 1;
        }
        for &(seq, c) in &self.live_links {
            if let Some(c) = c.or_else(|| self.link_canon.get(&seq).copied()) {
                *self.nlinks.entry(c).or_insert(0) += 1;
            }
        }
        for _ in 0..self.nlinks.len() {
            self.number()?;
        }
        self.root_ino = self.number()?;
        Ok(())
    }

    fn first_error_before(&self, seq: u64) -> bool {
        self.first_error.as_ref().is_some_and(|(s, _)| *s < seq)
    }

    /// A live non-directory: counted, or its inode (once per linked inode) written and its
    /// name listed in the parent.
    fn leaf(&mut self, last: &Record, name_start: usize) -> Result<()> {
        let seq = last.seq;
        self.entries += 1;
        if self.counting() {
            match last.kind {
                RecKind::Link(c) => self.live_links.push((seq, Some(c))),
                RecKind::PendingLink => self.live_links.push((seq, None)),
                _ if self.canon.contains_key(&seq) => {
                    self.canon_own.insert(seq);
                }
                _ => {
                    self.number()?;
                }
            }
            self.top().live_children = true;
            return Ok(());
        }
        let canon_id = match last.kind {
            RecKind::Link(c) => Some(c),
            RecKind::PendingLink => self.link_canon.get(&seq).copied(),
            _ if self.canon.contains_key(&seq) => Some(seq),
            _ => None,
        };
        let (ino, r, ty) = match canon_id {
            Some(c) => match self.written.get(&c) {
                Some(&w) => w,
                None => {
                    // The first walk recorded every inode a link resolved to.
                    let canon = self.canon.get(&c).cloned().ok_or(Error::Bug {
                        what: "a hard link of the spilled tree lost its inode",
                    })?;
                    let nlink = self.nlinks.get(&c).copied().unwrap_or(1);
                    let w = self.write_leaf(&canon.kind, &canon.meta, nlink)?;
                    self.written.insert(c, w);
                    w
                }
            },
            None => self.write_leaf(&last.kind, &last.meta, 1)?,
        };
        let name = &last.key[name_start..];
        let p = self.top();
        p.names.extend_from_slice(name);
        p.entries.push((p.names.len() as u32, r, ino, ty));
        Ok(())
    }

    /// Numbers and writes a non-directory inode.
    fn write_leaf(
        &mut self,
        kind: &RecKind,
        meta: &NodeMeta,
        nlink: u32,
    ) -> Result<(u32, u64, u16)> {
        let ino = self.number()?;
        let Some(t) = self.tables.as_deref_mut() else {
            return Ok((ino, 0, 0));
        };
        let files = t.files;
        let data = match kind {
            RecKind::File(id) => file_inode(files, *id, nlink, t.block_size),
            RecKind::Symlink(target) => InodeData::Symlink { target, nlink },
            RecKind::CharDev(dev) => InodeData::CharDev { dev: *dev, nlink },
            RecKind::BlockDev(dev) => InodeData::BlockDev { dev: *dev, nlink },
            RecKind::Fifo => InodeData::Fifo { nlink },
            // Directories are frames; links resolve to their target first.
            RecKind::Socket | RecKind::Dir | RecKind::Link(_) | RecKind::PendingLink => {
                InodeData::Socket { nlink }
            }
        };
        if let InodeData::File { size, .. } = data {
            self.file_bytes += size;
        }
        self.newest_mtime = self.newest_mtime.max(meta.mtime);
        let r = put_inode(meta, ino, &data, t, &mut self.scratch)?;
        self.set_export(ino, r);
        Ok((ino, r, kind_type(kind)))
    }
}
