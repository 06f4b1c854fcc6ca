//! Reading one request from a blocking `std` stream, for the servers that
//! run off the shards (the admin API, the demo backend). The parsing is
//! the shared sans-IO code; only the reads are here.

use std::io::Read;

use bytes::BytesMut;

use super::chunked::ChunkedDecoder;
use super::request::{parse_head, BodyFraming, HeadError, HeadLimits, Parsed, RequestHead};

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed (or timed out) between requests: no answer needed.
    Closed,
    /// A refused head; answer with this status and close.
    Head(HeadError),
    BodyTooLarge,
    BadBody(&'static str),
}

/// Reads the next request (head and whole body) from `stream`; `buf` keeps
/// bytes of a pipelined next request between calls.
pub fn read_request<S: Read>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &HeadLimits,
    max_body: usize,
    on_expect_continue: &mut dyn FnMut(),
) -> Result<(RequestHead, Vec<u8>), ReadError> {
    let mut chunk = [0u8; 16 * 1024];
    let mut fill = |buf: &mut BytesMut| -> Result<(), ReadError> {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => Err(ReadError::Closed),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    };
    let head = loop {
        match parse_head(buf, limits) {
            Ok(Parsed::Complete(info, len)) => {
                break RequestHead::new(buf.split_to(len).freeze(), info)
            }
            Ok(Parsed::Partial) => fill(buf)?,
            Err(e) => return Err(ReadError::Head(e)),
        }
    };
    if head.info.expect_continue && buf.is_empty() && head.info.body != BodyFraming::None {
        on_expect_continue();
    }
    let body = match head.info.body {
        BodyFraming::None => Vec::new(),
        BodyFraming::Length(n) => {
            if n > max_body as u64 {
                return Err(ReadError::BodyTooLarge);
            }
            while (buf.len() as u64) < n {
                fill(buf)?;
            }
            buf.split_to(n as usize).to_vec()
        }
        BodyFraming::Chunked => {
            let mut decoder = ChunkedDecoder::new();
            let mut out = BytesMut::new();
            loop {
                let p = decoder
                    .decode(buf, &mut out)
                    .map_err(|e| ReadError::BadBody(e.reason()))?;
                let _ = buf.split_to(p.consumed);
                if out.len() > max_body {
                    return Err(ReadError::BodyTooLarge);
                }
                if p.done {
                    break out.to_vec();
                }
                fill(buf)?;
            }
        }
    };
    Ok((head, body))
}
