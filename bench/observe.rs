//! What every request pays after it is answered: counting it in the
//! shard's metrics (series lookup, status class, two histogram
//! observations), writing its access-log line into the shard's buffer
//! (a JSON-shaped format with ten variables), and writing a whole response
//! head and body; and the ids a request carries. These run once per
//! request on the shard, so their cost adds straight to the per-request
//! budget.
//!
//! Run: `cargo bench --bench observe -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use tollgate::access_log::{AccessLog, Entry, Format, ShardLogs, Sinks, Target};
use tollgate::gateway_response::ResponseType;
use tollgate::http::response::Persist;
use tollgate::integration::write_full_response;
use tollgate::metrics::{Keys, Labels, Observation, ShardMetrics};

fn metrics(c: &mut Criterion) {
    let keys = Keys::default();
    let ids: Vec<u32> = (0..50)
        .map(|i| {
            keys.id(Labels {
                api: "petstore".into(),
                stage: "prod".into(),
                resource: format!("/r{i}/{{id}}"),
                method: "GET".into(),
            })
        })
        .collect();
    let mut m = ShardMetrics::default();
    let mut n: u64 = 0;
    c.bench_function("metrics/request", |b| {
        b.iter(|| {
            n = n.wrapping_add(7919);
            let series = ids[(n % ids.len() as u64) as usize];
            m.request(black_box(&Observation {
                series,
                status: if n % 10 == 0 { 429 } else { 200 },
                latency_ns: 150_000 + n % 5_000_000,
                integration_ns: Some(100_000 + n % 1_000_000),
                error: (n % 10 == 0).then_some(ResponseType::Throttled),
            }));
        })
    });
}

fn access_log(c: &mut Criterion) {
    let sinks = Sinks::default();
    let format = Format::parse(
        r#"{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","method":"$context.httpMethod","resource":"$context.resourcePath","path":"$context.path","status":$context.status,"len":$context.responseLength,"time":"$context.requestTime","latency":$context.responseLatency,"ua":"$context.identity.userAgent"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = AccessLog {
        sink: sinks.id(&Target::Stdout),
        format,
    };
    let entry = Entry {
        request_id: "0f9c1d2e-8a7b-4c6d-9e0f-1a2b3c4d5e6f",
        source_ip: "203.0.113.7"
            .parse()
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        user_agent: Some(b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"),
        api_key: None,
        http_method: "GET",
        resource_path: "/pets/{petId}",
        path: b"/prod/pets/42",
        status: 200,
        response_length: 412,
        request_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
        response_latency_ms: 3,
        integration_latency_ms: Some(2),
        integration_status: Some(200),
        error_message: None,
        error_type: None,
        validation_error: None,
        integration_error: None,
        stage: "prod",
        api_id: "petstore",
        domain_name: b"api.example.com",
        client_cert: None,
        authorizer: None,
        caller: None,
    };
    let mut logs = ShardLogs::default();
    let mut lines = 0u32;
    c.bench_function("access_log/line", |b| {
        b.iter(|| {
            logs.log(&log, black_box(&entry));
            lines += 1;
            // Hand over as a shard does every tick (nobody reads the queue
            // here, so batches are dropped once it is full: the cost of the
            // line itself is what is measured).
            if lines % 1000 == 0 {
                logs.flush(&sinks);
            }
        })
    });
}

fn response(c: &mut Criterion) {
    let headers = vec![
        ("Access-Control-Allow-Origin".to_owned(), "*".to_owned()),
        ("Cache-Control".to_owned(), "no-store".to_owned()),
    ];
    let body = vec![b'x'; 512];
    let mut out = Vec::with_capacity(2048);
    c.bench_function("response/write_full_512B", |b| {
        b.iter(|| {
            out.clear();
            write_full_response(
                &mut out,
                200,
                Some(b"application/json"),
                black_box(&headers)
                    .iter()
                    .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
                black_box(&body),
                "0f9c1d2e-8a7b-4c6d-9e0f-1a2b3c4d5e6f",
                Persist::Keep,
                false,
            );
            black_box(out.len());
        })
    });
}

/// The ids every request gets: its request id, the extended id every
/// answer carries (`x-amz-apigw-id`) and the trace header an integration
/// request carries (`X-Amzn-Trace-Id`), both derived from the request id.
fn ids(c: &mut Criterion) {
    c.bench_function("ids/request_id", |b| {
        b.iter(|| black_box(tollgate::ids::new_request_id()))
    });
    let rid = "0f9c1d2e-8a7b-4c6d-9e0f-1a2b3c4d5e6f";
    c.bench_function("ids/extended_id", |b| {
        b.iter(|| black_box(tollgate::ids::extended_id(black_box(rid))))
    });
    c.bench_function("ids/trace_root", |b| {
        b.iter(|| black_box(tollgate::ids::trace_root(black_box(rid), 1_795_000_000)))
    });
}

criterion_group!(benches, metrics, access_log, response, ids);
criterion_main!(benches);
