//! The stage response cache with 2 shards: hits and TTL expiry, cache key
//! parameters, method-level overrides, GET-only default, the 1 MiB limit,
//! authorized invalidation seen on every connection, the unauthorized
//! strategies, flush (admin API and CLI), and coalescing of misses.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::time::Duration;

use support::client::{get, get_with, send};
use support::gateway::{swagger, ADMIN_TOKEN};
use support::{Backend, Gateway, Mode, RawClient};

fn fixed(body: &str) -> Mode {
    Mode::Fixed {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "text/plain".into()),
            ("X-Origin".into(), "backend".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn cached_gateway(backend: &Backend, stage_extra: &str) -> Gateway {
    cached_gateway_settings(backend, stage_extra, "")
}

/// `settings`: method settings put first in the stage's `method_settings`.
fn cached_gateway_settings(backend: &Backend, stage_extra: &str, settings: &str) -> Gateway {
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{
      "/items": {{"get": {{"parameters": [{{"name": "type", "in": "query"}}], "x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/items", "cacheKeyParameters": ["method.request.querystring.type"]}}}},
                   "post": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "{uri}/items"}}}}}},
      "/items/{{id}}": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/items/{{id}}", "requestParameters": {{"integration.request.path.id": "method.request.path.id"}}}}}}}},
      "/short": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/short"}}}}}},
      "/nocache": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/nocache"}}}}}},
      "/search": {{"post": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "{uri}/search"}}}}}},
      "/any": {{"x-amazon-apigateway-any-method": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "ANY", "uri": "{uri}/any"}}}}}}
    }}"#
    );
    Gateway::builder()
        .api("c", &swagger(&paths))
        .default_api("c")
        .shards(2)
        .admin()
        .extra(&format!(
            "[[stages]]\napi = \"c\"\nname = \"p\"\ncache = {{ enabled = true, ttl_seconds = 3600, capacity_mb = 8{stage_extra} }}\nmethod_settings = {{ {settings}\"/short/GET\" = {{ cache = {{ ttl_seconds = 1 }} }}, \"/nocache/GET\" = {{ cache = {{ enabled = false }} }}, \"/search/POST\" = {{ cache = {{ enabled = true }} }} }}\n"
        ))
        .start()
}

#[test]
fn hits_ttl_keys_overrides_and_size_limit() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    // A hit does not reach the backend, and looks like the original.
    let first = get(gw.addr, "/p/items?type=dog&page=1");
    assert_eq!(first.text(), "v1");
    assert_eq!(backend.request_count(), 1);
    for _ in 0..5 {
        let r = get(gw.addr, "/p/items?type=dog&page=2");
        assert_eq!(r.text(), "v1");
        assert_eq!(r.header("x-origin"), Some("backend"));
        assert_eq!(r.header("content-type"), Some("text/plain"));
        assert!(r
            .header("x-amzn-RequestId")
            .is_some_and(|id| Some(id) != first.header("x-amzn-RequestId")));
    }
    // Connections land on both shards: each shard fills its own partition
    // once, so at most 2 backend calls for this key.
    assert!(backend.request_count() <= 2, "{}", backend.request_count());
    // A key parameter splits the cache; a parameter outside the key does not.
    let before = backend.request_count();
    get(gw.addr, "/p/items?type=cat");
    assert!(backend.request_count() > before);
    // Path parameters are part of the key.
    let before = backend.request_count();
    get(gw.addr, "/p/items/1");
    get(gw.addr, "/p/items/2");
    assert_eq!(backend.request_count(), before + 2);
    // Only GET by default: POST always reaches the backend...
    let before = backend.request_count();
    send(gw.addr, "POST", "/p/items", "", b"x");
    send(gw.addr, "POST", "/p/items", "", b"x");
    assert_eq!(backend.request_count(), before + 2);
    // ...unless a method setting enables it.
    let before = backend.request_count();
    let mut c = RawClient::connect(gw.addr);
    for _ in 0..3 {
        c.request(b"POST /p/search HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nq");
    }
    assert_eq!(backend.request_count(), before + 1);
    // A method setting disables caching for one method.
    let before = backend.request_count();
    get(gw.addr, "/p/nocache");
    get(gw.addr, "/p/nocache");
    assert_eq!(backend.request_count(), before + 2);
    // TTL: 1 s for /short.
    let mut c = RawClient::connect(gw.addr);
    let before = backend.request_count();
    c.request(b"GET /p/short HTTP/1.1\r\nHost: x\r\n\r\n");
    c.request(b"GET /p/short HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(backend.request_count(), before + 1);
    std::thread::sleep(Duration::from_millis(1200));
    c.request(b"GET /p/short HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(backend.request_count(), before + 2, "expired after its TTL");
    // Over 1 MiB: never cached.
    backend.set_mode(Mode::Large(1024 * 1024 + 10));
    let mut c = RawClient::connect(gw.addr);
    let before = backend.request_count();
    for _ in 0..2 {
        let r = c.request(b"GET /p/items/big HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(r.body.len(), 1024 * 1024 + 10);
    }
    assert_eq!(backend.request_count(), before + 2);
}

/// A reload that changes a method's cache settings drops that method's
/// entries; one that leaves them alone keeps them. On one keep-alive
/// connection: its next request is served by the configuration in force
/// when the request arrives.
#[test]
fn changed_cache_settings_drop_the_methods_entries() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    let mut c = RawClient::connect(gw.addr);
    let mut fetch = || {
        c.request(b"GET /p/items?type=dog HTTP/1.1\r\nHost: x\r\n\r\n");
    };
    fetch();
    let cached = backend.request_count();
    fetch();
    assert_eq!(backend.request_count(), cached, "a hit before any reload");
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let mut reloads = 0;
    let mut reload = |text: &str| {
        reloads += 1;
        reload_config(&gw, text, reloads);
    };
    // Only /short's TTL changes: /items keeps its entry.
    reload(&config.replace("ttl_seconds = 1 }", "ttl_seconds = 2 }"));
    fetch();
    assert_eq!(
        backend.request_count(),
        cached,
        "kept: its settings did not change"
    );
    // /items/GET gets a method setting of its own: its entries go.
    reload(&config.replace(
        "method_settings = {",
        "method_settings = { \"/items/GET\" = { cache = { ttl_seconds = 600 } },",
    ));
    fetch();
    assert_eq!(
        backend.request_count(),
        cached + 1,
        "dropped: its settings changed"
    );
    fetch();
    assert_eq!(backend.request_count(), cached + 1, "cached again");
}

/// 20 requests on fresh connections (both shards); their bodies.
fn bodies(gw: &Gateway, path: &str) -> Vec<String> {
    (0..20).map(|_| get(gw.addr, path).text()).collect()
}

/// Whether every one of `bodies` is `want`.
fn all_bodies(gw: &Gateway, path: &str, want: &str) -> bool {
    bodies(gw, path).iter().all(|b| b == want)
}

/// Writes `config`, sends SIGHUP and waits for the `n`th reload.
fn reload_config(gw: &Gateway, config: &str, n: usize) {
    std::fs::write(gw.config_path(), config).unwrap();
    gw.signal("HUP");
    assert!(
        gw.wait_log("configuration reloaded", n, Duration::from_secs(10)),
        "reload {n} not logged"
    );
}

#[test]
fn authorized_invalidation_reaches_every_shard() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, ", unauthorized_strategy = \"FAIL_WITH_403\"");
    assert!(all_bodies(&gw, "/p/items?type=x", "v1"));
    backend.set_mode(fixed("v2"));
    assert!(
        all_bodies(&gw, "/p/items?type=x", "v1"),
        "served from cache"
    );
    // Not allowed to invalidate (a credential without invalidate_cache):
    // 403, entry untouched.
    let r = get_with(
        gw.addr,
        "/p/items?type=x",
        &format!("Cache-Control: max-age=0\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"),
    );
    assert_eq!(r.status, 403);
    let r = get_with(gw.addr, "/p/items?type=x", "Cache-Control: max-age=0\r\n");
    assert_eq!(r.status, 403);
    assert!(all_bodies(&gw, "/p/items?type=x", "v1"));
    // Allowed: fetches, stores, and every shard serves the fresh entry.
    let r = get_with(
        gw.addr,
        "/p/items?type=x",
        &format!("Cache-Control: max-age=0\r\nAuthorization: Bearer {ADMIN_TOKEN}-ro\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "v2");
    assert!(
        all_bodies(&gw, "/p/items?type=x", "v2"),
        "every connection sees the fresh entry"
    );
}

#[test]
fn unauthorized_strategies() {
    let backend = Backend::start(fixed("v1"));
    // SUCCEED_WITH_RESPONSE_HEADER is the default, as in API Gateway: a
    // browser's reload (max-age=0) of a cached page is served, not refused.
    for strategy in [
        "",
        ", unauthorized_strategy = \"SUCCEED_WITH_RESPONSE_HEADER\"",
    ] {
        backend.set_mode(fixed("v1"));
        let gw = cached_gateway(&backend, strategy);
        bodies(&gw, "/p/items"); // prime both shards
        backend.set_mode(fixed("v2"));
        let r = get_with(gw.addr, "/p/items", "Cache-Control: max-age=0\r\n");
        assert_eq!(r.status, 200, "{strategy:?}");
        assert_eq!(r.text(), "v1", "{strategy:?}: served from the cache");
        assert!(r.header("warning").is_some(), "{strategy:?}");
        assert!(all_bodies(&gw, "/p/items", "v1"));
    }
    let gw = cached_gateway(
        &backend,
        ", unauthorized_strategy = \"SUCCEED_WITHOUT_RESPONSE_HEADER\"",
    );
    backend.set_mode(fixed("v1"));
    bodies(&gw, "/p/items");
    backend.set_mode(fixed("v2"));
    let r = get_with(gw.addr, "/p/items", "Cache-Control: max-age=0\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
    assert!(r.header("warning").is_none());

    let gw = cached_gateway(&backend, ", require_authorization = false");
    backend.set_mode(fixed("v1"));
    bodies(&gw, "/p/items");
    backend.set_mode(fixed("v3"));
    let r = get_with(gw.addr, "/p/items", "Cache-Control: max-age=0\r\n");
    assert_eq!(
        r.text(),
        "v3",
        "anyone may invalidate without require_authorization"
    );
    assert!(all_bodies(&gw, "/p/items", "v3"));
}

#[test]
fn flush_by_admin_api_and_cli() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    assert!(all_bodies(&gw, "/p/items", "v1"));
    backend.set_mode(fixed("v2"));
    let admin = gw.admin.unwrap();
    let mut c = RawClient::connect(admin);
    let r = c.request(format!("DELETE /restapis/c/stages/p/cache/data HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(all_bodies(&gw, "/p/items", "v2"), "every shard was flushed");
    // The CLI, with the admin address written into the config.
    backend.set_mode(fixed("v3"));
    let cfg = gw.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "listen = \"127.0.0.1:0\"\nstate_dir",
        &format!("listen = \"{admin}\"\nstate_dir"),
    );
    let cli_cfg = gw.dir.path().join("cli.toml");
    std::fs::write(&cli_cfg, text).unwrap();
    let out = std::process::Command::new(support::gateway::bin())
        .args([
            "flush-cache",
            "--config",
            cli_cfg.to_str().unwrap(),
            "--api",
            "c",
            "--stage",
            "p",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(all_bodies(&gw, "/p/items", "v3"));
    // Unknown stage.
    let r = c.request(format!("DELETE /restapis/c/stages/nope/cache/data HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(r.status, 404);
}

#[test]
fn concurrent_misses_are_coalesced() {
    let backend = Backend::start(Mode::Slow(Duration::from_millis(300)));
    let gw = cached_gateway(&backend, "");
    let addr = gw.addr;
    let clients: Vec<_> = (0..100)
        .map(|_| std::thread::spawn(move || get(addr, "/p/items?type=same").text()))
        .collect();
    let bodies: Vec<String> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(bodies.iter().all(|b| b == "slow"));
    assert!(
        backend.request_count() <= 2,
        "{} backend requests for one key on 2 shards",
        backend.request_count()
    );
}

/// One keep-alive connection (so one shard, one partition).
fn on_one(gw: &Gateway) -> RawClient {
    RawClient::connect(gw.addr)
}

fn req(c: &mut RawClient, method: &str, path: &str, headers: &str) -> support::Response {
    let body = if method == "GET" {
        ""
    } else {
        "Content-Length: 1\r\n\r\nx"
    };
    let end = if body.is_empty() { "\r\n" } else { "" };
    c.request(format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}{end}{body}").as_bytes())
}

/// As API Gateway: the stage-wide `*/*` setting caches GET (and the GET
/// requests of an ANY method), never a write; a `Range` request neither
/// poisons the entry with its part nor is answered from it.
#[test]
fn the_stage_wide_setting_caches_reads_and_ranges_stay_out() {
    let backend = Backend::start(fixed("whole"));
    let gw = cached_gateway_settings(
        &backend,
        "",
        "\"*/*\" = { cache = { enabled = true, ttl_seconds = 600 } }, ",
    );
    let mut c = on_one(&gw);
    for (method, path, calls) in [
        ("POST", "/p/items", 3),
        ("DELETE", "/p/any", 3),
        ("POST", "/p/any", 3),
        ("GET", "/p/any", 1),
        ("GET", "/p/items?type=a", 1),
        ("POST", "/p/search", 1),
    ] {
        let before = backend.request_count();
        for _ in 0..3 {
            assert_eq!(req(&mut c, method, path, "").status, 200);
        }
        assert_eq!(backend.request_count() - before, calls, "{method} {path}");
    }

    // A part: not stored, so the whole is fetched and cached afterwards.
    backend.set_mode(Mode::Fixed {
        status: 206,
        headers: vec![("Content-Range".into(), "bytes 0-0/5".into())],
        body: b"w".to_vec(),
    });
    let r = req(&mut c, "GET", "/p/items?type=r", "Range: bytes=0-0\r\n");
    assert_eq!((r.status, r.text().as_str()), (206, "w"));
    backend.set_mode(fixed("whole"));
    let before = backend.request_count();
    for _ in 0..2 {
        let r = req(&mut c, "GET", "/p/items?type=r", "");
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "whole"),
            "a part was cached"
        );
    }
    assert_eq!(backend.request_count(), before + 1);
    // A range request goes to the backend, not to the whole entry.
    req(&mut c, "GET", "/p/items?type=r", "Range: bytes=0-0\r\n");
    assert_eq!(backend.request_count(), before + 2);
}

/// What is stored: whole 2xx responses up to 1 MiB (also above
/// `buffer_response_bytes`), not those that set a cookie; a response with
/// `Vary` answers only requests with the same values of those headers.
#[test]
fn what_is_stored() {
    let backend = Backend::start(Mode::Large(700 * 1024));
    let gw = cached_gateway(&backend, "");
    let mut c = on_one(&gw);
    for (n, calls) in [(700 * 1024, 1), (1024 * 1024, 1), (1024 * 1024 + 1, 2)] {
        backend.set_mode(Mode::Large(n));
        let before = backend.request_count();
        for _ in 0..2 {
            assert_eq!(
                req(&mut c, "GET", &format!("/p/items/{n}"), "").body.len(),
                n
            );
        }
        assert_eq!(backend.request_count() - before, calls, "{n} bytes");
    }

    backend.set_mode(Mode::Fixed {
        status: 200,
        headers: vec![("Set-Cookie".into(), "session=alice".into())],
        body: b"mine".to_vec(),
    });
    let before = backend.request_count();
    req(&mut c, "GET", "/p/items/cookie", "");
    req(&mut c, "GET", "/p/items/cookie", "");
    assert_eq!(
        backend.request_count(),
        before + 2,
        "a Set-Cookie response was cached"
    );

    let gz = |body: &str| Mode::Fixed {
        status: 200,
        headers: vec![("Vary".into(), "Accept-Encoding".into())],
        body: body.as_bytes().to_vec(),
    };
    backend.set_mode(gz("zipped"));
    let zip = "Accept-Encoding: gzip\r\n";
    assert_eq!(req(&mut c, "GET", "/p/items/v", zip).text(), "zipped");
    assert_eq!(req(&mut c, "GET", "/p/items/v", zip).text(), "zipped");
    backend.set_mode(gz("plain"));
    assert_eq!(
        req(&mut c, "GET", "/p/items/v", "").text(),
        "plain",
        "served another Accept-Encoding's variant"
    );
    assert_eq!(req(&mut c, "GET", "/p/items/v", "").text(), "plain");
    backend.set_mode(Mode::Fixed {
        status: 200,
        headers: vec![("Vary".into(), "*".into())],
        body: b"any".to_vec(),
    });
    let before = backend.request_count();
    req(&mut c, "GET", "/p/items/star", "");
    req(&mut c, "GET", "/p/items/star", "");
    assert_eq!(backend.request_count(), before + 2, "Vary: * was cached");
}

/// An invalidation replaces the entry on every shard, also when the fresh
/// answer is not cacheable (the old one is dropped, not kept); the
/// gateway credential that authorized it is not sent to the backend;
/// `max-age="0"` and `max-age=00` are `max-age=0`.
#[test]
fn invalidation_drops_what_it_cannot_replace_and_keeps_the_credential() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    assert!(all_bodies(&gw, "/p/items?type=x", "v1"));
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}-ro\r\n");
    backend.set_mode(Mode::Fixed {
        status: 500,
        headers: vec![],
        body: b"down".to_vec(),
    });
    let r = get_with(
        gw.addr,
        "/p/items?type=x",
        &format!("Cache-Control: max-age=0\r\n{auth}"),
    );
    assert_eq!(r.status, 500);
    assert_eq!(backend.last().header("authorization"), None);
    backend.set_mode(fixed("v2"));
    assert!(
        all_bodies(&gw, "/p/items?type=x", "v2"),
        "the invalidated entry came back"
    );
    // Quoted and zero-padded forms invalidate too.
    for (form, body) in [("max-age=\"0\"", "v3"), ("max-age=00", "v4")] {
        backend.set_mode(fixed(body));
        let r = get_with(
            gw.addr,
            "/p/items?type=x",
            &format!("Cache-Control: no-cache, {form}\r\n{auth}"),
        );
        assert_eq!(r.text(), body, "{form}");
        assert!(all_bodies(&gw, "/p/items?type=x", body), "{form}");
    }
    // Another Authorization (the backend's own) passes as before.
    backend.set_mode(fixed("v5"));
    get_with(
        gw.addr,
        "/p/items?type=y",
        "Authorization: Bearer backend-token\r\n",
    );
    assert_eq!(
        backend.last().header("authorization"),
        Some("Bearer backend-token")
    );
}

/// A reload that changes a method's integration, or the stage variables,
/// starts it on new entries; a cache turned off and on again, or a stage
/// removed and added again, starts empty.
#[test]
fn changed_integrations_and_caches_start_empty() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    let mut c = on_one(&gw);
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let api_file = gw.dir.path().join("c.json");
    let api_text = std::fs::read_to_string(&api_file).unwrap();
    let mut reloads = 0;
    let mut reload = |config: &str, api: &str| {
        std::fs::write(&api_file, api).unwrap();
        reloads += 1;
        reload_config(&gw, config, reloads);
    };
    let fetch = |c: &mut RawClient| req(c, "GET", "/p/items?type=dog", "").text();
    assert_eq!(fetch(&mut c), "v1");
    backend.set_mode(fixed("v2"));
    assert_eq!(fetch(&mut c), "v1", "cached");
    // A new integration URI.
    let moved = api_text.replace(
        "/items\", \"cacheKeyParameters",
        "/items2\", \"cacheKeyParameters",
    );
    assert_ne!(moved, api_text);
    reload(&config, &moved);
    assert_eq!(
        fetch(&mut c),
        "v2",
        "the old integration's entry was served"
    );
    assert_eq!(backend.last().target, "/items2?type=dog");
    // Stage variables (an integration may read them).
    backend.set_mode(fixed("v3"));
    let with_vars = config.replace(
        "name = \"p\"\n",
        "name = \"p\"\nvariables = { tier = \"b\" }\n",
    );
    assert_ne!(with_vars, config);
    reload(&with_vars, &moved);
    assert_eq!(fetch(&mut c), "v3");
    // Cache off, then on: empty.
    backend.set_mode(fixed("v4"));
    let off = with_vars.replace("cache = { enabled = true", "cache = { enabled = false");
    assert_ne!(off, with_vars);
    reload(&off, &moved);
    assert_eq!(fetch(&mut c), "v4");
    backend.set_mode(fixed("v5"));
    reload(&with_vars, &moved);
    assert_eq!(
        fetch(&mut c),
        "v5",
        "an entry from before the cache was off came back"
    );
    // Resized: empty.
    backend.set_mode(fixed("v6"));
    reload(
        &with_vars.replace("capacity_mb = 8", "capacity_mb = 9"),
        &moved,
    );
    assert_eq!(fetch(&mut c), "v6", "a resized cache kept its entries");
}

/// A stage TTL of 0 caches nothing, except a method whose own setting
/// gives it a TTL.
#[test]
fn a_method_ttl_overrides_a_stage_ttl_of_zero() {
    let backend = Backend::start(fixed("v1"));
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{"/a": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/a"}}}}}},
            "/b": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/b"}}}}}}}}"#
    );
    let gw = Gateway::builder()
        .api("c", &swagger(&paths))
        .default_api("c")
        .extra("[[stages]]\napi = \"c\"\nname = \"p\"\ncache = { enabled = true, ttl_seconds = 0 }\nmethod_settings = { \"/a/GET\" = { cache = { ttl_seconds = 60 } } }\n")
        .start();
    let mut c = on_one(&gw);
    for (path, calls) in [("/p/a", 1), ("/p/b", 3)] {
        let before = backend.request_count();
        for _ in 0..3 {
            req(&mut c, "GET", path, "");
        }
        assert_eq!(backend.request_count() - before, calls, "{path}");
    }
}

/// A slow fetch (1.5 s) of `path` on its own thread; the backend answers
/// `slow`.
fn slow_fetch(
    gw: &Gateway,
    backend: &Backend,
    path: &'static str,
) -> std::thread::JoinHandle<String> {
    backend.set_mode(Mode::Slow(Duration::from_millis(1500)));
    let addr = gw.addr;
    let t = std::thread::spawn(move || get(addr, path).text());
    std::thread::sleep(Duration::from_millis(300));
    t
}

/// An authorized invalidation of `path` (the credential with
/// `invalidate_cache`).
fn invalidate(gw: &Gateway, path: &str) -> support::Response {
    get_with(
        gw.addr,
        path,
        &format!("Cache-Control: max-age=0\r\nAuthorization: Bearer {ADMIN_TOKEN}-ro\r\n"),
    )
}

/// What an older fetch still under way finds when it ends: an
/// invalidation (whose fresh answer was stored, or was an error and left a
/// tombstone), or a flush, came after it began, so its answer is not
/// stored, on any shard.
#[test]
fn older_fetches_lose_to_invalidations_and_flushes() {
    let backend = Backend::start(fixed("v0"));
    let gw = cached_gateway(&backend, "");
    let slow = slow_fetch(&gw, &backend, "/p/items?type=fresh");
    backend.set_mode(fixed("fresh"));
    assert_eq!(invalidate(&gw, "/p/items?type=fresh").text(), "fresh");
    assert_eq!(slow.join().unwrap(), "slow");
    assert!(
        all_bodies(&gw, "/p/items?type=fresh", "fresh"),
        "the older fetch's answer replaced the invalidation's"
    );

    let slow = slow_fetch(&gw, &backend, "/p/items?type=race");
    backend.set_mode(Mode::Fixed {
        status: 404,
        headers: vec![],
        body: b"gone".to_vec(),
    });
    assert_eq!(invalidate(&gw, "/p/items?type=race").status, 404);
    assert_eq!(slow.join().unwrap(), "slow");
    backend.set_mode(fixed("after-404"));
    assert!(
        all_bodies(&gw, "/p/items?type=race", "after-404"),
        "the older fetch's answer came back after the invalidation"
    );

    let slow = slow_fetch(&gw, &backend, "/p/items?type=flush");
    let mut c = RawClient::connect(gw.admin.unwrap());
    let r = c.request(format!("DELETE /restapis/c/stages/p/cache/data HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(slow.join().unwrap(), "slow");
    backend.set_mode(fixed("after-flush"));
    assert!(
        all_bodies(&gw, "/p/items?type=flush", "after-flush"),
        "the older fetch's answer came back after the flush"
    );
}

/// A fetch under way while a reload turns the cache off does not bring the
/// stage's partition back: when the cache is on again it starts empty.
#[test]
fn a_fetch_across_a_reload_does_not_revive_the_cache() {
    let backend = Backend::start(fixed("v0"));
    let gw = cached_gateway(&backend, "");
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let off = config.replace("cache = { enabled = true", "cache = { enabled = false");
    assert_ne!(off, config);
    let slow = slow_fetch(&gw, &backend, "/p/items?type=race");
    reload_config(&gw, &off, 1);
    assert_eq!(slow.join().unwrap(), "slow");
    reload_config(&gw, &config, 2);
    backend.set_mode(fixed("fresh"));
    assert!(
        all_bodies(&gw, "/p/items?type=race", "fresh"),
        "a fetch of the old configuration refilled the cache"
    );
}

/// `Vary` compares a request header's lines combined: `br` plus
/// `gzip, deflate` is not `gzip, deflate`.
#[test]
fn vary_compares_every_line_of_a_header() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Vary".into(), "Accept-Encoding".into())],
        body: b"br-body".to_vec(),
    });
    let gw = cached_gateway(&backend, "");
    let mut c = on_one(&gw);
    req(
        &mut c,
        "GET",
        "/p/items/v",
        "Accept-Encoding: br\r\nAccept-Encoding: gzip, deflate\r\n",
    );
    let before = backend.request_count();
    req(
        &mut c,
        "GET",
        "/p/items/v",
        "Accept-Encoding: gzip, deflate\r\n",
    );
    assert_eq!(
        backend.request_count(),
        before + 1,
        "served another variant"
    );
    req(
        &mut c,
        "GET",
        "/p/items/v",
        "Accept-Encoding: gzip, deflate\r\n",
    );
    assert_eq!(
        backend.request_count(),
        before + 1,
        "its own variant is cached"
    );
}

/// The gateway's own bearer tokens never reach an integration: not through
/// the proxied headers, a `requestParameters` mapping or a template, with or
/// without a cache invalidation; another bearer token does.
#[test]
fn gateway_tokens_stay_with_the_gateway() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{"/proxy": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/proxy",
              "requestParameters": {{"integration.request.header.X-Client-Auth": "method.request.header.Authorization"}}}}}}}},
            "/mapped": {{"get": {{"parameters": [{{"name": "Authorization", "in": "header"}}], "x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "POST", "uri": "{uri}/mapped",
              "requestParameters": {{"integration.request.header.Authorization": "method.request.header.Authorization"}},
              "requestTemplates": {{"application/json": "{{\"auth\": \"$input.params('Authorization')\", \"all\": \"$input.params().header\"}}"}},
              "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}}}"#
    );
    let gw = Gateway::builder()
        .api("c", &swagger(&paths))
        .default_api("c")
        .admin()
        .extra("[[stages]]\napi = \"c\"\nname = \"p\"\ncache = { enabled = true }\n[[stages]]\napi = \"c\"\nname = \"n\"\n")
        .start();
    // Stage n has no cache (every request reaches the backend); on stage
    // p an authorized invalidation does. A gateway token next to another
    // Authorization line is still hidden.
    get_with(
        gw.addr,
        "/n/proxy",
        &format!("Authorization: Bearer {ADMIN_TOKEN}\r\nAuthorization: Bearer other\r\n"),
    );
    assert!(
        !format!("{:?}", backend.last()).contains(ADMIN_TOKEN),
        "{:?}",
        backend.last()
    );
    get_with(
        gw.addr,
        "/n/mapped",
        "Authorization: Bearer backend-token\r\n",
    );
    assert_eq!(
        backend.last().header("authorization"),
        Some("Bearer backend-token")
    );
    assert!(String::from_utf8_lossy(&backend.last().body).contains("Bearer backend-token"));
    for token in [ADMIN_TOKEN.to_owned(), format!("{ADMIN_TOKEN}-ro")] {
        for extra in ["", "Cache-Control: max-age=0\r\n"] {
            for path in ["/p/proxy", "/p/mapped", "/n/proxy", "/n/mapped"] {
                let r = get_with(
                    gw.addr,
                    path,
                    &format!("{extra}Authorization: Bearer {token}\r\n"),
                );
                assert_eq!(r.status, 200, "{path}: {}", r.text());
                let seen = backend.last();
                assert!(
                    !format!("{seen:?}").contains(ADMIN_TOKEN),
                    "{path} {extra:?}: the backend saw the gateway token: {seen:?}"
                );
            }
        }
    }
    assert!(
        backend.request_count() >= 2 + 8,
        "{}",
        backend.request_count()
    );
}

/// What keys the cache is what the backend reads: a query's `;` pairs go
/// to an HTTP_PROXY backend as `&` pairs (`?x=1;type=good` was cached as
/// `type=good` while a backend splitting on `&` alone read no type), and a
/// repeated key parameter keys by all its values (`?type=evil&type=good`
/// was the entry of `?type=good`, and a backend that reads the first value
/// answered for `evil`). One shard's connection, so the entries meet.
#[test]
fn the_cache_key_is_what_the_backend_reads() {
    let backend = Backend::start(Mode::Echo);
    let gw = cached_gateway(&backend, "");
    let mut c = on_one(&gw);
    let target = |c: &mut RawClient, path: &str| {
        let r = req(c, "GET", path, "");
        assert_eq!(r.status, 200, "{path}");
        r.json()["target"].as_str().unwrap_or_default().to_owned()
    };
    assert_eq!(
        target(&mut c, "/p/items?x=1;type=good"),
        "/items?x=1&type=good"
    );
    assert_eq!(backend.request_count(), 1);
    // The same pairs written with `&`: the same entry.
    assert_eq!(target(&mut c, "/p/items?type=good"), "/items?x=1&type=good");
    assert_eq!(backend.request_count(), 1);
    // Two values of the key parameter: an entry of their own.
    assert_eq!(
        target(&mut c, "/p/items?type=evil&type=good"),
        "/items?type=evil&type=good"
    );
    assert_eq!(backend.request_count(), 2);
    assert_eq!(target(&mut c, "/p/items?type=good"), "/items?x=1&type=good");
    assert_eq!(
        target(&mut c, "/p/items?type=evil;type=good"),
        "/items?type=evil&type=good"
    );
    assert_eq!(backend.request_count(), 2);
}

/// A presigned URL does not authorize an invalidation: the request goes on
/// to the backend with its query string, which would carry the
/// credential's signature (replayable until it expires); the
/// `Authorization` header, which is withheld from the backend, does.
#[test]
fn a_presigned_url_does_not_authorize_an_invalidation() {
    let backend = Backend::start(fixed("v1"));
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{"/items": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/items"}}}}}}}}"#
    );
    let gw = Gateway::builder()
        .api("c", &swagger(&paths))
        .default_api("c")
        .extra(
            "[[credentials]]\nname = \"purger\"\naccess_key_id = \"AKIDPURGER\"\nsecret_access_key = \"purger/secret\"\npermissions = [\"invalidate_cache\"]\n\
             [[stages]]\napi = \"c\"\nname = \"p\"\ncache = { enabled = true, ttl_seconds = 3600, unauthorized_strategy = \"FAIL_WITH_403\" }\n",
        )
        .start();
    assert_eq!(get(gw.addr, "/p/items").text(), "v1");
    backend.set_mode(fixed("v2"));
    let Some(url) =
        support::aws::botocore_presigned("http://test/p/items", "AKIDPURGER", "purger/secret", 300)
    else {
        return;
    };
    let target = url.strip_prefix("http://test").unwrap();
    let r = get_with(gw.addr, target, "Cache-Control: max-age=0\r\n");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        backend
            .recorded()
            .iter()
            .all(|c| !c.target.contains("X-Amz-Signature")),
        "the signature reached the backend"
    );
    assert_eq!(get(gw.addr, "/p/items").text(), "v1");
    // The same credential in the header invalidates.
    let headers: String = support::aws::botocore_headers(
        "GET",
        "http://test/p/items",
        "",
        "AKIDPURGER",
        "purger/secret",
    )
    .unwrap()
    .iter()
    .map(|(k, v)| format!("{k}: {v}\r\n"))
    .collect();
    let r = get_with(
        gw.addr,
        "/p/items",
        &format!("Cache-Control: max-age=0\r\n{headers}"),
    );
    assert_eq!((r.status, r.text().as_str()), (200, "v2"));
}
