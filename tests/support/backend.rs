//! Mock backends on 127.0.0.1:0: a normal echo server that records what
//! it receives and counts connections, and misbehaving ones.
//! Written with httparse directly (not the gateway's parser) so the two
//! sides are independent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Mode {
    /// Answers 200 with a JSON echo of the request.
    Echo,
    /// Answers with this status, headers and body.
    Fixed {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Reads the request, never answers.
    NeverAnswer,
    /// Answers after a delay.
    Slow(Duration),
    /// Sends a head promising a body, part of it, then resets.
    ResetMidBody,
    /// Sends bytes that are not HTTP.
    Garbage,
    /// Closes the connection right after reading the request.
    CloseWithoutAnswer,
    /// Answers with a chunked body of these pieces.
    Chunked(Vec<Vec<u8>>),
    /// Answers a large body of `n` bytes with Content-Length.
    Large(usize),
    /// Answers, then closes every connection after one response.
    OneShot,
    /// Answers as if keeping the connection, then closes it silently.
    RespondThenClose,
    /// Answers with this JSON body as if keeping the connection, and closes
    /// it 50 ms later without reading what came meanwhile: a request sent
    /// on it in that time finds it closed before any answer.
    JsonThenClose(Vec<u8>),
}

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

pub struct Backend {
    pub addr: SocketAddr,
    pub connections: Arc<AtomicUsize>,
    /// Connections this side has closed (its socket dropped).
    pub closed: Arc<AtomicUsize>,
    /// Requests being answered now, and the most ever at once.
    pub in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub requests: Arc<Mutex<Vec<Recorded>>>,
    mode: Arc<Mutex<Mode>>,
}

impl Backend {
    pub fn start(mode: Mode) -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(mode));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let (c, r, m) = (connections.clone(), requests.clone(), mode.clone());
        let (inf, maxf, cl) = (in_flight.clone(), max_in_flight.clone(), closed.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (r, m, inf, maxf) = (r.clone(), m.clone(), inf.clone(), maxf.clone());
                let cl = cl.clone();
                std::thread::spawn(move || {
                    // `serve` owns the stream: it is closed when it returns.
                    serve(stream, r, m, inf, maxf);
                    cl.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Backend {
            addr,
            connections,
            closed,
            in_flight,
            max_in_flight,
            requests,
            mode,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Connections this side has closed.
    pub fn closed_count(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn recorded(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.recorded()
            .last()
            .cloned()
            .expect("backend received no request")
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

fn serve(
    mut s: TcpStream,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    mode: Arc<Mutex<Mode>>,
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
) {
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let Some(req) = read_request(&mut s, &mut buf) else {
            return;
        };
        recorded.lock().unwrap().push(req.clone());
        let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        max_in_flight.fetch_max(now, Ordering::SeqCst);
        struct Done(Arc<AtomicUsize>);
        impl Drop for Done {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let _done = Done(in_flight.clone());
        let mode = mode.lock().unwrap().clone();
        let keep = match mode {
            Mode::Echo => {
                let body = serde_json::json!({
                    "method": req.method,
                    "target": req.target,
                    "headers": req.headers.iter().map(|(n, v)| vec![n.clone(), v.clone()]).collect::<Vec<_>>(),
                    "body": String::from_utf8_lossy(&req.body),
                })
                .to_string();
                write_response(
                    &mut s,
                    200,
                    &[
                        ("Content-Type".into(), "application/json".into()),
                        ("X-Backend".into(), "echo".into()),
                    ],
                    body.as_bytes(),
                    req.method == "HEAD",
                )
            }
            Mode::Fixed {
                status,
                headers,
                body,
            } => write_response(&mut s, status, &headers, &body, req.method == "HEAD"),
            Mode::NeverAnswer => {
                std::thread::sleep(Duration::from_secs(120));
                false
            }
            Mode::Slow(d) => {
                std::thread::sleep(d);
                write_response(&mut s, 200, &[], b"slow", false)
            }
            Mode::ResetMidBody => {
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\npartial");
                std::thread::sleep(Duration::from_millis(50));
                let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::from_secs(0)));
                false
            }
            Mode::Garbage => {
                let _ = s.write_all(b"this is not http at all\r\n\r\n");
                false
            }
            Mode::CloseWithoutAnswer => false,
            Mode::Chunked(pieces) => {
                let mut out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n".to_vec();
                for p in pieces {
                    out.extend_from_slice(format!("{:x}\r\n", p.len()).as_bytes());
                    out.extend_from_slice(&p);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n\r\n");
                s.write_all(&out).is_ok()
            }
            Mode::Large(n) => {
                let body: Vec<u8> = (0..n).map(|i| b'a' + (i % 26) as u8).collect();
                write_response(
                    &mut s,
                    200,
                    &[("Content-Type".into(), "text/plain".into())],
                    &body,
                    false,
                )
            }
            Mode::RespondThenClose => {
                write_response(&mut s, 200, &[], b"then close", req.method == "HEAD");
                false
            }
            Mode::JsonThenClose(body) => {
                let ct = [("Content-Type".into(), "application/json".into())];
                write_response(&mut s, 200, &ct, &body, req.method == "HEAD");
                std::thread::sleep(Duration::from_millis(50));
                false
            }
            Mode::OneShot => {
                write_response(
                    &mut s,
                    200,
                    &[("Connection".into(), "close".into())],
                    b"once",
                    false,
                );
                false
            }
        };
        if !keep {
            return;
        }
    }
}

fn write_response(
    s: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
    head: bool,
) -> bool {
    let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if !head {
        bytes.extend_from_slice(body);
    }
    s.write_all(&bytes).is_ok()
}

fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Recorded> {
    let mut chunk = [0u8; 65536];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let method = req.method?.to_owned();
                let target = req.path?.to_owned();
                let hs: Vec<(String, String)> = req
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_owned(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect();
                let cl = hs
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let chunked = hs.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case("transfer-encoding")
                        && v.to_ascii_lowercase().contains("chunked")
                });
                buf.drain(..len);
                if chunked {
                    // The gateway always sends Content-Length; chunked here is a bug.
                    panic!("gateway sent a chunked request body");
                }
                while buf.len() < cl {
                    let n = s.read(&mut chunk).ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let body: Vec<u8> = buf.drain(..cl).collect();
                return Some(Recorded {
                    method,
                    target,
                    headers: hs,
                    body,
                });
            }
            Ok(httparse::Status::Partial) => {
                let n = s.read(&mut chunk).ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(_) => return None,
        }
    }
}
