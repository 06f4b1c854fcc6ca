//! Each integration type end to end: HTTP_PROXY, HTTP (parameter mapping,
//! selection patterns, response parameters) and MOCK, with stage variables
//! and upstream_hosts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::client::{get, get_with, send};
use support::gateway::{mock_method, proxy_method, swagger};
use support::{Backend, Gateway, Mode, RawClient};

/// One API (the default API) on stage `prod`; with `backend`, the host
/// `backend.example` in its integration URIs goes to that backend.
fn prod_gateway(paths: &str, backend: Option<&Backend>) -> Gateway {
    let mut b = Gateway::builder()
        .api("a", &swagger(paths))
        .stage("a", "prod", &[])
        .default_api("a");
    if let Some(backend) = backend {
        b = b.upstream_host("backend.example", &backend.addr.to_string());
    }
    b.start()
}

#[test]
fn http_proxy_passes_method_path_query_headers_and_body() {
    let backend = Backend::start(Mode::Echo);
    let uri = "http://${stageVariables.backend}/base/{proxy}";
    let paths = format!(
        r#"{{"/api/{{proxy+}}": {{"x-amazon-apigateway-any-method": {}}}}}"#,
        proxy_method(
            uri,
            r#", "requestParameters": {"integration.request.path.proxy": "method.request.path.proxy"}"#
        )
    );
    let gw = Gateway::builder()
        .api("p", &swagger(&paths))
        .stage("p", "prod", &[("backend", &backend.addr.to_string())])
        .default_api("p")
        .start();
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(
        b"PATCH /prod/api/a/b%20c/d?x=1&y=two HTTP/1.1\r\nHost: client.example\r\nX-Custom: v1\r\nX-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Hop\r\nX-Hop: drop-me\r\nKeep-Alive: timeout=5\r\nX-Amzn-RequestId: spoofed\r\nContent-Length: 7\r\n\r\npayload",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-backend"),
        Some("echo"),
        "backend headers come back"
    );
    let rec = backend.last();
    assert_eq!(rec.method, "PATCH");
    assert_eq!(rec.target, "/base/a/b%20c/d?x=1&y=two");
    assert_eq!(String::from_utf8_lossy(&rec.body), "payload");
    assert_eq!(rec.header("x-custom"), Some("v1"));
    assert_eq!(rec.header("host"), Some(backend.addr.to_string().as_str()));
    assert_eq!(rec.header("x-forwarded-for"), Some("10.0.0.1, 127.0.0.1"));
    assert_eq!(rec.header("x-forwarded-proto"), Some("http"));
    // The gateway's request id, once; a client's is not passed on.
    assert_eq!(rec.header_count("x-amzn-requestid"), 1);
    assert_eq!(
        rec.header("x-amzn-requestid"),
        r.header("x-amzn-RequestId"),
        "the backend sees the id the client is answered with"
    );
    assert_eq!(
        rec.header("x-forwarded-port"),
        Some(gw.addr.port().to_string().as_str())
    );
    assert_eq!(
        rec.header("x-hop"),
        None,
        "headers named in Connection are hop-by-hop"
    );
    assert_eq!(rec.header("keep-alive"), None);
    assert_eq!(rec.header("connection"), None);
    assert_eq!(rec.header_count("host"), 1);
    assert!(rec.header("x-amzn-requestid").is_some());

    // Repeated X-Forwarded-For lines are one list (RFC 9110 §5.3): every
    // hop is kept, in order, and the gateway's added (the last line alone
    // was kept). An empty line adds nothing.
    let r = RawClient::connect(gw.addr).request(
        b"GET /prod/api/x HTTP/1.1\r\nHost: c\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-For:\r\nX-Forwarded-For: 10.1.1.1, 10.2.2.2\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let rec = backend.last();
    assert_eq!(rec.header_count("x-forwarded-for"), 1);
    assert_eq!(
        rec.header("x-forwarded-for"),
        Some("203.0.113.7, 10.1.1.1, 10.2.2.2, 127.0.0.1")
    );
}

/// `http://${stageVariables.url}` with a path and query in the value (the
/// AWS guide's "full URI without protocol"): the backend gets that URL,
/// with the client's query after the value's; nothing is appended.
#[test]
fn a_stage_variable_holding_the_whole_url() {
    let backend = Backend::start(Mode::Echo);
    let paths = format!(
        r#"{{"/full": {{"get": {}}}}}"#,
        proxy_method("http://${stageVariables.url}", "")
    );
    let b = backend.addr.to_string();
    let gw = Gateway::builder()
        .api("p", &swagger(&paths))
        .stage("p", "one", &[("url", &format!("{b}/api/orders"))])
        .stage("p", "two", &[("url", &format!("{b}/api/orders?v=2"))])
        .default_api("p")
        .start();
    assert_eq!(get(gw.addr, "/one/full").status, 200);
    assert_eq!(backend.last().target, "/api/orders");
    assert_eq!(get(gw.addr, "/two/full?x=1").status, 200);
    assert_eq!(backend.last().target, "/api/orders?v=2&x=1");
}

#[test]
fn http_proxy_with_fixed_method_and_backend_status_passthrough() {
    let backend = Backend::start(Mode::Fixed {
        status: 418,
        headers: vec![
            ("X-Teapot".into(), "yes".into()),
            ("Set-Cookie".into(), "a=1".into()),
            ("Set-Cookie".into(), "b=2".into()),
            // Hop-by-hop headers and the backend's Date stay behind.
            ("Keep-Alive".into(), "timeout=99".into()),
            ("Proxy-Authenticate".into(), "Basic".into()),
            ("Date".into(), "Mon, 01 Jan 2001 00:00:00 GMT".into()),
        ],
        body: b"short and stout".to_vec(),
    });
    let uri = format!("http://{}/tea", backend.addr);
    let paths = format!(
        r#"{{"/brew": {{"get": {{"x-amazon-apigateway-integration": {{"type": "HTTP_PROXY", "httpMethod": "POST", "uri": "{uri}"}}}}, "head": {{"x-amazon-apigateway-integration": {{"type": "HTTP_PROXY", "httpMethod": "HEAD", "uri": "{uri}"}}}}}}}}"#
    );
    let gw = Gateway::builder()
        .api("t", &swagger(&paths))
        .stage("t", "s", &[])
        .default_api("t")
        .start();
    let r = get(gw.addr, "/s/brew");
    assert_eq!(r.status, 418);
    assert_eq!(r.text(), "short and stout");
    assert_eq!(r.header("x-teapot"), Some("yes"));
    assert_eq!(r.header_count("set-cookie"), 2, "repeated headers survive");
    assert_eq!(r.header("keep-alive"), None);
    assert_eq!(r.header("proxy-authenticate"), None);
    assert_eq!(r.header_count("date"), 1);
    assert_ne!(r.header("date"), Some("Mon, 01 Jan 2001 00:00:00 GMT"));
    assert_eq!(r.header_count("content-length"), 1);
    assert_eq!(r.header("content-length"), Some("15"));
    let rec = backend.last();
    assert_eq!(
        rec.method, "POST",
        "httpMethod overrides the client's method"
    );
    assert_eq!(rec.header("content-length"), Some("0"));
    // HEAD: the backend's headers, with its Content-Length (of the GET
    // body), and no body.
    let mut c = RawClient::connect(gw.addr);
    c.send(b"HEAD /s/brew HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.read_response(true);
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-teapot"), Some("yes"));
    assert_eq!(r.header("content-length"), Some("15"));
    assert_eq!(r.header_count("content-length"), 1);
    assert_eq!(r.header("keep-alive"), None);
    assert!(r.body.is_empty());
    assert_eq!(backend.last().method, "HEAD");
    // The connection is still in step: a GET on it gets its whole body.
    c.send(b"GET /s/brew HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.read_response(false).text(), "short and stout");
}

fn petstore_like(backend: &Backend) -> Gateway {
    // The shape of the AWS PetStore sample: HTTP integrations with mapped
    // parameters and response parameters, redirected by upstream_hosts.
    let paths = r#"{
      "/pets": {"get": {
        "parameters": [{"name": "type", "in": "query"}, {"name": "page", "in": "query"}, {"name": "X-Trace", "in": "header"}],
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "GET",
          "uri": "http://petstore.execute-api.eu-west-1.amazonaws.com/petstore/pets?fixed=1",
          "requestParameters": {
            "integration.request.querystring.type": "method.request.querystring.type",
            "integration.request.querystring.page": "method.request.querystring.page",
            "integration.request.header.X-Trace-Id": "method.request.header.X-Trace",
            "integration.request.header.X-Stage": "context.stage",
            "integration.request.header.X-Color": "stageVariables.color",
            "integration.request.header.X-Static": "'fixed value'"
          },
          "responses": {
            "4\\d{2}": {"statusCode": "400", "responseParameters": {"method.response.header.X-Error": "'client'"}},
            "5\\d{2}": {"statusCode": "502"},
            "default": {"statusCode": "200", "responseParameters": {
              "method.response.header.Access-Control-Allow-Origin": "'*'",
              "method.response.header.X-Backend-Said": "integration.response.header.X-Backend",
              "method.response.header.X-Body-Field": "integration.response.body.method"
            }}
          }
        }}},
      "/pets/{petId}": {"get": {
        "parameters": [{"name": "petId", "in": "path", "required": true}],
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "GET",
          "uri": "http://petstore.execute-api.eu-west-1.amazonaws.com/petstore/pets/{id}",
          "requestParameters": {"integration.request.path.id": "method.request.path.petId"},
          "responses": {"default": {"statusCode": "200"}}
        }}},
      "/strict": {"post": {
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "POST", "passthroughBehavior": "never",
          "uri": "http://petstore.execute-api.eu-west-1.amazonaws.com/strict",
          "requestTemplates": {"application/json": "{}"},
          "responses": {"default": {"statusCode": "200"}}
        }}},
      "/nodefault": {"get": {
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "GET",
          "uri": "http://petstore.execute-api.eu-west-1.amazonaws.com/x",
          "responses": {"2\\d{2}": {"statusCode": "200"}}
        }}}
    }"#;
    Gateway::builder()
        .api("pets", &swagger(paths))
        .stage("pets", "prod", &[("color", "blue")])
        .default_api("pets")
        .upstream_host(
            "petstore.execute-api.eu-west-1.amazonaws.com",
            &backend.addr.to_string(),
        )
        .start()
}

#[test]
fn http_maps_request_parameters_and_only_those() {
    let backend = Backend::start(Mode::Echo);
    let gw = petstore_like(&backend);
    let r = get_with(
        gw.addr,
        "/prod/pets?type=dog&page=2&unmapped=zzz",
        "X-Trace: t-1\r\nX-Other: o\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = backend.last();
    assert_eq!(rec.target, "/petstore/pets?fixed=1&type=dog&page=2");
    assert_eq!(
        rec.header("host"),
        Some("petstore.execute-api.eu-west-1.amazonaws.com")
    );
    assert_eq!(rec.header("x-trace-id"), Some("t-1"));
    assert_eq!(rec.header("x-stage"), Some("prod"));
    assert_eq!(rec.header("x-color"), Some("blue"));
    assert_eq!(rec.header("x-static"), Some("fixed value"));
    assert_eq!(
        rec.header("x-other"),
        None,
        "a non-proxy integration sends only mapped headers"
    );
    assert_eq!(rec.header("user-agent"), Some("AmazonAPIGateway_pets"));
    // Response parameters from literals, backend headers and the body.
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("x-backend-said"), Some("echo"));
    assert_eq!(r.header("x-body-field"), Some("GET"));
    assert_eq!(
        r.header("x-backend"),
        None,
        "unmapped backend headers are not returned"
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    // A missing source leaves the target out.
    get(gw.addr, "/prod/pets");
    assert_eq!(backend.last().target, "/petstore/pets?fixed=1");
    // Path parameters are renamed and encoded.
    get(gw.addr, "/prod/pets/7");
    assert_eq!(backend.last().target, "/petstore/pets/7");
}

#[test]
fn http_selection_patterns_pick_the_status() {
    let backend = Backend::start(Mode::Fixed {
        status: 404,
        headers: vec![],
        body: b"{\"e\":1}".to_vec(),
    });
    let gw = petstore_like(&backend);
    let r = get(gw.addr, "/prod/pets");
    assert_eq!(r.status, 400);
    assert_eq!(r.header("x-error"), Some("client"));
    assert_eq!(r.text(), "{\"e\":1}", "body passes through");
    backend.set_mode(Mode::Fixed {
        status: 503,
        headers: vec![],
        body: vec![],
    });
    assert_eq!(get(gw.addr, "/prod/pets").status, 502);
    backend.set_mode(Mode::Fixed {
        status: 302,
        headers: vec![],
        body: vec![],
    });
    assert_eq!(
        get(gw.addr, "/prod/pets").status,
        200,
        "unmatched statuses take the default response"
    );
    // No default response and no match: 500, as API Gateway.
    let r = get(gw.addr, "/prod/nodefault");
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["message"], "Internal server error");
    assert_eq!(
        r.header("x-amzn-ErrorType"),
        Some("InternalServerErrorException")
    );
}

#[test]
fn passthrough_never_gives_415_for_unmapped_content_types() {
    let backend = Backend::start(Mode::Echo);
    let gw = petstore_like(&backend);
    let r = send(
        gw.addr,
        "POST",
        "/prod/strict",
        "Content-Type: text/xml\r\n",
        b"<a/>",
    );
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["message"], "Unsupported Media Type");
    assert_eq!(backend.request_count(), 0);
    let r = send(
        gw.addr,
        "POST",
        "/prod/strict",
        "Content-Type: application/json; charset=utf-8\r\n",
        b"{}",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn soap_xml_passes_through_untouched() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}/soap", backend.addr);
    let paths = format!(
        r#"{{"/soap": {{"post": {{"parameters": [{{"name": "SOAPAction", "in": "header"}}], "x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "POST", "uri": "{uri}", "passthroughBehavior": "when_no_match", "requestParameters": {{"integration.request.header.SOAPAction": "method.request.header.SOAPAction"}}, "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}}}"#
    );
    let gw = prod_gateway(&paths, None);
    let envelope = "<?xml version=\"1.0\"?>\r\n<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Body><m:Get xmlns:m=\"urn:x\">\u{e9}</m:Get></soap:Body></soap:Envelope>";
    let r = send(
        gw.addr,
        "POST",
        "/prod/soap",
        "Content-Type: text/xml; charset=utf-8\r\nSOAPAction: \"urn:Get\"\r\n",
        envelope.as_bytes(),
    );
    assert_eq!(r.status, 200);
    let rec = backend.last();
    assert_eq!(rec.body, envelope.as_bytes());
    assert_eq!(rec.header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(rec.header("soapaction"), Some("\"urn:Get\""));
}

#[test]
fn mock_status_headers_and_templates() {
    let paths = r#"{
      "/m": {"get": {"x-amazon-apigateway-integration": {
        "type": "MOCK",
        "requestTemplates": {"application/json": "{\"statusCode\": 201}"},
        "responses": {
          "2\\d{2}": {"statusCode": "201",
            "responseParameters": {"method.response.header.X-Mock": "'yes'", "method.response.header.X-Stage": "context.stage", "method.response.header.X-Var": "stageVariables.v"},
            "responseTemplates": {"application/json": "{\"id\": \"$context.requestId\", \"stage\": \"$context.stage\", \"v\": \"$stageVariables.v\"}", "text/plain": "plain $context.stage"}},
          "default": {"statusCode": "500"}
        }}}},
      "/err": {"get": {"x-amazon-apigateway-integration": {
        "type": "mock", "requestTemplates": {"application/json": "{\"statusCode\": 404}", "text/plain": "{\"statusCode\": 200}"},
        "responses": {"404": {"statusCode": "404", "responseTemplates": {"application/json": "{\"message\": \"nope\"}"}}, "default": {"statusCode": "200"}}}}},
      "/nostatus": {"get": {"x-amazon-apigateway-integration": {
        "type": "mock", "requestTemplates": {"application/json": "{}", "text/plain": "{\"statusCode\": 700}", "text/xml": "not json"},
        "responses": {"default": {"statusCode": "200"}}}}},
      "/fromclient": {"post": {"x-amazon-apigateway-integration": {
        "type": "mock", "responses": {"default": {"statusCode": "200"}, "4\\d{2}": {"statusCode": "409"}}}}}
    }"#;
    let gw = Gateway::builder()
        .api("m", &swagger(paths))
        .stage("m", "beta", &[("v", "x1")])
        .default_api("m")
        .start();
    let r = get(gw.addr, "/beta/m");
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-mock"), Some("yes"));
    assert_eq!(r.header("x-stage"), Some("beta"));
    assert_eq!(r.header("x-var"), Some("x1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["id"], r.header("x-amzn-RequestId").unwrap());
    assert_eq!(v["stage"], "beta");
    assert_eq!(v["v"], "x1");
    // Accept picks the template.
    let r = get_with(gw.addr, "/beta/m", "Accept: text/plain\r\n");
    assert_eq!(r.text(), "plain beta");
    assert_eq!(r.header("content-type"), Some("text/plain"));
    // Another status selects another response.
    let r = get(gw.addr, "/beta/err");
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["message"], "nope");
    // The request's content type picks the template, so the status.
    let r = get_with(gw.addr, "/beta/err", "Content-Type: text/plain\r\n");
    assert_eq!(r.status, 200);
    // No statusCode, one out of range, or no JSON: 500 API_CONFIGURATION_ERROR.
    for ct in ["application/json", "text/plain", "text/xml"] {
        let r = get_with(
            gw.addr,
            "/beta/nostatus",
            &format!("Content-Type: {ct}\r\n"),
        );
        assert_eq!(r.status, 500, "{ct}");
        assert_eq!(r.json()["message"], "Internal server error");
    }
    // Without a template the client's body is the request (passthrough).
    let r = send(
        gw.addr,
        "POST",
        "/beta/fromclient",
        "Content-Type: application/json\r\n",
        b"{\"statusCode\": 418}",
    );
    assert_eq!(r.status, 409);
}

#[test]
fn the_aws_petstore_sample_serves_against_a_local_backend() {
    let backend = Backend::start(Mode::Echo);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/aws-petstore-sample.json"
    ))
    .unwrap();
    let gw = Gateway::builder()
        .api("petstore", &doc)
        .stage("petstore", "prod", &[])
        .default_api("petstore")
        .upstream_host(
            "petstore.execute-api.eu-west-1.amazonaws.com",
            &backend.addr.to_string(),
        )
        .start();
    let r = get(gw.addr, "/prod/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html"));
    assert!(r.text().contains("href=\"/prod/pets/\""), "{}", r.text());
    let r = get(gw.addr, "/prod/pets?type=cat&page=3");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(backend.last().target, "/petstore/pets?page=3&type=cat");
    get(gw.addr, "/prod/pets/5");
    assert_eq!(backend.last().target, "/petstore/pets/5");
    let r = send(gw.addr, "OPTIONS", "/prod/pets", "", b"");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("POST,GET,OPTIONS")
    );
    let r = send(
        gw.addr,
        "POST",
        "/prod/pets",
        "Content-Type: application/json\r\n",
        b"{\"type\":\"dog\"}",
    );
    assert_eq!(r.status, 200);
    assert_eq!(backend.last().body, b"{\"type\":\"dog\"}");
}

#[test]
fn shipped_config_serves_the_petstore_with_its_demo_backend() {
    // The README's command, on a copy of config/ with ephemeral ports.
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    std::fs::create_dir_all(dir.path().join("apis")).unwrap();
    for entry in std::fs::read_dir(format!("{root}/config/apis")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(
            entry.path(),
            dir.path().join("apis").join(entry.file_name()),
        )
        .unwrap();
    }
    let demo_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = std::fs::read_to_string(format!("{root}/config/tollgate.toml"))
        .unwrap()
        .replace("127.0.0.1:8080", "127.0.0.1:0")
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{demo_port}"));
    let path = dir.path().join("tollgate.toml");
    std::fs::write(&path, cfg).unwrap();
    let gw = support::gateway::start_with_config(dir, &path, &[]);
    let r = get(gw.addr, "/prod/pets");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()[0]["type"], "dog");
    let r = get(gw.addr, "/prod/pets?type=fish");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(get(gw.addr, "/prod/pets/2").json()["type"], "cat");
    assert_eq!(get(gw.addr, "/prod/").status, 200);
}

/// `integration.response.multivalueheader.X` gives every value of a
/// repeated backend header, joined with commas (`header.X` the last one);
/// and a request without `Accept` gets the `application/json` response
/// template even when another is listed first, as in API Gateway.
#[test]
fn multivalue_response_headers_and_the_default_accept() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![
            ("X-Multi".to_owned(), "a".to_owned()),
            ("X-Multi".to_owned(), "b".to_owned()),
        ],
        body: br#"{"v": 1}"#.to_vec(),
    });
    let paths = r#"{
      "/m": {"get": {
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "GET", "uri": "http://backend.example/m",
          "responses": {"default": {"statusCode": "200",
            "responseParameters": {
              "method.response.header.X-All": "integration.response.multivalueheader.X-Multi",
              "method.response.header.X-Last": "integration.response.header.X-Multi",
              "method.response.header.X-None": "integration.response.multivalueheader.X-Absent"
            },
            "responseTemplates": {
              "application/xml": "<v>$input.path('$.v')</v>",
              "application/json": "{\"json\": $input.path('$.v')}"
            }}}
        }}}
    }"#;
    let gw = prod_gateway(paths, Some(&backend));
    let r = get(gw.addr, "/prod/m");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-all"), Some("a,b"));
    assert_eq!(r.header("x-last"), Some("b"));
    assert_eq!(r.header("x-none"), None);
    assert_eq!(r.text(), r#"{"json": 1}"#, "no Accept: application/json");
    let r = get_with(gw.addr, "/prod/m", "Accept: application/xml\r\n");
    assert_eq!(r.text(), "<v>1</v>");
    let r = get_with(gw.addr, "/prod/m", "Accept: image/png\r\n");
    assert_eq!(r.text(), "<v>1</v>", "no template for it: the first one");
}

/// HTTP_PROXY answers as API Gateway does: the backend's `Date` and
/// `Server` come back as `x-amzn-Remapped-Date` / `x-amzn-Remapped-Server`
/// (the gateway's own `Date` is the only `Date`), and a backend response
/// without a `Content-Type` gets `application/json`; one with a type keeps
/// it, and a 204 gets none.
#[test]
fn http_proxy_remaps_date_and_server_and_always_has_a_content_type() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![
            ("Server".to_owned(), "test-backend/1.0".to_owned()),
            (
                "Date".to_owned(),
                "Mon, 01 Jan 2024 00:00:00 GMT".to_owned(),
            ),
        ],
        body: b"untyped".to_vec(),
    });
    let paths = format!(
        r#"{{"/p": {{"x-amazon-apigateway-any-method": {}}}}}"#,
        proxy_method(&format!("http://{}/p", backend.addr), "")
    );
    let gw = prod_gateway(&paths, None);
    let r = get(gw.addr, "/prod/p");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "untyped");
    assert_eq!(r.header("x-amzn-remapped-server"), Some("test-backend/1.0"));
    assert_eq!(
        r.header("x-amzn-remapped-date"),
        Some("Mon, 01 Jan 2024 00:00:00 GMT")
    );
    assert_eq!(r.header("server"), None);
    assert_eq!(r.header_count("date"), 1);
    assert_ne!(r.header("date"), Some("Mon, 01 Jan 2024 00:00:00 GMT"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header_count("content-type"), 1);

    backend.set_mode(Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".to_owned(), "text/csv".to_owned())],
        body: b"a,b".to_vec(),
    });
    let r = get(gw.addr, "/prod/p");
    assert_eq!(r.header("content-type"), Some("text/csv"));
    assert_eq!(r.header_count("content-type"), 1);

    backend.set_mode(Mode::Fixed {
        status: 204,
        headers: vec![],
        body: Vec::new(),
    });
    let r = get(gw.addr, "/prod/p");
    assert_eq!(r.status, 204);
    assert_eq!(r.header("content-type"), None);
}

/// A `method.request.multivaluequerystring.X` source mapped to a query
/// string parameter reaches the backend as the key repeated once per value
/// (`all=1&all=2`), as API Gateway sends it; mapped to a header, the values
/// are joined with commas.
#[test]
fn multivalue_query_strings_map_to_repeated_keys() {
    let backend = Backend::start(Mode::Echo);
    let paths = r#"{
      "/q": {"get": {
        "parameters": [{"name": "a", "in": "query"}],
        "x-amazon-apigateway-integration": {
          "type": "http", "httpMethod": "GET", "uri": "http://backend.example/q",
          "requestParameters": {
            "integration.request.querystring.all": "method.request.multivaluequerystring.a",
            "integration.request.header.X-All": "method.request.multivaluequerystring.a"
          },
          "responses": {"default": {"statusCode": "200"}}
        }}}
    }"#;
    let gw = prod_gateway(paths, Some(&backend));
    let r = get(gw.addr, "/prod/q?a=1&a=2%203&a=x");
    assert_eq!(r.status, 200, "{}", r.text());
    let rec = backend.last();
    assert_eq!(rec.target, "/q?all=1&all=2%203&all=x");
    assert_eq!(rec.header("x-all"), Some("1,2 3,x"));
    get(gw.addr, "/prod/q");
    assert_eq!(backend.last().target, "/q", "no value: left out");
}

/// HTTP_PROXY passes the client's query string through, but a name the
/// integration maps is sent once, with the mapped value (it went twice:
/// the client's and the mapped one).
#[test]
fn http_proxy_mapped_query_names_are_not_sent_twice() {
    let backend = Backend::start(Mode::Echo);
    let paths = format!(
        r#"{{"/p": {{"get": {}}}}}"#,
        proxy_method(
            &format!("http://{}/p", backend.addr),
            r#", "requestParameters": {
                "integration.request.querystring.type": "method.request.querystring.type",
                "integration.request.querystring.k": "'fixed'",
                "integration.request.querystring.copy": "method.request.querystring.type"
            }"#
        )
    );
    let gw = prod_gateway(&paths, None);
    let r = get(gw.addr, "/prod/p?type=a&x=1&k=client&x=2");
    assert_eq!(r.status, 200, "{}", r.text());
    let target = backend.last().target;
    let (path, query) = target.split_once('?').unwrap();
    assert_eq!(path, "/p");
    let mut pairs: Vec<&str> = query.split('&').collect();
    pairs.sort();
    assert_eq!(
        pairs,
        vec!["copy=a", "k=fixed", "type=a", "x=1", "x=2"],
        "{target}"
    );
    // Unmapped names go through as they came (the literal is added).
    let r = get(gw.addr, "/prod/p?x=1&y=%20");
    assert_eq!(r.status, 200);
    assert_eq!(backend.last().target, "/p?x=1&y=%20&k=fixed");
    // `;` separates pairs as `&` does: the client's `k` after one is
    // replaced too, and the pairs kept are joined with `&`.
    let r = get(gw.addr, "/prod/p?x=1;k=client;type=b");
    assert_eq!(r.status, 200);
    assert_eq!(backend.last().target, "/p?x=1&type=b&k=fixed&copy=b");
}

/// A mapped `Host` (from `requestParameters` or a template override)
/// replaces the integration's: the backend gets one Host. Mappings onto
/// connection headers are not sent (the gateway owns the connection), and
/// mappings onto `Content-Length` / `Transfer-Encoding` do not load.
#[test]
fn mapped_host_replaces_and_connection_headers_stay_with_the_gateway() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r##"{{"/host": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "GET", "uri": "{uri}/host",
              "requestParameters": {{"integration.request.header.Host": "method.request.header.X-Host",
                                     "integration.request.header.Connection": "method.request.header.X-Conn",
                                     "integration.request.header.Upgrade": "'websocket'",
                                     "integration.request.header.Expect": "'100-continue'"}}}}}}}},
            "/tmpl": {{"post": {{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "POST", "uri": "{uri}/tmpl",
              "requestTemplates": {{"application/json": "#set($context.requestOverride.header.Host = 'virtual.example')#set($context.requestOverride.header.Connection = 'close'){{}}"}},
              "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}}}"##
    );
    let gw = prod_gateway(&paths, Some(&backend));
    let r = get_with(
        gw.addr,
        "/prod/host",
        "X-Host: internal.example\r\nX-Conn: close\r\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = backend.last();
    assert_eq!(seen.header_count("host"), 1, "{seen:?}");
    assert_eq!(seen.header("host"), Some("internal.example"));
    for h in ["upgrade", "expect"] {
        assert_eq!(seen.header(h), None, "{h} reached the backend: {seen:?}");
    }
    assert_ne!(seen.header("connection"), Some("close"), "{seen:?}");
    // Without the client header the integration's Host stands.
    get(gw.addr, "/prod/host");
    assert_eq!(
        backend.last().header("host"),
        Some(backend.addr.to_string().as_str())
    );
    let r = send(
        gw.addr,
        "POST",
        "/prod/tmpl",
        "Content-Type: application/json\r\n",
        b"{}",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seen = backend.last();
    assert_eq!(seen.header_count("host"), 1, "{seen:?}");
    assert_eq!(seen.header("host"), Some("virtual.example"));

    // Framing headers cannot be mapped: an error naming the path.
    let bad = format!(
        r#"{{"/te": {{"post": {{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "POST", "uri": "{uri}/te",
              "requestParameters": {{"integration.request.header.Transfer-Encoding": "method.request.header.X-Te",
                                     "integration.request.header.content-length": "'0'"}}}}}}}}}}"#
    );
    let cfg = Gateway::builder()
        .api("t", &swagger(&bad))
        .stage("t", "prod", &[]);
    let (_dir, path) = cfg.write();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["check", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    for h in ["Transfer-Encoding", "content-length"] {
        assert!(
            all.contains(&format!(
                "requestParameters.integration.request.header.{h}: {h} cannot be mapped"
            )),
            "{h}: {all}"
        );
    }
}

/// API Gateway's ids on every answer, and X-Ray's trace header on the way
/// to the backend: `x-amz-apigw-id` (16 characters of base64, the value of
/// `$context.extendedRequestId`) on MOCK, proxied and gateway answers;
/// `X-Amzn-Trace-Id: Root=1-{epoch}-{96 bits}` added to HTTP and
/// HTTP_PROXY integration requests (a client's valid one kept as it came,
/// an invalid one or an `_` spelling replaced), and echoed on MOCK and
/// HTTP answers but not on HTTP_PROXY or gateway answers.
#[test]
fn api_gateway_ids_and_the_trace_header() {
    let backend = Backend::start(Mode::Echo);
    let uri = format!("http://{}", backend.addr);
    let paths = format!(
        r#"{{"/mock": {{"get": {mock}}}, "/proxy": {{"get": {proxy}}},
            "/http": {{"get": {{"x-amazon-apigateway-integration": {{"type": "http", "httpMethod": "GET", "uri": "{uri}/http",
                "responses": {{"default": {{"statusCode": "200"}}}}}}}}}}}}"#,
        mock = mock_method(200, r#"{"ext": "$context.extendedRequestId"}"#),
        proxy = proxy_method(&format!("{uri}/proxy"), ""),
    );
    let gw = prod_gateway(&paths, None);
    let is_root = |v: &str| {
        let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
        let parts: Vec<&str> = v.strip_prefix("Root=1-").unwrap_or("").split('-').collect();
        parts.len() == 2 && hex(parts[0], 8) && hex(parts[1], 24)
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let mut seen = std::collections::HashSet::new();
    for path in ["/prod/mock", "/prod/proxy", "/prod/http", "/prod/nope"] {
        let r = get(gw.addr, path);
        let id = r
            .header("x-amz-apigw-id")
            .unwrap_or_else(|| panic!("{path}"));
        assert_eq!(id.len(), 16, "{path}: {id}");
        assert!(id.ends_with('='), "{path}: {id}");
        assert!(seen.insert(id.to_owned()), "{path}: {id} repeated");
        match path {
            "/prod/mock" => {
                assert_eq!(r.json()["ext"], id);
                let trace = r.header("x-amzn-trace-id").unwrap();
                assert!(is_root(trace), "{trace}");
                let epoch = u64::from_str_radix(&trace[7..15], 16).unwrap();
                assert!(epoch.abs_diff(now) < 60, "{trace} vs {now}");
            }
            "/prod/proxy" => {
                assert_eq!(r.header("x-amzn-trace-id"), None);
                let sent = backend.last();
                assert_eq!(sent.header_count("x-amzn-trace-id"), 1);
                assert!(is_root(sent.header("x-amzn-trace-id").unwrap()));
            }
            "/prod/http" => {
                let sent = backend.last();
                let trace = sent.header("x-amzn-trace-id").unwrap();
                assert!(is_root(trace), "{trace}");
                assert_eq!(r.header("x-amzn-trace-id"), Some(trace));
            }
            _ => {
                assert_eq!(r.status, 403);
                assert_eq!(r.header("x-amzn-trace-id"), None);
            }
        }
    }

    // A client's trace header is kept as it came, once; one that is not
    // a trace header, or spelled with `_`, is not passed on.
    let theirs = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    let r = get_with(
        gw.addr,
        "/prod/proxy",
        &format!("X-Amzn-Trace-Id: {theirs}\r\n"),
    );
    assert_eq!(r.status, 200);
    let sent = backend.last();
    assert_eq!(sent.header_count("x-amzn-trace-id"), 1);
    assert_eq!(sent.header("x-amzn-trace-id"), Some(theirs));
    let r = get_with(
        gw.addr,
        "/prod/http",
        &format!("X-Amzn-Trace-Id: {theirs}\r\n"),
    );
    assert_eq!(backend.last().header("x-amzn-trace-id"), Some(theirs));
    assert_eq!(r.header("x-amzn-trace-id"), Some(theirs));
    let r = get_with(
        gw.addr,
        "/prod/proxy",
        "X-Amzn-Trace-Id: not-a-trace\r\nX_Amzn_Trace_Id: Root=1-00000000-000000000000000000000000\r\n",
    );
    assert_eq!(r.status, 200);
    let sent = backend.last();
    assert_eq!(sent.header_count("x-amzn-trace-id"), 1);
    assert_eq!(sent.header_count("x_amzn_trace_id"), 0);
    let trace = sent.header("x-amzn-trace-id").unwrap();
    assert!(
        is_root(trace) && !trace.contains("00000000-0000"),
        "{trace}"
    );

    // The gateway's ids are the only ones under their names: a mapping
    // that sets them adds no second line, a backend's are remapped.
    let ids_backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![
            ("x-amz-apigw-id".into(), "backend-id".into()),
            ("x-amzn-RequestId".into(), "backend-rid".into()),
        ],
        body: b"{}".to_vec(),
    });
    let paths = format!(
        r#"{{"/mapped": {{"get": {{"x-amazon-apigateway-integration": {{"type": "mock",
              "requestTemplates": {{"application/json": "{{\"statusCode\": 200}}"}},
              "responses": {{"default": {{"statusCode": "200", "responseParameters": {{
                  "method.response.header.x-amz-apigw-id": "'mapped-id'",
                  "method.response.header.x-amzn-RequestId": "'mapped-rid'"}}}}}}}}}}}},
            "/proxied": {{"get": {proxy}}}}}"#,
        proxy = proxy_method(&format!("http://{}/", ids_backend.addr), ""),
    );
    let gw = prod_gateway(&paths, None);
    for path in ["/prod/mapped", "/prod/proxied"] {
        let r = get(gw.addr, path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header_count("x-amz-apigw-id"), 1, "{path}");
        assert_eq!(r.header_count("x-amzn-requestid"), 1, "{path}");
        let id = r.header("x-amz-apigw-id").unwrap();
        assert!(id.len() == 16 && id.ends_with('='), "{path}: {id}");
        assert_ne!(r.header("x-amzn-requestid"), Some("mapped-rid"));
    }
    let r = get(gw.addr, "/prod/proxied");
    assert_eq!(
        r.header("x-amzn-Remapped-x-amz-apigw-id"),
        Some("backend-id")
    );
    assert_eq!(
        r.header("x-amzn-Remapped-x-amzn-RequestId"),
        Some("backend-rid")
    );
}

/// On a dual-stack listener (`[::]`) an IPv4 client is its IPv4 address
/// in `$context.identity.sourceIp` and `X-Forwarded-For`, as on an IPv4
/// listener (it was `::ffff:127.0.0.1`). Skipped where the test itself
/// cannot listen on IPv6.
#[test]
fn ipv4_clients_of_a_dual_stack_listener_are_ipv4() {
    if std::net::TcpListener::bind("[::]:0").is_err() {
        eprintln!("no IPv6 here: skipped");
        return;
    }
    let backend = Backend::start(Mode::Echo);
    let paths = format!(
        r#"{{"/ip": {{"get": {}}}, "/proxy": {{"get": {}}}}}"#,
        mock_method(200, r#"{"ip": "$context.identity.sourceIp"}"#),
        proxy_method(&format!("http://{}/p", backend.addr), "")
    );
    let (dir, config) = Gateway::builder()
        .api("a", &swagger(&paths))
        .stage("a", "prod", &[])
        .default_api("a")
        .write();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("listen = \"127.0.0.1:0\"", "listen = \"[::]:0\"", 1);
    std::fs::write(&config, text).unwrap();
    let gw = support::gateway::start_with_config(dir, &config, &[]);
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], gw.addr.port()));
    let r = get(v4, "/prod/ip");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["ip"], "127.0.0.1");
    assert_eq!(get(v4, "/prod/proxy").status, 200);
    assert_eq!(backend.last().header("x-forwarded-for"), Some("127.0.0.1"));
    // An IPv6 client stays IPv6.
    let v6 = std::net::SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, gw.addr.port()));
    assert_eq!(get(v6, "/prod/ip").json()["ip"], "::1");
}
