//! Routing through a running gateway: API by Host, stage by first segment,
//! resource precedence (literal > {param} > {proxy+}), method precedence
//! (explicit > ANY), trailing slashes, and 403 Missing Authentication Token
//! for every kind of miss.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, get_with, send};
use support::gateway::{mock_method, swagger};
use support::Gateway;

/// A MOCK method whose body names the route it belongs to.
fn named(name: &str) -> String {
    mock_method(200, &format!("{{\"route\": \"{name}\", \"resource\": \"$context.resourcePath\", \"stage\": \"$context.stage\", \"api\": \"$context.apiId\"}}"))
}

fn gateway() -> Gateway {
    let paths = format!(
        r#"{{
        "/": {{"get": {root}}},
        "/pets": {{"get": {pets_get}, "post": {pets_post}}},
        "/pets/{{petId}}": {{"get": {pet}, "x-amazon-apigateway-any-method": {pet_any}}},
        "/pets/mine": {{"get": {mine}}},
        "/pets/{{petId}}/toys": {{"get": {toys}}},
        "/files/{{path+}}": {{"get": {files}}},
        "/{{proxy+}}": {{"x-amazon-apigateway-any-method": {catch}}}
    }}"#,
        root = named("root"),
        pets_get = named("pets-get"),
        pets_post = named("pets-post"),
        pet = named("pet-get"),
        pet_any = named("pet-any"),
        mine = named("mine"),
        toys = named("toys"),
        files = named("files"),
        catch = named("catch-all"),
    );
    let other = format!(r#"{{"/hello": {{"get": {}}}}}"#, named("other-hello"));
    Gateway::builder()
        .api("shop", &swagger(&paths))
        .api("other", &swagger(&other))
        .stage("shop", "prod", &[])
        .stage("shop", "dev", &[])
        .stage("other", "v1", &[])
        .default_api("shop")
        .start()
}

#[test]
fn precedence_table() {
    let gw = gateway();
    let cases: &[(&str, &str, &str, &str)] = &[
        // method, path, expected route, expected resource path
        ("GET", "/prod", "root", "/"),
        ("GET", "/prod/", "root", "/"),
        ("GET", "/prod/pets", "pets-get", "/pets"),
        ("GET", "/prod/pets/", "pets-get", "/pets"),
        ("POST", "/prod/pets", "pets-post", "/pets"),
        ("GET", "/prod/pets/mine", "mine", "/pets/mine"),
        ("GET", "/prod/pets/42", "pet-get", "/pets/{petId}"),
        ("DELETE", "/prod/pets/42", "pet-any", "/pets/{petId}"),
        ("PATCH", "/prod/pets/42", "pet-any", "/pets/{petId}"),
        ("GET", "/prod/pets/42/toys", "toys", "/pets/{petId}/toys"),
        ("GET", "/prod/pets/42/toys/", "toys", "/pets/{petId}/toys"),
        ("GET", "/prod/pets/42/other", "catch-all", "/{proxy+}"),
        ("GET", "/prod/files/a/b/c.txt", "files", "/files/{path+}"),
        ("GET", "/prod/anything/at/all", "catch-all", "/{proxy+}"),
        ("PUT", "/prod/anything", "catch-all", "/{proxy+}"),
        ("GET", "/dev/pets/mine", "mine", "/pets/mine"),
    ];
    for (method, path, route, resource) in cases {
        let r = send(gw.addr, method, path, "", b"");
        assert_eq!(r.status, 200, "{method} {path}: {}", r.text());
        let v = r.json();
        assert_eq!(v["route"], *route, "{method} {path}");
        assert_eq!(v["resource"], *resource, "{method} {path}");
    }
    let v = get(gw.addr, "/dev/pets").json();
    assert_eq!(v["stage"], "dev");
    assert_eq!(v["api"], "shop");
}

#[test]
fn misses_are_403_missing_authentication_token() {
    let gw = gateway();
    for (method, path, host) in [
        ("GET", "/", "x"),                              // no stage
        ("GET", "/staging/pets", "x"),                  // unknown stage
        ("POST", "/prod/pets/mine", "x"),               // resource without that method
        ("HEAD", "/prod/pets", "x"),                    // HEAD is not GET
        ("GET", "/v1/pets", "other.execute-api.local"), // other API has no /pets, no catch-all
        (
            "GET",
            "/prod/hello",
            "nope.execute-api.eu-west-1.amazonaws.com",
        ), // unknown API id
        ("GET", "/prod/pets", "other.execute-api.local"), // stage of another API
    ] {
        let mut c = support::RawClient::connect(gw.addr);
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        c.send(req.as_bytes());
        let r = c.read_response(method == "HEAD");
        assert_eq!(r.status, 403, "{method} {path} Host: {host}");
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("MissingAuthenticationTokenException")
        );
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.header("x-amzn-RequestId").is_some_and(|v| v.len() == 36));
        if method != "HEAD" {
            assert_eq!(
                r.json(),
                serde_json::json!({"message": "Missing Authentication Token"})
            );
        }
    }
}

#[test]
fn host_names_the_api() {
    let gw = gateway();
    let r = get_with(gw.addr, "/v1/hello", "");
    assert_eq!(r.status, 403, "default API has no v1 stage");
    let mut c = support::RawClient::connect(gw.addr);
    let r = c.request(
        b"GET /v1/hello HTTP/1.1\r\nHost: other.execute-api.eu-west-1.amazonaws.com\r\n\r\n",
    );
    assert_eq!(r.json()["route"], "other-hello");
    // Case-insensitive marker, port allowed.
    let r = c.request(b"GET /v1/hello HTTP/1.1\r\nHost: other.Execute-Api.localhost:8080\r\n\r\n");
    assert_eq!(r.json()["api"], "other");
    // Host names are case-insensitive: the API id too.
    let r = c.request(b"GET /v1/hello HTTP/1.1\r\nHost: OTHER.EXECUTE-API.LOCALHOST\r\n\r\n");
    assert_eq!(r.json()["api"], "other");
    // Absolute-form target names the host too.
    let r = c.request(b"GET http://other.execute-api.x/v1/hello HTTP/1.1\r\nHost: ignored\r\n\r\n");
    assert_eq!(r.json()["route"], "other-hello");
}

#[test]
fn without_default_api_unknown_hosts_get_403() {
    let paths = format!(r#"{{"/a": {{"get": {}}}}}"#, named("a"));
    let gw = Gateway::builder()
        .api("x", &swagger(&paths))
        .stage("x", "s", &[])
        .start();
    assert_eq!(get(gw.addr, "/s/a").status, 403);
    let mut c = support::RawClient::connect(gw.addr);
    let r = c.request(b"GET /s/a HTTP/1.1\r\nHost: x.execute-api.test\r\n\r\n");
    assert_eq!(r.json()["route"], "a");
}

#[test]
fn percent_encoded_paths_match_decoded_literals_and_keep_params_raw() {
    let gw = gateway();
    let r = get(gw.addr, "/prod/p%65ts/mine");
    assert_eq!(r.json()["route"], "mine");
    let r = get(gw.addr, "/prod/pets/a%20b");
    assert_eq!(r.json()["route"], "pet-get");
}
