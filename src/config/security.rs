//! Who may call a method: a Swagger document's `securityDefinitions` and
//! an operation's `security`, read as API Gateway's import reads them.
//!
//! A scheme is an API key (`apiKey` in the `x-api-key` header), IAM
//! (`x-amazon-apigateway-authtype: awsSigv4`), a Lambda authorizer
//! (`x-amazon-apigateway-authorizer` of type `token` or `request`) or a
//! Cognito user pool authorizer (type `cognito_user_pools`). Anything else
//! (OAuth 2, basic, a key in the query) API Gateway does not enforce; the
//! import says so, so that nobody believes such a method is protected.
//! The root `security` is not applied either (API Gateway applies only an
//! operation's own), and the import says that too.
//! Read first: [`schemes`], then [`method_auth`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use super::Diagnostics;
use crate::snapshot::{CognitoAuthorizer, IdentitySource, LambdaAuthorizer, MethodAuth};

/// What kind of scheme a security definition is, as API Gateway sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemeKind {
    ApiKey,
    Iam,
    /// A Lambda authorizer (`CUSTOM`).
    Custom,
    Cognito,
    /// `x-amazon-apigateway-authtype` says it is an authorizer, but the
    /// `x-amazon-apigateway-authorizer` it needs is missing: API Gateway
    /// does not create the methods that use it.
    BrokenAuthorizer,
    /// Not enforced by API Gateway.
    Other,
}

/// Classifies one security definition (no diagnostics: the admin API's
/// view of a method uses this too, so that what it reports is what is
/// enforced).
pub fn classify(def: &Value) -> SchemeKind {
    let auth_type = def
        .get("x-amazon-apigateway-authtype")
        .and_then(Value::as_str)
        .unwrap_or("");
    let authorizer_type = def
        .get("x-amazon-apigateway-authorizer")
        .map(|a| a.get("type").and_then(Value::as_str).unwrap_or(""));
    if auth_type.eq_ignore_ascii_case("awsSigv4") {
        return SchemeKind::Iam;
    }
    match authorizer_type {
        Some(t) if t.eq_ignore_ascii_case("cognito_user_pools") => SchemeKind::Cognito,
        Some(_) => SchemeKind::Custom,
        None if auth_type.eq_ignore_ascii_case("cognito_user_pools") => {
            SchemeKind::BrokenAuthorizer
        }
        None if !auth_type.is_empty() => SchemeKind::BrokenAuthorizer,
        None => {
            let is_key = def.get("type").and_then(Value::as_str) == Some("apiKey")
                && def.get("in").and_then(Value::as_str) == Some("header")
                && def
                    .get("name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.eq_ignore_ascii_case("x-api-key"));
            if is_key {
                SchemeKind::ApiKey
            } else {
                SchemeKind::Other
            }
        }
    }
}

/// The schemes an operation's `security` names, in order, with their
/// kinds; names with no definition are skipped.
pub fn requirements<'a>(
    defs: Option<&'a Map<String, Value>>,
    security: Option<&'a Value>,
) -> impl Iterator<Item = (&'a str, SchemeKind)> + 'a {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys())
        .filter_map(move |name| {
            let def = defs?.get(name)?;
            Some((name.as_str(), classify(def)))
        })
}

/// The compiled schemes of one document.
#[derive(Debug, Default)]
pub struct Schemes {
    defs: Option<Map<String, Value>>,
    authorizers: Vec<(String, MethodAuth)>,
}

/// Compiles `securityDefinitions`: every authorizer, with its problems
/// reported at its JSON path, and a warning for the root `security`.
pub fn schemes(file: &Path, root: &Map<String, Value>, diags: &mut Diagnostics) -> Schemes {
    if root
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty())
    {
        diags.warn(
            file,
            "$.security",
            "API Gateway does not apply the root `security` (only an operation's own): operations without their own `security` are not protected by it",
        );
    }
    let defs = root.get("securityDefinitions").and_then(Value::as_object);
    let mut authorizers = Vec::new();
    for (name, def) in defs.into_iter().flatten() {
        let jp = format!("$.securityDefinitions.{name}");
        match classify(def) {
            SchemeKind::Custom => {
                if let Some(a) = lambda_authorizer(file, &jp, name, def, diags) {
                    authorizers.push((name.clone(), MethodAuth::Lambda(Arc::new(a))));
                }
            }
            SchemeKind::Cognito => {
                let header = token_header(file, &jp, def, diags);
                let xp = format!("{jp}.x-amazon-apigateway-authorizer.providerARNs");
                let providers: Vec<String> = match def
                    .get("x-amazon-apigateway-authorizer")
                    .and_then(|a| a.get("providerARNs"))
                {
                    Some(Value::Array(list)) => list
                        .iter()
                        .filter_map(|p| match p.as_str() {
                            Some(s) => Some(s.to_owned()),
                            None => {
                                diags.error(file, &xp, "must hold user pool ARNs (strings)");
                                None
                            }
                        })
                        .collect(),
                    _ => {
                        diags.error(file, &xp, "missing: the user pools whose tokens are accepted (arn:aws:cognito-idp:REGION:ACCOUNT:userpool/POOL_ID)");
                        Vec::new()
                    }
                };
                authorizers.push((
                    name.clone(),
                    MethodAuth::Cognito {
                        authorizer: Arc::new(CognitoAuthorizer {
                            name: name.clone(),
                            header,
                            providers,
                        }),
                        scopes: Vec::new(),
                    },
                ));
            }
            SchemeKind::BrokenAuthorizer => diags.warn(
                file,
                &jp,
                format!("Unable to create authorizer from security definition: '{name}'. Extension x-amazon-apigateway-authorizer is required. Any methods with security: '{name}' will not be created."),
            ),
            SchemeKind::Other => {
                let kind = def.get("type").and_then(Value::as_str).unwrap_or("?");
                diags.warn(
                    file,
                    &jp,
                    format!("a `{kind}` scheme that API Gateway does not enforce (it enforces API keys in the x-api-key header, awsSigv4 and x-amazon-apigateway-authorizer): methods that name only it are not protected"),
                );
            }
            SchemeKind::ApiKey | SchemeKind::Iam => {}
        }
    }
    Schemes {
        defs: defs.cloned(),
        authorizers,
    }
}

/// An operation's authorization and whether it requires an API key; `None`
/// when it names a broken authorizer (API Gateway does not create such a
/// method, so it is not routed).
pub fn method_auth(
    file: &Path,
    op_path: &str,
    op: &Map<String, Value>,
    schemes: &Schemes,
    diags: &mut Diagnostics,
) -> Option<(MethodAuth, bool)> {
    let mut auth = MethodAuth::None;
    let mut auth_name: Option<&str> = None;
    let mut key_required = false;
    // `security` is a list of requirement objects, each naming schemes
    // with a list of scopes. Any other shape (`{"sigv4": []}`, `"sigv4"`,
    // `[["sigv4"]]`) would name nothing that is read: an error, not a
    // method served open.
    if let Some(security) = op.get("security") {
        let well_formed = security.as_array().is_some_and(|reqs| {
            reqs.iter().all(|r| {
                r.as_object().is_some_and(|o| {
                    o.values().all(|scopes| {
                        scopes
                            .as_array()
                            .is_some_and(|a| a.iter().all(Value::is_string))
                    })
                })
            })
        });
        if !well_formed {
            diags.error(
                file,
                format!("{op_path}.security"),
                "must be a list of security requirements, each an object naming security definitions with a list of scopes: [{\"name\": []}]",
            );
            return None;
        }
    }
    if legacy_iam(op.get("x-amazon-apigateway-auth")) {
        auth = MethodAuth::Iam;
        auth_name = Some("x-amazon-apigateway-auth");
    }
    // A name `securityDefinitions` does not have (a typo, a definition
    // removed): the method is not created rather than served open.
    if let Some(missing) = op
        .get("security")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .flat_map(|r| r.keys())
        .find(|n| !schemes.defs.as_ref().is_some_and(|d| d.contains_key(*n)))
    {
        diags.warn(
            file,
            format!("{op_path}.security"),
            format!("not created: it names security definition '{missing}', which securityDefinitions does not have"),
        );
        return None;
    }
    for (name, kind) in requirements(schemes.defs.as_ref(), op.get("security")) {
        let next = match kind {
            SchemeKind::ApiKey => {
                key_required = true;
                continue;
            }
            SchemeKind::Other => continue,
            SchemeKind::BrokenAuthorizer => {
                diags.warn(
                    file,
                    op_path,
                    format!("not created: it names security definition '{name}', whose x-amazon-apigateway-authorizer is missing"),
                );
                return None;
            }
            SchemeKind::Iam => MethodAuth::Iam,
            SchemeKind::Custom | SchemeKind::Cognito => {
                match schemes.authorizers.iter().find(|(n, _)| n == name) {
                    // A Cognito authorizer's OAuth scopes are the method's:
                    // `security: [{"pool": ["email"]}]`.
                    Some((_, MethodAuth::Cognito { authorizer, .. })) => {
                        let scopes = scopes_of(op.get("security"), name);
                        if scopes.iter().any(|s| s.trim().is_empty()) {
                            diags.warn(
                                file,
                                format!("{op_path}.security"),
                                format!("an empty scope for '{name}' matches no token; ignored"),
                            );
                        }
                        MethodAuth::Cognito {
                            authorizer: authorizer.clone(),
                            scopes: scopes
                                .into_iter()
                                .filter(|s| !s.trim().is_empty())
                                .collect(),
                        }
                    }
                    Some((_, a)) => a.clone(),
                    // Its definition had errors, reported there.
                    None => return None,
                }
            }
        };
        if let Some(prev) = auth_name.filter(|p| *p != name) {
            diags.warn(
                file,
                format!("{op_path}.security"),
                format!("a method has one authorizer: '{name}' is used, '{prev}' is not"),
            );
        }
        auth = next;
        auth_name = Some(name);
    }
    Some((auth, key_required))
}

/// An operation's legacy `x-amazon-apigateway-auth: {type: AWS_IAM}`, of
/// early imports.
pub fn legacy_iam(ext: Option<&Value>) -> bool {
    ext.and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("aws_iam"))
}

/// The scopes an operation's `security` lists for scheme `name`.
fn scopes_of(security: Option<&Value>, name: &str) -> Vec<String> {
    security
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| r.get(name))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The header a TOKEN or Cognito authorizer reads: its `identitySource`
/// (`method.request.header.NAME`), else the scheme's `name`.
fn token_header(file: &Path, jp: &str, def: &Value, diags: &mut Diagnostics) -> String {
    let ext = def.get("x-amazon-apigateway-authorizer");
    if let Some(src) = ext
        .and_then(|a| a.get("identitySource"))
        .and_then(Value::as_str)
    {
        match src.trim().strip_prefix("method.request.header.") {
            Some(h) if !h.is_empty() && !h.contains(',') => return h.to_owned(),
            _ => diags.error(
                file,
                format!("{jp}.x-amazon-apigateway-authorizer.identitySource"),
                format!(
                    "`{src}`: a token authorizer reads one header, `method.request.header.NAME`"
                ),
            ),
        }
    }
    match def.get("name").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => {
            if def.get("in").and_then(Value::as_str) != Some("header") {
                diags.error(
                    file,
                    format!("{jp}.in"),
                    "an authorizer's token is in a header: `in: header`",
                );
            }
            n.to_owned()
        }
        _ => {
            diags.error(
                file,
                format!("{jp}.name"),
                "missing: the header that carries the token (e.g. Authorization)",
            );
            "Authorization".to_owned()
        }
    }
}

fn lambda_authorizer(
    file: &Path,
    jp: &str,
    name: &str,
    def: &Value,
    diags: &mut Diagnostics,
) -> Option<LambdaAuthorizer> {
    let ext = def.get("x-amazon-apigateway-authorizer")?;
    let xp = format!("{jp}.x-amazon-apigateway-authorizer");
    let Some(ext) = ext.as_object() else {
        diags.error(file, &xp, "must be an object");
        return None;
    };
    let errors = diags.errors.len();
    let kind = ext.get("type").and_then(Value::as_str).unwrap_or("");
    let request = if kind.eq_ignore_ascii_case("request") {
        true
    } else if kind.eq_ignore_ascii_case("token") {
        false
    } else {
        diags.error(
            file,
            format!("{xp}.type"),
            format!("`{kind}`: expected token, request or cognito_user_pools"),
        );
        false
    };
    let sources = if request {
        match ext.get("identitySource") {
            None => Vec::new(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter_map(|src| match IdentitySource::parse(src) {
                    Some(IdentitySource::Context(n))
                        if !crate::template::ContextVar::parse(&n).is_supported() =>
                    {
                        diags.error(
                            file,
                            format!("{xp}.identitySource"),
                            format!("`{src}`: `$context.{n}` is not a context variable this gateway has (e.g. context.identity.sourceIp, context.stage)"),
                        );
                        None
                    }
                    Some(s) => Some(s),
                    None => {
                        diags.error(
                            file,
                            format!("{xp}.identitySource"),
                            format!("`{src}`: expected method.request.header.NAME, method.request.querystring.NAME, stageVariables.NAME or context.NAME"),
                        );
                        None
                    }
                })
                .collect(),
            Some(_) => {
                diags.error(file, format!("{xp}.identitySource"), "must be a string");
                Vec::new()
            }
        }
    } else {
        vec![IdentitySource::Header(token_header(file, jp, def, diags))]
    };
    let validation = match ext.get("identityValidationExpression") {
        None => None,
        Some(Value::String(re)) if !request => {
            // API Gateway matches the whole token.
            match Regex::new(&format!("^(?:{re})$")) {
                Ok(r) => Some(r),
                Err(e) => {
                    diags.error(
                        file,
                        format!("{xp}.identityValidationExpression"),
                        format!("not a valid regular expression: {e}"),
                    );
                    None
                }
            }
        }
        Some(Value::String(_)) => {
            diags.warn(
                file,
                format!("{xp}.identityValidationExpression"),
                "used by TOKEN authorizers only; ignored",
            );
            None
        }
        Some(_) => {
            diags.error(
                file,
                format!("{xp}.identityValidationExpression"),
                "must be a string",
            );
            None
        }
    };
    let ttl = match ext.get("authorizerResultTtlInSeconds") {
        None => 300,
        Some(v) => match v.as_u64() {
            Some(t) if t <= 3600 => t,
            _ => {
                diags.error(
                    file,
                    format!("{xp}.authorizerResultTtlInSeconds"),
                    format!("{v}: must be a whole number of seconds from 0 to 3600"),
                );
                0
            }
        },
    };
    // Caching needs a key: a REQUEST authorizer without identity sources
    // is called for every request.
    let ttl = if request && sources.is_empty() {
        0
    } else {
        ttl
    };
    let function = match ext.get("authorizerUri").and_then(Value::as_str) {
        Some(uri) => function_arn(uri),
        None => {
            diags.error(file, format!("{xp}.authorizerUri"), "missing: the authorizer's Lambda function (arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/FUNCTION_ARN/invocations)");
            None
        }
    };
    if diags.errors.len() != errors {
        return None;
    }
    Some(LambdaAuthorizer {
        name: name.to_owned(),
        request,
        sources,
        validation,
        ttl: Duration::from_secs(ttl),
        function,
    })
}

/// The Lambda function ARN inside an authorizer (or integration) URI:
/// `arn:aws:apigateway:REGION:lambda:path/2015-03-31/functions/ARN/invocations`.
pub fn function_arn(uri: &str) -> Option<String> {
    let (_, rest) = uri.split_once(":lambda:path/")?;
    let rest = rest.split_once("/functions/")?.1;
    let arn = rest.strip_suffix("/invocations").unwrap_or(rest);
    (!arn.is_empty()).then(|| arn.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn function_arn_is_read_from_the_authorizer_uri() {
        assert_eq!(
            function_arn("arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123:function:auth/invocations").as_deref(),
            Some("arn:aws:lambda:us-east-1:123:function:auth")
        );
        assert_eq!(function_arn("https://example.com/auth"), None);
    }

    #[test]
    fn schemes_are_classified_as_api_gateway_reads_them() {
        let key = json!({"type": "apiKey", "name": "x-api-key", "in": "header"});
        let iam = json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "awsSigv4"});
        let custom = json!({"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "custom", "x-amazon-apigateway-authorizer": {"type": "token"}});
        let cognito = json!({"type": "apiKey", "name": "Authorization", "in": "header", "x-amazon-apigateway-authtype": "cognito_user_pools", "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools"}});
        let broken = json!({"type": "apiKey", "name": "Auth", "in": "header", "x-amazon-apigateway-authtype": "oauth2"});
        let oauth = json!({"type": "oauth2", "flow": "implicit", "authorizationUrl": "https://x"});
        let query_key = json!({"type": "apiKey", "name": "x-api-key", "in": "query"});
        assert_eq!(classify(&key), SchemeKind::ApiKey);
        assert_eq!(classify(&iam), SchemeKind::Iam);
        assert_eq!(classify(&custom), SchemeKind::Custom);
        assert_eq!(classify(&cognito), SchemeKind::Cognito);
        assert_eq!(classify(&broken), SchemeKind::BrokenAuthorizer);
        assert_eq!(classify(&oauth), SchemeKind::Other);
        assert_eq!(classify(&query_key), SchemeKind::Other);
    }
}
