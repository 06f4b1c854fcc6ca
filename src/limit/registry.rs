//! Throttling state that outlives snapshots. A reload builds a new
//! snapshot, but a bucket whose name and rate did not change keeps its
//! tokens, quotas keep their counts, and the in-flight pool is one for the
//! life of the process. Ids are stable, so shards index their local leases
//! by them. Touched when snapshots are built, never per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::concurrency::SharedPermits;
use super::quota::{QuotaPool, QuotaSpec};
use super::{Rate, SharedBucket};

pub type LimitId = u32;

// Control plane only.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

#[derive(Default)]
struct Inner {
    buckets: HashMap<String, (Rate, LimitId, Arc<SharedBucket>)>,
    next_bucket: LimitId,
    quotas: HashMap<String, (QuotaSpec, LimitId, Arc<QuotaPool>)>,
    next_quota: LimitId,
    /// Quota counts read from disk at start, applied when a quota appears.
    persisted: HashMap<String, Saved>,
}

/// A quota count as saved: `(period, remaining)` from older files, or
/// `(period, remaining, limit)`, so that a changed limit keeps what was
/// used.
#[derive(Clone, Copy, Debug, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum Saved {
    WithLimit(u64, i64, u64),
    Old(u64, i64),
}

impl Saved {
    /// `(period, remaining)` under a quota of `limit`.
    fn remaining_under(self, limit: u64) -> (u64, i64) {
        match self {
            Saved::Old(p, r) => (p, r),
            Saved::WithLimit(p, r, old) => {
                let used = old as i64 - r;
                (p, limit as i64 - used)
            }
        }
    }
}

/// The account limits the cluster agent shares through Redis, as the
/// configuration in force says: a reload that changes them is followed by
/// the agent (the account reservoir and the permit pool stay the same
/// objects, so the shards keep leasing from them).
#[derive(Debug, Default)]
pub struct ClusterLimits {
    per_second_bits: std::sync::atomic::AtomicU64,
    burst: std::sync::atomic::AtomicU64,
    max_concurrent: std::sync::atomic::AtomicU64,
}

impl ClusterLimits {
    pub fn get(&self) -> (Rate, u64) {
        use std::sync::atomic::Ordering::Acquire;
        (
            Rate {
                per_second: f64::from_bits(self.per_second_bits.load(Acquire)),
                burst: self.burst.load(Acquire),
            },
            self.max_concurrent.load(Acquire),
        )
    }

    fn set_rate(&self, rate: Rate) {
        use std::sync::atomic::Ordering::Release;
        self.per_second_bits
            .store(rate.per_second.to_bits(), Release);
        self.burst.store(rate.burst, Release);
    }

    fn set_max(&self, max: u64) {
        self.max_concurrent
            .store(max, std::sync::atomic::Ordering::Release);
    }
}

pub struct Registry {
    inner: ControlMutex<Inner>,
    pub permits: Arc<SharedPermits>,
    /// Cluster mode: the account bucket and the permits are fed by the
    /// cluster agent from Redis.
    cluster: std::sync::atomic::AtomicBool,
    quota_file: ControlMutex<Option<PathBuf>>,
    /// Metric series ids (stable across reloads, like the limit ids).
    pub metrics: crate::metrics::Keys,
    /// Access-log destinations and the queue to their writer.
    pub logs: Arc<crate::access_log::Sinks>,
    /// TLS session resumption state (survives reloads).
    pub tls: crate::tls::Shared,
    /// Cluster mode: the limits the agent shares (see [`ClusterLimits`]).
    pub cluster_limits: Arc<ClusterLimits>,
}

impl Registry {
    pub fn new(max_concurrent: u64) -> Arc<Registry> {
        Arc::new(Registry {
            inner: ControlMutex::new(Inner::default()),
            permits: Arc::new(SharedPermits::new(max_concurrent)),
            cluster: std::sync::atomic::AtomicBool::new(false),
            quota_file: ControlMutex::new(None),
            metrics: crate::metrics::Keys::default(),
            logs: Arc::new(crate::access_log::Sinks::default()),
            tls: crate::tls::Shared::default(),
            cluster_limits: Arc::new(ClusterLimits::default()),
        })
    }

    /// Switches the account limits to cluster mode (before any snapshot is
    /// built): the account bucket becomes a reservoir and the permit pool
    /// starts empty, both filled by the cluster agent.
    pub fn set_cluster(&self) {
        self.cluster
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub fn is_cluster(&self) -> bool {
        self.cluster.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The account bucket: local GCRA, or the cluster reservoir (one for
    /// the process's life: a new rate goes to the agent, which fills it).
    pub fn account(&self, rate: Rate) -> (LimitId, Arc<SharedBucket>) {
        if !self.is_cluster() {
            return self.bucket("account", rate);
        }
        self.cluster_limits.set_rate(rate);
        let mut inner = self.lock();
        if let Some((_, id, b)) = inner.buckets.get("account") {
            if b.is_external() {
                return (*id, b.clone());
            }
        }
        let id = inner.next_bucket;
        inner.next_bucket += 1;
        let b = Arc::new(SharedBucket::external(rate));
        inner
            .buckets
            .insert("account".to_owned(), (rate, id, b.clone()));
        (id, b)
    }

    /// Sets the in-flight cap (in cluster mode, the one the agent shares
    /// through Redis).
    pub fn set_max_concurrent(&self, max: u64) {
        if self.is_cluster() {
            self.cluster_limits.set_max(max);
        } else {
            self.permits.set_max(max);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// The bucket called `name` with this rate: the existing one if its
    /// rate is unchanged, else a new one (with a new id).
    pub fn bucket(&self, name: &str, rate: Rate) -> (LimitId, Arc<SharedBucket>) {
        let mut inner = self.lock();
        if let Some((r, id, b)) = inner.buckets.get(name) {
            if *r == rate {
                return (*id, b.clone());
            }
        }
        let id = inner.next_bucket;
        inner.next_bucket += 1;
        let b = Arc::new(SharedBucket::new(rate));
        inner.buckets.insert(name.to_owned(), (rate, id, b.clone()));
        (id, b)
    }

    pub fn quota(&self, name: &str, spec: QuotaSpec, now: u64) -> (LimitId, Arc<QuotaPool>) {
        let mut inner = self.lock();
        if let Some((s, id, q)) = inner.quotas.get(name) {
            if *s == spec {
                return (*id, q.clone());
            }
        }
        let id = inner.next_quota;
        inner.next_quota += 1;
        let q = Arc::new(QuotaPool::new(spec));
        // A changed quota keeps what was used in this period.
        let carried = inner.quotas.get(name).map(|(old, _, pool)| {
            let (period, remaining) = pool.snapshot();
            Saved::WithLimit(period, remaining, old.limit)
        });
        if let Some(saved) = carried.or_else(|| inner.persisted.get(name).copied()) {
            let (period, remaining) = saved.remaining_under(spec.limit);
            q.restore(period, remaining, now);
        }
        inner.quotas.insert(name.to_owned(), (spec, id, q.clone()));
        (id, q)
    }

    /// Reads persisted quota counts; later `quota` calls pick them up.
    pub fn load_quotas(&self, file: &Path) -> Result<(), String> {
        *match self.quota_file.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        } = Some(file.to_path_buf());
        let text = match std::fs::read(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(format!("{}: cannot read: {e}", file.display())),
        };
        let map: HashMap<String, Saved> =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut inner = self.lock();
        for (name, (spec, _, q)) in &inner.quotas {
            if let Some(saved) = map.get(name) {
                let (period, remaining) = saved.remaining_under(spec.limit);
                q.restore(period, remaining, now);
            }
        }
        inner.persisted = map;
        Ok(())
    }

    /// Writes every quota's count (atomically) to the quota file.
    pub fn save_quotas(&self) -> std::io::Result<()> {
        let file = match self.quota_file.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        let Some(file) = file else { return Ok(()) };
        let map: HashMap<String, Saved> = {
            let inner = self.lock();
            let mut m = inner.persisted.clone();
            for (name, (spec, _, q)) in &inner.quotas {
                let (period, remaining) = q.snapshot();
                m.insert(
                    name.clone(),
                    Saved::WithLimit(period, remaining, spec.limit),
                );
            }
            m
        };
        if map.is_empty() {
            return Ok(());
        }
        let bytes = serde_json::to_vec(&map).map_err(std::io::Error::other)?;
        crate::admin::state::write_atomic(&file, &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limit::quota::Period;

    fn spec(limit: u64) -> QuotaSpec {
        QuotaSpec {
            limit,
            period: Period::Day,
            offset: 0,
        }
    }

    #[test]
    fn a_changed_quota_keeps_what_was_used() {
        let r = Registry::new(10);
        let now = 1_800_000_000;
        let (_, q) = r.quota("plan/key", spec(5), now);
        assert_eq!(q.take(now, 3).1, 3);
        // Raised: 3 of 1000 used, 997 left.
        let (_, q) = r.quota("plan/key", spec(1000), now);
        assert_eq!(q.take(now, 2000).1, 997);
        // Lowered below what was used: nothing left.
        let (_, q) = r.quota("plan/key", spec(500), now);
        assert_eq!(q.take(now, 1).1, 0);
    }

    #[test]
    fn saved_counts_follow_the_limit_and_old_files_load() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("quotas.json");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let r = Registry::new(10);
        r.load_quotas(&file).unwrap_or_else(|e| panic!("{e}"));
        let (_, q) = r.quota("p/k", spec(5), now);
        assert_eq!(q.take(now, 4).1, 4);
        r.save_quotas().unwrap_or_else(|e| panic!("{e}"));
        // A restart with the limit raised to 100: 96 left.
        let r = Registry::new(10);
        r.load_quotas(&file).unwrap_or_else(|e| panic!("{e}"));
        let (_, q) = r.quota("p/k", spec(100), now);
        assert_eq!(q.take(now, 1000).1, 96);
        // A file from before limits were saved: `[period, remaining]`.
        let period = crate::limit::quota::period_start(&spec(5), now);
        std::fs::write(&file, format!("{{\"p/k\": [{period}, 2]}}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let r = Registry::new(10);
        r.load_quotas(&file).unwrap_or_else(|e| panic!("{e}"));
        let (_, q) = r.quota("p/k", spec(5), now);
        assert_eq!(q.take(now, 10).1, 2);
    }
}
