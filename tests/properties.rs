//! Property tests of the parsers, through the library's public API: the
//! request-head parser, the chunked decoder, the route trie, query strings,
//! the Swagger loader and the VTL template compiler. Each either checks a
//! round trip against a model or that arbitrary input never panics and is
//! refused with a reason.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use proptest::prelude::*;
use proptest::sample::Index;

use tollgate::http::chunked::{write_chunk_header, ChunkError, ChunkedDecoder};
use tollgate::http::query::{
    all_values, decode_component, decode_path, encode_component, last_value, pairs,
};
use tollgate::http::request::{
    parse_head, BodyFraming, HeadLimits, Method, Parsed, RequestHead, Span,
};
use tollgate::router::{parse_path_template, Captures, RouteTrie, Segment};

/// `cases` per property, or `PROPTEST_CASES` when it is set (for longer
/// runs: `PROPTEST_CASES=10000 cargo test --test properties`).
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig::with_cases(cases)
}

// ---------------------------------------------------------------------
// Request heads
// ---------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    http10: bool,
    host: String,
    fields: Vec<(String, Vec<u8>)>,
    content_length: Option<u32>,
    connection: Option<&'static str>,
}

impl Head {
    fn target(&self) -> String {
        match &self.query {
            Some(q) => format!("{}?{q}", self.path),
            None => self.path.clone(),
        }
    }

    /// The fields in wire order, as the parser should report them.
    fn all_fields(&self) -> Vec<(String, Vec<u8>)> {
        let mut v = vec![("Host".to_owned(), self.host.clone().into_bytes())];
        v.extend(self.fields.iter().cloned());
        if let Some(n) = self.content_length {
            v.push(("Content-Length".to_owned(), n.to_string().into_bytes()));
        }
        if let Some(c) = self.connection {
            v.push(("Connection".to_owned(), c.as_bytes().to_vec()));
        }
        v
    }

    fn wire(&self) -> Vec<u8> {
        let mut w = format!(
            "{} {} HTTP/1.{}\r\n",
            self.method,
            self.target(),
            if self.http10 { 0 } else { 1 }
        )
        .into_bytes();
        for (n, v) in self.all_fields() {
            w.extend_from_slice(n.as_bytes());
            w.extend_from_slice(b": ");
            w.extend_from_slice(&v);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"\r\n");
        w
    }
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"
        ])
        .prop_map(str::to_owned),
        "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,10}",
    ]
}

/// A field value: visible ASCII and obs-text, inner spaces and tabs, no
/// whitespace at either end.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let edge = prop_oneof![0x21u8..=0x7e, 0x80u8..=0xff];
    let inner = prop_oneof![0x20u8..=0x7e, Just(b'\t'), 0x80u8..=0xff];
    (
        edge.clone(),
        prop::collection::vec(inner, 0..24),
        prop::option::of(edge),
    )
        .prop_map(|(first, mid, last)| {
            let mut v = vec![first];
            v.extend(mid);
            v.extend(last);
            while matches!(v.last(), Some(b' ' | b'\t')) {
                v.pop();
            }
            v
        })
        .prop_filter("no 0x7f", |v| !v.contains(&0x7f))
}

fn head() -> impl Strategy<Value = Head> {
    (
        method(),
        prop::collection::vec("[A-Za-z0-9._~!$&'()*+,;=:@%-]{0,8}", 0..6),
        prop::option::of("[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,20}"),
        any::<bool>(),
        "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
        prop::collection::vec(("X-[A-Za-z0-9-]{1,12}", field_value()), 0..12),
        prop::option::of(any::<u32>()),
        prop::option::of(prop::sample::select(vec![
            "close",
            "keep-alive",
            "Keep-Alive, foo",
        ])),
    )
        .prop_map(
            |(method, segs, query, http10, host, fields, content_length, connection)| Head {
                method,
                // Dot segments are refused (tests/security.rs), not
                // round-tripped.
                path: format!(
                    "/{}",
                    segs.iter()
                        .map(|s| {
                            if tollgate::http::request::has_dot_segment(format!("/{s}").as_bytes())
                            {
                                "d"
                            } else {
                                s.as_str()
                            }
                        })
                        .collect::<Vec<_>>()
                        .join("/")
                ),
                query,
                http10,
                host,
                fields,
                content_length,
                connection,
            },
        )
}

fn spans_inside(info: &tollgate::http::request::HeadInfo, len: usize) -> bool {
    let ok = |s: Span| s.start <= s.end && s.end as usize <= len;
    ok(info.method_span)
        && ok(info.path)
        && info.query.is_none_or(ok)
        && info.host.is_none_or(ok)
        && info.headers.iter().all(|(n, v)| ok(*n) && ok(*v))
}

proptest! {
    #![proptest_config(config(256))]

    /// A well-formed head parses back to what was written: method, path,
    /// query, fields in order, framing and keep-alive; and every strict
    /// prefix of it is `Partial`, never a different head.
    #[test]
    fn request_head_round_trips(h in head(), tail in prop::collection::vec(any::<u8>(), 0..32), cut in any::<Index>()) {
        let head_bytes = h.wire();
        let mut input = head_bytes.clone();
        input.extend_from_slice(&tail);
        let (info, len) = match parse_head(&input, &HeadLimits::default()) {
            Ok(Parsed::Complete(info, len)) => (info, len),
            Ok(Parsed::Partial) => panic!("partial: {:?}", String::from_utf8_lossy(&input)),
            Err(e) => panic!("{e:?}: {:?}", String::from_utf8_lossy(&input)),
        };
        prop_assert_eq!(len, head_bytes.len());
        prop_assert!(spans_inside(&info, len));
        let head = RequestHead::new(bytes::Bytes::copy_from_slice(&input[..len]), info);
        prop_assert_eq!(head.method_bytes(), h.method.as_bytes());
        let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];
        if known.contains(&h.method.as_str()) {
            prop_assert_eq!(head.method().as_str(), h.method.as_str());
        } else {
            prop_assert_eq!(head.method(), Method::Other);
        }
        prop_assert_eq!(head.path(), h.path.as_bytes());
        prop_assert_eq!(head.query(), h.query.as_deref().map(str::as_bytes));
        prop_assert_eq!(head.host(), Some(h.host.as_bytes()));
        let got: Vec<(String, Vec<u8>)> = head
            .headers()
            .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.to_vec()))
            .collect();
        prop_assert_eq!(got, h.all_fields());
        let want_body = match h.content_length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(u64::from(n)),
        };
        prop_assert_eq!(head.info.body, want_body);
        let keep_alive = match (h.http10, h.connection) {
            (_, Some("close")) => false,
            (false, _) => true,
            (true, Some(c)) => c.to_ascii_lowercase().contains("keep-alive"),
            (true, None) => false,
        };
        prop_assert_eq!(head.info.keep_alive, keep_alive);
        let cut = cut.index(head_bytes.len());
        prop_assert!(
            matches!(parse_head(&head_bytes[..cut], &HeadLimits::default()), Ok(Parsed::Partial)),
            "prefix of {} bytes is not partial", cut
        );
    }

    /// Arbitrary bytes under arbitrary limits: no panic, and a complete
    /// head lies inside the input and the limit.
    #[test]
    fn request_head_never_panics(
        input in prop::collection::vec(any::<u8>(), 0..1024),
        max_head in 1usize..2048,
        max_uri in 1usize..512,
    ) {
        let limits = HeadLimits { max_head_bytes: max_head, max_uri_bytes: max_uri };
        for limits in [limits, HeadLimits::default()] {
            if let Ok(Parsed::Complete(info, len)) = parse_head(&input, &limits) {
                prop_assert!(len <= input.len() && len <= limits.max_head_bytes);
                prop_assert!(spans_inside(&info, len));
            }
        }
    }

    /// Near-valid heads (a valid start, then printable bytes and line
    /// breaks): no panic; whatever is accepted has no CR, LF or NUL in a
    /// field value.
    #[test]
    fn request_head_near_valid_never_panics(tail in "[ -~\t\r\n\u{0}\u{7f}]{0,300}") {
        let input = format!("POST /a HTTP/1.1\r\nHost: x\r\n{tail}");
        if let Ok(Parsed::Complete(info, len)) = parse_head(input.as_bytes(), &HeadLimits::default()) {
            let head = RequestHead::new(bytes::Bytes::copy_from_slice(&input.as_bytes()[..len]), info);
            for (_, v) in head.headers() {
                prop_assert!(!v.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
            }
        }
    }
}

// ---------------------------------------------------------------------
// Chunked bodies
// ---------------------------------------------------------------------

#[derive(Clone, Debug)]
struct Chunking {
    body: Vec<u8>,
    /// Where the body is cut into chunks.
    cuts: Vec<Index>,
    extensions: Vec<Option<String>>,
    trailers: Vec<(String, String)>,
    upper_hex: bool,
    zero_pad: usize,
}

fn chunking() -> impl Strategy<Value = Chunking> {
    (
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(any::<Index>(), 0..12),
        prop::collection::vec(prop::option::of("[a-z]{1,8}(=[A-Za-z0-9]{0,16})?"), 0..13),
        prop::collection::vec(("X-[a-z]{1,8}", "[ -~]{0,20}"), 0..3),
        any::<bool>(),
        0usize..4,
    )
        .prop_map(
            |(body, cuts, extensions, trailers, upper_hex, zero_pad)| Chunking {
                body,
                cuts,
                extensions,
                trailers,
                upper_hex,
                zero_pad,
            },
        )
}

impl Chunking {
    fn wire(&self) -> Vec<u8> {
        let mut points: Vec<usize> = self
            .cuts
            .iter()
            .map(|i| i.index(self.body.len() + 1))
            .collect();
        points.push(0);
        points.push(self.body.len());
        points.sort_unstable();
        points.dedup();
        let mut w = Vec::new();
        for (i, pair) in points.windows(2).enumerate() {
            let chunk = &self.body[pair[0]..pair[1]];
            let mut size = Vec::new();
            write_chunk_header(&mut size, chunk.len());
            size.truncate(size.len() - 2);
            let mut size = String::from_utf8(size).unwrap();
            if self.upper_hex {
                size = size.to_ascii_uppercase();
            }
            w.extend(std::iter::repeat_n(b'0', self.zero_pad));
            w.extend_from_slice(size.as_bytes());
            if let Some(Some(ext)) = self.extensions.get(i) {
                w.push(b';');
                w.extend_from_slice(ext.as_bytes());
            }
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(chunk);
            w.extend_from_slice(b"\r\n");
        }
        w.extend_from_slice(b"0\r\n");
        for (n, v) in &self.trailers {
            w.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        w.extend_from_slice(b"\r\n");
        w
    }
}

/// Feeds `input` in pieces ending at `ends`, as a connection does: bytes a
/// call did not consume are offered again. (payload, consumed, done, error)
fn feed(input: &[u8], ends: &[usize]) -> (Vec<u8>, usize, bool, Option<ChunkError>) {
    let mut d = ChunkedDecoder::new();
    let mut out = BytesMut::new();
    let mut used = 0;
    for &end in ends.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(used, input.len());
        match d.decode(&input[used..end], &mut out) {
            Ok(p) => {
                assert!(p.consumed <= end - used);
                used += p.consumed;
                if p.done {
                    return (out.to_vec(), used, true, None);
                }
            }
            Err(e) => return (out.to_vec(), used, false, Some(e)),
        }
    }
    (out.to_vec(), used, false, None)
}

fn sorted_ends(cuts: &[Index], len: usize) -> Vec<usize> {
    let mut v: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
    v.sort_unstable();
    v
}

proptest! {
    #![proptest_config(config(256))]

    /// Any chunking of a body (sizes, extensions, trailers, padding, case),
    /// delivered in any split, decodes back to the body; a pipelined next
    /// request after it is left alone.
    #[test]
    fn chunked_round_trips_in_any_split(c in chunking(), splits in prop::collection::vec(any::<Index>(), 0..6)) {
        let wire = c.wire();
        let mut input = wire.clone();
        input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
        let ends = sorted_ends(&splits, input.len());
        let (body, used, done, err) = feed(&input, &ends);
        prop_assert_eq!(err, None);
        prop_assert!(done);
        prop_assert_eq!(used, wire.len());
        prop_assert_eq!(body, c.body);
    }

    /// Arbitrary bytes: no panic, the payload is never longer than the
    /// input, and splitting the input changes nothing.
    #[test]
    fn chunked_is_split_invariant_on_arbitrary_bytes(
        input in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..512),
            "([0-9a-fA-F]{1,3}(;[a-z=]{0,4})?\r\n[a-z]{0,20}\r\n){0,5}(0\r\n(X: [a-z]{0,5}\r\n)?\r\n)?[ -~\r\n]{0,8}"
                .prop_map(String::into_bytes),
        ],
        splits in prop::collection::vec(any::<Index>(), 0..6),
    ) {
        let whole = feed(&input, &[]);
        let pieces = feed(&input, &sorted_ends(&splits, input.len()));
        prop_assert!(whole.0.len() <= input.len());
        // Payload, completion and error agree; how much was consumed is
        // only defined when there was no error.
        prop_assert_eq!(&whole.0, &pieces.0);
        prop_assert_eq!(whole.2, pieces.2);
        prop_assert_eq!(whole.3, pieces.3);
        if whole.3.is_none() {
            prop_assert_eq!(whole.1, pieces.1);
        }
    }
}

// ---------------------------------------------------------------------
// Route trie
// ---------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Tpl {
    Lit(&'static str),
    Param,
    Greedy,
}

const LITERALS: [&str; 5] = ["a", "b", "pets", "x.y", "v1"];

fn template() -> impl Strategy<Value = Vec<Tpl>> {
    (
        prop::collection::vec(
            prop_oneof![
                3 => prop::sample::select(LITERALS.to_vec()).prop_map(Tpl::Lit),
                1 => Just(Tpl::Param),
            ],
            0..4,
        ),
        prop::bool::weighted(0.3),
    )
        .prop_map(|(mut segs, greedy)| {
            if greedy {
                segs.push(Tpl::Greedy);
            }
            segs
        })
}

fn template_text(t: &[Tpl]) -> String {
    if t.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::new();
    for (depth, seg) in t.iter().enumerate() {
        s.push('/');
        match seg {
            Tpl::Lit(l) => s.push_str(l),
            // One name per depth: sibling parameters must share a name.
            Tpl::Param => s.push_str(&format!("{{p{depth}}}")),
            Tpl::Greedy => s.push_str("{rest+}"),
        }
    }
    s
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The model: does `template` match `path`, and with which captures?
fn model_match(template: &[Segment], path: &str) -> Option<Vec<String>> {
    let mut p = path;
    if p.len() > 1 {
        p = p.strip_suffix('/').unwrap_or(p);
    }
    let p = p.strip_prefix('/').unwrap_or(p);
    let segs: Vec<&str> = if p.is_empty() {
        Vec::new()
    } else {
        p.split('/').collect()
    };
    let mut caps = Vec::new();
    for (i, t) in template.iter().enumerate() {
        match t {
            Segment::Literal(l) => {
                let s = segs.get(i)?;
                if s.is_empty() || percent_decode(s) != *l {
                    return None;
                }
            }
            Segment::Param(_) => {
                let s = segs.get(i)?;
                if s.is_empty() {
                    return None;
                }
                caps.push((*s).to_owned());
            }
            Segment::Greedy(_) => {
                // One or more segments: the rest may not be empty.
                let rest = segs.get(i..).map(|s| s.join("/")).unwrap_or_default();
                if rest.is_empty() {
                    return None;
                }
                caps.push(rest);
                return Some(caps);
            }
        }
    }
    (segs.len() == template.len()).then_some(caps)
}

/// API Gateway's precedence, per segment from the left: literal, then
/// `{param}`, then `{proxy+}`.
fn specificity(t: &[Segment]) -> Vec<u8> {
    t.iter()
        .map(|s| match s {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 0,
        })
        .collect()
}

/// A concrete path for `t`: literals (some characters percent-encoded),
/// parameter values, one to three segments for a greedy variable.
fn path_for(t: &[Tpl], values: &[String], encode: &[bool], trailing_slash: bool) -> String {
    let mut s = String::new();
    let mut v = values.iter().cycle();
    for (i, seg) in t.iter().enumerate() {
        s.push('/');
        match seg {
            Tpl::Lit(l) => {
                if encode.get(i).copied().unwrap_or(false) {
                    let mut chars = l.chars();
                    let first = chars.next().unwrap();
                    s.push_str(&format!("%{:02X}", first as u32));
                    s.push_str(chars.as_str());
                } else {
                    s.push_str(l);
                }
            }
            // A parameter value is one segment; a greedy value may hold
            // slashes.
            Tpl::Param => s.push_str(&v.next().unwrap().replace('/', "-")),
            Tpl::Greedy => s.push_str(v.next().unwrap()),
        }
    }
    if trailing_slash && !s.is_empty() {
        s.push('/');
    }
    s
}

proptest! {
    #![proptest_config(config(256))]

    /// Paths generated from the templates of a trie match, and the match is
    /// the most specific template that matches (the model), with the
    /// path's own segments as captures. Random paths over the same
    /// alphabet agree with the model too (including misses).
    #[test]
    fn route_trie_matches_generated_paths(
        templates in prop::collection::vec(template(), 1..8),
        picks in prop::collection::vec(any::<Index>(), 1..8),
        values in prop::collection::vec("[a-z0-9_~-]{1,4}|a|b|pets|[a-z]{1,3}/[a-z0-9]{1,3}", 1..6),
        encode in prop::collection::vec(any::<bool>(), 4),
        trailing_slash in any::<bool>(),
        random_paths in prop::collection::vec("(/(a|b|pets|x.y|v1|p%65ts|[a-z0-9]{1,3}|)){0,5}/?", 0..6),
    ) {
        let mut trie = RouteTrie::new();
        let mut inserted: Vec<(Vec<Tpl>, Vec<Segment>)> = Vec::new();
        for t in &templates {
            let text = template_text(t);
            let segs = parse_path_template(&text).expect("generated templates are valid");
            if trie.insert(&segs, inserted.len() as u32).is_ok() {
                inserted.push((t.clone(), segs));
            }
        }
        prop_assume!(!inserted.is_empty());
        let mut paths: Vec<String> = random_paths;
        for pick in &picks {
            let (t, _) = &inserted[pick.index(inserted.len())];
            let generated = path_for(t, &values, &encode, trailing_slash);
            let (_, segs) = &inserted[pick.index(inserted.len())];
            prop_assert!(model_match(segs, &generated).is_some(), "{} does not match {:?}", generated, segs);
            paths.push(generated);
        }
        for path in &paths {
            let mut caps = Captures::default();
            let got = trie.lookup(path, &mut caps);
            let best = inserted
                .iter()
                .enumerate()
                .filter(|(_, (_, s))| model_match(s, path).is_some())
                .max_by_key(|(_, (_, s))| specificity(s))
                .map(|(i, _)| i as u32);
            prop_assert_eq!(got, best, "{} against {:?}", path, inserted.iter().map(|(t, _)| template_text(t)).collect::<Vec<_>>());
            if let Some(id) = got {
                let want = model_match(&inserted[id as usize].1, path).unwrap();
                let got: Vec<&str> = (0..caps.len()).map(|i| caps.get(path, i).unwrap()).collect();
                prop_assert_eq!(got, want);
            }
        }
    }

    /// Arbitrary text as a template never panics; a template that parses
    /// prints back to text that parses to the same segments, and goes into
    /// an empty trie.
    #[test]
    fn route_templates_never_panic(text in "[/{}+a-z0-9._:,-]{0,40}|\\PC{0,40}") {
        if let Ok(segs) = parse_path_template(&text) {
            let mut back = String::new();
            for s in &segs {
                back.push('/');
                match s {
                    Segment::Literal(l) => back.push_str(l),
                    Segment::Param(n) => back.push_str(&format!("{{{n}}}")),
                    Segment::Greedy(n) => back.push_str(&format!("{{{n}+}}")),
                }
            }
            if back.is_empty() {
                back.push('/');
            }
            prop_assert_eq!(parse_path_template(&back), Ok(segs.clone()));
            let mut trie = RouteTrie::new();
            prop_assert!(trie.insert(&segs, 0).is_ok());
        }
    }
}

// ---------------------------------------------------------------------
// Query strings
// ---------------------------------------------------------------------

proptest! {
    #![proptest_config(config(256))]

    /// Encoded pairs decode back: `last_value` is the last value of a
    /// name and `all_values` all of them, in order, whatever the text.
    #[test]
    fn query_round_trips(
        params in prop::collection::vec(("\\PC{0,6}|[a=&+% ]{0,3}", "\\PC{0,8}|[a=&+%# ]{0,4}"), 0..8),
    ) {
        let mut q = Vec::new();
        for (i, (n, v)) in params.iter().enumerate() {
            if i > 0 {
                q.push(b'&');
            }
            encode_component(n, &mut q);
            q.push(b'=');
            encode_component(v, &mut q);
        }
        for (n, _) in &params {
            let all: Vec<String> = params.iter().filter(|(m, _)| m == n).map(|(_, v)| v.clone()).collect();
            prop_assert_eq!(all_values(&q, n), all.clone());
            prop_assert_eq!(last_value(&q, n), all.last().cloned());
        }
    }

    /// Arbitrary bytes: no panic; every pair's name finds its values.
    #[test]
    fn query_parsing_never_panics(q in prop::collection::vec(any::<u8>(), 0..256)) {
        for (n, v) in pairs(&q) {
            let name = decode_component(n).into_owned();
            let _ = decode_component(v);
            prop_assert!(!all_values(&q, &name).is_empty());
        }
        let _ = decode_path(&q);
    }
}

// ---------------------------------------------------------------------
// Swagger loader
// ---------------------------------------------------------------------

const KEYS: &[&str] = &[
    "swagger",
    "info",
    "title",
    "paths",
    "/",
    "/a",
    "/{id}",
    "/{proxy+}",
    "/a/{id}",
    "get",
    "post",
    "x-amazon-apigateway-any-method",
    "parameters",
    "name",
    "in",
    "required",
    "schema",
    "$ref",
    "definitions",
    "x-amazon-apigateway-integration",
    "type",
    "uri",
    "httpMethod",
    "requestParameters",
    "requestTemplates",
    "responses",
    "default",
    "statusCode",
    "selectionPattern",
    "responseParameters",
    "responseTemplates",
    "passthroughBehavior",
    "timeoutInMillis",
    "connectionType",
    "x-amazon-apigateway-gateway-responses",
    "x-amazon-apigateway-request-validators",
    "x-amazon-apigateway-request-validator",
    "securityDefinitions",
    "security",
    "application/json",
    "integration.request.header.x",
    "integration.request.path.id",
    "method.response.header.x",
    "validateRequestBody",
];

const STRINGS: &[&str] = &[
    "2.0",
    "http",
    "http_proxy",
    "mock",
    "aws",
    "aws_proxy",
    "GET",
    "ANY",
    "POST",
    "http://127.0.0.1:9/{id}",
    "http://${stageVariables.host}/x",
    "https://h/x",
    "ftp://x",
    "method.request.path.id",
    "method.request.querystring.q",
    "method.request.header.h",
    "method.request.body",
    "method.request.body.a.b",
    "'literal'",
    "stageVariables.v",
    "context.requestId",
    "integration.response.header.x",
    "integration.response.body",
    "200",
    "4\\d{2}",
    "(",
    "[",
    "DEFAULT_4XX",
    "MISSING_AUTHENTICATION_TOKEN",
    "when_no_match",
    "never",
    "#/definitions/x",
    "#/definitions/missing",
    "path",
    "query",
    "header",
    "body",
    "{\"statusCode\": 200}",
    "$input.json('$')",
    "#if(",
    "{id}",
    "{proxy+}",
    "",
];

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop::sample::select(STRINGS.to_vec()).prop_map(Value::from),
        prop::sample::select(KEYS.to_vec()).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        4 => prop::sample::select(KEYS.to_vec()).prop_map(str::to_owned),
                        1 => "\\PC{0,8}",
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// A document shaped like Swagger, with arbitrary values where the loader
/// looks: paths, methods, integrations, responses.
fn swagger_like() -> impl Strategy<Value = serde_json::Value> {
    let integration =
        prop::collection::vec((prop::sample::select(KEYS.to_vec()), json_value()), 0..8).prop_map(
            |kv| {
                serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            },
        );
    let method = (integration, json_value()).prop_map(
        |(i, p)| serde_json::json!({"x-amazon-apigateway-integration": i, "parameters": p}),
    );
    let paths = prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(vec![
                    "/",
                    "/a",
                    "/{id}",
                    "/{proxy+}",
                    "/a/{id}",
                    "/a/{b}",
                    "a",
                    "/a//b",
                    "/{x+}/y"
                ])
                .prop_map(str::to_owned),
                "(/[a-z{}+]{0,5}){0,3}",
            ],
            prop::collection::vec(
                (
                    prop::sample::select(vec![
                        "get",
                        "post",
                        "x-amazon-apigateway-any-method",
                        "head",
                        "trace",
                    ]),
                    method,
                ),
                0..3,
            ),
        ),
        0..5,
    );
    (paths, json_value(), any::<bool>()).prop_map(|(paths, extra, swagger2)| {
        let mut p = serde_json::Map::new();
        for (path, methods) in paths {
            let mut m = serde_json::Map::new();
            for (k, v) in methods {
                m.insert(k.to_owned(), v);
            }
            p.insert(path, serde_json::Value::Object(m));
        }
        serde_json::json!({
            "swagger": if swagger2 { serde_json::json!("2.0") } else { extra.clone() },
            "info": {"title": "t", "version": "1"},
            "paths": p,
            "x-amazon-apigateway-gateway-responses": extra,
        })
    })
}

struct Doc(String);

impl tollgate::config::SourceReader for Doc {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Ok(self.0.clone())
    }
}

const CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\ndefault_api = \"p\"\n[[apis]]\nid = \"p\"\nswagger = \"p.json\"\n[[stages]]\napi = \"p\"\nname = \"prod\"\nvariables = { host = \"127.0.0.1:9\", v = \"x\" }\n";

/// The Swagger compiler and the whole load (settings, stages bound to the
/// document): no panic; a refused document or config says why.
fn check_document(doc: &serde_json::Value) -> Result<(), TestCaseError> {
    let mut diags = tollgate::config::Diagnostics::default();
    let draft = tollgate::config::swagger::compile_api("p", Path::new("p.json"), doc, &mut diags);
    if draft.is_none() {
        prop_assert!(!diags.errors.is_empty(), "refused without an error");
    }
    if !doc.is_object() {
        prop_assert!(draft.is_none());
    }
    let config = PathBuf::from("/nonexistent/tollgate.toml");
    let raw = tollgate::config::parse_toml(&config, CONFIG).expect("fixed config parses");
    let mut diags = tollgate::config::Diagnostics::default();
    let reader = Doc(serde_json::to_string(doc).unwrap());
    if let Err(e) = tollgate::config::compile(&config, raw, &mut diags, &reader) {
        prop_assert!(!e.errors.is_empty(), "load failed without an error");
        for d in &e.errors {
            prop_assert!(!d.message.is_empty() && !d.path.is_empty(), "{:?}", d);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn swagger_loader_never_panics_on_arbitrary_json(doc in json_value()) {
        check_document(&doc)?;
    }

    #[test]
    fn swagger_loader_never_panics_on_swagger_shaped_json(doc in swagger_like()) {
        check_document(&doc)?;
    }

    /// Document text, JSON or YAML: parsed or refused with a message.
    #[test]
    fn swagger_text_never_panics(
        text in prop_oneof![
            "\\PC{0,200}",
            "[{}\\[\\]:,\"a-z0-9 \n-]{0,120}",
            "(swagger: [\"'0-9.]{0,5}\n)?(paths:\n(  /[a-z{}]{0,4}:\n(    [a-z]{0,4}: [a-z&*!|>{}]{0,6}\n){0,3}){0,3})?",
        ],
        yaml in any::<bool>(),
    ) {
        let file = if yaml { "p.yaml" } else { "p.json" };
        match tollgate::config::parse_document(Path::new(file), &text) {
            Ok(doc) => check_document(&doc)?,
            Err(d) => prop_assert!(!d.message.is_empty()),
        }
    }
}

// ---------------------------------------------------------------------
// VTL templates
// ---------------------------------------------------------------------

const VTL_TOKENS: &[&str] = &[
    "#set(",
    "#if(",
    "#elseif(",
    "#else",
    "#end",
    "#foreach(",
    " in ",
    "#macro(",
    "#define(",
    "#break",
    "#stop",
    "#{if}",
    "#*",
    "*#",
    "##",
    "\n",
    "$",
    "$!",
    "${",
    "}",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ".",
    "..",
    "=",
    "==",
    "!=",
    "&&",
    "||",
    "!",
    "+",
    "-",
    "*",
    "/",
    "%",
    "<",
    ">",
    "'",
    "\"",
    "\\",
    "$x",
    "$i",
    "$input",
    ".path(",
    ".json(",
    ".params(",
    ".body",
    "$util",
    ".escapeJavaScript(",
    ".parseJson(",
    ".base64Encode(",
    ".urlDecode(",
    "$context",
    ".requestOverride.header.X",
    ".responseOverride.status",
    "$stageVariables.v",
    "$foreach",
    ".hasNext",
    ".size()",
    ".get(",
    ".put(",
    ".add(",
    ".keySet()",
    ".substring(",
    ".matches(",
    ".replaceAll(",
    "'$.a'",
    "'$.a.b[*]'",
    "'$..c'",
    "'$['",
    "1",
    "0",
    "-1",
    "2147483647",
    "1.5",
    "true",
    "false",
    "null",
    "a",
    " ",
    "x",
    "\"$x\"",
    "[1..3]",
];

fn vtl_source() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,80}",
        prop::collection::vec(prop::sample::select(VTL_TOKENS.to_vec()), 0..40)
            .prop_map(|t| t.concat()),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    /// Any text compiles, or fails with a located error; a compiled
    /// template renders within small budgets without a panic, the same way
    /// twice, and a failed render is located too.
    #[test]
    fn vtl_never_panics(source in vtl_source()) {
        let template = match tollgate::vtl::compile(&source) {
            Ok(t) => t,
            Err(e) => {
                prop_assert!(e.line >= 1 && e.column >= 1, "{:?}", e);
                prop_assert!(e.line <= source.split('\n').count(), "{:?}", e);
                return Ok(());
            }
        };
        let stage: BTreeMap<String, String> = [("v".to_owned(), "blue".to_owned())].into();
        let context: BTreeMap<String, String> =
            [("requestId".to_owned(), "r-1".to_owned()), ("stage".to_owned(), "prod".to_owned())].into();
        let headers = [("h".to_owned(), "H".to_owned())];
        let query = [("q".to_owned(), "1".to_owned()), ("q".to_owned(), "2".to_owned())];
        let path = [("id".to_owned(), "42".to_owned())];
        let input = tollgate::vtl::Input {
            body: br#"{"a": {"b": [1, 2, {"c": "d"}]}, "s": "x\"y"}"#,
            path: &path,
            query: &query,
            headers: &headers,
            stage_variables: &stage,
            context: &context,
        };
        let limits = tollgate::vtl::Limits {
            max_iterations: 50,
            max_output_bytes: 16 * 1024,
            max_steps: 50_000,
            max_depth: 16,
        };
        let first = template.render(&input, &limits);
        let second = template.render(&input, &limits);
        match (&first, &second) {
            (Ok(a), Ok(b)) => {
                prop_assert!(a.body.len() <= limits.max_output_bytes);
                prop_assert_eq!(&a.body, &b.body);
                prop_assert_eq!(&a.overrides, &b.overrides);
            }
            (Err(a), Err(b)) => {
                prop_assert!(a.line >= 1 && a.column >= 1, "{:?}", a);
                prop_assert_eq!(a, b);
            }
            _ => prop_assert!(false, "renders differ: {:?} / {:?}", first, second),
        }
    }
}

fn render_with_header(template: &str, p: &str, body: &[u8]) -> Result<String, String> {
    let template = tollgate::vtl::compile(template).map_err(|e| e.to_string())?;
    let empty = BTreeMap::new();
    let headers = [("p".to_owned(), p.to_owned())];
    let input = tollgate::vtl::Input {
        body,
        path: &[],
        query: &[],
        headers: &headers,
        stage_variables: &empty,
        context: &empty,
    };
    template
        .render(&input, &tollgate::vtl::Limits::default())
        .map(|r| r.body)
        .map_err(|e| e.to_string())
}

/// Found by the `jsonpath` fuzz target: a backslash before a multi-byte
/// character inside a quoted bracket name. The path can come from request
/// data (`$input.json($input.params('p'))`), so this must be an error (or a
/// result), never a panic.
#[test]
fn jsonpath_with_an_escaped_multibyte_character_does_not_panic() {
    for p in ["$['\\é']", "$[\"\\€\"]", "$.a['x\\\u{1F600}']"] {
        let outcome = std::panic::catch_unwind(|| {
            render_with_header("$input.json($input.params('p'))", p, br#"{"a": 1}"#)
        });
        assert!(outcome.is_ok(), "{p:?} panicked");
    }
}

/// `$['é']` names the same member as `$.é`.
#[test]
fn jsonpath_bracket_names_keep_non_ascii_characters() {
    let body = r#"{"é": "yes", "日本": "also"}"#.as_bytes();
    let t = "$input.path($input.params('p'))";
    assert_eq!(render_with_header(t, "$.é", body).as_deref(), Ok("yes"));
    assert_eq!(render_with_header(t, "$['é']", body).as_deref(), Ok("yes"));
    assert_eq!(
        render_with_header(t, "$[\"日本\"]", body).as_deref(),
        Ok("also")
    );
}

/// Found by the `jsonpath` fuzz target: `serde_json_path` 0.7.2 (the latest
/// release) panics with `unreachable!("we do not use streaming parsers")`
/// when a path ends inside a `\u` escape, because its string parser uses
/// nom's streaming `one_of`. Reached from request data at render time, and
/// from a template literal at load.
#[test]
fn jsonpath_ending_in_a_unicode_escape_does_not_panic() {
    for p in ["$['\\u", "$[\"\\u", "$['a\\u"] {
        let outcome = std::panic::catch_unwind(|| {
            render_with_header("$input.json($input.params('p'))", p, br#"{"a": 1}"#)
        });
        assert!(outcome.is_ok(), "{p:?} panicked at render time");
    }
    let outcome =
        std::panic::catch_unwind(|| tollgate::vtl::compile("$input.path('$[''\\u')").map(|_| ()));
    assert!(
        outcome.is_ok(),
        "a template literal panicked at compile time"
    );
}
