//! A small PetStore backend for trying Tollgate with no other setup
//! (`[demo_backend]` in the config): the same answers as API Gateway's
//! PetStore demo endpoint. Plain threads and blocking sockets: it is a
//! demo, kept off the shards.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use bytes::BytesMut;

use crate::http::blocking::{read_request, ReadError};
use crate::http::query;
use crate::http::request::{HeadLimits, RequestHead};

const PETS: &str = r#"[{"id":1,"type":"dog","price":249.99},{"id":2,"type":"cat","price":124.99},{"id":3,"type":"fish","price":0.99}]"#;

/// Binds `addr` and serves on a background thread.
pub fn start(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("tollgate-demo".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = std::thread::Builder::new()
                    .name("tollgate-demo-conn".into())
                    .spawn(move || serve(stream));
            }
        })?;
    Ok(local)
}

fn serve(mut stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let limits = HeadLimits::default();
    let mut buf = BytesMut::new();
    loop {
        let (head, body) = match read_request(&mut stream, &mut buf, &limits, 1 << 20, &mut || {}) {
            Ok(r) => r,
            Err(ReadError::Closed) => return,
            Err(_) => {
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return;
            }
        };
        let (status, payload) = answer(&head, &body);
        let mut out = format!(
            "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            crate::http::response::reason_phrase(status),
            payload.len()
        );
        if !head.info.keep_alive {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if head.method() != crate::http::request::Method::Head {
            bytes.extend_from_slice(payload.as_bytes());
        }
        if stream.write_all(&bytes).is_err() || !head.info.keep_alive {
            return;
        }
    }
}

fn answer(head: &RequestHead, body: &[u8]) -> (u16, String) {
    let path = String::from_utf8_lossy(head.path());
    let path = path.trim_end_matches('/');
    let q = head.query().unwrap_or_default();
    match (head.method_bytes(), path) {
        (b"GET", "/petstore/pets") => {
            let pets: Vec<serde_json::Value> = serde_json::from_str(PETS).unwrap_or_default();
            let kind = query::last_value(q, "type");
            let list: Vec<&serde_json::Value> = pets
                .iter()
                .filter(|p| kind.as_deref().is_none_or(|k| p["type"] == k))
                .collect();
            (
                200,
                serde_json::Value::from(list.into_iter().cloned().collect::<Vec<_>>()).to_string(),
            )
        }
        (b"POST", "/petstore/pets") => {
            let pet: serde_json::Value =
                serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
            (
                200,
                serde_json::json!({"pet": pet, "message": "success"}).to_string(),
            )
        }
        (b"GET", p) if p.starts_with("/petstore/pets/") => {
            let id = &p["/petstore/pets/".len()..];
            let pets: Vec<serde_json::Value> = serde_json::from_str(PETS).unwrap_or_default();
            match pets
                .iter()
                .find(|pet| pet["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            {
                Some(pet) => (200, pet.to_string()),
                None => (
                    404,
                    format!(
                        "{{\"message\":\"pet {} not found\"}}",
                        serde_json::Value::from(id)
                    ),
                ),
            }
        }
        _ => (404, "{\"message\":\"not found\"}".to_owned()),
    }
}
