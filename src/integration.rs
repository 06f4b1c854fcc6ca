//! The integration request and response, as plain code: what bytes go to
//! the backend, which status a MOCK answers, which integration response a
//! backend status selects, and what the client gets back.
//!
//! Owns: parameter mapping (`requestParameters`, `responseParameters`),
//! URI building, template selection and passthrough rules, the upstream
//! request head, and gateway-response rendering.
//! Must not: do I/O. The shard module calls these between reads and writes.
//! Read first: [`RequestInfo`], then [`build_upstream_request`].

use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;

use crate::error::{ErrorKind, GatewayError};
use crate::gateway_response::{json_quote, HeaderValue, Rendered, ResponseType};
use crate::http::query::{self, encode_component};
use crate::http::request::{Method, RequestHead};
use crate::http::response::{
    is_hop_by_hop, write_content_length, write_date_header, write_header, write_status_line,
    Persist,
};
use crate::ids;
use crate::router::Captures;
use crate::snapshot::{
    Api, ContentHandling, Integration, IntegrationResponse, ParamSource, ParamTarget, Passthrough,
    Resource, ResponseParamSource, Stage, UpstreamBinding, UriPart,
};
use crate::template::{self, ContextVar, Values};
use crate::vtl;

/// An `X-Amzn-Trace-Id` value ([`RequestInfo::trace_id`]).
pub enum TraceId<'a> {
    Client(&'a [u8]),
    Own([u8; 40]),
}

impl TraceId<'_> {
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            TraceId::Client(v) => v,
            TraceId::Own(v) => v,
        }
    }
}

/// The matched route of a request.
#[derive(Clone, Copy)]
pub struct RouteMatch<'a> {
    pub resource: &'a Resource,
    /// The path after the stage (`/pets/12`); captures index into it.
    pub rest: &'a str,
    pub captures: Captures,
}

/// Whether a mapping (`requestParameters` or a template override) may set
/// this request header: not the framing and connection headers the gateway
/// writes itself (RFC 9112 §6.1, §7.6.1; a mapped `Transfer-Encoding` or
/// `Content-Length` next to the gateway's own would desynchronise the
/// pooled backend connection), nor `Host` (written once, above), nor
/// `Expect`.
pub fn may_map_header(name: &[u8]) -> bool {
    !(is_hop_by_hop(name)
        || name.eq_ignore_ascii_case(b"host")
        || name.eq_ignore_ascii_case(b"expect"))
}

/// Whether header `name` is withheld from integrations when
/// `hide_authorization` (see [`RequestInfo::hide_authorization`]).
fn hidden_header(hide_authorization: bool, name: &[u8]) -> bool {
    hide_authorization && name.eq_ignore_ascii_case(b"authorization")
}

/// Everything known about a request, for mappings and templates.
#[derive(Clone, Copy)]
pub struct RequestInfo<'a> {
    pub head: &'a RequestHead,
    pub request_id: &'a str,
    pub peer: SocketAddr,
    pub received: SystemTime,
    pub api: Option<&'a Api>,
    pub stage: Option<&'a Stage>,
    pub route: Option<RouteMatch<'a>>,
    pub body: &'a Bytes,
    /// The client's certificate, on a mutual-TLS connection.
    pub client_cert: Option<&'a crate::tls::ClientCert>,
    /// The API key (and its usage plan) of a method that requires one,
    /// once admitted: `$context.identity.apiKey` / `apiKeyId`.
    pub api_key: Option<&'a crate::snapshot::KeyPlan>,
    /// What the method's Lambda authorizer returned:
    /// `$context.authorizer.principalId` and `$context.authorizer.<key>`.
    pub authorizer: Option<&'a crate::authorizer::AuthorizerOutput>,
    /// The credential whose signature authorized an `AWS_IAM` method:
    /// `$context.identity.caller`, `.user`, `.userArn`, `.accessKey`.
    pub caller: Option<&'a crate::auth::Credential>,
    /// An `Authorization` line carries one of the gateway's own bearer
    /// tokens, or authorized a cache invalidation: no `Authorization` is
    /// passed to the integration (proxied, mapped or in a template), where
    /// it could be logged or echoed into the cache.
    pub hide_authorization: bool,
    /// The response is fetched for the stage cache: it is buffered up to
    /// the cache's entry limit (1 MiB) even when `buffer_response_bytes`
    /// is lower, so every response the cache may hold can reach it.
    pub cache_fetch: bool,
}

impl<'a> RequestInfo<'a> {
    /// Raw (still percent-encoded) value of a path parameter.
    pub fn path_param_raw(&self, name: &str) -> Option<&'a str> {
        let route = self.route.as_ref()?;
        let i = route.resource.param_names.iter().position(|n| n == name)?;
        route.captures.get(route.rest, i)
    }

    pub fn path_param(&self, name: &str) -> Option<String> {
        self.path_param_raw(name)
            .map(|raw| query::decode_path(raw.as_bytes()).into_owned())
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.head.query().and_then(|q| query::last_value(q, name))
    }

    /// The request's X-Ray trace header: the client's when API Gateway
    /// would keep it, else one of the gateway's own (as API Gateway adds
    /// to requests without one).
    pub fn trace_id(&self) -> TraceId<'a> {
        match self.head.header("x-amzn-trace-id") {
            Some(v) if crate::ids::is_trace_header(v) => TraceId::Client(v),
            _ => TraceId::Own(crate::ids::trace_root(
                self.request_id,
                crate::ids::epoch_millis(self.received) / 1000,
            )),
        }
    }

    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        self.head_header(name).map(String::from_utf8_lossy)
    }

    fn head_header(&self, name: &str) -> Option<&'a [u8]> {
        self.head.header(name)
    }

    /// A header as the integration may see it: not an `Authorization` that
    /// carries one of the gateway's credentials (`hide_authorization`).
    fn integration_header(&self, name: &str) -> Option<Cow<'a, str>> {
        if self.hides(name.as_bytes()) {
            return None;
        }
        self.header(name)
    }

    fn hides(&self, name: &[u8]) -> bool {
        hidden_header(self.hide_authorization, name)
    }

    /// Evaluates a `requestParameters` source; `None` when it has no value
    /// (API Gateway then leaves the target out).
    pub fn eval(&self, src: &ParamSource) -> Option<Cow<'a, str>> {
        match src {
            ParamSource::Path(n) => self.path_param(n).map(Cow::Owned),
            ParamSource::Query(n) => self.query_param(n).map(Cow::Owned),
            ParamSource::MultiQuery(n) => {
                let all = self
                    .head
                    .query()
                    .map(|q| query::all_values(q, n))
                    .unwrap_or_default();
                (!all.is_empty()).then(|| Cow::Owned(all.join(",")))
            }
            ParamSource::Header(n) => self.integration_header(n),
            ParamSource::MultiHeader(n) => {
                let all: Vec<Cow<'_, str>> = self
                    .head
                    .headers()
                    .filter(|(h, _)| h.eq_ignore_ascii_case(n.as_bytes()) && !self.hides(h))
                    .map(|(_, v)| String::from_utf8_lossy(v))
                    .collect();
                (!all.is_empty()).then(|| Cow::Owned(all.join(",")))
            }
            ParamSource::Body => Some(String::from_utf8_lossy(self.body)),
            ParamSource::BodyPath(path) => json_path_value(self.body, path).map(Cow::Owned),
            ParamSource::StageVar(n) => self
                .stage
                .and_then(|s| s.variables.get(n))
                .map(|v| Cow::Owned(v.clone())),
            ParamSource::Context(c) => self.context(c).map(|v| Cow::Owned(v.into_owned())),
            ParamSource::Literal(l) => Some(Cow::Owned(l.clone())),
        }
    }

    fn resource_path(&self) -> &str {
        self.route.map(|r| r.resource.path.as_str()).unwrap_or("")
    }
}

impl crate::validate::RequestView for RequestInfo<'_> {
    fn path_param(&self, name: &str) -> Option<String> {
        RequestInfo::path_param(self, name)
    }
    fn query_param(&self, name: &str) -> Option<String> {
        RequestInfo::query_param(self, name)
    }
    fn header(&self, name: &str) -> Option<String> {
        RequestInfo::header(self, name).map(Cow::into_owned)
    }
    fn body(&self) -> &[u8] {
        self.body
    }
}

impl Values for RequestInfo<'_> {
    fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>> {
        let v: Cow<'_, str> = match var {
            ContextVar::RequestId => Cow::Borrowed(self.request_id),
            ContextVar::ExtendedRequestId => {
                Cow::Owned(crate::ids::extended_id_text(self.request_id))
            }
            ContextVar::Stage => Cow::Borrowed(self.stage.map_or("", |s| s.name.as_str())),
            ContextVar::ApiId => Cow::Borrowed(self.api.map_or("", |a| a.id.as_str())),
            ContextVar::AccountId => Cow::Borrowed(""),
            ContextVar::HttpMethod => String::from_utf8_lossy(self.head.method_bytes()),
            ContextVar::ResourcePath => Cow::Borrowed(self.resource_path()),
            ContextVar::ResourceId => Cow::Borrowed(self.resource_path()),
            ContextVar::Path => String::from_utf8_lossy(self.head.path()),
            ContextVar::Protocol => Cow::Borrowed(match self.head.info.version {
                crate::http::request::Version::Http10 => "HTTP/1.0",
                crate::http::request::Version::Http11 => "HTTP/1.1",
            }),
            ContextVar::SourceIp => Cow::Owned(self.peer.ip().to_string()),
            ContextVar::UserAgent => self.header("user-agent").unwrap_or(Cow::Borrowed("")),
            ContextVar::RequestTime => Cow::Owned(ids::clf_time(self.received)),
            ContextVar::RequestTimeEpoch => {
                Cow::Owned(ids::epoch_millis(self.received).to_string())
            }
            ContextVar::DomainName => self
                .head
                .host()
                .map(String::from_utf8_lossy)
                .unwrap_or(Cow::Borrowed("")),
            ContextVar::DomainPrefix => {
                let host = self
                    .head
                    .host()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default();
                Cow::Owned(host.split('.').next().unwrap_or("").to_owned())
            }
            ContextVar::ErrorMessage
            | ContextVar::ErrorMessageString
            | ContextVar::ErrorResponseType
            | ContextVar::ErrorValidationErrorString => return None,
            ContextVar::ClientCert(f) => {
                Cow::Borrowed(self.client_cert.and_then(|c| c.field(f)).unwrap_or(""))
            }
            ContextVar::ApiKey => match self.api_key {
                Some(_) if self.api.is_some_and(|a| !a.api_keys_from_header) => Cow::Borrowed(
                    self.authorizer
                        .and_then(|a| a.usage_key.as_deref())
                        .unwrap_or(""),
                ),
                Some(_) => self.header("x-api-key").unwrap_or(Cow::Borrowed("")),
                None => Cow::Borrowed(""),
            },
            ContextVar::ApiKeyId => Cow::Borrowed(self.api_key.map_or("", |k| k.key_name.as_str())),
            ContextVar::Authorizer(key) => {
                let out = self.authorizer?;
                if key == "principalId" {
                    Cow::Borrowed(out.principal_id.as_str())
                } else {
                    Cow::Borrowed(out.context.iter().find(|(k, _)| k == key)?.1.as_str())
                }
            }
            ContextVar::Caller(f) => Cow::Owned(
                self.caller
                    .map_or(String::new(), |c| f.of(&c.name, c.access_key_id.as_deref())),
            ),
            ContextVar::Unsupported(_) => Cow::Borrowed(""),
        };
        Some(v)
    }

    fn stage_var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.stage
            .and_then(|s| s.variables.get(name))
            .map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// Reads `a.b.c` out of a JSON body: strings as they are, anything else as
/// JSON text.
pub fn json_path_value(body: &[u8], path: &[String]) -> Option<String> {
    let mut v: serde_json::Value = serde_json::from_slice(body).ok()?;
    for key in path {
        v = match v {
            serde_json::Value::Object(mut m) => m.remove(key)?,
            serde_json::Value::Array(mut a) => {
                let i: usize = key.parse().ok()?;
                if i < a.len() {
                    a.swap_remove(i)
                } else {
                    return None;
                }
            }
            _ => return None,
        };
    }
    Some(match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    })
}

/// The media type of a `Content-Type`/`Accept` value: lowercase, no
/// parameters. A missing `Content-Type` is `application/json`, as in API
/// Gateway.
///
/// Borrowed from the header when it is already lowercase (the usual case):
/// picking a MOCK or request template allocated a `String` per request.
pub fn media_type(value: Option<&[u8]>) -> Cow<'_, str> {
    const DEFAULT: &str = "application/json";
    let Some(v) = value else {
        return Cow::Borrowed(DEFAULT);
    };
    let first = v.split(|&b| b == b',').next().unwrap_or_default();
    let mt = first
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if mt.is_empty() {
        return Cow::Borrowed(DEFAULT);
    }
    match std::str::from_utf8(mt) {
        Ok(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(s),
        _ => Cow::Owned(String::from_utf8_lossy(mt).to_ascii_lowercase()),
    }
}

/// Picks the request template for the request's content type under the
/// integration's passthrough behaviour. `Ok(None)` means pass the body
/// through untouched (also for an empty template, as API Gateway); `Err`
/// is 415.
pub fn request_template<'i>(
    integration: &'i Integration,
    content_type: Option<&[u8]>,
) -> Result<Option<&'i vtl::Template>, GatewayError> {
    Ok(request_template_index(integration, content_type)?
        .map(|i| integration.request_templates[i].1.as_ref()))
}

/// [`request_template`]'s choice as an index into `request_templates`.
fn request_template_index(
    integration: &Integration,
    content_type: Option<&[u8]>,
) -> Result<Option<usize>, GatewayError> {
    let mt = media_type(content_type);
    let templates = &integration.request_templates;
    if let Some(i) = templates.iter().position(|(ct, _)| ct.as_str() == mt) {
        return Ok((!templates[i].1.is_empty()).then_some(i));
    }
    let unsupported = || {
        GatewayError::new(
            ErrorKind::UnsupportedMediaType,
            format!("no request template for content type `{mt}`"),
        )
    };
    match integration.passthrough {
        Passthrough::WhenNoMatch => Ok(None),
        Passthrough::WhenNoTemplates if templates.is_empty() => Ok(None),
        Passthrough::WhenNoTemplates | Passthrough::Never => Err(unsupported()),
    }
}

/// A body conversion `contentHandling` (or the API's binary media types)
/// calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conversion {
    None,
    /// Binary → base64 text.
    Encode,
    /// Base64 text → binary.
    Decode,
}

/// Integration request: `binary` when the request's content type is one
/// of the API's binary media types.
pub fn request_conversion(binary: bool, ch: Option<ContentHandling>) -> Conversion {
    match (binary, ch) {
        (true, Some(ContentHandling::ConvertToText)) => Conversion::Encode,
        (false, Some(ContentHandling::ConvertToBinary)) => Conversion::Decode,
        _ => Conversion::None,
    }
}

/// Integration response: `binary` for the backend's content type,
/// `accept_binary` for the client's first `Accept` type. Without
/// `contentHandling` the body follows what the client accepts, as API
/// Gateway does.
pub fn response_conversion(
    binary: bool,
    accept_binary: bool,
    ch: Option<ContentHandling>,
) -> Conversion {
    match ch {
        Some(ContentHandling::ConvertToText) if binary => Conversion::Encode,
        Some(ContentHandling::ConvertToBinary) if !binary => Conversion::Decode,
        Some(_) => Conversion::None,
        None => match (binary, accept_binary) {
            (false, true) => Conversion::Decode,
            (true, false) => Conversion::Encode,
            _ => Conversion::None,
        },
    }
}

/// Applies `c` to `body`. A body that is not base64 fails with 500
/// API_CONFIGURATION_ERROR, as API Gateway does.
pub fn convert(body: &[u8], c: Conversion) -> Result<Option<Bytes>, GatewayError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    match c {
        Conversion::None => Ok(None),
        Conversion::Encode => Ok(Some(Bytes::from(b64.encode(body)))),
        Conversion::Decode => {
            let text: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            b64.decode(&text)
                .map(|d| Some(Bytes::from(d)))
                .map_err(|e| {
                    GatewayError::new(
                        ErrorKind::TemplateFailed,
                        format!("CONVERT_TO_BINARY: the body is not base64: {e}"),
                    )
                })
        }
    }
}

/// Name/value pairs in order (query parameters, headers).
pub type Pairs = Vec<(String, String)>;

/// What a mapping template sees of a request, owned so that templates can
/// borrow it (`vtl::Input`).
pub struct TemplateData {
    pub path: Vec<(String, String)>,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub context: std::collections::BTreeMap<String, String>,
}

impl TemplateData {
    /// A request's query parameters (decoded, in order) and headers, as
    /// `$input.params()` reads them; without `Authorization` when
    /// `hide_authorization` (a gateway credential).
    pub fn query_and_headers(head: &RequestHead, hide_authorization: bool) -> (Pairs, Pairs) {
        let query = head
            .query()
            .map(|q| {
                query::pairs(q)
                    .map(|(n, v)| {
                        (
                            query::decode_component(n).into_owned(),
                            query::decode_component(v).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let headers = head
            .headers()
            .filter(|(n, _)| !hidden_header(hide_authorization, n))
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        (query, headers)
    }

    pub fn new(info: &RequestInfo<'_>) -> TemplateData {
        let path = match &info.route {
            Some(r) => r
                .resource
                .param_names
                .iter()
                .enumerate()
                .filter_map(|(i, n)| {
                    r.captures
                        .get(r.rest, i)
                        .map(|v| (n.clone(), query::decode_path(v.as_bytes()).into_owned()))
                })
                .collect(),
            None => Vec::new(),
        };
        let (query, headers) = TemplateData::query_and_headers(info.head, info.hide_authorization);
        let mut context = std::collections::BTreeMap::new();
        for (key, var) in [
            ("requestId", ContextVar::RequestId),
            ("extendedRequestId", ContextVar::ExtendedRequestId),
            ("stage", ContextVar::Stage),
            ("apiId", ContextVar::ApiId),
            ("accountId", ContextVar::AccountId),
            ("httpMethod", ContextVar::HttpMethod),
            ("resourcePath", ContextVar::ResourcePath),
            ("resourceId", ContextVar::ResourceId),
            ("path", ContextVar::Path),
            ("protocol", ContextVar::Protocol),
            ("identity.sourceIp", ContextVar::SourceIp),
            ("identity.userAgent", ContextVar::UserAgent),
            ("identity.apiKey", ContextVar::ApiKey),
            ("identity.apiKeyId", ContextVar::ApiKeyId),
            ("requestTime", ContextVar::RequestTime),
            ("requestTimeEpoch", ContextVar::RequestTimeEpoch),
            ("domainName", ContextVar::DomainName),
            ("domainPrefix", ContextVar::DomainPrefix),
        ] {
            if let Some(v) = info.context(&var) {
                context.insert(key.to_owned(), v.into_owned());
            }
        }
        if let Some(c) = info.caller {
            for (f, key) in crate::template::CallerField::ALL {
                context.insert(key.to_owned(), f.of(&c.name, c.access_key_id.as_deref()));
            }
        }
        if let Some(a) = info.authorizer {
            for (k, v) in &a.context {
                context.insert(format!("authorizer.{k}"), v.clone());
            }
            // After the context: a context key `principalId` does not
            // stand for the principal (as `context.authorizer.principalId`
            // in mappings reads it too).
            context.insert("authorizer.principalId".to_owned(), a.principal_id.clone());
        }
        if let Some(c) = info.client_cert {
            for f in crate::tls::ClientCert::FIELDS {
                if let Some(v) = c.field(f) {
                    context.insert(format!("identity.clientCert.{f}"), v.to_owned());
                }
            }
        }
        TemplateData {
            path,
            query,
            headers,
            context,
        }
    }

    pub fn input<'a>(&'a self, body: &'a [u8], info: &'a RequestInfo<'_>) -> vtl::Input<'a> {
        static NO_VARS: std::sync::OnceLock<std::collections::BTreeMap<String, String>> =
            std::sync::OnceLock::new();
        vtl::Input {
            body,
            path: &self.path,
            query: &self.query,
            headers: &self.headers,
            stage_variables: info
                .stage
                .map(|s| &s.variables)
                .unwrap_or_else(|| NO_VARS.get_or_init(Default::default)),
            context: &self.context,
        }
    }
}

/// Renders a mapping template; failures map to API Gateway's answers.
pub fn render_template(
    t: &vtl::Template,
    input: &vtl::Input<'_>,
) -> Result<vtl::Rendered, GatewayError> {
    t.render(input, &vtl::Limits::default())
        .map_err(|e| match e.kind {
            vtl::RenderErrorKind::InvalidJsonBody => GatewayError::new(
                ErrorKind::TemplateBadBody,
                format!("Could not parse request body into json: {e}"),
            ),
            _ => GatewayError::new(
                ErrorKind::TemplateFailed,
                format!("Execution failed due to configuration error: mapping template: {e}"),
            ),
        })
}

/// The status a MOCK integration answers: `statusCode` of its rendered
/// request template (or of the passed-through body), and the overrides
/// the template set.
pub fn mock_status(
    info: &RequestInfo<'_>,
    data: &std::cell::OnceCell<TemplateData>,
    integration: &Integration,
) -> Result<(u16, vtl::Overrides), GatewayError> {
    let chosen = request_template_index(integration, info.head.header("content-type"))?;
    let (status, overrides) = match chosen {
        // The usual `{"statusCode": 200}`: found at compile.
        Some(i) if let Some(Some(status)) = integration.mock_statuses.get(i) => {
            (Some(*status), vtl::Overrides::default())
        }
        Some(i) => {
            let t = &integration.request_templates[i].1;
            let data = data.get_or_init(|| TemplateData::new(info));
            let r = render_template(t, &data.input(info.body, info))?;
            (parse_mock_status(r.body.as_bytes()), r.overrides)
        }
        None if info.body.is_empty() => (None, vtl::Overrides::default()),
        None => (parse_mock_status(info.body), vtl::Overrides::default()),
    };
    let status = status.ok_or_else(|| {
        GatewayError::new(
            ErrorKind::MockStatusMissing,
            "Unable to parse statusCode. It should be an integer that is defined in the request template.",
        )
    })?;
    Ok((status, overrides))
}

/// Renders an integration response template. The body it reads is the
/// backend's: one that is not JSON where the template reads JSON is the
/// API's configuration failing, not a bad request (500, as API Gateway's
/// "Unable to transform response").
pub fn render_response_template(
    t: &vtl::Template,
    input: &vtl::Input<'_>,
) -> Result<vtl::Rendered, GatewayError> {
    t.render(input, &vtl::Limits::default()).map_err(|e| {
        GatewayError::new(
            ErrorKind::TemplateFailed,
            format!(
                "Execution failed due to configuration error: Unable to transform response: {e}"
            ),
        )
    })
}

/// `statusCode` (200–599) of a MOCK integration's rendered request
/// template (or passed-through body), if it is a JSON object with one.
pub fn parse_mock_status(rendered: &[u8]) -> Option<u16> {
    let v: serde_json::Value = serde_json::from_slice(rendered).ok()?;
    v.get("statusCode")
        .and_then(serde_json::Value::as_u64)
        .filter(|s| (200..=599).contains(s))
        .map(|s| s as u16)
}

/// Selects the integration response for a status: the first matching
/// selection pattern, else `default`.
pub fn select_response(
    integration: &Integration,
    status: u16,
) -> Result<&IntegrationResponse, GatewayError> {
    let mut digits = [0u8; 3];
    let s = status_str(status, &mut digits);
    integration
        .responses
        .iter()
        .find(|r| r.pattern.as_ref().is_none_or(|p| p.is_match(s)))
        .ok_or_else(|| {
            GatewayError::new(
                ErrorKind::NoIntegrationResponse,
                format!(
                    "No match for output mapping and no default output mapping (status {status})"
                ),
            )
        })
}

fn status_str(status: u16, buf: &mut [u8; 3]) -> &str {
    buf[0] = b'0' + (status / 100 % 10) as u8;
    buf[1] = b'0' + (status / 10 % 10) as u8;
    buf[2] = b'0' + (status % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("500")
}

/// Response template selection: the template for the first `Accept` type
/// (`application/json` when the request has none, as in API Gateway), else
/// the first template.
pub fn select_template<'t, T>(
    templates: &'t [(String, T)],
    accept: Option<&[u8]>,
) -> Option<&'t (String, T)> {
    let wanted = media_type(accept);
    templates
        .iter()
        .find(|(ct, _)| *ct == wanted)
        .or_else(|| templates.first())
}

/// Evaluates a `responseParameters` source against the backend response;
/// `upstream_header(name, all)` gives a backend header's last value, or
/// with `all` every value joined with commas.
pub fn eval_response_source(
    src: &ResponseParamSource,
    info: &RequestInfo<'_>,
    upstream_header: &dyn Fn(&str, bool) -> Option<String>,
    upstream_body: &[u8],
) -> Option<String> {
    match src {
        ResponseParamSource::Literal(l) => Some(l.clone()),
        ResponseParamSource::IntegrationHeader(n) => upstream_header(n, false),
        ResponseParamSource::IntegrationMultiValueHeader(n) => upstream_header(n, true),
        ResponseParamSource::IntegrationBody => {
            Some(String::from_utf8_lossy(upstream_body).into_owned())
        }
        ResponseParamSource::IntegrationBodyPath(p) => json_path_value(upstream_body, p),
        ResponseParamSource::StageVar(n) => info.stage.and_then(|s| s.variables.get(n)).cloned(),
        ResponseParamSource::Context(c) => info.context(c).map(Cow::into_owned),
    }
}

/// Appends the request line and headers (and `body`, the request
/// template's output or the client's body) to send to the backend; mapped
/// parameters read the method request (`method.request.body` is the
/// client's body). Returns the method used.
#[allow(clippy::too_many_arguments)]
pub fn build_upstream_request(
    info: &RequestInfo<'_>,
    body: &[u8],
    integration: &Integration,
    binding: &UpstreamBinding,
    proxy: bool,
    local_port: u16,
    overrides: &vtl::Overrides,
    out: &mut Vec<u8>,
) -> Method {
    let method = integration.http_method.unwrap_or(info.head.method());
    if method == info.head.method() {
        out.extend_from_slice(info.head.method_bytes());
    } else {
        out.extend_from_slice(method.as_str().as_bytes());
    }
    out.push(b' ');

    // Path: the URI's, with {name} filled from integration.request.path.*
    // (or, when not mapped, the method's path parameter of the same name).
    let path_start = out.len();
    for part in &binding.path {
        match part {
            UriPart::Text(t) => out.extend_from_slice(t.as_bytes()),
            UriPart::Param(name) => {
                // `$context.requestOverride.path.X` wins over any mapping.
                if let Some((_, v)) = overrides.request_path.iter().rev().find(|(n, _)| n == name) {
                    encode_component(v, out);
                    continue;
                }
                let mapped = integration
                    .request_parameters
                    .iter()
                    .find(|(t, _)| matches!(t, ParamTarget::Path(n) if n == name));
                match mapped {
                    // A path parameter keeps the client's own encoding (a
                    // greedy {proxy+} keeps its slashes).
                    Some((_, ParamSource::Path(src))) => {
                        if let Some(raw) = info.path_param_raw(src) {
                            out.extend_from_slice(raw.as_bytes());
                        }
                    }
                    Some((_, src)) => {
                        if let Some(v) = info.eval(src) {
                            encode_component(&v, out);
                        }
                    }
                    None => {
                        if let Some(raw) = info.path_param_raw(name) {
                            out.extend_from_slice(raw.as_bytes());
                        }
                    }
                }
            }
        }
    }
    if out.len() == path_start {
        out.push(b'/');
    }

    // Query: the URI's own, the client's (proxy only), then mapped ones.
    let mut first = true;
    let mut sep = |out: &mut Vec<u8>| {
        out.push(if first { b'?' } else { b'&' });
        first = false;
    };
    if !binding.query.is_empty() {
        sep(out);
        for part in &binding.query {
            match part {
                UriPart::Text(t) => out.extend_from_slice(t.as_bytes()),
                UriPart::Param(name) => {
                    if let Some(v) = info.path_param(name) {
                        encode_component(&v, out);
                    }
                }
            }
        }
    }
    if proxy {
        if let Some(q) = info.head.query() {
            // A name the integration maps (or a template overrides) is
            // sent with the mapped value only, not the client's as well.
            let replaced = |name: &[u8]| {
                let name = query::decode_component(name);
                integration
                    .request_parameters
                    .iter()
                    .any(|(t, _)| matches!(t, ParamTarget::Query(n) if *n == name))
                    || overrides.request_query.iter().any(|(n, _)| *n == name)
            };
            let mapped = !overrides.request_query.is_empty()
                || integration
                    .request_parameters
                    .iter()
                    .any(|(t, _)| matches!(t, ParamTarget::Query(_)));
            if !mapped {
                if !q.is_empty() {
                    sep(out);
                    // As the gateway read it (`;` separates pairs): what
                    // the backend sees is what validation and the cache
                    // key saw (`?x=1;type=good` was cached as `type=good`
                    // while a backend splitting on `&` alone read no type).
                    out.extend(q.iter().map(|&b| if b == b';' { b'&' } else { b }));
                }
            } else {
                // Pairs as `query::pairs` reads them (`;` separates too).
                for pair in q
                    .split(|&b| b == b'&' || b == b';')
                    .filter(|p| !p.is_empty())
                {
                    let name = pair.split(|&b| b == b'=').next().unwrap_or_default();
                    if !replaced(name) {
                        sep(out);
                        out.extend_from_slice(pair);
                    }
                }
            }
        }
    }
    for (target, src) in &integration.request_parameters {
        if let ParamTarget::Query(name) = target {
            if overrides.request_query.iter().any(|(n, _)| n == name) {
                continue;
            }
            // A multi-value source gives the backend the key once per
            // value (`a=1&a=2`), as API Gateway sends it.
            if let ParamSource::MultiQuery(n) = src {
                if let Some(q) = info.head.query() {
                    for v in query::all_values(q, n) {
                        sep(out);
                        encode_component(name, out);
                        out.push(b'=');
                        encode_component(&v, out);
                    }
                }
                continue;
            }
            if let Some(v) = info.eval(src) {
                sep(out);
                encode_component(name, out);
                out.push(b'=');
                encode_component(&v, out);
            }
        }
    }
    for (name, v) in &overrides.request_query {
        sep(out);
        encode_component(name, out);
        out.push(b'=');
        encode_component(v, out);
    }
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // A mapped `Host` (a template override, else `requestParameters`)
    // replaces the integration's: one Host field (RFC 9112 §3.2).
    let mapped_host: Option<String> = overrides
        .request_headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.clone())
        .or_else(|| {
            integration
                .request_parameters
                .iter()
                .find_map(|(t, src)| match t {
                    ParamTarget::Header(n) if n.eq_ignore_ascii_case("host") => {
                        info.eval(src).map(Cow::into_owned)
                    }
                    _ => None,
                })
        })
        .map(|v| v.chars().filter(|c| !c.is_control()).collect::<String>())
        .filter(|v| !v.is_empty());
    write_header(
        out,
        b"Host",
        mapped_host
            .as_deref()
            .unwrap_or(binding.host_header.as_str())
            .as_bytes(),
    );

    let mapped_header = |name: &[u8]| {
        integration.request_parameters.iter().any(
            |(t, _)| matches!(t, ParamTarget::Header(n) if n.as_bytes().eq_ignore_ascii_case(name)),
        )
    };
    if proxy {
        let connection_tokens: Vec<&[u8]> =
            crate::http::request::list_elements(info.head.header_values("connection")).collect();
        // The client's X-Forwarded-For lines, in order: repeated lines
        // are one list (RFC 9110 §5.3), extended by the gateway's hop.
        let mut xff: Option<&[u8]> = None;
        let mut xff_more: Vec<&[u8]> = Vec::new();
        for (name, value) in info.head.headers() {
            if name.eq_ignore_ascii_case(b"host")
                || name.eq_ignore_ascii_case(b"expect")
                || is_hop_by_hop(name)
                || connection_tokens
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(name))
                || name.eq_ignore_ascii_case(b"x-forwarded-port")
                || name.eq_ignore_ascii_case(b"x-forwarded-proto")
                // The gateway's own id is sent below; a client's would
                // come first and pass for it in the backend's logs. The
                // trace header is sent below too (the client's, if valid).
                || name.eq_ignore_ascii_case(b"x-amzn-requestid")
                || name.eq_ignore_ascii_case(b"x-amzn-trace-id")
                || (name.contains(&b'_')
                    && (shadows_gateway_header(name)
                        || integration.request_parameters.iter().any(|(t, _)| {
                            matches!(t, ParamTarget::Header(n) if same_dashed(n.as_bytes(), name))
                        })
                        || overrides
                            .request_headers
                            .iter()
                            .any(|(n, _)| same_dashed(n.as_bytes(), name))))
                || info.hides(name)
                || mapped_header(name)
            {
                continue;
            }
            if name.eq_ignore_ascii_case(b"x-forwarded-for") {
                if xff.is_none() {
                    xff = Some(value);
                } else {
                    xff_more.push(value);
                }
                continue;
            }
            write_header(out, name, value);
        }
        out.extend_from_slice(b"X-Forwarded-For: ");
        for prev in xff.into_iter().chain(xff_more).filter(|v| !v.is_empty()) {
            out.extend_from_slice(prev);
            out.extend_from_slice(b", ");
        }
        // Written straight into the buffer: no String per request.
        crate::http::response::write_ip(out, info.peer.ip());
        out.extend_from_slice(b"\r\nX-Forwarded-Port: ");
        crate::http::response::write_u64(out, u64::from(local_port));
        out.extend_from_slice(b"\r\nX-Forwarded-Proto: http\r\n");
    } else {
        // A non-proxy HTTP integration sends only what is mapped, plus the
        // defaults API Gateway adds.
        if !mapped_header(b"accept") {
            write_header(out, b"Accept", b"application/json");
        }
        if !mapped_header(b"user-agent") {
            out.extend_from_slice(b"User-Agent: AmazonAPIGateway_");
            out.extend_from_slice(info.api.map_or("", |a| a.id.as_str()).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !mapped_header(b"content-type") && !body.is_empty() {
            let ct = info
                .head
                .header("content-type")
                .unwrap_or(b"application/json");
            write_header(out, b"Content-Type", ct);
        }
        if let Some(api) = info.api {
            write_header(out, b"X-Amzn-Apigateway-Api-Id", api.id.as_bytes());
        }
    }
    let clean = crate::http::response::field_value;
    for (name, v) in &overrides.request_headers {
        if crate::config::swagger::is_token(name) && may_map_header(name.as_bytes()) {
            write_header(out, name.as_bytes(), clean(v).as_bytes());
        }
    }
    for (target, src) in &integration.request_parameters {
        if let ParamTarget::Header(name) = target {
            // The gateway owns framing and the connection (and wrote
            // Host above); `check` refuses or warns about such mappings.
            if !may_map_header(name.as_bytes()) {
                continue;
            }
            if overrides
                .request_headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                continue;
            }
            if let Some(v) = info.eval(src) {
                // A mapped value is data: no control characters.
                write_header(out, name.as_bytes(), clean(&v).as_bytes());
            }
        }
    }
    write_header(out, b"X-Amzn-RequestId", info.request_id.as_bytes());
    // X-Ray's trace header, as API Gateway adds it to HTTP and HTTP_PROXY
    // integration requests, unless the integration maps one itself.
    if !mapped_header(b"x-amzn-trace-id")
        && !overrides
            .request_headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-amzn-trace-id"))
    {
        write_header(out, b"X-Amzn-Trace-Id", info.trace_id().as_bytes());
    }
    if !body.is_empty() || matches!(method, Method::Post | Method::Put | Method::Patch) {
        write_content_length(out, body.len() as u64);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    method
}

/// Whether `name` spells, with `_` for `-`, a header the gateway owns
/// towards a backend (framing, the connection, `Host`, the forwarding
/// headers and its request id; the caller adds the headers the
/// integration maps). CGI, WSGI and Rack put `Transfer_Encoding` and
/// `Transfer-Encoding` under one name (`HTTP_TRANSFER_ENCODING`), so a
/// client's `X_Forwarded_For` could replace the gateway's `X-Forwarded-For`
/// in such an application; NGINX drops every header with `_` by default.
/// Other `_` headers pass, as in API Gateway.
fn shadows_gateway_header(name: &[u8]) -> bool {
    const OWNED: [&[u8]; 13] = [
        b"host",
        b"content-length",
        b"transfer-encoding",
        b"connection",
        b"keep-alive",
        b"te",
        b"upgrade",
        b"expect",
        b"x-forwarded-for",
        b"x-forwarded-port",
        b"x-forwarded-proto",
        b"x-amzn-requestid",
        b"x-amzn-trace-id",
    ];
    OWNED.iter().any(|owned| same_dashed(owned, name))
}

/// Header names equal without regard to case, `_` counting as `-`.
fn same_dashed(a: &[u8], b: &[u8]) -> bool {
    let dash = |c: u8| {
        if c == b'_' {
            b'-'
        } else {
            c.to_ascii_lowercase()
        }
    };
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| dash(*x) == dash(*y))
}

/// Common response headers: `Date`, request ids (API Gateway's two) and
/// connection handling.
pub fn write_common_headers(out: &mut Vec<u8>, request_id: &str, persist: Persist) {
    write_date_header(out);
    write_header(out, b"x-amzn-RequestId", request_id.as_bytes());
    write_header(out, b"x-amz-apigw-id", &crate::ids::extended_id(request_id));
    persist.write_header(out);
}

/// Writes a whole response with a known body.
#[allow(clippy::too_many_arguments)]
pub fn write_full_response<'h>(
    out: &mut Vec<u8>,
    status: u16,
    content_type: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'h [u8], &'h [u8])>,
    body: &[u8],
    request_id: &str,
    persist: Persist,
    head_only: bool,
) {
    write_status_line(out, status);
    write_common_headers(out, request_id, persist);
    let mut ct_written = false;
    for (n, v) in headers {
        if n.eq_ignore_ascii_case(b"content-type") {
            ct_written = true;
        }
        if is_hop_by_hop(n) || n.eq_ignore_ascii_case(b"date") {
            continue;
        }
        write_header(out, n, v);
    }
    if !ct_written {
        if let Some(ct) = content_type {
            write_header(out, b"Content-Type", ct);
        }
    }
    // RFC 9110 §8.6: no Content-Length (and no body) on 204; a 304's
    // would describe the representation, which we do not have.
    let bodyless = status == 204 || status == 304;
    if !bodyless {
        write_content_length(out, body.len() as u64);
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodyless {
        out.extend_from_slice(body);
    }
}

/// Values for a gateway response: the request's, plus `$context.error.*`.
struct ErrorValues<'a, 'b> {
    info: Option<&'a RequestInfo<'b>>,
    request_id: &'a str,
    kind: ResponseType,
    message: Option<&'a str>,
    validation: Option<&'a str>,
}

impl Values for ErrorValues<'_, '_> {
    fn context(&self, var: &ContextVar) -> Option<Cow<'_, str>> {
        match var {
            ContextVar::ErrorMessage => Some(Cow::Borrowed(self.message.unwrap_or(""))),
            ContextVar::ErrorMessageString => Some(Cow::Owned(match self.message {
                Some(m) => json_quote(m),
                None => "null".to_owned(),
            })),
            ContextVar::ErrorResponseType => Some(Cow::Borrowed(self.kind.name())),
            ContextVar::ErrorValidationErrorString => {
                Some(Cow::Borrowed(self.validation.unwrap_or("")))
            }
            ContextVar::RequestId => Some(Cow::Borrowed(self.request_id)),
            ContextVar::ExtendedRequestId => {
                Some(Cow::Owned(crate::ids::extended_id_text(self.request_id)))
            }
            other => match self.info {
                Some(i) => i.context(other),
                None => Some(Cow::Borrowed("")),
            },
        }
    }
    fn stage_var(&self, name: &str) -> Option<Cow<'_, str>> {
        self.info.and_then(|i| i.stage_var(name))
    }
}

/// Writes a gateway response (pre-rendered per stage) for `err`.
pub fn write_gateway_response(
    out: &mut Vec<u8>,
    rendered: &Rendered,
    err: Option<&GatewayError>,
    info: Option<&RequestInfo<'_>>,
    request_id: &str,
    persist: Persist,
) -> usize {
    let values = ErrorValues {
        info,
        request_id,
        kind: rendered.kind,
        message: match err {
            Some(e) => e.message(),
            None => rendered.kind.default_message(),
        },
        validation: err.and_then(|e| e.validation.as_deref()),
    };
    // The mapped headers first: one that names a header the gateway
    // writes itself (Content-Type, x-amzn-ErrorType, x-amzn-RequestId,
    // Date) replaces it rather than adding a second value.
    let mut mapped: Vec<(&str, String)> = Vec::with_capacity(rendered.headers.len());
    for (name, value) in &rendered.headers {
        let v: Option<Cow<'_, str>> = match value {
            HeaderValue::Text(t) => Some(Cow::Borrowed(t.as_str())),
            HeaderValue::RequestHeader(n) => info.and_then(|i| i.header(n)),
            HeaderValue::RequestQuery(n) => info.and_then(|i| i.query_param(n)).map(Cow::Owned),
            HeaderValue::RequestPath(n) => info.and_then(|i| i.path_param(n)).map(Cow::Owned),
            HeaderValue::Context(c) => values.context(c).map(|c| Cow::Owned(c.into_owned())),
        };
        if let Some(v) = v {
            if is_hop_by_hop(name.as_bytes()) {
                continue;
            }
            mapped.push((name.as_str(), crate::http::response::field_value(&v)));
        }
    }
    let has = |n: &str| mapped.iter().any(|(m, _)| m.eq_ignore_ascii_case(n));
    write_status_line(out, rendered.status);
    if !has("date") {
        write_date_header(out);
    }
    if !has("x-amzn-requestid") {
        write_header(out, b"x-amzn-RequestId", request_id.as_bytes());
    }
    if !has("x-amz-apigw-id") {
        write_header(out, b"x-amz-apigw-id", &crate::ids::extended_id(request_id));
    }
    persist.write_header(out);
    if !has("content-type") {
        write_header(out, b"Content-Type", rendered.content_type.as_bytes());
    }
    if !has("x-amzn-errortype") {
        write_header(
            out,
            b"x-amzn-ErrorType",
            rendered.kind.error_type().as_bytes(),
        );
    }
    for (name, value) in &mapped {
        write_header(out, name.as_bytes(), value.as_bytes());
    }
    // 204 and 304 have no content (RFC 9110 §15.3.5, §15.4.5): a body
    // there would be read as the start of the next response.
    if matches!(rendered.status, 204 | 304) {
        out.extend_from_slice(b"\r\n");
        return 0;
    }
    let mut body = Vec::with_capacity(64);
    template::render(&rendered.body, &values, &mut body);
    let head_only = info.is_some_and(|i| i.head.method() == Method::Head);
    write_content_length(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    if head_only {
        0
    } else {
        out.extend_from_slice(&body);
        body.len()
    }
}

/// A plain error for requests that never became requests (bad framing,
/// oversized heads): no API, no stage, JSON body, connection closed.
pub fn write_protocol_error(out: &mut Vec<u8>, status: u16, message: &str, request_id: &str) {
    write_status_line(out, status);
    write_common_headers(out, request_id, Persist::Close);
    write_header(out, b"Content-Type", b"application/json");
    let body = format!("{{\"message\":{}}}", json_quote(message));
    write_content_length(out, body.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
}

pub fn error_message(err: &GatewayError) -> Option<&str> {
    err.message()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types() {
        assert_eq!(media_type(None), "application/json");
        assert_eq!(
            media_type(Some(b"Application/JSON; charset=UTF-8")),
            "application/json"
        );
        assert_eq!(
            media_type(Some(b"text/html, application/json")),
            "text/html"
        );
        assert_eq!(media_type(Some(b"")), "application/json");
        assert_eq!(media_type(Some(b"  ; charset=x")), "application/json");
        assert_eq!(media_type(Some(b" text/XML ;q=1")), "text/xml");
        // Already lowercase: borrowed from the header, no allocation.
        assert!(matches!(
            media_type(Some(b"application/soap+xml; charset=utf-8")),
            Cow::Borrowed("application/soap+xml")
        ));
        assert!(matches!(media_type(Some(b"Text/Plain")), Cow::Owned(_)));
    }

    #[test]
    fn json_paths() {
        let body = br#"{"a": {"b": "x", "n": 3, "l": [1, {"c": true}]}}"#;
        let p = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(json_path_value(body, &p("a.b")).as_deref(), Some("x"));
        assert_eq!(json_path_value(body, &p("a.n")).as_deref(), Some("3"));
        assert_eq!(
            json_path_value(body, &p("a.l.1.c")).as_deref(),
            Some("true")
        );
        assert_eq!(json_path_value(body, &p("a.zz")), None);
        assert_eq!(json_path_value(b"not json", &p("a")), None);
    }

    #[test]
    fn template_selection() {
        let t = vec![
            ("text/html".to_owned(), 1),
            ("application/json".to_owned(), 2),
        ];
        assert_eq!(
            select_template(&t, Some(b"application/json")).map(|x| x.1),
            Some(2)
        );
        assert_eq!(
            select_template(&t, Some(b"image/png")).map(|x| x.1),
            Some(1)
        );
        // No Accept: application/json, not the first template.
        assert_eq!(select_template(&t, None).map(|x| x.1), Some(2));
        assert_eq!(select_template(&t, Some(b"")).map(|x| x.1), Some(2));
        let html_only = vec![("text/html".to_owned(), 1)];
        assert_eq!(select_template(&html_only, None).map(|x| x.1), Some(1));
        let empty: Vec<(String, i32)> = Vec::new();
        assert!(select_template(&empty, None).is_none());
    }
}
