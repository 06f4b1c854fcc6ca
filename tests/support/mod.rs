//! Test harness: a real `tollgate` process on an ephemeral port, mock
//! backends (well-behaved and misbehaving) and a raw TCP client.
//! Everything binds 127.0.0.1:0; nothing uses fixed ports.

#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::disallowed_types,
    clippy::type_complexity
)]

pub mod aws;
pub mod backend;
pub mod client;
pub mod gateway;
pub mod wait;

pub use backend::{Backend, Mode, Recorded};
pub use client::{RawClient, Response};
pub use gateway::{Gateway, GatewayBuilder};
pub use wait::wait_until;
