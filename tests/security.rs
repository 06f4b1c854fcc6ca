//! Robustness and security over real sockets, beyond the framing table of
//! tests/http1_conformance.rs: request-smuggling variants (each followed by
//! a pipelined request that must never run), bodies that look like
//! requests, header injection towards the backend, slowloris and slow
//! bodies next to normal clients, bounded buffers and memory, and the admin
//! listener's exposure.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use support::client::get_with;
use support::gateway::{mock_method, proxy_method, swagger, ADMIN_TOKEN};
use support::{Backend, Gateway, Mode, RawClient};

/// A request appended after every attack: if the gateway ever read the
/// attack as a complete request and went on, this one would run.
const SMUGGLED: &[u8] = b"GET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

/// `/{proxy+}` to the backend, `/mock` answered by the gateway, small limits.
fn proxy_gateway(backend: &Backend) -> Gateway {
    let uri = format!("http://{}/{{proxy}}", backend.addr);
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {m}}}, "/mock": {{"get": {mock}}}}}"#,
        m = proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        ),
        mock = mock_method(200, "{\"ok\": true}"),
    );
    Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "1000")
        .limit("max_head_bytes", "4096")
        .limit("max_uri_bytes", "1024")
        .limit("header_read_timeout_ms", "2000")
        .limit("body_read_timeout_ms", "2000")
        .start()
}

fn chunked_post(body: &[u8]) -> Vec<u8> {
    let mut v = b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    v.extend_from_slice(body);
    v
}

fn post_with(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!("POST /prod/a HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn get_line(line: &[u8]) -> Vec<u8> {
    let mut v = b"GET /prod/a HTTP/1.1\r\nHost: x\r\n".to_vec();
    v.extend_from_slice(line);
    v.extend_from_slice(b"\r\n\r\n");
    v
}

/// Framing attacks not in tests/http1_conformance.rs. Each is sent with a
/// pipelined request behind it in the same write; the answer is the status
/// (400 for malformed or ambiguous framing, RFC 9112 §6.3 and §11.2; 413,
/// 414, 417, 431 for limits and expectations), exactly one response, a
/// closed connection, and nothing at all reaches the backend.
#[test]
fn framing_attacks_with_a_pipelined_request_are_refused_and_never_forwarded() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let many_fields: String = (0..101).map(|i| format!("X-{i}: 1\r\n")).collect();
    let big_fields: String = (0..90)
        .map(|i| format!("X-{i}: {}\r\n", "v".repeat(60)))
        .collect();
    let mut big_trailer = b"0\r\nX-T: ".to_vec();
    big_trailer.extend_from_slice(&[b't'; 17 * 1024]);
    big_trailer.extend_from_slice(b"\r\n\r\n");
    let mut long_ext = b"3;".to_vec();
    long_ext.extend_from_slice(&[b'e'; 5000]);
    long_ext.extend_from_slice(b"\r\nabc\r\n0\r\n\r\n");
    let mut over_limit_chunk = b"ffffffffffffffff\r\n".to_vec();
    over_limit_chunk.extend_from_slice(&[b'a'; 2000]);
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        // Transfer-Encoding spelled so that a laxer parser might miss it,
        // next to a Content-Length (RFC 9112 §6.3 (3): a smuggling attempt).
        ("TE with tab OWS + CL", post_with("Content-Length: 3\r\nTransfer-Encoding:\tchunked\r\n", b"0\r\n\r\n"), 400),
        ("TE upper case + CL 0", post_with("Content-Length: 0\r\nTRANSFER-ENCODING: CHUNKED\r\n", b"0\r\n\r\n"), 400),
        ("TE leading empty list element + CL", post_with("Content-Length: 3\r\nTransfer-Encoding: , chunked\r\n", b"0\r\n\r\n"), 400),
        ("TE behind a bare-LF line + CL", post_with("Content-Length: 5\r\nX-A: a\nTransfer-Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
        ("CL + TE in HTTP/1.0", b"POST /prod/a HTTP/1.0\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(), 400),
        // Transfer-Encoding whose final coding is not chunked (§6.3 (4)).
        ("TE vertical tab before chunked", post_with("Transfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\n"), 400),
        ("TE chunked with a parameter", post_with("Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"), 400),
        ("TE identity alone", post_with("Transfer-Encoding: identity\r\n", b""), 400),
        ("TE gzip alone", post_with("Transfer-Encoding: gzip\r\n", b""), 400),
        ("TE chunked, then identity in a second field", post_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", b"0\r\n\r\n"), 400),
        ("TE chunked folded onto gzip", post_with("Transfer-Encoding: gzip\r\n\tchunked\r\n", b"0\r\n\r\n"), 400),
        ("TE name with inner space", post_with("Transfer Encoding: chunked\r\n", b"0\r\n\r\n"), 400),
        ("TE tab before colon", post_with("Transfer-Encoding\t: chunked\r\n", b"0\r\n\r\n"), 400),
        // Singleton fields the gateway checks and forwards (RFC 9110 §5.3):
        // it would validate one value, the backend might read the other.
        ("Content-Type twice", post_with("Content-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n", b"{}"), 400),
        ("x-api-key twice", get_line(b"x-api-key: aaaaaaaaaaaaaaaaaaaaaaaaa\r\nX-Api-Key: bbbbbbbbbbbbbbbbbbbbbbbbbbb"), 400),
        // Content-Length = 1*DIGIT (RFC 9110 §8.6).
        ("CL empty", post_with("Content-Length:\r\n", b""), 400),
        ("CL trailing comma", post_with("Content-Length: 4,\r\n", b"abcd"), 400),
        ("CL hex", post_with("Content-Length: 0x4\r\n", b"abcd"), 400),
        ("CL exponent", post_with("Content-Length: 1e1\r\n", b"abcdefghij"), 400),
        ("CL full-width digit", post_with("Content-Length: \u{ff14}\r\n", b"abcd"), 400),
        ("CL form feed", post_with("Content-Length: \x0c4\r\n", b"abcd"), 400),
        // Field syntax (RFC 9112 §5, §2.2).
        ("CR in a field name", get_line(b"X-\rA: 1"), 400),
        ("LF in a field name", get_line(b"X-\nA: 1"), 400),
        ("NUL in a field name", get_line(b"X-\0A: 1"), 400),
        ("DEL in a field value", get_line(b"X-A: 1\x7f2"), 400),
        ("non-ASCII field name", get_line("X-\u{e9}: 1".as_bytes()), 400),
        ("field line without colon", get_line(b"Foo"), 400),
        ("empty field name", get_line(b": x"), 400),
        ("whitespace before the first field", b"GET /prod/a HTTP/1.1\r\n Host: x\r\n\r\n".to_vec(), 400),
        // Chunked coding (RFC 9112 §7.1).
        ("chunk size line empty", chunked_post(b"\r\nabc\r\n0\r\n\r\n"), 400),
        ("chunk size with leading space", chunked_post(b" 3\r\nabc\r\n0\r\n\r\n"), 400),
        ("chunk size with 0x", chunked_post(b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
        ("chunk size of 17 digits, leading zeros", chunked_post(b"00000000000000003\r\nabc\r\n0\r\n\r\n"), 400),
        ("chunk extension with bare CR", chunked_post(b"3;a\rb\r\nabc\r\n0\r\n\r\n"), 400),
        ("chunk extension with bare LF", chunked_post(b"3;a\nabc\r\n0\r\n\r\n"), 400),
        ("chunk extension over 4 KiB", chunked_post(&long_ext), 400),
        ("chunk data not followed by CRLF", chunked_post(b"3\r\nabc0\r\n\r\n"), 400),
        ("trailer obs-fold", chunked_post(b"0\r\nX-T: 1\r\n folded\r\n\r\n"), 400),
        ("trailer bare LF", chunked_post(b"0\r\nX-T: 1\n\r\n"), 400),
        ("trailer over 16 KiB", chunked_post(&big_trailer), 400),
        ("chunk size beyond the body limit", chunked_post(&over_limit_chunk), 413),
        // Request line (RFC 9112 §3).
        ("CONNECT authority-form", b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n".to_vec(), 400),
        ("absolute-form with another scheme", b"GET ftp://evil.example/prod/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("absolute-form with empty authority", b"GET http:///prod/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("two spaces in the request line", b"GET  /prod/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("tab in the request line", b"GET\t/prod/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("space before the method", b" GET /prod/a HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        ("HTTP/0.9 request line", b"GET /prod/a\r\n\r\n".to_vec(), 400),
        ("lower-case HTTP version", b"GET /prod/a http/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        // Expect (RFC 9110 §10.1.1): only 100-continue is known.
        ("Expect list", post_with("Content-Length: 4\r\nExpect: 100-continue, foo\r\n", b"abcd"), 417),
        ("Expect empty", post_with("Content-Length: 4\r\nExpect:\r\n", b"abcd"), 417),
        // Limits.
        ("101 header fields", get_line(many_fields.trim_end().as_bytes()), 431),
        ("small fields over max_head_bytes", get_line(big_fields.trim_end().as_bytes()), 431),
        ("query over max_uri_bytes", format!("GET /prod/a?{} HTTP/1.1\r\nHost: x\r\n\r\n", "q".repeat(2000)).into_bytes(), 414),
        // Refused requests whose unread body is a request.
        // (a body that arrived whole is dropped and the connection kept:
        // tests/http1_conformance.rs; one still on its way closes it).
        ("body of an unroutable request", b"POST /nostage HTTP/1.1\r\nHost: x\r\nContent-Length: 400\r\n\r\nGET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 403),
        ("body of a request over the body limit", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\nGET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 413),
    ];
    for (name, attack, want) in &cases {
        let mut bytes = attack.clone();
        bytes.extend_from_slice(SMUGGLED);
        let mut c = RawClient::connect(gw.addr);
        c.send(&bytes);
        let r = c
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{name}: no response ({e})"));
        assert_eq!(r.status, *want, "{name}: {}", r.text());
        assert!(
            c.is_closed(Duration::from_secs(3)),
            "{name}: connection left open"
        );
        assert!(
            c.leftover().is_empty(),
            "{name}: a second response followed: {:?}",
            String::from_utf8_lossy(c.leftover())
        );
    }
    assert_eq!(
        backend.request_count(),
        0,
        "a framing attack reached the backend: {:?}",
        backend.recorded()
    );
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200, "the gateway stopped serving");
}

/// Well-framed requests whose bodies (or trailers) hold a request: the
/// backend gets them as bytes, re-framed with Content-Length, and only the
/// requests the client really sent.
#[test]
fn bodies_that_look_like_requests_stay_bodies() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let inner = b"0\r\n\r\nGET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

    // Content-Length body that is chunked framing plus a request, then a
    // real pipelined request.
    let mut c = RawClient::connect(gw.addr);
    let mut req = format!(
        "POST /prod/cl HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        inner.len()
    )
    .into_bytes();
    req.extend_from_slice(inner);
    req.extend_from_slice(b"GET /prod/after HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(&req);
    let r1 = c.read_response(false);
    let r2 = c.read_response(false);
    assert_eq!(r1.status, 200);
    assert_eq!(r1.json()["body"].as_str().unwrap().as_bytes(), inner);
    assert_eq!(r2.json()["target"], "/after");

    // A chunk whose data is a whole request.
    let mut c = RawClient::connect(gw.addr);
    let mut req =
        b"POST /prod/chunk HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    req.extend_from_slice(format!("{:x}\r\n", SMUGGLED.len()).as_bytes());
    req.extend_from_slice(SMUGGLED);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.status, 200);
    let last = backend.last();
    assert_eq!(last.body, SMUGGLED);
    assert_eq!(
        last.header("content-length"),
        Some(SMUGGLED.len().to_string().as_str())
    );
    assert_eq!(last.header("transfer-encoding"), None);

    // Trailer lines that spell a request: dropped, or the body refused.
    let mut c = RawClient::connect(gw.addr);
    let mut req =
        b"POST /prod/trailer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n"
            .to_vec();
    req.extend_from_slice(SMUGGLED);
    let r = c.request(&req);
    assert!(r.status == 200 || r.status == 400, "{}", r.status);

    std::thread::sleep(Duration::from_millis(200));
    let targets: Vec<String> = backend.recorded().into_iter().map(|r| r.target).collect();
    assert!(
        targets.iter().all(|t| !t.contains("smuggled")),
        "{targets:?}"
    );
    assert_eq!(
        targets.len(),
        3 + usize::from(r.status == 200),
        "{targets:?}"
    );
}

/// An absolute-form target naming another host does not turn the gateway
/// into a proxy: the backend of the route gets the request in origin-form
/// with its own Host, and the named host is never contacted.
#[test]
fn absolute_form_targets_do_not_choose_the_backend() {
    let backend = Backend::start(Mode::Echo);
    let decoy = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let req = format!(
        "GET http://{}/prod/abs?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
        decoy.addr
    );
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(req.as_bytes());
    assert_eq!(r.status, 200);
    let last = backend.last();
    assert_eq!(last.target, "/abs?x=1");
    assert_eq!(last.header("host"), Some(backend.addr.to_string().as_str()));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(decoy.connection_count(), 0, "the decoy host was contacted");
}

/// Dot segments (`..`, `.`, percent-encoded, behind an encoded slash) are
/// refused with 400 and never forwarded: a backend that resolves them
/// would serve another route's resource (`/prod/public/../admin`), past the
/// route's own authorization. Ordinary dots pass.
#[test]
fn dot_segments_are_refused_not_forwarded() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    for path in [
        "/prod/public/../admin/secret",
        "/prod/public/./x",
        "/prod/public/%2e%2e/admin",
        "/prod/public/%2E%2e/admin",
        "/prod/public/..%2Fadmin",
        "/prod/public/..%5cadmin",
        "/prod/..",
        // `..` with a path parameter: Java servlet containers resolve it.
        "/prod/public/..;/admin/secret",
        "/prod/public/..;jsessionid=x/admin",
        "/prod/public/%2e%2e;/admin",
        "/prod/public/..%3b/admin",
    ] {
        let mut c = RawClient::connect(gw.addr);
        let r = c.request(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(r.status, 400, "{path}");
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(backend.request_count(), 0, "a dot segment was forwarded");
    let r = RawClient::connect(gw.addr)
        .request(b"GET /prod/files/v1.2/a.json/...x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(backend.last().target, "/files/v1.2/a.json/...x");
}

/// Percent-encoded CR LF in the path, the query and mapped values never
/// becomes a header line, towards the backend or in the response.
/// Headers that spell a gateway-owned header with `_` for `-` are not
/// forwarded (CGI, WSGI and Rack read both spellings as one); other `_`
/// headers pass.
#[test]
fn underscore_spellings_of_gateway_headers_are_not_forwarded() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(
        b"POST /prod/u HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer_Encoding: chunked\r\nContent_Length: 0\r\nX_Forwarded_For: 6.6.6.6\r\nx_forwarded_proto: https\r\nX_Amzn_RequestId: forged\r\nHOST_: a\r\nMy_Header: kept\r\n\r\nhello",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["body"], "hello");
    let last = backend.last();
    let names: Vec<String> = last
        .headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .collect();
    for gone in [
        "transfer_encoding",
        "content_length",
        "x_forwarded_for",
        "x_forwarded_proto",
        "x_amzn_requestid",
    ] {
        assert!(
            !names.iter().any(|n| n == gone),
            "{gone} forwarded: {names:?}"
        );
    }
    assert_eq!(last.header("my_header"), Some("kept"));
    assert_eq!(last.header("host_"), Some("a"));
    assert_eq!(last.header("x-forwarded-for"), Some("127.0.0.1"));

    // A header the integration maps is the gateway's too: its `_`
    // spellings do not pass next to the mapped value.
    let uri = format!("http://{}/m", backend.addr);
    let paths = format!(
        r#"{{"/m": {{"get": {}}}}}"#,
        proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.header.X-Trusted-User": "'alice'"}"#
        )
    );
    let mapped = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .start();
    let r = RawClient::connect(mapped.addr).request(
        b"GET /prod/m HTTP/1.1\r\nHost: x\r\nX_Trusted_User: mallory\r\nx-trusted_user: mallory\r\nX-Other_One: kept\r\n\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let last = backend.last();
    let trusted: Vec<&str> = last
        .headers
        .iter()
        .filter(|(n, _)| n.to_ascii_lowercase().replace('_', "-") == "x-trusted-user")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(trusted, ["alice"]);
    assert_eq!(last.header("x-other_one"), Some("kept"));
}

#[test]
fn decoded_crlf_never_becomes_a_header_line() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}", backend.addr);
    let j = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let request_template =
        j("#set($context.requestOverride.header.X-Override = $input.params('q')){}");
    let response_template =
        j("#set($context.responseOverride.header.X-Echo = $input.params('q'))done");
    let paths = format!(
        r#"{{
      "/inject/{{id}}": {{"get": {{"parameters": [{{"name": "id", "in": "path", "required": true}}, {{"name": "q", "in": "query"}}],
        "x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "POST", "uri": "{uri}/in/{{id}}",
          "requestParameters": {{"integration.request.header.X-From-Query": "method.request.querystring.q",
                                 "integration.request.header.X-From-Path": "method.request.path.id",
                                 "integration.request.path.id": "method.request.path.id"}},
          "requestTemplates": {{"application/json": {request_template}}},
          "responses": {{"default": {{"statusCode": "200", "responseTemplates": {{"application/json": {response_template}}}}}}}}}}}}},
      "/{{proxy+}}": {{"x-amazon-apigateway-any-method": {proxy}}}
    }}"#,
        proxy = proxy_method(
            &format!("{uri}/{{proxy}}"),
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        ),
    );
    let gw = Gateway::builder()
        .api("i", &swagger(&paths))
        .stage("i", "prod", &[])
        .default_api("i")
        .start();
    let evil = "%0d%0aX-Evil:%201%0d%0a%0d%0aGET%20%2Fsmuggled%20HTTP%2F1.1%0d%0aHost:%20x";
    let r = get_with(gw.addr, &format!("/prod/inject/a{evil}?q=v{evil}"), "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header_count("X-Evil"), 0, "{:?}", r.headers);
    let echo = r.header("X-Echo").expect("X-Echo response header");
    assert!(echo.starts_with("vX-Evil: 1"), "{echo:?}");
    let r = get_with(gw.addr, &format!("/prod/proxied{evil}?q={evil}"), "");
    assert_eq!(r.status, 200, "{}", r.text());

    std::thread::sleep(Duration::from_millis(200));
    let recorded = backend.recorded();
    assert_eq!(recorded.len(), 2, "{recorded:?}");
    for rec in &recorded {
        assert!(rec.header("X-Evil").is_none(), "{:?}", rec.headers);
        assert!(!rec.target.contains(['\r', '\n', ' ']), "{:?}", rec.target);
        for (n, v) in &rec.headers {
            assert!(!v.contains('\r') && !v.contains('\n'), "{n}: {v:?}");
        }
    }
    let mapped = &recorded[0];
    for name in ["X-From-Query", "X-From-Path", "X-Override"] {
        let v = mapped
            .header(name)
            .unwrap_or_else(|| panic!("{name} missing: {:?}", mapped.headers));
        assert!(v.contains("X-Evil:"), "{name}: {v:?}");
    }
    assert_eq!(recorded[1].target, format!("/proxied{evil}?q={evil}"));
}

/// One slow connection driven by [`slow_clients`].
struct Slow {
    kind: SlowKind,
    stream: TcpStream,
    /// The bytes still to trickle.
    pending: Vec<u8>,
    next_write: Instant,
    received: Vec<u8>,
    closed_at: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum SlowKind {
    /// A head that never ends, one byte every 200 ms.
    Head,
    /// A complete head, then body bytes slower than the body timeout.
    Body,
    /// Connects and says nothing.
    Silent,
}

impl Slow {
    fn open(addr: SocketAddr, kind: SlowKind) -> Slow {
        let stream = TcpStream::connect(addr).expect("connect a slow client");
        stream.set_nodelay(true).unwrap();
        let mut pending = Vec::new();
        match kind {
            SlowKind::Head => {
                (&stream)
                    .write_all(b"GET /prod/slow HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    .unwrap();
                pending = vec![b'a'; 10_000];
            }
            SlowKind::Body => {
                (&stream)
                    .write_all(
                        b"POST /prod/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\nfirst",
                    )
                    .unwrap();
                pending = vec![b'b'; 495];
            }
            SlowKind::Silent => {}
        }
        stream.set_nonblocking(true).unwrap();
        Slow {
            kind,
            stream,
            pending,
            next_write: Instant::now(),
            received: Vec::new(),
            closed_at: None,
        }
    }

    /// Reads what arrived, notes a close, and trickles the next byte when
    /// it is due (never after the server has answered).
    fn poll(&mut self, now: Instant) {
        if self.closed_at.is_some() {
            return;
        }
        let mut buf = [0u8; 4096];
        loop {
            match (&self.stream).read(&mut buf) {
                Ok(0) => {
                    self.closed_at = Some(now);
                    return;
                }
                Ok(n) => self.received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(_) => {
                    self.closed_at = Some(now);
                    return;
                }
            }
        }
        let period = match self.kind {
            SlowKind::Head => Duration::from_millis(200),
            // Slower than the 1 s body timeout.
            SlowKind::Body => Duration::from_millis(1500),
            SlowKind::Silent => return,
        };
        if self.received.is_empty() && now >= self.next_write && !self.pending.is_empty() {
            let b = self.pending.remove(0);
            match (&self.stream).write(&[b]) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.closed_at = Some(now),
            }
            self.next_write = now + period;
        }
    }
}

/// Slowloris and slow bodies: 300 connections trickle head bytes, stall
/// their bodies or say nothing, while normal clients are served. The
/// header-read timeout answers 408 and closes, the body timeout and the
/// idle timeout close.
#[test]
fn slowloris_and_slow_bodies_are_cut_off_while_normal_clients_are_served() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}/{{proxy}}", backend.addr);
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {m}}}, "/mock": {{"get": {mock}}}}}"#,
        m = proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        ),
        mock = mock_method(200, "{\"ok\": true}"),
    );
    // One shard: the slow connections and the normal clients share it.
    let gw = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("header_read_timeout_ms", "1000")
        .limit("body_read_timeout_ms", "1000")
        .limit("idle_timeout_ms", "2000")
        .start();
    let addr = gw.addr;
    let started = Instant::now();
    let driver = std::thread::spawn(move || {
        let mut slow: Vec<Slow> = Vec::new();
        for i in 0..300 {
            let kind = match i % 5 {
                0 | 1 => SlowKind::Head,
                2 | 3 => SlowKind::Body,
                _ => SlowKind::Silent,
            };
            slow.push(Slow::open(addr, kind));
        }
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until && slow.iter().any(|s| s.closed_at.is_none()) {
            let now = Instant::now();
            for s in slow.iter_mut() {
                s.poll(now);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        slow
    });

    // Normal clients, while the slow ones hold their connections.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..60 {
        let t = Instant::now();
        let path = if i % 2 == 0 {
            "/prod/mock"
        } else {
            "/prod/normal"
        };
        let r = support::client::get(gw.addr, path);
        assert_eq!(r.status, 200, "normal request {i} failed: {}", r.text());
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "normal request {i} took {:?}",
            t.elapsed()
        );
    }
    let normal_done = started.elapsed();

    let slow = driver.join().expect("slow-client driver");
    let mut got_408 = 0;
    for (i, s) in slow.iter().enumerate() {
        let closed = s
            .closed_at
            .unwrap_or_else(|| panic!("slow client {i} ({:?}) still open after 15 s", s.kind));
        let after = closed.duration_since(started);
        // Generous: each timeout is 1-2 s; the bound only catches "never".
        assert!(
            after < Duration::from_secs(10),
            "{:?} closed after {after:?}",
            s.kind
        );
        if !s.received.is_empty() {
            let text = String::from_utf8_lossy(&s.received);
            assert!(
                text.starts_with("HTTP/1.1 408 "),
                "{:?} got {text:?}",
                s.kind
            );
            got_408 += 1;
        }
        if s.kind == SlowKind::Head {
            // Trickling does not extend the header deadline.
            assert!(
                after >= Duration::from_millis(800),
                "head closed early ({after:?}): {:?}",
                String::from_utf8_lossy(&s.received)
            );
        }
    }
    let heads = slow.iter().filter(|s| s.kind == SlowKind::Head).count();
    assert!(
        got_408 * 2 >= heads,
        "only {got_408} of {heads} slow heads got a 408"
    );
    assert!(
        normal_done < Duration::from_secs(30),
        "normal clients took {normal_done:?}"
    );
    // The gateway still serves.
    assert_eq!(support::client::get(gw.addr, "/prod/mock").status, 200);
}

fn proc_status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("{key} not in /proc/{pid}/status"))
}

/// Streams `chunk` repeatedly until the server closes or `cap` bytes are
/// sent. Returns the bytes sent and whether the server closed.
fn stream_until_closed(addr: SocketAddr, head: &[u8], chunk: &[u8], cap: usize) -> (usize, bool) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(head).is_err() {
        return (0, true);
    }
    let mut sent = head.len();
    while sent < cap {
        match s.write(chunk) {
            Ok(n) => sent += n,
            // Stuck: the gateway neither reads nor closes.
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (sent, false)
            }
            Err(_) => return (sent, true),
        }
    }
    // Not closed while we wrote: is it closed now?
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return (sent, true),
            Ok(_) => {}
        }
    }
}

/// A head that never ends and bodies that never end: 431, 414 and 413 with
/// a close, and the gateway's memory stays near its size at rest however
/// much the clients send.
#[test]
fn endless_heads_and_bodies_are_refused_with_bounded_memory() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}/{{proxy}}", backend.addr);
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {}}}}}"#,
        proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        )
    );
    let gw = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "262144")
        .start();
    let pid = gw.pid();
    for _ in 0..20 {
        assert_eq!(support::client::get(gw.addr, "/prod/warm").status, 200);
    }
    let rss_before = proc_status_kib(pid, "VmRSS");
    let hwm_before = proc_status_kib(pid, "VmHWM");

    // 431: a header line longer than max_head_bytes (16 KiB), unterminated.
    let mut c = RawClient::connect(gw.addr);
    let mut head = b"GET /prod/x HTTP/1.1\r\nHost: x\r\nX-Endless: ".to_vec();
    head.extend_from_slice(&[b'h'; 20 * 1024]);
    let r = c.request(&head);
    assert_eq!(r.status, 431);
    assert!(c.is_closed(Duration::from_secs(3)));
    // 414: a request line longer than max_uri_bytes (10 KiB), still arriving.
    let mut c = RawClient::connect(gw.addr);
    let mut line = b"GET /prod/".to_vec();
    line.extend_from_slice(&[b'u'; 11_000]);
    let r = c.request(&line);
    assert_eq!(r.status, 414);
    assert!(c.is_closed(Duration::from_secs(3)));
    // 413: a chunked body one byte over max_body_bytes (256 KiB).
    let mut c = RawClient::connect(gw.addr);
    let mut req =
        b"POST /prod/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..4 {
        req.extend_from_slice(b"10000\r\n");
        req.extend_from_slice(&[b'b'; 0x10000]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"1\r\nb\r\n0\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.status, 413);
    assert!(c.is_closed(Duration::from_secs(3)));

    // Floods: 24 endless header lines and 24 endless chunked bodies at
    // once, each offering 32 MiB. What a client gets to write before it
    // sees the close is mostly kernel socket buffers (a few MiB on
    // loopback), not the gateway's.
    const CAP: usize = 32 << 20;
    let addr = gw.addr;
    let mut floods = Vec::new();
    for i in 0..48 {
        floods.push(std::thread::spawn(move || {
            if i % 2 == 0 {
                stream_until_closed(
                    addr,
                    b"GET /prod/x HTTP/1.1\r\nHost: x\r\nX-Endless: ",
                    &[b'h'; 16 * 1024],
                    CAP,
                )
            } else {
                let mut chunk = b"4000\r\n".to_vec();
                chunk.extend_from_slice(&[b'b'; 0x4000]);
                chunk.extend_from_slice(b"\r\n");
                stream_until_closed(
                    addr,
                    b"POST /prod/flood HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
                    &chunk,
                    CAP,
                )
            }
        }));
    }
    for (i, f) in floods.into_iter().enumerate() {
        let (sent, closed) = f.join().expect("flood thread");
        assert!(closed, "flood {i} was never closed ({sent} bytes sent)");
        assert!(sent < CAP, "flood {i}: the gateway accepted {sent} bytes");
    }
    let rss_after = proc_status_kib(pid, "VmRSS");
    let hwm_after = proc_status_kib(pid, "VmHWM");
    // Each client wrote megabytes before it saw the close (hundreds of MiB
    // in all); keeping them would show. The bounds leave room
    // for allocator slack: 48 connections may each legitimately hold up to
    // 16 KiB of head or 256 KiB of body (plus one 64 KiB read).
    assert!(
        hwm_after.saturating_sub(hwm_before) < 64 * 1024,
        "peak RSS grew from {hwm_before} KiB to {hwm_after} KiB"
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 48 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(
        backend
            .recorded()
            .iter()
            .filter(|r| r.target != "/warm")
            .count(),
        0,
        "an oversized request reached the backend"
    );
    assert_eq!(support::client::get(gw.addr, "/prod/after").status, 200);
    // A target of 10,000 bytes is within max_uri_bytes (10 KiB, API
    // Gateway's Regional URL limit): proxied.
    let long = format!("/prod/{}", "u".repeat(10_000 - 6));
    assert_eq!(support::client::get(gw.addr, &long).status, 200);
}

/// A Content-Length under the limit must not make the gateway reserve the
/// whole body before it arrives: 200 connections declaring 8 MiB and sending
/// 100 bytes would otherwise reserve 1.6 GiB of address space, and under an
/// address-space limit (`ulimit -v`, `prlimit --as`) the allocation fails and
/// the process aborts.
#[test]
fn declared_content_length_does_not_reserve_memory_up_front() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}/{{proxy}}", backend.addr);
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {}}}}}"#,
        proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        )
    );
    let mut gw = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "8388608")
        .limit("body_read_timeout_ms", "10000")
        .start();
    let pid = gw.pid();
    assert_eq!(support::client::get(gw.addr, "/prod/warm").status, 200);
    let vm_size = proc_status_kib(pid, "VmSize") * 1024;
    // 512 MiB of headroom: far more than 200 connections need.
    let limit = vm_size + (512 << 20);
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--as={limit}:{limit}"))
        .status()
        .expect("prlimit(1) (util-linux)");
    assert!(status.success());
    let mut open = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(gw.addr).expect("connect");
        let mut req =
            b"POST /prod/big HTTP/1.1\r\nHost: x\r\nContent-Length: 8388608\r\n\r\n".to_vec();
        req.extend_from_slice(&[b'a'; 100]);
        let _ = s.write_all(&req);
        open.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        gw.is_running(),
        "the gateway died:\n{}",
        gw.log().join("\n")
    );
    drop(open);
    assert_eq!(support::client::get(gw.addr, "/prod/after").status, 200);
}

/// With the process's descriptor limit lowered to a few above what it
/// uses, connections beyond it are not accepted (accept fails with EMFILE
/// and the shard backs off); the gateway keeps running, serves the ones it
/// holds, and serves new ones once descriptors are free again.
#[test]
fn file_descriptor_exhaustion_is_survived() {
    let paths = format!(r#"{{"/mock": {{"get": {}}}}}"#, mock_method(200, "ok"));
    let mut gw = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .shards(1)
        .start();
    let pid = gw.pid();
    assert_eq!(support::client::get(gw.addr, "/prod/mock").status, 200);
    let used = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let limit = used + 8;
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={limit}:{limit}"))
        .status()
        .expect("prlimit(1) (util-linux)");
    assert!(status.success());
    let request = b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut held = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(gw.addr).expect("connect (the kernel's backlog)");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let _ = s.write_all(request);
        held.push(s);
    }
    let mut served = 0;
    for s in &mut held {
        let mut buf = [0u8; 512];
        if let Ok(n) = s.read(&mut buf) {
            if buf[..n].starts_with(b"HTTP/1.1 200") {
                served += 1;
            }
        }
    }
    assert!(
        (1..40).contains(&served),
        "{served} of 40 connections served with {limit} descriptors"
    );
    assert!(
        gw.wait_log("accept failed", 1, Duration::from_secs(2)),
        "no accept failure logged:\n{}",
        gw.log().join("\n")
    );
    // The failure recurs every 50 ms while the limit holds; the log gets
    // one line a second (it got twenty).
    let before = gw.log_count("accept failed");
    std::thread::sleep(Duration::from_millis(2000));
    let lines = gw.log_count("accept failed") - before;
    assert!(lines <= 3, "{lines} accept failure lines in 2 s");
    assert!(
        gw.is_running(),
        "the gateway died:\n{}",
        gw.log().join("\n")
    );
    drop(held);
    // The backlog drains (those clients are gone) and new clients are served.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let mut c = TcpStream::connect(gw.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let _ = c.write_all(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut buf = [0u8; 512];
        let n = c.read(&mut buf).unwrap_or(0);
        if buf[..n].starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < until,
            "not served again after descriptors were freed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(gw.is_running());
}

/// RFC 9110 §10.1.1: a server that will refuse the body should answer with
/// the final status instead of inviting the client to send it with 100.
#[test]
fn expect_100_continue_is_not_sent_for_a_body_over_the_limit() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    c.send(
        b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 413, "got {} before the final answer", r.status);
    assert!(c.is_closed(Duration::from_secs(3)));
}

/// A JSONPath built from request data is compiled at render time, on the
/// shard. A path that makes the compiler panic must cost that request an
/// error response, not the shard: with one shard, nothing would answer
/// afterwards.
#[test]
fn a_jsonpath_from_request_data_cannot_take_down_a_shard() {
    let template = serde_json::Value::String(
        "#set($x = $input.json($input.params('p'))){\"statusCode\": 200}".to_owned(),
    );
    let paths = format!(
        r#"{{"/pick": {{"post": {{"x-amazon-apigateway-integration": {{"type": "mock", "requestTemplates": {{"application/json": {template}}}, "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}, "/mock": {{"get": {mock}}}}}"#,
        mock = mock_method(200, "{\"ok\": true}"),
    );
    // p = $['\é'] and $['\u: a fresh gateway for each, since each kills
    // the only shard.
    for query in ["%24%5B%27%5C%C3%A9%27%5D", "%24%5B%27%5Cu"] {
        let gw = Gateway::builder()
            .api("j", &swagger(&paths))
            .stage("j", "prod", &[])
            .default_api("j")
            .start();
        let ask = |req: &[u8]| {
            let mut c = RawClient::connect(gw.addr);
            c.stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            c.send(req);
            c.try_read_response(false)
        };
        let req = format!("POST /prod/pick?p={query} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{{\"a\": 1}}");
        // Whether the path is refused (5xx) or finds nothing (200) is the
        // template engine's business; an answer is the point.
        ask(req.as_bytes()).unwrap_or_else(|e| panic!("p={query}: no answer: {e}"));
        for i in 0..3 {
            let r = ask(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap_or_else(|e| panic!("p={query}: request {i} after it: {e}"));
            assert_eq!(r.status, 200);
        }
    }
}

fn admin_toml(max_connections: u32) -> String {
    format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\nmax_connections = {max_connections}\n\
         [[credentials]]\nname = \"ops\"\ntoken = \"{ADMIN_TOKEN}\"\npermissions = [\"admin\"]\n\
         [[credentials]]\nname = \"readonly\"\ntoken = \"{ADMIN_TOKEN}-ro\"\npermissions = [\"invalidate_cache\"]\n"
    )
}

fn admin_gateway(max_connections: u32) -> Gateway {
    Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/mock": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .stage("a", "prod", &[])
        .default_api("a")
        .extra(&admin_toml(max_connections))
        .start()
}

fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    auth: &str,
    body: &[u8],
) -> support::Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    RawClient::connect(admin).request(&req)
}

/// Local addresses of listening TCP sockets on `port` (from /proc/net/tcp
/// and tcp6), as hex the kernel prints them.
fn listening_addresses(port: u16) -> Vec<String> {
    let mut out = Vec::new();
    for file in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state)) = (cols.get(1), cols.get(3)) else {
                continue;
            };
            let Some((ip, p)) = local.split_once(':') else {
                continue;
            };
            // 0A = LISTEN
            if *state == "0A" && u16::from_str_radix(p, 16).ok() == Some(port) {
                out.push(ip.to_owned());
            }
        }
    }
    out
}

/// The admin listener is on loopback unless configured otherwise: the
/// default of `[admin] listen` is 127.0.0.1:9001 (checked through the
/// config loader: binding the fixed port in a test could collide), and the
/// listener the gateway opens is bound to 127.0.0.1 only, not a wildcard.
#[test]
fn admin_listener_is_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.toml");
    let text = "[server]\nlisten = \"127.0.0.1:0\"\n[admin]\n[[credentials]]\nname = \"ops\"\ntoken = \"0123456789abcdef0123\"\npermissions = [\"admin\"]\n";
    std::fs::write(&path, text).unwrap();
    let raw = tollgate::config::parse_toml(&path, text).expect("config parses");
    let mut diags = tollgate::config::Diagnostics::default();
    let loaded = tollgate::config::read_config(&path, raw, &mut diags, &tollgate::config::FsReader)
        .unwrap_or_else(|| panic!("config refused: {:?}", diags.errors));
    let admin = loaded.settings.admin.expect("[admin] settings");
    assert!(admin.listen.ip().is_loopback(), "{}", admin.listen);
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9001");

    let gw = admin_gateway(8);
    let admin = gw.admin.expect("admin listener address in the log");
    assert!(admin.ip().is_loopback());
    let bound = listening_addresses(admin.port());
    // 0100007F is 127.0.0.1 in /proc/net/tcp's byte order.
    assert_eq!(
        bound,
        vec!["0100007F".to_owned()],
        "admin listener bound to {bound:?}"
    );
}

/// Every admin route, known or not, refuses a call without valid admin
/// credentials with 403 before doing anything (except GET /healthz and
/// /readyz, which are open by design); nothing changes; the admin
/// API is not reachable through the data listener; and framing attacks on
/// the admin listener are refused like on the data path.
#[test]
fn admin_refuses_unauthenticated_calls_everywhere() {
    let gw = admin_gateway(8);
    let admin = gw.admin.expect("admin listener");
    let doc = swagger(r#"{"/x": {"get": {}}}"#);
    let routes: Vec<(&str, &str, &[u8])> = vec![
        ("GET", "/restapis", b""),
        ("POST", "/restapis?mode=import", doc.as_bytes()),
        ("POST", "/restapis", br#"{"name": "x"}"#),
        ("GET", "/restapis/abcdefghij", b""),
        ("PUT", "/restapis/abcdefghij?mode=overwrite", doc.as_bytes()),
        ("DELETE", "/restapis/abcdefghij", b""),
        (
            "POST",
            "/restapis/abcdefghij/deployments",
            br#"{"stageName": "prod"}"#,
        ),
        (
            "PATCH",
            "/restapis/abcdefghij/stages/prod",
            br#"{"patchOperations": []}"#,
        ),
        ("DELETE", "/restapis/abcdefghij/stages/prod/cache/data", b""),
        ("POST", "/prod/@connections/abc", b"hi"),
        ("GET", "/metrics", b""),
        ("POST", "/healthz", b""),
        ("DELETE", "/readyz", b""),
        ("GET", "/no/such/route", b""),
        ("GET", "/", b""),
    ];
    let wrong = "x".repeat(ADMIN_TOKEN.len());
    let bad_auth: Vec<(String, &str)> = vec![
        (String::new(), "MissingAuthenticationTokenException"),
        (
            format!("Authorization: Bearer {wrong}\r\n"),
            "UnrecognizedClientException",
        ),
        (
            format!(
                "Authorization: Bearer {}\r\n",
                &ADMIN_TOKEN[..ADMIN_TOKEN.len() - 1]
            ),
            "UnrecognizedClientException",
        ),
        (
            format!("Authorization: Bearer {ADMIN_TOKEN}x\r\n"),
            "UnrecognizedClientException",
        ),
        (
            format!("Authorization: Bearer {ADMIN_TOKEN}-ro\r\n"),
            "AccessDeniedException",
        ),
        (
            format!("X-Api-Key: {ADMIN_TOKEN}\r\n"),
            "MissingAuthenticationTokenException",
        ),
    ];
    for (method, path, body) in &routes {
        for (auth, error_type) in &bad_auth {
            let r = admin_call(admin, method, path, auth, body);
            assert_eq!(r.status, 403, "{method} {path} with {auth:?}: {}", r.text());
            assert_eq!(
                r.header("x-amzn-ErrorType"),
                Some(*error_type),
                "{method} {path} with {auth:?}"
            );
        }
    }
    // The documented exceptions: GET /healthz and /readyz, for load
    // balancers, which say nothing but that. (Ready once every shard has
    // the configuration: wait for it.)
    let r = admin_call(admin, "GET", "/healthz", "", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let until = Instant::now() + Duration::from_secs(10);
    let ready = loop {
        let r = admin_call(admin, "GET", "/readyz", "", b"");
        if r.status == 200 || Instant::now() > until {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!((ready.status, ready.text().as_str()), (200, "ready\n"));
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let r = admin_call(admin, "GET", "/restapis", &auth, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["item"].as_array().map(Vec::len),
        Some(0),
        "a refused call changed state: {}",
        r.text()
    );
    // The data listener does not serve the admin API, credentials or not.
    let r = get_with(gw.addr, "/restapis", &auth);
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["message"], "Missing Authentication Token");
    // Smuggling at the admin listener.
    let mut c = RawClient::connect(admin);
    let mut req = format!(
        "POST /restapis HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 44\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(b"DELETE /restapis/abcdefghij HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.status, 400);
    assert!(c.is_closed(Duration::from_secs(3)));
    assert!(c.leftover().is_empty());
}

/// Slow clients must not hold the admin listener's connection slots
/// forever: a head trickled a byte at a time should hit a deadline, as on
/// the data listener, so an authenticated call gets through.
#[test]
fn admin_slots_are_not_held_by_slow_clients() {
    let gw = admin_gateway(4);
    let admin = gw.admin.expect("admin listener");
    let mut slow: Vec<Slow> = (0..4).map(|_| Slow::open(admin, SlowKind::Head)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    let until = Instant::now() + Duration::from_secs(25);
    let mut last = 0;
    while Instant::now() < until {
        let now = Instant::now();
        for s in slow.iter_mut() {
            s.poll(now);
        }
        last = admin_call(admin, "GET", "/restapis", &auth, b"").status;
        if last == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the admin API still answers {last} while 4 clients trickle their heads");
}
