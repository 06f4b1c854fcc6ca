//! Operations: `/metrics` (checked with the Prometheus Python client's
//! OpenMetrics parser), `/healthz` and `/readyz`, access logs in the
//! user's `$context` format (to a file, reopened on SIGUSR1) and the
//! metrics switch.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::gateway::{mock_method, proxy_method, swagger, ADMIN_TOKEN};
use support::{Backend, Gateway, Mode, RawClient, Response};

fn admin_get(admin: SocketAddr, path: &str, auth: Option<&str>) -> Response {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    RawClient::connect(admin).request(
        format!("GET {path} HTTP/1.1\r\nHost: admin\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
    )
}

fn get(gw: &Gateway, path: &str, headers: &str) -> Response {
    RawClient::connect(gw.addr).request(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
}

/// `tollgate serve --config config` (with `extra` arguments) at log level
/// info, its standard error going to `stderr`, standard output discarded.
fn spawn_serve(config: &std::path::Path, extra: &[&str], stderr: Stdio) -> std::process::Child {
    Command::new(support::gateway::bin())
        .args(["serve", "--config"])
        .arg(config)
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// Parses OpenMetrics text with `prometheus_client` (Python) and returns
/// every sample as `name{labels}` → value, labels sorted. `None` when the
/// parser is not installed.
fn parse_openmetrics(text: &str) -> Option<HashMap<String, f64>> {
    let script = r#"
import sys
try:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families
except ImportError:
    print("NO-PARSER"); sys.exit(0)
text = sys.stdin.read()
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value!r}")
"#;
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ok()?;
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if stdout.trim() == "NO-PARSER" {
        eprintln!("SKIP: python3 prometheus_client is not installed; parsed by hand");
        return None;
    }
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the output: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        stdout
            .lines()
            .filter_map(|l| l.rsplit_once(' '))
            .map(|(k, v)| (k.to_owned(), v.parse().unwrap()))
            .collect(),
    )
}

/// A fallback reader for the same shape (when Python's parser is absent).
fn parse_by_hand(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| {
            let (name, labels) = match k.split_once('{') {
                Some((n, rest)) => {
                    let mut ls: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
                    ls.sort();
                    (n, ls.join(","))
                }
                None => (k, String::new()),
            };
            (format!("{name}{{{labels}}}"), v.parse().unwrap_or(f64::NAN))
        })
        .collect()
}

fn scrape(admin: SocketAddr) -> (String, HashMap<String, f64>) {
    let r = admin_get(admin, "/metrics", Some(ADMIN_TOKEN));
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text"),
        "{:?}",
        r.header("content-type")
    );
    let text = r.text();
    let samples = parse_openmetrics(&text).unwrap_or_else(|| parse_by_hand(&text));
    (text, samples)
}

fn sample(samples: &HashMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in:\n{:#?}", sorted(samples)))
}

fn sorted(s: &HashMap<String, f64>) -> Vec<(&String, &f64)> {
    let mut v: Vec<_> = s.iter().collect();
    v.sort_by(|a, b| a.0.cmp(b.0));
    v
}

const ROUTE: &str = r#"api="shop",method="GET",resource="/items/{id}",stage="prod""#;

fn shop_doc(backend: SocketAddr) -> String {
    swagger(&format!(
        r#"{{"/items/{{id}}": {{"get": {}}}, "/hello": {{"get": {}}}}}"#,
        proxy_method(
            &format!("http://{backend}/items/{{id}}"),
            r#", "requestParameters": {"integration.request.path.id": "method.request.path.id"}"#
        ),
        mock_method(200, r#"{"hello":"world"}"#)
    ))
}

#[test]
fn metrics_count_every_shard_and_parse_as_openmetrics() {
    let backend = Backend::start(Mode::Echo);
    let gw = Gateway::builder()
        .shards(2)
        .api("shop", &shop_doc(backend.addr))
        .default_api("shop")
        .extra("[[stages]]\napi = \"shop\"\nname = \"prod\"\nmethod_settings = { \"/hello/GET\" = { throttle = { rate = 1, burst = 1 } } }\n")
        .admin()
        .start();
    let admin = gw.admin.expect("admin listener");

    // No credentials, wrong credentials: no metrics.
    assert_eq!(admin_get(admin, "/metrics", None).status, 403);
    assert_eq!(admin_get(admin, "/metrics", Some("wrong")).status, 403);

    // Separate connections: SO_REUSEPORT spreads them over both shards.
    for i in 0..20 {
        let r = get(&gw, &format!("/prod/items/{i}"), "");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    assert_eq!(get(&gw, "/prod/nothing", "").status, 403);
    assert_eq!(get(&gw, "/nostage/items/1", "").status, 403);
    // Heads refused before they were requests count there too.
    let garbage = RawClient::connect(gw.addr).request(b"GARBAGE\r\n\r\n");
    assert_eq!(garbage.status, 400);
    // The MOCK route allows one request per second: the second is a 429.
    let first = get(&gw, "/prod/hello", "");
    assert_eq!(first.status, 200);
    let mut throttled = 0;
    let mut mock_ok = 1;
    for _ in 0..3 {
        match get(&gw, "/prod/hello", "").status {
            429 => throttled += 1,
            200 => mock_ok += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert!(throttled >= 1);

    let (text, s) = scrape(admin);
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_requests_total{{{ROUTE},status=\"2xx\"}}")
        ),
        20.0,
        "{text}"
    );
    let hello = r#"api="shop",method="GET",resource="/hello",stage="prod""#;
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_requests_total{{{hello},status=\"2xx\"}}")
        ),
        mock_ok as f64
    );
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_requests_total{{{hello},status=\"4xx\"}}")
        ),
        throttled as f64
    );
    assert_eq!(
        sample(&s, &format!("tollgate_throttled_requests_total{{{hello}}}")),
        throttled as f64
    );
    // The unknown resource counts under its stage; the unknown stage under
    // no API.
    assert_eq!(
        sample(
            &s,
            r#"tollgate_requests_total{api="shop",method="",resource="",stage="prod",status="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &s,
            r#"tollgate_requests_total{api="",method="",resource="",stage="",status="4xx"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(
            &s,
            r#"tollgate_gateway_responses_total{type="MISSING_AUTHENTICATION_TOKEN"}"#
        ),
        2.0
    );
    assert_eq!(
        sample(&s, r#"tollgate_gateway_responses_total{type="THROTTLED"}"#),
        throttled as f64
    );
    // Histograms: every request observed, in cumulative buckets.
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_request_duration_seconds_count{{{ROUTE}}}")
        ),
        20.0
    );
    assert_eq!(
        sample(
            &s,
            r#"tollgate_request_duration_seconds_bucket{api="shop",le="+Inf",method="GET",resource="/items/{id}",stage="prod"}"#
        ),
        20.0
    );
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_integration_duration_seconds_count{{{ROUTE}}}")
        ),
        20.0
    );
    let sum = sample(
        &s,
        &format!("tollgate_request_duration_seconds_sum{{{ROUTE}}}"),
    );
    assert!(sum > 0.0 && sum < 20.0, "{sum}");
    // Upstream connections: every request went to the backend, on new or
    // pooled connections.
    let opened = sample(&s, "tollgate_upstream_connections_opened_total{}");
    let reused = sample(&s, "tollgate_upstream_connections_reused_total{}");
    assert_eq!(opened + reused, 20.0);
    assert!(opened >= 1.0 && opened <= backend.connection_count() as f64);
    assert_eq!(sample(&s, "tollgate_shards{}"), 2.0);
    assert_eq!(sample(&s, "tollgate_scrape_shards_missing{}"), 0.0);
    assert_eq!(sample(&s, "tollgate_config_generation{}"), 1.0);
    // Every client connection was closed (at most one may still be
    // closing).
    assert!(sample(&s, "tollgate_client_connections{}") <= 1.0);
    assert_eq!(sample(&s, "tollgate_requests_in_flight{}"), 0.0);

    // A reload counts, and moves the generation; the counts stay.
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    let (_, s) = scrape(admin);
    assert_eq!(
        sample(&s, r#"tollgate_config_reloads_total{result="success"}"#),
        1.0
    );
    assert_eq!(sample(&s, "tollgate_config_generation{}"), 2.0);
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_requests_total{{{ROUTE},status=\"2xx\"}}")
        ),
        20.0
    );
    // A broken config counts as a failed reload.
    std::fs::write(gw.dir.path().join("shop.json"), "{ not json").unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("reload failed", 1, Duration::from_secs(10)));
    let (_, s) = scrape(admin);
    assert_eq!(
        sample(&s, r#"tollgate_config_reloads_total{result="failure"}"#),
        1.0
    );
}

#[test]
fn health_endpoints_need_no_credentials() {
    let gw = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/x": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .stage("a", "prod", &[])
        .admin()
        .start();
    let admin = gw.admin.unwrap();
    let h = admin_get(admin, "/healthz", None);
    assert_eq!((h.status, h.text().as_str()), (200, "ok\n"));
    let r = admin_get(admin, "/readyz", None);
    assert_eq!((r.status, r.text().as_str()), (200, "ready\n"));
    // HEAD (health checkers, `wget --spider`): the same status and length,
    // no body, and the connection still serves the next request.
    let mut c = RawClient::connect(admin);
    for (path, len) in [("/healthz", "3"), ("/readyz", "6")] {
        c.send(format!("HEAD {path} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        let r = c.read_response(true);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-length"), Some(len), "{path}");
    }
    let r = c.request(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    // Anything else still needs credentials.
    assert_eq!(admin_get(admin, "/restapis", None).status, 403);
}

#[test]
fn readyz_fails_while_draining() {
    let backend = Backend::start(Mode::Slow(Duration::from_secs(4)));
    let gw = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/slow": {{"get": {}}}}}"#,
                proxy_method(&format!("http://{}/slow", backend.addr), "")
            )),
        )
        .stage("a", "prod", &[])
        .default_api("a")
        .admin()
        .start();
    let admin = gw.admin.unwrap();
    let addr = gw.addr;
    // A request in flight keeps the process draining for a while (4 s:
    // time for a loaded machine to handle the signal and answer /readyz).
    let slow = std::thread::spawn(move || {
        RawClient::connect(addr)
            .request(b"GET /prod/slow HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .status
    });
    // In flight once the backend has it (counted, not timed).
    support::wait_until(
        "the slow request to reach the backend",
        Duration::from_secs(30),
        || backend.request_count() >= 1,
    );
    gw.signal("TERM");
    // Polled while the request is in flight, that is while draining.
    let mut saw_503 = false;
    while !slow.is_finished() {
        if admin_get(admin, "/readyz", None).status == 503 {
            saw_503 = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(saw_503, "readyz stayed 200 while draining");
    assert_eq!(admin_get(admin, "/healthz", None).status, 200);
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn metrics_switch_off_counts_nothing() {
    let gw = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/x": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .stage("a", "prod", &[])
        .default_api("a")
        .server("metrics", "false")
        .admin()
        .start();
    for _ in 0..5 {
        assert_eq!(get(&gw, "/prod/x", "").status, 200);
    }
    let (text, s) = scrape(gw.admin.unwrap());
    assert!(
        !s.keys().any(|k| k.starts_with("tollgate_requests_total")),
        "{text}"
    );
    // Process-wide values are still there.
    assert_eq!(sample(&s, "tollgate_shards{}"), 1.0);
}

fn wait_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || Instant::now() > until {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn access_log_json_lines_and_reopen_on_sigusr1() {
    let backend = Backend::start(Mode::Echo);
    let format = r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod","resource":"$context.resourcePath","path":"$context.path","status":$context.status,"len":$context.responseLength,"integrationStatus":"$context.integrationStatus","integrationLatency":"$context.integrationLatency","error":"$context.error.responseType","message":"$context.error.message","ua":"$context.identity.userAgent","stage":"$context.stage","api":"$context.apiId","time":"$context.requestTime"}"#;
    let gw = Gateway::builder()
        .shards(2)
        .api("shop", &shop_doc(backend.addr))
        .default_api("shop")
        .extra(&format!(
            "[[stages]]\napi = \"shop\"\nname = \"prod\"\naccess_log = {{ path = \"access.log\", format = '{format}' }}\n"
        ))
        .start();
    let log = gw.dir.path().join("access.log");

    // Raw bytes that are not UTF-8 in a header: the JSON line stays JSON.
    let ok = RawClient::connect(gw.addr).request(
        b"GET /prod/items/7 HTTP/1.1\r\nHost: x\r\nUser-Agent: tester \"quoted\" caf\xc3\xa9 \xff\xfe\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ok.status, 200);
    let missing = get(&gw, "/prod/nothing", "");
    assert_eq!(missing.status, 403);
    let mock = get(&gw, "/prod/hello", "");
    assert_eq!(mock.status, 200);

    let lines = wait_lines(&log, 3);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let entries: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let by_id = |r: &Response| {
        let id = r.header("x-amzn-requestid").unwrap();
        entries
            .iter()
            .find(|e| e["requestId"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
            .clone()
    };
    let e = by_id(&ok);
    assert_eq!(e["ip"], "127.0.0.1");
    assert_eq!(e["method"], "GET");
    assert_eq!(e["resource"], "/items/{id}");
    assert_eq!(e["path"], "/prod/items/7");
    assert_eq!(e["status"], 200);
    assert_eq!(e["len"], ok.body.len());
    assert_eq!(e["integrationStatus"], "200");
    assert!(e["integrationLatency"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(e["error"], "-");
    assert_eq!(e["ua"], "tester \"quoted\" caf\u{e9} \u{fffd}\u{fffd}");
    assert_eq!(e["stage"], "prod");
    assert_eq!(e["api"], "shop");
    assert!(e["time"].as_str().unwrap().ends_with(" +0000"));

    let e = by_id(&missing);
    assert_eq!(e["status"], 403);
    assert_eq!(e["resource"], "-");
    assert_eq!(e["error"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(e["message"], "Missing Authentication Token");
    assert_eq!(e["len"], missing.body.len());
    assert_eq!(e["integrationStatus"], "-");

    let e = by_id(&mock);
    assert_eq!(e["resource"], "/hello");
    assert_eq!(e["integrationStatus"], "-");
    assert_eq!(e["len"], mock.body.len());

    // logrotate: move the file away, SIGUSR1, new lines go to a new file.
    let rotated = gw.dir.path().join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    gw.signal("USR1");
    assert!(gw.wait_log("access logs reopened", 1, Duration::from_secs(30)));
    let after = get(&gw, "/prod/items/8", "");
    assert_eq!(after.status, 200);
    let fresh = wait_lines(&log, 1);
    assert_eq!(fresh.len(), 1, "{fresh:?}");
    assert!(fresh[0].contains(after.header("x-amzn-requestid").unwrap()));
    assert_eq!(wait_lines(&rotated, 3).len(), 3);
}

#[test]
fn access_log_lines_written_before_exit() {
    let gw = Gateway::builder()
        .api("a", &swagger(&format!(r#"{{"/x": {{"get": {}}}}}"#, mock_method(200, "{}"))))
        .default_api("a")
        .extra("[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = { path = \"a.log\", format = \"$context.requestId $context.status\" }\n")
        .start();
    let mut ids = Vec::new();
    for _ in 0..50 {
        let r = get(&gw, "/prod/x", "");
        ids.push(r.header("x-amzn-requestid").unwrap().to_owned());
    }
    let log = gw.dir.path().join("a.log");
    let mut gw = gw;
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 50);
    for (line, id) in lines.iter().zip(&ids) {
        assert_eq!(*line, format!("{id} 200"));
    }
}

/// Why a request failed reaches the operator: the access log's
/// `$context.integrationErrorMessage` / `$context.integration.error` name
/// the cause, and the gateway's log has a warning (at most one a second per
/// shard, counting the ones left out). Variables API Gateway documents but
/// this gateway has no value for (`authorize.*`, `waf.*`, ...) load and
/// print `-`.
#[test]
fn access_log_and_log_say_why_an_integration_failed() {
    // A backend that answers with bytes that are not HTTP (a closed port
    // could be taken by another test's backend meanwhile).
    let broken = Backend::start(Mode::Garbage);
    let doc = swagger(&format!(
        r#"{{"/down": {{"get": {}}}, "/hello": {{"get": {}}}}}"#,
        proxy_method(&format!("http://{}/x", broken.addr), ""),
        mock_method(200, "{}")
    ));
    let format = "$context.requestId|$context.status|$context.integrationErrorMessage|$context.integration.error|$context.authorize.status|$context.authenticate.error|$context.waf.status|$context.identity.vpceId";
    let gw = Gateway::builder()
        .shards(1)
        .api("a", &doc)
        .default_api("a")
        .extra(&format!(
            "[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = {{ path = \"a.log\", format = \"{format}\" }}\n"
        ))
        .start();
    let down = get(&gw, "/prod/down", "");
    assert_eq!(down.status, 504, "{}", down.text());
    let ok = get(&gw, "/prod/hello", "");
    assert_eq!(ok.status, 200);
    let lines = wait_lines(&gw.dir.path().join("a.log"), 2);
    let line = |r: &Response| {
        let id = r.header("x-amzn-requestid").unwrap();
        lines
            .iter()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
            .split('|')
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let d = line(&down);
    assert_eq!(d[1], "504");
    let target = broken.addr.to_string();
    assert!(
        d[2].contains(&target) && d[2].contains("unparsable"),
        "{d:?}"
    );
    assert_eq!(d[3], d[2]);
    assert_eq!(&d[4..], ["-", "-", "-", "-"]);
    assert_eq!(line(&ok)[1..], ["200", "-", "-", "-", "-", "-", "-"]);

    // The warning, then a burst: one line for it, then one that counts
    // what was left out.
    assert!(gw.wait_log("integration failed", 1, Duration::from_secs(10)));
    let first = gw
        .log()
        .into_iter()
        .find(|l| l.contains("integration failed"))
        .unwrap();
    assert!(first.contains("WARN") && first.contains(&target), "{first}");
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..30 {
        assert_eq!(get(&gw, "/prod/down", "").status, 504);
    }
    let burst = gw.log_count("integration failed");
    assert!((2..=3).contains(&burst), "{burst} warnings for 31 failures");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(get(&gw, "/prod/down", "").status, 504);
    assert!(gw.wait_log("integration failed", burst + 1, Duration::from_secs(10)));
    let last = gw
        .log()
        .into_iter()
        .rev()
        .find(|l| l.contains("integration failed"))
        .unwrap();
    let left_out: u64 = last
        .split("similar_left_out=")
        .nth(1)
        .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{last}"));
    assert!((28..=29).contains(&left_out), "{last}");
}

/// `tollgate check` of a config whose stage has this `access_log`: its
/// exit code and output (stderr, then stdout).
fn check_access_log(access_log: &str) -> (Option<i32>, String) {
    let b = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/x": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .extra(&format!(
            "[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = {access_log}\n"
        ));
    let (_dir, path) = b.write();
    let out = Command::new(support::gateway::bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn bad_access_log_format_is_a_located_error() {
    let (code, err) = check_access_log("{ format = \"$context.requestId $context.stauts\" }");
    assert_eq!(code, Some(1));
    assert!(err.contains("tollgate.toml"), "{err}");
    assert!(err.contains("$.stages[0].access_log.format"), "{err}");
    assert!(err.contains("$context.stauts"), "{err}");

    // A file in a directory that does not exist: an error at check (every
    // line would be lost, with an error logged per flush).
    let (code, err) =
        check_access_log("{ path = \"nodir/a.log\", format = \"$context.requestId\" }");
    assert_eq!(code, Some(1));
    assert!(
        err.contains("$.stages[0].access_log.path")
            && err.contains("nodir")
            && err.contains("does not exist"),
        "{err}"
    );
}

#[test]
fn cache_metrics_per_stage() {
    let backend = Backend::start(Mode::Echo);
    let gw = Gateway::builder()
        .shards(1)
        .api("shop", &shop_doc(backend.addr))
        .default_api("shop")
        .extra("[[stages]]\napi = \"shop\"\nname = \"prod\"\ncache = { ttl_seconds = 60 }\n")
        .admin()
        .start();
    for _ in 0..3 {
        assert_eq!(get(&gw, "/prod/items/1", "").status, 200);
    }
    assert_eq!(get(&gw, "/prod/items/2", "").status, 200);
    assert_eq!(backend.request_count(), 2);
    let (_, s) = scrape(gw.admin.unwrap());
    let stage = r#"api="shop",stage="prod""#;
    assert_eq!(
        sample(&s, &format!("tollgate_cache_hits_total{{{stage}}}")),
        2.0
    );
    assert_eq!(
        sample(&s, &format!("tollgate_cache_misses_total{{{stage}}}")),
        2.0
    );
    assert_eq!(
        sample(&s, &format!("tollgate_cache_entries{{{stage}}}")),
        2.0
    );
    assert!(sample(&s, &format!("tollgate_cache_bytes{{{stage}}}")) > 0.0);
    // A hit does not call the integration: two integration observations.
    assert_eq!(
        sample(
            &s,
            &format!("tollgate_integration_duration_seconds_count{{{ROUTE}}}")
        ),
        2.0
    );

    // Ten concurrent misses of one key on one shard: one fetch, the nine
    // that waited for it are hits. Hits and misses add up to the requests
    // (the waiters were counted as a miss and a hit each: 19 for 10).
    let slow = Backend::start(Mode::Slow(Duration::from_millis(400)));
    let gw = Gateway::builder()
        .shards(1)
        .api("shop", &shop_doc(slow.addr))
        .default_api("shop")
        .extra("[[stages]]\napi = \"shop\"\nname = \"prod\"\ncache = { ttl_seconds = 60 }\n")
        .admin()
        .start();
    let addr = gw.addr;
    let clients: Vec<_> = (0..10)
        .map(|_| {
            std::thread::spawn(move || {
                RawClient::connect(addr)
                    .request(b"GET /prod/items/9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .status
            })
        })
        .collect();
    for c in clients {
        assert_eq!(c.join().unwrap(), 200);
    }
    assert_eq!(slow.request_count(), 1);
    let (_, s) = scrape(gw.admin.unwrap());
    let hits = sample(&s, &format!("tollgate_cache_hits_total{{{stage}}}"));
    let misses = sample(&s, &format!("tollgate_cache_misses_total{{{stage}}}"));
    assert_eq!((hits, misses), (9.0, 1.0));
}

#[test]
fn systemd_unit_verifies() {
    let unit = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/tollgate.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "LimitMEMLOCK=",
        "LimitNOFILE=",
        "NoNewPrivileges=yes",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("SKIP: systemd-analyze is not installed");
        return;
    };
    if !version.status.success() {
        eprintln!("SKIP: systemd-analyze does not run here");
        return;
    }
    // Verified with the paths pointing at the binary under test.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tollgate.service");
    let bin = support::gateway::bin();
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/tollgate", bin.to_str().unwrap()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("Unknown key") && !err.contains("Failed"),
        "systemd-analyze verify: {err}"
    );
}

#[test]
fn systemd_notifications_follow_the_lifecycle() {
    let b = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/x": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .stage("a", "prod", &[]);
    let (dir, config) = b.write();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = Command::new(support::gateway::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let recv = || {
        let mut buf = [0u8; 256];
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(recv(), "READY=1");
    let pid = child.id().to_string();
    let kill = |sig: &str| {
        Command::new("kill")
            .args([&format!("-{sig}"), &pid])
            .status()
            .unwrap()
    };
    kill("HUP");
    assert_eq!(recv(), "RELOADING=1");
    assert_eq!(recv(), "READY=1");
    kill("TERM");
    assert_eq!(recv(), "STOPPING=1");
    assert!(child.wait().unwrap().success());
}

/// Shards are pinned among the CPUs the process may use (`taskset`), not
/// all online CPUs.
#[test]
fn shards_stay_within_the_inherited_cpu_affinity() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cpus < 2 || Command::new("taskset").arg("--version").output().is_err() {
        eprintln!("SKIP: needs two CPUs and taskset");
        return;
    }
    let last = (cpus - 1).to_string();
    let b = Gateway::builder()
        .api(
            "a",
            &swagger(&format!(
                r#"{{"/x": {{"get": {}}}}}"#,
                mock_method(200, "{}")
            )),
        )
        .stage("a", "prod", &[])
        .shards(1);
    let (dir, config) = b.write();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut child = Command::new("taskset")
        .args(["-c", &last])
        .arg(support::gateway::bin())
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut shard_cpus = Vec::new();
    // Past start-up: a new thread first inherits the mask, then is pinned;
    // READY=1 comes once every shard listens (counted, not timed).
    let mut buf = [0u8; 256];
    let ready = sock.recv(&mut buf).map(|n| buf[..n].to_vec());
    if !matches!(&ready, Ok(m) if m == b"READY=1") {
        let _ = child.kill();
        let _ = child.wait();
        panic!("no READY=1 from the gateway in 60 s: {ready:?}");
    }
    let until = Instant::now() + Duration::from_secs(30);
    while shard_cpus.is_empty() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.starts_with("tollgate-shard") {
                let status =
                    std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
                if let Some(l) = status.lines().find(|l| l.starts_with("Cpus_allowed_list:")) {
                    shard_cpus.push(l.split(':').nth(1).unwrap_or("").trim().to_owned());
                }
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    drop(dir);
    assert!(!shard_cpus.is_empty(), "no shard thread found");
    assert!(
        shard_cpus.iter().all(|c| *c == last),
        "{shard_cpus:?} (allowed: {last})"
    );
}

/// A SIGHUP or SIGUSR1 that lands while the configuration is still loading
/// (a logrotate hook during a restart) does not kill the gateway: it is
/// handled once the gateway runs (the HUP as a reload).
#[test]
fn signals_during_start_up_wait_for_the_gateway() {
    let paths: Vec<String> = (0..4000)
        .map(|i| format!(r#""/p{i}": {{"get": {}}}"#, mock_method(200, "ok")))
        .collect();
    let doc = swagger(&format!("{{{}}}", paths.join(",")));
    let (dir, config) = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .write();
    let mut child = spawn_serve(&config, &[], Stdio::piped());
    let pid = child.id().to_string();
    // Past the dynamic loader, into the config load (4,000 paths take
    // several times this long to compile).
    std::thread::sleep(Duration::from_millis(80));
    for sig in ["-HUP", "-USR1"] {
        let status = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(status.success());
    }
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut addr: Option<SocketAddr> = None;
    let mut reloaded = false;
    let until = Instant::now() + Duration::from_secs(60);
    while Instant::now() < until && !(addr.is_some() && reloaded) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if line.contains("tollgate listening") {
                    addr = line
                        .split("addr=")
                        .nth(1)
                        .and_then(|a| a.split_whitespace().next())
                        .and_then(|a| a.parse().ok());
                }
                reloaded |= line.contains("configuration reloaded");
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    let exited = child.try_wait().unwrap();
    let status = addr.map(|a| {
        RawClient::connect(a)
            .request(b"GET /prod/p7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .status
    });
    let _ = child.kill();
    let _ = child.wait();
    drop(dir);
    assert_eq!(exited, None, "the gateway exited");
    assert!(addr.is_some(), "the gateway never listened");
    assert!(reloaded, "the early SIGHUP was not handled as a reload");
    assert_eq!(status, Some(200));
}

/// `RUST_LOG=debug` logs every refused request: a head refused before
/// routing, and a routed request answered with a gateway response (its
/// type named), as docs/operations.md says.
#[test]
fn debug_logging_names_every_refused_request() {
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "ok"));
    let (dir, config) = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .limit("max_body_bytes", "10")
        .write();
    let gw = support::gateway::start_with_log_level(dir, &config, &[], "debug");
    let cases: [(&[u8], u16, &str); 3] = [
        (b"GET /prod/m HTTP/1.1\r\n\r\n", 400, "refused request head"),
        (
            b"GET /prod/nope HTTP/1.1\r\nHost: a\r\n\r\n",
            403,
            "MISSING_AUTHENTICATION_TOKEN",
        ),
        (
            b"GET /prod/m HTTP/1.1\r\nHost: a\r\nContent-Length: 20\r\n\r\n01234567890123456789",
            413,
            "REQUEST_TOO_LARGE",
        ),
    ];
    for (req, status, needle) in cases {
        let r = RawClient::connect(gw.addr).request(req);
        assert_eq!(r.status, status);
        support::wait_until(needle, Duration::from_secs(10), || {
            gw.log_count(needle) >= 1
        });
    }
    assert!(gw.log_count("request refused") >= 2, "{:?}", gw.log());
}

/// Logging to a stderr that fails (a log shipper's pipe that died, a full
/// disk) loses the log lines, not the gateway: with the pipe's reader
/// gone after start-up, a failing integration still gets its 504 (it is
/// logged as a warning), every shard still answers, and SIGTERM still
/// stops the gateway with status 0. The same with stderr on `/dev/full`
/// from the start (where the first log line used to end the process with
/// a panic).
#[test]
fn a_failing_stderr_loses_log_lines_not_requests() {
    let paths = format!(
        r#"{{"/mock": {{"get": {}}}, "/down": {{"get": {}}}}}"#,
        mock_method(200, "ok"),
        // Nothing listens on port 1: INTEGRATION_FAILURE, logged.
        proxy_method("http://127.0.0.1:1/x", "")
    );
    let (dir, config) = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .write();
    let check = |addr: SocketAddr| {
        for _ in 0..3 {
            let r = RawClient::connect(addr)
                .request(b"GET /prod/down HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assert_eq!(r.status, 504);
        }
        // Many connections: both shards answer.
        for _ in 0..40 {
            let r = RawClient::connect(addr)
                .request(b"GET /prod/mock HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            assert_eq!(r.status, 200);
        }
    };
    let stop = |child: &mut std::process::Child| {
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let until = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > until {
                let _ = child.kill();
                panic!("the gateway did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    // A pipe whose reader goes away once the gateway listens.
    let mut child = spawn_serve(&config, &["--shards", "2"], Stdio::piped());
    let addr: SocketAddr = {
        use std::io::BufRead;
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        loop {
            let line = lines.next().expect("a listening line").unwrap();
            if let Some(a) = line
                .split("addr=")
                .nth(1)
                .filter(|_| line.contains("tollgate listening"))
            {
                break a.split_whitespace().next().unwrap().parse().unwrap();
            }
        }
        // The reader is dropped here: the gateway's next line meets EPIPE.
    };
    check(addr);
    assert_eq!(stop(&mut child).code(), Some(0));

    // stderr on a full device from the start: no listening line to read;
    // the port is the one the process listens on (from /proc).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let mut child = spawn_serve(&config, &[], full.into());
    let until = Instant::now() + Duration::from_secs(30);
    let port = loop {
        assert_eq!(child.try_wait().unwrap(), None, "the gateway exited");
        if let Some(p) = listening_port(child.id()) {
            break p;
        }
        assert!(Instant::now() < until, "the gateway never listened");
        std::thread::sleep(Duration::from_millis(50));
    };
    check(SocketAddr::from(([127, 0, 0, 1], port)));
    assert_eq!(stop(&mut child).code(), Some(0));
    drop(dir);
}

/// The TCP port process `pid` listens on, from `/proc`: its socket
/// descriptors' inodes matched against `/proc/net/tcp`'s listening rows.
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    table.lines().skip(1).find_map(|row| {
        let cols: Vec<&str> = row.split_whitespace().collect();
        // local_address is HEXIP:HEXPORT, st 0A is LISTEN, inode is col 9.
        (cols.len() > 9 && cols[3] == "0A" && inodes.iter().any(|i| i == cols[9]))
            .then(|| u16::from_str_radix(cols[1].split(':').nth(1)?, 16).ok())
            .flatten()
    })
}

/// Access-log lines that cannot be written are counted one by one in
/// `tollgate_access_log_write_errors_total` (the metric's help: lines
/// lost) and reported on the diagnostic log, and the count holds still
/// while no request comes: for a file that refuses every write (a full
/// disk: `/dev/full`) and for one that cannot be opened (its directory
/// removed after start). The count went up once per flush attempt, every 200 ms, and
/// nothing was logged.
#[test]
fn lost_access_log_lines_are_counted_and_reported() {
    let format = "$context.requestId $context.status";
    let builder = Gateway::builder()
        .shards(2)
        .admin()
        .api("a", &swagger(&format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "ok"))))
        .default_api("a")
        .extra(&format!(
            "[[stages]]\napi = \"a\"\nname = \"full\"\naccess_log = {{ path = \"full.log\", format = '{format}' }}\n\
             [[stages]]\napi = \"a\"\nname = \"gone\"\naccess_log = {{ path = \"logs/gone.log\", format = '{format}' }}\n"
        ));
    let (dir, config) = builder.write();
    std::os::unix::fs::symlink("/dev/full", dir.path().join("full.log")).unwrap();
    std::fs::create_dir(dir.path().join("logs")).unwrap();
    let mut gw = support::gateway::start_with_config(dir, &config, &[]);
    std::fs::remove_dir(gw.dir.path().join("logs")).unwrap();
    let admin = gw.admin.unwrap();
    let lost = || sample(&scrape(admin).1, "tollgate_access_log_write_errors_total{}");
    assert_eq!(lost(), 0.0);

    for (stage, n) in [("full", 37), ("gone", 5)] {
        for _ in 0..n {
            assert_eq!(get(&gw, &format!("/{stage}/m"), "").status, 200);
        }
    }
    let until = Instant::now() + Duration::from_secs(10);
    while lost() < 42.0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lost(), 42.0);
    // Nothing more is lost while nothing is logged.
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(lost(), 42.0);
    assert!(
        gw.wait_log("access log write failed", 1, Duration::from_secs(5)),
        "{:?}",
        gw.log()
    );
    assert!(
        gw.wait_log("access log cannot open", 1, Duration::from_secs(5)),
        "{:?}",
        gw.log()
    );
    let line = gw
        .log()
        .into_iter()
        .find(|l| l.contains("full.log"))
        .unwrap();
    assert!(line.contains("lines_lost"), "{line}");
    // Every lost line is named by some error line, those lost within the
    // interval after a report at the latest when the gateway stops.
    for _ in 0..7 {
        assert_eq!(get(&gw, "/full/m", "").status, 200);
    }
    gw.signal("TERM");
    assert_eq!(gw.wait_exit(Duration::from_secs(15)), Some(0));
    let named = |file: &str| -> u64 {
        gw.log()
            .iter()
            .filter(|l| l.contains(file))
            .filter_map(|l| {
                l.split("lines_lost=")
                    .nth(1)?
                    .split_whitespace()
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    assert_eq!(
        (named("full.log"), named("gone.log")),
        (44, 5),
        "{:?}",
        gw.log()
    );
}

/// A second gateway told to listen where one already does refuses to
/// start, naming the address, instead of splitting the connections with
/// it (every shard's listener has SO_REUSEPORT, which the kernel allows
/// any process of the same user to share); the first keeps serving.
#[test]
fn a_second_gateway_on_a_taken_port_refuses_to_start() {
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "first"));
    let first = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .start();
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "second"));
    let builder = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a");
    let (dir, config) = builder.write();
    let text = builder
        .config_text()
        .replace("127.0.0.1:0", &first.addr.to_string());
    std::fs::write(&config, text).unwrap();
    let mut child = spawn_serve(&config, &[], Stdio::piped());
    let until = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    if status.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    drop(dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(status.is_some(), "the second gateway started: {stderr}");
    assert!(!output.status.success());
    assert!(
        stderr.contains(&first.addr.to_string()) && stderr.contains("Address already in use"),
        "{stderr}"
    );
    for _ in 0..20 {
        let r = RawClient::connect(first.addr)
            .request(b"GET /prod/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!((r.status, r.body.as_slice()), (200, &b"first"[..]));
    }
}

/// A gateway stopped after serving traffic can be started again on the
/// same port at once (`systemctl restart`): the TIME_WAIT sockets of the
/// connections it closed do not count as something listening there.
#[test]
fn a_restart_after_traffic_takes_the_same_port_at_once() {
    let paths = format!(r#"{{"/m": {{"get": {}}}}}"#, mock_method(200, "up"));
    let builder = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a");
    let mut first = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .start();
    let addr = first.addr;
    // Connections the gateway closes first (Connection: close) leave
    // TIME_WAIT sockets on its side.
    for _ in 0..20 {
        let r = RawClient::connect(addr)
            .request(b"GET /prod/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        assert_eq!(r.status, 200);
    }
    first.signal("TERM");
    assert_eq!(first.wait_exit(Duration::from_secs(30)), Some(0));
    let (dir, config) = builder.write();
    let text = builder
        .config_text()
        .replace("127.0.0.1:0", &addr.to_string());
    std::fs::write(&config, text).unwrap();
    let second = support::gateway::start_with_config(dir, &config, &[]);
    assert_eq!(second.addr, addr);
    let r = RawClient::connect(addr)
        .request(b"GET /prod/m HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"up"[..]));
}
