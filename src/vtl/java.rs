//! Java library behaviour the templates can observe: `Double.toString`,
//! commons-lang `escapeJavaScript`, `URLEncoder`/`URLDecoder`, regex
//! replacement strings, `String.split`, and UTF-16 string indexes.
//!
//! Owns: pure functions from text to text; nothing here knows about the
//! evaluator. Read first: [`write_double`], then [`escape_javascript`].

use std::borrow::Cow;

use regex::Regex;

/// Java `Double.toString(d)`: plain notation with at least one fraction
/// digit for 10^-3 <= |d| < 10^7, computerized scientific notation
/// (`1.0E7`, `1.5E-4`) otherwise. Digits are the shortest that round-trip
/// (JDK 19+; older JDKs occasionally print one more digit).
pub(crate) fn write_double(d: f64, out: &mut String) {
    if d.is_nan() {
        out.push_str("NaN");
        return;
    }
    if d.is_infinite() {
        out.push_str(if d > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if d == 0.0 {
        out.push_str(if d.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    // `{:e}` gives the shortest round-trip digits: "1.2345e-7", "5e0".
    let sci = format!("{:e}", d.abs());
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    if d < 0.0 {
        out.push('-');
    }
    let abs = d.abs();
    if (1e-3..1e7).contains(&abs) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        out.push('.');
        if digits.len() > 1 {
            out.push_str(&digits[1..]);
        } else {
            out.push('0');
        }
        out.push('E');
        out.push_str(&exp.to_string());
    }
}

/// A JSON string literal, escaped the way serde_json does (only `"`, `\`
/// and control characters).
pub(crate) fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                out.push_str("\\u00");
                out.push(HEX_UPPER[(b >> 4) as usize] as char);
                out.push(HEX_UPPER[(b & 0xf) as usize] as char);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

/// `$util.escapeJavaScript`: commons-lang `StringEscapeUtils.escapeJavaScript`
/// (`escapeJavaStyleString(s, escapeSingleQuote=true, escapeForwardSlash=true)`).
/// `'` becomes `\'`, which JSON does not accept; the AWS docs tell users to
/// undo it with `.replaceAll("\\'","'")`. Characters above U+007F become
/// `\uXXXX` escapes of their UTF-16 units.
pub(crate) fn escape_javascript(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str("\\u");
                    for shift in [12, 8, 4, 0] {
                        out.push(HEX_UPPER[((*unit >> shift) & 0xf) as usize] as char);
                    }
                }
            }
            c => out.push(c),
        }
    }
}

/// `$util.urlEncode`: Java `URLEncoder.encode(s, "UTF-8")`, i.e. form
/// encoding: `A-Za-z0-9.-*_` stay, space becomes `+`, every other byte of
/// the UTF-8 form becomes `%XX`. AWS-recorded: `{"some": "value"}` →
/// `%7B%22some%22%3A+%22value%22%7D`.
pub(crate) fn url_encode(s: &str, out: &mut String) {
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'*' | b'_' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(HEX_UPPER[(b >> 4) as usize] as char);
                out.push(HEX_UPPER[(b & 0xf) as usize] as char);
            }
        }
    }
}

/// `$util.urlDecode`: Java `URLDecoder.decode(s, "UTF-8")`. `+` is a space;
/// a `%` not followed by two hex digits is an error (Java throws
/// `IllegalArgumentException`). Invalid UTF-8 becomes U+FFFD, as in Java.
pub(crate) fn url_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16).ok()
                });
                match hex {
                    Some(b) => out.push(b),
                    None => {
                        return Err(format!(
                            "urlDecode: incomplete or invalid escape at character {i}"
                        ))
                    }
                }
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// One piece of a Java `Matcher.replaceAll` replacement string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Repl {
    Lit(String),
    Group(usize),
    Named(String),
}

/// Parses a Java replacement string: `$n` and `${name}` refer to groups,
/// `\x` is a literal `x`. Java reads as many digits after `$` as still name
/// an existing group; `groups` is the pattern's group count.
pub(crate) fn parse_replacement(s: &str, groups: usize) -> Result<Vec<Repl>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => lit.push(n),
                None => return Err("character to be escaped is missing".to_owned()),
            },
            '$' => {
                if !lit.is_empty() {
                    parts.push(Repl::Lit(std::mem::take(&mut lit)));
                }
                match chars.peek() {
                    Some('{') => {
                        chars.next();
                        let mut name = String::new();
                        loop {
                            match chars.next() {
                                Some('}') => break,
                                Some(n) if n.is_ascii_alphanumeric() => name.push(n),
                                _ => {
                                    return Err(
                                        "named capturing group is missing trailing '}'".to_owned()
                                    )
                                }
                            }
                        }
                        parts.push(Repl::Named(name));
                    }
                    Some(d) if d.is_ascii_digit() => {
                        let mut n = d.to_digit(10).map_or(0, |v| v as usize);
                        chars.next();
                        if n > groups {
                            return Err(format!("No group {n}"));
                        }
                        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                            let next = n.saturating_mul(10).saturating_add(d as usize);
                            if next > groups {
                                break;
                            }
                            n = next;
                            chars.next();
                        }
                        parts.push(Repl::Group(n));
                    }
                    _ => return Err("Illegal group reference".to_owned()),
                }
            }
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        parts.push(Repl::Lit(lit));
    }
    Ok(parts)
}

/// `String.replaceAll`/`replaceFirst` with a Java replacement string.
pub(crate) fn regex_replace(re: &Regex, s: &str, repl: &str, all: bool) -> Result<String, String> {
    // Java reads the replacement only when it appends a match: a bad one
    // fails only if something matched.
    let parts = match parse_replacement(repl, re.captures_len().saturating_sub(1)) {
        Ok(parts) => parts,
        Err(_) if !re.is_match(s) => return Ok(s.to_owned()),
        Err(e) => return Err(e),
    };
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    // Most replacements (`.replaceAll("\\'", "'")`) name no group: plain
    // matching is several times cheaper than collecting captures.
    if parts.iter().all(|p| matches!(p, Repl::Lit(_))) {
        let lit: String = parts
            .iter()
            .filter_map(|p| match p {
                Repl::Lit(l) => Some(l.as_str()),
                _ => None,
            })
            .collect();
        for m in re.find_iter(s) {
            out.push_str(&s[last..m.start()]);
            out.push_str(&lit);
            last = m.end();
            if !all {
                break;
            }
        }
        out.push_str(&s[last..]);
        return Ok(out);
    }
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(&s[last..m.start()]);
        for part in &parts {
            match part {
                Repl::Lit(l) => out.push_str(l),
                Repl::Group(g) => out.push_str(caps.get(*g).map_or("", |m| m.as_str())),
                Repl::Named(n) => match caps.name(n) {
                    Some(m) => out.push_str(m.as_str()),
                    None if re.capture_names().any(|c| c == Some(n.as_str())) => {}
                    None => return Err(format!("No group with name {{{n}}}")),
                },
            }
        }
        last = m.end();
        if !all {
            break;
        }
    }
    out.push_str(&s[last..]);
    Ok(out)
}

/// Java `String.split(regex, limit)`: with `limit == 0` trailing empty
/// strings go; a zero-width match at the very start never yields a leading
/// empty string (Java 8+).
pub(crate) fn split<'a>(re: &Regex, s: &'a str, limit: i64) -> Vec<&'a str> {
    if s.is_empty() {
        return vec![""];
    }
    let mut out = Vec::new();
    let mut last = 0;
    for m in re.find_iter(s) {
        if limit > 0 && out.len() as i64 >= limit - 1 {
            break;
        }
        if m.end() == 0 {
            continue;
        }
        if m.start() == m.end() && m.start() >= s.len() {
            break;
        }
        out.push(&s[last..m.start()]);
        last = m.end();
    }
    out.push(&s[last..]);
    if limit == 0 {
        while out.len() > 1 && out.last().is_some_and(|p| p.is_empty()) {
            out.pop();
        }
        if out.len() == 1 && out[0].is_empty() && !s.is_empty() {
            out.clear();
        }
    }
    out
}

/// Java `String.length()`: UTF-16 code units.
pub(crate) fn utf16_len(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().map(char::len_utf16).sum()
    }
}

/// Byte offset of UTF-16 index `i` in `s`; `None` past the end or inside a
/// surrogate pair.
pub(crate) fn byte_at_utf16(s: &str, i: usize) -> Option<usize> {
    if s.is_ascii() {
        return (i <= s.len()).then_some(i);
    }
    let mut units = 0;
    for (b, c) in s.char_indices() {
        if units == i {
            return Some(b);
        }
        if units > i {
            return None;
        }
        units += c.len_utf16();
    }
    (units == i).then_some(s.len())
}

/// UTF-16 index of byte offset `b` (which is on a char boundary).
pub(crate) fn utf16_at_byte(s: &str, b: usize) -> usize {
    if s.is_ascii() {
        b
    } else {
        s[..b].chars().map(char::len_utf16).sum()
    }
}

/// Java `String.trim()`: strips every char <= U+0020 at both ends.
pub(crate) fn java_trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Java's `toLowerCase`/`toUpperCase` (root locale), borrowing when nothing
/// changes.
pub(crate) fn to_lower(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_uppercase) {
        Cow::Owned(s.to_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) fn to_upper(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_lowercase) {
        Cow::Owned(s.to_uppercase())
    } else {
        Cow::Borrowed(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn double(d: f64) -> String {
        let mut s = String::new();
        write_double(d, &mut s);
        s
    }

    #[test]
    fn doubles_print_like_java() {
        let cases = [
            (2.0, "2.0"),
            (0.05, "0.05"),
            (249.99, "249.99"),
            (1e7, "1.0E7"),
            (1.5e7, "1.5E7"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (-3.25, "-3.25"),
            (123456.0, "123456.0"),
            (1e21, "1.0E21"),
            (0.0, "0.0"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (d, expected) in cases {
            assert_eq!(double(d), expected, "{d}");
        }
    }

    #[test]
    fn escape_javascript_table() {
        let cases = [
            ("it's", "it\\'s"),
            ("say \"hi\"", "say \\\"hi\\\""),
            ("a/b\\c", "a\\/b\\\\c"),
            ("l1\nl2\t\r", "l1\\nl2\\t\\r"),
            ("\u{1}", "\\u0001"),
            ("é", "\\u00E9"),
            ("😀", "\\uD83D\\uDE00"),
            (r#"{"a":1}"#, r#"{\"a\":1}"#),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            escape_javascript(input, &mut out);
            assert_eq!(out, expected, "{input}");
        }
    }

    #[test]
    fn url_encoding_table() {
        let cases = [
            (r#"{"some": "value"}"#, "%7B%22some%22%3A+%22value%22%7D"),
            ("a.b-c*d_e~f", "a.b-c*d_e%7Ef"),
            ("é", "%C3%A9"),
        ];
        for (input, expected) in cases {
            let mut out = String::new();
            url_encode(input, &mut out);
            assert_eq!(out, expected);
            assert_eq!(url_decode(&out).unwrap(), input);
        }
        assert!(url_decode("%zz").is_err());
        assert!(url_decode("abc%4").is_err());
        assert_eq!(url_decode("a+b%20c").unwrap(), "a b c");
    }

    #[test]
    fn replacement_strings_table() {
        let re = Regex::new("(a)(b)?").unwrap();
        let cases = [
            ("x", "xc", "ab c"),
            ("[$1]", "[a]c", "ab c"),
            ("\\$", "$c", "ab c"),
            ("$2$1", "bac", "ab c"),
            ("$21", "b1c", "ab c"),
        ];
        for (repl, expected, _) in cases {
            assert_eq!(
                regex_replace(&re, "abc", repl, true).unwrap(),
                expected,
                "{repl}"
            );
        }
        assert!(regex_replace(&re, "abc", "$3", true).is_err());
        assert!(regex_replace(&re, "abc", "$", true).is_err());
        let first = Regex::new("o").unwrap();
        assert_eq!(regex_replace(&first, "foo", "0", false).unwrap(), "f0o");
    }

    #[test]
    fn split_like_java() {
        let cases: [(&str, &str, i64, &[&str]); 7] = [
            (",", "a,b,,c,,", 0, &["a", "b", "", "c"]),
            (",", "a,b,,c,,", -1, &["a", "b", "", "c", "", ""]),
            (",", "a,b,c", 2, &["a", "b,c"]),
            (",", "", 0, &[""]),
            (",", ",,", 0, &[]),
            ("", "abc", 0, &["a", "b", "c"]),
            ("\\?", "p?q=1", 2, &["p", "q=1"]),
        ];
        for (pattern, s, limit, expected) in cases {
            let re = Regex::new(pattern).unwrap();
            assert_eq!(
                split(&re, s, limit),
                expected,
                "{s:?}.split({pattern:?}, {limit})"
            );
        }
    }

    #[test]
    fn utf16_indexes() {
        assert_eq!(utf16_len("a😀b"), 4);
        assert_eq!(byte_at_utf16("a😀b", 3), Some(5));
        assert_eq!(byte_at_utf16("a😀b", 2), None);
        assert_eq!(byte_at_utf16("abc", 4), None);
        assert_eq!(utf16_at_byte("é1", 2), 1);
        assert_eq!(java_trim("\u{1} x \n"), "x");
    }
}
