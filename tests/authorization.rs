//! Method authorization over real sockets: `AWS_IAM` methods signed by
//! botocore (the AWS SDK for Python) and by hand, and the authorizers of a
//! Swagger document's `securityDefinitions` — nothing is ever served open
//! because the gateway cannot run what protects it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, SystemTime};

use serde_json::json;
use support::aws::botocore_headers;
use support::client::{get_with, send};
use support::gateway::{mock_method, swagger_with};
use support::{Backend, Gateway, Mode};

const KEY_ID: &str = "AKIDINVOKER";
const SECRET: &str = "invoker/secret+0123456789";
/// The config's credential with `invoke` (`KEY_ID`, `SECRET`).
fn invoker() -> String {
    format!("[[credentials]]\nname = \"invoker\"\naccess_key_id = \"{KEY_ID}\"\nsecret_access_key = \"{SECRET}\"\npermissions = [\"invoke\"]\n")
}
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
            "{invoker}\
             [[credentials]]\nname = \"cacheonly\"\naccess_key_id = \"{NO_INVOKE_KEY_ID}\"\nsecret_access_key = \"{NO_INVOKE_SECRET}\"\npermissions = [\"invalidate_cache\"]\n",
            invoker = invoker()
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
        ("/undefined", "nosuch", "undefined"),
    ])
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

/// `doc` with every `security` that names only `scheme` naming the API
/// key too.
fn with_api_key(doc: &str, scheme: &str) -> String {
    doc.replace(
        &format!(r#""security": [{{"{scheme}": []}}]"#),
        &format!(r#""security": [{{"{scheme}": [], "api_key": []}}]"#),
    )
}

/// The gateway's `access.log` once it has `n` lines.
fn access_log_lines(gw: &Gateway, n: usize) -> Vec<String> {
    let log = gw.dir.path().join("access.log");
    let mut lines = Vec::new();
    support::wait::wait_until("access-log lines", Duration::from_secs(5), || {
        lines = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        lines.len() >= n
    });
    lines
}

/// `tollgate check` on a config: whether it passed, and what it printed.
fn check(config: &std::path::Path) -> (bool, String) {
    support::gateway::check(config)
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

/// `Authorization` and `X-Amz-Date` lines for `GET path` on host `test`,
/// signed with our own signer at `at`.
fn signed_at(path: &str, key: &str, secret: &str, at: SystemTime) -> String {
    signed("GET", path, key, secret, at)
}

/// `signed_at` for a request with this method (and no body).
fn signed(method: &str, path: &str, key: &str, secret: &str, at: SystemTime) -> String {
    support::aws::Signing {
        method,
        host: "test",
        path,
        query: None,
        body: b"",
        service: "execute-api",
        region: "eu-west-1",
    }
    .header_lines(key, secret, at)
}

#[test]
fn signatures_out_of_time_or_with_a_session_token_are_refused() {
    let gw = gateway(&all_schemes());
    let addr = gw.addr;
    let now = SystemTime::now();
    let h = signed_at("/prod/iam", KEY_ID, SECRET, now);
    assert_eq!(call(addr, "GET", "/prod/iam", &h, b"").status, 200);
    let old = signed_at(
        "/prod/iam",
        KEY_ID,
        SECRET,
        now - Duration::from_secs(20 * 60),
    );
    let r = call(addr, "GET", "/prod/iam", &old, b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    assert!(r.text().contains("Signature expired"), "{}", r.text());
    let future = signed_at(
        "/prod/iam",
        KEY_ID,
        SECRET,
        now + Duration::from_secs(20 * 60),
    );
    let r = call(addr, "GET", "/prod/iam", &future, b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(
        r.text().contains("Signature not yet current"),
        "{}",
        r.text()
    );
    // Temporary credentials: this gateway has none, whatever the key id.
    let r = call(
        addr,
        "GET",
        "/prod/iam",
        &format!("{h}X-Amz-Security-Token: FwoGZXIvYXdz\r\n"),
        b"",
    );
    assert_refused(
        &r,
        403,
        "InvalidSignatureException",
        "The security token included in the request is invalid.",
    );
}

/// A forged signature (an access key id is no secret: every signed request
/// shows it) is refused before the API key is charged: the key's quota,
/// throttle and the in-flight permits stay the real caller's.
#[test]
fn forged_signatures_spend_nothing_of_the_callers_quota() {
    let doc = secured(&[("/iamkey", "sigv4", "iamkey")]);
    let doc = with_api_key(&doc, "sigv4");
    let key = "k1-0123456789abcdefghijkl";
    let gw = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .extra(&format!(
            "{invoker}\
             [[usage_plans]]\nid = \"tiny\"\nquota = {{ limit = 2, period = \"DAY\" }}\napi_stages = [\"a/prod\"]\n\
             [[api_keys]]\nname = \"k1\"\nvalue = \"{key}\"\nusage_plans = [\"tiny\"]\n",
            invoker = invoker()
        ))
        .start();
    let now = SystemTime::now();
    let forged = signed_at("/prod/iamkey", KEY_ID, "not-the-secret", now);
    for _ in 0..3 {
        let r = call(
            gw.addr,
            "GET",
            "/prod/iamkey",
            &format!("{forged}x-api-key: {key}\r\n"),
            b"",
        );
        assert_eq!(r.status, 403, "{}", r.text());
        assert_eq!(
            r.header("x-amzn-ErrorType"),
            Some("InvalidSignatureException")
        );
    }
    let good = signed_at("/prod/iamkey", KEY_ID, SECRET, now);
    for _ in 0..2 {
        let r = call(
            gw.addr,
            "GET",
            "/prod/iamkey",
            &format!("{good}x-api-key: {key}\r\n"),
            b"",
        );
        assert_eq!((r.status, r.text().as_str()), (200, "iamkey"));
    }
    // The quota (2) is the real caller's, and it is spent now.
    let r = call(
        gw.addr,
        "GET",
        "/prod/iamkey",
        &format!("{good}x-api-key: {key}\r\n"),
        b"",
    );
    assert_eq!(r.status, 429, "{}", r.text());
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
    // A scheme securityDefinitions does not have: not created either.
    let r = get_with(addr, "/prod/undefined", "");
    assert_refused(
        &r,
        403,
        "MissingAuthenticationTokenException",
        "Missing Authentication Token",
    );
}

#[test]
fn the_authorizer_is_checked_before_the_api_key() {
    let doc = secured(&[("/both", "tokenauth", "both")]);
    let doc = with_api_key(&doc, "tokenauth");
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
    let (ok, text) = check(&config);
    assert!(ok, "{text}");
    for needle in [
        "a.json: $.security: API Gateway does not apply the root `security`",
        "a.json: $.securityDefinitions.oauth: a `oauth2` scheme that API Gateway does not enforce",
        "a.json: $.securityDefinitions.halfdone: Unable to create authorizer from security definition: 'halfdone'. Extension x-amazon-apigateway-authorizer is required.",
        "a.json: $.paths./halfdone.get: not created: it names security definition 'halfdone'",
        "a.json: $.paths./undefined.get.security: not created: it names security definition 'nosuch', which securityDefinitions does not have",
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
            r#""type": "request", "identitySource": "method.request.header.X-User, method.request.body.x, context.sourceIp", "authorizerResultTtlInSeconds": 4000"#,
        );
    let (_dir, config) = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .write();
    let (ok, text) = check(&config);
    assert!(!ok, "{text}");
    for needle in [
        "$.securityDefinitions.tokenauth.x-amazon-apigateway-authorizer.identityValidationExpression: not a valid regular expression",
        "$.securityDefinitions.requestauth.x-amazon-apigateway-authorizer.identitySource: `method.request.body.x`",
        "$.securityDefinitions.requestauth.x-amazon-apigateway-authorizer.identitySource: `context.sourceIp`: `$context.sourceIp` is not a context variable",
        "$.securityDefinitions.requestauth.x-amazon-apigateway-authorizer.authorizerResultTtlInSeconds: 4000: must be a whole number of seconds from 0 to 3600",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

const TOKEN_FN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:tokenauth";
const REQUEST_FN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:requestauth";

/// The authorizer stand-in's answer: 200 with `output`.
fn answers(output: serde_json::Value) -> Mode {
    Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: output.to_string().into_bytes(),
    }
}

fn policy(effect: &str, resource: &str) -> serde_json::Value {
    json!({"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]})
}

/// MOCK methods whose answers show what the authorizer said.
fn context_echo(paths: &[(&str, &str)], extra_root: &str) -> String {
    let body = r#"{"p": "$context.authorizer.principalId", "user": "$context.authorizer.user", "n": "$context.authorizer.n", "key": "$context.identity.apiKey"}"#;
    let doc = secured(
        &paths
            .iter()
            .map(|(p, s)| (*p, *s, body))
            .collect::<Vec<_>>(),
    );
    if extra_root.is_empty() {
        doc
    } else {
        doc.replacen(
            r#""securityDefinitions""#,
            &format!("{extra_root}, \"securityDefinitions\""),
            1,
        )
    }
}

fn lambda_gateway(doc: &str, authorizer: &Backend, extra: &str) -> Gateway {
    Gateway::builder()
        .api("a", doc)
        .stage("a", "prod", &[("tier", "gold")])
        .default_api("a")
        .extra(&format!(
            "[lambda_functions]\n\"{TOKEN_FN}\" = \"http://{0}/token?v=1\"\n\"{REQUEST_FN}\" = \"http://{0}/request\"\n{extra}",
            authorizer.addr
        ))
        .start()
}

#[test]
fn a_token_authorizer_runs_through_its_http_endpoint() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "alice",
        "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:a/prod/GET/*"),
        "context": {"user": "alice@example.com", "n": 7, "admin": true},
    })));
    let gw = lambda_gateway(
        &context_echo(&[("/token", "tokenauth")], ""),
        &authorizer,
        "",
    );
    let addr = gw.addr;

    // Allowed: the method sees the principal and the context.
    let r = get_with(addr, "/prod/token", "Auth: Bearer abc\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(
        (v["p"].as_str(), v["user"].as_str(), v["n"].as_str()),
        (Some("alice"), Some("alice@example.com"), Some("7"))
    );
    // The event API Gateway sends a TOKEN authorizer, POSTed to the
    // function's endpoint.
    let call = authorizer.last();
    assert_eq!(
        (call.method.as_str(), call.target.as_str()),
        ("POST", "/token?v=1")
    );
    let event: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(
        event,
        json!({"type": "TOKEN", "authorizationToken": "Bearer abc", "methodArn": "arn:aws:execute-api:local:000000000000:a/prod/GET/token"})
    );

    // The same token within the TTL (300 s): no second call. The cached
    // policy still judges each method: POST is not allowed by it.
    assert_eq!(
        get_with(addr, "/prod/token", "Auth: Bearer abc\r\n").status,
        200
    );
    assert_eq!(authorizer.request_count(), 1);
    let r = send(
        addr,
        "POST",
        "/prod/token",
        "Auth: Bearer abc\r\nContent-Type: application/json\r\n",
        b"{}",
    );
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        "User is not authorized to access this resource",
    );
    assert_eq!(authorizer.request_count(), 1);

    // An explicit deny.
    authorizer.set_mode(answers(
        json!({"principalId": "bob", "policyDocument": policy("Deny", "*")}),
    ));
    let r = get_with(addr, "/prod/token", "Auth: Bearer bob\r\n");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        "User is not authorized to access this resource with an explicit deny",
    );
    // The function refuses the token ("Unauthorized"): 401.
    authorizer.set_mode(Mode::Fixed {
        status: 401,
        headers: vec![],
        body: b"Unauthorized".to_vec(),
    });
    let r = get_with(addr, "/prod/token", "Auth: Bearer carol\r\n");
    assert_refused(&r, 401, "UnauthorizedException", "Unauthorized");
    // An output that is not an authorizer's: 500 AUTHORIZER_CONFIGURATION_ERROR.
    authorizer.set_mode(answers(json!({"principalId": "dave"})));
    let r = get_with(addr, "/prod/token", "Auth: Bearer dave\r\n");
    assert_refused(&r, 500, "AuthorizerConfigurationException", "null");
    // The function fails: 500 AUTHORIZER_FAILURE.
    authorizer.set_mode(Mode::Fixed {
        status: 502,
        headers: vec![],
        body: b"boom".to_vec(),
    });
    let r = get_with(addr, "/prod/token", "Auth: Bearer erin\r\n");
    assert_refused(&r, 500, "AuthorizerFailureException", "null");
    // Refusals are not cached: the next call of the same token asks again.
    authorizer.set_mode(answers(
        json!({"principalId": "erin", "policyDocument": policy("Allow", "*")}),
    ));
    let r = get_with(addr, "/prod/token", "Auth: Bearer erin\r\n");
    assert_eq!((r.status, r.json()["p"].as_str()), (200, Some("erin")));
    // And the first token is still served from the cache.
    assert_eq!(
        get_with(addr, "/prod/token", "Auth: Bearer abc\r\n").json()["p"],
        "alice"
    );
}

#[test]
fn a_request_authorizer_gets_the_request_and_can_give_the_api_key() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "tenant-t1",
        "policyDocument": policy("Allow", "*"),
        "usageIdentifierKey": "tenant-key-0123456789",
    })));
    // API keys come from the authorizer; the method requires one.
    let doc = with_api_key(&context_echo(&[("/items/{id}", "requestauth")], r#""x-amazon-apigateway-api-key-source": "AUTHORIZER""#), "requestauth")
        .replace(r#""Unused", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request","#, r#""Unused", "in": "header", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "request", "authorizerResultTtlInSeconds": 0,"#);
    let gw = lambda_gateway(
        &doc,
        &authorizer,
        "[[usage_plans]]\nid = \"tenants\"\napi_stages = [\"a/prod\"]\n[[api_keys]]\nname = \"t1\"\nvalue = \"tenant-key-0123456789\"\nusage_plans = [\"tenants\"]\n[[credentials]]\nname = \"purger\"\ntoken = \"purger-token-0123456789\"\npermissions = [\"invalidate_cache\"]\n",
    );
    let addr = gw.addr;
    // With the gateway's own bearer token too, which the authorizer does
    // not see.
    let r = get_with(
        addr,
        "/prod/items/42?tenant=t1&tenant=t2&x=%20y",
        "X-User: u1\r\nx-api-key: ignored-under-AUTHORIZER\r\nAuthorization: Bearer purger-token-0123456789\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["key"], "tenant-key-0123456789");
    let call = authorizer.last();
    assert_eq!(call.target, "/request");
    let e: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(e["type"], "REQUEST");
    assert_eq!(
        e["methodArn"],
        "arn:aws:execute-api:local:000000000000:a/prod/GET/items/42"
    );
    assert_eq!(e["resource"], "/items/{id}");
    assert_eq!(e["httpMethod"], "GET");
    assert_eq!(e["headers"]["X-User"], "u1");
    assert!(e["headers"].get("Authorization").is_none(), "{e}");
    assert_eq!(e["queryStringParameters"]["tenant"], "t2");
    assert_eq!(
        e["multiValueQueryStringParameters"]["tenant"],
        json!(["t1", "t2"])
    );
    assert_eq!(e["queryStringParameters"]["x"], " y");
    assert_eq!(e["pathParameters"], json!({"id": "42"}));
    assert_eq!(e["stageVariables"], json!({"tier": "gold"}));
    assert_eq!(e["requestContext"]["stage"], "prod");
    assert_eq!(e["requestContext"]["path"], "/prod/items/42");
    // TTL 0: every request asks, the same identity too.
    get_with(addr, "/prod/items/42?tenant=t1", "X-User: u1\r\n");
    get_with(addr, "/prod/items/42?tenant=t1", "X-User: u1\r\n");
    assert_eq!(authorizer.request_count(), 3);
    // A usage key no plan of this stage has: 403 Forbidden (INVALID_API_KEY).
    authorizer.set_mode(answers(json!({"principalId": "x", "policyDocument": policy("Allow", "*"), "usageIdentifierKey": "nobody"})));
    let r = get_with(
        addr,
        "/prod/items/42?tenant=t1",
        "X-User: u1\r\nx-api-key: tenant-key-0123456789\r\n",
    );
    assert_refused(&r, 403, "ForbiddenException", "Forbidden");
}

#[test]
fn an_unreachable_authorizer_is_an_authorizer_failure() {
    // A port nothing listens on: bound, then closed.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let gw = Gateway::builder()
        .api("a", &context_echo(&[("/token", "tokenauth")], ""))
        .stage("a", "prod", &[])
        .default_api("a")
        .extra(&format!(
            "[lambda_functions]\n\"{TOKEN_FN}\" = \"http://{addr}/\"\n"
        ))
        .start();
    let r = get_with(gw.addr, "/prod/token", "Auth: Bearer abc\r\n");
    assert_refused(&r, 500, "AuthorizerFailureException", "null");
}

const POOL: &str = "arn:aws:cognito-idp:eu-west-1:123456789012:userpool/eu-west-1_TestPool";
const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_TestPool";

/// An RSA key made with openssl: (private key PEM, JWKS with its public
/// key under `kid`).
fn rsa_key(dir: &std::path::Path, kid: &str) -> (Vec<u8>, serde_json::Value) {
    let pem = dir.join(format!("{kid}.pem"));
    let ok = Command::new("openssl")
        .args(["genrsa", "-out", pem.to_str().unwrap(), "2048"])
        .output()
        .unwrap()
        .status
        .success();
    assert!(ok, "openssl genrsa");
    let out = Command::new("openssl")
        .args(["rsa", "-in", pem.to_str().unwrap(), "-noout", "-modulus"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hex = text.trim().strip_prefix("Modulus=").unwrap();
    let n: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let jwks = json!({"keys": [{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": b64.encode(n), "e": "AQAB"}]});
    (std::fs::read(&pem).unwrap(), jwks)
}

fn jwt(pem: &[u8], kid: &str, claims: serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(pem).unwrap(),
    )
    .unwrap()
}

/// API `a` (stage `prod`, the default API) from `doc`, with the pool
/// `POOL`'s keys in `jwks_file`.
fn cognito_gateway(doc: &str, jwks_file: &std::path::Path) -> support::GatewayBuilder {
    Gateway::builder()
        .api("a", doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .extra(&format!(
            "[cognito_user_pools.\"{POOL}\"]\njwks_file = \"{}\"\n",
            jwks_file.display()
        ))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn cognito_tokens_are_checked_against_the_pools_keys() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, jwks) = rsa_key(keys.path(), "k1");
    let (other_pem, _) = rsa_key(keys.path(), "k2");
    let jwks_file = keys.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let body =
        r#"{"sub": "$context.authorizer.claims.sub", "email": "$context.authorizer.claims.email"}"#;
    let doc = secured(&[("/pool", "pool", body), ("/scoped", "pool", body)])
        .replace("eu-west-1_x", "eu-west-1_TestPool");
    // `/scoped` asks for a scope (its `security` lists one).
    let doc = {
        let mut v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        v["paths"]["/scoped"]["get"]["security"] = json!([{"pool": ["orders/read"]}]);
        v.to_string()
    };
    let gw = cognito_gateway(&doc, &jwks_file).start();
    let addr = gw.addr;
    let now = now_secs();
    let id_token = |claims: serde_json::Value| jwt(&pem, "k1", claims);
    let good = json!({"sub": "u-1", "email": "ann@example.com", "token_use": "id", "iss": ISSUER, "exp": now + 600, "aud": "client-1"});

    let r = get_with(
        addr,
        "/prod/pool",
        &format!("Authorization: {}\r\n", id_token(good.clone())),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"sub": "u-1", "email": "ann@example.com"}));
    // `Bearer ` before it is taken too.
    let r = get_with(
        addr,
        "/prod/pool",
        &format!("Authorization: Bearer {}\r\n", id_token(good.clone())),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let refused = |token: String, why: &str| {
        let r = get_with(addr, "/prod/pool", &format!("Authorization: {token}\r\n"));
        assert_eq!(r.status, 401, "{why}: {}", r.text());
        assert_eq!(r.json(), json!({"message": "Unauthorized"}), "{why}");
    };
    let mut expired = good.clone();
    expired["exp"] = json!(now - 10);
    refused(id_token(expired), "expired");
    let mut foreign = good.clone();
    foreign["iss"] = json!("https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Other");
    refused(id_token(foreign), "another pool");
    refused(
        jwt(&other_pem, "k1", good.clone()),
        "signed by another key under the pool's kid",
    );
    refused(jwt(&other_pem, "k2", good.clone()), "an unknown kid");
    let mut access = good.clone();
    access["token_use"] = json!("access");
    access["scope"] = json!("orders/read");
    refused(
        id_token(access.clone()),
        "an access token where an ID token is needed",
    );
    refused("not.a.jwt".into(), "not a JWT");
    let tampered = {
        let t = id_token(good.clone());
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims = good.clone();
        claims["sub"] = json!("admin");
        parts[1] = b64.encode(claims.to_string());
        parts.join(".")
    };
    refused(tampered, "claims changed after signing");

    // A method with scopes: an access token with one of them.
    let r = get_with(
        addr,
        "/prod/scoped",
        &format!("Authorization: {}\r\n", id_token(access.clone())),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let mut other_scope = access.clone();
    other_scope["scope"] = json!("orders/write profile");
    let r = get_with(
        addr,
        "/prod/scoped",
        &format!("Authorization: {}\r\n", id_token(other_scope)),
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = get_with(
        addr,
        "/prod/scoped",
        &format!("Authorization: {}\r\n", id_token(good)),
    );
    assert_eq!(
        r.status,
        401,
        "an ID token for a scoped method: {}",
        r.text()
    );
}

#[test]
fn a_bad_jwks_file_is_an_error_naming_it() {
    let keys = tempfile::tempdir().unwrap();
    let jwks_file = keys.path().join("jwks.json");
    std::fs::write(
        &jwks_file,
        r#"{"keys": [{"kty": "RSA", "n": "!!", "e": "AQAB"}]}"#,
    )
    .unwrap();
    let (_dir, config) = Gateway::builder()
        .api("a", &all_schemes())
        .stage("a", "prod", &[])
        .extra(&format!(
            "[cognito_user_pools.\"{POOL}\"]\njwks_file = \"{}\"\n[cognito_user_pools.\"not-an-arn\"]\njwks_file = \"missing.json\"\n",
            jwks_file.display()
        ))
        .write();
    let (ok, text) = check(&config);
    assert!(!ok, "{text}");
    for needle in [
        format!(
            "tollgate.toml: $.cognito_user_pools.{POOL}.jwks_file: {}: no key verifies tokens (keys[0]: ",
            jwks_file.display()
        ),
        "tollgate.toml: $.cognito_user_pools.not-an-arn: must be a user pool ARN".to_owned(),
    ] {
        assert!(text.contains(&needle), "missing `{needle}` in:\n{text}");
    }
}

/// What the probe of the HTTP-endpoint authorizers found: an endpoint that
/// closes idle connections, a context key `principalId`, a denial's
/// gateway response, identities that spelled the same cache key, and the
/// cache shared between stages.
#[test]
fn authorizer_outputs_stay_with_their_identity_and_reach_denials() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "pp",
        "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:a/*/GET/*"),
        "context": {"user": "u", "principalId": "evil"},
    })));
    let doc = context_echo(
        &[("/token", "tokenauth"), ("/request", "requestauth")],
        r#""x-amazon-apigateway-gateway-responses": {"ACCESS_DENIED": {"statusCode": 403,
            "responseParameters": {"gatewayresponse.header.x-principal": "context.authorizer.principalId"},
            "responseTemplates": {"application/json": "{\"denied\": \"$context.authorizer.principalId\", \"user\": \"$context.authorizer.user\"}"}}}"#,
    )
    .replace(
        "method.request.header.X-User, method.request.querystring.tenant",
        "method.request.querystring.a, method.request.querystring.b",
    );
    let gw = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .stage("a", "dev", &[])
        .default_api("a")
        .extra(&format!(
            "[lambda_functions]\n\"{TOKEN_FN}\" = \"http://{0}/token\"\n\"{REQUEST_FN}\" = \"http://{0}/request\"\n",
            authorizer.addr
        ))
        .start();
    let addr = gw.addr;
    // The principal is `principalId`, not a context key of that name.
    let r = get_with(addr, "/prod/token", "Auth: Bearer a\r\n");
    assert_eq!(
        (r.status, r.json()["p"].as_str()),
        (200, Some("pp")),
        "{}",
        r.text()
    );
    // The cache is per stage.
    assert_eq!(
        get_with(addr, "/dev/token", "Auth: Bearer a\r\n").status,
        200
    );
    assert_eq!(authorizer.request_count(), 2);
    // Two identities whose values, joined, read the same: two calls.
    let first = get_with(addr, "/prod/request?a=m%00n&b=o", "");
    let second = get_with(addr, "/prod/request?a=m&b=n%00o", "");
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(authorizer.request_count(), 4);
    // A denial's gateway response sees the authorizer's output.
    let r = send(addr, "POST", "/prod/token", "Auth: Bearer a\r\n", b"{}");
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json(), json!({"denied": "pp", "user": "u"}));
    assert_eq!(r.header("x-principal"), Some("pp"));
}

/// An endpoint that closes each connection after its answer (without
/// saying so): a pooled connection it closed is retried on a new one,
/// never a 500.
#[test]
fn an_endpoint_that_closes_idle_connections_costs_no_failures() {
    let authorizer = Backend::start(Mode::JsonThenClose(
        json!({"principalId": "p", "policyDocument": policy("Allow", "*")})
            .to_string()
            .into_bytes(),
    ));
    let gw = lambda_gateway(
        &context_echo(&[("/token", "tokenauth")], ""),
        &authorizer,
        "",
    );
    let mut c = support::RawClient::connect(gw.addr);
    for i in 0..30u8 {
        // Distinct tokens (letters, as the validation expression wants):
        // each is a call.
        let token = format!("t{}{}", (b'a' + i / 26) as char, (b'a' + i % 26) as char);
        let r = c.request(
            format!("GET /prod/token HTTP/1.1\r\nHost: test\r\nAuth: Bearer {token}\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
    }
    assert_eq!(authorizer.request_count(), 30);
}

#[test]
fn the_access_log_names_the_authorizers_principal_and_context() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "alice",
        "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:a/prod/GET/*"),
        "context": {"tenant": "t1"},
    })));
    let gw = Gateway::builder()
        .api("a", &context_echo(&[("/token", "tokenauth")], ""))
        .default_api("a")
        .extra(&format!(
            "[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = {{ path = \"access.log\", format = '$context.status $context.authorizer.principalId $context.authorizer.tenant' }}\n\
             [lambda_functions]\n\"{TOKEN_FN}\" = \"http://{}/token\"\n",
            authorizer.addr
        ))
        .start();
    assert_eq!(
        get_with(gw.addr, "/prod/token", "Auth: Bearer abc\r\n").status,
        200
    );
    assert_eq!(
        send(
            gw.addr,
            "POST",
            "/prod/token",
            "Auth: Bearer abc\r\n",
            b"{}"
        )
        .status,
        403
    );
    assert_eq!(get_with(gw.addr, "/prod/token", "").status, 401);
    let lines = access_log_lines(&gw, 3);
    assert_eq!(lines, ["200 alice t1", "403 alice t1", "401 - -"]);
}

/// Values a client controls (an authorizer's context, a token's claims)
/// mapped into headers lose every control character but HTAB: a strict
/// client (Node's parser, h11) refused the whole response over one.
#[test]
fn control_characters_from_an_authorizer_never_reach_a_header() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "p",
        "policyDocument": policy("Allow", "*"),
        "context": {"x": "a\u{1}b\u{7f}c\u{b}d\re\nf\tg"},
    })));
    let backend = Backend::start(Mode::Echo);
    let method = support::gateway::proxy_method(
        &format!("http://{}/echo", backend.addr),
        r#", "requestParameters": {"integration.request.header.x-from-authorizer": "context.authorizer.x"}"#,
    )
    .replacen('{', r#"{"security": [{"tokenauth": []}], "#, 1);
    let doc = secured(&[]).replacen(
        r#""paths": {}"#,
        &format!(r#""paths": {{"/p": {{"get": {method}}}}}"#),
        1,
    );
    let gw = lambda_gateway(&doc, &authorizer, "");
    let r = get_with(gw.addr, "/prod/p", "Auth: Bearer abc\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        backend.last().header("x-from-authorizer"),
        Some("abcdef\tg")
    );
}

#[test]
fn cognito_keys_and_claims_are_read_strictly() {
    let keys = tempfile::tempdir().unwrap();
    let (pem, mut jwks) = rsa_key(keys.path(), "k1");
    // An identity provider's set may hold an encryption key too: left out.
    let enc = {
        let mut k = jwks["keys"][0].clone();
        k["kid"] = json!("enc1");
        k["use"] = json!("enc");
        k["alg"] = json!("RSA-OAEP");
        k
    };
    jwks["keys"].as_array_mut().unwrap().push(enc);
    let jwks_file = keys.path().join("jwks.json");
    std::fs::write(&jwks_file, jwks.to_string()).unwrap();
    let doc = {
        let mut v: serde_json::Value = serde_json::from_str(
            &secured(&[("/pool", "pool", "ok"), ("/scoped", "pool", "ok")])
                .replace("eu-west-1_x", "eu-west-1_TestPool"),
        )
        .unwrap();
        v["paths"]["/scoped"]["get"]["security"] = json!([{"pool": ["", "orders/read"]}]);
        v.to_string()
    };
    let builder = cognito_gateway(&doc, &jwks_file);
    let (_dir, config) = builder.write();
    let (ok, text) = check(&config);
    assert!(ok, "{text}");
    assert!(
        text.contains("keys[1]: not a signing key (`use`): left out"),
        "{text}"
    );
    assert!(
        text.contains("an empty scope for 'pool' matches no token; ignored"),
        "{text}"
    );
    let gw = builder.start();
    let now = now_secs();
    let good = json!({"sub": "u-1", "token_use": "id", "iss": ISSUER, "exp": now + 600});
    let call = |token: String, path: &str| {
        get_with(gw.addr, path, &format!("Authorization: {token}\r\n")).status
    };
    assert_eq!(call(jwt(&pem, "k1", good.clone()), "/prod/pool"), 200);
    // `iss` is one string, the pool's: a list holding it is not.
    let mut listed = good.clone();
    listed["iss"] = json!(["https://evil.example", ISSUER]);
    assert_eq!(call(jwt(&pem, "k1", listed), "/prod/pool"), 401);
    // A token that names no key.
    let no_kid = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &good,
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap();
    assert_eq!(call(no_kid, "/prod/pool"), 401);
    // The empty scope matches nothing: an access token without scopes is
    // refused, one with the listed scope accepted.
    let mut access = good.clone();
    access["token_use"] = json!("access");
    assert_eq!(call(jwt(&pem, "k1", access.clone()), "/prod/scoped"), 401);
    access["scope"] = json!("orders/read");
    assert_eq!(call(jwt(&pem, "k1", access), "/prod/scoped"), 200);
}

/// An `AWS_IAM` request's caller is `$context.identity.caller`, `.user`,
/// `.userArn` and `.accessKey`, in templates and in the access log.
#[test]
fn an_iam_callers_identity_reaches_templates_and_the_access_log() {
    let body = r#"{"caller": "$context.identity.caller", "user": "$context.identity.user", "arn": "$context.identity.userArn", "key": "$context.identity.accessKey"}"#;
    let gw = Gateway::builder()
        .api("a", &secured(&[("/iam", "sigv4", body), ("/open", "", body)]))
        .default_api("a")
        .extra(&format!(
            "[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = {{ path = \"access.log\", format = '$context.status $context.identity.caller $context.identity.accessKey $context.identity.userArn' }}\n\
             {invoker}",
            invoker = invoker()
        ))
        .start();
    let h = signed_at("/prod/iam", KEY_ID, SECRET, SystemTime::now());
    let r = call(gw.addr, "GET", "/prod/iam", &h, b"");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"caller": "invoker", "user": "invoker", "arn": "arn:aws:iam::000000000000:user/invoker", "key": KEY_ID})
    );
    // An open method has no caller, signed or not.
    let r = call(gw.addr, "GET", "/prod/open", "", b"");
    assert_eq!(
        r.json(),
        json!({"caller": "", "user": "", "arn": "", "key": ""})
    );
    let lines = access_log_lines(&gw, 2);
    assert_eq!(
        lines,
        [
            format!("200 invoker {KEY_ID} arn:aws:iam::000000000000:user/invoker"),
            "200 - - -".to_owned()
        ]
    );
}

/// A presigned URL (SigV4 in the query string, as botocore's
/// `SigV4QueryAuth` makes it: what a browser or a link carries, having no
/// way to add headers) opens an `AWS_IAM` method until it expires.
#[test]
fn presigned_urls_open_iam_methods_until_they_expire() {
    let gw = gateway(&all_schemes());
    let presign = |path: &str, key: &str, secret: &str, expires: u32| {
        support::aws::botocore_presigned(&url(path), key, secret, expires)
            .map(|u| u.strip_prefix("http://test").unwrap().to_owned())
    };
    let Some(target) = presign("/prod/iam?q=a%20b", KEY_ID, SECRET, 60) else {
        return;
    };
    assert!(target.contains("X-Amz-Signature="), "{target}");
    let r = call(gw.addr, "GET", &target, "", b"");
    assert_eq!((r.status, r.text().as_str()), (200, "iam"), "{target}");
    // Another query value, another method: not what was signed.
    for (method, t) in [
        ("GET", target.replace("q=a%20b", "q=a%20c")),
        ("POST", target.clone()),
    ] {
        let r = call(gw.addr, method, &t, "", b"");
        assert_eq!(r.status, 403, "{method} {t}: {}", r.text());
    }
    let r = call(
        gw.addr,
        "GET",
        &target.replace("q=a%20b", "q=a%20c"),
        "",
        b"",
    );
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );
    // A credential without `invoke`.
    let t = presign("/prod/iam", NO_INVOKE_KEY_ID, NO_INVOKE_SECRET, 60).unwrap();
    let r = call(gw.addr, "GET", &t, "", b"");
    assert_eq!(r.status, 403);
    assert_eq!(r.header("x-amzn-ErrorType"), Some("AccessDeniedException"));
    // Past its expiry.
    let t = presign("/prod/iam", KEY_ID, SECRET, 1).unwrap();
    std::thread::sleep(Duration::from_millis(2100));
    let r = call(gw.addr, "GET", &t, "", b"");
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Signature expired"), "{}", r.text());
}

/// `doc` with this resource policy.
fn with_policy(doc: &str, policy: serde_json::Value) -> String {
    doc.replacen(
        r#""securityDefinitions""#,
        &format!("\"x-amazon-apigateway-policy\": {policy}, \"securityDefinitions\""),
        1,
    )
}

/// A resource policy (`x-amazon-apigateway-policy`) judges every method
/// before its authorization: an explicit deny refuses before an
/// authorizer is called; without authorization only an explicit allow
/// admits; an `AWS_IAM` signer is the policy's principal, and the policy
/// can admit a credential that may not invoke, or refuse one that may; a
/// Lambda authorizer's policy that neither allows nor denies admits when
/// the resource policy allows (API Gateway's same-account table).
#[test]
fn a_resource_policy_judges_every_method_as_api_gateways() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "u1",
        "policyDocument": policy("Allow", "arn:aws:execute-api:*:*:*/other/*")
    })));
    let doc = with_policy(
        &all_schemes(),
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/prod/GET/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke",
             "Resource": "arn:aws:execute-api:us-east-1:111111111111:abc123/*/*/token",
             "Condition": {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8"]}}},
            {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::000000000000:user/cacheonly"},
             "Action": "execute-api:Invoke", "Resource": "execute-api:/prod/POST/iam"},
            {"Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam::000000000000:user/invoker"]},
             "Action": "execute-api:*", "Resource": "execute-api:/prod/POST/iam"}
        ]}),
    );
    let gw = lambda_gateway(
        &doc,
        &authorizer,
        &format!(
            "{}[[credentials]]\nname = \"cacheonly\"\naccess_key_id = \"{NO_INVOKE_KEY_ID}\"\nsecret_access_key = \"{NO_INVOKE_SECRET}\"\npermissions = [\"invalidate_cache\"]\n",
            invoker()
        ),
    );
    let addr = gw.addr;
    let arn = |rest: &str| format!("arn:aws:execute-api:local:000000000000:a/prod/{rest}");

    // No authorization: only what the policy allows.
    assert_eq!(call(addr, "GET", "/prod/open", "", b"").text(), "open");
    let r = call(addr, "POST", "/prod/open", "", b"");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        &format!(
            "User: anonymous is not authorized to perform: execute-api:Invoke on resource: {}",
            arn("POST/open")
        ),
    );
    // An explicit deny (by address) refuses before the authorizer runs.
    let r = call(addr, "GET", "/prod/token", "Auth: Bearer abc\r\n", b"");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        &format!(
            "User: anonymous is not authorized to perform: execute-api:Invoke on resource: {} with an explicit deny",
            arn("GET/token")
        ),
    );
    assert_eq!(authorizer.request_count(), 0);

    // AWS_IAM: the signer is the principal.
    let now = SystemTime::now();
    let as_invoker = |m: &str| signed(m, "/prod/iam", KEY_ID, SECRET, now);
    let as_cacheonly = |m: &str| signed(m, "/prod/iam", NO_INVOKE_KEY_ID, NO_INVOKE_SECRET, now);
    assert_eq!(
        call(addr, "GET", "/prod/iam", &as_invoker("GET"), b"").text(),
        "iam"
    );
    let r = call(addr, "POST", "/prod/iam", &as_invoker("POST"), b"");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        &format!(
            "User: arn:aws:iam::000000000000:user/invoker is not authorized to perform: execute-api:Invoke on resource: {} with an explicit deny",
            arn("POST/iam")
        ),
    );
    // The policy admits a credential without `invoke` where it allows it
    // (POST, by name; GET, everyone), and only there.
    let r = call(addr, "POST", "/prod/iam", &as_cacheonly("POST"), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "iam"));
    let r = call(addr, "GET", "/prod/iam", &as_cacheonly("GET"), b"");
    assert_eq!((r.status, r.text().as_str()), (200, "iam"));
    // A forged signature in the allowed principal's name gains nothing.
    let forged = signed("POST", "/prod/iam", NO_INVOKE_KEY_ID, "not-the-secret", now);
    let r = call(addr, "POST", "/prod/iam", &forged, b"");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InvalidSignatureException")
    );

    // A Lambda authorizer whose policy is silent on the method: admitted
    // where the resource policy allows (GET), refused where it is silent
    // too (POST).
    let user = "X-User: alice\r\n";
    let r = call(addr, "GET", "/prod/request?tenant=t1", user, b"");
    assert_eq!((r.status, r.text().as_str()), (200, "request"));
    let r = call(addr, "POST", "/prod/request?tenant=t1", user, b"");
    assert_refused(
        &r,
        403,
        "AccessDeniedException",
        "User is not authorized to access this resource",
    );
}

#[test]
fn a_broken_resource_policy_is_an_error_naming_its_json_path() {
    for (policy, needle) in [
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["10.0.0.300/8"]}}}]}),
            "$.x-amazon-apigateway-policy.Statement[0].Condition.IpAddress.aws:SourceIp[0]: `10.0.0.300/8` is not an IP address or CIDR block",
        ),
        (
            json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "arn:aws:s3:::b/*"}]}),
            "$.x-amazon-apigateway-policy.Statement[0].Resource[0]",
        ),
    ] {
        let (_dir, config) = Gateway::builder()
            .api("a", &with_policy(&all_schemes(), policy))
            .stage("a", "prod", &[])
            .write();
        let (ok, text) = check(&config);
        assert!(!ok, "{text}");
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // What it cannot evaluate is a warning.
    let (_dir, config) = Gateway::builder()
        .api(
            "a",
            &with_policy(
                &all_schemes(),
                json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "*",
                    "Condition": {"DateLessThan": {"aws:CurrentTime": "2030-01-01T00:00:00Z"}}}]}),
            ),
        )
        .stage("a", "prod", &[])
        .write();
    let (ok, text) = check(&config);
    assert!(ok, "{text}");
    assert!(
        text.contains("$.x-amazon-apigateway-policy.Statement[0].Condition.DateLessThan.aws:CurrentTime: not evaluated by this gateway: the statement never allows"),
        "{text}"
    );
}

/// `x-amazon-apigateway-endpoint-configuration`: a disabled default
/// endpoint that no custom domain maps is warned about (the API answers
/// nowhere); a PRIVATE API is reachable by every client of the listener
/// (a warning).
#[test]
fn endpoint_settings_it_cannot_keep_are_warned() {
    let with_endpoint = |conf: &str| {
        all_schemes().replacen(
            r#""securityDefinitions""#,
            &format!(
                "\"x-amazon-apigateway-endpoint-configuration\": {conf}, \"securityDefinitions\""
            ),
            1,
        )
    };
    for (conf, needle) in [
        (
            r#"{"types": ["REGIONAL"], "disableExecuteApiEndpoint": true}"#,
            "$.x-amazon-apigateway-endpoint-configuration.disableExecuteApiEndpoint: API `a` is served only through its custom domains, and no [[domain_names]] mapping names it",
        ),
        (
            r#"{"types": ["PRIVATE"], "vpcEndpointIds": ["vpce-0123"]}"#,
            "$.x-amazon-apigateway-endpoint-configuration: a PRIVATE API (VPC endpoints) is served to every client",
        ),
        (
            r#"{"disableExecuteApiEndpoint": "yes"}"#,
            "$.x-amazon-apigateway-endpoint-configuration.disableExecuteApiEndpoint: must be true or false",
        ),
    ] {
        let (_dir, config) = Gateway::builder()
            .api("a", &with_endpoint(conf))
            .stage("a", "prod", &[])
            .write();
        let (_, text) = check(&config);
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    let (_dir, config) = Gateway::builder()
        .api(
            "a",
            &with_endpoint(r#"{"types": ["REGIONAL"], "disableExecuteApiEndpoint": false}"#),
        )
        .stage("a", "prod", &[])
        .write();
    let (passed, text) = check(&config);
    assert!(passed && !text.contains("endpoint-configuration"), "{text}");
}

/// A `security` of the wrong shape names nothing that is read: an error
/// naming it, never a method served open.
#[test]
fn a_malformed_security_is_an_error_not_an_open_method() {
    for bad in [
        r#"{"sigv4": []}"#,
        r#""sigv4""#,
        r#"["sigv4"]"#,
        r#"[["sigv4"]]"#,
        r#"[{"sigv4": "x"}]"#,
        "1",
    ] {
        let doc = all_schemes().replacen(
            r#""security": [{"sigv4": []}]"#,
            &format!(r#""security": {bad}"#),
            1,
        );
        assert_ne!(doc, all_schemes());
        let (_dir, config) = Gateway::builder()
            .api("a", &doc)
            .stage("a", "prod", &[])
            .write();
        let (ok, text) = check(&config);
        assert!(!ok, "{bad}: {text}");
        assert!(
            text.contains(".security: must be a list of security requirements"),
            "{bad}: {text}"
        );
    }
}

/// Policies (the API's resource policy and an authorizer's) judge the
/// path the router matched: percent-encoded and trailing-slash spellings
/// of a denied path are denied too, and the authorizer's `methodArn`
/// names the path that way.
#[test]
fn policies_judge_every_spelling_of_a_path() {
    let authorizer = Backend::start(answers(json!({
        "principalId": "u1",
        "policyDocument": {"Version": "2012-10-17", "Statement": [
            {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": "arn:aws:execute-api:*:*:*/prod/*"},
            {"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": "arn:aws:execute-api:*:*:*/prod/POST/token"}
        ]}
    })));
    let doc = with_policy(
        &all_schemes(),
        json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "execute-api:Invoke", "Resource": "execute-api:/*/GET/open"}
        ]}),
    );
    let gw = lambda_gateway(&doc, &authorizer, "");
    for path in [
        "/prod/open",
        "/prod/%6Fpen",
        "/prod/%6f%70%65%6e",
        "/prod/open/",
    ] {
        let r = call(gw.addr, "GET", path, "", b"");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            r.text().contains("/prod/GET/open with an explicit deny"),
            "{path}: {}",
            r.text()
        );
    }
    assert_eq!(call(gw.addr, "POST", "/prod/open", "", b"").text(), "open");
    for path in ["/prod/token", "/prod/%74oken", "/prod/token/"] {
        let r = call(gw.addr, "POST", path, "Auth: Bearer abc\r\n", b"");
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    let event: serde_json::Value = serde_json::from_slice(&authorizer.last().body).unwrap();
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:local:000000000000:a/prod/POST/token"
    );
    assert_eq!(
        call(gw.addr, "GET", "/prod/%74oken", "Auth: Bearer abc\r\n", b"").text(),
        "token"
    );
}
