//! What the load-test programs (`backend.rs`, `ws.rs`, `paced.rs`) share:
//! command-line pairs and listening sockets. Each includes it with
//! `#[path = "common.rs"] mod common;`.

#![allow(dead_code)]

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, Socket, Type};

/// `--key value` and `--key=value` pairs. `Err` carries what to tell the
/// user: `"help"` for `-h`/`--help`, or the option missing its value.
pub fn options(args: impl Iterator<Item = String>) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "-h" || a == "--help" {
            return Err("help".to_owned());
        }
        let (key, inline) = match a.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k.to_owned(), Some(v.to_owned())),
            _ => (a.clone(), None),
        };
        match inline.or_else(|| args.next()) {
            Some(v) => out.push((key, v)),
            None => return Err(format!("{key} needs a value")),
        }
    }
    Ok(out)
}

/// A listening socket with `SO_REUSEPORT`, so several accept loops (one per
/// thread) can bind the same address.
pub fn bind_reuseport(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}
