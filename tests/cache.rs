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
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{
      "/items": {{"get": {{"parameters": [{{"name": "type", "in": "query"}}], "x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/items", "cacheKeyParameters": ["method.request.querystring.type"]}}}},
                   "post": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "{uri}/items"}}}}}},
      "/items/{{id}}": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/items/{{id}}", "requestParameters": {{"integration.request.path.id": "method.request.path.id"}}}}}}}},
      "/short": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/short"}}}}}},
      "/nocache": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/nocache"}}}}}},
      "/search": {{"post": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "{uri}/search"}}}}}}
    }}"#
    );
    Gateway::builder()
        .api("c", &swagger(&paths))
        .default_api("c")
        .shards(2)
        .admin()
        .extra(&format!(
            "[[stages]]\napi = \"c\"\nname = \"p\"\ncache = {{ enabled = true, ttl_seconds = 3600, capacity_mb = 8{stage_extra} }}\nmethod_settings = {{ \"/short/GET\" = {{ cache = {{ ttl_seconds = 1 }} }}, \"/nocache/GET\" = {{ cache = {{ enabled = false }} }}, \"/search/POST\" = {{ cache = {{ enabled = true }} }} }}\n"
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
        std::fs::write(gw.config_path(), text).unwrap();
        reloads += 1;
        gw.signal("HUP");
        assert!(
            gw.wait_log("configuration reloaded", reloads, Duration::from_secs(10)),
            "reload {reloads} not logged"
        );
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

#[test]
fn authorized_invalidation_reaches_every_shard() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, ", unauthorized_strategy = \"FAIL_WITH_403\"");
    assert!(bodies(&gw, "/p/items?type=x").iter().all(|b| b == "v1"));
    backend.set_mode(fixed("v2"));
    assert!(
        bodies(&gw, "/p/items?type=x").iter().all(|b| b == "v1"),
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
    assert!(bodies(&gw, "/p/items?type=x").iter().all(|b| b == "v1"));
    // Allowed: fetches, stores, and every shard serves the fresh entry.
    let r = get_with(
        gw.addr,
        "/p/items?type=x",
        &format!("Cache-Control: max-age=0\r\nAuthorization: Bearer {ADMIN_TOKEN}-ro\r\n"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "v2");
    assert!(
        bodies(&gw, "/p/items?type=x").iter().all(|b| b == "v2"),
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
        assert!(bodies(&gw, "/p/items").iter().all(|b| b == "v1"));
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
    assert!(bodies(&gw, "/p/items").iter().all(|b| b == "v3"));
}

#[test]
fn flush_by_admin_api_and_cli() {
    let backend = Backend::start(fixed("v1"));
    let gw = cached_gateway(&backend, "");
    assert!(bodies(&gw, "/p/items").iter().all(|b| b == "v1"));
    backend.set_mode(fixed("v2"));
    let admin = gw.admin.unwrap();
    let mut c = RawClient::connect(admin);
    let r = c.request(format!("DELETE /restapis/c/stages/p/cache/data HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    assert!(
        bodies(&gw, "/p/items").iter().all(|b| b == "v2"),
        "every shard was flushed"
    );
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
    assert!(bodies(&gw, "/p/items").iter().all(|b| b == "v3"));
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
