//! HTTP/1.1 as plain code over bytes: request heads, chunked bodies,
//! response heads, query strings. Nothing here does I/O; the shard module
//! feeds these functions the bytes it reads.

pub mod blocking;
pub mod chunked;
pub mod query;
pub mod request;
pub mod response;
