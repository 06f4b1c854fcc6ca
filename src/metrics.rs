//! Metrics: counted per shard in plain integers (no atomics shared across
//! shards on the request path), merged and encoded in the Prometheus /
//! OpenMetrics text format when scraped.
//!
//! Owns: series ids ([`Keys`], stable for the life of the process, so a
//! reload keeps the counts of routes that did not change), the per-shard
//! counters ([`ShardMetrics`]), the report a shard sends when asked
//! ([`ShardReport`]) and the encoder ([`render`]).
//! Read first: [`ShardMetrics::request`], then [`render`].

use std::collections::HashMap;
use std::sync::Arc;

use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::gateway_response::ResponseType;

// Control plane only: series ids are made when snapshots are built.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

/// Upper bounds of the latency buckets, in seconds.
pub const BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const BUCKETS_NS: [u64; 15] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// The labels of a request series.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Labels {
    pub api: String,
    pub stage: String,
    /// The resource path template (`/pets/{petId}`); empty when the
    /// request matched no method.
    pub resource: String,
    /// The method as defined (`GET`, `ANY`); empty when none matched.
    pub method: String,
}

/// Series id of requests that named no API or stage.
pub const UNROUTED: u32 = 0;

/// Ids by labels, and labels by id.
type KeyTable = (HashMap<Labels, u32>, Vec<Arc<Labels>>);

/// Series ids by labels, for the life of the process.
pub struct Keys {
    inner: ControlMutex<KeyTable>,
}

impl Default for Keys {
    fn default() -> Keys {
        let none = Labels::default();
        let mut map = HashMap::new();
        map.insert(none.clone(), UNROUTED);
        Keys {
            inner: ControlMutex::new((map, vec![Arc::new(none)])),
        }
    }
}

impl Keys {
    pub fn id(&self, labels: Labels) -> u32 {
        let mut g = match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(&id) = g.0.get(&labels) {
            return id;
        }
        let id = g.1.len() as u32;
        g.1.push(Arc::new(labels.clone()));
        g.0.insert(labels, id);
        id
    }

    /// Labels by id.
    pub fn all(&self) -> Vec<Arc<Labels>> {
        match self.inner.lock() {
            Ok(g) => g.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }
}

/// A latency histogram: counts per bucket (not cumulative; the last is
/// +Inf) and the sum.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    counts: [u64; 16],
    sum_ns: u64,
}

impl Histogram {
    #[inline]
    pub fn observe(&mut self, ns: u64) {
        let i = BUCKETS_NS.partition_point(|&b| b < ns);
        self.counts[i] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.sum_ns = self.sum_ns.saturating_add(o.sum_ns);
    }

    /// `(upper bound, count in this bucket)`; the encoder accumulates.
    fn buckets(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, &c)| (BUCKETS.get(i).copied().unwrap_or(f64::INFINITY), c))
            .collect()
    }
}

/// Counts of one request series.
#[derive(Clone, Debug, Default)]
pub struct RouteStats {
    /// By status class: 1xx … 5xx.
    pub by_class: [u64; 5],
    pub latency: Histogram,
    pub integration: Histogram,
    pub throttled: u64,
    pub quota: u64,
}

impl RouteStats {
    fn merge(&mut self, o: &RouteStats) {
        for (a, b) in self.by_class.iter_mut().zip(o.by_class.iter()) {
            *a += b;
        }
        self.latency.merge(&o.latency);
        self.integration.merge(&o.integration);
        self.throttled += o.throttled;
        self.quota += o.quota;
    }

    fn is_empty(&self) -> bool {
        self.by_class.iter().all(|&c| c == 0) && self.throttled == 0 && self.quota == 0
    }
}

/// WebSocket counts of one API stage.
#[derive(Clone, Debug, Default)]
pub struct WsStats {
    pub opened: u64,
    pub closed: u64,
    pub messages_in: u64,
    pub messages_out: u64,
}

/// What happened to one request, as the metrics see it.
#[derive(Clone, Copy, Debug)]
pub struct Observation {
    pub series: u32,
    pub status: u16,
    pub latency_ns: u64,
    pub integration_ns: Option<u64>,
    pub error: Option<ResponseType>,
}

/// One shard's counters. Lives in a `RefCell` of the shard.
#[derive(Default)]
pub struct ShardMetrics {
    routes: Vec<RouteStats>,
    gateway_responses: [u64; ResponseType::ALL.len()],
    /// Per WebSocket (API, stage); a few entries, found by a scan so that a
    /// message's count allocates nothing (a map keyed by owned strings
    /// built two `String`s per lookup).
    ws: Vec<((String, String), WsStats)>,
    pub log_dropped: u64,
}

impl ShardMetrics {
    #[inline]
    /// A request refused before it was one (a malformed or oversized
    /// head: 400, 408, 414, 431...): counted with the requests that named
    /// no API or stage, by status class; no latency (there was no request
    /// to time).
    pub fn refused(&mut self, status: u16) {
        let i = UNROUTED as usize;
        if i >= self.routes.len() {
            self.routes.resize_with(i + 1, RouteStats::default);
        }
        let class = (status / 100).clamp(1, 5) as usize - 1;
        self.routes[i].by_class[class] += 1;
    }

    pub fn request(&mut self, o: &Observation) {
        let i = o.series as usize;
        if i >= self.routes.len() {
            self.routes.resize_with(i + 1, RouteStats::default);
        }
        let r = &mut self.routes[i];
        let class = (o.status / 100).clamp(1, 5) as usize - 1;
        r.by_class[class] += 1;
        r.latency.observe(o.latency_ns);
        if let Some(ns) = o.integration_ns {
            r.integration.observe(ns);
        }
        if let Some(t) = o.error {
            match t {
                ResponseType::Throttled => r.throttled += 1,
                ResponseType::QuotaExceeded => r.quota += 1,
                _ => {}
            }
            if let Some(slot) = self.gateway_responses.get_mut(t as usize) {
                *slot += 1;
            }
        }
    }

    pub fn ws(&mut self, api: &str, stage: &str) -> &mut WsStats {
        // Per connection and message, not per HTTP request.
        let i = match self
            .ws
            .iter()
            .position(|((a, s), _)| a == api && s == stage)
        {
            Some(i) => i,
            None => {
                self.ws
                    .push(((api.to_owned(), stage.to_owned()), WsStats::default()));
                self.ws.len() - 1
            }
        };
        &mut self.ws[i].1
    }

    pub fn report(&self) -> ShardReport {
        ShardReport {
            routes: self.routes.clone(),
            gateway_responses: self.gateway_responses,
            ws: self.ws.clone(),
            log_dropped: self.log_dropped,
            ..ShardReport::default()
        }
    }
}

/// Where a shard puts its report.
#[derive(Debug, Default)]
pub struct ReportSlot(pub std::sync::OnceLock<ShardReport>);

/// Everything one shard counted, sent to the scraper.
#[derive(Clone, Debug, Default)]
pub struct ShardReport {
    pub routes: Vec<RouteStats>,
    pub gateway_responses: [u64; ResponseType::ALL.len()],
    /// Cache statistics by stage uid (`api/stage`).
    pub cache: Vec<(String, crate::cache::Stats)>,
    pub ws: Vec<((String, String), WsStats)>,
    pub upstream_opened: u64,
    pub upstream_reused: u64,
    pub upstream_idle: u64,
    pub in_flight: u64,
    pub connections: u64,
    pub ws_open: u64,
    pub log_dropped: u64,
}

impl ShardReport {
    fn merge(&mut self, o: &ShardReport) {
        if self.routes.len() < o.routes.len() {
            self.routes.resize_with(o.routes.len(), RouteStats::default);
        }
        for (a, b) in self.routes.iter_mut().zip(o.routes.iter()) {
            a.merge(b);
        }
        for (a, b) in self
            .gateway_responses
            .iter_mut()
            .zip(o.gateway_responses.iter())
        {
            *a += b;
        }
        let mut cache: HashMap<String, crate::cache::Stats> = self.cache.drain(..).collect();
        for (uid, s) in &o.cache {
            let e = cache.entry(uid.clone()).or_default();
            e.hits += s.hits;
            e.misses += s.misses;
            e.evictions += s.evictions;
            e.bytes += s.bytes;
            e.entries += s.entries;
        }
        self.cache = cache.into_iter().collect();
        let mut ws: HashMap<(String, String), WsStats> = self.ws.drain(..).collect();
        for (k, s) in &o.ws {
            let e = ws.entry(k.clone()).or_default();
            e.opened += s.opened;
            e.closed += s.closed;
            e.messages_in += s.messages_in;
            e.messages_out += s.messages_out;
        }
        self.ws = ws.into_iter().collect();
        self.upstream_opened += o.upstream_opened;
        self.upstream_reused += o.upstream_reused;
        self.upstream_idle += o.upstream_idle;
        self.in_flight += o.in_flight;
        self.connections += o.connections;
        self.ws_open += o.ws_open;
        self.log_dropped += o.log_dropped;
    }
}

/// Sums shard reports.
pub fn merge(reports: &[ShardReport]) -> ShardReport {
    let mut total = ShardReport::default();
    for r in reports {
        total.merge(r);
    }
    total.cache.sort_by(|a, b| a.0.cmp(&b.0));
    total.ws.sort_by(|a, b| a.0.cmp(&b.0));
    total
}

/// Process-wide values the control plane keeps.
#[derive(Clone, Debug, Default)]
pub struct ControlValues {
    pub generation: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub shards: u64,
    pub start_time_seconds: f64,
    /// Shards that did not answer the scrape in time.
    pub shards_missing: u64,
    /// Access-log lines the writer could not write (file errors).
    pub log_write_errors: u64,
}

/// The text exposition (OpenMetrics 1.0, which Prometheus reads).
pub fn render(keys: &[Arc<Labels>], total: ShardReport, control: ControlValues) -> String {
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Collected {
        keys: keys.to_vec(),
        total,
        control,
    }));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
    }
    out
}

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Debug)]
struct Collected {
    keys: Vec<Arc<Labels>>,
    total: ShardReport,
    control: ControlValues,
}

type LabelSet = Vec<(&'static str, String)>;

fn route_labels(l: &Labels) -> LabelSet {
    vec![
        ("api", l.api.clone()),
        ("stage", l.stage.clone()),
        ("resource", l.resource.clone()),
        ("method", l.method.clone()),
    ]
}

impl Collected {
    fn series(&self) -> impl Iterator<Item = (&Labels, &RouteStats)> {
        self.total
            .routes
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.is_empty())
            .filter_map(|(i, s)| self.keys.get(i).map(|l| (l.as_ref(), s)))
    }
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(LabelSet, u64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: &[(LabelSet, i64)],
) -> Result<(), std::fmt::Error> {
    let mut m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

impl prometheus_client::collector::Collector for Collected {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
        let mut rows = Vec::new();
        for (l, s) in self.series() {
            for (class, &n) in CLASSES.iter().zip(s.by_class.iter()) {
                if n > 0 {
                    let mut labels = route_labels(l);
                    labels.push(("status", (*class).to_owned()));
                    rows.push((labels, n));
                }
            }
        }
        counter(
            &mut encoder,
            "tollgate_requests",
            "Requests answered, by API, stage, resource, method and status class.",
            &rows,
        )?;

        for (name, help, pick) in [
            (
                "tollgate_request_duration_seconds",
                "Time from the request head to the last response byte written to the socket buffer.",
                (|s: &RouteStats| &s.latency) as fn(&RouteStats) -> &Histogram,
            ),
            (
                "tollgate_integration_duration_seconds",
                "Time the integration took (backend call, or MOCK), from sending the request to the response head.",
                |s: &RouteStats| &s.integration,
            ),
        ] {
            let mut m = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
            for (l, s) in self.series() {
                let h = pick(s);
                if h.count() == 0 {
                    continue;
                }
                let labels = route_labels(l);
                let fam = m.encode_family(&labels)?;
                let mut fam = fam;
                fam.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                    h.sum_ns as f64 / 1e9,
                    h.count(),
                    &h.buckets(),
                    None,
                )?;
            }
        }

        let throttled: Vec<_> = self
            .series()
            .filter(|(_, s)| s.throttled > 0)
            .map(|(l, s)| (route_labels(l), s.throttled))
            .collect();
        counter(
            &mut encoder,
            "tollgate_throttled_requests",
            "Requests refused with 429 by a rate or concurrency limit.",
            &throttled,
        )?;
        let quota: Vec<_> = self
            .series()
            .filter(|(_, s)| s.quota > 0)
            .map(|(l, s)| (route_labels(l), s.quota))
            .collect();
        counter(
            &mut encoder,
            "tollgate_quota_rejections",
            "Requests refused with 429 because a usage-plan quota was used up.",
            &quota,
        )?;

        let gr: Vec<_> = ResponseType::ALL
            .iter()
            .zip(self.total.gateway_responses.iter())
            .filter(|(_, &n)| n > 0)
            .map(|(t, &n)| (vec![("type", t.name().to_owned())], n))
            .collect();
        counter(
            &mut encoder,
            "tollgate_gateway_responses",
            "Gateway responses sent, by response type.",
            &gr,
        )?;

        gauge(
            &mut encoder,
            "tollgate_requests_in_flight",
            "Requests being served.",
            &[(vec![], self.total.in_flight as i64)],
        )?;
        gauge(
            &mut encoder,
            "tollgate_client_connections",
            "Open client connections (HTTP and WebSocket).",
            &[(vec![], self.total.connections as i64)],
        )?;

        let stage_labels = |uid: &str| -> LabelSet {
            let (api, stage) = uid.split_once('/').unwrap_or((uid, ""));
            vec![("api", api.to_owned()), ("stage", stage.to_owned())]
        };
        let cache = &self.total.cache;
        for (name, help, pick) in [
            (
                "tollgate_cache_hits",
                "Response cache hits.",
                (|s: &crate::cache::Stats| s.hits) as fn(&crate::cache::Stats) -> u64,
            ),
            (
                "tollgate_cache_misses",
                "Response cache misses.",
                |s: &crate::cache::Stats| s.misses,
            ),
            (
                "tollgate_cache_evictions",
                "Response cache entries evicted to keep within capacity.",
                |s: &crate::cache::Stats| s.evictions,
            ),
        ] {
            let rows: Vec<_> = cache
                .iter()
                .map(|(uid, s)| (stage_labels(uid), pick(s)))
                .collect();
            counter(&mut encoder, name, help, &rows)?;
        }
        let bytes: Vec<_> = cache
            .iter()
            .map(|(uid, s)| (stage_labels(uid), s.bytes as i64))
            .collect();
        gauge(
            &mut encoder,
            "tollgate_cache_bytes",
            "Bytes held by the response cache.",
            &bytes,
        )?;
        let entries: Vec<_> = cache
            .iter()
            .map(|(uid, s)| (stage_labels(uid), s.entries as i64))
            .collect();
        gauge(
            &mut encoder,
            "tollgate_cache_entries",
            "Entries held by the response cache.",
            &entries,
        )?;

        counter(
            &mut encoder,
            "tollgate_upstream_connections_opened",
            "Backend connections opened.",
            &[(vec![], self.total.upstream_opened)],
        )?;
        counter(
            &mut encoder,
            "tollgate_upstream_connections_reused",
            "Backend requests sent on a pooled connection.",
            &[(vec![], self.total.upstream_reused)],
        )?;
        gauge(
            &mut encoder,
            "tollgate_upstream_connections_idle",
            "Pooled idle backend connections.",
            &[(vec![], self.total.upstream_idle as i64)],
        )?;

        let ws = &self.total.ws;
        let ws_labels = |k: &(String, String)| -> LabelSet {
            vec![("api", k.0.clone()), ("stage", k.1.clone())]
        };
        let opened: Vec<_> = ws.iter().map(|(k, s)| (ws_labels(k), s.opened)).collect();
        counter(
            &mut encoder,
            "tollgate_websocket_connections_opened",
            "WebSocket connections accepted (after $connect).",
            &opened,
        )?;
        let open: Vec<_> = ws
            .iter()
            .map(|(k, s)| (ws_labels(k), s.opened as i64 - s.closed as i64))
            .collect();
        gauge(
            &mut encoder,
            "tollgate_websocket_connections",
            "Open WebSocket connections.",
            &open,
        )?;
        let mut msgs = Vec::new();
        for (k, s) in ws {
            let mut l = ws_labels(k);
            l.push(("direction", "in".to_owned()));
            msgs.push((l, s.messages_in));
            let mut l = ws_labels(k);
            l.push(("direction", "out".to_owned()));
            msgs.push((l, s.messages_out));
        }
        counter(
            &mut encoder,
            "tollgate_websocket_messages",
            "WebSocket data messages, received from clients (in) and sent to them (out).",
            &msgs,
        )?;

        counter(
            &mut encoder,
            "tollgate_access_log_dropped_lines",
            "Access-log lines dropped because the log writer fell behind.",
            &[(vec![], self.total.log_dropped)],
        )?;
        let c = &self.control;
        counter(
            &mut encoder,
            "tollgate_access_log_write_errors",
            "Access-log lines lost to write errors (a missing directory, a full disk).",
            &[(vec![], c.log_write_errors)],
        )?;
        counter(
            &mut encoder,
            "tollgate_config_reloads",
            "Configuration reloads (SIGHUP, admin changes), by result.",
            &[
                (vec![("result", "success".to_owned())], c.reloads_ok),
                (vec![("result", "failure".to_owned())], c.reloads_failed),
            ],
        )?;
        gauge(
            &mut encoder,
            "tollgate_config_generation",
            "Generation of the configuration snapshot in force (1 at start, +1 per change).",
            &[(vec![], c.generation as i64)],
        )?;
        gauge(
            &mut encoder,
            "tollgate_shards",
            "Shards (executor threads) serving.",
            &[(vec![], c.shards as i64)],
        )?;
        gauge(
            &mut encoder,
            "tollgate_scrape_shards_missing",
            "Shards that did not answer this scrape in time (their counts are missing).",
            &[(vec![], c.shards_missing as i64)],
        )?;
        let mut m = encoder.encode_descriptor(
            "tollgate_start_time_seconds",
            "Start time of the process, seconds since the Unix epoch.",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(c.start_time_seconds)
            .encode(m.encode_family(&Vec::<(&str, String)>::new())?)?;
        let mut m = encoder.encode_descriptor(
            "tollgate_build",
            "Build information.",
            None,
            MetricType::Info,
        )?;
        m.encode_info(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_bounds() {
        let mut h = Histogram::default();
        h.observe(500_000); // exactly 0.5 ms: in the first bucket
        h.observe(500_001);
        h.observe(40_000_000_000); // beyond the last bound
        let c = h.buckets();
        assert_eq!(c[0], (0.0005, 1));
        assert_eq!(c[1], (0.001, 1));
        assert_eq!(c[14], (30.0, 0));
        assert_eq!(c[15].1, 1);
        assert!(c[15].0.is_infinite());
    }

    #[test]
    fn keys_are_stable() {
        let k = Keys::default();
        let l = Labels {
            api: "a".into(),
            stage: "s".into(),
            resource: "/x".into(),
            method: "GET".into(),
        };
        let id = k.id(l.clone());
        assert_ne!(id, UNROUTED);
        assert_eq!(k.id(l), id);
        assert_eq!(k.all().len(), 2);
    }

    #[test]
    fn render_merges_shards() {
        let keys = Keys::default();
        let id = keys.id(Labels {
            api: "pets".into(),
            stage: "prod".into(),
            resource: "/pets".into(),
            method: "GET".into(),
        });
        let mut a = ShardMetrics::default();
        let mut b = ShardMetrics::default();
        let obs = |status, error| Observation {
            series: id,
            status,
            latency_ns: 1_000_000,
            integration_ns: Some(900_000),
            error,
        };
        a.request(&obs(200, None));
        b.request(&obs(200, None));
        b.request(&obs(429, Some(ResponseType::Throttled)));
        let total = merge(&[a.report(), b.report()]);
        let text = render(&keys.all(), total, ControlValues::default());
        assert!(text.contains(
            "tollgate_requests_total{api=\"pets\",stage=\"prod\",resource=\"/pets\",method=\"GET\",status=\"2xx\"} 2"
        ), "{text}");
        assert!(text.contains("status=\"4xx\"} 1"), "{text}");
        assert!(text.contains("tollgate_gateway_responses_total{type=\"THROTTLED\"} 1"));
        assert!(text.contains("tollgate_throttled_requests_total{api=\"pets\""));
        assert!(text.contains("tollgate_request_duration_seconds_count{api=\"pets\",stage=\"prod\",resource=\"/pets\",method=\"GET\"} 3"), "{text}");
        assert!(text.trim_end().ends_with("# EOF"));
    }
}
