//! The compiled, immutable configuration every shard serves from.
//!
//! Owns: the runtime shape of APIs, stages, resources, methods and
//! integrations, with everything that can be decided at load time decided
//! (route trie built, regexes compiled, stage variables substituted into
//! integration URIs, gateway responses rendered per stage).
//! Must not: change after it is built. A reload builds a new `Snapshot`.
//! Read first: [`Snapshot::find_api`], then [`Api`].

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use std::sync::Arc;

use regex::Regex;

use crate::config::Diagnostic;
use crate::gateway_response::{GatewayResponses, StageResponses};
use crate::http::request::{HeadLimits, Method};
use crate::limit::concurrency::SharedPermits;
use crate::limit::quota::QuotaPool;
use crate::limit::registry::LimitId;
use crate::limit::SharedBucket;
use crate::router::{ResourceId, RouteTrie};
use crate::template::ContextVar;

/// Maps looked up per request whose keys come from the configuration (a
/// client cannot add keys, so a fast seeded hash is safe here).
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct Snapshot {
    pub config_path: PathBuf,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub apis: Vec<Api>,
    /// API id → its compiled deployments (one for a config API; one per
    /// deployment in use for an admin API).
    api_index: FastMap<String, Vec<usize>>,
    pub default_api: Option<usize>,
    /// Backend hosts named by integrations, indexed by [`TargetId`].
    pub targets: Vec<Target>,
    /// Responses for requests that match no API or no stage.
    pub builtin_responses: StageResponses,
    pub demo_backend: Option<SocketAddr>,
    pub throttling: Throttling,
    /// Who may invalidate cache entries (and call the admin API).
    pub credentials: Vec<crate::auth::Credential>,
    pub ws_apis: Vec<crate::ws::WsApi>,
    ws_default: Option<usize>,
    pub ws_limits: crate::ws::WsLimits,
    pub warnings: Vec<Diagnostic>,
    /// Access-log destinations (shared by every snapshot of the process).
    pub log_sinks: Arc<crate::access_log::Sinks>,
    /// The TLS listener's configuration (certificates read when this
    /// snapshot was built).
    pub tls_server: Option<Arc<rustls::ServerConfig>>,
    /// For `https://` integrations (when there are any).
    pub tls_client: Option<Arc<crate::tls::ClientConfigs>>,
    /// `[lambda_functions]`: a Lambda function ARN → the HTTP endpoint
    /// that stands in for it (Lambda authorizers).
    pub lambda_functions: HashMap<String, UpstreamBinding>,
    /// `[cognito_user_pools]`: a user pool ARN → its issuer and keys.
    pub user_pools: HashMap<String, Arc<crate::authorizer::UserPool>>,
    /// `[[domain_names]]`: custom domains and their base path mappings.
    pub domains: crate::domain::DomainNames,
}

/// The API, stage and resource path a request names.
#[derive(Clone, Copy, Debug)]
pub struct Located<'a> {
    pub api: Option<&'a Api>,
    pub stage: Option<&'a Stage>,
    /// The path after the stage (and a custom domain's base path).
    pub rest: &'a str,
}

/// A shared bucket as a request sees it.
#[derive(Clone, Debug)]
pub struct BucketRef {
    pub id: LimitId,
    pub shared: Arc<SharedBucket>,
    pub lease: u64,
}

#[derive(Clone, Debug)]
pub struct QuotaRef {
    pub id: LimitId,
    pub pool: Arc<QuotaPool>,
    pub block: u64,
}

/// Account limits, and API keys with their usage plans.
#[derive(Debug)]
pub struct Throttling {
    pub account: BucketRef,
    pub permits: Arc<SharedPermits>,
    pub permit_block: u64,
    /// API key value → the plans it is in.
    pub keys: HashMap<String, Vec<KeyPlan>>,
    /// Every bucket and quota of the snapshot, for the shards' periodic
    /// return of idle leases.
    pub buckets: Vec<BucketRef>,
    pub quotas: Vec<QuotaRef>,
}

#[derive(Debug)]
pub struct KeyPlan {
    pub plan: String,
    pub key_name: String,
    pub stages: Vec<(String, String)>,
    pub throttle: Option<BucketRef>,
    pub quota: Option<QuotaRef>,
}

impl KeyPlan {
    pub fn covers(&self, api: &str, stage: &str) -> bool {
        self.stages.iter().any(|(a, s)| a == api && s == stage)
    }
}

impl Snapshot {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config_path: PathBuf,
        server: ServerSettings,
        upstream: UpstreamSettings,
        apis: Vec<Api>,
        default_api: Option<usize>,
        targets: Vec<Target>,
        demo_backend: Option<SocketAddr>,
        throttling: Throttling,
        credentials: Vec<crate::auth::Credential>,
        warnings: Vec<Diagnostic>,
    ) -> Snapshot {
        let mut api_index: FastMap<String, Vec<usize>> = FastMap::default();
        for (i, a) in apis.iter().enumerate() {
            api_index.entry(a.id.clone()).or_default().push(i);
        }
        Snapshot {
            config_path,
            server,
            upstream,
            apis,
            api_index,
            default_api,
            targets,
            builtin_responses: GatewayResponses::builtin(),
            demo_backend,
            throttling,
            credentials,
            ws_apis: Vec::new(),
            ws_default: None,
            ws_limits: crate::ws::WsLimits::default(),
            warnings,
            log_sinks: Arc::new(crate::access_log::Sinks::default()),
            tls_server: None,
            tls_client: None,
            lambda_functions: HashMap::new(),
            user_pools: HashMap::new(),
            domains: crate::domain::DomainNames::default(),
        }
    }

    pub fn with_domains(mut self, domains: crate::domain::DomainNames) -> Snapshot {
        self.domains = domains;
        self
    }

    pub fn with_user_pools(
        mut self,
        pools: HashMap<String, Arc<crate::authorizer::UserPool>>,
    ) -> Snapshot {
        self.user_pools = pools;
        self
    }

    pub fn with_lambda_functions(
        mut self,
        functions: HashMap<String, UpstreamBinding>,
    ) -> Snapshot {
        self.lambda_functions = functions;
        self
    }

    pub fn with_tls(
        mut self,
        server: Option<Arc<rustls::ServerConfig>>,
        client: Option<Arc<crate::tls::ClientConfigs>>,
    ) -> Snapshot {
        self.tls_server = server;
        self.tls_client = client;
        self
    }

    pub fn with_log_sinks(mut self, sinks: Arc<crate::access_log::Sinks>) -> Snapshot {
        self.log_sinks = sinks;
        self
    }

    pub fn with_websockets(
        mut self,
        apis: Vec<crate::ws::WsApi>,
        limits: crate::ws::WsLimits,
        default_api: Option<&str>,
    ) -> Snapshot {
        self.ws_default = default_api.and_then(|d| apis.iter().position(|a| a.id == d));
        self.ws_apis = apis;
        self.ws_limits = limits;
        self
    }

    /// The WebSocket API a `Host: {apiId}.execute-api.*` names, or the
    /// default API when it is a WebSocket API and the host names none.
    pub fn ws_api(&self, host: Option<&[u8]>) -> Option<&crate::ws::WsApi> {
        match host.and_then(api_id_from_host) {
            Some(id) => {
                let id = std::str::from_utf8(id).ok()?;
                self.ws_apis
                    .iter()
                    .find(|a| a.id == id)
                    .or_else(|| self.ws_apis.iter().find(|a| a.id.eq_ignore_ascii_case(id)))
            }
            None => self.ws_default.map(|i| &self.ws_apis[i]),
        }
    }

    /// The API, stage and resource path of a request for `host` and
    /// `path`: a custom domain's base path mapping (`[[domain_names]]`),
    /// else [`Snapshot::find`] with the path's first segment as the stage.
    pub fn locate<'a>(&'a self, host: Option<&[u8]>, path: &'a str) -> Located<'a> {
        match self.domains.map(host, path) {
            None => {
                let (stage, rest) = crate::domain::split_stage(path);
                let (api, stage) = match self.find(host, stage) {
                    (Some(a), _) if !a.default_endpoint => (None, None),
                    found => found,
                };
                Located { api, stage, rest }
            }
            // A custom domain, no base path of it: nothing.
            Some(None) => Located {
                api: None,
                stage: None,
                rest: path,
            },
            Some(Some(m)) => {
                let (api, stage) = match self.api_group(m.api) {
                    Some(g) => self.in_group(g, m.fixed_stage.or(m.stage)),
                    None => (None, None),
                };
                Located {
                    api,
                    stage,
                    rest: m.rest,
                }
            }
        }
    }

    /// Whether a request is for a WebSocket API (free when there is none).
    pub fn is_websocket(&self, host: Option<&[u8]>, path: &[u8]) -> bool {
        if self.ws_apis.is_empty() {
            return false;
        }
        match std::str::from_utf8(path) {
            Ok(p) => self.ws_locate(host, p).is_some(),
            Err(_) => false,
        }
    }

    /// The WebSocket API, stage name and the path after it of a request
    /// (custom domains first, as [`Snapshot::locate`]).
    pub fn ws_locate<'a>(
        &'a self,
        host: Option<&[u8]>,
        path: &'a str,
    ) -> Option<(&'a crate::ws::WsApi, Option<&'a str>, &'a str)> {
        match self.domains.map(host, path) {
            None => {
                let api = self.ws_api(host)?;
                let (stage, rest) = crate::domain::split_stage(path);
                Some((api, stage, rest))
            }
            Some(None) => None,
            Some(Some(m)) => {
                let api = self.ws_apis.iter().find(|a| a.id == m.api)?;
                Some((api, m.fixed_stage.or(m.stage), m.rest))
            }
        }
    }

    /// The API and stage a request is for. `Host: {apiId}.execute-api.<anything>`
    /// names the API (an unknown id is a miss, not the default API); any
    /// other host means `default_api`. The stage picks among the API's
    /// deployments.
    pub fn find(&self, host: Option<&[u8]>, stage: Option<&str>) -> (Option<&Api>, Option<&Stage>) {
        let group: &[usize] = match host.and_then(api_id_from_host) {
            Some(id) => match std::str::from_utf8(id)
                .ok()
                .and_then(|id| self.api_group(id))
            {
                Some(g) => g,
                None => return (None, None),
            },
            None => match self.default_api {
                Some(i) => return self.with_stage(&self.apis[i], stage),
                None => return (None, None),
            },
        };
        self.in_group(group, stage)
    }

    /// The deployment of an API (`group`, its compiled deployments) that
    /// has the stage.
    fn in_group(&self, group: &[usize], stage: Option<&str>) -> (Option<&Api>, Option<&Stage>) {
        if let Some(name) = stage {
            for &i in group {
                if let Some(s) = self.apis[i].stage(name) {
                    return (Some(&self.apis[i]), Some(s));
                }
            }
        }
        (group.first().map(|&i| &self.apis[i]), None)
    }

    fn with_stage<'a>(
        &'a self,
        api: &'a Api,
        stage: Option<&str>,
    ) -> (Option<&'a Api>, Option<&'a Stage>) {
        (Some(api), stage.and_then(|s| api.stage(s)))
    }

    /// The APIs with this id; host names are case-insensitive, so an id
    /// in another case is found too (the exact one first, the scan only
    /// on a miss).
    fn api_group(&self, id: &str) -> Option<&Vec<usize>> {
        self.api_index.get(id).or_else(|| {
            self.api_index
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(id))
                .map(|(_, g)| g)
        })
    }

    /// The (first) compiled API with this id.
    pub fn api(&self, id: &str) -> Option<&Api> {
        self.api_index
            .get(id)
            .and_then(|g| g.first())
            .map(|&i| &self.apis[i])
    }
}

/// `abc123.execute-api.eu-west-1.amazonaws.com[:port]` → `abc123`.
fn api_id_from_host(host: &[u8]) -> Option<&[u8]> {
    const MARK: &[u8] = b".execute-api.";
    let pos = host
        .windows(MARK.len())
        .position(|w| w.eq_ignore_ascii_case(MARK))?;
    let id = &host[..pos];
    (!id.is_empty()).then_some(id)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shards {
    Auto,
    Count(usize),
}

#[derive(Clone, Debug)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub shards: Shards,
    pub limits: Limits,
    pub io_memory: usize,
    pub shutdown_grace: Duration,
    /// Count requests for `/metrics` (off: no per-request counting).
    pub metrics: bool,
    /// The TLS listener, when configured.
    pub tls: Option<crate::tls::TlsSpec>,
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_body_bytes: u64,
    pub head: HeadLimits,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub write_timeout: Duration,
    pub max_connections_per_shard: usize,
}

#[derive(Clone, Copy, Debug)]
pub struct UpstreamSettings {
    pub connect_timeout: Duration,
    pub max_idle_per_host: usize,
    pub idle_timeout: Duration,
    pub max_response_head_bytes: usize,
    pub dns_refresh: Duration,
    pub buffer_response_bytes: usize,
}

pub type TargetId = u32;

/// A backend `host:port` as integrations name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// What is resolved: the `upstream_hosts` mapping if there is one,
    /// else the integration's own host and port.
    pub resolve: String,
    /// Known without DNS (an IP literal).
    pub fixed: Option<SocketAddr>,
    /// `https://`: the name to send and verify.
    pub tls: Option<TargetTls>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetTls {
    /// The integration's host (not the `upstream_hosts` address it may be
    /// sent to): SNI and certificate name.
    pub server_name: rustls_pki_types::ServerName<'static>,
    /// `tlsConfig.insecureSkipVerification`.
    pub insecure: bool,
    /// Pooled connections are shared only by the same name and setting.
    pub pool_key: u64,
}

#[derive(Debug)]
pub struct Api {
    pub id: String,
    /// The deployment this was compiled from, for admin-defined APIs.
    pub deployment: Option<String>,
    pub title: String,
    pub source: PathBuf,
    pub trie: RouteTrie,
    pub resources: Vec<Resource>,
    pub methods: Vec<MethodDef>,
    pub stages: Vec<Stage>,
    pub stage_index: FastMap<String, usize>,
    pub gateway_responses: GatewayResponses,
    /// `x-amazon-apigateway-binary-media-types`.
    pub binary_media_types: BinaryMediaTypes,
    /// `x-amazon-apigateway-api-key-source` is `HEADER` (the default):
    /// keys are the client's `x-api-key`. `AUTHORIZER` (false): the
    /// `usageIdentifierKey` of the method's Lambda authorizer.
    pub api_keys_from_header: bool,
    /// `x-amazon-apigateway-minimum-compression-size`: responses of at
    /// least this many bytes are compressed for clients that accept gzip or
    /// deflate; `None`: compression is off (API Gateway's default).
    pub minimum_compression_size: Option<usize>,
    /// `x-amazon-apigateway-policy`: the API's resource policy, judged
    /// before method authorization (`shard::authorize::check_head`).
    pub policy: Option<crate::resource_policy::ResourcePolicy>,
    /// Served on the default endpoint (`Host: {id}.execute-api.*`,
    /// `default_api`); `false` (`disableExecuteApiEndpoint`): only through
    /// its custom domains.
    pub default_endpoint: bool,
}

/// `contentHandling` of an integration request or response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentHandling {
    ConvertToText,
    ConvertToBinary,
}

/// The media types an API treats as binary (lowercase; `image/*` and
/// `*/*` wildcards).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BinaryMediaTypes(pub Vec<String>);

impl BinaryMediaTypes {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Is `media_type` (lowercase, no parameters) binary for this API?
    pub fn matches(&self, media_type: &str) -> bool {
        self.0.iter().any(|t| {
            t == "*/*"
                || t == media_type
                || t.strip_suffix("/*").is_some_and(|major| {
                    media_type
                        .strip_prefix(major)
                        .is_some_and(|rest| rest.starts_with('/'))
                })
        })
    }
}

impl Api {
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        self.stage_index.get(name).map(|&i| &self.stages[i])
    }

    pub fn resource(&self, id: ResourceId) -> &Resource {
        &self.resources[id as usize]
    }
}

/// Index into [`Resource::methods`] for each routable method.
pub fn method_slot(m: Method) -> Option<usize> {
    match m {
        Method::Get => Some(0),
        Method::Head => Some(1),
        Method::Post => Some(2),
        Method::Put => Some(3),
        Method::Delete => Some(4),
        Method::Patch => Some(5),
        Method::Options => Some(6),
        Method::Other => None,
    }
}

#[derive(Debug)]
pub struct Resource {
    pub path: String,
    pub param_names: Vec<String>,
    pub methods: [Option<u32>; 7],
    /// `x-amazon-apigateway-any-method`: `DELETE, GET, HEAD, OPTIONS, PATCH,
    /// POST, PUT`; an explicit method wins.
    pub any: Option<u32>,
}

impl Resource {
    pub fn method_for(&self, m: Method) -> Option<u32> {
        method_slot(m).and_then(|slot| self.methods[slot].or(self.any))
    }
}

#[derive(Debug)]
pub struct MethodDef {
    /// `GET`, ... or `ANY`.
    pub http_method: String,
    pub resource: ResourceId,
    pub integration: Option<Integration>,
    /// The operation's `security` names an API key (`x-api-key` header).
    pub api_key_required: bool,
    /// The operation's authorizer (`security`), checked before API keys.
    pub auth: MethodAuth,
    /// Method request validation (`x-amazon-apigateway-request-validator`).
    pub validator: Option<crate::validate::MethodValidator>,
}

/// Who may call a method: `authorizationType` in API Gateway's words.
#[derive(Clone, Debug, Default)]
pub enum MethodAuth {
    /// `NONE`.
    #[default]
    None,
    /// `AWS_IAM`: a SigV4 signature (service `execute-api`) by a
    /// credential of the config with the `invoke` permission.
    Iam,
    /// `CUSTOM`: a Lambda authorizer.
    Lambda(Arc<LambdaAuthorizer>),
    /// `COGNITO_USER_POOLS`, with the OAuth scopes the method asks for
    /// (none: an ID token).
    Cognito {
        authorizer: Arc<CognitoAuthorizer>,
        scopes: Vec<String>,
    },
}

/// A Lambda authorizer (`x-amazon-apigateway-authorizer` of type `token`
/// or `request`).
#[derive(Debug)]
pub struct LambdaAuthorizer {
    /// Its security definition's name (`authorizerId` in the admin API).
    pub name: String,
    /// `request` (identity from several sources); else `token` (one
    /// header).
    pub request: bool,
    /// What must be present, non-empty, for the authorizer to be called;
    /// together they key its cached results.
    pub sources: Vec<IdentitySource>,
    /// `identityValidationExpression` (TOKEN), anchored: a token it does
    /// not match is refused with 401 without calling the authorizer.
    pub validation: Option<Regex>,
    /// `authorizerResultTtlInSeconds` (default 300, 0: no caching).
    pub ttl: Duration,
    /// The Lambda function ARN of `authorizerUri`.
    pub function: Option<String>,
}

/// Where an authorizer's identity comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdentitySource {
    Header(String),
    Query(String),
    StageVar(String),
    Context(String),
}

impl IdentitySource {
    /// `method.request.header.NAME`, `method.request.querystring.NAME`,
    /// `stageVariables.NAME` or `context.NAME`.
    pub fn parse(s: &str) -> Option<IdentitySource> {
        let (make, name): (fn(String) -> IdentitySource, &str) =
            if let Some(n) = s.strip_prefix("method.request.header.") {
                (IdentitySource::Header, n)
            } else if let Some(n) = s.strip_prefix("method.request.querystring.") {
                (IdentitySource::Query, n)
            } else if let Some(n) = s.strip_prefix("stageVariables.") {
                (IdentitySource::StageVar, n)
            } else if let Some(n) = s.strip_prefix("context.") {
                (IdentitySource::Context, n)
            } else {
                return None;
            };
        (!name.is_empty()).then(|| make(name.to_owned()))
    }
}

/// A Cognito user pool authorizer: the header that carries the token and
/// the user pools (`providerARNs`) whose tokens it accepts.
#[derive(Debug)]
pub struct CognitoAuthorizer {
    pub name: String,
    pub header: String,
    pub providers: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IntegrationKind {
    Http,
    HttpProxy,
    Mock,
    /// Compiled but not callable here (`aws`, `aws_proxy`, `https://`,
    /// VPC links): answers 500 API_CONFIGURATION_ERROR, and `check` says why.
    Unsupported(String),
}

impl IntegrationKind {
    pub fn label(&self) -> &str {
        match self {
            IntegrationKind::Http => "HTTP",
            IntegrationKind::HttpProxy => "HTTP_PROXY",
            IntegrationKind::Mock => "MOCK",
            IntegrationKind::Unsupported(_) => "UNSUPPORTED",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passthrough {
    WhenNoMatch,
    WhenNoTemplates,
    Never,
}

#[derive(Debug)]
pub struct Integration {
    pub kind: IntegrationKind,
    /// `None` = `ANY`: send the client's method.
    pub http_method: Option<Method>,
    /// The `uri` as written, for `check` and logs.
    pub uri: Option<String>,
    pub request_parameters: Vec<(ParamTarget, ParamSource)>,
    /// Content type (lowercase) → template text, in document order.
    pub request_templates: Vec<(String, Arc<crate::vtl::Template>)>,
    /// Per request template (same order): the status a MOCK integration
    /// answers when the template is plain text, found once at compile
    /// instead of parsing the same JSON on every request.
    pub mock_statuses: Vec<Option<u16>>,
    pub passthrough: Passthrough,
    pub timeout: Duration,
    /// In document order; the `default` one (no pattern) is tried last.
    pub responses: Vec<IntegrationResponse>,
    /// `cacheKeyParameters`: request parameters that are part of the cache key.
    pub cache_key_params: Vec<crate::cache::KeyParam>,
    /// `contentHandling` of the integration request.
    pub content_handling: Option<ContentHandling>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamTarget {
    Path(String),
    Query(String),
    Header(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParamSource {
    Path(String),
    Query(String),
    MultiQuery(String),
    Header(String),
    MultiHeader(String),
    Body,
    BodyPath(Vec<String>),
    StageVar(String),
    Context(ContextVar),
    Literal(String),
}

#[derive(Debug)]
pub struct IntegrationResponse {
    /// `None` is the `default` response.
    pub pattern: Option<Regex>,
    pub pattern_text: String,
    pub status: u16,
    pub headers: Vec<(String, ResponseParamSource)>,
    /// Content type → template, in document order.
    pub templates: Vec<(String, Arc<crate::vtl::Template>)>,
    pub content_handling: Option<ContentHandling>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseParamSource {
    Literal(String),
    IntegrationHeader(String),
    /// `integration.response.multivalueheader.X`: every value, joined
    /// with commas.
    IntegrationMultiValueHeader(String),
    IntegrationBody,
    IntegrationBodyPath(Vec<String>),
    StageVar(String),
    Context(ContextVar),
}

#[derive(Debug)]
pub struct Stage {
    pub name: String,
    pub variables: BTreeMap<String, String>,
    /// Per method (same index as [`Api::methods`]): where its integration
    /// sends requests in this stage.
    pub bindings: Vec<Binding>,
    pub responses: StageResponses,
    /// All requests of the stage together.
    pub throttle: Option<BucketRef>,
    /// Per method (same index as [`Api::methods`]).
    pub method_throttles: Vec<Option<BucketRef>>,
    pub cache: Option<crate::cache::StageCache>,
    /// Per method: its caching in this stage, if cached.
    pub method_cache: Vec<Option<crate::cache::MethodCache>>,
    /// Per method: its metric series.
    pub metric_ids: Vec<u32>,
    /// The series of requests that reach the stage but no method.
    pub metric_unmatched: u32,
    /// Where and how requests of the stage are logged.
    pub access_log: Option<crate::access_log::AccessLog>,
}

#[derive(Debug)]
pub enum Binding {
    /// MOCK, or no integration: nothing to call.
    None,
    Upstream(UpstreamBinding),
    /// The URI cannot be built in this stage (missing stage variable, bad
    /// authority): answers 500, and `check` warns.
    Invalid(String),
}

#[derive(Debug)]
pub struct UpstreamBinding {
    pub target: TargetId,
    /// `Host` sent to the backend: the URI's authority.
    pub host_header: String,
    /// The path and query of the URI, stage variables filled in.
    pub path: Vec<UriPart>,
    pub query: Vec<UriPart>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UriPart {
    Text(String),
    /// `{name}`: filled from `integration.request.path.name`.
    Param(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_id_from_host_table() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (b"abc.execute-api.eu-west-1.amazonaws.com", Some(b"abc")),
            (b"abc.EXECUTE-API.localhost:8080", Some(b"abc")),
            (b".execute-api.x", None),
            (b"localhost:8080", None),
            (b"example.com", None),
        ];
        for (host, want) in cases {
            assert_eq!(api_id_from_host(host), *want);
        }
    }
}
