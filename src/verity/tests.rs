//! The tree layout and digests against values `veritysetup format` printed for the same data
//! and salt (cryptsetup 2.6.1, `--salt` of 32 zero bytes, data byte i = (7i + n) mod 251).

use super::superblock::{Superblock, SIZE};
use super::tree::{self, Layout, Salted};
use super::*;

fn data(blocks: usize) -> Vec<u8> {
    (0..blocks * 4096)
        .map(|i| ((i * 7 + blocks) % 251) as u8)
        .collect()
}

fn root_of(blocks: usize) -> (String, usize) {
    let bytes = data(blocks);
    let salted = Salted::new(VerityHash::Sha256, &[0; 32]);
    let leaves: Vec<u8> = bytes.chunks(4096).flat_map(|b| salted.digest(b)).collect();
    let layout = Layout::new(VerityHash::Sha256, 4096, blocks as u64);
    let (levels, root) = tree::build(&salted, 32, &leaves, &layout, 4096);
    assert_eq!(levels.len() as u64, layout.blocks() * 4096);
    (hex::encode(root), levels.len())
}

#[test]
fn roots_match_veritysetup() {
    // (data blocks, root hash, hash device size − the superblock's block)
    let cases = [
        (
            1,
            "20c72de37fd8f993123751d4d38bbe64d64785f80fb54381e0b19d40d676676c",
            0,
        ),
        (
            2,
            "06c62d8346896122ddf03dfc98921c9b64579749fa12cb0641eebd3dfc8c12e5",
            4096,
        ),
        (
            128,
            "7a3bf5cbd8df27e2c602fe42937cbc13131f51a68b5954a43a2e03b68e1b0e87",
            4096,
        ),
        (
            129,
            "aa67ef2ec312e879fdce700598b49462f2ee02475881ab8e4988701cb6ad89a0",
            12288,
        ),
    ];
    for (blocks, root, tree_bytes) in cases {
        assert_eq!(
            root_of(blocks),
            (root.to_string(), tree_bytes),
            "{blocks} blocks"
        );
    }
}

#[test]
fn levels_are_stored_top_first() {
    let l = Layout::new(VerityHash::Sha256, 4096, 128 * 128 + 1);
    // 16385 blocks: level 0 has 129 blocks, level 1 two, level 2 one.
    assert_eq!(l.levels, vec![(3, 129), (1, 2), (0, 1)]);
    assert_eq!(l.blocks(), 132);
    assert!(Layout::new(VerityHash::Sha256, 4096, 1).levels.is_empty());
    let sha512 = Layout::new(VerityHash::Sha512, 4096, 65);
    assert_eq!((sha512.per_block, sha512.slot), (64, 64));
    assert_eq!(sha512.levels, vec![(1, 2), (0, 1)]);
}

#[test]
fn the_superblock_round_trips_and_bad_ones_are_named() {
    let sb = Superblock {
        hash: VerityHash::Sha512,
        uuid: [7; 16],
        data_block_size: 4096,
        hash_block_size: 4096,
        data_blocks: 12345,
        salt: vec![1, 2, 3],
    };
    let bytes = sb.to_bytes();
    assert_eq!(&bytes[..8], b"verity\0\0");
    assert_eq!(Superblock::parse(&bytes), Ok(sb));
    let broken = |at: usize, v: u8| {
        let mut b = bytes;
        b[at] = v;
        Superblock::parse(&b).unwrap_err()
    };
    assert_eq!(broken(0, b'x'), VerityProblem::NoSignature);
    assert!(broken(0, b'x').to_string().contains("signature"));
    assert_eq!(
        broken(8, 2),
        VerityProblem::UnsupportedVersion { version: 2 }
    );
    assert!(broken(8, 2).to_string().contains("version 2"));
    assert_eq!(
        broken(12, 0),
        VerityProblem::UnsupportedHashType { hash_type: 0 }
    );
    assert!(broken(12, 0).to_string().contains("Chrome OS"));
    assert!(matches!(
        broken(32, b'm'),
        VerityProblem::UnsupportedAlgorithm { ref name } if name == "mha512"
    ));
    assert!(broken(32, b'm').to_string().contains("\"mha512\""));
    assert!(matches!(
        broken(65, 0x11),
        VerityProblem::BadBlockSizes { hash: 4096, .. }
    ));
    assert!(broken(65, 0x11).to_string().contains("block sizes"));
    assert!(matches!(
        broken(81, 1),
        VerityProblem::SaltTooLong { len } if len > MAX_SALT
    ));
    assert!(broken(81, 1).to_string().contains("salt size"));
    let mut zero = bytes;
    zero[72..80].fill(0);
    assert_eq!(Superblock::parse(&zero), Err(VerityProblem::NoDataBlocks));
    assert!(Superblock::parse(&zero)
        .unwrap_err()
        .to_string()
        .contains("zero data blocks"));
    assert_eq!(SIZE, 512);
}

#[test]
fn salts_parse_from_hex() {
    assert_eq!(parse_salt("-"), Ok(vec![]));
    assert_eq!(parse_salt("00ff"), Ok(vec![0, 0xff]));
    assert!(parse_salt("0g").unwrap_err().contains("not hex"));
    assert!(parse_salt(&"00".repeat(257))
        .unwrap_err()
        .contains("257 bytes"));
}

#[test]
fn the_info_gives_the_kernel_table() {
    let info = VerityInfo {
        hash: VerityHash::Sha256,
        root_hash: vec![0xab; 32],
        salt: vec![],
        uuid: [0x12; 16],
        data_blocks: 10,
        data_block_size: 4096,
        hash_block_size: 4096,
        hash_offset: 40960,
        hash_file: None,
    };
    assert_eq!(info.hash_start_block(), 11);
    assert_eq!(info.uuid_text(), "12121212-1212-1212-1212-121212121212");
    assert_eq!(
        info.dm_table(),
        format!(
            "0 80 verity 1 DATA_DEV HASH_DEV 4096 4096 10 11 sha256 {} -",
            "ab".repeat(32)
        )
    );
    let json = info.to_json().to_string();
    assert_eq!(VerityInfo::root_hash_from_json(&json), Some(vec![0xab; 32]));
}
