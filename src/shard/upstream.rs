//! Backend connections of one shard: a keep-alive pool per backend address,
//! the request/response exchange with its deadline, and body reading.
//!
//! Owns: connect (bounded by the connect timeout and the integration
//! deadline), reuse (LIFO: the most recently used connection is the one
//! most likely still open), the one retry on a stale pooled connection for
//! idempotent requests, and response framing.
//! Must not: outlive the shard; nothing here is shared between shards.
//! Read first: [`send`].

use std::cell::RefCell;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;

use super::io::{read_some, Scratch, Timers};
use super::stream::UpStream;
use crate::error::{ErrorKind, GatewayError};
use crate::http::chunked::ChunkedDecoder;
use crate::http::response::{parse_upstream_head, ParsedResponse, ResponseFraming, UpstreamHead};
use crate::snapshot::UpstreamSettings;

struct Idle {
    stream: UpStream,
    since: Instant,
}

/// Interim (1xx) responses accepted before the final one: a backend may
/// send `100 Continue` and a few `103 Early Hints`; more is a fault.
const MAX_INTERIM_RESPONSES: u32 = 16;

/// A pooled connection is reusable for the same address and the same TLS
/// identity (0: plain; else [`crate::snapshot::TargetTls::pool_key`]).
type PoolKey = (SocketAddr, u64);

/// TLS towards a backend: the client configuration and the name to send
/// (SNI) and verify.
#[derive(Clone, Copy)]
pub struct TlsTo<'a> {
    pub config: &'a std::sync::Arc<rustls::ClientConfig>,
    pub target: &'a crate::snapshot::TargetTls,
}

impl<'a> TlsTo<'a> {
    /// How to reach `target`: plain (`None`) or TLS with the snapshot's
    /// client configuration.
    pub fn for_target(
        snap: &'a crate::snapshot::Snapshot,
        target: &'a crate::snapshot::Target,
    ) -> Result<Option<TlsTo<'a>>, GatewayError> {
        let Some(t) = &target.tls else {
            return Ok(None);
        };
        let Some(c) = &snap.tls_client else {
            return Err(GatewayError::new(
                ErrorKind::UpstreamTls,
                "no TLS client configuration in this snapshot",
            ));
        };
        Ok(Some(TlsTo {
            config: if t.insecure { &c.insecure } else { &c.verified },
            target: t,
        }))
    }
}

#[derive(Default)]
pub struct Pool {
    idle: RefCell<crate::snapshot::FastMap<PoolKey, Vec<Idle>>>,
    /// Connections opened and reuses, for tests and metrics.
    pub opened: std::cell::Cell<u64>,
    pub reused: std::cell::Cell<u64>,
    /// The time of the last checkout (the shard's coarse clock, at most a
    /// housekeeping tick old), which stamps check-ins: idle ages need no
    /// precision, and two clock reads per proxied request were measurable
    /// (15 `clock_gettime` calls per request in all, `perf probe`).
    clock: std::cell::Cell<Option<Instant>>,
}

impl Pool {
    /// The most recently used idle connection to `key`. A connection the
    /// backend has closed or sent unasked bytes on is dropped instead of
    /// returned: always when its socket became readable while it was idle
    /// (free to know: the stream's poll says so), and with `verify` also
    /// when that is not yet known (one `MSG_PEEK`).
    fn checkout(
        &self,
        key: PoolKey,
        max_idle_age: Duration,
        now: Instant,
        verify: bool,
    ) -> Option<UpStream> {
        self.clock.set(Some(now));
        let mut idle = self.idle.borrow_mut();
        let list = idle.get_mut(&key)?;
        while let Some(c) = list.pop() {
            // Too old: the backend has likely closed it; drop and look on.
            if now.duration_since(c.since) < max_idle_age
                && (!(verify || readable_while_idle(&c.stream)) || looks_open(&c.stream))
            {
                return Some(c.stream);
            }
        }
        None
    }

    fn checkin(&self, key: PoolKey, mut stream: UpStream, settings: &UpstreamSettings) {
        // Its poll tells `readable_while_idle` what comes while it waits.
        stream.tcp_mut().park();
        let mut idle = self.idle.borrow_mut();
        let list = idle.entry(key).or_default();
        if list.len() < settings.max_idle_per_host {
            list.push(Idle {
                stream,
                since: self.clock.get().unwrap_or_else(Instant::now),
            });
        }
    }

    /// Closes connections idle for longer than `max_idle_age`.
    pub fn sweep(&self, max_idle_age: Duration) {
        let now = Instant::now();
        let mut idle = self.idle.borrow_mut();
        for list in idle.values_mut() {
            list.retain(|c| now.duration_since(c.since) < max_idle_age);
        }
        idle.retain(|_, l| !l.is_empty());
    }

    pub fn idle_count(&self) -> usize {
        self.idle.borrow().values().map(Vec::len).sum()
    }
}

/// Whether the backend's socket became readable after the last response was
/// read: it sent bytes nobody asked for (a late or unsolicited response,
/// which must never be read as the next request's answer) or closed. A
/// true answer is confirmed with [`looks_open`] (it can be the wakeup for
/// bytes the last read already took).
fn readable_while_idle(stream: &UpStream) -> bool {
    stream.tcp().readable_since_last_read()
}

/// Whether an idle backend connection still looks usable: nothing to read
/// and not closed (one non-blocking `MSG_PEEK`). A request that may not be
/// retried (POST, PATCH) checks before it is sent: a backend whose idle
/// timeout is shorter than the pool's closes connections the pool still
/// holds, and a POST written to one would fail with 504 without reaching
/// the backend. Idempotent requests skip the system call; they are retried
/// on a new connection instead.
fn looks_open(stream: &UpStream) -> bool {
    // Bytes nobody asked for (a TLS close_notify, a late or unsolicited
    // response) make it unusable too.
    crate::sock::peek(stream.tcp()) == crate::sock::Waiting::Nothing
}

/// One read of body bytes from the backend into `dst`, within `deadline`.
/// The end of the stream is `Ok(0)` if the body ends there (`eof_ends`),
/// else an error.
async fn read_body_bytes(
    stream: &mut UpStream,
    addr: SocketAddr,
    (scratch, timers): (&Scratch, &Timers),
    deadline: Instant,
    dst: &mut BytesMut,
    eof_ends: bool,
) -> Result<usize, GatewayError> {
    match timers
        .deadline(deadline, read_some(stream, scratch, dst))
        .await
    {
        None => Err(GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("{addr} stalled mid-body"),
        )),
        Some(Ok(0)) if !eof_ends => Err(GatewayError::new(
            ErrorKind::UpstreamReset,
            format!("{addr} closed the connection mid-body"),
        )),
        Some(Ok(n)) => Ok(n),
        Some(Err(e)) => Err(GatewayError::new(
            ErrorKind::UpstreamReset,
            format!("read from {addr}: {e}"),
        )),
    }
}

/// A response whose head has arrived; the body is read on demand.
pub struct UpstreamResponse {
    pub head: UpstreamHead,
    pub raw_head: Bytes,
    stream: UpStream,
    /// The backend's address and TLS identity (`key.0` is the address).
    key: PoolKey,
    buf: BytesMut,
    remaining: u64,
    decoder: ChunkedDecoder,
    done: bool,
    /// Set when the body ended in a way that leaves the connection unusable.
    spoiled: bool,
}

pub enum Buffered {
    Complete(Bytes),
    /// Over the limit: what was read so far; the rest must be streamed.
    Partial(BytesMut),
}

enum Attempt {
    Ok(Box<UpstreamResponse>),
    /// A pooled connection turned out to be closed before any response
    /// byte: safe to retry an idempotent request.
    Stale(GatewayError),
    Failed(GatewayError),
}

/// Sends `request` (head and body) to the backend at `addrs` (the
/// addresses of one host, in resolver order) and waits for the response
/// head, all before `deadline`.
#[allow(clippy::too_many_arguments)]
pub async fn send(
    pool: &Pool,
    scratch: &Scratch,
    timers: &Timers,
    settings: &UpstreamSettings,
    addrs: &[SocketAddr],
    tls: Option<TlsTo<'_>>,
    request: &[u8],
    idempotent: bool,
    head_request: bool,
    deadline: Instant,
) -> Result<Box<UpstreamResponse>, GatewayError> {
    let tls_key = tls.map_or(0, |t| t.target.pool_key);
    let fut = async {
        let mut retried = false;
        loop {
            // After a stale pooled connection, the retry goes on a new one.
            let pooled = if retried {
                None
            } else {
                let now = timers.coarse_now();
                addrs.iter().find_map(|&a| {
                    pool.checkout((a, tls_key), settings.idle_timeout, now, !idempotent)
                        .map(|s| (a, s))
                })
            };
            let reused = pooled.is_some();
            let (addr, stream) = match pooled {
                Some(p) => {
                    pool.reused.set(pool.reused.get() + 1);
                    p
                }
                None => {
                    // Boxed: the connect (and TLS handshake) future is
                    // most of this one's size and is needed only for a new
                    // connection; inline, every pooled request's future
                    // carried (and moved) it.
                    let c = Box::pin(connect_any(addrs, settings, tls, deadline)).await?;
                    pool.opened.set(pool.opened.get() + 1);
                    c
                }
            };
            match attempt(
                stream,
                (addr, tls_key),
                scratch,
                settings,
                request,
                head_request,
                reused,
            )
            .await
            {
                Attempt::Ok(r) => return Ok(r),
                Attempt::Stale(e) if idempotent && !retried => {
                    tracing::debug!(%addr, error = %e, "stale pooled connection; retrying on a new one");
                    retried = true;
                    continue;
                }
                Attempt::Stale(e) | Attempt::Failed(e) => return Err(e),
            }
        }
    };
    match timers.deadline(deadline, fut).await {
        Some(r) => r,
        None => Err(GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("no response from {addrs:?} in time"),
        )),
    }
}

/// Connects to the first address that accepts, each try bounded by the
/// connect timeout and the deadline.
async fn connect_any(
    addrs: &[SocketAddr],
    settings: &UpstreamSettings,
    tls: Option<TlsTo<'_>>,
    deadline: Instant,
) -> Result<(SocketAddr, UpStream), GatewayError> {
    let mut last = GatewayError::new(ErrorKind::UpstreamUnresolved, "no backend address");
    for &addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        let budget = left.min(settings.connect_timeout);
        match TcpStream::connect_timeout(addr, budget).await {
            Ok(mut s) => {
                let _ = s.set_nodelay(true);
                // A backend that writes its last bytes and closes at once
                // must be seen closing (a close-delimited body, a body cut
                // short): without this, about 3 in 4 such responses waited
                // for the integration timeout. No cost for a response read
                // in one go; the pool marks the stream drained at checkin.
                s.set_read_until_eagain(true);
                let Some(tls) = tls else {
                    return Ok((addr, UpStream::Plain(s)));
                };
                // The handshake shares the integration deadline (the
                // caller bounds the whole exchange by it).
                let connector = futures_rustls::TlsConnector::from(tls.config.clone());
                match connector.connect(tls.target.server_name.clone(), s).await {
                    Ok(t) => return Ok((addr, UpStream::Tls(Box::new(t)))),
                    Err(e) => {
                        last = GatewayError::new(
                            ErrorKind::UpstreamTls,
                            format!("TLS with {addr} ({:?}): {e}", tls.target.server_name),
                        );
                    }
                }
            }
            Err(e) => {
                let msg = format!("connect to {addr}: {e}");
                last = if budget == left && is_timeout(&e) {
                    GatewayError::new(ErrorKind::UpstreamTimeout, msg)
                } else {
                    GatewayError::new(ErrorKind::UpstreamConnect, msg)
                };
            }
        }
    }
    Err(last)
}

fn is_timeout(e: &glommio::GlommioError<()>) -> bool {
    matches!(e, glommio::GlommioError::TimedOut(_))
        || matches!(e, glommio::GlommioError::IoError(io) if io.kind() == std::io::ErrorKind::TimedOut)
}

async fn attempt(
    mut stream: UpStream,
    key: PoolKey,
    scratch: &Scratch,
    settings: &UpstreamSettings,
    request: &[u8],
    head_request: bool,
    reused: bool,
) -> Attempt {
    let failed = |kind, msg: String| {
        let e = GatewayError::new(kind, msg);
        if reused {
            Attempt::Stale(e.retryable())
        } else {
            Attempt::Failed(e)
        }
    };
    let addr = key.0;
    let mut written = stream.write_all(request).await;
    if written.is_ok() && stream.is_tls() {
        written = stream.flush().await;
    }
    if let Err(e) = written {
        return failed(ErrorKind::UpstreamReset, format!("write to {addr}: {e}"));
    }
    let mut buf = BytesMut::new();
    // Interim responses skipped so far, and their bytes: bounded, as one
    // head is. A backend that sent `100 Continue` without end kept the
    // socket always readable, so this loop never yielded: the shard served
    // nobody else and the integration deadline never fired.
    let mut interim = (0u32, 0usize);
    loop {
        match read_some(&mut stream, scratch, &mut buf).await {
            Ok(0) => {
                if buf.is_empty() {
                    return failed(
                        ErrorKind::UpstreamReset,
                        format!("{addr} closed the connection before responding"),
                    );
                }
                return Attempt::Failed(GatewayError::new(
                    ErrorKind::UpstreamMalformed,
                    format!("{addr} closed the connection mid-head"),
                ));
            }
            Ok(_) => {}
            Err(e) => {
                if buf.is_empty() {
                    return failed(ErrorKind::UpstreamReset, format!("read from {addr}: {e}"));
                }
                return Attempt::Failed(GatewayError::new(
                    ErrorKind::UpstreamReset,
                    format!("read from {addr}: {e}"),
                ));
            }
        }
        loop {
            match parse_upstream_head(&buf, head_request, settings.max_response_head_bytes) {
                Ok(ParsedResponse::Partial) => break,
                Ok(ParsedResponse::Complete(head, len)) => {
                    let raw = buf.split_to(len).freeze();
                    // 1xx interim responses (100 Continue, 103 Early Hints)
                    // are not forwarded; 101 would switch protocols, which
                    // an HTTP integration cannot do.
                    if (100..200).contains(&head.status) {
                        if head.status == 101 {
                            return Attempt::Failed(GatewayError::new(
                                ErrorKind::UpstreamMalformed,
                                format!("{addr} switched protocols"),
                            ));
                        }
                        interim = (interim.0 + 1, interim.1 + len);
                        if interim.0 > MAX_INTERIM_RESPONSES
                            || interim.1 > settings.max_response_head_bytes
                        {
                            return Attempt::Failed(GatewayError::new(
                                ErrorKind::UpstreamMalformed,
                                format!(
                                    "{addr} sent more than {MAX_INTERIM_RESPONSES} interim (1xx) responses or {} bytes of them",
                                    settings.max_response_head_bytes
                                ),
                            ));
                        }
                        continue;
                    }
                    let remaining = match head.framing {
                        ResponseFraming::Length(n) => n,
                        _ => 0,
                    };
                    let done = head.framing == ResponseFraming::Empty
                        || head.framing == ResponseFraming::Length(0);
                    return Attempt::Ok(Box::new(UpstreamResponse {
                        head,
                        raw_head: raw,
                        stream,
                        key,
                        buf,
                        remaining,
                        decoder: ChunkedDecoder::new(),
                        done,
                        spoiled: false,
                    }));
                }
                Err(e) => {
                    return Attempt::Failed(GatewayError::new(
                        ErrorKind::UpstreamMalformed,
                        format!("unparsable response head from {addr}: {e:?}"),
                    ))
                }
            }
        }
    }
}

impl UpstreamResponse {
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.head
            .headers
            .iter()
            .filter(|(n, _)| n.of(&self.raw_head).eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.of(&self.raw_head))
            .last()
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.head
            .headers
            .iter()
            .map(|(n, v)| (n.of(&self.raw_head), v.of(&self.raw_head)))
    }

    /// The next piece of decoded body, `None` at its end. Each read waits
    /// at most until `deadline`.
    pub async fn next_chunk(
        &mut self,
        scratch: &Scratch,
        timers: &Timers,
        deadline: Instant,
    ) -> Result<Option<Bytes>, GatewayError> {
        loop {
            if self.done {
                return Ok(None);
            }
            if !self.buf.is_empty() {
                match self.head.framing {
                    ResponseFraming::Empty => {
                        self.done = true;
                        return Ok(None);
                    }
                    ResponseFraming::Length(_) => {
                        let take = (self.buf.len() as u64).min(self.remaining) as usize;
                        let data = self.buf.split_to(take).freeze();
                        self.remaining -= take as u64;
                        if self.remaining == 0 {
                            self.done = true;
                        }
                        return Ok(Some(data));
                    }
                    ResponseFraming::Chunked => {
                        let mut out = BytesMut::new();
                        let progress = self.decoder.decode(&self.buf, &mut out).map_err(|e| {
                            self.spoiled = true;
                            GatewayError::new(
                                ErrorKind::UpstreamMalformed,
                                format!("bad chunked body from {}: {}", self.key.0, e.reason()),
                            )
                        })?;
                        self.buf.advance(progress.consumed);
                        if progress.done {
                            self.done = true;
                        }
                        if !out.is_empty() {
                            return Ok(Some(out.freeze()));
                        }
                        if self.done {
                            return Ok(None);
                        }
                    }
                    ResponseFraming::UntilClose => {
                        return Ok(Some(self.buf.split().freeze()));
                    }
                }
            }
            let until_close = self.head.framing == ResponseFraming::UntilClose;
            let got = read_body_bytes(
                &mut self.stream,
                self.key.0,
                (scratch, timers),
                deadline,
                &mut self.buf,
                until_close,
            )
            .await;
            match got {
                Ok(0) => {
                    self.done = true;
                    self.spoiled = true;
                    return Ok(None);
                }
                Ok(_) => {}
                Err(e) => {
                    self.spoiled = true;
                    return Err(e);
                }
            }
        }
    }

    /// Reads the body whole if it is at most `limit` bytes.
    pub async fn buffer_body(
        &mut self,
        scratch: &Scratch,
        timers: &Timers,
        limit: usize,
        deadline: Instant,
    ) -> Result<Buffered, GatewayError> {
        if let ResponseFraming::Length(n) = self.head.framing {
            if n as usize > limit {
                return Ok(Buffered::Partial(BytesMut::new()));
            }
            // Most bodies arrive with the head: hand that slice out whole.
            if self.buf.len() as u64 >= n {
                let body = self.buf.split_to(n as usize).freeze();
                self.remaining = 0;
                self.done = true;
                return Ok(Buffered::Complete(body));
            }
            // The rest goes straight into one buffer of the body's size
            // (reserved up to 1 MiB, then grown as bytes arrive): one copy
            // per byte instead of three plus regrowth. 64 KiB responses
            // (loadtest b): 0.67× → 0.73× NGINX's requests/s.
            let n = n as usize;
            let mut acc = BytesMut::with_capacity(n.min(1 << 20));
            acc.extend_from_slice(&self.buf);
            self.buf.clear();
            while acc.len() < n {
                let got = read_body_bytes(
                    &mut self.stream,
                    self.key.0,
                    (scratch, timers),
                    deadline,
                    &mut acc,
                    false,
                )
                .await;
                if let Err(e) = got {
                    self.spoiled = true;
                    return Err(e);
                }
            }
            if acc.len() > n {
                // Bytes past the body: kept, so the connection is not reused.
                self.buf = acc.split_off(n);
            }
            self.remaining = 0;
            self.done = true;
            return Ok(Buffered::Complete(acc.freeze()));
        }
        let mut acc = BytesMut::new();
        while let Some(chunk) = self.next_chunk(scratch, timers, deadline).await? {
            acc.extend_from_slice(&chunk);
            if acc.len() > limit {
                return Ok(Buffered::Partial(acc));
            }
        }
        Ok(Buffered::Complete(acc.freeze()))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Returns the connection to the pool if the exchange left it clean.
    pub fn release(self, pool: &Pool, settings: &UpstreamSettings) {
        if self.done && !self.spoiled && self.head.keep_alive && self.buf.is_empty() {
            pool.checkin(self.key, self.stream, settings);
        }
    }
}
