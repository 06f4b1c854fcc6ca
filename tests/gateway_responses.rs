//! Gateway responses end to end: AWS shapes and statuses for every type a
//! request can trigger here, and customisation through
//! `x-amazon-apigateway-gateway-responses` (status, headers from literals,
//! request headers, query and path parameters, stage variables and
//! context; templates with `$context.error.*`, `$context.requestId`,
//! `$context.stage`, `$stageVariables.x`; the DEFAULT_4XX/5XX fallback).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, get_with, send};
use support::gateway::{swagger, swagger_with};
use support::{Backend, Gateway, Mode, RawClient};

fn paths(backend: &str) -> String {
    format!(
        r#"{{
      "/timeout": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "http://{backend}/t", "timeoutInMillis": 200}}}}}},
      "/items/{{id}}": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "http://127.0.0.1:1/refused"}}}}}},
      "/noint": {{"get": {{}}}},
      "/lambda": {{"post": {{"x-amazon-apigateway-integration": {{"type": "aws_proxy", "httpMethod": "POST", "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/f/invocations"}}}}}},
      "/strict": {{"post": {{"x-amazon-apigateway-integration": {{"type": "mock", "passthroughBehavior": "never", "requestTemplates": {{"application/json": "{{\"statusCode\": 200}}"}}, "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}
    }}"#
    )
}

#[test]
fn built_in_responses_have_aws_shapes() {
    let backend = Backend::start(Mode::NeverAnswer);
    let gw = Gateway::builder()
        .api("g", &swagger(&paths(&backend.addr.to_string())))
        .stage("g", "prod", &[])
        .default_api("g")
        .limit("max_body_bytes", "100")
        .start();
    let cases: Vec<(support::Response, u16, &str, &str)> = vec![
        (
            get(gw.addr, "/prod/nothing"),
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token",
        ),
        (
            get(gw.addr, "/prod/timeout"),
            504,
            "InternalServerErrorException",
            "Endpoint request timed out",
        ),
        (
            get(gw.addr, "/prod/items/1"),
            504,
            "InternalServerErrorException",
            "Network error communicating with endpoint",
        ),
        (
            get(gw.addr, "/prod/noint"),
            500,
            "InternalServerErrorException",
            "Internal server error",
        ),
        (
            send(gw.addr, "POST", "/prod/lambda", "", b"{}"),
            500,
            "InternalServerErrorException",
            "Internal server error",
        ),
        (
            send(
                gw.addr,
                "POST",
                "/prod/strict",
                "Content-Type: text/plain\r\n",
                b"x",
            ),
            415,
            "UnsupportedMediaTypeException",
            "Unsupported Media Type",
        ),
        (
            send(gw.addr, "POST", "/prod/strict", "", &[b'x'; 101]),
            413,
            "RequestTooLongException",
            "Request Too Long",
        ),
    ];
    for (r, status, error_type, message) in cases {
        assert_eq!(r.status, status, "{message}: {}", r.text());
        assert_eq!(r.header("x-amzn-ErrorType"), Some(error_type), "{message}");
        assert_eq!(
            r.header("content-type"),
            Some("application/json"),
            "{message}"
        );
        assert_eq!(r.json(), serde_json::json!({"message": message}));
        let id = r.header("x-amzn-RequestId").unwrap();
        assert_eq!(id.len(), 36, "{id}");
    }
}

#[test]
fn customised_responses_and_fallbacks() {
    let backend = Backend::start(Mode::NeverAnswer);
    let extra = r#""x-amazon-apigateway-gateway-responses": {
        "MISSING_AUTHENTICATION_TOKEN": {
          "statusCode": 404,
          "responseParameters": {
            "gatewayresponse.header.Access-Control-Allow-Origin": "'a.b.c'",
            "gatewayresponse.header.X-Echo-Header": "method.request.header.X-Client",
            "gatewayresponse.header.X-Echo-Query": "method.request.querystring.q",
            "gatewayresponse.header.X-Stage-Var": "stageVariables.team",
            "gatewayresponse.header.X-Stage": "context.stage"
          },
          "responseTemplates": {"application/json": "{\"message\": $context.error.messageString, \"type\": \"$context.error.responseType\", \"stage\": \"$context.stage\", \"resourcePath\": \"$context.resourcePath\", \"requestId\": \"$context.requestId\", \"team\": \"$stageVariables.team\"}"}
        },
        "INTEGRATION_FAILURE": {
          "responseParameters": {"gatewayresponse.header.X-Item": "method.request.path.id"}
        },
        "DEFAULT_5XX": {
          "statusCode": "503",
          "responseTemplates": {"text/plain": "down: $context.error.message ($context.error.responseType)"}
        },
        "DEFAULT_4XX": {
          "responseParameters": {"gatewayresponse.header.X-Family": "'4xx'"}
        },
        "REQUEST_TOO_LARGE": {"statusCode": "400"}
      }"#;
    let gw = Gateway::builder()
        .api("g", &swagger_with(&paths(&backend.addr.to_string()), extra))
        .stage("g", "prod", &[("team", "blue")])
        .default_api("g")
        .limit("max_body_bytes", "100")
        .start();

    let r = get_with(gw.addr, "/prod/missing?q=find-me", "X-Client: c-7\r\n");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some("a.b.c"));
    assert_eq!(r.header("x-echo-header"), Some("c-7"));
    assert_eq!(r.header("x-echo-query"), Some("find-me"));
    assert_eq!(r.header("x-stage-var"), Some("blue"));
    assert_eq!(r.header("x-stage"), Some("prod"));
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("MissingAuthenticationTokenException")
    );
    let v = r.json();
    assert_eq!(v["message"], "Missing Authentication Token");
    assert_eq!(v["type"], "MISSING_AUTHENTICATION_TOKEN");
    assert_eq!(v["stage"], "prod");
    assert_eq!(v["team"], "blue");
    assert_eq!(v["requestId"], r.header("x-amzn-RequestId").unwrap());

    // A type customised without a status keeps its own (504) and gets the
    // path parameter; DEFAULT_5XX does not apply to it.
    let r = get(gw.addr, "/prod/items/77");
    assert_eq!(r.status, 504);
    assert_eq!(r.header("x-item"), Some("77"));
    assert_eq!(
        r.json()["message"],
        "Network error communicating with endpoint"
    );

    // Uncustomised 5xx types fall back to DEFAULT_5XX.
    let r = get(gw.addr, "/prod/timeout");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(
        r.text(),
        "down: Endpoint request timed out (INTEGRATION_TIMEOUT)"
    );
    let r = get(gw.addr, "/prod/noint");
    assert_eq!(r.status, 503);
    assert_eq!(
        r.text(),
        "down: Internal server error (API_CONFIGURATION_ERROR)"
    );

    // Uncustomised 4xx types take DEFAULT_4XX's header and keep their status.
    let r = send(
        gw.addr,
        "POST",
        "/prod/strict",
        "Content-Type: text/plain\r\n",
        b"x",
    );
    assert_eq!(r.status, 415);
    assert_eq!(r.header("x-family"), Some("4xx"));

    // REQUEST_TOO_LARGE cannot be customised.
    let r = send(gw.addr, "POST", "/prod/strict", "", &[b'x'; 101]);
    assert_eq!(r.status, 413);
    assert_eq!(r.header("x-family"), None);
}

#[test]
fn customisation_is_per_api_and_unknown_stages_use_the_built_in() {
    let extra = r#""x-amazon-apigateway-gateway-responses": {"MISSING_AUTHENTICATION_TOKEN": {"statusCode": 404}}"#;
    let gw = Gateway::builder()
        .api("g", &swagger_with("{}", extra))
        .stage("g", "prod", &[])
        .default_api("g")
        .start();
    assert_eq!(get(gw.addr, "/prod/x").status, 404);
    // No such stage: no deployment to take responses from.
    assert_eq!(get(gw.addr, "/nostage/x").status, 403);
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/x HTTP/1.1\r\nHost: zzz.execute-api.test\r\n\r\n");
    assert_eq!(r.status, 403);
}

/// A mapped header that names one the gateway writes itself
/// (Content-Type, x-amzn-ErrorType, x-amzn-RequestId) replaces it; a
/// response customised to 204 carries no body, so the next response on
/// the connection is read intact.
#[test]
fn mapped_headers_replace_the_gateway_s_own_and_204_has_no_body() {
    let backend = Backend::start(Mode::NeverAnswer);
    let extra = r#""x-amazon-apigateway-gateway-responses": {
        "MISSING_AUTHENTICATION_TOKEN": {"statusCode": "204"},
        "UNSUPPORTED_MEDIA_TYPE": {
          "statusCode": "400",
          "responseParameters": {
            "gatewayresponse.header.Content-Type": "'text/html'",
            "gatewayresponse.header.x-amzn-ErrorType": "'Mine'",
            "gatewayresponse.header.x-amzn-RequestId": "method.request.header.X-Trace"
          },
          "responseTemplates": {"text/html": "<p>$context.error.message</p>"}
        }
      }"#;
    let gw = Gateway::builder()
        .api("g", &swagger_with(&paths(&backend.addr.to_string()), extra))
        .stage("g", "prod", &[])
        .default_api("g")
        .start();
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod/nothing HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-length"), None);
    let r = c.request(
        b"POST /prod/strict HTTP/1.1\r\nHost: h\r\nX-Trace: t-1\r\nContent-Type: text/csv\r\nContent-Length: 1\r\n\r\na",
    );
    assert_eq!(r.status, 400);
    for (name, want) in [
        ("content-type", "text/html"),
        ("x-amzn-ErrorType", "Mine"),
        ("x-amzn-RequestId", "t-1"),
    ] {
        assert_eq!(r.header_count(name), 1, "{name}: {:?}", r.headers);
        assert_eq!(r.header(name), Some(want));
    }
    assert_eq!(r.text(), "<p>Unsupported Media Type</p>");
    // Without the header the mapping reads, the gateway's own id stays.
    let r = c.request(
        b"POST /prod/strict HTTP/1.1\r\nHost: h\r\nContent-Type: text/csv\r\nContent-Length: 1\r\n\r\na",
    );
    assert_eq!(r.header_count("x-amzn-RequestId"), 1);
    assert_eq!(r.header("x-amzn-RequestId").map(str::len), Some(36));
}
