//! WebSocket APIs, the parts that are plain code: the compiled API (routes,
//! integrations, stages), route selection expressions, connection ids and
//! the `@connections` messages. The connection task itself is in
//! `shard::ws`.
//!
//! Route selection as API Gateway: `$request.body.action` reads a JSON path
//! of the message, `${request.body.a}/${request.body.b}` interpolates, a
//! missing path is `""`, a non-JSON message or an unmatched key goes to
//! `$default`.
//! Read first: [`SelectionExpr::route_key`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use base64::Engine;

use crate::snapshot::{TargetId, UriPart};
use crate::vtl;

/// A compiled `route_selection_expression`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectionExpr {
    parts: Vec<SelPart>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum SelPart {
    Text(String),
    /// `request.body.a[0]['b c']` → `[Key("a"), Index(0), Key("b c")]`
    Body(Vec<Seg>),
}

/// One step of a body path: a member name or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

impl SelectionExpr {
    pub fn parse(expr: &str) -> Result<SelectionExpr, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut rest = expr;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("\\$") {
                text.push('$');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("${") {
                let end = after
                    .find('}')
                    .ok_or_else(|| format!("unclosed `${{` in `{expr}`"))?;
                push_text(&mut parts, &mut text);
                parts.push(body_path(&after[..end])?);
                rest = &after[end + 1..];
            } else if let Some(after) = rest.strip_prefix('$') {
                // The path runs over names, dots and `[...]` subscripts
                // (a quoted name may hold `]`).
                let mut end = 0;
                while let Some(c) = after[end..].chars().next() {
                    if c == '[' {
                        end += subscript(&after[end..])
                            .ok_or_else(|| format!("unclosed `[` in `{expr}`"))?;
                    } else if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                        end += 1;
                    } else {
                        break;
                    }
                }
                push_text(&mut parts, &mut text);
                parts.push(body_path(&after[..end])?);
                rest = &after[end..];
            } else {
                let c = rest.chars().next().unwrap_or(' ');
                text.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
        push_text(&mut parts, &mut text);
        if parts.is_empty() {
            return Err("empty route selection expression".to_owned());
        }
        Ok(SelectionExpr { parts })
    }

    /// The route key for a message; `None` when the message is not JSON
    /// (it then goes to `$default`).
    pub fn route_key(&self, message: &[u8]) -> Option<String> {
        let needs_json = self.parts.iter().any(|p| matches!(p, SelPart::Body(_)));
        let json: Option<serde_json::Value> = if needs_json {
            Some(serde_json::from_slice(message).ok()?)
        } else {
            None
        };
        let mut out = String::new();
        for p in &self.parts {
            match p {
                SelPart::Text(t) => out.push_str(t),
                SelPart::Body(path) => {
                    let mut v = json.as_ref();
                    for seg in path {
                        v = v.and_then(|v| match seg {
                            Seg::Key(k) => v.get(k),
                            Seg::Index(i) => v.get(i),
                        });
                    }
                    match v {
                        Some(serde_json::Value::String(s)) => out.push_str(s),
                        Some(serde_json::Value::Null) | None => {}
                        Some(other) => out.push_str(&other.to_string()),
                    }
                }
            }
        }
        Some(out)
    }
}

fn push_text(parts: &mut Vec<SelPart>, text: &mut String) {
    if !text.is_empty() {
        parts.push(SelPart::Text(std::mem::take(text)));
    }
}

/// The length of the `[...]` subscript `s` starts with: up to its `]`,
/// past a quoted name's closing quote (`['a]b']`). `None` if unclosed.
fn subscript(s: &str) -> Option<usize> {
    let inner = s.strip_prefix('[')?;
    let from = match inner.trim_start().chars().next() {
        Some(q @ ('\'' | '"')) => {
            let open = inner.find(q)?;
            open + 1 + inner[open + 1..].find(q)? + 1
        }
        _ => 0,
    };
    Some(1 + from + inner[from..].find(']')? + 1)
}

/// `request.body` and a JSONPath-style path under it: `.name`, `[n]`
/// (an array index), `['name']` or `["name"]` (any member name). Anything
/// else (`..a`, `a[0]b`, an empty name) is refused.
fn body_path(name: &str) -> Result<SelPart, String> {
    let mut rest = name.strip_prefix("request.body").ok_or_else(|| {
        format!("`${name}`: only $request.body.* is supported in a route selection expression")
    })?;
    let mut segs = Vec::new();
    let bad = |why: &str| format!("`${name}`: {why}");
    while !rest.is_empty() {
        if rest.starts_with('[') {
            let len = subscript(rest).ok_or_else(|| bad("unclosed `[`"))?;
            let inner = rest[1..len - 1].trim();
            let quoted = ['\'', '"']
                .iter()
                .find_map(|q| inner.strip_prefix(*q).and_then(|i| i.strip_suffix(*q)));
            segs.push(match quoted {
                Some(key) => Seg::Key(key.to_owned()),
                None => Seg::Index(inner.parse().map_err(|_| {
                    bad("a subscript is an array index (`[0]`) or a quoted name (`['a b']`)")
                })?),
            });
            rest = &rest[len..];
        } else if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end == 0 {
                return Err(bad("an empty name (`..` or a `.` before `[`)"));
            }
            segs.push(Seg::Key(after[..end].to_owned()));
            rest = &after[end..];
        } else {
            return Err(bad(
                "expected `.name` or a `[...]` subscript after a subscript",
            ));
        }
    }
    Ok(SelPart::Body(segs))
}

/// A connection id: the owning shard in the first byte, then randomness,
/// base64 like API Gateway's (`L0SM9cOFvHcCIhw=`).
pub fn new_connection_id(shard: usize) -> String {
    let mut bytes = [0u8; 12];
    bytes[0] = shard as u8;
    for b in &mut bytes[1..] {
        *b = fastrand::u8(..);
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The shard that owns a connection id.
pub fn shard_of(id: &str) -> Option<usize> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(id).ok()?;
    (bytes.len() == 12).then(|| bytes[0] as usize)
}

#[derive(Clone, Copy, Debug)]
pub struct WsLimits {
    pub max_frame_bytes: usize,
    pub max_message_bytes: usize,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub send_queue: usize,
    /// Binary messages accepted (an extension) instead of closed with 1003.
    pub binary_frames: bool,
}

impl Default for WsLimits {
    fn default() -> Self {
        WsLimits {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout: Duration::from_secs(600),
            max_duration: Duration::from_secs(7200),
            send_queue: 64,
            binary_frames: false,
        }
    }
}

#[derive(Debug)]
pub struct WsApi {
    pub id: String,
    pub selection: SelectionExpr,
    pub stages: Vec<WsStage>,
    pub routes: HashMap<String, WsRoute>,
}

impl WsApi {
    pub fn stage(&self, name: &str) -> Option<&WsStage> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// The route for a key: the key's own, else `$default`.
    /// The route of a message: its selected key's, else `$default`. The
    /// lifecycle routes `$connect` and `$disconnect` run only for the
    /// connection's opening and end, never for a message that names them.
    pub fn route(&self, key: Option<&str>) -> Option<&WsRoute> {
        key.filter(|k| *k != "$connect" && *k != "$disconnect")
            .and_then(|k| self.routes.get(k))
            .or_else(|| self.routes.get("$default"))
    }
}

#[derive(Debug)]
pub struct WsStage {
    pub name: String,
    pub variables: BTreeMap<String, String>,
    /// Per route key: where its HTTP integration goes in this stage.
    pub bindings: HashMap<String, WsBinding>,
}

#[derive(Debug)]
pub struct WsBinding {
    pub target: TargetId,
    pub host_header: String,
    pub path: Vec<UriPart>,
}

#[derive(Debug)]
pub struct WsRoute {
    pub key: String,
    pub integration: WsIntegration,
    /// Send the integration's response back to the client as a message.
    pub route_response: bool,
    /// Who may connect (`$connect` only, as in API Gateway).
    pub auth: WsAuth,
}

/// A `$connect` route's authorization: checked on the upgrade request,
/// before its integration runs; what it finds about the caller is the
/// connection's `$context.authorizer.*` / `$context.identity.*` on every
/// route until it closes.
#[derive(Clone, Debug, Default)]
pub enum WsAuth {
    #[default]
    None,
    /// `AWS_IAM`: the upgrade request signed (SigV4, service
    /// `execute-api`) by a credential with `invoke`.
    Iam,
    /// `CUSTOM`: a Lambda REQUEST authorizer, through the endpoint of
    /// `[lambda_functions]`; its policy judges
    /// `arn:aws:execute-api:local:000000000000:API/STAGE/$connect`.
    Lambda(Arc<crate::snapshot::LambdaAuthorizer>),
}

#[derive(Debug)]
pub enum WsIntegration {
    Mock {
        /// The status: the `statusCode` of the `$default` (or
        /// `application/json`) request template.
        status: WsMockStatus,
        /// The message sent back.
        response_template: Option<WsTemplate>,
    },
    Http {
        uri: String,
        timeout: Duration,
        request_parameters: Vec<(WsParamTarget, WsParamSource)>,
        /// The body POSTed to the backend; none: the message as it came.
        request_template: Option<WsTemplate>,
        /// The message sent back, from the backend's response; none: the
        /// response body as it came.
        response_template: Option<WsTemplate>,
    },
}

/// A MOCK integration's status.
#[derive(Clone, Debug)]
pub enum WsMockStatus {
    /// No request template (200), or one whose output is fixed (found at
    /// compile; 500 when it names no `statusCode`).
    Fixed(u16),
    /// `statusCode` of the rendered template (500 when it names none).
    Rendered(Arc<vtl::Template>),
}

/// A WebSocket mapping template: VTL as in REST mapping templates, with
/// `$input` the message (or the backend's response) and `$context` the
/// connection event's.
#[derive(Clone, Debug)]
pub enum WsTemplate {
    /// `$input.body` alone: the input as it came (text or binary), no
    /// render.
    Echo,
    /// A template whose output needs no data (found at compile).
    Static(bytes::Bytes),
    Vtl(Arc<vtl::Template>),
}

impl WsTemplate {
    pub fn new(t: Arc<vtl::Template>) -> WsTemplate {
        if t.source().trim() == "$input.body" {
            WsTemplate::Echo
        } else if let Some(b) = t.static_bytes() {
            WsTemplate::Static(b)
        } else {
            WsTemplate::Vtl(t)
        }
    }
}

/// Where a WebSocket HTTP integration's request parameter goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsParamTarget {
    Header(String),
    Query(String),
}

/// Where its value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WsParamSource {
    /// `route.request.header.X`: a header of the upgrade request.
    Header(String),
    /// `route.request.querystring.X`: a query parameter of the upgrade.
    Query(String),
    StageVariable(String),
    Context(String),
    Literal(String),
}

impl WsParamTarget {
    pub fn parse(s: &str) -> Result<WsParamTarget, String> {
        let valid = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~!#$&'*+^`|".contains(&b))
        };
        if let Some(n) = s.strip_prefix("integration.request.header.") {
            if valid(n) {
                return Ok(WsParamTarget::Header(n.to_owned()));
            }
        } else if let Some(n) = s.strip_prefix("integration.request.querystring.") {
            if valid(n) {
                return Ok(WsParamTarget::Query(n.to_owned()));
            }
        }
        Err(format!(
            "`{s}`: expected integration.request.header.NAME or integration.request.querystring.NAME"
        ))
    }
}

impl WsParamSource {
    pub fn parse(s: &str) -> Result<WsParamSource, String> {
        let named = |prefix: &str| s.strip_prefix(prefix).filter(|n| !n.is_empty());
        if let Some(n) = named("route.request.header.") {
            Ok(WsParamSource::Header(n.to_owned()))
        } else if let Some(n) = named("route.request.querystring.") {
            Ok(WsParamSource::Query(n.to_owned()))
        } else if let Some(n) = named("stageVariables.") {
            Ok(WsParamSource::StageVariable(n.to_owned()))
        } else if let Some(n) = named("context.") {
            Ok(WsParamSource::Context(n.to_owned()))
        } else if let Some(l) = s.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
            Ok(WsParamSource::Literal(l.to_owned()))
        } else {
            Err(format!(
                "`{s}`: expected route.request.header.NAME, route.request.querystring.NAME, stageVariables.NAME, context.NAME or a 'literal'"
            ))
        }
    }

    /// Reads the upgrade request, which only `$connect` has.
    pub fn needs_upgrade_request(&self) -> bool {
        matches!(self, WsParamSource::Header(_) | WsParamSource::Query(_))
    }
}

/// What the `@connections` API asks of a connection's shard.
#[derive(Debug)]
pub enum ConnOp {
    Send(Vec<u8>),
    Get,
    Delete,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnReply {
    Sent,
    Info {
        connected_at: SystemTime,
        last_active_at: SystemTime,
        source_ip: String,
        user_agent: String,
    },
    Deleted,
    Gone,
    /// The client's send queue is full.
    LimitExceeded,
}

/// Where the owning shard puts its answer (set once, read by the asker).
#[derive(Debug, Default)]
pub struct ReplySlot(pub OnceLock<ConnReply>);

/// ISO-8601 as API Gateway's `@connections` GET returns it.
pub fn iso8601(t: SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (y, m, d) = crate::ids::civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod param_tests {
    use super::*;

    #[test]
    fn request_parameter_forms() {
        assert_eq!(
            WsParamTarget::parse("integration.request.header.X-Token"),
            Ok(WsParamTarget::Header("X-Token".into()))
        );
        assert_eq!(
            WsParamTarget::parse("integration.request.querystring.q"),
            Ok(WsParamTarget::Query("q".into()))
        );
        assert!(WsParamTarget::parse("integration.request.path.p").is_err());
        assert!(WsParamTarget::parse("integration.request.header.a b").is_err());
        assert_eq!(
            WsParamSource::parse("route.request.querystring.token"),
            Ok(WsParamSource::Query("token".into()))
        );
        assert_eq!(
            WsParamSource::parse("'x'"),
            Ok(WsParamSource::Literal("x".into()))
        );
        assert!(WsParamSource::parse("route.request.body.x").is_err());
        assert!(WsParamSource::parse("route.request.header.").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_table() {
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            (
                "$request.body.action",
                br#"{"action": "join"}"#,
                Some("join"),
            ),
            ("$request.body.action", br#"{"other": 1}"#, Some("")),
            ("$request.body.action", b"not json", None),
            ("$request.body.n", br#"{"n": 5}"#, Some("5")),
            (
                "$request.body.a.b",
                br#"{"a": {"b": "deep"}}"#,
                Some("deep"),
            ),
            (
                "${request.body.service}/${request.body.action}",
                br#"{"service": "chat", "action": "join"}"#,
                Some("chat/join"),
            ),
            ("\\$default", b"anything", Some("$default")),
            // JSONPath subscripts: array indexes and quoted names.
            (
                "$request.body.items[0].action",
                br#"{"items": [{"action": "go"}, {"action": "no"}]}"#,
                Some("go"),
            ),
            (
                "${request.body.items[1].action}!",
                br#"{"items": [{"action": "go"}, {"action": "no"}]}"#,
                Some("no!"),
            ),
            (
                "$request.body['the op'][\"k\"]",
                br#"{"the op": {"k": "x"}}"#,
                Some("x"),
            ),
            ("$request.body.items[5]", br#"{"items": []}"#, Some("")),
            ("$request.body.a[0]", br#"{"a": {"0": "obj"}}"#, Some("")),
            (
                "$request.body['a]b'].c",
                br#"{"a]b": {"c": "q"}}"#,
                Some("q"),
            ),
            ("$request.body", br#""whole""#, Some("whole")),
        ];
        for (expr, msg, want) in cases {
            let e = SelectionExpr::parse(expr).unwrap();
            assert_eq!(e.route_key(msg).as_deref(), *want, "{expr}");
        }
        assert!(SelectionExpr::parse("$request.header.x").is_err());
        assert!(SelectionExpr::parse("${request.body.x").is_err());
        assert!(SelectionExpr::parse("$request.body.items[0").is_err());
        assert!(SelectionExpr::parse("$request.body.items[x]").is_err());
        assert!(SelectionExpr::parse("$request.body.items[-1]").is_err());
        for bad in [
            "$request.body..a",
            "$request.body.a[0]b",
            "$request.body.a.",
            "$request.body.a.[0]",
            "$request.bodyx",
            "$request.body['a]",
        ] {
            assert!(SelectionExpr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connection_ids_name_their_shard() {
        for shard in [0, 1, 7, 63] {
            let id = new_connection_id(shard);
            assert_eq!(id.len(), 16);
            assert_eq!(shard_of(&id), Some(shard));
        }
        assert_eq!(shard_of("nope"), None);
    }

    #[test]
    fn iso_times() {
        let t = std::time::UNIX_EPOCH + Duration::from_secs(1_795_478_957);
        assert_eq!(iso8601(t), "2026-11-24T00:09:17Z");
    }
}
