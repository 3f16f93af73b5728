//! gzip (RFC 1952), every member of a stream, over flate2's raw inflate, with the CRC-32 of
//! each member's data checked or not.
//!
//! Why not flate2's `MultiGzDecoder`: it always computes the CRC-32 of the decoded bytes, and a
//! layer's bytes are always proven by a sha256 digest as well (of the blob, or of the decoded tar
//! for a docker-save `diff_id`), so for layers the CRC is a second check of the same bytes that
//! cost about 1 % of a conversion's CPU. The layer reader asks for [`Crc::Skip`]; everything else
//! ([`super::decompress::Decoder::new`]) keeps [`Crc::Check`]. The framing is small (a header
//! with optional fields, the deflate data, an 8-byte trailer); the inflate itself stays flate2's.
//! The size in the trailer (ISIZE) is checked either way: it costs nothing and catches a member
//! cut short in a way the inflate alone would not.
//!
//! As with Go's reader, bytes after a member that do not start another member are an error,
//! never silently ignored.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

const MAGIC: [u8; 2] = [0x1f, 0x8b];
/// Compression method 8, deflate: the only one RFC 1952 defines.
const DEFLATE: u8 = 8;
const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
/// Flag bits RFC 1952 reserves; a member that sets one is refused, as zlib does.
const RESERVED: u8 = 0xe0;

/// Whether the CRC-32 of each member's data is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crc {
    /// Computed and compared with the member's trailer.
    Check,
    /// Not computed: for bytes that a digest proves anyway.
    Skip,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a member (the first one, or the end of the previous one).
    Header { first: bool },
    /// Inside a member's deflate data.
    Body,
    /// The input has ended after a whole member.
    Done,
}

/// A reader of the decoded bytes of every gzip member of `R`, one after the other.
pub struct GzipDecoder<R: BufRead> {
    input: R,
    /// Raw deflate (no zlib header), reset for each member.
    inflate: Decompress,
    state: State,
    crc: Option<flate2::Crc>,
    /// Decoded bytes of the current member, modulo 2^32 as ISIZE counts them.
    size: u32,
    /// The inflate has reached the end of the member's deflate data.
    deflate_end: bool,
}

impl<R: BufRead> GzipDecoder<R> {
    /// Decodes `input`, checking or skipping the CRC-32 as `crc` says.
    pub fn new(input: R, crc: Crc) -> Self {
        GzipDecoder {
            input,
            inflate: Decompress::new(false),
            state: State::Header { first: true },
            crc: (crc == Crc::Check).then(flate2::Crc::new),
            size: 0,
            deflate_end: false,
        }
    }

    /// The compressed input.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.input
    }

    /// Reads the next member's header; `false` when the input has ended after a member.
    fn start_member(&mut self, first: bool) -> io::Result<bool> {
        if !first && self.input.fill_buf()?.is_empty() {
            return Ok(false);
        }
        read_header(&mut self.input, first)?;
        self.inflate.reset(false);
        self.deflate_end = false;
        if let Some(crc) = self.crc.as_mut() {
            crc.reset();
        }
        self.size = 0;
        Ok(true)
    }

    /// Checks the trailer after a member's deflate data.
    fn end_member(&mut self) -> io::Result<()> {
        let mut trailer = [0u8; 8];
        self.input
            .read_exact(&mut trailer)
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => invalid("the gzip stream ends inside a member"),
                _ => e,
            })?;
        let [c0, c1, c2, c3, s0, s1, s2, s3] = trailer;
        if let Some(crc) = &self.crc {
            let stored = u32::from_le_bytes([c0, c1, c2, c3]);
            if crc.sum() != stored {
                return Err(invalid(&format!(
                    "gzip CRC-32 mismatch: the trailer says {stored:08x}, the data has {:08x}",
                    crc.sum()
                )));
            }
        }
        let stored = u32::from_le_bytes([s0, s1, s2, s3]);
        if stored != self.size {
            return Err(invalid(&format!(
                "gzip size mismatch: the trailer says {stored} bytes (mod 2^32), the member \
                 decoded to {}",
                self.size
            )));
        }
        Ok(())
    }

    /// Inflates into `buf`: the bytes produced, 0 at the end of the member's deflate data.
    fn inflate(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while !self.deflate_end {
            let input = self.input.fill_buf()?;
            let eof = input.is_empty();
            let (in_before, out_before) = (self.inflate.total_in(), self.inflate.total_out());
            let flush = if eof {
                FlushDecompress::Finish
            } else {
                FlushDecompress::None
            };
            let status = (self.inflate.decompress(input, buf, flush))
                .map_err(|e| invalid(&format!("corrupt deflate data: {e}")))?;
            let consumed = (self.inflate.total_in() - in_before) as usize;
            let produced = (self.inflate.total_out() - out_before) as usize;
            self.input.consume(consumed);
            match status {
                Status::StreamEnd => {
                    self.deflate_end = true;
                    return Ok(produced);
                }
                _ if produced > 0 => return Ok(produced),
                _ if eof => return Err(invalid("the gzip stream ends inside a member")),
                // No output yet, more input to come: the inflate wants more.
                _ => {}
            }
        }
        Ok(0)
    }
}

impl<R: BufRead> Read for GzipDecoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Done => return Ok(0),
                State::Header { first } => {
                    self.state = if self.start_member(first)? {
                        State::Body
                    } else {
                        State::Done
                    };
                }
                State::Body => {
                    let n = self.inflate(buf)?;
                    if n > 0 {
                        if let Some(crc) = self.crc.as_mut() {
                            crc.update(&buf[..n]);
                        }
                        self.size = self.size.wrapping_add(n as u32);
                        return Ok(n);
                    }
                    self.end_member()?;
                    self.state = State::Header { first: false };
                }
            }
        }
    }
}

/// Reads a member header (RFC 1952 section 2.3), checking its CRC-16 when it has one.
fn read_header(input: &mut impl BufRead, first: bool) -> io::Result<()> {
    let mut header = HeaderReader {
        input,
        crc: flate2::Crc::new(),
    };
    let mut fixed = [0u8; 10];
    header.read_exact(&mut fixed).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof if first => invalid("the gzip header is cut short"),
        io::ErrorKind::UnexpectedEof => {
            invalid("bytes after the last gzip member are not a gzip member")
        }
        _ => e,
    })?;
    if fixed[..2] != MAGIC {
        return Err(invalid(if first {
            "not a gzip stream (no gzip magic)"
        } else {
            "bytes after the last gzip member are not a gzip member"
        }));
    }
    if fixed[2] != DEFLATE {
        return Err(invalid(&format!(
            "gzip compression method {} (only 8, deflate, exists)",
            fixed[2]
        )));
    }
    let flags = fixed[3];
    if flags & RESERVED != 0 {
        return Err(invalid(&format!(
            "gzip header flags {flags:#04x} set reserved bits"
        )));
    }
    if flags & FEXTRA != 0 {
        let mut len = [0u8; 2];
        header.read_exact(&mut len).map_err(cut_short)?;
        header.skip(u64::from(u16::from_le_bytes(len)))?;
    }
    for field in [FNAME, FCOMMENT] {
        if flags & field != 0 {
            header.skip_to_nul()?;
        }
    }
    if flags & FHCRC != 0 {
        let sum = header.crc.sum();
        let mut stored = [0u8; 2];
        header.input.read_exact(&mut stored).map_err(cut_short)?;
        if u16::from_le_bytes(stored) != (sum & 0xffff) as u16 {
            return Err(invalid("gzip header CRC-16 mismatch"));
        }
    }
    Ok(())
}

/// The header's bytes, read through a CRC for FHCRC.
struct HeaderReader<'a, R> {
    input: &'a mut R,
    crc: flate2::Crc,
}

impl<R: BufRead> HeaderReader<'_, R> {
    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.input.read_exact(buf)?;
        self.crc.update(buf);
        Ok(())
    }

    /// Skips `n` bytes (FEXTRA's payload).
    fn skip(&mut self, mut n: u64) -> io::Result<()> {
        while n > 0 {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Err(cut_short(io::ErrorKind::UnexpectedEof.into()));
            }
            let take = available
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            self.crc.update(&available[..take]);
            self.input.consume(take);
            n -= take as u64;
        }
        Ok(())
    }

    /// Skips a zero-terminated field (FNAME, FCOMMENT), the terminator included. No length
    /// limit is needed: nothing is kept.
    fn skip_to_nul(&mut self) -> io::Result<()> {
        loop {
            let available = self.input.fill_buf()?;
            if available.is_empty() {
                return Err(cut_short(io::ErrorKind::UnexpectedEof.into()));
            }
            let (take, done) = match available.iter().position(|&b| b == 0) {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            self.crc.update(&available[..take]);
            self.input.consume(take);
            if done {
                return Ok(());
            }
        }
    }
}

fn cut_short(e: io::Error) -> io::Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => invalid("the gzip header is cut short"),
        _ => e,
    }
}

fn invalid(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::GzEncoder;
    use flate2::{Compression, GzBuilder};
    use std::io::Write;

    fn finish(mut encoder: GzEncoder<Vec<u8>>, data: &[u8]) -> Vec<u8> {
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    fn member(data: &[u8]) -> Vec<u8> {
        finish(GzEncoder::new(Vec::new(), Compression::fast()), data)
    }

    fn decode(bytes: &[u8], crc: Crc) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        GzipDecoder::new(bytes, crc).read_to_end(&mut out)?;
        Ok(out)
    }

    /// flate2's own multi-member reader, the oracle.
    fn flate2(bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::bufread::MultiGzDecoder::new(bytes).read_to_end(&mut out)?;
        Ok(out)
    }

    fn two_members() -> (Vec<u8>, Vec<u8>) {
        let a: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b = b"second member".repeat(20);
        let mut stream = member(&a);
        let named = GzBuilder::new()
            .filename("name")
            .comment("comment")
            .extra(vec![1, 2, 3])
            .write(Vec::new(), Compression::best());
        stream.extend(finish(named, &b));
        (stream, [a, b].concat())
    }

    #[test]
    fn every_member_and_header_field_decodes() {
        let (stream, data) = two_members();
        assert_eq!(decode(&stream, Crc::Check).unwrap(), data);
        assert_eq!(decode(&stream, Crc::Skip).unwrap(), data);
        // An empty member, and a header with a CRC-16 (FHCRC), which GzBuilder does not write.
        let mut header = vec![0x1f, 0x8b, 8, FHCRC | FNAME, 0, 0, 0, 0, 0, 255];
        header.extend(b"f\0");
        let mut crc = flate2::Crc::new();
        crc.update(&header);
        header.extend(((crc.sum() & 0xffff) as u16).to_le_bytes());
        let body = member(b"x");
        header.extend(&body[10..]);
        let stream = [member(b""), header.clone()].concat();
        assert_eq!(decode(&stream, Crc::Check).unwrap(), b"x");
        header[12] ^= 1;
        assert!(decode(&header, Crc::Check).is_err());
    }

    #[test]
    fn the_crc_is_checked_only_when_asked_and_the_size_always() {
        let data = b"some data".repeat(100);
        let mut stream = member(&data);
        let n = stream.len();
        stream[n - 8] ^= 1; // CRC-32
        let err = decode(&stream, Crc::Check).unwrap_err();
        assert!(err.to_string().contains("CRC-32 mismatch"), "{err}");
        assert_eq!(decode(&stream, Crc::Skip).unwrap(), data);
        stream[n - 8] ^= 1;
        stream[n - 4] ^= 1; // ISIZE
        for crc in [Crc::Check, Crc::Skip] {
            let err = decode(&stream, crc).unwrap_err();
            assert!(err.to_string().contains("size mismatch"), "{err}");
        }
    }

    /// Every prefix is an error, but for the whole stream and the end of its first member;
    /// trailing bytes that are not a member are an error too.
    #[test]
    fn cut_short_or_followed_by_garbage_is_an_error() {
        let (stream, data) = two_members();
        let first = member(&data[..3000]).len();
        for len in 0..stream.len() {
            let got = decode(&stream[..len], Crc::Skip);
            if len == first {
                assert_eq!(got.unwrap(), &data[..3000]);
            } else {
                assert!(got.is_err(), "a prefix of {len} bytes decoded");
            }
        }
        for tail in [&b"\0"[..], b"\x1f", b"garbage", b"\x1f\x8b\x08"] {
            let bad = [&stream[..], tail].concat();
            assert!(decode(&bad, Crc::Check).is_err(), "{tail:?}");
        }
    }

    /// Against flate2's `MultiGzDecoder` with every byte of a two-member stream flipped: both
    /// decode the same bytes or both refuse (the CRC checked, as flate2 always does).
    #[test]
    fn agrees_with_flate2_on_every_flipped_byte() {
        let (stream, _) = two_members();
        for i in 0..stream.len() {
            for flip in [0x01, 0x80, 0xff] {
                let mut bad = stream.clone();
                bad[i] ^= flip;
                let (ours, theirs) = (decode(&bad, Crc::Check), flate2(&bad));
                match (&ours, &theirs) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "byte {i} ^ {flip:#x}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("byte {i} ^ {flip:#x}: ours {ours:?}, flate2 {theirs:?}"),
                }
            }
        }
    }
}
