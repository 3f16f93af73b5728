//! `ocirender ls`: a squashfs image's contents in the shape of `ls -l`, read in-process.

use std::io::{self, Write};

use anyhow::Context;
use ocirender::squashfs::{Listing, ReadEntry, SquashfsReader};
use ocirender::{EntryKind, EntryPath};

use crate::args::LsArgs;

pub fn run_ls(a: LsArgs) -> anyhow::Result<()> {
    let reader = SquashfsReader::open(&a.image)
        .with_context(|| format!("cannot read {}", a.image.display()))?;
    let path = EntryPath::new(a.path.as_deref().unwrap_or("").as_bytes())?;
    let entry = reader
        .lookup(&path)?
        .with_context(|| format!("{} has no {}", a.image.display(), path.display()))?;
    let mut out = io::stdout().lock();
    if !entry.is_dir() {
        let name = String::from_utf8_lossy(path.as_bytes());
        return line(&mut out, &entry, &name).map_err(Into::into);
    }
    let print = |out: &mut dyn Write, listing: &Listing| -> io::Result<()> {
        for (name, child) in listing {
            line(out, child, &String::from_utf8_lossy(name))?;
        }
        Ok(())
    };
    if !a.recursive {
        print(&mut out, &reader.read_dir(&entry)?)?;
        return Ok(());
    }
    // The reader's walk refuses a directory met twice (an image that loops) and bounds what
    // a hostile image can cost; output errors end it like any other.
    let mut first = true;
    reader.walk_dirs(&path, &entry, |dir_path, listing| {
        let header = if first { "" } else { "\n" };
        first = false;
        writeln!(out, "{header}{}:", dir_path.display())
            .and_then(|()| print(&mut out, listing))
            .map_err(|e| ocirender::Error::Output {
                path: "standard output".into(),
                source: e,
            })
    })?;
    Ok(())
}

fn line(out: &mut dyn Write, e: &ReadEntry, name: &str) -> io::Result<()> {
    let size = match &e.kind {
        EntryKind::File { size, .. } => size.to_string(),
        EntryKind::CharDevice { major, minor } | EntryKind::BlockDevice { major, minor } => {
            format!("{major}, {minor}")
        }
        EntryKind::Symlink { target } => target.len().to_string(),
        _ => "0".into(),
    };
    let target = match &e.kind {
        EntryKind::Symlink { target } => format!(" -> {}", String::from_utf8_lossy(target)),
        _ => String::new(),
    };
    writeln!(
        out,
        "{} {:>3} {:>5} {:>5} {:>10} {} {name}{target}",
        mode_string(&e.kind, e.meta.mode),
        e.nlink,
        e.meta.uid,
        e.meta.gid,
        size,
        date(e.meta.mtime),
    )
}

/// `drwxr-xr-x`, with setuid/setgid/sticky as `s`/`S`/`t`/`T` the way ls prints them.
fn mode_string(kind: &EntryKind, mode: u32) -> String {
    let t = match kind {
        EntryKind::Dir => 'd',
        EntryKind::Symlink { .. } => 'l',
        EntryKind::CharDevice { .. } => 'c',
        EntryKind::BlockDevice { .. } => 'b',
        EntryKind::Fifo => 'p',
        EntryKind::Socket => 's',
        _ => '-',
    };
    let mut s = String::from(t);
    for (shift, special, on, off) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (mode & special != 0, bits & 1 != 0) {
            (true, true) => on,
            (true, false) => off,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `YYYY-MM-DD HH:MM` in UTC (civil-from-days, no calendar crate needed).
fn date(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_and_dates() {
        assert_eq!(mode_string(&EntryKind::Dir, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(&EntryKind::Dir, 0o1777), "drwxrwxrwt");
        let f = EntryKind::File {
            size: 0,
            sparse: None,
        };
        assert_eq!(mode_string(&f, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(&f, 0o2644), "-rw-r-Sr--");
        assert_eq!(date(0), "1970-01-01 00:00");
        assert_eq!(date(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(date(951_782_400), "2000-02-29 00:00");
        assert_eq!(date(-86_400), "1969-12-31 00:00");
    }
}
