//! Where an image's files are: a directory, or the members of a tar file (`docker save -o`,
//! `oci-archive`), behind one interface so that every layout reader works on both.
//!
//! ```text
//! Store::open(path) ─┬─ directory ──► files under it
//!                    └─ tar file ───► index: normalized member name → (offset, len) | link
//!                                      (headers read, data seeked over; nothing extracted)
//! lookups: exists(name) · read_json(name, what) ≤ MAX_JSON · locate(name) → BlobLocation
//! ```
//!
//! Names are [`EntryPath`]s, so nothing a document says can point above the image's root:
//! `..` is refused before a lookup. In a directory, [`Containment::Required`] also resolves
//! symbolic links and refuses a file that ends up outside the directory (used for the paths of
//! `docker save`'s `manifest.json`, which are free-form strings). In a tar file, symbolic and
//! hard links between members are followed inside the archive only.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::path::EntryPath;
use crate::tar_reader::{SeekableFile, Walker};

use super::spec::MAX_JSON;
use super::BlobLocation;

/// The most members a tar file may have for ocirender to index it.
const MAX_MEMBERS: usize = 1 << 20;

/// How many links a lookup follows before giving up.
const MAX_LINKS: usize = 16;

/// Whether a directory lookup must stay inside the directory after resolving symlinks.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Containment {
    /// A symlink may lead anywhere (blob stores shared between layouts); the digest check
    /// vouches for the content.
    Free,
    /// The resolved file must lie inside the directory.
    Required,
}

/// An image's files.
pub(crate) enum Store {
    Dir(PathBuf),
    Tar(TarIndex),
}

/// The members of a tar file.
pub(crate) struct TarIndex {
    archive: PathBuf,
    members: HashMap<EntryPath, Member>,
}

enum Member {
    File { offset: u64, len: u64 },
    Symlink(Vec<u8>),
    Hardlink(EntryPath),
    Other,
}

impl Store {
    /// Opens `path`: a directory as it is, a file as a tar archive.
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let meta = std::fs::metadata(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::NotAnImage {
                    path: path.to_owned(),
                }
            } else {
                Error::io("open", path, e)
            }
        })?;
        if meta.is_dir() {
            Ok(Store::Dir(path.to_owned()))
        } else {
            TarIndex::build(path).map(Store::Tar)
        }
    }

    /// Whether this store is a tar file.
    pub(crate) fn is_archive(&self) -> bool {
        matches!(self, Store::Tar(_))
    }

    /// The image's path on disk.
    pub(crate) fn root(&self) -> &Path {
        match self {
            Store::Dir(dir) => dir,
            Store::Tar(index) => &index.archive,
        }
    }

    /// A path for messages: the file in the directory, or `archive.tar/member`.
    pub(crate) fn display_path(&self, name: &EntryPath) -> PathBuf {
        self.root()
            .join(String::from_utf8_lossy(name.as_bytes()).as_ref())
    }

    /// Where the bytes of `name` are, or `None` when there is no such regular file.
    pub(crate) fn locate(
        &self,
        name: &EntryPath,
        containment: Containment,
    ) -> Result<Option<BlobLocation>> {
        match self {
            Store::Dir(dir) => {
                let path = dir.join(String::from_utf8_lossy(name.as_bytes()).as_ref());
                let Ok(meta) = std::fs::metadata(&path) else {
                    return Ok(None);
                };
                if !meta.is_file() {
                    return Ok(None);
                }
                if containment == Containment::Required {
                    let inside = match (dir.canonicalize(), path.canonicalize()) {
                        (Ok(root), Ok(real)) => real.starts_with(root),
                        _ => false,
                    };
                    if !inside {
                        return Err(Error::HostilePath {
                            path: name.shown(),
                            reason: "resolves to a file outside the image directory",
                        });
                    }
                }
                Ok(Some(BlobLocation::File(path)))
            }
            Store::Tar(index) => Ok(index.locate(name)),
        }
    }

    /// Whether a regular file `name` exists.
    pub(crate) fn exists(&self, name: &str) -> bool {
        match EntryPath::new(name.as_bytes()) {
            Ok(name) => matches!(self.locate(&name, Containment::Free), Ok(Some(_))),
            Err(_) => false,
        }
    }

    /// Reads the JSON document `name` (at most [`MAX_JSON`] bytes); `None` when it is absent.
    pub(crate) fn read_json(
        &self,
        name: &EntryPath,
        containment: Containment,
        what: &str,
    ) -> Result<Option<Vec<u8>>> {
        match self.locate(name, containment)? {
            Some(location) => read_capped(&location, what).map(Some),
            None => Ok(None),
        }
    }

    /// Reads a JSON blob by digest (looked up as [`Store::find_blob`] does): capped, and
    /// checked against the digest (and `size` when given). Missing → [`Error::BlobMissing`].
    pub(crate) fn read_blob(
        &self,
        digest: &Digest,
        size: Option<u64>,
        fallbacks: &[String],
    ) -> Result<Vec<u8>> {
        let what = format!("blob {digest}");
        if let Some(size) = size {
            if size > MAX_JSON {
                return Err(Error::DocumentTooLarge {
                    what,
                    size,
                    limit: MAX_JSON,
                });
            }
        }
        let (name, location) = self.find_blob(digest, fallbacks)?;
        let location = location.ok_or_else(|| Error::BlobMissing {
            digest: digest.clone(),
            path: self.display_path(&name),
        })?;
        let bytes = read_capped(&location, &what)?;
        check_blob(&bytes, digest, size)?;
        Ok(bytes)
    }

    /// Finds blob `digest` at `blobs/<alg>/<hex>`, then at each of `fallbacks` (names relative
    /// to the root). Returns the canonical name (for messages) and the location if found.
    pub(crate) fn find_blob(
        &self,
        digest: &Digest,
        fallbacks: &[String],
    ) -> Result<(EntryPath, Option<BlobLocation>)> {
        let canonical = blob_name(digest)?;
        if let Some(location) = self.locate(&canonical, Containment::Free)? {
            return Ok((canonical, Some(location)));
        }
        for name in fallbacks {
            let name = EntryPath::new(name.as_bytes())?;
            if let Some(location) = self.locate(&name, Containment::Free)? {
                return Ok((canonical, Some(location)));
            }
        }
        Ok((canonical, None))
    }
}

/// `blobs/<alg>/<hex>`: safe, as [`Digest`] holds only a known algorithm and hex digits.
pub(crate) fn blob_name(digest: &Digest) -> Result<EntryPath> {
    EntryPath::new(format!("blobs/{}/{}", digest.algorithm().name(), digest.hex()).as_bytes())
}

/// Checks a blob read whole against its digest and expected size.
pub(crate) fn check_blob(bytes: &[u8], digest: &Digest, size: Option<u64>) -> Result<()> {
    let found_size = bytes.len() as u64;
    if let Some(expected) = size {
        if expected != found_size {
            return Err(Error::SizeMismatch {
                digest: digest.clone(),
                expected,
                found: found_size,
            });
        }
    }
    let found = Digest::of(digest.algorithm(), bytes);
    if &found != digest {
        return Err(Error::DigestMismatch {
            expected: digest.clone(),
            found,
        });
    }
    Ok(())
}

/// Reads a whole small file or tar member, refusing more than [`MAX_JSON`] bytes.
fn read_capped(location: &BlobLocation, what: &str) -> Result<Vec<u8>> {
    let too_large = |size| Error::DocumentTooLarge {
        what: what.to_owned(),
        size,
        limit: MAX_JSON,
    };
    let (path, reader): (&Path, Box<dyn Read>) = match location {
        BlobLocation::File(path) => {
            let file = File::open(path).map_err(|e| Error::io("open", path, e))?;
            let len = file
                .metadata()
                .map_err(|e| Error::io("stat", path, e))?
                .len();
            if len > MAX_JSON {
                return Err(too_large(len));
            }
            (path, Box::new(file))
        }
        BlobLocation::TarMember {
            archive,
            offset,
            len,
        } => {
            if *len > MAX_JSON {
                return Err(too_large(*len));
            }
            let mut file = File::open(archive).map_err(|e| Error::io("open", archive, e))?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(*offset))
                .map_err(|e| Error::io("seek in", archive, e))?;
            (archive, Box::new(file.take(*len)))
        }
    };
    let mut bytes = Vec::new();
    // The file may grow between the size check and the read: the cap holds regardless.
    reader
        .take(MAX_JSON + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io("read", path, e))?;
    if bytes.len() as u64 > MAX_JSON {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

impl TarIndex {
    /// Reads the headers of the tar file at `archive`, seeking over the data.
    fn build(archive: &Path) -> Result<TarIndex> {
        let file = File::open(archive).map_err(|e| Error::io("open", archive, e))?;
        let input = SeekableFile::new(file).map_err(|e| Error::io("read", archive, e))?;
        let mut walker = Walker::with_input(input);
        let mut members = HashMap::new();
        let in_archive = |e: Error| match e {
            Error::Tar { .. } | Error::TarHeader { .. } | Error::Entry { .. } => {
                Error::InvalidDocument {
                    what: archive.display().to_string(),
                    problem: "not a readable tar file (nor a directory)",
                }
            }
            e => e,
        };
        while let Some(member) = walker.next_member().map_err(in_archive)? {
            if members.len() >= MAX_MEMBERS {
                return Err(Error::TooLarge {
                    what: "number of members in the image tar file",
                    size: members.len() as u64,
                    limit: MAX_MEMBERS as u64,
                });
            }
            // Members with unusable names cannot be referred to; they are left out.
            if let Ok(name) = EntryPath::new(member.raw_path()) {
                let kind = match member.typeflag() {
                    0 | b'0' | b'7' if member.sparse.is_none() => Member::File {
                        offset: member.data_offset,
                        len: member.stored,
                    },
                    b'2' => Member::Symlink(member.raw_link().to_vec()),
                    b'1' => match EntryPath::new(member.raw_link()) {
                        Ok(target) => Member::Hardlink(target),
                        Err(_) => Member::Other,
                    },
                    _ => Member::Other,
                };
                members.insert(name, kind);
            }
            walker.skip_data(&member).map_err(in_archive)?;
        }
        Ok(TarIndex {
            archive: archive.to_owned(),
            members,
        })
    }

    fn locate(&self, name: &EntryPath) -> Option<BlobLocation> {
        let mut name = name.clone();
        for _ in 0..MAX_LINKS {
            match self.members.get(&name)? {
                Member::File { offset, len } => {
                    return Some(BlobLocation::TarMember {
                        archive: self.archive.clone(),
                        offset: *offset,
                        len: *len,
                    })
                }
                Member::Hardlink(target) => name = target.clone(),
                Member::Symlink(target) => name = resolve_link(&name, target)?,
                Member::Other => return None,
            }
        }
        None
    }
}

/// The member a symlink at `link` pointing to `target` names, resolved lexically inside the
/// archive; `None` when it climbs above the root.
fn resolve_link(link: &EntryPath, target: &[u8]) -> Option<EntryPath> {
    let mut parts: Vec<&[u8]> = if target.starts_with(b"/") {
        Vec::new()
    } else {
        let mut parts: Vec<&[u8]> = link.components().collect();
        parts.pop();
        parts
    };
    for comp in target.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    EntryPath::new(&parts.join(&b'/')).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_resolve_inside_the_archive_only() {
        let link = EntryPath::new(b"a/b/layer.tar").unwrap();
        let r = |t: &str| resolve_link(&link, t.as_bytes()).map(|p| p.lossy());
        assert_eq!(r("../c/layer.tar").as_deref(), Some("a/c/layer.tar"));
        assert_eq!(r("/x/y").as_deref(), Some("x/y"));
        assert_eq!(r("../../../x"), None);
        assert_eq!(r("./z").as_deref(), Some("a/b/z"));
    }
}
