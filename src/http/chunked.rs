//! Chunked transfer coding (RFC 9112 §7.1): a strict, incremental decoder
//! and the encoder's framing helpers. Sans-IO.
//!
//! Strict on purpose: a gateway that is lenient where its backend is strict
//! (or the other way round) is a request-smuggling gadget. Sizes are plain
//! hex of at most 16 digits, every line ends in CRLF, extensions and trailers
//! are bounded and then dropped.

use bytes::BytesMut;

use super::is_tchar;

const MAX_EXTENSION_BYTES: usize = 4096;
const MAX_TRAILER_BYTES: usize = 16 * 1024;
const MAX_SIZE_DIGITS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkError {
    BadSize,
    SizeOverflow,
    BadLineEnding,
    ExtensionTooLong,
    TrailerTooLarge,
    BadTrailer,
}

impl ChunkError {
    pub fn reason(&self) -> &'static str {
        match self {
            ChunkError::BadSize => "invalid chunk size",
            ChunkError::SizeOverflow => "chunk size overflow",
            ChunkError::BadLineEnding => "invalid chunk line ending",
            ChunkError::ExtensionTooLong => "chunk extension too long",
            ChunkError::TrailerTooLarge => "chunked trailer too large",
            ChunkError::BadTrailer => "invalid chunked trailer",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    SizeStart,
    Size,
    SizeWs,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerLineStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    EndLf,
    Done,
}

/// Incremental decoder. Feed it whatever bytes arrived; it appends payload to
/// `out` and says how much input it used and whether the body is complete.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    size: u64,
    digits: usize,
    ext_len: usize,
    trailer_len: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub consumed: usize,
    pub done: bool,
}

impl ChunkedDecoder {
    /// Data bytes of the current chunk not decoded yet (its size line
    /// promised them): lets a caller refuse a body over its limit as soon
    /// as a chunk size says so, without waiting for the bytes.
    pub fn pending_data(&self) -> u64 {
        if self.state == State::Data {
            self.size
        } else {
            0
        }
    }

    pub fn new() -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            size: 0,
            digits: 0,
            ext_len: 0,
            trailer_len: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible. Stops right after the final
    /// CRLF, so bytes of a pipelined next message are left unconsumed.
    pub fn decode(&mut self, input: &[u8], out: &mut BytesMut) -> Result<Progress, ChunkError> {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            match self.state {
                State::SizeStart | State::Size => match hex_value(b) {
                    Some(v) => {
                        self.digits += 1;
                        if self.digits > MAX_SIZE_DIGITS {
                            return Err(ChunkError::SizeOverflow);
                        }
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(u64::from(v)))
                            .ok_or(ChunkError::SizeOverflow)?;
                        self.state = State::Size;
                        i += 1;
                    }
                    None if self.state == State::SizeStart => return Err(ChunkError::BadSize),
                    None => match b {
                        b'\r' => {
                            self.state = State::SizeLf;
                            i += 1;
                        }
                        b';' => {
                            self.state = State::Extension;
                            i += 1;
                        }
                        b'\n' => return Err(ChunkError::BadLineEnding),
                        b' ' | b'\t' => {
                            // BWS is allowed only before a chunk extension.
                            self.state = State::SizeWs;
                            i += 1;
                        }
                        _ => return Err(ChunkError::BadSize),
                    },
                },
                State::SizeWs => match b {
                    b' ' | b'\t' => i += 1,
                    b';' => {
                        self.state = State::Extension;
                        i += 1;
                    }
                    _ => return Err(ChunkError::BadSize),
                },
                State::Extension => {
                    match b {
                        b'\r' => self.state = State::SizeLf,
                        b'\n' | 0 => return Err(ChunkError::BadLineEnding),
                        _ => {
                            self.ext_len += 1;
                            if self.ext_len > MAX_EXTENSION_BYTES {
                                return Err(ChunkError::ExtensionTooLong);
                            }
                        }
                    }
                    i += 1;
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    i += 1;
                    self.digits = 0;
                    // The extension limit is per chunk: signed streaming
                    // uploads carry an extension on every chunk.
                    self.ext_len = 0;
                    self.state = if self.size == 0 {
                        State::TrailerLineStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let avail = (input.len() - i) as u64;
                    let take = avail.min(self.size) as usize;
                    out.extend_from_slice(&input[i..i + take]);
                    i += take;
                    self.size -= take as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    i += 1;
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    i += 1;
                    self.state = State::SizeStart;
                }
                State::TrailerLineStart => {
                    if b == b'\r' {
                        self.state = State::EndLf;
                    } else if is_tchar(b) {
                        self.bump_trailer()?;
                        self.state = State::TrailerName;
                    } else {
                        // Bare LF, NUL, obs-fold, or a line that does not
                        // start with a field name (RFC 9112 §7.1.2).
                        return Err(ChunkError::BadTrailer);
                    }
                    i += 1;
                }
                State::TrailerName => {
                    match b {
                        b':' => self.state = State::TrailerValue,
                        // A line without a colon, or whitespace before it.
                        _ if !is_tchar(b) => return Err(ChunkError::BadTrailer),
                        _ => {}
                    }
                    self.bump_trailer()?;
                    i += 1;
                }
                State::TrailerValue => {
                    match b {
                        b'\r' => self.state = State::TrailerLf,
                        // Control characters other than HTAB (RFC 9110 §5.5).
                        b'\t' => self.bump_trailer()?,
                        0..=0x1f | 0x7f => return Err(ChunkError::BadTrailer),
                        _ => self.bump_trailer()?,
                    }
                    i += 1;
                }
                State::TrailerLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    i += 1;
                    self.state = State::TrailerLineStart;
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(ChunkError::BadLineEnding);
                    }
                    i += 1;
                    self.state = State::Done;
                    return Ok(Progress {
                        consumed: i,
                        done: true,
                    });
                }
                State::Done => {
                    return Ok(Progress {
                        consumed: i,
                        done: true,
                    })
                }
            }
        }
        Ok(Progress {
            consumed: i,
            done: self.state == State::Done,
        })
    }

    fn bump_trailer(&mut self) -> Result<(), ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_BYTES {
            return Err(ChunkError::TrailerTooLarge);
        }
        Ok(())
    }
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Appends the header line of a chunk of `len` bytes.
pub fn write_chunk_header(out: &mut Vec<u8>, len: usize) {
    let mut digits = [0u8; 16];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b"0123456789abcdef"[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize, bool), ChunkError> {
        let mut d = ChunkedDecoder::new();
        let mut out = BytesMut::new();
        let p = d.decode(input, &mut out)?;
        Ok((out.to_vec(), p.consumed, p.done))
    }

    #[test]
    fn valid_bodies() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"0\r\n\r\n", b""),
            (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
            (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
            (b"5;ext=1\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5 ;ext\r\nhello\r\n0\r\n\r\n", b"hello"),
            (b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n", b"hello"),
            (
                b"0\r\nA: 1\r\nb-c:\r\nD:\tx y\t\r\nE: \x80\xff\r\n\r\n",
                b"",
            ),
            (b"0005\r\nhello\r\n0\r\n\r\n", b"hello"),
        ];
        for (input, want) in cases {
            let (body, consumed, done) = decode_all(input).unwrap();
            assert_eq!(&body, want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(consumed, input.len());
            assert!(done);
        }
    }

    #[test]
    fn invalid_bodies() {
        let cases: &[(&[u8], ChunkError)] = &[
            (b"x\r\n", ChunkError::BadSize),
            (b"\r\n", ChunkError::BadSize),
            (b"-5\r\n", ChunkError::BadSize),
            (b"+5\r\n", ChunkError::BadSize),
            (b"0x5\r\n", ChunkError::BadSize),
            (b"5 5\r\n", ChunkError::BadSize),
            (b"5\nhello", ChunkError::BadLineEnding),
            (b"5\r\nhelloX\r\n", ChunkError::BadLineEnding),
            (b"5\r\nhello\rX", ChunkError::BadLineEnding),
            (b"5\r\nhello\n0\r\n\r\n", ChunkError::BadLineEnding),
            (b"10000000000000000\r\n", ChunkError::SizeOverflow),
            (b"fffffffffffffffff\r\n", ChunkError::SizeOverflow),
            (b"0\r\n\n", ChunkError::BadTrailer),
            (b"0\r\nX: 1\n\r\n", ChunkError::BadTrailer),
            (b"0\r\n\rX", ChunkError::BadLineEnding),
            (b"0\r\n folded\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nno-colon\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\n: empty-name\r\n\r\n", ChunkError::BadTrailer),
            (
                b"0\r\nX : space-before-colon\r\n\r\n",
                ChunkError::BadTrailer,
            ),
            (b"0\r\nX\"y: 1\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nX: a\x01b\r\n\r\n", ChunkError::BadTrailer),
            (b"0\r\nX: a\x7fb\r\n\r\n", ChunkError::BadTrailer),
        ];
        for (input, want) in cases {
            assert_eq!(
                decode_all(input).err(),
                Some(*want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn byte_at_a_time_and_pipelined_rest() {
        let input = b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = BytesMut::new();
        let mut used = 0;
        for i in 0..input.len() {
            if d.is_done() {
                break;
            }
            let p = d.decode(&input[i..i + 1], &mut out).unwrap();
            used += p.consumed;
        }
        assert!(d.is_done());
        assert_eq!(&out[..], b"abcde");
        assert_eq!(&input[used..], b"GET / HTTP/1.1\r\n");
    }

    #[test]
    fn extension_limit_is_per_chunk() {
        // 200 chunks, each with an 80-byte extension like AWS's
        // `chunk-signature=<64 hex>`.
        let mut wire = Vec::new();
        for _ in 0..200 {
            wire.extend_from_slice(b"1;chunk-signature=");
            wire.extend_from_slice(&[b'a'; 64]);
            wire.extend_from_slice(b"\r\nx\r\n");
        }
        wire.extend_from_slice(b"0\r\n\r\n");
        let (body, _, done) = decode_all(&wire).unwrap();
        assert!(done);
        assert_eq!(body.len(), 200);
        // One oversized extension is still refused.
        let mut big = b"1;".to_vec();
        big.extend_from_slice(&[b'a'; 5000]);
        assert_eq!(decode_all(&big).err(), Some(ChunkError::ExtensionTooLong));
    }

    #[test]
    fn chunk_header_encoding() {
        for (n, want) in [(0usize, "0\r\n"), (10, "a\r\n"), (65536, "10000\r\n")] {
            let mut v = Vec::new();
            write_chunk_header(&mut v, n);
            assert_eq!(v, want.as_bytes());
        }
    }

    proptest::proptest! {
        #[test]
        fn roundtrip(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 1..64), 0..8), split in 0usize..200) {
            let mut wire = Vec::new();
            let mut want = Vec::new();
            for c in &chunks {
                write_chunk_header(&mut wire, c.len());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
                want.extend_from_slice(c);
            }
            wire.extend_from_slice(LAST_CHUNK);
            let split = split.min(wire.len());
            let mut d = ChunkedDecoder::new();
            let mut out = BytesMut::new();
            let p1 = d.decode(&wire[..split], &mut out).unwrap();
            assert_eq!(p1.consumed, split);
            let p2 = d.decode(&wire[split..], &mut out).unwrap();
            assert!(p2.done);
            assert_eq!(&out[..], &want[..]);
        }

        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let mut d = ChunkedDecoder::new();
            let mut out = BytesMut::new();
            let _ = d.decode(&input, &mut out);
        }
    }
}
