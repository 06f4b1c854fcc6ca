//! One client connection: read a head, serve the request, write the
//! response, repeat while keep-alive holds.
//!
//! `serve_request` reads top to bottom as the phases of a request (see
//! `docs/ARCHITECTURE.md`); every failure funnels into [`Conn::fail`],
//! which writes the stage's gateway response for the error's kind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use futures_lite::io::AsyncWriteExt;
use glommio::net::TcpStream;

use super::io::read_some;
use super::stream::Stream;
use super::upstream::{self, Buffered, UpstreamResponse};
use super::Shard;
use crate::error::{ErrorKind, GatewayError, Side};
use crate::gateway_response::{ResponseType, StageResponses};
use crate::http::chunked::{write_chunk_header, ChunkedDecoder, LAST_CHUNK};
use crate::http::request::{
    linger_budget, parse_head, BodyFraming, HeadError, Method, Parsed, RequestHead, Version,
};
use crate::http::response::{
    is_hop_by_hop, write_content_length, write_header, write_status_line, Persist,
};
use crate::ids;
use crate::integration::{
    self, build_upstream_request, eval_response_source, mock_status, render_template,
    select_response, select_template, write_common_headers, write_full_response,
    write_gateway_response, write_protocol_error, Conversion, RequestInfo, RouteMatch,
    TemplateData,
};
use crate::router::Captures;
use crate::snapshot::{Binding, IntegrationKind, Snapshot};

/// Socket options every client connection gets; returns the peer. An
/// IPv4 client of a dual-stack listener (`[::]`) is its IPv4 address
/// (`127.0.0.1`, not `::ffff:127.0.0.1`), as it would be on an IPv4
/// listener: in `sourceIp`, `X-Forwarded-For` and the access log.
fn prepare(shard: &Shard, stream: &TcpStream) -> SocketAddr {
    let peer = stream
        .peer_addr()
        .unwrap_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0));
    let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
    let _ = stream.set_nodelay(true);
    let write_timeout = shard.snapshot().server.limits.write_timeout;
    let _ = stream.set_write_timeout(Some(write_timeout));
    peer
}

pub(super) async fn serve_connection(shard: Rc<Shard>, stream: TcpStream) {
    let peer = prepare(&shard, &stream);
    serve_stream(shard, Stream::Plain(stream), peer, None).await;
}

/// A connection to the TLS listener: the handshake (bounded by the
/// header-read timeout), then the same serving as plain connections.
pub(super) async fn serve_tls(
    shard: Rc<Shard>,
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
) {
    let peer = prepare(&shard, &stream);
    let timeout = shard.snapshot().server.limits.header_read_timeout;
    let accept = futures_rustls::TlsAcceptor::from(config).accept(stream);
    let tls = match shard
        .timers
        .deadline(Instant::now() + timeout, accept)
        .await
    {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        None => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .and_then(|c| crate::tls::ClientCert::from_der(c))
        .map(Rc::new);
    serve_stream(shard, Stream::Tls(Box::new(tls)), peer, client_cert).await;
}

async fn serve_stream(
    shard: Rc<Shard>,
    stream: Stream,
    peer: SocketAddr,
    client_cert: Option<Rc<crate::tls::ClientCert>>,
) {
    let counted = shard.clone();
    let _open = Gauge::up(&counted.connections);
    let mut conn = Conn {
        shard,
        stream,
        peer,
        inbuf: BytesMut::new(),
        out: Vec::new(),
        out_body: None,
        rec: Record::default(),
        client_cert,
        linger: 0,
    };
    if let Some(upgrade) = conn.run().await {
        let Conn {
            shard,
            stream,
            peer,
            inbuf,
            ..
        } = conn;
        Box::pin(super::ws::serve(shard, stream, peer, inbuf, upgrade)).await;
    } else {
        if conn.stream.is_tls() {
            // close_notify, so the client can tell a complete response from a
            // cut one (best effort, bounded).
            let until = Instant::now() + std::time::Duration::from_millis(500);
            let _ = conn
                .shard
                .timers
                .deadline(
                    until,
                    futures_lite::io::AsyncWriteExt::close(&mut conn.stream),
                )
                .await;
        }
        if conn.linger > 0 {
            Box::pin(linger(&conn.shard, conn.stream.tcp_mut(), conn.linger)).await;
        }
    }
}

/// How long a lingering close drains what the client still sends.
const LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Closes in stages (RFC 9112 §9.6): the write side first, then what the
/// client still sends is read and dropped until it closes, for at most
/// `LINGER` and `budget` bytes, before the socket is closed. Closed at
/// once with unread data, the kernel resets the connection, and a client
/// still uploading (Node's `http`, Python's `urllib`) loses the answer
/// (413, 403) before reading it: 19 of 20 such uploads ended in
/// ECONNRESET, against none through NGINX, which lingers the same way.
async fn linger(shard: &Shard, tcp: &mut TcpStream, budget: u64) {
    use futures_lite::AsyncReadExt;
    let _ = tcp.shutdown(std::net::Shutdown::Write).await;
    let until = Instant::now() + LINGER;
    let mut left = budget;
    let mut sink = vec![0u8; 16 * 1024];
    while left > 0 {
        match shard.timers.deadline(until, tcp.read(&mut sink)).await {
            Some(Ok(n)) if n > 0 => left = left.saturating_sub(n as u64),
            _ => return,
        }
    }
}

/// Body buffers grow by at most this much (or by doubling) per read.
const BODY_STEP: usize = 64 * 1024;

/// Response bodies at least this large are not copied behind the head.
const SEPARATE_BODY: usize = 16 * 1024;

struct Conn {
    shard: Rc<Shard>,
    stream: Stream,
    peer: SocketAddr,
    /// Bytes read and not yet consumed. Empty (and unallocated) while idle.
    inbuf: BytesMut,
    /// The response being built.
    out: Vec<u8>,
    /// A large body to write after `out` (not copied into it).
    out_body: Option<Bytes>,
    /// What the current request came to, for metrics and the access log.
    rec: Record,
    /// The client's certificate, on a mutual-TLS connection.
    client_cert: Option<Rc<crate::tls::ClientCert>>,
    /// The connection closes after an answer given while the client may
    /// still be sending (a body not read, a refused head): it is closed in
    /// stages (`linger`), reading and dropping at most this many bytes, so
    /// that the answer is not lost to a reset. 0: closed at once.
    linger: u64,
}

/// Filled in as a request is served; read once it is answered.
#[derive(Default)]
struct Record {
    series: u32,
    method_id: Option<u32>,
    status: u16,
    body_len: u64,
    integration_ns: Option<u64>,
    integration_status: Option<u16>,
    /// The gateway response that answered, when one did.
    error: Option<Failure>,
    /// Why the integration failed (for `$context.integrationErrorMessage`;
    /// kept only for a stage with an access log), also when the failure
    /// came after the response had begun.
    integration_error: Option<String>,
    /// The request's stage writes an access log (else `record` skips
    /// finding the API and stage again).
    logged: bool,
    /// What the method's authorizer said, for `$context.authorizer.*`
    /// (kept only for a stage with an access log).
    authorizer: Option<Arc<crate::authorizer::AuthorizerOutput>>,
    /// The credential that signed an `AWS_IAM` request, and its access key
    /// (kept only for a stage with an access log).
    caller: Option<String>,
    caller_key: Option<String>,
}

/// What the access log and the metrics see of a gateway response.
struct Failure {
    kind: ResponseType,
    /// `$context.error.message` (kept only for a stage with an access log).
    message: String,
    /// `$context.error.validationErrorString`.
    validation: Option<String>,
}

/// Counts one up while alive.
struct Gauge<'a>(&'a std::cell::Cell<u64>);

impl<'a> Gauge<'a> {
    fn up(c: &'a std::cell::Cell<u64>) -> Gauge<'a> {
        c.set(c.get() + 1);
        Gauge(c)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

enum HeadRead {
    Head(RequestHead),
    /// Clean end: the client closed, or stayed idle past the timeout.
    Closed,
    Refused(u16, &'static str),
}

enum BodyError {
    TooLarge,
    Malformed(&'static str),
    /// Timeout, reset or EOF: no answer possible or useful.
    Gone,
}

impl Conn {
    /// Serves requests until the connection ends, or returns a WebSocket
    /// upgrade for the caller to take over.
    async fn run(&mut self) -> Option<super::ws::Upgrade> {
        loop {
            let snap = self.shard.snapshot();
            let head = match self.read_head(&snap).await {
                HeadRead::Head(h) => h,
                HeadRead::Closed => return None,
                HeadRead::Refused(status, why) => {
                    let rid = ids::new_request_id();
                    let rid = std::str::from_utf8(&rid).unwrap_or("");
                    tracing::debug!(peer = %self.peer, status, why, "refused request head");
                    if snap.server.metrics {
                        self.shard.metrics.borrow_mut().refused(status);
                    }
                    write_protocol_error(&mut self.out, status, why, rid);
                    let _ = self.flush().await;
                    // A client that let the header timeout pass (408) is
                    // not sending anything worth waiting for.
                    if status != 408 {
                        self.linger = snap.server.limits.max_body_bytes;
                    }
                    return None;
                }
            };
            // Served by the configuration in force when its head arrived,
            // not the one of when the connection went idle (a reload may
            // have come in between).
            let snap = self.shard.snapshot();
            // The request's own future is boxed: its state (the integration,
            // upstream and template futures, several KiB) then exists only
            // while a request is being served, not for every idle
            // connection. Measured: an idle keep-alive connection 20.1 →
            // 4.4 KiB (loadtest f, 10,000 connections); one allocation per
            // request.
            let keep_alive = if snap.is_websocket(head.host(), head.path()) {
                match Box::pin(self.websocket_request(&snap, head)).await {
                    Ok(upgrade) => return Some(upgrade),
                    Err(keep) => keep,
                }
            } else {
                Box::pin(self.serve_request(&snap, head)).await
            };
            if self.flush().await.is_err() || !keep_alive {
                return None;
            }
            // Idle connections hold no buffers.
            if self.inbuf.is_empty() {
                self.inbuf = BytesMut::new();
            }
            if self.out.capacity() > 16 * 1024 {
                self.out = Vec::new();
            }
        }
    }

    /// A request for a WebSocket API: the upgrade on `/{stage}`, or the
    /// `@connections` API on `/{stage}/@connections/{id}`. `Err` carries the
    /// keep-alive decision of an answered request.
    async fn websocket_request(
        &mut self,
        snap: &super::SnapshotRef,
        head: RequestHead,
    ) -> Result<super::ws::Upgrade, bool> {
        let rid = ids::new_request_id();
        let request_id = std::str::from_utf8(&rid).unwrap_or("").to_owned();
        let path = String::from_utf8_lossy(head.path()).into_owned();
        let located = snap.ws_locate(head.host(), &path);
        let api = located.map(|l| l.0);
        let stage_name = located.and_then(|l| l.1);
        let rest = located.map_or("", |l| l.2);
        let stage_ok = api
            .zip(stage_name)
            .is_some_and(|(a, s)| a.stage(s).is_some());
        let body_pending = head.info.body != BodyFraming::None;
        if !stage_ok {
            if body_pending {
                self.linger = linger_budget(head.info.body, snap.server.limits.max_body_bytes);
            }
            let keep = Persist::new(head.info.keep_alive && !body_pending, head.info.version);
            let no_body = Bytes::new();
            let info = RequestInfo {
                head: &head,
                request_id: &request_id,
                peer: self.peer,
                received: SystemTime::now(),
                api: None,
                stage: None,
                route: None,
                body: &no_body,
                client_cert: None,
                api_key: None,
                authorizer: None,
                caller: None,
                hide_authorization: false,
                cache_fetch: false,
            };
            write_gateway_response(
                &mut self.out,
                snap.builtin_responses
                    .get(crate::gateway_response::ResponseType::MissingAuthenticationToken),
                None,
                Some(&info),
                &request_id,
                keep,
            );
            return Err(keep.keeps());
        }
        let (Some(api), Some(stage)) = (api, stage_name) else {
            return Err(false);
        };
        if rest.is_empty() || rest == "/" {
            return Ok(super::ws::Upgrade {
                head,
                api_id: api.id.clone(),
                stage: stage.to_owned(),
                snapshot: snap.clone(),
            });
        }
        // @connections (the `@` as is, or percent-encoded as the AWS
        // guide's own examples send it)
        let id = rest
            .strip_prefix("/@connections/")
            .or_else(|| rest.strip_prefix("/%40connections/"))
            .map(|id| crate::http::query::decode_path(id.as_bytes()).into_owned());
        let body = match self.read_body(&head, snap).await {
            Ok(b) => b,
            Err(BodyError::TooLarge) | Err(BodyError::Malformed(_)) | Err(BodyError::Gone) => {
                write_protocol_error(&mut self.out, 400, "Bad Request", &request_id);
                self.linger = linger_budget(head.info.body, snap.server.limits.max_body_bytes);
                return Err(false);
            }
        };
        let keep = Persist::new(
            head.info.keep_alive && !self.shard.draining.get(),
            head.info.version,
        );
        let Some(id) = id else {
            write_aws_error(
                &mut self.out,
                403,
                "MissingAuthenticationTokenException",
                "Missing Authentication Token",
                &request_id,
                keep,
            );
            return Err(keep.keeps());
        };
        let headers: Vec<(&[u8], &[u8])> = head.headers().collect();
        let parts = crate::auth::RequestParts::of(&head, &headers, &body);
        let allowed =
            crate::auth::authenticate(&snap.credentials, &parts, "execute-api", SystemTime::now())
                .is_ok_and(|c| c.permissions.manage_connections || c.permissions.admin);
        if !allowed {
            write_aws_error(
                &mut self.out,
                403,
                "ForbiddenException",
                "Forbidden",
                &request_id,
                keep,
            );
            return Err(keep.keeps());
        }
        let op = match head.method() {
            Method::Post => {
                if body.len() > snap.ws_limits.max_message_bytes {
                    write_aws_error(
                        &mut self.out,
                        413,
                        "PayloadTooLargeException",
                        "Payload too large",
                        &request_id,
                        keep,
                    );
                    return Err(keep.keeps());
                }
                crate::ws::ConnOp::Send(body.to_vec())
            }
            Method::Get => crate::ws::ConnOp::Get,
            Method::Delete => crate::ws::ConnOp::Delete,
            _ => {
                write_aws_error(
                    &mut self.out,
                    403,
                    "MissingAuthenticationTokenException",
                    "Missing Authentication Token",
                    &request_id,
                    keep,
                );
                return Err(keep.keeps());
            }
        };
        let reply = connection_call(&self.shard, &id, &api.id, stage, op).await;
        write_connection_reply(&mut self.out, &reply, &request_id, keep);
        Err(keep.keeps())
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut r = self.stream.write_all(&self.out).await;
        if let Some(body) = self.out_body.take() {
            if r.is_ok() {
                r = self.stream.write_all(&body).await;
            }
        }
        if r.is_ok() && self.stream.is_tls() {
            // rustls may hold records back until flushed.
            r = self.stream.flush().await;
        }
        self.out.clear();
        r
    }

    /// Phase 1: reads and parses one request head. Waits up to the idle
    /// timeout for its first byte, then up to the header timeout for the
    /// rest.
    async fn read_head(&mut self, snap: &Snapshot) -> HeadRead {
        let limits = &snap.server.limits;
        let mut deadline: Option<Instant> = None;
        loop {
            if !self.inbuf.is_empty() {
                match parse_head(&self.inbuf, &limits.head) {
                    Ok(Parsed::Complete(info, len)) => {
                        // A request without a body usually fills the
                        // buffer exactly: hand the buffer over whole
                        // (`split_to` allocates a shared header for the two
                        // halves; one of a proxied request's 16 allocations).
                        let raw = if len == self.inbuf.len() {
                            std::mem::take(&mut self.inbuf).freeze()
                        } else {
                            self.inbuf.split_to(len).freeze()
                        };
                        return HeadRead::Head(RequestHead::new(raw, info));
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => return HeadRead::Refused(e.status(), head_error_message(e)),
                }
                deadline.get_or_insert_with(|| {
                    self.shard.timers.coarse_now() + limits.header_read_timeout
                });
            }
            let until = deadline
                .unwrap_or_else(|| self.shard.idle_timers.coarse_now() + limits.idle_timeout);
            let shard = self.shard.clone();
            let idle = self.inbuf.is_empty();
            let reading = read_some(&mut self.stream, &shard.scratch, &mut self.inbuf);
            // An idle keep-alive connection also ends when the shard drains
            // (the idle timers all fire then).
            let read = if idle {
                if shard.draining.get() {
                    return HeadRead::Closed;
                }
                shard.idle_timers.deadline(until, reading).await
            } else {
                shard.timers.deadline(until, reading).await
            };
            match read {
                Some(Ok(0)) | Some(Err(_)) => return HeadRead::Closed,
                Some(Ok(_)) => {}
                None if self.inbuf.is_empty() => return HeadRead::Closed,
                None => return HeadRead::Refused(408, "Request Timeout"),
            }
        }
    }

    /// Reads the whole request body (bounded by `max_body_bytes`).
    async fn read_body(&mut self, head: &RequestHead, snap: &Snapshot) -> Result<Bytes, BodyError> {
        let limits = &snap.server.limits;
        // A declared length over the limit is refused before anything is
        // read, and before a 100 Continue invites the client to send it.
        if let BodyFraming::Length(n) = head.info.body {
            if n > limits.max_body_bytes {
                return Err(BodyError::TooLarge);
            }
        }
        if head.info.expect_continue && self.inbuf.is_empty() && head.info.body != BodyFraming::None
        {
            self.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
            self.flush().await.map_err(|_| BodyError::Gone)?;
        }
        match head.info.body {
            BodyFraming::None => Ok(Bytes::new()),
            BodyFraming::Length(n) => {
                let n = n as usize;
                while self.inbuf.len() < n {
                    // Memory follows the bytes that arrive, not the
                    // declared length: a client announcing 10 MB and
                    // sending nothing costs at most one step.
                    let missing = n - self.inbuf.len();
                    self.inbuf
                        .reserve(missing.min(BODY_STEP.max(self.inbuf.len())));
                    self.fill(limits.body_read_timeout).await?;
                }
                Ok(self.inbuf.split_to(n).freeze())
            }
            BodyFraming::Chunked => {
                let mut decoder = ChunkedDecoder::new();
                let mut body = BytesMut::new();
                loop {
                    let progress = decoder
                        .decode(&self.inbuf, &mut body)
                        .map_err(|e| BodyError::Malformed(e.reason()))?;
                    self.inbuf.advance(progress.consumed);
                    // A chunk size that takes the body over the limit is
                    // refused at once, not after its bytes were read.
                    if body.len() as u64 + decoder.pending_data() > limits.max_body_bytes {
                        return Err(BodyError::TooLarge);
                    }
                    if progress.done {
                        return Ok(body.freeze());
                    }
                    self.fill(limits.body_read_timeout).await?;
                }
            }
        }
    }

    async fn fill(&mut self, timeout: std::time::Duration) -> Result<(), BodyError> {
        let shard = self.shard.clone();
        let read = shard
            .timers
            .deadline(
                Instant::now() + timeout,
                read_some(&mut self.stream, &shard.scratch, &mut self.inbuf),
            )
            .await;
        match read {
            Some(Ok(n)) if n > 0 => Ok(()),
            _ => Err(BodyError::Gone),
        }
    }

    /// The phases of one request. Returns whether the connection stays open.
    /// Serves one request of a REST API, then counts and logs it.
    async fn serve_request(&mut self, snap: &Arc<Snapshot>, head: RequestHead) -> bool {
        let rid_buf = ids::new_request_id();
        let request_id = std::str::from_utf8(&rid_buf).unwrap_or("");
        // One clock read per request start: the wall-clock time is derived
        // from it (clock reads were ~4% of a MOCK request's CPU in `perf`).
        let started = Instant::now();
        let received = crate::http::response::wall_clock(started);
        self.rec = Record::default();
        let keep_alive = {
            let shard = self.shard.clone();
            let _in_flight = Gauge::up(&shard.in_flight);
            self.answer(snap, &head, request_id, received, started)
                .await
        };
        self.record(snap, &head, request_id, received, started);
        keep_alive
    }

    /// Metrics and the access-log line of the request just answered.
    fn record(
        &mut self,
        snap: &Snapshot,
        head: &RequestHead,
        request_id: &str,
        received: SystemTime,
        started: Instant,
    ) {
        let latency = started.elapsed();
        let rec = &self.rec;
        if snap.server.metrics {
            self.shard
                .metrics
                .borrow_mut()
                .request(&crate::metrics::Observation {
                    series: rec.series,
                    status: rec.status,
                    latency_ns: latency.as_nanos() as u64,
                    integration_ns: rec.integration_ns,
                    error: rec.error.as_ref().map(|e| e.kind),
                });
        }
        if !rec.logged {
            return;
        }
        let path = head.path();
        let located = snap.locate(head.host(), std::str::from_utf8(path).unwrap_or(""));
        let (Some(api), Some(stage)) = (located.api, located.stage) else {
            return;
        };
        let Some(log) = &stage.access_log else {
            return;
        };
        let resource_path = rec
            .method_id
            .and_then(|m| api.methods.get(m as usize))
            .map_or("", |m| api.resource(m.resource).path.as_str());
        let entry = crate::access_log::Entry {
            request_id,
            source_ip: self.peer.ip(),
            user_agent: head.header("user-agent"),
            api_key: head.header("x-api-key"),
            http_method: head.method().as_str(),
            resource_path,
            path,
            status: rec.status,
            response_length: rec.body_len,
            request_time: received,
            response_latency_ms: latency.as_millis() as u64,
            integration_latency_ms: rec.integration_ns.map(|ns| ns / 1_000_000),
            integration_status: rec.integration_status,
            error_message: rec.error.as_ref().map(|e| e.message.as_str()),
            error_type: rec.error.as_ref().map(|e| e.kind),
            validation_error: rec.error.as_ref().and_then(|e| e.validation.as_deref()),
            integration_error: rec.integration_error.as_deref(),
            stage: &stage.name,
            api_id: &api.id,
            domain_name: head.host().unwrap_or_default(),
            client_cert: self.client_cert.as_deref(),
            authorizer: rec.authorizer.as_deref(),
            caller: rec
                .caller
                .as_deref()
                .map(|name| (name, rec.caller_key.as_deref())),
        };
        self.shard.logs.borrow_mut().log(log, &entry);
    }

    async fn answer(
        &mut self,
        snap: &Arc<Snapshot>,
        head: &RequestHead,
        request_id: &str,
        received: SystemTime,
        started: Instant,
    ) -> bool {
        let no_body = Bytes::new();
        let mut body_pending = head.info.body != BodyFraming::None;
        let client_cert = self.client_cert.clone();

        // 2. API and stage: Host names the API; the first segment is the stage.
        let Ok(path) = std::str::from_utf8(head.path()) else {
            self.rec.status = 400;
            write_protocol_error(&mut self.out, 400, "Bad Request", request_id);
            return false;
        };
        let crate::snapshot::Located { api, stage, rest } = snap.locate(head.host(), path);
        if let Some(s) = stage {
            self.rec.series = s.metric_unmatched;
            self.rec.logged = s.access_log.is_some();
        }

        // 3. Route: resource by path, then method (explicit beats ANY).
        let mut captures = Captures::default();
        let route = match (api, stage) {
            (Some(api), Some(_)) => api.trie.lookup(rest, &mut captures).map(|rid| RouteMatch {
                resource: api.resource(rid),
                rest,
                captures,
            }),
            _ => None,
        };
        let method_id = route.and_then(|r| r.resource.method_for(head.method()));
        let mut info = RequestInfo {
            head,
            request_id,
            peer: self.peer,
            received,
            api,
            stage,
            route,
            body: &no_body,
            client_cert: client_cert.as_deref(),
            api_key: None,
            authorizer: None,
            caller: None,
            // A gateway bearer token (admin, cache invalidation) is the
            // gateway's secret: no integration sees it.
            hide_authorization: !snap.credentials.is_empty()
                && head.headers().any(|(n, v)| {
                    n.eq_ignore_ascii_case(b"authorization")
                        && crate::auth::is_gateway_bearer(&snap.credentials, v)
                }),
            cache_fetch: false,
        };
        let responses = stage.map_or(&snap.builtin_responses, |s| &s.responses);
        let (Some(api), Some(stage), Some(method_id)) = (api, stage, method_id) else {
            let err = GatewayError::new(
                ErrorKind::NoRoute,
                format!("no route for {} {path}", head.method().as_str()),
            );
            return self.fail(&info, responses, &err, body_pending);
        };
        let method = &api.methods[method_id as usize];
        self.rec.method_id = Some(method_id);
        if let Some(&series) = stage.metric_ids.get(method_id as usize) {
            self.rec.series = series;
        }
        let Some(integration) = method.integration.as_ref() else {
            let err = GatewayError::new(
                ErrorKind::NoIntegration,
                "Execution failed due to configuration error: No integration defined for method",
            );
            return self.fail(&info, responses, &err, body_pending);
        };

        // 4. Authorization (IAM, authorizers), before API keys as in API
        // Gateway; an IAM signature is verified once the body is read.
        // A Lambda authorizer is called (or its cached output used) here.
        let (iam_pending, authorized) =
            match super::authorize::check_head(snap, &info, stage, &method.auth) {
                Ok(super::authorize::Pending::Nothing) => (false, None),
                Ok(super::authorize::Pending::Signature) => (true, None),
                Ok(super::authorize::Pending::Authorized(out)) => {
                    let out = Arc::new(out);
                    if self.rec.logged {
                        self.rec.authorizer = Some(out.clone());
                    }
                    (false, Some(out))
                }
                Ok(super::authorize::Pending::Lambda {
                    authorizer,
                    endpoint,
                    identity,
                    policy_allows,
                }) => {
                    let shard = self.shard.clone();
                    let run = super::authorize::run_lambda(
                        &shard,
                        snap,
                        &info,
                        stage,
                        authorizer,
                        endpoint,
                        identity,
                        policy_allows,
                    );
                    let decision = Box::pin(run).await;
                    if self.rec.logged {
                        self.rec.authorizer = decision.output.clone();
                    }
                    match decision.refusal {
                        None => (false, decision.output),
                        Some(err) => {
                            // A denial's gateway response sees what the
                            // authorizer said (`$context.authorizer.*`).
                            let output = decision.output;
                            let info = RequestInfo {
                                authorizer: output.as_deref(),
                                ..info
                            };
                            return self.fail(&info, responses, &err, body_pending);
                        }
                    }
                }
                Err(err) => return self.fail(&info, responses, &err, body_pending),
            };
        info.authorizer = authorized.as_deref();
        // The API key: the client's `x-api-key`, or under
        // `x-amazon-apigateway-api-key-source: AUTHORIZER` the authorizer's
        // `usageIdentifierKey`.
        let presented_key = if api.api_keys_from_header {
            head.header("x-api-key")
        } else {
            authorized
                .as_ref()
                .and_then(|o| o.usage_key.as_deref())
                .map(str::as_bytes)
        };

        // An IAM signature covers the body: that is read and the signature
        // checked before admission, so that a forged signature (an access
        // key id is no secret) spends no key quota, throttle or permit.
        let early_body = if iam_pending {
            let b = match self.body_or_refusal(head, snap, &info, responses).await {
                Ok(b) => b,
                Err(keep_alive) => return keep_alive,
            };
            body_pending = false;
            match super::authorize::verify_iam(snap, &info, &b) {
                Ok(cred) => {
                    info.caller = Some(cred);
                    if self.rec.logged {
                        self.rec.caller = Some(cred.name.clone());
                        self.rec.caller_key = cred.access_key_id.clone();
                    }
                }
                Err(err) => return self.fail(&info, responses, &err, false),
            }
            Some(b)
        } else {
            None
        };

        // Admission: API key, usage plan, quota, method, stage and
        // account limits, then an in-flight permit, held until the answer
        // is produced.
        let (permit, key) = match admit(
            &self.shard,
            snap,
            api,
            stage,
            method_id,
            method.api_key_required,
            presented_key,
            started,
        ) {
            Ok(p) => p,
            Err(err) => return self.fail(&info, responses, &err, body_pending),
        };
        info.api_key = key;

        // 5–6. (validation, cache: later phases)

        // The body, now that the request is known to be routable.
        let body = match early_body {
            Some(b) => b,
            None => match self.body_or_refusal(head, snap, &info, responses).await {
                Ok(b) => b,
                Err(keep_alive) => return keep_alive,
            },
        };
        body_pending = false;
        info.body = &body;

        // A compressed body (`Content-Encoding: gzip` or `deflate`) where
        // the gateway reads it is decoded first, as API Gateway does: for
        // body validation, mapping templates and MOCK. One it cannot decode
        // is a 415. A proxied body is forwarded as sent, with its coding.
        let proxy = integration.kind == IntegrationKind::HttpProxy;
        let reads_body = !proxy || method.validator.as_ref().is_some_and(|v| v.checks_body());
        let decoded = if reads_body && !body.is_empty() {
            match crate::http::encoding::decode(
                head.header_values("content-encoding"),
                &body,
                snap.server.limits.max_body_bytes as usize,
            ) {
                Ok(d) => d.map(Bytes::from),
                Err(e) => {
                    let err = match e {
                        crate::http::encoding::DecodeError::TooLarge => GatewayError::new(
                            ErrorKind::BodyTooLarge,
                            "decoded request body over the limit",
                        ),
                        _ => GatewayError::new(
                            ErrorKind::UnsupportedMediaType,
                            "request body not in a supported content coding",
                        ),
                    };
                    return self.fail(&info, responses, &err, false);
                }
            }
        } else {
            None
        };
        let read_body = decoded.as_ref().unwrap_or(&body);
        if !proxy {
            info.body = read_body;
        }

        // 5. Method request validation: required parameters, then the body.
        if let Some(v) = &method.validator {
            let checked = RequestInfo {
                body: read_body,
                ..info
            };
            if let Err(invalid) = v.check(&checked) {
                return self.fail(&info, responses, &GatewayError::invalid(&invalid), false);
            }
        }

        // 6. Cache (GET by default, when the stage caches), then 7–10.
        // Integration request, call, integration response.
        let method_cache = stage
            .method_cache
            .get(method_id as usize)
            .and_then(Option::as_ref);
        // Futures of the less common paths are boxed where they are
        // awaited, so the request's own future (moved into its box for
        // every request) stays small: 14.8 KiB before, mostly the connect
        // and cache paths that a pooled proxy or MOCK request never takes.
        let produced = match (&stage.cache, method_cache) {
            (Some(sc), Some(mc))
                if (head.method() == Method::Get
                    || (head.method() != Method::Head && !mc.get_only))
                    // A range is a part: never stored as, nor served
                    // from, the whole (RFC 9111 §3.3).
                    && head.header("range").is_none() =>
            {
                match Box::pin(self.through_cache(
                    snap,
                    &info,
                    stage,
                    sc,
                    mc,
                    integration,
                    method_id,
                ))
                .await
                {
                    Ok(p) => p,
                    Err(err) => return self.fail(&info, responses, &err, body_pending),
                }
            }
            // MOCK needs no future at all.
            _ if integration.kind == IntegrationKind::Mock => {
                let started = Instant::now();
                let r = self.mock(&info, integration).map(Produced::Full);
                self.rec.integration_ns = Some(started.elapsed().as_nanos() as u64);
                r
            }
            _ => {
                self.integrate(snap, &info, stage, integration, method_id)
                    .await
            }
        };
        // Decided once the answer is ready: a drain that began while the
        // integration ran makes this the connection's last response, and
        // the client is told so (`Connection: close`).
        let keep_alive = Persist::new(
            head.info.keep_alive && !self.shard.draining.get(),
            head.info.version,
        );
        match produced {
            Ok(Produced::Full(reply)) => {
                self.write_reply(&info, &reply, keep_alive, !proxy);
                keep_alive.keeps()
            }
            Ok(Produced::Stream(s)) => {
                // The answer is produced: the request stops counting
                // against the in-flight limits, as a buffered answer does
                // before the client has read it. Held while the client
                // reads, 80 slow readers of a 5 MB answer held all 64
                // permits of `max_concurrent = 64` and every other client
                // got 429.
                drop(permit);
                let settings = snap.upstream;
                Box::pin(self.stream_body(
                    &info, s.status, &s.headers, s.first, s.resp, s.timeout, keep_alive, &settings,
                    !proxy,
                ))
                .await
            }
            Err(err) => self.fail(&info, responses, &err, body_pending),
        }
    }

    /// The request's body; or the refusal written (413, or 400 for a
    /// malformed body) and whether the connection stays open.
    async fn body_or_refusal(
        &mut self,
        head: &RequestHead,
        snap: &Snapshot,
        info: &RequestInfo<'_>,
        responses: &StageResponses,
    ) -> Result<Bytes, bool> {
        match self.read_body(head, snap).await {
            Ok(b) => Ok(b),
            Err(BodyError::TooLarge) => {
                let err = GatewayError::new(ErrorKind::BodyTooLarge, "request body over the limit");
                Err(self.fail(info, responses, &err, true))
            }
            Err(BodyError::Malformed(why)) => {
                self.rec.status = 400;
                write_protocol_error(&mut self.out, 400, why, info.request_id);
                self.linger = linger_budget(head.info.body, snap.server.limits.max_body_bytes);
                Err(false)
            }
            Err(BodyError::Gone) => Err(false),
        }
    }

    /// Runs the integration and returns what it produced.
    async fn integrate(
        &mut self,
        snap: &Snapshot,
        info: &RequestInfo<'_>,
        stage: &crate::snapshot::Stage,
        integration: &crate::snapshot::Integration,
        method_id: u32,
    ) -> Result<Produced, GatewayError> {
        let started = Instant::now();
        let r = self
            .run_integration(snap, info, stage, integration, method_id, started)
            .await;
        self.rec.integration_ns = Some(started.elapsed().as_nanos() as u64);
        r
    }

    async fn run_integration(
        &mut self,
        snap: &Snapshot,
        info: &RequestInfo<'_>,
        stage: &crate::snapshot::Stage,
        integration: &crate::snapshot::Integration,
        method_id: u32,
        started: Instant,
    ) -> Result<Produced, GatewayError> {
        match &integration.kind {
            IntegrationKind::Mock => self.mock(info, integration).map(Produced::Full),
            IntegrationKind::Http | IntegrationKind::HttpProxy => {
                let proxy = integration.kind == IntegrationKind::HttpProxy;
                match &stage.bindings[method_id as usize] {
                    Binding::Upstream(binding) => {
                        self.call_backend(snap, info, integration, binding, proxy, started)
                            .await
                    }
                    Binding::Invalid(why) => {
                        Err(GatewayError::new(ErrorKind::BadIntegrationUri, why.clone()))
                    }
                    Binding::None => Err(GatewayError::new(
                        ErrorKind::NoIntegration,
                        "no backend bound",
                    )),
                }
            }
            IntegrationKind::Unsupported(why) => Err(GatewayError::new(
                ErrorKind::UnsupportedIntegration,
                why.clone(),
            )),
        }
    }

    /// Phase 6: serves from this shard's cache partition, coalesces
    /// concurrent misses, and handles `Cache-Control: max-age=0`.
    #[allow(clippy::too_many_arguments)]
    async fn through_cache(
        &mut self,
        snap: &Snapshot,
        info: &RequestInfo<'_>,
        stage: &crate::snapshot::Stage,
        sc: &crate::cache::StageCache,
        mc: &crate::cache::MethodCache,
        integration: &crate::snapshot::Integration,
        method_id: u32,
    ) -> Result<Result<Produced, GatewayError>, GatewayError> {
        let key = cache_key(info, sc, mc);
        let mut warning = false;
        let mut hide_authorization = false;
        let invalidate = if wants_invalidation(info.head) {
            let authorized = may_invalidate(snap, info);
            // The gateway's own credential stays with the gateway.
            hide_authorization = authorized;
            if !sc.require_authorization || authorized {
                true
            } else {
                match sc.unauthorized {
                    crate::cache::UnauthorizedStrategy::FailWith403 => {
                        return Err(GatewayError::new(
                            ErrorKind::InvalidateNotAllowed,
                            "Cache-Control: max-age=0 from a client not allowed to invalidate",
                        ))
                    }
                    crate::cache::UnauthorizedStrategy::SucceedWithResponseHeader => {
                        warning = true;
                        false
                    }
                    crate::cache::UnauthorizedStrategy::SucceedWithoutResponseHeader => false,
                }
            }
        } else {
            false
        };
        let shards = self.shard.shards;
        let usable = |e: &crate::cache::Entry| e.varies_with(|name| joined_header(info.head, name));
        if !invalidate {
            let now = crate::limit::clock_ns();
            // Another request may be fetching this key: then a miss now is
            // not counted, the look after the wait is.
            let waiting = self.shard.pending.borrow().get(&key).cloned();
            if let Some(hit) = self.shard.cache.borrow_mut().lookup(
                sc,
                shards,
                &key,
                now,
                usable,
                waiting.is_none(),
            ) {
                return Ok(Ok(Produced::Full(Reply::from_entry(&hit, warning))));
            }
            // Another request is fetching this key: wait for it (bounded),
            // then look again; if it is still missing, fetch ourselves.
            if let Some(sem) = waiting {
                let wait = integration.timeout.min(std::time::Duration::from_secs(10));
                let _ = self
                    .shard
                    .timers
                    .deadline(Instant::now() + wait, sem.acquire(1))
                    .await;
                let now = crate::limit::clock_ns();
                if let Some(hit) = self
                    .shard
                    .cache
                    .borrow_mut()
                    .get(sc, shards, &key, now, usable)
                {
                    return Ok(Ok(Produced::Full(Reply::from_entry(&hit, warning))));
                }
            }
        }
        let _leader = Pending::claim(&self.shard, &key);
        let started = crate::limit::clock_ns();
        let mut fetch = *info;
        fetch.hide_authorization |= hide_authorization;
        fetch.cache_fetch = true;
        let produced = self
            .integrate(snap, &fetch, stage, integration, method_id)
            .await;
        let expires = started + mc.ttl.as_nanos() as u64;
        let entry = match &produced {
            Ok(Produced::Full(reply)) => reply.cache_entry(info.head, started, expires),
            _ => None,
        };
        // An invalidation whose fresh answer is not cached leaves a
        // tombstone: the old entry must not outlive it, nor an older fetch
        // still under way store its answer afterwards.
        let entry = match entry {
            None if invalidate => Some(std::sync::Arc::new(crate::cache::Entry::tombstone(
                started, expires,
            ))),
            e => e,
        };
        if let Some(entry) = &entry {
            self.shard
                .cache
                .borrow_mut()
                .insert(sc, shards, key.clone(), entry.clone());
        }
        if let (true, Some(entry)) = (invalidate, entry) {
            // Every shard stores the fresh entry (or the tombstone) before
            // we answer.
            let publisher = self.shard.publisher.clone();
            let seq = publisher.post(
                crate::publish::ShardMsg::CacheReplace {
                    uid: sc.uid.clone(),
                    key,
                    entry,
                },
                Some(self.shard.index),
            );
            let until = Instant::now() + std::time::Duration::from_secs(2);
            while !publisher.delivered(seq, Some(self.shard.index)) && Instant::now() < until {
                glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
            }
        }
        Ok(produced)
    }

    /// Every failure ends here: the stage's gateway response for the kind.
    fn fail(
        &mut self,
        info: &RequestInfo<'_>,
        responses: &StageResponses,
        err: &GatewayError,
        body_pending: bool,
    ) -> bool {
        match err.side {
            Side::Upstream | Side::Config => self.shard.log_failure(info.request_id, err),
            Side::Downstream => {
                tracing::debug!(
                    request_id = info.request_id,
                    error_type = err.response_type().name(),
                    error = %err,
                    "request refused"
                )
            }
        }
        // An unread body would be parsed as the next request: it is dropped
        // when it has already arrived whole (the usual small body sent
        // with its head), else the connection closes.
        let body_pending = body_pending
            && match info.head.info.body {
                BodyFraming::Length(n) if self.inbuf.len() as u64 >= n => {
                    self.inbuf.advance(n as usize);
                    false
                }
                _ => true,
            };
        if body_pending {
            self.linger = linger_budget(
                info.head.info.body,
                self.shard.snapshot().server.limits.max_body_bytes,
            );
        }
        let keep_alive = Persist::new(
            info.head.info.keep_alive && !body_pending && !self.shard.draining.get(),
            info.head.info.version,
        );
        let rendered = responses.get(err.response_type());
        let body_len = write_gateway_response(
            &mut self.out,
            rendered,
            Some(err),
            Some(info),
            info.request_id,
            keep_alive,
        );
        self.rec.status = rendered.status;
        self.rec.body_len = body_len as u64;
        // The message is kept only for an access log (no allocation per
        // refused request otherwise).
        let logged = info.stage.is_some_and(|s| s.access_log.is_some());
        self.rec.error = Some(Failure {
            kind: err.response_type(),
            message: if logged {
                err.message().unwrap_or_default().to_owned()
            } else {
                String::new()
            },
            validation: if logged { err.validation.clone() } else { None },
        });
        if logged && err.side == Side::Upstream {
            self.rec.integration_error = Some(err.detail.to_string());
        }
        keep_alive.keeps()
    }

    /// A MOCK integration: status from the request template, then the
    /// selected integration response.
    fn mock(
        &mut self,
        info: &RequestInfo<'_>,
        integration: &crate::snapshot::Integration,
    ) -> Result<Reply, GatewayError> {
        // What templates see of the request is built at most once, and only
        // for a template that reads it (plain-text ones, the common MOCK
        // case, do not).
        let data = std::cell::OnceCell::new();
        let (status, request_overrides) = mock_status(info, &data, integration)?;
        let response = select_response(integration, status)?;
        // A MOCK has no integration response body: templates see an empty one.
        let (content_type, body, overrides) =
            match select_template(&response.templates, info.head.header("accept")) {
                Some((ct, t)) if t.is_empty() => (ct.clone(), Bytes::new(), Default::default()),
                // Plain text: the template's own bytes, shared, not copied.
                Some((ct, t)) if let Some(text) = t.static_bytes() => {
                    (ct.clone(), text, Default::default())
                }
                Some((ct, t)) => {
                    let data = data.get_or_init(|| TemplateData::new(info));
                    let r = render_template(t, &data.input(b"", info))?;
                    (ct.clone(), Bytes::from(r.body.into_bytes()), r.overrides)
                }
                None => (
                    "application/json".to_owned(),
                    Bytes::new(),
                    Default::default(),
                ),
            };
        // `CONVERT_TO_BINARY` on the response: the template's text is
        // base64 (a favicon or pixel served from a MOCK). Without it the
        // text goes as it is, whatever the client accepts (API Gateway
        // would decode for a binary Accept too, and fails 500 for MOCKs
        // under `*/*`; see docs/templates.md).
        let body = match response.content_handling {
            Some(crate::snapshot::ContentHandling::ConvertToBinary) => {
                integration::convert(&body, Conversion::Decode)?.unwrap_or(body)
            }
            _ => body,
        };
        let mut headers: Vec<(String, String)> = response
            .headers
            .iter()
            .filter_map(|(name, src)| {
                eval_response_source(src, info, &|_, _| None, b"")
                    .map(|v| (name.clone(), clean(&v)))
            })
            .collect();
        apply_response_overrides(&mut headers, &request_overrides);
        apply_response_overrides(&mut headers, &overrides);
        Ok(Reply {
            status: overrides
                .status
                .or(request_overrides.status)
                .unwrap_or(response.status),
            content_type: Some(content_type),
            headers: Headers::Owned(headers),
            body,
            head_length: None,
        })
    }

    /// Writes a whole response; `echo_trace`: with the request's
    /// `X-Amzn-Trace-Id` ([`trace_header`]).
    fn write_reply(
        &mut self,
        info: &RequestInfo<'_>,
        reply: &Reply,
        keep_alive: Persist,
        echo_trace: bool,
    ) {
        let head_only = info.head.method() == Method::Head;
        self.rec.status = reply.status;
        self.rec.body_len = if head_only {
            0
        } else {
            reply.body.len() as u64
        };
        if let (true, Some(len)) = (head_only, &reply.head_length) {
            // HEAD through a proxy: the backend's Content-Length describes
            // the GET body, and so does the `Vary` it would get.
            let get_len = len
                .as_deref()
                .and_then(|l| l.parse::<usize>().ok())
                .unwrap_or(usize::MAX);
            let compress =
                compression(info, reply.status, get_len, reply.headers.iter()).without_body();
            write_status_line(&mut self.out, reply.status);
            write_common_headers(&mut self.out, info.request_id, keep_alive);
            for (n, v) in compress.headers(reply.headers.iter(), None) {
                write_header(&mut self.out, n, v);
            }
            if let Some(len) = len {
                write_header(&mut self.out, b"Content-Length", len.as_bytes());
            }
            self.out.extend_from_slice(b"\r\n");
            return;
        }
        let compress = if reply.status == 204 || reply.status == 304 {
            Compress::default()
        } else {
            compression(info, reply.status, reply.body.len(), reply.headers.iter())
        };
        // HEAD: the headers of the GET (RFC 9110 §9.3.2), `Vary` included,
        // with no body to encode.
        let compress = if head_only {
            compress.without_body()
        } else {
            compress
        };
        let compressed;
        let body = match compress.coding {
            Some(c) => {
                compressed = Bytes::from(crate::http::encoding::compress(c, &reply.body));
                self.rec.body_len = compressed.len() as u64;
                &compressed
            }
            None => &reply.body,
        };
        // A large body is written from its own buffer after the head: a
        // second write costs less than copying it (64 KiB responses).
        let separate =
            !head_only && body.len() >= SEPARATE_BODY && reply.status != 204 && reply.status != 304;
        let weak = compress.weak_etag(reply.headers.iter());
        let trace = trace_header(info, echo_trace, reply.headers.iter());
        write_full_response(
            &mut self.out,
            reply.status,
            reply.content_type.as_deref().map(str::as_bytes),
            compress
                .headers(reply.headers.iter(), weak.as_deref())
                .chain(
                    trace
                        .as_ref()
                        .map(|t| (&b"X-Amzn-Trace-Id"[..], t.as_bytes())),
                ),
            body,
            info.request_id,
            keep_alive,
            head_only || separate,
        );
        if separate {
            self.out_body = Some(body.clone());
        }
    }

    /// HTTP and HTTP_PROXY integrations: build the backend request, send it
    /// over a pooled connection, map the response back.
    async fn call_backend(
        &mut self,
        snap: &Snapshot,
        info: &RequestInfo<'_>,
        integration: &crate::snapshot::Integration,
        binding: &crate::snapshot::UpstreamBinding,
        proxy: bool,
        started: Instant,
    ) -> Result<Produced, GatewayError> {
        // Mapping templates (non-proxy integrations only): built on demand,
        // so requests through routes without templates pay nothing.
        let has_templates = !proxy
            && (!integration.request_templates.is_empty()
                || integration
                    .responses
                    .iter()
                    .any(|r| !r.templates.is_empty()));
        let data = has_templates.then(|| TemplateData::new(info));
        let mut request_overrides = crate::vtl::Overrides::default();
        let mut transformed: Option<Bytes> = None;
        let binary_types = info.api.map(|a| &a.binary_media_types);
        let is_binary = |ct: Option<&[u8]>| {
            binary_types.is_some_and(|b| !b.is_empty() && b.matches(&integration::media_type(ct)))
        };
        if !proxy {
            // Binary bodies (the API's binary media types) pass through
            // untouched unless CONVERT_TO_TEXT makes them base64 text;
            // CONVERT_TO_BINARY decodes a text body (after its template).
            let binary_in = is_binary(info.head.header("content-type"));
            let conversion =
                integration::request_conversion(binary_in, integration.content_handling);
            let text_body = match conversion {
                Conversion::Encode => integration::convert(info.body, conversion)?,
                _ => None,
            };
            // Passthrough rules (415), then the request template.
            if let Some(t) =
                integration::request_template(integration, info.head.header("content-type"))?
            {
                if let (Some(data), false) = (&data, binary_in && text_body.is_none()) {
                    let input = text_body.as_ref().unwrap_or(info.body);
                    let r = render_template(t, &data.input(input, info))?;
                    request_overrides = r.overrides;
                    transformed = Some(Bytes::from(r.body));
                }
            }
            if transformed.is_none() {
                transformed = text_body;
            }
            if conversion == Conversion::Decode {
                let text = transformed.as_ref().unwrap_or(info.body);
                transformed = integration::convert(text, conversion)?;
            }
        }
        let target = snap
            .targets
            .get(binding.target as usize)
            .ok_or_else(|| GatewayError::new(ErrorKind::BadIntegrationUri, "unknown backend"))?;
        let addrs = self.shard.addresses(target)?;
        let tls = upstream::TlsTo::for_target(snap, target)?;
        let sent_body = transformed.as_ref().unwrap_or(info.body);
        // The request is built in the connection's output buffer, empty
        // until the response is written into it: one allocation for both.
        let mut request = if self.out.is_empty() {
            std::mem::take(&mut self.out)
        } else {
            Vec::new()
        };
        request.reserve(512 + sent_body.len());
        let method = build_upstream_request(
            info,
            sent_body,
            integration,
            binding,
            proxy,
            self.shard.local_port,
            &request_overrides,
            &mut request,
        );
        // timeoutInMillis counts from the integration's start.
        let deadline = started + integration.timeout;
        let settings = snap.upstream;
        let resp = upstream::send(
            &self.shard.pool,
            &self.shard.scratch,
            &self.shard.timers,
            &settings,
            &addrs,
            tls,
            &request,
            method.is_idempotent(),
            method == Method::Head,
            deadline,
        )
        .await;
        if self.out.is_empty() {
            request.clear();
            self.out = request;
        }
        let mut resp = resp?;
        self.rec.integration_status = Some(resp.head.status);

        // Integration response: status and headers.
        let client_head_only = info.head.method() == Method::Head;
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut backend_headers = false;
        let mut status;
        let selected = if proxy {
            None
        } else {
            Some(select_response(integration, resp.head.status)?)
        };
        // Content handling: from the backend's content type and the
        // client's first Accept type.
        let conversion = match selected {
            Some(s) if !proxy => integration::response_conversion(
                is_binary(resp.header("content-type")),
                is_binary(info.head.header("accept")),
                s.content_handling,
            ),
            _ => Conversion::None,
        };
        let binary_out = match conversion {
            Conversion::Decode => true,
            Conversion::Encode => false,
            Conversion::None => !proxy && is_binary(resp.header("content-type")),
        };
        // A response template needs the whole body (up to the body limit);
        // a binary result never goes through one.
        let template = selected.filter(|_| !binary_out).and_then(|s| {
            select_template(&s.templates, info.head.header("accept")).filter(|(_, t)| !t.is_empty())
        });
        let buffer_limit = if template.is_some() || conversion != Conversion::None {
            snap.server.limits.max_body_bytes as usize
        } else if info.cache_fetch {
            settings
                .buffer_response_bytes
                .max(crate::cache::MAX_ENTRY_BYTES)
        } else {
            settings.buffer_response_bytes
        };
        let mut buffered = resp
            .buffer_body(
                &self.shard.scratch,
                &self.shard.timers,
                buffer_limit,
                deadline,
            )
            .await?;
        if (template.is_some() || conversion != Conversion::None)
            && matches!(buffered, Buffered::Partial(_))
        {
            return Err(GatewayError::new(
                ErrorKind::TemplateFailed,
                "integration response larger than the body limit for a mapping template or content conversion",
            ));
        }
        if let Buffered::Complete(body) = &buffered {
            if let Some(converted) = integration::convert(body, conversion)? {
                buffered = Buffered::Complete(converted);
            }
        }
        if proxy {
            status = resp.head.status;
            // Written from the backend's head as it is (hop-by-hop headers
            // and Date left out then): no copy per header. Measured: the
            // two `String`s per header were ~4 of the 16 allocations of a
            // proxied request.
            backend_headers = true;
        } else if let Some(selected) = selected {
            status = selected.status;
            let body_so_far: &[u8] = match &buffered {
                Buffered::Complete(b) => b,
                Buffered::Partial(b) => b,
            };
            // The last value, or all of them joined (multivalueheader).
            let upstream_header = |n: &str, all: bool| {
                if !all {
                    return resp
                        .header(n)
                        .map(|v| String::from_utf8_lossy(v).into_owned());
                }
                let values: Vec<_> = resp
                    .headers()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(n.as_bytes()))
                    .map(|(_, v)| String::from_utf8_lossy(v))
                    .collect();
                (!values.is_empty()).then(|| values.join(","))
            };
            let ct = resp
                .header("content-type")
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_else(|| "application/json".to_owned());
            headers.push(("Content-Type".to_owned(), ct));
            // A mapped Content-Type stands even when a template renders
            // (how a non-proxy method answers HTML or XML).
            let mut type_mapped = false;
            for (name, src) in &selected.headers {
                if let Some(v) = eval_response_source(src, info, &upstream_header, body_so_far) {
                    type_mapped |= name.eq_ignore_ascii_case("content-type");
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    headers.push((name.clone(), clean(&v)));
                }
            }
            apply_response_overrides(&mut headers, &request_overrides);
            if let (Some((ct, t)), Some(data), Buffered::Complete(body)) =
                (template, &data, &buffered)
            {
                let r = integration::render_response_template(t, &data.input(body, info))?;
                if !type_mapped {
                    headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
                    headers.push(("Content-Type".to_owned(), ct.clone()));
                }
                apply_response_overrides(&mut headers, &r.overrides);
                if let Some(s) = r.overrides.status.or(request_overrides.status) {
                    status = s;
                }
                buffered = Buffered::Complete(Bytes::from(r.body));
            } else if let Some(s) = request_overrides.status {
                status = s;
            }
        } else {
            status = resp.head.status;
        }

        // HEAD through a proxy: the backend's Content-Length describes the
        // GET body.
        let head_length = if client_head_only && proxy {
            Some(
                resp.header("content-length")
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
            )
        } else {
            None
        };
        let headers = if backend_headers {
            // API Gateway always answers with a Content-Type: a backend
            // response without one gets `application/json`.
            let typed = matches!(status, 204 | 304) || resp.head.has_content_type;
            Headers::Backend {
                raw: resp.raw_head.clone(),
                spans: std::mem::take(&mut resp.head.headers),
                add_json_type: !typed,
            }
        } else {
            Headers::Owned(headers)
        };
        match buffered {
            Buffered::Complete(body) => {
                resp.release(&self.shard.pool, &settings);
                Ok(Produced::Full(Reply {
                    status,
                    content_type: None,
                    headers,
                    body,
                    head_length,
                }))
            }
            Buffered::Partial(first) => Ok(Produced::Stream(Streamed {
                status,
                headers,
                first,
                resp,
                timeout: integration.timeout,
            })),
        }
    }

    /// Streams a large backend body to the client. Once the head is out,
    /// a backend failure can only cut the connection.
    #[allow(clippy::too_many_arguments)]
    async fn stream_body(
        &mut self,
        info: &RequestInfo<'_>,
        status: u16,
        headers: &Headers,
        first: BytesMut,
        mut resp: Box<UpstreamResponse>,
        read_timeout: std::time::Duration,
        mut keep_alive: Persist,
        settings: &crate::snapshot::UpstreamSettings,
        echo_trace: bool,
    ) -> bool {
        let known_len = match resp.head.framing {
            crate::http::response::ResponseFraming::Length(n) => Some(n),
            _ => None,
        };
        // A HEAD whose integration GETs a large body (a non-proxy method):
        // the head of the answer only (RFC 9110 §9.3.2), the backend's
        // length if it gave one; the body is left unread and its
        // connection closed.
        let head_only = info.head.method() == Method::Head;
        // Compressed as it streams (a length not known counts as large:
        // the body is streamed because it is); its length is then unknown.
        let compress = compression(
            info,
            status,
            known_len.map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX)),
            headers.iter(),
        );
        let compress = if head_only {
            compress.without_body()
        } else {
            compress
        };
        let mut encoder = compress.coding.map(crate::http::encoding::Encoder::new);
        let known_len = known_len.filter(|_| encoder.is_none());
        let chunked =
            known_len.is_none() && info.head.info.version == Version::Http11 && !head_only;
        if known_len.is_none() && !chunked && !head_only {
            // An HTTP/1.0 client: the body ends when we close.
            keep_alive = Persist::Close;
        }
        self.rec.status = status;
        write_status_line(&mut self.out, status);
        write_common_headers(&mut self.out, info.request_id, keep_alive);
        let weak = compress.weak_etag(headers.iter());
        for (n, v) in compress.headers(headers.iter(), weak.as_deref()) {
            write_header(&mut self.out, n, v);
        }
        if let Some(t) = trace_header(info, echo_trace, headers.iter()) {
            write_header(&mut self.out, b"X-Amzn-Trace-Id", t.as_bytes());
        }
        match known_len {
            Some(n) => write_content_length(&mut self.out, n),
            None if chunked => self
                .out
                .extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
            None => {}
        }
        self.out.extend_from_slice(b"\r\n");
        if head_only {
            drop(resp);
            return self.flush().await.is_ok() && keep_alive.keeps();
        }
        self.push_encoded(encoder.as_mut(), &first, chunked);
        drop(first);
        if self.flush().await.is_err() {
            return false;
        }
        loop {
            match resp
                .next_chunk(
                    &self.shard.scratch,
                    &self.shard.timers,
                    Instant::now() + read_timeout,
                )
                .await
            {
                Ok(Some(chunk)) => {
                    self.push_encoded(encoder.as_mut(), &chunk, chunked);
                    if self.flush().await.is_err() {
                        return false;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    // The status is sent; the client sees the connection
                    // close before the body's end.
                    self.shard.log_failure(info.request_id, &e);
                    if info.stage.is_some_and(|s| s.access_log.is_some()) {
                        self.rec.integration_error = Some(e.detail.to_string());
                    }
                    return false;
                }
            }
        }
        if let Some(e) = encoder {
            self.push_body(&e.finish(), chunked);
        }
        if chunked {
            self.out.extend_from_slice(LAST_CHUNK);
        }
        resp.release(&self.shard.pool, settings);
        keep_alive.keeps()
    }

    /// `data` through the encoder of a compressed stream, if any.
    fn push_encoded(
        &mut self,
        encoder: Option<&mut crate::http::encoding::Encoder>,
        data: &[u8],
        chunked: bool,
    ) {
        match encoder {
            Some(e) => {
                let compressed = e.push(data);
                self.push_body(&compressed, chunked);
            }
            None => self.push_body(data, chunked),
        }
    }

    fn push_body(&mut self, data: &[u8], chunked: bool) {
        if data.is_empty() {
            return;
        }
        self.rec.body_len += data.len() as u64;
        if chunked {
            write_chunk_header(&mut self.out, data.len());
            self.out.extend_from_slice(data);
            self.out.extend_from_slice(b"\r\n");
        } else {
            self.out.extend_from_slice(data);
        }
    }
}

/// Phase 4. Order as API Gateway: key, usage-plan throttle, quota,
/// method, stage, account; then the in-flight cap. All local integer
/// arithmetic unless a lease runs out.
#[allow(clippy::too_many_arguments)]
fn admit<'s>(
    shard: &Rc<Shard>,
    snap: &'s Snapshot,
    api: &crate::snapshot::Api,
    stage: &'s crate::snapshot::Stage,
    method_id: u32,
    key_required: bool,
    presented_key: Option<&[u8]>,
    started: Instant,
) -> Result<(Permit<'s>, Option<&'s crate::snapshot::KeyPlan>), GatewayError> {
    let t = &snap.throttling;
    let now = crate::limit::clock_ns_at(started);
    let throttled = |what: &'static str| GatewayError::new(ErrorKind::Throttled, what);
    let Ok(mut limits) = shard.limits.try_borrow_mut() else {
        return Err(throttled("limiter busy"));
    };
    let mut key = None;
    if key_required {
        let plan = presented_key
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| t.keys.get(k))
            .and_then(|plans| plans.iter().find(|p| p.covers(&api.id, &stage.name)))
            .ok_or_else(|| {
                GatewayError::new(
                    ErrorKind::InvalidApiKey,
                    "missing, unknown or unassociated API key",
                )
            })?;
        key = Some(plan);
        if let Some(b) = &plan.throttle {
            if !limits.admit(b.id, &b.shared, b.lease, now) {
                return Err(throttled("Key throttle limit exceeded for the usage plan"));
            }
        }
        if let Some(q) = &plan.quota {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if !limits.admit_quota(q.id, &q.pool, q.block, secs) {
                return Err(GatewayError::new(
                    ErrorKind::QuotaExceeded,
                    "Key quota exhausted for the usage plan",
                ));
            }
        }
    }
    if let Some(Some(b)) = stage.method_throttles.get(method_id as usize) {
        if !limits.admit(b.id, &b.shared, b.lease, now) {
            return Err(throttled("method throttle"));
        }
    }
    if let Some(b) = &stage.throttle {
        if !limits.admit(b.id, &b.shared, b.lease, now) {
            return Err(throttled("stage throttle"));
        }
    }
    let a = &t.account;
    if !limits.admit(a.id, &a.shared, a.lease, now) {
        return Err(throttled("account rate"));
    }
    if !limits.permits.acquire(&t.permits, t.permit_block) {
        return Err(throttled("account concurrency"));
    }
    Ok((
        Permit {
            shard: shard.clone(),
            shared: &t.permits,
            block: t.permit_block,
        },
        key,
    ))
}

/// An `@connections` operation: done here if this shard owns the
/// connection, else handed to the owner and awaited.
async fn connection_call(
    shard: &Rc<Shard>,
    id: &str,
    api: &str,
    stage: &str,
    op: crate::ws::ConnOp,
) -> crate::ws::ConnReply {
    let Some(owner) = crate::ws::shard_of(id) else {
        return crate::ws::ConnReply::Gone;
    };
    if owner == shard.index {
        return super::ws::connection_op(shard, id, api, stage, op);
    }
    let reply = Arc::new(crate::ws::ReplySlot::default());
    let msg = crate::publish::ShardMsg::Connection {
        id: id.to_owned(),
        api: api.to_owned(),
        stage: stage.to_owned(),
        op,
        reply: reply.clone(),
    };
    if !shard.publisher.post_to(owner, msg) {
        return crate::ws::ConnReply::Gone;
    }
    let until = Instant::now() + std::time::Duration::from_secs(2);
    while Instant::now() < until {
        if let Some(r) = reply.0.get() {
            return r.clone();
        }
        glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
    }
    crate::ws::ConnReply::Gone
}

/// The `@connections` answer in API Gateway's shapes.
pub fn connection_reply_parts(reply: &crate::ws::ConnReply) -> (u16, Option<&'static str>, String) {
    use crate::ws::ConnReply;
    match reply {
        ConnReply::Sent => (200, None, String::new()),
        ConnReply::Deleted => (204, None, String::new()),
        ConnReply::Info {
            connected_at,
            last_active_at,
            source_ip,
            user_agent,
        } => (
            200,
            None,
            serde_json::json!({
                "connectedAt": crate::ws::iso8601(*connected_at),
                "identity": {"sourceIp": source_ip, "userAgent": user_agent},
                "lastActiveAt": crate::ws::iso8601(*last_active_at),
            })
            .to_string(),
        ),
        ConnReply::Gone => (
            410,
            Some("GoneException"),
            "{\"message\":\"Gone\"}".to_owned(),
        ),
        ConnReply::LimitExceeded => (
            429,
            Some("LimitExceededException"),
            "{\"message\":\"Limit exceeded: the client is not reading\"}".to_owned(),
        ),
    }
}

fn write_connection_reply(
    out: &mut Vec<u8>,
    reply: &crate::ws::ConnReply,
    request_id: &str,
    keep: Persist,
) {
    let (status, error_type, body) = connection_reply_parts(reply);
    write_status_line(out, status);
    write_common_headers(out, request_id, keep);
    if let Some(t) = error_type {
        write_header(out, b"x-amzn-ErrorType", t.as_bytes());
    }
    if !body.is_empty() {
        write_header(out, b"Content-Type", b"application/json");
    }
    if status != 204 {
        write_content_length(out, body.len() as u64);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

fn write_aws_error(
    out: &mut Vec<u8>,
    status: u16,
    error_type: &str,
    message: &str,
    request_id: &str,
    keep: Persist,
) {
    let body = serde_json::json!({ "message": message }).to_string();
    write_status_line(out, status);
    write_common_headers(out, request_id, keep);
    write_header(out, b"x-amzn-ErrorType", error_type.as_bytes());
    write_header(out, b"Content-Type", b"application/json");
    write_content_length(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

/// A header line's name and value.
type Header<'a> = (&'a [u8], &'a [u8]);

/// What response compression does to one response.
#[derive(Clone, Copy, Default)]
struct Compress {
    /// The coding to compress with.
    coding: Option<crate::http::encoding::Coding>,
    /// `Vary: Accept-Encoding` is to be added: the response is compressed
    /// for clients that ask (this one or not), and does not say so yet.
    vary: bool,
}

impl Compress {
    /// The same decision for an answer without a body (HEAD): its `Vary`,
    /// no coding.
    fn without_body(self) -> Compress {
        Compress {
            coding: None,
            ..self
        }
    }

    /// The weak form of a strong `ETag` among `headers`, when the body is
    /// compressed: its bytes are no longer the ones the strong validator
    /// names (RFC 9110 §8.8.1; NGINX's gzip does the same).
    fn weak_etag<'h>(&self, mut headers: impl Iterator<Item = Header<'h>>) -> Option<Vec<u8>> {
        self.coding?;
        let (_, v) = headers.find(|(n, _)| n.eq_ignore_ascii_case(b"etag"))?;
        if v.starts_with(b"W/") {
            return None;
        }
        let mut weak = b"W/".to_vec();
        weak.extend_from_slice(v);
        Some(weak)
    }

    /// The response's `headers` as they go out: the `ETag` replaced by
    /// `weak` (from [`Compress::weak_etag`]), then `Content-Encoding` and
    /// `Vary` as needed.
    fn headers<'h>(
        self,
        headers: impl Iterator<Item = Header<'h>>,
        weak: Option<&'h [u8]>,
    ) -> impl Iterator<Item = Header<'h>> {
        let encoding: Option<Header<'h>> =
            self.coding.map(|c| (&b"Content-Encoding"[..], c.name()));
        let vary: Option<Header<'h>> = self.vary.then_some((&b"Vary"[..], &b"Accept-Encoding"[..]));
        headers
            .map(move |(n, v)| match weak {
                Some(w) if n.eq_ignore_ascii_case(b"etag") => (n, w),
                _ => (n, v),
            })
            .chain(encoding)
            .chain(vary)
    }
}

/// Compression of a response body of `len` bytes, when its API has a
/// `minimumCompressionSize` the body reaches and the response is not
/// already encoded (API Gateway's conditions; the size is the body's after
/// its mapping template), nor a part (206 or `Content-Range`: its range
/// counts the identity bytes, as NGINX's gzip also leaves them). The coding
/// is the client's first choice among gzip and deflate.
fn compression<'h>(
    info: &RequestInfo<'_>,
    status: u16,
    len: usize,
    headers: impl Iterator<Item = Header<'h>>,
) -> Compress {
    let Some(min) = info.api.and_then(|a| a.minimum_compression_size) else {
        return Compress::default();
    };
    if len < min || status == 206 {
        return Compress::default();
    }
    let mut varies = false;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"content-encoding") || n.eq_ignore_ascii_case(b"content-range") {
            return Compress::default();
        }
        if n.eq_ignore_ascii_case(b"vary") {
            varies |= crate::http::request::list_elements(std::iter::once(v))
                .any(|t| t == b"*" || t.eq_ignore_ascii_case(b"accept-encoding"));
        }
    }
    Compress {
        coding: crate::http::encoding::negotiate(info.head.header_values("accept-encoding")),
        vary: !varies,
    }
}

/// The `X-Amzn-Trace-Id` a MOCK or HTTP method's answer carries (as API
/// Gateway's, whose `HTTP_PROXY` answers carry the backend's headers and
/// whose gateway responses carry none): the request's trace header, unless
/// the answer's own headers have one.
fn trace_header<'i, 'h>(
    info: &RequestInfo<'i>,
    echo_trace: bool,
    mut headers: impl Iterator<Item = Header<'h>>,
) -> Option<crate::integration::TraceId<'i>> {
    (echo_trace && !headers.any(|(n, _)| n.eq_ignore_ascii_case(b"x-amzn-trace-id")))
        .then(|| info.trace_id())
}

/// `$context.responseOverride.header.X` replaces header X.
fn apply_response_overrides(headers: &mut Vec<(String, String)>, o: &crate::vtl::Overrides) {
    for (name, value) in &o.response_headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.clone(), clean(value)));
    }
}

/// What an integration produced.
enum Produced {
    Full(Reply),
    /// A backend body too large to buffer: the head is known, the body is
    /// relayed as it arrives.
    Stream(Streamed),
}

struct Streamed {
    status: u16,
    headers: Headers,
    first: BytesMut,
    resp: Box<UpstreamResponse>,
    timeout: std::time::Duration,
}

/// A whole response, before the per-request headers are added.
struct Reply {
    status: u16,
    /// Written when `headers` has no Content-Type.
    content_type: Option<String>,
    headers: Headers,
    body: Bytes,
    /// A HEAD through a proxy: the backend's Content-Length (it describes
    /// the GET body), or none when the backend sent none (chunked, or
    /// delimited by close): never the `0` of the empty body.
    head_length: Option<Option<String>>,
}

/// A response's own headers (Tollgate adds the per-request ones when it
/// writes them). Hop-by-hop headers (framing included) and Date are never
/// written from here, whatever their source: Tollgate writes its own.
enum Headers {
    /// Built by the gateway (mapping, MOCK).
    Owned(Vec<(String, String)>),
    /// HTTP_PROXY: the backend's head and its header spans, written as
    /// they came (`Date` and `Server` renamed, as API Gateway does).
    Backend {
        raw: Bytes,
        spans: Vec<(crate::http::request::Span, crate::http::request::Span)>,
        /// The backend sent no `Content-Type`: `application/json` is added.
        add_json_type: bool,
    },
    /// A cache hit: the entry's (shared, not copied).
    Cached(Arc<crate::cache::Entry>),
}

impl Headers {
    /// The headers to write, in order.
    fn iter(&self) -> HeadersIter<'_> {
        match self {
            Headers::Owned(v) => HeadersIter::Owned(v.iter()),
            Headers::Cached(e) => HeadersIter::Owned(e.headers.iter()),
            Headers::Backend {
                raw,
                spans,
                add_json_type,
            } => HeadersIter::Backend(raw, spans.iter(), *add_json_type),
        }
    }
}

enum HeadersIter<'a> {
    Owned(std::slice::Iter<'a, (String, String)>),
    /// The backend's head, its header spans, and whether a `Content-Type`
    /// is still to be added at the end.
    Backend(
        &'a [u8],
        std::slice::Iter<'a, (crate::http::request::Span, crate::http::request::Span)>,
        bool,
    ),
}

impl<'a> Iterator for HeadersIter<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let (name, value) = match self {
                HeadersIter::Owned(it) => {
                    let (name, value) = it.next().map(|(n, v)| (n.as_bytes(), v.as_bytes()))?;
                    // The gateway writes its own Date and ids; a mapping
                    // does not add a second, conflicting line (API
                    // Gateway: callers cannot override the extended id).
                    if name.eq_ignore_ascii_case(b"date")
                        || name.eq_ignore_ascii_case(b"x-amzn-requestid")
                        || name.eq_ignore_ascii_case(b"x-amz-apigw-id")
                    {
                        continue;
                    }
                    (name, value)
                }
                HeadersIter::Backend(raw, it, add_type) => match it.next() {
                    Some((n, v)) => {
                        let (name, value) = (n.of(raw), v.of(raw));
                        // API Gateway keeps a proxied backend's Date and
                        // Server under these names (its own Date is
                        // written by the gateway).
                        if name.eq_ignore_ascii_case(b"date") {
                            return Some((b"x-amzn-Remapped-Date", value));
                        }
                        if name.eq_ignore_ascii_case(b"server") {
                            return Some((b"x-amzn-Remapped-Server", value));
                        }
                        // The gateway's own request id and error type are
                        // the ones under these names: a backend's are kept
                        // remapped, never next to them.
                        if name.eq_ignore_ascii_case(b"x-amzn-requestid") {
                            return Some((b"x-amzn-Remapped-x-amzn-RequestId", value));
                        }
                        if name.eq_ignore_ascii_case(b"x-amz-apigw-id") {
                            return Some((b"x-amzn-Remapped-x-amz-apigw-id", value));
                        }
                        if name.eq_ignore_ascii_case(b"x-amzn-errortype") {
                            return Some((b"x-amzn-Remapped-x-amzn-ErrorType", value));
                        }
                        (name, value)
                    }
                    None if *add_type => {
                        *add_type = false;
                        return Some((b"Content-Type", b"application/json"));
                    }
                    None => return None,
                },
            };
            if !is_hop_by_hop(name) {
                return Some((name, value));
            }
        }
    }
}

impl Reply {
    fn from_entry(e: &Arc<crate::cache::Entry>, warning: bool) -> Reply {
        let headers = if warning {
            // API Gateway's SUCCEED_WITH_RESPONSE_HEADER: served from cache,
            // with a warning that the invalidation was not honoured.
            let mut h = e.headers.clone();
            h.push((
                "Warning".to_owned(),
                "199 tollgate \"Cache-Control: max-age=0 ignored: not authorized to invalidate\""
                    .to_owned(),
            ));
            Headers::Owned(h)
        } else {
            Headers::Cached(e.clone())
        };
        Reply {
            status: e.status,
            content_type: None,
            headers,
            body: e.body.clone(),
            head_length: None,
        }
    }

    /// The cache entry this response makes, if it may be stored: a whole
    /// 2xx response (not a 206 part) up to 1 MiB, without `Set-Cookie` (a
    /// client's session is not replayed to others) and without `Vary: *`;
    /// the request headers a `Vary` names are kept with it.
    /// `fetched`: when the fetch began; `expires`: that plus the TTL.
    fn cache_entry(
        &self,
        request: &RequestHead,
        fetched: u64,
        expires: u64,
    ) -> Option<std::sync::Arc<crate::cache::Entry>> {
        if !(200..300).contains(&self.status)
            || self.status == 206
            || self.body.len() > crate::cache::MAX_ENTRY_BYTES
        {
            return None;
        }
        let mut vary = Vec::new();
        for (name, value) in self.headers.iter() {
            if name.eq_ignore_ascii_case(b"set-cookie") {
                return None;
            }
            if name.eq_ignore_ascii_case(b"vary") {
                for field in value.split(|&b| b == b',') {
                    let field = crate::http::request::trim_ows(field);
                    if field == b"*" {
                        return None;
                    }
                    if field.is_empty() {
                        continue;
                    }
                    let lower = String::from_utf8_lossy(field).to_ascii_lowercase();
                    let got = joined_header(request, &lower);
                    vary.push((lower, got));
                }
            }
        }
        let mut entry =
            crate::cache::Entry::new(self.status, self.cacheable_headers(), &self.body, expires);
        entry.vary = vary;
        entry.fetched = fetched;
        Some(std::sync::Arc::new(entry))
    }

    /// Headers to keep in a cache entry: all but the per-request ones, with
    /// the content type made explicit.
    fn cacheable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case(b"x-amzn-requestid"))
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        if let Some(ct) = &self.content_type {
            if !h
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                h.push(("Content-Type".to_owned(), ct.clone()));
            }
        }
        h
    }
}

/// Marks a key as being fetched on this shard; waiters are woken when the
/// fetch ends, however it ends.
struct Pending {
    shard: Rc<Shard>,
    key: String,
    sem: Rc<glommio::sync::Semaphore>,
}

impl Pending {
    fn claim(shard: &Rc<Shard>, key: &str) -> Pending {
        let sem = Rc::new(glommio::sync::Semaphore::new(0));
        shard
            .pending
            .borrow_mut()
            .insert(key.to_owned(), sem.clone());
        Pending {
            shard: shard.clone(),
            key: key.to_owned(),
            sem,
        }
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Ok(mut p) = self.shard.pending.try_borrow_mut() {
            if p.get(&self.key).is_some_and(|s| Rc::ptr_eq(s, &self.sem)) {
                p.remove(&self.key);
            }
        }
        self.sem.close();
    }
}

/// A request header's lines combined (`, `), as RFC 9111 §4.1 compares
/// the headers a `Vary` names.
fn joined_header(head: &RequestHead, name: &str) -> Option<Vec<u8>> {
    let mut out: Option<Vec<u8>> = None;
    for (_, v) in head
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
    {
        match &mut out {
            None => out = Some(v.to_vec()),
            Some(o) => {
                o.extend_from_slice(b", ");
                o.extend_from_slice(v);
            }
        }
    }
    out
}

/// `Cache-Control: max-age=0`, also as `max-age="0"` or `max-age=00`
/// (RFC 9111 §5.2: a token or a quoted string; delta-seconds).
fn wants_invalidation(head: &RequestHead) -> bool {
    crate::http::request::list_elements(head.header_values("cache-control")).any(|d| {
        let Some((name, arg)) = d.split_at_checked(8) else {
            return false;
        };
        if !name.eq_ignore_ascii_case(b"max-age=") {
            return false;
        }
        let arg = arg
            .strip_prefix(b"\"")
            .and_then(|a| a.strip_suffix(b"\""))
            .unwrap_or(arg);
        !arg.is_empty() && arg.iter().all(|&b| b == b'0')
    })
}

/// A credential with `invalidate_cache`, by bearer token or SigV4
/// (service `execute-api`) in the `Authorization` header. Not by a
/// presigned URL: the request goes on to the integration, and the
/// signature in its query string would go with it.
fn may_invalidate(snap: &Snapshot, info: &RequestInfo<'_>) -> bool {
    if info.head.header("authorization").is_none() {
        return false;
    }
    let headers: Vec<(&[u8], &[u8])> = info.head.headers().collect();
    let parts = crate::auth::RequestParts::of(info.head, &headers, info.body);
    crate::auth::authenticate(&snap.credentials, &parts, "execute-api", SystemTime::now())
        .is_ok_and(|c| c.permissions.invalidate_cache)
}

fn cache_key(
    info: &RequestInfo<'_>,
    sc: &crate::cache::StageCache,
    mc: &crate::cache::MethodCache,
) -> String {
    let (resource, rest, captures) = match &info.route {
        Some(r) => (r.resource.path.as_str(), r.rest, r.captures),
        None => ("", "", Captures::default()),
    };
    let path_params: Vec<&str> = (0..captures.len())
        .filter_map(|i| captures.get(rest, i))
        .collect();
    // Every value of a query parameter (a backend reads them all); one of
    // a header or a path parameter.
    let values: Vec<Vec<String>> = mc
        .key_params
        .iter()
        .map(|p| match p {
            crate::cache::KeyParam::Query(n) => info
                .head
                .query()
                .map(|q| crate::http::query::all_values(q, n))
                .unwrap_or_default(),
            crate::cache::KeyParam::Header(n) => {
                info.header(n).map(|v| v.into_owned()).into_iter().collect()
            }
            crate::cache::KeyParam::Path(n) => info.path_param(n).into_iter().collect(),
        })
        .collect();
    let value_refs: Vec<Vec<&str>> = values
        .iter()
        .map(|v| v.iter().map(String::as_str).collect())
        .collect();
    let params: Vec<(&crate::cache::KeyParam, &[&str])> = mc
        .key_params
        .iter()
        .zip(value_refs.iter())
        .map(|(p, v)| (p, v.as_slice()))
        .collect();
    crate::cache::key(
        &sc.uid,
        mc.generation,
        info.head.method().as_str(),
        resource,
        &path_params,
        &params,
    )
}

/// An in-flight permit: released when dropped, whatever way the request
/// ends (response, error, timeout, client gone).
struct Permit<'a> {
    shard: Rc<Shard>,
    shared: &'a crate::limit::concurrency::SharedPermits,
    block: u64,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Ok(mut limits) = self.shard.limits.try_borrow_mut() {
            limits.permits.release(self.shared, self.block);
        }
    }
}

fn head_error_message(e: HeadError) -> &'static str {
    match e {
        HeadError::BadRequest(why) => why,
        HeadError::UriTooLong => "Request-URI Too Long",
        HeadError::HeadersTooLarge => "Request Header Fields Too Large",
        HeadError::NotImplemented => "Transfer-Encoding not implemented",
        HeadError::VersionNotSupported => "HTTP Version Not Supported",
        HeadError::ExpectationFailed => "Expectation Failed",
    }
}

/// Header values never carry control characters (CR, LF and NUL among
/// them), whatever a mapping produced.
fn clean(v: &str) -> String {
    crate::http::response::field_value(v)
}

#[cfg(test)]
mod idle_size {
    //! An idle connection's memory is mostly its task's future: whatever a
    //! request needs across an await is boxed per request, so these stay
    //! small (they were 9.5 KiB and 8 KiB before; see docs/benchmarks.md).

    fn fut_size2<A, B, F: std::future::Future>(_: impl Fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn fut_size5<A, B, C, D, E, F: std::future::Future>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn connection_futures_stay_small() {
        let http = fut_size2(super::serve_connection);
        let ws = fut_size5(super::super::ws::serve);
        assert!(http <= 4096, "serve_connection's future is {http} bytes");
        assert!(ws <= 4096, "ws::serve's future is {ws} bytes");
    }
}
