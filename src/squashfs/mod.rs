//! The squashfs 4.0 writer: [`SquashfsSink`] turns the entry stream into an image the Linux
//! kernel, `unsquashfs` and `backhand` read.
//!
//! Data flow: each [`Entry`] goes to [`SquashfsSink::entry`]. A regular file's content is read
//! once, split into blocks and compressed in parallel by the `block_processor`, which writes
//! the blocks in order right behind the superblock (dedup and fragments included). Everything
//! else about the entry — name, type, metadata — becomes one compact node of the `tree`.
//! [`Sink::finish`] then writes the tables after the data, in on-disk order, and finally the
//! superblock at offset 0:
//!
//! ```text
//! superblock · options · data/fragments · inodes · directories · fragment table ·
//! export table · id table · xattrs · padding to 4 KiB (with the reuse trailer)
//! ```
//!
//! The output appears at its path only when `finish` succeeds (a temporary file is renamed);
//! dropping the sink earlier, after an error for instance, deletes it. After an error from
//! `entry` the sink refuses further calls: drop it.
//!
//! One component per table, each with a begin/append/end style interface: [`format`](mod@format) (records),
//! `compressor`, `block_processor`, `block_writer`, `fragment_table`, `meta_writer`,
//! `tree`, `inode`, `dir_writer`, `id_table`, `xattr_writer`, `table` and
//! `superblock`; past the memory budget, `spill` (the tree as sorted runs on disk) and
//! `spill_walk` (the tables written from them, the same bytes as from `tree`). [`SquashfsReader`] reads images back (for `verify`, `ls` and the tests) and
//! [`debug`] describes one as text.

mod block_processor;
mod block_writer;
mod compressor;
mod debug;
mod dir_writer;
mod export;
pub mod format;
mod fragment_table;
mod id_table;
mod image_file;
mod inode;
mod known;
mod meta_writer;
mod problem;
pub mod reader;
pub mod reuse;
mod spill;
mod spill_walk;
mod superblock;
mod table;
mod tail_store;
mod tree;
mod xattr_writer;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::entry::{Entry, EntryKind};
use crate::error::{Error, Result};
use crate::options::{Jobs, MemoryLimit, ProgressFn, SquashfsOptions};
use crate::progress::Progress;
use crate::sink::{Sink, Spilled, Summary, Warning, WarningKind};

pub use debug::debug;
pub use problem::{BlockProblem, SquashfsBlock, SquashfsProblem, SquashfsTable};
pub use reader::{Listing, ReadEntry, SquashfsReader};

use crate::verity::writer::Leaves;
use block_processor::BlockProcessor;
use compressor::Compressor;
use dir_writer::DirWriter;
use format::{Le, NO_TABLE, SUPERBLOCK_SIZE, SYMLINK_MAX};
use id_table::IdTable;
use image_file::ImageFile;
use meta_writer::MetaWriter;
use reuse::Previous;
use spill::{key_of, RecKind, Spill};
use tree::{NodeKind, NodeMeta, Tables, Tree};
use xattr_writer::XattrWriter;

/// Writes the entry stream as a squashfs image.
pub struct SquashfsSink {
    options: SquashfsOptions,
    codec: Arc<Compressor>,
    has_options_block: bool,
    blocks: BlockProcessor,
    paths: Paths,
    budget: Option<Budget>,
    xattrs: XattrWriter,
    warnings: Vec<Warning>,
    progress: Option<ProgressFn>,
    failed: bool,
    previous: Option<StopOnDrop>,
}

/// Where the per-path metadata is: in memory until the budget is reached, then spilled.
enum Paths {
    Memory(Tree),
    Spilled(Box<Spill>),
}

/// The memory budget of a sink ([`SquashfsSink::with_memory_limit`]).
struct Budget {
    limit: u64,
    /// Where the spill file goes.
    dir: PathBuf,
    /// What the merge last said it holds ([`Sink::merge_memory`]).
    merge: u64,
    /// Entries since the last look at the budget.
    since_check: u32,
}

/// Entries between two looks at the budget (a look sums a few capacities).
const BUDGET_CHECK_EVERY: u32 = 256;

/// Stops indexing the previous image when the sink goes away before finishing.
struct StopOnDrop(Arc<Previous>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.stop();
    }
}

/// Memory held by a [`SquashfsSink`] for the entries received so far (see
/// [`SquashfsSink::memory_use`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryUse {
    /// Bytes of per-path metadata: tree nodes, indexes, file placements, dedup tables, names.
    pub total: usize,
    /// Of `total`, the bytes of names and symlink targets.
    pub names: usize,
}

impl SquashfsSink {
    /// Writes to `path` (appearing there only when finished) with `jobs` compression threads.
    pub fn create(
        path: &Path,
        options: &SquashfsOptions,
        jobs: Jobs,
        progress: Option<ProgressFn>,
    ) -> Result<SquashfsSink> {
        let codec = Arc::new(Compressor::new(
            options.compression,
            options.block_size,
            &options.xz_filters,
        ));
        // Started (and the previous image opened) before the output exists.
        let previous = options.reuse.as_ref().map(|reuse| {
            let hash_file = options.verity.as_ref().and_then(|v| v.hash_file.as_deref());
            StopOnDrop(Previous::start(
                reuse,
                Arc::clone(&codec),
                options.block_size.get() as usize,
                hash_file,
                jobs,
                progress.clone(),
            ))
        });
        let mut image = ImageFile::create(path, SUPERBLOCK_SIZE as u64)?;
        if let Some(verity) = &options.verity {
            image.hash_for_verity(Leaves::new(verity, path, jobs.get())?);
        }
        let comp_options = codec.options();
        if let Some(opts) = &comp_options {
            // One metadata block, always marked uncompressed.
            let mut block = Vec::with_capacity(2 + opts.len());
            Le(&mut block)
                .u16(opts.len() as u16 | format::METADATA_RAW)
                .bytes(opts);
            image.write(&block)?;
        }
        let beside = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let blocks = BlockProcessor::new(
            image,
            beside,
            Arc::clone(&codec),
            options,
            jobs,
            progress.clone(),
            previous.as_ref().map(|p| Arc::clone(&p.0)),
        )?;
        Ok(SquashfsSink {
            options: options.clone(),
            codec,
            has_options_block: comp_options.is_some(),
            blocks,
            paths: Paths::Memory(Tree::new()),
            budget: None,
            xattrs: XattrWriter::default(),
            warnings: Vec::new(),
            progress,
            failed: false,
            previous,
        })
    }

    /// Keeps the per-path memory (this sink's and what the merge reports through
    /// [`Sink::merge_memory`]) under `limit`: past it, the tree of paths goes on as sorted runs
    /// in an unnamed temporary file in `spill_dir` (gone on success, error and kill alike),
    /// merged back when the tables are written. The image is the same byte for byte.
    pub fn with_memory_limit(mut self, limit: MemoryLimit, spill_dir: &Path) -> Self {
        self.blocks.set_temp_dir(spill_dir.to_path_buf());
        self.budget = (limit != MemoryLimit::UNLIMITED).then(|| Budget {
            limit: limit.get(),
            dir: spill_dir.to_path_buf(),
            merge: 0,
            since_check: 0,
        });
        self
    }

    /// The memory held for the entries received so far; file data is never held, so this is
    /// what grows with the number of entries.
    pub fn memory_use(&self) -> MemoryUse {
        let (paths, names) = match &self.paths {
            Paths::Memory(tree) => (tree.heap_bytes(), tree.name_bytes()),
            Paths::Spilled(spill) => (spill.heap_bytes(), 0),
        };
        MemoryUse {
            total: paths + self.blocks.heap_bytes() + self.xattrs.heap_bytes(),
            names,
        }
    }

    /// Moves the tree to a spill once the budget is passed.
    fn look_at_budget(&mut self) -> Result<()> {
        let Some(b) = &mut self.budget else {
            return Ok(());
        };
        let look = b.since_check == 0;
        b.since_check = (b.since_check + 1) % BUDGET_CHECK_EVERY;
        if !look || !matches!(self.paths, Paths::Memory(_)) {
            return Ok(());
        }
        let (limit, merge) = (b.limit, b.merge);
        if merge.saturating_add(self.memory_use().total as u64) <= limit {
            return Ok(());
        }
        let Some(b) = &self.budget else {
            return Ok(());
        };
        // Runs of a sixteenth of the budget: the buffer is held until the end of the merge,
        // beside everything that cannot spill, and 16 MiB runs still merge with 256 KiB
        // reads (ten million paths: 34 runs).
        let run_bytes = (limit / 16).clamp(1 << 20, 32 << 20) as usize;
        let tree = match std::mem::replace(&mut self.paths, Paths::Memory(Tree::new())) {
            Paths::Memory(tree) => tree,
            spilled => {
                self.paths = spilled;
                return Ok(());
            }
        };
        let mut spill = Spill::new(
            &b.dir,
            run_bytes,
            tree.node_count(),
            NodeMeta::implicit_dir(),
        );
        tree.spill_into(&mut spill)?;
        // The file placements (20 bytes a file) are the other part that grows with the
        // image: past the budget they keep a sixteenth of it in memory and page the rest.
        self.blocks.page_files(
            usize::try_from(limit / 16).unwrap_or(usize::MAX),
            b.dir.clone(),
        );
        let runs = spill.stats.runs;
        self.paths = Paths::Spilled(Box::new(spill));
        self.report_spill(runs);
        Ok(())
    }

    /// Sends [`Progress::Spilled`] if runs were written since `runs_before`.
    fn report_spill(&self, runs_before: u32) {
        if let (Paths::Spilled(s), Some(p)) = (&self.paths, &self.progress) {
            if s.stats.runs != runs_before || runs_before == 0 {
                p(&Progress::Spilled {
                    bytes: s.stats.bytes,
                    runs: s.stats.runs,
                });
            }
        }
    }

    fn meta(&mut self, entry: &Entry) -> NodeMeta {
        let mut skipped = Vec::new();
        let xattrs = self
            .xattrs
            .intern(&entry.meta.xattrs, |name| skipped.push(name.to_vec()));
        for name in skipped {
            let warning = Warning {
                path: entry.path.clone(),
                kind: WarningKind::XattrNotStorable { name },
            };
            if let Some(p) = &self.progress {
                p(&Progress::Warning(warning.clone()));
            }
            self.warnings.push(warning);
        }
        NodeMeta {
            mode: (entry.meta.mode & 0o7777) as u16,
            uid: entry.meta.uid,
            gid: entry.meta.gid,
            mtime: entry.meta.mtime.clamp(0, i64::from(u32::MAX)) as u32,
            xattrs,
        }
    }

    fn add(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        let unrepresentable = |problem| Error::Unrepresentable {
            path: entry.path.shown(),
            problem,
        };
        let Some(name) = entry.path.file_name() else {
            if !entry.kind.is_dir() {
                return Err(unrepresentable("the root must be a directory"));
            }
            let meta = self.meta(entry);
            match &mut self.paths {
                Paths::Memory(tree) => tree.set_root(meta)?,
                Paths::Spilled(spill) => spill.root = meta,
            }
            return self.look_at_budget();
        };
        let parent = match &mut self.paths {
            Paths::Memory(tree) => tree.parent_dir(&entry.path)?,
            Paths::Spilled(_) => 0,
        };
        let mut link = None;
        let kind = match &entry.kind {
            EntryKind::File { size, .. } => {
                RecKind::File(self.blocks.add_file(*size, data, entry.path.as_bytes())?)
            }
            EntryKind::Dir => RecKind::Dir,
            EntryKind::Symlink { target } => {
                if target.is_empty() || target.len() > SYMLINK_MAX {
                    return Err(unrepresentable("a symlink target must be 1 to 4096 bytes"));
                }
                RecKind::Symlink(target.as_slice().into())
            }
            EntryKind::Hardlink { target } => {
                link = Some(target);
                RecKind::PendingLink
            }
            EntryKind::CharDevice { major, minor } => RecKind::CharDev(
                format::encode_dev(*major, *minor)
                    .ok_or_else(|| unrepresentable("device major ≥ 4096 or minor ≥ 2^20"))?,
            ),
            EntryKind::BlockDevice { major, minor } => RecKind::BlockDev(
                format::encode_dev(*major, *minor)
                    .ok_or_else(|| unrepresentable("device major ≥ 4096 or minor ≥ 2^20"))?,
            ),
            EntryKind::Fifo => RecKind::Fifo,
            EntryKind::Socket => RecKind::Socket,
        };
        // A link shares its target's inode; its own metadata is not stored.
        let meta = match link {
            Some(_) => NodeMeta::implicit_dir(),
            None => self.meta(entry),
        };
        match &mut self.paths {
            Paths::Memory(tree) => {
                let kind = match (kind, link) {
                    (_, Some(target)) => NodeKind::Hardlink(tree.link_target(&entry.path, target)?),
                    (RecKind::Symlink(target), _) => tree.symlink(&target)?,
                    (RecKind::File(id), _) => NodeKind::File(id),
                    (RecKind::CharDev(d), _) => NodeKind::CharDev(d),
                    (RecKind::BlockDev(d), _) => NodeKind::BlockDev(d),
                    (RecKind::Fifo, _) => NodeKind::Fifo,
                    (RecKind::Socket, _) => NodeKind::Socket,
                    (RecKind::Dir | RecKind::Link(_) | RecKind::PendingLink, _) => NodeKind::Dir,
                };
                tree.insert(parent, name, kind, meta)?;
            }
            Paths::Spilled(spill) => {
                if name.len() > usize::from(u8::MAX) {
                    return Err(Error::TooLarge {
                        what: "file name",
                        size: name.len() as u64,
                        limit: u64::from(u8::MAX),
                    });
                }
                let runs = spill.stats.runs;
                match link {
                    Some(target) => spill.push_link(&entry.path, target)?,
                    None => {
                        spill.push(&key_of(&entry.path), &kind, &meta)?;
                    }
                }
                if spill.stats.runs != runs {
                    self.report_spill(runs);
                }
            }
        }
        self.look_at_budget()
    }
}

impl Sink for SquashfsSink {
    fn entry(&mut self, entry: &Entry, data: &mut dyn Read) -> Result<()> {
        if self.failed {
            return Err(Error::Stopped);
        }
        let r = self.add(entry, data);
        self.failed = r.is_err();
        r
    }

    fn finish(self: Box<Self>) -> Result<Summary> {
        let sink = *self;
        if sink.failed {
            return Err(Error::Stopped);
        }
        let codec = sink.codec;
        let options = sink.options;
        let mut xattrs = sink.xattrs;
        let mut ids = IdTable::default();
        let (mut image, mut files, frags) = sink.blocks.finish()?;
        let mut warnings = sink.warnings;
        let reuse = reuse_report(sink.previous.as_ref(), &mut warnings)?;

        let inode_table = image.position();
        let mut inodes = MetaWriter::new(Arc::clone(&codec));
        let mut dirs = DirWriter::new(Arc::clone(&codec));
        let mut tables = Tables {
            image: &mut image,
            inodes: &mut inodes,
            dirs: &mut dirs,
            ids: &mut ids,
            xattrs: &mut xattrs,
            files: &files,
            block_size: u64::from(options.block_size.get()),
            // The export table keeps a sixteenth of the budget in memory, as the file
            // placements do.
            export_paging: sink.budget.as_ref().map(|b| export::Paging {
                dir: b.dir.clone(),
                limit: usize::try_from(b.limit / 16).unwrap_or(usize::MAX),
            }),
        };
        let mut spilled = Spilled::default();
        let tree = match sink.paths {
            Paths::Memory(tree) => tree.serialize(&mut tables)?,
            Paths::Spilled(mut spill) => {
                spill.close()?;
                spilled = Spilled {
                    bytes: spill.stats.bytes,
                    runs: spill.stats.runs,
                    records: spill.stats.records,
                    merge_bytes: 0,
                    files_bytes: 0,
                    export_bytes: 0,
                };
                spill_walk::serialize(*spill, &mut tables)?
            }
        };
        if let Some(e) = files.take_error() {
            return Err(e);
        }
        spilled.files_bytes = files.paged_out() + frags.paged_out();
        spilled.export_bytes = tree.export.paged_out();
        image.write(&inodes.finish()?)?;
        let dir_table = image.position();
        image.write(&dirs.finish()?)?;
        let frag_table = table::write_lookup_table(&mut image, &codec, &frags.to_bytes())?;
        let export_table = if options.exportable {
            tree.export.write(&mut image, &codec)?
        } else {
            NO_TABLE
        };
        let id_table = table::write_lookup_table(&mut image, &codec, &ids.to_bytes())?;
        let xattr_table = xattrs.write(&mut image, &codec)?;
        let bytes_used = image.position();

        let sb = superblock::fill(superblock::Fields {
            options: &options,
            codec: &codec,
            has_options_block: sink.has_options_block,
            inode_count: tree.inode_count,
            mtime: options.mtime.unwrap_or(tree.newest_mtime),
            frag_count: frags.len(),
            id_count: ids.len(),
            root_inode: tree.root,
            bytes_used,
            id_table,
            xattr_table,
            inode_table,
            dir_table,
            frag_table,
            export_table,
        })?;
        image.write_at(0, &sb.to_bytes())?;
        let (output_bytes, verity) = commit(image, &codec, bytes_used)?;
        Ok(Summary {
            entries: tree.entries,
            file_bytes: tree.file_bytes,
            output_bytes,
            warnings,
            second_pass: false,
            verity,
            reuse,
            spilled,
        })
    }

    fn merge_memory(&mut self, bytes: u64) {
        if let Some(b) = &mut self.budget {
            b.merge = bytes;
        }
    }
}

/// Waits for the previous image's index (if reuse was asked for) and reports; a refusal also
/// becomes a warning.
fn reuse_report(
    previous: Option<&StopOnDrop>,
    warnings: &mut Vec<Warning>,
) -> Result<Option<Box<reuse::ReuseReport>>> {
    let Some(p) = previous else {
        return Ok(None);
    };
    let report = p.0.finish()?;
    if let Some(why) = &report.refused {
        warnings.push(p.0.warning(why.clone()));
    }
    Ok(Some(Box::new(report)))
}

/// Pads the image after its tables (`bytes_used`) and commits it; returns the output's size
/// (with an appended hash tree) and the verity parameters.
fn commit(
    mut image: ImageFile,
    codec: &Compressor,
    bytes_used: u64,
) -> Result<(u64, Option<crate::verity::VerityInfo>)> {
    // In the padding, where readers do not look: what a later --reuse needs to know.
    let mut trailer = reuse::trailer(codec);
    let output_bytes = superblock::padded_len(bytes_used + trailer.len() as u64);
    // Zeros written, not left to the file length: a duplicate file rewound from past the
    // tables' end leaves its bytes there.
    trailer.resize((output_bytes - bytes_used) as usize, 0);
    image.write(&trailer)?;
    let verity = image.commit(output_bytes)?;
    // An appended hash tree is part of the output file.
    let output_bytes = match &verity {
        Some(v) if v.hash_file.is_none() => output_bytes + v.hash_area_len(),
        _ => output_bytes,
    };
    Ok((output_bytes, verity))
}

#[cfg(test)]
mod tests;
