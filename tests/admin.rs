//! The admin API end to end: import, overwrite and merge, deployments and
//! stages served on every shard, exports, authentication failures that
//! change nothing, malformed documents, `failonwarnings`, the AWS CLI, and
//! durability across `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use support::gateway::{mock_method, swagger, ADMIN_KEY_ID, ADMIN_SECRET, ADMIN_TOKEN};
use support::{Gateway, RawClient, Response};

fn admin_gateway() -> Gateway {
    Gateway::builder().shards(2).admin().start()
}

/// One admin call with the bearer token.
fn call(admin: SocketAddr, method: &str, path: &str, body: &[u8]) -> Response {
    call_with(
        admin,
        method,
        path,
        body,
        &format!("Authorization: Bearer {ADMIN_TOKEN}\r\n"),
    )
}

fn call_with(admin: SocketAddr, method: &str, path: &str, body: &[u8], headers: &str) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    RawClient::connect(admin).request(&req)
}

/// A request to the gateway for API `id`.
fn invoke(gw: &Gateway, id: &str, path: &str) -> Response {
    let mut c = RawClient::connect(gw.addr);
    c.request(
        format!("GET {path} HTTP/1.1\r\nHost: {id}.execute-api.test\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// The `item` list of a list call's 200 answer.
fn list_items(admin: SocketAddr, path: &str) -> Vec<serde_json::Value> {
    let r = call(admin, "GET", path, b"");
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["item"].as_array().unwrap().clone()
}

fn doc(paths: &[(&str, &str)]) -> String {
    let body: Vec<String> = paths
        .iter()
        .map(|(p, text)| format!(r#""{p}": {{"get": {}}}"#, mock_method(200, text)))
        .collect();
    swagger(&format!("{{{}}}", body.join(",")))
}

fn import(admin: SocketAddr, doc: &str) -> String {
    let r = call(admin, "POST", "/restapis?mode=import", doc.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["id"].as_str().unwrap().to_owned()
}

fn deploy(admin: SocketAddr, id: &str, stage: &str, vars: &str) -> Response {
    let body = format!(r#"{{"stageName": "{stage}", "description": "d", "variables": {vars}}}"#);
    call(
        admin,
        "POST",
        &format!("/restapis/{id}/deployments"),
        body.as_bytes(),
    )
}

#[test]
fn import_deploy_update_and_delete() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(
        admin,
        &doc(&[("/a", "a1"), ("/v", "color=$stageVariables.color")]),
    );
    let r = call(admin, "GET", &format!("/restapis/{id}"), b"");
    assert_eq!(r.json()["name"], "t");
    assert!(r.json()["createdDate"].as_u64().unwrap() > 1_700_000_000);
    // Imported but not deployed: not served.
    assert_eq!(invoke(&gw, &id, "/prod/a").status, 403);

    let r = deploy(admin, &id, "prod", r#"{"color": "red"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let dep1 = r.json()["id"].as_str().unwrap().to_owned();
    // Acknowledged = live on every shard: many fresh connections all see it.
    for _ in 0..20 {
        assert_eq!(invoke(&gw, &id, "/prod/a").text(), "a1");
    }
    assert_eq!(invoke(&gw, &id, "/prod/v").text(), "color=red");

    // Overwrite: the new definition replaces the old, served after a deployment.
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=overwrite"),
        doc(&[("/b", "b1")]).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        invoke(&gw, &id, "/prod/a").text(),
        "a1",
        "an update needs a deployment"
    );
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/prod/b").text(), "b1");
    assert_eq!(
        invoke(&gw, &id, "/prod/a").status,
        403,
        "overwrite removed /a"
    );

    // Merge: imported methods added or replaced, the rest stays.
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=merge"),
        doc(&[("/c", "c1"), ("/b", "b2")]).as_bytes(),
    );
    assert_eq!(r.status, 200);
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/prod/b").text(), "b2");
    assert_eq!(invoke(&gw, &id, "/prod/c").text(), "c1");

    // A second stage on the first deployment serves the old definition.
    let body = format!(
        r#"{{"stageName": "old", "deploymentId": "{dep1}", "variables": {{"color": "green"}}}}"#
    );
    let r = call(
        admin,
        "POST",
        &format!("/restapis/{id}/stages"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(invoke(&gw, &id, "/old/a").text(), "a1");
    assert_eq!(invoke(&gw, &id, "/old/v").text(), "color=green");
    let r = call(
        admin,
        "POST",
        &format!("/restapis/{id}/stages"),
        body.as_bytes(),
    );
    assert_eq!(r.status, 409);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("ConflictException"));

    // Stage variables: patch, validated.
    let patch =
        br#"{"patchOperations": [{"op": "replace", "path": "/variables/color", "value": "blue"}]}"#;
    let r = call(admin, "PATCH", &format!("/restapis/{id}/stages/old"), patch);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["variables"]["color"], "blue");
    assert_eq!(invoke(&gw, &id, "/old/v").text(), "color=blue");
    let bad =
        br#"{"patchOperations": [{"op": "replace", "path": "/variables/bad-name", "value": "x"}]}"#;
    assert_eq!(
        call(admin, "PATCH", &format!("/restapis/{id}/stages/old"), bad).status,
        400
    );
    let bad = br#"{"patchOperations": [{"op": "replace", "path": "/variables/ok", "value": "has space"}]}"#;
    assert_eq!(
        call(admin, "PATCH", &format!("/restapis/{id}/stages/old"), bad).status,
        400
    );

    // Export: the deployed definition of a stage.
    let r = call(
        admin,
        "GET",
        &format!("/restapis/{id}/stages/old/exports/swagger"),
        b"",
    );
    assert_eq!(r.status, 200);
    assert!(r.json()["paths"].get("/a").is_some());
    assert!(r.json()["paths"].get("/c").is_none());

    // Lists.
    let r = call(admin, "GET", &format!("/restapis/{id}/deployments"), b"");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 3);
    let r = call(admin, "GET", &format!("/restapis/{id}/stages"), b"");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 2);

    // A deployment a stage serves cannot be deleted (API Gateway's answer).
    let r = call(
        admin,
        "DELETE",
        &format!("/restapis/{id}/deployments/{dep1}"),
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.header("x-amzn-ErrorType"), Some("BadRequestException"));
    assert_eq!(
        r.json()["message"],
        "Active stages pointing to this deployment must be moved or deleted"
    );

    // Delete a stage, then its deployment, then the API.
    assert_eq!(
        call(admin, "DELETE", &format!("/restapis/{id}/stages/old"), b"").status,
        202
    );
    assert_eq!(invoke(&gw, &id, "/old/a").status, 403);
    assert_eq!(invoke(&gw, &id, "/prod/b").text(), "b2");
    let dep_path = format!("/restapis/{id}/deployments/{dep1}");
    assert_eq!(call(admin, "DELETE", &dep_path, b"").status, 202);
    let r = call(admin, "GET", &dep_path, b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("NotFoundException"));
    assert_eq!(call(admin, "DELETE", &dep_path, b"").status, 404);
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", &format!("/restapis/{id}/deployments"), b"");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 2);
    assert_eq!(call(admin, "GET", &dep_path, b"").status, 404);
    assert_eq!(invoke(&gw, &id, "/prod/b").text(), "b2");
    assert_eq!(
        call(admin, "DELETE", &format!("/restapis/{id}"), b"").status,
        202
    );
    assert_eq!(invoke(&gw, &id, "/prod/b").status, 403);
    let r = call(admin, "GET", &format!("/restapis/{id}"), b"");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("NotFoundException"));
}

fn sigv4(
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    secret: &str,
    at: SystemTime,
) -> String {
    support::aws::Signing {
        method,
        host: "admin",
        path,
        query: Some(query),
        body,
        service: "apigateway",
        region: "us-east-1",
    }
    .header_lines(ADMIN_KEY_ID, secret, at)
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn bad_credentials_get_aws_errors_and_change_nothing() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let body = doc(&[("/a", "a")]);
    let path = "/restapis?mode=import";
    let now = SystemTime::now();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "MissingAuthenticationTokenException"),
        (
            "Authorization: Bearer nope-nope-nope-nope\r\n".into(),
            "UnrecognizedClientException",
        ),
        (
            "Authorization: Basic YTpi\r\n".into(),
            "IncompleteSignatureException",
        ),
        (
            sigv4(
                "POST",
                "/restapis",
                "mode=import",
                body.as_bytes(),
                "wrong-secret",
                now,
            ),
            "InvalidSignatureException",
        ),
        (
            sigv4("POST", "/restapis", "mode=import", b"{}", ADMIN_SECRET, now),
            "InvalidSignatureException",
        ),
        // A request signed over another body, replayed with this one and
        // the signed body's hash declared in an unsigned header.
        (
            format!(
                "{}x-amz-content-sha256: {}\r\n",
                sigv4("POST", "/restapis", "mode=import", b"{}", ADMIN_SECRET, now),
                hex_sha256(b"{}")
            ),
            "InvalidSignatureException",
        ),
        (
            sigv4(
                "POST",
                "/restapis",
                "mode=import",
                body.as_bytes(),
                ADMIN_SECRET,
                now - Duration::from_secs(3600),
            ),
            "InvalidSignatureException",
        ),
        (
            format!("Authorization: Bearer {ADMIN_TOKEN}-ro\r\n"),
            "AccessDeniedException",
        ),
    ];
    for (headers, error_type) in &cases {
        let r = call_with(admin, "POST", path, body.as_bytes(), headers);
        assert_eq!(r.status, 403, "{headers}: {}", r.text());
        assert_eq!(r.header("x-amzn-ErrorType"), Some(*error_type), "{headers}");
        assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let r = call(admin, "GET", "/restapis", b"");
    assert_eq!(
        r.json()["item"].as_array().unwrap().len(),
        0,
        "a refused call changed state"
    );
    // A correct signature works.
    let headers = sigv4(
        "POST",
        "/restapis",
        "mode=import",
        body.as_bytes(),
        ADMIN_SECRET,
        now,
    );
    let r = call_with(admin, "POST", path, body.as_bytes(), &headers);
    assert_eq!(r.status, 201, "{}", r.text());
}

/// A request that no credential can pass without its body (none, an
/// unknown bearer token, a malformed header) is answered before the body is
/// read: the client gets its 403 without sending the body (and without a
/// `100 Continue`), and nothing changes.
#[test]
fn unauthenticated_uploads_are_refused_before_their_body() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    for (auth, expect, error_type) in [
        ("", "", "MissingAuthenticationTokenException"),
        (
            "Authorization: Bearer nope-nope-nope-nope\r\n",
            "",
            "UnrecognizedClientException",
        ),
        (
            "Authorization: Basic YTpi\r\n",
            "Expect: 100-continue\r\n",
            "IncompleteSignatureException",
        ),
        (
            "Authorization: Bearer nope-nope-nope-nope\r\n",
            "Expect: 100-continue\r\n",
            "UnrecognizedClientException",
        ),
    ] {
        let mut c = RawClient::connect(admin);
        // A 5 MB body is announced and never sent.
        c.send(format!("POST /restapis?mode=import HTTP/1.1\r\nHost: a\r\n{auth}{expect}Content-Type: application/json\r\nContent-Length: 5000000\r\n\r\n").as_bytes());
        let started = Instant::now();
        let r = c
            .try_read_response(false)
            .unwrap_or_else(|e| panic!("{auth}{expect}: no answer before the body ({e})"));
        assert!(started.elapsed() < Duration::from_secs(5), "{auth}{expect}");
        assert_eq!(r.status, 403, "{auth}{expect}: {}", r.text());
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some(error_type),
            "{auth}{expect}"
        );
        assert!(
            c.is_closed(Duration::from_secs(3)),
            "{auth}{expect}: left open"
        );
    }
    // Without a body, a refusal keeps the connection.
    let mut c = RawClient::connect(admin);
    for _ in 0..2 {
        let r = c.request(b"GET /restapis HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer nope-nope-nope-nope\r\n\r\n");
        assert_eq!(r.status, 403);
    }
    // An HTTP/1.0 client asking for keep-alive is told it holds.
    for _ in 0..2 {
        let r = c.request(b"GET /restapis HTTP/1.0\r\nConnection: keep-alive\r\nAuthorization: Bearer nope-nope-nope-nope\r\n\r\n");
        assert_eq!(r.status, 403);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // A known token still gets `100 Continue` and its upload read.
    let body = doc(&[("/a", "a")]);
    let mut c = RawClient::connect(admin);
    c.send(format!("POST /restapis?mode=import HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes());
    assert_eq!(c.read_response(true).status, 100);
    c.send(body.as_bytes());
    assert_eq!(c.read_response(false).status, 201);
    let r = call(admin, "GET", "/restapis", b"");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 1);
}

#[test]
fn malformed_documents_and_warnings() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let r = call(admin, "POST", "/restapis?mode=import", b"{\"swagger\": ");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("BadRequestException"));
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid OpenAPI input"));
    let broken = swagger(
        r#"{"/a": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "timeoutInMillis": 5}}}}"#,
    );
    let r = call(admin, "POST", "/restapis?mode=import", broken.as_bytes());
    assert_eq!(r.status, 400);
    let m = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        m.contains("Errors found during import")
            && m.contains("$.paths./a.get.x-amazon-apigateway-integration.timeoutInMillis"),
        "{m}"
    );
    // A warning (a method without integration) fails only with failonwarnings.
    let warned = swagger(r#"{"/w": {"get": {}}}"#);
    // An import with failonwarnings=true: 400, with `words` in its message.
    let refused_with = |doc: &str, words: &str| {
        let r = call(
            admin,
            "POST",
            "/restapis?mode=import&failonwarnings=true",
            doc.as_bytes(),
        );
        assert_eq!(r.status, 400, "{}", r.text());
        let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
        assert!(message.contains(words), "{words}: {message}");
    };
    refused_with(&warned, "Warnings found during import");
    let r = call(admin, "POST", "/restapis?mode=import", warned.as_bytes());
    assert_eq!(r.status, 201);
    assert!(r.json()["warnings"]
        .as_array()
        .is_some_and(|w| !w.is_empty()));
    // So is a model name API Gateway refuses (not alphanumeric): with
    // failonwarnings it is refused in API Gateway's words.
    let model = warned.replacen(
        r#""paths""#,
        r#""definitions": {"Error-Response": {"type": "object"}}, "paths""#,
        1,
    );
    refused_with(
        &model,
        "Unable to create model for 'Error-Response': Model name must be alphanumeric",
    );
    // So is an unresolvable $ref.
    let dangling = swagger(
        r##"{"/r": {"get": {"parameters": [{"$ref": "#/parameters/missing"}], "x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"}, "responses": {"default": {"statusCode": "200"}}}}}}"##,
    );
    refused_with(&dangling, "unresolvable $ref");
    // The API key source is reported as the document says; AUTHORIZER is
    // warned about (no authorizer runs here), anything else refused.
    let authorizer = doc(&[("/k", "k")]).replacen(
        '{',
        r#"{"x-amazon-apigateway-api-key-source": "AUTHORIZER", "#,
        1,
    );
    let r = call(
        admin,
        "POST",
        "/restapis?mode=import",
        authorizer.as_bytes(),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.json()["apiKeySource"], "AUTHORIZER");
    assert!(r.text().contains("Lambda authorizer"), "{}", r.text());
    let bogus = authorizer.replace("AUTHORIZER", "BOGUS");
    let r = call(admin, "POST", "/restapis?mode=import", bogus.as_bytes());
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("must be HEADER or AUTHORIZER"),
        "{}",
        r.text()
    );
    let r = call(
        admin,
        "POST",
        "/restapis?mode=import",
        doc(&[("/h", "h")]).as_bytes(),
    );
    assert_eq!(r.json()["apiKeySource"], "HEADER");
    // YAML is accepted too.
    let yaml = "swagger: '2.0'\ninfo: {title: y, version: '1'}\npaths: {}\n";
    assert_eq!(
        call(admin, "POST", "/restapis?mode=import", yaml.as_bytes()).status,
        201
    );
    // A broken PUT changes nothing.
    let id = import(admin, &doc(&[("/a", "a")]));
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=overwrite"),
        broken.as_bytes(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(deploy(admin, &id, "s", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/s/a").text(), "a");
    // Unknown API, bad stage name, bad variables.
    assert_eq!(deploy(admin, "nosuchapi", "s", "{}").status, 404);
    assert_eq!(deploy(admin, &id, "bad stage", "{}").status, 400);
    assert_eq!(deploy(admin, &id, "s", r#"{"v": "a b"}"#).status, 400);
}

/// API Gateway's PetStore sample as the AWS CLI's `--body` argument.
fn petstore_body() -> String {
    format!(
        "fileb://{}/tests/fixtures/aws-petstore-sample.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn the_aws_cli_imports_deploys_and_updates() {
    if !support::gateway::aws_cli_available() {
        return;
    }
    let backend = support::Backend::start(support::Mode::Echo);
    let gw = Gateway::builder()
        .shards(2)
        .admin()
        .upstream_host(
            "petstore.execute-api.eu-west-1.amazonaws.com",
            &backend.addr.to_string(),
        )
        .start();
    let admin = gw.admin.unwrap();
    let endpoint = format!("http://{admin}");
    let aws = |args: &[&str]| support::gateway::aws_apigateway(admin, args);
    let api = aws(&["import-rest-api", "--body", &petstore_body()]);
    let id = api["id"].as_str().unwrap().to_owned();
    assert_eq!(api["name"], "PetStore");
    let dep = aws(&[
        "create-deployment",
        "--rest-api-id",
        &id,
        "--stage-name",
        "prod",
    ]);
    assert!(dep["id"].is_string());
    let r = invoke(&gw, &id, "/prod/pets/7");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(backend.last().target, "/petstore/pets/7");
    let apis = aws(&["get-rest-apis"]);
    assert_eq!(apis["items"][0]["id"], id.as_str());
    let stage = aws(&[
        "update-stage",
        "--rest-api-id",
        &id,
        "--stage-name",
        "prod",
        "--patch-operations",
        "op=replace,path=/variables/team,value=blue",
    ]);
    assert_eq!(stage["variables"]["team"], "blue");
    let out = gw.dir.path().join("export.json");
    aws(&[
        "get-export",
        "--rest-api-id",
        &id,
        "--stage-name",
        "prod",
        "--export-type",
        "swagger",
        out.to_str().unwrap(),
    ]);
    let exported: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(exported["info"]["title"], "PetStore");
    // A wrong secret is refused by signature.
    let bad = Command::new("aws")
        .args(["apigateway", "get-rest-apis", "--endpoint-url", &endpoint])
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", "wrong")
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("InvalidSignatureException"));
    // create-rest-api / update-rest-api settings, as the CLI sends them.
    let made = aws(&[
        "create-rest-api",
        "--name",
        "media",
        "--binary-media-types",
        "image/png",
        "--api-key-source",
        "HEADER",
        "--endpoint-configuration",
        "types=REGIONAL",
    ]);
    assert_eq!(made["binaryMediaTypes"], serde_json::json!(["image/png"]));
    let updated = aws(&[
        "update-rest-api",
        "--rest-api-id",
        made["id"].as_str().unwrap(),
        "--patch-operations",
        "op=add,path=/binaryMediaTypes/image~1gif",
        "op=replace,path=/name,value=pictures",
    ]);
    assert_eq!(updated["name"], "pictures");
    assert_eq!(
        updated["binaryMediaTypes"],
        serde_json::json!(["image/png", "image/gif"])
    );
    aws(&["delete-rest-api", "--rest-api-id", &id]);
    assert_eq!(invoke(&gw, &id, "/prod/pets/7").status, 403);
}

/// `get-resources`, `get-resource`, `get-method`, `get-integration` and the
/// response getters, through the AWS CLI (which pages `get-resources`), on
/// API Gateway's PetStore sample; ids stay the same across an update.
#[test]
fn the_aws_cli_reads_resources_and_methods() {
    if !support::gateway::aws_cli_available() {
        return;
    }
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let aws = |args: &[&str]| support::gateway::aws_apigateway(admin, args);
    let api = aws(&["import-rest-api", "--body", &petstore_body()]);
    let id = api["id"].as_str().unwrap().to_owned();
    let root = api["rootResourceId"].as_str().unwrap().to_owned();
    // Page size 1: the CLI follows `position` through every page.
    let listed = aws(&["get-resources", "--rest-api-id", &id, "--page-size", "1"]);
    let items = listed["items"].as_array().unwrap();
    let mut paths: Vec<&str> = items.iter().map(|r| r["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/", "/pets", "/pets/{petId}"]);
    let by_path = |p: &str| items.iter().find(|r| r["path"] == p).unwrap().clone();
    assert_eq!(by_path("/")["id"], root.as_str());
    assert!(by_path("/").get("parentId").is_none());
    let pets = by_path("/pets");
    let pet = by_path("/pets/{petId}");
    assert_eq!(pets["parentId"], root.as_str());
    assert_eq!(pets["pathPart"], "pets");
    assert_eq!(pet["parentId"], pets["id"]);
    assert_eq!(pet["pathPart"], "{petId}");
    let mut methods: Vec<&String> = pets["resourceMethods"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    methods.sort_unstable();
    assert_eq!(methods, ["GET", "OPTIONS", "POST"]);
    let pets_id = pets["id"].as_str().unwrap().to_owned();
    // `aws apigateway CMD` on GET /pets, with more arguments.
    let on_pets_get = |cmd: &str, more: &[&str]| {
        let mut args = vec![
            cmd,
            "--rest-api-id",
            &id,
            "--resource-id",
            &pets_id,
            "--http-method",
            "GET",
        ];
        args.extend_from_slice(more);
        aws(&args)
    };

    let m = on_pets_get("get-method", &[]);
    assert_eq!(m["httpMethod"], "GET");
    assert_eq!(m["authorizationType"], "NONE");
    assert_eq!(m["apiKeyRequired"], false);
    assert_eq!(
        m["requestParameters"]["method.request.querystring.type"],
        false
    );
    assert_eq!(
        m["methodResponses"]["200"]["responseModels"]["application/json"],
        "Pets"
    );
    assert_eq!(
        m["methodResponses"]["200"]["responseParameters"]
            ["method.response.header.Access-Control-Allow-Origin"],
        false
    );
    let i = on_pets_get("get-integration", &[]);
    assert_eq!(i["type"], "HTTP");
    assert_eq!(i["httpMethod"], "GET");
    assert_eq!(
        i["uri"],
        "http://petstore.execute-api.eu-west-1.amazonaws.com/petstore/pets"
    );
    assert_eq!(i["passthroughBehavior"], "WHEN_NO_MATCH");
    assert_eq!(i["timeoutInMillis"], 29000);
    assert_eq!(
        i["integrationResponses"]["200"]["responseParameters"]
            ["method.response.header.Access-Control-Allow-Origin"],
        "'*'"
    );
    assert!(i["integrationResponses"]["200"]
        .get("selectionPattern")
        .is_none());
    let ir = on_pets_get("get-integration-response", &["--status-code", "200"]);
    assert_eq!(ir["statusCode"], "200");
    let mr = on_pets_get("get-method-response", &["--status-code", "200"]);
    assert_eq!(mr["statusCode"], "200");
    let r = aws(&[
        "get-resource",
        "--rest-api-id",
        &id,
        "--resource-id",
        &pets_id,
        "--embed",
        "methods",
    ]);
    assert_eq!(r["path"], "/pets");
    assert_eq!(
        r["resourceMethods"]["POST"]["methodIntegration"]["httpMethod"],
        "POST"
    );

    // Unknown resource, method and status code: 404s.
    for args in [
        vec![
            "get-resource",
            "--rest-api-id",
            &id,
            "--resource-id",
            "nosuchres",
        ],
        vec![
            "get-method",
            "--rest-api-id",
            &id,
            "--resource-id",
            &pets_id,
            "--http-method",
            "DELETE",
        ],
        vec![
            "get-method-response",
            "--rest-api-id",
            &id,
            "--resource-id",
            &pets_id,
            "--http-method",
            "GET",
            "--status-code",
            "418",
        ],
    ] {
        let out = support::gateway::aws_apigateway_output(admin, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("NotFoundException"),
            "{args:?}"
        );
    }

    // A merge that adds a path keeps the ids of the others; the new path's
    // parent is found.
    let more = swagger(&format!(
        r#"{{"/pets/{{petId}}/toys": {{"get": {}}}}}"#,
        mock_method(200, "t")
    ));
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=merge"),
        more.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let again = aws(&["get-resources", "--rest-api-id", &id]);
    let again = again["items"].as_array().unwrap();
    assert_eq!(again.len(), 4);
    let toys = again
        .iter()
        .find(|r| r["path"] == "/pets/{petId}/toys")
        .unwrap();
    assert_eq!(toys["parentId"], pet["id"]);
    assert!(again
        .iter()
        .any(|r| r["id"] == pets["id"] && r["path"] == "/pets"));
    assert_eq!(
        aws(&["get-rest-api", "--rest-api-id", &id])["rootResourceId"],
        root.as_str()
    );
}

/// An API key requirement and intermediate paths without methods, over
/// plain HTTP.
#[test]
fn resources_report_key_requirements_and_intermediate_paths() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let keyed = support::gateway::keyed_api().replace("\"/keyed\"", "\"/a/b/keyed\"");
    let id = import(admin, &keyed);
    let items = list_items(admin, &format!("/restapis/{id}/resources?embed=methods"));
    let mut paths: Vec<&str> = items.iter().map(|r| r["path"].as_str().unwrap()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["/", "/a", "/a/b", "/a/b/keyed", "/open"]);
    let find = |p: &str| items.iter().find(|r| r["path"] == p).unwrap();
    assert!(find("/a").get("resourceMethods").is_none());
    let keyed = &find("/a/b/keyed")["resourceMethods"]["GET"];
    assert_eq!(keyed["apiKeyRequired"], true);
    assert_eq!(keyed["methodIntegration"]["type"], "MOCK");
    assert_eq!(
        find("/open")["resourceMethods"]["GET"]["apiKeyRequired"],
        false
    );
    let missing = call(admin, "GET", "/restapis/nosuchapi/resources", b"");
    assert_eq!(missing.status, 404);
}

#[test]
fn acknowledged_changes_survive_kill_9() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let acked: Arc<Mutex<Vec<(String, bool)>>> = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..3 {
        let acked = acked.clone();
        workers.push(std::thread::spawn(move || {
            let mut n = 0;
            // Until the kill: then connecting to the old listener fails.
            loop {
                n += 1;
                let text = format!("w{w}-{n}");
                let d = doc(&[("/x", &text)]);
                let mut req = format!(
                    "POST /restapis?mode=import HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    d.len()
                )
                .into_bytes();
                req.extend_from_slice(d.as_bytes());
                // After the kill, connecting fails: the worker stops.
                let Ok(stream) = std::net::TcpStream::connect(admin) else { return };
                drop(stream);
                let mut c = RawClient::connect(admin);
                c.send(&req);
                let Ok(r) = c.try_read_response(false) else { return };
                if r.status != 201 {
                    continue;
                }
                let id = r.json()["id"].as_str().unwrap().to_owned();
                acked.lock().unwrap().push((id.clone(), false));
                if n % 2 == 0 {
                    let body = br#"{"stageName": "live"}"#;
                    let mut req = format!(
                        "POST /restapis/{id}/deployments HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    req.extend_from_slice(body);
                    let mut c = RawClient::connect(admin);
                    c.send(&req);
                    if let Ok(r) = c.try_read_response(false) {
                        if r.status == 201 {
                            acked.lock().unwrap().push((id, true));
                        }
                    }
                }
            }
        }));
    }
    // Kill in the middle of the burst, once some changes were acknowledged
    // (counted, not timed: an fsync can take long on a loaded CI disk).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (all, deployed) = {
            let a = acked.lock().unwrap();
            (a.len(), a.iter().filter(|(_, d)| *d).count())
        };
        if (all >= 6 && deployed >= 2) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let gw = gw.kill9_and_restart();
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 6,
        "too few acknowledged changes in 60 s: {}",
        acked.len()
    );
    let admin = gw.admin.unwrap();
    let listed = call(admin, "GET", "/restapis?limit=500", b"").json();
    let ids: Vec<&str> = listed["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    for (id, deployed) in &acked {
        assert!(ids.contains(&id.as_str()), "acknowledged API {id} lost");
        if *deployed {
            let r = invoke(&gw, id, "/live/x");
            assert_eq!(
                r.status, 200,
                "acknowledged deployment of {id} not served after restart"
            );
        }
    }
}

/// PATCH of a stage's cache and method throttling (API Gateway's paths),
/// served at once and kept across a restart.
#[test]
fn stage_cache_and_throttling_settings() {
    let backend = support::Backend::start(support::Mode::Echo);
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let doc = swagger(&format!(
        r#"{{"/items": {{"get": {}}}, "/other": {{"get": {}}}}}"#,
        support::gateway::proxy_method(&format!("http://{}/items", backend.addr), ""),
        mock_method(200, "other"),
    ));
    let id = import(admin, &doc);
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    let patch = |ops: &str| {
        call(
            admin,
            "PATCH",
            &format!("/restapis/{id}/stages/prod"),
            format!(r#"{{"patchOperations": {ops}}}"#).as_bytes(),
        )
    };
    // Cache on for every method, 60 s.
    let r = patch(
        r#"[{"op": "replace", "path": "/cacheClusterEnabled", "value": "true"},
            {"op": "replace", "path": "/cacheClusterSize", "value": "1.6"},
            {"op": "replace", "path": "/*/*/caching/enabled", "value": "true"},
            {"op": "replace", "path": "/*/*/caching/ttlInSeconds", "value": "60"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["cacheClusterEnabled"], true);
    assert_eq!(v["cacheClusterSize"], "1.6");
    assert_eq!(v["methodSettings"]["*/*"]["cachingEnabled"], true);
    assert_eq!(v["methodSettings"]["*/*"]["cacheTtlInSeconds"], 60);
    for _ in 0..8 {
        assert_eq!(invoke(&gw, &id, "/prod/items").status, 200);
    }
    // Each of the two shards fills its own partition once.
    assert!(
        backend.request_count() <= 2,
        "served from the cache: {} backend calls",
        backend.request_count()
    );

    // Turned off and on again, the cache starts empty (as API Gateway's,
    // which deletes the cluster): what was cached before is not served.
    let before = backend.request_count();
    for v in ["false", "true"] {
        let r = patch(&format!(
            r#"[{{"op": "replace", "path": "/cacheClusterEnabled", "value": "{v}"}}]"#
        ));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(invoke(&gw, &id, "/prod/items").status, 200);
    assert!(
        backend.request_count() > before,
        "re-enabled cache served an entry from before"
    );
    // Booleans are true or false (any case); anything else is refused.
    let r = patch(r#"[{"op": "replace", "path": "/cacheClusterEnabled", "value": "TRUE"}]"#);
    assert_eq!(r.json()["cacheClusterEnabled"], true, "{}", r.text());
    for bad in ["maybe", "1", ""] {
        let r = patch(&format!(
            r#"[{{"op": "replace", "path": "/*/*/caching/enabled", "value": "{bad}"}}]"#
        ));
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
    // Settings that have no effect here are kept and reported as sent.
    let r = patch(
        r#"[{"op": "replace", "path": "/*/*/metrics/enabled", "value": "true"},
            {"op": "replace", "path": "/*/*/logging/loglevel", "value": "INFO"},
            {"op": "replace", "path": "/*/*/logging/dataTrace", "value": "true"},
            {"op": "replace", "path": "/tracingEnabled", "value": "true"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["methodSettings"]["*/*"]["metricsEnabled"], true);
    assert_eq!(v["methodSettings"]["*/*"]["loggingLevel"], "INFO");
    assert_eq!(v["methodSettings"]["*/*"]["dataTraceEnabled"], true);
    assert_eq!(v["tracingEnabled"], true);
    let r = patch(r#"[{"op": "replace", "path": "/*/*/logging/loglevel", "value": "BOGUS"}]"#);
    assert_eq!(r.status, 400, "{}", r.text());
    // The stages of one deployment.
    let dep = call(admin, "GET", &format!("/restapis/{id}/stages/prod"), b"").json()
        ["deploymentId"]
        .as_str()
        .unwrap()
        .to_owned();
    let listed = |q: &str| {
        call(admin, "GET", &format!("/restapis/{id}/stages{q}"), b"").json()["item"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(listed(&format!("?deploymentId={dep}")), 1);
    assert_eq!(listed("?deploymentId=nosuch"), 0);
    assert_eq!(listed(""), 1);

    // A throttle on GET /other only.
    let r = patch(
        r#"[{"op": "replace", "path": "/~1other/GET/throttling/rateLimit", "value": "1"},
            {"op": "replace", "path": "/~1other/GET/throttling/burstLimit", "value": "1"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["methodSettings"]["~1other/GET"]["throttlingRateLimit"],
        1.0
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| invoke(&gw, &id, "/prod/other").status)
        .collect();
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&429), "{statuses:?}");
    // /items is not throttled by it.
    for _ in 0..4 {
        assert_eq!(invoke(&gw, &id, "/prod/items").status, 200);
    }

    // Invalid values change nothing.
    for bad in [
        r#"[{"op": "replace", "path": "/cacheClusterSize", "value": "3"}]"#,
        r#"[{"op": "replace", "path": "/*/*/caching/ttlInSeconds", "value": "4000"}]"#,
        r#"[{"op": "replace", "path": "/~1other/GET/throttling/rateLimit", "value": "fast"}]"#,
        r#"[{"op": "replace", "path": "/other/get/throttling/rateLimit", "value": "1"}]"#,
    ] {
        assert_eq!(patch(bad).status, 400, "{bad}");
    }
    let r = call(admin, "GET", &format!("/restapis/{id}/stages/prod"), b"");
    assert_eq!(r.json()["cacheClusterSize"], "1.6");

    // Kept across a restart.
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", &format!("/restapis/{id}/stages/prod"), b"");
    assert_eq!(
        r.json()["methodSettings"]["~1other/GET"]["throttlingBurstLimit"],
        1
    );
    let statuses: Vec<u16> = (0..4)
        .map(|_| invoke(&gw, &id, "/prod/other").status)
        .collect();
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// Clients that open admin connections and send nothing cannot lock the
/// operator out: with all 64 (the default `max_connections`) taken, a new
/// connection closes the one idle the longest and is served at once, while
/// a connection inside a request (a partial head, even the oldest) is left
/// to finish. Only when every connection is inside a request is a new one
/// refused with 503.
#[test]
fn idle_admin_connections_make_room_for_new_ones() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    // The partial request is the oldest connection; it is not idle whether
    // or not its thread has read its bytes yet.
    let mut partial = RawClient::connect(admin);
    partial.send(b"GET /restapis HTTP/1.1\r\nHost: a\r\n");
    let mut idle: Vec<RawClient> = (0..63).map(|_| RawClient::connect(admin)).collect();
    let started = Instant::now();
    let r = call_with(admin, "GET", "/healthz", b"", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(call(admin, "GET", "/restapis", b"").status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered only after {:?}",
        started.elapsed()
    );
    // The connection idle the longest was closed for the first call (and
    // only it: the first call's slot was free again, given up before its
    // answer was written); the partial request, older still, was not.
    assert!(idle[0].is_closed(Duration::from_secs(5)));
    assert!(!idle[1].is_closed(Duration::from_millis(300)));
    // (Closed after its answer: its slot is given up before the answer is
    // written, so it is free once the answer is read.)
    partial.send(format!("{auth}Connection: close\r\n\r\n").as_bytes());
    let r = partial.read_response(false);
    assert_eq!(r.status, 200, "{}", r.text());

    // Every connection inside a request: 503 for the next one.
    drop(idle);
    drop(partial);
    let mut busy = Vec::new();
    for _ in 0..64 {
        let mut c = RawClient::connect(admin);
        c.send(b"GET /restapis HTTP/1.1\r\nHost: a\r\n");
        busy.push(c);
    }
    let r = call(admin, "GET", "/restapis", b"");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("too many admin connections"));
    // They finish, and the slots come back.
    for c in busy.iter_mut() {
        c.send(format!("{auth}Connection: close\r\n\r\n").as_bytes());
        assert_eq!(c.read_response(false).status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = call(admin, "GET", "/restapis", b"").status;
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still {status}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `basepath=prepend|split` on import and put-rest-api, as API Gateway
/// reads a document's `basePath` (`ignore`, the default, leaves the paths as
/// written); an unknown mode is a 400 that changes nothing. `version`
/// follows `info.version` on update.
#[test]
fn import_basepath_modes_and_version() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let doc = |base: &str, version: &str| {
        let d: serde_json::Value = serde_json::from_str(&swagger(&format!(
            r#"{{"/e": {{"get": {}}}}}"#,
            mock_method(200, "e")
        )))
        .unwrap();
        let mut d = d;
        d["basePath"] = serde_json::Value::String(base.to_owned());
        d["info"]["version"] = serde_json::Value::String(version.to_owned());
        d.to_string()
    };
    let served = |id: &str, paths: &[&str]| -> Vec<u16> {
        assert_eq!(deploy(admin, id, "s", "{}").status, 201);
        paths
            .iter()
            .map(|p| invoke(&gw, id, &format!("/s{p}")).status)
            .collect()
    };
    let import_with = |mode: &str, body: &str| {
        call(
            admin,
            "POST",
            &format!("/restapis?mode=import&basepath={mode}"),
            body.as_bytes(),
        )
    };
    let d = doc("/a/b/c", "1");
    let r = import_with("ignore", &d);
    assert_eq!(r.status, 201, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(served(&id, &["/e", "/a/b/c/e"]), vec![200, 403]);

    let r = import_with("prepend", &d);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        served(&id, &["/e", "/a/b/c/e", "/b/c/e"]),
        vec![403, 200, 403]
    );

    let r = import_with("split", &d);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        served(&id, &["/e", "/a/b/c/e", "/b/c/e"]),
        vec![403, 403, 200]
    );
    let export = call(
        admin,
        "GET",
        &format!("/restapis/{id}/stages/s/exports/swagger"),
        b"",
    )
    .json();
    assert!(export["paths"].get("/b/c/e").is_some(), "{export}");

    let before = call(admin, "GET", "/restapis", b"").json()["item"]
        .as_array()
        .unwrap()
        .len();
    let r = import_with("sideways", &d);
    assert_eq!(r.status, 400);
    assert!(r.text().contains("basepath"), "{}", r.text());
    let after = call(admin, "GET", "/restapis", b"").json()["item"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing imported");

    // put-rest-api takes it too, and the version follows the document.
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=overwrite&basepath=prepend"),
        doc("/v2", "2.0").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["version"], "2.0");
    assert_eq!(served(&id, &["/e", "/v2/e"]), vec![403, 200]);
    let got = call(admin, "GET", &format!("/restapis/{id}"), b"").json();
    assert_eq!(got["version"], "2.0");
}

/// The admin listener's settings are fixed for the process's life: a
/// reload that changes them says so in the log and the listener keeps
/// serving where it was.
#[test]
fn a_reload_reports_admin_listener_changes() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let cfg = gw.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap();
    let changed = text.replace(
        "listen = \"127.0.0.1:0\"\nstate_dir",
        "listen = \"127.0.0.1:1\"\nstate_dir",
    );
    assert_ne!(text, changed, "the admin listen line: {text}");
    std::fs::write(&cfg, changed).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    assert_eq!(gw.log_count("[admin] changed"), 1, "{:?}", gw.log());
    assert_eq!(call(admin, "GET", "/restapis", b"").status, 200);
}

/// List calls are paged as API Gateway's: 25 items by default, `limit` up
/// to 500, `position` for the next page; the pages together hold every
/// item once; a bad `limit` is a 400. The AWS CLI follows the pages.
#[test]
fn list_calls_are_paged() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    // `n` items named `{prefix}{i}` created at `path`; their ids.
    let create = |path: &str, prefix: &str, n: usize| -> Vec<String> {
        (0..n)
            .map(|i| {
                let body = format!(r#"{{"name": "{prefix}{i}"}}"#);
                let r = call(admin, "POST", path, body.as_bytes());
                assert_eq!(r.status, 201, "{}", r.text());
                r.json()["id"].as_str().unwrap().to_owned()
            })
            .collect()
    };
    let mut created = create("/restapis", "n", 30);
    created.sort();
    let ids = |v: &serde_json::Value| -> Vec<String> {
        v["item"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = call(admin, "GET", "/restapis", b"").json();
    assert_eq!(ids(&first).len(), 25);
    let position = first["position"].as_str().expect("a next page").to_owned();
    let rest = call(admin, "GET", &format!("/restapis?position={position}"), b"").json();
    assert_eq!(ids(&rest).len(), 5);
    assert!(rest.get("position").is_none(), "{rest}");
    let mut all = ids(&first);
    all.extend(ids(&rest));
    assert_eq!(all, created);

    // limit=10: three pages.
    let mut seen = Vec::new();
    let mut position: Option<String> = None;
    for _ in 0..3 {
        let path = match &position {
            Some(p) => format!("/restapis?limit=10&position={p}"),
            None => "/restapis?limit=10".to_owned(),
        };
        let page = call(admin, "GET", &path, b"").json();
        assert_eq!(ids(&page).len(), 10);
        seen.extend(ids(&page));
        position = page["position"].as_str().map(str::to_owned);
    }
    assert_eq!(position, None, "30 items fill three pages exactly");
    assert_eq!(seen, created);
    assert_eq!(
        ids(&call(admin, "GET", "/restapis?limit=500", b"").json()).len(),
        30
    );
    for bad in ["0", "501", "x"] {
        let r = call(admin, "GET", &format!("/restapis?limit={bad}"), b"");
        assert_eq!(r.status, 400, "limit={bad}: {}", r.text());
    }
    // API keys too.
    create("/apikeys", "k", 27);
    let keys = call(admin, "GET", "/apikeys", b"").json();
    assert_eq!(ids(&keys).len(), 25);
    assert!(keys["position"].is_string());

    if support::gateway::aws_cli_available() {
        let listed = support::gateway::aws_apigateway(admin, &["get-rest-apis"]);
        let mut got: Vec<String> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        got.sort();
        assert_eq!(got, created, "the AWS CLI follows the pages");
    }
}

/// API Gateway deploys only an API with methods, each integrated.
#[test]
fn apis_without_methods_or_integrations_are_not_deployed() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let r = call(admin, "POST", "/restapis", br#"{"name": "empty"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let empty = r.json()["id"].as_str().unwrap().to_owned();
    let r = deploy(admin, &empty, "s", "{}");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "The REST API doesn't contain any methods"
    );
    let bare = import(admin, &swagger(r#"{"/w": {"get": {}}}"#));
    let r = deploy(admin, &bare, "s", "{}");
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["message"], "No integration defined for method");
    assert_eq!(
        deploy(admin, &import(admin, &doc(&[("/a", "a")])), "s", "{}").status,
        201
    );
}

#[test]
fn create_and_update_rest_api_settings() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let r = call(
        admin,
        "POST",
        "/restapis",
        br#"{"name": "media", "description": "d1", "binaryMediaTypes": ["image/png", "image~1gif"],
             "apiKeySource": "AUTHORIZER", "endpointConfiguration": {"types": ["EDGE"]}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let api = r.json();
    let id = api["id"].as_str().unwrap().to_owned();
    assert_eq!(
        api["binaryMediaTypes"],
        serde_json::json!(["image/png", "image/gif"])
    );
    assert_eq!(api["apiKeySource"], "AUTHORIZER");
    assert_eq!(
        api["endpointConfiguration"]["types"],
        serde_json::json!(["EDGE"])
    );
    assert_eq!(api["description"], "d1");
    let got = call(admin, "GET", &format!("/restapis/{id}"), b"").json();
    assert_eq!(got, api);

    // What the gateway cannot honour or does not know is refused.
    for (body, said) in [
        (r#"{"name": "x", "apiKeySource": "COOKIE"}"#, "apiKeySource"),
        (
            r#"{"name": "x", "binaryMediaTypes": ["png"]}"#,
            "binaryMediaTypes",
        ),
        (
            r#"{"name": "x", "binaryMediaTypes": "image/png"}"#,
            "binaryMediaTypes",
        ),
        (
            r#"{"name": "x", "endpointConfiguration": {"types": ["LOCAL"]}}"#,
            "endpoint type",
        ),
        (
            r#"{"name": "x", "policy": "{\"Version\": \"2012-10-17\"}"}"#,
            "Invalid policy document: $.Statement",
        ),
        (
            r#"{"name": "x", "disableExecuteApiEndpoint": "yes"}"#,
            "must be true or false",
        ),
        (
            r#"{"name": "x", "cloneFrom": "nosuchapi"}"#,
            "Invalid API identifier",
        ),
        (r#"{"description": "no name"}"#, "name is required"),
        (r#"["name"]"#, "JSON object"),
    ] {
        let r = call(admin, "POST", "/restapis", body.as_bytes());
        assert!(r.status == 400 || r.status == 404, "{body}: {}", r.text());
        assert!(r.text().contains(said), "{body}: {}", r.text());
    }
    assert_eq!(
        call(admin, "GET", "/restapis", b"").json()["item"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "a refused create made an API"
    );

    // update-rest-api: every operation applies, or none.
    let patch = |ops: &str| {
        call(
            admin,
            "PATCH",
            &format!("/restapis/{id}"),
            format!(r#"{{"patchOperations": [{ops}]}}"#).as_bytes(),
        )
    };
    let r = patch(
        r#"{"op": "replace", "path": "/name", "value": "renamed"},
           {"op": "add", "path": "/binaryMediaTypes/application~1octet-stream"},
           {"op": "remove", "path": "/binaryMediaTypes/image~1png"},
           {"op": "replace", "path": "/apiKeySource", "value": "HEADER"},
           {"op": "replace", "path": "/endpointConfiguration/types/0", "value": "REGIONAL"},
           {"op": "replace", "path": "/description", "value": ""}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let api = r.json();
    assert_eq!(api["name"], "renamed");
    assert_eq!(
        api["binaryMediaTypes"],
        serde_json::json!(["image/gif", "application/octet-stream"])
    );
    assert_eq!(api["apiKeySource"], "HEADER");
    assert_eq!(
        api["endpointConfiguration"]["types"],
        serde_json::json!(["REGIONAL"])
    );
    assert!(api.get("description").is_none(), "{api}");
    for ops in [
        r#"{"op": "replace", "path": "/name", "value": "lost"}, {"op": "remove", "path": "/binaryMediaTypes/text~1html"}"#,
        r#"{"op": "replace", "path": "/name", "value": "lost"}, {"op": "replace", "path": "/apiKeySource", "value": "x"}"#,
        r#"{"op": "replace", "path": "/name", "value": "lost"}, {"op": "replace", "path": "/minimumCompressionSize", "value": "-5"}"#,
        r#"{"op": "replace", "path": "/name", "value": "lost"}, {"op": "replace", "path": "/disableExecuteApiEndpoint", "value": "maybe"}"#,
    ] {
        let r = patch(ops);
        assert!(r.status == 400 || r.status == 404, "{ops}: {}", r.text());
    }
    assert_eq!(
        call(admin, "GET", &format!("/restapis/{id}"), b"").json(),
        api
    );
    assert_eq!(
        call(
            admin,
            "PATCH",
            "/restapis/nosuchapi",
            br#"{"patchOperations": []}"#
        )
        .status,
        404
    );

    // What create and update set is the API's definition: a merge import
    // keeps it, and a deployment (and its export) carries it.
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=merge"),
        doc(&[("/hello", "hi")]).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["binaryMediaTypes"], api["binaryMediaTypes"]);
    assert_eq!(deploy(admin, &id, "s", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/s/hello").text(), "hi");
    let exported = call(
        admin,
        "GET",
        &format!("/restapis/{id}/stages/s/exports/swagger"),
        b"",
    )
    .json();
    assert_eq!(
        exported["x-amazon-apigateway-binary-media-types"],
        serde_json::json!(["image/gif", "application/octet-stream"])
    );
    assert_eq!(exported["x-amazon-apigateway-api-key-source"], "HEADER");
    // As get-export: no integrations unless asked for, basePath the stage.
    assert_eq!(exported["basePath"], "/s");
    assert!(
        exported["paths"]["/hello"]["get"]
            .get("x-amazon-apigateway-integration")
            .is_none(),
        "{exported}"
    );
    for ext in ["integrations", "apigateway", "validators,integrations"] {
        let with = call(
            admin,
            "GET",
            &format!("/restapis/{id}/stages/s/exports/swagger?extensions={ext}"),
            b"",
        )
        .json();
        assert_eq!(
            with["paths"]["/hello"]["get"]["x-amazon-apigateway-integration"]["type"], "mock",
            "{ext}: {with}"
        );
        // What an export with integrations holds imports and serves again.
        let again = import(admin, &with.to_string());
        assert_eq!(deploy(admin, &again, "t", "{}").status, 201);
        assert_eq!(invoke(&gw, &again, "/t/hello").text(), "hi");
    }

    // cloneFrom: a new API with the resources and settings of another.
    let r = call(
        admin,
        "POST",
        "/restapis",
        format!(r#"{{"name": "copy", "cloneFrom": "{id}"}}"#).as_bytes(),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let copy = r.json();
    assert_eq!(copy["name"], "copy");
    assert_eq!(copy["binaryMediaTypes"], api["binaryMediaTypes"]);
    let copy_id = copy["id"].as_str().unwrap();
    assert_eq!(deploy(admin, copy_id, "c", "{}").status, 201);
    assert_eq!(invoke(&gw, copy_id, "/c/hello").text(), "hi");
}

/// Runs `tollgate serve` on `config` and waits (at most `timeout`) for it
/// to exit: its status and stderr, or `None` (killed) if it kept running.
fn serve_expecting_exit(
    config: &std::path::Path,
    timeout: Duration,
) -> Option<(std::process::ExitStatus, String)> {
    use std::io::Read;
    let mut child = Command::new(support::gateway::bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return Some((status, err));
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Two processes on one state directory would each write whole records
/// from their own memory, losing each other's acknowledged changes: the
/// second one is refused, naming the directory, and the first one goes on.
/// The lock dies with its process (`kill -9` included).
#[test]
fn a_second_gateway_on_the_same_state_dir_is_refused() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    // Same config: ephemeral ports, the same state directory.
    let Some((status, err)) = serve_expecting_exit(&gw.config_path(), Duration::from_secs(20))
    else {
        panic!("a second gateway started on the same state directory");
    };
    assert!(!status.success(), "{err}");
    let state_dir = gw.dir.path().join("state");
    assert!(
        err.contains(&state_dir.display().to_string()) && err.contains("in use"),
        "the error names the state directory: {err}"
    );
    // The first one still serves and accepts changes.
    let r = call(
        admin,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        br#"{"patchOperations": [{"op": "replace", "path": "/variables/k", "value": "v"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(invoke(&gw, &id, "/prod/a").text(), "A");
    // Once the holder is gone (even by kill -9), a gateway starts on it.
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let stage = call(admin, "GET", &format!("/restapis/{id}/stages/prod"), b"").json();
    assert_eq!(stage["variables"]["k"], "v");
}

/// A state directory whose records do not hold together is refused at
/// start, naming the files, and nothing in it is removed: an API's
/// deployments and stages without its record (the record lost, not
/// deleted through the admin API), a stage whose deployment record is
/// missing. A `delete-rest-api` still removes everything.
#[test]
fn a_lost_record_refuses_the_start_and_destroys_nothing() {
    let mut gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    let r = deploy(admin, &id, "prod", "{}");
    assert_eq!(r.status, 201, "{}", r.text());
    let dep = r.json()["id"].as_str().unwrap().to_owned();
    let gone = import(admin, &doc(&[("/g", "G")]));
    assert_eq!(deploy(admin, &gone, "prod", "{}").status, 201);
    let r = call(admin, "DELETE", &format!("/restapis/{gone}"), b"");
    assert_eq!(r.status, 202, "{}", r.text());
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());
    let state = gw.dir.path().join("state");
    assert!(!state.join("deployments").join(&gone).exists());
    assert!(!state.join("stages").join(&gone).exists());

    // The API's record lost (a partial restore, a mistaken mv).
    let record = state.join("restapis").join(format!("{id}.json"));
    let held = gw.dir.path().join("held.json");
    std::fs::rename(&record, &held).unwrap();
    let (status, err) = serve_expecting_exit(&gw.config_path(), Duration::from_secs(20))
        .expect("the gateway started without the API's record");
    assert!(!status.success());
    assert!(err.contains(&record.display().to_string()), "{err}");
    let dep_file = state
        .join("deployments")
        .join(&id)
        .join(format!("{dep}.json"));
    let stage_file = state.join("stages").join(&id).join("prod.json");
    assert!(dep_file.exists(), "the deployment was removed");
    assert!(stage_file.exists(), "the stage was removed");
    std::fs::rename(&held, &record).unwrap();

    // The deployment a stage serves lost.
    let held = gw.dir.path().join("held-dep.json");
    std::fs::rename(&dep_file, &held).unwrap();
    let (status, err) = serve_expecting_exit(&gw.config_path(), Duration::from_secs(20))
        .expect("the gateway started with a stage whose deployment is missing");
    assert!(!status.success());
    assert!(
        err.contains(&stage_file.display().to_string())
            && err.contains(&dep_file.display().to_string()),
        "{err}"
    );
    std::fs::rename(&held, &dep_file).unwrap();

    // All back: served as before.
    let gw = gw.kill9_and_restart();
    assert_eq!(invoke(&gw, &id, "/prod/a").text(), "A");
}

/// An update-stage whose body is not JSON, or whose `patchOperations` is
/// not a list, is a 400 that changes nothing (it was an empty patch: 200
/// and the stage rewritten), as PATCH /restapis/{id} answers; so is a
/// create-stage whose body is not JSON.
#[test]
fn malformed_stage_bodies_are_refused() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    assert_eq!(deploy(admin, &id, "prod", r#"{"k": "v"}"#).status, 201);
    let stage_path = format!("/restapis/{id}/stages/prod");
    let file = gw
        .dir
        .path()
        .join("state/stages")
        .join(&id)
        .join("prod.json");
    let before = std::fs::read(&file).unwrap();
    for body in [
        &b"{nope"[..],
        br#"{"patchOperations": {"op": "replace", "path": "/variables/k", "value": "x"}}"#,
        br#"["patchOperations"]"#,
    ] {
        let r = call(admin, "PATCH", &stage_path, body);
        assert_eq!(
            r.status,
            400,
            "{}: {}",
            String::from_utf8_lossy(body),
            r.text()
        );
        assert_eq!(r.header("x-amzn-ErrorType"), Some("BadRequestException"));
    }
    assert_eq!(
        std::fs::read(&file).unwrap(),
        before,
        "the stage was rewritten"
    );
    let r = call(admin, "POST", &format!("/restapis/{id}/stages"), b"{nope");
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Invalid request body"), "{}", r.text());
}

/// create-deployment onto an existing stage applies the cache settings
/// and stage description it carries, validated as for a new stage (they
/// were ignored, with a 201), and keeps those it does not carry.
#[test]
fn a_deployment_onto_an_existing_stage_applies_its_cache_settings() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    let deployments = format!("/restapis/{id}/deployments");
    let stage_path = format!("/restapis/{id}/stages/prod");
    let r = call(
        admin,
        "POST",
        &deployments,
        br#"{"stageName": "prod", "stageDescription": "first", "variables": {"k": "v1"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let r = call(
        admin,
        "POST",
        &deployments,
        br#"{"stageName": "prod", "cacheClusterEnabled": true, "cacheClusterSize": "1.6", "stageDescription": "new desc", "variables": {"k2": "x"}}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let dep = r.json()["id"].as_str().unwrap().to_owned();
    let s = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(s["deploymentId"], dep.as_str());
    assert_eq!(s["cacheClusterEnabled"], true, "{s}");
    assert_eq!(s["cacheClusterSize"], "1.6", "{s}");
    assert_eq!(s["description"], "new desc", "{s}");
    assert_eq!(s["variables"], serde_json::json!({"k": "v1", "k2": "x"}));
    // A size API Gateway does not have: 400, nothing changes.
    let r = call(
        admin,
        "POST",
        &deployments,
        br#"{"stageName": "prod", "cacheClusterSize": "2"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(call(admin, "GET", &stage_path, b"").json(), s);
    // A deployment that names no cache setting keeps the stage's.
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    let s = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(s["cacheClusterEnabled"], true, "{s}");
    assert_eq!(s["cacheClusterSize"], "1.6", "{s}");
    assert_eq!(s["description"], "new desc", "{s}");
    // Turned off by a deployment too.
    let r = call(
        admin,
        "POST",
        &deployments,
        br#"{"stageName": "prod", "cacheClusterEnabled": false}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let s = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(s["cacheClusterEnabled"], false, "{s}");
    assert_eq!(invoke(&gw, &id, "/prod/a").text(), "A");
}

/// A stage has at most 100 variables, as in API Gateway: create-deployment
/// (a new stage, or variables added to an existing one), create-stage and
/// update-stage that would exceed it are 400 BadRequestException and
/// change nothing (they were accepted).
#[test]
fn at_most_100_stage_variables_per_stage() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    let vars = |range: std::ops::Range<usize>| {
        let m: serde_json::Map<String, serde_json::Value> = range
            .map(|i| (format!("v{i}"), serde_json::json!("x")))
            .collect();
        serde_json::Value::Object(m).to_string()
    };
    let too_many = |r: &Response| {
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.header("x-amzn-ErrorType"), Some("BadRequestException"));
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains("at most 100"), "{message}");
        assert!(message.contains("101"), "{message}");
    };
    let deployments = format!("/restapis/{id}/deployments");
    let stage_path = format!("/restapis/{id}/stages/prod");

    // A new stage by create-deployment: 101 refused, 100 taken.
    too_many(&deploy(admin, &id, "prod", &vars(0..101)));
    assert_eq!(call(admin, "GET", &stage_path, b"").status, 404);
    let listed = call(admin, "GET", &deployments, b"").json();
    assert_eq!(listed["item"], serde_json::json!([]), "no deployment left");
    let r = deploy(admin, &id, "prod", &vars(0..100));
    assert_eq!(r.status, 201, "{}", r.text());
    let stage = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(stage["variables"].as_object().unwrap().len(), 100);

    // Onto the existing stage: one more refused, replacing one taken.
    too_many(&deploy(admin, &id, "prod", &vars(100..101)));
    assert_eq!(call(admin, "GET", &stage_path, b"").json(), stage);
    let r = deploy(admin, &id, "prod", r#"{"v0": "y"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let stage = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(stage["variables"].as_object().unwrap().len(), 100);
    assert_eq!(stage["variables"]["v0"], "y");
    let dep = stage["deploymentId"].as_str().unwrap().to_owned();

    // update-stage: counted after all operations.
    let add = br#"{"patchOperations": [{"op": "add", "path": "/variables/extra", "value": "x"}]}"#;
    too_many(&call(admin, "PATCH", &stage_path, add));
    assert_eq!(call(admin, "GET", &stage_path, b"").json(), stage);
    let swap = br#"{"patchOperations": [{"op": "remove", "path": "/variables/v1"}, {"op": "add", "path": "/variables/extra", "value": "x"}]}"#;
    let r = call(admin, "PATCH", &stage_path, swap);
    assert_eq!(r.status, 200, "{}", r.text());
    let vars_now = r.json()["variables"].as_object().unwrap().clone();
    assert_eq!(vars_now.len(), 100);
    assert!(vars_now.contains_key("extra") && !vars_now.contains_key("v1"));

    // create-stage.
    let body = format!(
        r#"{{"stageName": "other", "deploymentId": "{dep}", "variables": {}}}"#,
        vars(0..101)
    );
    too_many(&call(
        admin,
        "POST",
        &format!("/restapis/{id}/stages"),
        body.as_bytes(),
    ));
    let other = format!("/restapis/{id}/stages/other");
    assert_eq!(call(admin, "GET", &other, b"").status, 404);
    assert_eq!(invoke(&gw, &id, "/other/a").status, 403, "not served");
    assert_eq!(invoke(&gw, &id, "/prod/a").text(), "A");
    // Restarted: as acknowledged.
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let stage = call(admin, "GET", &stage_path, b"").json();
    assert_eq!(stage["variables"].as_object().unwrap().len(), 100);
    assert_eq!(invoke(&gw, &id, "/prod/a").text(), "A");
}

/// put-rest-api takes the API's description from the document's
/// `info.description`, as import does: overwrite from the document (none:
/// cleared), merge from the document when it has one, else kept. It kept
/// the old description while the stored definition (and its export) said
/// the new one.
#[test]
fn put_rest_api_takes_the_description_from_the_document() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let described = |paths: &[(&str, &str)], description: Option<&str>| {
        let mut d: serde_json::Value = serde_json::from_str(&doc(paths)).unwrap();
        if let Some(text) = description {
            d["info"]["description"] = serde_json::json!(text);
        }
        d.to_string()
    };
    let id = import(admin, &described(&[("/a", "A")], Some("first")));
    let api_path = format!("/restapis/{id}");
    assert_eq!(
        call(admin, "GET", &api_path, b"").json()["description"],
        "first"
    );
    let r = call(
        admin,
        "PATCH",
        &api_path,
        br#"{"patchOperations": [{"op": "replace", "path": "/description", "value": "olddesc"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let put = |mode: &str, body: String| {
        let r = call(
            admin,
            "PUT",
            &format!("{api_path}?mode={mode}"),
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let got = call(admin, "GET", &api_path, b"").json();
        assert_eq!(r.json()["description"], got["description"]);
        got
    };
    let api = put("overwrite", described(&[("/b", "B")], Some("newdesc")));
    assert_eq!(api["description"], "newdesc", "{api}");
    let api = put("merge", described(&[("/c", "C")], Some("merged")));
    assert_eq!(api["description"], "merged", "{api}");
    let api = put("merge", described(&[("/d", "D")], None));
    assert_eq!(api["description"], "merged", "merge keeps it: {api}");
    let api = put("overwrite", described(&[("/e", "E")], None));
    assert!(
        api.get("description").is_none(),
        "overwrite resets it: {api}"
    );
    let api = put("merge", described(&[("/f", "F")], Some("kept")));
    assert_eq!(api["description"], "kept", "{api}");
    // The deployed definition says the same; and it is durable.
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/prod/f").text(), "F");
    let exported = call(
        admin,
        "GET",
        &format!("/restapis/{id}/stages/prod/exports/swagger"),
        b"",
    )
    .json();
    assert_eq!(exported["info"]["description"], "kept");
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    assert_eq!(
        call(admin, "GET", &api_path, b"").json()["description"],
        "kept"
    );
}

/// Method-settings paths as Terraform sends them (the resource path
/// without its leading slash and without `~1`, then the method and the
/// setting) are taken as the `~1` form is, reported under the key API
/// Gateway reports (`y/z/GET`), and served; removing a setting that does
/// not exist is API Gateway's 400.
#[test]
fn method_settings_in_terraform_form() {
    let gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/x", "X"), ("/y/z", "Z")]));
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    let stage_path = format!("/restapis/{id}/stages/prod");
    let patch = |ops: &str| {
        call(
            admin,
            "PATCH",
            &stage_path,
            format!(r#"{{"patchOperations": {ops}}}"#).as_bytes(),
        )
    };
    let r = patch(
        r#"[{"op": "replace", "path": "/x/GET/caching/enabled", "value": "true"},
            {"op": "replace", "path": "/y/z/GET/metrics/enabled", "value": "true"},
            {"op": "replace", "path": "/y/z/GET/throttling/rateLimit", "value": "1"},
            {"op": "replace", "path": "/y/z/GET/throttling/burstLimit", "value": "1"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let settings = &r.json()["methodSettings"];
    assert_eq!(settings["x/GET"]["cachingEnabled"], true, "{settings}");
    assert_eq!(settings["y/z/GET"]["metricsEnabled"], true, "{settings}");
    assert_eq!(settings["y/z/GET"]["throttlingBurstLimit"], 1, "{settings}");
    // Served: GET /y/z is throttled, GET /x is not.
    let statuses: Vec<u16> = (0..4)
        .map(|_| invoke(&gw, &id, "/prod/y/z").status)
        .collect();
    assert_eq!(statuses[0], 200);
    assert!(statuses.contains(&429), "{statuses:?}");
    for _ in 0..4 {
        assert_eq!(invoke(&gw, &id, "/prod/x").status, 200);
    }
    // The `~1` spelling of the same method changes the same entry.
    let r = patch(r#"[{"op": "replace", "path": "/~1x/GET/caching/ttlInSeconds", "value": "60"}]"#);
    assert_eq!(r.status, 200, "{}", r.text());
    let settings = r.json()["methodSettings"].clone();
    assert_eq!(settings["x/GET"]["cacheTtlInSeconds"], 60, "{settings}");
    assert!(settings.get("~1x/GET").is_none(), "{settings}");
    // Removing what does not exist: API Gateway's 400, nothing changes.
    for path in ["/~1nothere/GET", "/nothere/GET/caching/enabled", "/x/POST"] {
        let r = patch(&format!(r#"[{{"op": "remove", "path": "{path}"}}]"#));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(
            r.text().contains("Cannot remove method setting")
                && r.text()
                    .contains("because there is no method setting for this method"),
            "{}",
            r.text()
        );
    }
    // Removing a whole method's settings in that form.
    let r = patch(r#"[{"op": "remove", "path": "/y/z/GET"}]"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["methodSettings"].get("y/z/GET").is_none());
    for _ in 0..4 {
        assert_eq!(invoke(&gw, &id, "/prod/y/z").status, 200);
    }
}

/// `tollgate check` reads the admin state as `serve` does: it lists the
/// APIs and stages the state deploys (also while a gateway holds the
/// directory), and fails, naming the file, where `serve` would refuse to
/// start; it changes nothing in the directory.
#[test]
fn check_reads_the_admin_state() {
    let mut gw = admin_gateway();
    let admin = gw.admin.expect("admin listener");
    let id = import(admin, &doc(&[("/a", "A")]));
    assert_eq!(deploy(admin, &id, "prod", r#"{"k": "v"}"#).status, 201);
    let check = |config: &std::path::Path| {
        let out = Command::new(support::gateway::bin())
            .args(["check", "--config"])
            .arg(config)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, out, err) = check(&gw.config_path());
    assert!(ok, "{out}\n{err}");
    assert!(out.contains(&format!("API {id} ")), "{out}");
    assert!(out.contains("stage prod  variables: k=v"), "{out}");
    assert!(
        out.contains("1 REST API(s), 1 deployment(s), 1 stage(s)"),
        "{out}"
    );
    gw.signal("TERM");
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());

    // A corrupt record: the error serve gives, and nothing is touched.
    let state = gw.dir.path().join("state");
    let record = state.join("restapis").join(format!("{id}.json"));
    let good = std::fs::read(&record).unwrap();
    std::fs::write(&record, "xx").unwrap();
    let torn = state.join("restapis").join(".x.json.tmp-1-2");
    std::fs::write(&torn, "{").unwrap();
    let (ok, out, err) = check(&gw.config_path());
    assert!(!ok, "{out}");
    assert!(err.contains(&record.display().to_string()), "{err}");
    assert!(torn.exists(), "check removed a file");
    // A record gone: deployments and stages without it are an error, and kept.
    std::fs::remove_file(&record).unwrap();
    let (ok, out, err) = check(&gw.config_path());
    assert!(!ok, "{out}");
    assert!(err.contains(&record.display().to_string()), "{err}");
    assert!(state.join("stages").join(&id).join("prod.json").exists());
    std::fs::write(&record, good).unwrap();
    let (ok, out, err) = check(&gw.config_path());
    assert!(ok, "{out}\n{err}");
    assert!(torn.exists(), "check removed a file");
}

/// A client that writes its whole upload before reading (Python's
/// `urllib`) gets the admin API's early answer: 413 for a document over
/// 6 MB, 403 for a bad token. The listener closes in stages, reading and
/// dropping the rest of the declared body, instead of closing with unread
/// data, which resets the connection and loses the answer.
#[test]
fn an_early_admin_answer_reaches_a_client_still_uploading() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let body = vec![b'a'; 8 << 20];
    for (token, status) in [(ADMIN_TOKEN, 413), ("nope-nope-nope-nope", 403)] {
        for _ in 0..3 {
            let head = format!(
                "POST /restapis?mode=import HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            let text = support::client::upload_then_read(
                admin,
                head.as_bytes(),
                &body,
                &status.to_string(),
            );
            assert!(
                text.starts_with(&format!("HTTP/1.1 {status} ")),
                "{text:.80}"
            );
        }
    }
    // A chunked upload has no declared length: up to four times the 6 MB
    // document limit is read and dropped (it was one limit's worth, and a
    // 20 MiB chunked upload lost its answer to a reset).
    let chunked = support::client::chunked_body(b'c', 20 << 20);
    let text = support::client::upload_then_read(
        admin,
        b"POST /restapis?mode=import HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer nope-nope-nope-nope\r\nTransfer-Encoding: chunked\r\n\r\n",
        &chunked,
        "chunked 20 MiB",
    );
    assert!(text.starts_with("HTTP/1.1 403 "), "{text:.80}");
}

/// `get-request-validators` / `get-request-validator` list the document's
/// `x-amazon-apigateway-request-validators` with ids, and a method's
/// `requestValidatorId` is one of those ids (not the validator's name).
#[test]
fn request_validators_have_ids_that_methods_name() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let method = mock_method(200, "{}").replacen(
        '{',
        r#"{"x-amazon-apigateway-request-validator": "params-only", "#,
        1,
    );
    let doc = support::gateway::swagger_with(
        &format!(r#"{{"/v": {{"get": {method}}}}}"#),
        r#""x-amazon-apigateway-request-validators": {
            "params-only": {"validateRequestParameters": true, "validateRequestBody": false},
            "all": {"validateRequestParameters": true, "validateRequestBody": true}}"#,
    );
    let id = import(admin, &doc);
    let items = list_items(admin, &format!("/restapis/{id}/requestvalidators"));
    assert_eq!(items.len(), 2);
    let params_only = items.iter().find(|v| v["name"] == "params-only").unwrap();
    assert_eq!(params_only["validateRequestParameters"], true);
    assert_eq!(params_only["validateRequestBody"], false);
    let vid = params_only["id"].as_str().unwrap();
    assert_eq!(vid.len(), 6);
    assert_one_and_missing(
        admin,
        &format!("/restapis/{id}/requestvalidators"),
        vid,
        params_only,
    );
    let v = list_items(admin, &format!("/restapis/{id}/resources?embed=methods"))
        .into_iter()
        .find(|r| r["path"] == "/v")
        .unwrap();
    assert_eq!(v["resourceMethods"]["GET"]["requestValidatorId"], vid);
}

/// An export without `extensions=authorizers` keeps each security
/// definition's `x-amazon-apigateway-authtype`, as API Gateway's: imported
/// again, an IAM method still needs a signature, and a Lambda authorizer's
/// methods (whose authorizer was left out) are not created. Before, the
/// round trip served both open.
#[test]
fn an_export_imported_again_keeps_its_methods_protected() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let secured = |scheme: &str, text: &str| {
        mock_method(200, text).replacen('{', &format!(r#"{{"security": [{{"{scheme}": []}}], "#), 1)
    };
    let paths = format!(
        r#"{{"/iam": {{"get": {}}}, "/token": {{"get": {}}}, "/open": {{"get": {}}}}}"#,
        secured("sigv4", "iam"),
        secured("tokenauth", "token"),
        mock_method(200, "open"),
    );
    let doc = support::gateway::swagger_with(
        &paths,
        r#""securityDefinitions": {
            "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"},
            "tokenauth": {"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token",
                    "authorizerUri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:a/invocations"}}
        }"#,
    );
    let id = import(admin, &doc);
    assert_eq!(deploy(admin, &id, "live", "{}").status, 201);
    // With the authorizers first (the round trip keeps everything), then
    // without (the authorizer is left out from then on).
    for extensions in ["integrations,authorizers", "integrations"] {
        let r = call(
            admin,
            "GET",
            &format!("/restapis/{id}/stages/live/exports/swagger?extensions={extensions}"),
            b"",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        let exported = r.text();
        let r = call(
            admin,
            "PUT",
            &format!("/restapis/{id}?mode=overwrite"),
            exported.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(deploy(admin, &id, "live", "{}").status, 201);
        let iam = invoke(&gw, &id, "/live/iam");
        assert_eq!(iam.status, 403, "{extensions}: {}", iam.text());
        assert_eq!(iam.json()["message"], "Missing Authentication Token");
        let token = invoke(&gw, &id, "/live/token");
        if extensions.contains("authorizers") {
            assert_eq!(token.status, 401, "{extensions}: {}", token.text());
        } else {
            assert_eq!(token.status, 403, "{extensions}: {}", token.text());
        }
        assert_eq!(invoke(&gw, &id, "/live/open").text(), "open");
    }
}

/// `get-authorizers` / `get-authorizer` list a definition's Lambda and
/// Cognito authorizers, and `get-method` names its authorizer by that id.
#[test]
fn authorizers_are_listed_as_api_gateway_lists_them() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let paths = format!(
        r#"{{"/token": {{"get": {}}}, "/pool": {{"get": {}}}}}"#,
        mock_method(200, "t").replacen('{', r#"{"security": [{"tokenauth": []}], "#, 1),
        mock_method(200, "p").replacen('{', r#"{"security": [{"pool": []}], "#, 1),
    );
    let doc = support::gateway::swagger_with(
        &paths,
        r#""securityDefinitions": {
            "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
            "tokenauth": {"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token", "authorizerResultTtlInSeconds": 60,
                    "authorizerUri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:a/invocations"}},
            "pool": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_P"]}}
        }"#,
    );
    let id = import(admin, &doc);
    let items = list_items(admin, &format!("/restapis/{id}/authorizers"));
    assert_eq!(items.len(), 2, "{items:?}");
    let token = items.iter().find(|a| a["name"] == "tokenauth").unwrap();
    assert_eq!(token["type"], "TOKEN");
    assert_eq!(token["identitySource"], "method.request.header.Auth");
    assert_eq!(token["authorizerResultTtlInSeconds"], 60);
    assert_eq!(token["authType"], "custom");
    let pool = items.iter().find(|a| a["name"] == "pool").unwrap();
    assert_eq!(pool["type"], "COGNITO_USER_POOLS");
    assert_eq!(
        pool["providerARNs"],
        serde_json::json!(["arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_P"])
    );
    assert_one_and_missing(
        admin,
        &format!("/restapis/{id}/authorizers"),
        token["id"].as_str().unwrap(),
        token,
    );
    // get-method names the authorizer by its id.
    let resources = list_items(admin, &format!("/restapis/{id}/resources"));
    let r = resources.iter().find(|r| r["path"] == "/token").unwrap();
    let m = call(
        admin,
        "GET",
        &format!(
            "/restapis/{id}/resources/{}/methods/GET",
            r["id"].as_str().unwrap()
        ),
        b"",
    );
    assert_eq!(m.json()["authorizationType"], "CUSTOM");
    assert_eq!(m.json()["authorizerId"], token["id"]);
    if support::gateway::aws_cli_available() {
        let listed =
            support::gateway::aws_apigateway(admin, &["get-authorizers", "--rest-api-id", &id]);
        assert_eq!(
            listed["items"].as_array().map(Vec::len),
            Some(2),
            "{listed}"
        );
    }
}

/// `create-rest-api` / `update-rest-api` take a resource policy (JSON
/// text, as the AWS CLI sends it), refuse one that does not compile, give
/// it back as text, and a deployment enforces it.
#[test]
fn a_resource_policy_set_through_the_admin_api_is_enforced_once_deployed() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let allow_get = serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*/GET/*"}
    ]})
    .to_string();
    let body = serde_json::json!({"name": "guarded", "policy": allow_get}).to_string();
    let r = call(admin, "POST", "/restapis", body.as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    let api = r.json();
    let id = api["id"].as_str().unwrap().to_owned();
    let given: serde_json::Value = serde_json::from_str(api["policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        given,
        serde_json::from_str::<serde_json::Value>(&allow_get).unwrap()
    );
    merge_hello_and_deploy(admin, &id);
    assert_eq!(invoke(&gw, &id, "/s/hello").text(), "hi");
    // Another stage on the same (soon older) deployment.
    assert_eq!(deploy(admin, &id, "t", "{}").status, 201);

    let patch = |value: &str| {
        let body = serde_json::json!({"patchOperations": [{"op": "replace", "path": "/policy", "value": value}]});
        call(
            admin,
            "PATCH",
            &format!("/restapis/{id}"),
            body.to_string().as_bytes(),
        )
    };
    // One that does not compile changes nothing.
    let r = patch(
        r#"{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*", "Condition": {"IpAddress": {"aws:SourceIp": "nonsense"}}}]}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .contains("Statement[0].Condition.IpAddress.aws:SourceIp"),
        "{}",
        r.text()
    );
    // A deny takes effect with the next deployment, as in API Gateway.
    let r = patch(
        r#"{"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(invoke(&gw, &id, "/s/hello").status, 200);
    assert_eq!(deploy(admin, &id, "s", "{}").status, 201);
    let r = invoke(&gw, &id, "/s/hello");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("with an explicit deny"), "{}", r.text());
    // The policy is the API's: the stage still on the older deployment is
    // covered too.
    assert_eq!(invoke(&gw, &id, "/t/hello").status, 403);
    // A blank policy removes it.
    let r = patch("");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json().get("policy").is_none(), "{}", r.text());
    assert_eq!(deploy(admin, &id, "s", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/s/hello").text(), "hi");
}

/// The admin API takes presigned URLs (service `apigateway`), the body's
/// hash signed as with the header form: a create with a body passes, the
/// same URL with another body does not.
#[test]
fn presigned_admin_calls_sign_their_body() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let body = r#"{"name": "presigned"}"#;
    let Some(url) = support::aws::botocore_presigned_request(
        "POST",
        "http://admin/restapis",
        body,
        "apigateway",
        ADMIN_KEY_ID,
        ADMIN_SECRET,
        60,
    ) else {
        return;
    };
    let target = url.strip_prefix("http://admin").unwrap();
    let r = call_with(admin, "POST", target, br#"{"name": "tampered"}"#, "");
    assert_eq!(r.status, 403, "{}", r.text());
    let r = call_with(admin, "POST", target, body.as_bytes(), "");
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "presigned");
}

/// `disableExecuteApiEndpoint` is kept in the definition, as an import's
/// `x-amazon-apigateway-endpoint-configuration`, and reported back.
#[test]
fn a_disabled_default_endpoint_is_kept_and_reported() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let r = call(
        admin,
        "POST",
        "/restapis",
        br#"{"name": "hidden", "disableExecuteApiEndpoint": true}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["disableExecuteApiEndpoint"], true);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    merge_hello_and_deploy(admin, &id);
    assert_eq!(invoke(&gw, &id, "/s/hello").status, 403);
    let r = set_disable_execute_api_endpoint(admin, &id, "false");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["disableExecuteApiEndpoint"], false);
    assert_eq!(deploy(admin, &id, "s", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/s/hello").text(), "hi");
}

/// Merges a MOCK `GET /hello` ("hi") into API `id` and deploys it to
/// stage `s`.
fn merge_hello_and_deploy(admin: SocketAddr, id: &str) {
    let r = call(
        admin,
        "PUT",
        &format!("/restapis/{id}?mode=merge"),
        doc(&[("/hello", "hi")]).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(deploy(admin, id, "s", "{}").status, 201);
}

/// `disableExecuteApiEndpoint` is the API's, for every stage: once a stage
/// is updated after it is set, no stage answers on the default endpoint,
/// whatever deployment it serves (a stage rolled back to an older one
/// included), as in API Gateway. `True` is taken as the AWS CLI's
/// documentation writes it.
#[test]
fn a_disabled_default_endpoint_covers_every_stage_and_rollbacks() {
    let gw = admin_gateway();
    let admin = gw.admin.unwrap();
    let id = import(admin, &doc(&[("/hello", "hi")]));
    let r = deploy(admin, &id, "prod", "{}");
    assert_eq!(r.status, 201, "{}", r.text());
    let first = r.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(deploy(admin, &id, "dev", "{}").status, 201);
    let r = set_disable_execute_api_endpoint(admin, &id, "True");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["disableExecuteApiEndpoint"], true);
    assert_eq!(deploy(admin, &id, "prod", "{}").status, 201);
    assert_eq!(invoke(&gw, &id, "/prod/hello").status, 403);
    assert_eq!(
        invoke(&gw, &id, "/dev/hello").status,
        403,
        "a stage on the old deployment"
    );
    let r = call(
        admin,
        "PATCH",
        &format!("/restapis/{id}/stages/prod"),
        format!(r#"{{"patchOperations": [{{"op": "replace", "path": "/deploymentId", "value": "{first}"}}]}}"#).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(invoke(&gw, &id, "/prod/hello").status, 403, "rolled back");
}

/// `update-rest-api` of `/disableExecuteApiEndpoint` to `value`.
fn set_disable_execute_api_endpoint(admin: SocketAddr, id: &str, value: &str) -> Response {
    let body = serde_json::json!({"patchOperations": [
        {"op": "replace", "path": "/disableExecuteApiEndpoint", "value": value}
    ]});
    call(
        admin,
        "PATCH",
        &format!("/restapis/{id}"),
        body.to_string().as_bytes(),
    )
}

/// `GET {collection}/{item_id}` answers `item`, and an unknown id 404.
fn assert_one_and_missing(
    admin: SocketAddr,
    collection: &str,
    item_id: &str,
    item: &serde_json::Value,
) {
    let one = call(admin, "GET", &format!("{collection}/{item_id}"), b"");
    assert_eq!(one.json(), *item);
    let missing = call(admin, "GET", &format!("{collection}/nope00"), b"");
    assert_eq!(missing.status, 404);
}
