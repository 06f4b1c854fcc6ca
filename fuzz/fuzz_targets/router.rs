//! Route compiler and matcher: lines of the input are resource-path
//! templates, then (after an empty line) request paths. Nothing panics, and
//! the match is the most specific template that matches the path (the
//! reference below), with captures that are the path's own segments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::router::{parse_path_template, Captures, RouteTrie, Segment};

fn decode(seg: &str) -> String {
    tollgate::http::query::decode_path(seg.as_bytes()).into_owned()
}

/// Whether `template` matches `path` (after the stage, trailing slash
/// ignored), and the captured values if so.
fn reference(template: &[Segment], path: &str) -> Option<Vec<String>> {
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
                if s.is_empty() || (*s != l && decode(s) != *l) {
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

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (templates, paths) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut trie = RouteTrie::new();
    let mut compiled: Vec<Vec<Segment>> = Vec::new();
    for t in templates.lines().take(64) {
        if let Ok(segs) = parse_path_template(t) {
            if trie.insert(&segs, compiled.len() as u32).is_ok() {
                compiled.push(segs);
            }
        }
    }
    for path in paths.lines().take(64) {
        let mut caps = Captures::default();
        let got = trie.lookup(path, &mut caps);
        // The template API Gateway would pick: among those that match, the
        // most specific at the first segment where they differ (literal,
        // then {param}, then {proxy+}).
        let best = compiled
            .iter()
            .enumerate()
            .filter(|(_, t)| reference(t, path).is_some())
            .max_by_key(|(_, t)| specificity(t))
            .map(|(i, _)| i as u32);
        assert_eq!(got, best, "{path:?} against {compiled:?}");
        if let Some(id) = got {
            let template = &compiled[id as usize];
            let want = reference(template, path).unwrap_or_default();
            let got: Vec<&str> = (0..caps.len())
                .map(|i| caps.get(path, i).unwrap_or("<out of range>"))
                .collect();
            assert_eq!(got, want, "captures of {path:?} for {template:?}");
        }
    }
});

fn specificity(t: &[Segment]) -> Vec<u8> {
    t.iter()
        .map(|s| match s {
            Segment::Literal(_) => 2,
            Segment::Param(_) => 1,
            Segment::Greedy(_) => 0,
        })
        .collect()
}
