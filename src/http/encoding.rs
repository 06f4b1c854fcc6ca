//! Response compression as API Gateway's `minimumCompressionSize` does it:
//! the client's `Accept-Encoding` picks the coding (`gzip` or `deflate`),
//! the body is compressed when it is at least the API's minimum size and
//! the response is not already encoded. The codecs are `flate2`'s.

use std::io::Write;

use flate2::write::{GzEncoder, ZlibEncoder};
use flate2::Compression;

/// A content coding the gateway compresses with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    /// HTTP's `deflate`: the zlib format (RFC 9110 §8.4.1.2).
    Deflate,
}

impl Coding {
    /// A coding's name (`x-gzip` is `gzip`, RFC 9110 §8.4.1.3); `None` for
    /// one the gateway does not implement.
    pub fn parse(name: &[u8]) -> Option<Coding> {
        if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            Some(Coding::Gzip)
        } else if name.eq_ignore_ascii_case(b"deflate") {
            Some(Coding::Deflate)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static [u8] {
        match self {
            Coding::Gzip => b"gzip",
            Coding::Deflate => b"deflate",
        }
    }
}

/// The coding to answer with, from the request's `Accept-Encoding` values
/// (each line a comma-separated list with optional `;q=` weights): the
/// one of highest weight, the first of equals. As in API Gateway, the
/// response is compressed only when that coding is one it supports, so no
/// header (which means `*`), `identity`, `br` or `*` first means none.
pub fn negotiate<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<Coding> {
    let mut best: Option<(u16, &[u8])> = None;
    for item in crate::http::request::list_elements(values) {
        let mut parts = item.split(|&b| b == b';');
        let coding = crate::http::request::trim_ows(parts.next().unwrap_or_default());
        if coding.is_empty() {
            continue;
        }
        let mut weight = 1000;
        for p in parts {
            let p = crate::http::request::trim_ows(p);
            if let Some(q) = p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")) {
                weight = parse_qvalue(q).unwrap_or(0);
            }
        }
        if weight > 0 && best.is_none_or(|(w, _)| weight > w) {
            best = Some((weight, coding));
        }
    }
    let (_, coding) = best?;
    Coding::parse(coding)
}

/// A `qvalue` (RFC 9110 §12.4.2) in thousandths; `None` if malformed.
fn parse_qvalue(q: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(q).ok()?;
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if !matches!(int, "0" | "1") || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = if int == "1" { 1000 } else { 0 };
    for (i, d) in frac.bytes().enumerate() {
        thousandths += u16::from(d - b'0') * [100, 10, 1][i];
    }
    (thousandths <= 1000).then_some(thousandths)
}

/// A compressor fed piece by piece (a streamed response); each call
/// returns what is ready to send.
pub enum Encoder {
    Gzip(GzEncoder<Vec<u8>>),
    Deflate(ZlibEncoder<Vec<u8>>),
}

/// Level 1, NGINX's default `gzip_comp_level` (API Gateway's is not
/// documented). A shard compresses on its own thread, between other
/// clients' requests: on JSON bodies (`cargo bench --bench compress`)
/// level 6, zlib's default, took 7–9× as long for 1.5–1.7× smaller output
/// (64 KiB: 1.01 ms vs 144 µs, 7.3 vs 12.2 KB; 1 MiB: 22.5 vs 2.6 ms).
pub const LEVEL: u32 = 1;

impl Encoder {
    pub fn new(coding: Coding) -> Encoder {
        match coding {
            Coding::Gzip => Encoder::Gzip(GzEncoder::new(Vec::new(), Compression::new(LEVEL))),
            Coding::Deflate => {
                Encoder::Deflate(ZlibEncoder::new(Vec::new(), Compression::new(LEVEL)))
            }
        }
    }

    /// Compresses `data`; the compressed bytes ready so far.
    pub fn push(&mut self, data: &[u8]) -> Vec<u8> {
        // Writing into a Vec cannot fail.
        let out = match self {
            Encoder::Gzip(e) => {
                let _ = e.write_all(data);
                e.get_mut()
            }
            Encoder::Deflate(e) => {
                let _ = e.write_all(data);
                e.get_mut()
            }
        };
        std::mem::take(out)
    }

    /// The end of the stream: the last compressed bytes and the trailer.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Encoder::Gzip(e) => e.finish().unwrap_or_default(),
            Encoder::Deflate(e) => e.finish().unwrap_or_default(),
        }
    }
}

/// `data` compressed whole.
pub fn compress(coding: Coding, data: &[u8]) -> Vec<u8> {
    let mut e = Encoder::new(coding);
    let mut out = e.push(data);
    out.extend_from_slice(&e.finish());
    out
}

/// Why a compressed request body cannot be read.
#[derive(Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A coding other than gzip, deflate and identity.
    Unsupported,
    /// The body is not in the coding it names.
    Corrupt,
    /// Decoded, it is larger than `limit`.
    TooLarge,
}

/// A request body in the codings of its `Content-Encoding` (a list, the
/// last applied first to undo), decoded to at most `limit` bytes; `None`
/// when there is nothing to undo (no coding, or only `identity`).
pub fn decode<'a>(
    codings: impl Iterator<Item = &'a [u8]>,
    body: &[u8],
    limit: usize,
) -> Result<Option<Vec<u8>>, DecodeError> {
    use std::io::Read;
    let mut steps: Vec<Coding> = Vec::new();
    for c in crate::http::request::list_elements(codings) {
        if c.eq_ignore_ascii_case(b"identity") {
            continue;
        }
        steps.push(Coding::parse(c).ok_or(DecodeError::Unsupported)?);
    }
    if steps.is_empty() {
        return Ok(None);
    }
    let mut data = body.to_vec();
    for coding in steps.into_iter().rev() {
        let mut out = Vec::new();
        // One byte over the limit tells "too large" from "exactly full".
        let cap = limit as u64 + 1;
        let read = match coding {
            Coding::Gzip => flate2::read::MultiGzDecoder::new(&data[..])
                .take(cap)
                .read_to_end(&mut out),
            Coding::Deflate => flate2::read::ZlibDecoder::new(&data[..])
                .take(cap)
                .read_to_end(&mut out),
        };
        if read.is_err() {
            return Err(DecodeError::Corrupt);
        }
        if out.len() > limit {
            return Err(DecodeError::TooLarge);
        }
        data = out;
    }
    Ok(Some(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn pick(v: &str) -> Option<Coding> {
        negotiate(std::iter::once(v.as_bytes()))
    }

    #[test]
    fn negotiation_follows_the_highest_weight() {
        assert_eq!(pick("gzip"), Some(Coding::Gzip));
        assert_eq!(pick("gzip, deflate, br"), Some(Coding::Gzip));
        assert_eq!(pick("deflate, gzip"), Some(Coding::Deflate));
        assert_eq!(pick("br;q=1.0, gzip;q=0.8"), None);
        assert_eq!(pick("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(pick("gzip;q=0, deflate"), Some(Coding::Deflate));
        assert_eq!(pick("gzip;q=0"), None);
        assert_eq!(pick("identity"), None);
        assert_eq!(pick("*"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("x-gzip"), Some(Coding::Gzip));
        assert_eq!(pick("GZIP ; Q=0.5"), Some(Coding::Gzip));
        // A malformed weight counts as 0.
        assert_eq!(pick("gzip;q=2, deflate;q=0.1"), Some(Coding::Deflate));
        assert_eq!(negotiate(std::iter::empty()), None);
        assert_eq!(
            negotiate([b"br;q=0.1".as_slice(), b"deflate".as_slice()].into_iter()),
            Some(Coding::Deflate)
        );
    }

    #[test]
    fn request_bodies_are_decoded_within_the_limit() {
        let data = b"{\"type\": \"dog\"}".repeat(100);
        let one = |v: &'static str| std::iter::once(v.as_bytes());
        let gz = compress(Coding::Gzip, &data);
        assert_eq!(decode(one("gzip"), &gz, 1 << 20).unwrap().unwrap(), data);
        assert_eq!(decode(one("identity"), &data, 10).unwrap(), None);
        assert_eq!(decode(std::iter::empty(), &data, 10).unwrap(), None);
        // Two codings: the last applied is undone first.
        let twice = compress(Coding::Gzip, &compress(Coding::Deflate, &data));
        assert_eq!(
            decode(one("deflate, gzip"), &twice, 1 << 20)
                .unwrap()
                .unwrap(),
            data
        );
        assert_eq!(
            decode(one("br"), &data, 1 << 20),
            Err(DecodeError::Unsupported)
        );
        assert_eq!(
            decode(one("gzip"), &data, 1 << 20),
            Err(DecodeError::Corrupt)
        );
        assert_eq!(decode(one("gzip"), &gz, data.len()).unwrap().unwrap(), data);
        assert_eq!(
            decode(one("gzip"), &gz, data.len() - 1),
            Err(DecodeError::TooLarge)
        );
        // A bomb: 64 MiB of zeros in well under 1 MiB stops at the limit.
        let bomb = compress(Coding::Gzip, &vec![0u8; 64 << 20]);
        assert!(bomb.len() < 1 << 20, "{}", bomb.len());
        assert_eq!(
            decode(one("gzip"), &bomb, 10 << 20),
            Err(DecodeError::TooLarge)
        );
    }

    #[test]
    fn compressed_bodies_round_trip_whole_and_streamed() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let gz = compress(Coding::Gzip, &data);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        let mut e = Encoder::new(Coding::Deflate);
        let mut z = Vec::new();
        for piece in data.chunks(7_777) {
            z.extend_from_slice(&e.push(piece));
        }
        z.extend_from_slice(&e.finish());
        let mut back = Vec::new();
        flate2::read::ZlibDecoder::new(&z[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
    }
}
