//! Open-loop load generator: HTTP/1.1 `GET`s at a fixed rate, evenly spread
//! in time whatever the server answers (wrk is closed loop: it waits for a
//! response before the next request, so a slow or throttling server slows
//! the load down). `loadtest/throttle` builds and runs it.
//!
//! ```text
//! cargo build --release --example paced
//! target/release/examples/paced --url http://127.0.0.1:8080/lt/s/x --rate 2000 --duration 10
//! ```
//!
//! * `--url URL`              `http://host:port/path` (required).
//! * `--rate N`               requests per second (required).
//! * `--duration S`           seconds of sending (default 10).
//! * `--connections N`        keep-alive connections opened before the start (default 64).
//! * `--max-connections N`    cap on connections (default 1024).
//! * `--timeout-ms N`         longest wait for a response, or a connect (default 5000).
//! * `--late-ms N`            a send more than N ms after its due time is late (default 1).
//! * `--start-at-ms T`        start at this Unix time in ms (several generators in step);
//!   default: 300 ms after the connections are opened.
//! * `--header 'Name: value'` an extra request header (repeatable).
//!
//! Schedule: request `i` is due at `start + i / rate`, an absolute time, never
//! "a gap after the last response". Each connection is a thread with a
//! blocking socket; a free connection claims the next due request (one atomic
//! counter), sleeps until its due time and sends it. A connection waiting for
//! its response claims nothing, so the next request goes to another, free
//! one. When a connection claims a request more than `--late-ms` overdue
//! while every other connection is waiting for a response, it opens one
//! more connection (one at a time, up to `--max-connections`); an overdue
//! request with idle connections around means the machine was slow to run a
//! thread, and more connections would only add to that. Every
//! send's lag behind its due time is recorded, and sends more than
//! `--late-ms` behind are counted as late: nothing is dropped or re-timed.
//!
//! Output (stdout): one JSON object: totals by status (200, 429, other,
//! error), counts per second by the second a request was sent and by the
//! second its response arrived, send lag, connections opened, and latency
//! percentiles in µs, both from the due time (includes any lateness, so no
//! coordinated omission) and from the actual send.
//!
//! std threads, `httparse` and `serde_json` only; no `unsafe`.

#[path = "common.rs"]
mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

const NANOS: u64 = 1_000_000_000;
const MAX_HEAD: usize = 64 * 1024;

struct Opts {
    url: String,
    addr: SocketAddr,
    request: Vec<u8>,
    rate: f64,
    duration: f64,
    connections: usize,
    max_connections: usize,
    timeout: Duration,
    late_ns: u64,
    start_at_ms: Option<u64>,
}

fn usage(msg: &str) -> ! {
    eprintln!("paced: {msg}");
    eprintln!(
        "usage: paced --url http://HOST:PORT/PATH --rate N [--duration S] [--connections N] \
         [--max-connections N] [--timeout-ms N] [--late-ms N] [--start-at-ms T] [--header 'K: V']..."
    );
    std::process::exit(2);
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad {key} {value}")))
}

fn parse_opts() -> Opts {
    let mut url = None;
    let mut rate = None;
    let mut duration = 10.0f64;
    let mut connections = 64;
    let mut max_connections = 1024;
    let mut timeout_ms = 5000u64;
    let mut late_ms = 1.0f64;
    let mut start_at_ms = None;
    let mut headers = String::new();
    let pairs = common::options(std::env::args().skip(1)).unwrap_or_else(|m| usage(&m));
    for (key, value) in pairs {
        match key.as_str() {
            "--url" => url = Some(value),
            "--rate" => rate = Some(number::<f64>(&key, &value)),
            "--duration" => duration = number(&key, &value),
            "--connections" => connections = number(&key, &value),
            "--max-connections" => max_connections = number(&key, &value),
            "--timeout-ms" => timeout_ms = number(&key, &value),
            "--late-ms" => late_ms = number(&key, &value),
            "--start-at-ms" => start_at_ms = Some(number(&key, &value)),
            "--header" => {
                if !value.contains(':') || value.contains('\r') || value.contains('\n') {
                    usage(&format!("bad --header {value}"));
                }
                headers.push_str(&value);
                headers.push_str("\r\n");
            }
            _ => usage(&format!("unknown option {key}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let rate = rate.unwrap_or_else(|| usage("--rate is required"));
    if !(rate > 0.0 && rate.is_finite() && duration > 0.0 && duration.is_finite()) {
        usage("--rate and --duration must be positive");
    }
    if connections == 0 || max_connections < connections {
        usage("need 1 <= --connections <= --max-connections");
    }
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| usage("only http:// URLs"));
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage(&format!("cannot resolve {authority} (give host:port)")));
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\n{headers}\r\n").into_bytes();
    Opts {
        url,
        addr,
        request,
        rate,
        duration,
        connections,
        max_connections,
        timeout: Duration::from_millis(timeout_ms.max(1)),
        late_ns: (late_ms * 1e6) as u64,
        start_at_ms,
    }
}

/// Status classes counted per second.
const C200: usize = 0;
const C429: usize = 1;
const COTHER: usize = 2;
const CERROR: usize = 3;

fn class(status: Option<u16>) -> usize {
    match status {
        Some(200) => C200,
        Some(429) => C429,
        Some(_) => COTHER,
        None => CERROR,
    }
}

/// What one connection thread saw.
#[derive(Default)]
struct Stats {
    /// Per second of sending: requests sent, then responses by class.
    by_sent: Vec<[u64; 5]>,
    /// Per second of arrival: responses by class.
    by_received: Vec<[u64; 4]>,
    /// Per request: (class, ns from due time to response, ns from send to response).
    latency: Vec<(u8, u64, u64)>,
    /// Per send: ns behind its due time.
    lag: Vec<u64>,
    /// Requests claimed by a connection only after their due time (all
    /// were busy, or the machine was slow to run a free one).
    overdue: u64,
    connects: u64,
    connect_errors: u64,
    /// Connections that ended in an error or timeout mid-request.
    io_errors: u64,
    /// Responses that asked to close the connection.
    closed_by_server: u64,
}

fn slot<T: Default + Copy, const N: usize>(v: &mut Vec<[T; N]>, i: usize) -> &mut [T; N] {
    if v.len() <= i {
        v.resize(i + 1, [T::default(); N]);
    }
    &mut v[i]
}

struct Shared {
    opts: Opts,
    start: Instant,
    total: u64,
    next: AtomicU64,
    /// Connection threads started (never more than `max_connections`).
    threads: AtomicUsize,
    /// Connections waiting for a response right now.
    busy: AtomicUsize,
    /// A connection is being added (one at a time).
    opening: AtomicBool,
}

impl Shared {
    fn due(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * (NANOS as f64 / self.opts.rate)) as u64)
    }

    /// Reserves a thread for one more connection if every other one is
    /// waiting for a response (an overdue request with idle connections
    /// around means the machine was slow to run a thread, which more
    /// connections would not help), none is being added already, and the
    /// cap is not reached.
    fn reserve_thread(&self) -> bool {
        let threads = self.threads.load(Ordering::Acquire);
        if self.busy.load(Ordering::Acquire) + 1 < threads
            || self.opening.swap(true, Ordering::AcqRel)
        {
            return false;
        }
        let reserved = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.opts.max_connections).then_some(n + 1)
            })
            .is_ok();
        if !reserved {
            self.opening.store(false, Ordering::Release);
        }
        reserved
    }
}

/// Starts a connection thread; `added`: it was reserved by
/// [`Shared::reserve_thread`] while running (clears `opening` once connected).
fn spawn_connection(shared: &Arc<Shared>, tx: &mpsc::Sender<Stats>, added: bool) {
    let (mine, tx) = (shared.clone(), tx.clone());
    let spawned = thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            let stats = connection(&mine, &tx, added);
            let _ = tx.send(stats);
        });
    if let Err(e) = spawned {
        eprintln!("paced: cannot start a connection thread: {e}");
        shared.threads.fetch_sub(1, Ordering::AcqRel);
        if added {
            shared.opening.store(false, Ordering::Release);
        }
    }
}

fn connect(opts: &Opts, stats: &mut Stats) -> Option<TcpStream> {
    stats.connects += 1;
    let s = match TcpStream::connect_timeout(&opts.addr, opts.timeout) {
        Ok(s) => s,
        Err(_) => {
            stats.connect_errors += 1;
            return None;
        }
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(opts.timeout));
    let _ = s.set_write_timeout(Some(opts.timeout));
    Some(s)
}

fn sleep_until(t: Instant) {
    loop {
        let now = Instant::now();
        if now >= t {
            return;
        }
        thread::sleep(t - now);
    }
}

/// One keep-alive connection: claim the next due request, send it on time,
/// wait for its response, repeat.
fn connection(shared: &Arc<Shared>, tx: &mpsc::Sender<Stats>, added: bool) -> Stats {
    let opts = &shared.opts;
    let mut stats = Stats::default();
    let mut stream = connect(opts, &mut stats);
    if added {
        shared.opening.store(false, Ordering::Release);
    }
    let mut buf = Vec::with_capacity(16 * 1024);
    loop {
        let i = shared.next.fetch_add(1, Ordering::AcqRel);
        if i >= shared.total {
            break;
        }
        let due = shared.due(i);
        let claimed = Instant::now();
        if claimed > due {
            stats.overdue += 1;
            if (claimed - due).as_nanos() as u64 > opts.late_ns && shared.reserve_thread() {
                spawn_connection(shared, tx, true);
            }
        } else {
            sleep_until(due);
        }
        if stream.is_none() {
            stream = connect(opts, &mut stats);
        }
        let sent = Instant::now();
        let lag = sent.saturating_duration_since(due).as_nanos() as u64;
        stats.lag.push(lag);
        let sec = (sent.saturating_duration_since(shared.start).as_nanos() as u64 / NANOS) as usize;
        slot(&mut stats.by_sent, sec)[0] += 1;
        shared.busy.fetch_add(1, Ordering::AcqRel);
        let outcome = match stream.as_mut() {
            Some(s) => exchange(s, &opts.request, &mut buf),
            None => Err(io::Error::other("connect failed")),
        };
        shared.busy.fetch_sub(1, Ordering::AcqRel);
        let done = Instant::now();
        let status = match outcome {
            Ok((status, close)) => {
                if close {
                    stats.closed_by_server += 1;
                    stream = None;
                }
                Some(status)
            }
            Err(_) => {
                if stream.is_some() {
                    stats.io_errors += 1;
                }
                stream = None;
                None
            }
        };
        let c = class(status);
        slot(&mut stats.by_sent, sec)[1 + c] += 1;
        let rsec =
            (done.saturating_duration_since(shared.start).as_nanos() as u64 / NANOS) as usize;
        slot(&mut stats.by_received, rsec)[c] += 1;
        stats.latency.push((
            c as u8,
            done.saturating_duration_since(due).as_nanos() as u64,
            done.saturating_duration_since(sent).as_nanos() as u64,
        ));
    }
    stats
}

/// Sends one request and reads its response; returns the status and
/// whether the connection must be closed after it.
fn exchange(s: &mut TcpStream, request: &[u8], buf: &mut Vec<u8>) -> io::Result<(u16, bool)> {
    s.write_all(request)?;
    buf.clear();
    loop {
        // The head.
        let (status, head_len, framing, close) = loop {
            let mut headers = [httparse::EMPTY_HEADER; 64];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(buf) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = r.code.unwrap_or(0);
                    let mut framing = Framing::UntilClose;
                    let mut close = r.version == Some(0);
                    for h in r.headers.iter() {
                        if h.name.eq_ignore_ascii_case("content-length") {
                            let n = std::str::from_utf8(h.value)
                                .ok()
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .ok_or_else(|| io::Error::other("bad Content-Length"))?;
                            framing = Framing::Length(n);
                        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
                            && h.value.eq_ignore_ascii_case(b"chunked")
                        {
                            framing = Framing::Chunked;
                        } else if h.name.eq_ignore_ascii_case("connection") {
                            if h.value.eq_ignore_ascii_case(b"close") {
                                close = true;
                            } else if h.value.eq_ignore_ascii_case(b"keep-alive") {
                                close = false;
                            }
                        }
                    }
                    if status == 204 || status == 304 || (100..200).contains(&status) {
                        framing = Framing::Length(0);
                    }
                    break (status, n, framing, close);
                }
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return Err(io::Error::other("response head too large"));
                    }
                    fill(s, buf)?;
                }
                Err(e) => return Err(io::Error::other(e.to_string())),
            }
        };
        if (100..200).contains(&status) {
            // An interim response: the real one follows.
            buf.drain(..head_len);
            continue;
        }
        match framing {
            Framing::Length(n) => {
                let have = buf.len() - head_len;
                let mut left = n.saturating_sub(have);
                let mut sink = [0u8; 16 * 1024];
                while left > 0 {
                    let want = left.min(sink.len());
                    let got = s.read(&mut sink[..want])?;
                    if got == 0 {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    left -= got;
                }
                return Ok((status, close));
            }
            Framing::Chunked => {
                buf.drain(..head_len);
                skip_chunked(s, buf)?;
                return Ok((status, close));
            }
            Framing::UntilClose => {
                let mut sink = [0u8; 16 * 1024];
                while s.read(&mut sink)? > 0 {}
                return Ok((status, true));
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

fn fill(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    let mut tmp = [0u8; 16 * 1024];
    let n = s.read(&mut tmp)?;
    if n == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    buf.extend_from_slice(&tmp[..n]);
    Ok(())
}

/// Reads past a chunked body (and its trailers); `buf` holds what was
/// already read of it.
fn skip_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let line_end = loop {
            if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                break i;
            }
            if buf.len() > MAX_HEAD {
                return Err(io::Error::other("chunk size line too long"));
            }
            fill(s, buf)?;
        };
        let line = std::str::from_utf8(&buf[..line_end]).map_err(io::Error::other)?;
        let hex = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(hex, 16).map_err(io::Error::other)?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers, up to an empty line.
            loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    let empty = i == 0;
                    buf.drain(..i + 2);
                    if empty {
                        return Ok(());
                    }
                } else {
                    fill(s, buf)?;
                }
            }
        }
        let mut left = size + 2;
        let take = left.min(buf.len());
        buf.drain(..take);
        left -= take;
        while left > 0 {
            let mut sink = [0u8; 16 * 1024];
            let want = left.min(sink.len());
            let got = s.read(&mut sink[..want])?;
            if got == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= got;
        }
    }
}

/// Percentiles of ns values, reported in µs.
fn percentiles(mut v: Vec<u64>) -> Value {
    if v.is_empty() {
        return json!(null);
    }
    v.sort_unstable();
    let at = |p: f64| {
        let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
        v[i.clamp(1, v.len()) - 1] as f64 / 1000.0
    };
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64 / 1000.0;
    json!({
        "count": v.len(),
        "p50": at(50.0),
        "p90": at(90.0),
        "p99": at(99.0),
        "p99.9": at(99.9),
        "max": v[v.len() - 1] as f64 / 1000.0,
        "mean": (mean * 10.0).round() / 10.0,
    })
}

fn main() {
    let opts = parse_opts();
    let total = (opts.rate * opts.duration).round() as u64;
    let initial = opts.connections;
    // The start: an agreed wall-clock time, or shortly after connecting.
    let start = match opts.start_at_ms {
        Some(ms) => {
            let now_ms = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            if ms < now_ms {
                eprintln!("paced: --start-at-ms is {} ms in the past", now_ms - ms);
            }
            Instant::now() + Duration::from_millis(ms.saturating_sub(now_ms))
        }
        None => Instant::now() + Duration::from_millis(300 + initial as u64 / 4),
    };
    let start_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        + start.saturating_duration_since(Instant::now()).as_millis() as u64;
    let shared = Arc::new(Shared {
        opts,
        start,
        total,
        next: AtomicU64::new(0),
        threads: AtomicUsize::new(initial),
        busy: AtomicUsize::new(0),
        opening: AtomicBool::new(false),
    });
    let (tx, rx) = mpsc::channel();
    for _ in 0..initial {
        spawn_connection(&shared, &tx, false);
    }
    drop(tx);
    // Every thread sends its stats when it ends; the channel closes when
    // the last one (including those opened on the way) has ended.
    let mut all = Vec::new();
    for s in rx {
        all.push(s);
    }
    let ended = Instant::now();
    report(&shared, all, start_unix_ms, ended);
}

fn report(shared: &Shared, all: Vec<Stats>, start_unix_ms: u64, ended: Instant) {
    let o = &shared.opts;
    let mut by_sent: Vec<[u64; 5]> = Vec::new();
    let mut by_received: Vec<[u64; 4]> = Vec::new();
    let mut lag = Vec::new();
    let mut lat = [Vec::new(), Vec::new(), Vec::new()]; // all, 200, 429 (from due)
    let mut service = [Vec::new(), Vec::new(), Vec::new()]; // all, 200, 429 (from send)
    let (mut overdue, mut connects, mut connect_errors, mut io_errors, mut closed) =
        (0, 0, 0, 0, 0);
    for s in all {
        for (i, row) in s.by_sent.iter().enumerate() {
            let d = slot(&mut by_sent, i);
            for (d, r) in d.iter_mut().zip(row) {
                *d += r;
            }
        }
        for (i, row) in s.by_received.iter().enumerate() {
            let d = slot(&mut by_received, i);
            for (d, r) in d.iter_mut().zip(row) {
                *d += r;
            }
        }
        lag.extend(s.lag);
        for (c, from_due, from_send) in s.latency {
            if c as usize == CERROR {
                continue;
            }
            lat[0].push(from_due);
            service[0].push(from_send);
            if c as usize == C200 {
                lat[1].push(from_due);
                service[1].push(from_send);
            } else if c as usize == C429 {
                lat[2].push(from_due);
                service[2].push(from_send);
            }
        }
        overdue += s.overdue;
        connects += s.connects;
        connect_errors += s.connect_errors;
        io_errors += s.io_errors;
        closed += s.closed_by_server;
    }
    let sum = |k: usize| by_sent.iter().map(|r| r[k]).sum::<u64>();
    let sent = sum(0);
    let late = lag.iter().filter(|&&l| l > o.late_ns).count();
    let late_10ms = lag.iter().filter(|&&l| l > 10_000_000).count();
    let per_sent: Vec<Value> = by_sent
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"second": i, "sent": r[0], "200": r[1], "429": r[2], "other": r[3], "error": r[4]}))
        .collect();
    let per_received: Vec<Value> = by_received
        .iter()
        .enumerate()
        .map(|(i, r)| json!({"second": i, "200": r[0], "429": r[1], "other": r[2], "error": r[3]}))
        .collect();
    let [l_all, l_200, l_429] = lat;
    let [s_all, s_200, s_429] = service;
    let out = json!({
        "url": o.url,
        "rate": o.rate,
        "duration_s": o.duration,
        "start_unix_ms": start_unix_ms,
        "scheduled": shared.total,
        "sent": sent,
        "send_rate": sent as f64 / o.duration,
        "status": {"200": sum(1), "429": sum(2), "other": sum(3), "error": sum(4)},
        "late": {
            "threshold_ms": o.late_ns as f64 / 1e6,
            "count": late,
            "over_10ms": late_10ms,
            "claimed_overdue": overdue,
            "lag_us": percentiles(lag),
        },
        "connections": {
            "initial": o.connections,
            "max": o.max_connections,
            "threads": shared.threads.load(Ordering::Acquire),
            "connects": connects,
            "connect_errors": connect_errors,
            "io_errors": io_errors,
            "closed_by_server": closed,
        },
        "latency_from_due_us": {"all": percentiles(l_all), "200": percentiles(l_200), "429": percentiles(l_429)},
        "latency_from_send_us": {"all": percentiles(s_all), "200": percentiles(s_200), "429": percentiles(s_429)},
        "wall_s": ended.saturating_duration_since(shared.start).as_secs_f64(),
        "per_second_sent": per_sent,
        "per_second_received": per_received,
    });
    println!("{out}");
}
