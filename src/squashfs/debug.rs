//! A readable description of an image: superblock fields, table offsets, ids, fragments and
//! one line per inode. Used by snapshot tests and for looking inside an image by hand; it
//! reads through [`SquashfsReader`], so it also checks that the image parses.

use std::fmt::Write as _;
use std::path::Path;

use crate::entry::EntryKind;
use crate::error::Result;
use crate::path::EntryPath;
use crate::squashfs::compressor;
use crate::squashfs::format::{DATA_RAW, NO_TABLE};
use crate::squashfs::reader::{ReadEntry, SquashfsReader};

fn table(v: u64) -> String {
    if v == NO_TABLE {
        "none".to_owned()
    } else {
        v.to_string()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn word(w: u32) -> String {
    if w == 0 {
        "hole".to_owned()
    } else if w & DATA_RAW != 0 {
        format!("{}r", w & (DATA_RAW - 1))
    } else {
        w.to_string()
    }
}

/// Describes the image at `path` as text.
pub fn debug(path: &Path) -> Result<String> {
    let r = SquashfsReader::open(path)?;
    let mut s = String::new();
    superblock_lines(&r, &mut s)?;
    let ids: Vec<String> = r.ids().iter().map(u32::to_string).collect();
    let _ = writeln!(s, "ids {}", ids.join(" "));
    for i in 0..r.superblock().frag_count {
        let (start, w) = r.fragment_entry(i)?;
        let _ = writeln!(s, "fragment {i} at {start} size {}", word(w));
    }
    let _ = writeln!(s, "inodes");
    r.walk(|path, e| {
        inode_line(path, e, &mut s);
        Ok(())
    })?;
    Ok(s)
}

/// The superblock's fields and the compressor options.
fn superblock_lines(r: &SquashfsReader, s: &mut String) -> Result<()> {
    let sb = r.superblock();
    let comp = compressor::name_of(sb.compression, sb.flags);
    let _ = writeln!(s, "superblock");
    let _ = writeln!(s, "  compression {comp} ({})", sb.compression);
    let _ = writeln!(s, "  block_size {} (log {})", sb.block_size, sb.block_log);
    let _ = writeln!(s, "  flags {:#06x} {}", sb.flags, r.flag_names().join(" "));
    let _ = writeln!(
        s,
        "  inodes {} fragments {} ids {}",
        sb.inode_count, sb.frag_count, sb.id_count
    );
    let _ = writeln!(s, "  mtime {}", sb.mod_time);
    let _ = writeln!(s, "  root_inode {:#x}", sb.root_inode);
    let _ = writeln!(s, "  bytes_used {}", sb.bytes_used);
    let _ = writeln!(
        s,
        "  tables inode {} dir {} fragment {} export {} id {} xattr {}",
        sb.inode_table,
        sb.dir_table,
        table(sb.frag_table),
        table(sb.export_table),
        sb.id_table,
        table(sb.xattr_table)
    );
    if let Some(opts) = r.compressor_options()? {
        let _ = writeln!(s, "  options {}", hex(&opts));
    }
    Ok(())
}

/// One line per inode: path, kind, number, mode, owner, mtime, links and the kind's layout.
fn inode_line(path: &EntryPath, e: &ReadEntry, s: &mut String) {
    let m = &e.meta;
    let _ = write!(
        s,
        "  {} {} #{} {:04o} {}:{} t={} nlink={}",
        path.display(),
        e.kind.name(),
        e.inode_number,
        m.mode,
        m.uid,
        m.gid,
        m.mtime,
        e.nlink
    );
    match &e.kind {
        EntryKind::File { size, .. } => {
            let _ = write!(s, " size={size}");
            if let Some(l) = SquashfsReader::file_layout(e) {
                if !l.words.is_empty() {
                    let w: Vec<String> = l.words.iter().map(|&w| word(w)).collect();
                    let _ = write!(s, " start={} blocks=[{}]", l.blocks_start, w.join(","));
                }
                if let Some((i, off)) = l.fragment {
                    let _ = write!(s, " fragment={i}@{off}");
                }
            }
        }
        EntryKind::Dir => {
            if let Some((size, index)) = SquashfsReader::dir_layout(e) {
                let _ = write!(s, " size={size} index={index}");
            }
        }
        EntryKind::Symlink { target } => {
            let _ = write!(s, " -> {}", String::from_utf8_lossy(target));
        }
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            let _ = write!(s, " dev={major},{minor}");
        }
        _ => {}
    }
    for x in &m.xattrs {
        let _ = write!(s, " {}={}", String::from_utf8_lossy(&x.name), hex(&x.value));
    }
    s.push('\n');
}
