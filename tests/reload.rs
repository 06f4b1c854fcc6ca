//! SIGHUP reload and SIGTERM drain on a running gateway: zero failed
//! requests through 100 reloads (good, route-changing and broken ones), the
//! old config serving after a broken one, settings that need a restart,
//! and in-flight requests finishing on shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::client::get;
use support::gateway::{mock_method, swagger};
use support::{Backend, Gateway, Mode, RawClient};

fn paths_with(version: usize) -> String {
    format!(
        r#"{{"/stable": {{"get": {stable}}}, "/v{version}": {{"get": {v}}}}}"#,
        stable = mock_method(200, "stable"),
        v = mock_method(200, &format!("version {version}")),
    )
}

#[test]
fn a_hundred_reloads_under_load_fail_no_request() {
    let gw = Gateway::builder()
        .api("r", &swagger(&paths_with(0)))
        .stage("r", "prod", &[])
        .default_api("r")
        .shards(2)
        // Three clients looping on a MOCK route can pass the default
        // account limit (10,000 req/s) on a fast machine; this test is
        // about reloads, so the limit is out of reach (a 429 would count
        // as a failed request).
        .extra("[limits]\nrate = 1000000000.0\nburst = 1000000000\nmax_concurrent = 1000000\n")
        .start();
    let swagger_path = gw.dir.path().join("r.json");
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for keep_alive in [true, false, true] {
        let (stop, ok, failed, addr) = (stop.clone(), ok.clone(), failed.clone(), gw.addr);
        clients.push(std::thread::spawn(move || {
            let mut c = RawClient::connect(addr);
            while !stop.load(Ordering::Relaxed) {
                let r = if keep_alive {
                    c.send(b"GET /prod/stable HTTP/1.1\r\nHost: x\r\n\r\n");
                    c.try_read_response(false)
                } else {
                    let mut fresh = RawClient::connect(addr);
                    fresh
                        .send(b"GET /prod/stable HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                    fresh.try_read_response(false)
                };
                match r {
                    Ok(r) if r.status == 200 && r.text() == "stable" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status, r.text())),
                    Err(e) => failed.lock().unwrap().push(e),
                }
            }
        }));
    }

    let mut good = 0;
    let mut bad = 0;
    let mut current = 0;
    for i in 1..=100 {
        if i % 4 == 3 {
            // A broken file: the reload fails and the old config serves on.
            std::fs::write(&swagger_path, "{\"swagger\": \"2.0\", \"paths\": {\"/x\": ").unwrap();
            bad += 1;
            gw.signal("HUP");
            assert!(
                gw.wait_log("reload failed", bad, Duration::from_secs(10)),
                "no failure logged"
            );
            let r = get(gw.addr, &format!("/prod/v{current}"));
            assert_eq!(
                r.text(),
                format!("version {current}"),
                "old config must keep serving"
            );
            continue;
        }
        if i % 2 == 0 {
            current = i; // half of the reloads change a route
        }
        std::fs::write(&swagger_path, swagger(&paths_with(current))).unwrap();
        good += 1;
        gw.signal("HUP");
        assert!(
            gw.wait_log("configuration reloaded", good, Duration::from_secs(10)),
            "reload {i} not logged"
        );
        let r = get(gw.addr, &format!("/prod/v{current}"));
        assert_eq!(r.status, 200, "after reload {i}");
        assert_eq!(r.text(), format!("version {current}"));
        if current > 0 && i % 2 == 0 {
            assert_eq!(
                get(gw.addr, &format!("/prod/v{}", current - 2)).status,
                403,
                "old route still served"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "too few requests: {}",
        ok.load(Ordering::Relaxed)
    );
    // The broken reloads named the file and the problem.
    assert!(
        gw.log().iter().any(|l| l.contains("r.json: line 1")),
        "{:?}",
        gw.log()
    );
}

#[test]
fn restart_only_settings_are_reported_and_limits_apply() {
    let mut gw = Gateway::builder()
        .api("r", &swagger(&paths_with(1)))
        .stage("r", "prod", &[])
        .default_api("r")
        .start();
    let cfg = gw.config_path();
    let text = std::fs::read_to_string(&cfg).unwrap();
    // New listen address and shard count: reported, not applied; a new
    // limit applies at once.
    let changed = text
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\"")
        .replace("shards = 1", "shards = 2")
        + "\n[server.limits]\nmax_uri_bytes = 64\n";
    std::fs::write(&cfg, changed).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    assert!(
        gw.log_count("takes effect after a restart") >= 2,
        "{:?}",
        gw.log()
    );
    assert_eq!(
        get(gw.addr, "/prod/v1").status,
        200,
        "still on the old address"
    );
    let long = format!("/prod/{}", "a".repeat(100));
    assert_eq!(get(gw.addr, &long).status, 414);
    assert!(gw.is_running());
}

#[test]
fn sigterm_finishes_in_flight_requests_then_exits_zero() {
    let backend = Backend::start(Mode::Slow(Duration::from_millis(700)));
    let paths = format!(
        r#"{{"/slow": {{"get": {}}}, "/fast": {{"get": {}}}}}"#,
        support::gateway::proxy_method(&format!("http://{}/s", backend.addr), ""),
        mock_method(200, "fast")
    );
    let mut gw = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .default_api("s")
        .start();
    // An idle keep-alive connection, and a request in flight.
    let mut idle = RawClient::connect(gw.addr);
    assert_eq!(
        idle.request(b"GET /p/fast HTTP/1.1\r\nHost: x\r\n\r\n")
            .status,
        200
    );
    let addr = gw.addr;
    // (A keep-alive request: its answer, written during the drain, says
    // the connection closes.)
    let inflight = std::thread::spawn(move || {
        RawClient::connect(addr).request(b"GET /p/slow HTTP/1.1\r\nHost: x\r\n\r\n")
    });
    // In flight once the backend has it (counted, not timed).
    support::wait_until(
        "the slow request to reach the backend",
        Duration::from_secs(30),
        || backend.request_count() >= 1,
    );
    let start = Instant::now();
    gw.signal("TERM");
    let r = inflight.join().unwrap();
    assert_eq!(r.status, 200, "the in-flight request completes");
    assert_eq!(r.text(), "slow");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        idle.is_closed(Duration::from_secs(3)),
        "idle connections are closed"
    );
    let code = gw.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0));
    assert!(start.elapsed() < Duration::from_secs(5));
    // Nothing listens any more.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn sigterm_grace_period_bounds_the_wait() {
    let backend = Backend::start(Mode::NeverAnswer);
    let paths = format!(
        r#"{{"/hang": {{"get": {}}}}}"#,
        support::gateway::proxy_method(
            &format!("http://{}/h", backend.addr),
            r#", "timeoutInMillis": 29000"#
        ),
    );
    let start_hung = |gw: &Gateway| {
        let addr = gw.addr;
        let before = backend.request_count();
        std::thread::spawn(move || {
            let mut c = RawClient::connect(addr);
            c.send(b"GET /p/hang HTTP/1.1\r\nHost: x\r\n\r\n");
            let _ = c.try_read_response(false);
        });
        // In flight once the backend has it.
        support::wait_until(
            "the hung request to reach the backend",
            Duration::from_secs(30),
            || backend.request_count() > before,
        );
    };
    // A 600 ms grace period: exit 0 soon after it, in-flight request cut.
    let mut gw = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .default_api("s")
        .server("shutdown_grace_ms", "600")
        .start();
    start_hung(&gw);
    let start = Instant::now();
    gw.signal("TERM");
    std::thread::sleep(Duration::from_millis(300));
    // Still running within the grace period (600 ms from the signal, sent
    // after `start`); a loaded machine may wake this thread later than that.
    let running = gw.is_running();
    let at = start.elapsed();
    assert!(
        running || at >= Duration::from_millis(600),
        "exited after {at:?}, within the 600 ms grace period"
    );
    assert_eq!(gw.wait_exit(Duration::from_secs(5)), Some(0));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // Read from its stderr by another thread, maybe after the exit.
    assert!(
        gw.wait_log("grace period over", 1, Duration::from_secs(30)),
        "{:?}",
        gw.log()
    );

    // With the default grace period, a second TERM exits at once.
    let mut gw = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .default_api("s")
        .start();
    start_hung(&gw);
    gw.signal("TERM");
    // The first TERM handled (else the two could be delivered as one).
    assert!(
        gw.wait_log(
            "stop signal: draining connections",
            1,
            Duration::from_secs(30)
        ),
        "first TERM not handled in 30 s: {:?}",
        gw.log()
    );
    assert!(gw.is_running());
    gw.signal("TERM");
    assert_eq!(
        gw.wait_exit(Duration::from_secs(5)),
        Some(1),
        "a second TERM exits at once"
    );

    // A grace period changed by a reload is the one a stop waits for.
    let mut gw = Gateway::builder()
        .api("s", &swagger(&paths))
        .stage("s", "p", &[])
        .default_api("s")
        .start();
    let config = gw.config_path();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[server]\n", "[server]\nshutdown_grace_ms = 600\n", 1),
    )
    .unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(30)));
    start_hung(&gw);
    let start = Instant::now();
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(gw.wait_log("grace period over", 1, Duration::from_secs(30)));
}
