//! Access logs: one line per request of a stage, in the format the user
//! wrote with API Gateway's `$context` variables, to stdout or a file.
//!
//! Owns: the format ([`Format`], compiled when the config loads; unknown
//! variables are errors), the shard side (lines formatted into a bounded
//! per-shard buffer per destination, handed over every housekeeping tick;
//! when the buffer or the hand-over queue is full, lines are dropped and
//! counted, never waited for) and the writer thread that owns the files
//! and reopens them on SIGUSR1.
//! Read first: [`Format::parse`], then [`ShardLogs`], then [`Sinks`].

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::gateway_response::ResponseType;

// Control plane only (destinations are named when snapshots are built).
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

/// Where a stage's lines go.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    /// `"-"` is stdout; anything else a path relative to `base`.
    pub fn new(path: &str, base: &Path) -> Target {
        if path == "-" {
            Target::Stdout
        } else {
            Target::File(base.join(path))
        }
    }
}

/// A stage's access log as configured.
#[derive(Clone, Debug)]
pub struct AccessLogSpec {
    pub format: Format,
    pub target: Target,
}

/// A stage's access log, compiled.
#[derive(Debug)]
pub struct AccessLog {
    pub sink: u32,
    pub format: Format,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
    /// `authorizer.principalId`, `authorizer.KEY` (a Lambda authorizer's
    /// context) or `authorizer.claims.NAME` (a Cognito token's claims):
    /// `-` when the method's authorizer gave none.
    Authorizer(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Var {
    RequestId,
    ExtendedRequestId,
    SourceIp,
    UserAgent,
    ApiKey,
    HttpMethod,
    ResourcePath,
    Path,
    Protocol,
    Status,
    ResponseLength,
    RequestTime,
    RequestTimeEpoch,
    ResponseLatency,
    IntegrationLatency,
    IntegrationStatus,
    ErrorMessage,
    ErrorMessageString,
    ErrorResponseType,
    ValidationError,
    /// `integrationErrorMessage` / `integration.error`: why the integration
    /// failed (refused, timed out, TLS, a malformed response), `-` if it
    /// did not.
    IntegrationError,
    Stage,
    ApiId,
    DomainName,
    DomainPrefix,
    /// `identity.clientCert.<field>` (mutual TLS; `-` without one).
    ClientCert(&'static str),
    /// `identity.caller`, `.user`, `.userArn`, `.accessKey` of an
    /// `AWS_IAM` request (`-` for others).
    Caller(crate::template::CallerField),
    /// Known to API Gateway but without a value here (account ids,
    /// authorizers, WAF, X-Ray): written as `-`.
    Absent,
}

/// The variables of API Gateway's access logs.
const VARS: &[(&str, Var)] = &[
    (
        "identity.clientCert.clientCertPem",
        Var::ClientCert("clientCertPem"),
    ),
    (
        "identity.clientCert.subjectDN",
        Var::ClientCert("subjectDN"),
    ),
    ("identity.clientCert.issuerDN", Var::ClientCert("issuerDN")),
    (
        "identity.clientCert.serialNumber",
        Var::ClientCert("serialNumber"),
    ),
    (
        "identity.clientCert.validity.notBefore",
        Var::ClientCert("validity.notBefore"),
    ),
    (
        "identity.clientCert.validity.notAfter",
        Var::ClientCert("validity.notAfter"),
    ),
    ("integration.integrationStatus", Var::IntegrationStatus),
    ("error.validationErrorString", Var::ValidationError),
    ("identity.cognitoIdentityPoolId", Var::Absent),
    ("identity.cognitoIdentityId", Var::Absent),
    ("identity.principalOrgId", Var::Absent),
    ("error.messageString", Var::ErrorMessageString),
    ("integration.requestId", Var::Absent),
    ("awsEndpointRequestId", Var::Absent),
    ("error.responseType", Var::ErrorResponseType),
    ("identity.accountId", Var::Absent),
    ("identity.userAgent", Var::UserAgent),
    (
        "identity.accessKey",
        Var::Caller(crate::template::CallerField::AccessKey),
    ),
    ("integration.latency", Var::IntegrationLatency),
    ("integration.status", Var::IntegrationStatus),
    ("integration.error", Var::IntegrationError),
    ("integrationErrorMessage", Var::IntegrationError),
    ("authorize.error", Var::Absent),
    ("authorize.latency", Var::Absent),
    ("authorize.status", Var::Absent),
    ("authenticate.error", Var::Absent),
    ("authenticate.latency", Var::Absent),
    ("authenticate.status", Var::Absent),
    ("waf.error", Var::Absent),
    ("waf.latency", Var::Absent),
    ("waf.status", Var::Absent),
    ("identity.cognitoAuthenticationProvider", Var::Absent),
    ("identity.cognitoAuthenticationType", Var::Absent),
    ("identity.vpcId", Var::Absent),
    ("identity.vpceId", Var::Absent),
    ("identity.sourceIp", Var::SourceIp),
    ("integrationLatency", Var::IntegrationLatency),
    ("identity.apiKeyId", Var::Absent),
    ("extendedRequestId", Var::ExtendedRequestId),
    ("integrationStatus", Var::IntegrationStatus),
    ("requestTimeEpoch", Var::RequestTimeEpoch),
    (
        "identity.userArn",
        Var::Caller(crate::template::CallerField::UserArn),
    ),
    ("identity.apiKey", Var::ApiKey),
    (
        "identity.caller",
        Var::Caller(crate::template::CallerField::Caller),
    ),
    ("responseLatency", Var::ResponseLatency),
    ("wafResponseCode", Var::Absent),
    ("error.message", Var::ErrorMessage),
    ("responseLength", Var::ResponseLength),
    (
        "identity.user",
        Var::Caller(crate::template::CallerField::User),
    ),
    ("deploymentId", Var::Absent),
    ("domainPrefix", Var::DomainPrefix),
    ("resourcePath", Var::ResourcePath),
    ("xrayTraceId", Var::Absent),
    ("requestTime", Var::RequestTime),
    ("domainName", Var::DomainName),
    ("httpMethod", Var::HttpMethod),
    ("resourceId", Var::Absent),
    ("requestId", Var::RequestId),
    ("webaclArn", Var::Absent),
    ("accountId", Var::Absent),
    ("protocol", Var::Protocol),
    ("status", Var::Status),
    ("apiId", Var::ApiId),
    ("stage", Var::Stage),
    ("path", Var::Path),
];

/// A compiled line format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    parts: Vec<Part>,
}

impl Format {
    /// Compiles `text`. `$context.name` (or `${context.name}`) is a
    /// variable; `authorizer.*` and `requestOverride.*` /
    /// `responseOverride.*` names are accepted and written as `-`.
    pub fn parse(text: &str) -> Result<Format, String> {
        if text.contains(['\n', '\r']) {
            return Err("the format must be one line".into());
        }
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            lit.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (braced, body) = match after.strip_prefix('{') {
                Some(b) => (true, b),
                None => (false, after),
            };
            let Some(name_start) = body.strip_prefix("context.") else {
                lit.push('$');
                rest = after;
                continue;
            };
            let (name, (var, len)) = if braced {
                let end = name_start
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` at `{}`", &rest[at..]))?;
                let name = &name_start[..end];
                (name, (lookup_exact(name)?.0, end + 1))
            } else {
                let run = name_start
                    .char_indices()
                    .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                    .map_or(name_start.len(), |(i, _)| i);
                let found = lookup_prefix(&name_start[..run])?;
                (&name_start[..found.1], found)
            };
            if !lit.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut lit)));
            }
            match authorizer_key(name) {
                Some(key) => parts.push(Part::Authorizer(key.to_owned())),
                None => parts.push(Part::Var(var)),
            }
            let consumed = 1 + usize::from(braced) + "context.".len() + len;
            rest = &rest[at + consumed..];
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Text(lit));
        }
        if !parts.iter().any(|p| !matches!(p, Part::Text(_))) {
            return Err("the format has no $context variable".into());
        }
        Ok(Format { parts })
    }

    /// Appends one line (with its newline) for `e` to `out`.
    pub fn write(&self, e: &Entry<'_>, out: &mut Vec<u8>) {
        self.write_cached(e, out, &mut TimeCache::default());
    }

    fn write_cached(&self, e: &Entry<'_>, out: &mut Vec<u8>, time: &mut TimeCache) {
        for p in &self.parts {
            match p {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Var(v) => write_var(*v, e, out, time),
                Part::Authorizer(key) => {
                    let value = e.authorizer.and_then(|a| {
                        if key == "principalId" {
                            Some(a.principal_id.as_str())
                        } else {
                            a.context
                                .iter()
                                .find(|(k, _)| k == key)
                                .map(|(_, v)| v.as_str())
                        }
                    });
                    opt(value.map(str::as_bytes), out);
                }
            }
        }
        out.push(b'\n');
    }
}

fn lookup_exact(name: &str) -> Result<(Var, usize), String> {
    if is_opaque(name) {
        return Ok((Var::Absent, name.len()));
    }
    VARS.iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, v)| (v, name.len()))
        .ok_or_else(|| format!("unknown variable `$context.{name}`"))
}

/// The longest known name at the start of `run` that ends at a name
/// boundary (`$context.status.` is `status` followed by a dot).
fn lookup_prefix(run: &str) -> Result<(Var, usize), String> {
    let found = VARS
        .iter()
        .filter(|(name, _)| {
            run.starts_with(name)
                && matches!(run[name.len()..].chars().next(), None | Some('.'))
                && !continues_name(&run[name.len()..])
        })
        .max_by_key(|(name, _)| name.len());
    if let Some((name, var)) = found {
        return Ok((*var, name.len()));
    }
    if is_opaque(run) {
        return Ok((Var::Absent, run.len()));
    }
    Err(format!(
        "unknown variable `$context.{}`",
        run.trim_end_matches('.')
    ))
}

/// `.x` after a known name means a longer, unknown name.
fn continues_name(after: &str) -> bool {
    after
        .strip_prefix('.')
        .and_then(|s| s.chars().next())
        .is_some_and(|c| c.is_ascii_alphanumeric())
}

/// The key of an authorizer's output that `authorizer.NAME` reads; the
/// authorizer's own figures (`authorizer.latency`, `.status`,
/// `.error`, `.integrationLatency`, ...) are not kept and stay `-`.
fn authorizer_key(name: &str) -> Option<&str> {
    let key = name.strip_prefix("authorizer.")?;
    const FIGURES: [&str; 6] = [
        "error",
        "integrationLatency",
        "integrationStatus",
        "latency",
        "requestId",
        "status",
    ];
    (!key.is_empty() && !FIGURES.contains(&key)).then_some(key)
}

fn is_opaque(name: &str) -> bool {
    [
        "authorizer.",
        "requestOverride.",
        "responseOverride.",
        "customDomain.",
    ]
    .iter()
    .any(|p| name.starts_with(p) && name.len() > p.len())
}

/// One request, as the access log sees it.
#[derive(Debug)]
pub struct Entry<'a> {
    pub request_id: &'a str,
    pub source_ip: IpAddr,
    pub user_agent: Option<&'a [u8]>,
    pub api_key: Option<&'a [u8]>,
    pub http_method: &'a str,
    pub resource_path: &'a str,
    pub path: &'a [u8],
    pub status: u16,
    pub response_length: u64,
    pub request_time: SystemTime,
    pub response_latency_ms: u64,
    pub integration_latency_ms: Option<u64>,
    pub integration_status: Option<u16>,
    pub error_message: Option<&'a str>,
    pub error_type: Option<ResponseType>,
    pub validation_error: Option<&'a str>,
    pub integration_error: Option<&'a str>,
    pub stage: &'a str,
    pub api_id: &'a str,
    pub domain_name: &'a [u8],
    /// The client's certificate, on a mutual-TLS connection.
    pub client_cert: Option<&'a crate::tls::ClientCert>,
    /// What the method's authorizer said (Lambda or Cognito).
    pub authorizer: Option<&'a crate::authorizer::AuthorizerOutput>,
    /// The credential (name, access key id) that signed an `AWS_IAM`
    /// request.
    pub caller: Option<(&'a str, Option<&'a str>)>,
}

/// `$context.requestTime` of the last second formatted (a shard logs
/// many requests per second).
#[derive(Default)]
struct TimeCache {
    secs: u64,
    text: String,
}

fn write_var(v: Var, e: &Entry<'_>, out: &mut Vec<u8>, time: &mut TimeCache) {
    match v {
        Var::RequestId => escaped(e.request_id.as_bytes(), out),
        Var::ExtendedRequestId => out.extend_from_slice(&crate::ids::extended_id(e.request_id)),
        Var::SourceIp => crate::http::response::write_ip(out, e.source_ip),
        Var::UserAgent => opt(e.user_agent, out),
        Var::ApiKey => opt(e.api_key, out),
        Var::HttpMethod => escaped(e.http_method.as_bytes(), out),
        Var::ResourcePath => opt(Some(e.resource_path.as_bytes()), out),
        Var::Path => escaped(e.path, out),
        Var::Protocol => out.extend_from_slice(b"HTTP/1.1"),
        Var::Status => number(u64::from(e.status), out),
        Var::ResponseLength => number(e.response_length, out),
        Var::RequestTime => {
            let secs = e
                .request_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if time.text.is_empty() || time.secs != secs {
                time.secs = secs;
                time.text = crate::ids::clf_time(e.request_time);
            }
            out.extend_from_slice(time.text.as_bytes());
        }
        Var::RequestTimeEpoch => number(
            e.request_time
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            out,
        ),
        Var::ResponseLatency => number(e.response_latency_ms, out),
        Var::IntegrationLatency => match e.integration_latency_ms {
            Some(ms) => number(ms, out),
            None => out.push(b'-'),
        },
        Var::IntegrationStatus => match e.integration_status {
            Some(s) => number(u64::from(s), out),
            None => out.push(b'-'),
        },
        Var::ErrorMessage => opt(e.error_message.map(str::as_bytes), out),
        Var::ErrorMessageString => match e.error_message {
            Some(m) => {
                out.push(b'"');
                escaped(m.as_bytes(), out);
                out.push(b'"');
            }
            None => out.push(b'-'),
        },
        Var::ErrorResponseType => opt(e.error_type.map(|t| t.name().as_bytes()), out),
        Var::ValidationError => opt(e.validation_error.map(str::as_bytes), out),
        Var::IntegrationError => opt(e.integration_error.map(str::as_bytes), out),
        Var::Stage => escaped(e.stage.as_bytes(), out),
        Var::ApiId => escaped(e.api_id.as_bytes(), out),
        Var::DomainName => opt(Some(e.domain_name), out),
        Var::DomainPrefix => {
            let prefix = e
                .domain_name
                .split(|&b| b == b'.')
                .next()
                .unwrap_or_default();
            opt(Some(prefix), out)
        }
        Var::Caller(f) => match e.caller {
            Some((name, key)) => escaped(f.of(name, key).as_bytes(), out),
            None => out.push(b'-'),
        },
        Var::ClientCert(f) => opt(
            e.client_cert.and_then(|c| c.field(f)).map(str::as_bytes),
            out,
        ),
        Var::Absent => out.push(b'-'),
    }
}

fn number(n: u64, out: &mut Vec<u8>) {
    let mut b = itoa_buf(n);
    out.extend_from_slice(b.as_mut_slice());
}

struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..]
    }
}

fn itoa_buf(mut n: u64) -> Digits {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    Digits { buf, start: i }
}

/// Empty values are `-`, as API Gateway writes them.
fn opt(v: Option<&[u8]>, out: &mut Vec<u8>) {
    match v {
        Some(v) if !v.is_empty() => escaped(v, out),
        _ => out.push(b'-'),
    }
}

/// Values are escaped so that a line stays one line and JSON formats stay
/// JSON: `"` and `\` get a backslash, control bytes become `\uXXXX`, and
/// bytes that are not UTF-8 (a client's raw header bytes) become `\ufffd`
/// (JSON text is UTF-8). Client-supplied bytes cannot forge log lines.
fn escaped(v: &[u8], out: &mut Vec<u8>) {
    let plain = !v
        .iter()
        .any(|&b| b == b'"' || b == b'\\' || b < 0x20 || b == 0x7f);
    if plain && (v.is_ascii() || std::str::from_utf8(v).is_ok()) {
        out.extend_from_slice(v);
        return;
    }
    for chunk in v.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'"' | b'\\' => {
                    out.push(b'\\');
                    out.push(b);
                }
                0..=0x1f | 0x7f => {
                    let _ = write!(out, "\\u{:04x}", b);
                }
                _ => out.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(b"\\ufffd");
        }
    }
}

/// Per-shard buffer of one destination may hold this much before lines
/// are dropped.
pub const SHARD_BUFFER_BYTES: usize = 1 << 20;
/// Batches waiting for the writer, across all shards.
const QUEUE_BATCHES: usize = 1024;

struct Batch {
    sink: u32,
    data: Vec<u8>,
    lines: u64,
}

/// One shard's pending lines, by destination.
#[derive(Default)]
pub struct ShardLogs {
    bufs: Vec<(Vec<u8>, u64)>,
    pub dropped: u64,
    time: TimeCache,
}

impl ShardLogs {
    /// Formats one line for `log` unless its buffer is full.
    pub fn log(&mut self, log: &AccessLog, entry: &Entry<'_>) {
        let i = log.sink as usize;
        if i >= self.bufs.len() {
            self.bufs.resize_with(i + 1, Default::default);
        }
        let (buf, lines) = &mut self.bufs[i];
        if buf.len() >= SHARD_BUFFER_BYTES {
            self.dropped += 1;
            return;
        }
        log.format.write_cached(entry, buf, &mut self.time);
        *lines += 1;
    }

    /// Hands the buffered lines to the writer (never blocks).
    pub fn flush(&mut self, sinks: &Sinks) {
        for (sink, (buf, lines)) in self.bufs.iter_mut().enumerate() {
            if buf.is_empty() {
                continue;
            }
            let batch = Batch {
                sink: sink as u32,
                data: std::mem::take(buf),
                lines: std::mem::take(lines),
            };
            match sinks.tx.try_send(Msg::Lines(batch)) {
                Ok(()) => {}
                Err(
                    TrySendError::Full(Msg::Lines(b)) | TrySendError::Disconnected(Msg::Lines(b)),
                ) => {
                    self.dropped += b.lines;
                    // Keep the allocation for the next lines.
                    let mut data = b.data;
                    data.clear();
                    *buf = data;
                }
                Err(_) => {}
            }
        }
    }
}

enum Msg {
    Lines(Batch),
    /// Write what came before, then answer.
    Sync(Sender<()>),
}

/// The destinations (named when snapshots are built) and the queue to the
/// writer thread.
pub struct Sinks {
    targets: ControlMutex<(HashMap<Target, u32>, Vec<Target>)>,
    tx: Sender<Msg>,
    rx: ControlMutex<Option<Receiver<Msg>>>,
    reopen: AtomicBool,
    pub write_errors: AtomicU64,
}

impl std::fmt::Debug for Sinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sinks").finish_non_exhaustive()
    }
}

impl Default for Sinks {
    fn default() -> Sinks {
        let (tx, rx) = crossbeam_channel::bounded(QUEUE_BATCHES);
        Sinks {
            targets: ControlMutex::new((HashMap::new(), Vec::new())),
            tx,
            rx: ControlMutex::new(Some(rx)),
            reopen: AtomicBool::new(false),
            write_errors: AtomicU64::new(0),
        }
    }
}

impl Sinks {
    /// The id of a destination (the same for the life of the process).
    pub fn id(&self, target: &Target) -> u32 {
        let mut g = match self.targets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(&id) = g.0.get(target) {
            return id;
        }
        let id = g.1.len() as u32;
        g.1.push(target.clone());
        g.0.insert(target.clone(), id);
        id
    }

    fn target(&self, id: u32) -> Option<Target> {
        let g = match self.targets.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        g.1.get(id as usize).cloned()
    }

    /// Asks the writer to reopen its files (log rotation).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }

    /// Starts the writer thread (once).
    pub fn start(self: &Arc<Self>) -> std::io::Result<()> {
        let rx = match self.rx.lock() {
            Ok(mut g) => g.take(),
            Err(p) => p.into_inner().take(),
        };
        let Some(rx) = rx else { return Ok(()) };
        let sinks = self.clone();
        std::thread::Builder::new()
            .name("tollgate-access-log".into())
            .spawn(move || writer(&sinks, &rx))?;
        Ok(())
    }

    /// Waits (up to `timeout`) until what was queued before is written.
    pub fn sync(&self, timeout: Duration) -> bool {
        let (tx, rx) = crossbeam_channel::bounded(1);
        if self.tx.send_timeout(Msg::Sync(tx), timeout).is_err() {
            return false;
        }
        rx.recv_timeout(timeout).is_ok()
    }
}

/// Where one destination's lines go, and what waits to be written there.
struct Sink {
    /// The destination (an id names the same one for the process's life).
    target: Option<Target>,
    out: Out,
    /// Lines gathered for one write (batches from every shard).
    buf: Vec<u8>,
    /// How many lines `buf` holds: what a failed write loses.
    lines: u64,
    /// A failed write left a part of a line in the file: the next write
    /// starts on a new line, so the lines after it stay whole.
    torn: bool,
    /// Lines lost since the last error line about this destination, and
    /// the last failure's words.
    lost: u64,
    last_error: String,
    last_report: Option<Instant>,
}

enum Out {
    Stdout,
    File(std::fs::File),
    /// Not open (failed; tried again with the next write).
    Closed,
}

/// What is gathered before a write: the writes are few, and a failure
/// loses at most this much.
const WRITE_BYTES: usize = 64 * 1024;

/// Error lines about one destination: at most one per this interval, with
/// the count of lines lost since the last.
const REPORT_EVERY: Duration = Duration::from_secs(10);

impl Sink {
    fn new(target: Option<Target>) -> Sink {
        Sink {
            target,
            out: Out::Closed,
            buf: Vec::new(),
            lines: 0,
            torn: false,
            lost: 0,
            last_error: String::new(),
            last_report: None,
        }
    }

    fn open(&mut self) -> Result<(), String> {
        if !matches!(self.out, Out::Closed) {
            return Ok(());
        }
        self.out = match &self.target {
            Some(Target::Stdout) => Out::Stdout,
            Some(Target::File(path)) => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(Out::File)
                .map_err(|e| format!("cannot open: {e}"))?,
            None => return Err("no such destination".into()),
        };
        Ok(())
    }

    /// Writes what is gathered. On an error the lines not written are
    /// lost, counted in `write_errors` and reported (at most every
    /// [`REPORT_EVERY`]), and the file is opened again for the next write.
    fn flush(&mut self, sinks: &Sinks) {
        if self.buf.is_empty() {
            // Losses not reported yet are, once their interval is over.
            if self.lost > 0 {
                self.report(false);
            }
            return;
        }
        // Lines a failed write lost: those not wholly written (a line cut
        // short counts as lost).
        let mut lost = self.lines;
        let result = self.open().and_then(|()| {
            let prefix = usize::from(self.torn);
            if self.torn {
                self.buf.insert(0, b'\n');
            }
            let mut written = 0;
            let r = write_fully(&mut self.out, &self.buf, &mut written);
            // Part of the gathered lines went out: the file now ends
            // inside a line (unless the part ended at a line's end).
            // Nothing written: it ends where it ended.
            if r.is_ok() {
                self.torn = false;
            } else if written > 0 {
                self.torn = self.buf[written - 1] != b'\n';
                let whole = self.buf[prefix.min(written)..written]
                    .iter()
                    .filter(|&&b| b == b'\n')
                    .count() as u64;
                lost = lost.saturating_sub(whole);
            }
            r.map_err(|e| format!("write failed: {e}"))
        });
        self.lines = 0;
        self.buf.clear();
        if let Err(why) = result {
            self.out = Out::Closed;
            sinks.write_errors.fetch_add(lost, Ordering::Relaxed);
            self.lost += lost;
            self.last_error = why;
        }
        self.report(false);
    }

    /// The error line for lines lost since the last one: at most every
    /// [`REPORT_EVERY`], or now with `force` (at exit), so every lost line
    /// is named by some line.
    fn report(&mut self, force: bool) {
        if self.lost == 0 {
            return;
        }
        if !force && self.last_report.is_some_and(|t| t.elapsed() < REPORT_EVERY) {
            return;
        }
        let destination = match &self.target {
            Some(Target::File(p)) => p.display().to_string(),
            _ => "standard output".to_owned(),
        };
        tracing::error!(
            access_log = %destination,
            lines_lost = self.lost,
            "access log {}",
            self.last_error
        );
        self.lost = 0;
        self.last_report = Some(Instant::now());
    }
}

fn write_fully(out: &mut Out, mut data: &[u8], written: &mut usize) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = match out {
            Out::Stdout => std::io::stdout().lock().write(data),
            Out::File(f) => f.write(data),
            Out::Closed => return Err(std::io::ErrorKind::NotConnected.into()),
        };
        match n {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n;
                data = &data[n..];
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if let Out::Stdout = out {
        std::io::stdout().lock().flush()?;
    }
    Ok(())
}

fn writer(sinks: &Sinks, rx: &Receiver<Msg>) {
    let mut open: HashMap<u32, Sink> = HashMap::new();
    loop {
        if sinks.reopen.swap(false, Ordering::AcqRel) {
            flush_all(sinks, &mut open);
            for s in open.values_mut() {
                s.out = Out::Closed;
                s.torn = false;
            }
            tracing::info!("access logs reopened");
        }
        let msg = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(m) => m,
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                flush_all(sinks, &mut open);
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                flush_all(sinks, &mut open);
                for s in open.values_mut() {
                    s.report(true);
                }
                return;
            }
        };
        match msg {
            Msg::Lines(b) => {
                let s = open
                    .entry(b.sink)
                    .or_insert_with(|| Sink::new(sinks.target(b.sink)));
                s.buf.extend_from_slice(&b.data);
                s.lines += b.lines;
                if s.buf.len() >= WRITE_BYTES {
                    s.flush(sinks);
                }
                if rx.is_empty() {
                    flush_all(sinks, &mut open);
                }
            }
            Msg::Sync(done) => {
                // Before exit (and in tests): every loss is named now.
                flush_all(sinks, &mut open);
                for s in open.values_mut() {
                    s.report(true);
                }
                let _ = done.send(());
            }
        }
    }
}

fn flush_all(sinks: &Sinks, open: &mut HashMap<u32, Sink>) {
    for s in open.values_mut() {
        s.flush(sinks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry<'static> {
        Entry {
            request_id: "abc",
            source_ip: "10.0.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            user_agent: Some(b"curl/8 \"x\"\n"),
            api_key: None,
            http_method: "GET",
            resource_path: "/pets/{petId}",
            path: b"/prod/pets/1",
            status: 200,
            response_length: 42,
            request_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            response_latency_ms: 3,
            integration_latency_ms: Some(2),
            integration_status: Some(200),
            error_message: None,
            error_type: None,
            validation_error: None,
            integration_error: None,
            stage: "prod",
            api_id: "petstore",
            domain_name: b"petstore.example.com",
            client_cert: None,
            authorizer: None,
            caller: None,
        }
    }

    fn line(format: &str) -> String {
        let f = Format::parse(format).unwrap_or_else(|e| panic!("{format}: {e}"));
        let mut out = Vec::new();
        f.write(&entry(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn clf_like() {
        assert_eq!(
            line("$context.identity.sourceIp - - [$context.requestTime] \"$context.httpMethod $context.resourcePath $context.protocol\" $context.status $context.responseLength $context.requestId"),
            "10.0.0.1 - - [14/Nov/2023:22:13:20 +0000] \"GET /pets/{petId} HTTP/1.1\" 200 42 abc\n"
        );
    }

    #[test]
    fn json_stays_json() {
        let l = line(
            r#"{"ua":"$context.identity.userAgent","err":"$context.error.message","lat":$context.integrationLatency,"s":"$context.status."}"#,
        );
        let v: serde_json::Value = serde_json::from_str(l.trim_end()).unwrap_or_default();
        assert_eq!(v["ua"], "curl/8 \"x\"\n");
        assert_eq!(v["err"], "-");
        assert_eq!(v["lat"], 2);
        assert_eq!(v["s"], "200.");
    }

    #[test]
    fn braces_and_opaque_names() {
        assert_eq!(
            line("${context.status}x $context.authorizer.claims.sub $context.xrayTraceId"),
            "200x - -\n"
        );
    }

    #[test]
    fn an_authorizers_output_is_logged() {
        let out = crate::authorizer::AuthorizerOutput {
            principal_id: "alice".into(),
            statements: Vec::new(),
            context: vec![
                ("tenant".into(), "t\"1".into()),
                ("claims.cognito:groups".into(), "[\"admins\"]".into()),
            ],
            usage_key: None,
        };
        let f = Format::parse(
            "$context.authorizer.principalId $context.authorizer.tenant ${context.authorizer.claims.cognito:groups} $context.authorizer.latency $context.authorizer.nope",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut line = Vec::new();
        f.write(
            &Entry {
                authorizer: Some(&out),
                ..entry()
            },
            &mut line,
        );
        assert_eq!(
            String::from_utf8_lossy(&line),
            "alice t\\\"1 [\\\"admins\\\"] - -\n"
        );
    }

    #[test]
    fn unknown_variables_are_errors() {
        let e = Format::parse("$context.statuss").err().unwrap_or_default();
        assert!(e.contains("$context.statuss"), "{e}");
        assert!(Format::parse("$context.status.code").is_err());
        assert!(Format::parse("plain text").is_err());
        assert!(Format::parse("${context.status").is_err());
        assert!(Format::parse("$context.status\n").is_err());
        // A `$` that is not a variable is text.
        assert_eq!(line("$5 $context.status"), "$5 200\n");
    }

    #[test]
    fn shard_buffer_is_bounded() {
        let sinks = Sinks::default();
        let log = AccessLog {
            sink: sinks.id(&Target::Stdout),
            format: Format::parse("$context.requestId").unwrap_or_else(|e| panic!("{e}")),
        };
        let mut s = ShardLogs::default();
        let big = "x".repeat(1000);
        let mut e = entry();
        e.request_id = Box::leak(big.into_boxed_str());
        for _ in 0..2000 {
            s.log(&log, &e);
        }
        assert!(s.dropped > 0);
        assert!(s.bufs[0].0.len() < SHARD_BUFFER_BYTES + 2000);
    }
}
