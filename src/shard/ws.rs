//! WebSocket connections on a shard: the RFC 6455 handshake (after
//! `$connect`), the per-connection task (route selection, integrations,
//! limits, timeouts), `$disconnect`, and the `@connections` operations on
//! connections this shard owns. Framing is `async-tungstenite` over the
//! glommio stream.

use std::cell::{Cell, OnceCell};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime};

use async_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use async_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::{WebSocketReceiver, WebSocketSender, WebSocketStream};
use bytes::{Bytes, BytesMut};
use futures_lite::io::AsyncWriteExt;
use futures_util::StreamExt;
use glommio::channels::local_channel::{self, LocalSender};

use super::upstream::{self, Buffered};
use super::{authorize, Shard};
use crate::authorizer::AuthorizerOutput;
use crate::error::{ErrorKind, GatewayError};
use crate::http::request::RequestHead;
use crate::http::response::{
    write_content_length, write_date_header, write_header, write_status_line,
};
use crate::snapshot::{IdentitySource, Snapshot, UriPart};
use crate::vtl;
use crate::ws::{
    ConnOp, ConnReply, WsApi, WsAuth, WsIntegration, WsMockStatus, WsParamSource, WsParamTarget,
    WsRoute, WsStage, WsTemplate,
};

/// A message for a connection's writer.
pub enum Out {
    Text(String),
    Binary(Bytes),
    Close(u16, &'static str),
}

/// What other tasks of the shard know about a connection.
pub struct WsHandle {
    /// The API and stage the connection was opened on.
    api_id: String,
    stage: String,
    sender: LocalSender<Out>,
    queue: usize,
    /// What `@connections` GET reports besides `last_active`.
    conn: Rc<ConnInfo>,
    last_active: Rc<Cell<SystemTime>>,
    /// A close is queued (`@connections` DELETE, or a full queue): later
    /// messages would never be delivered, so they are refused as gone.
    closing: Cell<bool>,
}

/// An accepted upgrade request, to be served by [`serve`].
pub struct Upgrade {
    pub head: RequestHead,
    pub api_id: String,
    pub stage: String,
    pub snapshot: super::SnapshotRef,
}

/// Checks an upgrade request (RFC 6455 §4.2.1). `Err` is the status to
/// answer with.
pub fn check_handshake(head: &RequestHead) -> Result<String, (u16, &'static str)> {
    let has_token = |name: &str, token: &[u8]| {
        head.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .flat_map(|(_, v)| v.split(|&b| b == b','))
            .any(|t| crate::http::request::trim_ows(t).eq_ignore_ascii_case(token))
    };
    if head.method() != crate::http::request::Method::Get
        || head.info.version != crate::http::request::Version::Http11
    {
        return Err((400, "a WebSocket upgrade is an HTTP/1.1 GET"));
    }
    if !has_token("upgrade", b"websocket") || !has_token("connection", b"upgrade") {
        return Err((426, "Upgrade Required"));
    }
    if head.header("sec-websocket-version") != Some(b"13") {
        return Err((426, "Sec-WebSocket-Version: 13 required"));
    }
    let key = head
        .header("sec-websocket-key")
        .ok_or((400, "missing Sec-WebSocket-Key"))?;
    use base64::Engine;
    match base64::engine::general_purpose::STANDARD.decode(key) {
        Ok(k) if k.len() == 16 => {}
        _ => return Err((400, "invalid Sec-WebSocket-Key")),
    }
    Ok(async_tungstenite::tungstenite::handshake::derive_accept_key(key))
}

/// What a connection's events tell their integrations about it.
struct ConnInfo {
    id: String,
    source_ip: String,
    user_agent: String,
    /// The upgrade request's `Host`.
    domain_name: String,
    connected_at: SystemTime,
    /// Who connected, as `$connect`'s authorization found.
    caller: Caller,
}

/// What a `$connect` route's authorization found about the caller:
/// `$context.authorizer.*` (a Lambda authorizer's principal and context)
/// or `$context.identity.*` (an `AWS_IAM` signer), on every route of the
/// connection.
#[derive(Default)]
struct Caller {
    authorizer: Option<AuthorizerOutput>,
    /// The signing credential's name and access key id.
    iam: Option<(String, Option<String>)>,
}

/// A connection event's `$context`, as WebSocket mapping templates and
/// request parameters see it.
struct EventValues<'a> {
    conn: &'a ConnInfo,
    route_key: &'a str,
    event: &'static str,
    request_id: &'a str,
    is_message: bool,
    shard: usize,
    api_id: &'a str,
    stage: &'a WsStage,
    received: SystemTime,
    /// The upgrade request (`$connect` only): `$input.params()` of a
    /// `$connect` template reads its headers and query string.
    upgrade: Option<&'a RequestHead>,
    /// The upgrade's `Authorization` carries one of the gateway's bearer
    /// tokens: templates and mappings do not see it.
    hide_authorization: bool,
    /// Built when a template or a request parameter first asks (an echo
    /// route never does).
    context: OnceCell<BTreeMap<String, String>>,
}

impl EventValues<'_> {
    /// `$context.*`, keyed as API Gateway names them (nested names
    /// flattened: `identity.sourceIp`).
    fn context(&self) -> &BTreeMap<String, String> {
        self.context.get_or_init(|| {
            let mut m = BTreeMap::new();
            let mut put = |k: &str, v: String| {
                m.insert(k.to_owned(), v);
            };
            put("connectionId", self.conn.id.clone());
            put("routeKey", self.route_key.to_owned());
            put("eventType", self.event.to_owned());
            put("requestId", self.request_id.to_owned());
            put(
                "extendedRequestId",
                crate::ids::extended_id_text(self.request_id),
            );
            put("stage", self.stage.name.clone());
            put("apiId", self.api_id.to_owned());
            put("identity.sourceIp", self.conn.source_ip.clone());
            put("identity.userAgent", self.conn.user_agent.clone());
            put("domainName", self.conn.domain_name.clone());
            put(
                "connectedAt",
                crate::ids::epoch_millis(self.conn.connected_at).to_string(),
            );
            put(
                "requestTimeEpoch",
                crate::ids::epoch_millis(self.received).to_string(),
            );
            put("requestTime", crate::ids::clf_time(self.received));
            if self.is_message {
                put("messageId", crate::ws::new_connection_id(self.shard));
            }
            if let Some(out) = &self.conn.caller.authorizer {
                for (k, v) in &out.context {
                    put(&format!("authorizer.{k}"), v.clone());
                }
                // The principal wins over a context key of its name.
                put("authorizer.principalId", out.principal_id.clone());
            }
            if let Some((name, key)) = &self.conn.caller.iam {
                for (field, var) in crate::template::CallerField::ALL {
                    put(var, field.of(name, key.as_deref()));
                }
            }
            m
        })
    }

    /// Renders a template over `body` (the message, or the backend's
    /// response): `$input.body`, `$input.json()`, `$input.path()` read it.
    fn render(&self, t: &vtl::Template, body: &[u8]) -> Result<String, String> {
        let (query, headers) = self
            .upgrade
            .map(|h| {
                crate::integration::TemplateData::query_and_headers(h, self.hide_authorization)
            })
            .unwrap_or_default();
        let input = vtl::Input {
            body,
            path: &[],
            query: &query,
            headers: &headers,
            stage_variables: &self.stage.variables,
            context: self.context(),
        };
        t.render(&input, &vtl::Limits::default())
            .map(|r| r.body)
            .map_err(|e| format!("mapping template: {e}"))
    }

    /// A template's message: the input as it came, the fixed output, or
    /// the rendered text.
    fn message(
        &self,
        t: &WsTemplate,
        input: Option<&Message>,
        body: &[u8],
    ) -> Result<Option<Message>, String> {
        Ok(match t {
            WsTemplate::Echo => input.cloned(),
            WsTemplate::Static(b) => Some(Message::text(String::from_utf8_lossy(b).into_owned())),
            WsTemplate::Vtl(t) => Some(Message::text(self.render(t, body)?)),
        })
    }
}

/// The values of an HTTP integration's request parameters. A source with
/// no value (a header the client did not send) maps nothing; a value that
/// could split a header line (CR, LF, NUL) is dropped.
fn mapped_parameters(
    mapping: &[(WsParamTarget, WsParamSource)],
    values: &EventValues<'_>,
    stage: &WsStage,
    upgrade: Option<&RequestHead>,
) -> Vec<(WsParamTarget, String)> {
    let mut out = Vec::with_capacity(mapping.len());
    for (target, source) in mapping {
        let value = match source {
            WsParamSource::Header(n)
                if values.hide_authorization && n.eq_ignore_ascii_case("authorization") =>
            {
                None
            }
            WsParamSource::Header(n) => upgrade
                .and_then(|h| h.header(n))
                .map(|v| String::from_utf8_lossy(v).into_owned()),
            WsParamSource::Query(n) => {
                upgrade.and_then(|h| crate::http::query::last_value(h.query()?, n))
            }
            WsParamSource::StageVariable(n) => stage.variables.get(n).cloned(),
            WsParamSource::Context(n) => values.context().get(n).filter(|v| !v.is_empty()).cloned(),
            WsParamSource::Literal(l) => Some(l.clone()),
        };
        if let Some(v) = value.filter(|v| !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0))) {
            out.push((target.clone(), v));
        }
    }
    out
}

/// The outcome of running a route's integration.
struct Outcome {
    status: u16,
    /// The body to send back (with a route response).
    body: Option<Message>,
    /// The backend's `Sec-WebSocket-Protocol` (HTTP integrations): on
    /// `$connect`, the subprotocol chosen for the connection.
    subprotocol: Option<String>,
}

/// Runs a route's integration for an event.
#[allow(clippy::too_many_arguments)]
async fn run_integration(
    shard: &Shard,
    snap: &Snapshot,
    api: &WsApi,
    stage: &WsStage,
    route: &WsRoute,
    conn: &ConnInfo,
    event: &'static str,
    message: Option<&Message>,
    upgrade: Option<&RequestHead>,
    request_id: &str,
) -> Result<Outcome, String> {
    let (body_bytes, is_text): (Bytes, bool) = match message {
        // Shares the message's buffer (a reference count, no copy).
        Some(Message::Text(t)) => (Bytes::from(t.clone()), true),
        Some(Message::Binary(b)) => (b.clone(), false),
        _ => (Bytes::new(), true),
    };
    let values = EventValues {
        conn,
        route_key: &route.key,
        event,
        request_id,
        is_message: message.is_some(),
        shard: shard.index,
        api_id: &api.id,
        stage,
        received: SystemTime::now(),
        upgrade,
        hide_authorization: upgrade.is_some_and(|h| hides_authorization(snap, h)),
        context: OnceCell::new(),
    };
    match &route.integration {
        WsIntegration::Mock {
            status,
            response_template,
        } => {
            let status = match status {
                WsMockStatus::Fixed(s) => *s,
                WsMockStatus::Rendered(t) => {
                    let out = values.render(t, &body_bytes)?;
                    crate::integration::parse_mock_status(out.as_bytes()).unwrap_or(500)
                }
            };
            let body = match response_template {
                None => None,
                Some(t) => values.message(t, message, &body_bytes)?,
            };
            Ok(Outcome {
                status,
                body,
                subprotocol: None,
            })
        }
        WsIntegration::Http {
            timeout,
            request_parameters,
            request_template,
            response_template,
            ..
        } => {
            let params = mapped_parameters(request_parameters, &values, stage, upgrade);
            // The body POSTed: the message as it came, or what the
            // request template makes of it (text, sent as JSON).
            let (body_bytes, is_text) = match request_template {
                None | Some(WsTemplate::Echo) => (body_bytes, is_text),
                Some(WsTemplate::Static(b)) => (b.clone(), true),
                Some(WsTemplate::Vtl(t)) => (Bytes::from(values.render(t, &body_bytes)?), true),
            };
            let binding = stage.bindings.get(&route.key).ok_or_else(|| {
                format!("route {} has no backend in stage {}", route.key, stage.name)
            })?;
            let target = snap
                .targets
                .get(binding.target as usize)
                .ok_or("unknown backend")?;
            let addrs = shard.addresses(target).map_err(|e| e.to_string())?;
            let tls = upstream::TlsTo::for_target(snap, target).map_err(|e| e.to_string())?;
            let mut req = Vec::with_capacity(256 + body_bytes.len());
            req.extend_from_slice(b"POST ");
            let mut any = false;
            for p in &binding.path {
                if let UriPart::Text(t) = p {
                    req.extend_from_slice(t.as_bytes());
                    any = true;
                }
            }
            if !any {
                req.push(b'/');
            }
            let mut sep = b'?';
            for (t, v) in &params {
                if let WsParamTarget::Query(name) = t {
                    req.push(sep);
                    sep = b'&';
                    crate::http::query::encode_component(name, &mut req);
                    req.push(b'=');
                    crate::http::query::encode_component(v, &mut req);
                }
            }
            req.extend_from_slice(b" HTTP/1.1\r\n");
            write_header(&mut req, b"Host", binding.host_header.as_bytes());
            write_header(
                &mut req,
                b"Content-Type",
                if is_text {
                    b"application/json"
                } else {
                    b"application/octet-stream"
                },
            );
            write_header(&mut req, b"X-Amzn-ConnectionId", conn.id.as_bytes());
            write_header(&mut req, b"X-Amzn-RouteKey", route.key.as_bytes());
            write_header(&mut req, b"X-Amzn-Stage", stage.name.as_bytes());
            write_header(&mut req, b"X-Amzn-EventType", event.as_bytes());
            write_header(&mut req, b"X-Amzn-RequestId", request_id.as_bytes());
            write_header(&mut req, b"X-Amzn-Apigateway-Api-Id", api.id.as_bytes());
            for (t, v) in &params {
                if let WsParamTarget::Header(name) = t {
                    write_header(&mut req, name.as_bytes(), v.as_bytes());
                }
            }
            write_content_length(&mut req, body_bytes.len() as u64);
            req.extend_from_slice(b"\r\n");
            req.extend_from_slice(&body_bytes);
            let deadline = Instant::now() + *timeout;
            let settings = snap.upstream;
            let mut resp = upstream::send(
                &shard.pool,
                &shard.scratch,
                &shard.timers,
                &settings,
                &addrs,
                tls,
                &req,
                false,
                false,
                deadline,
            )
            .await
            .map_err(|e| e.to_string())?;
            let body = match resp
                .buffer_body(
                    &shard.scratch,
                    &shard.timers,
                    snap.ws_limits.max_message_bytes,
                    deadline,
                )
                .await
                .map_err(|e| e.to_string())?
            {
                Buffered::Complete(b) => b,
                Buffered::Partial(_) => {
                    return Err("backend response larger than a WebSocket message".into())
                }
            };
            let status = resp.head.status;
            let subprotocol = resp
                .header("sec-websocket-protocol")
                .map(|v| String::from_utf8_lossy(crate::http::request::trim_ows(v)).into_owned());
            resp.release(&shard.pool, &settings);
            let as_message = |body: Bytes| match std::str::from_utf8(&body) {
                Ok(s) => Message::text(s.to_owned()),
                Err(_) => Message::binary(body),
            };
            let message = match response_template {
                None | Some(WsTemplate::Echo) if body.is_empty() => None,
                None | Some(WsTemplate::Echo) => Some(as_message(body)),
                Some(t) => values.message(t, None, &body)?,
            };
            Ok(Outcome {
                status,
                body: message,
                subprotocol,
            })
        }
    }
}

/// Whether the upgrade's `Authorization` carries one of the gateway's own
/// bearer tokens: templates, mappings and authorizers do not see it.
fn hides_authorization(snap: &Snapshot, head: &RequestHead) -> bool {
    !snap.credentials.is_empty()
        && head.headers().any(|(n, v)| {
            n.eq_ignore_ascii_case(b"authorization")
                && crate::auth::is_gateway_bearer(&snap.credentials, v)
        })
}

/// `$connect`'s authorization (before its integration, as API Gateway
/// runs them): who the caller is, or the refusal.
#[allow(clippy::too_many_arguments)]
async fn authorize(
    shard: &Shard,
    snap: &Snapshot,
    api: &WsApi,
    stage: &WsStage,
    route: &WsRoute,
    conn: &ConnInfo,
    head: &RequestHead,
    request_id: &str,
) -> Result<Caller, GatewayError> {
    let arn = || {
        format!(
            "arn:aws:execute-api:local:000000000000:{}/{}/$connect",
            api.id, stage.name
        )
    };
    match &route.auth {
        WsAuth::None => Ok(Caller::default()),
        WsAuth::Iam => {
            let headers: Vec<(&[u8], &[u8])> = head.headers().collect();
            let parts = crate::auth::RequestParts::of(head, &headers, b"");
            // A signature (header or presigned URL), never a bearer
            // token: `sigv4_signer` refuses anything else, then the
            // signature itself is checked.
            let now = SystemTime::now();
            crate::auth::sigv4_signer(&snap.credentials, &parts, "execute-api", now)
                .map_err(authorize::iam_error)?;
            let cred = crate::auth::authenticate(&snap.credentials, &parts, "execute-api", now)
                .map_err(authorize::iam_error)?;
            if !cred.permissions.invoke {
                return Err(authorize::no_invoke(cred, &arn()));
            }
            Ok(Caller {
                authorizer: None,
                iam: Some((cred.name.clone(), cred.access_key_id.clone())),
            })
        }
        WsAuth::Lambda(a) => {
            let values = EventValues {
                conn,
                route_key: &route.key,
                event: "CONNECT",
                request_id,
                is_message: false,
                shard: shard.index,
                api_id: &api.id,
                stage,
                received: SystemTime::now(),
                upgrade: Some(head),
                hide_authorization: hides_authorization(snap, head),
                context: OnceCell::new(),
            };
            authorize::identity_values(a, |src| match src {
                IdentitySource::Header(n)
                    if values.hide_authorization && n.eq_ignore_ascii_case("authorization") =>
                {
                    None
                }
                IdentitySource::Header(n) => head
                    .header(n)
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                IdentitySource::Query(n) => crate::http::query::last_value(head.query()?, n),
                IdentitySource::StageVar(n) => stage.variables.get(n).cloned(),
                IdentitySource::Context(n) => values.context().get(n).cloned(),
            })?;
            let endpoint = a
                .function
                .as_ref()
                .and_then(|f| snap.lambda_functions.get(f))
                .ok_or_else(|| {
                    GatewayError::new(
                        ErrorKind::AuthorizerConfiguration,
                        format!(
                            "Lambda authorizer `{}`: no endpoint is configured for its function {}",
                            a.name,
                            a.function.as_deref().unwrap_or("(none)")
                        ),
                    )
                })?;
            let arn = arn();
            let event = connect_event(&values, head, &arn);
            let out =
                authorize::call_endpoint(shard, snap, a, endpoint, &event, request_id).await?;
            if let Some(refusal) = authorize::judge(&out, a, &arn) {
                return Err(refusal);
            }
            Ok(Caller {
                authorizer: Some(out),
                iam: None,
            })
        }
    }
}

/// API Gateway's REQUEST authorizer event for a WebSocket `$connect`: the
/// upgrade request's headers and query string, the stage variables and
/// the connection's request context (no path, method or path parameters).
fn connect_event(values: &EventValues<'_>, head: &RequestHead, arn: &str) -> serde_json::Value {
    let (headers, multi_headers) = authorize::header_maps(head, values.hide_authorization);
    let (query, multi_query) = authorize::query_maps(head);
    let ctx = values.context();
    let text = |k: &str| ctx.get(k).cloned().unwrap_or_default();
    let number = |k: &str| {
        ctx.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_default()
    };
    serde_json::json!({
        "type": "REQUEST",
        "methodArn": arn,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "stageVariables": authorize::stage_variables(&values.stage.variables),
        "requestContext": {
            "routeKey": values.route_key,
            "eventType": values.event,
            "extendedRequestId": text("extendedRequestId"),
            "requestTime": text("requestTime"),
            "messageDirection": "IN",
            "stage": values.stage.name,
            "connectedAt": number("connectedAt"),
            "requestTimeEpoch": number("requestTimeEpoch"),
            "identity": {
                "sourceIp": text("identity.sourceIp"),
                "userAgent": text("identity.userAgent"),
            },
            "requestId": values.request_id,
            "domainName": text("domainName"),
            "connectionId": values.conn.id,
            "apiId": values.api_id,
        },
    })
}

/// Whether the client offered subprotocol `p` (`Sec-WebSocket-Protocol`,
/// comma-separated, on one line or several). As in API Gateway the
/// `$connect` integration chooses, by answering with the header; one the
/// client did not offer is not sent (RFC 6455 §4.1: the client would fail
/// the connection).
fn offered(head: &RequestHead, p: &str) -> bool {
    crate::http::request::list_elements(head.header_values("sec-websocket-protocol"))
        .any(|t| t == p.as_bytes())
}

/// Answers an upgrade request: `$connect`, then the 101 and the
/// connection task. Consumes the client connection.
pub async fn serve(
    shard: Rc<Shard>,
    mut stream: super::stream::Stream,
    peer: SocketAddr,
    leftover: BytesMut,
    up: Upgrade,
) {
    let snap = up.snapshot.clone();
    let Some(api) = snap.ws_apis.iter().find(|a| a.id == up.api_id) else {
        return;
    };
    let Some(stage) = api.stage(&up.stage) else {
        return;
    };
    let accept = match check_handshake(&up.head) {
        Ok(a) => a,
        Err((status, why)) => {
            let rid = crate::ids::new_request_id();
            let request_id = std::str::from_utf8(&rid).unwrap_or("");
            let _ = refuse(&mut stream, status, why, request_id).await;
            return;
        }
    };
    let header = |name: &str| {
        up.head
            .header(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    };
    let mut conn = ConnInfo {
        id: crate::ws::new_connection_id(shard.index),
        source_ip: peer.ip().to_string(),
        user_agent: header("user-agent"),
        domain_name: header("host"),
        connected_at: SystemTime::now(),
        caller: Caller::default(),
    };

    // $connect decides whether the connection opens (its authorization,
    // then its integration), and which of the client's subprotocols it
    // speaks.
    let mut subprotocol = None;
    let connect = api.routes.get("$connect");
    let rid = crate::ids::new_request_id();
    let request_id = std::str::from_utf8(&rid).unwrap_or("");
    if let Some(route) = connect {
        match Box::pin(authorize(
            &shard, &snap, api, stage, route, &conn, &up.head, request_id,
        ))
        .await
        {
            Ok(caller) => conn.caller = caller,
            Err(e) => {
                if e.side == crate::error::Side::Downstream {
                    tracing::debug!(request_id, error = %e, "WebSocket connection refused");
                } else {
                    shard.log_failure(request_id, &e);
                }
                let _ = refuse_error(&mut stream, &e, request_id).await;
                return;
            }
        }
    }
    let conn = Rc::new(conn);
    if let Some(route) = connect {
        match Box::pin(run_integration(
            &shard,
            &snap,
            api,
            stage,
            route,
            &conn,
            "CONNECT",
            None,
            Some(&up.head),
            request_id,
        ))
        .await
        {
            Ok(o) if (200..300).contains(&o.status) => {
                subprotocol = o.subprotocol.filter(|p| offered(&up.head, p));
            }
            Ok(o) => {
                let _ = refuse(&mut stream, o.status, "Forbidden", request_id).await;
                return;
            }
            Err(e) => {
                shard.log_failure(request_id, &e);
                let _ = refuse(&mut stream, 500, "Internal server error", request_id).await;
                return;
            }
        }
    }
    let mut head = Vec::with_capacity(256);
    write_status_line(&mut head, 101);
    write_header(&mut head, b"Upgrade", b"websocket");
    write_header(&mut head, b"Connection", b"Upgrade");
    write_header(&mut head, b"Sec-WebSocket-Accept", accept.as_bytes());
    if let Some(p) = &subprotocol {
        write_header(&mut head, b"Sec-WebSocket-Protocol", p.as_bytes());
    }
    write_header(&mut head, b"x-amzn-ConnectionId", conn.id.as_bytes());
    head.extend_from_slice(b"\r\n");
    if stream.write_all(&head).await.is_err() || stream.flush().await.is_err() {
        return;
    }

    let limits = snap.ws_limits;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_frame_size(Some(limits.max_frame_bytes))
        .max_message_size(Some(limits.max_message_bytes));
    let ws =
        WebSocketStream::from_partially_read(stream, leftover.to_vec(), Role::Server, Some(config))
            .await;
    let (mut sink, mut incoming) = ws.split();
    // One slot more than the data queue: a close always fits.
    let (tx, rx) = local_channel::new_bounded::<Out>(limits.send_queue + 1);
    let now = SystemTime::now();
    let last_active = Rc::new(Cell::new(now));
    shard.ws.borrow_mut().insert(
        conn.id.clone(),
        WsHandle {
            api_id: api.id.clone(),
            stage: up.stage.clone(),
            sender: tx,
            queue: limits.send_queue,
            conn: conn.clone(),
            last_active: last_active.clone(),
            closing: Cell::new(false),
        },
    );
    let count = |f: &dyn Fn(&mut crate::metrics::WsStats)| {
        if snap.server.metrics {
            f(shard.metrics.borrow_mut().ws(&api.id, &up.stage));
        }
    };
    count(&|s| s.opened += 1);
    let started = Instant::now();
    let mut last_activity = Instant::now();
    // Set when a Close frame was sent or received: the handshake is ended
    // by `finish_close` once the connection is unregistered.
    let mut close_wait = false;

    enum Ev {
        In(Option<Result<Message, WsError>>),
        Out(Option<Out>),
        Timer,
        /// The running message's integration ended, with this reply.
        Done(Option<Message>),
    }
    // The message whose integration runs (boxed: an idle connection's
    // future holds no integration state; 28.3 -> 14.7 KiB per idle
    // WebSocket connection, loadtest j2), and the messages read meanwhile.
    let mut running = None;
    let mut queued: VecDeque<Message> = VecDeque::new();
    loop {
        let idle_deadline = last_activity + limits.idle_timeout;
        let max_deadline = started + limits.max_duration;
        let deadline = idle_deadline.min(max_deadline);
        // A client that pipelines faster than its integrations answer is
        // not read beyond MAX_QUEUED messages (TCP pushes back).
        let read = queued.len() < MAX_QUEUED;
        let ev = futures_lite::future::or(
            async {
                match running.as_mut() {
                    Some(f) => Ev::Done(f.await),
                    None => std::future::pending().await,
                }
            },
            futures_lite::future::or(
                async {
                    if read {
                        Ev::In(incoming.next().await)
                    } else {
                        std::future::pending().await
                    }
                },
                futures_lite::future::or(async { Ev::Out(rx.recv().await) }, async {
                    // Idle timers fire early when the shard drains.
                    shard.idle_timers.sleep_until(deadline).await;
                    Ev::Timer
                }),
            ),
        )
        .await;
        // A close we start: our Close frame, then (after the loop) the
        // client's reply awaited, bounded, so the socket is not closed under
        // unread input.
        match ev {
            Ev::Timer => {
                // Idle or at the maximum duration: 1001 Going Away.
                if sink.send(close_message(1001, "Going away")).await.is_ok() {
                    close_wait = true;
                }
                break;
            }
            Ev::Out(None) => break,
            Ev::Out(Some(out)) => {
                let msg = match out {
                    Out::Text(t) => Message::text(t),
                    Out::Binary(b) => Message::binary(b),
                    Out::Close(code, why) => {
                        if sink.send(close_message(code, why)).await.is_ok() {
                            close_wait = true;
                        }
                        break;
                    }
                };
                if sink.send(msg).await.is_err() {
                    break;
                }
                // Traffic either way keeps a connection from idling out.
                last_activity = Instant::now();
                last_active.set(SystemTime::now());
                count(&|s| s.messages_out += 1);
            }
            Ev::In(None) | Ev::In(Some(Err(WsError::ConnectionClosed))) => break,
            Ev::In(Some(Err(e))) => {
                // RFC 6455 7.1.7 / 7.4.1: fail the connection with a Close
                // frame that says why.
                let (code, why) = match e {
                    WsError::Capacity(_) => (1009, "Message too big"),
                    WsError::Utf8(_) => (1007, "Invalid frame payload data"),
                    WsError::Protocol(_) => (1002, "Protocol error"),
                    e => {
                        tracing::debug!(error = %e, "WebSocket read failed");
                        break;
                    }
                };
                if sink.send(close_message(code, why)).await.is_ok() {
                    close_wait = true;
                }
                break;
            }
            Ev::In(Some(Ok(msg))) => {
                last_activity = Instant::now();
                last_active.set(SystemTime::now());
                match msg {
                    Message::Text(_) => {}
                    Message::Binary(_) if limits.binary_frames => {}
                    Message::Binary(_) => {
                        // API Gateway: "If a client app sends a binary frame,
                        // API Gateway rejects it and disconnects the client
                        // with code 1003."
                        let bye = close_message(1003, "Binary frames are not supported");
                        if sink.send(bye).await.is_ok() {
                            close_wait = true;
                        }
                        break;
                    }
                    Message::Close(_) => {
                        // The protocol layer has queued the Close reply
                        // (echoing the client's code); reading on writes it
                        // and ends the handshake.
                        close_wait = true;
                        break;
                    }
                    // Pings are answered by the protocol layer.
                    _ => continue,
                }
                count(&|s| s.messages_in += 1);
                // One message's integration at a time, in order; the loop
                // keeps reading meanwhile, so pings, a Close and pushes are
                // served while a slow backend answers.
                // A reload that removed the API or stage ends its
                // connections at their next message.
                let now = shard.snapshot();
                if ws_stage(&now, &api.id, &stage.name).is_none() {
                    if sink.send(close_message(1001, "Going away")).await.is_ok() {
                        close_wait = true;
                    }
                    break;
                }
                if running.is_none() {
                    running = Some(Box::pin(handle_message(
                        &shard,
                        now,
                        &api.id,
                        &stage.name,
                        &conn,
                        msg,
                    )));
                } else {
                    queued.push_back(msg);
                }
            }
            Ev::Done(reply) => {
                running = queued.pop_front().map(|m| {
                    Box::pin(handle_message(
                        &shard,
                        shard.snapshot(),
                        &api.id,
                        &stage.name,
                        &conn,
                        m,
                    ))
                });
                if let Some(reply) = reply {
                    if sink.send(reply).await.is_err() {
                        break;
                    }
                    count(&|s| s.messages_out += 1);
                }
            }
        }
    }
    drop(running);
    // Gone for the @connections API from here on, also while the close
    // handshake ends.
    shard.ws.borrow_mut().remove(&conn.id);
    count(&|s| s.closed += 1);
    if close_wait {
        finish_close(sink, incoming, &shard).await;
    } else {
        drop(sink);
        drop(incoming);
    }
    // $disconnect: once per connection, whoever closed it (best effort),
    // as the configuration in force says (none if a reload removed the API).
    let now = shard.snapshot();
    let Some((api, stage)) = ws_stage(&now, &api.id, &stage.name) else {
        return;
    };
    if let Some(route) = api.routes.get("$disconnect") {
        let _ = Box::pin(run_integration(
            &shard,
            &now,
            api,
            stage,
            route,
            &conn,
            "DISCONNECT",
            None,
            None,
            std::str::from_utf8(&crate::ids::new_request_id()).unwrap_or(""),
        ))
        .await;
    }
}

/// A WebSocket API's stage in a snapshot.
fn ws_stage<'s>(snap: &'s Snapshot, api_id: &str, stage: &str) -> Option<(&'s WsApi, &'s WsStage)> {
    let api = snap.ws_apis.iter().find(|a| a.id == api_id)?;
    Some((api, api.stage(stage)?))
}

/// Messages of one connection read ahead while its integration runs.
const MAX_QUEUED: usize = 16;

/// One message: its route, its integration, and the reply to send back,
/// by the configuration in force when the message arrived (`snap`: a
/// reload reaches open connections at their next message).
async fn handle_message(
    shard: &Shard,
    snap: super::SnapshotRef,
    api_id: &str,
    stage_name: &str,
    conn: &ConnInfo,
    msg: Message,
) -> Option<Message> {
    let rid = crate::ids::new_request_id();
    let request_id = std::str::from_utf8(&rid).unwrap_or("");
    // API Gateway's error frame, spacing included (clients compare it):
    // `{"message": "Forbidden", "connectionId":"…", "requestId":"…"}`.
    let error = |message: &str| {
        use crate::gateway_response::json_quote;
        Some(Message::text(format!(
            "{{\"message\": {}, \"connectionId\":{}, \"requestId\":{}}}",
            json_quote(message),
            json_quote(&conn.id),
            json_quote(request_id)
        )))
    };
    let Some((api, stage)) = ws_stage(&snap, api_id, stage_name) else {
        return error("Forbidden");
    };
    let data: &[u8] = match &msg {
        Message::Text(t) => t.as_bytes(),
        Message::Binary(b) => b,
        _ => &[],
    };
    let key = api.selection.route_key(data);
    // (`request_id`: one id for the integration's `$context.requestId` and
    // an error reply's `requestId`.)
    let Some(route) = api.route(key.as_deref()) else {
        return error("Forbidden");
    };
    let outcome = run_integration(
        shard,
        &snap,
        api,
        stage,
        route,
        conn,
        "MESSAGE",
        Some(&msg),
        None,
        request_id,
    )
    .await;
    match outcome {
        // A reply is a message like any other: at most max_message_bytes
        // (the backend's body is read up to that much; a template could
        // make more).
        Ok(Outcome { body: Some(m), .. })
            if route.route_response && m.len() > snap.ws_limits.max_message_bytes =>
        {
            tracing::debug!(bytes = m.len(), "WebSocket reply over max_message_bytes");
            error("Internal server error")
        }
        Ok(o) if route.route_response => o.body,
        Ok(_) => None,
        Err(e) => {
            shard.log_failure(request_id, &e);
            error("Internal server error")
        }
    }
}

/// How long a closing connection waits for the client's Close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The most a closing connection reads (and drops) of what the client
/// still sends.
const CLOSE_DRAIN_BYTES: usize = 1 << 20;

/// After a Close frame was sent or received: reads on until the close
/// handshake completes (which also writes a queued Close reply), the client
/// goes, or [`CLOSE_WAIT`] passes. Messages that arrive meanwhile are
/// dropped, as RFC 6455 lets a closing endpoint do. Then bytes the protocol
/// layer left unread (the rest of a frame over the size limit) are read
/// and dropped, without waiting for more: a socket closed with unread input
/// sends a reset, which can make the client lose our Close frame (1009).
async fn finish_close(
    sink: WebSocketSender<super::stream::Stream>,
    mut incoming: WebSocketReceiver<super::stream::Stream>,
    shard: &Shard,
) {
    let deadline = Instant::now() + CLOSE_WAIT;
    let drain = async { while let Some(Ok(_)) = incoming.next().await {} };
    let _ = shard.idle_timers.deadline(deadline, drain).await;
    let Ok(ws) = WebSocketStream::reunite(sink, incoming) else {
        return;
    };
    let mut stream = ws.into_inner();
    let leftovers = async {
        let mut junk = BytesMut::new();
        let mut dropped = 0;
        while dropped < CLOSE_DRAIN_BYTES {
            if crate::sock::peek(stream.tcp()) != crate::sock::Waiting::Bytes {
                break;
            }
            junk.clear();
            match super::io::read_some(&mut stream, &shard.scratch, &mut junk).await {
                Ok(n) if n > 0 => dropped += n,
                _ => break,
            }
        }
    };
    let _ = shard.idle_timers.deadline(deadline, leftovers).await;
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }))
}

/// A refused upgrade, with the request's ids as every answer has them.
async fn refuse(
    stream: &mut super::stream::Stream,
    status: u16,
    why: &str,
    request_id: &str,
) -> std::io::Result<()> {
    refuse_with(stream, status, Some(why), None, request_id).await
}

/// An upgrade refused by `$connect`'s authorization: the status, message
/// (`null` for the authorizer failures, as API Gateway's) and
/// `x-amzn-ErrorType` of the error's gateway response type.
async fn refuse_error(
    stream: &mut super::stream::Stream,
    e: &GatewayError,
    request_id: &str,
) -> std::io::Result<()> {
    let t = e.response_type();
    refuse_with(
        stream,
        t.default_status(),
        e.message(),
        Some(t.error_type()),
        request_id,
    )
    .await
}

async fn refuse_with(
    stream: &mut super::stream::Stream,
    status: u16,
    why: Option<&str>,
    error_type: Option<&str>,
    request_id: &str,
) -> std::io::Result<()> {
    let body = serde_json::json!({ "message": why }).to_string();
    let mut out = Vec::with_capacity(256);
    write_status_line(&mut out, status);
    write_date_header(&mut out);
    write_header(&mut out, b"x-amzn-RequestId", request_id.as_bytes());
    write_header(
        &mut out,
        b"x-amz-apigw-id",
        &crate::ids::extended_id(request_id),
    );
    if let Some(t) = error_type {
        write_header(&mut out, b"x-amzn-ErrorType", t.as_bytes());
    }
    if status == 426 {
        write_header(&mut out, b"Sec-WebSocket-Version", b"13");
    }
    write_header(&mut out, b"Content-Type", b"application/json");
    write_content_length(&mut out, body.len() as u64);
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(body.as_bytes());
    stream.write_all(&out).await?;
    stream.flush().await
}

/// An `@connections` operation on a connection this shard owns, called
/// through the API and stage `api`/`stage`: a connection of another API or
/// stage is gone for it, as the management endpoint is per API and stage.
pub fn connection_op(shard: &Shard, id: &str, api: &str, stage: &str, op: ConnOp) -> ConnReply {
    let registry = shard.ws.borrow();
    let Some(h) = registry
        .get(id)
        .filter(|h| h.api_id == api && h.stage == stage)
    else {
        return ConnReply::Gone;
    };
    if h.closing.get() {
        return ConnReply::Gone;
    }
    match op {
        ConnOp::Get => ConnReply::Info {
            connected_at: h.conn.connected_at,
            last_active_at: h.last_active.get(),
            source_ip: h.conn.source_ip.clone(),
            user_agent: h.conn.user_agent.clone(),
        },
        ConnOp::Delete => {
            h.closing.set(true);
            let _ = h
                .sender
                .try_send(Out::Close(1000, "Closed by the @connections API"));
            ConnReply::Deleted
        }
        ConnOp::Send(data) => {
            let out = match String::from_utf8(data) {
                Ok(s) => Out::Text(s),
                Err(e) => Out::Binary(Bytes::from(e.into_bytes())),
            };
            if h.sender.len() >= h.queue {
                // A client that does not read cannot make us buffer without
                // bound: it is disconnected (1013 Try Again Later).
                h.closing.set(true);
                let _ = h.sender.try_send(Out::Close(1013, "Send queue full"));
                return ConnReply::LimitExceeded;
            }
            match h.sender.try_send(out) {
                Ok(()) => ConnReply::Sent,
                Err(_) => ConnReply::Gone,
            }
        }
    }
}
