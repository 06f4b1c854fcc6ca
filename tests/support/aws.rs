//! Requests signed by botocore (the AWS SDK for Python), the client
//! implementation of SigV4 that users run: `None` when it is not
//! installed (the caller skips what needs it).

use std::process::Command;
use std::time::SystemTime;

/// Runs a botocore script with these arguments; its standard output.
fn botocore(script: &str, args: &[&str]) -> Option<Vec<u8>> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "botocore not available ({}); skipping the botocore-signed requests",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
        return None;
    }
    Some(out.stdout)
}

/// The headers botocore's `SigV4Auth` adds to a request for
/// `execute-api` in `eu-west-1`.
pub fn botocore_headers(
    method: &str,
    url: &str,
    body: &str,
    key: &str,
    secret: &str,
) -> Option<Vec<(String, String)>> {
    const SCRIPT: &str = r#"
import json, sys
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
method, url, body, key, secret = sys.argv[1:6]
req = AWSRequest(method=method, url=url, data=body.encode(), headers={})
SigV4Auth(Credentials(key, secret), "execute-api", "eu-west-1").add_auth(req)
print(json.dumps({k: v for k, v in req.headers.items()}))
"#;
    let out = botocore(SCRIPT, &[method, url, body, key, secret])?;
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    Some(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
    )
}

/// A presigned URL for `url` (`GET`, `execute-api`, `eu-west-1`) from
/// botocore's `SigV4QueryAuth`, good for `expires` seconds.
pub fn botocore_presigned(url: &str, key: &str, secret: &str, expires: u32) -> Option<String> {
    botocore_presigned_request("GET", url, "", "execute-api", key, secret, expires)
}

/// A presigned URL for `method url` with this body (whose hash it signs),
/// for `service` in `eu-west-1`. botocore's presigner moves a body into the
/// query string (as the AWS query protocol would); here the body stays
/// the request's, as a JSON API sends it.
pub fn botocore_presigned_request(
    method: &str,
    url: &str,
    body: &str,
    service: &str,
    key: &str,
    secret: &str,
    expires: u32,
) -> Option<String> {
    const SCRIPT: &str = r#"
import sys
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
class BodyKept(SigV4QueryAuth):
    def _modify_request_before_signing(self, request):
        data = request.data
        request.data = b""
        super()._modify_request_before_signing(request)
        request.data = data
method, url, body, service, key, secret, expires = sys.argv[1:8]
req = AWSRequest(method=method, url=url, data=body.encode(), headers={})
BodyKept(Credentials(key, secret), service, "eu-west-1", expires=int(expires)).add_auth(req)
print(req.prepare().url)
"#;
    let out = botocore(
        SCRIPT,
        &[
            method,
            url,
            body,
            service,
            key,
            secret,
            &expires.to_string(),
        ],
    )?;
    Some(String::from_utf8(out).unwrap().trim().to_owned())
}

/// `X-Amz-Date` for a moment (`20261125T150000Z`).
pub fn amz_date(at: SystemTime) -> String {
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What the gateway's own signer (botocore's method, checked against
/// botocore in the authorization tests) puts on a request signed at `at`
/// with `host` and `x-amz-date` signed: the `Authorization` value and the
/// `X-Amz-Date`.
pub struct Signing<'a> {
    pub method: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub body: &'a [u8],
    pub service: &'a str,
    pub region: &'a str,
}

impl Signing<'_> {
    pub fn sign(&self, key: &str, secret: &str, at: SystemTime) -> (String, String) {
        let amz_date = amz_date(at);
        let headers: Vec<(&[u8], &[u8])> = vec![
            (b"host", self.host.as_bytes()),
            (b"x-amz-date", amz_date.as_bytes()),
        ];
        let parts = tollgate::auth::RequestParts {
            method: self.method.as_bytes(),
            path: self.path.as_bytes(),
            query: self.query.map(str::as_bytes),
            headers: &headers,
            body: self.body,
        };
        let auth = tollgate::auth::sign(
            &parts,
            key,
            secret,
            self.region,
            self.service,
            &amz_date,
            &["host", "x-amz-date"],
        )
        .unwrap();
        (auth, amz_date)
    }

    /// The same as header lines.
    pub fn header_lines(&self, key: &str, secret: &str, at: SystemTime) -> String {
        let (auth, amz_date) = self.sign(key, secret, at);
        format!("Authorization: {auth}\r\nX-Amz-Date: {amz_date}\r\n")
    }
}
