//! Requests signed by botocore (the AWS SDK for Python), the client
//! implementation of SigV4 that users run: `None` when it is not
//! installed (the caller skips what needs it).

use std::process::Command;

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
    const SCRIPT: &str = r#"
import sys
from botocore.auth import SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
url, key, secret, expires = sys.argv[1:5]
req = AWSRequest(method="GET", url=url, data=b"", headers={})
SigV4QueryAuth(Credentials(key, secret), "execute-api", "eu-west-1", expires=int(expires)).add_auth(req)
print(req.prepare().url)
"#;
    let out = botocore(SCRIPT, &[url, key, secret, &expires.to_string()])?;
    Some(String::from_utf8(out).unwrap().trim().to_owned())
}
