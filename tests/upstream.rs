//! Backend failures and connection reuse: timeouts (504 within
//! timeoutInMillis + a margin), refused, reset, garbage, keep-alive reuse,
//! the one retry of an idempotent request on a stale pooled connection,
//! and large bodies streamed both ways.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use support::client::{get, send};
use support::gateway::swagger;
use support::{Backend, Gateway, Mode, RawClient};

fn gateway_to(addr: &str, timeout_ms: u64) -> Gateway {
    let paths = format!(
        r#"{{"/{{proxy+}}": {{"x-amazon-apigateway-any-method": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "ANY", "uri": "http://{addr}/{{proxy}}", "timeoutInMillis": {timeout_ms}}}}}}}}}"#
    );
    Gateway::builder()
        .api("u", &swagger(&paths))
        .stage("u", "prod", &[])
        .default_api("u")
        .start()
}

#[test]
fn a_backend_that_never_answers_times_out_with_504() {
    let backend = Backend::start(Mode::NeverAnswer);
    let gw = gateway_to(&backend.addr.to_string(), 300);
    let start = Instant::now();
    let r = get(gw.addr, "/prod/x");
    let took = start.elapsed();
    assert_eq!(r.status, 504);
    assert_eq!(r.json()["message"], "Endpoint request timed out");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_millis(1300),
        "{took:?}"
    );
}

#[test]
fn a_slow_backend_within_the_timeout_is_fine() {
    let backend = Backend::start(Mode::Slow(Duration::from_millis(150)));
    let gw = gateway_to(&backend.addr.to_string(), 2000);
    let r = get(gw.addr, "/prod/x");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "slow");
    backend.set_mode(Mode::Slow(Duration::from_millis(1500)));
    let gw = gateway_to(&backend.addr.to_string(), 400);
    let start = Instant::now();
    assert_eq!(get(gw.addr, "/prod/x").status, 504);
    assert!(start.elapsed() < Duration::from_millis(1400));
}

#[test]
fn refused_reset_and_garbage_are_504_integration_failure() {
    // Refused: a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gw = gateway_to(&format!("127.0.0.1:{port}"), 2000);
    let r = get(gw.addr, "/prod/x");
    assert_eq!(r.status, 504);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
    assert_eq!(
        r.json()["message"],
        "Network error communicating with endpoint"
    );

    for mode in [Mode::Garbage, Mode::CloseWithoutAnswer] {
        let backend = Backend::start(mode.clone());
        let gw = gateway_to(&backend.addr.to_string(), 2000);
        let r = get(gw.addr, "/prod/x");
        assert_eq!(r.status, 504, "{mode:?}");
        assert_eq!(r.json()["message"], "Internal server error", "{mode:?}");
    }
}

#[test]
fn a_reset_mid_body_before_the_client_saw_anything_is_504() {
    let backend = Backend::start(Mode::ResetMidBody);
    let gw = gateway_to(&backend.addr.to_string(), 2000);
    // The body is small enough to buffer: the failure is seen before any
    // byte goes to the client, so the client gets a clean 504.
    let r = get(gw.addr, "/prod/x");
    assert_eq!(r.status, 504);
    // The gateway keeps serving.
    backend.set_mode(Mode::Echo);
    assert_eq!(get(gw.addr, "/prod/x").status, 200);
}

#[test]
fn backend_connections_are_reused() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway_to(&backend.addr.to_string(), 2000);
    let mut c = RawClient::connect(gw.addr);
    for i in 0..20 {
        let r = c.request(format!("GET /prod/r{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(r.status, 200);
    }
    // Separate client connections share the pool too.
    for _ in 0..10 {
        assert_eq!(get(gw.addr, "/prod/again").status, 200);
    }
    assert_eq!(backend.request_count(), 30);
    assert_eq!(
        backend.connection_count(),
        1,
        "one keep-alive connection should serve every request"
    );
}

#[test]
fn stale_pooled_connections_are_retried_for_idempotent_methods_only() {
    // The backend answers and then closes each connection without saying
    // so: every pooled connection is stale by the next request.
    let backend = Backend::start(Mode::RespondThenClose);
    let gw = gateway_to(&backend.addr.to_string(), 2000);
    assert_eq!(get(gw.addr, "/prod/a").status, 200);
    assert_eq!(backend.connection_count(), 1);
    // Stale once the backend has closed it (counted, not timed).
    support::wait_until(
        "the backend to close the first connection",
        Duration::from_secs(30),
        || backend.closed_count() == 1,
    );
    // GET: the stale connection fails before any response byte; retried
    // once on a new connection.
    let r = get(gw.addr, "/prod/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.connection_count(), 2);
    // The check below sees the close only once the backend has closed the
    // pooled connection: wait for that (a fixed sleep could be too short).
    support::wait_until(
        "the backend to close the second connection",
        Duration::from_secs(30),
        || backend.closed_count() == 2,
    );
    // POST may not be sent twice, so the pooled connection is checked
    // before it is used: the backend's close is seen and the POST goes on
    // a new connection, once (it was a 504 that never reached the backend
    // whenever a backend's idle timeout was shorter than the pool's).
    let r = send(gw.addr, "POST", "/prod/c", "", b"x");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.connection_count(), 3);
    let posts = || {
        backend
            .recorded()
            .iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    assert_eq!(posts(), 1);

    // A POST that fails after it was sent is not sent again: 504, and the
    // backend saw it once.
    backend.set_mode(Mode::Echo);
    assert_eq!(get(gw.addr, "/prod/d").status, 200);
    let before = backend.connection_count();
    backend.set_mode(Mode::CloseWithoutAnswer);
    let r = send(gw.addr, "POST", "/prod/e", "", b"y");
    assert_eq!(r.status, 504);
    assert_eq!(posts(), 2, "the failed POST reached the backend once");
    assert_eq!(
        backend.connection_count(),
        before,
        "no second attempt for a POST"
    );

    // A retry that fails too is a 504, after exactly one new connection.
    backend.set_mode(Mode::Echo);
    assert_eq!(get(gw.addr, "/prod/f").status, 200);
    let before = backend.connection_count();
    backend.set_mode(Mode::CloseWithoutAnswer);
    assert_eq!(get(gw.addr, "/prod/g").status, 504);
    assert_eq!(backend.connection_count(), before + 1);
}

#[test]
fn mapped_framing_headers_never_reach_a_streamed_or_head_response() {
    // An HTTP integration whose response parameters set framing and
    // connection headers: Tollgate frames the response itself, also when
    // the body is streamed (over `buffer_response_bytes`) or for HEAD.
    let backend = Backend::start(Mode::Large(300_000));
    let uri = format!("http://{}/big", backend.addr);
    let paths = format!(
        r#"{{"/big": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "GET", "uri": "{uri}",
          "responses": {{"default": {{"statusCode": "200", "responseParameters": {{
            "method.response.header.Content-Length": "'5'",
            "method.response.header.Transfer-Encoding": "'gzip'",
            "method.response.header.Connection": "'close'",
            "method.response.header.X-Kept": "'yes'"}}}}}}}}}},
          "head": {{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "HEAD", "uri": "{uri}",
          "responses": {{"default": {{"statusCode": "200", "responseParameters": {{
            "method.response.header.Content-Length": "'5'",
            "method.response.header.X-Kept": "'yes'"}}}}}}}}}}}}}}"#
    );
    let gw = Gateway::builder()
        .api("b", &support::gateway::swagger(&paths))
        .stage("b", "prod", &[])
        .default_api("b")
        .start();
    let mut c = RawClient::connect(gw.addr);
    for _ in 0..2 {
        let r = c.request(b"GET /prod/big HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-kept"), Some("yes"));
        assert_eq!(r.header_count("content-length"), 1);
        assert_eq!(r.header("content-length"), Some("300000"));
        assert_eq!(r.header("transfer-encoding"), None);
        assert_eq!(r.header("connection"), None);
        assert_eq!(r.body.len(), 300_000);
    }
    c.send(b"HEAD /prod/big HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-kept"), Some("yes"));
    assert_eq!(r.header_count("content-length"), 1);
    assert!(r.body.is_empty());
    // Still in step after the HEAD.
    let r = c.request(b"GET /prod/big HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.body.len(), 300_000);
}

#[test]
fn large_and_chunked_backend_bodies_stream_through() {
    let backend = Backend::start(Mode::Large(3 * 1024 * 1024));
    let gw = gateway_to(&backend.addr.to_string(), 5000);
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/big HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 3 * 1024 * 1024);
    assert!(r
        .body
        .iter()
        .enumerate()
        .all(|(i, b)| *b == b'a' + (i % 26) as u8));
    assert_eq!(r.header("content-length"), Some("3145728"));
    // Same connection still usable.
    backend.set_mode(Mode::Chunked(vec![
        b"hello ".to_vec(),
        vec![b'z'; 300_000],
        b" end".to_vec(),
    ]));
    let r = c.request(b"GET /prod/chunked HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 6 + 300_000 + 4);
    assert!(r.body.starts_with(b"hello ") && r.body.ends_with(b" end"));
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    // An HTTP/1.0 client gets a close-delimited body.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/chunked HTTP/1.0\r\n\r\n");
    assert_eq!(r.body.len(), 6 + 300_000 + 4);
    // Small chunked bodies are buffered and sent with a length.
    backend.set_mode(Mode::Chunked(vec![b"a".to_vec(), b"b".to_vec()]));
    let r = get(gw.addr, "/prod/small");
    assert_eq!(r.text(), "ab");
    assert_eq!(r.header("content-length"), Some("2"));
}

#[test]
fn backend_host_names_resolve_through_dns_and_no_content_has_no_length() {
    let backend = Backend::start(Mode::Fixed {
        status: 204,
        headers: vec![],
        body: vec![],
    });
    let uri = format!("http://localhost:{}/x", backend.addr.port());
    let paths = format!(
        r#"{{"/x": {{"get": {}}}}}"#,
        support::gateway::proxy_method(&uri, "")
    );
    let gw = Gateway::builder()
        .api("d", &swagger(&paths))
        .stage("d", "prod", &[])
        .default_api("d")
        .start();
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    assert_eq!(
        backend.last().header("host"),
        Some(format!("localhost:{}", backend.addr.port()).as_str())
    );
    // The connection stays in step after a bodiless response.
    let r = c.request(b"GET /prod/x HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 204);
}

#[test]
fn unresolvable_backend_host_is_504() {
    let paths = r#"{"/x": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET", "uri": "http://no-such-host.invalid/x"}}}}"#;
    let gw = Gateway::builder()
        .api("d", &swagger(paths))
        .stage("d", "prod", &[])
        .default_api("d")
        .start();
    let r = get(gw.addr, "/prod/x");
    assert_eq!(r.status, 504);
    assert_eq!(
        r.json()["message"],
        "Network error communicating with endpoint"
    );
}

#[test]
fn missing_stage_variable_answers_500_in_that_stage_only() {
    let backend = Backend::start(Mode::Echo);
    let paths = r#"{"/x": {"get": {"x-amazon-apigateway-integration": {"type": "http_proxy", "httpMethod": "GET", "uri": "http://${stageVariables.host}/x"}}}}"#;
    let gw = Gateway::builder()
        .api("v", &swagger(paths))
        .stage("v", "good", &[("host", &backend.addr.to_string())])
        .stage("v", "bad", &[])
        .default_api("v")
        .start();
    assert_eq!(get(gw.addr, "/good/x").status, 200);
    let r = get(gw.addr, "/bad/x");
    assert_eq!(r.status, 500);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
}

/// One request head read byte by byte (nothing beyond it); `None` if the
/// connection ends first.
fn read_head(s: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(1) => head.push(b[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

/// A one-thread backend on 127.0.0.1:0: each connection is handed, with
/// its first request head, to `serve` (which writes what it likes).
fn raw_backend(
    serve: impl Fn(&mut std::net::TcpStream, &str) + Send + 'static,
) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            if let Some(head) = read_head(&mut s) {
                serve(&mut s, &head);
            }
        }
    });
    addr
}

/// A keep-alive backend on `raw_backend`: each request's path goes to
/// `serve` (which writes what it likes; false ends the connection); paths
/// it leaves to the default get `200 answer for {path}`.
fn keep_alive_backend(
    serve: impl Fn(&mut std::net::TcpStream, &str) -> Option<bool> + Send + 'static,
) -> std::net::SocketAddr {
    use std::io::Write;
    raw_backend(move |s, first| {
        let mut head = first.to_owned();
        loop {
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let go_on = serve(s, &path).unwrap_or_else(|| {
                let body = format!("answer for {path}");
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).is_ok()
            });
            if !go_on {
                return;
            }
            let Some(next) = read_head(s) else { return };
            head = next;
        }
    })
}

/// Interim responses are skipped, a few of them: `100 Continue` and two
/// `103 Early Hints` before the answer pass; a backend that sends `100
/// Continue` without end is an integration failure at once (it used to
/// keep the shard busy, serving nobody, with the deadline never firing).
#[test]
fn interim_responses_are_bounded() {
    use std::io::Write;
    let addr = raw_backend(|s, head| {
        if head.starts_with("GET /endless") {
            let burst = "HTTP/1.1 100 Continue\r\n\r\n".repeat(1000);
            while s.write_all(burst.as_bytes()).is_ok() {}
        } else {
            let _ = s.write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 103 Early Hints\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            );
        }
    });
    let gw = gateway_to(&addr.to_string(), 20_000);
    let r = get(gw.addr, "/prod/hints");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "ok");
    let start = Instant::now();
    let r = get(gw.addr, "/prod/endless");
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(get(gw.addr, "/prod/hints").status, 200);
}

/// A backend that writes its response and closes at once: the data and
/// its FIN reach the gateway together. A close-delimited body is a whole
/// response (RFC 9112 6.3), a body cut short a failure: both answered at
/// once, not after the integration timeout.
#[test]
fn a_backend_close_right_after_its_data_is_seen_at_once() {
    use std::io::Write;
    let addr = raw_backend(|s, head| {
        let reply: &[u8] = if head.starts_with("GET /short") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nbody-until-close"
        };
        let _ = s.write_all(reply);
    });
    let gw = gateway_to(&addr.to_string(), 10_000);
    for i in 0..40 {
        let start = Instant::now();
        let r = get(gw.addr, "/prod/whole");
        assert_eq!(r.status, 200, "request {i}: {}", r.text());
        assert_eq!(r.text(), "body-until-close");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "request {i} took {:?}",
            start.elapsed()
        );
        let start = Instant::now();
        let r = get(gw.addr, "/prod/short");
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "truncated request {i} took {:?}",
            start.elapsed()
        );
        // The head went out with a 200 before the body broke off, or the
        // failure was answered as a 504: never a wait for the timeout.
        assert!(r.status == 200 || r.status == 504, "{}", r.status);
    }
}

/// Bytes a pooled backend connection sends unasked while idle (a late or
/// injected response) are never read as the next client's answer: the
/// connection is dropped.
#[test]
fn unasked_bytes_on_a_pooled_connection_never_reach_another_client() {
    use std::io::Write;
    let addr = keep_alive_backend(|s, path| {
        if !path.starts_with("/poison") {
            return None;
        }
        let body = format!("answer for {path}");
        let reply = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        if s.write_all(reply.as_bytes()).is_err() {
            return Some(false);
        }
        std::thread::sleep(Duration::from_millis(300));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nPOISONED");
        Some(true)
    });
    let gw = gateway_to(&addr.to_string(), 5_000);
    for method in ["GET", "HEAD", "DELETE"] {
        let r = get(gw.addr, "/prod/poison");
        assert_eq!(r.text(), "answer for /poison");
        std::thread::sleep(Duration::from_millis(600));
        for i in 0..6 {
            let r = send(gw.addr, method, &format!("/prod/echo{i}"), "", b"");
            assert_eq!(r.status, 200, "{method} {i}");
            if method != "HEAD" {
                assert_eq!(r.text(), format!("answer for /echo{i}"), "{method} {i}");
            }
        }
    }
}

/// HEAD through HTTP_PROXY to a backend that frames its GET body as
/// chunked: the answer carries no Content-Length (it would claim `0`), and
/// the connection stays in step.
#[test]
fn head_to_a_chunked_backend_claims_no_length() {
    let backend = Backend::start(Mode::Chunked(vec![b"abc".to_vec(), b"def".to_vec()]));
    let gw = gateway_to(&backend.addr.to_string(), 2000);
    let mut c = RawClient::connect(gw.addr);
    c.send(b"HEAD /prod/h HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), None, "{:?}", r.headers);
    let r = c.request(b"GET /prod/g HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "abcdef");
}

/// A backend that sends a 204 with a declared body (which RFC 9110 §8.6
/// forbids) and then, a little later, the body: the connection is not
/// reused, so those bytes are never read as the next request's answer.
#[test]
fn a_204_that_declares_a_body_is_not_reused() {
    use std::io::Write;
    let addr = keep_alive_backend(|s, path| {
        if !path.starts_with("/nocontent") {
            return None;
        }
        let body = "{\"sent\": \"after a 204, against the rules\"}";
        let reply = format!(
            "HTTP/1.1 204 No Content\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if s.write_all(reply.as_bytes()).is_err() {
            return Some(false);
        }
        std::thread::sleep(Duration::from_millis(150));
        Some(s.write_all(body.as_bytes()).is_ok())
    });
    let gw = gateway_to(&addr.to_string(), 3_000);
    let mut c = RawClient::connect(gw.addr);
    for i in 0..3 {
        let r = c.request(b"GET /prod/nocontent HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.status, 204, "{i}");
        let r = c.request(format!("GET /prod/next{i} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(
            (r.status, r.text()),
            (200, format!("answer for /next{i}")),
            "{i}"
        );
    }
}

/// Backend response heads the gateway must not pass on as they are: its own
/// `x-amzn-RequestId` / `x-amzn-ErrorType` (kept remapped, never next to
/// the gateway's), a transfer coding other than chunked (an integration
/// failure: the body would reach the client still coded), and
/// Transfer-Encoding in HTTP/1.0 (decoded, then the connection is closed).
#[test]
fn backend_heads_that_are_not_passed_on_as_they_are() {
    use std::io::Write;
    let addr = keep_alive_backend(|s, path| {
        let reply: &[u8] = match path {
            "/ids" => b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: spoofed\r\nx-amzn-ErrorType: Spoof\r\nContent-Length: 2\r\n\r\nok",
            "/gzip" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            "/old" => b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nold\r\n0\r\n\r\n",
            _ => return None,
        };
        Some(s.write_all(reply).is_ok())
    });
    let gw = gateway_to(&addr.to_string(), 3_000);
    let r = get(gw.addr, "/prod/ids");
    assert_eq!(r.status, 200);
    let ids: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-amzn-requestid"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(ids.len(), 1, "{:?}", r.headers);
    assert_ne!(ids[0], "spoofed");
    assert_eq!(
        r.header("x-amzn-Remapped-x-amzn-RequestId"),
        Some("spoofed")
    );
    assert_eq!(r.header("x-amzn-ErrorType"), None);
    assert_eq!(r.header("x-amzn-Remapped-x-amzn-ErrorType"), Some("Spoof"));
    let r = get(gw.addr, "/prod/gzip");
    assert_eq!(r.status, 504, "{}", r.text());
    let mut c = RawClient::connect(gw.addr);
    for _ in 0..3 {
        let r = c.request(b"GET /prod/old HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((r.status, r.text()), (200, "old".to_owned()));
    }
}
