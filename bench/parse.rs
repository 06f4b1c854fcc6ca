//! Request-head parsing and chunked-body decoding throughput.
//!
//! `parse_head` runs on three realistic heads (a small curl GET, a browser
//! GET with a dozen headers, a JSON API POST with cookies and a bearer
//! token); `ChunkedDecoder::decode` runs on a 64 KiB body sent as 16 chunks
//! of 4 KiB. Throughput is input bytes per second. Every input is checked
//! once, outside the timed loop, so an error or `Partial` path cannot be
//! measured by mistake.
//!
//! Run: `cargo bench --bench parse -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tollgate::http::chunked::{write_chunk_header, ChunkedDecoder, LAST_CHUNK};
use tollgate::http::request::{parse_head, BodyFraming, HeadLimits, Method, Parsed};

/// A minimal `curl https://api.example.com/v1/pets/42`.
const CURL_GET: &str = "GET /v1/pets/42 HTTP/1.1\r\n\
Host: api.example.com\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\
\r\n";

/// What a current desktop browser sends for a same-site page fetch.
const BROWSER_GET: &str = "GET /prod/catalog/items?category=books&page=2&sort=price_asc HTTP/1.1\r\n\
Host: shop.example.com\r\n\
Connection: keep-alive\r\n\
sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n\
sec-ch-ua-mobile: ?0\r\n\
sec-ch-ua-platform: \"Linux\"\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Referer: https://shop.example.com/prod/catalog/items?category=books&page=1\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n\
\r\n";

/// A JSON API call from a web app: bearer JWT, session cookies, tracing.
const API_POST: &str = "POST /prod/v2/orders/8f14e45f-ceea-467f-a0e6-2c1c5b2a9d1e/items?dryRun=false HTTP/1.1\r\n\
Host: api.shop.example.com\r\n\
Connection: keep-alive\r\n\
Content-Type: application/json; charset=utf-8\r\n\
Content-Length: 342\r\n\
Accept: application/json, text/plain, */*\r\n\
Accept-Encoding: gzip, deflate, br\r\n\
Accept-Language: en-US,en;q=0.9\r\n\
Authorization: Bearer eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6IjJmYjU0ZTBkLTk5MjEtNGM1Yy1hYjJjLWQyZDM3YzE4ZjQ0MyJ9.eyJzdWIiOiJ1c2VyXzAxSDlaUzVSNlRKSEFQUTNGWFo4V0VNQjJUIiwiaXNzIjoiaHR0cHM6Ly9hdXRoLmV4YW1wbGUuY29tLyIsImF1ZCI6Imh0dHBzOi8vYXBpLnNob3AuZXhhbXBsZS5jb20iLCJpYXQiOjE3MTYyMzkwMjIsImV4cCI6MTcxNjI0MjYyMiwic2NvcGUiOiJvcmRlcnM6d3JpdGUgb3JkZXJzOnJlYWQgcHJvZmlsZSJ9.Q2x1bXN5IGJ1dCByZWFsaXN0aWNhbGx5IHNpemVkIHNpZ25hdHVyZSBmb3IgYSBiZW5jaG1hcmsgb2YgYSBnYXRld2F5J3MgcmVxdWVzdC1oZWFkIHBhcnNlciwgcGFkZGVkIHRvIHRoZSBsZW5ndGggb2YgYW4gUlMyNTYgc2lnbmF0dXJl\r\n\
Origin: https://shop.example.com\r\n\
Referer: https://shop.example.com/checkout/cart\r\n\
User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\r\n\
Cookie: session_id=s%3A9c1f4b2e7a8d4e3f.Zk8qv3sXyT1m0nLw5rB2uH6jQ9pA4cD7eF0gH3iJ; csrf_token=4f9d2c1b8a7e6f5d3c2b1a0f9e8d7c6b; cart=7b226974656d73223a337d; theme=dark; _ga=GA1.1.1234567890.1716239022\r\n\
X-Request-Id: 01HZ8Y3K6Q2W7E9R4T5Y1U0I8O\r\n\
X-Amzn-Trace-Id: Root=1-6650f2a1-3c9d2e7b8a1f4c5d6e7f8a9b;Parent=53995c3f42cd8ad8;Sampled=1\r\n\
Idempotency-Key: 2b7e1516-28ae-4d2a-a6f7-15882b7e1516\r\n\
Sec-Fetch-Site: same-site\r\n\
Sec-Fetch-Mode: cors\r\n\
Sec-Fetch-Dest: empty\r\n\
\r\n";

/// Parses `head` once and panics unless it is a complete head of exactly
/// its own length with the expected method and body framing.
fn check_head(name: &str, head: &[u8], method: Method, body: BodyFraming) {
    match parse_head(head, &HeadLimits::default()) {
        Ok(Parsed::Complete(info, len)) => {
            assert_eq!(len, head.len(), "{name}: head length");
            assert_eq!(info.method, method, "{name}: method");
            assert_eq!(info.body, body, "{name}: body framing");
            assert!(info.host.is_some(), "{name}: host");
        }
        Ok(Parsed::Partial) => panic!("{name}: parse_head returned Partial"),
        Err(e) => panic!("{name}: parse_head failed: {e:?}"),
    }
}

fn bench_parse_head(c: &mut Criterion) {
    let heads: [(&str, &str, Method, BodyFraming); 3] = [
        ("curl_get", CURL_GET, Method::Get, BodyFraming::None),
        ("browser_get", BROWSER_GET, Method::Get, BodyFraming::None),
        ("api_post", API_POST, Method::Post, BodyFraming::Length(342)),
    ];
    let limits = HeadLimits::default();
    let mut group = c.benchmark_group("parse_head");
    for (name, head, method, body) in heads {
        let head = head.as_bytes();
        check_head(name, head, method, body);
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_with_input(BenchmarkId::new(name, head.len()), head, |b, head| {
            b.iter(|| black_box(parse_head(black_box(head), &limits)));
        });
    }
    group.finish();
}

const BODY_BYTES: usize = 64 * 1024;
const CHUNKS: usize = 16;

/// A 64 KiB payload, its chunked encoding (16 chunks of 4 KiB, then the last
/// chunk), and the payload itself for checking.
fn chunked_body() -> (Vec<u8>, Vec<u8>) {
    let payload: Vec<u8> = (0..BODY_BYTES).map(|i| (i * 31 + 7) as u8).collect();
    let mut wire = Vec::with_capacity(BODY_BYTES + CHUNKS * 16 + LAST_CHUNK.len());
    for chunk in payload.chunks(BODY_BYTES / CHUNKS) {
        write_chunk_header(&mut wire, chunk.len());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(LAST_CHUNK);
    (wire, payload)
}

fn bench_chunked(c: &mut Criterion) {
    let (wire, payload) = chunked_body();
    let mut out = BytesMut::with_capacity(BODY_BYTES);
    match ChunkedDecoder::new().decode(&wire, &mut out) {
        Ok(p) => {
            assert!(p.done, "chunked body not complete");
            assert_eq!(p.consumed, wire.len(), "chunked body not fully consumed");
            assert_eq!(&out[..], &payload[..], "chunked payload differs");
        }
        Err(e) => panic!("chunked decode failed: {e:?}"),
    }

    let mut group = c.benchmark_group("chunked_decode");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_with_input(
        BenchmarkId::new("64KiB_16_chunks", wire.len()),
        wire.as_slice(),
        |b, wire| {
            // Reuse one buffer: this measures decoding and copying, not
            // allocating the output.
            b.iter(|| {
                out.clear();
                let progress = ChunkedDecoder::new().decode(black_box(wire), &mut out);
                black_box((progress, out.len()))
            });
        },
    );
    group.finish();
}

criterion_group!(benches, bench_parse_head, bench_chunked);
criterion_main!(benches);
