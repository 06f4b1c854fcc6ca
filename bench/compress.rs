//! Response compression (`minimumCompressionSize`): what gzip costs a shard
//! per response, and what each level saves, on JSON bodies of the sizes
//! APIs answer (a record, a page of records, a large export).
//!
//! The compressed size of each level is printed once before timing; the
//! level the gateway uses is `tollgate::http::encoding::LEVEL`.

use std::io::Write;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use flate2::write::GzEncoder;
use flate2::Compression;

/// A JSON array of `n` pet records, as an API answers.
fn json_body(n: usize) -> Vec<u8> {
    let items: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"id":{i},"type":"{}","name":"pet-{i}","price":{}.{:02},"tags":["a{}","b{}"],"available":{}}}"#,
                ["dog", "cat", "fish", "bird"][i % 4],
                10 + i % 990,
                i % 100,
                i % 7,
                i % 13,
                i % 3 == 0
            )
        })
        .collect();
    format!("[{}]", items.join(",")).into_bytes()
}

fn gzip(level: u32, data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::with_capacity(data.len() / 4), Compression::new(level));
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

fn bench(c: &mut Criterion) {
    for (label, n) in [("2KiB", 20), ("64KiB", 640), ("1MiB", 10_240)] {
        let body = json_body(n);
        for level in [1, 6] {
            println!(
                "{label} ({} B) level {level}: {} B",
                body.len(),
                gzip(level, &body).len()
            );
        }
        let mut group = c.benchmark_group(format!("gzip/{label}"));
        group.throughput(Throughput::Bytes(body.len() as u64));
        for level in [1, 6] {
            group.bench_function(format!("level{level}"), |b| {
                b.iter(|| black_box(gzip(level, black_box(&body))))
            });
        }
        group.bench_function("gateway", |b| {
            b.iter(|| {
                black_box(tollgate::http::encoding::compress(
                    tollgate::http::encoding::Coding::Gzip,
                    black_box(&body),
                ))
            })
        });
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
