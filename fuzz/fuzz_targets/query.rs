//! Query strings: arbitrary bytes never panic, and an encoded value decodes
//! back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate::http::query::{
    all_values, decode_component, decode_path, encode_component, last_value, pairs,
};

fuzz_target!(|data: &[u8]| {
    for (n, v) in pairs(data) {
        let name = decode_component(n);
        let _ = decode_component(v);
        let all = all_values(data, &name);
        assert!(!all.is_empty());
        assert_eq!(last_value(data, &name).as_ref(), all.last());
    }
    let _ = decode_path(data);
    let text = String::from_utf8_lossy(data);
    let mut encoded = Vec::new();
    encode_component(&text, &mut encoded);
    assert!(encoded
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(b)));
    assert_eq!(decode_component(&encoded), text);
});
