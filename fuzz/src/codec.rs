//! The byte format of the structured fuzz inputs, in both directions.
//!
//! Decoding reads from `arbitrary`'s [`Unstructured`] with two primitives only (one byte, or a
//! run of bytes), so that [`Enc`] can write the exact bytes a given value decodes from: the
//! seed corpora are values built in code (`gen_corpus`), encoded. Decoding never fails: bytes
//! past the end read as zero, and a run longer than what is left is cut short, so every input
//! means something and a truncated seed still means almost the same thing.

use arbitrary::Unstructured;

/// One byte (0 once the input is used up).
pub fn u8(u: &mut Unstructured<'_>) -> u8 {
    u.arbitrary::<u8>().unwrap_or(0)
}

/// Two bytes, little-endian.
pub fn u16(u: &mut Unstructured<'_>) -> u16 {
    u16::from_le_bytes([u8(u), u8(u)])
}

/// Four bytes, little-endian.
pub fn u32(u: &mut Unstructured<'_>) -> u32 {
    u32::from_le_bytes([u8(u), u8(u), u8(u), u8(u)])
}

/// Eight bytes, little-endian.
pub fn u64(u: &mut Unstructured<'_>) -> u64 {
    (u64::from(u32(u))) | (u64::from(u32(u)) << 32)
}

/// A choice among `n` (> 0) options.
pub fn pick(u: &mut Unstructured<'_>, n: usize) -> usize {
    usize::from(u8(u)) % n
}

/// Up to `max` bytes after a one-byte length.
pub fn short_bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let len = usize::from(u8(u)).min(max);
    run(u, len)
}

/// Up to `max` bytes after a two-byte length.
pub fn bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let len = usize::from(u16(u)).min(max);
    run(u, len)
}

/// `len` bytes, or what is left.
pub fn run(u: &mut Unstructured<'_>, len: usize) -> Vec<u8> {
    let len = len.min(u.len());
    u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
}

/// Writes the bytes a value decodes from (the mirror of the functions above).
#[derive(Default)]
pub struct Enc(pub Vec<u8>);

impl Enc {
    /// See [`u8`].
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }

    /// See [`u16`].
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// See [`u32`].
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// See [`u64`].
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// See [`pick`]: the index of the option.
    pub fn pick(&mut self, i: usize) -> &mut Self {
        self.u8(u8::try_from(i).expect("a choice fits a byte"))
    }

    /// See [`short_bytes`].
    pub fn short_bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u8::try_from(b.len()).expect("short run");
        self.u8(len).run(b)
    }

    /// See [`bytes`].
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        let len = u16::try_from(b.len()).expect("run of at most 64 KiB");
        self.u16(len).run(b)
    }

    /// See [`run`].
    pub fn run(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
}

/// Escapes bytes as a Rust literal (`"text"` when UTF-8, `b"…"` otherwise).
pub fn lit(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => format!("{s:?}"),
        Err(_) => {
            let mut out = String::from("b\"");
            for &c in b {
                match c {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(char::from(c));
                    }
                    0x20..=0x7e => out.push(char::from(c)),
                    _ => out.push_str(&format!("\\x{c:02x}")),
                }
            }
            out.push('"');
            out
        }
    }
}
