//! The runtime: one glommio executor per shard, each with its own
//! SO_REUSEPORT listener, connections, upstream pool and scratch buffer.
//!
//! Owns: everything that spawns tasks or touches glommio (no other module
//! does). A shard shares nothing per request with other shards; it holds
//! the snapshot as `Rc<Arc<Snapshot>>`, so taking it for a request is a
//! non-atomic reference-count increment.
//! Read first: [`run`], then `conn::serve_connection`.

mod authorize;
mod conn;
pub use conn::connection_reply_parts;
pub mod io;
pub mod stream;
pub mod upstream;
pub mod ws;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::net::TcpListener;
use glommio::sync::Semaphore;
use glommio::{LocalExecutorPoolBuilder, PoolPlacement};

use crate::error::{ErrorKind, GatewayError};
use crate::publish::{Publisher, ShardMsg, POLL};
use crate::resolve::Resolver;
use crate::snapshot::{Snapshot, Target};
use io::Scratch;
use upstream::Pool;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start shard executors: {0}")]
    Executors(String),
    #[error("shard {0} stopped: {1}")]
    Shard(usize, String),
}

/// A shard's handle on a snapshot: cloning it is a plain increment (the
/// `Arc` inside is shared by all shards; its count is touched only when a
/// new snapshot is installed).
#[allow(clippy::redundant_allocation)]
pub type SnapshotRef = Rc<Arc<Snapshot>>;

/// State of one shard, shared by its tasks (never across threads).
pub struct Shard {
    pub id: usize,
    /// 0-based position among the shards (mailboxes, acknowledgements).
    pub index: usize,
    pub publisher: Arc<Publisher>,
    pub cache: RefCell<crate::cache::ShardCache>,
    /// Keys being fetched by a first request; others wait on the semaphore
    /// (closed when the fetch ends) instead of calling the backend too.
    pub pending: RefCell<std::collections::HashMap<String, Rc<Semaphore>>>,
    pub shards: usize,
    snapshot: RefCell<SnapshotRef>,
    pub scratch: Scratch,
    /// Deadlines of requests (header, body, integration timeouts).
    pub timers: io::Timers,
    /// Deadlines of idle waits (keep-alive, WebSocket idle); all fire at
    /// once when the shard drains.
    pub idle_timers: io::Timers,
    pub pool: Pool,
    resolver: Arc<Resolver>,
    dns: RefCell<(u64, Arc<crate::resolve::Table>)>,
    pub local_port: u16,
    /// Set once a shutdown was ordered: finish the current request, then
    /// close.
    pub draining: Cell<bool>,
    /// Never has permits; closed on shutdown to wake whoever waits on it.
    pub stop: Semaphore,
    /// This shard's leases of the shared limits.
    pub limits: RefCell<crate::limit::ShardLimits>,
    /// Open WebSocket connections by id.
    pub ws: RefCell<std::collections::HashMap<String, ws::WsHandle>>,
    /// This shard's counters, merged with the others' when scraped.
    pub metrics: RefCell<crate::metrics::ShardMetrics>,
    /// Access-log lines waiting for the next hand-over to the writer.
    pub logs: RefCell<crate::access_log::ShardLogs>,
    pub in_flight: Cell<u64>,
    /// Open client connections.
    pub connections: Cell<u64>,
    /// When this shard last logged a failed integration, and how many it
    /// has left out since (see [`Shard::log_failure`]).
    failure_log: LogEvery,
    /// Lambda authorizers' results, by identity, for their TTL.
    pub authorizer_cache: RefCell<authorize::ResultCache>,
}

/// At most one log line a second for an event that may recur many times
/// a second (a backend down under load, the descriptor limit reached);
/// the rest are counted.
#[derive(Default)]
pub struct LogEvery {
    last: Cell<Option<std::time::Instant>>,
    left_out: Cell<u64>,
}

impl LogEvery {
    /// `Some(n)` if a line is due now, `n` occurrences having been left out
    /// since the previous line; `None` (counted) otherwise.
    pub fn admit(&self, now: std::time::Instant) -> Option<u64> {
        if self
            .last
            .get()
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            self.left_out.set(self.left_out.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        Some(self.left_out.replace(0))
    }
}

impl Shard {
    /// Logs a failed integration (or a configuration failure found while
    /// serving) at `warn`: operators need the cause of a 5xx (connection
    /// refused, a timeout, a certificate refused) without debug logging.
    /// At most one line per second per shard, so a backend that is down
    /// under load does not flood the log; the next line says how many
    /// were left out.
    pub fn log_failure(&self, request_id: &str, error: &dyn std::fmt::Display) {
        let Some(left_out) = self.failure_log.admit(self.timers.coarse_now()) else {
            return;
        };
        tracing::warn!(
            shard = self.id,
            request_id,
            error = %error,
            similar_left_out = left_out,
            "integration failed"
        );
    }

    pub fn snapshot(&self) -> SnapshotRef {
        self.snapshot.borrow().clone()
    }

    /// The addresses to send a target's requests to: fixed, or from this
    /// shard's copy of the DNS table.
    pub fn addresses<'t>(
        &self,
        target: &'t Target,
    ) -> Result<std::borrow::Cow<'t, [SocketAddr]>, GatewayError> {
        if let Some(a) = target.fixed.as_ref() {
            return Ok(std::borrow::Cow::Borrowed(std::slice::from_ref(a)));
        }
        let dns = self.dns.borrow();
        match dns.1.get(&target.resolve) {
            Some(addrs) if !addrs.is_empty() => Ok(std::borrow::Cow::Owned(addrs.clone())),
            _ => Err(GatewayError::new(
                ErrorKind::UpstreamUnresolved,
                format!("no address for backend {}", target.resolve),
            )),
        }
    }

    /// Hands back leases this shard has not used lately, so an idle shard
    /// does not sit on tokens or permits another shard needs.
    fn return_idle_leases(&self) {
        let snap = self.snapshot();
        let t = &snap.throttling;
        let now = crate::limit::clock_ns();
        let Ok(mut limits) = self.limits.try_borrow_mut() else {
            return;
        };
        for b in &t.buckets {
            limits.idle_return_bucket(b.id, &b.shared, now);
        }
        for q in &t.quotas {
            limits.idle_return_quota(q.id, &q.pool);
        }
        limits.permits.idle_return(&t.permits);
    }

    /// What this shard counted, for a scrape.
    fn report(&self) -> crate::metrics::ShardReport {
        let mut r = self.metrics.borrow().report();
        r.cache = self.cache.borrow().stats();
        r.upstream_opened = self.pool.opened.get();
        r.upstream_reused = self.pool.reused.get();
        r.upstream_idle = self.pool.idle_count() as u64;
        r.in_flight = self.in_flight.get();
        r.connections = self.connections.get();
        r.ws_open = self.ws.borrow().len() as u64;
        r.log_dropped = self.logs.borrow().dropped;
        r
    }

    /// Hands buffered access-log lines to the writer.
    fn flush_logs(&self) {
        let snap = self.snapshot.borrow();
        if let Ok(mut logs) = self.logs.try_borrow_mut() {
            logs.flush(&snap.log_sinks);
        }
    }

    fn refresh_dns(&self) {
        let generation = self.resolver.generation();
        if self.dns.borrow().0 != generation {
            *self.dns.borrow_mut() = (generation, self.resolver.table());
        }
    }
}

/// A listening address, announced once every shard has bound it.
pub struct Started {
    pub addr: SocketAddr,
    /// The TLS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    pub shards: usize,
}

/// Starts `shards` executors serving the publisher's snapshot and blocks
/// until they stop (after a shutdown order, once their connections are
/// done or the current snapshot's `shutdown_grace` has passed).
/// `on_started` runs once every shard listens.
pub fn run(
    publisher: Arc<Publisher>,
    shards: usize,
    resolver: Arc<Resolver>,
    on_started: impl FnOnce(Started),
) -> Result<(), RuntimeError> {
    let snapshot = publisher.current();
    let requested = snapshot.server.listen;
    // A bound, non-listening SO_REUSEPORT socket reserves the port (and
    // resolves port 0) without taking connections; every shard then binds
    // and listens on the same address, and the probe is dropped.
    let (probe, addr) = bind_probe(requested)?;
    let (tls_probe, tls_addr) = match &snapshot.server.tls {
        Some(t) => {
            let (probe, a) = bind_probe(t.listen)?;
            (Some(probe), Some(a))
        }
        None => (None, None),
    };
    // Shards are pinned, one per CPU, among the CPUs this process may use
    // (`taskset`, cgroup cpusets), not all online ones.
    let allowed = allowed_cpus();
    let cpus = allowed.as_ref().map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        glommio::CpuSet::len,
    );
    let placement = if shards <= cpus {
        PoolPlacement::MaxSpread(shards, allowed)
    } else {
        PoolPlacement::Unbound(shards)
    };
    let (bound_tx, bound_rx) = mpsc::channel::<Result<usize, String>>();
    let next_index = Arc::new(AtomicUsize::new(0));
    let io_memory = snapshot.server.io_memory;
    drop(snapshot);
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("tollgate-shard")
        .io_memory(io_memory)
        .on_all_shards(move || {
            let publisher = publisher.clone();
            let resolver = resolver.clone();
            let bound_tx = bound_tx.clone();
            let index = next_index.fetch_add(1, Ordering::Relaxed);
            async move {
                use futures_util::FutureExt;
                let shard = shard_main(index, publisher, resolver, addr, tls_addr, bound_tx);
                // A panic that escapes a shard (a bug: each connection
                // contains its own) ends the process for its supervisor
                // to restart, rather than leave it serving on fewer
                // shards, with that shard's WebSocket connections and
                // metrics gone and a drain that waits for it.
                if std::panic::AssertUnwindSafe(shard)
                    .catch_unwind()
                    .await
                    .is_err()
                {
                    tracing::error!(shard = index, "a shard panicked; the gateway exits");
                    std::process::exit(70);
                }
            }
        })
        .map_err(|e| RuntimeError::Executors(e.to_string()))?;

    for _ in 0..shards {
        match bound_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(RuntimeError::Bind {
                    addr,
                    source: std::io::Error::other(e),
                })
            }
            Err(_) => {
                return Err(RuntimeError::Executors(
                    "a shard exited during start-up".into(),
                ))
            }
        }
    }
    drop(probe);
    drop(tls_probe);
    on_started(Started {
        addr,
        tls_addr,
        shards,
    });

    for (i, r) in handles.join_all().into_iter().enumerate() {
        if let Err(e) = r {
            return Err(RuntimeError::Shard(i, e.to_string()));
        }
    }
    Ok(())
}

/// The online CPUs in this process's affinity mask.
fn allowed_cpus() -> Option<glommio::CpuSet> {
    let mask = rustix::thread::sched_getaffinity(None).ok()?;
    let set = glommio::CpuSet::online()
        .ok()?
        .filter(|l| mask.is_set(l.cpu));
    (!set.is_empty()).then_some(set)
}

/// The reserving socket and the address it got (port 0 resolved).
fn bind_probe(addr: SocketAddr) -> Result<(socket2::Socket, SocketAddr), RuntimeError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let err = |source| RuntimeError::Bind { addr, source };
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    // SO_REUSEPORT lets any process of the same user bind the port too:
    // a second gateway started by mistake would silently take half the
    // connections. A plain bind first (SO_REUSEADDR only, so connections
    // in TIME_WAIT do not stand in the way) fails with "Address already
    // in use" while anything listens there, as NGINX's would.
    if addr.port() != 0 {
        let check = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
        check.set_reuse_address(true).map_err(err)?;
        check.bind(&addr.into()).map_err(err)?;
    }
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    s.set_reuse_port(true).map_err(err)?;
    s.bind(&addr.into()).map_err(err)?;
    let bound = s
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .ok_or_else(|| err(std::io::Error::other("no local address")))?;
    Ok((s, bound))
}

async fn shard_main(
    index: usize,
    publisher: Arc<Publisher>,
    resolver: Arc<Resolver>,
    addr: SocketAddr,
    tls_addr: Option<SocketAddr>,
    bound: mpsc::Sender<Result<usize, String>>,
) {
    let id = glommio::executor().id();
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            let _ = bound.send(Err(e.to_string()));
            return;
        }
    };
    let tls_listener = match tls_addr.map(TcpListener::bind) {
        None => None,
        Some(Ok(l)) => Some(l),
        Some(Err(e)) => {
            let _ = bound.send(Err(format!("TLS listener: {e}")));
            return;
        }
    };
    // Acknowledge the snapshot before reporting bound, so that the start-up
    // line (and /readyz) never precede a shard that has no configuration.
    let generation = publisher.generation();
    let snapshot = publisher.current();
    publisher.ack(index, generation);
    let _ = bound.send(Ok(id));
    drop(bound);
    let max_connections = snapshot.server.limits.max_connections_per_shard as u64;
    let shard = Rc::new(Shard {
        id,
        index,
        publisher: publisher.clone(),
        cache: RefCell::new(crate::cache::ShardCache::default()),
        pending: RefCell::new(std::collections::HashMap::new()),
        shards: publisher.shards(),
        snapshot: RefCell::new(Rc::new(snapshot)),
        scratch: Scratch::new(),
        timers: io::Timers::default(),
        idle_timers: io::Timers::default(),
        pool: Pool::default(),
        dns: RefCell::new((resolver.generation(), resolver.table())),
        resolver,
        local_port: addr.port(),
        draining: Cell::new(false),
        stop: Semaphore::new(0),
        limits: RefCell::new(crate::limit::ShardLimits::default()),
        ws: RefCell::new(std::collections::HashMap::new()),
        metrics: RefCell::new(crate::metrics::ShardMetrics::default()),
        logs: RefCell::new(crate::access_log::ShardLogs::default()),
        in_flight: Cell::new(0),
        connections: Cell::new(0),
        failure_log: LogEvery::default(),
        authorizer_cache: RefCell::new(authorize::ResultCache::default()),
    });

    // Housekeeping: new snapshots and the shutdown order every POLL; DNS
    // table copy and idle upstream sweep once a second.
    let house = shard.clone();
    glommio::spawn_local(async move {
        let mut seen = generation;
        let mut last_second = std::time::Instant::now();
        let mut ticks: u64 = 0;
        loop {
            glommio::timer::sleep(POLL).await;
            ticks += 1;
            let now = std::time::Instant::now();
            crate::http::response::tick_clock(now);
            house.timers.tick(now);
            house.idle_timers.tick(now);
            house.flush_logs();
            if ticks % 10 == 0 {
                house.return_idle_leases();
            }
            let g = publisher.generation();
            if g != seen {
                let snap = publisher.current();
                // Stage caches that are gone, off (no method cached), or
                // resized free their memory (and never serve their old
                // entries again).
                let live: std::collections::HashMap<String, u64> = snap
                    .apis
                    .iter()
                    .flat_map(|a| a.stages.iter())
                    // A stage cache that caches no method is off.
                    .filter(|s| s.method_cache.iter().any(Option::is_some))
                    .filter_map(|s| s.cache.as_ref())
                    .map(|c| (c.uid.clone(), c.capacity_bytes))
                    .collect();
                house.cache.borrow_mut().retain(live);
                *house.snapshot.borrow_mut() = Rc::new(snap);
                seen = g;
                publisher.ack(index, g);
            }
            let mail = publisher.take_mail(index);
            if let Some(last) = mail.last().map(|(seq, _)| *seq) {
                let mut cache = house.cache.borrow_mut();
                for (_, msg) in &mail {
                    match msg.as_ref() {
                        ShardMsg::CacheReplace { uid, key, entry } => {
                            cache.insert_by_uid(uid, key.clone(), entry.clone())
                        }
                        ShardMsg::CacheFlush { uid } => cache.flush(uid, crate::limit::clock_ns()),
                        ShardMsg::Metrics { reply } => {
                            drop(cache);
                            let _ = reply.0.set(house.report());
                            cache = house.cache.borrow_mut();
                        }
                        ShardMsg::Connection {
                            id,
                            api,
                            stage,
                            op,
                            reply,
                        } => {
                            let op = match op {
                                crate::ws::ConnOp::Send(d) => crate::ws::ConnOp::Send(d.clone()),
                                crate::ws::ConnOp::Get => crate::ws::ConnOp::Get,
                                crate::ws::ConnOp::Delete => crate::ws::ConnOp::Delete,
                            };
                            let _ = reply.0.set(ws::connection_op(&house, id, api, stage, op));
                        }
                    }
                }
                drop(cache);
                publisher.mail_done(index, last);
            }
            if publisher.shutting_down() {
                house.draining.set(true);
                // Wakes the accept loop (waiting on `stop`) and every idle
                // keep-alive or WebSocket connection.
                house.stop.close();
                house.idle_timers.fire_all();
                // Requests in flight still need their deadlines.
                loop {
                    glommio::timer::sleep(POLL).await;
                    house.timers.tick(std::time::Instant::now());
                    house.flush_logs();
                    // Scrapes still get an answer while draining.
                    for (seq, msg) in publisher.take_mail(index) {
                        if let ShardMsg::Metrics { reply } = msg.as_ref() {
                            let _ = reply.0.set(house.report());
                        }
                        publisher.mail_done(index, seq);
                    }
                }
            }
            if last_second.elapsed() >= Duration::from_secs(1) {
                last_second = std::time::Instant::now();
                house.refresh_dns();
                let idle = house.snapshot.borrow().upstream.idle_timeout;
                house.pool.sweep(idle);
            }
        }
    })
    .detach();

    let permits = Rc::new(Semaphore::new(max_connections));
    let tls_loop = tls_listener
        .map(|l| glommio::spawn_local(accept_loop(shard.clone(), l, permits.clone(), true)));
    accept_loop(shard.clone(), listener, permits.clone(), false).await;
    if let Some(t) = tls_loop {
        t.await;
    }
    // Draining: no new connections; wait for the open ones to finish their
    // requests, up to the grace period (of the configuration in force: a
    // reload may have changed it).
    let grace = shard.snapshot.borrow().server.shutdown_grace;
    let deadline = std::time::Instant::now() + grace;
    while permits.available() < max_connections && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    shard.flush_logs();
    let left = max_connections - permits.available();
    if left > 0 {
        tracing::warn!(
            shard = id,
            connections = left,
            "grace period over; closing connections"
        );
    }
}

/// Runs a connection so that a panic in it (a bug: malformed input is
/// answered, never a panic) closes that connection and is logged, instead
/// of ending the shard and every connection on it.
async fn contained(conn: impl std::future::Future<Output = ()>) {
    use futures_util::FutureExt;
    if let Err(p) = std::panic::AssertUnwindSafe(conn).catch_unwind().await {
        let what = p
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(panic = %what, "a connection task panicked; the connection was closed");
    }
}

/// Accepts until the shard stops. Plain and TLS listeners share the
/// shard's connection permits.
async fn accept_loop(shard: Rc<Shard>, listener: TcpListener, permits: Rc<Semaphore>, tls: bool) {
    // EMFILE recurs every 50 ms while the descriptor limit holds: one line
    // a second, not twenty.
    let accept_log = LogEvery::default();
    loop {
        let stopped = async {
            let _ = shard.stop.acquire(1).await;
            None
        };
        let permit = match futures_lite::future::or(
            async { permits.clone().acquire_static_permit(1).await.ok() },
            stopped,
        )
        .await
        {
            Some(p) => p,
            None => break,
        };
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            let _ = shard.stop.acquire(1).await;
            None
        })
        .await;
        match accepted {
            None => break,
            Some(Ok(stream)) => {
                let shard = shard.clone();
                if tls {
                    // The configuration of the snapshot in force: a reload
                    // with new certificates applies to new handshakes.
                    let Some(config) = shard.snapshot().tls_server.clone() else {
                        drop(permit);
                        continue;
                    };
                    glommio::spawn_local(async move {
                        contained(conn::serve_tls(shard, stream, config)).await;
                        drop(permit);
                    })
                    .detach();
                } else {
                    glommio::spawn_local(async move {
                        contained(conn::serve_connection(shard, stream)).await;
                        drop(permit);
                    })
                    .detach();
                }
            }
            Some(Err(e)) => {
                drop(permit);
                if let Some(left_out) = accept_log.admit(std::time::Instant::now()) {
                    tracing::warn!(
                        shard = shard.id,
                        error = %e,
                        similar_left_out = left_out,
                        "accept failed"
                    );
                }
                // EMFILE and friends: back off instead of spinning.
                glommio::timer::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}
