//! A deterministic simulation of the limiter: many virtual shards, one
//! shared bucket and permit pool, an injected clock, and arrivals spread
//! uniformly or skewed onto one shard. It drives exactly the code the
//! shards run (`LocalBucket::admit`, `LocalPermits`, the periodic idle
//! return), so its accuracy figures are the product's.

use super::concurrency::{LocalPermits, SharedPermits};
use super::{LocalBucket, Rate, SharedBucket, NANOS_PER_SEC};

#[derive(Clone, Copy, Debug)]
pub enum Skew {
    /// Every shard gets the same share.
    Uniform,
    /// Shard 0 gets this fraction (0..1) of the load, the rest is spread.
    Hot(f64),
}

#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    pub rate: Rate,
    pub max_concurrent: u64,
    pub shards: usize,
    /// Offered load as a multiple of the rate.
    pub load: f64,
    pub skew: Skew,
    pub seconds: u64,
    /// How long an admitted request stays in flight.
    pub service_ns: u64,
    /// Shard housekeeping period (idle lease return).
    pub housekeeping_ns: u64,
    pub seed: u64,
}

#[derive(Clone, Debug, Default)]
pub struct Outcome {
    pub admitted_per_second: Vec<u64>,
    pub rejected: u64,
    pub throttled_by_concurrency: u64,
    pub max_in_flight: u64,
}

struct VirtualShard {
    bucket: LocalBucket,
    permits: LocalPermits,
    /// Completion times of this shard's requests in flight (ring of times).
    in_flight: std::collections::VecDeque<u64>,
}

pub fn run(s: &Scenario) -> Outcome {
    let shared = SharedBucket::new(s.rate);
    let pool = SharedPermits::new(s.max_concurrent);
    let lease = s.rate.lease_size(s.shards);
    let block = SharedPermits::block_size(s.max_concurrent, s.shards);
    let mut shards: Vec<VirtualShard> = (0..s.shards)
        .map(|_| VirtualShard {
            bucket: LocalBucket::default(),
            permits: LocalPermits::default(),
            in_flight: std::collections::VecDeque::new(),
        })
        .collect();
    let mut out = Outcome {
        admitted_per_second: vec![0; s.seconds as usize],
        ..Outcome::default()
    };
    let mut rng = fastrand::Rng::with_seed(s.seed);
    let offered = s.rate.per_second * s.load;
    let gap = (NANOS_PER_SEC as f64 / offered).max(1.0);
    // Start one second in, as a process would after boot.
    let start = NANOS_PER_SEC;
    let end = start + s.seconds * NANOS_PER_SEC;
    let mut next_housekeeping = start + s.housekeeping_ns;
    let mut t = start as f64;
    let mut total_in_flight: u64 = 0;
    while (t as u64) < end {
        let now = t as u64;
        while next_housekeeping <= now {
            for sh in &mut shards {
                sh.bucket.idle_return(&shared, next_housekeeping);
                sh.permits.idle_return(&pool);
            }
            next_housekeeping += s.housekeeping_ns;
        }
        let i = match s.skew {
            Skew::Uniform => rng.usize(..s.shards),
            Skew::Hot(f) => {
                if s.shards == 1 || rng.f64() < f {
                    0
                } else {
                    1 + rng.usize(..s.shards - 1)
                }
            }
        };
        let sh = &mut shards[i];
        // Finish what is done on this shard.
        while sh.in_flight.front().is_some_and(|&done| done <= now) {
            sh.in_flight.pop_front();
            sh.permits.release(&pool, block);
            total_in_flight -= 1;
        }
        if sh.bucket.admit(&shared, lease, now) {
            if sh.permits.acquire(&pool, block) {
                sh.in_flight.push_back(now + s.service_ns);
                total_in_flight += 1;
                out.max_in_flight = out.max_in_flight.max(total_in_flight);
                out.admitted_per_second[((now - start) / NANOS_PER_SEC) as usize] += 1;
            } else {
                out.throttled_by_concurrency += 1;
            }
        } else {
            out.rejected += 1;
        }
        // Evenly paced arrivals with ±10% jitter.
        t += gap * (0.9 + 0.2 * rng.f64());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(shards: usize, load: f64, skew: Skew) -> Scenario {
        Scenario {
            rate: Rate {
                per_second: 10_000.0,
                burst: 5_000,
            },
            max_concurrent: 5_000,
            shards,
            load,
            skew,
            seconds: 4,
            service_ns: 1_000_000,
            housekeeping_ns: 10_000_000,
            seed: 7,
        }
    }

    #[test]
    fn accuracy_under_overload() {
        for shards in [2, 8, 64] {
            for load in [2.0, 5.0, 20.0] {
                for skew in [Skew::Uniform, Skew::Hot(0.8)] {
                    let s = scenario(shards, load, skew);
                    let o = run(&s);
                    let first = o.admitted_per_second[0];
                    assert!(
                        first <= 10_000 + 5_000,
                        "{shards} shards {load}x {skew:?}: first second {first}"
                    );
                    for (sec, &n) in o.admitted_per_second.iter().enumerate().skip(1) {
                        let err = (n as f64 - 10_000.0).abs() / 10_000.0;
                        assert!(
                            err <= 0.005,
                            "{shards} shards {load}x {skew:?}: second {sec} admitted {n}"
                        );
                    }
                    assert!(o.max_in_flight <= 5_000);
                }
            }
        }
    }

    #[test]
    fn no_rejection_below_the_rate() {
        for shards in [2, 8, 64] {
            for skew in [Skew::Uniform, Skew::Hot(0.9)] {
                let o = run(&scenario(shards, 0.9, skew));
                assert_eq!(o.rejected, 0, "{shards} shards {skew:?}");
                assert_eq!(o.throttled_by_concurrency, 0);
            }
        }
    }

    #[test]
    fn concurrency_never_exceeds_the_cap() {
        // Slow requests (0.5 s) at 2x a high rate: the permit pool binds.
        let mut s = scenario(8, 2.0, Skew::Hot(0.5));
        s.rate.per_second = 50_000.0;
        s.rate.burst = 50_000;
        s.max_concurrent = 5_000;
        s.service_ns = 500_000_000;
        s.seconds = 3;
        let o = run(&s);
        assert!(o.max_in_flight <= 5_000, "{}", o.max_in_flight);
        assert!(
            o.max_in_flight >= 4_900,
            "cap badly under-used: {}",
            o.max_in_flight
        );
        assert!(o.throttled_by_concurrency > 0);
    }
}
