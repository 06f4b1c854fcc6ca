//! Method authorization on the data path: `AWS_IAM` (SigV4 by a
//! credential of the config with `invoke`), Lambda authorizers and Cognito
//! user pool authorizers, checked after the route and before API keys, as
//! API Gateway does.
//!
//! What a request's head decides is decided before the body is read: a
//! missing or malformed signature, an unknown access key, an expired date,
//! a credential without `invoke`, a missing identity source. Only the
//! signature itself, which covers the body, waits for it ([`verify_iam`]).
//! Read first: [`check_head`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use crate::auth::{AuthError, RequestParts};
use crate::authorizer::{evaluate, parse_output, AuthorizerOutput, Verdict};
use crate::error::{ErrorKind, GatewayError};
use crate::http::request::RequestHead;
use crate::integration::RequestInfo;
use crate::snapshot::{
    IdentitySource, LambdaAuthorizer, MethodAuth, Snapshot, Stage, UpstreamBinding, UriPart,
};
use crate::template::{ContextVar, Values};

/// What the head-time check leaves for later.
pub enum Pending<'s> {
    /// Nothing: the method needs no authorization.
    Nothing,
    /// An `AWS_IAM` method: the signature, once the body is read.
    Signature,
    /// A Lambda authorizer to call (or whose cached result to use) with
    /// these identity values.
    Lambda {
        authorizer: &'s Arc<LambdaAuthorizer>,
        endpoint: &'s UpstreamBinding,
        identity: Vec<String>,
        /// The API's resource policy allows the request: an authorizer
        /// policy that neither allows nor denies admits it (API Gateway's
        /// same-account rule).
        policy_allows: bool,
    },
    /// Authorized already (a Cognito token): its claims.
    Authorized(AuthorizerOutput),
}

/// The method ARN API Gateway passes to authorizers and names in IAM
/// refusals: `arn:aws:execute-api:REGION:ACCOUNT:API/STAGE/METHOD/PATH`,
/// with the path as requested (after the stage). A self-hosted gateway
/// has no region or account: they are `local` and `000000000000`.
pub fn method_arn(info: &RequestInfo<'_>) -> String {
    let api = info.api.map_or("", |a| a.id.as_str());
    format!(
        "arn:aws:execute-api:local:000000000000:{api}/{}",
        arn_resource(info)
    )
}

/// The method ARN after the API id: `STAGE/METHOD/PATH`, with the path as
/// the router matched it (percent-decoded, without a trailing slash), so
/// that a policy naming a path judges every spelling that reaches it
/// (`/%73ecret` and `/secret/` are `/secret`).
fn arn_resource(info: &RequestInfo<'_>) -> String {
    let stage = info.stage.map_or("", |s| s.name.as_str());
    let raw = info.route.map_or("/", |r| r.rest);
    let decoded = crate::http::query::decode_path(raw.as_bytes());
    let mut rest: &str = &decoded;
    if rest.len() > 1 {
        rest = rest.strip_suffix('/').unwrap_or(rest);
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    format!("{stage}/{}{rest}", info.head.method().as_str())
}

/// The API's resource policy on this request, for the caller `principal`
/// (a signer's ARN; `None`: anonymous). `None` when the API has none.
fn policy_verdict(info: &RequestInfo<'_>, principal: Option<&str>) -> Option<Verdict> {
    let api = info.api?;
    let policy = api.policy.as_ref()?;
    let resource = arn_resource(info);
    let text = |name: &str| {
        info.head
            .header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    };
    Some(policy.evaluate(&crate::resource_policy::Facts {
        api_id: &api.id,
        resource: &resource,
        source_ip: info.peer.ip(),
        user_agent: text("user-agent"),
        referer: text("referer"),
        principal,
    }))
}

/// API Gateway's refusal by a resource policy.
fn policy_refusal(info: &RequestInfo<'_>, verdict: Verdict, who: &str) -> GatewayError {
    let arn = method_arn(info);
    let explicit = if verdict == Verdict::ExplicitDeny {
        " with an explicit deny"
    } else {
        ""
    };
    GatewayError::new(
        ErrorKind::AccessDenied,
        format!("the API's resource policy denies {who} {arn}"),
    )
    .telling(format!(
        "User: {who} is not authorized to perform: execute-api:Invoke on resource: {arn}{explicit}"
    ))
}

/// The ARN a credential has as a principal.
fn user_arn(cred: &crate::auth::Credential) -> String {
    crate::template::CallerField::UserArn.of(&cred.name, cred.access_key_id.as_deref())
}

/// The checks a method's authorization makes on the request head.
pub fn check_head<'s>(
    snap: &'s Snapshot,
    info: &RequestInfo<'_>,
    stage: &Stage,
    auth: &'s MethodAuth,
) -> Result<Pending<'s>, GatewayError> {
    // The resource policy's first phase, as API Gateway's: an explicit
    // deny refuses before any authorizer runs. The signer of an `AWS_IAM`
    // method is judged as its principal below.
    let anonymous = if matches!(auth, MethodAuth::Iam) {
        None
    } else {
        policy_verdict(info, None)
    };
    if let Some(v @ Verdict::ExplicitDeny) = anonymous {
        return Err(policy_refusal(info, v, "anonymous"));
    }
    match auth {
        // Without authorization a policy must allow.
        MethodAuth::None => match anonymous {
            Some(v @ Verdict::ImplicitDeny) => Err(policy_refusal(info, v, "anonymous")),
            _ => Ok(Pending::Nothing),
        },
        MethodAuth::Iam => {
            let headers: Vec<(&[u8], &[u8])> = info.head.headers().collect();
            let parts = RequestParts::of(info.head, &headers, &[]);
            let cred = crate::auth::sigv4_signer(
                &snap.credentials,
                &parts,
                "execute-api",
                SystemTime::now(),
            )
            .map_err(iam_error)?;
            // The signer (its signature is checked with the body) as the
            // principal: the policy's explicit deny refuses, its allow
            // admits a credential without `invoke` (IAM's same-account
            // rule: either the identity's permission or the resource's).
            let arn = user_arn(cred);
            match policy_verdict(info, Some(&arn)) {
                Some(v @ Verdict::ExplicitDeny) => return Err(policy_refusal(info, v, &arn)),
                Some(Verdict::Allow) => {}
                _ if !cred.permissions.invoke => return Err(no_invoke(cred, &method_arn(info))),
                _ => {}
            }
            Ok(Pending::Signature)
        }
        MethodAuth::Lambda(a) => {
            let identity = identity(info, stage, a)?;
            if let Some(endpoint) = a
                .function
                .as_ref()
                .and_then(|f| snap.lambda_functions.get(f))
            {
                return Ok(Pending::Lambda {
                    authorizer: a,
                    endpoint,
                    identity,
                    policy_allows: anonymous == Some(Verdict::Allow),
                });
            }
            Err(GatewayError::new(
                ErrorKind::AuthorizerConfiguration,
                format!(
                    "Lambda authorizer `{}`: no endpoint is configured for its function {}",
                    a.name,
                    a.function.as_deref().unwrap_or("(none)")
                ),
            ))
        }
        MethodAuth::Cognito {
            authorizer: c,
            scopes,
        } => {
            let token = info
                .header(&c.header)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    GatewayError::new(
                        ErrorKind::Unauthorized,
                        format!("Cognito authorizer `{}`: no `{}` header", c.name, c.header),
                    )
                })?;
            // The raw token, as API Gateway takes it; a `Bearer ` before it
            // is allowed.
            let token = match token.get(..7) {
                Some(p) if p.eq_ignore_ascii_case("bearer ") => token[7..].trim_start(),
                _ => token.as_str(),
            };
            // The token against each configured pool (no list built per
            // request); none configured is a configuration error.
            let mut why: Option<String> = None;
            for pool in c.providers.iter().filter_map(|p| snap.user_pools.get(p)) {
                match pool.verify(token, scopes) {
                    // With a resource policy, API Gateway admits a Cognito
                    // caller only on its explicit allow.
                    Ok(_) if anonymous == Some(Verdict::ImplicitDeny) => {
                        return Err(policy_refusal(info, Verdict::ImplicitDeny, "anonymous"))
                    }
                    Ok(out) => return Ok(Pending::Authorized(out)),
                    Err(e) => why = Some(e),
                }
            }
            let Some(why) = why else {
                return Err(GatewayError::new(
                    ErrorKind::AuthorizerConfiguration,
                    format!(
                        "Cognito authorizer `{}`: none of its user pools is in [cognito_user_pools]",
                        c.name
                    ),
                ));
            };
            Err(GatewayError::new(
                ErrorKind::Unauthorized,
                format!("Cognito authorizer `{}`: {why}", c.name),
            ))
        }
    }
}

/// The signature of an `AWS_IAM` request, over its body: the credential
/// that made it.
pub fn verify_iam<'s>(
    snap: &'s Snapshot,
    info: &RequestInfo<'_>,
    body: &[u8],
) -> Result<&'s crate::auth::Credential, GatewayError> {
    let headers: Vec<(&[u8], &[u8])> = info.head.headers().collect();
    let parts = RequestParts::of(info.head, &headers, body);
    crate::auth::authenticate(&snap.credentials, &parts, "execute-api", SystemTime::now())
        .map_err(iam_error)
}

/// A signer whose credential may not invoke: API Gateway's refusal.
pub(super) fn no_invoke(cred: &crate::auth::Credential, arn: &str) -> GatewayError {
    GatewayError::new(
        ErrorKind::AccessDenied,
        format!("credential `{}` has no `invoke` permission", cred.name),
    )
    .telling(format!(
        "User: {} is not authorized to perform: execute-api:Invoke on resource: {arn}",
        cred.name
    ))
}

pub(super) fn iam_error(e: AuthError) -> GatewayError {
    let (kind, detail) = match &e {
        AuthError::Missing => (ErrorKind::MissingCredentials, "no Authorization header"),
        AuthError::Expired(_) => (ErrorKind::ExpiredSignature, "signature expired"),
        AuthError::Malformed(_) => (ErrorKind::InvalidSignature, "malformed Authorization"),
        AuthError::UnknownCredential => (ErrorKind::InvalidSignature, "unknown access key"),
        AuthError::BadSignature | AuthError::PayloadMismatch => {
            (ErrorKind::InvalidSignature, "signature does not match")
        }
    };
    let err = GatewayError::new(kind, detail);
    match e {
        AuthError::Missing => err,
        other => err.telling(other.aws_error().1),
    }
}

/// The values of a Lambda authorizer's identity sources; a missing or
/// empty one is 401 without calling the authorizer, and so is a token
/// that fails `identityValidationExpression`.
pub fn identity(
    info: &RequestInfo<'_>,
    stage: &Stage,
    a: &LambdaAuthorizer,
) -> Result<Vec<String>, GatewayError> {
    identity_values(a, |src| match src {
        IdentitySource::Header(n) => info.header(n).map(Cow::into_owned),
        IdentitySource::Query(n) => info.query_param(n),
        IdentitySource::StageVar(n) => stage.variables.get(n).cloned(),
        IdentitySource::Context(n) => info.context(&ContextVar::parse(n)).map(Cow::into_owned),
    })
}

/// The values of an authorizer's identity sources, each found by
/// `lookup`: a missing or empty one is 401 without calling the
/// authorizer, and so is a token that fails
/// `identityValidationExpression`.
pub fn identity_values(
    a: &LambdaAuthorizer,
    lookup: impl Fn(&IdentitySource) -> Option<String>,
) -> Result<Vec<String>, GatewayError> {
    let mut values = Vec::with_capacity(a.sources.len());
    for src in &a.sources {
        match lookup(src) {
            Some(v) if !v.is_empty() => values.push(v),
            _ => {
                return Err(GatewayError::new(
                    ErrorKind::Unauthorized,
                    format!(
                        "authorizer `{}`: identity source {src:?} missing or empty",
                        a.name
                    ),
                ))
            }
        }
    }
    if let (Some(re), Some(token)) = (&a.validation, values.first()) {
        if !re.is_match(token) {
            return Err(GatewayError::new(
                ErrorKind::Unauthorized,
                format!(
                    "authorizer `{}`: token fails identityValidationExpression",
                    a.name
                ),
            ));
        }
    }
    Ok(values)
}

/// How long an authorizer may take, as API Gateway's limit for them.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest output read back (API Gateway allows 8 KB; headroom for
/// whitespace).
const MAX_OUTPUT_BYTES: usize = 64 * 1024;
/// Results a shard keeps; past it, expired ones are dropped, then all.
const MAX_CACHED: usize = 10_000;

/// Lambda authorizers' outputs by authorizer and identity, for their TTL.
/// Per shard: no locks on the request path; a shard calls the authorizer
/// once per identity and TTL.
#[derive(Default)]
pub struct ResultCache {
    entries: HashMap<(usize, String), Cached>,
}

struct Cached {
    expires: Instant,
    output: Arc<AuthorizerOutput>,
    /// Keeps the authorizer (whose address is part of the key) alive, so
    /// that a reload's new authorizer at a reused address cannot find it.
    _authorizer: Arc<LambdaAuthorizer>,
}

impl ResultCache {
    fn get(&mut self, key: &(usize, String), now: Instant) -> Option<Arc<AuthorizerOutput>> {
        match self.entries.get(key) {
            Some(c) if c.expires > now => Some(c.output.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    fn put(&mut self, key: (usize, String), cached: Cached, now: Instant) {
        if self.entries.len() >= MAX_CACHED {
            self.entries.retain(|_, c| c.expires > now);
            if self.entries.len() >= MAX_CACHED {
                self.entries.clear();
            }
        }
        self.entries.insert(key, cached);
    }
}

/// What a Lambda authorizer decided: its output (for `$context.authorizer.*`,
/// in the method's mappings or in the gateway response of a denial), and
/// the refusal if there is one.
pub struct Decision {
    pub output: Option<Arc<AuthorizerOutput>>,
    pub refusal: Option<GatewayError>,
}

/// The cache key of an identity: the stage (API Gateway caches an
/// authorizer's results per stage) and each value with its length before
/// it, so that no two identities spell the same key (a value may hold any
/// character, `%00` decoded from a query too).
fn cache_key(stage: &str, identity: &[String]) -> String {
    let mut key =
        String::with_capacity(stage.len() + identity.iter().map(|v| v.len() + 8).sum::<usize>());
    for part in std::iter::once(stage).chain(identity.iter().map(String::as_str)) {
        key.push_str(&part.len().to_string());
        key.push(':');
        key.push_str(part);
    }
    key
}

/// Runs a Lambda authorizer through the HTTP endpoint that stands in for
/// its function (or takes its cached output), then judges the method ARN
/// by the policy.
#[allow(clippy::too_many_arguments)]
pub async fn run_lambda(
    shard: &super::Shard,
    snap: &Snapshot,
    info: &RequestInfo<'_>,
    stage: &Stage,
    authorizer: &Arc<LambdaAuthorizer>,
    endpoint: &UpstreamBinding,
    identity: Vec<String>,
    policy_allows: bool,
) -> Decision {
    let arn = method_arn(info);
    let key = (
        Arc::as_ptr(authorizer) as usize,
        cache_key(&stage.name, &identity),
    );
    let now = Instant::now();
    let cached = if authorizer.ttl.is_zero() {
        None
    } else {
        shard.authorizer_cache.borrow_mut().get(&key, now)
    };
    let output = match cached {
        Some(o) => o,
        None => {
            let called = call(
                shard, snap, info, stage, authorizer, endpoint, &identity, &arn,
            )
            .await;
            let o = match called {
                Ok(o) => Arc::new(o),
                Err(e) => {
                    return Decision {
                        output: None,
                        refusal: Some(e),
                    }
                }
            };
            if !authorizer.ttl.is_zero() {
                shard.authorizer_cache.borrow_mut().put(
                    key,
                    Cached {
                        expires: now + authorizer.ttl,
                        output: o.clone(),
                        _authorizer: authorizer.clone(),
                    },
                    now,
                );
            }
            o
        }
    };
    let refusal = match judge(&output, authorizer, &arn) {
        Some(_) if policy_allows && evaluate(&output.statements, &arn) == Verdict::ImplicitDeny => {
            None
        }
        r => r,
    };
    Decision {
        output: Some(output),
        refusal,
    }
}

/// The refusal of an authorizer's policy for `arn`, if it does not allow
/// it.
pub(super) fn judge(
    output: &AuthorizerOutput,
    authorizer: &LambdaAuthorizer,
    arn: &str,
) -> Option<GatewayError> {
    match evaluate(&output.statements, arn) {
        Verdict::Allow => None,
        v => Some(
            GatewayError::new(
                ErrorKind::AccessDenied,
                format!(
                    "authorizer `{}`: the policy for {} denies {arn}",
                    authorizer.name, output.principal_id
                ),
            )
            .telling(v.message()),
        ),
    }
}

#[allow(clippy::too_many_arguments)]
async fn call(
    shard: &super::Shard,
    snap: &Snapshot,
    info: &RequestInfo<'_>,
    stage: &Stage,
    authorizer: &LambdaAuthorizer,
    endpoint: &UpstreamBinding,
    identity: &[String],
    arn: &str,
) -> Result<AuthorizerOutput, GatewayError> {
    let event = if authorizer.request {
        request_event(info, stage, arn)
    } else {
        json!({
            "type": "TOKEN",
            "authorizationToken": identity.first().map_or("", String::as_str),
            "methodArn": arn,
        })
    };
    call_endpoint(shard, snap, authorizer, endpoint, &event, info.request_id).await
}

/// POSTs an authorizer's event to the HTTP endpoint standing in for its
/// function and reads the output back.
pub async fn call_endpoint(
    shard: &super::Shard,
    snap: &Snapshot,
    authorizer: &LambdaAuthorizer,
    endpoint: &UpstreamBinding,
    event: &Value,
    request_id: &str,
) -> Result<AuthorizerOutput, GatewayError> {
    let failure = |detail: String| {
        GatewayError::new(
            ErrorKind::AuthorizerFailure,
            format!("authorizer `{}`: {detail}", authorizer.name),
        )
    };
    let body = event.to_string();
    let target = snap
        .targets
        .get(endpoint.target as usize)
        .ok_or_else(|| failure("unknown endpoint".into()))?;
    let addrs = shard
        .addresses(target)
        .map_err(|e| failure(e.detail.into_owned()))?;
    let tls = super::upstream::TlsTo::for_target(snap, target)
        .map_err(|e| failure(e.detail.into_owned()))?;
    let text = |parts: &[UriPart]| -> String {
        parts
            .iter()
            .map(|p| match p {
                UriPart::Text(t) => t.as_str(),
                UriPart::Param(_) => "",
            })
            .collect()
    };
    let mut path = text(&endpoint.path);
    if path.is_empty() {
        path.push('/');
    }
    let query = text(&endpoint.query);
    let mut request = format!(
        "POST {path}{}{query} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nx-amzn-RequestId: {}\r\n\r\n",
        if query.is_empty() { "" } else { "?" },
        endpoint.host_header,
        body.len(),
        request_id,
    )
    .into_bytes();
    request.extend_from_slice(body.as_bytes());
    let deadline = Instant::now() + CALL_TIMEOUT;
    let settings = snap.upstream;
    let mut resp = super::upstream::send(
        &shard.pool,
        &shard.scratch,
        &shard.timers,
        &settings,
        &addrs,
        tls,
        &request,
        // Asking an authorizer changes nothing: a pooled connection the
        // endpoint closed meanwhile is retried on a new one, as for a GET.
        true,
        false,
        deadline,
    )
    .await
    .map_err(|e| failure(e.detail.into_owned()))?;
    let status = resp.head.status;
    let out = resp
        .buffer_body(&shard.scratch, &shard.timers, MAX_OUTPUT_BYTES, deadline)
        .await
        .map_err(|e| failure(e.detail.into_owned()))?;
    let super::upstream::Buffered::Complete(out) = out else {
        return Err(GatewayError::new(
            ErrorKind::AuthorizerConfiguration,
            format!(
                "authorizer `{}`: output over {MAX_OUTPUT_BYTES} bytes",
                authorizer.name
            ),
        ));
    };
    resp.release(&shard.pool, &settings);
    match status {
        200 => parse_output(&out).map_err(|why| {
            GatewayError::new(
                ErrorKind::AuthorizerConfiguration,
                format!("authorizer `{}`: {why}", authorizer.name),
            )
        }),
        // A Lambda authorizer refuses with the error "Unauthorized"; its
        // HTTP stand-in with 401 (or 403).
        401 | 403 => Err(GatewayError::new(
            ErrorKind::Unauthorized,
            format!("authorizer `{}` answered {status}", authorizer.name),
        )),
        _ => Err(failure(format!("answered {status}"))),
    }
}

/// `headers` and `multiValueHeaders` of a REQUEST authorizer's event;
/// `hide_authorization`: the `Authorization` carries one of the gateway's
/// own bearer tokens, which no integration or authorizer sees.
pub(super) fn header_maps(head: &RequestHead, hide_authorization: bool) -> (Value, Value) {
    let mut headers = Map::new();
    let mut multi_headers: Map<String, Value> = Map::new();
    for (n, v) in head.headers() {
        if hide_authorization && n.eq_ignore_ascii_case(b"authorization") {
            continue;
        }
        let n = String::from_utf8_lossy(n).into_owned();
        let v = String::from_utf8_lossy(v).into_owned();
        match multi_headers.get_mut(&n) {
            Some(Value::Array(a)) => a.push(Value::String(v.clone())),
            _ => {
                multi_headers.insert(n.clone(), json!([v.clone()]));
            }
        }
        headers.insert(n, Value::String(v));
    }
    (Value::Object(headers), Value::Object(multi_headers))
}

/// `queryStringParameters` and `multiValueQueryStringParameters` of a
/// REQUEST authorizer's event, decoded.
pub(super) fn query_maps(head: &RequestHead) -> (Value, Value) {
    let mut query = Map::new();
    let mut multi_query: Map<String, Value> = Map::new();
    if let Some(q) = head.query() {
        for (n, v) in crate::http::query::pairs(q) {
            let n = crate::http::query::decode_component(n).into_owned();
            let v = crate::http::query::decode_component(v).into_owned();
            match multi_query.get_mut(&n) {
                Some(Value::Array(a)) => a.push(Value::String(v.clone())),
                _ => {
                    multi_query.insert(n.clone(), json!([v.clone()]));
                }
            }
            query.insert(n, Value::String(v));
        }
    }
    (Value::Object(query), Value::Object(multi_query))
}

pub(super) fn stage_variables(variables: &std::collections::BTreeMap<String, String>) -> Value {
    Value::Object(
        variables
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// API Gateway's REQUEST authorizer event.
fn request_event(info: &RequestInfo<'_>, stage: &Stage, arn: &str) -> Value {
    let (headers, multi_headers) = header_maps(info.head, info.hide_authorization);
    let (query, multi_query) = query_maps(info.head);
    let mut path_params = Map::new();
    if let Some(r) = &info.route {
        for (i, n) in r.resource.param_names.iter().enumerate() {
            if let Some(v) = r.captures.get(r.rest, i) {
                path_params.insert(
                    n.clone(),
                    Value::String(crate::http::query::decode_path(v.as_bytes()).into_owned()),
                );
            }
        }
    }
    let stage_vars = stage_variables(&stage.variables);
    let resource = info.route.map_or("/", |r| r.resource.path.as_str());
    let path = info
        .route
        .map_or("/", |r| if r.rest.is_empty() { "/" } else { r.rest });
    let method = info.head.method().as_str();
    let ctx = |v: ContextVar| info.context(&v).map(Cow::into_owned).unwrap_or_default();
    json!({
        "type": "REQUEST",
        "methodArn": arn,
        "resource": resource,
        "path": path,
        "httpMethod": method,
        "headers": headers,
        "multiValueHeaders": multi_headers,
        "queryStringParameters": query,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": path_params,
        "stageVariables": stage_vars,
        "requestContext": {
            "path": String::from_utf8_lossy(info.head.path()),
            "accountId": "000000000000",
            "resourceId": resource,
            "stage": stage.name,
            "requestId": info.request_id,
            "extendedRequestId": ctx(ContextVar::ExtendedRequestId),
            "identity": {
                "sourceIp": ctx(ContextVar::SourceIp),
                "userAgent": ctx(ContextVar::UserAgent),
                "apiKey": info.header("x-api-key").map(Cow::into_owned),
            },
            "resourcePath": resource,
            "httpMethod": method,
            "apiId": info.api.map_or("", |a| a.id.as_str()),
            "protocol": ctx(ContextVar::Protocol),
            "requestTimeEpoch": crate::ids::epoch_millis(info.received),
        },
    })
}
