//! Response heads: writing ours, parsing the backend's. Sans-IO.
//!
//! Owns: the status-line table, the cached `Date` value, and the framing of
//! an upstream response (RFC 9112 §6.3 from the client side).

use std::cell::{Cell, RefCell};
use std::time::{SystemTime, UNIX_EPOCH};

use super::request::{trim_ows, Span};

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// What a response says about its connection after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// The connection closes after this response: `Connection: close`.
    Close,
    /// It stays open, HTTP/1.1's default: nothing to say.
    Keep,
    /// It stays open for an HTTP/1.0 client that asked for keep-alive,
    /// which must be told so (RFC 9112 §9.3, RFC 2068 §19.7.1): without
    /// `Connection: keep-alive` such a client (ApacheBench `-k`) waits for
    /// the close to end the response.
    KeepAnnounced,
}

impl Persist {
    /// The persistence of a response to a request of `version`, given
    /// whether the connection is to stay open.
    pub fn new(keep: bool, version: super::request::Version) -> Persist {
        match (keep, version) {
            (false, _) => Persist::Close,
            (true, super::request::Version::Http11) => Persist::Keep,
            (true, super::request::Version::Http10) => Persist::KeepAnnounced,
        }
    }

    pub fn keeps(self) -> bool {
        self != Persist::Close
    }

    /// Appends the `Connection` header this persistence needs, if any.
    pub fn write_header(self, out: &mut Vec<u8>) {
        match self {
            Persist::Close => out.extend_from_slice(b"Connection: close\r\n"),
            Persist::Keep => {}
            Persist::KeepAnnounced => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        }
    }
}

/// Appends `HTTP/1.1 {status} {reason}\r\n`.
pub fn write_status_line(out: &mut Vec<u8>, status: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    write_u64(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason_phrase(status).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A mapped value as a header field value (RFC 9110 §5.5): control
/// characters other than HTAB are dropped, CR, LF and NUL among them, so
/// a value from a client (a claim, an authorizer's context, a request
/// header) can neither split the head nor make a strict client (Node's
/// parser, h11) refuse the whole response.
pub fn field_value(v: &str) -> String {
    v.chars()
        .filter(|&c| c == '\t' || !c.is_ascii_control())
        .collect()
}

pub fn write_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub fn write_content_length(out: &mut Vec<u8>, len: u64) {
    out.extend_from_slice(b"Content-Length: ");
    write_u64(out, len);
    out.extend_from_slice(b"\r\n");
}

/// An IP address in its usual text form; IPv4 without `fmt` (it is
/// written for every proxied request and access-log line).
pub fn write_ip(out: &mut Vec<u8>, ip: std::net::IpAddr) {
    match ip {
        std::net::IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                write_u64(out, u64::from(*octet));
            }
        }
        ip => {
            let _ = std::io::Write::write_fmt(out, format_args!("{ip}"));
        }
    }
}

/// Appends the decimal digits of `n` without going through `fmt`.
pub fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

thread_local! {
    static DATE: RefCell<(u64, [u8; 29])> = const { RefCell::new((u64::MAX, [0u8; 29])) };
    /// A shard's wall-clock reading at its last housekeeping tick, and the
    /// monotonic instant it was taken at (set only by [`tick_clock`]).
    static WALL: Cell<Option<(std::time::Instant, SystemTime)>> = const { Cell::new(None) };
}

/// A shard's housekeeping tick (every 10 ms): one wall-clock read that the
/// shard's requests and `Date` headers use until the next tick.
pub fn tick_clock(now: std::time::Instant) {
    WALL.with(|w| w.set(Some((now, SystemTime::now()))));
}

/// The wall-clock time at `at` (an instant just read) without another
/// clock read on a shard thread (derived from the last tick; clock reads
/// were ~4% of a MOCK request's CPU in `perf`); elsewhere, a read.
pub fn wall_clock(at: std::time::Instant) -> SystemTime {
    WALL.with(|w| match w.get() {
        Some((i, s)) if at >= i && at - i < std::time::Duration::from_secs(1) => s + (at - i),
        _ => SystemTime::now(),
    })
}

/// Appends `Date: <IMF-fixdate>\r\n`, formatted at most once per second per
/// shard thread (RFC 9110 §6.6.1 needs one-second resolution only). On a
/// shard, the time of the last tick (at most 10 ms old).
pub fn write_date_header(out: &mut Vec<u8>) {
    let now = WALL
        .with(Cell::get)
        .map_or_else(SystemTime::now, |(_, s)| s);
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = httpdate::fmt_http_date(now);
            let bytes = text.as_bytes();
            if bytes.len() == 29 {
                cached.1.copy_from_slice(bytes);
                cached.0 = secs;
            }
        }
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(&cached.1);
        out.extend_from_slice(b"\r\n");
    });
}

/// How an upstream response body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Read until the backend closes.
    UntilClose,
}

#[derive(Clone, Debug)]
pub struct UpstreamHead {
    pub status: u16,
    pub headers: Vec<(Span, Span)>,
    pub framing: ResponseFraming,
    /// The backend keeps the connection open after this response.
    pub keep_alive: bool,
    /// Whether the backend sent a `Content-Type` (API Gateway adds one to
    /// a proxied response without it).
    pub has_content_type: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpstreamHeadError {
    Malformed,
    TooLarge,
}

pub enum ParsedResponse {
    Partial,
    Complete(UpstreamHead, usize),
}

const MAX_UPSTREAM_HEADERS: usize = 128;

/// Parses a backend response head. `request_was_head` selects the §6.3 (1)
/// rule that a response to HEAD has no body whatever it says.
pub fn parse_upstream_head(
    buf: &[u8],
    request_was_head: bool,
    max_head_bytes: usize,
) -> Result<ParsedResponse, UpstreamHeadError> {
    let window = &buf[..buf.len().min(max_head_bytes)];
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_UPSTREAM_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        window,
        &mut headers,
    ) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if window.len() >= max_head_bytes {
                Err(UpstreamHeadError::TooLarge)
            } else {
                Ok(ParsedResponse::Partial)
            }
        }
        Err(httparse::Error::TooManyHeaders) => return Err(UpstreamHeadError::TooLarge),
        Err(_) => return Err(UpstreamHeadError::Malformed),
    };
    let (Some(status), Some(minor)) = (resp.code, resp.version) else {
        return Err(UpstreamHeadError::Malformed);
    };
    // RFC 9110 §15: status codes are 100..=599; anything else is not a
    // response the gateway can pass on (API Gateway's INTEGRATION_FAILURE).
    if !(100..=599).contains(&status) {
        return Err(UpstreamHeadError::Malformed);
    }
    let span_of = |s: &[u8]| -> Span {
        let start = (s.as_ptr() as usize).wrapping_sub(window.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + s.len()) as u32,
        }
    };
    let mut out = Vec::with_capacity(resp.headers.len());
    let mut content_length: Option<u64> = None;
    let mut chunked = false;
    let mut te_seen = false;
    let mut conn_close = minor == 0;
    let mut has_content_type = false;
    // Fields the backend names in `Connection` (other than close and
    // keep-alive): hop-by-hop, removed (RFC 9110 §7.6.1). Allocated only
    // when there are any.
    let mut named: Vec<&[u8]> = Vec::new();
    for h in resp.headers.iter() {
        let name = h.name.as_bytes();
        let value = trim_ows(h.value);
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(UpstreamHeadError::Malformed);
        }
        out.push((span_of(name), span_of(value)));
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = parse_digits(value).ok_or(UpstreamHeadError::Malformed)?;
            if content_length.is_some_and(|c| c != n) {
                return Err(UpstreamHeadError::Malformed);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            // Only `chunked` is decoded here: a body in another transfer
            // coding (`gzip, chunked`) would reach the client still coded
            // and unlabelled (transfer codings are hop-by-hop, RFC 9112
            // §7), so such a response is an integration failure.
            for coding in value.split(|&b| b == b',').map(trim_ows) {
                if coding.is_empty() {
                    continue;
                }
                if !coding.eq_ignore_ascii_case(b"chunked") {
                    return Err(UpstreamHeadError::Malformed);
                }
                chunked = true;
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            has_content_type = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    if minor == 0 {
                        conn_close = false;
                    }
                } else if !token.is_empty() {
                    named.push(token);
                }
            }
        }
    }
    if !named.is_empty() {
        let mut fields = resp.headers.iter();
        out.retain(|_| {
            fields.next().is_none_or(|h| {
                !named
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(h.name.as_bytes()))
            })
        });
    }
    let framing =
        if request_was_head || (100..200).contains(&status) || status == 204 || status == 304 {
            ResponseFraming::Empty
        } else if te_seen {
            // §6.3 (3): Transfer-Encoding overrides Content-Length; a response
            // whose final coding is not chunked is delimited by close.
            if chunked {
                ResponseFraming::Chunked
            } else {
                ResponseFraming::UntilClose
            }
        } else if let Some(n) = content_length {
            ResponseFraming::Length(n)
        } else {
            ResponseFraming::UntilClose
        };
    // A 204 that declares a body (RFC 9110 §8.6 forbids it) may send one:
    // bytes that would be read as the next response on this connection.
    // (A 304's Content-Length describes the representation, not a body.)
    let body_declared_on_204 = status == 204 && (te_seen || content_length.is_some_and(|n| n > 0));
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message, or next to
    // a Content-Length, means faulty framing: close after this message.
    let keep_alive = !(conn_close
        || framing == ResponseFraming::UntilClose
        || (te_seen && (content_length.is_some() || minor == 0))
        || body_declared_on_204);
    Ok(ParsedResponse::Complete(
        UpstreamHead {
            status,
            headers: out,
            framing,
            keep_alive,
            has_content_type,
        },
        len,
    ))
}

fn parse_digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Hop-by-hop headers (RFC 9110 §7.6.1) plus framing headers we always
/// regenerate: never copied from one side to the other.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP: [&[u8]; 10] = [
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"proxy-authenticate",
        b"proxy-authorization",
    ];
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_values_keep_no_control_characters() {
        assert_eq!(field_value("a\u{1}b\u{7f}c\u{b}d\r\ne\0f"), "abcdef");
        assert_eq!(field_value("tab\there é ü"), "tab\there é ü");
    }

    #[test]
    fn persistence_headers() {
        use crate::http::request::Version;
        let written = |p: Persist| {
            let mut v = Vec::new();
            p.write_header(&mut v);
            String::from_utf8(v).unwrap()
        };
        let keep10 = Persist::new(true, Version::Http10);
        assert_eq!(written(keep10), "Connection: keep-alive\r\n");
        assert_eq!(written(Persist::new(true, Version::Http11)), "");
        for v in [Version::Http10, Version::Http11] {
            let p = Persist::new(false, v);
            assert!(!p.keeps());
            assert_eq!(written(p), "Connection: close\r\n");
        }
        assert!(keep10.keeps());
    }

    fn head(input: &[u8], was_head: bool) -> Result<UpstreamHead, UpstreamHeadError> {
        match parse_upstream_head(input, was_head, 16 * 1024)? {
            ParsedResponse::Complete(h, _) => Ok(h),
            ParsedResponse::Partial => panic!("partial"),
        }
    }

    #[test]
    fn fields_named_in_connection_are_dropped_and_odd_statuses_refused() {
        let raw = b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nX-Kept: k\r\nContent-Length: 0\r\n\r\n";
        let h = head(raw, false).unwrap();
        let names: Vec<&[u8]> = h
            .headers
            .iter()
            .map(|(n, _)| &raw[n.start as usize..n.end as usize])
            .collect();
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(b"x-secret")),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n.eq_ignore_ascii_case(b"x-kept")));
        assert!(h.keep_alive);
        for bad in [
            &b"HTTP/1.1 999 Weird\r\n\r\n"[..],
            b"HTTP/1.1 600 X\r\n\r\n",
            b"HTTP/1.1 099 X\r\n\r\n",
        ] {
            assert_eq!(head(bad, false).err(), Some(UpstreamHeadError::Malformed));
        }
        assert_eq!(
            head(b"HTTP/1.1 599 X\r\nContent-Length: 0\r\n\r\n", false)
                .unwrap()
                .status,
            599
        );
    }

    #[test]
    fn status_line() {
        let mut v = Vec::new();
        write_status_line(&mut v, 403);
        assert_eq!(v, b"HTTP/1.1 403 Forbidden\r\n");
        let mut v = Vec::new();
        write_status_line(&mut v, 299);
        assert_eq!(v, b"HTTP/1.1 299 Unknown\r\n");
    }

    #[test]
    fn date_header_shape() {
        let mut v = Vec::new();
        write_date_header(&mut v);
        assert_eq!(v.len(), "Date: ".len() + 29 + 2);
        assert!(v.ends_with(b" GMT\r\n"));
    }

    #[test]
    fn framing_table() {
        let cases: &[(&[u8], bool, ResponseFraming, bool)] = &[
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                ResponseFraming::Length(5),
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false,
                ResponseFraming::Chunked,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\n\r\n",
                false,
                ResponseFraming::UntilClose,
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\n\r\n",
                false,
                ResponseFraming::Empty,
                true,
            ),
            (
                b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
                false,
                ResponseFraming::Empty,
                true,
            ),
            // A 204 declaring a body may send one: not reused.
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 41\r\n\r\n",
                false,
                ResponseFraming::Empty,
                false,
            ),
            (
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
                false,
                ResponseFraming::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
                true,
                ResponseFraming::Empty,
                true,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\n",
                false,
                ResponseFraming::Length(5),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n",
                false,
                ResponseFraming::Length(5),
                false,
            ),
            (
                b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n",
                false,
                ResponseFraming::Length(5),
                true,
            ),
            // HTTP/1.0 with Transfer-Encoding: decoded, then closed.
            (
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n",
                false,
                ResponseFraming::Chunked,
                false,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
                false,
                ResponseFraming::Chunked,
                false,
            ),
        ];
        // A transfer coding other than chunked is not decoded here: an
        // integration failure, not coded bytes passed on unlabelled.
        for input in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
        ] {
            assert!(
                head(input, false).is_err(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        for (input, was_head, framing, keep_alive) in cases {
            let h = head(input, *was_head).unwrap();
            assert_eq!(h.framing, *framing, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(
                h.keep_alive,
                *keep_alive,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for input in [
            &b"garbage\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 099 Low\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_upstream_head(input, false, 1024),
                    Err(UpstreamHeadError::Malformed)
                ),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }
}
