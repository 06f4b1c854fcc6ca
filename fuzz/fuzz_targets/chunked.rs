//! Chunked decoder: arbitrary bytes never panic, and feeding the input in
//! pieces gives exactly what feeding it whole gives.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tollgate::http::chunked::{ChunkError, ChunkedDecoder};

/// Feeds `input` split at `cuts`; returns (payload, consumed, done, error).
fn feed(input: &[u8], cuts: &[usize]) -> (Vec<u8>, usize, bool, Option<ChunkError>) {
    let mut d = ChunkedDecoder::new();
    let mut out = BytesMut::new();
    let mut used = 0;
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&input.len())) {
        let end = end.clamp(start, input.len());
        // A caller keeps unconsumed bytes and offers them again.
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
        start = end;
    }
    (out.to_vec(), used, false, None)
}

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose where the input is cut.
    let (cuts, input) = if data.len() >= 2 {
        let (a, b) = (usize::from(data[0]), usize::from(data[1]));
        (vec![a.min(b), a.max(b)], &data[2..])
    } else {
        (Vec::new(), data)
    };
    let whole = feed(input, &[]);
    let pieces = feed(input, &cuts);
    assert_eq!(
        whole.3.is_some(),
        pieces.3.is_some(),
        "error differs when split"
    );
    assert_eq!(whole.2, pieces.2, "completion differs when split");
    if whole.2 {
        assert_eq!(whole.0, pieces.0);
        assert_eq!(whole.1, pieces.1);
    }
    if whole.3.is_none() {
        assert_eq!(whole.0, pieces.0);
    }
    // The payload is never longer than the input.
    assert!(whole.0.len() <= input.len());
});
