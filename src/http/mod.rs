//! HTTP/1.1 as plain code over bytes: request heads, chunked bodies,
//! response heads, query strings. Nothing here does I/O; the shard module
//! feeds these functions the bytes it reads.

pub mod blocking;
pub mod chunked;
pub mod encoding;
pub mod query;
pub mod request;
pub mod response;

/// A token character (RFC 9110 §5.6.2 `tchar`): what a field name or a
/// method is made of.
pub fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
