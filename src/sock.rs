//! Socket calls std and glommio have no method for, made through `socket2`
//! (no `unsafe` here).

use std::os::fd::AsFd;

/// What a socket holds for reading, seen without taking it and without
/// waiting (`recv` with `MSG_PEEK | MSG_DONTWAIT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Waiting {
    /// Bytes the peer sent that nobody has read yet.
    Bytes,
    /// Nothing yet; the connection is open.
    Nothing,
    /// The peer closed its side, or the connection failed.
    Closed,
}

pub fn peek(socket: &impl AsFd) -> Waiting {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match socket2::SockRef::from(socket)
        .recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT)
    {
        Ok(0) => Waiting::Closed,
        Ok(_) => Waiting::Bytes,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Waiting::Nothing,
        Err(_) => Waiting::Closed,
    }
}
