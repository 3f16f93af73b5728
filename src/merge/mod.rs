//! The overlay merge: layers newest-first in, one normalized entry stream out.
//!
//! Reading the newest layer first means the first entry that survives at a path is the one the
//! image shows, so it can go to the sink at once with its data streaming straight through: no
//! entry and no byte of content is held back, except
//! - hard links, which wait until the end (their target must be delivered first, and a target
//!   in an older layer has not been read yet: [`hardlink`]);
//! - content that a hard link still needs after its target's name was deleted or replaced,
//!   which goes to a disk spool ([`spool`]);
//! - directories that entries need but no layer describes, delivered at the end with default
//!   metadata (0755 root:root, time 0).
//!
//! What is held in memory is per path ([`paths`]): the interned path tree with each path's
//! status and the hiding records of whiteouts, opaque markers and non-directories
//! ([`whiteout`], where every overlay rule about deletion lives).
//!
//! Within one layer, a later entry for a path replaces an earlier one (as extraction would):
//! the sink receives the path again (see [`Sink`]).

mod hardlink;
mod paths;
mod spool;
#[cfg(test)]
mod tests;
mod whiteout;

use std::collections::HashMap;
use std::io::{self, Read};

use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::options::{ConvertOptions, ProgressFn};
use crate::path::EntryPath;
use crate::progress::Progress;
use crate::sink::{Sink, Summary};

use hardlink::{Links, SlotId, Source, Waiter};
use paths::{NodeId, PathTree, Status, Use, ROOT};
use spool::{Spool, SpoolRef};
use whiteout::{Barriers, Hides, Name};

/// Opens a layer's decoded tar stream again, for the rare case where a hard link needs the
/// content of a file its own layer hid and that content already went by.
pub type Reopen<'a> = &'a mut dyn FnMut() -> Result<Box<dyn Read + Send>>;

/// A version of a path in the current layer that the output does not show, kept until the
/// layer ends in case a later entry of the same layer links to it.
enum Hidden {
    Dir,
    /// Bound to an inode slot (spooled, copied, or a link).
    Slot(SlotId),
    /// A regular file whose content was spooled in case a link wants it.
    Spooled(Entry, SpoolRef),
    /// A regular file whose content can be fetched again by re-reading the layer.
    Refetchable(Entry, u64),
    /// A symlink, device, fifo or socket.
    Other(Entry),
}

/// The version of a path in the current layer that links of newer layers waiting for the path
/// bind to when the layer ends (the last version wins, as extraction would leave it).
enum Version {
    Dir,
    Slot(SlotId),
}

#[derive(Default)]
struct Waiting {
    links: Vec<Waiter>,
    /// The latest version and its position in the layer.
    version: Option<(Version, u64)>,
}

/// Where an entry sits: its layer and its position in the layer's stream.
#[derive(Clone, Copy, Debug)]
struct Pos {
    layer: u32,
    ordinal: u64,
}

/// Merges layers newest-first into a [`Sink`].
///
/// ```no_run
/// # use ocirender::{Merger, ConvertOptions, sink::tar::TarSink};
/// # fn layers() -> Vec<(usize, Box<dyn std::io::Read>)> { vec![] }
/// let sink = TarSink::create("out.tar".as_ref())?;
/// let mut merger = Merger::new(Box::new(sink), 2, &ConvertOptions::default());
/// for (index, mut tar_stream) in layers() { // index 1, then 0: newest first
///     merger.layer(index, &mut tar_stream)?;
/// }
/// let summary = merger.finish()?;
/// # Ok::<(), ocirender::Error>(())
/// ```
pub struct Merger {
    sink: Box<dyn Sink>,
    tree: PathTree,
    barriers: Barriers,
    links: Links,
    spool: Spool,
    layers: usize,
    last_layer: Option<u32>,
    /// Hidden versions of the current layer, by path.
    layer_hidden: HashMap<NodeId, Hidden>,
    /// Links of newer layers waiting for paths the current layer has.
    layer_waiting: HashMap<NodeId, Waiting>,
    /// Symlinks of the current layer at paths newer entries need as directories: an error
    /// unless a later entry of the layer replaces the symlink.
    /// A hard link's inode decides (`Some(slot)`): it may be a symlink.
    layer_symlinks: Vec<(NodeId, Option<SlotId>)>,
    /// Delivered non-directories of the current layer that a link of the layer (shown or
    /// hidden) points to, with one such link: replacing one later in the layer is an error.
    layer_linked: HashMap<NodeId, NodeId>,
    /// Slots of the current layer whose content must be fetched by re-reading the layer.
    refetch: Vec<(u64, SlotId)>,
    /// Hard links that an entry of their layer went beneath (making the path a directory)
    /// before their inode was known: (the link's slot, the link, the entry, its layer). If
    /// the inode turns out to be a symlink, extraction wrote through it.
    written_beneath: Vec<(SlotId, NodeId, NodeId, u32)>,
    /// Spool position at the start of the current layer, and the end of what it must keep.
    spool_start: u64,
    spool_keep: u64,
    progress: Option<ProgressFn>,
    entries: u64,
    bytes: u64,
    reported: u64,
}

impl Merger {
    /// A merger for an image of `layers` layers writing into `sink`.
    pub fn new(sink: Box<dyn Sink>, layers: usize, options: &ConvertOptions) -> Merger {
        Merger {
            sink,
            tree: PathTree::new(),
            barriers: Barriers::default(),
            links: Links::default(),
            spool: Spool::in_dir(options.temp_dir.clone()),
            layers,
            last_layer: None,
            layer_hidden: HashMap::new(),
            layer_waiting: HashMap::new(),
            layer_symlinks: Vec::new(),
            layer_linked: HashMap::new(),
            refetch: Vec::new(),
            written_beneath: Vec::new(),
            spool_start: 0,
            spool_keep: 0,
            progress: options.progress.clone(),
            entries: 0,
            bytes: 0,
            reported: 0,
        }
    }

    /// Merges layer `index`'s decoded tar stream. Layers must come newest first (strictly
    /// decreasing indexes).
    ///
    /// Files that the layer hides but a hard link of the same layer may still need are kept in a
    /// disk spool; use [`Merger::layer_reopenable`] when the stream can be read again, which
    /// avoids that.
    pub fn layer(&mut self, index: usize, stream: &mut dyn Read) -> Result<()> {
        self.run_layer(index, stream, None)
    }

    /// Like [`Merger::layer`], for a layer that `reopen` can read again from the start: hidden
    /// files are not spooled on the chance that a link wants them; in the rare case one does,
    /// the layer is read a second time to fetch its content.
    pub fn layer_reopenable(
        &mut self,
        index: usize,
        stream: &mut dyn Read,
        reopen: Reopen<'_>,
    ) -> Result<()> {
        self.run_layer(index, stream, Some(reopen))
    }

    /// Merges layer `index` given as entries already parsed, each regular file's content in its
    /// reader (for callers with their own entry source; hidden files a link may need are
    /// spooled as with [`Merger::layer`]).
    pub fn layer_entries<'r, I>(&mut self, index: usize, entries: I) -> Result<()>
    where
        I: IntoIterator<Item = (Entry, Box<dyn Read + 'r>)>,
    {
        let layer = self.begin_layer(index)?;
        for (ordinal, (entry, mut data)) in entries.into_iter().enumerate() {
            let path = entry.path.clone();
            self.entry(layer, ordinal as u64, false, entry, &mut data)
                .map_err(|e| e.in_entry(path.as_bytes()))?;
        }
        self.end_layer(None)
    }

    fn run_layer(
        &mut self,
        index: usize,
        stream: &mut dyn Read,
        reopen: Option<Reopen<'_>>,
    ) -> Result<()> {
        let layer = self.begin_layer(index)?;
        let refetchable = reopen.is_some();
        let mut ordinal = 0u64;
        crate::layer::tar::for_each_entry(stream, &mut |entry, data| {
            let path = entry.path.clone();
            let r = self.entry(layer, ordinal, refetchable, entry, data);
            ordinal += 1;
            r.map_err(|e| e.in_entry(path.as_bytes()))
        })?;
        self.end_layer(reopen)
    }

    fn begin_layer(&mut self, index: usize) -> Result<u32> {
        let layer = u32::try_from(index)
            .ok()
            .filter(|_| index < self.layers)
            .ok_or(Error::LayerIndexOutOfRange {
                index,
                count: self.layers,
            })?;
        if let Some(last) = self.last_layer {
            if layer >= last {
                return Err(Error::InvalidOption {
                    name: "layer order",
                    value: format!("{layer} after {last}"),
                    reason: "layers must be merged newest first",
                });
            }
        }
        self.last_layer = Some(layer);
        self.layer_linked.clear();
        self.spool_start = self.spool.mark();
        self.spool_keep = self.spool_start;
        Ok(layer)
    }

    fn end_layer(&mut self, reopen: Option<Reopen<'_>>) -> Result<()> {
        if !self.refetch.is_empty() {
            let Some(reopen) = reopen else {
                return Err(Error::Stopped);
            };
            self.fetch_again(reopen)?;
        }
        self.layer_hidden.clear();
        let mut symlinks = std::mem::take(&mut self.layer_symlinks);
        symlinks.sort_unstable();
        for (node, slot) in symlinks {
            match slot.map(|s| (s, self.links.is_symlink(s))) {
                None | Some((_, Some(true))) => return Err(self.beneath_symlink(node)),
                Some((_, Some(false))) => {}
                Some((s, None)) => {
                    // A link whose inode an older layer decides: checked at the end.
                    let layer = self.last_layer.unwrap_or(0);
                    let user = self.tree.used_after(node, layer).map_or(layer, |u| u.0);
                    let entry = self.tree.descendants(node).first().copied().unwrap_or(node);
                    self.written_beneath.push((s, node, entry, user));
                }
            }
        }
        let layer = self.last_layer.unwrap_or(0);
        let mut waiting: Vec<(NodeId, Waiting)> = self.layer_waiting.drain().collect();
        waiting.sort_by_key(|(n, _)| *n);
        for (node, w) in waiting {
            match w.version {
                Some((Version::Slot(slot), ord)) => {
                    self.bind_waiting(node, (layer, ord), w.links, slot)?
                }
                Some((Version::Dir, _)) => return Err(self.link_to_dir(&w.links, node)),
                None => {}
            }
        }
        // Content spooled on the chance that a link of this layer wants it, which none did.
        self.spool.truncate(self.spool_keep.max(self.spool_start))?;
        // Counts are throttled while entries flow; at a layer's end they should be exact.
        self.report_written();
        Ok(())
    }

    fn report_written(&mut self) {
        if let Some(p) = &self.progress {
            self.reported = self.bytes;
            p(&Progress::Written {
                entries: self.entries,
                bytes: self.bytes,
            });
        }
    }

    /// Reads the current layer again and spools the files that links turned out to need.
    fn fetch_again(&mut self, reopen: Reopen<'_>) -> Result<()> {
        let mut wanted: HashMap<u64, SlotId> = self.refetch.drain(..).collect();
        let mut stream = reopen()?;
        let mut ordinal = 0u64;
        let links = &mut self.links;
        let spool = &mut self.spool;
        let mut keep = self.spool_keep;
        crate::layer::tar::for_each_entry(&mut stream, &mut |entry, data| {
            if let Some(slot) = wanted.remove(&ordinal) {
                if let EntryKind::File { size, .. } = entry.kind {
                    let r = spool.append(data, size)?;
                    keep = spool.mark();
                    if let Some(src) = links.source_mut(slot) {
                        if let Source::Refetch { entry, .. } = src {
                            let entry = entry.clone();
                            *src = Source::Spooled { entry, spool: r };
                        }
                    }
                }
            }
            ordinal += 1;
            Ok(())
        })?;
        self.spool_keep = keep;
        if let Some((_, &slot)) = wanted.iter().next() {
            // The second reading did not reach an entry the first one saw.
            if let Some(Source::Refetch { ordinal, .. }) = self.links.source(slot) {
                return Err(Error::Tar {
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("layer changed between two readings (entry #{ordinal} missing)"),
                    ),
                });
            }
        }
        Ok(())
    }

    /// One entry of layer `layer`, the `ordinal`-th of its stream.
    fn entry(
        &mut self,
        layer: u32,
        ordinal: u64,
        refetchable: bool,
        e: Entry,
        data: &mut dyn Read,
    ) -> Result<()> {
        let at = Pos { layer, ordinal };
        match whiteout::classify(&e.path)? {
            Name::Whiteout(target) => {
                let n = self.tree.intern(&target);
                self.barriers
                    .record(&mut self.tree, n, layer, ordinal, Hides::Whiteout);
                return Ok(());
            }
            Name::Opaque(dir) => {
                let n = self.tree.intern(&dir);
                self.barriers
                    .record(&mut self.tree, n, layer, ordinal, Hides::Opaque);
                return Ok(());
            }
            Name::Aufs(through) => {
                // Never shown, but extraction made its parents directories, and a link to
                // itself is as wrong here as anywhere (see below).
                let q = self.tree.intern(&through);
                let hidden = self.tree.hidden(q, layer);
                self.require_parents(q, at, hidden)?;
                refuse_self_link(&e)?;
                let n = self.tree.intern(&e.path);
                return self.hidden(at, refetchable, n, e, data, false);
            }
            Name::Plain => {}
        }
        if e.path.is_root() && !e.kind.is_dir() {
            return Err(Error::HostilePath {
                path: ".".into(),
                reason: "the root must be a directory",
            });
        }
        refuse_self_link(&e)?;
        let node = self.tree.intern(&e.path);
        if e.kind.is_dir() {
            self.tree.touch(node, layer, ordinal, Use::DirEntry);
        }
        // A later entry replaces a symlink this layer put where newer entries need a directory;
        // a later non-directory above it removes it with its subtree.
        if e.kind.is_dir() {
            self.layer_symlinks.retain(|&(n, _)| n != node);
        } else if !self.layer_symlinks.is_empty() {
            let tree = &self.tree;
            self.layer_symlinks.retain(|&(n, _)| {
                std::iter::successors(Some(n), |&c| tree.parent(c)).all(|c| c != node)
            });
        }
        if !e.kind.is_dir() {
            // A non-directory replaced whatever older layers had beneath this path, whether or
            // not it survives itself.
            self.barriers
                .record(&mut self.tree, node, layer, ordinal, Hides::NonDir);
            // And what its own layer put there: hidden versions beneath it are gone (links
            // made before keep theirs).
            if !self.layer_hidden.is_empty() && self.tree.has_children(node) {
                for d in self.tree.descendants(node) {
                    self.layer_hidden.remove(&d);
                }
            }
        }
        if self.tree.hidden(node, layer) {
            // Hidden in the output, but newer entries may have gone through it before that.
            let watch = may_be_symlink(&e) && self.written_through(node, layer);
            let link = is_link(&e);
            self.hidden(at, refetchable, node, e, data, true)?;
            return self.watch(watch, node, link);
        }
        let (status, set_by) = self.tree.status(node);
        if set_by > layer && status != Status::Unseen {
            return self.shadowed(at, refetchable, node, e, data);
        }
        match status {
            Status::Unseen => self.deliver(at, node, e, data),
            Status::Implicit | Status::Dir => {
                if !e.kind.is_dir() {
                    self.drop_subtree(node, layer)?;
                }
                self.deliver(at, node, e, data)
            }
            Status::Symlink | Status::Other | Status::Link => {
                // A hard link to another name of the inode the path holds: extraction puts the
                // same inode back, so what links of this layer point to stays.
                let same_inode = match &e.kind {
                    EntryKind::Hardlink { target } => {
                        let t = self.tree.intern(target);
                        // The target's name may be hidden, its version kept for links only.
                        let of_target = self.links.member(t).or(match self.layer_hidden.get(&t) {
                            Some(&Hidden::Slot(s)) => Some(s),
                            _ => None,
                        });
                        let root = |s| self.links.root(s);
                        let group = self.links.member(node).map(root);
                        group.is_some() && of_target.map(root) == group
                    }
                    _ => false,
                };
                self.replace_nondir(node, same_inode)?;
                self.deliver(at, node, e, data)?;
                if status != Status::Link && self.tree.status(node).0 == Status::Link {
                    // The link waits for the end, but what it replaced is already written: mark
                    // the path as written by this layer (see `drop_subtree`).
                    self.tree.set_meta_layer(node, Some(layer));
                }
                Ok(())
            }
        }
    }

    /// An entry at a path whose type a newer layer decided. A newer non-directory simply hides
    /// it. Under a newer directory, it may still matter: a directory entry gives the directory
    /// its metadata (the newest valid one wins: later in a layer, or from a newer layer, and not
    /// replaced by a non-directory since), and a non-directory removes what its own layer wrote
    /// there before it.
    fn shadowed(
        &mut self,
        at: Pos,
        refetchable: bool,
        node: NodeId,
        e: Entry,
        data: &mut dyn Read,
    ) -> Result<()> {
        let layer = at.layer;
        let (status, set_by) = self.tree.status(node);
        if !matches!(status, Status::Implicit | Status::Dir) {
            let watch = may_be_symlink(&e) && self.written_through(node, layer);
            let link = is_link(&e);
            self.hidden(at, refetchable, node, e, data, true)?;
            return self.watch(watch, node, link);
        }
        // Replaced by a non-directory of a newer layer before the newer entries made it a
        // directory again: this entry no longer describes anything.
        let replaced = self.barriers.nondir_after(&self.tree, node, layer);
        let described_by = self.tree.meta_layer(node);
        if e.kind.is_dir() {
            if replaced || described_by.is_some_and(|l| l > layer) {
                return self.hidden(at, refetchable, node, e, data, true);
            }
            self.deliver(at, node, e, data)?;
            self.tree.set_status(node, Status::Dir, set_by);
            return Ok(());
        }
        let through = !replaced && !self.tree.dir_first_after(node, layer);
        // Newer entries lie beneath this path and the first newer layer to use it did not
        // begin with a directory entry replacing a symlink here: applying them would write
        // through it, unless a later entry of this layer replaces the symlink first.
        let watch = may_be_symlink(&e) && (through || self.written_through(node, layer));
        self.drop_subtree(node, layer)?;
        if described_by == Some(layer) {
            // This layer's own directory entry was replaced by this non-directory.
            self.deliver_implicit(node, set_by)?;
        }
        let link = is_link(&e);
        self.hidden(at, refetchable, node, e, data, true)?;
        self.watch(watch, node, link)
    }

    /// After [`hidden`](Self::hidden) handled the entry at `node`, which newer entries went
    /// beneath (`watch`): a symlink, or a hard link (`link`) to one, is an error at the end of
    /// the layer unless a later entry of the layer replaces it.
    fn watch(&mut self, watch: bool, node: NodeId, link: bool) -> Result<()> {
        if watch {
            let slot = match self.layer_hidden.get(&node) {
                Some(&Hidden::Slot(s)) if link => Some(s),
                _ => None,
            };
            self.layer_symlinks.push((node, slot));
        }
        Ok(())
    }

    /// Delivers a winning entry (or, for a hard link, records it for the end).
    fn deliver(&mut self, at: Pos, node: NodeId, e: Entry, data: &mut dyn Read) -> Result<()> {
        let layer = at.layer;
        // A hidden version this layer put here before is replaced (links made before keep it).
        if !self.layer_hidden.is_empty() {
            self.layer_hidden.remove(&node);
        }
        self.require_parents(node, at, false)?;
        let waits = self.take_waiting(node, layer);
        let status = match &e.kind {
            EntryKind::Hardlink { target } => {
                let slot = self.link_slot(at, node, target)?;
                self.links.add_member(node, slot);
                self.links.set_link_meta(node, e.meta.clone());
                self.tree.set_status(node, Status::Link, layer);
                if waits {
                    self.set_version(node, Version::Slot(slot), at.ordinal);
                }
                return Ok(());
            }
            EntryKind::Dir => Status::Dir,
            EntryKind::Symlink { .. } => Status::Symlink,
            _ => Status::Other,
        };
        self.send(&e, data)?;
        self.tree.set_status(node, status, layer);
        if status == Status::Dir {
            self.tree.set_meta_layer(node, Some(layer));
        }
        if waits {
            let v = if status == Status::Dir {
                Version::Dir
            } else {
                Version::Slot(self.delivered_slot(node))
            };
            self.set_version(node, v, at.ordinal);
        }
        Ok(())
    }

    /// Handles an entry that the output does not show: hidden by a newer layer, shadowed by a
    /// newer entry, or AUFS metadata. Its parents still became directories when its layer was
    /// applied (`real`: not AUFS metadata), and hard links may still need it.
    fn hidden(
        &mut self,
        at: Pos,
        refetchable: bool,
        node: NodeId,
        mut e: Entry,
        data: &mut dyn Read,
        real: bool,
    ) -> Result<()> {
        let layer = at.layer;
        if real {
            self.require_parents(node, at, true)?;
        }
        let waits = self.take_waiting(node, layer);
        e.path = EntryPath::root();
        let version = match e.kind {
            EntryKind::Dir => {
                if waits {
                    self.set_version(node, Version::Dir, at.ordinal);
                }
                Hidden::Dir
            }
            EntryKind::Hardlink { ref target } => {
                let target = target.clone();
                Hidden::Slot(self.link_slot(at, node, &target)?)
            }
            EntryKind::File { size, .. } if waits => {
                let spool = self.spool.append(data, size)?;
                self.spool_keep = self.spool_keep.max(spool.end());
                Hidden::Slot(self.links.slot(Source::Spooled { entry: e, spool }))
            }
            EntryKind::File { .. } if refetchable => Hidden::Refetchable(e, at.ordinal),
            EntryKind::File { size, .. } => {
                let spool = self.spool.append(data, size)?;
                Hidden::Spooled(e, spool)
            }
            _ if waits => Hidden::Slot(self.links.slot(Source::Copy { entry: e })),
            _ => Hidden::Other(e),
        };
        if let Hidden::Slot(slot) = version {
            if waits {
                self.set_version(node, Version::Slot(slot), at.ordinal);
            }
        }
        self.layer_hidden.insert(node, version);
        Ok(())
    }

    /// Moves the links of newer layers that wait for `node` to this layer's list; whether any
    /// wait (then each version of `node` in this layer must be recorded).
    fn take_waiting(&mut self, node: NodeId, layer: u32) -> bool {
        let newly = self.links.take_waiting(node, layer);
        if !newly.is_empty() {
            self.layer_waiting
                .entry(node)
                .or_default()
                .links
                .extend(newly);
        }
        self.layer_waiting.contains_key(&node)
    }

    fn set_version(&mut self, node: NodeId, version: Version, ordinal: u64) {
        if let Some(w) = self.layer_waiting.get_mut(&node) {
            w.version = Some((version, ordinal));
        }
    }

    /// The inode slot a hard link of `layer` at `link` to `target` belongs to: the target's
    /// version earlier in the same layer, or a pending slot that an older layer will resolve.
    fn link_slot(&mut self, at: Pos, link: NodeId, target: &EntryPath) -> Result<SlotId> {
        let layer = at.layer;
        let t = self.tree.intern(target);
        if let Some(h) = self.layer_hidden.remove(&t) {
            let slot = match h {
                Hidden::Dir => {
                    self.layer_hidden.insert(t, Hidden::Dir);
                    return Err(Error::HardlinkToDirectory {
                        link: self.tree.path(link).lossy(),
                        target: target.lossy(),
                    });
                }
                Hidden::Slot(s) => s,
                Hidden::Spooled(entry, spool) => {
                    self.spool_keep = self.spool_keep.max(spool.end());
                    self.links.slot(Source::Spooled { entry, spool })
                }
                Hidden::Refetchable(entry, ordinal) => {
                    let s = self.links.slot(Source::Refetch { entry, ordinal });
                    self.refetch.push((ordinal, s));
                    s
                }
                Hidden::Other(entry) => self.links.slot(Source::Copy { entry }),
            };
            self.layer_hidden.insert(t, Hidden::Slot(slot));
            return Ok(slot);
        }
        let (status, set_by) = self.tree.status(t);
        if set_by == layer {
            match status {
                Status::Dir | Status::Implicit => {
                    return Err(Error::HardlinkToDirectory {
                        link: self.tree.path(link).lossy(),
                        target: target.lossy(),
                    })
                }
                Status::Symlink | Status::Other => {
                    self.layer_linked.entry(t).or_insert(link);
                    return Ok(self.delivered_slot(t));
                }
                Status::Link => {
                    if let Some(s) = self.links.member(t) {
                        return Ok(s);
                    }
                }
                Status::Unseen => {}
            }
        }
        if self.tree.used_in(t, layer) {
            // An entry of this layer beneath the target made it a directory; the output shows
            // neither (a newer layer replaced it), but extraction would have met a directory.
            return Err(Error::HardlinkToDirectory {
                link: self.tree.path(link).lossy(),
                target: target.lossy(),
            });
        }
        let slot = self.links.slot(Source::Pending { target: t, link });
        self.links.wait(t, (layer, slot, at.ordinal));
        Ok(slot)
    }

    /// The slot of the delivered entry at `node`, created on first use.
    fn delivered_slot(&mut self, node: NodeId) -> SlotId {
        if let Some(s) = self.links.member(node) {
            return s;
        }
        let symlink = self.tree.status(node).0 == Status::Symlink;
        let s = self.links.slot(Source::Delivered { node, symlink });
        self.links.add_member(node, s);
        s
    }

    /// Binds links of newer layers to the version of `node` that entry `target.1` of layer
    /// `target.0` wrote, unless something removed that version before the link was applied
    /// (then the link's target did not exist).
    fn bind_waiting(
        &mut self,
        node: NodeId,
        target: (u32, u64),
        waiting: Vec<Waiter>,
        slot: SlotId,
    ) -> Result<()> {
        for (link_layer, link_slot, link_ord) in waiting {
            if self
                .barriers
                .hides_between(&self.tree, node, target, (link_layer, link_ord))
            {
                let link = match self.links.source(link_slot) {
                    Some(Source::Pending { link, .. }) => self.tree.path(*link).lossy(),
                    _ => String::new(),
                };
                return Err(Error::HardlinkTargetMissing {
                    link,
                    target: self.tree.path(node).lossy(),
                });
            }
            self.links.bind(link_slot, slot);
        }
        Ok(())
    }

    fn link_to_dir(&self, waiting: &[Waiter], node: NodeId) -> Error {
        let link = waiting
            .first()
            .and_then(|&(_, s, _)| match self.links.source(s) {
                Some(Source::Pending { link, .. }) => Some(self.tree.path(*link).lossy()),
                _ => None,
            })
            .unwrap_or_default();
        Error::HardlinkToDirectory {
            link,
            target: self.tree.path(node).lossy(),
        }
    }

    fn beneath_symlink(&self, node: NodeId) -> Error {
        let descendants = self.tree.descendants(node);
        let shown = descendants
            .iter()
            .copied()
            .find(|&d| self.tree.status(d).0 != Status::Unseen);
        let (path, entry_layer) = match shown {
            Some(d) => (Some(d), Some(self.tree.status(d).1)),
            // Only hidden entries went through: name a path beneath it, and the layer that
            // first used it as a directory.
            None => (
                descendants.first().copied(),
                self.last_layer
                    .and_then(|l| self.tree.used_after(node, l))
                    .map(|(user, _)| user),
            ),
        };
        Error::BeneathSymlink {
            path: path.map(|d| self.tree.path(d).lossy()).unwrap_or_default(),
            entry_layer: entry_layer.map(|l| l as usize),
            symlink: self.tree.path(node).lossy(),
        }
    }

    /// Whether a symlink that `layer` puts at `node` had newer entries written through it:
    /// the oldest newer layer to use `node` as a directory did not begin with the path's own
    /// directory entry, and nothing between removed the symlink first (a newer layer that
    /// replaces or deletes it afterwards, or the using layer itself after its first use, does
    /// not undo that).
    fn written_through(&self, node: NodeId, layer: u32) -> bool {
        self.tree.used_after(node, layer).is_some_and(|first_use| {
            !self.tree.dir_first_after(node, layer)
                && !self
                    .barriers
                    .removed_between(&self.tree, node, layer, first_use)
        })
    }

    /// Makes every ancestor of `node` a directory as of `at`: applying an entry creates its
    /// parents. For an entry the output does not show (`hidden_entry`), ancestors whose own
    /// version in this layer is hidden are skipped, but their parents still count. Links of
    /// newer layers waiting for an ancestor learn that it is a directory at this point.
    fn require_parents(&mut self, node: NodeId, at: Pos, hidden_entry: bool) -> Result<()> {
        let layer = at.layer;
        // Extraction writes this entry beneath every ancestor. The first such use in a layer
        // is kept (an ancestor used before in this layer had its own ancestors used too).
        let mut cur = node;
        while let Some(p) = self.tree.parent(cur) {
            if !self.tree.touch(p, layer, at.ordinal, Use::Beneath) {
                break;
            }
            cur = p;
        }
        // Extraction makes every ancestor a directory first: a non-directory this layer left
        // there earlier, which the output does not show, is gone (a later link of the layer
        // to it finds a directory; one made before keeps its inode).
        if !self.layer_hidden.is_empty() {
            let mut cur = node;
            while let Some(p) = self.tree.parent(cur) {
                // A symlink this layer put there (hidden by a newer layer), or a link to one,
                // is not replaced by a directory: extraction would write through it.
                match self.layer_hidden.get(&p) {
                    None => {}
                    Some(Hidden::Other(e)) if matches!(e.kind, EntryKind::Symlink { .. }) => {
                        return Err(self.written_through_error(node, layer, p));
                    }
                    Some(&Hidden::Slot(s)) => {
                        self.check_beneath_link(s, p, node, layer)?;
                        self.layer_hidden.insert(p, Hidden::Dir);
                    }
                    Some(_) => {
                        self.layer_hidden.insert(p, Hidden::Dir);
                    }
                }
                cur = p;
            }
        }
        let mut cur = node;
        let mut settled = false;
        while let Some(p) = self.tree.parent(cur) {
            cur = p;
            let skip = settled || (hidden_entry && self.tree.hidden(p, layer));
            if !skip {
                let (status, set_by) = self.tree.status(p);
                match status {
                    // An ancestor that is (or will be) a directory had its own ancestors
                    // required already.
                    Status::Dir | Status::Implicit => settled = true,
                    // A newer layer's non-directory replaced this layer's directory here.
                    _ if set_by > layer && status != Status::Unseen => settled = true,
                    Status::Unseen => self.tree.set_status(p, Status::Implicit, layer),
                    Status::Symlink => {
                        return Err(Error::BeneathSymlink {
                            path: self.tree.path(node).lossy(),
                            entry_layer: Some(layer as usize),
                            symlink: self.tree.path(p).lossy(),
                        })
                    }
                    Status::Other | Status::Link => {
                        // Earlier in this layer the path was a non-directory; this entry makes
                        // it a directory again, as extraction would, unless it is a link to a
                        // symlink.
                        if let Some(s) = self.links.member(p).filter(|_| status == Status::Link) {
                            self.check_beneath_link(s, p, node, layer)?;
                        }
                        self.replace_nondir(p, false)?;
                        self.deliver_implicit(p, layer)?;
                    }
                }
            }
            if self.take_waiting(p, layer) {
                self.set_version(p, Version::Dir, at.ordinal);
            } else if settled && !self.links.any_pending() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// An entry (`entry`, of `layer`) goes beneath the hard link at `link`, whose inode is
    /// `slot`: an error if that inode is a symlink. Where it is not known yet (the link waits
    /// for an older layer), the check is made at the end.
    fn check_beneath_link(
        &mut self,
        slot: SlotId,
        link: NodeId,
        entry: NodeId,
        layer: u32,
    ) -> Result<()> {
        match self.links.is_symlink(slot) {
            Some(true) => Err(self.written_through_error(entry, layer, link)),
            Some(false) => Ok(()),
            None => {
                self.written_beneath.push((slot, link, entry, layer));
                Ok(())
            }
        }
    }

    /// `entry`, of `layer`, lies beneath the symlink (or link to one) at `symlink`.
    fn written_through_error(&self, entry: NodeId, layer: u32, symlink: NodeId) -> Error {
        Error::BeneathSymlink {
            path: self.tree.path(entry).lossy(),
            entry_layer: Some(layer as usize),
            symlink: self.tree.path(symlink).lossy(),
        }
    }

    /// Delivers the default directory at `node` now.
    fn deliver_implicit(&mut self, node: NodeId, layer: u32) -> Result<()> {
        let e = Entry {
            path: self.tree.path(node),
            kind: EntryKind::Dir,
            meta: Metadata::implicit_dir(),
        };
        self.send(&e, &mut io::empty())?;
        self.tree.set_status(node, Status::Dir, layer);
        self.tree.set_meta_layer(node, None);
        Ok(())
    }

    /// The non-directory at `node`, delivered earlier in this layer, is being replaced.
    /// `same_inode`: the replacement is a hard link to another name of the same group, which
    /// keeps the inode (and what links to it) as it is.
    fn replace_nondir(&mut self, node: NodeId, same_inode: bool) -> Result<()> {
        if !same_inode && self.links.is_bound(node) {
            return Err(self.replaced_target(node));
        }
        // A link of this layer points to what was delivered here, possibly from a path whose
        // own version is hidden (so it is no member of the group): its slot names this path,
        // which is about to hold something else.
        if let Some(&link) = self.layer_linked.get(&node).filter(|_| !same_inode) {
            return Err(Error::HardlinkTargetReplaced {
                link: self.tree.path(link).lossy(),
                target: self.tree.path(node).lossy(),
            });
        }
        self.links.remove_member(node);
        Ok(())
    }

    /// A non-directory of `layer` replaces the directory at `node`: what this layer put
    /// beneath it goes. Entries not yet written (links, directories only required) are simply
    /// forgotten; an entry already written cannot be taken back, which is an error.
    fn drop_subtree(&mut self, node: NodeId, layer: u32) -> Result<()> {
        for d in self.tree.descendants(node) {
            let (status, set_by) = self.tree.status(d);
            if status == Status::Dir && set_by > layer && self.tree.meta_layer(d) == Some(layer) {
                // A newer layer keeps this directory, but the description this layer gave it
                // went with the replaced subtree.
                self.deliver_implicit(d, set_by)?;
                continue;
            }
            if status == Status::Unseen || set_by != layer {
                continue;
            }
            // A link of this layer that replaced an entry this layer had already written (a
            // directory, whose description is still this layer's, or a symlink, file or device,
            // marked so when the link replaced it) leaves that entry in the output.
            let written_dir = status == Status::Link && self.tree.meta_layer(d) == Some(layer);
            if written_dir || matches!(status, Status::Dir | Status::Symlink | Status::Other) {
                return Err(Error::ReplacedAfterWrite {
                    path: self.tree.path(node).lossy(),
                    written: self.tree.path(d).lossy(),
                });
            }
            if self.links.is_bound(d) {
                return Err(self.replaced_target(d));
            }
            self.links.remove_member(d);
            self.tree.set_status(d, Status::Unseen, 0);
        }
        Ok(())
    }

    fn replaced_target(&self, node: NodeId) -> Error {
        Error::HardlinkTargetReplaced {
            link: self
                .links
                .other_member(node)
                .map(|m| self.tree.path(m).lossy())
                .unwrap_or_default(),
            target: self.tree.path(node).lossy(),
        }
    }

    fn send(&mut self, e: &Entry, data: &mut dyn Read) -> Result<()> {
        self.sink.entry(e, data)?;
        self.entries += 1;
        if let EntryKind::File { size, .. } = e.kind {
            self.bytes += size;
        }
        if self.bytes >= self.reported + (1 << 20) || self.entries % 1024 == 0 {
            self.report_written();
        }
        Ok(())
    }

    /// Delivers what waited for the end (directories no layer described, then hard-link groups)
    /// and finishes the sink.
    pub fn finish(mut self) -> Result<Summary> {
        if let Some(e) = self.links.unresolved(&self.tree) {
            return Err(e);
        }
        for &(slot, link, entry, layer) in &self.written_beneath {
            if self.links.is_symlink(slot) == Some(true) {
                return Err(self.written_through_error(entry, layer, link));
            }
        }
        let implicit: Vec<NodeId> = self
            .tree
            .ids()
            .filter(|&id| match self.tree.status(id).0 {
                Status::Implicit => true,
                Status::Unseen => id == ROOT,
                _ => false,
            })
            .collect();
        for id in implicit {
            self.deliver_implicit(id, 0)?;
        }
        for (root, members) in self.links.groups(&self.tree)? {
            self.deliver_group(root, &members)?;
        }
        self.report_written();
        self.sink.finish()
    }

    fn deliver_group(&mut self, root: SlotId, members: &[NodeId]) -> Result<()> {
        let (first, rest) = match self.links.source(root) {
            Some(Source::Delivered { node, .. }) => {
                let node = *node;
                (
                    node,
                    members.iter().copied().filter(|&m| m != node).collect(),
                )
            }
            _ => {
                let Some((&first, rest)) = members.split_first() else {
                    return Ok(());
                };
                let mut e = match self.links.source(root) {
                    Some(Source::Spooled { entry, .. } | Source::Copy { entry }) => entry.clone(),
                    _ => return Err(Error::Stopped),
                };
                e.path = self.tree.path(first);
                match self.links.source(root) {
                    Some(Source::Spooled { spool, .. }) => {
                        let r = *spool;
                        let mut reader = self.spool.reader(r);
                        self.sink.entry(&e, &mut reader)?;
                        self.entries += 1;
                        if let EntryKind::File { size, .. } = e.kind {
                            self.bytes += size;
                        }
                    }
                    _ => self.send(&e, &mut io::empty())?,
                }
                (first, rest.to_vec())
            }
        };
        let target = self.tree.path(first);
        for m in rest {
            let e = Entry {
                path: self.tree.path(m),
                kind: EntryKind::Hardlink {
                    target: target.clone(),
                },
                meta: self.links.link_meta(m),
            };
            self.send(&e, &mut io::empty())?;
        }
        Ok(())
    }
}

/// Extraction clears a link's own path before linking, so a link to itself finds nothing.
fn refuse_self_link(e: &Entry) -> Result<()> {
    match &e.kind {
        EntryKind::Hardlink { target } if *target == e.path => Err(Error::HardlinkTargetMissing {
            link: e.path.lossy(),
            target: target.lossy(),
        }),
        _ => Ok(()),
    }
}

fn is_link(e: &Entry) -> bool {
    matches!(e.kind, EntryKind::Hardlink { .. })
}

/// Whether `e` is a symlink, or a hard link that may be one.
fn may_be_symlink(e: &Entry) -> bool {
    matches!(
        e.kind,
        EntryKind::Symlink { .. } | EntryKind::Hardlink { .. }
    )
}
