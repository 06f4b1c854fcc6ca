//! Request-head parser: arbitrary bytes never panic, spans stay inside the
//! buffer, and a head is never complete before its final byte.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tollgate::http::request::{parse_head, HeadLimits, Parsed, RequestHead, Span};

fn inside(span: Span, len: usize) -> bool {
    span.start <= span.end && (span.end as usize) <= len
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks small or default limits, so both the limit
    // paths and long heads are reached.
    let (limits, input) = match data.split_first() {
        Some((b, rest)) if b & 1 == 1 => (
            HeadLimits {
                max_head_bytes: 64 + usize::from(*b),
                max_uri_bytes: 16 + usize::from(*b / 4),
            },
            rest,
        ),
        Some((_, rest)) => (HeadLimits::default(), rest),
        None => (HeadLimits::default(), data),
    };
    let Ok(Parsed::Complete(info, len)) = parse_head(input, &limits) else {
        return;
    };
    assert!(len <= input.len() && len <= limits.max_head_bytes);
    assert!(inside(info.method_span, len));
    assert!(inside(info.path, len));
    if let Some(q) = info.query {
        assert!(inside(q, len));
    }
    if let Some(h) = info.host {
        assert!(inside(h, len));
    }
    for (n, v) in &info.headers {
        assert!(inside(*n, len) && inside(*v, len));
        assert!(!n.is_empty());
    }
    // The last byte of a head ends it: one byte less is never complete.
    assert!(!matches!(
        parse_head(&input[..len - 1], &limits),
        Ok(Parsed::Complete(..))
    ));
    let head = RequestHead::new(Bytes::copy_from_slice(&input[..len]), info);
    let _ = (head.method_bytes(), head.path(), head.query(), head.host());
    for (n, v) in head.headers() {
        assert!(!v.contains(&b'\r') && !v.contains(&b'\n') && !v.contains(&0));
        let _ = n;
    }
});
