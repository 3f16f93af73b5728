//! The overlay merge: layers newest-first in, one normalized entry stream out.
//!
//! # The rules
//! The output is what applying the layers oldest first to an empty root leaves, as containerd's
//! applier does it. Each rule and where it lives:
//! - **Names** are cleaned lexically when read ([`EntryPath::new`]); every parent symlink is
//!   resolved inside the root, the last component never ([`resolve`], whose doc states the
//!   walk); on the first pass names are taken as written (below).
//! - **Whiteouts and opaque markers** delete from older layers only, wherever they are in their
//!   layer; a **non-directory** replaces an older directory with its subtree ([`whiteout`]: every
//!   hiding record and the questions asked of them).
//! - **Within a layer** a later entry replaces an earlier one at the same path (the sink
//!   receives the path again, see [`Sink`]); a directory the layer replaces by a non-directory
//!   loses what the layer put beneath it ([`Merger::drop_subtree`], and on the second pass
//!   [`Rewrite::Removed`](resolve::Rewrite)).
//! - **Hard links** mean their target as it was when their layer was applied ([`hardlink`]).
//! - **Missing parents** become directories, 0755 root:root, time 0, delivered at the end when
//!   no layer describes them.
//!
//! # One pass, or two
//! Reading the newest layer first means the first entry that survives at a path is the one the
//! image shows, so it goes to the sink at once with its data streaming straight through. The
//! price is that the merge cannot resolve a name against layers it has not read yet. So the
//! first pass takes names as written and stops with [`Error::SecondPassNeeded`] as soon as it
//! learns that this was wrong: an entry went beneath what turns out to be a symlink
//! ([`Error::BeneathSymlink`], checked exactly), a whiteout, opaque marker or hard link named a
//! path beneath an older symlink (checked conservatively: [`PathTree::named_beneath`]), a hard
//! link's target is not where its name says, or an entry its own layer removes was already
//! written. The drivers ([`convert`](crate::convert), the
//! [`StreamingPacker`](crate::StreamingPacker)) then discard the output, let a [`Resolver`]
//! read the layers' headers oldest first, and merge again with [`Merger::with_resolution`]:
//! every entry at its resolved path, so that no name goes through a symlink and the same
//! newest-first rules give the runtimes' tree. Images that don't need it pay nothing.
//!
//! # What is held
//! No entry and no byte of content is held back, except
//! - hard links, which wait until the end (their target must be delivered first, and a target
//!   in an older layer has not been read yet: [`hardlink`]);
//! - content that a hard link still needs after its target's name was deleted or replaced,
//!   which goes to a disk spool ([`spool`]);
//! - directories that entries need but no layer describes, delivered at the end.
//!
//! What is held in memory is per path ([`paths`]): the interned path tree with each path's
//! status, and the hiding records. What is kept about the layer being read is one
//! [`LayerState`], replaced when the next layer begins.

mod hardlink;
mod hidden;
mod paths;
mod resolve;
mod spool;
#[cfg(test)]
mod tests;
mod whiteout;

use std::io::{self, Read};

use hashbrown::{HashMap, HashSet};

use crate::cancel::CancelToken;
use crate::digest::Digest;
use crate::entry::{Entry, EntryKind, Metadata};
use crate::error::{Error, Result};
use crate::options::{ConvertOptions, ProgressFn};
use crate::path::EntryPath;
use crate::progress::Progress;
use crate::sink::{Sink, Summary};

use hardlink::{Links, SlotId, Source, Waiter};
use hidden::{Hidden, HiddenVersions};
use paths::{NodeId, PathTree, Status, Use, ROOT};
use resolve::Rewrite;
pub use resolve::{Resolution, Resolver};
use spool::Spool;
use whiteout::{Barriers, Hides, Name};

/// Opens a layer's decoded tar stream again, for the rare case where a hard link needs the
/// content of a file its own layer hid and that content already went by.
pub type Reopen<'a> = &'a mut dyn FnMut() -> Result<Box<dyn Read + Send>>;

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

/// An entry as the second pass places it.
enum Resolved {
    /// At its resolved path (its own on the first pass).
    Entry(Entry),
    /// Removed by a later entry of its own layer.
    Removed(Entry),
}

/// Whether [`Merger::hidden`] still has to make an entry's parents directories.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Parents {
    /// As applying the entry would.
    Make,
    /// Done already (AUFS metadata: its parents up to the first AUFS name).
    Made,
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
    /// What is kept about the layer being read.
    current: LayerState,
    /// Hard links that an entry went beneath before their inode was known.
    through_links: Vec<ThroughLink>,
    /// The first hard link to a directory that outlived its layer, on the first pass: an
    /// error at the end unless an older layer calls for the second pass first.
    bad_link: Option<Error>,
    /// Where entries land when the image needs its names resolved in layer order (the second
    /// pass); `None` on the first.
    resolution: Option<Resolution>,
    /// The layers' digests, when the driver names them (for errors about an entry of a layer
    /// other than the one being read).
    digests: Vec<Digest>,
    progress: Option<ProgressFn>,
    /// Looked at before each entry and each read of layer or file data.
    cancel: CancelToken,
    entries: u64,
    bytes: u64,
    reported: u64,
    /// The memory the path tree and hiding records may keep before its pages go to disk (`None`: no limit).
    share: Option<usize>,
    /// [`Merger::paged_out`] when last reported.
    paged_reported: u64,
}

/// The part of [`ConvertOptions::memory_limit`] the merge's path tree may hold; the rest is
/// the sink's (the squashfs writer spills its own tree against the whole limit, counting this).
fn merge_share(options: &ConvertOptions) -> Option<usize> {
    let limit = options.memory_limit.get();
    (limit != u64::MAX).then(|| usize::try_from(limit / 2).unwrap_or(usize::MAX))
}

/// What the merge keeps about the layer it is reading; replaced when the next layer begins.
#[derive(Default)]
struct LayerState {
    /// Hidden versions of the layer, by path.
    hidden: HiddenVersions,
    /// Links of newer layers waiting for paths the layer has.
    waiting: HashMap<NodeId, Waiting>,
    /// Symlinks of the layer at paths newer entries need as directories: an error unless a
    /// later entry of the layer replaces the symlink.
    symlinks: Vec<Watched>,
    /// Delivered non-directories of the layer that a link of the layer (shown or hidden)
    /// points to, with one such link: replacing one later in the layer is an error.
    linked: HashMap<NodeId, NodeId>,
    /// Links of the layer to a directory, with the error they are if they outlive the layer
    /// (a later entry of the layer that replaces one makes it harmless: nothing can use it).
    bad_links: Vec<(SlotId, Error)>,
    /// Slots of the layer's links that wait for an older layer.
    waiters: Vec<SlotId>,
    /// Slots whose content must be fetched by re-reading the layer, by entry ordinal.
    refetch: Vec<(u64, SlotId)>,
    /// Spool position at the start of the layer, and the end of what it must keep.
    spool_start: u64,
    spool_keep: u64,
}

/// A symlink (or hard link: `slot` is its inode, which may be a symlink) that newer entries
/// went beneath.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Watched {
    node: NodeId,
    slot: Option<SlotId>,
}

/// A hard link of layer `layer` at `link` that `entry` went beneath (making the path a
/// directory) before the link's inode `slot` was known: if it turns out to be a symlink,
/// extraction wrote through it.
#[derive(Clone, Copy)]
struct ThroughLink {
    slot: SlotId,
    link: NodeId,
    entry: NodeId,
    layer: u32,
}

impl Merger {
    /// A merger for an image of `layers` layers writing into `sink`. Once
    /// [`ConvertOptions::cancel`] is cancelled, every method fails with [`Error::Interrupted`]
    /// at its next entry or read of data (dropping the merger then drops the sink, which
    /// removes its partial output).
    pub fn new(sink: Box<dyn Sink>, layers: usize, options: &ConvertOptions) -> Merger {
        let dir = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
        Merger {
            sink,
            tree: PathTree::new(dir.clone()),
            barriers: Barriers::new(dir),
            links: Links::default(),
            spool: Spool::in_dir(options.temp_dir.clone()),
            layers,
            last_layer: None,
            current: LayerState::default(),
            through_links: Vec::new(),
            bad_link: None,
            resolution: None,
            digests: Vec::new(),
            progress: options.progress.clone(),
            cancel: options.cancel.clone(),
            entries: 0,
            bytes: 0,
            reported: 0,
            share: merge_share(options),
            paged_reported: 0,
        }
    }

    /// A merger for the second pass: every entry lands where `resolution` says (see
    /// [`Resolver`]). Layers still come newest first.
    pub fn with_resolution(
        sink: Box<dyn Sink>,
        layers: usize,
        options: &ConvertOptions,
        resolution: Resolution,
    ) -> Merger {
        Merger {
            resolution: Some(resolution),
            ..Merger::new(sink, layers, options)
        }
    }

    /// Names the layers (`digests[i]` is layer `i`'s), so that an error about an entry of a
    /// layer other than the one being merged (a hard link whose target an older layer lacks)
    /// names the entry's own layer with its digest.
    pub fn name_layers(&mut self, digests: Vec<Digest>) {
        self.digests = digests;
    }

    /// `e`, about an entry of layer `layer`, attributed to that layer.
    fn of_layer(&self, layer: u32, e: Error) -> Error {
        match self.digests.get(layer as usize) {
            Some(digest) => e.in_layer(layer as usize, digest),
            None => Error::OfLayer {
                index: layer as usize,
                source: Box::new(e),
            },
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
                .map_err(|e| self.second_pass_or(e.in_entry(path.as_bytes())))?;
        }
        self.end_layer(None).map_err(|e| self.second_pass_or(e))
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
        // Every read of the layer (headers, file data, skipped data) stops once cancelled.
        let cancel = self.cancel.clone();
        let mut stream = cancel.reader(stream);
        crate::tar_reader::for_each_entry(&mut stream, &mut |entry, data| {
            let path = entry.path.clone();
            let r = self.entry(layer, ordinal, refetchable, entry, data);
            ordinal += 1;
            r.map_err(|e| e.in_entry(path.as_bytes()))
        })
        .and_then(|()| self.end_layer(reopen))
        .map_err(|e| self.second_pass_or(e))
    }

    /// On the first pass, the refusals that resolving names in layer order may undo become
    /// [`Error::SecondPassNeeded`]: an entry through a symlink, a hard link whose target is not
    /// where its name says, an entry its own layer removed after it was written. On the second
    /// pass every error stands.
    fn second_pass_or(&self, e: Error) -> Error {
        if self.resolution.is_some() {
            return e;
        }
        match e.root_cause() {
            Error::BeneathSymlink { .. }
            | Error::ReplacedAfterWrite { .. }
            | Error::HardlinkTargetMissing { .. } => Error::SecondPassNeeded {
                why: e.report().to_string(),
            },
            _ => e,
        }
    }

    fn begin_layer(&mut self, index: usize) -> Result<u32> {
        if self.layers >= paths::MAX_LAYERS {
            return Err(Error::TooLarge {
                what: "number of layers",
                size: self.layers as u64,
                limit: paths::MAX_LAYERS as u64 - 1,
            });
        }
        let layer = u32::try_from(index)
            .ok()
            .filter(|_| index < self.layers)
            .ok_or(Error::LayerIndexOutOfRange {
                index,
                count: self.layers,
            })?;
        if let Some(last) = self.last_layer {
            if layer >= last {
                return Err(Error::LayerOrder {
                    index,
                    previous: last as usize,
                    newest_first: true,
                });
            }
        }
        self.last_layer = Some(layer);
        let mark = self.spool.mark();
        self.current = LayerState {
            spool_start: mark,
            spool_keep: mark,
            ..LayerState::default()
        };
        Ok(layer)
    }

    fn end_layer(&mut self, reopen: Option<Reopen<'_>>) -> Result<()> {
        if !self.current.refetch.is_empty() {
            let Some(reopen) = reopen else {
                return Err(Error::Bug {
                    what: "a layer read once has files to fetch again",
                });
            };
            self.fetch_again(reopen)?;
        }
        let hidden_slots: Vec<SlotId> =
            if self.current.bad_links.is_empty() && self.current.waiters.is_empty() {
                Vec::new()
            } else {
                self.current.hidden.slots().collect()
            };
        self.current.hidden.clear();
        let mut symlinks = std::mem::take(&mut self.current.symlinks);
        symlinks.sort_unstable();
        for Watched { node, slot } in symlinks {
            match slot.map(|s| (s, self.links.is_symlink(s))) {
                None | Some((_, Some(true))) => return Err(self.beneath_symlink(node)),
                Some((_, Some(false))) => {}
                Some((s, None)) => {
                    // A link whose inode an older layer decides: checked at the end.
                    let layer = self.last_layer.unwrap_or(0);
                    let user = self.tree.used_after(node, layer).map_or(layer, |u| u.0);
                    let entry = self.tree.descendants(node).first().copied().unwrap_or(node);
                    self.through_links.push(ThroughLink {
                        slot: s,
                        link: node,
                        entry,
                        layer: user,
                    });
                }
            }
        }
        let layer = self.last_layer.unwrap_or(0);
        let mut waiting: Vec<(NodeId, Waiting)> = self.current.waiting.drain().collect();
        waiting.sort_by_key(|(n, _)| *n);
        for (node, w) in waiting {
            match w.version {
                Some((Version::Slot(slot), ord)) => {
                    self.bind_waiting(node, (layer, ord), w.links, slot)?
                }
                Some((Version::Dir, _)) => {
                    let live: Vec<Waiter> = (w.links.into_iter())
                        .filter(|w| !self.links.is_abandoned(w.slot))
                        .collect();
                    if !live.is_empty() {
                        let e = self.link_to_dir(&live, node);
                        self.fail_after_older_layers(e)?;
                    }
                }
                None => {}
            }
        }
        self.links_outliving_the_layer(hidden_slots)?;
        // Content spooled on the chance that a link of this layer wants it, which none did.
        self.spool
            .truncate(self.current.spool_keep.max(self.current.spool_start))?;
        // Counts are throttled while entries flow; at a layer's end they should be exact.
        self.report_written();
        Ok(())
    }

    /// A hard link to a directory: an error, but on the first pass only once the older layers
    /// are read. The directory may be one only on this pass's assumption that names go where
    /// they say (an older layer's symlink on the way would move them), and an older layer may
    /// yet call for the second pass.
    fn fail_after_older_layers(&mut self, e: Error) -> Result<()> {
        if self.resolution.is_some() {
            return Err(e);
        }
        if self.bad_link.is_none() {
            self.bad_link = Some(e);
        }
        Ok(())
    }

    /// Judges the layer's links by whether they outlive it (are still an output path, or a
    /// hidden version, at its end): a link to a directory is an error only then, and a link
    /// that waits for an older layer but did not outlive its own is abandoned.
    fn links_outliving_the_layer(&mut self, hidden_slots: Vec<SlotId>) -> Result<()> {
        let bad = std::mem::take(&mut self.current.bad_links);
        let waiters = std::mem::take(&mut self.current.waiters);
        if bad.is_empty() && waiters.is_empty() {
            return Ok(());
        }
        let links = &self.links;
        let live: HashSet<SlotId> = (links.member_slots().chain(hidden_slots))
            .map(|s| links.root(s))
            .collect();
        for (slot, e) in bad {
            if !live.contains(&self.links.root(slot)) {
                continue;
            }
            let layer = self.last_layer.unwrap_or(0);
            let e = self.of_layer(layer, e);
            self.fail_after_older_layers(e)?;
        }
        for slot in waiters {
            if !live.contains(&self.links.root(slot)) {
                self.links.abandon(slot);
            }
        }
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
        let mut wanted: HashMap<u64, SlotId> = self.current.refetch.drain(..).collect();
        let mut stream = reopen()?;
        let mut ordinal = 0u64;
        let links = &mut self.links;
        let spool = &mut self.spool;
        let mut keep = self.current.spool_keep;
        crate::tar_reader::for_each_entry(&mut stream, &mut |entry, data| {
            if let Some(slot) = wanted.remove(&ordinal) {
                if let EntryKind::File { size, .. } = entry.kind {
                    let r = spool.append(data, size)?;
                    keep = spool.mark();
                    if let Some(src) = links.source_mut(slot) {
                        if let Source::Refetch { .. } = src {
                            // The header read again is the one read first: the layer's bytes
                            // are proven by its digest (and the path is the link group's, set
                            // when it is delivered).
                            *src = Source::Spooled { entry, spool: r };
                        }
                    }
                }
            }
            ordinal += 1;
            Ok(())
        })?;
        self.current.spool_keep = keep;
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

    /// One entry of layer `layer`, the `ordinal`-th of its stream: the rulebook's entry point.
    /// Applies one entry ([`Merger::apply`]), then keeps the path tree within its share of the
    /// memory budget. A failure to page the tree outranks whatever the entry made of the pages
    /// that could not be read.
    fn entry(
        &mut self,
        layer: u32,
        ordinal: u64,
        refetchable: bool,
        e: Entry,
        data: &mut dyn Read,
    ) -> Result<()> {
        let r = self.apply(layer, ordinal, refetchable, e, data);
        if let Some(e) = self.paging_error() {
            return Err(e);
        }
        if ordinal.is_multiple_of(256) {
            self.look_at_budget();
        }
        r
    }

    /// Bytes of the merge's state that grows with the image (for the memory budget).
    fn heap_bytes(&self) -> usize {
        self.tree.heap_bytes() + self.barriers.heap_bytes() + self.current.hidden.heap_bytes()
    }

    /// Keeps the path tree and the hiding records within the merge's share of the budget as
    /// far as paging can: what cannot page comes first, the rest is shared by size, with at
    /// least an eighth of the share for pages however large the unpageable part has grown.
    fn look_at_budget(&mut self) {
        if let Some(share) = self.share {
            let fixed = self.tree.fixed_bytes()
                + self.barriers.fixed_bytes()
                + self.current.hidden.heap_bytes();
            let pages = share.saturating_sub(fixed).max(share / 8);
            let (t, c) = (self.tree.paged_total(), self.barriers.paged_total());
            let for_chain = (pages as u128 * c as u128 / (t + c).max(1) as u128) as usize;
            self.barriers.set_page_limit(for_chain);
            self.tree.set_page_limit(pages - for_chain);
        }
        let paged = self.paged_out();
        if paged >= self.paged_reported + (1 << 20) || (paged > 0 && self.paged_reported == 0) {
            self.paged_reported = paged;
            if let Some(p) = &self.progress {
                p(&Progress::Paged { bytes: paged });
            }
        }
    }

    /// Bytes of the merge's pages written to disk so far.
    fn paged_out(&self) -> u64 {
        self.tree.paged_out() + self.barriers.paged_out()
    }

    /// The first I/O error of paging: lookups since may have read lost pages.
    fn paging_error(&mut self) -> Option<Error> {
        let tree = self.tree.take_error();
        let chain = self.barriers.take_error();
        tree.or(chain)
    }

    fn apply(
        &mut self,
        layer: u32,
        ordinal: u64,
        refetchable: bool,
        e: Entry,
        data: &mut dyn Read,
    ) -> Result<()> {
        self.cancel.check()?;
        let at = Pos { layer, ordinal };
        let e = match self.resolved(at, e) {
            Resolved::Removed(e) => {
                // Applied, then removed by a later entry of its layer: it made its parents
                // directories, replaced what the path held (a directory entry is the path's
                // first use as a directory, before anything beneath it), and a link may still
                // want it, as any hidden version.
                let node = self.tree.intern(&e.path);
                self.replaces(at, node, &e);
                return self.hidden(at, refetchable, node, e, data, Parents::Make);
            }
            Resolved::Entry(e) => e,
        };
        match whiteout::classify(&e.path)? {
            Name::Whiteout(target) => self.marker(at, &target, Hides::Whiteout),
            Name::Opaque(dir) => self.marker(at, &dir, Hides::Opaque),
            Name::Aufs(through) => {
                // Never shown, but extraction made its parents directories, and a link to
                // itself is as wrong here as anywhere (see below).
                let q = self.tree.intern(&through);
                let hidden = self.tree.hidden(q, layer);
                self.require_parents(q, at, hidden)?;
                let n = self.tree.intern(&e.path);
                self.hidden(at, refetchable, n, e, data, Parents::Made)
            }
            Name::Plain => self.plain(at, refetchable, e, data),
        }
    }

    /// The entry as the second pass's [`Resolution`] places it (unchanged on the first pass).
    fn resolved(&self, at: Pos, mut e: Entry) -> Resolved {
        match self
            .resolution
            .as_ref()
            .and_then(|r| r.get(at.layer, at.ordinal))
        {
            None => Resolved::Entry(e),
            Some(Rewrite::Removed { path, target }) => {
                move_entry(&mut e, path.as_ref(), target.as_ref());
                Resolved::Removed(e)
            }
            Some(Rewrite::Moved { path, target }) => {
                move_entry(&mut e, Some(path), target.as_ref());
                Resolved::Entry(e)
            }
        }
    }

    /// A whiteout (of `path`) or opaque marker (of the directory `path`): a hiding record for
    /// the older layers.
    fn marker(&mut self, at: Pos, path: &EntryPath, hides: Hides) -> Result<()> {
        let n = self.tree.intern(path);
        // Its directory is named: a first pass that finds it is an older symlink starts over.
        let dir = match hides {
            Hides::Opaque => Some(n),
            _ => self.tree.parent(n),
        };
        if let Some(dir) = dir {
            self.tree.mark_named_in(dir);
        }
        self.barriers
            .record(&mut self.tree, n, at.layer, at.ordinal, hides);
        Ok(())
    }

    /// An ordinary entry: it replaces what older layers and its own layer put at its path,
    /// then shows unless something newer hides or shadows it.
    fn plain(&mut self, at: Pos, refetchable: bool, e: Entry, data: &mut dyn Read) -> Result<()> {
        let layer = at.layer;
        if e.path.is_root() && !e.kind.is_dir() {
            // A file, link or device named `.` (or `a/..`): containerd skips an entry that
            // resolves to the root, and so does the merge; the root stays a directory.
            return Ok(());
        }
        let node = self.tree.intern(&e.path);
        if self.resolution.is_none() && may_be_symlink(&e) && self.tree.named_beneath(node) {
            // A whiteout, opaque marker or link of a newer layer (or of this one) names a path
            // through what may be a symlink here: only resolving in layer order tells where.
            return Err(Error::SecondPassNeeded {
                why: format!("a name goes through {:?}", e.path.lossy()),
            });
        }
        self.replaces(at, node, &e);
        if self.tree.hidden(node, layer) {
            // Hidden in the output, but newer entries may have gone through it before that.
            if may_be_symlink(&e) && self.written_through(node, layer) {
                return self.hidden_written_through(at, refetchable, node, e, data);
            }
            return self.hidden(at, refetchable, node, e, data, Parents::Make);
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
                let same_inode = self.same_inode(node, &e);
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

    /// What `e` at `node` replaces, whether or not it shows: a directory entry is a use of the
    /// path as a directory; a non-directory removes what older layers had beneath it, and what
    /// its own layer put there (hidden versions; symlinks this layer put where newer entries
    /// needed a directory).
    fn replaces(&mut self, at: Pos, node: NodeId, e: &Entry) {
        if e.kind.is_dir() {
            self.tree.touch(node, at.layer, at.ordinal, Use::DirEntry);
            self.current.symlinks.retain(|w| w.node != node);
            return;
        }
        if !self.current.symlinks.is_empty() {
            let tree = &self.tree;
            self.current.symlinks.retain(|w| {
                std::iter::successors(Some(w.node), |&c| tree.parent(c)).all(|c| c != node)
            });
        }
        self.barriers
            .record(&mut self.tree, node, at.layer, at.ordinal, Hides::NonDir);
        // Links made before keep their versions.
        if !self.current.hidden.is_empty() && self.tree.has_children(node) {
            for d in self.tree.descendants(node) {
                self.current.hidden.remove(&d);
            }
        }
    }

    /// Whether `e`, replacing the non-directory at `node`, is a hard link to another name of
    /// the inode the path holds: extraction puts the same inode back, so what links of this
    /// layer point to stays.
    fn same_inode(&mut self, node: NodeId, e: &Entry) -> bool {
        let EntryKind::Hardlink { target } = &e.kind else {
            return false;
        };
        let t = self.tree.intern(target);
        // The target's name may be hidden, its version kept for links only.
        let of_target = self.links.member(t).or(match self.current.hidden.get(&t) {
            Some(&Hidden::Slot(s)) => Some(s),
            _ => None,
        });
        let root = |s| self.links.root(s);
        let group = self.links.member(node).map(root);
        group.is_some() && of_target.map(root) == group
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
            if may_be_symlink(&e) && self.written_through(node, layer) {
                return self.hidden_written_through(at, refetchable, node, e, data);
            }
            return self.hidden(at, refetchable, node, e, data, Parents::Make);
        }
        // Replaced by a non-directory of a newer layer before the newer entries made it a
        // directory again: this entry no longer describes anything.
        let replaced = self.barriers.nondir_after(&self.tree, node, layer);
        let described_by = self.tree.meta_layer(node);
        if e.kind.is_dir() {
            if replaced || described_by.is_some_and(|l| l > layer) {
                return self.hidden(at, refetchable, node, e, data, Parents::Make);
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
        if watch {
            return self.hidden_written_through(at, refetchable, node, e, data);
        }
        self.hidden(at, refetchable, node, e, data, Parents::Make)
    }

    /// [`hidden`](Self::hidden) for a symlink, or a hard link that may be one, that newer
    /// entries went beneath: an error at the end of the layer unless a later entry of the
    /// layer replaces it (see [`Watched`]).
    fn hidden_written_through(
        &mut self,
        at: Pos,
        refetchable: bool,
        node: NodeId,
        e: Entry,
        data: &mut dyn Read,
    ) -> Result<()> {
        let link = is_link(&e);
        self.hidden(at, refetchable, node, e, data, Parents::Make)?;
        let slot = match self.current.hidden.get(&node) {
            Some(&Hidden::Slot(s)) if link => Some(s),
            _ => None,
        };
        self.current.symlinks.push(Watched { node, slot });
        Ok(())
    }

    /// Delivers a winning entry (or, for a hard link, records it for the end).
    fn deliver(&mut self, at: Pos, node: NodeId, e: Entry, data: &mut dyn Read) -> Result<()> {
        let layer = at.layer;
        // A hidden version this layer put here before is replaced (links made before keep it).
        if !self.current.hidden.is_empty() {
            self.current.hidden.remove(&node);
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
    /// newer entry, removed by its own layer, or AUFS metadata. Its parents still became
    /// directories when its layer was applied, and hard links may still need it.
    fn hidden(
        &mut self,
        at: Pos,
        refetchable: bool,
        node: NodeId,
        mut e: Entry,
        data: &mut dyn Read,
        parents: Parents,
    ) -> Result<()> {
        let layer = at.layer;
        if parents == Parents::Make {
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
                self.current.spool_keep = self.current.spool_keep.max(spool.end());
                Hidden::Slot(self.links.slot(Source::Spooled { entry: e, spool }))
            }
            EntryKind::File { .. } if refetchable => Hidden::Refetchable(at.ordinal),
            EntryKind::File { size, .. } => {
                let spool = self.spool.append(data, size)?;
                Hidden::Spooled(Box::new((e, spool)))
            }
            _ if waits => Hidden::Slot(self.links.slot(Source::Copy { entry: e })),
            _ => Hidden::Other(Box::new(e)),
        };
        if let Hidden::Slot(slot) = version {
            if waits {
                self.set_version(node, Version::Slot(slot), at.ordinal);
            }
        }
        self.current.hidden.insert(node, version);
        Ok(())
    }

    /// Moves the links of newer layers that wait for `node` to this layer's list; whether any
    /// wait (then each version of `node` in this layer must be recorded).
    fn take_waiting(&mut self, node: NodeId, layer: u32) -> bool {
        let newly = self.links.take_waiting(node, layer);
        if !newly.is_empty() {
            self.current
                .waiting
                .entry(node)
                .or_default()
                .links
                .extend(newly);
        }
        self.current.waiting.contains_key(&node)
    }

    fn set_version(&mut self, node: NodeId, version: Version, ordinal: u64) {
        if let Some(w) = self.current.waiting.get_mut(&node) {
            w.version = Some((version, ordinal));
        }
    }

    /// The inode slot a hard link of `layer` at `link` to `target` belongs to: the target's
    /// version earlier in the same layer, or a pending slot that an older layer will resolve.
    fn link_slot(&mut self, at: Pos, link: NodeId, target: &EntryPath) -> Result<SlotId> {
        let layer = at.layer;
        let t = self.tree.intern(target);
        if let Some(dir) = self.tree.parent(t) {
            self.tree.mark_named_in(dir);
        }
        if self.resolution.is_none() && self.through_own_symlink(t, layer) {
            return Err(Error::SecondPassNeeded {
                why: format!(
                    "hard link {:?} names {:?} through a symlink of its own layer",
                    self.tree.path(link).lossy(),
                    target.lossy()
                ),
            });
        }
        if t == link || self.tree.is_beneath(t, link) {
            // Extraction clears a link's own path before linking: it finds nothing there.
            let e = Error::HardlinkTargetMissing {
                link: target.lossy(),
                target: target.lossy(),
            };
            return Ok(self.bad_link_with(t, link, e));
        }
        if let Some(h) = self.current.hidden.remove(&t) {
            let slot = match h {
                Hidden::Dir => {
                    self.current.hidden.insert(t, Hidden::Dir);
                    return Ok(self.bad_link(t, link, target));
                }
                Hidden::Slot(s) => s,
                Hidden::Spooled(spooled) => {
                    let (entry, spool) = *spooled;
                    self.current.spool_keep = self.current.spool_keep.max(spool.end());
                    self.links.slot(Source::Spooled { entry, spool })
                }
                Hidden::Refetchable(ordinal) => {
                    let s = self.links.slot(Source::Refetch { ordinal });
                    self.current.refetch.push((ordinal, s));
                    s
                }
                Hidden::Other(entry) => self.links.slot(Source::Copy { entry: *entry }),
            };
            self.current.hidden.insert(t, Hidden::Slot(slot));
            return Ok(slot);
        }
        let (status, set_by) = self.tree.status(t);
        if set_by == layer {
            match status {
                Status::Dir | Status::Implicit => return Ok(self.bad_link(t, link, target)),
                Status::Symlink | Status::Other => {
                    self.current.linked.entry(t).or_insert(link);
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
            return Ok(self.bad_link(t, link, target));
        }
        let slot = self.links.slot(Source::Pending { target: t, link });
        self.current.waiters.push(slot);
        self.links.wait(
            t,
            Waiter {
                layer,
                slot,
                ordinal: at.ordinal,
            },
        );
        Ok(slot)
    }

    /// Whether an ancestor of `node` is, at this point of `layer`, a symlink (or a hard link
    /// that may be one) that the layer put there earlier, shown or hidden: a name through it
    /// lands elsewhere. Older layers' symlinks are caught when they are read (the target's
    /// directory is marked named).
    fn through_own_symlink(&self, node: NodeId, layer: u32) -> bool {
        let maybe_symlink = |s: SlotId| self.links.is_symlink(s) != Some(false);
        std::iter::successors(self.tree.parent(node), |&p| self.tree.parent(p)).any(|p| match self
            .current
            .hidden
            .get(&p)
        {
            Some(Hidden::Other(e)) => matches!(e.kind, EntryKind::Symlink { .. }),
            Some(&Hidden::Slot(s)) => maybe_symlink(s),
            Some(_) => false,
            None if self.current.hidden.has_file(p) => false,
            None => match self.tree.status(p) {
                (Status::Symlink, by) => by == layer,
                (Status::Link, by) if by == layer => {
                    self.links.member(p).is_some_and(maybe_symlink)
                }
                _ => false,
            },
        })
    }

    /// A slot for the link at `link` to the directory `target` (node `t`) of its own layer:
    /// an error unless a later entry of the layer replaces the link.
    fn bad_link(&mut self, t: NodeId, link: NodeId, target: &EntryPath) -> SlotId {
        let e = Error::HardlinkToDirectory {
            link: self.tree.path(link).lossy(),
            target: target.lossy(),
        };
        self.bad_link_with(t, link, e)
    }

    /// A slot for a link that is the error `e` unless a later entry of its layer replaces it.
    fn bad_link_with(&mut self, t: NodeId, link: NodeId, e: Error) -> SlotId {
        let slot = self.links.slot(Source::Pending { target: t, link });
        let path = self.tree.path(link);
        self.current
            .bad_links
            .push((slot, e.in_entry(path.as_bytes())));
        slot
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
        for Waiter {
            layer: link_layer,
            slot: link_slot,
            ordinal: link_ord,
        } in waiting
        {
            if self
                .barriers
                .hides_between(&self.tree, node, target, (link_layer, link_ord))
            {
                if self.links.is_abandoned(link_slot) {
                    continue; // it found nothing, and nothing uses it
                }
                let link = match self.links.source(link_slot) {
                    Some(Source::Pending { link, .. }) => self.tree.path(*link).lossy(),
                    _ => String::new(),
                };
                let e = Error::HardlinkTargetMissing {
                    link: link.clone(),
                    target: self.tree.path(node).lossy(),
                };
                return Err(self.of_layer(link_layer, e.in_entry(link.as_bytes())));
            }
            self.links.bind(link_slot, slot);
        }
        Ok(())
    }

    fn link_to_dir(&self, waiting: &[Waiter], node: NodeId) -> Error {
        let Some(&Waiter { layer, slot, .. }) = waiting.first() else {
            return Error::Bug {
                what: "a hard link to a directory has no waiting link",
            };
        };
        let link = match self.links.source(slot) {
            Some(Source::Pending { link, .. }) => self.tree.path(*link).lossy(),
            _ => String::new(),
        };
        let e = Error::HardlinkToDirectory {
            link: link.clone(),
            target: self.tree.path(node).lossy(),
        };
        self.of_layer(layer, e.in_entry(link.as_bytes()))
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
        // Extraction writes this entry beneath every ancestor. The first such use in a layer
        // is kept (an ancestor used before in this layer had its own ancestors used too).
        let mut cur = node;
        while let Some(p) = self.tree.parent(cur) {
            if !self.tree.touch(p, at.layer, at.ordinal, Use::Beneath) {
                break;
            }
            cur = p;
        }
        self.hidden_parents_become_dirs(node, at.layer)?;
        self.parents_become_dirs(node, at, hidden_entry)
    }

    /// Extraction makes every ancestor of `node` a directory first: a non-directory this layer
    /// left there earlier, which the output does not show, is gone (a later link of the layer
    /// to it finds a directory; one made before keeps its inode).
    fn hidden_parents_become_dirs(&mut self, node: NodeId, layer: u32) -> Result<()> {
        if !self.current.hidden.is_empty() {
            let mut cur = node;
            while let Some(p) = self.tree.parent(cur) {
                // A symlink this layer put there (hidden by a newer layer), or a link to one,
                // is not replaced by a directory: extraction would write through it.
                match self.current.hidden.get(&p) {
                    None if self.current.hidden.has_file(p) => {
                        self.current.hidden.insert(p, Hidden::Dir);
                    }
                    None => {}
                    Some(Hidden::Other(e)) if matches!(e.kind, EntryKind::Symlink { .. }) => {
                        return Err(self.written_through_error(node, layer, p));
                    }
                    Some(&Hidden::Slot(s)) => {
                        self.check_beneath_link(s, p, node, layer)?;
                        self.current.hidden.insert(p, Hidden::Dir);
                    }
                    Some(_) => {
                        self.current.hidden.insert(p, Hidden::Dir);
                    }
                }
                cur = p;
            }
        }
        Ok(())
    }

    /// The shown ancestors of `node` become directories (implicit ones where no entry
    /// describes them yet); for an entry the output does not show (`hidden_entry`), ancestors
    /// whose own version in this layer is hidden are skipped, but their parents still count.
    /// Links of newer layers waiting for an ancestor learn that it is a directory at `at`.
    fn parents_become_dirs(&mut self, node: NodeId, at: Pos, hidden_entry: bool) -> Result<()> {
        let layer = at.layer;
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
                self.through_links.push(ThroughLink {
                    slot,
                    link,
                    entry,
                    layer,
                });
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
        if let Some(&link) = self.current.linked.get(&node).filter(|_| !same_inode) {
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
        self.cancel.check()?;
        // Data from a spool or a caller's reader stops per chunk too, not only a layer's.
        self.sink.entry(e, &mut self.cancel.reader(data))?;
        self.entries += 1;
        if let EntryKind::File { size, .. } = e.kind {
            self.bytes += size;
        }
        if self.bytes >= self.reported + (1 << 20) || self.entries.is_multiple_of(1024) {
            self.report_written();
        }
        if self.entries.is_multiple_of(256) {
            self.sink.merge_memory(self.heap_bytes() as u64);
        }
        Ok(())
    }

    /// Delivers what waited for the end (directories no layer described, then hard-link groups)
    /// and finishes the sink.
    pub fn finish(mut self) -> Result<Summary> {
        if let Some((layer, e)) = self.links.unresolved(&self.tree) {
            return Err(self.second_pass_or(self.of_layer(layer, e)));
        }
        for t in &self.through_links {
            if self.links.is_symlink(t.slot) == Some(true) {
                let e = self.written_through_error(t.entry, t.layer, t.link);
                return Err(self.second_pass_or(self.of_layer(t.layer, e)));
            }
        }
        if let Some(e) = self.bad_link.take() {
            return Err(e);
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
        if let Some(e) = self.paging_error() {
            return Err(e);
        }
        self.report_written();
        self.cancel.check()?;
        let paged = self.paged_out();
        // The merge's per-path state is dropped before the sink finishes: the squashfs sink
        // builds its tables then, and the two need not be held at once.
        let mut summary = self.into_sink().finish()?;
        summary.spilled.merge_bytes = paged;
        Ok(summary)
    }

    fn into_sink(self) -> Box<dyn Sink> {
        self.sink
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
                    _ => {
                        return Err(Error::Bug {
                            what: "a hard-link group's content has no source",
                        })
                    }
                };
                e.path = self.tree.path(first);
                match self.links.source(root) {
                    Some(Source::Spooled { spool, .. }) => {
                        let r = *spool;
                        self.cancel.check()?;
                        let mut reader = self.cancel.reader(self.spool.reader(r));
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

/// Puts `e` where the second pass's resolution says it lands.
fn move_entry(e: &mut Entry, path: Option<&EntryPath>, target: Option<&EntryPath>) {
    if let Some(p) = path {
        e.path = p.clone();
    }
    if let (Some(t), EntryKind::Hardlink { target }) = (target, &mut e.kind) {
        *target = t.clone();
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
