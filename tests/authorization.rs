//! Method authorization over real sockets: `AWS_IAM` methods signed by
//! botocore (the AWS SDK for Python) and by hand, and the authorizers of a
//! Swagger document's `securityDefinitions` — nothing is ever served open
//! because the gateway cannot run what protects it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use support::client::{get_with, send};
use support::gateway::{mock_method, swagger_with};
use support::Gateway;

const KEY_ID: &str = "AKIDINVOKER";
const SECRET: &str = "invoker/secret+0123456789";
const NO_INVOKE_KEY_ID: &str = "AKIDCACHEONLY";
const NO_INVOKE_SECRET: &str = "cacheonly/secret+0123456789";

fn secured(paths: &[(&str, &str, &str)]) -> String {
    let paths: Vec<String> = paths
        .iter()
        .map(|(path, scheme, body)| {
            let security = if scheme.is_empty() {
                String::new()
            } else {
                format!(r#""security": [{{"{scheme}": []}}], "#)
            };
            let m = mock_method(200, body).replacen('{', &format!("{{{security}"), 1);
            format!(r#""{path}": {{"get": {m}, "post": {m}}}"#)
        })
        .collect();
    swagger_with(
        &format!("{{{}}}", paths.join(", ")),
        r#""securityDefinitions": {
            "api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"},
            "sigv4": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"},
            "tokenauth": {"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token", "identityValidationExpression": "Bearer [a-z]+",
                    "authorizerUri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:tokenauth/invocations"}},
            "requestauth": {"type": "apiKey", "name": "Unused", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "identitySource": "method.request.header.X-User, method.request.querystring.tenant",
                    "authorizerUri": "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:requestauth/invocations"}},
            "pool": {"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "cognito_user_pools",
                "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": ["arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_x"]}},
            "oauth": {"type": "oauth2", "flow": "implicit", "authorizationUrl": "https://example.com/auth", "scopes": {}},
            "halfdone": {"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "oauth2"}
        }"#,
    )
}

fn gateway(doc: &str) -> Gateway {
    Gateway::builder()
        .api("a", doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .extra(&format!(
            "[[credentials]]\nname = \"invoker\"\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\npermissions = [\"invoke\"]\n\
             [[credentials]]\nname = \"cacheonly\"\naccess_key_id = \"{NO_INVOKE_KEY_ID}\"\nsecret_access_key = \"{NO_INVOKE_SECRET}\"\npermissions = [\"invalidate_cache\"]\n"
        ))
        .start()
}

fn all_schemes() -> String {
    secured(&[
        ("/open", "", "open"),
        ("/iam", "sigv4", "iam"),
        ("/token", "tokenauth", "token"),
        ("/request", "requestauth", "request"),
        ("/pool", "pool", "pool"),
        ("/oauth", "oauth", "oauth"),
        ("/halfdone", "halfdone", "halfdone"),
    ])
}

/// Headers botocore's `SigV4Auth` adds for `method url body` (service
/// `execute-api`), or `None` when botocore is not installed.
fn botocore_headers(
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
    let out = Command::new("python3")
        .args(["-c", SCRIPT, method, url, body, key, secret])
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
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(
        v.as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect(),
    )
}

fn header_lines(headers: &[(String, String)]) -> String {
    headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect()
}

/// A request with `Host: test`, the host the signatures are made for
/// ([`url`]).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> support::Response {
    send(addr, method, path, headers, body)
}

/// The URL a signer is given: the host the test client sends.
fn url(path: &str) -> String {
    format!("http://test{path}")
}

fn assert_refused(r: &support::Response, status: u16, error_type: &str, message: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some(error_type),
        "{}",
        r.text()
    );
    let v = r.json();
    assert_eq!(
        v["message"].as_str().unwrap_or("null"),
        message,
        "{}",
        r.text()
    );
    assert!(r.header("x-amzn-RequestId").is_some());
}

#[test]
fn iam_methods_need_a_signature_by_a_credential_that_may_invoke() {
    let gw = gateway(&all_schemes());
    let addr = gw.addr;

    // Without a signature, or with something else than one.
    let r = call(addr, "GET", "/prod/iam", "", b"");
    assert_refused(
        &r,
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
    let r = call(
        addr,
        "GET",
        "/prod/iam",
        "Authorization: Bearer test-admin-token-0123456789\r\n",
        b"",
    );
    assert_eq!(r.status, 403);
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    assert!(
        r.text()
            .contains("Authorization header requires 'Credential' parameter"),
        "{}",
        r.text()
    );
    // The open method next to it is open.
    assert_eq!(call(addr, "GET", "/prod/open", "", b"").text(), "open");

    let Some(signed) = botocore_headers("GET", &url("/prod/iam"), "", KEY_ID, SECRET) else {
        return;
    };
    let r = call(addr, "GET", "/prod/iam", &header_lines(&signed), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "iam"));

    // A POST whose body is signed, then the same signature over another body.
    let signed = botocore_headers("POST", &url("/prod/iam"), "{\"a\":1}", KEY_ID, SECRET).unwrap();
    let h = header_lines(&signed);
    let r = call(
        addr,
        "POST",
        "/prod/iam",
        &format!("{h}Content-Type: application/json\r\n"),
        b"{\"a\":1}",
    );
    assert_eq!((r.status, r.text().as_str()), (200, "iam"));
    let r = call(
        addr,
        "POST",
        "/prod/iam",
        &format!("{h}Content-Type: application/json\r\n"),
        b"{\"a\":2}",
    );
    assert_eq!(r.status, 403, "a tampered body passed: {}", r.text());
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    // Another path under the same signature.
    let r = call(addr, "GET", "/prod/open?x=1", &h, b"");
    assert_eq!(r.status, 200, "an open method ignores signatures");
    let signed = botocore_headers("GET", &url("/prod/iam"), "", KEY_ID, SECRET).unwrap();
    let r = call(addr, "GET", "/prod/iam?x=1", &header_lines(&signed), b"");
    assert_eq!(r.status, 403, "a query the signature does not cover passed");

    // The wrong secret, an unknown key, a credential without `invoke`.
    let signed = botocore_headers("GET", &url("/prod/iam"), "", KEY_ID, "wrong").unwrap();
    let r = call(addr, "GET", "/prod/iam", &header_lines(&signed), b"");
    assert_eq!(r.status, 403);
    assert!(
        r.text().contains("signature we calculated does not match"),
        "{}",
        r.text()
    );
    let signed = botocore_headers("GET", &url("/prod/iam"), "", "AKIDNOBODY", SECRET).unwrap();
    let r = call(addr, "GET", "/prod/iam", &header_lines(&signed), b"");
    assert_refused(
        &r,
        403,
        "InvalidSignatureException",
        "The security token included in the request is invalid.",
    );
    let signed = botocore_headers(
        "GET",
        &url("/prod/iam"),
        "",
        NO_INVOKE_KEY_ID,
        NO_INVOKE_SECRET,
    )
    .unwrap();
    let r = call(addr, "GET", "/prod/iam", &header_lines(&signed), b"");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        "User: cacheonly is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:local:000000000000:a/prod/GET/iam",
    );
}

#[test]
fn an_old_signature_is_expired() {
    let gw = gateway(&all_schemes());
    let addr = gw.addr;
    let at = SystemTime::now() - Duration::from_secs(20 * 60);
    let secs = at.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date")
        .args(["-u", "-d", &format!("@{secs}"), "+%Y%m%dT%H%M%SZ"])
        .output()
        .unwrap();
    let amz_date = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let headers: Vec<(&[u8], &[u8])> =
        vec![(b"host", b"test"), (b"x-amz-date", amz_date.as_bytes())];
    let parts = tollgate::auth::RequestParts {
        method: b"GET",
        path: b"/prod/iam",
        query: None,
        headers: &headers,
        body: b"",
    };
    let auth = tollgate::auth::sign(
        &parts,
        KEY_ID,
        SECRET,
        "eu-west-1",
        "execute-api",
        &amz_date,
        &["host", "x-amz-date"],
    )
    .unwrap();
    let r = call(
        addr,
        "GET",
        "/prod/iam",
        &format!("Authorization: {auth}\r\nX-Amz-Date: {amz_date}\r\n"),
        b"",
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    assert!(r.text().contains("Signature expired"), "{}", r.text());
}

#[test]
fn authorizers_it_cannot_run_never_let_a_request_through() {
    let gw = gateway(&all_schemes());
    let addr = gw.addr;
    // TOKEN authorizer: no token, or one its validation expression refuses,
    // is 401 (API Gateway does not call the function for them); a token it
    // would be called with is 500 AUTHORIZER_CONFIGURATION_ERROR here,
    // where no function can be called.
    let r = get_with(addr, "/prod/token", "");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    let r = get_with(addr, "/prod/token", "Auth: Basic abc\r\n");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    let r = get_with(addr, "/prod/token", "Auth: Bearer abc\r\n");
    assert_refused(&r, 500, "AuthorizerConfigurationException", "null");
    // REQUEST authorizer: every identity source must be there, non-empty.
    let r = get_with(addr, "/prod/request?tenant=t1", "");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    let r = get_with(addr, "/prod/request?tenant=", "X-User: u1\r\n");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    let r = get_with(addr, "/prod/request?tenant=t1", "X-User: u1\r\n");
    assert_refused(&r, 500, "AuthorizerConfigurationException", "null");
    // Cognito user pool: no token is 401; a token cannot be verified here.
    let r = get_with(addr, "/prod/pool", "");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    let r = get_with(
        addr,
        "/prod/pool",
        "Authorization: eyJhbGciOiJSUzI1NiJ9.e30.x\r\n",
    );
    assert_refused(&r, 500, "AuthorizerConfigurationException", "null");
    // A POST with a body is refused the same way, and the connection goes on.
    let r = send(
        addr,
        "POST",
        "/prod/token",
        "Content-Type: application/json\r\n",
        b"{}",
    );
    assert_eq!(r.status, 401);
    // API Gateway does not enforce OAuth 2 schemes: open, as there.
    assert_eq!(get_with(addr, "/prod/oauth", "").text(), "oauth");
    // An authorizer without its x-amazon-apigateway-authorizer: API Gateway
    // does not create the method.
    let r = get_with(addr, "/prod/halfdone", "");
    assert_refused(
        &r,
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
}

#[test]
fn the_authorizer_is_checked_before_the_api_key() {
    let doc = secured(&[("/both", "tokenauth", "both")]).replacen(
        r#""security": [{"tokenauth": []}]"#,
        r#""security": [{"tokenauth": [], "api_key": []}]"#,
        2,
    );
    let gw = gateway(&doc);
    let r = get_with(gw.addr, "/prod/both", "");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
}

#[test]
fn check_says_what_is_not_enforced() {
    let doc = all_schemes().replacen(
        r#""securityDefinitions""#,
        r#""security": [{"sigv4": []}], "securityDefinitions""#,
        1,
    );
    let (_dir, config) = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .write();
    let out = Command::new(support::gateway::bin())
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    for needle in [
        "a.json: $.security: API Gateway does not apply the root `security`",
        "a.json: $.securityDefinitions.oauth: a `oauth2` scheme that API Gateway does not enforce",
        "a.json: $.securityDefinitions.halfdone: Unable to create authorizer from security definition: 'halfdone'. Extension x-amazon-apigateway-authorizer is required.",
        "a.json: $.paths./halfdone.get: not created: it names security definition 'halfdone'",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn broken_authorizer_definitions_are_errors_with_their_json_path() {
    let doc = secured(&[("/t", "tokenauth", "t")])
        .replace(r#""Bearer [a-z]+""#, r#""Bearer [a-z""#)
        .replace(
            r#""type": "request", "identitySource": "method.request.header.X-User, method.request.querystring.tenant""#,
            r#""type": "request", "identitySource": "method.request.header.X-User, method.request.body.x", "authorizerResultTtlInSeconds": 4000"#,
        );
    let (_dir, config) = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .write();
    let out = Command::new(support::gateway::bin())
        .args(["check", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{text}");
    for needle in [
        "$.securityDefinitions.tokenauth.x-amazon-apigateway-authorizer.identityValidationExpression: not a valid regular expression",
        "$.securityDefinitions.requestauth.x-amazon-apigateway-authorizer.identitySource: `method.request.body.x`",
        "$.securityDefinitions.requestauth.x-amazon-apigateway-authorizer.authorizerResultTtlInSeconds: 4000: must be a whole number of seconds from 0 to 3600",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}
