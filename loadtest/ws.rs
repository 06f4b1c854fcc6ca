//! Load-test WebSocket tools (`loadtest/run` builds and starts them for
//! scenario (j)): an echo server, the direct baseline, and a load client that
//! measures message round trips.
//!
//! ```text
//! cargo build --release --example loadtest-ws
//! target/release/examples/loadtest-ws echo [--listen ADDR] [--threads N]
//! target/release/examples/loadtest-ws load --url ws://HOST:PORT/PATH [--conns N]
//!     [--duration S] [--size B] [--host HOST]
//! ```
//!
//! * `echo` accepts WebSocket connections on `--listen` (default
//!   `127.0.0.1:0`; prints `listening on ADDR` once bound) with `--threads`
//!   accept loops on `SO_REUSEPORT` sockets (default: number of CPUs), and
//!   sends every text or binary message back as it came. One blocking thread
//!   per connection, `TCP_NODELAY`.
//! * `load` opens `--conns` connections (default 64) to `--url`, then, on
//!   every connection at once, sends a text message of `--size` bytes
//!   (default 32, not JSON) and waits for the echo before sending the next
//!   one (closed loop: one message in flight per connection), for
//!   `--duration` seconds (default 10). `--host` sets the `Host` header of
//!   the upgrade request. It prints one line
//!   `WSJSON {"messages":..,"rps":..,"p50_us":..,...}` with round trips per
//!   second, latency percentiles in µs and error counts (failed handshakes,
//!   send/receive errors, echoes that differ from what was sent). Exit status
//!   0 even with errors: the harness reads the counts.
//!
//! One blocking OS thread per connection, no runtime, no `unsafe`.

#[path = "common.rs"]
mod common;

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{self, Message};

fn usage(msg: &str) -> ! {
    eprintln!("loadtest-ws: {msg}");
    eprintln!("usage: loadtest-ws echo [--listen ADDR] [--threads N]");
    eprintln!(
        "       loadtest-ws load --url ws://HOST:PORT/PATH [--conns N] [--duration S] [--size B] [--host HOST]"
    );
    std::process::exit(2);
}

fn fail(msg: &str) -> ! {
    eprintln!("loadtest-ws: {msg}");
    std::process::exit(1);
}

fn number<T: std::str::FromStr>(key: &str, value: &str) -> T {
    value
        .parse()
        .unwrap_or_else(|_| usage(&format!("bad {key} {value}")))
}

fn main() {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("echo") => echo(common::options(args).unwrap_or_else(|m| usage(&m))),
        Some("load") => load(common::options(args).unwrap_or_else(|m| usage(&m))),
        Some(other) => usage(&format!("unknown mode {other}")),
        None => usage("a mode is required"),
    }
}

// --------------------------------------------------------------------------
// echo server
// --------------------------------------------------------------------------

fn echo(opts: Vec<(String, String)>) {
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut threads = thread::available_parallelism().map_or(1, |n| n.get());
    for (k, v) in opts {
        match k.as_str() {
            "--listen" => listen = number(&k, &v),
            "--threads" => threads = number::<usize>(&k, &v).max(1),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    let first = common::bind_reuseport(listen)
        .unwrap_or_else(|e| fail(&format!("cannot bind {listen}: {e}")));
    let addr = first
        .local_addr()
        .unwrap_or_else(|e| fail(&format!("local_addr: {e}")));
    let mut listeners = vec![first];
    for _ in 1..threads {
        listeners.push(
            common::bind_reuseport(addr)
                .unwrap_or_else(|e| fail(&format!("cannot bind {addr} again: {e}"))),
        );
    }
    println!("listening on {addr}");
    let _ = io::stdout().flush();
    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let h = thread::Builder::new()
            .name(format!("accept-{i}"))
            .spawn(move || accept_loop(listener))
            .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
        handles.push(h);
    }
    for h in handles {
        let _ = h.join();
    }
}

fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let spawned = thread::Builder::new()
                    .stack_size(256 * 1024)
                    .spawn(move || serve_echo(stream));
                if let Err(e) = spawned {
                    eprintln!("loadtest-ws: spawn: {e}");
                }
            }
            Err(e) => {
                eprintln!("loadtest-ws: accept: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn serve_echo(stream: TcpStream) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let Ok(mut ws) = tungstenite::accept(stream) else {
        return;
    };
    loop {
        match ws.read() {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if ws.send(m).is_err() {
                    return;
                }
            }
            // Pings are answered by tungstenite on the next read/flush.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {
                if ws.flush().is_err() {
                    return;
                }
            }
            Ok(Message::Close(_)) => {
                let _ = ws.flush();
                return;
            }
            Err(_) => return,
        }
    }
}

// --------------------------------------------------------------------------
// load client
// --------------------------------------------------------------------------

#[derive(Default)]
struct Errors {
    handshake: AtomicU64,
    send: AtomicU64,
    recv: AtomicU64,
    mismatch: AtomicU64,
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(url: &str, host: Option<&str>, addr: SocketAddr) -> Result<Client, String> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(url)
        .map_err(|e| format!("bad --url {url}: {e}"))?;
    if let Some(h) = host {
        let v = tungstenite::http::HeaderValue::from_str(h)
            .map_err(|e| format!("bad --host {h}: {e}"))?;
        req.headers_mut().insert("Host", v);
    }
    match tungstenite::client(req, stream) {
        Ok((ws, _)) => Ok(ws),
        Err(e) => Err(format!("handshake: {e}")),
    }
}

/// Host and port of a `ws://host:port/...` URL, resolved.
fn url_addr(url: &str) -> SocketAddr {
    let rest = url
        .strip_prefix("ws://")
        .unwrap_or_else(|| usage(&format!("--url must start with ws://: {url}")));
    let authority = rest.split('/').next().unwrap_or(rest);
    std::net::ToSocketAddrs::to_socket_addrs(authority)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| usage(&format!("cannot resolve {authority} (give host:port)")))
}

fn load(opts: Vec<(String, String)>) {
    let mut url = None;
    let mut host = None;
    let mut conns = 64usize;
    let mut duration = 10.0f64;
    let mut size = 32usize;
    for (k, v) in opts {
        match k.as_str() {
            "--url" => url = Some(v),
            "--host" => host = Some(v),
            "--conns" => conns = number::<usize>(&k, &v).max(1),
            "--duration" => duration = number(&k, &v),
            "--size" => size = number::<usize>(&k, &v).max(1),
            _ => usage(&format!("unknown option {k}")),
        }
    }
    let url = url.unwrap_or_else(|| usage("--url is required"));
    let addr = url_addr(&url);
    // Not JSON, so a gateway routes it to `$default`.
    let payload: String = (0..size).map(|i| (b'a' + (i % 26) as u8) as char).collect();

    let errors = Arc::new(Errors::default());
    let stop = Arc::new(AtomicBool::new(false));
    // Every connection is open before the clock starts.
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::with_capacity(conns);
    for i in 0..conns {
        let (url, host, payload) = (url.clone(), host.clone(), payload.clone());
        let (errors, stop, barrier) = (errors.clone(), stop.clone(), barrier.clone());
        let h = thread::Builder::new()
            .name(format!("conn-{i}"))
            .stack_size(256 * 1024)
            .spawn(move || {
                let ws = match connect(&url, host.as_deref(), addr) {
                    Ok(ws) => Some(ws),
                    Err(e) => {
                        if errors.handshake.fetch_add(1, Ordering::Relaxed) == 0 {
                            eprintln!("loadtest-ws: {e}");
                        }
                        None
                    }
                };
                barrier.wait();
                match ws {
                    Some(ws) => round_trips(ws, &payload, &stop, &errors),
                    None => Vec::new(),
                }
            })
            .unwrap_or_else(|e| fail(&format!("spawn: {e}")));
        handles.push(h);
    }
    barrier.wait();
    let started = Instant::now();
    thread::sleep(Duration::from_secs_f64(duration));
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u32> = Vec::new();
    for h in handles {
        if let Ok(v) = h.join() {
            lat.extend(v);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    lat.sort_unstable();
    let pct = |p: f64| -> u32 {
        if lat.is_empty() {
            return 0;
        }
        let i = ((p / 100.0) * lat.len() as f64).ceil() as usize;
        lat[i.clamp(1, lat.len()) - 1]
    };
    let mean = if lat.is_empty() {
        0.0
    } else {
        lat.iter().map(|&v| f64::from(v)).sum::<f64>() / lat.len() as f64
    };
    println!(
        "WSJSON {{\"messages\":{},\"duration_s\":{:.3},\"rps\":{:.1},\"conns\":{},\"size\":{},\
         \"err_handshake\":{},\"err_send\":{},\"err_recv\":{},\"err_mismatch\":{},\
         \"p50_us\":{},\"p90_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{},\"mean_us\":{:.1}}}",
        lat.len(),
        secs,
        lat.len() as f64 / secs,
        conns,
        size,
        errors.handshake.load(Ordering::Relaxed),
        errors.send.load(Ordering::Relaxed),
        errors.recv.load(Ordering::Relaxed),
        errors.mismatch.load(Ordering::Relaxed),
        pct(50.0),
        pct(90.0),
        pct(99.0),
        pct(99.9),
        lat.last().copied().unwrap_or(0),
        mean,
    );
}

/// Sends a message, waits for its echo, and again, until `stop`; returns the
/// round-trip times in µs.
fn round_trips(mut ws: Client, payload: &str, stop: &AtomicBool, errors: &Errors) -> Vec<u32> {
    let mut lat = Vec::with_capacity(1 << 16);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        if ws.send(Message::text(payload)).is_err() {
            errors.send.fetch_add(1, Ordering::Relaxed);
            return lat;
        }
        let echoed = loop {
            match ws.read() {
                Ok(Message::Text(t)) => break t.as_str() == payload,
                Ok(Message::Binary(b)) => break b.as_ref() == payload.as_bytes(),
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => continue,
                Ok(Message::Close(_)) | Err(_) => {
                    errors.recv.fetch_add(1, Ordering::Relaxed);
                    return lat;
                }
            }
        };
        lat.push(t0.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
        if !echoed {
            errors.mismatch.fetch_add(1, Ordering::Relaxed);
        }
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    lat
}
