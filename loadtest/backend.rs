//! Load-test origin: a small, fast HTTP/1.1 server that answers every request
//! with `200` and a fixed body (`loadtest/run` builds and starts it).
//!
//! ```text
//! cargo build --release --example loadtest-backend
//! target/release/examples/loadtest-backend [--listen ADDR] [--body-size N] [--threads N]
//! ```
//!
//! * `--listen ADDR`  address to bind (default `127.0.0.1:0`); once bound it
//!   prints `listening on ADDR` on stdout.
//! * `--body-size N`  every response body is N bytes (default 2: `ok`).
//! * `--threads N`    accept loops, each on its own `SO_REUSEPORT` socket
//!   (default: number of CPUs).
//!
//! Design: one blocking OS thread per connection (small stack), `TCP_NODELAY`,
//! keep-alive, pipelining (every complete request in the read buffer is
//! answered, responses are written in one batch), `Content-Length` and
//! chunked request bodies are skipped, `Connection: close` and HTTP/1.0 are
//! honoured. Responses are built once at start-up. No `unsafe`, no runtime.

#[path = "common.rs"]
mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

const READ_BUF: usize = 64 * 1024;
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
/// Responses whose body is at most this big are copied into one batch buffer
/// (one write for a pipelined batch); bigger ones are written straight from
/// the pre-built response.
const COPY_LIMIT: usize = 16 * 1024;

struct Responses {
    keep_alive: Vec<u8>,
    close: Vec<u8>,
    head_len_keep_alive: usize,
    head_len_close: usize,
    body_size: usize,
}

impl Responses {
    fn new(body_size: usize) -> Responses {
        let mut body = Vec::with_capacity(body_size);
        if body_size == 2 {
            body.extend_from_slice(b"ok");
        } else {
            body.extend((0..body_size).map(|i| b'a' + (i % 26) as u8));
        }
        let build = |conn: &str| {
            let head = format!(
                "HTTP/1.1 200 OK\r\nServer: loadtest-backend\r\nContent-Type: text/plain\r\nContent-Length: {body_size}\r\n{conn}\r\n"
            );
            let mut v = head.clone().into_bytes();
            v.extend_from_slice(&body);
            (v, head.len())
        };
        let (keep_alive, head_len_keep_alive) = build("");
        let (close, head_len_close) = build("Connection: close\r\n");
        Responses {
            keep_alive,
            close,
            head_len_keep_alive,
            head_len_close,
            body_size,
        }
    }

    fn get(&self, close: bool, head_only: bool) -> &[u8] {
        match (close, head_only) {
            (false, false) => &self.keep_alive,
            (false, true) => &self.keep_alive[..self.head_len_keep_alive],
            (true, false) => &self.close,
            (true, true) => &self.close[..self.head_len_close],
        }
    }
}

struct Opts {
    listen: SocketAddr,
    body_size: usize,
    threads: usize,
}

fn usage(msg: &str) -> ! {
    eprintln!("loadtest-backend: {msg}");
    eprintln!("usage: loadtest-backend [--listen ADDR] [--body-size N] [--threads N]");
    std::process::exit(2);
}

fn parse_opts() -> Opts {
    let mut opts = Opts {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        body_size: 2,
        threads: thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let pairs = common::options(std::env::args().skip(1)).unwrap_or_else(|m| usage(&m));
    for (key, value) in pairs {
        match key.as_str() {
            "--listen" => {
                opts.listen = value
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad --listen {value}")))
            }
            "--body-size" => {
                opts.body_size = value
                    .parse()
                    .unwrap_or_else(|_| usage(&format!("bad --body-size {value}")))
            }
            "--threads" => {
                opts.threads = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage(&format!("bad --threads {value}")))
            }
            _ => usage(&format!("unknown option {key}")),
        }
    }
    opts
}

fn main() {
    let opts = parse_opts();
    let first = common::bind_reuseport(opts.listen).unwrap_or_else(|e| {
        eprintln!("loadtest-backend: cannot bind {}: {e}", opts.listen);
        std::process::exit(1);
    });
    let addr = match first.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("loadtest-backend: local_addr: {e}");
            std::process::exit(1);
        }
    };
    let mut listeners = vec![first];
    for _ in 1..opts.threads {
        match common::bind_reuseport(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                eprintln!("loadtest-backend: cannot bind {addr} again: {e}");
                std::process::exit(1);
            }
        }
    }
    let responses = Arc::new(Responses::new(opts.body_size));
    println!("listening on {addr}");
    let _ = io::stdout().flush();

    let mut handles = Vec::new();
    for (i, listener) in listeners.into_iter().enumerate() {
        let responses = responses.clone();
        let h = thread::Builder::new()
            .name(format!("accept-{i}"))
            .spawn(move || accept_loop(listener, responses));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => {
                eprintln!("loadtest-backend: spawn: {e}");
                std::process::exit(1);
            }
        }
    }
    for h in handles {
        let _ = h.join();
    }
}

fn accept_loop(listener: TcpListener, responses: Arc<Responses>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let responses = responses.clone();
                let spawned = thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || {
                        let _ = serve(stream, &responses);
                    });
                if let Err(e) = spawned {
                    eprintln!("loadtest-backend: spawn: {e}");
                }
            }
            Err(e) => {
                // EMFILE and friends: back off briefly instead of spinning.
                eprintln!("loadtest-backend: accept: {e}");
                thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// What the parser found at the start of the buffer.
enum Parsed {
    /// A complete request head of `head_len` bytes.
    Request {
        head_len: usize,
        body: Body,
        close: bool,
        head_only: bool,
    },
    Partial,
    Invalid,
}

enum Body {
    None,
    Length(usize),
    Chunked,
}

fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Invalid,
    };
    let http10 = req.version == Some(0);
    let mut close = http10;
    let mut body = Body::None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            match std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
            {
                Some(n) => body = Body::Length(n),
                None => return Parsed::Invalid,
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            body = Body::Chunked;
        } else if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|b| *b == b',') {
                let t = token.trim_ascii();
                if t.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if t.eq_ignore_ascii_case(b"keep-alive") && http10 {
                    close = false;
                }
            }
        }
    }
    Parsed::Request {
        head_len,
        body,
        close,
        head_only: req.method == Some("HEAD"),
    }
}

/// Skips a chunked body at the start of `buf`: `Some(len)` once the whole
/// body (with its trailers) is present, `None` while more bytes are needed,
/// `Err` when it is malformed.
fn chunked_len(buf: &[u8]) -> Result<Option<usize>, ()> {
    let mut pos = 0;
    loop {
        let Some(eol) = find_crlf(&buf[pos..]) else {
            return if buf.len() - pos > 1024 {
                Err(())
            } else {
                Ok(None)
            };
        };
        let line = &buf[pos..pos + eol];
        let hex = line.split(|b| *b == b';').next().unwrap_or(b"");
        let size = std::str::from_utf8(hex)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or(())?;
        pos += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find_crlf(&buf[pos..]) else {
                    return Ok(None);
                };
                pos += eol + 2;
                if eol == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        if buf.len() < pos + size + 2 {
            return Ok(None);
        }
        pos += size + 2;
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

fn serve(mut stream: TcpStream, responses: &Responses) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; READ_BUF];
    let mut start = 0; // first unparsed byte
    let mut end = 0; // end of valid data
    let mut out: Vec<u8> = Vec::with_capacity(if responses.body_size <= COPY_LIMIT {
        16 * 1024
    } else {
        0
    });
    loop {
        // Answer every complete request in the buffer.
        let mut close = false;
        let mut large_pending = 0usize;
        let mut large_close = false;
        let mut large_head_only = false;
        loop {
            if start == end {
                break;
            }
            match parse(&buf[start..end]) {
                Parsed::Partial => {
                    if end - start > MAX_HEAD {
                        close = true;
                        out.extend_from_slice(
                            b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                    }
                    break;
                }
                Parsed::Invalid => {
                    close = true;
                    out.extend_from_slice(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    break;
                }
                Parsed::Request {
                    head_len,
                    body,
                    close: req_close,
                    head_only,
                } => {
                    let body_len = match body {
                        Body::None => Some(0),
                        Body::Length(n) => {
                            if end - start - head_len >= n {
                                Some(n)
                            } else {
                                None
                            }
                        }
                        Body::Chunked => match chunked_len(&buf[start + head_len..end]) {
                            Ok(v) => v,
                            Err(()) => {
                                close = true;
                                out.extend_from_slice(
                                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                                );
                                break;
                            }
                        },
                    };
                    let Some(body_len) = body_len else {
                        // Body not all here yet. A Content-Length body bigger
                        // than the buffer is drained in place.
                        if let Body::Length(n) = body {
                            if head_len + n > buf.len() {
                                drain_body(
                                    &mut stream,
                                    &mut buf,
                                    &mut start,
                                    &mut end,
                                    head_len,
                                    n,
                                )?;
                                // `start..end` now begins right after the
                                // body; answer this request.
                                push_response(
                                    responses,
                                    &mut out,
                                    &mut large_pending,
                                    &mut large_close,
                                    &mut large_head_only,
                                    &mut stream,
                                    req_close,
                                    head_only,
                                )?;
                                if req_close {
                                    close = true;
                                    break;
                                }
                                continue;
                            }
                        }
                        break;
                    };
                    start += head_len + body_len;
                    push_response(
                        responses,
                        &mut out,
                        &mut large_pending,
                        &mut large_close,
                        &mut large_head_only,
                        &mut stream,
                        req_close,
                        head_only,
                    )?;
                    if req_close {
                        close = true;
                        break;
                    }
                }
            }
        }
        flush(
            responses,
            &mut out,
            &mut large_pending,
            large_close,
            large_head_only,
            &mut stream,
        )?;
        if close {
            let _ = stream.shutdown(std::net::Shutdown::Write);
            // Drain briefly so the peer sees our response before an RST.
            let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(200)));
            let mut sink = [0u8; 4096];
            while let Ok(n) = stream.read(&mut sink) {
                if n == 0 {
                    break;
                }
            }
            return Ok(());
        }
        // Compact and read more.
        if start == end {
            start = 0;
            end = 0;
        } else if start > 0 && end == buf.len() {
            buf.copy_within(start..end, 0);
            end -= start;
            start = 0;
        }
        if end == buf.len() {
            // A head bigger than the buffer: the next parse reports 431.
            buf.resize(buf.len() * 2, 0);
        }
        let n = stream.read(&mut buf[end..])?;
        if n == 0 {
            return Ok(());
        }
        end += n;
    }
}

/// Adds one response to the batch. Small responses are copied into `out`;
/// a large one is written straight from the pre-built bytes (after whatever
/// is already batched).
#[allow(clippy::too_many_arguments)]
fn push_response(
    responses: &Responses,
    out: &mut Vec<u8>,
    large_pending: &mut usize,
    large_close: &mut bool,
    large_head_only: &mut bool,
    stream: &mut TcpStream,
    close: bool,
    head_only: bool,
) -> io::Result<()> {
    let r = responses.get(close, head_only);
    if r.len() <= COPY_LIMIT {
        if *large_pending > 0 {
            flush(
                responses,
                out,
                large_pending,
                *large_close,
                *large_head_only,
                stream,
            )?;
        }
        out.extend_from_slice(r);
        if out.len() >= 256 * 1024 {
            stream.write_all(out)?;
            out.clear();
        }
    } else {
        if *large_pending > 0 {
            flush(
                responses,
                out,
                large_pending,
                *large_close,
                *large_head_only,
                stream,
            )?;
        }
        if !out.is_empty() {
            stream.write_all(out)?;
            out.clear();
        }
        *large_pending = 1;
        *large_close = close;
        *large_head_only = head_only;
    }
    Ok(())
}

fn flush(
    responses: &Responses,
    out: &mut Vec<u8>,
    large_pending: &mut usize,
    large_close: bool,
    large_head_only: bool,
    stream: &mut TcpStream,
) -> io::Result<()> {
    if !out.is_empty() {
        stream.write_all(out)?;
        out.clear();
    }
    if *large_pending > 0 {
        stream.write_all(responses.get(large_close, large_head_only))?;
        *large_pending = 0;
    }
    Ok(())
}

/// Reads and discards a `Content-Length` body of `n` bytes that follows a
/// head of `head_len` bytes at `buf[*start..]`; leaves any bytes after the
/// body in `buf[*start..*end]`.
fn drain_body(
    stream: &mut TcpStream,
    buf: &mut [u8],
    start: &mut usize,
    end: &mut usize,
    head_len: usize,
    n: usize,
) -> io::Result<()> {
    let have = *end - *start - head_len;
    let mut left = n - have;
    *start = 0;
    *end = 0;
    while left > 0 {
        let want = left.min(buf.len());
        let got = stream.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        left -= got;
    }
    Ok(())
}
