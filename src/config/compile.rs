//! Raw config + Swagger drafts → [`Snapshot`]: settings checked, stages
//! bound to their API, integration URIs resolved per stage to a backend
//! target, gateway responses rendered per stage.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::raw::{RawConfig, RawCredential, RawShards, RawThrottle};
use super::swagger::{compile_api, ApiDraft, TplPart, UriTemplate};
use super::{parse_document, Diagnostics, LoadError, SourceReader};
use crate::auth::{Credential, Permissions};
use crate::cache::{KeyParam, MethodCache, StageCache, UnauthorizedStrategy};
use crate::http::request::HeadLimits;
use crate::http::request::Method;
use crate::limit::concurrency::SharedPermits;
use crate::limit::quota::{Period, QuotaSpec};
use crate::limit::registry::Registry;
use crate::limit::Rate;
use crate::snapshot::{
    Binding, BucketRef, IntegrationKind, KeyPlan, Limits, QuotaRef, ServerSettings, Shards,
    Snapshot, Stage, Target, TargetId, Throttling, UpstreamBinding, UpstreamSettings, UriPart,
};
use crate::template::StageValues;

/// The settings of `tollgate.toml` other than its APIs: what every
/// snapshot built from this file shares.
#[derive(Clone, Debug)]
pub struct Settings {
    pub config_path: PathBuf,
    pub server: ServerSettings,
    pub upstream: UpstreamSettings,
    pub upstream_hosts: HashMap<String, String>,
    /// `[lambda_functions]`: function ARN → the endpoint standing in for it.
    pub lambda_functions: Vec<(String, UriTemplate)>,
    /// `[cognito_user_pools]`: pool ARN → its issuer and keys (read here,
    /// so a reload reads a rotated JWKS).
    pub user_pools: HashMap<String, Arc<crate::authorizer::UserPool>>,
    pub default_api: Option<String>,
    pub demo_backend: Option<SocketAddr>,
    pub admin: Option<AdminSettings>,
    pub credentials: Vec<Credential>,
    pub limits: LimitSettings,
    pub ws_apis: Vec<super::ws::WsApiSettings>,
    pub ws_limits: crate::ws::WsLimits,
    pub domains: crate::domain::DomainNames,
    /// CA bundle for `https://` integrations (else the system's roots).
    pub upstream_ca: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct CacheSettings {
    pub enabled: bool,
    pub ttl: Duration,
    pub capacity_bytes: u64,
    pub require_authorization: bool,
    pub unauthorized: UnauthorizedStrategy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MethodCacheSettings {
    pub enabled: Option<bool>,
    pub ttl: Option<Duration>,
}

#[derive(Clone, Debug)]
pub struct LimitSettings {
    pub account: Rate,
    pub max_concurrent: u64,
    pub quota_file: PathBuf,
    pub cluster: Option<ClusterSettings>,
    pub plans: Vec<PlanSettings>,
    pub keys: Vec<KeySettings>,
}

#[derive(Clone, Debug)]
pub struct ClusterSettings {
    pub redis: String,
    pub fail_closed: bool,
    pub hosts: Option<u64>,
    pub key_prefix: String,
}

#[derive(Clone, Debug)]
pub struct PlanSettings {
    pub id: String,
    pub throttle: Option<Rate>,
    pub quota: Option<QuotaSpec>,
    pub api_stages: Vec<(String, String)>,
    /// The admin API's record the plan comes from (`None`: the config
    /// file), where problems with it are reported.
    pub record: Option<std::path::PathBuf>,
}

#[derive(Clone)]
pub struct KeySettings {
    pub name: String,
    pub value: String,
    pub plans: Vec<String>,
}

impl std::fmt::Debug for KeySettings {
    // Key values never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySettings")
            .field("name", &self.name)
            .field("plans", &self.plans)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub state_dir: PathBuf,
    pub max_connections: usize,
}

/// One API to serve: its document and its stages, from the config file or
/// from the admin API's state.
#[derive(Clone, Debug)]
pub struct ApiSource {
    pub id: String,
    /// For admin APIs: the deployment this document is. One API id may have
    /// several, one per deployment some stage points at.
    pub deployment: Option<String>,
    /// Where problems in the document are reported.
    pub file: PathBuf,
    pub doc: Arc<serde_json::Value>,
    pub stages: Vec<StageSource>,
    /// Whether the API answers on the default endpoint, when that is the
    /// API's own setting rather than its document's: an admin API's
    /// `disableExecuteApiEndpoint` covers every stage, whatever deployment
    /// each serves (a stage rolled back to an older deployment included).
    pub default_endpoint: Option<bool>,
    /// The same for the resource policy: an object holding an admin API's
    /// current `x-amazon-apigateway-policy`, which applies to every stage,
    /// rather than each deployment's copy.
    pub policy_from: Option<Arc<serde_json::Value>>,
}

#[derive(Clone, Debug)]
pub struct StageSource {
    pub name: String,
    pub variables: BTreeMap<String, String>,
    pub throttle: Option<Rate>,
    /// `"/items/GET"` → rate.
    pub method_throttles: Vec<(String, Rate)>,
    pub cache: Option<CacheSettings>,
    /// `"/items/GET"` → cache override.
    pub method_caches: Vec<(String, MethodCacheSettings)>,
    pub access_log: Option<crate::access_log::AccessLogSpec>,
    /// Where problems with this stage are reported: file and JSON path.
    pub file: PathBuf,
    pub path: String,
}

/// A config file read and checked: its settings and its APIs.
#[derive(Clone, Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub apis: Vec<ApiSource>,
}

/// Compiles a parsed `tollgate.toml` (at `config_path`) and the documents
/// it names. All errors are collected; any error fails the whole load.
pub fn compile(
    config_path: &Path,
    raw: RawConfig,
    diags: &mut Diagnostics,
    reader: &dyn SourceReader,
) -> Result<Snapshot, LoadError> {
    let loaded = read_config(config_path, raw, diags, reader);
    // Documents are compiled even when the settings have errors, so one
    // run reports everything.
    match loaded {
        Some(l) => build(
            &l.settings,
            &l.apis,
            &Registry::new(l.settings.limits.max_concurrent),
            diags,
        ),
        None => Err(LoadError {
            errors: std::mem::take(&mut diags.errors),
            warnings: std::mem::take(&mut diags.warnings),
        }),
    }
}

/// Checks the settings and reads the Swagger documents of a config file.
/// Problems go to `diags`; `None` when the settings themselves are unusable.
pub fn read_config(
    config_path: &Path,
    raw: RawConfig,
    diags: &mut Diagnostics,
    reader: &dyn SourceReader,
) -> Option<Loaded> {
    let base = config_path.parent().unwrap_or(Path::new("."));
    let file = config_path;

    let listen = parse_socket_addr(&raw.server.listen);
    if listen.is_none() {
        diags.error(
            file,
            "$.server.listen",
            format!(
                "`{}` is not an address like 127.0.0.1:8080 or [::]:8080",
                raw.server.listen
            ),
        );
    }
    let tls = raw.server.tls.as_ref().and_then(|t| {
        let tls_listen = parse_socket_addr(&t.listen);
        if tls_listen.is_none() {
            diags.error(
                file,
                "$.server.tls.listen",
                format!("`{}` is not an address like 0.0.0.0:8443", t.listen),
            );
        }
        // Both listeners use SO_REUSEPORT, so the kernel would not refuse
        // the second bind: it would split connections between plain and
        // TLS at random.
        if let (Some(a), Some(b)) = (listen, tls_listen) {
            let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
            if a.port() == b.port() && a.port() != 0 && overlap {
                diags.error(
                    file,
                    "$.server.tls.listen",
                    format!("`{}` takes the port of `server.listen` (`{}`): plain and TLS connections need ports of their own", t.listen, raw.server.listen),
                );
            }
        }
        let listen = tls_listen;
        if t.certificates.is_empty() {
            diags.error(
                file,
                "$.server.tls.certificates",
                "at least one certificate is needed",
            );
        }
        let client_auth = match (t.client_auth.as_deref(), &t.client_ca) {
            (None, None) => crate::tls::ClientAuth::None,
            (None | Some("required"), Some(_)) => crate::tls::ClientAuth::Required,
            (Some("optional"), Some(_)) => crate::tls::ClientAuth::Optional,
            (Some("required" | "optional"), None) => {
                diags.error(file, "$.server.tls.client_auth", "needs client_ca");
                crate::tls::ClientAuth::None
            }
            (Some(other), _) => {
                diags.error(
                    file,
                    "$.server.tls.client_auth",
                    format!("`{other}`: expected \"optional\" or \"required\""),
                );
                crate::tls::ClientAuth::None
            }
        };
        Some(crate::tls::TlsSpec {
            listen: listen?,
            certificates: t
                .certificates
                .iter()
                .map(|c| (resolve_path(base, &c.cert), resolve_path(base, &c.key)))
                .collect(),
            client_ca: t.client_ca.as_deref().map(|p| resolve_path(base, p)),
            client_auth,
        })
    });
    let shards = match &raw.server.shards {
        None => Shards::Auto,
        Some(RawShards::Word(w)) if w == "auto" => Shards::Auto,
        Some(RawShards::Count(n)) if (1..=1024).contains(n) => Shards::Count(*n as usize),
        Some(other) => {
            diags.error(
                file,
                "$.server.shards",
                format!(
                    "expected \"auto\" or a number from 1 to 1024, found {}",
                    match other {
                        RawShards::Count(n) => n.to_string(),
                        RawShards::Word(w) => format!("\"{w}\""),
                    }
                ),
            );
            Shards::Auto
        }
    };
    let l = &raw.server.limits;
    let mut positive = |key: &str, v: u64| {
        if v == 0 {
            diags.error(
                file,
                format!("$.server.limits.{key}"),
                "must be greater than 0",
            );
        }
    };
    positive("max_head_bytes", l.max_head_bytes);
    positive("max_uri_bytes", l.max_uri_bytes);
    positive("header_read_timeout_ms", l.header_read_timeout_ms);
    positive("body_read_timeout_ms", l.body_read_timeout_ms);
    positive("idle_timeout_ms", l.idle_timeout_ms);
    positive("write_timeout_ms", l.write_timeout_ms);
    positive("max_connections_per_shard", l.max_connections_per_shard);
    if l.max_head_bytes > 1024 * 1024 {
        diags.error(
            file,
            "$.server.limits.max_head_bytes",
            "must be at most 1048576",
        );
    }
    let limits = Limits {
        max_body_bytes: l.max_body_bytes,
        head: HeadLimits {
            max_head_bytes: l.max_head_bytes as usize,
            max_uri_bytes: l.max_uri_bytes as usize,
        },
        header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
        body_read_timeout: Duration::from_millis(l.body_read_timeout_ms),
        idle_timeout: Duration::from_millis(l.idle_timeout_ms),
        write_timeout: Duration::from_millis(l.write_timeout_ms),
        max_connections_per_shard: l.max_connections_per_shard as usize,
    };
    // io_uring registers a buffer of at most 1 GiB; glommio allocates the
    // whole amount per shard up front (an allocation that fails aborts it).
    if !(64..=1 << 20).contains(&raw.server.io_memory_kib) {
        diags.error(
            file,
            "$.server.io_memory_kib",
            "must be from 64 to 1048576 (1 GiB, the most io_uring registers as one buffer)",
        );
    }
    let u = &raw.upstream;
    if u.connect_timeout_ms == 0 {
        diags.error(
            file,
            "$.upstream.connect_timeout_ms",
            "must be greater than 0",
        );
    }
    if u.dns_refresh_seconds == 0 {
        diags.error(
            file,
            "$.upstream.dns_refresh_seconds",
            "must be greater than 0",
        );
    }
    if u.max_response_head_bytes < 1024 {
        diags.error(
            file,
            "$.upstream.max_response_head_bytes",
            "must be at least 1024",
        );
    }
    let upstream = UpstreamSettings {
        connect_timeout: Duration::from_millis(u.connect_timeout_ms),
        max_idle_per_host: u.max_idle_per_host as usize,
        idle_timeout: Duration::from_millis(u.idle_timeout_ms),
        max_response_head_bytes: u.max_response_head_bytes as usize,
        dns_refresh: Duration::from_secs(u.dns_refresh_seconds),
        buffer_response_bytes: u.buffer_response_bytes as usize,
    };

    // upstream_hosts: "host[:port]" → "host:port"
    let mut upstream_hosts: HashMap<String, String> = HashMap::new();
    for (from, to) in &raw.upstream_hosts {
        let jp = format!("$.upstream_hosts.{from}");
        if split_host_port(to).is_none_or(|(_, p)| p.is_none()) {
            diags.error(
                file,
                &jp,
                format!("`{to}` must be host:port, like 127.0.0.1:9000"),
            );
            continue;
        }
        // The name an integration URI uses: a host, or host:port (a key
        // that cannot be one would never match).
        if split_host_port(from).is_none() {
            diags.error(
                file,
                &jp,
                format!("`{from}` must be a host or host:port (a port up to 65535), as integration URIs name it"),
            );
            continue;
        }
        upstream_hosts.insert(from.to_ascii_lowercase(), to.clone());
    }

    // lambda_functions: "arn:aws:lambda:...:function:NAME" → "http(s)://host:port/path"
    let mut lambda_functions = Vec::new();
    for (arn, url) in &raw.lambda_functions {
        let jp = format!("$.lambda_functions.{arn}");
        if !arn.starts_with("arn:") || !arn.contains(":function:") {
            diags.error(
                file,
                &jp,
                "must be a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME), as an authorizerUri names it",
            );
            continue;
        }
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            diags.error(
                file,
                &jp,
                format!("`{url}` must be an http:// or https:// URL"),
            );
            continue;
        }
        match super::swagger::parse_uri_template(url) {
            Ok(t)
                if t.authority.iter().all(|p| matches!(p, TplPart::Text(_)))
                    && t.path
                        .iter()
                        .chain(&t.query)
                        .all(|p| matches!(p, TplPart::Text(_))) =>
            {
                lambda_functions.push((arn.clone(), t))
            }
            Ok(_) => diags.error(
                file,
                &jp,
                format!("`{url}`: no stage variables or {{parameters}} here"),
            ),
            Err(e) => diags.error(file, &jp, format!("`{url}`: {e}")),
        }
    }

    // cognito_user_pools: "arn:aws:cognito-idp:REGION:ACCOUNT:userpool/ID" → JWKS
    let mut user_pools = HashMap::new();
    for (arn, pool) in &raw.cognito_user_pools {
        let jp = format!("$.cognito_user_pools.{arn}");
        let issuer = match (&pool.issuer, crate::authorizer::cognito_issuer(arn)) {
            (Some(i), _) => i.clone(),
            (None, Some(i)) => i,
            (None, None) => {
                diags.error(
                    file,
                    &jp,
                    "must be a user pool ARN (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID), as providerARNs names it, or give `issuer`",
                );
                continue;
            }
        };
        let path = resolve_path(base, &pool.jwks_file);
        let Some(jwks) = read_named(reader, file, &format!("{jp}.jwks_file"), &path, diags) else {
            continue;
        };
        match crate::authorizer::UserPool::from_jwks(issuer, jwks.as_bytes()) {
            Ok((p, skipped)) => {
                for why in skipped {
                    diags.warn(
                        file,
                        format!("{jp}.jwks_file"),
                        format!("{}: {why}: left out", path.display()),
                    );
                }
                user_pools.insert(arn.clone(), Arc::new(p));
            }
            Err(e) => diags.error(
                file,
                format!("{jp}.jwks_file"),
                format!("{}: {e}", path.display()),
            ),
        }
    }

    let demo_backend = raw.demo_backend.as_ref().and_then(|d| {
        let a = parse_socket_addr(&d.listen);
        if a.is_none() {
            diags.error(
                file,
                "$.demo_backend.listen",
                format!("`{}` is not an address", d.listen),
            );
        }
        a
    });

    let admin = raw.admin.as_ref().and_then(|a| {
        let listen = parse_socket_addr(&a.listen);
        if listen.is_none() {
            diags.error(
                file,
                "$.admin.listen",
                format!("`{}` is not an address", a.listen),
            );
        }
        if a.max_connections == 0 {
            diags.error(file, "$.admin.max_connections", "must be greater than 0");
        }
        let state_dir = resolve_path(base, &a.state_dir);
        not_a_file(file, "$.admin.state_dir", &state_dir, diags);
        Some(AdminSettings {
            listen: listen?,
            state_dir,
            max_connections: a.max_connections as usize,
        })
    });
    let credentials = compile_credentials(file, &raw.credentials, diags);
    let throttling = compile_limits(file, base, &raw, diags);
    let ws_limits = super::ws::read_limits(file, &raw.websocket, diags);
    let rest_ids: Vec<String> = raw.apis.iter().map(|a| a.id.clone()).collect();
    let function_arns: Vec<String> = lambda_functions.iter().map(|(a, _)| a.clone()).collect();
    let ws_apis = super::ws::read_apis(file, &raw.websocket_apis, &rest_ids, &function_arns, diags);
    let domains = compile_domains(file, &raw, diags);
    if admin.is_some() && !credentials.iter().any(|c| c.permissions.admin) {
        diags.warn(
            file,
            "$.credentials",
            "no credential has the `admin` permission: every admin call will be refused",
        );
    }

    // APIs
    let mut apis: Vec<ApiSource> = Vec::new();
    let mut seen_ids: HashMap<String, usize> = HashMap::new();
    for (i, a) in raw.apis.iter().enumerate() {
        let jp = format!("$.apis[{i}]");
        if !valid_api_id(&a.id) {
            diags.error(
                file,
                format!("{jp}.id"),
                format!(
                    "`{}` is not a valid API id (letters, digits and '-', at most 64)",
                    a.id
                ),
            );
            continue;
        }
        if seen_ids.insert(a.id.clone(), i).is_some() {
            diags.error(
                file,
                format!("{jp}.id"),
                format!("duplicate API id `{}`", a.id),
            );
            continue;
        }
        let path = resolve_path(base, &a.swagger);
        let Some(text) = read_named(reader, file, &format!("{jp}.swagger"), &path, diags) else {
            continue;
        };
        match parse_document(&path, &text) {
            Ok(doc) => apis.push(ApiSource {
                id: a.id.clone(),
                deployment: None,
                file: path,
                doc: Arc::new(doc),
                stages: Vec::new(),
                default_endpoint: None,
                policy_from: None,
            }),
            Err(d) => diags.errors.push(d),
        }
    }
    if let Some(id) = &raw.server.default_api {
        if !seen_ids.contains_key(id) && !raw.websocket_apis.iter().any(|w| &w.id == id) {
            diags.error(
                file,
                "$.server.default_api",
                format!("no API with id `{id}` in [[apis]] or [[websocket_apis]]"),
            );
        }
    }

    // Stages
    let mut stage_names: HashMap<(String, String), usize> = HashMap::new();
    for (i, s) in raw.stages.iter().enumerate() {
        let jp = format!("$.stages[{i}]");
        if !valid_stage_name(&s.name) {
            diags.error(
                file,
                format!("{jp}.name"),
                format!(
                    "`{}` is not a valid stage name (letters, digits, '-' and '_', at most 128)",
                    s.name
                ),
            );
            continue;
        }
        if stage_names
            .insert((s.api.clone(), s.name.clone()), i)
            .is_some()
        {
            diags.error(
                file,
                format!("{jp}.name"),
                format!("duplicate stage `{}` for API `{}`", s.name, s.api),
            );
            continue;
        }
        for (k, v) in &s.variables {
            if let Err(e) = check_stage_variable(k, v) {
                diags.error(file, format!("{jp}.variables.{k}"), e);
            }
        }
        match apis.iter_mut().find(|a| a.id == s.api) {
            Some(api) => {
                let throttle = s
                    .throttle
                    .and_then(|t| check_throttle(file, &format!("{jp}.throttle"), t, diags));
                let mut method_throttles = Vec::new();
                let mut method_caches = Vec::new();
                let cache = s.cache.as_ref().and_then(|c| {
                    let jp = format!("{jp}.cache");
                    if c.ttl_seconds > 3600 {
                        diags.error(file, format!("{jp}.ttl_seconds"), "must be at most 3600 (API Gateway's maximum)");
                    }
                    if !(c.capacity_mb > 0.0 && c.capacity_mb <= 1024.0 * 1024.0) {
                        diags.error(
                            file,
                            format!("{jp}.capacity_mb"),
                            "must be greater than 0 and at most 1048576 (1 TiB)",
                        );
                        return None;
                    }
                    let Some(unauthorized) = UnauthorizedStrategy::parse(&c.unauthorized_strategy) else {
                        diags.error(
                            file,
                            format!("{jp}.unauthorized_strategy"),
                            "must be FAIL_WITH_403, SUCCEED_WITH_RESPONSE_HEADER or SUCCEED_WITHOUT_RESPONSE_HEADER",
                        );
                        return None;
                    };
                    Some(CacheSettings {
                        // A TTL of 0 caches nothing, unless a method
                        // setting gives a method a TTL of its own.
                        enabled: c.enabled,
                        ttl: Duration::from_secs(c.ttl_seconds.min(3600)),
                        capacity_bytes: (c.capacity_mb * 1024.0 * 1024.0) as u64,
                        require_authorization: c.require_authorization,
                        unauthorized,
                    })
                });
                for (key, settings) in &s.method_settings {
                    let kp = format!("{jp}.method_settings.{key}");
                    if key.rsplit_once('/').is_none_or(|(p, m)| {
                        !(p.starts_with('/') || p == "*")
                            || !(m == "*" || Method::parse(m).is_some() || m == "ANY")
                    }) {
                        diags.error(file, &kp, "a method setting key is `{resource_path}/{HTTP_METHOD}`, like \"/items/GET\"");
                        continue;
                    }
                    if let Some(t) = settings.throttle {
                        if let Some(rate) =
                            check_throttle(file, &format!("{kp}.throttle"), t, diags)
                        {
                            method_throttles.push((key.clone(), rate));
                        }
                    }
                    if let Some(c) = settings.cache {
                        if c.ttl_seconds.is_some_and(|t| t > 3600) {
                            diags.error(
                                file,
                                format!("{kp}.cache.ttl_seconds"),
                                "must be at most 3600",
                            );
                        }
                        method_caches.push((
                            key.clone(),
                            MethodCacheSettings {
                                enabled: c.enabled,
                                ttl: c.ttl_seconds.map(|t| Duration::from_secs(t.min(3600))),
                            },
                        ));
                    }
                }
                let access_log = s.access_log.as_ref().and_then(|a| {
                    let target = crate::access_log::Target::new(&a.path, base);
                    // Found now, not as an error per flush with every line lost.
                    if let crate::access_log::Target::File(p) = &target {
                        let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                        if p.is_dir() {
                            diags.error(file, format!("{jp}.access_log.path"), format!("{} is a directory", p.display()));
                        } else if let Some(d) = dir.filter(|d| !d.is_dir()) {
                            diags.error(
                                file,
                                format!("{jp}.access_log.path"),
                                format!("the directory {} does not exist (Tollgate creates the file, not its directory)", d.display()),
                            );
                        }
                    }
                    match crate::access_log::Format::parse(&a.format) {
                        Ok(format) => Some(crate::access_log::AccessLogSpec { format, target }),
                        Err(e) => {
                            diags.error(file, format!("{jp}.access_log.format"), e);
                            None
                        }
                    }
                });
                api.stages.push(StageSource {
                    name: s.name.clone(),
                    variables: s.variables.clone(),
                    throttle,
                    method_throttles,
                    cache,
                    method_caches,
                    access_log,
                    file: file.to_path_buf(),
                    path: jp,
                })
            }
            None => {
                if !seen_ids.contains_key(&s.api) {
                    diags.error(
                        file,
                        format!("{jp}.api"),
                        format!("no API with id `{}` in [[apis]]", s.api),
                    );
                }
            }
        }
    }

    let listen = listen?;
    Some(Loaded {
        settings: Settings {
            config_path: config_path.to_path_buf(),
            server: ServerSettings {
                listen,
                shards,
                limits,
                io_memory: (raw.server.io_memory_kib as usize) * 1024,
                shutdown_grace: Duration::from_millis(raw.server.shutdown_grace_ms),
                metrics: raw.server.metrics,
                tls,
            },
            upstream,
            upstream_hosts,
            lambda_functions,
            user_pools,
            default_api: raw.server.default_api.clone(),
            demo_backend,
            admin,
            credentials,
            limits: throttling,
            ws_apis,
            ws_limits,
            domains,
            upstream_ca: raw
                .upstream
                .ca_file
                .as_deref()
                .map(|p| resolve_path(base, p)),
        },
        apis,
    })
}

/// Compiles APIs with their stages into a snapshot. Documents that do not
/// compile are errors; nothing is built then.
pub fn build(
    settings: &Settings,
    sources: &[ApiSource],
    registry: &Registry,
    diags: &mut Diagnostics,
) -> Result<Snapshot, LoadError> {
    let shards = match settings.server.shards {
        Shards::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Shards::Count(n) => n,
    };
    let bucket_ref = |name: String, rate: Rate| {
        let (id, shared) = registry.bucket(&name, rate);
        BucketRef {
            id,
            shared,
            lease: rate.lease_size(shards),
        }
    };
    let mut drafts: Vec<ApiDraft> = Vec::new();
    let mut targets: Vec<Target> = Vec::new();
    let mut target_index: HashMap<String, TargetId> = HashMap::new();
    for source in sources {
        if drafts.iter().any(|d| {
            d.api.id == source.id
                && (source.deployment.is_none() || d.api.deployment == source.deployment)
        }) {
            diags.error(
                &source.file,
                "$",
                format!("API id `{}` is defined twice", source.id),
            );
            continue;
        }
        let Some(mut draft) = compile_api(&source.id, &source.file, &source.doc, diags) else {
            continue;
        };
        draft.api.deployment = source.deployment.clone();
        if let Some(on) = source.default_endpoint {
            draft.api.default_endpoint = on;
        }
        if let Some(root) = source.policy_from.as_deref().and_then(|d| d.as_object()) {
            draft.api.policy = super::swagger::compile_policy(&source.file, root, diags);
        }
        for stage in &source.stages {
            let mut bound = bind_stage(
                &stage.name,
                &stage.variables,
                &draft,
                &settings.upstream_hosts,
                &mut targets,
                &mut target_index,
                &stage.path,
                &stage.file,
                diags,
            );
            bound.throttle = stage
                .throttle
                .map(|r| bucket_ref(format!("stage:{}/{}", source.id, stage.name), r));
            bind_cache(&source.id, stage, &draft, &mut bound, diags);
            let series = |resource: &str, method: &str| {
                registry.metrics.id(crate::metrics::Labels {
                    api: source.id.clone(),
                    stage: stage.name.clone(),
                    resource: resource.to_owned(),
                    method: method.to_owned(),
                })
            };
            bound.metric_unmatched = series("", "");
            bound.metric_ids = draft
                .api
                .methods
                .iter()
                .map(|m| {
                    series(
                        &draft.api.resources[m.resource as usize].path,
                        &m.http_method,
                    )
                })
                .collect();
            bound.access_log = stage
                .access_log
                .as_ref()
                .map(|spec| crate::access_log::AccessLog {
                    sink: registry.logs.id(&spec.target),
                    format: spec.format.clone(),
                });
            bound.method_throttles = vec![None; draft.api.methods.len()];
            for (key, rate) in &stage.method_throttles {
                let (path, verb) = key.rsplit_once('/').unwrap_or((key.as_str(), "*"));
                let mut matched = 0;
                for (mi, m) in draft.api.methods.iter().enumerate() {
                    let resource = &draft.api.resources[m.resource as usize].path;
                    if (path == "*" || path == resource)
                        && (verb == "*" || verb.eq_ignore_ascii_case(&m.http_method))
                    {
                        matched += 1;
                        bound.method_throttles[mi] = Some(bucket_ref(
                            format!(
                                "method:{}/{}/{}/{}",
                                source.id, stage.name, resource, m.http_method
                            ),
                            *rate,
                        ));
                    }
                }
                if matched == 0 {
                    diags.warn(
                        &stage.file,
                        format!("{}.method_settings.{key}", stage.path),
                        "no method of the API matches this key; it has no effect",
                    );
                }
            }
            draft
                .api
                .stage_index
                .insert(bound.name.clone(), draft.api.stages.len());
            draft.api.stages.push(bound);
        }
        if draft.api.stages.is_empty() {
            diags.warn(
                &source.file,
                "$",
                format!("API `{}` has no stage: nothing of it is served", source.id),
            );
        }
        drafts.push(draft);
    }
    // (No certificates at all is reported with the settings.)
    let tls_server = settings
        .server
        .tls
        .as_ref()
        .filter(|s| !s.certificates.is_empty())
        .and_then(
            |spec| match crate::tls::server_config(spec, &registry.tls) {
                Ok(c) => Some(c),
                Err(errors) => {
                    for e in errors {
                        let at = e.at.clone().unwrap_or_else(|| "$.server.tls".to_owned());
                        diags.error(
                            &settings.config_path,
                            at,
                            format!("{}: {}", e.file.display(), e.problem),
                        );
                    }
                    None
                }
            },
        );
    let lambda_functions =
        bind_lambda_functions(settings, &drafts, &mut targets, &mut target_index, diags);
    for d in &drafts {
        if !d.api.default_endpoint && !settings.domains.maps_api(&d.api.id) {
            diags.warn(
                &d.api.source,
                "$.x-amazon-apigateway-endpoint-configuration.disableExecuteApiEndpoint",
                format!("API `{}` is served only through its custom domains, and no [[domain_names]] mapping names it: it answers nowhere", d.api.id),
            );
        }
    }
    if !diags.errors.is_empty() {
        return Err(LoadError {
            errors: std::mem::take(&mut diags.errors),
            warnings: std::mem::take(&mut diags.warnings),
        });
    }
    let default_api = settings
        .default_api
        .as_ref()
        .and_then(|id| drafts.iter().position(|d| &d.api.id == id));
    let ws_apis = super::ws::build(
        &settings.config_path,
        &settings.ws_apis,
        &settings.upstream_hosts,
        &mut targets,
        &mut target_index,
        diags,
    );
    let tls_client = if targets.iter().any(|t| t.tls.is_some()) {
        match crate::tls::client_configs(settings.upstream_ca.as_deref()) {
            Ok(c) => Some(Arc::new(c)),
            Err(e) => {
                diags.error(
                    &settings.config_path,
                    "$.upstream.ca_file",
                    format!("{}: {}", e.file.display(), e.problem),
                );
                return Err(LoadError {
                    errors: std::mem::take(&mut diags.errors),
                    warnings: std::mem::take(&mut diags.warnings),
                });
            }
        }
    } else {
        None
    };
    let limits = &settings.limits;
    registry.set_max_concurrent(limits.max_concurrent);
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut keys: HashMap<String, Vec<KeyPlan>> = HashMap::new();
    for k in &limits.keys {
        for plan_id in &k.plans {
            let Some(plan) = limits.plans.iter().find(|p| &p.id == plan_id) else {
                continue;
            };
            let throttle = plan
                .throttle
                .map(|r| bucket_ref(format!("plan:{}:key:{}", plan.id, k.name), r));
            let quota = plan.quota.map(|spec| {
                let (id, pool) = registry.quota(&format!("{}/{}", plan.id, k.name), spec, now_secs);
                QuotaRef {
                    id,
                    block: pool.block_size(shards),
                    pool,
                }
            });
            keys.entry(k.value.clone()).or_default().push(KeyPlan {
                plan: plan.id.clone(),
                key_name: k.name.clone(),
                stages: plan.api_stages.clone(),
                throttle,
                quota,
            });
        }
    }
    for plan in &limits.plans {
        for (api, stage) in &plan.api_stages {
            if !drafts
                .iter()
                .any(|d| &d.api.id == api && d.api.stage(stage).is_some())
            {
                let (file, path) = match &plan.record {
                    Some(record) => (record.as_path(), "$.apiStages"),
                    None => (settings.config_path.as_path(), "$.usage_plans"),
                };
                diags.warn(
                    file,
                    path,
                    format!(
                        "usage plan `{}` names `{api}/{stage}`, which is not served",
                        plan.id
                    ),
                );
            }
        }
    }
    let account = {
        let (id, shared) = registry.account(limits.account);
        BucketRef {
            id,
            shared,
            lease: limits.account.lease_size(shards),
        }
    };
    let mut all_buckets = vec![account.clone()];
    let mut all_quotas = Vec::new();
    for d in &drafts {
        for s in &d.api.stages {
            all_buckets.extend(s.throttle.iter().cloned());
            all_buckets.extend(s.method_throttles.iter().flatten().cloned());
        }
    }
    for plans in keys.values() {
        for p in plans {
            all_buckets.extend(p.throttle.iter().cloned());
            all_quotas.extend(p.quota.iter().cloned());
        }
    }
    let throttling = Throttling {
        account,
        permits: registry.permits.clone(),
        permit_block: SharedPermits::block_size(limits.max_concurrent, shards),
        keys,
        buckets: all_buckets,
        quotas: all_quotas,
    };
    Ok(Snapshot::new(
        settings.config_path.clone(),
        settings.server.clone(),
        settings.upstream,
        drafts.into_iter().map(|d| d.api).collect(),
        default_api,
        targets,
        settings.demo_backend,
        throttling,
        settings.credentials.clone(),
        std::mem::take(&mut diags.warnings),
    )
    .with_websockets(ws_apis, settings.ws_limits, settings.default_api.as_deref())
    .with_log_sinks(registry.logs.clone())
    .with_tls(tls_server, tls_client)
    .with_lambda_functions(lambda_functions)
    .with_user_pools(settings.user_pools.clone())
    .with_domains(settings.domains.clone()))
}

/// The endpoints of `[lambda_functions]`, bound as integration URIs are
/// (`upstream_hosts` applies); and a warning for each Lambda authorizer
/// whose function has none, since its methods cannot be called.
fn bind_lambda_functions(
    settings: &Settings,
    drafts: &[ApiDraft],
    targets: &mut Vec<Target>,
    target_index: &mut HashMap<String, TargetId>,
    diags: &mut Diagnostics,
) -> HashMap<String, crate::snapshot::UpstreamBinding> {
    let mut bound = HashMap::new();
    for (arn, uri) in &settings.lambda_functions {
        match bind_uri(
            uri,
            &BTreeMap::new(),
            &settings.upstream_hosts,
            targets,
            target_index,
        ) {
            Ok(b) => {
                bound.insert(arn.clone(), b);
            }
            Err(e) => diags.error(
                &settings.config_path,
                format!("$.lambda_functions.{arn}"),
                e,
            ),
        }
    }
    for d in drafts {
        let mut seen: Vec<&str> = Vec::new();
        for m in &d.api.methods {
            if let crate::snapshot::MethodAuth::Cognito { authorizer: c, .. } = &m.auth {
                if !seen.contains(&c.name.as_str()) {
                    seen.push(&c.name);
                    if !c
                        .providers
                        .iter()
                        .any(|p| settings.user_pools.contains_key(p))
                    {
                        diags.warn(
                            &d.api.source,
                            format!("$.securityDefinitions.{}", c.name),
                            format!(
                                "Cognito authorizer of user pools {:?}: none of them is in the config's [cognito_user_pools] (with its JWKS), so its methods answer 401 without a token and 500 AUTHORIZER_CONFIGURATION_ERROR with one",
                                c.providers
                            ),
                        );
                    }
                }
                continue;
            }
            let crate::snapshot::MethodAuth::Lambda(a) = &m.auth else {
                continue;
            };
            if seen.contains(&a.name.as_str()) {
                continue;
            }
            seen.push(&a.name);
            if !a.function.as_ref().is_some_and(|f| bound.contains_key(f)) {
                diags.warn(
                    &d.api.source,
                    format!("$.securityDefinitions.{}", a.name),
                    format!(
                        "Lambda authorizer of function {}: no endpoint for it in the config's [lambda_functions], so its methods answer 401 without the identity source and 500 AUTHORIZER_CONFIGURATION_ERROR with it",
                        a.function.as_deref().unwrap_or("(none)")
                    ),
                );
            }
        }
    }
    bound
}

#[allow(clippy::too_many_arguments)]
fn bind_stage(
    name: &str,
    variables: &BTreeMap<String, String>,
    draft: &ApiDraft,
    upstream_hosts: &HashMap<String, String>,
    targets: &mut Vec<Target>,
    target_index: &mut HashMap<String, TargetId>,
    jp: &str,
    file: &Path,
    diags: &mut Diagnostics,
) -> Stage {
    let api = &draft.api;
    let mut bindings = Vec::with_capacity(api.methods.len());
    for (mi, m) in api.methods.iter().enumerate() {
        let binding = match (&m.integration, draft.uris.get(mi).and_then(Option::as_ref)) {
            (Some(integration), Some(uri))
                if matches!(
                    integration.kind,
                    IntegrationKind::Http | IntegrationKind::HttpProxy
                ) =>
            {
                match bind_uri(uri, variables, upstream_hosts, targets, target_index) {
                    Ok(b) => Binding::Upstream(b),
                    Err(e) => {
                        let resource = &api.resources[m.resource as usize].path;
                        diags.warn(
                            file,
                            format!("{jp}.variables"),
                            format!("stage `{name}` of API `{}`: {} {resource}: {e}; the method answers 500 in this stage", api.id, m.http_method),
                        );
                        Binding::Invalid(e)
                    }
                }
            }
            _ => Binding::None,
        };
        bindings.push(binding);
    }
    let responses = api.gateway_responses.for_stage(&StageValues {
        stage: name,
        api_id: &api.id,
        variables,
    });
    Stage {
        name: name.to_owned(),
        variables: variables.clone(),
        bindings,
        responses,
        throttle: None,
        method_throttles: Vec::new(),
        cache: None,
        method_cache: Vec::new(),
        metric_ids: Vec::new(),
        metric_unmatched: crate::metrics::UNROUTED,
        access_log: None,
    }
}

pub(super) fn bind_uri(
    uri: &UriTemplate,
    variables: &BTreeMap<String, String>,
    upstream_hosts: &HashMap<String, String>,
    targets: &mut Vec<Target>,
    target_index: &mut HashMap<String, TargetId>,
) -> Result<UpstreamBinding, String> {
    let mut authority = String::new();
    for p in &uri.authority {
        match p {
            TplPart::Text(t) => authority.push_str(t),
            TplPart::StageVar(v) => match variables.get(v) {
                Some(val) => authority.push_str(val),
                None => return Err(format!("stage variable `{v}` is not set")),
            },
            TplPart::Param(_) => return Err("path parameter in host".to_owned()),
        }
    }
    // A stage variable may carry a scheme (`http://host:port`) and even a
    // path prefix; API Gateway users write both.
    let (authority, extra_path, scheme) = normalise_authority(&authority)?;
    // An `https://` written in the URI is not downgraded by a variable that
    // carries `http://` (stage variables change through the admin API
    // without touching the integration); API Gateway would see
    // `https://http://...`, not a valid endpoint, either.
    if uri.https && scheme == Some(false) {
        return Err(format!(
            "the URI says https:// but the stage variable gives `http://{authority}`: TLS is not turned off by a stage variable"
        ));
    }
    let https = scheme.unwrap_or(uri.https);
    let (host, port) = split_host_port(&authority)
        .ok_or_else(|| format!("`{authority}` is not a valid host[:port]"))?;
    let default_port = if https { 443 } else { 80 };
    let port = port.unwrap_or(default_port);
    let host_lower = host.to_ascii_lowercase();
    let mapped = upstream_hosts
        .get(&format!("{host_lower}:{port}"))
        .or_else(|| upstream_hosts.get(&host_lower))
        .or_else(|| upstream_hosts.get(&authority.to_ascii_lowercase()));
    let resolve = match mapped {
        Some(to) => to.clone(),
        None => format!("{host}:{port}"),
    };
    let tls = if https {
        let name = host.trim_start_matches('[').trim_end_matches(']');
        let server_name = rustls_pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
        let insecure = uri.insecure_skip_verification;
        let pool_key = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (name.to_ascii_lowercase(), insecure).hash(&mut h);
            h.finish() | 1
        };
        Some(crate::snapshot::TargetTls {
            server_name,
            insecure,
            pool_key,
        })
    } else {
        None
    };
    let index_key = match &tls {
        None => resolve.clone(),
        Some(t) => format!("https://{resolve}#{:?}#{}", t.server_name, t.insecure),
    };
    let target = match target_index.get(&index_key) {
        Some(&id) => id,
        None => {
            let fixed = parse_socket_addr(&resolve);
            targets.push(Target {
                resolve: resolve.clone(),
                fixed,
                tls,
            });
            let id = (targets.len() - 1) as TargetId;
            target_index.insert(index_key, id);
            id
        }
    };
    let fill = |parts: &[TplPart]| -> Result<Vec<UriPart>, String> {
        let mut out: Vec<UriPart> = Vec::new();
        for p in parts {
            let text = match p {
                TplPart::Text(t) => t.clone(),
                TplPart::StageVar(v) => variables
                    .get(v)
                    .cloned()
                    .ok_or_else(|| format!("stage variable `{v}` is not set"))?,
                TplPart::Param(n) => {
                    out.push(UriPart::Param(n.clone()));
                    continue;
                }
            };
            match out.last_mut() {
                Some(UriPart::Text(prev)) => prev.push_str(&text),
                _ => out.push(UriPart::Text(text)),
            }
        }
        Ok(out)
    };
    // What the value put after the host: a path, a query, or both
    // (`host/api/orders?v=2`), joined as the URL the two texts make.
    let (extra_path, extra_query) = match &extra_path {
        None => ("", None),
        Some(e) => match e.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (e.as_str(), None),
        },
    };
    let mut path = fill(&uri.path)?;
    if !uri.path_given && !extra_path.is_empty() {
        path = vec![UriPart::Text(extra_path.to_owned())];
    } else if !extra_path.is_empty() {
        match path.first_mut() {
            Some(UriPart::Text(t)) => {
                let joined = format!("{}{}", extra_path.trim_end_matches('/'), t);
                *t = joined;
            }
            _ => path.insert(
                0,
                UriPart::Text(extra_path.trim_end_matches('/').to_owned()),
            ),
        }
    }
    let mut query = fill(&uri.query)?;
    if let Some(q) = extra_query.filter(|q| !q.is_empty()) {
        match query.first_mut() {
            None => query.push(UriPart::Text(q.to_owned())),
            Some(UriPart::Text(t)) => *t = format!("{q}&{t}"),
            Some(UriPart::Param(_)) => query.insert(0, UriPart::Text(format!("{q}&"))),
        }
    }
    // Stage variables may hold `?` and `#`; in the path they would end it
    // (and `#` starts a fragment, which a request line cannot carry).
    let texts = |parts: &[UriPart]| {
        parts
            .iter()
            .filter_map(|p| match p {
                UriPart::Text(t) => Some(t.clone()),
                UriPart::Param(_) => None,
            })
            .collect::<String>()
    };
    let (path_text, query_text) = (texts(&path), texts(&query));
    if path_text.contains(['?', '#']) || query_text.contains('#') {
        return Err(format!(
            "a stage variable puts `?` or `#` where the integration URI cannot take it (path `{path_text}`, query `{query_text}`)"
        ));
    }
    let host_header = if port == default_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    };
    Ok(UpstreamBinding {
        target,
        host_header,
        path,
        query,
    })
}

/// The stage cache and each method's caching in it: GET methods are cached
/// when the stage cache is on; method settings enable, disable or change
/// the TTL of single methods (`*` matches any path or method).
fn bind_cache(
    api_id: &str,
    stage: &StageSource,
    draft: &ApiDraft,
    bound: &mut Stage,
    diags: &mut Diagnostics,
) {
    bound.method_cache = vec![None; draft.api.methods.len()];
    for (key, _) in &stage.method_caches {
        let (path, verb) = key.rsplit_once('/').unwrap_or((key.as_str(), "*"));
        let matches = draft.api.methods.iter().any(|m| {
            (path == "*" || path == draft.api.resources[m.resource as usize].path)
                && (verb == "*" || verb.eq_ignore_ascii_case(&m.http_method))
        });
        if !matches {
            diags.warn(
                &stage.file,
                format!("{}.method_settings.{key}", stage.path),
                "no method of the API matches this key; its cache settings have no effect",
            );
        }
    }
    let Some(cache) = &stage.cache else {
        if !stage.method_caches.is_empty() {
            diags.warn(
                &stage.file,
                format!("{}.method_settings", stage.path),
                "method cache settings have no effect without a stage `cache`",
            );
        }
        return;
    };
    bound.cache = Some(StageCache {
        uid: format!("{api_id}/{}", stage.name),
        capacity_bytes: cache.capacity_bytes,
        require_authorization: cache.require_authorization,
        unauthorized: cache.unauthorized,
    });
    for (mi, m) in draft.api.methods.iter().enumerate() {
        let resource = &draft.api.resources[m.resource as usize].path;
        // As API Gateway: the stage's caching (and a `*` method setting,
        // which is how the stage-wide setting is written) reaches GET
        // methods, and the GET requests of an `ANY` method; any other
        // method is cached only by a setting that names it.
        let get_like = m.http_method == "GET" || m.http_method == "ANY";
        let mut enabled = cache.enabled && get_like;
        let mut ttl = cache.ttl;
        let mut applied = Vec::new();
        for (key, setting) in &stage.method_caches {
            let (path, verb) = key.rsplit_once('/').unwrap_or((key.as_str(), "*"));
            let named = verb.eq_ignore_ascii_case(&m.http_method);
            if (path == "*" || path == resource) && (verb == "*" || named) {
                if let Some(e) = setting.enabled {
                    if named || get_like {
                        enabled = e;
                    }
                }
                if let Some(t) = setting.ttl {
                    ttl = t;
                }
                applied.push(*setting);
            }
        }
        if !enabled || ttl.is_zero() {
            continue;
        }
        let key_params: Vec<KeyParam> = m
            .integration
            .as_ref()
            .map(|i| i.cache_key_params.clone())
            .unwrap_or_default();
        // A reload or deployment that changes what the method answers
        // (its integration: URI, templates, mappings, responses; or the
        // stage variables they may read) starts it on new keys: a changed
        // backend is not hidden behind an hour of old entries.
        let integration = format!("{:?}", m.integration);
        let mut h = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(
            &(ttl, &key_params, &applied, &integration, &stage.variables),
            &mut h,
        );
        bound.method_cache[mi] = Some(MethodCache {
            ttl,
            key_params: key_params.into(),
            generation: std::hash::Hasher::finish(&h),
            get_only: m.http_method == "ANY",
        });
    }
}

fn check_throttle(file: &Path, jp: &str, t: RawThrottle, diags: &mut Diagnostics) -> Option<Rate> {
    if !(t.rate > 0.0 && t.rate.is_finite()) {
        diags.error(
            file,
            format!("{jp}.rate"),
            "must be a number greater than 0 (requests per second)",
        );
        return None;
    }
    if t.burst == 0 {
        diags.error(file, format!("{jp}.burst"), "must be at least 1");
        return None;
    }
    Some(Rate {
        per_second: t.rate,
        burst: t.burst,
    })
}

/// `[limits]`, `[[usage_plans]]`, `[[api_keys]]`.
fn compile_limits(
    file: &Path,
    base: &Path,
    raw: &RawConfig,
    diags: &mut Diagnostics,
) -> LimitSettings {
    let l = &raw.limits;
    let account = check_throttle(
        file,
        "$.limits",
        RawThrottle {
            rate: l.rate,
            burst: l.burst,
        },
        diags,
    )
    .unwrap_or(Rate {
        per_second: 10_000.0,
        burst: 5_000,
    });
    if l.max_concurrent == 0 {
        diags.error(file, "$.limits.max_concurrent", "must be at least 1");
    }
    let cluster = l.cluster.as_ref().and_then(|c| {
        let fail_closed = match c.policy.as_str() {
            "fail_open_local_share" => false,
            "fail_closed" => true,
            other => {
                diags.error(
                    file,
                    "$.limits.cluster.policy",
                    format!("unknown policy `{other}` (fail_open_local_share or fail_closed)"),
                );
                false
            }
        };
        if !c.redis.starts_with("redis://") {
            diags.error(
                file,
                "$.limits.cluster.redis",
                "must be a redis:// URL, like redis://127.0.0.1:6379",
            );
            return None;
        }
        if !fail_closed && c.hosts.is_none() {
            diags.warn(
                file,
                "$.limits.cluster.hosts",
                "not set: a host that cannot reach Redis before it has seen the others falls back to the whole account limit (a share of 1 host); set it to the number of hosts",
            );
        }
        Some(ClusterSettings {
            redis: c.redis.clone(),
            fail_closed,
            hosts: c.hosts,
            key_prefix: c.key_prefix.clone(),
        })
    });
    let mut plans = Vec::new();
    for (i, p) in raw.usage_plans.iter().enumerate() {
        let jp = format!("$.usage_plans[{i}]");
        if plans.iter().any(|x: &PlanSettings| x.id == p.id) || p.id.is_empty() {
            diags.error(
                file,
                format!("{jp}.id"),
                format!("`{}`: plan ids must be unique and not empty", p.id),
            );
            continue;
        }
        let throttle = p
            .throttle
            .and_then(|t| check_throttle(file, &format!("{jp}.throttle"), t, diags));
        let quota = p.quota.as_ref().and_then(|q| {
            let Some(period) = Period::parse(&q.period) else {
                diags.error(
                    file,
                    format!("{jp}.quota.period"),
                    "must be DAY, WEEK or MONTH",
                );
                return None;
            };
            if q.limit == 0 {
                diags.error(file, format!("{jp}.quota.limit"), "must be at least 1");
                return None;
            }
            Some(QuotaSpec {
                limit: q.limit,
                period,
                offset: q.offset,
            })
        });
        let mut api_stages = Vec::new();
        for (j, s) in p.api_stages.iter().enumerate() {
            match s.split_once('/') {
                Some((a, st)) if !a.is_empty() && !st.is_empty() => {
                    api_stages.push((a.to_owned(), st.to_owned()))
                }
                _ => diags.error(
                    file,
                    format!("{jp}.api_stages[{j}]"),
                    format!("`{s}` must be \"api/stage\""),
                ),
            }
        }
        plans.push(PlanSettings {
            id: p.id.clone(),
            throttle,
            quota,
            api_stages,
            record: None,
        });
    }
    let mut keys = Vec::new();
    // A key's name is its identity for its plans' throttle buckets and
    // quota counts (kept across restarts), so two keys may not share one.
    let mut names: Vec<(String, usize)> = Vec::new();
    for (i, k) in raw.api_keys.iter().enumerate() {
        let jp = format!("$.api_keys[{i}]");
        let value = match (&k.value, &k.value_env) {
            (Some(v), None) => Some(v.clone()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(v),
                _ => {
                    diags.error(
                        file,
                        format!("{jp}.value_env"),
                        format!("environment variable `{var}` is not set"),
                    );
                    None
                }
            },
            _ => {
                diags.error(
                    file,
                    &jp,
                    "an API key needs exactly one of `value` and `value_env`",
                );
                None
            }
        };
        let Some(value) = value else { continue };
        // API Gateway: 20 to 128 characters.
        if !(20..=128).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_graphic()) {
            diags.error(
                file,
                format!("{jp}.value"),
                "an API key value is 20 to 128 printable characters",
            );
            continue;
        }
        let name = k.name.clone().unwrap_or_else(|| format!("key-{i}"));
        if let Some((_, first)) = names.iter().find(|(n, _)| *n == name) {
            diags.error(
                file,
                format!("{jp}.name"),
                format!(
                    "duplicate API key name `{name}` (also $.api_keys[{first}]; a key without a name is named key-<index>)"
                ),
            );
            continue;
        }
        names.push((name.clone(), i));
        for (j, p) in k.usage_plans.iter().enumerate() {
            if !plans.iter().any(|x| &x.id == p) {
                diags.error(
                    file,
                    format!("{jp}.usage_plans[{j}]"),
                    format!("no usage plan `{p}`"),
                );
            }
        }
        if keys.iter().any(|x: &KeySettings| x.value == value) {
            diags.error(file, format!("{jp}.value"), "duplicate API key value");
            continue;
        }
        if k.enabled {
            keys.push(KeySettings {
                name,
                value,
                plans: k.usage_plans.clone(),
            });
        }
    }
    let state_dir = resolve_path(base, &l.state_dir);
    not_a_file(file, "$.limits.state_dir", &state_dir, diags);
    LimitSettings {
        account,
        max_concurrent: l.max_concurrent.max(1),
        quota_file: state_dir.join("quotas.json"),
        cluster,
        plans,
        keys,
    }
}

/// Credentials: a name, permissions, and at least one way to prove them.
/// Secrets may come from the environment (`*_env`).
fn compile_credentials(
    file: &Path,
    raw: &[RawCredential],
    diags: &mut Diagnostics,
) -> Vec<Credential> {
    let mut out = Vec::new();
    for (i, c) in raw.iter().enumerate() {
        let jp = format!("$.credentials[{i}]");
        let errors_before = diags.errors.len();
        if c.name.is_empty() {
            diags.error(file, format!("{jp}.name"), "must not be empty");
        }
        if out.iter().any(|o: &Credential| o.name == c.name) {
            diags.error(
                file,
                format!("{jp}.name"),
                format!("duplicate credential name `{}`", c.name),
            );
        }
        let mut from_env =
            |key: &str, value: &Option<String>, env: &Option<String>| -> Option<String> {
                match (value, env) {
                    (Some(_), Some(_)) => {
                        diags.error(
                            file,
                            format!("{jp}.{key}"),
                            format!("give `{key}` or `{key}_env`, not both"),
                        );
                        None
                    }
                    (Some(v), None) => Some(v.clone()),
                    (None, Some(var)) => match std::env::var(var) {
                        Ok(v) if !v.is_empty() => Some(v),
                        _ => {
                            diags.error(
                                file,
                                format!("{jp}.{key}_env"),
                                format!("environment variable `{var}` is not set"),
                            );
                            None
                        }
                    },
                    (None, None) => None,
                }
            };
        let secret = from_env(
            "secret_access_key",
            &c.secret_access_key,
            &c.secret_access_key_env,
        );
        let token = from_env("token", &c.token, &c.token_env);
        if c.access_key_id.is_some()
            != (c.secret_access_key.is_some() || c.secret_access_key_env.is_some())
        {
            diags.error(file, &jp, "an access key needs both `access_key_id` and `secret_access_key` (or `secret_access_key_env`)");
        }
        if c.access_key_id.is_none() && c.token.is_none() && c.token_env.is_none() {
            diags.error(file, &jp, "a credential needs a way to prove it: `access_key_id` with `secret_access_key`, or `token`");
        }
        if token.as_ref().is_some_and(|t| t.len() < 16) {
            diags.error(
                file,
                format!("{jp}.token"),
                "a token must be at least 16 characters",
            );
        }
        // A token or access key names one credential: with two, the first
        // would win and the other's permissions never apply.
        if let Some(o) = out
            .iter()
            .find(|o: &&Credential| token.is_some() && o.token == token)
        {
            diags.error(
                file,
                format!("{jp}.token"),
                format!(
                    "the token of credential `{}` too: each credential needs its own",
                    o.name
                ),
            );
        }
        if let Some(o) = out
            .iter()
            .find(|o: &&Credential| c.access_key_id.is_some() && o.access_key_id == c.access_key_id)
        {
            diags.error(
                file,
                format!("{jp}.access_key_id"),
                format!(
                    "the access key id of credential `{}` too: each credential needs its own",
                    o.name
                ),
            );
        }
        let mut permissions = Permissions::default();
        for (j, p) in c.permissions.iter().enumerate() {
            match p.as_str() {
                "admin" => permissions.admin = true,
                "invalidate_cache" => permissions.invalidate_cache = true,
                "manage_connections" => permissions.manage_connections = true,
                "invoke" => permissions.invoke = true,
                other => diags.error(
                    file,
                    format!("{jp}.permissions[{j}]"),
                    format!("unknown permission `{other}` (expected admin, invalidate_cache, manage_connections or invoke)"),
                ),
            }
        }
        if diags.errors.len() == errors_before {
            out.push(Credential {
                name: c.name.clone(),
                access_key_id: c.access_key_id.clone(),
                secret_access_key: secret,
                token,
                permissions,
            });
        }
    }
    out
}

/// A state directory is created when missing; an existing file there is an
/// error found by `check`, not at start.
fn not_a_file(file: &Path, jp: &str, dir: &Path, diags: &mut Diagnostics) {
    if dir.exists() && !dir.is_dir() {
        diags.error(
            file,
            jp,
            format!("{} exists and is not a directory", dir.display()),
        );
    }
}

/// The authority with the scheme a stage variable may carry
/// (`Some(true)` for `https://`) and a path split off.
type Authority = (String, Option<String>, Option<bool>);

/// Strips an `http://` or `https://` a stage variable may carry and splits
/// off a path.
fn normalise_authority(a: &str) -> Result<Authority, String> {
    let lower = a.to_ascii_lowercase();
    let (rest, scheme) = if lower.starts_with("http://") {
        (&a[7..], Some(false))
    } else if lower.starts_with("https://") {
        (&a[8..], Some(true))
    } else {
        (a, None)
    };
    match rest.find(['/', '?']) {
        Some(i) => Ok((rest[..i].to_owned(), Some(rest[i..].to_owned()), scheme)),
        None => Ok((rest.to_owned(), None, scheme)),
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = &rest[..end];
        host.parse::<std::net::Ipv6Addr>().ok()?;
        let after = &rest[end + 1..];
        if after.is_empty() {
            return Some((&s[..end + 2], None));
        }
        let port = after.strip_prefix(':')?.parse().ok()?;
        return Some((&s[..end + 2], Some(port)));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse::<u16>().ok()?)),
        None => (s, None),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
    {
        return None;
    }
    Some((host, port))
}

pub fn parse_socket_addr(s: &str) -> Option<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Some(a);
    }
    // "localhost:8080" is common in configs; it means loopback.
    let (host, port) = split_host_port(s)?;
    if host.eq_ignore_ascii_case("localhost") {
        return Some(SocketAddr::new(IpAddr::from([127, 0, 0, 1]), port?));
    }
    None
}

fn resolve_path(base: &Path, p: &str) -> PathBuf {
    let path = Path::new(p);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

/// `[[domain_names]]`: each name once (a host name, or `*.` and one),
/// each base path once per domain (whole segments of unreserved
/// characters; empty or `(none)` for the whole domain). A mapping to an
/// API or stage the config does not have is a warning, not an error: an
/// API of the admin API may take it.
fn compile_domains(
    file: &Path,
    raw: &RawConfig,
    diags: &mut Diagnostics,
) -> crate::domain::DomainNames {
    let mut domains: Vec<crate::domain::Domain> = Vec::new();
    for (i, d) in raw.domain_names.iter().enumerate() {
        let jp = format!("$.domain_names[{i}]");
        let name = d.name.trim().trim_end_matches('.').to_ascii_lowercase();
        let host = name.strip_prefix("*.").unwrap_or(&name);
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        // Every problem of the entry is reported, its mappings' too; only a
        // good entry is kept.
        let mut good = true;
        if !valid {
            diags.error(
                file,
                format!("{jp}.name"),
                format!(
                    "`{}` is not a domain name (like api.example.com or *.example.com, no port)",
                    d.name
                ),
            );
            good = false;
        } else if host.split('.').any(|label| label == "execute-api") {
            diags.error(
                file,
                format!("{jp}.name"),
                format!(
                    "`{}`: `{{api id}}.execute-api.*` hosts name APIs by their id; a custom domain is another name",
                    d.name
                ),
            );
            good = false;
        } else if domains.iter().any(|x| x.name == name) {
            diags.error(
                file,
                format!("{jp}.name"),
                format!("`{name}` is given twice"),
            );
            good = false;
        }
        if d.mappings.is_empty() {
            diags.warn(
                file,
                format!("{jp}.mappings"),
                "no base path mappings: every request for this domain answers 403",
            );
        }
        let mut mappings: Vec<crate::domain::Mapping> = Vec::new();
        for (j, m) in d.mappings.iter().enumerate() {
            let mp = format!("{jp}.mappings[{j}]");
            let base = m.base_path.trim().trim_matches('/');
            let base = if base == "(none)" { "" } else { base };
            let segments_ok = base.is_empty()
                || base.split('/').all(|s| {
                    !s.is_empty()
                        && s != "."
                        && s != ".."
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
                });
            if !segments_ok {
                diags.error(
                    file,
                    format!("{mp}.base_path"),
                    format!("`{}`: a base path is path segments of letters, digits, `-`, `.`, `_` and `~` (empty or `(none)` for the whole domain)", m.base_path),
                );
                continue;
            }
            if mappings.iter().any(|x| x.base_path == base) {
                diags.error(
                    file,
                    format!("{mp}.base_path"),
                    format!(
                        "base path `{}` is mapped twice for {name}",
                        if base.is_empty() { "(none)" } else { base }
                    ),
                );
                continue;
            }
            if let Some(s) = &m.stage {
                if !valid_stage_name(s) {
                    diags.error(
                        file,
                        format!("{mp}.stage"),
                        format!("`{s}` is not a valid stage name"),
                    );
                    continue;
                }
            }
            let rest_api = raw.apis.iter().any(|a| a.id == m.api);
            let ws_api = raw.websocket_apis.iter().find(|a| a.id == m.api);
            if !rest_api && ws_api.is_none() {
                diags.warn(
                    file,
                    format!("{mp}.api"),
                    format!("no API `{}` in the config (one created through the admin API may take it): until then the mapping answers 403", m.api),
                );
            } else if let Some(s) = &m.stage {
                let has_stage = raw.stages.iter().any(|x| x.api == m.api && &x.name == s)
                    || ws_api.is_some_and(|w| w.stages.iter().any(|x| &x.name == s));
                if !has_stage {
                    diags.warn(
                        file,
                        format!("{mp}.stage"),
                        format!("API `{}` has no stage `{s}` in the config: until it has, the mapping answers 403", m.api),
                    );
                }
            }
            mappings.push(crate::domain::Mapping {
                base_path: base.to_owned(),
                api: m.api.clone(),
                stage: m.stage.clone(),
            });
        }
        if good {
            domains.push(crate::domain::Domain { name, mappings });
        }
    }
    crate::domain::DomainNames::new(domains)
}

/// A file the config names (at `jp` of `file`), or an error saying why it
/// cannot be read.
fn read_named(
    reader: &dyn SourceReader,
    file: &Path,
    jp: &str,
    path: &Path,
    diags: &mut Diagnostics,
) -> Option<String> {
    match reader.read(path) {
        Ok(t) => Some(t),
        Err(e) => {
            diags.error(file, jp, format!("cannot read {}: {e}", path.display()));
            None
        }
    }
}

fn valid_api_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// API Gateway: alphanumerics, '-' and '_', at most 128 characters.
pub fn valid_stage_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// API Gateway's stage variable rules: names `[A-Za-z0-9_]+` up to 64,
/// values `[A-Za-z0-9-._~:/?#&=,]+` up to 512.
pub fn check_stage_variable(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(format!(
            "`{name}` is not a valid stage variable name ([A-Za-z0-9_]+, at most 64)"
        ));
    }
    if value.is_empty()
        || value.len() > 512
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:/?#&=,".contains(&b))
    {
        return Err(format!(
            "`{value}` is not a valid stage variable value ([A-Za-z0-9-._~:/?#&=,]+, at most 512)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_table() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b", Some(80))));
        assert_eq!(split_host_port("a.b"), Some(("a.b", None)));
        assert_eq!(split_host_port("[::1]:9"), Some(("[::1]", Some(9))));
        assert_eq!(split_host_port("a:b"), None);
        assert_eq!(split_host_port("a b:1"), None);
        assert_eq!(split_host_port(""), None);
        assert_eq!(
            parse_socket_addr("localhost:80"),
            Some("127.0.0.1:80".parse().unwrap())
        );
    }

    #[test]
    fn stage_variable_rules() {
        assert!(check_stage_variable("backend", "127.0.0.1:9000").is_ok());
        assert!(check_stage_variable("bad-name", "x").is_err());
        assert!(check_stage_variable("v", "has space").is_err());
        assert!(check_stage_variable("v", &"x".repeat(513)).is_err());
    }

    #[test]
    fn binding_fills_stage_variables_and_maps_hosts() {
        let uri = super::super::swagger::parse_uri_template(
            "http://${stageVariables.backend}/v/{id}?k=${stageVariables.k}",
        )
        .unwrap();
        let vars = BTreeMap::from([
            ("backend".to_owned(), "api.internal:8081".to_owned()),
            ("k".to_owned(), "1".to_owned()),
        ]);
        let hosts = HashMap::from([("api.internal".to_owned(), "127.0.0.1:9000".to_owned())]);
        let mut targets = Vec::new();
        let mut index = HashMap::new();
        let b = bind_uri(&uri, &vars, &hosts, &mut targets, &mut index).unwrap();
        assert_eq!(b.host_header, "api.internal:8081");
        assert_eq!(
            targets[b.target as usize].fixed,
            Some("127.0.0.1:9000".parse().unwrap())
        );
        assert_eq!(
            b.path,
            vec![UriPart::Text("/v/".into()), UriPart::Param("id".into())]
        );
        assert_eq!(b.query, vec![UriPart::Text("k=1".into())]);
        let missing = bind_uri(&uri, &BTreeMap::new(), &hosts, &mut targets, &mut index);
        assert!(missing.unwrap_err().contains("backend"));
    }

    /// A stage variable may carry a scheme, but not turn a written
    /// `https://` into plain HTTP.
    #[test]
    fn a_stage_variable_does_not_downgrade_https() {
        let bind = |uri: &str, v: &str| {
            let uri = super::super::swagger::parse_uri_template(uri).unwrap();
            let vars = BTreeMap::from([("v".to_owned(), v.to_owned())]);
            let (mut targets, mut index) = (Vec::new(), HashMap::new());
            bind_uri(&uri, &vars, &HashMap::new(), &mut targets, &mut index)
                .map(|b| targets[b.target as usize].tls.is_some())
        };
        assert!(bind("https://${stageVariables.v}/x", "http://h:80")
            .unwrap_err()
            .contains("https"));
        assert_eq!(bind("https://${stageVariables.v}/x", "h:8443"), Ok(true));
        assert_eq!(bind("https://${stageVariables.v}/x", "https://h"), Ok(true));
        assert_eq!(bind("http://${stageVariables.v}/x", "https://h"), Ok(true));
        assert_eq!(bind("http://${stageVariables.v}/x", "http://h"), Ok(false));
    }

    /// `http://${stageVariables.url}`, the AWS guide's "full URI without
    /// protocol": a path and query in the value are the URL's, nothing
    /// added; a URI path after the variable is appended to its path.
    #[test]
    fn a_stage_variable_may_hold_the_whole_url() {
        let bind = |uri: &str, url: &str| {
            let uri = super::super::swagger::parse_uri_template(uri).unwrap();
            let vars = BTreeMap::from([("url".to_owned(), url.to_owned())]);
            let (mut targets, mut index) = (Vec::new(), HashMap::new());
            bind_uri(&uri, &vars, &HashMap::new(), &mut targets, &mut index)
                .map(|b| (b.host_header, b.path, b.query))
        };
        let text = |t: &str| vec![UriPart::Text(t.to_owned())];
        let (host, path, query) = bind("http://${stageVariables.url}", "h:81/api/orders").unwrap();
        assert_eq!(
            (host.as_str(), path, query),
            ("h:81", text("/api/orders"), vec![])
        );
        let (_, path, query) = bind("http://${stageVariables.url}", "h/api/orders?v=2").unwrap();
        assert_eq!((path, query), (text("/api/orders"), text("v=2")));
        let (_, path, query) = bind("http://${stageVariables.url}", "h?v=2").unwrap();
        assert_eq!((path, query), (text("/"), text("v=2")));
        let (_, path, query) = bind("http://${stageVariables.url}", "h").unwrap();
        assert_eq!((path, query), (text("/"), vec![]));
        let (_, path, query) =
            bind("http://${stageVariables.url}/x/{id}?a={q}", "h/api/?v=2").unwrap();
        assert_eq!(
            path,
            vec![UriPart::Text("/api/x/".into()), UriPart::Param("id".into())]
        );
        assert_eq!(
            query,
            vec![UriPart::Text("v=2&a=".into()), UriPart::Param("q".into())]
        );
        for bad in ["h/a#frag", "h/a?x#f"] {
            assert!(
                bind("http://${stageVariables.url}", bad)
                    .unwrap_err()
                    .contains('#'),
                "{bad}"
            );
        }
        assert!(bind("http://h/${stageVariables.url}/p", "v2?x=1").is_err());
    }
}
