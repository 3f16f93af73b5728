//! The `squashfs_reader` target's input: the bytes of a squashfs image, taken as they are.
//!
//! Why raw bytes rather than a seed index and a list of edits: libFuzzer's own mutations (bit
//! flips, overwrites with the values it saw the reader compare against, copies of runs within
//! the image, crossover of two images, insertions, truncation) then work on the image itself,
//! guided by what the reader compares, and every corpus file and crash artifact is an image
//! that `ocirender ls`, `unsquashfs` or a hex dump opens as it is. Edits made by index would
//! have to find the tables blind. The seeds are valid images written in code
//! ([`seeds::squashfs_images`](crate::seeds::squashfs_images) with ocirender's writer,
//! [`seeds::mksquashfs_images`](crate::seeds::mksquashfs_images) with mksquashfs); the fuzzer
//! mutates them.
//!
//! `Debug` prints a reproducer for `tests/squashfs_hostile.rs`: a comment naming the seed the
//! image is closest to and the bytes that differ from it (for a human), then a test whose
//! `image(…)` argument is the image itself, gzip-compressed and in base64.

use std::fmt;
use std::io::Write as _;

use arbitrary::{Arbitrary, Unstructured};

use crate::seeds::{self, SeedImage};

/// An image, as the fuzzer made it.
#[derive(Clone, PartialEq, Eq)]
pub struct SquashfsImage(pub Vec<u8>);

impl<'a> Arbitrary<'a> for SquashfsImage {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(SquashfsImage(u.bytes(u.len())?.to_vec()))
    }

    fn arbitrary_take_rest(mut u: Unstructured<'a>) -> arbitrary::Result<Self> {
        Self::arbitrary(&mut u)
    }
}

/// Runs of differing bytes closer than this are shown as one.
const JOIN: usize = 4;
/// Most runs listed.
const MAX_RUNS: usize = 24;
/// Most bytes of one run shown.
const MAX_SHOWN: usize = 16;

/// The `[start, end)` runs where `a` and `b` differ over their common length.
fn runs(a: &[u8], b: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for i in (0..a.len().min(b.len())).filter(|&i| a[i] != b[i]) {
        match out.last_mut() {
            Some((_, end)) if i <= *end + JOIN => *end = i + 1,
            _ => out.push((i, i + 1)),
        }
    }
    out
}

/// How far `image` is from `seed`: differing bytes plus the difference in length.
fn distance(image: &[u8], seed: &[u8]) -> usize {
    let common = image.len().min(seed.len());
    let differing = (0..common).filter(|&i| image[i] != seed[i]).count();
    differing + image.len().abs_diff(seed.len())
}

fn hex(b: &[u8]) -> String {
    let shown: Vec<String> = b
        .iter()
        .take(MAX_SHOWN)
        .map(|x| format!("{x:02x}"))
        .collect();
    let more = if b.len() > MAX_SHOWN { " …" } else { "" };
    format!("{}{more}", shown.join(" "))
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `data` gzip-compressed, in base64: the form `tests/squashfs_hostile.rs` embeds images in.
pub fn gzip_base64(data: &[u8]) -> String {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(data).expect("write to memory");
    base64(&gz.finish().expect("finish in memory"))
}

impl fmt::Debug for SquashfsImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let image = &self.0;
        let mut candidates: Vec<SeedImage> = seeds::squashfs_images();
        candidates.extend(seeds::mksquashfs_images().unwrap_or_default());
        writeln!(f, "// squashfs_reader input of {} bytes", image.len())?;
        if let Some(seed) = candidates.iter().min_by_key(|s| distance(image, &s.bytes)) {
            let runs = runs(image, &seed.bytes);
            writeln!(
                f,
                "// nearest seed: {} ({} bytes); {} runs differ:",
                seed.name,
                seed.bytes.len(),
                runs.len()
            )?;
            for &(start, end) in runs.iter().take(MAX_RUNS) {
                writeln!(
                    f,
                    "//   {start:#07x}: {} -> {}",
                    hex(&seed.bytes[start..end]),
                    hex(&image[start..end])
                )?;
            }
            if runs.len() > MAX_RUNS {
                writeln!(f, "//   … and {} more", runs.len() - MAX_RUNS)?;
            }
            if image.len() < seed.bytes.len() {
                writeln!(f, "//   cut to {} bytes", image.len())?;
            } else if image.len() > seed.bytes.len() {
                let extra = &image[seed.bytes.len()..];
                writeln!(f, "//   {} bytes appended: {}", extra.len(), hex(extra))?;
            }
        }
        let encoded = gzip_base64(image);
        writeln!(f, "#[test]")?;
        writeln!(f, "fn hostile_image_() {{")?;
        writeln!(f, "    assert_reader_survives(&image(")?;
        writeln!(f, "        \"\\")?;
        let lines: Vec<&[u8]> = encoded.as_bytes().chunks(88).collect();
        for (i, line) in lines.iter().enumerate() {
            let end = if i + 1 == lines.len() { "\"," } else { "\\" };
            let text = std::str::from_utf8(line).expect("base64 is ASCII");
            writeln!(f, "         {text}{end}")?;
        }
        writeln!(f, "    ));")?;
        writeln!(f, "}}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_examples() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn runs_join_close_differences() {
        assert_eq!(runs(b"abcdefghij", b"abcdefghij"), vec![]);
        assert_eq!(runs(b"aXcdeXghij", b"abcdefghij"), vec![(1, 6)]);
        assert_eq!(
            runs(b"Xbcdefghi", b"abcdefghiX"),
            vec![(0, 1)],
            "only the common length"
        );
    }
}
