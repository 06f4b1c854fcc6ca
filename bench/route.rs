//! Route-trie lookup cost as the number of routes grows.
//!
//! Each trie holds `size` routes: `size - 1` per-resource routes, cycling
//! through a literal path (`/v1/resource{i}/items`), a one-parameter path
//! (`/v1/resource{i}/items/{id}`) and a nested two-parameter path
//! (`/v1/resource{i}/items/{id}/sub/{subId}`), plus one greedy `/{proxy+}`
//! catch-all at the root. Three lookups are timed per size:
//!
//! * `literal_hit`: `/v1/resource{k}/items`, three literal segments;
//! * `params_hit`: `/v1/resource{k}/items/{id}/sub/{subId}`, two captures;
//! * `miss_to_greedy`: `/v1/resource{k}/items/{id}/unknown`, which walks four
//!   levels down, finds nothing, backtracks and lands on `/{proxy+}`.
//!
//! Run: `cargo bench --bench route -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use tollgate::router::{parse_path_template, Captures, RouteTrie};

const SIZES: [usize; 3] = [10, 1_000, 10_000];

/// A trie of exactly `size` routes, the greedy catch-all included. Returns
/// the trie, the number of resources it covers and the catch-all's id.
fn build_trie(size: usize) -> (RouteTrie, usize, u32) {
    assert!(
        size >= 2,
        "need at least one resource route and the catch-all"
    );
    let mut trie = RouteTrie::new();
    let mut add = |template: &str, id: u32| {
        let segments =
            parse_path_template(template).unwrap_or_else(|e| panic!("template {template}: {e}"));
        trie.insert(&segments, id)
            .unwrap_or_else(|e| panic!("insert {template}: {e}"));
    };
    let per_resource = size - 1;
    let mut id = 0u32;
    let mut resource = 0usize;
    while (id as usize) < per_resource {
        let base = format!("/v1/resource{resource}/items");
        let templates = [
            base.clone(),
            format!("{base}/{{id}}"),
            format!("{base}/{{id}}/sub/{{subId}}"),
        ];
        for template in &templates {
            if (id as usize) == per_resource {
                break;
            }
            add(template, id);
            id += 1;
        }
        resource += 1;
    }
    let greedy_id = id;
    add("/{proxy+}", greedy_id);
    (trie, resource, greedy_id)
}

/// Looks `path` up once, outside any timing, and checks the result so the
/// bench cannot quietly measure a different branch than it claims to.
fn check(trie: &RouteTrie, path: &str, want_id: u32, want_caps: &[&str]) {
    let mut caps = Captures::default();
    let got = trie.lookup(path, &mut caps);
    assert_eq!(got, Some(want_id), "lookup {path}");
    let vals: Vec<&str> = (0..caps.len())
        .map(|i| caps.get(path, i).unwrap_or_default())
        .collect();
    assert_eq!(vals, want_caps, "captures of {path}");
}

fn bench_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for size in SIZES {
        let (trie, resources, greedy_id) = build_trie(size);
        // A resource in the middle of the set; each exists with all three
        // templates at every size (ids are 3*k, 3*k+1, 3*k+2).
        let k = (resources - 1) / 2;
        let literal_id = (3 * k) as u32;
        let nested_id = (3 * k + 2) as u32;

        let literal = format!("/v1/resource{k}/items");
        let params = format!("/v1/resource{k}/items/12345/sub/abc-678");
        let miss = format!("/v1/resource{k}/items/12345/unknown");
        check(&trie, &literal, literal_id, &[]);
        check(&trie, &params, nested_id, &["12345", "abc-678"]);
        check(&trie, &miss, greedy_id, &[&miss[1..]]);

        for (case, path) in [
            ("literal_hit", &literal),
            ("params_hit", &params),
            ("miss_to_greedy", &miss),
        ] {
            group.bench_with_input(BenchmarkId::new(case, size), path.as_str(), |b, path| {
                let mut caps = Captures::default();
                b.iter(|| black_box(trie.lookup(black_box(path), &mut caps)));
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_lookup);
criterion_main!(benches);
