//! HTTP/1.1 conformance over a real socket: keep-alive, pipelining, bodies,
//! 100-continue, HEAD, HTTP/1.0, limits, timeouts, and framing attacks that
//! must be refused and never reach the backend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::gateway::{proxy_method, swagger};
use support::{Backend, Gateway, Mode, RawClient};

fn proxy_gateway(backend: &Backend) -> Gateway {
    let uri = format!("http://{}/{{proxy}}", backend.addr);
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {m}}}, "/mock": {{"get": {mock}}}}}"#,
        m = proxy_method(
            &uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        ),
        mock = support::gateway::mock_method(200, "{\"ok\": true}"),
    );
    Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "1000")
        .limit("max_head_bytes", "4096")
        .limit("max_uri_bytes", "1024")
        .limit("header_read_timeout_ms", "500")
        .limit("idle_timeout_ms", "1500")
        .start()
}

#[test]
fn keep_alive_and_pipelining_answer_in_order() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    // Three requests in one write, mixed MOCK and proxied.
    c.send(b"GET /prod/one HTTP/1.1\r\nHost: x\r\n\r\nGET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\nGET /prod/three?x=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let r1 = c.read_response(false);
    let r2 = c.read_response(false);
    let r3 = c.read_response(false);
    assert_eq!(r1.json()["target"], "/one");
    assert_eq!(r2.json()["ok"], true);
    assert_eq!(r3.json()["target"], "/three?x=1");
    // Still open for a fourth.
    let r4 = c.request(b"GET /prod/four HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r4.status, 200);
    assert_eq!(r4.json()["target"], "/four");
    assert!(r4.header("x-amzn-RequestId").is_some());
}

#[test]
fn content_length_and_chunked_bodies_reach_the_backend() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"POST /prod/cl HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.json()["body"], "hello");
    let r = c.request(b"POST /prod/ch HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nTrailer: x\r\n\r\n");
    assert_eq!(r.json()["body"], "abcdefg");
    let last = backend.last();
    assert_eq!(last.header("content-length"), Some("7"));
    assert_eq!(last.header("transfer-encoding"), None);
    // Body split across writes.
    c.send(b"PUT /prod/slow HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nabc");
    std::thread::sleep(Duration::from_millis(50));
    c.send(b"def");
    let r = c.read_response(false);
    assert_eq!(r.json()["body"], "abcdef");
    assert_eq!(r.json()["method"], "PUT");
}

#[test]
fn expect_100_continue() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    c.send(
        b"POST /prod/e HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let interim = c.read_response(false);
    assert_eq!(interim.status, 100);
    c.send(b"body");
    let r = c.read_response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["body"], "body");
    // The backend never sees Expect.
    assert_eq!(backend.last().header("expect"), None);
    // An unroutable request with Expect is refused without asking for the body.
    let mut c = RawClient::connect(gw.addr);
    c.send(
        b"POST /nostage HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    );
    let r = c.read_response(false);
    assert_eq!(r.status, 403);
    assert!(c.is_closed(Duration::from_secs(2)));
}

#[test]
fn head_http10_and_connection_close() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    // HEAD: headers, no body, connection reusable.
    let mut c = RawClient::connect(gw.addr);
    c.send(b"HEAD /prod/h HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some());
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200, "HEAD left bytes on the connection");
    // HEAD does not match a GET-only method (as API Gateway): a 403 whose
    // Content-Length describes the body it did not send.
    c.send(b"HEAD /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 403);
    assert_eq!(r.header("content-length"), Some("42"));
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.text(), "{\"ok\": true}");

    // HTTP/1.0 without keep-alive: answered, then closed.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/mock HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(c.is_closed(Duration::from_secs(2)));
    // HTTP/1.0 with keep-alive stays open, and says so: an HTTP/1.0 client
    // (ApacheBench -k) otherwise waits for the close to end the response.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/mock HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    let r = c.request(b"GET /prod/mock HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));
    // An HTTP/1.1 response says nothing about its connection.
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.header("connection"), None);
    // Connection: close is honoured and announced.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.is_closed(Duration::from_secs(2)));
}

/// Every kind of answer to an HTTP/1.0 keep-alive request carries
/// `Connection: keep-alive` and leaves the connection open: proxied
/// (buffered and streamed), a gateway error and a refused request.
#[test]
fn http10_keep_alive_is_announced_on_every_kind_of_answer() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let big = Backend::start(Mode::Large(600 * 1024));
    let big_uri = format!("http://{}/", big.addr);
    let paths = format!(
        r#"{{"/big": {{"get": {m}}}, "/mock": {{"get": {mock}}}}}"#,
        m = proxy_method(&big_uri, ""),
        mock = support::gateway::mock_method(200, "{}"),
    );
    let gw_big = Gateway::builder()
        .api("b", &swagger(&paths))
        .stage("b", "prod", &[])
        .default_api("b")
        .start();
    let ka = "HTTP/1.0\r\nConnection: keep-alive\r\n";
    let cases: [(&Gateway, String, u16); 4] = [
        (&gw, format!("GET /prod/x {ka}\r\n"), 200),
        (&gw, format!("GET /nostage {ka}\r\n"), 403),
        (
            &gw,
            format!(
                "POST /prod/x {ka}Content-Length: 2000\r\n\r\n{}",
                "a".repeat(2000)
            ),
            413,
        ),
        (&gw_big, format!("GET /prod/big {ka}\r\n"), 200),
    ];
    for (g, req, status) in cases {
        let mut c = RawClient::connect(g.addr);
        let r = c.request(req.as_bytes());
        assert_eq!(r.status, status, "{req:.40}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{req:.40}");
        assert_eq!(r.header("transfer-encoding"), None, "{req:.40}");
        // Still open: a second request on it is answered.
        let again = c.request(format!("GET /prod/mock {ka}\r\n").as_bytes());
        assert_eq!(again.status, 200, "{req:.40}");
    }
    let r = {
        let mut c = RawClient::connect(gw_big.addr);
        c.request(format!("GET /prod/big {ka}\r\n").as_bytes())
    };
    assert_eq!(r.body.len(), 600 * 1024);
}

#[test]
fn curl_talks_to_the_gateway() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-H",
            "Transfer-Encoding: chunked",
            "--data-binary",
            "from curl",
            &gw.url("/prod/curl"),
        ])
        .output()
        .expect("curl must be installed");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["body"], "from curl");
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "-0",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &gw.url("/prod/mock"),
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");
}

#[test]
fn limits_413_414_431() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    // 413 by Content-Length, before reading the body.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"POST /prod/big HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n");
    assert_eq!(r.status, 413);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("RequestTooLongException")
    );
    assert!(c.is_closed(Duration::from_secs(2)));
    // 413 for a chunked body that grows past the limit.
    let mut c = RawClient::connect(gw.addr);
    let mut req =
        b"POST /prod/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..3 {
        req.extend_from_slice(b"190\r\n");
        req.extend_from_slice(&[b'x'; 400]);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = c.request(&req);
    assert_eq!(r.status, 413);
    // 413 as soon as a chunk size takes the body past the limit, without
    // waiting for the chunk's bytes (0x3e9 = 1001, 3 bytes sent).
    let mut c = RawClient::connect(gw.addr);
    let start = std::time::Instant::now();
    let r = c.request(
        b"POST /prod/big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\nabc",
    );
    assert_eq!(r.status, 413);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // 414
    let long = format!("GET /prod/{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(2000));
    let mut c = RawClient::connect(gw.addr);
    assert_eq!(c.request(long.as_bytes()).status, 414);
    assert!(c.is_closed(Duration::from_secs(2)));
    // 431
    let big = format!(
        "GET /prod/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(5000)
    );
    let mut c = RawClient::connect(gw.addr);
    assert_eq!(c.request(big.as_bytes()).status, 431);
    assert!(c.is_closed(Duration::from_secs(2)));
    assert_eq!(
        backend.request_count(),
        0,
        "oversized requests reached the backend"
    );
}

#[test]
fn header_read_timeout_and_idle_timeout_close_connections() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    // Slowloris: a head that never completes gets 408 and a close after
    // the header timeout (500 ms here).
    let mut c = RawClient::connect(gw.addr);
    let start = Instant::now();
    c.send(b"GET /prod/x HTTP/1.1\r\nHost: x\r\n");
    let r = c.read_response(false);
    assert_eq!(r.status, 408);
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    assert!(c.is_closed(Duration::from_secs(2)));
    // Trickling bytes does not extend the header deadline.
    let mut c = RawClient::connect(gw.addr);
    let start = Instant::now();
    let mut closed = false;
    for b in b"GET /prod/x HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        if std::io::Write::write_all(&mut c.stream, &[*b]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(60));
    }
    assert!(closed || c.is_closed(Duration::from_secs(2)));
    assert!(start.elapsed() < Duration::from_secs(4));
    // Idle keep-alive connection: closed after the idle timeout (1.5 s).
    let mut c = RawClient::connect(gw.addr);
    assert_eq!(
        c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        200
    );
    let start = Instant::now();
    assert!(c.is_closed(Duration::from_secs(5)));
    let idle = start.elapsed();
    assert!(
        idle >= Duration::from_millis(1200) && idle < Duration::from_secs(4),
        "{idle:?}"
    );
}

/// Framing attacks: each gets the status, the connection is closed, and
/// the backend receives nothing.
#[test]
fn framing_attacks_are_refused_and_never_forwarded() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let cases: &[(&str, &[u8], u16)] = &[
        ("CL+TE", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE+CL", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400),
        ("duplicate CL", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", 400),
        ("different CLs", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
        ("CL list", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4, 4\r\n\r\nabcd", 400),
        ("CL sign", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd", 400),
        ("CL negative", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400),
        ("CL inner space", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nabcd", 400),
        ("CL overflow", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
        ("space before colon", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length : 4\r\n\r\nabcd", 400),
        ("TE space before colon", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
        ("obs-fold", b"GET /prod/a HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n", 400),
        ("bare CR", b"GET /prod/a HTTP/1.1\r\nHost: x\r\nX-A: 1\r2\r\n\r\n", 400),
        ("NUL in value", b"GET /prod/a HTTP/1.1\r\nHost: x\r\nX-A: 1\x002\r\n\r\n", 400),
        ("NUL in target", b"GET /prod/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("chunk size not hex", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", 400),
        ("chunk size overflow", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nabc\r\n0\r\n\r\n", 400),
        ("chunk bad terminator", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n", 400),
        ("chunk LF only", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n", 400),
        ("trailer without colon", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nno-colon\r\n\r\n", 400),
        ("trailer space before colon", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX : 1\r\n\r\n", 400),
        ("chunk size with sign", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", 400),
        ("TE last not chunked", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
        ("TE unknown coding", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        ("TE identity before chunked", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 501),
        ("TE xchunked", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400),
        ("TE twice", b"POST /prod/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("TE in HTTP/1.0", b"POST /prod/a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        ("missing Host", b"GET /prod/a HTTP/1.1\r\n\r\n", 400),
        ("duplicate Host", b"GET /prod/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        ("Host with a space", b"GET /prod/a HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
        ("Host with userinfo", b"GET /prod/a HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
        ("Host with a path", b"GET /prod/a HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ("empty Host", b"GET /prod/a HTTP/1.1\r\nHost:\r\n\r\n", 400),
        ("empty Host after spaces", b"GET /prod/a HTTP/1.1\r\nHost:   \r\n\r\n", 400),
        ("Host with a port that is not a number", b"GET /prod/a HTTP/1.1\r\nHost: a:abc\r\n\r\n", 400),
        ("Host with two ports", b"GET /prod/a HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400),
        ("Host with a bracket outside a literal", b"GET /prod/a HTTP/1.1\r\nHost: a]b\r\n\r\n", 400),
        ("Host with a bad percent-encoding", b"GET /prod/a HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400),
        ("absolute-form authority with a quote", b"GET http://a\"b/prod/a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("absolute-form authority with userinfo", b"GET http://u@a/prod/a HTTP/1.1\r\nHost: x\r\n\r\n", 400),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
        ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    ];
    for (name, bytes, want) in cases {
        let mut c = RawClient::connect(gw.addr);
        c.send(bytes);
        let r = c
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{name}: no response ({e})"));
        assert_eq!(r.status, *want, "{name}");
        assert!(
            c.is_closed(Duration::from_secs(2)),
            "{name}: connection left open"
        );
    }
    assert_eq!(
        backend.request_count(),
        0,
        "a framing attack reached the backend: {:?}",
        backend.recorded()
    );
    // The gateway is still serving.
    let mut c = RawClient::connect(gw.addr);
    assert_eq!(
        c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        200
    );
}

#[test]
fn smuggled_second_request_is_not_forwarded() {
    // A classic CL.TE payload: if the gateway honoured CL and the backend
    // TE (or the other way round), the "GET /smuggled" would reach it.
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    c.send(b"POST /prod/a HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.read_response(false).status, 400);
    assert!(c.is_closed(Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(100));
    assert!(backend
        .recorded()
        .iter()
        .all(|r| !r.target.contains("smuggled")));
}

#[test]
fn many_bad_connections_leak_no_slots() {
    // With 8 connection slots per shard, 100 refused or abandoned
    // connections must not use them up.
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}/x", backend.addr);
    let paths = format!(r#"{{"/x": {{"get": {}}}}}"#, proxy_method(&uri, ""));
    let gw = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_connections_per_shard", "8")
        .limit("header_read_timeout_ms", "300")
        .start();
    for i in 0..100 {
        let mut c = RawClient::connect(gw.addr);
        match i % 3 {
            0 => {
                c.send(b"GET /prod/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
                let _ = c.try_read_response(false);
            }
            1 => {
                c.send(b"GET /prod/x HTTP/1.1\r\nHost: x\r\n\r\n");
                let _ = c.try_read_response(false);
            }
            _ => drop(c),
        }
    }
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
}

/// A refused request whose small body arrived with its head: the body is
/// dropped and the connection stays open for the next request; a body
/// still on its way closes the connection (it cannot be told from a
/// request otherwise).
#[test]
fn a_refused_request_with_its_whole_body_keeps_the_connection() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let mut c = RawClient::connect(gw.addr);
    // POST to a GET-only MOCK: 403 Missing Authentication Token.
    let r = c.request(b"POST /prod/mock HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("connection"), None);
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    // The body is data even when it looks like a request: never run.
    let r = c.request(
        b"POST /prod/mock HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\n\r\nGET /prod/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(r.status, 403);
    let r = c.request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(backend
        .recorded()
        .iter()
        .all(|r| !r.target.contains("smuggled")));
    // Half a body: the answer closes the connection.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"POST /prod/mock HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("connection"), Some("close"));
}

/// A client that writes its whole upload before reading (Node's `http`,
/// Python's `urllib`) gets the early answer (413 over the body limit, 403
/// for no route): the gateway closes in stages, reading and dropping the
/// rest of the declared body, instead of closing with unread data, which
/// resets the connection and loses the answer. (A client that sends more
/// than it declared, or than a body may be, is cut:
/// tests/security.rs, `endless_heads_and_bodies_...`.)
#[test]
fn an_early_answer_reaches_a_client_still_uploading() {
    let backend = Backend::start(Mode::Echo);
    let gw = proxy_gateway(&backend);
    let body = vec![b'a'; 8 << 20];
    let cases: [(String, u16); 2] = [
        (
            format!(
                "POST /prod/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            413,
        ),
        (
            format!(
                "POST /nostage HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                body.len()
            ),
            403,
        ),
    ];
    for (head, status) in cases {
        for _ in 0..3 {
            let what = format!("{head:.30}");
            let text = support::client::upload_then_read(gw.addr, head.as_bytes(), &body, &what);
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} ")),
                "{head:.30}: {text:.80}"
            );
        }
    }
    assert_eq!(backend.request_count(), 0);

    // A chunked upload has no declared length: up to four times the body
    // limit is read and dropped, so an upload of 3.5 times the limit
    // (4 MiB here) still gets its 413.
    let big = Gateway::builder()
        .api("a", &swagger(r#"{"/m": {"post": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}, "responses": {"default": {"statusCode": "200"}}}}}}"#))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "4194304")
        .start();
    let chunked = support::client::chunked_body(b'c', 14 << 20);
    for _ in 0..3 {
        let text = support::client::upload_then_read(
            big.addr,
            b"POST /prod/m HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            &chunked,
            "chunked 14 MiB",
        );
        assert!(text.starts_with("HTTP/1.1 413 "), "{text:.80}");
    }
}
