//! Mapping templates on the request path: request templates reshaping the
//! body sent to an HTTP backend, response templates reshaping what comes
//! back, MOCK status selection, request and response overrides, template
//! errors found at load with their location, and passthrough.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, get_with, send};
use support::gateway::swagger;
use support::{Backend, Gateway, Mode};

fn j(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn gateway(backend: &Backend) -> Gateway {
    let uri = format!("http://{}", backend.addr);
    let request = j(
        r##"{"name": "$input.path('$.pet.name')", "id": "$input.params('id')", "stage": "$context.stage", "v": "$stageVariables.v", "method": "$context.httpMethod", "tags": $input.json('$.pet.tags')}"##,
    );
    let response = j(
        r##"#set($b = $input.path('$'))[#foreach($p in $b)"$p.type"#if($foreach.hasNext),#end#end]"##,
    );
    let override_req = j(
        r##"#set($context.requestOverride.header.X-Injected = "yes")#set($context.requestOverride.querystring.added = "q1")$input.body"##,
    );
    let override_resp = j(
        r##"#set($context.responseOverride.status = 418)#set($context.responseOverride.header.X-Teapot = "short")teapot"##,
    );
    let mock_req = j(
        r##"#if($input.params('kind') == "missing"){"statusCode": 404}#else{"statusCode": 200}#end"##,
    );
    let mock_resp = j(r##"{"kind": "$input.params('kind')", "request": "$context.requestId"}"##);
    let paths = format!(
        r#"{{
      "/pets/{{id}}": {{"post": {{"parameters": [{{"name": "id", "in": "path", "required": true}}], "x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "POST", "uri": "{uri}/store",
          "requestParameters": {{"integration.request.header.X-Pet-Name": "method.request.body.pet.name"}},
          "requestTemplates": {{"application/json": {request}}},
          "responses": {{"default": {{"statusCode": "200"}}}}}}}}}},
      "/list": {{"get": {{"x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "GET", "uri": "{uri}/list",
          "responses": {{"default": {{"statusCode": "200", "responseTemplates": {{"application/json": {response}, "text/plain": "plain"}}}}}}}}}}}},
      "/html": {{"get": {{"x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "GET", "uri": "{uri}/list",
          "responses": {{"default": {{"statusCode": "200",
              "responseParameters": {{"method.response.header.Content-Type": "'text/html'"}},
              "responseTemplates": {{"application/json": "<p>$input.path('$[0].type')</p>"}}}}}}}}}}}},
      "/override": {{"post": {{"x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "POST", "uri": "{uri}/o",
          "requestTemplates": {{"application/json": {override_req}}},
          "responses": {{"default": {{"statusCode": "200", "responseTemplates": {{"application/json": {override_resp}}}}}}}}}}}}},
      "/mock": {{"get": {{"x-amazon-apigateway-integration": {{
          "type": "mock", "requestTemplates": {{"application/json": {mock_req}}},
          "responses": {{"200": {{"statusCode": "200", "responseTemplates": {{"application/json": {mock_resp}}}}}, "404": {{"statusCode": "404", "responseTemplates": {{"application/json": "{{\"message\": \"no such kind\"}}"}}}}}}}}}}}},
      "/raw": {{"post": {{"x-amazon-apigateway-integration": {{
          "type": "http", "httpMethod": "POST", "uri": "{uri}/raw", "passthroughBehavior": "when_no_match",
          "requestTemplates": {{"application/json": ""}},
          "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}
    }}"#
    );
    Gateway::builder()
        .api("m", &swagger(&paths))
        .stage("m", "prod", &[("v", "blue")])
        .default_api("m")
        .start()
}

#[test]
fn request_template_reshapes_the_body() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    let r = send(
        gw.addr,
        "POST",
        "/prod/pets/42",
        "Content-Type: application/json\r\n",
        br#"{"pet": {"name": "Rex", "tags": ["a", "b"]}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let sent: serde_json::Value = serde_json::from_slice(&backend.last().body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"name": "Rex", "id": "42", "stage": "prod", "v": "blue", "method": "POST", "tags": ["a", "b"]})
    );
    // A parameter mapped from `method.request.body` reads the client's
    // body, not the template's output.
    assert_eq!(backend.last().header("x-pet-name"), Some("Rex"));
    // Not JSON where the template reads JSON: 400.
    let r = send(
        gw.addr,
        "POST",
        "/prod/pets/1",
        "Content-Type: application/json\r\n",
        b"not json",
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

#[test]
fn response_template_reshapes_what_comes_back() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: br#"[{"id": 1, "type": "dog"}, {"id": 2, "type": "cat"}]"#.to_vec(),
    });
    let gw = gateway(&backend);
    let r = get(gw.addr, "/prod/list");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), r#"["dog","cat"]"#);
    assert_eq!(r.header("content-type"), Some("application/json"));
    // The first Accept type picks the template.
    let r = get_with(gw.addr, "/prod/list", "Accept: text/plain\r\n");
    assert_eq!(r.text(), "plain");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // A mapped Content-Type stands when a template renders.
    let r = get(gw.addr, "/prod/html");
    assert_eq!(r.text(), "<p>dog</p>");
    assert_eq!(r.header_count("content-type"), 1);
    assert_eq!(r.header("content-type"), Some("text/html"));
}

/// A backend body that is not JSON under a template that reads JSON is the
/// API's configuration failing (500), not a bad request: the client may
/// have sent no body at all.
#[test]
fn a_response_template_over_a_body_that_is_not_json_is_a_500() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: b"plain text, not json".to_vec(),
    });
    let gw = gateway(&backend);
    let r = get(gw.addr, "/prod/list");
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Internal server error"})
    );
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
}

#[test]
fn overrides_change_the_integration_request_and_the_response() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    let r = send(
        gw.addr,
        "POST",
        "/prod/override",
        "Content-Type: application/json\r\n",
        b"{\"a\": 1}",
    );
    let rec = backend.last();
    assert_eq!(rec.header("x-injected"), Some("yes"));
    assert_eq!(rec.target, "/o?added=q1");
    assert_eq!(rec.body, b"{\"a\": 1}");
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-teapot"), Some("short"));
    assert_eq!(r.text(), "teapot");
}

#[test]
fn mock_request_templates_choose_the_status() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    let r = get(gw.addr, "/prod/mock?kind=cat");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["kind"], "cat");
    assert_eq!(r.json()["request"], r.header("x-amzn-RequestId").unwrap());
    let r = get(gw.addr, "/prod/mock?kind=missing");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "no such kind");
    // `;` separates query pairs as `&` does (API Gateway's known issue:
    // "results in the data being split"); `%3B` is a semicolon.
    let r = get(gw.addr, "/prod/mock?kind=missing;x=1");
    assert_eq!(r.status, 404);
    let r = get(gw.addr, "/prod/mock?x=1;kind=c%3Bd");
    assert_eq!(r.json()["kind"], "c;d");
}

#[test]
fn an_empty_template_passes_the_body_through() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    send(
        gw.addr,
        "POST",
        "/prod/raw",
        "Content-Type: application/json\r\n",
        b"{\"raw\": true}",
    );
    assert_eq!(backend.last().body, b"{\"raw\": true}");
    // No template for text/plain, WHEN_NO_MATCH: passthrough too.
    send(
        gw.addr,
        "POST",
        "/prod/raw",
        "Content-Type: text/plain\r\n",
        b"plain text",
    );
    assert_eq!(backend.last().body, b"plain text");
}

#[test]
fn template_errors_are_found_at_load_with_their_location() {
    let paths = format!(
        r#"{{"/x": {{"get": {{"x-amazon-apigateway-integration": {{"type": "mock", "requestTemplates": {{"application/json": {}}}, "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}}}"#,
        j("{\n  \"a\": 1,\n  #if($x\n}")
    );
    let (dir, cfg) = Gateway::builder()
        .api("e", &swagger(&paths))
        .stage("e", "p", &[])
        .write();
    let out = std::process::Command::new(support::gateway::bin())
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let file = dir.path().join("e.json");
    assert!(
        err.contains(&format!("{}: $.paths./x.get.x-amazon-apigateway-integration.requestTemplates.application/json: template error: line 4, column 1: expected ')'", file.display())),
        "{err}"
    );
}
