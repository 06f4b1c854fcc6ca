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

/// `[[domain_names]]`: a custom domain's base path mappings choose the API
/// and stage (a mapping without a stage takes it from the path), the
/// longest base path of whole segments wins, `(none)` serves the whole
/// domain, a wildcard domain every subdomain; a custom domain's path that
/// no mapping takes is a 403; `Host: {id}.execute-api.*` keeps working,
/// and WebSocket APIs are mapped the same way.
#[test]
fn custom_domain_names_map_base_paths_to_apis_and_stages() {
    let show = |name: &str| {
        mock_method(200, &format!("{{\"route\": \"{name}\", \"api\": \"$context.apiId\", \"stage\": \"$context.stage\", \"resource\": \"$context.resourcePath\", \"domain\": \"$context.domainName\", \"path\": \"$context.path\"}}"))
    };
    let a = swagger(&format!(
        r#"{{"/pets": {{"get": {}}}, "/v22/pets": {{"get": {}}}}}"#,
        show("a-pets"),
        show("a-v22")
    ));
    let b = swagger(&format!(r#"{{"/pets": {{"get": {}}}}}"#, show("b-pets")));
    let gw = Gateway::builder()
        .api("a", &a)
        .stage("a", "prod", &[])
        .api("b", &b)
        .stage("b", "beta", &[])
        .stage("b", "live", &[])
        .extra(
            r#"[[websocket_apis]]
id = "chat"
stages = [{ name = "prod" }]
[[websocket_apis.routes]]
key = "whoami"
integration = { type = "mock", response_template = "{\"stage\": \"$context.stage\", \"domain\": \"$context.domainName\"}" }
route_response = true
[[domain_names]]
name = "API.example.com"
mappings = [
  { base_path = "(none)", api = "a", stage = "prod" },
  { base_path = "/v2/", api = "b", stage = "beta" },
  { base_path = "v3", api = "b" },
]
[[domain_names]]
name = "*.example.org"
mappings = [{ api = "a", stage = "prod" }]
[[domain_names]]
name = "partial.example.net"
mappings = [{ base_path = "v1", api = "b", stage = "live" }]
[[domain_names]]
name = "chat.example.com"
mappings = [{ api = "chat", stage = "prod" }]
"#,
        )
        .start();
    let at = |host: &str, path: &str| {
        let r = support::RawClient::connect(gw.addr).request(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let v: serde_json::Value = if r.status == 200 {
            serde_json::from_str(&r.text()).unwrap()
        } else {
            serde_json::Value::Null
        };
        (r.status, v)
    };
    let (status, v) = at("api.example.com", "/pets");
    assert_eq!(status, 200);
    assert_eq!(
        (&v["route"], &v["api"], &v["stage"], &v["resource"]),
        (
            &"a-pets".into(),
            &"a".into(),
            &"prod".into(),
            &"/pets".into()
        )
    );
    assert_eq!(v["domain"], "api.example.com");
    // Port, case, and a trailing dot on the host.
    assert_eq!(at("Api.Example.com:8443", "/pets").1["route"], "a-pets");
    assert_eq!(at("api.example.com.", "/pets").1["route"], "a-pets");
    // A base path with its stage; the longest match of whole segments.
    let (_, v) = at("api.example.com", "/v2/pets");
    assert_eq!(
        (&v["route"], &v["stage"]),
        (&"b-pets".into(), &"beta".into())
    );
    assert_eq!(v["path"], "/v2/pets");
    assert_eq!(at("api.example.com", "/v22/pets").1["route"], "a-v22");
    // No stage in the mapping: the next segment is the stage.
    let (_, v) = at("api.example.com", "/v3/live/pets");
    assert_eq!(
        (&v["route"], &v["stage"]),
        (&"b-pets".into(), &"live".into())
    );
    assert_eq!(at("api.example.com", "/v3/nostage/pets").0, 403);
    assert_eq!(at("api.example.com", "/v3").0, 403);
    // The stage is not in the path of a mapping that names it.
    assert_eq!(at("api.example.com", "/prod/pets").0, 403);
    // Wildcard domains; a domain with no mapping for the path.
    assert_eq!(at("x.example.org", "/pets").1["route"], "a-pets");
    assert_eq!(at("a.b.example.org", "/pets").1["route"], "a-pets");
    assert_eq!(at("example.org", "/prod/pets").0, 403);
    assert_eq!(at("partial.example.net", "/pets").0, 403);
    assert_eq!(at("partial.example.net", "/v1/pets").1["stage"], "live");
    // The default endpoint still serves.
    assert_eq!(at("b.execute-api.local", "/beta/pets").1["route"], "b-pets");

    // A WebSocket API on its custom domain: the upgrade on `/`.
    let stream = std::net::TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let req = async_tungstenite::tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://{}/", gw.addr))
        .header("Host", "chat.example.com")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            async_tungstenite::tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, _) = async_tungstenite::tungstenite::client(req, stream)
        .map_err(|e| format!("{e:?}"))
        .unwrap();
    ws.send(async_tungstenite::tungstenite::Message::text(
        r#"{"action": "whoami"}"#,
    ))
    .unwrap();
    let reply = ws.read().unwrap();
    let v: serde_json::Value = serde_json::from_str(reply.to_text().unwrap()).unwrap();
    assert_eq!(
        (&v["stage"], &v["domain"]),
        (&"prod".into(), &"chat.example.com".into())
    );
}

#[test]
fn domain_name_mistakes_are_errors_with_their_json_path() {
    for (toml, needle, ok) in [
        (
            "[[domain_names]]\nname = \"api.example.com:443\"\nmappings = []\n",
            "$.domain_names[0].name: `api.example.com:443` is not a domain name",
            false,
        ),
        (
            "[[domain_names]]\nname = \"a.example.com\"\nmappings = [{ api = \"a\", stage = \"prod\" }, { base_path = \"(none)\", api = \"a\" }]\n",
            "$.domain_names[0].mappings[1].base_path: base path `(none)` is mapped twice",
            false,
        ),
        (
            "[[domain_names]]\nname = \"a.example.com\"\nmappings = [{ base_path = \"v1/../x\", api = \"a\" }]\n",
            "$.domain_names[0].mappings[0].base_path: `v1/../x`",
            false,
        ),
        // A bad name does not hide its mappings' problems.
        (
            "[[domain_names]]\nname = \"-a.example.com\"\nmappings = [{ base_path = \"a//b\", api = \"a\" }]\n",
            "$.domain_names[0].mappings[0].base_path: `a//b`",
            false,
        ),
        (
            "[[domain_names]]\nname = \"x.execute-api.example.com\"\nmappings = []\n",
            "$.domain_names[0].name: `x.execute-api.example.com`: `{api id}.execute-api.*` hosts name APIs",
            false,
        ),
        (
            "[[domain_names]]\nname = \"a.example.com\"\nmappings = [{ api = \"nosuch\", stage = \"prod\" }, { base_path = \"x\", api = \"a\", stage = \"test\" }]\n",
            "$.domain_names[0].mappings[0].api: no API `nosuch` in the config",
            true,
        ),
    ] {
        let (_dir, config) = Gateway::builder()
            .api("a", &swagger(&format!(r#"{{"/p": {{"get": {}}}}}"#, mock_method(200, "p"))))
            .stage("a", "prod", &[])
            .extra(toml)
            .write();
        let (passed, text) = support::gateway::check(&config);
        assert_eq!(passed, ok, "{text}");
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
        if ok {
            assert!(
                text.contains("$.domain_names[0].mappings[1].stage: API `a` has no stage `test`"),
                "{text}"
            );
        }
    }
}

/// `disableExecuteApiEndpoint: true`: the API answers only through its
/// custom domains, neither on `Host: {id}.execute-api.*` nor as the
/// default API.
#[test]
fn a_disabled_default_endpoint_leaves_only_the_custom_domains() {
    let doc = swagger(&format!(r#"{{"/pets": {{"get": {}}}}}"#, mock_method(200, "pets"))).replacen(
        r#""paths""#,
        r#""x-amazon-apigateway-endpoint-configuration": {"types": ["REGIONAL"], "disableExecuteApiEndpoint": true}, "paths""#,
        1,
    );
    let gw = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .extra("[[domain_names]]\nname = \"api.example.com\"\nmappings = [{ api = \"a\", stage = \"prod\" }]\n")
        .start();
    let at = |host: &str, path: &str| {
        support::RawClient::connect(gw.addr).request(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    let r = at("api.example.com", "/pets");
    assert_eq!((r.status, r.text().as_str()), (200, "pets"));
    assert_eq!(at("a.execute-api.local", "/prod/pets").status, 403);
    assert_eq!(at("localhost", "/prod/pets").status, 403);
}

/// An absolute-form target without a path is `/`: routed to the root, and
/// `$context.path` says so.
#[test]
fn an_absolute_form_target_without_a_path_is_the_root() {
    let root = mock_method(
        200,
        "{\"path\": \"$context.path\", \"resource\": \"$context.resourcePath\"}",
    );
    let gw = Gateway::builder()
        .api("a", &swagger(&format!(r#"{{"/": {{"get": {root}}}}}"#)))
        .stage("a", "prod", &[])
        .extra("[[domain_names]]\nname = \"api.example.com\"\nmappings = [{ api = \"a\", stage = \"prod\" }]\n")
        .start();
    for target in [
        "http://api.example.com",
        "http://api.example.com?x=1",
        "http://api.example.com/",
    ] {
        let r = support::RawClient::connect(gw.addr).request(
            format!("GET {target} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "{target}: {}", r.text());
        let v: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
        assert_eq!(
            (v["path"].as_str(), v["resource"].as_str()),
            (Some("/"), Some("/")),
            "{target}"
        );
    }
}
