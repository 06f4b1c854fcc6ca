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
    let head = read_head(stream, buf, limits)?;
    let body = read_body(stream, buf, &head, max_body, on_expect_continue)?;
    Ok((head, body))
}

fn fill<S: Read>(stream: &mut S, buf: &mut BytesMut) -> Result<(), ReadError> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk) {
        Ok(0) | Err(_) => Err(ReadError::Closed),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// Reads the next request head; its body (if any) is left for
/// [`read_body`], so a caller can refuse a request before reading it.
pub fn read_head<S: Read>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &HeadLimits,
) -> Result<RequestHead, ReadError> {
    loop {
        match parse_head(buf, limits) {
            Ok(Parsed::Complete(info, len)) => {
                return Ok(RequestHead::new(buf.split_to(len).freeze(), info))
            }
            Ok(Parsed::Partial) => fill(stream, buf)?,
            Err(e) => return Err(ReadError::Head(e)),
        }
    }
}

/// Reads the body of `head` (sending `100 Continue` through
/// `on_expect_continue` first when the client waits for it).
pub fn read_body<S: Read>(
    stream: &mut S,
    buf: &mut BytesMut,
    head: &RequestHead,
    max_body: usize,
    on_expect_continue: &mut dyn FnMut(),
) -> Result<Vec<u8>, ReadError> {
    if head.info.expect_continue && buf.is_empty() && head.info.body != BodyFraming::None {
        on_expect_continue();
    }
    match head.info.body {
        BodyFraming::None => Ok(Vec::new()),
        BodyFraming::Length(n) => {
            if n > max_body as u64 {
                return Err(ReadError::BodyTooLarge);
            }
            while (buf.len() as u64) < n {
                fill(stream, buf)?;
            }
            Ok(buf.split_to(n as usize).to_vec())
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
                    return Ok(out.to_vec());
                }
                fill(stream, buf)?;
            }
        }
    }
}
