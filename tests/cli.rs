//! The command line: `check` on real third-party Swagger files, every
//! config error reported at once with file and JSON path, `--help` and
//! `--version`, start-up failures with messages that say what to change.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;

use support::gateway::{bin, swagger};
use support::Gateway;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A config in `dir` serving the fixture document as API `x`, with a stage
/// `prod` if asked.
fn fixture_config(dir: &std::path::Path, document: &str, stage: bool) -> std::path::PathBuf {
    let cfg = dir.join("t.toml");
    let stage = if stage {
        "[[stages]]\napi = \"x\"\nname = \"prod\"\n"
    } else {
        ""
    };
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[apis]]\nid = \"x\"\nswagger = \"{}\"\n{stage}",
            fixture(document)
        ),
    )
    .unwrap();
    cfg
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_compiles_both_oracle_documents() {
    for (file, routes) in [
        (
            "aws-petstore-sample.json",
            vec!["GET      /pets ", "OPTIONS  /pets/{petId}", "HTTP "],
        ),
        (
            "swagger-petstore-2.0.json",
            vec!["POST     /pet ", "GET      /pet/findByStatus", "NONE"],
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = fixture_config(dir.path(), file, true);
        let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 0, "{file}: {out}\n{err}");
        for r in routes {
            assert!(out.contains(r), "{file}: missing {r:?} in\n{out}");
        }
        assert!(out.contains("OK: 1 API(s)"));
    }
    // The classic petstore has no integrations: each method is a warning.
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_config(dir.path(), "swagger-petstore-2.0.json", false);
    let (_, out, _) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        out.contains("no x-amazon-apigateway-integration: this method answers 500"),
        "{out}"
    );
}

/// `tollgate check | head`: a reader that is gone ends `check` quietly
/// with its status, not with a panic about a broken pipe.
#[test]
fn check_into_a_closed_pipe_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = fixture_config(dir.path(), "aws-petstore-sample.json", false);
    // The pipe's reader is closed before `check` starts: its first line
    // of output meets EPIPE.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(bin())
        .args(["check", "--config", cfg.to_str().unwrap()])
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_lists_every_error_with_file_and_path() {
    let doc = r#"{"swagger": "2.0", "paths": {
        "/a": {"get": {"x-amazon-apigateway-integration": {"type": "http", "httpMethod": "GET", "uri": "http://x/", "timeoutInMillis": 10}}},
        "/b/{id}/{proxy+}/c": {"get": {}},
        "/c": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "responses": {"[": {"statusCode": "200"}}}}},
        "/d/{id}": {"get": {}},
        "/d/{proxy+}": {"get": {}},
        "/e": {"get": {"parameters": [{"name": "q", "in": "query", "required": "yes"}, {"name": "z", "in": "nowhere"}]}},
        "/f": {"get": {"x-amazon-apigateway-integration": {"type": 5}}}
    }, "definitions": {"Pet": {"type": "object"}, "Error-Response": {"type": "object"}}}"#;
    let gw = Gateway::builder()
        .api("broken", doc)
        .stage("broken", "prod", &[("bad-name", "x")])
        .stage("ghost", "prod", &[]);
    let (dir, cfg) = gw.write();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let file = dir.path().join("broken.json");
    let toml = dir.path().join("tollgate.toml");
    for want in [
        format!("{}: $.paths./a.get.x-amazon-apigateway-integration.timeoutInMillis: must be an integer from 50 to 29000", file.display()),
        format!("{}: $.paths./b/{{id}}/{{proxy+}}/c: a greedy path variable", file.display()),
        format!("{}: $.paths./c.get.x-amazon-apigateway-integration.responses.[: invalid selection pattern", file.display()),
        format!("{}: $.paths./d/{{proxy+}}: A sibling ({{id}}) of this resource already has a variable path part -- only one is allowed", file.display()),
        format!("{}: $.paths./e.get.parameters[0].required: must be true or false, found \"yes\"", file.display()),
        format!("{}: $.paths./e.get.parameters[1].in: must be one of query, header, path, formData, body; found \"nowhere\"", file.display()),
        format!("{}: $.paths./f.get.x-amazon-apigateway-integration.type: must be a string (one of http, http_proxy, mock, aws, aws_proxy), found 5", file.display()),
        format!("{}: $.stages[0].variables.bad-name: `bad-name` is not a valid stage variable name", toml.display()),
        format!("{}: $.stages[1].api: no API with id `ghost`", toml.display()),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("configuration has 9 errors"), "{err}");
    // A model name API Gateway refuses is a warning: Tollgate serves it.
    let warning = format!("{}: $.definitions.Error-Response: Unable to create model for 'Error-Response': Model name must be alphanumeric: Error-Response (API Gateway refuses this import)", file.display());
    assert!(
        err.contains(&format!("warning: {warning}"))
            || out.contains(&format!("warning: {warning}")),
        "missing {warning:?} in:\n{out}\n{err}"
    );
}

#[test]
fn api_keys_of_the_config_file_need_distinct_names() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    let key = |name: &str, value: &str| {
        format!("[[api_keys]]\n{name}value = \"{value}\"\nusage_plans = [\"p\"]\n")
    };
    let head = "[server]\nlisten = \"127.0.0.1:0\"\n[[usage_plans]]\nid = \"p\"\napi_stages = []\nthrottle = { rate = 10.0, burst = 10 }\n";
    // Two keys named `a`, and an unnamed third key whose default name
    // (key-2) a fourth key took.
    std::fs::write(
        &cfg,
        format!(
            "{head}{}{}{}{}",
            key("name = \"a\"\n", "aaaaaaaaaaaaaaaaaaaaaaaa"),
            key("name = \"a\"\n", "bbbbbbbbbbbbbbbbbbbbbbbb"),
            key("", "cccccccccccccccccccccccc"),
            key("name = \"key-2\"\n", "dddddddddddddddddddddddd"),
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    for want in [
        "t.toml: $.api_keys[1].name: duplicate API key name `a` (also $.api_keys[0]",
        "t.toml: $.api_keys[3].name: duplicate API key name `key-2` (also $.api_keys[2]",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("configuration has 2 errors"), "{err}");
    // Distinct names pass.
    std::fs::write(
        &cfg,
        format!(
            "{head}{}{}",
            key("name = \"a\"\n", "aaaaaaaaaaaaaaaaaaaaaaaa"),
            key("name = \"b\"\n", "bbbbbbbbbbbbbbbbbbbbbbbb"),
        ),
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn config_errors_name_the_toml_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nshard = 2\n").unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("t.toml: $.server.shard: unknown field `shard`"),
        "{err}"
    );
    // The upgrade request's headers and query are for $connect only.
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[websocket_apis]]\nid = \"w\"\nstages = [{ name = \"p\", variables = {} }]\n[[websocket_apis.routes]]\nkey = \"$default\"\nintegration = { type = \"http\", uri = \"http://127.0.0.1:9/x\", request_parameters = { \"integration.request.header.t\" = \"route.request.querystring.token\" } }\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("t.toml: $.websocket_apis[0].routes[0].integration.request_parameters.integration.request.header.t: `route.request.querystring.token`: the upgrade request's headers and query string are available to the $connect route only"),
        "{err}"
    );
    std::fs::write(&cfg, "[server]\nlisten = \"nope\"\n").unwrap();
    let (_, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert!(
        err.contains("$.server.listen: `nope` is not an address"),
        "{err}"
    );
    let (code, _, err) = run(&["check", "--config", "/no/such/file.toml"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("/no/such/file.toml: $: cannot read file"),
        "{err}"
    );
    // Broken JSON in a Swagger file: the file and the position.
    std::fs::write(
        dir.path().join("bad.json"),
        "{\"swagger\": \"2.0\",\n \"paths\": {,}}",
    )
    .unwrap();
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[apis]]\nid = \"b\"\nswagger = \"bad.json\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.json: line 2, column"), "{err}");
    // serve refuses the same config with the same message and exit 1.
    let (code, _, err) = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("bad.json: line 2, column"), "{err}");
}

#[test]
fn yaml_documents_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("api.yaml"),
        "swagger: '2.0'\ninfo: {title: yaml api, version: '1'}\npaths:\n  /hi:\n    get:\n      x-amazon-apigateway-integration:\n        type: mock\n        requestTemplates:\n          application/json: '{\"statusCode\": 200}'\n        responses:\n          default:\n            statusCode: '200'\n            responseTemplates:\n              application/json: '{\"hello\": \"yaml\"}'\n",
    )
    .unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(&cfg, "[server]\nlisten = \"127.0.0.1:0\"\nshards = 1\ndefault_api = \"y\"\n[[apis]]\nid = \"y\"\nswagger = \"api.yaml\"\n[[stages]]\napi = \"y\"\nname = \"v1\"\n").unwrap();
    let gw = support::gateway::start_with_config(dir, &cfg, &[]);
    let r = support::client::get(gw.addr, "/v1/hi");
    assert_eq!(r.json()["hello"], "yaml");
}

#[test]
fn help_and_version() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("serve") && out.contains("check"));
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("--config") && out.contains("--shards"));
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("tollgate "), "{out}");
}

#[test]
fn shards_flag_and_several_shards_serve() {
    let paths = format!(
        r#"{{"/a": {{"get": {}}}}}"#,
        support::gateway::mock_method(200, "ok")
    );
    let (dir, cfg) = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .default_api("s")
        .write();
    let gw = support::gateway::start_with_config(dir, &cfg, &["--shards", "3"]);
    assert!(
        gw.log().iter().any(|l| l.contains("shards=3")),
        "{:?}",
        gw.log()
    );
    for _ in 0..30 {
        assert_eq!(support::client::get(gw.addr, "/p/a").text(), "ok");
    }
    let (code, _, err) = run(&["serve", "--config", "x.toml", "--shards", "zero"]);
    assert_ne!(code, 0);
    let _ = err;
}

#[test]
fn too_low_memlock_is_a_clear_error() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        eprintln!("prlimit not installed; skipping");
        return;
    }
    let paths = format!(
        r#"{{"/a": {{"get": {}}}}}"#,
        support::gateway::mock_method(200, "ok")
    );
    let (_dir, cfg) = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .write();
    let out = Command::new("prlimit")
        .args(["--memlock=65536:65536", "--"])
        .arg(bin())
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("RLIMIT_MEMLOCK") && err.contains("ulimit -l"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn occupied_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\nshards = 1\n"),
    )
    .unwrap();
    let (code, _, err) = run(&["serve", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!("cannot bind 127.0.0.1:{port}")),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn websocket_template_errors_name_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[websocket_apis]]\nid = \"chat\"\nstages = [{ name = \"prod\" }]\n\
         [[websocket_apis.routes]]\nkey = \"a\"\nintegration = { type = \"mock\", response_template = \"#if($x)never closed\" }\n\
         [[websocket_apis.routes]]\nkey = \"b\"\nintegration = { type = \"http\", uri = \"http://127.0.0.1:9/\", request_templates = { \"$default\" = \"$input.json(\", \"text/plain\" = \"x\" } }\n\
         [[websocket_apis.routes]]\nkey = \"c\"\nintegration = { type = \"mock\", request_templates = { \"$default\" = \"  \" }, response_template = \"\" }\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    let file = cfg.display();
    for want in [
        format!("{file}: $.websocket_apis[0].routes[0].integration.response_template: template error: line 1, column"),
        format!("{file}: $.websocket_apis[0].routes[1].integration.request_templates.$default: template error: line 1, column"),
        format!("{file}: $.websocket_apis[0].routes[1].integration.request_templates.text/plain: only the `$default` request template is used"),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
    // A blank template is no template: no warning about a missing statusCode.
    assert!(!err.contains("routes[2]"), "{err}");
}

#[test]
fn an_integration_response_without_its_method_response_is_warned_about() {
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/a": {"get": {"responses": {"200": {"description": "ok"}},
          "x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200"}, "4\\d{2}": {"statusCode": "418"}}}}},
        "/b": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "418"}}}}}
    }}"#;
    let gw = Gateway::builder().api("t", doc).stage("t", "prod", &[]);
    let (dir, cfg) = gw.write();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let file = dir.path().join("t.json");
    let want = format!(
        "{}: $.paths./a.get.x-amazon-apigateway-integration.responses.4\\d{{2}}.statusCode: 418 is not among the operation's responses",
        file.display()
    );
    let all = format!("{out}{err}");
    assert!(all.contains(&want), "missing {want:?} in:\n{all}");
    // An operation that declares no responses is not checked.
    assert!(!all.contains("$.paths./b"), "{all}");
    assert!(all.contains("1 warning"), "{all}");
}

/// The TLS listener may not share the plain listener's port (both use
/// SO_REUSEPORT: the kernel would split connections between them). The
/// ports are only checked, never bound.
#[test]
fn the_tls_listener_needs_a_port_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    for (plain, tls, clash) in [
        ("127.0.0.1:18443", "127.0.0.1:18443", true),
        ("0.0.0.0:18443", "127.0.0.1:18443", true),
        ("127.0.0.1:18080", "127.0.0.1:18443", false),
        ("127.0.0.1:0", "127.0.0.1:0", false),
    ] {
        std::fs::write(
            &cfg,
            format!("[server]\nlisten = \"{plain}\"\n[server.tls]\nlisten = \"{tls}\"\ncertificates = [{{ cert = \"c.pem\", key = \"k.pem\" }}]\n"),
        )
        .unwrap();
        let (_, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
        let all = format!("{out}{err}");
        assert_eq!(
            all.contains("$.server.tls.listen")
                && all.contains("takes the port of `server.listen`"),
            clash,
            "{plain} / {tls}:\n{all}"
        );
    }
}

#[test]
fn io_memory_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    for (kib, ok) in [
        (63u64, false),
        (64, true),
        (1 << 20, true),
        ((1 << 20) + 1, false),
        (100_000_000, false),
    ] {
        std::fs::write(
            &cfg,
            format!("[server]\nlisten = \"127.0.0.1:0\"\nio_memory_kib = {kib}\n"),
        )
        .unwrap();
        let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code == 0, ok, "{kib}: {out}{err}");
        if !ok {
            assert!(
                err.contains("$.server.io_memory_kib: must be from 64 to 1048576"),
                "{err}"
            );
        }
    }
}

#[test]
fn credentials_need_their_own_token_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n\
         [[credentials]]\nname = \"a\"\ntoken = \"same-token-0123456789\"\naccess_key_id = \"AKIDSAME\"\nsecret_access_key = \"s1\"\npermissions = [\"invalidate_cache\"]\n\
         [[credentials]]\nname = \"b\"\ntoken = \"same-token-0123456789\"\naccess_key_id = \"AKIDSAME\"\nsecret_access_key = \"s2\"\npermissions = [\"admin\"]\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(
        err.contains("$.credentials[1].token: the token of credential `a` too"),
        "{err}"
    );
    assert!(
        err.contains("$.credentials[1].access_key_id: the access key id of credential `a` too"),
        "{err}"
    );
}

#[test]
fn shard_counts_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    for (v, found) in [
        ("-1", ""),
        ("1.5", ""),
        ("0", ", found 0"),
        ("\"two\"", ", found \"two\""),
    ] {
        std::fs::write(
            &cfg,
            format!("[server]\nlisten = \"127.0.0.1:0\"\nshards = {v}\n"),
        )
        .unwrap();
        let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(
            err.contains(&format!(
                "$.server.shards: expected \"auto\" or a number from 1 to 1024{found}"
            )),
            "{v}: {err}"
        );
        assert!(
            !err.contains("RawShards") && !err.contains("Count("),
            "{err}"
        );
    }
}

#[test]
fn upstream_host_names_must_be_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[upstream_hosts]\n\"a.example:99999\" = \"127.0.0.1:1\"\n\"ok.example\" = \"127.0.0.1:2\"\n\"ok.example:81\" = \"127.0.0.1:2\"\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "$.upstream_hosts.a.example:99999: `a.example:99999` must be a host or host:port"
        ),
        "{err}"
    );
    assert!(err.contains("configuration has 1 error"), "{err}");
}

#[test]
fn state_directories_that_are_files_and_control_characters_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("afile"), "x").unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[limits]\nstate_dir = \"afile\"\n[admin]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"afile\"\n[[credentials]]\nname = \"ops\"\ntoken = \"a-token-of-16-chars-or-more\"\npermissions = [\"admin\"]\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("$.limits.state_dir:") && err.contains("afile exists and is not a directory"),
        "{err}"
    );
    assert!(err.contains("$.admin.state_dir:"), "{err}");
    // A Swagger path with a line break: the error stays on one line.
    let doc = "{\"swagger\": \"2.0\", \"info\": {\"title\": \"t\", \"version\": \"1\"}, \"paths\": {\"/a\\nb\": {\"get\": {}}}}";
    let gw = Gateway::builder().api("t", doc).stage("t", "prod", &[]);
    let (_dir, cfg) = gw.write();
    let (_, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    let all = format!("{out}{err}");
    assert!(all.contains("$.paths./a\\nb"), "{all}");
    assert!(!all.contains("/a\nb"), "{all}");
}

/// `check` lists WebSocket APIs too: stages, routes and where each HTTP
/// route goes per stage.
#[test]
fn check_lists_websocket_apis() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"127.0.0.1:0\"\n[[websocket_apis]]\nid = \"chat\"\nstages = [{ name = \"prod\", variables = { b = \"127.0.0.1:9000\" } }]\n\
         [[websocket_apis.routes]]\nkey = \"$default\"\nintegration = { type = \"http\", uri = \"http://${stageVariables.b}/echo\" }\nroute_response = true\n\
         [[websocket_apis.routes]]\nkey = \"$connect\"\nintegration = { type = \"mock\" }\n",
    )
    .unwrap();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("WebSocket API chat"), "{out}");
    assert!(
        out.contains("stage prod  variables: b=127.0.0.1:9000"),
        "{out}"
    );
    assert!(
        out.contains("$default") && out.contains("[prod→127.0.0.1:9000]"),
        "{out}"
    );
    assert!(
        out.contains("OK: 1 API(s) (1 WebSocket), 0 warning(s)"),
        "{out}"
    );
}

/// A method-settings key that names no method of the API (a typo in the
/// path or the verb) is warned about: its settings would do nothing.
#[test]
fn method_settings_that_match_nothing_are_warned_about() {
    let doc = r#"{"swagger": "2.0", "info": {"title": "t", "version": "1"}, "paths": {
        "/items": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 200}"},
            "responses": {"default": {"statusCode": "200"}}}}}
    }}"#;
    let gw = Gateway::builder().api("t", doc).extra(
        "[[stages]]\napi = \"t\"\nname = \"prod\"\ncache = { enabled = true }\nmethod_settings = { \"/itms/GET\" = { cache = { ttl_seconds = 60 } }, \"/items/POST\" = { cache = { enabled = true } }, \"/items/GET\" = { cache = { ttl_seconds = 30 } }, \"*/*\" = { cache = { enabled = true } } }\n",
    );
    let (_dir, cfg) = gw.write();
    let (code, out, err) = run(&["check", "--config", cfg.to_str().unwrap()]);
    let all = format!("{out}{err}");
    assert_eq!(code, 0, "{all}");
    for key in ["/itms/GET", "/items/POST"] {
        assert!(
            all.contains(&format!(
                "method_settings./{}: no method of the API matches this key",
                &key[1..]
            )),
            "{key} not warned about:\n{all}"
        );
    }
    assert!(all.contains("2 warning"), "{all}");
}
