//! Throttling end to end with 2 shards: the account rate and burst, the
//! in-flight cap against a slow backend (also when clients abort), stage
//! and method throttles, API keys with usage plans and quotas (persisted
//! across restarts), and the 429/403 bodies.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use support::client::{get, get_with};
use support::gateway::{keyed_api, mock_method, swagger, swagger_with, ADMIN_TOKEN};
use support::{Backend, Gateway, Mode, RawClient, Response};

fn keep_alive_burst(gw: &Gateway, path: &str, n: usize, headers: &str) -> Vec<Response> {
    let mut c = RawClient::connect(gw.addr);
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(c.request(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}\r\n").as_bytes()));
    }
    out
}

#[test]
fn account_rate_and_burst_with_aws_429() {
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "ok"));
    let gw = Gateway::builder()
        .api("l", &swagger(&paths))
        .stage("l", "p", &[])
        .default_api("l")
        .shards(2)
        .extra("[limits]\nrate = 20\nburst = 10\n")
        .start();
    let start = Instant::now();
    // Two clients (connections land on both shards).
    let a = std::thread::spawn({
        let addr = gw.addr;
        move || {
            let mut c = RawClient::connect(addr);
            (0..100)
                .map(|_| c.request(b"GET /p/m HTTP/1.1\r\nHost: x\r\n\r\n").status)
                .collect::<Vec<_>>()
        }
    });
    let mut statuses = keep_alive_burst(&gw, "/p/m", 100, "")
        .iter()
        .map(|r| r.status)
        .collect::<Vec<_>>();
    statuses.extend(a.join().unwrap());
    let elapsed = start.elapsed().as_secs_f64();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 200);
    // At most burst + rate × elapsed (+1 for the token in progress).
    let most = 10.0 + 20.0 * elapsed + 1.0;
    assert!(
        (ok as f64) <= most,
        "{ok} admitted in {elapsed:.2}s (at most {most:.0})"
    );
    assert!(ok >= 10, "the burst must be admitted: {ok}");
    let r = keep_alive_burst(&gw, "/p/m", 30, "")
        .into_iter()
        .find(|r| r.status == 429)
        .unwrap();
    assert_eq!(
        r.json(),
        serde_json::json!({"message": "Too Many Requests"})
    );
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("TooManyRequestsException")
    );
    // Tokens come back at the rate.
    std::thread::sleep(Duration::from_millis(600));
    let again = keep_alive_burst(&gw, "/p/m", 5, "");
    assert!(
        again.iter().filter(|r| r.status == 200).count() >= 5,
        "refill after 600 ms at 20/s"
    );
}

/// Requests to `resource` the gateway has finished, whatever their status
/// (its metrics, summed over the status classes).
fn finished_requests(admin: std::net::SocketAddr, resource: &str) -> u64 {
    let r = RawClient::connect(admin).request(
        format!("GET /metrics HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let label = format!("resource=\"{resource}\"");
    r.text()
        .lines()
        .filter(|l| l.starts_with("tollgate_requests_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn concurrency_cap_holds_and_aborted_requests_release_their_permits() {
    let backend = Backend::start(Mode::Slow(Duration::from_millis(400)));
    let paths = format!(
        r#"{{"/slow": {{"get": {}}}}}"#,
        support::gateway::proxy_method(&format!("http://{}/s", backend.addr), "")
    );
    let gw = Gateway::builder()
        .api("c", &swagger(&paths))
        .stage("c", "p", &[])
        .default_api("c")
        .shards(2)
        .extra("[limits]\nmax_concurrent = 5\n")
        .admin()
        .start();
    let addr = gw.addr;
    let clients: Vec<_> = (0..20)
        .map(|_| std::thread::spawn(move || get(addr, "/p/slow").status))
        .collect();
    let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        backend.max_in_flight.load(Ordering::SeqCst) <= 5,
        "backend saw {}",
        backend.max_in_flight.load(Ordering::SeqCst)
    );
    assert!(ok >= 5, "{statuses:?}");

    // 10 requests, 3 of them abandoned by their clients mid-flight.
    let mut conns = Vec::new();
    for i in 0..10 {
        let mut c = RawClient::connect(addr);
        c.send(b"GET /p/slow HTTP/1.1\r\nHost: x\r\n\r\n");
        conns.push((i, c));
        std::thread::sleep(Duration::from_millis(5));
    }
    for (i, c) in conns.iter_mut() {
        if *i % 3 == 0 {
            let _ = c.stream.shutdown(std::net::Shutdown::Both);
        }
    }
    drop(conns);
    // After the backend has answered everything, every permit is back:
    // five concurrent requests all get through. Counted, not timed: the
    // gateway has finished all 30 requests (its metrics count one once its
    // permit is dropped) and the backend has nothing in flight.
    let admin = gw.admin.expect("admin listener");
    support::wait_until(
        "the gateway to finish all 30 requests and the backend to answer them",
        Duration::from_secs(30),
        || finished_requests(admin, "/slow") >= 30 && backend.in_flight.load(Ordering::SeqCst) == 0,
    );
    // Each permit is now free on its shard; a shard hands spare ones back
    // to the shared pool after two housekeeping ticks (100 ms each) without
    // use, so until then a burst landing mostly on the other shard can get
    // a 429. Tried again after a pause; a leaked permit fails every time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let clients: Vec<_> = (0..5)
            .map(|_| std::thread::spawn(move || get(addr, "/p/slow").status))
            .collect();
        let statuses: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
        if statuses == vec![200; 5] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "permits leaked: five concurrent requests still get {statuses:?} 30 s after the others finished"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn stage_and_method_throttles() {
    let paths = format!(
        r#"{{"/a": {{"get": {}}}, "/b": {{"get": {}}}}}"#,
        mock_method(200, "a"),
        mock_method(200, "b")
    );
    let gw = Gateway::builder()
        .api("t", &swagger(&paths))
        .default_api("t")
        .shards(1)
        .extra("[[stages]]\napi = \"t\"\nname = \"p\"\nthrottle = { rate = 1, burst = 8 }\nmethod_settings = { \"/a/GET\" = { throttle = { rate = 1, burst = 3 } } }\n")
        .start();
    let a: Vec<u16> = keep_alive_burst(&gw, "/p/a", 6, "")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(a, vec![200, 200, 200, 429, 429, 429], "method burst 3");
    // /b has no method limit; the stage's remaining 5 tokens (8 - 3) apply.
    let b: Vec<u16> = keep_alive_burst(&gw, "/p/b", 7, "")
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        b,
        vec![200, 200, 200, 200, 200, 429, 429],
        "stage burst 8 shared by all methods"
    );
}

const GOLD: &str = "gold-key-0123456789abcdef";
const BRONZE: &str = "bronze-key-0123456789abcd";
const OTHER: &str = "other-stage-key-012345678";

fn keyed_gateway() -> Gateway {
    Gateway::builder()
        .api("k", &keyed_api())
        .stage("k", "p", &[])
        .stage("k", "q", &[])
        .default_api("k")
        .shards(2)
        .extra(&format!(
            r#"[[usage_plans]]
id = "gold"
throttle = {{ rate = 1, burst = 3 }}
api_stages = ["k/p"]
[[usage_plans]]
id = "bronze"
quota = {{ limit = 4, period = "DAY" }}
api_stages = ["k/p"]
[[usage_plans]]
id = "elsewhere"
api_stages = ["k/q"]
[[api_keys]]
name = "gold"
value = "{GOLD}"
usage_plans = ["gold"]
[[api_keys]]
name = "bronze"
value = "{BRONZE}"
usage_plans = ["bronze"]
[[api_keys]]
name = "other"
value = "{OTHER}"
usage_plans = ["elsewhere"]
"#
        ))
        .start()
}

#[test]
fn api_keys_usage_plan_throttles_and_quotas() {
    let gw = keyed_gateway();
    // Methods without apiKeyRequired ignore keys.
    assert_eq!(get(gw.addr, "/p/open").text(), "open");
    // Missing, unknown, or not in a plan for this stage: 403 Forbidden.
    for headers in [
        "",
        "x-api-key: not-a-known-key-at-all\r\n",
        &format!("x-api-key: {OTHER}\r\n"),
    ] {
        let r = get_with(gw.addr, "/p/keyed", headers);
        assert_eq!(r.status, 403, "{headers}");
        assert_eq!(r.json(), serde_json::json!({"message": "Forbidden"}));
        assert_eq!(r.header("x-amzn-ErrorType"), Some("ForbiddenException"));
    }
    assert_eq!(
        get_with(gw.addr, "/q/keyed", &format!("x-api-key: {OTHER}\r\n")).status,
        200
    );
    // Gold: throttled per key (burst 3).
    let gold: Vec<u16> = keep_alive_burst(&gw, "/p/keyed", 5, &format!("x-api-key: {GOLD}\r\n"))
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(gold, vec![200, 200, 200, 429, 429]);
    // Bronze: 4 a day, then 429 Limit Exceeded.
    let bronze = keep_alive_burst(&gw, "/p/keyed", 6, &format!("x-api-key: {BRONZE}\r\n"));
    let statuses: Vec<u16> = bronze.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200, 200, 200, 429, 429]);
    assert_eq!(
        bronze[4].json(),
        serde_json::json!({"message": "Limit Exceeded"})
    );
    assert_eq!(
        bronze[4].header("x-amzn-ErrorType"),
        Some("LimitExceededException")
    );
}

#[test]
fn quotas_survive_a_restart() {
    let gw = keyed_gateway();
    let used: Vec<u16> = keep_alive_burst(&gw, "/p/keyed", 3, &format!("x-api-key: {BRONZE}\r\n"))
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(used, vec![200, 200, 200]);
    // Graceful stop saves the counts; kill -9 after the periodic save (every
    // 2 s) too. Waits for two saves that ended after the requests: the
    // second began after them, so it holds their counts (a fixed sleep
    // could kill the process in the middle of the first such save, and a
    // save may read the counts before the last request is counted).
    gw.wait_quota_saves(std::time::SystemTime::now(), 2, Duration::from_secs(20));
    let gw = gw.kill9_and_restart();
    let after: Vec<u16> = keep_alive_burst(&gw, "/p/keyed", 3, &format!("x-api-key: {BRONZE}\r\n"))
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        after,
        vec![200, 429, 429],
        "the day's quota (4) was already 3/4 used"
    );
}

/// `$context.identity.apiKey` and `apiKeyId` in mapping templates and
/// request parameters: the key and its name for a method that requires
/// one; empty for one that does not, whatever the client sends.
#[test]
fn the_api_key_is_in_the_context_of_methods_that_require_one() {
    let backend = Backend::start(Mode::Echo);
    let method = |keyed: bool| {
        format!(
            r#"{{{security}"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "POST", "uri": "http://{b}/who",
              "requestParameters": {{"integration.request.header.X-Key": "context.identity.apiKey"}},
              "requestTemplates": {{"application/json": "{{\"key\": \"$context.identity.apiKey\", \"id\": \"$context.identity.apiKeyId\"}}"}},
              "responses": {{"default": {{"statusCode": "200"}}}}}}}}"#,
            security = if keyed {
                r#""security": [{"api_key": []}], "#
            } else {
                ""
            },
            b = backend.addr
        )
    };
    let paths = format!(
        r#"{{"/who": {{"get": {}}}, "/anyone": {{"get": {}}}}}"#,
        method(true),
        method(false)
    );
    let gw = Gateway::builder()
        .api(
            "k",
            &swagger_with(
                &paths,
                r#""securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}"#,
            ),
        )
        .stage("k", "p", &[])
        .default_api("k")
        .extra(&format!(
            "[[usage_plans]]\nid = \"gold\"\napi_stages = [\"k/p\"]\n[[api_keys]]\nname = \"gold-one\"\nvalue = \"{GOLD}\"\nusage_plans = [\"gold\"]\n"
        ))
        .start();
    let key = format!("x-api-key: {GOLD}\r\n");
    assert_eq!(get_with(gw.addr, "/p/who", &key).status, 200);
    let sent = backend.last();
    assert_eq!(sent.header("x-key"), Some(GOLD));
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body, serde_json::json!({"key": GOLD, "id": "gold-one"}));
    assert_eq!(get_with(gw.addr, "/p/anyone", &key).status, 200);
    let sent = backend.last();
    assert_eq!(sent.header("x-key").unwrap_or(""), "");
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body, serde_json::json!({"key": "", "id": ""}));
}

/// `x-amazon-apigateway-api-key-source: AUTHORIZER`: keys come from the
/// method's Lambda authorizer (tests/authorization.rs), never from a
/// client's `x-api-key`, which opens nothing (it did: the extension was not
/// read); methods without `apiKeyRequired` are unaffected.
#[test]
fn keys_from_an_authorizer_are_never_taken_from_the_header() {
    let doc = keyed_api().replacen(
        '{',
        r#"{"x-amazon-apigateway-api-key-source": "AUTHORIZER", "#,
        1,
    );
    let gw = Gateway::builder()
        .api("k", &doc)
        .stage("k", "p", &[])
        .default_api("k")
        .extra(&format!(
            "[[usage_plans]]\nid = \"gold\"\napi_stages = [\"k/p\"]\n[[api_keys]]\nname = \"gold\"\nvalue = \"{GOLD}\"\nusage_plans = [\"gold\"]\n"
        ))
        .start();
    let r = get_with(gw.addr, "/p/keyed", &format!("x-api-key: {GOLD}\r\n"));
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), serde_json::json!({"message": "Forbidden"}));
    assert_eq!(get(gw.addr, "/p/open").text(), "open");
}

/// A streamed answer stops counting against the in-flight cap once it is
/// produced, as a buffered one does: clients that stop reading a large
/// answer do not hold the permits, so other clients are not refused.
#[test]
fn slow_readers_of_streamed_answers_hold_no_permits() {
    use std::io::Read;
    let backend = Backend::start(Mode::Large(32 << 20));
    let paths = format!(
        r#"{{"/big": {{"get": {}}}, "/m": {{"get": {}}}}}"#,
        support::gateway::proxy_method(&format!("http://{}/b", backend.addr), ""),
        mock_method(200, "{}")
    );
    let gw = Gateway::builder()
        .api("c", &swagger(&paths))
        .stage("c", "p", &[])
        .default_api("c")
        .shards(1)
        .extra("[limits]\nmax_concurrent = 2\n")
        .start();
    // Three readers take the head and a little of the body, then stop.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        std::io::Write::write_all(&mut s, b"GET /p/big HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut head = [0u8; 64];
        let n = s.read(&mut head).unwrap();
        assert!(
            head[..n].starts_with(b"HTTP/1.1 200 "),
            "{:?}",
            String::from_utf8_lossy(&head[..n])
        );
        stalled.push(s);
    }
    // Their answers are far from delivered (32 MiB each), and others are
    // served.
    for _ in 0..5 {
        assert_eq!(get(gw.addr, "/p/m").status, 200);
    }
    drop(stalled);
}
