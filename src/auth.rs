//! Who is calling: credentials from the config, bearer tokens, and AWS
//! Signature Version 4 verification. Sans-IO: callers pass the request
//! parts and the time.
//!
//! SigV4 as the AWS CLI and SDKs sign (botocore's `SigV4Auth`): the
//! canonical URI is the path as sent, percent-encoded once more (every
//! service but S3 double-encodes); the canonical query sorts the decoded,
//! re-encoded pairs; signed headers are trimmed and their inner runs of
//! spaces collapsed. Signatures compare in constant time.
//! Read first: [`authenticate`].

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use percent_encoding::percent_decode;
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a signed request's `X-Amz-Date` may be from our clock, as AWS.
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub admin: bool,
    pub invalidate_cache: bool,
    /// The `@connections` API of WebSocket APIs.
    pub manage_connections: bool,
    /// `execute-api:Invoke`: call methods whose authorization is
    /// `AWS_IAM`, with a SigV4 signature.
    pub invoke: bool,
}

#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub token: Option<String>,
    pub permissions: Permissions,
}

impl fmt::Debug for Credential {
    // Secrets never reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credential")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("permissions", &self.permissions)
            .finish_non_exhaustive()
    }
}

/// Why a request is not authenticated; each maps to AWS's 403 error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization` header at all.
    Missing,
    /// An `Authorization` header we cannot read.
    Malformed(String),
    /// An access key or token we do not know.
    UnknownCredential,
    /// The signature does not match.
    BadSignature,
    /// `X-Amz-Date` too far from now.
    Expired(String),
    /// `x-amz-content-sha256` is not the hash of the body received.
    PayloadMismatch,
}

impl AuthError {
    /// `(x-amzn-ErrorType, message)` as the AWS APIs answer.
    pub fn aws_error(&self) -> (&'static str, String) {
        match self {
            AuthError::Missing => (
                "MissingAuthenticationTokenException",
                "Missing Authentication Token".to_owned(),
            ),
            AuthError::Malformed(m) => ("IncompleteSignatureException", m.clone()),
            AuthError::UnknownCredential => (
                "UnrecognizedClientException",
                "The security token included in the request is invalid.".to_owned(),
            ),
            AuthError::BadSignature => (
                "InvalidSignatureException",
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".to_owned(),
            ),
            AuthError::Expired(m) => ("InvalidSignatureException", m.clone()),
            AuthError::PayloadMismatch => (
                "InvalidSignatureException",
                "The provided 'x-amz-content-sha256' header does not match what was computed."
                    .to_owned(),
            ),
        }
    }
}

/// The parts of a request a signature covers.
pub struct RequestParts<'a> {
    pub method: &'a [u8],
    /// The path as sent (still percent-encoded).
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub headers: &'a [(&'a [u8], &'a [u8])],
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// The parts of a parsed request, with its header list (collected by
    /// the caller, which owns it) and body.
    pub fn of(
        head: &'a crate::http::request::RequestHead,
        headers: &'a [(&'a [u8], &'a [u8])],
        body: &'a [u8],
    ) -> RequestParts<'a> {
        RequestParts {
            method: head.method_bytes(),
            path: head.path(),
            query: head.query(),
            headers,
            body,
        }
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| *v)
    }
}

/// Finds the credential that signed (SigV4 for `service`) or carries a
/// bearer token for this request.
pub fn authenticate<'c>(
    credentials: &'c [Credential],
    req: &RequestParts<'_>,
    service: &str,
    now: SystemTime,
) -> Result<&'c Credential, AuthError> {
    if let Some(h) = presigned(req) {
        return verify_sigv4(credentials, req, &h?, service, now);
    }
    let auth = authorization(req)?;
    if let Some(token) = strip_prefix_ci(auth, "Bearer ") {
        let token = token.trim();
        return credentials
            .iter()
            .find(|c| {
                c.token
                    .as_deref()
                    .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
            })
            .ok_or(AuthError::UnknownCredential);
    }
    if let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") {
        return verify_sigv4(
            credentials,
            req,
            &parse_sigv4_header(req, rest)?,
            service,
            now,
        );
    }
    Err(AuthError::Malformed(
        "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' (AWS4-HMAC-SHA256) or a Bearer token".into(),
    ))
}

/// Whether an `Authorization` value is `Bearer` with one of the gateway's
/// own tokens: a gateway secret, which is never passed to an integration.
pub fn is_gateway_bearer(credentials: &[Credential], authorization: &[u8]) -> bool {
    let Some(token) = std::str::from_utf8(authorization)
        .ok()
        .and_then(|a| strip_prefix_ci(a.trim(), "Bearer "))
    else {
        return false;
    };
    let token = token.trim();
    credentials.iter().any(|c| {
        c.token
            .as_deref()
            .is_some_and(|t| constant_time_eq(t.as_bytes(), token.as_bytes()))
    })
}

/// The `Authorization` value, trimmed.
fn authorization<'r>(req: &'r RequestParts<'_>) -> Result<&'r str, AuthError> {
    let Some(auth) = req.header("authorization") else {
        return Err(AuthError::Missing);
    };
    Ok(std::str::from_utf8(auth)
        .map_err(|_| AuthError::Malformed("Authorization header is not text".into()))?
        .trim())
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// A request's SigV4 fields, from its `Authorization` header or from its
/// query string (a presigned URL).
struct SigV4Header {
    access_key: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
    /// `X-Amz-Date`: the header's, or the query's.
    amz_date: Option<String>,
    /// `X-Amz-Expires` of a presigned URL; `None` for a signed header.
    expires: Option<Duration>,
}

/// The longest `X-Amz-Expires` SigV4 allows: seven days.
const MAX_PRESIGNED_EXPIRY: u64 = 604_800;

/// `Credential=` split into its scope (`KEY/DATE/REGION/SERVICE/aws4_request`).
fn credential_scope(credential: &str) -> Result<[String; 4], AuthError> {
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = scope[..] else {
        return Err(AuthError::Malformed(format!(
            "Credential should be scoped to a valid region, not '{credential}'"
        )));
    };
    if terminator != "aws4_request" {
        return Err(AuthError::Malformed(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'"
        )));
    }
    Ok([access_key, date, region, service].map(str::to_owned))
}

fn parse_sigv4_header(req: &RequestParts<'_>, rest: &str) -> Result<SigV4Header, AuthError> {
    let mut credential = None;
    let mut signed = None;
    let mut signature = None;
    for part in rest.split(',') {
        let part = part.trim();
        if let Some(v) = part.strip_prefix("Credential=") {
            credential = Some(v);
        } else if let Some(v) = part.strip_prefix("SignedHeaders=") {
            signed = Some(v);
        } else if let Some(v) = part.strip_prefix("Signature=") {
            signature = Some(v);
        }
    }
    let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature) else {
        return Err(AuthError::Malformed(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters".into(),
        ));
    };
    let [access_key, date, region, service] = credential_scope(credential)?;
    Ok(SigV4Header {
        access_key,
        date,
        region,
        service,
        signed_headers: signed.split(';').map(str::to_owned).collect(),
        signature: signature.to_owned(),
        amz_date: req
            .header("x-amz-date")
            .and_then(|d| std::str::from_utf8(d).ok())
            .map(str::to_owned),
        expires: None,
    })
}

/// Whether a query string carries a presigned URL's signature.
pub fn is_presigned(query: &[u8]) -> bool {
    query.split(|&b| b == b'&').any(|p| {
        let name = p.split(|&b| b == b'=').next().unwrap_or(p);
        percent_decode(name).eq(b"X-Amz-Signature".iter().copied())
    })
}

/// The SigV4 fields of a presigned URL (`X-Amz-Algorithm`,
/// `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
/// `X-Amz-SignedHeaders`, `X-Amz-Signature` in the query string), when
/// the request has no `Authorization` header and its query names one of
/// them.
fn presigned(req: &RequestParts<'_>) -> Option<Result<SigV4Header, AuthError>> {
    if req.header("authorization").is_some() {
        return None;
    }
    let query = req.query?;
    let mut fields: [Option<String>; 7] = Default::default();
    const NAMES: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Security-Token",
    ];
    let mut any = false;
    for pair in query.split(|&b| b == b'&') {
        let (k, v) = match pair.iter().position(|&b| b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        let k: Vec<u8> = percent_decode(k).collect();
        if let Some(i) = NAMES.iter().position(|n| n.as_bytes() == k.as_slice()) {
            any = true;
            // Each once: a second `X-Amz-Signature` would ride along
            // unsigned (the canonical query leaves it out).
            if fields[i].is_some() {
                return Some(Err(AuthError::Malformed(format!(
                    "{} is given more than once",
                    NAMES[i]
                ))));
            }
            fields[i] =
                Some(String::from_utf8_lossy(&percent_decode(v).collect::<Vec<u8>>()).into_owned());
        }
    }
    if !any {
        return None;
    }
    Some((|| {
        let [Some(algorithm), Some(credential), Some(amz_date), Some(expires), Some(signed), Some(signature), token] =
            fields
        else {
            return Err(AuthError::Malformed(
                "a presigned URL requires the 'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires', 'X-Amz-SignedHeaders' and 'X-Amz-Signature' query parameters".into(),
            ));
        };
        if algorithm != "AWS4-HMAC-SHA256" {
            return Err(AuthError::Malformed(format!(
                "X-Amz-Algorithm only supports 'AWS4-HMAC-SHA256', not '{algorithm}'"
            )));
        }
        // A session token: temporary credentials, which this gateway
        // never issued (as `x-amz-security-token` in a header).
        if token.is_some() {
            return Err(AuthError::UnknownCredential);
        }
        let digits = !expires.is_empty() && expires.bytes().all(|b| b.is_ascii_digit());
        let expires = match expires.parse::<u64>() {
            Ok(e) if digits && e <= MAX_PRESIGNED_EXPIRY => Duration::from_secs(e),
            _ => {
                return Err(AuthError::Malformed(format!(
                    "X-Amz-Expires must be a number of seconds from 0 to {MAX_PRESIGNED_EXPIRY}, not '{expires}'"
                )))
            }
        };
        let [access_key, date, region, service] = credential_scope(&credential)?;
        Ok(SigV4Header {
            access_key,
            date,
            region,
            service,
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature,
            amz_date: Some(amz_date),
            expires: Some(expires),
        })
    })())
}

/// The SigV4 checks a request's head decides (no body): the header's
/// form, a known access key, the service, `host` signed, the date within
/// [`MAX_CLOCK_SKEW`]. A bearer token or no `Authorization` fails. The
/// signature itself, which covers the body, is [`authenticate`]'s.
pub fn sigv4_signer<'c>(
    credentials: &'c [Credential],
    req: &RequestParts<'_>,
    service: &str,
    now: SystemTime,
) -> Result<&'c Credential, AuthError> {
    if let Some(h) = presigned(req) {
        return Ok(sigv4_preflight(credentials, req, &h?, service, now)?.0);
    }
    let auth = authorization(req)?;
    let Some(rest) = auth.strip_prefix("AWS4-HMAC-SHA256 ") else {
        return Err(AuthError::Malformed(format!(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. Authorization={}",
            auth.split_whitespace().next().unwrap_or("")
        )));
    };
    let h = parse_sigv4_header(req, rest)?;
    Ok(sigv4_preflight(credentials, req, &h, service, now)?.0)
}

fn verify_sigv4<'c>(
    credentials: &'c [Credential],
    req: &RequestParts<'_>,
    h: &SigV4Header,
    service: &str,
    now: SystemTime,
) -> Result<&'c Credential, AuthError> {
    let (cred, secret, amz_date) = sigv4_preflight(credentials, req, h, service, now)?;
    let signed: Vec<&str> = h.signed_headers.iter().map(String::as_str).collect();
    let canonical = canonical(req, &signed, h.expires.is_some())?;
    let scope = format!("{}/{}/{}/aws4_request", h.date, h.region, h.service);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let key = signing_key(secret, &h.date, &h.region, &h.service);
    let mut mac = hmac_new(&key);
    mac.update(string_to_sign.as_bytes());
    let expected = hex(&mac.finalize().into_bytes());
    if constant_time_eq(
        expected.as_bytes(),
        h.signature.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(cred)
    } else {
        Err(AuthError::BadSignature)
    }
}

/// Everything but the signature: the credential, its secret and the
/// request's `X-Amz-Date`.
fn sigv4_preflight<'c, 'h>(
    credentials: &'c [Credential],
    req: &RequestParts<'_>,
    h: &'h SigV4Header,
    service: &str,
    now: SystemTime,
) -> Result<(&'c Credential, &'c str, &'h str), AuthError> {
    let cred = credentials
        .iter()
        .find(|c| c.access_key_id.as_deref() == Some(h.access_key.as_str()))
        .ok_or(AuthError::UnknownCredential)?;
    let Some(secret) = cred.secret_access_key.as_deref() else {
        return Err(AuthError::UnknownCredential);
    };
    if h.service != service {
        return Err(AuthError::Malformed(format!(
            "Credential should be scoped to correct service: '{service}'"
        )));
    }
    if !h.signed_headers.iter().any(|n| n == "host") {
        return Err(AuthError::Malformed(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let amz_date = h.amz_date.as_deref().ok_or_else(|| {
        AuthError::Malformed(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        )
    })?;
    let signed_at = parse_amz_date(amz_date)
        .ok_or_else(|| AuthError::Malformed(format!("invalid X-Amz-Date '{amz_date}'")))?;
    if !amz_date.starts_with(h.date.as_str()) || h.date.len() != 8 {
        return Err(AuthError::Malformed(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            h.date,
            amz_date.get(..8).unwrap_or(amz_date)
        )));
    }
    // A presigned URL is good from its date (give or take the clock skew)
    // until its expiry.
    if let Some(expires) = h.expires {
        if now > signed_at + expires {
            return Err(AuthError::Expired(format!(
                "Signature expired: the URL signed at {amz_date} for {} seconds is out of date",
                expires.as_secs()
            )));
        }
    }
    let skew = match now.duration_since(signed_at) {
        Ok(_) if h.expires.is_some() => Duration::ZERO,
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > MAX_CLOCK_SKEW {
        let when = if signed_at > now {
            "Signature not yet current: {amz_date} is still later than the allowed window (15 minutes) around the server time"
        } else {
            "Signature expired: {amz_date} is now earlier than the allowed window (15 minutes) around the server time"
        };
        return Err(AuthError::Expired(when.replace("{amz_date}", amz_date)));
    }
    // Temporary credentials (STS) carry a session token; this gateway's
    // credentials are long-term keys, so a request with one is not theirs.
    if req.header("x-amz-security-token").is_some() {
        return Err(AuthError::UnknownCredential);
    }
    Ok((cred, secret, amz_date))
}

fn hmac_new(key: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length: this cannot fail, whatever the input.
    #[allow(clippy::expect_used)]
    HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let mut k = format!("AWS4{secret}").into_bytes();
    for part in [date, region, service, "aws4_request"] {
        let mut mac = hmac_new(&k);
        mac.update(part.as_bytes());
        k = mac.finalize().into_bytes().to_vec();
    }
    k
}

/// The canonical request of SigV4 (without the final hashing).
pub fn canonical_request(
    req: &RequestParts<'_>,
    signed_headers: &[&str],
) -> Result<String, AuthError> {
    canonical(req, signed_headers, false)
}

/// The canonical request; `presigned`: without the query's
/// `X-Amz-Signature`, which cannot sign itself.
fn canonical(
    req: &RequestParts<'_>,
    signed_headers: &[&str],
    presigned: bool,
) -> Result<String, AuthError> {
    let mut out = String::new();
    out.push_str(&String::from_utf8_lossy(req.method));
    out.push('\n');
    // Canonical URI: the path as sent, encoded once more.
    if req.path.is_empty() {
        out.push('/');
    } else {
        for &b in req.path {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
    }
    out.push('\n');
    // Canonical query: decoded pairs, re-encoded strictly, sorted.
    let mut pairs: Vec<(String, String)> = req
        .query
        .unwrap_or_default()
        .split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|&b| b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &b""[..]),
            };
            (
                uri_encode(&percent_decode(k).collect::<Vec<u8>>()),
                uri_encode(&percent_decode(v).collect::<Vec<u8>>()),
            )
        })
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    let q: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&q.join("&"));
    out.push('\n');
    // Canonical headers.
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort();
    for name in &names {
        let values: Vec<String> = req
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| collapse_spaces(&String::from_utf8_lossy(v)))
            .collect();
        if values.is_empty() {
            return Err(AuthError::Malformed(format!(
                "signed header '{name}' is missing"
            )));
        }
        out.push_str(name);
        out.push(':');
        out.push_str(&values.join(","));
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&names.join(";"));
    out.push('\n');
    // The payload hash is always the hash of the body received. A client's
    // `x-amz-content-sha256` (S3's header; AWS's other services hash the
    // body themselves) must agree with it: taken as given, an unsigned one
    // let anyone who saw a signed request replay it with another body, and
    // `UNSIGNED-PAYLOAD` signed nothing of the body at all.
    let payload = hex(&Sha256::digest(req.body));
    if let Some(h) = req.header("x-amz-content-sha256") {
        if !h.eq_ignore_ascii_case(payload.as_bytes()) {
            return Err(AuthError::PayloadMismatch);
        }
    }
    out.push_str(&payload);
    Ok(out)
}

fn uri_encode(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn collapse_spaces(v: &str) -> String {
    v.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub fn hex(bytes: &[u8]) -> String {
    const H: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(H[(b >> 4) as usize] as char);
        s.push(H[(b & 0xf) as usize] as char);
    }
    s
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `20261124T001530Z` → time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, se) = (num(9..11)?, num(11..13)?, num(13..15)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let days = crate::ids::days_from_civil(y as i64, mo as u32, d as u32);
    if days < 0 {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_secs(days as u64 * 86_400 + h * 3600 + mi * 60 + se))
}

/// Signs a request the way botocore does (for tests and tools).
pub fn sign(
    req: &RequestParts<'_>,
    access_key: &str,
    secret: &str,
    region: &str,
    service: &str,
    amz_date: &str,
    signed_headers: &[&str],
) -> Result<String, AuthError> {
    let date = amz_date.get(..8).unwrap_or("");
    let canonical = canonical_request(req, signed_headers)?;
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let sts = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let mut mac = hmac_new(&signing_key(secret, date, region, service));
    mac.update(sts.as_bytes());
    let mut names: Vec<String> = signed_headers
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    names.sort();
    Ok(format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={}, Signature={}",
        names.join(";"),
        hex(&mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Vec<Credential> {
        vec![Credential {
            name: "ops".into(),
            access_key_id: Some("AKIDEXAMPLE".into()),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            token: Some("tok-123".into()),
            permissions: Permissions {
                admin: true,
                invalidate_cache: false,
                manage_connections: false,
                invoke: false,
            },
        }]
    }

    /// The AWS SigV4 test suite's `get-vanilla-query-order-key-case`:
    /// known canonical request and signature.
    #[test]
    fn aws_test_suite_vector() {
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"example.amazonaws.com"),
            (b"X-Amz-Date", b"20150830T123600Z"),
        ];
        let req = RequestParts {
            method: b"GET",
            path: b"/",
            query: Some(b"Param2=value2&Param1=value1"),
            headers: &headers,
            body: b"",
        };
        let canonical = canonical_request(&req, &["host", "x-amz-date"]).unwrap();
        assert_eq!(
            canonical,
            "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let auth = sign(
            &req,
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "us-east-1",
            "service",
            "20150830T123600Z",
            &["host", "x-amz-date"],
        )
        .unwrap();
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"
        );
    }

    /// Presigned URLs as botocore's `SigV4QueryAuth` makes them (service
    /// `execute-api`, 300 s, signed at 2026-11-25T15:00:00Z).
    #[test]
    fn presigned_urls_from_botocore() {
        let signed_at = UNIX_EPOCH + Duration::from_secs(1_795_618_800);
        let query: &[u8] = b"type=dog&a=b%20c&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261125%2Feu-west-1%2Fexecute-api%2Faws4_request&X-Amz-Date=20261125T150000Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=a3425ff8b5ef1269632cff546627b431a6307eb065f8227a2cec21fbde4012a0";
        let creds = creds();
        let check = |query: &[u8], host: &[u8], now: SystemTime| {
            let headers: Vec<(&[u8], &[u8])> = vec![(b"Host", host)];
            let req = RequestParts {
                method: b"GET",
                path: b"/prod/pets",
                query: Some(query),
                headers: &headers,
                body: b"",
            };
            let signer = sigv4_signer(&creds, &req, "execute-api", now).map(|c| c.name.clone());
            let full = authenticate(&creds, &req, "execute-api", now).map(|c| c.name.clone());
            (signer, full)
        };
        let ok = (Ok("ops".to_owned()), Ok("ops".to_owned()));
        let in_a_minute = signed_at + Duration::from_secs(60);
        assert_eq!(check(query, b"gw.example:8080", in_a_minute), ok);
        // Up to its expiry, not after.
        assert_eq!(
            check(
                query,
                b"gw.example:8080",
                signed_at + Duration::from_secs(300)
            ),
            ok
        );
        let (signer, _) = check(
            query,
            b"gw.example:8080",
            signed_at + Duration::from_secs(301),
        );
        assert!(matches!(signer, Err(AuthError::Expired(_))), "{signer:?}");
        // Not long before its date.
        let (signer, _) = check(
            query,
            b"gw.example:8080",
            signed_at - Duration::from_secs(3600),
        );
        assert!(matches!(signer, Err(AuthError::Expired(_))), "{signer:?}");
        // Another host, another query value, another expiry: the
        // signature does not match (the head checks pass).
        for (q, host) in [
            (query.to_vec(), &b"other:8080"[..]),
            (
                String::from_utf8_lossy(query)
                    .replace("type=dog", "type=cat")
                    .into_bytes(),
                b"gw.example:8080",
            ),
            (
                String::from_utf8_lossy(query)
                    .replace("Expires=300", "Expires=3000")
                    .into_bytes(),
                b"gw.example:8080",
            ),
        ] {
            let (signer, full) = check(&q, host, in_a_minute);
            assert_eq!(signer, Ok("ops".to_owned()));
            assert_eq!(full, Err(AuthError::BadSignature));
        }
        // Incomplete, another algorithm, a session token, a week and more.
        let text = String::from_utf8_lossy(query).into_owned();
        for (q, why) in [
            (text.replace("&X-Amz-Expires=300", ""), "requires"),
            (
                text.replace("AWS4-HMAC-SHA256", "AWS4-HMAC-SHA1"),
                "only supports",
            ),
            (
                text.replace("Expires=300", "Expires=604801"),
                "from 0 to 604800",
            ),
            (
                text.replace("Expires=300", "Expires=+300"),
                "from 0 to 604800",
            ),
            (format!("X-Amz-Signature=00&{text}"), "more than once"),
        ] {
            let (signer, _) = check(q.as_bytes(), b"gw.example:8080", in_a_minute);
            match signer {
                Err(AuthError::Malformed(m)) => assert!(m.contains(why), "{m}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        let (signer, _) = check(
            format!("{text}&X-Amz-Security-Token=abc").as_bytes(),
            b"gw.example:8080",
            in_a_minute,
        );
        assert_eq!(signer, Err(AuthError::UnknownCredential));
        // An Authorization header wins over the query: a bearer token
        // with a stray X-Amz-Signature parameter is a bearer token.
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"Host", b"gw.example:8080"),
            (b"Authorization", b"Bearer tok-123"),
        ];
        let req = RequestParts {
            method: b"GET",
            path: b"/prod/pets",
            query: Some(b"X-Amz-Signature=00"),
            headers: &headers,
            body: b"",
        };
        assert_eq!(
            authenticate(&creds, &req, "execute-api", in_a_minute).map(|c| c.name.as_str()),
            Ok("ops")
        );
    }

    #[test]
    fn verify_table() {
        let c = creds();
        let at = parse_amz_date("20150830T123600Z").unwrap();
        // The request every case signs or checks: POST /restapis?mode=import.
        fn parts<'a>(headers: &'a [(&'a [u8], &'a [u8])], body: &'a [u8]) -> RequestParts<'a> {
            RequestParts {
                method: b"POST",
                path: b"/restapis",
                query: Some(b"mode=import"),
                headers,
                body,
            }
        }
        let sign_with = |secret: &str, date: &str, body: &[u8]| {
            let headers: Vec<(&[u8], &[u8])> =
                vec![(b"host", b"h"), (b"x-amz-date", date.as_bytes())];
            sign(
                &parts(&headers, body),
                "AKIDEXAMPLE",
                secret,
                "us-east-1",
                "apigateway",
                date,
                &["host", "x-amz-date"],
            )
            .unwrap()
        };
        // `extra`: headers besides Host, X-Amz-Date and Authorization.
        let check_with =
            |auth: &str, date: &str, extra: &[(&[u8], &[u8])], body: &[u8], now: SystemTime| {
                let mut headers: Vec<(&[u8], &[u8])> =
                    vec![(b"host", b"h"), (b"x-amz-date", date.as_bytes())];
                headers.extend_from_slice(extra);
                headers.push((b"authorization", auth.as_bytes()));
                authenticate(&c, &parts(&headers, body), "apigateway", now).map(|c| c.name.clone())
            };
        let check = |auth: &str, date: &str, body: &[u8], now: SystemTime| {
            check_with(auth, date, &[], body, now)
        };
        let good = sign_with(
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "20150830T123600Z",
            b"{}",
        );
        assert_eq!(
            check(&good, "20150830T123600Z", b"{}", at),
            Ok("ops".into())
        );
        // Body changed after signing.
        assert_eq!(
            check(&good, "20150830T123600Z", b"{ }", at),
            Err(AuthError::BadSignature)
        );
        // A declared payload hash must be the body's: the hash of the signed
        // body next to another body (the header unsigned, as the AWS CLI
        // signs), and UNSIGNED-PAYLOAD, are refused; the true hash passes.
        let declared = |auth: &str, sha: &[u8], body: &[u8]| {
            check_with(
                auth,
                "20150830T123600Z",
                &[(b"x-amz-content-sha256", sha)],
                body,
                at,
            )
        };
        let signed_body_hash = hex(&Sha256::digest(b"{}"));
        assert_eq!(
            declared(&good, signed_body_hash.as_bytes(), b"{\"evil\":1}"),
            Err(AuthError::PayloadMismatch)
        );
        assert_eq!(
            declared(&good, b"UNSIGNED-PAYLOAD", b"{}"),
            Err(AuthError::PayloadMismatch)
        );
        assert_eq!(
            declared(&good, signed_body_hash.as_bytes(), b"{}"),
            Ok("ops".into())
        );
        // Wrong secret.
        let bad = sign_with("nope", "20150830T123600Z", b"{}");
        assert_eq!(
            check(&bad, "20150830T123600Z", b"{}", at),
            Err(AuthError::BadSignature)
        );
        // Too old.
        assert!(matches!(
            check(
                &good,
                "20150830T123600Z",
                b"{}",
                at + Duration::from_secs(16 * 60)
            ),
            Err(AuthError::Expired(_))
        ));
        // Unknown key.
        let other = good.replace("AKIDEXAMPLE", "AKIDOTHER");
        assert_eq!(
            check(&other, "20150830T123600Z", b"{}", at),
            Err(AuthError::UnknownCredential)
        );
        // Bearer.
        assert_eq!(check("Bearer tok-123", "x", b"", at), Ok("ops".into()));
        assert_eq!(
            check("Bearer tok-1234", "x", b"", at),
            Err(AuthError::UnknownCredential)
        );
        assert!(matches!(
            check("Basic abc", "x", b"", at),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            check("AWS4-HMAC-SHA256 Credential=x", "x", b"", at),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn double_encoded_paths() {
        let headers: Vec<(&[u8], &[u8])> = vec![(b"host", b"h")];
        let req = RequestParts {
            method: b"GET",
            path: b"/a%20b/c",
            query: None,
            headers: &headers,
            body: b"",
        };
        let c = canonical_request(&req, &["host"]).unwrap();
        assert!(c.starts_with("GET\n/a%2520b/c\n\n"), "{c}");
    }
}
