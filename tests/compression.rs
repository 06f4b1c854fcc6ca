//! Response compression (`x-amazon-apigateway-minimum-compression-size`,
//! API Gateway's `minimumCompressionSize`) over real sockets: MOCK and
//! proxied bodies, streamed large bodies, what is left alone (small bodies,
//! already-encoded responses, HEAD, clients that do not ask), curl's
//! `--compressed`, and the admin API's setting.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Read;

use support::gateway::{mock_method, proxy_method, swagger_with, ADMIN_TOKEN};
use support::{Backend, Gateway, Mode, RawClient};

const MIN: usize = 1024;

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::ZlibDecoder::new(data)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// `/big` and `/small` MOCK (2,000 and 100 bytes), `/encoded` proxied to a
/// backend that gzips itself, `/large` proxied to a 600 KiB body (streamed);
/// each for GET and HEAD; `/hlarge`, a HEAD whose HTTP integration GETs
/// the 600 KiB body.
fn gateway(encoded: &Backend, large: &Backend) -> Gateway {
    let big = "x".repeat(2000);
    let small = "y".repeat(100);
    let http_get = format!(
        r#"{{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "GET", "uri": "http://{}/", "responses": {{"default": {{"statusCode": "200"}}}}}}}}"#,
        large.addr
    );
    let paths = format!(
        r#"{{"/big": {{"get": {b}, "head": {b}}}, "/small": {{"get": {s}, "head": {s}}}, "/encoded": {{"get": {e}, "head": {e}}}, "/large": {{"get": {l}, "head": {l}}}, "/hlarge": {{"head": {h}}}}}"#,
        b = mock_method(200, &big),
        s = mock_method(200, &small),
        e = proxy_method(&format!("http://{}/", encoded.addr), ""),
        l = proxy_method(&format!("http://{}/", large.addr), ""),
        h = http_get,
    );
    let doc = swagger_with(
        &paths,
        &format!(r#""x-amazon-apigateway-minimum-compression-size": {MIN}"#),
    );
    Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .start()
}

fn get(gw: &Gateway, path: &str, headers: &str) -> support::Response {
    RawClient::connect(gw.addr).request(
        format!("GET {path} HTTP/1.1\r\nHost: a\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
}

#[test]
fn bodies_are_compressed_as_the_client_asks_and_left_alone_otherwise() {
    let pre = flate2::read::GzEncoder::new(&b"already"[..], flate2::Compression::fast());
    let mut pre_gz = Vec::new();
    std::io::BufReader::new(pre)
        .read_to_end(&mut pre_gz)
        .unwrap();
    let encoded = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Content-Encoding".into(), "gzip".into())],
        body: [pre_gz.clone(), vec![0u8; 2048]].concat(),
    });
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&encoded, &large);
    let big = "x".repeat(2000);

    // gzip: compressed, said so, and the length is the compressed one.
    let r = get(&gw, "/prod/big", "Accept-Encoding: gzip, deflate, br\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
    assert!(r.body.len() < 200, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), big.as_bytes());
    // deflate (zlib) when it is preferred.
    let r = get(&gw, "/prod/big", "Accept-Encoding: gzip;q=0.5, deflate\r\n");
    assert_eq!(r.header("content-encoding"), Some("deflate"));
    assert_eq!(inflate(&r.body), big.as_bytes());
    // Not compressed: no Accept-Encoding, a first choice not supported,
    // identity, a body under the minimum.
    for (path, headers) in [
        ("/prod/big", ""),
        ("/prod/big", "Accept-Encoding: br, gzip;q=0.9\r\n"),
        ("/prod/big", "Accept-Encoding: identity\r\n"),
        ("/prod/small", "Accept-Encoding: gzip\r\n"),
    ] {
        let r = get(&gw, path, headers);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), None, "{path} {headers}");
        assert!(
            r.body.len() == 2000 || r.body.len() == 100,
            "{path} {headers}"
        );
    }
    // An integration response already encoded passes as it is.
    let r = get(&gw, "/prod/encoded", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header_count("content-encoding"), 1);
    assert_eq!(&r.body[..pre_gz.len()], &pre_gz[..]);
}

#[test]
fn streamed_bodies_are_compressed_as_they_stream() {
    let encoded = Backend::start(Mode::Echo);
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&encoded, &large);
    let expected: Vec<u8> = (0..600 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
    // HTTP/1.1: chunked, gzip.
    let r = get(&gw, "/prod/large", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-length"), None);
    assert_eq!(r.header("transfer-encoding"), Some("chunked"));
    assert!(r.body.len() < 64 * 1024, "{} bytes", r.body.len());
    assert_eq!(gunzip(&r.body), expected);
    // HTTP/1.0: delimited by the close.
    let mut c = RawClient::connect(gw.addr);
    c.send(b"GET /prod/large HTTP/1.0\r\nAccept-Encoding: deflate\r\n\r\n");
    let r = c.read_response(false);
    assert_eq!(r.header("content-encoding"), Some("deflate"));
    assert_eq!(r.header("transfer-encoding"), None);
    assert_eq!(inflate(&r.body), expected);
    // Without Accept-Encoding: the backend's bytes and length.
    let r = get(&gw, "/prod/large", "");
    assert_eq!(r.header("content-length"), Some("614400"));
    assert_eq!(r.body, expected);
}

#[test]
fn curl_compressed_reads_the_compressed_answer() {
    let encoded = Backend::start(Mode::Echo);
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&encoded, &large);
    for path in ["/prod/big", "/prod/large"] {
        let out = std::process::Command::new("curl")
            .args(["-s", "--compressed", "-D", "-", "-o", "/dev/stderr"])
            .arg(format!("http://{}{path}", gw.addr))
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        // curl offers `deflate, gzip` (and more, by its build): the first
        // supported one of equal weight is taken.
        assert!(
            head.contains("content-encoding: deflate") || head.contains("content-encoding: gzip"),
            "{path}: {head}"
        );
        let expected = if path == "/prod/big" {
            2000
        } else {
            600 * 1024
        };
        assert_eq!(out.stderr.len(), expected, "{path}");
    }
}

#[test]
fn the_minimum_size_is_checked_and_set_through_the_admin_api() {
    // Config: out of range or not a number, an error naming the path.
    for bad in ["-1", "10485761", "\"big\""] {
        let doc = swagger_with(
            &format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "{}")),
            &format!(r#""x-amazon-apigateway-minimum-compression-size": {bad}"#),
        );
        let (_dir, config) = Gateway::builder()
            .api("a", &doc)
            .stage("a", "prod", &[])
            .write();
        let out = std::process::Command::new(support::gateway::bin())
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad}");
        assert!(
            err.contains(
                "$.x-amazon-apigateway-minimum-compression-size: Invalid minimum compression size"
            ),
            "{bad}: {err}"
        );
    }
    // Admin: create with a size, read it back, turn it off.
    let gw = Gateway::builder().admin().start();
    let admin = gw.admin.unwrap();
    let call = |method: &str, path: &str, body: &str| {
        RawClient::connect(admin).request(
            format!(
                "{method} {path} HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    let r = call(
        "POST",
        "/restapis",
        r#"{"name": "c", "minimumCompressionSize": 0}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["minimumCompressionSize"], 0);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let r = call(
        "POST",
        "/restapis",
        r#"{"name": "d", "minimumCompressionSize": 10485761}"#,
    );
    assert_eq!(r.status, 400);
    // API Gateway's message, for a size out of range or not a number.
    const AWS_MESSAGE: &str = "Invalid minimum compression size, must be between 0 and 10485760";
    assert_eq!(r.json()["message"], AWS_MESSAGE);
    let r = call(
        "PATCH",
        &format!("/restapis/{id}"),
        r#"{"patchOperations": [{"op": "replace", "path": "/minimumCompressionSize", "value": "abc"}]}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["message"], AWS_MESSAGE);
    let r = call(
        "PATCH",
        &format!("/restapis/{id}"),
        r#"{"patchOperations": [{"op": "replace", "path": "/minimumCompressionSize", "value": "2048"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["minimumCompressionSize"], 2048);
    let r = call(
        "PATCH",
        &format!("/restapis/{id}"),
        r#"{"patchOperations": [{"op": "replace", "path": "/minimumCompressionSize", "value": ""}]}"#,
    );
    assert_eq!(r.status, 200);
    assert!(r.json().get("minimumCompressionSize").is_none());
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzEncoder::new(data, flate2::Compression::fast())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn post(gw: &Gateway, path: &str, coding: &str, body: &[u8]) -> support::Response {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Encoding: {coding}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    RawClient::connect(gw.addr).request(&req)
}

/// A compressed request body is decoded where the gateway reads it (a
/// mapping template, body validation), as API Gateway does; one it cannot
/// decode is a 415; a proxied body is forwarded as sent.
#[test]
fn compressed_request_bodies_are_decoded_where_the_gateway_reads_them() {
    let backend = Backend::start(Mode::Echo);
    let b = backend.addr;
    let template = serde_json::Value::String("{\"type\": $input.json('$.type')}".into());
    let paths = format!(
        r##"{{
      "/mapped": {{"post": {{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "POST", "uri": "http://{b}/mapped",
          "requestTemplates": {{"application/json": {template}}},
          "responses": {{"default": {{"statusCode": "200"}}}}}}}}}},
      "/checked": {{"post": {{"consumes": ["application/json"],
          "parameters": [{{"in": "body", "name": "pet", "required": true, "schema": {{"$ref": "#/definitions/Pet"}}}}],
          "x-amazon-apigateway-request-validator": "body",
          "x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "http://{b}/checked"}}}}}}
    }}"##
    );
    let doc = swagger_with(
        &paths,
        r#""definitions": {"Pet": {"type": "object", "required": ["type"]}},
           "x-amazon-apigateway-request-validators": {"body": {"validateRequestBody": true, "validateRequestParameters": false}}"#,
    );
    let gw = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .start();
    // A mapping template reads the decoded body; the backend gets what the
    // template made, without a coding.
    let r = post(&gw, "/prod/mapped", "gzip", &gzip(br#"{"type": "dog"}"#));
    assert_eq!(r.status, 200, "{}", r.text());
    let last = backend.last();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&last.body).unwrap()["type"],
        "dog"
    );
    assert_eq!(last.header("content-encoding"), None);
    // Validation reads the decoded body; the proxy forwards it as sent.
    let sent = gzip(br#"{"type": "cat"}"#);
    let r = post(&gw, "/prod/checked", "gzip", &sent);
    assert_eq!(r.status, 200, "{}", r.text());
    let last = backend.last();
    assert_eq!(last.body, sent);
    assert_eq!(last.header("content-encoding"), Some("gzip"));
    let r = post(&gw, "/prod/checked", "gzip", &gzip(br#"{"name": "x"}"#));
    assert_eq!(r.status, 400);
    assert_eq!(r.text(), r#"{"message":"Invalid request body"}"#);
    // Codings it cannot read: 415, and nothing reaches the backend.
    let before = backend.request_count();
    for (coding, body) in [
        ("br", br#"{"type": "dog"}"#.to_vec()),
        ("gzip", br#"{"type": "dog"}"#.to_vec()),
    ] {
        let r = post(&gw, "/prod/mapped", coding, &body);
        assert_eq!(r.status, 415, "{coding}");
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("UnsupportedMediaTypeException")
        );
    }
    assert_eq!(backend.request_count(), before);
}

/// A strong `ETag` becomes weak on a compressed response (its bytes are not
/// the ones the strong validator names); an uncompressed one keeps it.
#[test]
fn a_compressed_response_has_a_weak_etag() {
    let tagged = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("ETag".into(), "\"v1\"".into())],
        body: vec![b'z'; 4096],
    });
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&tagged, &large);
    let r = get(&gw, "/prod/encoded", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("etag"), Some("W/\"v1\""));
    assert_eq!(gunzip(&r.body), vec![b'z'; 4096]);
    let r = get(&gw, "/prod/encoded", "");
    assert_eq!(r.header("etag"), Some("\"v1\""));
}

/// Parts (206, `Content-Range`) are not compressed: their range counts the
/// identity bytes. An answer that could have been compressed for another
/// client says `Vary: Accept-Encoding` even when it is not; one whose
/// backend already varies on it does not say it twice.
#[test]
fn parts_stay_identity_and_negotiable_answers_vary() {
    let part = Backend::start(Mode::Fixed {
        status: 206,
        headers: vec![("Content-Range".into(), "bytes 0-1999/5000".into())],
        body: vec![b'p'; 2000],
    });
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&part, &large);
    let r = get(
        &gw,
        "/prod/encoded",
        "Accept-Encoding: gzip\r\nRange: bytes=0-1999\r\n",
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("content-range"), Some("bytes 0-1999/5000"));
    assert_eq!(r.body.len(), 2000);
    // Uncompressed for this client, compressible for another: Vary.
    for headers in [
        "",
        "Accept-Encoding: identity\r\n",
        "Accept-Encoding: br\r\n",
    ] {
        let r = get(&gw, "/prod/big", headers);
        assert_eq!(r.header("content-encoding"), None, "{headers}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{headers}");
    }
    // Under the minimum: never compressed, nothing to vary.
    assert_eq!(get(&gw, "/prod/small", "").header("vary"), None);

    let varying = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Vary".into(), "Origin, accept-encoding".into())],
        body: vec![b'v'; 4096],
    });
    let gw = gateway(&varying, &large);
    let r = get(&gw, "/prod/encoded", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header_count("vary"), 1);
    assert_eq!(gunzip(&r.body), vec![b'v'; 4096]);
}

/// A HEAD answer carries the headers its GET would (RFC 9110 §9.3.2):
/// `Vary: Accept-Encoding` where the GET could be compressed, but no
/// `Content-Encoding` (there is no body to encode), for MOCK and proxied
/// routes alike.
#[test]
fn head_answers_vary_as_their_get_would() {
    let plain = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![],
        body: vec![b'h'; 4096],
    });
    let large = Backend::start(Mode::Large(600 * 1024));
    let gw = gateway(&plain, &large);
    let head = |path: &str| {
        RawClient::connect(gw.addr)
            .send(
                format!(
                    "HEAD {path} HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .read_response(true)
    };
    for (path, len) in [
        ("/prod/big", "2000"),
        ("/prod/encoded", "4096"),
        ("/prod/large", "614400"),
    ] {
        let r = head(path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{path}");
        assert_eq!(r.header("content-length"), Some(len), "{path}");
    }
    let r = head("/prod/small");
    assert_eq!(r.header("vary"), None);
    assert_eq!(r.header("content-length"), Some("100"));

    // A HEAD whose integration GETs a body too large to buffer: the head
    // only, then the next response on the same connection (the body was
    // sent after the head, read as the next response's start).
    for coding in ["", "Accept-Encoding: gzip\r\n"] {
        let mut c = RawClient::connect(gw.addr);
        c.send(format!("HEAD /prod/hlarge HTTP/1.1\r\nHost: a\r\n{coding}\r\n").as_bytes());
        let r = c.read_response(true);
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.header("content-encoding"), None, "{coding}");
        assert_eq!(r.header("content-length"), Some("614400"), "{coding}");
        let r = c.request(b"GET /prod/small HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status, 200, "{coding}");
        assert_eq!(r.body, vec![b'y'; 100], "{coding}");
    }
}
