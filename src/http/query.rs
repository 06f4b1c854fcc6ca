//! Query strings and percent-encoding, the way API Gateway reads them.
//!
//! `method.request.querystring.x` is the *last* value of `x`;
//! `multivaluequerystring.x` is all of them. Values are percent-decoded
//! (`+` is a space, as in forms) before they are mapped.

use std::borrow::Cow;

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Iterates `(name, value)` pairs of a raw query, still encoded. As in API
/// Gateway, `;` separates pairs as `&` does (its known issues: a `;` in a
/// query string splits the data; `%3B` is a semicolon in a value).
pub fn pairs(query: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    query
        .split(|&b| b == b'&' || b == b';')
        .filter(|p| !p.is_empty())
        .map(|p| match p.iter().position(|&b| b == b'=') {
            Some(eq) => (&p[..eq], &p[eq + 1..]),
            None => (p, &b""[..]),
        })
}

/// Percent-decodes a query component (`+` means space).
pub fn decode_component(raw: &[u8]) -> Cow<'_, str> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return String::from_utf8_lossy(raw);
    }
    let plus_fixed: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    Cow::Owned(percent_decode(&plus_fixed).decode_utf8_lossy().into_owned())
}

/// Percent-decodes a path segment (`+` is literal in paths).
pub fn decode_path(raw: &[u8]) -> Cow<'_, str> {
    if !raw.contains(&b'%') {
        return String::from_utf8_lossy(raw);
    }
    match percent_decode(raw).decode_utf8_lossy() {
        Cow::Borrowed(s) => Cow::Owned(s.to_owned()),
        Cow::Owned(s) => Cow::Owned(s),
    }
}

/// The last decoded value of `name`, as API Gateway maps single-valued
/// query parameters.
pub fn last_value(query: &[u8], name: &str) -> Option<String> {
    pairs(query)
        .filter(|(n, _)| decode_component(n) == name)
        .last()
        .map(|(_, v)| decode_component(v).into_owned())
}

pub fn all_values(query: &[u8], name: &str) -> Vec<String> {
    pairs(query)
        .filter(|(n, _)| decode_component(n) == name)
        .map(|(_, v)| decode_component(v).into_owned())
        .collect()
}

/// Characters left alone when we encode a value into a query string or a
/// path segment: RFC 3986 unreserved.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_component(value: &str, out: &mut Vec<u8>) {
    for part in utf8_percent_encode(value, COMPONENT) {
        out.extend_from_slice(part.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_table() {
        let q = b"type=dog&page=2&type=cat&empty=&flag&sp=a+b%20c&enc%20name=1";
        assert_eq!(last_value(q, "type").as_deref(), Some("cat"));
        assert_eq!(all_values(q, "type"), vec!["dog", "cat"]);
        assert_eq!(last_value(q, "page").as_deref(), Some("2"));
        assert_eq!(last_value(q, "empty").as_deref(), Some(""));
        assert_eq!(last_value(q, "flag").as_deref(), Some(""));
        assert_eq!(last_value(q, "sp").as_deref(), Some("a b c"));
        assert_eq!(last_value(q, "enc name").as_deref(), Some("1"));
        assert_eq!(last_value(q, "missing"), None);
        // `;` separates as `&` does; `%3B` is a semicolon.
        let q = b"a=1;b=2&c=x%3By;a=3";
        assert_eq!(all_values(q, "a"), vec!["1", "3"]);
        assert_eq!(last_value(q, "b").as_deref(), Some("2"));
        assert_eq!(last_value(q, "c").as_deref(), Some("x;y"));
    }

    #[test]
    fn encoding() {
        let mut out = Vec::new();
        encode_component("a b/c?d=é", &mut out);
        assert_eq!(out, b"a%20b%2Fc%3Fd%3D%C3%A9");
        assert_eq!(decode_path(b"a%20b+c"), "a b+c");
    }
}
