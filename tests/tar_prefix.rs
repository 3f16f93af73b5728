//! The ustar `prefix` field (bytes 345..500, joined as `prefix/name`) end to end: which headers
//! have one (ustar magic whatever the version, and GNU magic written by Go ≤ 1.7), and which
//! do not (v7, GNU headers holding a real atime and ctime there), through every output format.

use crate::support::builder::{raw, Codec, ImageBuilder, Layer};
use crate::support::outputs::{convert_all, expand_expected};
use ocirender::ConvertOptions;

const POSIX: &[u8; 8] = b"ustar\x0000";
const USTAR_SPACE: &[u8; 8] = b"ustar\0 \0";
const GNU: &[u8; 8] = b"ustar  \0";
const V7: &[u8; 8] = &[0; 8];

/// A header block for a file `name` of `content` with `magic` (magic + version, 8 bytes) and
/// `tail` written from byte 345, then the content and its padding.
fn member(out: &mut Vec<u8>, name: &[u8], content: &[u8], magic: &[u8; 8], tail: &[u8]) {
    let mut h = raw::header(
        name,
        b'0',
        content.len() as u64,
        0o644,
        0,
        0,
        1_700_000_000,
        b"",
        (0, 0),
    );
    h[257..265].copy_from_slice(magic);
    h[345..345 + tail.len()].copy_from_slice(tail);
    raw::set_checksum(&mut h);
    out.extend_from_slice(&h);
    out.extend_from_slice(content);
    raw::pad(out);
}

#[test]
fn prefix_fields_through_every_format() {
    let mut tar = Vec::new();
    // POSIX ustar.
    member(&mut tar, b"posix", b"1", POSIX, b"a/ustar");
    // Magic `ustar\0` with the version GNU's magic has: still ustar (GNU tar and Go agree).
    member(
        &mut tar,
        b"space-version",
        b"2",
        USTAR_SPACE,
        b"b/ustar-space",
    );
    // Go <= 1.7: GNU magic (it needed base-256 for the uid) and the prefix in the atime field.
    let mut h = raw::header(b"old-go", b'0', 1, 0o644, 0, 0, 1_700_000_000, b"", (0, 0));
    h[108..116].copy_from_slice(&[0x80, 0, 0, 0, 0, 0x30, 0, 0]); // uid 3145728, base-256
    h[257..265].copy_from_slice(GNU);
    let prefix = b"c/go/a-directory-name-long-enough-to-need-the-prefix-field";
    h[345..345 + prefix.len()].copy_from_slice(prefix);
    raw::set_checksum(&mut h);
    tar.extend_from_slice(&h);
    tar.push(b'3');
    raw::pad(&mut tar);
    // GNU tar --incremental: a real atime and ctime, which are not a prefix.
    let mut times = [0u8; 24];
    raw::octal(&mut times[..12], 1_700_000_100);
    raw::octal(&mut times[12..], 1_700_000_200);
    member(&mut tar, b"gnu-times", b"4", GNU, &times);
    // v7: no magic, so bytes 345.. are padding whatever they hold.
    member(&mut tar, b"v7", b"5", V7, b"not/a/prefix");
    tar.extend(raw::end());

    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layer(Layer::from_tar_bytes(tar).compression(Codec::Plain))
        .build(t.path().join("img"));
    let expected = expand_expected(
        r#"
        / dir 0755 0:0 t=0
        /a dir 0755 0:0 t=0
        /a/ustar dir 0755 0:0 t=0
        /a/ustar/posix file 0644 0:0 t=1700000000 data="1"
        /b dir 0755 0:0 t=0
        /b/ustar-space dir 0755 0:0 t=0
        /b/ustar-space/space-version file 0644 0:0 t=1700000000 data="2"
        /c dir 0755 0:0 t=0
        /c/go dir 0755 0:0 t=0
        /c/go/a-directory-name-long-enough-to-need-the-prefix-field dir 0755 0:0 t=0
        /c/go/a-directory-name-long-enough-to-need-the-prefix-field/old-go file 0644 3145728:0 t=1700000000 data="3"
        /gnu-times file 0644 0:0 t=1700000000 data="4"
        /v7 file 0644 0:0 t=1700000000 data="5"
        "#,
    );
    for (format, result) in convert_all(&img, &ConvertOptions::default()) {
        let tree = result.unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_dump!(expected.as_str(), tree, "{format:?}");
    }
}

#[test]
fn device_numbers_in_a_ustar_header_with_another_version() {
    let mut h = raw::header(b"null", b'3', 0, 0o666, 0, 0, 1_700_000_000, b"", (1, 3));
    h[257..265].copy_from_slice(USTAR_SPACE);
    h[345..348].copy_from_slice(b"dev");
    raw::set_checksum(&mut h);
    let mut tar = h.to_vec();
    tar.extend(raw::end());
    let t = tempfile::tempdir().unwrap();
    let img = ImageBuilder::new()
        .layer(Layer::from_tar_bytes(tar).compression(Codec::Plain))
        .build(t.path().join("img"));
    let expected = r#"
        / dir 0755 0:0 t=0
        /dev dir 0755 0:0 t=0
        /dev/null chardev 0666 0:0 t=1700000000 dev=1,3
    "#;
    for (format, result) in convert_all(&img, &ConvertOptions::default()) {
        let tree = result.unwrap_or_else(|e| panic!("{format:?}: {e}"));
        assert_dump!(expected, tree, "{format:?}");
    }
}
