//! Method request validation end to end: required parameters ("included and
//! non-blank"), JSON Schema draft-04 bodies with `$ref`, validators chosen
//! per API and per operation, AWS's 400 bodies, parameters checked before
//! the body, `$context.error.validationErrorString` in gateway responses,
//! and the `tollgate template` command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, get_with, send};
use support::gateway::{mock_method, swagger_with};
use support::{Backend, Gateway, Mode};

fn gateway(backend: &Backend) -> Gateway {
    let proxy = support::gateway::proxy_method(&format!("http://{}/x", backend.addr), "");
    let with = |validator: &str, params: &str, body: &str| {
        let mut op: serde_json::Value = serde_json::from_str(&proxy).unwrap();
        if !validator.is_empty() {
            op["x-amazon-apigateway-request-validator"] = serde_json::json!(validator);
        }
        let mut parameters: Vec<serde_json::Value> = serde_json::from_str(params).unwrap();
        if !body.is_empty() {
            parameters.push(serde_json::json!({"name": "body", "in": "body", "schema": serde_json::from_str::<serde_json::Value>(body).unwrap()}));
        }
        op["parameters"] = serde_json::Value::Array(parameters);
        op.to_string()
    };
    let required = r#"[{"name": "q1", "in": "query", "required": true}, {"name": "x-header-param", "in": "header", "required": true}, {"name": "issuer", "in": "path", "required": true}]"#;
    let paths = format!(
        r#"{{
      "/all/{{issuer}}": {{"post": {all}}},
      "/params/{{issuer}}": {{"get": {params}}},
      "/body": {{"post": {body}}},
      "/none": {{"post": {none}}},
      "/xml": {{"post": {xml}}},
      "/mock": {{"get": {mock}}}
    }}"#,
        all = with("all", required, r##"{"$ref": "#/definitions/Pet"}"##),
        params = with("params-only", required, ""),
        body = with("", "[]", r##"{"$ref": "#/definitions/Pet"}"##),
        none = with("none", required, r##"{"$ref": "#/definitions/Pet"}"##),
        mock = mock_method(200, "ok"),
        xml = {
            let mut op: serde_json::Value =
                serde_json::from_str(&with("", "[]", r##"{"$ref": "#/definitions/Pet"}"##))
                    .unwrap();
            op["consumes"] = serde_json::json!(["application/xml"]);
            op.to_string()
        },
    );
    let extra = r##""x-amazon-apigateway-request-validators": {
        "all": {"validateRequestBody": true, "validateRequestParameters": true},
        "params-only": {"validateRequestBody": false, "validateRequestParameters": true},
        "body-only": {"validateRequestBody": true, "validateRequestParameters": false},
        "none": {"validateRequestBody": false, "validateRequestParameters": false}
      },
      "x-amazon-apigateway-request-validator": "body-only",
      "x-amazon-apigateway-gateway-responses": {
        "BAD_REQUEST_BODY": {"responseTemplates": {"application/json": "{\"message\": $context.error.messageString, \"detail\": \"$context.error.validationErrorString\"}"}}
      },
      "definitions": {
        "Pet": {"type": "object", "required": ["name", "age"], "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}, "owner": {"$ref": "#/definitions/Owner"}}},
        "Owner": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}
      }"##;
    Gateway::builder()
        .api("v", &swagger_with(&paths, extra))
        .stage("v", "prod", &[])
        .default_api("v")
        .start()
}

const PET: &[u8] = br#"{"name": "Rex", "age": 3, "owner": {"id": 1}}"#;

#[test]
fn required_parameters_are_included_and_non_blank() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    let r = get_with(gw.addr, "/prod/params/acme?q1=v", "x-header-param: h\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    // Missing and blank: AWS's message lists header, path, then query names.
    let r = get(gw.addr, "/prod/params/acme?q1=");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("BadRequestException"));
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Missing required request parameters: [x-header-param, q1]"})
    );
    let r = get_with(gw.addr, "/prod/params/acme", "X-Header-Param: \r\n");
    assert_eq!(
        r.json()["message"],
        "Missing required request parameters: [x-header-param, q1]"
    );
    assert_eq!(
        backend.request_count(),
        1,
        "invalid requests never reach the backend"
    );
}

#[test]
fn bodies_are_validated_against_their_model() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    // The API default validator (body-only) applies to /body.
    assert_eq!(
        send(
            gw.addr,
            "POST",
            "/prod/body",
            "Content-Type: application/json\r\n",
            PET
        )
        .status,
        200
    );
    for bad in [
        &br#"{"name": "Rex"}"#[..],
        br#"{"name": "Rex", "age": "three"}"#,
        br#"{"name": "Rex", "age": 1, "owner": {}}"#,
        b"not json",
        b"",
    ] {
        let r = send(
            gw.addr,
            "POST",
            "/prod/body",
            "Content-Type: application/json\r\n",
            bad,
        );
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(bad));
        // The customised BAD_REQUEST_BODY shows the validation detail (not
        // JSON-escaped: as in API Gateway, the template is plain text).
        let text = r.text();
        assert!(
            text.starts_with("{\"message\": \"Invalid request body\", \"detail\": \"["),
            "{text}"
        );
        assert!(!text.contains("\"detail\": \"[]\""), "{text}");
    }
    // Parameters are checked before the body.
    let r = send(
        gw.addr,
        "POST",
        "/prod/all/acme",
        "Content-Type: application/json\r\n",
        b"not json",
    );
    assert_eq!(
        r.json()["message"],
        "Missing required request parameters: [x-header-param, q1]"
    );
    let r = send(
        gw.addr,
        "POST",
        "/prod/all/acme?q1=1",
        "Content-Type: application/json\r\nx-header-param: h\r\n",
        b"not json",
    );
    assert!(r.text().contains("Invalid request body"));
    let r = send(
        gw.addr,
        "POST",
        "/prod/all/acme?q1=1",
        "Content-Type: application/json\r\nx-header-param: h\r\n",
        PET,
    );
    assert_eq!(r.status, 200);
    // An operation's validator overrides the API default: "none" checks nothing.
    let r = send(gw.addr, "POST", "/prod/none", "", b"anything");
    assert_eq!(r.status, 200);
}

/// The body model is keyed by media type (the operation's `consumes`, else
/// `application/json`); a request of a type without a model is not
/// validated, as API Gateway documents.
#[test]
fn only_bodies_of_a_modelled_media_type_are_validated() {
    let backend = Backend::start(Mode::Echo);
    let gw = gateway(&backend);
    let bad = br#"{"name": "Rex"}"#;
    for (path, content_type, status) in [
        // No Content-Type counts as application/json; parameters are ignored.
        ("/prod/body", "", 400),
        (
            "/prod/body",
            "Content-Type: application/json; charset=utf-8\r\n",
            400,
        ),
        ("/prod/body", "Content-Type: Application/JSON\r\n", 400),
        ("/prod/body", "Content-Type: text/plain\r\n", 200),
        ("/prod/body", "Content-Type: application/xml\r\n", 200),
        ("/prod/xml", "Content-Type: application/xml\r\n", 400),
        ("/prod/xml", "Content-Type: application/json\r\n", 200),
        ("/prod/xml", "", 200),
    ] {
        let r = send(gw.addr, "POST", path, content_type, bad);
        assert_eq!(r.status, status, "{path} {content_type:?}: {}", r.text());
    }
    let r = send(
        gw.addr,
        "POST",
        "/prod/xml",
        "Content-Type: application/xml\r\n",
        PET,
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn an_unknown_validator_fails_the_load() {
    let doc = r#"{"swagger": "2.0", "paths": {"/a": {"get": {"x-amazon-apigateway-request-validator": "nope", "x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}, "responses": {"default": {"statusCode": "200"}}}}}}}"#;
    let (_dir, cfg) = Gateway::builder()
        .api("u", doc)
        .stage("u", "p", &[])
        .write();
    let out = std::process::Command::new(support::gateway::bin())
        .args(["check", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("$.paths./a.get.x-amazon-apigateway-request-validator"),
        "{err}"
    );
}

#[test]
fn the_template_command_renders_against_a_sample_request() {
    let dir = tempfile::tempdir().unwrap();
    let template = dir.path().join("t.vtl");
    std::fs::write(&template, "{\"name\": \"$input.path('$.name')\", \"q\": \"$input.params('q')\", \"v\": \"$stageVariables.v\"}").unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, "{\"name\": \"Rex\"}").unwrap();
    let out = std::process::Command::new(support::gateway::bin())
        .args([
            "template",
            template.to_str().unwrap(),
            "--body",
            &format!("@{}", body.display()),
            "--query",
            "q=1",
            "--stage-variable",
            "v=blue",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"name\": \"Rex\", \"q\": \"1\", \"v\": \"blue\"}"
    );
    // Overrides go to stderr; errors carry their location.
    let out = std::process::Command::new(support::gateway::bin())
        .args([
            "template",
            "--inline",
            "#set($context.responseOverride.status = 404)gone",
        ])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "gone");
    assert!(String::from_utf8_lossy(&out.stderr).contains("override status=404"));
    let out = std::process::Command::new(support::gateway::bin())
        .args(["template", "--inline", "ok\n#foreach($x in"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("line 2, column"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
