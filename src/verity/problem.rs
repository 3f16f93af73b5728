//! Why a dm-verity hash area cannot be used, as values a caller can match on.
//!
//! [`Error::BadVerity`](crate::Error::BadVerity) carries a [`VerityProblem`], so that a tool can
//! tell an image made without `--verity` from a cut hash file from a tree with parameters we
//! do not support, without parsing the message. A problem is a leaf: its `Display` is the
//! whole description and it has no `source`.

use crate::verity::{VerityHash, MAX_SALT};

/// One reason a hash tree cannot be read. The wording of `Display` is what follows
/// `unusable dm-verity hash tree in PATH: ` in the error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerityProblem {
    /// The file ends where the hash area should start: most likely the image was made
    /// without `--verity`, or the wrong file was given.
    #[error(
        "no hash tree at offset {offset}: the file has {file_len} bytes (was the image made \
         with --verity?)"
    )]
    NoHashTree {
        /// Where the hash area's superblock should be.
        offset: u64,
        /// The size of the file.
        file_len: u64,
    },
    /// The bytes where the superblock should be are something else.
    #[error("no verity superblock (signature \"verity\" missing)")]
    NoSignature,
    /// Only format 1 exists; another number means a format we cannot know.
    #[error("superblock version {version}; only 1 exists")]
    UnsupportedVersion {
        /// The version the superblock claims.
        version: u32,
    },
    /// Chrome OS's hash type 0 lays the salt out differently.
    #[error("hash type {hash_type}; only 1 (normal) is supported, not 0 (Chrome OS)")]
    UnsupportedHashType {
        /// The hash type the superblock claims.
        hash_type: u32,
    },
    /// The tree was made with a digest we do not compute.
    #[error("hash algorithm {name:?}; sha256 and sha512 are supported")]
    UnsupportedAlgorithm {
        /// The algorithm name the superblock gives (lossy UTF-8).
        name: String,
    },
    /// Block sizes bound the tree's layout, so only the ones the kernel accepts are.
    #[error(
        "block sizes {data} (data) and {hash} (hash); each must be a power of two from 512 to \
         1 MiB"
    )]
    BadBlockSizes {
        /// The data block size the superblock gives.
        data: u32,
        /// The hash block size the superblock gives.
        hash: u32,
    },
    /// A hash block must hold at least two digests for the tree to narrow down.
    #[error("hash block size {size} holds fewer than two {hash} digests")]
    HashBlockTooSmall {
        /// The hash block size.
        size: u32,
        /// The digest algorithm.
        hash: VerityHash,
    },
    /// A tree over nothing protects nothing, and its layout is undefined.
    #[error("zero data blocks")]
    NoDataBlocks,
    /// The salt field of the superblock has room for [`MAX_SALT`] bytes only.
    #[error("salt size {len}; the superblock holds at most {MAX_SALT}")]
    SaltTooLong {
        /// The salt size the superblock claims.
        len: usize,
    },
    /// The tree covers more data than the image has: a cut image or the wrong one.
    #[error(
        "the superblock counts {blocks} data blocks of {block_size} bytes, more than the \
         image's {available} bytes before the hash tree"
    )]
    DataBeyondImage {
        /// Data blocks the superblock counts.
        blocks: u64,
        /// Bytes per data block.
        block_size: u32,
        /// Bytes of the image the tree may cover.
        available: u64,
    },
    /// The hash file ends before the tree its superblock describes.
    #[error("the hash tree needs {needs} bytes from offset {offset}; the file has {file_len}")]
    TreeTruncated {
        /// Bytes of the tree.
        needs: u64,
        /// Where the tree starts.
        offset: u64,
        /// The size of the file.
        file_len: u64,
    },
    /// An appended tree is found from the squashfs superblock, which this file lacks.
    #[error("not a squashfs image, so the hash tree's offset is unknown (give the hash file)")]
    NotSquashfs,
    /// `bytes_used` so close to `u64::MAX` that the tree after it has no offset.
    #[error("the squashfs superblock's bytes_used {bytes_used} is impossible")]
    ImpossibleBytesUsed {
        /// The `bytes_used` the squashfs superblock claims.
        bytes_used: u64,
    },
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::Error;
    use crate::verity::check;

    /// The problem `check` reports for `image` with the hash tree in `hash_file`.
    fn problem_of(image: &Path, hash_file: Option<&Path>) -> VerityProblem {
        match check(image, hash_file, &[0; 32]) {
            Err(Error::BadVerity { problem, .. }) => problem,
            other => panic!("expected BadVerity, got {other:?}"),
        }
    }

    #[test]
    fn a_file_without_a_tree_and_a_foreign_hash_file_are_told_apart() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let image = dir.path().join("image");
        // A squashfs superblock whose bytes_used leaves no room for the tree's offset.
        let mut bytes = vec![0u8; 8192];
        bytes[40..48].fill(0xff);
        std::fs::write(&image, &bytes).expect("write the image");
        assert!(matches!(
            problem_of(&image, None),
            VerityProblem::ImpossibleBytesUsed {
                bytes_used: u64::MAX
            }
        ));
        // Zeros where the appended tree should start (bytes_used 0: offset 0).
        std::fs::write(&image, vec![0u8; 8192]).expect("write the image");
        assert!(matches!(
            problem_of(&image, None),
            VerityProblem::NoSignature
        ));

        let hash = dir.path().join("hash");
        std::fs::write(&hash, b"short").expect("write the hash file");
        let problem = problem_of(&image, Some(&hash));
        assert!(
            matches!(
                problem,
                VerityProblem::NoHashTree {
                    offset: 0,
                    file_len: 5
                }
            ),
            "{problem:?}"
        );
        assert!(problem.to_string().contains("--verity"), "{problem}");

        std::fs::write(&hash, vec![0u8; 4096]).expect("write the hash file");
        assert!(matches!(
            problem_of(&image, Some(&hash)),
            VerityProblem::NoSignature
        ));
    }

    #[test]
    fn messages_keep_their_wording() {
        let p = VerityProblem::HashBlockTooSmall {
            size: 64,
            hash: VerityHash::Sha512,
        };
        assert_eq!(
            p.to_string(),
            "hash block size 64 holds fewer than two sha512 digests"
        );
        assert!(std::error::Error::source(&p).is_none());
    }
}
