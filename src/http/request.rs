//! Request-head parsing (RFC 9112 §2–§7) over a byte buffer: sans-IO.
//!
//! Owns: turning the bytes of a request head into a [`HeadInfo`] of byte
//! *ranges*, and every framing decision that must happen before a request may
//! be routed or forwarded (request smuggling defences live here).
//! Must not: allocate per header, touch sockets, or know about APIs.
//! Read first: [`parse_head`].
//!
//! The caller keeps the bytes: after [`Parsed::Complete`] it splits the head
//! off its read buffer (`split_to(len).freeze()`) and wraps it with the info
//! in a [`RequestHead`], which hands out slices of the frozen buffer.

use bytes::Bytes;

/// Most headers a request may carry; more is 431.
pub const MAX_HEADERS: usize = 100;

/// A byte range into the head buffer. `u32` keeps [`HeadInfo`] small; heads
/// are limited to far less than 4 GiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn of<'a>(&self, buf: &'a [u8]) -> &'a [u8] {
        buf.get(self.start as usize..self.end as usize)
            .unwrap_or_default()
    }
    pub fn len(&self) -> usize {
        (self.end - self.start) as usize
    }
    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Patch,
    Options,
    /// Any other token (CONNECT, TRACE, extension methods). Never routed.
    Other,
}

impl Method {
    fn from_bytes(b: &[u8]) -> Method {
        match b {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }

    /// RFC 9110 §9.2.2: a request may be retried automatically only when its
    /// method is idempotent.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Method::Get | Method::Head | Method::Put | Method::Delete | Method::Options
        )
    }

    pub fn parse(s: &str) -> Option<Method> {
        match Method::from_bytes(s.to_ascii_uppercase().as_bytes()) {
            Method::Other => None,
            m => Some(m),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// What a lingering close (RFC 9112 §9.6: write side shut, what the client
/// still sends read and dropped) may drop of a request whose body was not
/// read, with bodies of at most `max_body` bytes: the declared length; for a
/// chunked body, whose length nobody knows, four times the limit (a client
/// uploading 2.5 times the limit lost its answer to a reset 16 times in 20
/// with one limit's worth). A client that sends more is not uploading a
/// request, and is cut.
pub fn linger_budget(body: BodyFraming, max_body: u64) -> u64 {
    match body {
        BodyFraming::Length(n) => n,
        _ => max_body.saturating_mul(4),
    }
}

/// Why a head was refused. Small and `Copy`: the connection loop turns it
/// into a status code and closes the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed syntax or ambiguous framing.
    BadRequest(&'static str),
    /// 414: the request-target is longer than the limit.
    UriTooLong,
    /// 431: the head (or the header count) is over the limit.
    HeadersTooLarge,
    /// 501: a transfer coding we do not implement.
    NotImplemented,
    /// 505: an HTTP major version other than 1.
    VersionNotSupported,
    /// 417: an `Expect` other than `100-continue`.
    ExpectationFailed,
}

impl HeadError {
    pub fn status(&self) -> u16 {
        match self {
            HeadError::BadRequest(_) => 400,
            HeadError::UriTooLong => 414,
            HeadError::HeadersTooLarge => 431,
            HeadError::NotImplemented => 501,
            HeadError::VersionNotSupported => 505,
            HeadError::ExpectationFailed => 417,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct HeadLimits {
    pub max_head_bytes: usize,
    pub max_uri_bytes: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            max_head_bytes: 16 * 1024,
            max_uri_bytes: 10 * 1024,
        }
    }
}

/// Everything the gateway needs from a head, as ranges into its bytes.
#[derive(Clone, Debug)]
pub struct HeadInfo {
    pub method: Method,
    pub method_span: Span,
    /// Path part of the target (origin-form, or the path of an absolute-form).
    pub path: Span,
    /// Query without the `?`, if any.
    pub query: Option<Span>,
    pub version: Version,
    pub headers: Vec<(Span, Span)>,
    /// Host header value, or the authority of an absolute-form target.
    pub host: Option<Span>,
    pub body: BodyFraming,
    pub keep_alive: bool,
    pub expect_continue: bool,
}

pub enum Parsed {
    /// Not a whole head yet: read more.
    Partial,
    /// A whole head of `len` bytes.
    Complete(HeadInfo, usize),
}

/// A byte of a reg-name or IPv4 address (RFC 3986 §3.2.2): unreserved,
/// sub-delims, and the `%` of a pct-encoding. A table: every request's Host
/// is checked.
fn is_reg_name_byte(b: u8) -> bool {
    const TABLE: [bool; 256] = {
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            t[i] = c.is_ascii_alphanumeric();
            i += 1;
        }
        let extra = b"-._~%!$&'()*+,;=";
        let mut j = 0;
        while j < extra.len() {
            t[extra[j] as usize] = true;
            j += 1;
        }
        t
    };
    TABLE[b as usize]
}

/// `uri-host [ ":" port ]` (RFC 9112 §3.2, RFC 3986 §3.2.2–3.2.3): a
/// reg-name or IPv4 address (its `%` followed by two hex digits) or an IP
/// literal in brackets, then optionally `:` and digits. No userinfo. Empty
/// is valid (a target without authority). The value becomes
/// `$context.domainName` and chooses the API, so `x:1:2`, `a]b` or a quote
/// that would break a template's JSON are refused.
pub fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        let literal = &v[1..end];
        if literal.is_empty()
            || !literal
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        (&[][..], &v[end + 1..])
    } else {
        let at = v.iter().position(|&b| b == b':').unwrap_or(v.len());
        (&v[..at], &v[at..])
    };
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    port_ok
        && host.iter().enumerate().all(|(i, &b)| {
            is_reg_name_byte(b)
                && (b != b'%'
                    || host
                        .get(i + 1..i + 3)
                        .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)))
        })
}

/// Parses one request head from the start of `buf`.
///
/// `Partial` is not an error: the caller reads more and calls again. Errors
/// are final: the caller answers with [`HeadError::status`] and closes.
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Parsed, HeadError> {
    let window = &buf[..buf.len().min(limits.max_head_bytes)];
    // Uninitialised header slots: zeroing 100 of them cost about 29% of a
    // small request's parse (criterion `parse/curl_get`, ~270 ns → see
    // docs/benchmarks.md).
    let mut headers =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(window, &mut headers) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return if request_line_too_long(window, limits) {
                Err(HeadError::UriTooLong)
            } else if window.len() >= limits.max_head_bytes {
                Err(HeadError::HeadersTooLarge)
            } else {
                Ok(Parsed::Partial)
            };
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::HeadersTooLarge),
        Err(httparse::Error::Version) => {
            // RFC 9112 §2.3: a higher minor version of HTTP/1 is served as
            // the highest we implement, 1.1 (rare: parsed from a copy).
            if let Some(patched) = as_http11(window) {
                return parse_head(&patched, limits);
            }
            return Err(version_error(window));
        }
        Err(httparse::Error::Token) => return Err(HeadError::BadRequest("invalid method")),
        Err(httparse::Error::HeaderName) => {
            return Err(HeadError::BadRequest("invalid header name"))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HeadError::BadRequest("invalid header value"))
        }
        Err(httparse::Error::NewLine) => return Err(HeadError::BadRequest("invalid line ending")),
        Err(httparse::Error::Status) => return Err(HeadError::BadRequest("invalid request line")),
    };
    let span_of = |s: &[u8]| -> Span {
        // Both slices point into `window`; httparse hands out sub-slices of
        // its input, so the offset is the pointer difference.
        let start = (s.as_ptr() as usize).wrapping_sub(window.as_ptr() as usize);
        Span {
            start: start as u32,
            end: (start + s.len()) as u32,
        }
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::BadRequest("incomplete request line"));
    };
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let method_span = span_of(method.as_bytes());
    let method = Method::from_bytes(method.as_bytes());

    // RFC 9112 §3.2: origin-form, absolute-form, authority-form (CONNECT)
    // and asterisk-form (OPTIONS *).
    let target_span = span_of(target.as_bytes());
    let target_bytes = target.as_bytes();
    let (path, query, target_authority) = split_target(target_bytes, target_span.start)?;
    if path.len() + query.map_or(0, |q| q.len() + 1) > limits.max_uri_bytes {
        return Err(HeadError::UriTooLong);
    }

    let mut host: Option<Span> = None;
    let mut host_count = 0usize;
    let mut content_length: Option<u64> = None;
    let mut cl_count = 0usize;
    let mut te_seen = false;
    let mut te_last_chunked = false;
    let mut te_chunked_count = 0usize;
    let mut te_unknown = false;
    let mut conn_close = false;
    let mut conn_keep_alive = false;
    let mut expect_continue = false;
    let mut content_type_count = 0usize;
    let mut api_key_count = 0usize;
    let mut out_headers = Vec::with_capacity(req.headers.len());

    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        let value = h.value;
        // httparse refuses control characters in values, but keep the
        // invariant here where it is cheap and explicit: bare CR and NUL
        // split heads in some downstream parsers (request smuggling).
        if value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(HeadError::BadRequest("control character in header value"));
        }
        let value = trim_ows(value);
        out_headers.push((span_of(name), span_of(value)));
        if name.eq_ignore_ascii_case(b"host") {
            // RFC 9112 §3.2: 400 for "a Host header field with an invalid
            // field value": uri-host [ ":" port ] (RFC 3986 reg-name,
            // IPv4 or an IP literal in brackets).
            if !is_valid_host(value) {
                return Err(HeadError::BadRequest("invalid Host header"));
            }
            host_count += 1;
            host = Some(span_of(value));
        } else if name.eq_ignore_ascii_case(b"content-length") {
            cl_count += 1;
            content_length = Some(parse_content_length(value)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te_seen = true;
            let mut any = false;
            for coding in value.split(|&b| b == b',') {
                let coding = trim_ows(coding);
                if coding.is_empty() {
                    continue;
                }
                any = true;
                if coding.eq_ignore_ascii_case(b"chunked") {
                    te_chunked_count += 1;
                    te_last_chunked = true;
                } else {
                    // Any other coding, `identity` too (RFC 9112 dropped
                    // it from the registry's codings), is not implemented.
                    te_last_chunked = false;
                    te_unknown = true;
                }
            }
            if !any {
                return Err(HeadError::BadRequest("empty Transfer-Encoding"));
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            content_type_count += 1;
        } else if name.eq_ignore_ascii_case(b"x-api-key") {
            api_key_count += 1;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',') {
                let token = trim_ows(token);
                if token.eq_ignore_ascii_case(b"close") {
                    conn_close = true;
                } else if token.eq_ignore_ascii_case(b"keep-alive") {
                    conn_keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"expect") {
            if value.eq_ignore_ascii_case(b"100-continue") {
                expect_continue = true;
            } else {
                return Err(HeadError::ExpectationFailed);
            }
        }
    }

    // RFC 9110 §5.3: a singleton field sent twice is invalid. These two the
    // gateway acts on (the body model of one media type, one API key) and
    // forwards: it would check one value while the backend, which gets
    // both, may read the other.
    if content_type_count > 1 || api_key_count > 1 {
        return Err(HeadError::BadRequest(
            "duplicate Content-Type or x-api-key header",
        ));
    }
    // RFC 9112 §3.2: a client MUST send exactly one Host header in HTTP/1.1.
    if host_count > 1 {
        return Err(HeadError::BadRequest("duplicate Host header"));
    }
    if host_count == 0 && version == Version::Http11 {
        return Err(HeadError::BadRequest("missing Host header"));
    }
    if let Some(authority) = target_authority {
        // RFC 9112 §3.2.2: the authority of an absolute-form target wins.
        host = Some(authority);
    } else if host.is_some_and(|h| h.start == h.end) && version == Version::Http11 {
        // RFC 9110 §4.2.1: an `http` URI with an empty host is invalid and
        // MUST be rejected; an empty Host with an origin-form target makes
        // one (it served the default API).
        return Err(HeadError::BadRequest("empty Host header"));
    }

    // RFC 9112 §6.3: framing.
    let body = if te_seen {
        // (3) Transfer-Encoding together with Content-Length is a smuggling
        // attempt, not something to resolve.
        if cl_count > 0 {
            return Err(HeadError::BadRequest(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        // §6.1: HTTP/1.0 has no transfer codings.
        if version == Version::Http10 {
            return Err(HeadError::BadRequest("Transfer-Encoding in HTTP/1.0"));
        }
        // (4) chunked must be the final coding of a request.
        if !te_last_chunked {
            return Err(HeadError::BadRequest(
                "final transfer coding is not chunked",
            ));
        }
        // RFC 9112 §7: chunked must not be applied more than once.
        if te_chunked_count > 1 {
            return Err(HeadError::BadRequest("chunked applied more than once"));
        }
        if te_unknown {
            return Err(HeadError::NotImplemented);
        }
        BodyFraming::Chunked
    } else if cl_count > 1 {
        // (5) several Content-Length fields, even equal ones, are refused.
        return Err(HeadError::BadRequest("duplicate Content-Length"));
    } else {
        match content_length {
            Some(0) | None => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };

    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };

    Ok(Parsed::Complete(
        HeadInfo {
            method,
            method_span,
            path,
            query,
            version,
            headers: out_headers,
            host,
            body,
            keep_alive,
            expect_continue: expect_continue && version == Version::Http11,
        },
        len,
    ))
}

/// Splits a request-target into path, query and (absolute-form) authority.
fn split_target(target: &[u8], base: u32) -> Result<(Span, Option<Span>, Option<Span>), HeadError> {
    let mut authority = None;
    let mut path_start = 0usize;
    if target.first() == Some(&b'/') {
        // origin-form
    } else if target == b"*" {
        return Ok((
            Span {
                start: base,
                end: base + 1,
            },
            None,
            None,
        ));
    } else if let Some(rest) = strip_scheme(target) {
        let scheme_len = target.len() - rest.len();
        let auth_len = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if auth_len == 0 {
            return Err(HeadError::BadRequest(
                "empty authority in absolute-form target",
            ));
        }
        // The authority replaces Host (RFC 9112 §3.2.2): the same rules.
        if !is_valid_host(&rest[..auth_len]) {
            return Err(HeadError::BadRequest(
                "invalid authority in absolute-form target",
            ));
        }
        authority = Some(Span {
            start: base + scheme_len as u32,
            end: base + (scheme_len + auth_len) as u32,
        });
        path_start = scheme_len + auth_len;
    } else {
        return Err(HeadError::BadRequest("unsupported request-target form"));
    }
    let rest = &target[path_start..];
    let (path_len, query) = match rest.iter().position(|&b| b == b'?') {
        Some(q) => (
            q,
            Some(Span {
                start: base + (path_start + q + 1) as u32,
                end: base + target.len() as u32,
            }),
        ),
        None => (rest.len(), None),
    };
    // An absolute-form target with no path means "/" (RFC 9112 §3.2.2); we
    // represent it as an empty span, which the router reads as the root.
    let path = Span {
        start: base + path_start as u32,
        end: base + (path_start + path_len) as u32,
    };
    if rest.contains(&b'#') {
        return Err(HeadError::BadRequest("fragment in request-target"));
    }
    if has_dot_segment(&rest[..path_len]) {
        return Err(HeadError::BadRequest("dot segment in path"));
    }
    Ok((path, query, authority))
}

/// Whether a path has a `.` or `..` segment, also percent-encoded (`%2e`,
/// RFC 3986 §6.2.2.2) or behind an encoded slash (`..%2F`, `%5C`). Routes
/// and authorization see the path as sent, and a backend that resolves dot
/// segments would serve another route's resource (`/public/../admin`), so
/// such a request is refused (400) instead of forwarded; so is one whose
/// segment is `..` before a `;` parameter (`/public/..;/admin`), which Java
/// servlet containers resolve as `..`. Clients remove
/// dot segments themselves (RFC 3986 §5.2.4); only a crafted request has
/// them. Costs nothing on paths without `.` or `%`.
pub fn has_dot_segment(path: &[u8]) -> bool {
    if !path.iter().any(|&b| b == b'.' || b == b'%') {
        return false;
    }
    path.split(|&b| b == b'/').any(|segment| {
        let decoded = crate::http::query::decode_path(segment);
        // A `;` starts a path parameter that Java servlet containers
        // (Tomcat, Jetty, Spring) strip before resolving the path: for them
        // `..;x` is `..`.
        decoded.split(['/', '\\']).any(|piece| {
            let name = piece.split(';').next().unwrap_or(piece);
            name == "." || name == ".."
        })
    })
}

fn strip_scheme(target: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], &b"https://"[..]] {
        if target.len() >= scheme.len() && target[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&target[scheme.len()..]);
        }
    }
    None
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`. No sign, no inner space, no
/// list (a list of equal values is legal but refused: §8.6 lets a recipient
/// reject it, and accepting it is how CL.CL desync starts).
fn parse_content_length(v: &[u8]) -> Result<u64, HeadError> {
    if v.is_empty() {
        return Err(HeadError::BadRequest("empty Content-Length"));
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return Err(HeadError::BadRequest("invalid Content-Length"));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(HeadError::BadRequest("Content-Length overflow"))?;
    }
    Ok(n)
}

/// The elements of a comma-separated list field (RFC 9110 §5.6.1) whose
/// lines are `values`, trimmed, empty ones skipped.
pub fn list_elements<'a>(values: impl Iterator<Item = &'a [u8]>) -> impl Iterator<Item = &'a [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

pub fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn request_line_too_long(window: &[u8], limits: &HeadLimits) -> bool {
    // Method, two spaces and "HTTP/1.1" around the target.
    let allowance = limits.max_uri_bytes + 32;
    match window.iter().position(|&b| b == b'\n') {
        Some(pos) => pos > allowance,
        None => window.len() > allowance,
    }
}

/// The head with `HTTP/1.x` (x from 2 to 9) at the end of its request line
/// made `HTTP/1.1`; `None` for anything else.
fn as_http11(window: &[u8]) -> Option<Vec<u8>> {
    let line_end = window.iter().position(|&b| b == b'\n')?;
    let line = &window[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let at = line.len().checked_sub(9)?;
    match &line[at..] {
        [b' ', b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor]
            if (b'2'..=b'9').contains(minor) =>
        {
            let mut patched = window.to_vec();
            patched[at + 8] = b'1';
            Some(patched)
        }
        _ => None,
    }
}

fn version_error(window: &[u8]) -> HeadError {
    let line_end = window
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(window.len());
    let line = &window[..line_end];
    // "HTTP/2.0" and friends are a version we do not speak: 505. Anything
    // else that failed the version check is plain garbage: 400.
    if let Some(pos) = line.windows(5).rposition(|w| w == b"HTTP/") {
        if let Some(major) = line.get(pos + 5) {
            if major.is_ascii_digit() && *major != b'1' {
                return HeadError::VersionNotSupported;
            }
        }
    }
    HeadError::BadRequest("invalid HTTP version")
}

/// A parsed head that owns its bytes.
#[derive(Clone, Debug)]
pub struct RequestHead {
    pub raw: Bytes,
    pub info: HeadInfo,
}

impl RequestHead {
    pub fn new(raw: Bytes, info: HeadInfo) -> RequestHead {
        RequestHead { raw, info }
    }

    pub fn method(&self) -> Method {
        self.info.method
    }

    pub fn method_bytes(&self) -> &[u8] {
        self.info.method_span.of(&self.raw)
    }

    /// The path; `/` for an absolute-form target without one (RFC 9112
    /// §3.2.2), so that `$context.path` and the access log say `/`.
    pub fn path(&self) -> &[u8] {
        let p = self.info.path.of(&self.raw);
        if p.is_empty() {
            b"/"
        } else {
            p
        }
    }

    pub fn query(&self) -> Option<&[u8]> {
        self.info.query.map(|q| q.of(&self.raw))
    }

    pub fn host(&self) -> Option<&[u8]> {
        self.info.host.map(|h| h.of(&self.raw))
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.info
            .headers
            .iter()
            .map(move |(n, v)| (n.of(&self.raw), v.of(&self.raw)))
    }

    /// The last value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.header_values(name).last()
    }

    /// Every value of a header, in order (a list field may come on several
    /// lines: [`list_elements`] reads them as one list).
    pub fn header_values<'h, 'n>(
        &'h self,
        name: &'n str,
    ) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The value as a cheap `Bytes` slice of the head buffer.
    pub fn slice(&self, span: Span) -> Bytes {
        self.raw.slice(span.start as usize..span.end as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Parsed, HeadError> {
        parse_head(input, &HeadLimits::default())
    }

    fn complete(input: &[u8]) -> (HeadInfo, usize) {
        match parse(input) {
            Ok(Parsed::Complete(h, n)) => (h, n),
            Ok(Parsed::Partial) => panic!("partial: {:?}", String::from_utf8_lossy(input)),
            Err(e) => panic!("error {e:?}: {:?}", String::from_utf8_lossy(input)),
        }
    }

    fn err(input: &[u8]) -> u16 {
        match parse(input) {
            Err(e) => e.status(),
            Ok(Parsed::Partial) => 0,
            Ok(Parsed::Complete(..)) => 200,
        }
    }

    #[test]
    fn dot_segments() {
        for bad in [
            &b"/a/../b"[..],
            b"/a/./b",
            b"/..",
            b"/a/%2e%2e/b",
            b"/a/%2E./b",
            b"/a/..%2Fb",
            b"/a/%2e%2e%2fb",
            b"/a/..%5cb",
            b"/a/.",
            b"/public/..;/admin/x",
            b"/public/..;jsessionid=1/admin",
            b"/a/%2e%2e;/b",
            b"/a/..%3b/b",
            b"/a/.;x/b",
        ] {
            assert!(has_dot_segment(bad), "{}", String::from_utf8_lossy(bad));
        }
        for good in [
            &b"/a/b"[..],
            b"/a/v1.2/b.json",
            b"/a/...",
            b"/a/..b",
            b"/a/.hidden",
            b"/a/%2e%2e%2e",
            b"/a%20b",
            b"/a/b;v=1",
            b"/a/...;x",
            b"",
        ] {
            assert!(!has_dot_segment(good), "{}", String::from_utf8_lossy(good));
        }
    }

    #[test]
    fn higher_http1_minor_versions_are_served_as_http11() {
        let input = b"GET /a?b=1 HTTP/1.2\r\nHost: x\r\nConnection: keep-alive\r\n\r\n";
        let (h, n) = complete(input);
        assert_eq!(n, input.len());
        assert_eq!(h.version, Version::Http11);
        assert!(h.keep_alive);
        assert_eq!(h.path.of(input), b"/a");
        assert_eq!(
            parse(b"GET / HTTP/1.3\r\nHost: x\r\n")
                .ok()
                .map(|p| matches!(p, Parsed::Partial)),
            Some(true)
        );
    }

    #[test]
    fn simple_get() {
        let input = b"GET /prod/pets?type=dog HTTP/1.1\r\nHost: x\r\n\r\nrest";
        let (h, n) = complete(input);
        assert_eq!(n, input.len() - 4);
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path.of(input), b"/prod/pets");
        assert_eq!(h.query.map(|q| q.of(input)), Some(&b"type=dog"[..]));
        assert_eq!(h.host.map(|q| q.of(input)), Some(&b"x"[..]));
        assert!(h.keep_alive);
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_heads() {
        for input in [
            &b""[..],
            b"GET",
            b"GET / HTTP/1.1\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r",
        ] {
            assert!(matches!(parse(input), Ok(Parsed::Partial)), "{input:?}");
        }
    }

    #[test]
    fn framing_table() {
        // (input, expected status: 200 = accepted)
        let cases: &[(&[u8], u16)] = &[
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n", 200),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  5 \r\n\r\n", 200),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 200),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: ChUnKeD\r\n\r\n", 200),
            // CL + TE
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400),
            // duplicate / list CL
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n", 400),
            // signs and spaces
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 0\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400),
            // whitespace before colon
            (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n", 400),
            // obs-fold
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400),
            // bare CR, NUL
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\rHost: x\r\n\r\n", 400),
            // TE whose last coding is not chunked, unknown codings
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: \r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            // Host rules
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.0\r\n\r\n", 200),
            // versions and targets
            (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
            (b"GET / HTTP/1.2\r\nHost: x\r\n\r\n", 200),
            (b"GET / HTTP/1.9\r\n\r\n", 400), // served as 1.1, so Host is required
            (b"GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.2x\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1x\r\nHost: x\r\n\r\n", 400),
            (b"GET / FOO/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET foo HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET http://h/p HTTP/1.1\r\nHost: x\r\n\r\n", 200),
            (b"G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417),
        ];
        for (input, want) in cases {
            assert_eq!(err(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn limits() {
        let limits = HeadLimits {
            max_head_bytes: 256,
            max_uri_bytes: 64,
        };
        let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(100));
        assert_eq!(
            parse_head(long_uri.as_bytes(), &limits).err(),
            Some(HeadError::UriTooLong)
        );
        // A request line still arriving that is already too long is refused early.
        let partial = format!("GET /{}", "a".repeat(200));
        assert_eq!(
            parse_head(partial.as_bytes(), &limits).err(),
            Some(HeadError::UriTooLong)
        );
        let big = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
            "b".repeat(300)
        );
        assert_eq!(
            parse_head(big.as_bytes(), &limits).err(),
            Some(HeadError::HeadersTooLarge)
        );
        let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
        for i in 0..MAX_HEADERS + 1 {
            many.push_str(&format!("X-{i}: 1\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(err(many.as_bytes()), 431);
    }

    #[test]
    fn keep_alive_rules() {
        let (h, _) = complete(b"GET / HTTP/1.0\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = complete(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(h.keep_alive);
        let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert!(!h.keep_alive);
        let (h, _) = complete(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, Close\r\n\r\n");
        assert!(!h.keep_alive);
    }

    #[test]
    fn absolute_form_uses_target_authority() {
        let input = b"GET http://api.example/prod/x?y=1 HTTP/1.1\r\nHost: other\r\n\r\n";
        let (h, _) = complete(input);
        assert_eq!(h.host.map(|s| s.of(input)), Some(&b"api.example"[..]));
        assert_eq!(h.path.of(input), b"/prod/x");
        assert_eq!(h.query.map(|s| s.of(input)), Some(&b"y=1"[..]));
    }

    #[test]
    fn host_grammar() {
        for good in [
            &b"api.example"[..],
            b"api.example:8080",
            b"127.0.0.1:80",
            b"[::1]",
            b"[::1]:8443",
            b"[::ffff:127.0.0.1]",
            b"x:",
            b"caf%C3%A9.example",
            b"",
        ] {
            assert!(is_valid_host(good), "{}", String::from_utf8_lossy(good));
        }
        for bad in [
            &b"x:abc"[..],
            b"x:1:2",
            b"a]b",
            b"[not-an-ip]",
            b"[::1",
            b"[::1]x",
            b"[]",
            b"x%zz",
            b"x%4",
            b"::",
            b"user@a",
            b"a\"b",
            b"a{b}",
        ] {
            assert!(!is_valid_host(bad), "{}", String::from_utf8_lossy(bad));
        }
        // The authority of an absolute-form target follows the same rules.
        for bad in [
            &b"GET http://u@a/prod/x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            b"GET http://a\"<>/prod/x HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET http://a:1:2/prod/x HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(
                    parse_head(bad, &HeadLimits::default()),
                    Err(HeadError::BadRequest(_))
                ),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn leading_empty_line_is_ignored() {
        // RFC 9112 §2.2: a server SHOULD ignore at least one empty line.
        let input = b"\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\n";
        let (h, _) = complete(input);
        assert_eq!(h.path.of(input), b"/x");
    }

    #[test]
    fn expect_continue_only_for_http11() {
        let (h, _) = complete(
            b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n",
        );
        assert!(h.expect_continue);
        assert_eq!(h.body, BodyFraming::Length(3));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = parse(&input);
        }

        #[test]
        fn never_panics_on_near_valid(tail in "[ -~\r\n\t]{0,200}") {
            let input = format!("POST /a HTTP/1.1\r\nHost: x\r\n{tail}");
            let _ = parse(input.as_bytes());
        }
    }
}
