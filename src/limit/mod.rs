//! Throttling: token buckets shared by all shards (and, with Redis, by all
//! hosts), leased in small blocks so the request path does local integer
//! arithmetic. Sans-IO: every function takes the time as nanoseconds from
//! an injected clock.
//!
//! The shared bucket is a GCRA (generic cell rate algorithm) over one
//! atomic: the "theoretical arrival time" `tat`. It is exactly a token
//! bucket of `rate` tokens per second and capacity `burst`, with no timer
//! refill (refill by timers is what makes many limiters under-fill), and
//! a lease of `n` tokens is one compare-and-swap. A shard spends its lease
//! with plain integers; when the pool is empty it remembers "empty until
//! t" so a 429 costs no atomic. Over-admission is impossible by
//! construction (every admitted request spent a token of the shared
//! bucket); under-admission is bounded by the tokens leased but not yet
//! spent, which shards hand back when they idle.
//! Read first: [`SharedBucket::lease`], then [`LocalBucket::admit`].

pub mod concurrency;
pub mod quota;
pub mod registry;
pub mod sim;

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// `rate` tokens per second, at most `burst` at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: u64,
}

impl Rate {
    /// Nanoseconds per token.
    pub fn period_ns(&self) -> u64 {
        if self.per_second <= 0.0 {
            u64::MAX / 4
        } else {
            ((NANOS_PER_SEC as f64) / self.per_second).max(1.0) as u64
        }
    }

    /// How many tokens a shard leases at once: about 1% of a second's
    /// tokens, but never so many that the leases of all shards together
    /// could hold more than half the burst (else idle leases could starve
    /// a busy shard below the rate).
    pub fn lease_size(&self, shards: usize) -> u64 {
        let per_centi = (self.per_second / 100.0) as u64;
        let by_burst = self.burst / (2 * shards.max(1) as u64);
        per_centi.min(by_burst).max(1)
    }
}

/// The bucket all shards share: one cache-padded atomic.
#[derive(Debug)]
pub struct SharedBucket {
    /// Theoretical arrival time of the next token, ns since the clock's epoch.
    tat: CachePadded<AtomicU64>,
    period: u64,
    /// `burst × period`: how far ahead of now `tat` may run.
    tolerance: u64,
    /// Cluster mode: the bucket is in Redis, and this is the reservoir of
    /// tokens the cluster agent leased from it; shards lease from here.
    external: Option<CachePadded<std::sync::atomic::AtomicI64>>,
}

impl SharedBucket {
    pub fn new(rate: Rate) -> SharedBucket {
        let period = rate.period_ns();
        SharedBucket {
            tat: CachePadded::new(AtomicU64::new(0)),
            period,
            tolerance: period.saturating_mul(rate.burst.max(1)),
            external: None,
        }
    }

    /// A bucket whose tokens come from elsewhere (see `cluster`): starts
    /// empty; [`SharedBucket::deposit`] adds tokens.
    pub fn external(rate: Rate) -> SharedBucket {
        SharedBucket {
            external: Some(CachePadded::new(std::sync::atomic::AtomicI64::new(0))),
            ..SharedBucket::new(rate)
        }
    }

    pub fn is_external(&self) -> bool {
        self.external.is_some()
    }

    /// Cluster mode: tokens the agent brought in (or took out, negative).
    pub fn deposit(&self, n: i64) {
        if let Some(e) = &self.external {
            e.fetch_add(n, Ordering::AcqRel);
        }
    }

    /// Cluster mode: tokens waiting in the reservoir.
    pub fn reservoir(&self) -> i64 {
        self.external
            .as_ref()
            .map_or(0, |e| e.load(Ordering::Acquire))
    }

    pub fn period_ns(&self) -> u64 {
        self.period
    }

    /// Takes up to `want` tokens; returns how many it got (0 if empty).
    pub fn lease(&self, now: u64, want: u64) -> u64 {
        if let Some(e) = &self.external {
            let mut cur = e.load(Ordering::Acquire);
            loop {
                if cur <= 0 {
                    return 0;
                }
                let got = (cur as u64).min(want);
                match e.compare_exchange_weak(
                    cur,
                    cur - got as i64,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => return got,
                    Err(actual) => cur = actual,
                }
            }
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            let base = tat.max(now);
            // Tokens available: how many periods fit between `base` and
            // `now + tolerance`.
            let room = (now + self.tolerance).saturating_sub(base);
            let available = room / self.period;
            let got = available.min(want);
            if got == 0 {
                return 0;
            }
            let next = base + got * self.period;
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return got,
                Err(actual) => tat = actual,
            }
        }
    }

    /// Gives back `n` unspent tokens.
    pub fn give_back(&self, now: u64, n: u64) {
        if n == 0 {
            return;
        }
        if let Some(e) = &self.external {
            e.fetch_add(n as i64, Ordering::AcqRel);
            return;
        }
        let mut tat = self.tat.load(Ordering::Acquire);
        loop {
            // The bucket cannot hold more than `burst`: `tat` never goes
            // below `now`.
            let next = tat.saturating_sub(n * self.period).max(now.min(tat));
            match self
                .tat
                .compare_exchange_weak(tat, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => tat = actual,
            }
        }
    }

    /// When the next token will be available (for "empty until").
    pub fn next_token_at(&self, now: u64) -> u64 {
        if self.external.is_some() {
            // The reservoir refills in steps; look again one token later.
            return now + self.period.min(1_000_000);
        }
        let tat = self.tat.load(Ordering::Acquire);
        (tat + self.period)
            .saturating_sub(self.tolerance)
            .max(now + 1)
    }
}

/// A shard's lease of one shared bucket.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalBucket {
    tokens: u64,
    /// The shared bucket was empty; do not ask again before this time.
    empty_until: u64,
    /// Tokens spent since the last `idle_return`.
    spent: u64,
}

impl LocalBucket {
    /// Admits one request if a token is at hand or can be leased.
    #[inline]
    pub fn admit(&mut self, shared: &SharedBucket, lease: u64, now: u64) -> bool {
        if self.tokens > 0 {
            self.tokens -= 1;
            self.spent += 1;
            return true;
        }
        if now < self.empty_until {
            return false;
        }
        let got = shared.lease(now, lease);
        if got == 0 {
            self.empty_until = shared.next_token_at(now);
            return false;
        }
        self.tokens = got - 1;
        self.spent += 1;
        true
    }

    /// Called periodically: a shard that spent nothing since the last call
    /// gives its lease back, so idle shards do not sit on tokens.
    pub fn idle_return(&mut self, shared: &SharedBucket, now: u64) {
        if self.spent == 0 && self.tokens > 0 {
            shared.give_back(now, self.tokens);
            self.tokens = 0;
        }
        self.spent = 0;
    }

    pub fn held(&self) -> u64 {
        self.tokens
    }
}

/// Nanoseconds since the first call in this process (a monotonic clock
/// all shards share; `Instant` is vDSO-cheap).
pub fn clock_ns() -> u64 {
    clock_ns_at(std::time::Instant::now())
}

/// [`clock_ns`] at an instant already read.
pub fn clock_ns_at(at: std::time::Instant) -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    at.saturating_duration_since(*epoch).as_nanos() as u64
}

/// A shard's leases of every limit, indexed by the registry's stable ids.
#[derive(Debug, Default)]
pub struct ShardLimits {
    buckets: Vec<LocalBucket>,
    quotas: Vec<quota::LocalQuota>,
    pub permits: concurrency::LocalPermits,
}

impl ShardLimits {
    #[inline]
    pub fn admit(&mut self, id: u32, shared: &SharedBucket, lease: u64, now: u64) -> bool {
        let i = id as usize;
        if i >= self.buckets.len() {
            self.buckets.resize(i + 1, LocalBucket::default());
        }
        self.buckets[i].admit(shared, lease, now)
    }

    pub fn admit_quota(
        &mut self,
        id: u32,
        pool: &quota::QuotaPool,
        block: u64,
        now_secs: u64,
    ) -> bool {
        let i = id as usize;
        if i >= self.quotas.len() {
            self.quotas.resize(i + 1, quota::LocalQuota::default());
        }
        self.quotas[i].admit(pool, block, now_secs)
    }

    pub fn idle_return_bucket(&mut self, id: u32, shared: &SharedBucket, now: u64) {
        if let Some(b) = self.buckets.get_mut(id as usize) {
            b.idle_return(shared, now);
        }
    }

    pub fn idle_return_quota(&mut self, id: u32, pool: &quota::QuotaPool) {
        if let Some(q) = self.quotas.get_mut(id as usize) {
            q.idle_return(pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS_PER_SEC;

    #[test]
    fn bucket_starts_full_and_refills_at_rate() {
        let b = SharedBucket::new(Rate {
            per_second: 100.0,
            burst: 10,
        });
        assert_eq!(b.lease(S, 1000), 10, "a fresh bucket holds the burst");
        assert_eq!(b.lease(S, 1), 0);
        assert_eq!(b.lease(S + S / 10, 1000), 10, "100/s refills 10 in 100 ms");
        assert_eq!(b.lease(S + S / 10 + S / 100, 1000), 1);
        // Long idle: capped at burst.
        assert_eq!(b.lease(100 * S, 1000), 10);
    }

    #[test]
    fn give_back_restores_tokens_but_not_beyond_burst() {
        let b = SharedBucket::new(Rate {
            per_second: 10.0,
            burst: 5,
        });
        assert_eq!(b.lease(S, 5), 5);
        b.give_back(S, 3);
        assert_eq!(b.lease(S, 10), 3);
        b.give_back(S, 100);
        assert_eq!(b.lease(S, 10), 5, "never more than the burst");
    }

    #[test]
    fn lease_sizes() {
        let r = Rate {
            per_second: 10_000.0,
            burst: 5_000,
        };
        assert_eq!(r.lease_size(2), 100);
        assert_eq!(r.lease_size(64), 39);
        assert_eq!(
            Rate {
                per_second: 50.0,
                burst: 10
            }
            .lease_size(2),
            1
        );
    }

    #[test]
    fn local_bucket_remembers_empty() {
        let b = SharedBucket::new(Rate {
            per_second: 10.0,
            burst: 2,
        });
        let mut l = LocalBucket::default();
        assert!(l.admit(&b, 2, S));
        assert!(l.admit(&b, 2, S));
        assert!(!l.admit(&b, 2, S));
        // Before the next token the shard does not touch the shared bucket.
        assert!(!l.admit(&b, 2, S + S / 20));
        assert!(l.admit(&b, 2, S + S / 10));
    }
}
