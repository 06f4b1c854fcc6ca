//! Binary bodies: `x-amazon-apigateway-binary-media-types` and
//! `contentHandling` on the integration request and response, as API
//! Gateway's conversion tables say; binary bytes never go through a text
//! path by accident.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use base64::Engine;
use support::gateway::swagger_with;
use support::{Backend, Gateway, Mode, RawClient, Response};

/// Every byte value, and bytes that are not UTF-8.
fn png_like() -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend(0u8..=255);
    b.extend_from_slice(&[0xff, 0xfe, 0x00, 0xc3, 0x28]);
    b
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// An HTTP (non-proxy) integration POST /up → backend, with optional
/// request `contentHandling`, a request template for JSON, and response
/// `contentHandling`.
fn api(backend: &Backend, req_ch: &str, resp_ch: &str) -> String {
    let req_ch = if req_ch.is_empty() {
        String::new()
    } else {
        format!(r#", "contentHandling": "{req_ch}""#)
    };
    let resp_ch = if resp_ch.is_empty() {
        String::new()
    } else {
        format!(r#", "contentHandling": "{resp_ch}""#)
    };
    swagger_with(
        &format!(
            r#"{{"/up": {{"post": {{"x-amazon-apigateway-integration": {{
                "type": "http", "httpMethod": "POST", "uri": "http://{b}/up",
                "passthroughBehavior": "when_no_match",
                "requestTemplates": {{"application/json": "{{\"wrapped\": \"$util.escapeJavaScript($input.body)\"}}"}}
                {req_ch},
                "responses": {{"default": {{"statusCode": "200",
                    "responseParameters": {{"method.response.header.Content-Type": "integration.response.header.Content-Type"}}
                    {resp_ch}}}}}}}}}}}}}"#,
            b = backend.addr
        ),
        r#""x-amazon-apigateway-binary-media-types": ["image/png", "application/octet-stream"]"#,
    )
}

fn gateway(doc: &str) -> Gateway {
    Gateway::builder()
        .api("b", doc)
        .stage("b", "prod", &[])
        .default_api("b")
        .start()
}

fn post(gw: &Gateway, content_type: &str, accept: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "POST /prod/up HTTP/1.1\r\nHost: b\r\nContent-Type: {content_type}\r\nAccept: {accept}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    RawClient::connect(gw.addr).request(&req)
}

fn fixed(content_type: &str, body: Vec<u8>) -> Mode {
    Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), content_type.into())],
        body,
    }
}

#[test]
fn binary_request_passes_through_byte_for_byte() {
    let backend = Backend::start(fixed("application/json", b"{}".to_vec()));
    let gw = gateway(&api(&backend, "", ""));
    let png = png_like();
    let r = post(&gw, "image/png", "application/json", &png);
    assert_eq!(r.status, 200, "{}", r.text());
    // No template ran on it (it would have wrapped it in JSON).
    assert_eq!(backend.last().body, png);
    // A JSON body does go through the template.
    let r = post(&gw, "application/json", "application/json", br#"{"a":1}"#);
    assert_eq!(r.status, 200);
    let sent: serde_json::Value = serde_json::from_slice(&backend.last().body).unwrap();
    assert_eq!(sent["wrapped"], r#"{"a":1}"#);
}

#[test]
fn convert_to_text_base64_encodes_binary_requests() {
    let backend = Backend::start(fixed("application/json", b"{}".to_vec()));
    let gw = gateway(&api(&backend, "CONVERT_TO_TEXT", ""));
    let png = png_like();
    assert_eq!(post(&gw, "image/png", "application/json", &png).status, 200);
    assert_eq!(backend.last().body, b64(&png).into_bytes());
    // Text stays text.
    assert_eq!(
        post(&gw, "text/plain", "application/json", b"plain words").status,
        200
    );
    assert_eq!(backend.last().body, b"plain words");
}

#[test]
fn convert_to_binary_decodes_text_requests() {
    let backend = Backend::start(fixed("application/json", b"{}".to_vec()));
    let gw = gateway(&api(&backend, "CONVERT_TO_BINARY", ""));
    let png = png_like();
    assert_eq!(
        post(&gw, "text/plain", "application/json", b64(&png).as_bytes()).status,
        200
    );
    assert_eq!(backend.last().body, png);
    // Binary stays binary.
    assert_eq!(post(&gw, "image/png", "application/json", &png).status, 200);
    assert_eq!(backend.last().body, png);
    // Text that is not base64: 500 API_CONFIGURATION_ERROR, nothing sent.
    let before = backend.request_count();
    let r = post(&gw, "text/plain", "application/json", b"not base64 !!!");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(r.json()["message"], "Internal server error");
    assert_eq!(backend.request_count(), before);
}

#[test]
fn binary_responses_follow_accept_and_content_handling() {
    let png = png_like();
    // Binary from the backend, binary accepted: bytes unchanged.
    let backend = Backend::start(fixed("image/png", png.clone()));
    let gw = gateway(&api(&backend, "", ""));
    let r = post(&gw, "application/json", "image/png", b"{}");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, png);
    assert_eq!(r.header("content-type"), Some("image/png"));
    // Binary from the backend, text accepted: base64 text.
    let r = post(&gw, "application/json", "application/json", b"{}");
    assert_eq!(r.body, b64(&png).into_bytes());
    drop(gw);

    // CONVERT_TO_TEXT: base64 whatever is accepted.
    let gw = gateway(&api(&backend, "", "CONVERT_TO_TEXT"));
    let r = post(&gw, "application/json", "image/png", b"{}");
    assert_eq!(r.body, b64(&png).into_bytes());
    drop(gw);

    // Base64 text from the backend: decoded for a client accepting binary,
    // or with CONVERT_TO_BINARY.
    let backend = Backend::start(fixed("text/plain", b64(&png).into_bytes()));
    let gw = gateway(&api(&backend, "", ""));
    assert_eq!(post(&gw, "application/json", "image/png", b"{}").body, png);
    assert_eq!(
        post(&gw, "application/json", "text/plain", b"{}").body,
        b64(&png).into_bytes()
    );
    drop(gw);
    let gw = gateway(&api(&backend, "", "CONVERT_TO_BINARY"));
    assert_eq!(post(&gw, "application/json", "text/plain", b"{}").body, png);
}

#[test]
fn binary_media_type_errors_are_located() {
    let (_dir, path) = Gateway::builder()
        .api(
            "b",
            &swagger_with(
                r#"{"/x": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "contentHandling": "CONVERT_TO_JPEG", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}, "responses": {"default": {"statusCode": "200"}}}}}}"#,
                r#""x-amazon-apigateway-binary-media-types": ["png"]"#,
            ),
        )
        .stage("b", "prod", &[])
        .write();
    let out = std::process::Command::new(support::gateway::bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("$.x-amazon-apigateway-binary-media-types[0]"),
        "{err}"
    );
    assert!(
        err.contains("$.paths./x.get.x-amazon-apigateway-integration.contentHandling"),
        "{err}"
    );
}

#[test]
fn proxy_integrations_pass_binary_both_ways() {
    let png = png_like();
    let backend = Backend::start(fixed("application/octet-stream", png.clone()));
    let doc = swagger_with(
        &format!(
            r#"{{"/up": {{"post": {}}}}}"#,
            support::gateway::proxy_method(&format!("http://{}/up", backend.addr), "")
        ),
        r#""x-amazon-apigateway-binary-media-types": ["*/*"]"#,
    );
    let gw = gateway(&doc);
    let r = post(&gw, "image/png", "text/plain", &png);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, png);
    assert_eq!(backend.last().body, png);
}

/// A MOCK whose integration response says `CONVERT_TO_BINARY` sends its
/// template's base64 as bytes (a pixel or favicon served without a
/// backend); one without it sends its text as it is, whatever the client
/// accepts; base64 that does not decode is a 500.
#[test]
fn a_mock_response_converted_to_binary() {
    let pixel = png_like();
    let mock = |template: &str, ch: &str| {
        format!(
            r#"{{"x-amazon-apigateway-integration": {{"type": "mock",
                "requestTemplates": {{"application/json": "{{\"statusCode\": 200}}"}},
                "responses": {{"default": {{"statusCode": "200", {ch}
                    "responseTemplates": {{"image/png": "{template}"}}}}}}}}}}"#
        )
    };
    let doc = swagger_with(
        &format!(
            r#"{{"/pixel": {{"get": {}}}, "/text": {{"get": {}}}, "/broken": {{"get": {}}}}}"#,
            mock(&b64(&pixel), r#""contentHandling": "CONVERT_TO_BINARY","#),
            mock("aGk=", ""),
            mock("not base64!", r#""contentHandling": "CONVERT_TO_BINARY","#),
        ),
        r#""x-amazon-apigateway-binary-media-types": ["image/png"]"#,
    );
    let gw = gateway(&doc);
    let get = |path: &str, accept: &str| {
        let mut c = RawClient::connect(gw.addr);
        c.request(format!("GET {path} HTTP/1.1\r\nHost: h\r\nAccept: {accept}\r\n\r\n").as_bytes())
    };
    let r = get("/prod/pixel", "image/png");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.body, pixel);
    assert_eq!(get("/prod/pixel", "*/*").body, pixel);
    assert_eq!(get("/prod/text", "image/png").body, b"aGk=");
    let r = get("/prod/broken", "image/png");
    assert_eq!(r.status, 500);
}
