//! Usage-plan quotas: `limit` requests per DAY, WEEK or MONTH (UTC),
//! shared by all shards and leased in blocks like tokens. A new period
//! resets the count; what shards hold of the old period is dropped.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s.to_ascii_uppercase().as_str() {
            "DAY" => Some(Period::Day),
            "WEEK" => Some(Period::Week),
            "MONTH" => Some(Period::Month),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaSpec {
    pub limit: u64,
    pub period: Period,
    /// Days after the natural start of the period (AWS: a WEEK with
    /// offset 0 starts on Sunday, 1 on Monday).
    pub offset: u64,
}

const DAY: u64 = 86_400;

/// Start (Unix seconds) of the period containing `now`.
pub fn period_start(spec: &QuotaSpec, now: u64) -> u64 {
    let offset = spec.offset * DAY;
    match spec.period {
        Period::Day => now - now % DAY,
        Period::Week => {
            // 1970-01-01 was a Thursday; Sunday-based weeks start 4 days earlier.
            let shifted = now + 4 * DAY - offset.min(6 * DAY);
            let start = shifted - shifted % (7 * DAY);
            start + offset.min(6 * DAY) - 4 * DAY
        }
        Period::Month => {
            let days = (now / DAY) as i64;
            let (y, m, _) = crate::ids::civil_from_days(days);
            let first = crate::ids::days_from_civil(y, m, 1) as u64 * DAY;
            let start = first + offset.min(27) * DAY;
            if now >= start {
                start
            } else {
                // Before this month's offset day: the period began last month.
                let (py, pm) = if m == 1 { (y - 1, 12) } else { (y, m - 1) };
                crate::ids::days_from_civil(py, pm, 1) as u64 * DAY + offset.min(27) * DAY
            }
        }
    }
}

#[derive(Debug)]
pub struct QuotaPool {
    pub spec: QuotaSpec,
    period: CachePadded<AtomicU64>,
    remaining: CachePadded<AtomicI64>,
}

impl QuotaPool {
    pub fn new(spec: QuotaSpec) -> QuotaPool {
        QuotaPool {
            spec,
            period: CachePadded::new(AtomicU64::new(0)),
            remaining: CachePadded::new(AtomicI64::new(spec.limit as i64)),
        }
    }

    /// Restores a persisted count (if it is for the current period).
    pub fn restore(&self, period: u64, remaining: i64, now: u64) {
        if period == period_start(&self.spec, now) {
            self.period.store(period, Ordering::Release);
            self.remaining.store(
                remaining.clamp(0, self.spec.limit as i64),
                Ordering::Release,
            );
        }
    }

    /// `(period, remaining)` for persistence.
    pub fn snapshot(&self) -> (u64, i64) {
        (
            self.period.load(Ordering::Acquire),
            self.remaining.load(Ordering::Acquire),
        )
    }

    fn roll(&self, now: u64) -> u64 {
        let start = period_start(&self.spec, now);
        let cur = self.period.load(Ordering::Acquire);
        if cur != start
            && self
                .period
                .compare_exchange(cur, start, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            self.remaining
                .store(self.spec.limit as i64, Ordering::Release);
        }
        start
    }

    /// Takes up to `want` requests of the current period's quota.
    pub fn take(&self, now: u64, want: u64) -> (u64, u64) {
        let period = self.roll(now);
        let mut cur = self.remaining.load(Ordering::Acquire);
        loop {
            if cur <= 0 {
                return (period, 0);
            }
            let got = (cur as u64).min(want);
            match self.remaining.compare_exchange_weak(
                cur,
                cur - got as i64,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return (period, got),
                Err(actual) => cur = actual,
            }
        }
    }

    pub fn give_back(&self, period: u64, n: u64) {
        if n > 0 && self.period.load(Ordering::Acquire) == period {
            self.remaining.fetch_add(n as i64, Ordering::AcqRel);
        }
    }

    pub fn block_size(&self, shards: usize) -> u64 {
        (self.spec.limit / (1000 * shards.max(1) as u64)).clamp(1, 16)
    }
}

/// A shard's lease of one quota.
#[derive(Clone, Copy, Debug, Default)]
pub struct LocalQuota {
    period: u64,
    held: u64,
    used: bool,
}

impl LocalQuota {
    pub fn admit(&mut self, pool: &QuotaPool, block: u64, now: u64) -> bool {
        let start = period_start(&pool.spec, now);
        if self.period != start {
            // A new period: what was held belonged to the old one.
            self.held = 0;
            self.period = start;
        }
        if self.held == 0 {
            let (period, got) = pool.take(now, block);
            self.period = period;
            self.held = got;
            if got == 0 {
                return false;
            }
        }
        self.held -= 1;
        self.used = true;
        true
    }

    pub fn idle_return(&mut self, pool: &QuotaPool) {
        if !self.used && self.held > 0 {
            pool.give_back(self.period, self.held);
            self.held = 0;
        }
        self.used = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn period_starts() {
        // 2026-11-24T00:09:17Z is a Tuesday.
        let now = 1_795_478_957;
        let day = QuotaSpec {
            limit: 1,
            period: Period::Day,
            offset: 0,
        };
        assert_eq!(period_start(&day, now), 1_795_478_400);
        let week = QuotaSpec {
            limit: 1,
            period: Period::Week,
            offset: 0,
        };
        // Sunday 2026-11-22T00:00Z.
        assert_eq!(period_start(&week, now), 1_795_305_600);
        let week_mon = QuotaSpec { offset: 1, ..week };
        // Monday 2026-11-23T00:00Z.
        assert_eq!(period_start(&week_mon, now), 1_795_392_000);
        let month = QuotaSpec {
            limit: 1,
            period: Period::Month,
            offset: 0,
        };
        // 2026-11-01T00:00Z.
        assert_eq!(period_start(&month, now), 1_793_491_200);
    }

    #[test]
    fn quota_counts_and_resets() {
        let spec = QuotaSpec {
            limit: 5,
            period: Period::Day,
            offset: 0,
        };
        let pool = QuotaPool::new(spec);
        let mut a = LocalQuota::default();
        let mut b = LocalQuota::default();
        let t = 1_795_478_957;
        let mut ok = 0;
        for i in 0..20 {
            let l = if i % 2 == 0 { &mut a } else { &mut b };
            if l.admit(&pool, 2, t) {
                ok += 1;
            }
        }
        assert_eq!(ok, 5);
        // Next day: a fresh quota.
        assert!(a.admit(&pool, 2, t + DAY));
        // Persistence round trip.
        let (p, r) = pool.snapshot();
        let other = QuotaPool::new(spec);
        other.restore(p, r, t + DAY);
        assert_eq!(other.snapshot(), (p, r));
        let stale = QuotaPool::new(spec);
        stale.restore(p, 0, t + 3 * DAY);
        assert_eq!(stale.snapshot().1, 5, "an old period's count is ignored");
    }
}
