//! The stage response cache, one partition per shard: no lock and no
//! cross-shard traffic on a hit. Sans-IO: times are `limit::clock_ns()`
//! values passed in.
//!
//! Owns: the cache key (API + stage + method + resource + path parameters +
//! the method's `cacheKeyParameters`, normalised and length-prefixed, and a
//! generation that changes with the method's cache settings, integration
//! and stage variables), `Vary` matching, TTL, the 1 MiB entry limit,
//! per-stage byte budgets, and hit/miss/eviction/byte counters.
//! Eviction is `quick_cache`'s unsync cache (CLOCK-Pro-like, weighted by
//! bytes): chosen over LRU for its hit ratio on skewed key spaces, and its
//! unsync variant is exactly "one partition per core, no locks".
//! Read first: [`ShardCache::get`].

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// Responses larger than this are never cached (API Gateway's limit).
pub const MAX_ENTRY_BYTES: usize = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnauthorizedStrategy {
    FailWith403,
    SucceedWithResponseHeader,
    SucceedWithoutResponseHeader,
}

impl UnauthorizedStrategy {
    /// API Gateway's default (`get-stage` reports it for every stage): an
    /// unauthorized `Cache-Control: max-age=0` is served from the cache
    /// with a warning header, so a browser's reload of a cached page is
    /// not a 403.
    pub const DEFAULT: UnauthorizedStrategy = UnauthorizedStrategy::SucceedWithResponseHeader;

    const ALL: [UnauthorizedStrategy; 3] = [
        UnauthorizedStrategy::FailWith403,
        UnauthorizedStrategy::SucceedWithResponseHeader,
        UnauthorizedStrategy::SucceedWithoutResponseHeader,
    ];

    /// API Gateway's name for it.
    pub fn name(self) -> &'static str {
        match self {
            UnauthorizedStrategy::FailWith403 => "FAIL_WITH_403",
            UnauthorizedStrategy::SucceedWithResponseHeader => "SUCCEED_WITH_RESPONSE_HEADER",
            UnauthorizedStrategy::SucceedWithoutResponseHeader => "SUCCEED_WITHOUT_RESPONSE_HEADER",
        }
    }

    pub fn parse(s: &str) -> Option<UnauthorizedStrategy> {
        Self::ALL.into_iter().find(|u| u.name() == s)
    }
}

/// A stage's cache settings.
#[derive(Clone, Debug)]
pub struct StageCache {
    /// `api/stage`: names the stage's partition on every shard.
    pub uid: String,
    pub capacity_bytes: u64,
    pub require_authorization: bool,
    pub unauthorized: UnauthorizedStrategy,
}

/// Where a cache key parameter comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyParam {
    Query(String),
    Header(String),
    Path(String),
}

/// A method's caching in one stage.
#[derive(Clone, Debug)]
pub struct MethodCache {
    pub ttl: Duration,
    pub key_params: Arc<[KeyParam]>,
    /// Changes when the method's cache settings, its integration or the
    /// stage variables change, so entries cached under the old ones are
    /// never served again.
    pub generation: u64,
    /// Only GET requests go through the cache: an `ANY` method (whose
    /// other requests may write), as API Gateway caches GET by default.
    pub get_only: bool,
}

/// A cached response: everything but the per-request headers (`Date`,
/// request id, connection handling).
#[derive(Debug)]
pub struct Entry {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// `limit::clock_ns()` time after which the entry is stale.
    pub expires: u64,
    /// `limit::clock_ns()` time its fetch began: of two entries for a key
    /// the later fetch wins.
    pub fetched: u64,
    /// The request headers the response's `Vary` names (lower case), with
    /// the values the request that fetched it had: the entry answers only
    /// requests with the same values (RFC 9111 §4.1).
    pub vary: Vec<(String, Option<Vec<u8>>)>,
}

/// What one entry costs beyond its bytes of key, header text and body: the
/// key's and the headers' `String`s, the `Arc<Entry>`, the body's
/// allocation and `Bytes` bookkeeping, the partition's slot and index, and
/// the allocator's per-allocation header and rounding. Measured with the
/// loadtest's cache-memory run (RSS growth per entry under eviction), not
/// guessed: without it 1 KiB entries used about 1.5 times their weight.
const ENTRY_OVERHEAD: u64 = 384;
/// Per header: two `String`s in the `Vec` and their allocations.
const HEADER_OVERHEAD: u64 = 96;

impl Entry {
    /// A cached copy of a response: the body gets an allocation of its own,
    /// so the entry never keeps alive the read buffer it arrived in.
    pub fn new(status: u16, headers: Vec<(String, String)>, body: &[u8], expires: u64) -> Self {
        Entry {
            status,
            headers,
            body: Bytes::copy_from_slice(body),
            expires,
            fetched: 0,
            vary: Vec::new(),
        }
    }

    /// What an invalidation leaves when its fresh answer is not cached: no
    /// response, but the time of its fetch, so an older fetch still under
    /// way does not store its answer over it. A lookup finds a miss.
    pub fn tombstone(fetched: u64, expires: u64) -> Self {
        Entry {
            status: 0,
            headers: Vec::new(),
            body: Bytes::new(),
            expires,
            fetched,
            vary: Vec::new(),
        }
    }

    pub fn is_tombstone(&self) -> bool {
        self.status == 0
    }

    /// Whether the entry may answer a request whose header `name` (lower
    /// case) has the value `header(name)`.
    pub fn varies_with(&self, header: impl Fn(&str) -> Option<Vec<u8>>) -> bool {
        self.vary
            .iter()
            .all(|(name, value)| header(name).as_deref() == value.as_deref())
    }

    fn weight(&self) -> u64 {
        let h: u64 = self
            .headers
            .iter()
            .map(|(n, v)| (n.len() + v.len()) as u64 + HEADER_OVERHEAD)
            .sum();
        let v: u64 = self
            .vary
            .iter()
            .map(|(n, v)| (n.len() + v.as_ref().map_or(0, Vec::len)) as u64 + HEADER_OVERHEAD)
            .sum();
        self.body.len() as u64 + h + v + ENTRY_OVERHEAD
    }
}

#[derive(Clone, Copy, Default)]
struct ByWeight;

impl quick_cache::Weighter<String, Arc<Entry>> for ByWeight {
    fn weight(&self, key: &String, val: &Arc<Entry>) -> u64 {
        key.len() as u64 + val.weight()
    }
}

/// Counts evictions into the partition's stats.
#[derive(Clone, Default)]
struct CountEvictions(Rc<Cell<u64>>);

impl quick_cache::Lifecycle<String, Arc<Entry>> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut Self::RequestState, _key: String, _val: Arc<Entry>) {
        self.0.set(self.0.get() + 1);
    }
}

type Partition = quick_cache::unsync::Cache<
    String,
    Arc<Entry>,
    ByWeight,
    foldhash::fast::RandomState,
    CountEvictions,
>;

/// Counters of one stage on one shard (summed at scrape time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub bytes: u64,
    pub entries: u64,
}

struct StagePartition {
    cache: Partition,
    evictions: Rc<Cell<u64>>,
    hits: u64,
    misses: u64,
    capacity: u64,
    /// The stage's `capacity_bytes` when the partition was made.
    configured: u64,
    /// `clock_ns()` of the last flush.
    flushed_at: u64,
}

/// One shard's cache: a partition per stage.
#[derive(Default)]
pub struct ShardCache {
    stages: HashMap<String, StagePartition>,
    /// The stage caches of the snapshot in force (uid → configured
    /// capacity), once a snapshot has replaced the first: a request that
    /// began under an older snapshot cannot bring back a partition the
    /// new one removed, turned off or resized.
    live: Option<HashMap<String, u64>>,
}

impl ShardCache {
    fn partition(&mut self, stage: &StageCache, shards: usize) -> Option<&mut StagePartition> {
        if let Some(live) = &self.live {
            if live.get(&stage.uid) != Some(&stage.capacity_bytes) {
                return None;
            }
        }
        let capacity = (stage.capacity_bytes / shards.max(1) as u64).max(64 * 1024);
        let p = self.stages.entry(stage.uid.clone()).or_insert_with(|| {
            let evictions = Rc::new(Cell::new(0));
            StagePartition {
                cache: Partition::with(
                    (capacity / 4096).clamp(16, 1 << 20) as usize,
                    capacity,
                    ByWeight,
                    foldhash::fast::RandomState::default(),
                    CountEvictions(evictions.clone()),
                ),
                evictions,
                hits: 0,
                misses: 0,
                capacity,
                configured: stage.capacity_bytes,
                flushed_at: 0,
            }
        });
        if p.capacity != capacity {
            p.cache.set_capacity(capacity);
            p.capacity = capacity;
        }
        Some(p)
    }

    /// A fresh entry for `key` that `usable` accepts (its `Vary`), counting
    /// a hit or a miss. A tombstone (an invalidation whose fresh answer was
    /// not cached) is a miss.
    pub fn get(
        &mut self,
        stage: &StageCache,
        shards: usize,
        key: &str,
        now: u64,
        usable: impl Fn(&Entry) -> bool,
    ) -> Option<Arc<Entry>> {
        self.lookup(stage, shards, key, now, usable, true)
    }

    /// [`ShardCache::get`], counting a miss only with `count_miss`: a
    /// request that waits for another's fetch of the key looks again once
    /// it is done, and only that second look counts (a hit if the fetch
    /// was cached), so hits and misses add up to the requests.
    pub fn lookup(
        &mut self,
        stage: &StageCache,
        shards: usize,
        key: &str,
        now: u64,
        usable: impl Fn(&Entry) -> bool,
        count_miss: bool,
    ) -> Option<Arc<Entry>> {
        let p = self.partition(stage, shards)?;
        let miss = u64::from(count_miss);
        match p.cache.get(key) {
            Some(e) if e.expires > now && !e.is_tombstone() && usable(e) => {
                p.hits += 1;
                Some(e.clone())
            }
            Some(e) if e.expires > now => {
                p.misses += miss;
                None
            }
            Some(_) => {
                p.cache.remove(key);
                p.misses += miss;
                None
            }
            None => {
                p.misses += miss;
                None
            }
        }
    }

    /// Keeps only the partitions of `live` stage caches (with their
    /// capacity): a stage removed, or whose cache was turned off, frees its
    /// memory, and one turned on again or resized starts empty, as API
    /// Gateway's cache cluster does.
    pub fn retain(&mut self, live: HashMap<String, u64>) {
        self.stages
            .retain(|uid, p| live.get(uid.as_str()).is_some_and(|&c| c == p.configured));
        self.live = Some(live);
    }

    /// Stores `entry` unless the key holds one from a fetch that began
    /// later, or the stage was flushed after this fetch began: a slow fetch
    /// that started before an invalidation or a flush does not put its
    /// older answer back.
    pub fn insert(&mut self, stage: &StageCache, shards: usize, key: String, entry: Arc<Entry>) {
        if entry.body.len() > MAX_ENTRY_BYTES {
            return;
        }
        if let Some(p) = self.partition(stage, shards) {
            store_newest(p, key, entry);
        }
    }

    /// Inserts by partition name (for entries sent by another shard).
    pub fn insert_by_uid(&mut self, uid: &str, key: String, entry: Arc<Entry>) {
        if let Some(p) = self.stages.get_mut(uid) {
            store_newest(p, key, entry);
        }
    }

    /// Empties a stage's partition; fetches that began before `now` are
    /// not stored afterwards.
    pub fn flush(&mut self, uid: &str, now: u64) {
        if let Some(p) = self.stages.get_mut(uid) {
            p.cache.clear();
            p.flushed_at = now;
        }
    }

    pub fn stats(&self) -> Vec<(String, Stats)> {
        self.stages
            .iter()
            .map(|(uid, p)| {
                (
                    uid.clone(),
                    Stats {
                        hits: p.hits,
                        misses: p.misses,
                        evictions: p.evictions.get(),
                        bytes: p.cache.weight(),
                        entries: p.cache.len() as u64,
                    },
                )
            })
            .collect()
    }
}

fn store_newest(p: &mut StagePartition, key: String, entry: Arc<Entry>) {
    if entry.fetched < p.flushed_at
        || p.cache
            .peek(&key)
            .is_some_and(|old| old.fetched > entry.fetched)
    {
        return;
    }
    p.cache.insert(key, entry);
}

/// Builds the cache key. `params` are the method's key parameters with
/// their values (absent ones empty), in the method's order; parameters not
/// in the key never reach it, so they do not split the cache.
pub fn key(
    stage_uid: &str,
    generation: u64,
    method: &str,
    resource: &str,
    path_params: &[&str],
    params: &[(&KeyParam, &[&str])],
) -> String {
    let mut k = String::with_capacity(64);
    k.push_str(stage_uid);
    k.push('\u{1}');
    k.push_str(&generation.to_string());
    k.push('\u{1}');
    k.push_str(method);
    k.push('\u{1}');
    k.push_str(resource);
    for p in path_params {
        k.push('\u{1}');
        k.push_str(&p.len().to_string());
        k.push(':');
        k.push_str(p);
    }
    for (p, v) in params {
        k.push('\u{2}');
        match p {
            KeyParam::Query(n) => {
                k.push('q');
                k.push_str(n);
            }
            // Header names are case-insensitive: normalise.
            KeyParam::Header(n) => {
                k.push('h');
                k.push_str(&n.to_ascii_lowercase());
            }
            KeyParam::Path(n) => {
                k.push('p');
                k.push_str(n);
            }
        }
        // Length-prefixed, so no value can read as a separator and the
        // next parameter (`a=x\u{2}qb=y` against `a=x`, `b=y`); an absent
        // parameter is not an empty one. Every value of a repeated query
        // parameter is in the key, in order: the backend sees them all,
        // so `?type=evil&type=good` is not the entry of `?type=good`.
        if v.is_empty() {
            k.push('!');
        }
        for v in *v {
            k.push('=');
            k.push_str(&v.len().to_string());
            k.push(':');
            k.push_str(v);
        }
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage() -> StageCache {
        StageCache {
            uid: "a/s".into(),
            capacity_bytes: 1 << 20,
            require_authorization: true,
            unauthorized: UnauthorizedStrategy::FailWith403,
        }
    }

    fn entry(body: &[u8], expires: u64) -> Arc<Entry> {
        Arc::new(Entry {
            status: 200,
            headers: vec![],
            body: Bytes::copy_from_slice(body),
            expires,
            fetched: 0,
            vary: Vec::new(),
        })
    }

    #[test]
    fn ttl_and_stats() {
        let mut c = ShardCache::default();
        let s = stage();
        assert!(c.get(&s, 2, "k", 10, |_| true).is_none());
        c.insert(&s, 2, "k".into(), entry(b"v", 100));
        assert_eq!(
            c.get(&s, 2, "k", 50, |_| true).map(|e| e.body.clone()),
            Some(Bytes::from_static(b"v"))
        );
        assert!(c.get(&s, 2, "k", 100, |_| true).is_none(), "expired");
        let st = c.stats()[0].1;
        assert_eq!((st.hits, st.misses), (1, 2));
        c.insert(
            &s,
            2,
            "big".into(),
            entry(&vec![0u8; MAX_ENTRY_BYTES + 1], 1000),
        );
        assert!(
            c.get(&s, 2, "big", 1, |_| true).is_none(),
            "over 1 MiB is not cached"
        );
    }

    #[test]
    fn eviction_keeps_the_budget() {
        let mut c = ShardCache::default();
        let s = StageCache {
            capacity_bytes: 200 * 1024,
            ..stage()
        };
        for i in 0..1000 {
            c.insert(&s, 1, format!("k{i}"), entry(&[0u8; 1000], u64::MAX));
        }
        let st = c.stats()[0].1;
        assert!(st.bytes <= 200 * 1024 * 11 / 10, "{st:?}");
        assert!(st.evictions > 0);
    }

    #[test]
    fn keys_normalise() {
        let q = KeyParam::Query("type".into());
        let h = KeyParam::Header("X-Tenant".into());
        let a = key(
            "a/s",
            1,
            "GET",
            "/pets",
            &["1"],
            &[(&q, &["dog"][..]), (&h, &["t"][..])],
        );
        let b = key(
            "a/s",
            1,
            "GET",
            "/pets",
            &["1"],
            &[
                (&q, &["dog"][..]),
                (&KeyParam::Header("x-tenant".into()), &["t"][..]),
            ],
        );
        assert_eq!(a, b);
        let c = key(
            "a/s",
            2,
            "GET",
            "/pets",
            &["1"],
            &[(&q, &["dog"][..]), (&h, &["t"][..])],
        );
        assert_ne!(a, c, "a new generation is a new key");
        let d = key(
            "a/s",
            1,
            "GET",
            "/pets",
            &["1"],
            &[(&q, &[][..]), (&h, &["t"][..])],
        );
        assert_ne!(a, d);
        // No value reads as a separator, and absent is not empty.
        let b2 = KeyParam::Query("b".into());
        let a1 = KeyParam::Query("a".into());
        let x = key(
            "a/s",
            1,
            "GET",
            "/t",
            &[],
            &[(&a1, &["x\u{2}qb=y"][..]), (&b2, &["z"][..])],
        );
        let y = key(
            "a/s",
            1,
            "GET",
            "/t",
            &[],
            &[(&a1, &["x"][..]), (&b2, &["y\u{2}qb=z"][..])],
        );
        assert_ne!(x, y);
        let empty = key("a/s", 1, "GET", "/t", &[], &[(&a1, &[""][..])]);
        let absent = key("a/s", 1, "GET", "/t", &[], &[(&a1, &[][..])]);
        assert_ne!(empty, absent);
        // Repeated values: all of them, in order; not one value.
        let two = key("a/s", 1, "GET", "/t", &[], &[(&a1, &["x", "y"][..])]);
        assert_ne!(two, key("a/s", 1, "GET", "/t", &[], &[(&a1, &["y"][..])]));
        assert_ne!(
            two,
            key("a/s", 1, "GET", "/t", &[], &[(&a1, &["y", "x"][..])])
        );
        assert_ne!(
            two,
            key("a/s", 1, "GET", "/t", &[], &[(&a1, &["x=1:y"][..])])
        );
        assert_ne!(
            key("a/s", 1, "GET", "/t", &["a\u{1}b"], &[]),
            key("a/s", 1, "GET", "/t", &["a", "b"], &[])
        );
    }

    #[test]
    fn vary_and_retain() {
        let mut c = ShardCache::default();
        let s = stage();
        let mut e = Entry::new(200, vec![], b"gz", u64::MAX);
        e.vary = vec![("accept-encoding".into(), Some(b"gzip".to_vec()))];
        c.insert(&s, 1, "k".into(), Arc::new(e));
        let gzip = |n: &str| (n == "accept-encoding").then(|| b"gzip".to_vec());
        assert!(c.get(&s, 1, "k", 1, |e| e.varies_with(gzip)).is_some());
        assert!(c.get(&s, 1, "k", 1, |e| e.varies_with(|_| None)).is_none());
        let live = |cap: u64| HashMap::from([("a/s".to_owned(), cap)]);
        c.retain(live(s.capacity_bytes));
        assert!(c.get(&s, 1, "k", 1, |_| true).is_some(), "kept");
        c.retain(live(s.capacity_bytes * 2));
        assert!(c.stats().is_empty(), "resized: dropped");
        // A request of the old snapshot (old capacity) cannot bring it back.
        c.insert(&s, 1, "k".into(), entry(b"v", u64::MAX));
        assert!(c.stats().is_empty(), "recreated by an old request");
        c.retain(HashMap::new());
        c.insert(&s, 1, "k".into(), entry(b"v", u64::MAX));
        assert!(c.stats().is_empty(), "stage gone: recreated");
    }

    #[test]
    fn the_latest_fetch_wins() {
        let mut c = ShardCache::default();
        let s = stage();
        let at = |body: &[u8], fetched: u64| {
            let mut e = Entry::new(200, vec![], body, u64::MAX);
            e.fetched = fetched;
            Arc::new(e)
        };
        let body = |c: &mut ShardCache| c.get(&s, 1, "n", 1, |_| true).map(|e| e.body.clone());
        c.insert(&s, 1, "n".into(), at(b"new", 200));
        c.insert(&s, 1, "n".into(), at(b"old", 100));
        assert_eq!(body(&mut c), Some(Bytes::from_static(b"new")));
        c.insert(&s, 1, "n".into(), at(b"newer", 300));
        assert_eq!(body(&mut c), Some(Bytes::from_static(b"newer")));
        // A tombstone is a miss, and older fetches do not replace it.
        c.insert(&s, 1, "n".into(), Arc::new(Entry::tombstone(400, u64::MAX)));
        assert_eq!(body(&mut c), None);
        c.insert(&s, 1, "n".into(), at(b"stale", 350));
        assert_eq!(body(&mut c), None);
        c.insert(&s, 1, "n".into(), at(b"fresh", 500));
        assert_eq!(body(&mut c), Some(Bytes::from_static(b"fresh")));
        // After a flush, fetches that began before it are not stored.
        c.flush("a/s", 600);
        c.insert(&s, 1, "n".into(), at(b"pre-flush", 550));
        assert_eq!(body(&mut c), None);
        c.insert(&s, 1, "n".into(), at(b"post-flush", 650));
        assert_eq!(body(&mut c), Some(Bytes::from_static(b"post-flush")));
    }
}
