//! WebSocket APIs end to end with 2 shards and real clients (tungstenite,
//! and Python `websockets` when installed): `$connect`/`$disconnect`,
//! route selection, MOCK and HTTP integrations, `@connections` from any
//! shard and from the admin listener, limits and the idle timeout.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::{self, Message};
use support::gateway::ADMIN_TOKEN;
use support::{Backend, Gateway, Mode, RawClient};

type Client = tungstenite::WebSocket<TcpStream>;

fn ws_gateway(backend: &Backend, extra_routes: &str, limits: &str) -> Gateway {
    ws_builder(backend, extra_routes, limits).start()
}

fn ws_builder(backend: &Backend, extra_routes: &str, limits: &str) -> support::GatewayBuilder {
    let b = backend.addr;
    Gateway::builder()
        .shards(2)
        .admin()
        .extra(&format!(
            r#"[[credentials]]
name = "pusher"
token = "pusher-token-0123456789"
permissions = ["manage_connections"]
[[websocket_apis]]
id = "chat"
route_selection_expression = "$request.body.action"
stages = [{{ name = "prod", variables = {{}} }}]
[[websocket_apis.routes]]
key = "$connect"
integration = {{ type = "http", uri = "http://{b}/connect", request_parameters = {{ "integration.request.header.x-token" = "route.request.querystring.token", "integration.request.header.x-auth" = "route.request.header.Authorization", "integration.request.querystring.ua" = "route.request.header.User-Agent", "integration.request.header.x-lit" = "'v1'", "integration.request.header.x-absent" = "route.request.header.X-Not-Sent" }} }}
[[websocket_apis.routes]]
key = "$disconnect"
integration = {{ type = "http", uri = "http://{b}/disconnect" }}
[[websocket_apis.routes]]
key = "whoami"
integration = {{ type = "mock", response_template = "{{\"connectionId\": \"$context.connectionId\", \"route\": \"$context.routeKey\", \"stage\": \"$context.stage\", \"connectedAt\": $context.connectedAt, \"requestTimeEpoch\": $context.requestTimeEpoch, \"messageId\": \"$context.messageId\", \"domainName\": \"$context.domainName\", \"userAgent\": \"$context.identity.userAgent\", \"eventType\": \"$context.eventType\"}}" }}
route_response = true
[[websocket_apis.routes]]
key = "echo"
integration = {{ type = "mock", response_template = "$input.body" }}
route_response = true
[[websocket_apis.routes]]
key = "quiet"
integration = {{ type = "mock", response_template = "not sent" }}
route_response = false
{extra_routes}
[websocket]
{limits}
"#
        ))
}

const DEFAULT_ROUTE: &str = "[[websocket_apis.routes]]\nkey = \"$default\"\nintegration = { type = \"http\", uri = \"http://BACKEND/echo\" }\nroute_response = true\n";

fn connect(gw: &Gateway) -> Result<(Client, String), tungstenite::Error> {
    connect_to(gw, "chat.execute-api.local")
}

/// A WebSocket client for the API named by `host`, stage `prod`; the
/// connection id from the 101.
fn connect_to(gw: &Gateway, host: &str) -> Result<(Client, String), tungstenite::Error> {
    connect_with_auth(gw, host, "Bearer xyz")
}

/// `connect_to` with this `Authorization`.
fn connect_with_auth(
    gw: &Gateway,
    host: &str,
    authorization: &str,
) -> Result<(Client, String), tungstenite::Error> {
    connect_with(
        gw,
        "/prod?token=t0k%21",
        &[("Host", host), ("Authorization", authorization)],
    )
}

/// A WebSocket client for `target` (stage and query) with these headers
/// besides the handshake's own and `User-Agent`.
fn connect_with(
    gw: &Gateway,
    target: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, String), tungstenite::Error> {
    let stream = TcpStream::connect(gw.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://{}{target}", gw.addr))
        .header("User-Agent", "tollgate-test/1");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let req = req
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    match tungstenite::client(req, stream) {
        Ok((ws, resp)) => {
            let id = resp
                .headers()
                .get("x-amzn-ConnectionId")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            Ok((ws, id))
        }
        Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
        Err(tungstenite::HandshakeError::Interrupted(_)) => panic!("handshake interrupted"),
    }
}

/// A connection id as it goes in an `@connections` path.
fn encoded_id(id: &str) -> String {
    id.replace('=', "%3D")
        .replace('/', "%2F")
        .replace('+', "%2B")
}

fn text(ws: &mut Client) -> String {
    loop {
        match ws.read().unwrap() {
            Message::Text(t) => return t.as_str().to_owned(),
            Message::Binary(b) => return String::from_utf8_lossy(&b).into_owned(),
            _ => continue,
        }
    }
}

#[test]
fn connect_route_and_disconnect() {
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(
        &backend,
        &DEFAULT_ROUTE.replace("BACKEND", &backend.addr.to_string()),
        "",
    );
    let (mut ws, id) = connect(&gw).expect("connect");
    assert_eq!(id.len(), 16);
    // $connect reached the backend with the connection's context.
    let c = backend
        .recorded()
        .into_iter()
        .find(|r| r.target.starts_with("/connect"))
        .expect("$connect called");
    assert_eq!(c.header("x-amzn-eventtype"), Some("CONNECT"));
    assert_eq!(c.header("x-amzn-connectionid"), Some(id.as_str()));
    // Its request parameters read the upgrade request.
    assert_eq!(c.header("x-token"), Some("t0k!"));
    assert_eq!(c.header("x-auth"), Some("Bearer xyz"));
    assert_eq!(c.header("x-lit"), Some("v1"));
    assert_eq!(c.header("x-absent"), None);
    assert_eq!(c.target, "/connect?ua=tollgate-test%2F1");
    // A MOCK route answers with context values.
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(v["connectionId"], id.as_str());
    assert_eq!(v["route"], "whoami");
    assert_eq!(v["stage"], "prod");
    assert_eq!(v["eventType"], "MESSAGE");
    assert_eq!(v["domainName"], "chat.execute-api.local");
    assert_eq!(v["userAgent"], "tollgate-test/1");
    let connected = v["connectedAt"].as_u64().unwrap();
    let received = v["requestTimeEpoch"].as_u64().unwrap();
    assert!(
        connected > 1_700_000_000_000 && connected <= received,
        "{v}"
    );
    let first_message_id = v["messageId"].as_str().unwrap().to_owned();
    assert!(!first_message_id.is_empty());
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(v["connectedAt"].as_u64(), Some(connected));
    assert_ne!(v["messageId"], first_message_id.as_str());
    // `$input.body` alone echoes.
    ws.send(Message::text(r#"{"action": "echo", "x": 1}"#))
        .unwrap();
    match ws.read().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), r#"{"action": "echo", "x": 1}"#),
        other => panic!("{other:?}"),
    }
    // No route response: nothing comes back (the next answer is whoami's).
    ws.send(Message::text(r#"{"action": "quiet"}"#)).unwrap();
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    assert!(text(&mut ws).contains("whoami"));
    // Non-JSON and unmatched keys go to $default (an HTTP integration).
    ws.send(Message::text("plain text")).unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(echoed["body"], "plain text");
    assert_eq!(echoed["target"], "/echo");
    ws.send(Message::text(r#"{"action": "nope"}"#)).unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    let hdrs: Vec<(String, String)> =
        serde_json::from_value::<Vec<(String, String)>>(echoed["headers"].clone()).unwrap();
    assert!(hdrs
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("x-amzn-routekey") && v == "$default"));
    // Close: $disconnect once.
    ws.close(None).unwrap();
    let _ = ws.read();
    let until = Instant::now() + Duration::from_secs(30);
    while backend
        .recorded()
        .iter()
        .filter(|r| r.target == "/disconnect")
        .count()
        == 0
        && Instant::now() < until
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(100));
    let d: Vec<_> = backend
        .recorded()
        .into_iter()
        .filter(|r| r.target == "/disconnect")
        .collect();
    assert_eq!(d.len(), 1, "$disconnect exactly once");
    assert_eq!(d[0].header("x-amzn-connectionid"), Some(id.as_str()));

    // The metrics saw one connection, seven messages in and six out.
    let m = RawClient::connect(gw.admin.unwrap()).request(
        format!("GET /metrics HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let text = m.text();
    for line in [
        r#"tollgate_websocket_connections_opened_total{api="chat",stage="prod"} 1"#,
        r#"tollgate_websocket_connections{api="chat",stage="prod"} 0"#,
        r#"tollgate_websocket_messages_total{api="chat",stage="prod",direction="in"} 7"#,
        r#"tollgate_websocket_messages_total{api="chat",stage="prod",direction="out"} 6"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no `{line}` in\n{text}");
    }
}

#[test]
fn connect_can_refuse_and_missing_default_answers_forbidden() {
    let backend = Backend::start(Mode::Fixed {
        status: 401,
        headers: vec![],
        body: b"no".to_vec(),
    });
    let gw = ws_gateway(&backend, "", "");
    match connect(&gw) {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 401),
        other => panic!(
            "expected a refused handshake, got {:?}",
            other.map(|(_, id)| id)
        ),
    }
    backend.set_mode(Mode::Echo);
    let (mut ws, id) = connect(&gw).unwrap();
    ws.send(Message::text(r#"{"action": "unrouted"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(v["message"], "Forbidden");
    assert_eq!(v["connectionId"], id.as_str());
    // The connection is kept.
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    assert!(text(&mut ws).contains(&id));
    // Unknown stage and plain GETs on a WebSocket API.
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /nostage HTTP/1.1\r\nHost: chat.execute-api.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n");
    assert_eq!(r.status, 403);
    let mut c = RawClient::connect(gw.addr);
    let r = c.request(b"GET /prod HTTP/1.1\r\nHost: chat.execute-api.local\r\n\r\n");
    assert_eq!(r.status, 426);
    // A refused upgrade carries the request's ids, as every answer does.
    assert_eq!(r.header("x-amzn-requestid").map(str::len), Some(36));
    assert_eq!(r.header("x-amz-apigw-id").map(str::len), Some(16));
}

#[test]
fn an_integration_failure_answers_with_the_request_id_the_integration_carried() {
    let backend = Backend::start(Mode::Echo);
    let b = backend.addr;
    let route = format!(
        "[[websocket_apis.routes]]\nkey = \"fail\"\nintegration = {{ type = \"http\", uri = \"http://{b}/fail\" }}\nroute_response = true\n"
    );
    let gw = ws_gateway(&backend, &route, "");
    let (mut ws, id) = connect(&gw).expect("connect");
    // The backend reads the request and closes without an answer.
    backend.set_mode(Mode::CloseWithoutAnswer);
    ws.send(Message::text(r#"{"action": "fail"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(v["message"], "Internal server error");
    assert_eq!(v["connectionId"], id.as_str());
    let sent = backend
        .recorded()
        .into_iter()
        .rfind(|r| r.target == "/fail")
        .expect("the integration reached the backend");
    let rid = sent
        .header("x-amzn-requestid")
        .expect("X-Amzn-RequestId sent");
    assert_eq!(rid.len(), 36, "{rid}");
    assert_eq!(v["requestId"], rid);
    // Each message is a request of its own.
    backend.set_mode(Mode::Echo);
    ws.send(Message::text(r#"{"action": "unrouted"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(v["message"], "Forbidden");
    assert_ne!(v["requestId"], rid);
}

/// Routes whose templates use what REST mapping templates have:
/// `$input.json` / `$input.path` over the message, `#set` / `#if`,
/// `$util`; an HTTP integration's request template makes the body the
/// backend gets and its response template the reply; a `$connect`
/// template reads the upgrade request with `$input.params` and decides
/// with its `statusCode`.
#[test]
fn websocket_mapping_templates_are_vtl() {
    let backend = Backend::start(Mode::Echo);
    let routes = r#"
[[websocket_apis.routes]]
key = "calc"
integration = { type = "mock", response_template = '''#set($n = $input.path('$.n'))#if($n > 2)big#{else}small#end $input.json('$.data') $util.escapeJavaScript($input.path('$.s')) $context.routeKey/$context.eventType''' }
route_response = true
[[websocket_apis.routes]]
key = "big"
integration = { type = "mock", response_template = '''#foreach($i in [1..100])0123456789abcdefghij#end''' }
route_response = true
[[websocket_apis.routes]]
key = "fwd"
integration = { type = "http", uri = "http://BACKEND/fwd", request_templates = { "$default" = '''{"who": "$context.connectionId", "item": $input.json('$.item')}''' }, response_template = '''#set($sent = $util.parseJson($input.path('$.body')))got $sent.item.id for $sent.who via $input.path('$.target')''' }
route_response = true
[[websocket_apis]]
id = "gate"
stages = [{ name = "prod" }]
[[websocket_apis.routes]]
key = "$connect"
integration = { type = "mock", request_templates = { "$default" = '''#if($input.params('Authorization') == 'Bearer xyz' && $input.params('token') == 't0k!'){"statusCode": 200}#else{"statusCode": 403}#end''' } }
[[websocket_apis.routes]]
key = "$default"
integration = { type = "mock", response_template = '''$input.json('$.x')''' }
route_response = true
[[websocket_apis]]
id = "shut"
stages = [{ name = "prod" }]
[[websocket_apis.routes]]
key = "$connect"
integration = { type = "mock", request_templates = { "$default" = '''#if($input.params('Authorization') == 'Bearer other'){"statusCode": 200}#else{"statusCode": 403}#end''' } }
"#
    .replace("BACKEND", &backend.addr.to_string());
    let gw = ws_gateway(&backend, &routes, "max_message_bytes = 1500\n");
    let (mut ws, id) = connect(&gw).unwrap();
    // A reply over max_message_bytes (2,000 bytes here) is not sent: an
    // error frame in API Gateway's shape (spacing included) is.
    ws.send(Message::text(r#"{"action": "big"}"#)).unwrap();
    let reply = text(&mut ws);
    assert!(
        reply.starts_with(&format!(
            r#"{{"message": "Internal server error", "connectionId":"{id}", "requestId":""#
        )),
        "{reply}"
    );
    ws.send(Message::text(
        r#"{"action": "calc", "n": 3, "data": {"a": [1, "x"]}, "s": "say \"hi\""}"#,
    ))
    .unwrap();
    assert_eq!(
        text(&mut ws),
        r#"big {"a":[1,"x"]} say \"hi\" calc/MESSAGE"#
    );
    ws.send(Message::text(r#"{"action": "calc", "n": 1}"#))
        .unwrap();
    assert_eq!(text(&mut ws), "small   calc/MESSAGE");

    // The backend gets the request template's body; the client gets the
    // response template's rendering of the backend's answer.
    ws.send(Message::text(r#"{"action": "fwd", "item": {"id": 7}}"#))
        .unwrap();
    assert_eq!(text(&mut ws), format!("got 7 for {id} via /fwd"));
    let sent = backend
        .recorded()
        .into_iter()
        .find(|r| r.target == "/fwd")
        .expect("fwd called");
    let body: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(body, serde_json::json!({"who": id, "item": {"id": 7}}));
    assert_eq!(sent.header("content-type"), Some("application/json"));

    // `$connect` decided by a template over the upgrade request.
    let (mut gate, _) = connect_to(&gw, "gate.execute-api.local").expect("gate lets in");
    gate.send(Message::text(r#"{"x": {"y": true}}"#)).unwrap();
    assert_eq!(text(&mut gate), r#"{"y":true}"#);
    // A message the template cannot read as JSON: an error reply, and the
    // connection stays.
    gate.send(Message::text("not json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut gate)).unwrap();
    assert_eq!(v["message"], "Internal server error");
    gate.send(Message::text(r#"{"x": 1}"#)).unwrap();
    assert_eq!(text(&mut gate), "1");
    match connect_to(&gw, "shut.execute-api.local") {
        Err(tungstenite::Error::Http(resp)) => assert_eq!(resp.status().as_u16(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, id)| id)),
    }
    // A gateway bearer token on the upgrade is the gateway's: neither a
    // `$connect` mapping nor its backend sees it.
    let (_ws, _) = connect_with_auth(
        &gw,
        "chat.execute-api.local",
        "Bearer pusher-token-0123456789",
    )
    .expect("chat lets in");
    let seen = backend
        .recorded()
        .into_iter()
        .rfind(|r| r.target.starts_with("/connect"))
        .expect("$connect called");
    assert!(!format!("{seen:?}").contains("pusher-token"), "{seen:?}");
    assert_eq!(seen.header("x-token"), Some("t0k!"));
}

fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    token: &str,
) -> support::Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: chat.execute-api.local\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    let mut c = RawClient::connect(addr);
    c.send(&req);
    c.read_response(method == "HEAD")
}

#[test]
fn connections_api_reaches_the_owner_from_any_shard_and_the_admin_listener() {
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(&backend, "", "");
    let mut clients: Vec<(Client, String)> = (0..6).map(|_| connect(&gw).unwrap()).collect();
    for (i, (ws, id)) in clients.iter_mut().enumerate() {
        let enc = encoded_id(id);
        // Through the data plane (whichever shard the call lands on).
        let r = call(
            gw.addr,
            "POST",
            &format!("/prod/@connections/{enc}"),
            format!("hello {i}").as_bytes(),
            "pusher-token-0123456789",
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(text(ws), format!("hello {i}"));
        // Through the admin listener.
        let r = call(
            gw.admin.unwrap(),
            "POST",
            &format!("/prod/@connections/{enc}"),
            b"from admin",
            ADMIN_TOKEN,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(text(ws), "from admin");
        let r = call(
            gw.addr,
            "GET",
            &format!("/prod/@connections/{enc}"),
            b"",
            "pusher-token-0123456789",
        );
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["identity"]["sourceIp"], "127.0.0.1");
        assert!(v["connectedAt"].as_str().unwrap().ends_with('Z'));
        assert!(v["lastActiveAt"].is_string());
    }
    // Wrong credentials.
    let id = encoded_id(&clients[0].1);
    let r = call(
        gw.addr,
        "POST",
        &format!("/prod/@connections/{id}"),
        b"x",
        "wrong-token-0123456789",
    );
    assert_eq!(r.status, 403);
    // DELETE closes the connection; then it is gone.
    let r = call(
        gw.addr,
        "DELETE",
        &format!("/prod/@connections/{id}"),
        b"",
        "pusher-token-0123456789",
    );
    assert_eq!(r.status, 204);
    let ws = &mut clients[0].0;
    let closed = loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break true,
            Ok(_) => continue,
        }
    };
    assert!(closed);
    // Gone once the gateway has dropped it, which may be just after the
    // close reached the client: 200 (still there) until then, then 410.
    let mut r = None;
    support::wait_until(
        "the deleted connection to be gone",
        Duration::from_secs(30),
        || {
            let got = call(
                gw.addr,
                "POST",
                &format!("/prod/@connections/{id}"),
                b"x",
                "pusher-token-0123456789",
            );
            let done = got.status != 200;
            r = Some(got);
            done
        },
    );
    let r = r.unwrap();
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.header("x-amzn-ErrorType"), Some("GoneException"));
    let r = call(
        gw.addr,
        "GET",
        "/prod/@connections/AAAAAAAAAAAAAAAA",
        b"",
        "pusher-token-0123456789",
    );
    assert_eq!(r.status, 410);
}

/// The next Close frame's code (`None`: the connection ended without one).
fn close_code(ws: &mut Client) -> Option<u16> {
    loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => return Some(u16::from(f.code)),
            Ok(Message::Close(None)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// A raw upgraded connection (for frames a well-behaved client never sends).
fn raw_upgrade(gw: &Gateway) -> TcpStream {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /prod HTTP/1.1\r\nHost: chat.execute-api.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed during the handshake");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

/// What API Gateway and RFC 6455 ask of the protocol: a client's Close is
/// answered with its code; a binary frame closes with 1003; a protocol error
/// closes with 1002 and invalid UTF-8 with 1007; a message naming
/// `$disconnect` goes to `$default`; `%40connections` is `@connections`;
/// a connection is gone for the @connections API of another API or stage.
#[test]
fn close_handshake_binary_frames_and_connection_scope() {
    use std::io::{Read, Write};
    let backend = Backend::start(Mode::Echo);
    let other = "[[websocket_apis]]\nid = \"other\"\nstages = [{ name = \"prod\", variables = {} }, { name = \"dev\", variables = {} }]\n[[websocket_apis.routes]]\nkey = \"$default\"\nintegration = { type = \"mock\", response_template = \"$input.body\" }\nroute_response = true\n";
    let gw = ws_gateway(
        &backend,
        &format!(
            "{}{other}",
            DEFAULT_ROUTE.replace("BACKEND", &backend.addr.to_string())
        ),
        "",
    );
    // The client's Close is answered, echoing its code.
    let (mut ws, _) = connect(&gw).unwrap();
    ws.close(Some(tungstenite::protocol::CloseFrame {
        code: 4001.into(),
        reason: "bye".into(),
    }))
    .unwrap();
    assert_eq!(close_code(&mut ws), Some(4001));
    // A binary frame: 1003.
    let (mut ws, _) = connect(&gw).unwrap();
    ws.send(Message::binary(b"{\"action\": \"echo\"}".to_vec()))
        .unwrap();
    assert_eq!(close_code(&mut ws), Some(1003));
    // Protocol errors get a Close frame: RSV1 set (1002), invalid UTF-8 in a
    // text frame (1007). Frames are masked with a zero key.
    for (frame, code) in [
        (&[0xC1u8, 0x80, 0, 0, 0, 0][..], 1002u16),
        (&[0x81, 0x82, 0, 0, 0, 0, 0xC3, 0x28][..], 1007),
    ] {
        let mut s = raw_upgrade(&gw);
        s.write_all(frame).unwrap();
        let mut got = [0u8; 4];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got[0], 0x88, "a Close frame: {got:?}");
        assert_eq!(u16::from_be_bytes([got[2], got[3]]), code);
    }
    // A frame over the 32 KiB limit: 1009, then an orderly end of stream
    // (the rest of the frame is read and dropped, so no reset can make the
    // client lose the Close frame).
    let mut s = raw_upgrade(&gw);
    let mut frame = vec![0x81u8, 0xFF];
    frame.extend_from_slice(&32_769u64.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&[b'x'; 32_769]);
    s.write_all(&frame).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut got = [0u8; 4];
    s.read_exact(&mut got).unwrap();
    assert_eq!((got[0], u16::from_be_bytes([got[2], got[3]])), (0x88, 1009));
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    assert!(
        end.is_ok(),
        "the connection ended with {end:?} after {rest:?}"
    );
    // A message naming a lifecycle route goes to $default.
    let (mut ws, id) = connect(&gw).unwrap();
    ws.send(Message::text(r#"{"action": "$disconnect"}"#))
        .unwrap();
    let echoed: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(echoed["target"], "/echo");
    assert!(
        !backend
            .recorded()
            .iter()
            .any(|r| r.target == "/disconnect"
                && r.header("x-amzn-connectionid") == Some(id.as_str()))
    );
    // @connections with the `@` percent-encoded, as the AWS guide sends it.
    let enc = encoded_id(&id);
    let pusher = "pusher-token-0123456789";
    let r = call(
        gw.addr,
        "POST",
        &format!("/prod/%40connections/{enc}"),
        b"hi",
        pusher,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(text(&mut ws), "hi");
    let r = call(
        gw.admin.unwrap(),
        "POST",
        &format!("/prod/%40connections/{enc}"),
        b"admin",
        ADMIN_TOKEN,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(text(&mut ws), "admin");
    // Another API's @connections does not reach chat's connection.
    let mut req = format!(
        "POST /prod/@connections/{enc} HTTP/1.1\r\nHost: other.execute-api.local\r\nAuthorization: Bearer {pusher}\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(b"cross");
    let r = RawClient::connect(gw.addr).request(&req);
    assert_eq!(r.status, 410, "{}", r.text());
    assert_eq!(r.header("x-amzn-ErrorType"), Some("GoneException"));
    // Nor does another stage's: a connection on other/prod, called on other/dev.
    let (mut other_ws, other_id) = connect_to(&gw, "other.execute-api.local").unwrap();
    let other_id = encoded_id(&other_id);
    for (stage, status) in [("dev", 410), ("prod", 200)] {
        let mut req = format!(
            "POST /{stage}/@connections/{other_id} HTTP/1.1\r\nHost: other.execute-api.local\r\nAuthorization: Bearer {pusher}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        req.extend_from_slice(&stage.as_bytes()[..2]);
        let r = RawClient::connect(gw.addr).request(&req);
        assert_eq!(r.status, status, "{stage}: {}", r.text());
    }
    match other_ws.read().unwrap() {
        Message::Text(t) => assert_eq!(t.as_str(), "pr"),
        m => panic!("{m:?}"),
    }
}

/// While a message's integration waits on a slow backend the connection
/// stays served: a ping is answered at once, later messages are answered
/// after it in order, and a Close is answered without waiting for it.
#[test]
fn a_slow_integration_does_not_freeze_its_connection() {
    let backend = Backend::start(Mode::Echo);
    // The backend takes 4 s; what must not wait for it is checked against
    // 2.5 s, a margin for a loaded machine either way.
    let slow = Backend::start(Mode::Slow(Duration::from_secs(4)));
    let gw = ws_gateway(
        &backend,
        &format!(
            "[[websocket_apis.routes]]\nkey = \"slow\"\nintegration = {{ type = \"http\", uri = \"http://{}/slow\" }}\nroute_response = true\n",
            slow.addr
        ),
        "",
    );
    let (mut ws, _) = connect(&gw).unwrap();
    ws.send(Message::text(r#"{"action": "slow"}"#)).unwrap();
    ws.send(Message::Ping(b"p".to_vec().into())).unwrap();
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    let start = Instant::now();
    match ws.read().unwrap() {
        Message::Pong(p) => assert_eq!(&p[..], b"p"),
        m => panic!("{m:?}"),
    }
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "pong after {:?}",
        start.elapsed()
    );
    assert_eq!(text(&mut ws), "slow");
    assert!(text(&mut ws).contains("whoami"));
    // A Close during a slow integration is answered without waiting for it.
    ws.send(Message::text(r#"{"action": "slow"}"#)).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let start = Instant::now();
    ws.close(None).unwrap();
    loop {
        match ws.read() {
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        }
    }
    assert!(
        start.elapsed() < Duration::from_millis(2500),
        "close answered after {:?}",
        start.elapsed()
    );
}

#[test]
fn limits_and_idle_timeout() {
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(
        &backend,
        "",
        "max_message_bytes = 1000\nmax_frame_bytes = 1000\nidle_timeout_seconds = 1\n",
    );
    // Too large a message: closed with 1009.
    let (mut ws, _) = connect(&gw).unwrap();
    ws.send(Message::text(format!(
        "{{\"action\": \"echo\", \"pad\": \"{}\"}}",
        "x".repeat(2000)
    )))
    .unwrap();
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break Some(u16::from(f.code)),
            Ok(Message::Close(None)) | Err(_) => break None,
            Ok(_) => continue,
        }
    };
    assert_eq!(code, Some(1009));
    // Idle: closed after the timeout with 1001.
    let (mut ws, _) = connect(&gw).unwrap();
    let start = Instant::now();
    let code = loop {
        match ws.read() {
            Ok(Message::Close(Some(f))) => break Some(u16::from(f.code)),
            Ok(Message::Close(None)) | Err(_) => break None,
            Ok(_) => continue,
        }
    };
    assert_eq!(code, Some(1001));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Messages pushed to a client that sends nothing keep it open: traffic
    // either way counts. 8 pushes 300 ms apart outlast the 1 s timeout.
    let (mut ws, id) = connect(&gw).unwrap();
    let enc = encoded_id(&id);
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(300));
        let r = call(
            gw.addr,
            "POST",
            &format!("/prod/@connections/{enc}"),
            format!("push {i}").as_bytes(),
            "pusher-token-0123456789",
        );
        assert_eq!(r.status, 200, "push {i}: {}", r.text());
        assert_eq!(text(&mut ws), format!("push {i}"));
    }
    assert_eq!(close_code(&mut ws), Some(1001));
}

/// The maximum connection duration ends even a busy connection (1001).
#[test]
fn maximum_connection_duration_closes_a_busy_connection() {
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(
        &backend,
        "",
        "max_connection_seconds = 2\nidle_timeout_seconds = 60\n",
    );
    let (mut ws, _) = connect(&gw).unwrap();
    let start = Instant::now();
    let code = loop {
        assert!(start.elapsed() < Duration::from_secs(8), "never closed");
        if ws
            .send(Message::text(r#"{"action": "echo", "n": 1}"#))
            .is_err()
        {
            break None;
        }
        match ws.read() {
            Ok(Message::Close(Some(f))) => break Some(u16::from(f.code)),
            Ok(Message::Close(None)) | Err(_) => break None,
            Ok(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let took = start.elapsed();
    assert_eq!(code, Some(1001));
    assert!(
        took >= Duration::from_millis(1800) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// A client that stops reading cannot make the gateway queue without
/// bound: once its send queue is full, sends to it answer 429 and its close
/// (1013) is queued, and sends answer 410 from then on. Other clients are served
/// throughout.
#[test]
fn a_client_that_stops_reading_is_disconnected_when_its_queue_fills() {
    let backend = Backend::start(Mode::Echo);
    // The write timeout is far beyond the test's run: on a loaded machine
    // the filling took over 3 s, the blocked write gave up first, and the
    // fill loop met a 410 before its 429.
    let gw = ws_builder(&backend, "", "send_queue = 2\n")
        .limit("write_timeout_ms", "30000")
        .start();
    let (_silent, id) = connect(&gw).unwrap();
    let enc = encoded_id(&id);
    let message = vec![b'x'; 100_000];
    let post = || {
        call(
            gw.addr,
            "POST",
            &format!("/prod/@connections/{enc}"),
            &message,
            "pusher-token-0123456789",
        )
    };
    // Fill the socket buffers and the queue.
    let mut sent = 0;
    let full = loop {
        let r = post();
        match r.status {
            200 => sent += 1,
            429 => break r,
            other => panic!("{other} after {sent} messages: {}", r.text()),
        }
        assert!(
            sent < 1000,
            "1,000 messages of 100 KB accepted for a client that reads nothing"
        );
    };
    assert!(full.text().contains("not reading"), "{}", full.text());
    let (mut other, _) = connect(&gw).unwrap();
    other
        .send(Message::text(r#"{"action": "echo", "still": "served"}"#))
        .unwrap();
    assert_eq!(text(&mut other), r#"{"action": "echo", "still": "served"}"#);
    // The connection is being closed (1013): a message now would never be
    // delivered, so it is refused as gone at once (it was accepted with a
    // 200 when the stuck writer had taken one more message off the queue).
    for _ in 0..3 {
        let r = post();
        assert_eq!(r.status, 410, "{}", r.text());
    }
}

#[test]
fn python_websockets_client() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("python websockets not installed (pip install websockets); skipping");
        return;
    }
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(&backend, "", "");
    let script = format!(
        r#"
import asyncio, json, websockets
async def main():
    # The URI names the API (Host header); host/port say where to connect.
    async with websockets.connect("ws://chat.execute-api.local:{port}/prod", host="127.0.0.1", port={port}) as ws:
        await ws.send(json.dumps({{"action": "whoami"}}))
        print(json.loads(await ws.recv())["route"])
        await ws.send(json.dumps({{"action": "echo", "n": 7}}))
        print(json.loads(await ws.recv())["n"])
asyncio.run(main())
"#,
        port = gw.addr.port()
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "whoami\n7");
}

/// A reload reaches open connections at their next message: a changed
/// template is used at once, and a stage the reload removed closes its
/// connections (1001) at their next message. (Each connection kept the
/// configuration of its upgrade.)
#[test]
fn a_reload_reaches_open_connections() {
    let backend = Backend::start(Mode::Echo);
    let gw = ws_gateway(
        &backend,
        "[[websocket_apis.routes]]\nkey = \"ver\"\nintegration = { type = \"mock\", response_template = \"version-one\" }\nroute_response = true\n",
        "",
    );
    let (mut ws, _) = connect(&gw).unwrap();
    ws.send(Message::text(r#"{"action": "ver"}"#)).unwrap();
    assert_eq!(text(&mut ws), "version-one");
    let config = gw.config_path();
    let original = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, original.replace("version-one", "version-two")).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(30)));
    ws.send(Message::text(r#"{"action": "ver"}"#)).unwrap();
    assert_eq!(text(&mut ws), "version-two");
    // The stage renamed away: the open connection ends at its next message.
    std::fs::write(
        &config,
        original.replace("stages = [{ name = \"prod\"", "stages = [{ name = \"live\""),
    )
    .unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 2, Duration::from_secs(30)));
    ws.send(Message::text(r#"{"action": "ver"}"#)).unwrap();
    assert_eq!(close_code(&mut ws), Some(1001));
}

/// The `$connect` integration chooses the subprotocol, as with API
/// Gateway: its `Sec-WebSocket-Protocol` goes into the 101 when the client
/// offered it (`wscat -s chat`, browsers' `new WebSocket(url, "chat")` and
/// `graphql-ws` clients fail the connection without it), and is left out
/// when the client did not.
#[test]
fn the_connect_integration_chooses_the_subprotocol() {
    let backend = Backend::start(Mode::Fixed {
        status: 200,
        headers: vec![("Sec-WebSocket-Protocol".into(), "chat".into())],
        body: Vec::new(),
    });
    let gw = ws_gateway(&backend, "", "");
    let upgrade = |protocols: &str| {
        let mut c = RawClient::connect(gw.addr);
        c.send(format!("GET /prod HTTP/1.1\r\nHost: chat.execute-api.local\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{protocols}\r\n").as_bytes());
        c.read_response(true)
    };
    for (offered, chosen) in [
        ("Sec-WebSocket-Protocol: superchat, chat\r\n", Some("chat")),
        (
            "Sec-WebSocket-Protocol: superchat\r\nSec-WebSocket-Protocol: chat\r\n",
            Some("chat"),
        ),
        ("Sec-WebSocket-Protocol: other\r\n", None),
        ("", None),
    ] {
        let r = upgrade(offered);
        assert_eq!(r.status, 101, "{offered}");
        assert_eq!(r.header("sec-websocket-protocol"), chosen, "{offered}");
    }
    // A real client that requires the protocol connects.
    let stream = TcpStream::connect(gw.addr).unwrap();
    let req = tungstenite::handshake::client::Request::builder()
        .uri(format!("ws://{}/prod", gw.addr))
        .header("Host", "chat.execute-api.local")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Version", "13")
        .header("Sec-WebSocket-Protocol", "chat")
        .header(
            "Sec-WebSocket-Key",
            tungstenite::handshake::client::generate_key(),
        )
        .body(())
        .unwrap();
    let (mut ws, resp) = tungstenite::client(req, stream).expect("handshake with a subprotocol");
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "chat"
    );
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    assert!(text(&mut ws).contains("connectionId"));
}

const AUTH_FN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:wsauth";

/// A WebSocket API whose `$connect` is authorized by `auth` (the route's
/// TOML lines), with a `whoami` route showing what the connection's
/// `$context` knows of the caller; `$connect` and `$disconnect` go to
/// `backend` with the principal as a header.
fn authorized_gateway(backend: &Backend, authorizer: &Backend, auth: &str) -> Gateway {
    let b = backend.addr;
    Gateway::builder()
        .shards(2)
        .extra(&format!(
            r#"[lambda_functions]
"{AUTH_FN}" = "http://{a}/authorize"
[[credentials]]
name = "invoker"
access_key_id = "AKIDWSINVOKER"
secret_access_key = "ws/invoker/secret"
token = "ws-invoker-token-0123456789"
permissions = ["invoke"]
[[credentials]]
name = "pusher"
access_key_id = "AKIDWSPUSHER"
secret_access_key = "ws/pusher/secret"
permissions = ["manage_connections"]
[[websocket_apis]]
id = "chat"
stages = [{{ name = "prod", variables = {{ tier = "gold" }} }}]
[[websocket_apis.authorizers]]
name = "tokens"
uri = "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{AUTH_FN}/invocations"
identity_source = ["route.request.querystring.token", "route.request.header.Auth"]
[[websocket_apis.routes]]
key = "$connect"
{auth}
integration = {{ type = "http", uri = "http://{b}/connect", request_parameters = {{ "integration.request.header.x-principal" = "context.authorizer.principalId", "integration.request.header.x-user" = "context.identity.user" }} }}
[[websocket_apis.routes]]
key = "$disconnect"
integration = {{ type = "http", uri = "http://{b}/disconnect", request_parameters = {{ "integration.request.header.x-principal" = "context.authorizer.principalId" }} }}
[[websocket_apis.routes]]
key = "whoami"
integration = {{ type = "mock", response_template = "{{\"p\": \"$context.authorizer.principalId\", \"team\": \"$context.authorizer.team\", \"n\": \"$context.authorizer.n\", \"user\": \"$context.identity.user\", \"key\": \"$context.identity.accessKey\"}}" }}
route_response = true
"#,
            a = authorizer.addr
        ))
        .start()
}

fn authorizer_answers(output: serde_json::Value) -> Mode {
    Mode::Fixed {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: output.to_string().into_bytes(),
    }
}

fn connect_policy(effect: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({
        "principalId": "user-7",
        "policyDocument": {"Version": "2012-10-17", "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}]},
        "context": {"team": "blue", "n": 3, "principalId": "not-this"}
    })
}

/// The refusal of a handshake: status, `x-amzn-ErrorType` and the
/// message of its JSON body.
fn refusal(r: Result<(Client, String), tungstenite::Error>) -> (u16, String, String) {
    match r {
        Err(tungstenite::Error::Http(resp)) => {
            let body: serde_json::Value =
                serde_json::from_slice(resp.body().as_deref().unwrap_or(b"{}")).unwrap();
            let error_type = resp
                .headers()
                .get("x-amzn-ErrorType")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let message = match &body["message"] {
                serde_json::Value::String(m) => m.clone(),
                other => other.to_string(),
            };
            (resp.status().as_u16(), error_type, message)
        }
        Err(e) => panic!("expected a refused handshake, got {e}"),
        Ok((_, id)) => panic!("expected a refused handshake, connection {id} opened"),
    }
}

fn calls_to(backend: &Backend, path: &str) -> Vec<support::backend::Recorded> {
    backend
        .recorded()
        .into_iter()
        .filter(|r| r.target.starts_with(path))
        .collect()
}

#[test]
fn a_lambda_authorizer_decides_who_connects_and_names_them_on_every_route() {
    let backend = Backend::start(Mode::Echo);
    let authorizer = Backend::start(authorizer_answers(connect_policy(
        "Allow",
        "arn:aws:execute-api:*:*:chat/prod/$connect",
    )));
    let gw = authorized_gateway(
        &backend,
        &authorizer,
        "authorization_type = \"CUSTOM\"\nauthorizer = \"tokens\"",
    );
    let host = ("Host", "chat.execute-api.local");

    // An identity source missing: 401 without asking the authorizer, and
    // $connect's integration never runs.
    let (status, error_type, message) = refusal(connect_with(&gw, "/prod?token=abc", &[host]));
    assert_eq!(
        (status, error_type.as_str(), message.as_str()),
        (401, "UnauthorizedException", "Unauthorized")
    );
    let (status, ..) = refusal(connect_with(&gw, "/prod?token=", &[host, ("Auth", "k1")]));
    assert_eq!(status, 401);
    assert_eq!(authorizer.request_count(), 0);
    assert!(calls_to(&backend, "/connect").is_empty());

    // Allowed: the authorizer got API Gateway's WebSocket REQUEST event.
    // The gateway's own bearer token (a credential's) is no authorizer's
    // to see.
    let (mut ws, id) = connect_with(
        &gw,
        "/prod?token=t0k%21&x=1&x=2",
        &[
            host,
            ("Auth", "k1"),
            ("Authorization", "Bearer ws-invoker-token-0123456789"),
        ],
    )
    .expect("connect");
    let call = authorizer.last();
    assert_eq!(
        (call.method.as_str(), call.target.as_str()),
        ("POST", "/authorize")
    );
    let event: serde_json::Value = serde_json::from_slice(&call.body).unwrap();
    assert_eq!(event["type"], "REQUEST");
    assert_eq!(
        event["methodArn"],
        "arn:aws:execute-api:local:000000000000:chat/prod/$connect"
    );
    // Names as the client sent them (this client sends its own in lower
    // case, the handshake's capitalised).
    assert_eq!(event["headers"]["auth"], "k1", "{event}");
    assert!(
        event["headers"].get("authorization").is_none()
            && event["multiValueHeaders"].get("authorization").is_none(),
        "{event}"
    );
    assert_eq!(
        event["multiValueHeaders"]["Upgrade"],
        serde_json::json!(["websocket"])
    );
    assert_eq!(event["queryStringParameters"]["token"], "t0k!");
    assert_eq!(
        event["multiValueQueryStringParameters"]["x"],
        serde_json::json!(["1", "2"])
    );
    assert_eq!(event["stageVariables"]["tier"], "gold");
    let rc = &event["requestContext"];
    assert_eq!(rc["routeKey"], "$connect");
    assert_eq!(rc["eventType"], "CONNECT");
    assert_eq!(rc["messageDirection"], "IN");
    assert_eq!(rc["stage"], "prod");
    assert_eq!(rc["apiId"], "chat");
    assert_eq!(rc["connectionId"], id.as_str());
    assert_eq!(rc["domainName"], "chat.execute-api.local");
    assert_eq!(rc["identity"]["userAgent"], "tollgate-test/1");
    assert_eq!(rc["identity"]["sourceIp"], "127.0.0.1");
    assert!(
        rc["connectedAt"].as_u64().unwrap() > 1_700_000_000_000,
        "{rc}"
    );
    assert!(event.get("pathParameters").is_none() && event.get("httpMethod").is_none());
    // $connect's integration ran after it, and saw the principal.
    let connect_call = calls_to(&backend, "/connect")
        .pop()
        .expect("$connect called");
    assert_eq!(connect_call.header("x-principal"), Some("user-7"));
    assert_eq!(
        connect_call.header("x-amzn-requestid"),
        Some(rc["requestId"].as_str().unwrap())
    );
    // Every message of the connection knows the caller; the principal
    // wins over a context key of its name; numbers come as text.
    for _ in 0..2 {
        ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
        assert_eq!(v["p"], "user-7", "{v}");
        assert_eq!(v["team"], "blue");
        assert_eq!(v["n"], "3");
        assert_eq!(v["user"], "");
    }
    // One authorizer call per connection (API Gateway caches none for
    // WebSocket APIs).
    assert_eq!(authorizer.request_count(), 1);
    // $disconnect too.
    ws.close(None).unwrap();
    let _ = ws.read();
    support::wait::wait_until("$disconnect", Duration::from_secs(30), || {
        !calls_to(&backend, "/disconnect").is_empty()
    });
    assert_eq!(
        calls_to(&backend, "/disconnect")[0].header("x-principal"),
        Some("user-7")
    );

    // A policy that denies, one for another stage, an authorizer that says
    // 401, one that fails, one whose output is not an authorizer's: no
    // connection, and $connect's integration never runs.
    let connects = calls_to(&backend, "/connect").len();
    let cases = [
        (
            authorizer_answers(connect_policy("Deny", "arn:aws:execute-api:*:*:chat/*")),
            (
                403,
                "AccessDeniedException",
                "User is not authorized to access this resource with an explicit deny",
            ),
        ),
        (
            authorizer_answers(connect_policy(
                "Allow",
                "arn:aws:execute-api:*:*:chat/test/$connect",
            )),
            (
                403,
                "AccessDeniedException",
                "User is not authorized to access this resource",
            ),
        ),
        (
            Mode::Fixed {
                status: 401,
                headers: vec![],
                body: b"{\"message\": \"Unauthorized\"}".to_vec(),
            },
            (401, "UnauthorizedException", "Unauthorized"),
        ),
        (
            Mode::Fixed {
                status: 500,
                headers: vec![],
                body: b"boom".to_vec(),
            },
            (500, "AuthorizerFailureException", "null"),
        ),
        (
            authorizer_answers(serde_json::json!({"principalId": "x"})),
            (500, "AuthorizerConfigurationException", "null"),
        ),
    ];
    for (mode, expected) in cases {
        authorizer.set_mode(mode);
        let (status, error_type, message) =
            refusal(connect_with(&gw, "/prod?token=t", &[host, ("Auth", "k1")]));
        assert_eq!((status, error_type.as_str(), message.as_str()), expected);
    }
    assert_eq!(calls_to(&backend, "/connect").len(), connects);
}

/// The upgrade request's `Authorization` and `X-Amz-Date`, signed for
/// `execute-api` (SigV4) with this key.
fn signed_upgrade(target: &str, host: &str, key: &str, secret: &str) -> (String, String) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    support::aws::Signing {
        method: "GET",
        host,
        path,
        query,
        body: b"",
        service: "execute-api",
        region: "eu-west-1",
    }
    .sign(key, secret, std::time::SystemTime::now())
}

#[test]
fn aws_iam_on_connect_needs_an_upgrade_signed_by_a_credential_that_may_invoke() {
    let backend = Backend::start(Mode::Echo);
    let authorizer = Backend::start(Mode::Echo);
    let gw = authorized_gateway(&backend, &authorizer, "authorization_type = \"AWS_IAM\"");
    let host = "chat.execute-api.local";
    let target = "/prod?room=a%20b";

    let (status, error_type, message) = refusal(connect_with(&gw, target, &[("Host", host)]));
    assert_eq!(
        (status, error_type.as_str(), message.as_str()),
        (
            403,
            "MissingAuthenticationTokenException",
            "Missing Authentication Token"
        )
    );
    // The credential's bearer token is no signature.
    let (status, error_type, _) = refusal(connect_with(
        &gw,
        target,
        &[
            ("Host", host),
            ("Authorization", "Bearer ws-invoker-token-0123456789"),
        ],
    ));
    assert_eq!(
        (status, error_type.as_str()),
        (403, "InvalidSignatureException")
    );
    // Signed (for `target`) by this key, connecting to `to`.
    let signed_connect = |key: &str, secret: &str, to: &str| {
        let (auth, date) = signed_upgrade(target, host, key, secret);
        connect_with(
            &gw,
            to,
            &[
                ("Host", host),
                ("Authorization", &auth),
                ("X-Amz-Date", &date),
            ],
        )
    };
    // Signed by a credential without `invoke`.
    let (status, error_type, message) =
        refusal(signed_connect("AKIDWSPUSHER", "ws/pusher/secret", target));
    assert_eq!(
        (status, error_type.as_str()),
        (403, "AccessDeniedException")
    );
    assert_eq!(
        message,
        "User: pusher is not authorized to perform: execute-api:Invoke on resource: arn:aws:execute-api:local:000000000000:chat/prod/$connect"
    );
    // Signed with the wrong secret, or for another query.
    for (secret, to) in [
        ("not/the/secret", target),
        ("ws/invoker/secret", "/prod?room=c"),
    ] {
        let (status, error_type, _) = refusal(signed_connect("AKIDWSINVOKER", secret, to));
        assert_eq!(
            (status, error_type.as_str()),
            (403, "InvalidSignatureException")
        );
    }
    assert!(calls_to(&backend, "/connect").is_empty());
    // Signed by the invoker: connected, and every route knows who.
    let (mut ws, _) =
        signed_connect("AKIDWSINVOKER", "ws/invoker/secret", target).expect("signed connect");
    assert_eq!(
        calls_to(&backend, "/connect")[0].header("x-user"),
        Some("invoker")
    );
    ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
    assert_eq!(
        (v["user"].as_str(), v["key"].as_str(), v["p"].as_str()),
        (Some("invoker"), Some("AKIDWSINVOKER"), Some(""))
    );
    assert_eq!(authorizer.request_count(), 0);
    // A presigned URL (botocore's `SigV4QueryAuth`): how a browser, which
    // cannot add headers to a WebSocket upgrade, signs one.
    if let Some(presigned) = support::aws::botocore_presigned(
        &format!("http://{host}{target}"),
        "AKIDWSINVOKER",
        "ws/invoker/secret",
        60,
    ) {
        let t = presigned.strip_prefix(&format!("http://{host}")).unwrap();
        let (mut ws, _) = connect_with(&gw, t, &[("Host", host)]).expect("presigned connect");
        ws.send(Message::text(r#"{"action": "whoami"}"#)).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text(&mut ws)).unwrap();
        assert_eq!(v["user"], "invoker");
        let (status, ..) = refusal(connect_with(
            &gw,
            &t.replace("room=a%20b", "room=z"),
            &[("Host", host)],
        ));
        assert_eq!(status, 403);
    }
}

#[test]
fn websocket_authorization_mistakes_are_errors_with_their_json_path() {
    let base = |routes: &str, authorizers: &str| {
        format!(
            r#"[[websocket_apis]]
id = "chat"
stages = [{{ name = "prod" }}]
{authorizers}
[[websocket_apis.routes]]
key = "$connect"
integration = {{ type = "mock" }}
{routes}
"#
        )
    };
    let good_authorizer = "[[websocket_apis.authorizers]]\nname = \"tokens\"\nuri = \"arn:aws:lambda:eu-west-1:1:function:f\"\nidentity_source = [\"route.request.header.Auth\"]\n";
    let cases = [
        (
            base("[[websocket_apis.routes]]\nkey = \"send\"\nauthorization_type = \"AWS_IAM\"\nintegration = { type = \"mock\" }", ""),
            "$.websocket_apis[0].routes[1].authorization_type: `AWS_IAM` on route `send`",
        ),
        (
            base("", good_authorizer).replace("key = \"$connect\"", "key = \"$connect\"\nauthorization_type = \"CUSTOM\""),
            "$.websocket_apis[0].routes[0].authorizer: authorization_type = \"CUSTOM\" needs an authorizer",
        ),
        (
            base("", good_authorizer).replace("key = \"$connect\"", "key = \"$connect\"\nauthorization_type = \"CUSTOM\"\nauthorizer = \"other\""),
            "$.websocket_apis[0].routes[0].authorizer: `other` is not one of the API's authorizers",
        ),
        (
            base("", good_authorizer).replace("key = \"$connect\"", "key = \"$connect\"\nauthorization_type = \"JWT\""),
            "$.websocket_apis[0].routes[0].authorization_type: unknown authorization type `JWT`",
        ),
        (
            base("", &good_authorizer.replace("route.request.header.Auth", "method.request.header.Auth")),
            "$.websocket_apis[0].authorizers[0].identity_source[0]: `method.request.header.Auth`",
        ),
        (
            base("", &good_authorizer.replace("arn:aws:lambda:eu-west-1:1:function:f", "https://auth.example/")),
            "$.websocket_apis[0].authorizers[0].uri: `https://auth.example/` is neither a Lambda function ARN",
        ),
    ];
    for (toml, needle) in cases {
        let (_dir, config) = Gateway::builder().extra(&toml).write();
        let (passed, text) = support::gateway::check(&config);
        assert!(!passed, "{text}");
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
    // A function without an endpoint is a warning: such connections are
    // refused (500 with the identity, 401 without).
    let (_dir, config) = Gateway::builder()
        .extra(&base("", good_authorizer).replace(
            "key = \"$connect\"",
            "key = \"$connect\"\nauthorization_type = \"CUSTOM\"\nauthorizer = \"tokens\"",
        ))
        .write();
    let (passed, text) = support::gateway::check(&config);
    assert!(passed, "{text}");
    assert!(
        text.contains("$.websocket_apis[0].authorizers[0].uri: function arn:aws:lambda:eu-west-1:1:function:f: no endpoint for it in the config's [lambda_functions]"),
        "{text}"
    );
}
