//! PAX extended header records (`x` entries): what they say about the next entry.
//!
//! ```text
//! "30 mtime=1700000000.123456789\n"  ──► Pax { mtime: Some((1700000000, 123456789)), … }
//!  ^^ length of the whole record, its own digits and the newline included
//! ```
//!
//! Records are split by their length prefix, never by newlines: a binary xattr value
//! (`SCHILY.xattr.security.capability`) may contain `\n` or NUL, and a parser that splits on
//! newlines can be made to see a forged `path=` or `size=` record inside such a value. Keys that
//! do not concern ocirender (`atime`, `uname`, `comment`, …) are ignored; an empty value
//! removes an earlier record's value, as the standard says. Consecutive `x` entries merge, the
//! later record winning.

use crate::entry::Xattr;
use crate::error::{Error, Result};

use super::problem::TarProblem;
use super::sparse::MAX_SPARSE_REGIONS;

/// What the PAX records before one entry said (cleared after every entry).
#[derive(Debug, Default)]
pub(crate) struct Pax {
    pub path: Option<Vec<u8>>,
    pub linkpath: Option<Vec<u8>>,
    pub size: Option<u64>,
    pub uid: Option<u64>,
    pub gid: Option<u64>,
    /// Seconds and nanoseconds, normalized so that the nanoseconds are non-negative.
    pub mtime: Option<(i64, u32)>,
    /// In record order, duplicates included; [`normalize_xattrs`] sorts and dedups.
    pub xattrs: Vec<Xattr>,
    pub sparse: SparseRecords,
}

/// The `GNU.sparse.*` records of the PAX sparse formats 0.0, 0.1 and 1.0.
#[derive(Debug, Default)]
pub(crate) struct SparseRecords {
    pub major: Option<u64>,
    pub minor: Option<u64>,
    /// The real name (1.0 stores a fake `GNUSparseFile.N/name` as the path).
    pub name: Option<Vec<u8>>,
    /// The real (expanded) size: `GNU.sparse.size` (0.x) or `GNU.sparse.realsize` (1.0).
    pub size: Option<u64>,
    pub realsize: Option<u64>,
    pub numblocks: Option<u64>,
    /// Offset, length, offset, length, … from `GNU.sparse.map` (0.1) or the repeated
    /// `GNU.sparse.offset` / `GNU.sparse.numbytes` records (0.0).
    pub map: Vec<u64>,
    /// Whether any record named a sparse map (an empty map is still a sparse file).
    pub has_map: bool,
}

impl Pax {
    /// Whether no record was seen since the last [`Pax::clear`].
    pub fn is_empty(&self) -> bool {
        self.path.is_none()
            && self.linkpath.is_none()
            && self.size.is_none()
            && self.uid.is_none()
            && self.gid.is_none()
            && self.mtime.is_none()
            && self.xattrs.is_empty()
            && !self.sparse.is_present()
    }

    /// Forgets every record.
    pub fn clear(&mut self) {
        if !self.is_empty() {
            *self = Pax::default();
        }
    }

    /// Parses the content of one `x` entry and merges its records into `self`.
    pub fn apply(&mut self, data: &[u8]) -> Result<()> {
        let mut rest = data;
        while !rest.is_empty() {
            // Some writers pad the extended header with NULs; nothing can follow them.
            if rest.iter().all(|&b| b == 0) {
                break;
            }
            let (key, value, tail) = split_record(rest)?;
            self.record(key, value)?;
            rest = tail;
        }
        Ok(())
    }

    fn record(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let bytes = || (!value.is_empty()).then(|| value.to_vec());
        let number = || -> Result<Option<u64>> {
            if value.is_empty() {
                Ok(None)
            } else {
                parse_decimal(value, key).map(Some)
            }
        };
        match key {
            b"path" => self.path = bytes(),
            b"linkpath" => self.linkpath = bytes(),
            b"size" => self.size = number()?,
            b"uid" => self.uid = number()?,
            b"gid" => self.gid = number()?,
            b"mtime" => {
                self.mtime = if value.is_empty() {
                    None
                } else {
                    Some(parse_time(value)?)
                }
            }
            b"GNU.sparse.major" => self.sparse.major = number()?,
            b"GNU.sparse.minor" => self.sparse.minor = number()?,
            b"GNU.sparse.name" => self.sparse.name = bytes(),
            b"GNU.sparse.size" => self.sparse.size = number()?,
            b"GNU.sparse.realsize" => self.sparse.realsize = number()?,
            b"GNU.sparse.numblocks" => self.sparse.numblocks = number()?,
            b"GNU.sparse.offset" | b"GNU.sparse.numbytes" => {
                self.sparse.has_map = true;
                if self.sparse.map.len() >= 2 * MAX_SPARSE_REGIONS {
                    return Err(too_many_regions());
                }
                self.sparse.map.push(parse_decimal(value, key)?);
            }
            b"GNU.sparse.map" => {
                self.sparse.has_map = true;
                self.sparse.map.clear();
                if !value.is_empty() {
                    for n in value.split(|&b| b == b',') {
                        if self.sparse.map.len() >= 2 * MAX_SPARSE_REGIONS {
                            return Err(too_many_regions());
                        }
                        self.sparse.map.push(parse_decimal(n, key)?);
                    }
                }
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.xattrs.push(Xattr {
                        name: name.to_vec(),
                        value: value.to_vec(),
                    });
                } else if let Some(name) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    let name = url_decode(name)
                        .ok_or_else(|| header_error(TarProblem::PaxEscape { key: lossy(key) }))?;
                    let value = base64_decode(value)
                        .ok_or_else(|| header_error(TarProblem::PaxBase64 { key: lossy(key) }))?;
                    self.xattrs.push(Xattr { name, value });
                }
            }
        }
        Ok(())
    }
}

impl SparseRecords {
    /// Whether any `GNU.sparse.*` record that marks a sparse file was seen.
    pub fn is_present(&self) -> bool {
        self.major.is_some() || self.minor.is_some() || self.has_map || self.numblocks.is_some()
    }
}

/// Sorts xattrs by name and keeps, for each name, the last value given.
pub(crate) fn normalize_xattrs(mut xattrs: Vec<Xattr>) -> Vec<Xattr> {
    xattrs.reverse();
    // Stable: for equal names the latest record is now first, and dedup keeps the first.
    xattrs.sort_by(|a, b| a.name.cmp(&b.name));
    xattrs.dedup_by(|later, kept| later.name == kept.name);
    xattrs
}

fn header_error(problem: TarProblem) -> Error {
    Error::TarHeader { problem }
}

fn too_many_regions() -> Error {
    header_error(TarProblem::TooManySparseRegions { claimed: None })
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Splits `"LEN KEY=VALUE\n"` off the front of `data`: `(key, value, rest)`.
fn split_record(data: &[u8]) -> Result<(&[u8], &[u8], &[u8])> {
    let bad = |what| header_error(TarProblem::PaxRecord { what });
    let space = data
        .iter()
        .take(21)
        .position(|&b| b == b' ')
        .ok_or_else(|| bad("no length field"))?;
    let digits = &data[..space];
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(bad("the length is not a decimal number"));
    }
    let len = digits.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    });
    let len = match len {
        Some(len) if len <= data.len() => len,
        _ => {
            return Err(header_error(TarProblem::PaxRecordLength {
                length: lossy(digits),
                left: data.len(),
            }))
        }
    };
    if len < space + 3 || data[len - 1] != b'\n' {
        return Err(bad(
            "the record does not end with a newline where its length says",
        ));
    }
    let kv = &data[space + 1..len - 1];
    let eq = kv
        .iter()
        .position(|&b| b == b'=')
        .ok_or_else(|| bad("no '=' in the record"))?;
    if eq == 0 {
        return Err(bad("empty key"));
    }
    Ok((&kv[..eq], &kv[eq + 1..], &data[len..]))
}

fn parse_decimal(value: &[u8], key: &[u8]) -> Result<u64> {
    let parsed = if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        None
    } else {
        value.iter().try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
    };
    parsed.ok_or_else(|| {
        header_error(TarProblem::PaxNumber {
            key: lossy(key),
            value: lossy(value),
        })
    })
}

/// Parses a PAX time, `[-]SECONDS[.FRACTION]`, into seconds and non-negative nanoseconds
/// (`-1.5` is 2 seconds before the epoch plus 500 000 000 ns, as `time.Unix` normalizes it).
pub(crate) fn parse_time(value: &[u8]) -> Result<(i64, u32)> {
    let bad = || {
        header_error(TarProblem::PaxTime {
            value: lossy(value),
        })
    };
    let (negative, unsigned) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, value),
    };
    let (secs, frac) = match unsigned.iter().position(|&b| b == b'.') {
        Some(dot) => (&unsigned[..dot], &unsigned[dot + 1..]),
        None => (unsigned, &b""[..]),
    };
    if secs.is_empty() || !secs.iter().chain(frac).all(u8::is_ascii_digit) {
        return Err(bad());
    }
    let secs = secs
        .iter()
        .try_fold(0i64, |n, &d| {
            n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
        .ok_or_else(bad)?;
    // Nanoseconds: the first nine fraction digits, right-padded with zeros.
    let nanos = (0..9).fold(0u32, |n, i| {
        n * 10 + frac.get(i).map_or(0, |&d| u32::from(d - b'0'))
    });
    if !negative {
        return Ok((secs, nanos));
    }
    if nanos == 0 {
        return Ok((-secs, 0));
    }
    let whole = secs.checked_add(1).ok_or_else(bad)?;
    Ok((-whole, 1_000_000_000 - nanos))
}

/// Decodes `%XX` escapes (libarchive's encoding of xattr names in PAX keys).
fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let hi = hex_value(*s.get(i + 1)?)?;
            let lo = hex_value(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes libarchive's base64 xattr values, padded or not (the `base64` crate; lenient about
/// the unused low bits of the last digit, as libarchive's own reader is).
fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine;
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: &[u8]) -> Vec<u8> {
        let body_len = key.len() + value.len() + 3;
        let mut len = body_len + body_len.to_string().len();
        if len.to_string().len() != body_len.to_string().len() {
            len += 1;
        }
        let mut r = format!("{len} {key}=").into_bytes();
        r.extend_from_slice(value);
        r.push(b'\n');
        assert_eq!(r.len(), len);
        r
    }

    #[test]
    fn binary_values_cannot_forge_records() {
        let mut data = record("SCHILY.xattr.user.bin", b"a\n12 path=x\n\0b");
        data.extend(record("path", b"real"));
        let mut pax = Pax::default();
        pax.apply(&data).unwrap();
        assert_eq!(pax.path.as_deref(), Some(&b"real"[..]));
        assert_eq!(pax.xattrs[0].value, b"a\n12 path=x\n\0b");
    }

    #[test]
    fn later_records_win_and_empty_values_unset() {
        let mut pax = Pax::default();
        pax.apply(&[record("path", b"a"), record("path", b"b")].concat())
            .unwrap();
        assert_eq!(pax.path.as_deref(), Some(&b"b"[..]));
        pax.apply(&record("path", b"")).unwrap();
        assert_eq!(pax.path, None);
    }

    #[test]
    fn huge_record_length_is_a_header_error() {
        let err = Pax::default()
            .apply(b"99999999999999 path=x\n")
            .unwrap_err();
        assert!(matches!(err, Error::TarHeader { .. }), "{err}");
        let err = Pax::default()
            .apply(b"999999999999999999999999999 path=x\n")
            .unwrap_err();
        assert!(matches!(err, Error::TarHeader { .. }), "{err}");
        assert!(Pax::default().apply(b"5 a=b\n").is_err());
        assert!(Pax::default().apply(b"7 ab\nxx").is_err());
    }

    #[test]
    fn times_keep_fraction_and_sign() {
        assert_eq!(parse_time(b"1700000000").unwrap(), (1_700_000_000, 0));
        assert_eq!(parse_time(b"1.5").unwrap(), (1, 500_000_000));
        assert_eq!(parse_time(b"-1.5").unwrap(), (-2, 500_000_000));
        assert_eq!(parse_time(b"-3").unwrap(), (-3, 0));
        assert_eq!(parse_time(b"0.1234567891").unwrap(), (0, 123_456_789));
        assert!(parse_time(b"1e9").is_err());
        assert!(parse_time(b"").is_err());
        assert!(parse_time(b"-.5").is_err());
    }

    #[test]
    fn libarchive_xattrs_are_decoded() {
        let mut pax = Pax::default();
        let data = [
            record("SCHILY.xattr.user.z", b"old"),
            record("LIBARCHIVE.xattr.user.a%3Db", b"AAEC/w=="),
            record("SCHILY.xattr.user.z", b"new"),
        ]
        .concat();
        pax.apply(&data).unwrap();
        let x = normalize_xattrs(std::mem::take(&mut pax.xattrs));
        assert_eq!(x.len(), 2);
        assert_eq!(x[0].name, b"user.a=b");
        assert_eq!(x[0].value, [0, 1, 2, 255]);
        assert_eq!(x[1].name, b"user.z");
        assert_eq!(x[1].value, b"new");
        assert_eq!(base64_decode(b"AAEC/w").unwrap(), [0, 1, 2, 255]);
        assert_eq!(base64_decode(b"").unwrap(), b"");
        assert!(base64_decode(b"A").is_none());
        assert!(base64_decode(b"AA=A").is_none());
    }
}
