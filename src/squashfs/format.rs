//! The squashfs 4.0 on-disk format: every record the writer emits and the reader parses, with
//! its little-endian serialization in one place.
//!
//! # Layout of an image
//!
//! An image is one little-endian byte stream. The 96-byte [`Superblock`] sits at offset 0 and
//! points at everything else. If the compressor has non-default settings, a compressor options
//! block follows it (one metadata block marked uncompressed). Then come the file data blocks and
//! the fragment blocks (each compressed on its own, or stored raw when compression does not
//! shrink it), in the order the files were written. After the data the tables follow, each
//! directly after the previous one:
//!
//! ```text
//! superblock · comp options · data + fragment blocks · inode table · directory table ·
//! fragment table · export table · id table · xattr key/value data · xattr id table
//! ```
//!
//! The inode and directory tables are streams of *metadata blocks*: a `u16` header (length,
//! bit 15 set when stored raw) followed by at most 8192 bytes that decompress to exactly 8192
//! bytes, except for the last block of a table. A record is addressed by a [`MetaRef`]: the
//! offset of its metadata block's header relative to the table start, and the byte offset
//! inside the uncompressed block. Records may straddle blocks.
//!
//! The fragment, export, id and xattr id tables are *lookup tables*: their fixed-size entries
//! are packed into metadata blocks, and a list of `u64` absolute positions of those blocks
//! follows directly; the superblock points at that list. The Linux kernel checks that each
//! list ends exactly where the next table starts, which is why the order above is fixed.
//!
//! Everything here is a plain struct whose fields quote the format description (squashfs-tools
//! `squashfs_fs.h` and the kernel's `fs/squashfs/squashfs_fs.h`); [`Le`] writes the fields and
//! [`LeReader`] reads them back, so the byte order lives in two small helpers.

/// `hsqs`: the superblock magic.
pub const MAGIC: u32 = 0x7371_7368;
/// Major version written and accepted.
pub const VERSION_MAJOR: u16 = 4;
/// Minor version written and accepted.
pub const VERSION_MINOR: u16 = 0;
/// Size of the superblock in bytes.
pub const SUPERBLOCK_SIZE: usize = 96;
/// Uncompressed size of every metadata block except the last of a table.
pub const METADATA_SIZE: usize = 8192;
/// Metadata block header bit: "the block is stored uncompressed".
pub const METADATA_RAW: u16 = 0x8000;
/// Data block size word bit: "the block is stored uncompressed".
pub const DATA_RAW: u32 = 1 << 24;
/// Fragment index of a file without a fragment.
pub const NO_FRAGMENT: u32 = 0xFFFF_FFFF;
/// Xattr index of an inode without extended attributes.
pub const NO_XATTR: u32 = 0xFFFF_FFFF;
/// Table pointer of a table that is not present.
pub const NO_TABLE: u64 = u64::MAX;
/// The most entries one directory header may cover.
pub const DIR_HEADER_MAX: usize = 256;
/// Longest symlink target the kernel accepts (`PAGE_SIZE` on 4 KiB-page systems).
pub const SYMLINK_MAX: usize = 4096;
/// Longest name a directory entry or index entry can hold (the kernel's `SQUASHFS_NAME_LEN`).
pub const NAME_LEN_MAX: usize = 256;
/// Images are padded to a multiple of this (loop devices work in 4 KiB units).
pub const DEVICE_BLOCK: u64 = 4096;

/// Superblock flags (`SQUASHFS_*` in `squashfs_fs.h`). The kernel reads only
/// [`flags::COMP_OPT`]; the others describe how the image was made and tools report them.
pub mod flags {
    /// Inodes are stored uncompressed.
    pub const NOI: u16 = 0x0001;
    /// Data blocks are stored uncompressed.
    pub const NOD: u16 = 0x0002;
    /// Fragments are stored uncompressed.
    pub const NOF: u16 = 0x0008;
    /// Fragments are not used.
    pub const NO_FRAG: u16 = 0x0010;
    /// Fragments are used for whole small files too.
    pub const ALWAYS_FRAG: u16 = 0x0020;
    /// Files with equal content are stored once.
    pub const DUPLICATES: u16 = 0x0040;
    /// The export (NFS) table is present.
    pub const EXPORTABLE: u16 = 0x0080;
    /// Xattrs are stored uncompressed.
    pub const NOX: u16 = 0x0100;
    /// Xattrs are not stored.
    pub const NO_XATTR: u16 = 0x0200;
    /// A compressor options block follows the superblock.
    pub const COMP_OPT: u16 = 0x0400;
    /// The id table is stored uncompressed.
    pub const NOID: u16 = 0x0800;
}

/// Compressor ids of the superblock's `compression` field.
pub mod compression_id {
    /// zlib streams.
    pub const GZIP: u16 = 1;
    /// Legacy LZMA (not written; reported by the reader as unsupported).
    pub const LZMA: u16 = 2;
    /// LZO (not written; reported by the reader as unsupported).
    pub const LZO: u16 = 3;
    /// xz streams (LZMA2 in the `.xz` container).
    pub const XZ: u16 = 4;
    /// LZ4 raw blocks.
    pub const LZ4: u16 = 5;
    /// Zstandard frames.
    pub const ZSTD: u16 = 6;
}

/// Inode types. The directory entry `type` field always holds the basic type (1–7).
pub mod inode_type {
    /// Basic directory.
    pub const DIR: u16 = 1;
    /// Basic regular file.
    pub const FILE: u16 = 2;
    /// Basic symlink.
    pub const SYMLINK: u16 = 3;
    /// Basic block device.
    pub const BLOCK_DEV: u16 = 4;
    /// Basic character device.
    pub const CHAR_DEV: u16 = 5;
    /// Basic fifo.
    pub const FIFO: u16 = 6;
    /// Basic socket.
    pub const SOCKET: u16 = 7;
    /// Added to a basic type to get its extended type (8–14).
    pub const EXTENDED: u16 = 7;
}

/// Xattr key type prefixes (`SQUASHFS_XATTR_USER` …); `| 0x100` marks an out-of-line value.
pub mod xattr_prefix {
    /// `user.`
    pub const USER: u16 = 0;
    /// `trusted.`
    pub const TRUSTED: u16 = 1;
    /// `security.`
    pub const SECURITY: u16 = 2;
    /// The value is a `u64` reference to a value stored elsewhere.
    pub const OUT_OF_LINE: u16 = 0x100;
}

/// Little-endian field writer: the only place that turns integers into bytes.
#[derive(Debug)]
pub struct Le<'a>(pub &'a mut Vec<u8>);

impl Le<'_> {
    /// Appends a `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends an `i16`.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// Appends raw bytes.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Little-endian field reader over a byte slice; every read is bounds-checked and a short
/// input gives `None` (the reader turns that into `Error::BadSquashfs`).
#[derive(Debug, Clone)]
pub struct LeReader<'a> {
    data: &'a [u8],
}

impl<'a> LeReader<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        LeReader { data }
    }
    /// Takes the next `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.data.len() {
            return None;
        }
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.bytes(N)?.try_into().ok()
    }
    /// Reads a `u16`.
    pub fn u16(&mut self) -> Option<u16> {
        self.array().map(u16::from_le_bytes)
    }
    /// Reads an `i16`.
    pub fn i16(&mut self) -> Option<i16> {
        self.array().map(i16::from_le_bytes)
    }
    /// Reads a `u32`.
    pub fn u32(&mut self) -> Option<u32> {
        self.array().map(u32::from_le_bytes)
    }
    /// Reads a `u64`.
    pub fn u64(&mut self) -> Option<u64> {
        self.array().map(u64::from_le_bytes)
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.data.len()
    }
}

/// A reference to a record in the inode or directory table.
///
/// "The upper 48 bits are the location of the metadata block relative to the table start, the
/// lower 16 bits the offset into the uncompressed block" (`SQUASHFS_MKINODE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MetaRef {
    /// Offset of the metadata block's header from the table start.
    pub block: u64,
    /// Offset of the record inside the uncompressed block (< 8192).
    pub offset: u16,
}

impl MetaRef {
    /// The packed 64-bit form stored in the superblock, export table and xattr id table.
    pub fn packed(self) -> u64 {
        (self.block << 16) | u64::from(self.offset)
    }

    /// Unpacks the 64-bit form.
    pub fn unpack(v: u64) -> MetaRef {
        MetaRef {
            block: v >> 16,
            offset: (v & 0xFFFF) as u16,
        }
    }
}

/// The superblock at offset 0 (`struct squashfs_super_block`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Superblock {
    /// "Must be set to 0x73717368 (`hsqs` on disk)."
    pub magic: u32,
    /// "The number of inodes stored in the inode table."
    pub inode_count: u32,
    /// "The number of seconds (not counting leap seconds) since 00:00, Jan 1 1970 UTC when the
    /// archive was created."
    pub mod_time: u32,
    /// "The size of a data block in bytes. Must be a power of two between 4096 and 1048576."
    pub block_size: u32,
    /// "The number of entries in the fragment table."
    pub frag_count: u32,
    /// "1 - GZIP, 2 - LZMA, 3 - LZO, 4 - XZ, 5 - LZ4, 6 - ZSTD."
    pub compression: u16,
    /// "The log2 of block_size. If block_size and block_log do not agree, the archive is
    /// considered corrupt."
    pub block_log: u16,
    /// "Superblock flags."
    pub flags: u16,
    /// "The number of entries in the id lookup table."
    pub id_count: u16,
    /// "Must be 4."
    pub version_major: u16,
    /// "Must be 0."
    pub version_minor: u16,
    /// "A reference to the inode of the root directory."
    pub root_inode: u64,
    /// "The number of bytes used by the archive. Because SquashFS archives are often padded to
    /// 4KiB, this can often be less than the file size."
    pub bytes_used: u64,
    /// "The byte offset at which the id table starts."
    pub id_table: u64,
    /// "The byte offset at which the xattr id table starts" (all ones when absent).
    pub xattr_table: u64,
    /// "The byte offset at which the inode table starts."
    pub inode_table: u64,
    /// "The byte offset at which the directory table starts."
    pub dir_table: u64,
    /// "The byte offset at which the fragment table starts."
    pub frag_table: u64,
    /// "The byte offset at which the export table starts" (all ones when absent).
    pub export_table: u64,
}

impl Superblock {
    /// The 96 bytes written at offset 0.
    pub fn to_bytes(&self) -> [u8; SUPERBLOCK_SIZE] {
        let mut v = Vec::with_capacity(SUPERBLOCK_SIZE);
        Le(&mut v)
            .u32(self.magic)
            .u32(self.inode_count)
            .u32(self.mod_time)
            .u32(self.block_size)
            .u32(self.frag_count)
            .u16(self.compression)
            .u16(self.block_log)
            .u16(self.flags)
            .u16(self.id_count)
            .u16(self.version_major)
            .u16(self.version_minor)
            .u64(self.root_inode)
            .u64(self.bytes_used)
            .u64(self.id_table)
            .u64(self.xattr_table)
            .u64(self.inode_table)
            .u64(self.dir_table)
            .u64(self.frag_table)
            .u64(self.export_table);
        let mut out = [0u8; SUPERBLOCK_SIZE];
        out.copy_from_slice(&v);
        out
    }

    /// Parses the first 96 bytes of an image (no validation beyond the length).
    pub fn parse(bytes: &[u8]) -> Option<Superblock> {
        let mut r = LeReader::new(bytes);
        Some(Superblock {
            magic: r.u32()?,
            inode_count: r.u32()?,
            mod_time: r.u32()?,
            block_size: r.u32()?,
            frag_count: r.u32()?,
            compression: r.u16()?,
            block_log: r.u16()?,
            flags: r.u16()?,
            id_count: r.u16()?,
            version_major: r.u16()?,
            version_minor: r.u16()?,
            root_inode: r.u64()?,
            bytes_used: r.u64()?,
            id_table: r.u64()?,
            xattr_table: r.u64()?,
            inode_table: r.u64()?,
            dir_table: r.u64()?,
            frag_table: r.u64()?,
            export_table: r.u64()?,
        })
    }
}

/// The header every inode starts with (`struct squashfs_base_inode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InodeHeader {
    /// "The type of item described by the inode" (1–14).
    pub inode_type: u16,
    /// "A bit mask representing Unix file system permissions for the inode" (no type bits).
    pub permissions: u16,
    /// "An index into the id table, giving the user id of the owner."
    pub uid_idx: u16,
    /// "An index into the id table, giving the group id of the owner."
    pub gid_idx: u16,
    /// "The unsigned number of seconds since the epoch of the last modification."
    pub mtime: u32,
    /// "The position of this inode in the full list of inodes" (1-based, unique).
    pub inode_number: u32,
}

impl InodeHeader {
    /// Size on disk.
    pub const SIZE: usize = 16;

    /// Appends the header.
    pub fn write(&self, out: &mut Vec<u8>) {
        Le(out)
            .u16(self.inode_type)
            .u16(self.permissions)
            .u16(self.uid_idx)
            .u16(self.gid_idx)
            .u32(self.mtime)
            .u32(self.inode_number);
    }

    /// Parses a header.
    pub fn parse(r: &mut LeReader<'_>) -> Option<InodeHeader> {
        Some(InodeHeader {
            inode_type: r.u16()?,
            permissions: r.u16()?,
            uid_idx: r.u16()?,
            gid_idx: r.u16()?,
            mtime: r.u32()?,
            inode_number: r.u32()?,
        })
    }
}

/// One entry of an extended directory inode's index (`struct squashfs_dir_index`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirIndex {
    /// "The byte offset from the first directory header to the current header, as if the
    /// uncompressed directory metadata blocks were laid out in memory consecutively."
    pub index: u32,
    /// "Start offset of a directory table metadata block, relative to the directory table
    /// start."
    pub start: u32,
    /// "The name of the first entry following the header" (stored as length − 1, then bytes).
    pub name: Vec<u8>,
}

/// A directory header (`struct squashfs_dir_header`): a run of up to 256 entries whose inodes
/// lie in one inode metadata block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DirHeader {
    /// "Number of entries following the header", stored as count − 1.
    pub count: u32,
    /// "The location of the metadata block in the inode table where the inodes are stored.
    /// This is relative to the inode table start."
    pub start: u32,
    /// "An arbitrary inode number. The entries that follow store their inode number as a
    /// difference to this."
    pub inode_number: u32,
}

impl DirHeader {
    /// Size on disk.
    pub const SIZE: usize = 12;

    /// Appends the header; `count` is the real number of entries (1–256).
    pub fn write(&self, out: &mut Vec<u8>) {
        Le(out)
            .u32(self.count.saturating_sub(1))
            .u32(self.start)
            .u32(self.inode_number);
    }
}

/// A directory entry (`struct squashfs_dir_entry`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirEntry<'a> {
    /// "An offset into the uncompressed inode metadata block."
    pub offset: u16,
    /// "The difference of this inode's number to the reference stored in the header."
    pub inode_delta: i16,
    /// "The inode type. For extended inodes, the corresponding basic type is stored here
    /// instead."
    pub inode_type: u16,
    /// "The name of the file" (stored as length − 1, then the bytes, no NUL).
    pub name: &'a [u8],
}

impl DirEntry<'_> {
    /// Size on disk without the name.
    pub const FIXED_SIZE: usize = 8;

    /// Appends the entry; the name must be 1–256 bytes.
    pub fn write(&self, out: &mut Vec<u8>) {
        Le(out)
            .u16(self.offset)
            .i16(self.inode_delta)
            .u16(self.inode_type)
            .u16((self.name.len().saturating_sub(1)) as u16)
            .bytes(self.name);
    }
}

/// A fragment table entry (`struct squashfs_fragment_entry`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FragmentEntry {
    /// "The offset within the archive where the fragment block starts."
    pub start: u64,
    /// "The on-disk size of the fragment block. If the block is uncompressed, bit 24 is set."
    pub size: u32,
}

impl FragmentEntry {
    /// Size on disk.
    pub const SIZE: usize = 16;

    /// Appends the entry ("unused" is written as 0).
    pub fn write(&self, out: &mut Vec<u8>) {
        Le(out).u64(self.start).u32(self.size).u32(0);
    }
}

/// An xattr id table entry (`struct squashfs_xattr_id`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XattrId {
    /// "A reference to the first key/value pair in the key/value metadata blocks", relative to
    /// the start of the key/value data.
    pub kv_ref: u64,
    /// "The number of key/value pairs."
    pub count: u32,
    /// "The total size of the key/value pairs in bytes": for each pair, the length of the full
    /// name plus one plus the value length (as mksquashfs computes it, for `stat`).
    pub size: u32,
}

impl XattrId {
    /// Size on disk.
    pub const SIZE: usize = 16;

    /// Appends the entry.
    pub fn write(&self, out: &mut Vec<u8>) {
        Le(out).u64(self.kv_ref).u32(self.count).u32(self.size);
    }
}

/// The stored length of a data block (or fragment block) from its size word.
pub fn stored_len(word: u32) -> u64 {
    u64::from(word & (DATA_RAW - 1))
}

/// The compressed-or-raw size word of a data block: bit 24 set = stored raw, 0 = hole.
pub fn data_block_word(len: u32, raw: bool) -> u32 {
    if raw {
        len | DATA_RAW
    } else {
        len
    }
}

/// Encodes a device number as the kernel's `new_encode_dev`: minor low 8 bits, major in bits
/// 8–19, minor high bits above. `None` if major ≥ 2¹² or minor ≥ 2²⁰ (not representable).
pub fn encode_dev(major: u32, minor: u32) -> Option<u32> {
    if major >= 1 << 12 || minor >= 1 << 20 {
        return None;
    }
    Some((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12))
}

/// The inverse of [`encode_dev`] (`new_decode_dev`): `(major, minor)`.
pub fn decode_dev(dev: u32) -> (u32, u32) {
    let major = (dev & 0xfff00) >> 8;
    let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
    (major, minor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn superblock_round_trips_and_is_96_bytes() {
        let sb = Superblock {
            magic: MAGIC,
            inode_count: 3,
            block_size: 131072,
            block_log: 17,
            root_inode: 0x1234_0056,
            bytes_used: 4000,
            xattr_table: NO_TABLE,
            ..Superblock::default()
        };
        let bytes = sb.to_bytes();
        assert_eq!(&bytes[..4], b"hsqs");
        assert_eq!(Superblock::parse(&bytes), Some(sb));
    }

    #[test]
    fn device_numbers_use_new_encode_dev() {
        assert_eq!(encode_dev(1, 3), Some(0x103));
        assert_eq!(encode_dev(8, 0x12345), Some(0x12300845));
        for (ma, mi) in [(0, 0), (1, 3), (4095, (1 << 20) - 1), (259, 70000)] {
            assert_eq!(decode_dev(encode_dev(ma, mi).unwrap()), (ma, mi));
        }
        assert_eq!(encode_dev(4096, 0), None);
        assert_eq!(encode_dev(0, 1 << 20), None);
    }

    #[test]
    fn meta_ref_packs_block_and_offset() {
        let r = MetaRef {
            block: 0x1_0002,
            offset: 0x1ff,
        };
        assert_eq!(r.packed(), 0x1_0002_01ff);
        assert_eq!(MetaRef::unpack(r.packed()), r);
    }

    #[test]
    fn dir_records_have_the_documented_sizes() {
        let mut v = Vec::new();
        DirHeader {
            count: 256,
            start: 1,
            inode_number: 2,
        }
        .write(&mut v);
        assert_eq!(v.len(), DirHeader::SIZE);
        assert_eq!(&v[..4], &255u32.to_le_bytes(), "count is stored minus one");
        v.clear();
        DirEntry {
            offset: 1,
            inode_delta: -1,
            inode_type: 2,
            name: b"abc",
        }
        .write(&mut v);
        assert_eq!(v.len(), DirEntry::FIXED_SIZE + 3);
        assert_eq!(
            &v[6..8],
            &2u16.to_le_bytes(),
            "name size is stored minus one"
        );
    }
}
