//! JSONPath as templates use it (`$input.path`, `$input.json`): the first
//! line is the path, compiled at render time, the rest is the request
//! body. No panic, whatever either is.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tollgate::vtl::{compile, Input, Limits, RenderErrorKind};

fuzz_target!(|data: &[u8]| {
    let (path, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"{\"a\": [1, {\"b\": \"c\"}]}"[..]),
    };
    let Ok(path) = std::str::from_utf8(path) else {
        return;
    };
    // The path arrives as a header, so any text reaches the JSONPath
    // compiler unquoted.
    let template = compile("$input.json($input.params('p'))|$input.path($input.params('p'))")
        .unwrap_or_else(|e| panic!("fixed template: {e}"));
    let headers = [("p".to_owned(), path.to_owned())];
    let empty = BTreeMap::new();
    let input = Input {
        body,
        path: &[],
        query: &[],
        headers: &headers,
        stage_variables: &empty,
        context: &empty,
    };
    let limits = Limits {
        max_iterations: 100,
        max_output_bytes: 64 * 1024,
        max_steps: 200_000,
        max_depth: 16,
    };
    if let Err(e) = template.render(&input, &limits) {
        assert!(matches!(
            e.kind,
            RenderErrorKind::InvalidJsonBody
                | RenderErrorKind::Runtime
                | RenderErrorKind::LimitExceeded
        ));
    }
});
