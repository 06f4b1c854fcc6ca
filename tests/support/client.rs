//! A raw TCP client: sends exact bytes, reads responses one at a time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawClient {
    pub fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        RawClient {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) -> &mut Self {
        self.stream.write_all(bytes).unwrap();
        self
    }

    /// Sends a request and reads its response.
    pub fn request(&mut self, bytes: &[u8]) -> Response {
        self.send(bytes);
        self.read_response(false)
    }

    /// Reads one response (the body per its framing; none if `head`).
    pub fn read_response(&mut self, head: bool) -> Response {
        self.try_read_response(head).unwrap_or_else(|e| {
            panic!(
                "no response: {e}; got so far: {:?}",
                String::from_utf8_lossy(&self.buf)
            )
        })
    }

    pub fn try_read_response(&mut self, head: bool) -> Result<Response, String> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 128];
            let mut resp = httparse::Response::new(&mut headers);
            match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = resp.code.unwrap_or(0);
                    let hs: Vec<(String, String)> = resp
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_owned(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect();
                    self.buf.drain(..len);
                    if (100..200).contains(&status) {
                        return Ok(Response {
                            status,
                            headers: hs,
                            body: Vec::new(),
                        });
                    }
                    let body = if head || status == 204 || status == 304 {
                        Vec::new()
                    } else if hs.iter().any(|(n, v)| {
                        n.eq_ignore_ascii_case("transfer-encoding")
                            && v.eq_ignore_ascii_case("chunked")
                    }) {
                        self.read_chunked()?
                    } else if let Some(cl) = hs
                        .iter()
                        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
                    {
                        let n: usize =
                            cl.1.trim()
                                .parse()
                                .map_err(|_| "bad content-length".to_owned())?;
                        self.fill_to(n)?;
                        self.buf.drain(..n).collect()
                    } else {
                        self.read_to_end()?;
                        std::mem::take(&mut self.buf)
                    };
                    return Ok(Response {
                        status,
                        headers: hs,
                        body,
                    });
                }
                Ok(httparse::Status::Partial) => {
                    if self.fill()? == 0 {
                        return Err("connection closed".into());
                    }
                }
                Err(e) => return Err(format!("unparsable response: {e}")),
            }
        }
    }

    fn fill(&mut self) -> Result<usize, String> {
        let mut chunk = [0u8; 65536];
        match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(n)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    fn fill_to(&mut self, n: usize) -> Result<(), String> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err("closed mid-body".into());
            }
        }
        Ok(())
    }

    fn read_to_end(&mut self) -> Result<(), String> {
        while self.fill()? > 0 {}
        Ok(())
    }

    fn read_chunked(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                    break p;
                }
                if self.fill()? == 0 {
                    return Err("closed in chunk size".into());
                }
            };
            let size_text = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size {size_text:?}"))?;
            self.buf.drain(..line_end + 2);
            if size == 0 {
                // trailers until empty line
                loop {
                    if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        let empty = p == 0;
                        self.buf.drain(..p + 2);
                        if empty {
                            return Ok(body);
                        }
                    } else if self.fill()? == 0 {
                        return Err("closed in trailers".into());
                    }
                }
            }
            self.fill_to(size + 2)?;
            body.extend_from_slice(&self.buf[..size]);
            self.buf.drain(..size + 2);
        }
    }

    /// True if the server closed the connection (EOF) within `wait`.
    pub fn is_closed(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let deadline = Instant::now() + wait;
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    if Instant::now() > deadline {
                        return false;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }

    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

/// One request on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    RawClient::connect(addr).request(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

pub fn get_with(addr: SocketAddr, path: &str, headers: &str) -> Response {
    RawClient::connect(addr).request(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

pub fn send(addr: SocketAddr, method: &str, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let head = method == "HEAD";
    let mut c = RawClient::connect(addr);
    c.send(&req);
    c.read_response(head)
}

/// `len` bytes of `c` in chunked transfer coding, 64 KiB per chunk, with
/// the last chunk.
pub fn chunked_body(c: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + len / 8192 + 16);
    for piece in vec![c; len].chunks(64 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What a client that writes its whole upload before reading (Node's
/// `http`, Python's `urllib`) gets: `head` and `body` written in full, then
/// everything until the close, as text. Panics, naming `what`, when the
/// upload is cut or the answer lost to a reset.
pub fn upload_then_read(addr: SocketAddr, head: &[u8], body: &[u8], what: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(head).unwrap();
    s.write_all(body)
        .unwrap_or_else(|e| panic!("{what}: upload cut: {e}"));
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .unwrap_or_else(|e| panic!("{what}: answer lost: {e}"));
    String::from_utf8_lossy(&got).into_owned()
}
