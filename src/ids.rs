//! Request ids and the time formats API Gateway puts in `$context`.
//! Sans-IO: callers pass the random bits and the time.

use std::time::{SystemTime, UNIX_EPOCH};

/// A version-4 UUID in its 36-character text form, from 128 random bits.
pub fn uuid_v4(hi: u64, lo: u64) -> [u8; 36] {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut out = [0u8; 36];
    let mut j = 0;
    for (i, b) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out[j] = b'-';
            j += 1;
        }
        out[j] = HEX[(b >> 4) as usize];
        out[j + 1] = HEX[(b & 0xf) as usize];
        j += 2;
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A fresh request id from this thread's generator (one per shard thread:
/// nothing shared between shards).
pub fn new_request_id() -> [u8; 36] {
    uuid_v4(fastrand::u64(..), fastrand::u64(..))
}

/// The 16 bytes a request id's 32 hex digits spell, read from the
/// positions [`uuid_v4`] writes them to (`8-4-4-4-12`; a digit that is not
/// lowercase hex counts as 0).
fn request_id_bytes(request_id: &str) -> [u8; 16] {
    // Where each byte's two digits start in the 36-character form.
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    let s = request_id.as_bytes();
    let digit = |i: usize| match s.get(i) {
        Some(c @ b'0'..=b'9') => c - b'0',
        Some(c @ b'a'..=b'f') => c - b'a' + 10,
        _ => 0,
    };
    let mut bytes = [0u8; 16];
    for (b, &at) in bytes.iter_mut().zip(&AT) {
        *b = (digit(at) << 4) | digit(at + 1);
    }
    bytes
}

/// `x-amz-apigw-id` and `$context.extendedRequestId`: API Gateway's
/// extended request id, 16 characters of base64 (`RcMIwFBZIAMFcQw=`: 11
/// bytes and one `=`). Derived from 88 random bits of the request id
/// (bytes 0–5 and 9–13 of the UUID; 6 and 8 carry its version and
/// variant), so the response header, templates and the access log agree
/// without a second id carried through every call.
pub fn extended_id(request_id: &str) -> [u8; 16] {
    use base64::Engine;
    let b = request_id_bytes(request_id);
    let mut picked = [0u8; 11];
    picked[..6].copy_from_slice(&b[..6]);
    picked[6..].copy_from_slice(&b[9..14]);
    let mut out = [0u8; 16];
    // 11 bytes always encode to 16 characters: the slice is large enough.
    let _ = base64::engine::general_purpose::STANDARD.encode_slice(picked, &mut out);
    out
}

/// [`extended_id`] as text, for `$context.extendedRequestId`.
pub fn extended_id_text(request_id: &str) -> String {
    String::from_utf8_lossy(&extended_id(request_id)).into_owned()
}

/// The `X-Amzn-Trace-Id` API Gateway adds to a request that has none:
/// `Root=1-{epoch seconds, 8 hex digits}-{96 bits, 24 hex digits}` (X-Ray's
/// trace id format). The 96 bits are the request id's bytes 4–15, with
/// its fixed version and variant bits mixed away.
pub fn trace_root(request_id: &str, epoch_secs: u64) -> [u8; 40] {
    let b = request_id_bytes(request_id);
    let mut id = [0u8; 12];
    id.copy_from_slice(&b[4..]);
    id[2] ^= b[0];
    id[4] ^= b[1];
    let mut out = *b"Root=1-00000000-000000000000000000000000";
    let hex = |dst: &mut [u8], src: &[u8]| {
        for (pair, byte) in dst.chunks_exact_mut(2).zip(src) {
            pair[0] = HEX[(byte >> 4) as usize];
            pair[1] = HEX[(byte & 0xf) as usize];
        }
    };
    hex(&mut out[7..15], &(epoch_secs as u32).to_be_bytes());
    hex(&mut out[16..], &id);
    out
}

/// Whether a client's `X-Amzn-Trace-Id` is one API Gateway keeps (it adds
/// its own only to requests without one): visible ASCII, at most 256
/// bytes, with a field `Root=1-{8 hex}-{24 hex}`.
pub fn is_trace_header(v: &[u8]) -> bool {
    let root_ok = |f: &[u8]| {
        f.len() == 40
            && f.starts_with(b"Root=1-")
            && f[15] == b'-'
            && f[7..15].iter().chain(&f[16..]).all(u8::is_ascii_hexdigit)
    };
    v.len() <= 256
        && v.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
        && v.split(|&b| b == b';').any(|f| root_ok(f.trim_ascii()))
}

pub fn epoch_millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// English month abbreviations, January first (CLF, certificate dates).
pub const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `$context.requestTime`: CLF, `23/Nov/2026:23:49:17 +0000`.
pub fn clf_time(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{:02}/{}/{}:{:02}:{:02}:{:02} +0000",
        d,
        MONTHS[(m - 1) as usize],
        y,
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u64;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i64 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) → days since 1970-01-01 (Howard Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn uuid_shape() {
        let id = uuid_v4(0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
        let s = std::str::from_utf8(&id).unwrap();
        assert_eq!(s, "01234567-89ab-4def-bedc-ba9876543210");
    }

    #[test]
    fn extended_ids_and_trace_roots() {
        let rid = "01234567-89ab-4def-bedc-ba9876543210";
        let ext = extended_id(rid);
        let ext = std::str::from_utf8(&ext).unwrap();
        // Bytes 01 23 45 67 89 ab | dc ba 98 76 54 in base64.
        assert_eq!(ext, "ASNFZ4mr3LqYdlQ=");
        let other = extended_id("11234567-89ab-4def-bedc-ba9876543210");
        assert_ne!(ext.as_bytes(), &other);
        let root = trace_root(rid, 1_795_478_957);
        let root = std::str::from_utf8(&root).unwrap();
        // 0x6b04_d5ad; then bytes 4-15, 4d ^ 01 and be ^ 23 mixed in.
        assert_eq!(root, "Root=1-6b04d5ad-89ab4cef9ddcba9876543210");
        assert!(is_trace_header(root.as_bytes()));
        for ok in [
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            "Self=1-67891234-12456789abcdef012345678;Root=1-5759e988-bd862e3fe1be46a994272793",
        ] {
            assert!(is_trace_header(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "garbage",
            "Root=1-5759e988-bd862e3fe1be46a99427279",
            "Root=2-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98g-bd862e3fe1be46a994272793",
            "Root=1-5759e988-bd862e3fe1be46a994272793;\u{7f}",
        ] {
            assert!(!is_trace_header(bad.as_bytes()), "{bad}");
        }
        assert!(!is_trace_header(
            format!(
                "Root=1-5759e988-bd862e3fe1be46a994272793;{}",
                "x".repeat(300)
            )
            .as_bytes()
        ));
    }

    #[test]
    fn clf_table() {
        let cases = [
            (0u64, "01/Jan/1970:00:00:00 +0000"),
            (1_795_478_957, "24/Nov/2026:00:09:17 +0000"),
            (951_782_400, "29/Feb/2000:00:00:00 +0000"),
        ];
        for (secs, want) in cases {
            assert_eq!(clf_time(UNIX_EPOCH + Duration::from_secs(secs)), want);
        }
    }
}
