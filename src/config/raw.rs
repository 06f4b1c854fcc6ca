//! `tollgate.toml` as written: serde structs, unknown keys refused.
//! Every key here is documented in `docs/configuration.md`; keep the two
//! in step. Values are checked and turned into runtime types by
//! `config::compile`, not here.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub server: RawServer,
    #[serde(default)]
    pub apis: Vec<RawApi>,
    #[serde(default)]
    pub stages: Vec<RawStage>,
    #[serde(default)]
    pub upstream_hosts: BTreeMap<String, String>,
    /// Lambda function ARN → the HTTP endpoint that stands in for it (a
    /// Lambda authorizer's `authorizerUri` names the function).
    #[serde(default)]
    pub lambda_functions: BTreeMap<String, String>,
    /// Cognito user pool ARN → where its JWKS is, for Cognito authorizers.
    #[serde(default)]
    pub cognito_user_pools: BTreeMap<String, RawUserPool>,
    #[serde(default)]
    pub upstream: RawUpstream,
    #[serde(default)]
    pub demo_backend: Option<RawDemoBackend>,
    #[serde(default)]
    pub admin: Option<RawAdmin>,
    #[serde(default)]
    pub credentials: Vec<RawCredential>,
    #[serde(default)]
    pub limits: RawAccountLimits,
    #[serde(default)]
    pub usage_plans: Vec<RawUsagePlan>,
    #[serde(default)]
    pub api_keys: Vec<RawApiKey>,
    #[serde(default)]
    pub websocket_apis: Vec<RawWsApi>,
    #[serde(default)]
    pub websocket: RawWsLimits,
    #[serde(default)]
    pub domain_names: Vec<RawDomainName>,
}

/// A custom domain name and its base path mappings.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDomainName {
    /// `api.example.com`, or `*.example.com` for every subdomain.
    pub name: String,
    #[serde(default)]
    pub mappings: Vec<RawBasePathMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasePathMapping {
    /// `v1`, `v1/orders`; empty or `(none)` for the whole domain.
    #[serde(default)]
    pub base_path: String,
    pub api: String,
    /// Without one, the stage is the first path segment after the base
    /// path.
    #[serde(default)]
    pub stage: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUserPool {
    /// The pool's JSON Web Key Set, saved from
    /// `https://cognito-idp.REGION.amazonaws.com/POOL_ID/.well-known/jwks.json`.
    pub jwks_file: String,
    /// The tokens' `iss`; by default the pool's, from its ARN.
    #[serde(default)]
    pub issuer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsApi {
    pub id: String,
    #[serde(default = "default_route_selection")]
    pub route_selection_expression: String,
    pub stages: Vec<RawWsStage>,
    #[serde(default)]
    pub routes: Vec<RawWsRoute>,
    #[serde(default)]
    pub authorizers: Vec<RawWsAuthorizer>,
}

/// A Lambda REQUEST authorizer of a WebSocket API (API Gateway's
/// `CreateAuthorizer` for WebSocket APIs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsAuthorizer {
    pub name: String,
    /// The function's ARN, or API Gateway's `authorizerUri`
    /// (`arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`).
    pub uri: String,
    /// `route.request.header.X`, `route.request.querystring.X`,
    /// `stageVariables.X`, `context.X`.
    #[serde(default)]
    pub identity_source: Vec<String>,
}

fn default_route_selection() -> String {
    "$request.body.action".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsStage {
    pub name: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsRoute {
    pub key: String,
    pub integration: RawWsIntegration,
    #[serde(default)]
    pub route_response: bool,
    /// `NONE` (default), `AWS_IAM` or `CUSTOM` (`$connect` only).
    #[serde(default)]
    pub authorization_type: Option<String>,
    /// The name of the API's authorizer (`CUSTOM`).
    #[serde(default)]
    pub authorizer: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWsIntegration {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub uri: Option<String>,
    #[serde(default)]
    pub request_templates: BTreeMap<String, String>,
    #[serde(default)]
    pub response_template: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `integration.request.header.X` / `integration.request.querystring.X`
    /// = `route.request.header.Y` / `route.request.querystring.Y` (the
    /// upgrade request's, `$connect` only), `stageVariables.Y`,
    /// `context.Y` or a `'literal'`.
    #[serde(default)]
    pub request_parameters: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWsLimits {
    pub max_frame_bytes: u64,
    pub max_message_bytes: u64,
    pub idle_timeout_seconds: u64,
    pub max_connection_seconds: u64,
    pub send_queue: u64,
    /// `true`: binary messages are routed like text (an extension);
    /// `false` (API Gateway's behaviour): a binary frame closes the
    /// connection with 1003.
    pub binary_frames: bool,
}

impl Default for RawWsLimits {
    fn default() -> Self {
        RawWsLimits {
            max_frame_bytes: 32 * 1024,
            max_message_bytes: 128 * 1024,
            idle_timeout_seconds: 600,
            max_connection_seconds: 7200,
            send_queue: 64,
            binary_frames: false,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    #[serde(default = "default_admin_listen")]
    pub listen: String,
    #[serde(default = "default_state_dir")]
    pub state_dir: String,
    /// Most admin connections served at once.
    #[serde(default = "default_admin_connections")]
    pub max_connections: u64,
}

fn default_admin_listen() -> String {
    "127.0.0.1:9001".to_owned()
}

fn default_state_dir() -> String {
    "state".to_owned()
}

fn default_admin_connections() -> u64 {
    64
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredential {
    pub name: String,
    #[serde(default)]
    pub access_key_id: Option<String>,
    #[serde(default)]
    pub secret_access_key: Option<String>,
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_env: Option<String>,
    pub permissions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: String,
    #[serde(default)]
    pub shards: Option<RawShards>,
    #[serde(default)]
    pub default_api: Option<String>,
    #[serde(default)]
    pub limits: RawLimits,
    /// Memory glommio registers with io_uring per shard, in KiB.
    #[serde(default = "default_io_memory_kib")]
    pub io_memory_kib: u64,
    /// After SIGTERM: how long in-flight requests may take to finish.
    #[serde(default = "default_shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// Count requests for `/metrics` on the admin listener.
    #[serde(default = "default_true")]
    pub metrics: bool,
    #[serde(default)]
    pub tls: Option<RawTls>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub listen: String,
    pub certificates: Vec<RawCertificate>,
    #[serde(default)]
    pub client_ca: Option<String>,
    /// `optional` or `required` (the default when `client_ca` is set).
    #[serde(default)]
    pub client_auth: Option<String>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawCertificate {
    pub cert: String,
    pub key: String,
}

fn default_shutdown_grace_ms() -> u64 {
    10_000
}

fn default_io_memory_kib() -> u64 {
    512
}

#[derive(Debug, Deserialize, Clone, PartialEq, Eq)]
#[serde(untagged, expecting = "expected \"auto\" or a number from 1 to 1024")]
pub enum RawShards {
    Count(u64),
    Word(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    pub max_body_bytes: u64,
    pub max_head_bytes: u64,
    pub max_uri_bytes: u64,
    pub header_read_timeout_ms: u64,
    pub body_read_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub write_timeout_ms: u64,
    pub max_connections_per_shard: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            max_body_bytes: 10 * 1024 * 1024,
            max_head_bytes: 16 * 1024,
            // API Gateway's URL limit for Regional APIs (edge: 8,192).
            max_uri_bytes: 10 * 1024,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            write_timeout_ms: 30_000,
            max_connections_per_shard: 50_000,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawUpstream {
    pub connect_timeout_ms: u64,
    pub max_idle_per_host: u64,
    pub idle_timeout_ms: u64,
    pub max_response_head_bytes: u64,
    pub dns_refresh_seconds: u64,
    /// Responses up to this size are read whole and sent in one write;
    /// larger ones are streamed.
    pub buffer_response_bytes: u64,
    /// CA bundle (PEM) for `https://` integrations instead of the system's.
    pub ca_file: Option<String>,
}

impl Default for RawUpstream {
    fn default() -> Self {
        RawUpstream {
            connect_timeout_ms: 5_000,
            max_idle_per_host: 1024,
            idle_timeout_ms: 60_000,
            max_response_head_bytes: 64 * 1024,
            dns_refresh_seconds: 30,
            buffer_response_bytes: 256 * 1024,
            ca_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub id: String,
    pub swagger: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStage {
    pub api: String,
    pub name: String,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub throttle: Option<RawThrottle>,
    /// `"/items/GET"` (resource path and method) → settings.
    #[serde(default)]
    pub method_settings: BTreeMap<String, RawMethodSettings>,
    #[serde(default)]
    pub cache: Option<RawStageCache>,
    #[serde(default)]
    pub access_log: Option<RawAccessLog>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawAccessLog {
    /// One line per request, with `$context` variables.
    pub format: String,
    /// A file (relative to the config file) or `-` for stdout.
    #[serde(default = "default_access_log_path")]
    pub path: String,
}

fn default_access_log_path() -> String {
    "-".to_owned()
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct RawStageCache {
    #[serde(default = "default_true")]
    pub enabled: bool,
    #[serde(default = "default_cache_ttl")]
    pub ttl_seconds: u64,
    #[serde(default = "default_cache_mb")]
    pub capacity_mb: f64,
    #[serde(default = "default_true")]
    pub require_authorization: bool,
    #[serde(default = "default_unauthorized_strategy")]
    pub unauthorized_strategy: String,
}

fn default_cache_ttl() -> u64 {
    3600
}

fn default_cache_mb() -> f64 {
    64.0
}

fn default_unauthorized_strategy() -> String {
    crate::cache::UnauthorizedStrategy::DEFAULT
        .name()
        .to_owned()
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawMethodCache {
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct RawThrottle {
    pub rate: f64,
    pub burst: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawMethodSettings {
    #[serde(default)]
    pub throttle: Option<RawThrottle>,
    #[serde(default)]
    pub cache: Option<RawMethodCache>,
}

/// `[limits]`: account-wide limits, as API Gateway's account defaults.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAccountLimits {
    pub rate: f64,
    pub burst: u64,
    pub max_concurrent: u64,
    /// Where usage-plan quota counters are kept (relative to the config file).
    pub state_dir: String,
    pub cluster: Option<RawCluster>,
}

impl Default for RawAccountLimits {
    fn default() -> Self {
        RawAccountLimits {
            rate: 10_000.0,
            burst: 5_000,
            max_concurrent: 5_000,
            state_dir: "state".to_owned(),
            cluster: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    pub redis: String,
    /// `fail_open_local_share` (default) or `fail_closed`.
    #[serde(default = "default_cluster_policy")]
    pub policy: String,
    /// Hosts sharing the limit, for the local share when Redis is down
    /// (default: the number of hosts seen alive in Redis, at least 1).
    #[serde(default)]
    pub hosts: Option<u64>,
    #[serde(default = "default_cluster_prefix")]
    pub key_prefix: String,
}

fn default_cluster_policy() -> String {
    "fail_open_local_share".to_owned()
}

fn default_cluster_prefix() -> String {
    "tollgate".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUsagePlan {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub throttle: Option<RawThrottle>,
    #[serde(default)]
    pub quota: Option<RawQuota>,
    /// `"api/stage"` pairs the plan covers.
    pub api_stages: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub limit: u64,
    /// `DAY`, `WEEK` or `MONTH` (UTC).
    pub period: String,
    #[serde(default)]
    pub offset: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApiKey {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub value_env: Option<String>,
    pub usage_plans: Vec<String>,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDemoBackend {
    pub listen: String,
}
