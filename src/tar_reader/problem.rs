//! What can be wrong with a tar header, its PAX records or a sparse map: the `problem` of
//! [`Error::TarHeader`](crate::Error::TarHeader), typed so that a caller can tell a bad
//! checksum from an oversized sparse map without parsing a message.

use super::sparse::MAX_SPARSE_REGIONS;

/// Why a tar header (or what it announces: PAX records, a sparse map) cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarProblem {
    /// The header's checksum field does not match its bytes.
    #[error("header checksum mismatch (computed {computed}) at byte {offset}")]
    Checksum {
        /// The checksum computed over the header.
        computed: u32,
        /// Offset of the header in the uncompressed tar stream.
        offset: u64,
    },

    /// A numeric field holds a negative base-256 number where only sizes and ids make sense.
    #[error("{field} field is negative ({value})")]
    NegativeNumber {
        /// The field (`size`, `uid`, `device major`, …).
        field: &'static str,
        /// The value it holds.
        value: i64,
    },

    /// A base-256 numeric field holds more than 63 bits.
    #[error("{field} field holds a base-256 number too large for 63 bits")]
    NumberTooLarge {
        /// The field.
        field: &'static str,
    },

    /// An octal numeric field is not a number.
    #[error("{field} field {text:?} is not a valid number")]
    NotANumber {
        /// The field.
        field: &'static str,
        /// Its bytes (lossy UTF-8).
        text: String,
    },

    /// A uid, gid or device number does not fit the 32 bits every file system stores.
    #[error("{field} {value} does not fit in 32 bits")]
    Over32Bits {
        /// The field.
        field: &'static str,
        /// The value it holds.
        value: u64,
    },

    /// A GNU multi-volume continuation entry (`M`), which only makes sense across tapes.
    #[error("GNU multi-volume continuation entries are not supported")]
    MultiVolume,

    /// A GNU old-style sparse entry (`S`) whose header is not in the GNU format.
    #[error("GNU sparse entry without a GNU header")]
    SparseWithoutGnuHeader,

    /// A sparse map with more regions than ocirender accepts.
    #[error(
        "sparse map {} more than {MAX_SPARSE_REGIONS} regions",
        claimed.map_or("has".to_owned(), |n| format!("claims {n} regions,"))
    )]
    TooManySparseRegions {
        /// The count the map announces, where it announces one.
        claimed: Option<u64>,
    },

    /// A sparse map of `offset, length` pairs with an odd number of values.
    #[error("sparse map has an odd number of values")]
    SparseOddValues,

    /// A sparse region that ends past the file's real size.
    #[error("sparse region at {offset} of {len} bytes ends past the file size {size}")]
    SparseRegionPastEnd {
        /// The region's offset.
        offset: u64,
        /// The region's length.
        len: u64,
        /// The file's real size.
        size: u64,
    },

    /// Sparse regions out of order or overlapping.
    #[error("sparse region at {offset} overlaps or precedes the previous one (ending at {previous_end})")]
    SparseRegionOverlaps {
        /// The region's offset.
        offset: u64,
        /// Where the previous region ends.
        previous_end: u64,
    },

    /// The regions of a sparse map add up to more or less data than the entry stores.
    #[error("sparse map lists {listed} bytes of data but the entry stores {stored}")]
    SparseDataMismatch {
        /// The sum of the regions' lengths.
        listed: u64,
        /// The entry's stored size.
        stored: u64,
    },

    /// A PAX 1.0 sparse map (at the start of the data) that is not decimal lines, or has a
    /// number over 64 bits.
    #[error("sparse map at the start of the data is not decimal lines of 64-bit numbers")]
    SparseMapNotDecimal,

    /// A PAX sparse file that does not give its real size.
    #[error("PAX sparse file without GNU.sparse.size or GNU.sparse.realsize")]
    PaxSparseWithoutSize,

    /// `GNU.sparse.numblocks` disagrees with the map's length.
    #[error("GNU.sparse.numblocks says {said} but the map lists {values} values")]
    PaxSparseCount {
        /// What `GNU.sparse.numblocks` says.
        said: u64,
        /// How many numbers the map holds.
        values: usize,
    },

    /// A PAX sparse format version other than 0.0, 0.1 and 1.0.
    #[error(
        "unknown PAX sparse format version {}.{}",
        major.map_or("?".to_owned(), |v| v.to_string()),
        minor.map_or("?".to_owned(), |v| v.to_string())
    )]
    PaxSparseVersion {
        /// `GNU.sparse.major`, when given.
        major: Option<u64>,
        /// `GNU.sparse.minor`, when given.
        minor: Option<u64>,
    },

    /// A PAX record whose framing (`LEN KEY=VALUE\n`) is broken.
    #[error("malformed PAX record: {what}")]
    PaxRecord {
        /// What is wrong with it.
        what: &'static str,
    },

    /// A PAX record longer than what is left of the extended header.
    #[error("PAX record length {length} exceeds the {left} bytes left in the extended header")]
    PaxRecordLength {
        /// The length field (lossy UTF-8).
        length: String,
        /// Bytes left in the extended header.
        left: usize,
    },

    /// A PAX record whose value should be a decimal number and is not, or exceeds 64 bits.
    #[error("PAX record {key} has a value that is not a 64-bit decimal number: {value:?}")]
    PaxNumber {
        /// The record's key (lossy UTF-8).
        key: String,
        /// The value (lossy UTF-8).
        value: String,
    },

    /// A PAX time (`mtime`, `atime`, `ctime`) that is not `[-]SECONDS[.FRACTION]`.
    #[error("PAX time {value:?} is not [-]SECONDS[.FRACTION]")]
    PaxTime {
        /// The value (lossy UTF-8).
        value: String,
    },

    /// A libarchive xattr record whose value is not base64.
    #[error("PAX record {key} has a value that is not base64")]
    PaxBase64 {
        /// The record's key (lossy UTF-8).
        key: String,
    },

    /// A libarchive xattr key with a malformed `%XX` escape.
    #[error("PAX record {key} has a malformed %-escape")]
    PaxEscape {
        /// The record's key (lossy UTF-8).
        key: String,
    },
}
