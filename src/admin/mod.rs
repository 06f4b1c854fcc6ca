//! The admin API: a subset of Amazon API Gateway's management API
//! (`/restapis`, deployments, stages, exports) on its own listener, so the
//! AWS CLI and SDKs pointed at it with `--endpoint-url` work.
//!
//! Owns: its listener and threads (plain blocking threads: admin calls are
//! rare, and they never run on a shard), authentication of every call
//! (SigV4 or a bearer token of a credential with the `admin` permission),
//! and the state directory. A change is validated by building the snapshot
//! it would produce, written durably, then published to every shard before
//! it is acknowledged.
//! Read first: [`Admin::handle`], then `api.rs`.

mod api;
pub mod state;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::BytesMut;

use crate::auth::{self, RequestParts};
use crate::config::AdminSettings;
use crate::control::Control;
use crate::http::blocking::{read_body, read_head, ReadError};
use crate::http::request::{linger_budget, BodyFraming, HeadLimits, RequestHead};
use crate::http::response::{
    write_content_length, write_date_header, write_header, write_status_line, Persist,
};
use state::{AdminState, Store};

/// API Gateway refuses import documents over 6 MB.
pub const MAX_DOCUMENT_BYTES: usize = 6 * 1024 * 1024;

// Control plane only.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

pub struct Admin {
    store: Store,
    state: ControlMutex<AdminState>,
    control: Arc<Control>,
}

/// A response of the management API.
pub struct Reply {
    pub status: u16,
    pub error_type: Option<&'static str>,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(status: u16, value: &serde_json::Value) -> Reply {
        Reply {
            status,
            error_type: None,
            content_type: "application/json",
            body: serde_json::to_vec(value).unwrap_or_default(),
        }
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply {
            status,
            error_type: None,
            content_type: "text/plain; charset=utf-8",
            body: text.as_bytes().to_vec(),
        }
    }

    /// AWS's error shape: `x-amzn-ErrorType` and `{"message": ...}`.
    pub fn error(status: u16, error_type: &'static str, message: impl Into<String>) -> Reply {
        Reply {
            status,
            error_type: Some(error_type),
            content_type: "application/json",
            body: serde_json::to_vec(&serde_json::json!({ "message": message.into() }))
                .unwrap_or_default(),
        }
    }
}

impl Admin {
    /// Opens the state directory. Returns the admin and the APIs its state
    /// deploys, to serve from the start.
    pub fn open(settings: &AdminSettings) -> Result<(Store, AdminState), String> {
        Store::open(&settings.state_dir)
    }

    /// Reads the state directory without locking or changing it (for
    /// `tollgate check`), with the errors `open` would give.
    pub fn inspect(settings: &AdminSettings) -> Result<(Store, AdminState), String> {
        Store::inspect(&settings.state_dir)
    }

    pub fn new(store: Store, state: AdminState, control: Arc<Control>) -> Arc<Admin> {
        Arc::new(Admin {
            store,
            state: ControlMutex::new(state),
            control,
        })
    }

    /// A refusal that does not need the body: no `Authorization` header, a
    /// bearer token that no credential has, or a malformed header. (SigV4
    /// signs the body, so a signed request is judged in `handle`.) The
    /// server answers it without reading the body, so an unauthenticated
    /// client cannot make the admin listener read a 6 MB upload.
    pub fn refuse_before_body(&self, head: &RequestHead) -> Option<Reply> {
        if matches!(head.path(), b"/healthz" | b"/readyz") {
            return None;
        }
        // A signature covers the body: checked once it is read.
        let signed = match head.header("authorization") {
            Some(v) => v.trim_ascii_start().starts_with(b"AWS4-HMAC-SHA256 "),
            None => head.query().is_some_and(auth::is_presigned),
        };
        if signed {
            return None;
        }
        self.authenticate(head, &[]).err()
    }

    /// The credential that signed `head` (with `body`, which SigV4 signs)
    /// or whose bearer token it carries: its name and whether it may use
    /// the admin API; or the 403 for a request no credential passes.
    fn authenticate(&self, head: &RequestHead, body: &[u8]) -> Result<(String, bool), Reply> {
        let headers: Vec<(&[u8], &[u8])> = head.headers().collect();
        let parts = RequestParts::of(head, &headers, body);
        let credentials = self.control.credentials();
        match auth::authenticate(&credentials, &parts, "apigateway", SystemTime::now()) {
            Ok(c) => Ok((c.name.clone(), c.permissions.admin)),
            Err(e) => {
                let (kind, message) = e.aws_error();
                Err(Reply::error(403, kind, message))
            }
        }
    }

    /// Authenticates and serves one request.
    pub fn handle(&self, head: &RequestHead, body: &[u8]) -> Reply {
        // Health checks need no credentials (load balancers, systemd);
        // they, and the metrics, answer HEAD as GET without the body.
        let get = matches!(head.method_bytes(), b"GET" | b"HEAD");
        match head.path() {
            b"/healthz" if get => return Reply::text(200, "ok\n"),
            b"/readyz" if get => {
                return if self.control.publisher().ready() {
                    Reply::text(200, "ready\n")
                } else {
                    Reply::text(503, "not ready\n")
                };
            }
            _ => {}
        }
        match self.authenticate(head, body) {
            Ok((_, true)) => {}
            Ok((name, false)) => {
                return Reply::error(
                    403,
                    "AccessDeniedException",
                    format!("User: {name} is not authorized to perform: apigateway:*"),
                )
            }
            Err(reply) => return reply,
        }
        if head.path() == b"/metrics" && get {
            return Reply {
                status: 200,
                error_type: None,
                content_type: crate::metrics::CONTENT_TYPE,
                body: self.control.metrics_text().into_bytes(),
            };
        }
        let mut state = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        api::route(self, &mut state, head, body)
    }
}

/// Binds the admin listener and serves it on background threads.
pub fn start(settings: &AdminSettings, admin: Arc<Admin>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(settings.listen)?;
    let addr = listener.local_addr()?;
    let conns = Arc::new(Conns {
        max: settings.max_connections,
        slots: ControlMutex::new(Vec::new()),
        next_id: AtomicU64::new(0),
    });
    std::thread::Builder::new()
        .name("tollgate-admin".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(slot) = Conns::admit(&conns, &stream) else {
                    let busy = Reply::error(
                        503,
                        "ServiceUnavailableException",
                        "too many admin connections",
                    );
                    let _ = send_reply(&stream, &busy, Persist::Close, "", false);
                    continue;
                };
                let admin = admin.clone();
                let spawned = std::thread::Builder::new()
                    .name("tollgate-admin-conn".into())
                    .spawn(move || serve(&admin, stream, &slot));
                if spawned.is_err() {
                    tracing::warn!("cannot start an admin connection thread");
                }
            }
        })?;
    Ok(addr)
}

/// The admin listener's open connections. When all `max_connections` are
/// taken, the one that has waited longest for its next request (no byte of
/// it read) is closed to make room, as NGINX reuses idle keep-alive
/// connections when it runs out: clients that open connections and send
/// nothing cannot lock the operator out of `/healthz` or the API. Only when
/// every connection is inside a request (bounded by the head and request
/// deadlines) is a new one refused with 503.
struct Conns {
    max: usize,
    slots: ControlMutex<Vec<ConnSlot>>,
    next_id: AtomicU64,
}

struct ConnSlot {
    id: u64,
    /// A handle on the socket, to shut it down from the accept thread.
    stream: TcpStream,
    /// Since when the connection waits for a request (`None` while one is
    /// being read or answered).
    idle_since: Option<Instant>,
    /// Shut down to make room; its thread is on its way out.
    closing: bool,
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ConnSlot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a new connection, closing the longest-idle one if all
    /// slots are taken; `None` when none is idle.
    fn admit(conns: &Arc<Conns>, stream: &TcpStream) -> Option<Registered> {
        let handle = stream.try_clone().ok()?;
        let mut slots = conns.lock();
        if slots.iter().filter(|s| !s.closing).count() >= conns.max {
            // Idle: nothing of a request read, and nothing waiting to be
            // read either (its thread may not have got to bytes that came).
            let victim = slots
                .iter_mut()
                .filter(|s| !s.closing)
                .filter_map(|s| s.idle_since.map(|t| (t, s)))
                .filter(|(_, s)| !has_bytes_waiting(&s.stream))
                .min_by_key(|(t, _)| *t)
                .map(|(_, s)| s)?;
            victim.closing = true;
            let _ = victim.stream.shutdown(std::net::Shutdown::Both);
            tracing::info!("admin connection idle the longest closed to make room");
        }
        let id = conns.next_id.fetch_add(1, Ordering::Relaxed);
        slots.push(ConnSlot {
            id,
            stream: handle,
            idle_since: Some(Instant::now()),
            closing: false,
        });
        Some(Registered {
            conns: conns.clone(),
            id,
        })
    }
}

/// Whether the client has sent bytes its connection's thread has not read
/// yet (a non-blocking `MSG_PEEK`; an error or the end of the stream is
/// not a request coming).
fn has_bytes_waiting(stream: &TcpStream) -> bool {
    crate::sock::peek(stream) == crate::sock::Waiting::Bytes
}

/// A connection's place in [`Conns`], given up when its thread ends.
struct Registered {
    conns: Arc<Conns>,
    id: u64,
}

impl Registered {
    fn set_idle(&self, idle: bool) {
        if let Some(s) = self.conns.lock().iter_mut().find(|s| s.id == self.id) {
            s.idle_since = if idle {
                Some(s.idle_since.unwrap_or_else(Instant::now))
            } else {
                None
            };
        }
    }

    /// Gives the slot up (before the last answer on a connection is
    /// written: a client that has its answer may connect again at once).
    fn release(&self) {
        self.conns.lock().retain(|s| s.id != self.id);
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.release();
    }
}

/// How long a client may wait before its next request, take to send a
/// head once it started, and take to send a whole request.
const IDLE: Duration = Duration::from_secs(60);
const HEAD_DEADLINE: Duration = Duration::from_secs(10);
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);

/// Reads with deadlines that bytes do not renew (a client trickling its
/// head one byte at a time is cut off, as on the data listener): the idle
/// wait until the first byte, then [`HEAD_DEADLINE`] for the head and
/// [`REQUEST_DEADLINE`] for the whole request.
struct Deadlined<'a> {
    stream: &'a TcpStream,
    /// Told when the first byte of a request arrives (no longer idle).
    slot: &'a Registered,
    created: Instant,
    started: Option<Instant>,
    head_done: bool,
    /// The last bytes seen, to find the end of the head across reads.
    tail: Vec<u8>,
}

impl<'a> Deadlined<'a> {
    fn new(stream: &'a TcpStream, slot: &'a Registered, started: bool) -> Deadlined<'a> {
        let now = Instant::now();
        Deadlined {
            stream,
            slot,
            created: now,
            started: started.then_some(now),
            head_done: false,
            tail: Vec::new(),
        }
    }
}

impl std::io::Read for Deadlined<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let until = match self.started {
            None => self.created + IDLE,
            Some(t) if self.head_done => t + REQUEST_DEADLINE,
            Some(t) => t + HEAD_DEADLINE,
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(std::io::ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        if self.started.is_none() {
            // The first byte of a request: waited for without taking it,
            // and the connection marked busy before it is read, so it is
            // never seen idle (closable) with its request's bytes taken.
            if self.stream.peek(&mut [0u8; 1])? > 0 {
                self.slot.set_idle(false);
                self.started = Some(Instant::now());
            }
        }
        let n = (&*self.stream).read(buf)?;
        if n > 0 && !self.head_done {
            self.tail.extend_from_slice(&buf[..n]);
            if self.tail.windows(4).any(|w| w == b"\r\n\r\n") {
                self.head_done = true;
                self.tail = Vec::new();
            } else if self.tail.len() > 3 {
                self.tail.drain(..self.tail.len() - 3);
            }
        }
        Ok(n)
    }
}

fn serve(admin: &Admin, stream: TcpStream, slot: &Registered) {
    // Read timeouts are set before every read by `Deadlined`.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let limits = HeadLimits::default();
    let mut buf = BytesMut::new();
    loop {
        let mut writer = match stream.try_clone() {
            Ok(w) => w,
            Err(_) => return,
        };
        let mut on_continue = || {
            let _ = writer.write_all(b"HTTP/1.1 100 Continue\r\n\r\n");
        };
        let request_id = crate::ids::new_request_id();
        let request_id = std::str::from_utf8(&request_id).unwrap_or("");
        // Idle (closable to make room) until a byte of the next request
        // is read; a pipelined request already in `buf` is not idle.
        slot.set_idle(buf.is_empty());
        let mut timed = Deadlined::new(&stream, slot, !buf.is_empty());
        let head = match read_head(&mut timed, &mut buf, &limits) {
            Ok(head) => head,
            Err(e) => return answer_read_error(&stream, e, request_id, MAX_DOCUMENT_BYTES as u64),
        };
        // Only a request with a body is refused early (and closed); one
        // without is refused by `handle` and keeps its connection.
        let early = match head.info.body {
            BodyFraming::None => None,
            _ => admin.refuse_before_body(&head),
        };
        if let Some(reply) = early {
            tracing::info!(
                method = %String::from_utf8_lossy(head.method_bytes()),
                path = %String::from_utf8_lossy(head.path()),
                status = reply.status,
                "admin call refused before its body"
            );
            let _ = send_reply(&stream, &reply, Persist::Close, request_id, false);
            linger(
                &stream,
                linger_budget(head.info.body, MAX_DOCUMENT_BYTES as u64),
            );
            return;
        }
        let body = match read_body(
            &mut timed,
            &mut buf,
            &head,
            MAX_DOCUMENT_BYTES,
            &mut on_continue,
        ) {
            Ok(body) => body,
            Err(e) => {
                return answer_read_error(
                    &stream,
                    e,
                    request_id,
                    linger_budget(head.info.body, MAX_DOCUMENT_BYTES as u64),
                )
            }
        };
        let reply = admin.handle(&head, &body);
        tracing::info!(
            method = %String::from_utf8_lossy(head.method_bytes()),
            path = %String::from_utf8_lossy(head.path()),
            status = reply.status,
            "admin call"
        );
        let persist = Persist::new(head.info.keep_alive, head.info.version);
        if !persist.keeps() {
            slot.release();
        }
        let head_only = head.method_bytes() == b"HEAD";
        if send_reply(&stream, &reply, persist, request_id, head_only).is_err() || !persist.keeps()
        {
            return;
        }
    }
}

/// Answers a request that could not be read (when there is anyone to
/// answer); the connection is closed after it, in stages (`linger`, up to
/// `budget` bytes) when the client may still be sending.
fn answer_read_error(stream: &TcpStream, e: ReadError, request_id: &str, budget: u64) {
    let reply = match e {
        ReadError::Closed => return,
        ReadError::Head(e) => Reply::error(e.status(), "BadRequestException", "malformed request"),
        ReadError::BodyTooLarge => Reply::error(
            413,
            "PayloadTooLargeException",
            "Request body is larger than 6 MB",
        ),
        ReadError::BadBody(why) => Reply::error(400, "BadRequestException", why),
    };
    let _ = send_reply(stream, &reply, Persist::Close, request_id, false);
    linger(stream, budget);
}

/// Closes after an answer given before the request's body was read: the
/// write side first, then what the client still sends is read and dropped
/// (up to `budget` bytes and 5 s), so that closing with unread data does
/// not reset the connection before the client has read the answer (an
/// 8 MB `urllib` upload got `ECONNRESET` 10 times in 10 with 1 s and 6 MB).
fn linger(stream: &TcpStream, budget: u64) {
    use std::io::Read;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = budget;
    let mut sink = [0u8; 16 * 1024];
    let mut reader = stream;
    while left > 0 && Instant::now() < deadline {
        match reader.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => left = left.saturating_sub(n as u64),
        }
    }
}

/// Writes `reply` in one write.
fn send_reply(
    mut stream: &TcpStream,
    reply: &Reply,
    persist: Persist,
    request_id: &str,
    head_only: bool,
) -> std::io::Result<()> {
    let mut out = Vec::new();
    write_reply(&mut out, reply, persist, request_id);
    if head_only {
        // The head says what GET would send (RFC 9110 §9.3.2).
        out.truncate(out.len() - reply.body.len());
    }
    stream.write_all(&out)
}

fn write_reply(out: &mut Vec<u8>, reply: &Reply, persist: Persist, request_id: &str) {
    write_status_line(out, reply.status);
    write_date_header(out);
    write_header(out, b"x-amzn-RequestId", request_id.as_bytes());
    if let Some(t) = reply.error_type {
        write_header(out, b"x-amzn-ErrorType", t.as_bytes());
    }
    write_header(out, b"Content-Type", reply.content_type.as_bytes());
    write_content_length(out, reply.body.len() as u64);
    persist.write_header(out);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&reply.body);
}
