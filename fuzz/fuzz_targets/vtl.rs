//! VTL mapping templates: any text compiles or fails with a located error,
//! and a compiled template renders within small budgets without a panic.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use tollgate::vtl::{compile, Input, Limits};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let template = match compile(source) {
        Ok(t) => t,
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            assert!(e.line <= source.split('\n').count(), "{e}");
            return;
        }
    };
    let stage: BTreeMap<String, String> = [("v".to_owned(), "blue".to_owned())].into();
    let context: BTreeMap<String, String> = [
        ("requestId".to_owned(), "r-1".to_owned()),
        ("stage".to_owned(), "prod".to_owned()),
    ]
    .into();
    let headers = [("Content-Type".to_owned(), "application/json".to_owned())];
    let query = [
        ("q".to_owned(), "1".to_owned()),
        ("q".to_owned(), "2".to_owned()),
    ];
    let path = [("id".to_owned(), "42".to_owned())];
    let input = Input {
        body: br#"{"a": {"b": [1, 2, {"c": "d"}], "e": null}, "s": "x\"y"}"#,
        path: &path,
        query: &query,
        headers: &headers,
        stage_variables: &stage,
        context: &context,
    };
    let limits = Limits {
        max_iterations: 100,
        max_output_bytes: 64 * 1024,
        max_steps: 200_000,
        max_depth: 16,
    };
    match template.render(&input, &limits) {
        Ok(r) => assert!(r.body.len() <= limits.max_output_bytes),
        Err(e) => assert!(e.line >= 1 && e.column >= 1),
    }
});
