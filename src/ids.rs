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
