//! Why the cache partitions use `quick_cache`: hit ratio and cost per
//! lookup-or-insert against `lru` (plain LRU) on the same key traces.
//!
//! Traces (100,000 distinct keys, 10,000-entry capacity, equal-size
//! entries so counting entries is counting bytes):
//! - `zipf`: Zipf(0.9) popularity, the usual shape of API traffic;
//! - `zipf+scan`: the same, with every tenth request a one-off key (a
//!   crawler walking ids), which plain LRU lets flush the popular keys.
//!
//! The hit ratios are printed once per trace before timing; criterion then
//! times one `get`, and an `insert` on a miss, per request.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

const KEYS: u64 = 100_000;
const CAPACITY: usize = 10_000;
const REQUESTS: usize = 200_000;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn zipf_cdf(n: u64, s: f64) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cdf = Vec::with_capacity(n as usize);
    for k in 1..=n {
        acc += 1.0 / (k as f64).powf(s);
        cdf.push(acc);
    }
    let total = acc;
    cdf.iter_mut().for_each(|c| *c /= total);
    cdf
}

fn trace(scan_every: Option<usize>) -> Vec<u64> {
    let cdf = zipf_cdf(KEYS, 0.9);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut one_off = KEYS;
    (0..REQUESTS)
        .map(|i| {
            if scan_every.is_some_and(|n| i % n == 0) {
                one_off += 1;
                return one_off;
            }
            let u = rng.unit();
            cdf.partition_point(|&c| c < u) as u64
        })
        .collect()
}

trait Policy {
    fn access(&mut self, key: u64) -> bool;
}

struct Quick(quick_cache::unsync::Cache<u64, u64>);

impl Policy for Quick {
    fn access(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.insert(key, key);
        false
    }
}

struct Lru(lru::LruCache<u64, u64>);

impl Policy for Lru {
    fn access(&mut self, key: u64) -> bool {
        if self.0.get(&key).is_some() {
            return true;
        }
        self.0.put(key, key);
        false
    }
}

fn quick() -> Quick {
    Quick(quick_cache::unsync::Cache::new(CAPACITY))
}

fn lru() -> Lru {
    Lru(lru::LruCache::new(
        std::num::NonZeroUsize::new(CAPACITY).unwrap_or(std::num::NonZeroUsize::MIN),
    ))
}

fn hit_ratio(p: &mut dyn Policy, keys: &[u64]) -> f64 {
    // First pass warms the cache; the second is counted.
    keys.iter().for_each(|&k| {
        p.access(k);
    });
    let hits = keys.iter().filter(|&&k| p.access(k)).count();
    hits as f64 / keys.len() as f64
}

fn bench(c: &mut Criterion) {
    for (name, scan) in [("zipf", None), ("zipf+scan", Some(10))] {
        let keys = trace(scan);
        let q = hit_ratio(&mut quick(), &keys);
        let l = hit_ratio(&mut lru(), &keys);
        eprintln!("hit ratio {name}: quick_cache {q:.3}, lru {l:.3}");
        let mut g = c.benchmark_group(format!("cache/{name}"));
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_function("quick_cache", |b| {
            let mut p = quick();
            b.iter(|| keys.iter().filter(|&&k| p.access(black_box(k))).count())
        });
        g.bench_function("lru", |b| {
            let mut p = lru();
            b.iter(|| keys.iter().filter(|&&k| p.access(black_box(k))).count())
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
