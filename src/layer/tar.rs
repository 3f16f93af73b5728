//! A layer's tar stream → [`Entry`] values: PAX and GNU long names and link targets, PAX and GNU
//! sparse files (expanded), base-256 numbers, xattrs, non-UTF-8 names kept as bytes.

use std::io::Read;

use crate::entry::Entry;
use crate::error::Result;

/// Calls `f` for every entry of the tar stream, in order, with a reader of the entry's content
/// (exactly `size` bytes for a regular file, holes expanded; empty otherwise). Content that `f`
/// leaves unread is skipped. Returns at the end-of-archive marker (or at EOF), leaving whatever
/// follows unread. Errors from `f` are returned unchanged; errors of the stream are
/// [`Error::Tar`](crate::Error::Tar) / [`Error::TarHeader`](crate::Error::TarHeader), tagged with
/// the entry's path when it is known.
pub fn for_each_entry(
    stream: &mut dyn Read,
    f: &mut dyn FnMut(Entry, &mut dyn Read) -> Result<()>,
) -> Result<()> {
    todo!("helper A")
}
