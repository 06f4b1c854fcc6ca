//! `[[websocket_apis]]` and `[websocket]`: checked at read time, compiled
//! (stage by stage, like REST integrations) when a snapshot is built.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use super::compile::{bind_uri, check_stage_variable, valid_stage_name};
use super::raw::{RawWsApi, RawWsAuthorizer, RawWsLimits, RawWsRoute};
use super::swagger::{compile_vtl, parse_uri_template, UriTemplate};
use super::Diagnostics;
use crate::snapshot::{IdentitySource, LambdaAuthorizer};
use crate::snapshot::{Target, TargetId};
use crate::ws::{
    SelectionExpr, WsApi, WsAuth, WsBinding, WsIntegration, WsLimits, WsMockStatus, WsParamSource,
    WsParamTarget, WsRoute, WsStage, WsTemplate,
};

#[derive(Clone, Debug)]
pub struct WsApiSettings {
    pub id: String,
    pub selection: SelectionExpr,
    pub stages: Vec<(String, BTreeMap<String, String>)>,
    pub routes: Vec<WsRouteSettings>,
}

#[derive(Clone, Debug)]
pub struct WsRouteSettings {
    pub key: String,
    pub route_response: bool,
    pub kind: WsRouteKind,
    pub auth: WsAuth,
}

#[derive(Clone, Debug)]
pub enum WsRouteKind {
    Mock {
        status: WsMockStatus,
        response_template: Option<WsTemplate>,
    },
    Http {
        uri: String,
        template: UriTemplate,
        timeout: Duration,
        request_parameters: Vec<(WsParamTarget, WsParamSource)>,
        request_template: Option<WsTemplate>,
        response_template: Option<WsTemplate>,
    },
}

/// The route's request template: `$default` (or, as before templates
/// were selected, `application/json`). Other keys would need a template
/// selection expression, which is not supported: they are warned about.
fn request_template(
    file: &Path,
    rp: &str,
    templates: &BTreeMap<String, String>,
    diags: &mut Diagnostics,
) -> Option<std::sync::Arc<crate::vtl::Template>> {
    let mut chosen: Option<(&str, &str)> = None;
    for (k, v) in templates {
        let key = k.to_ascii_lowercase();
        if key == "$default" || (key == "application/json" && chosen.is_none()) {
            chosen = Some((k, v));
        } else if key != "application/json" {
            diags.warn(
                file,
                format!("{rp}.integration.request_templates.{k}"),
                "only the `$default` request template is used (template selection expressions are not supported); this one never is",
            );
        }
    }
    let (k, v) = chosen?;
    // A blank template is no template (as an empty REST template is a
    // passthrough): a MOCK answers 200, an http integration sends the
    // message as it came.
    if v.trim().is_empty() {
        return None;
    }
    compile_vtl(
        file,
        &format!("{rp}.integration.request_templates.{k}"),
        v,
        diags,
    )
}

fn response_template(
    file: &Path,
    rp: &str,
    source: Option<&str>,
    diags: &mut Diagnostics,
) -> Option<WsTemplate> {
    let jp = format!("{rp}.integration.response_template");
    // Blank: no template (no reply from a MOCK; the backend's body as it
    // came from an http integration).
    let source = source.filter(|s| !s.trim().is_empty())?;
    compile_vtl(file, &jp, source, diags).map(WsTemplate::new)
}

pub fn read_limits(file: &Path, raw: &RawWsLimits, diags: &mut Diagnostics) -> WsLimits {
    let mut positive = |key: &str, v: u64| {
        if v == 0 {
            diags.error(file, format!("$.websocket.{key}"), "must be greater than 0");
        }
    };
    positive("max_frame_bytes", raw.max_frame_bytes);
    positive("max_message_bytes", raw.max_message_bytes);
    positive("idle_timeout_seconds", raw.idle_timeout_seconds);
    positive("max_connection_seconds", raw.max_connection_seconds);
    positive("send_queue", raw.send_queue);
    WsLimits {
        max_frame_bytes: raw.max_frame_bytes as usize,
        max_message_bytes: raw.max_message_bytes as usize,
        idle_timeout: Duration::from_secs(raw.idle_timeout_seconds),
        max_duration: Duration::from_secs(raw.max_connection_seconds),
        send_queue: raw.send_queue.max(1) as usize,
        binary_frames: raw.binary_frames,
    }
}

/// A WebSocket API's authorizers by name. Each is a Lambda REQUEST
/// authorizer (the only kind API Gateway has for WebSocket APIs besides
/// `AWS_IAM`), not cached (API Gateway caches none for WebSocket APIs).
fn read_authorizers(
    file: &Path,
    jp: &str,
    raw: &[RawWsAuthorizer],
    lambda_functions: &[String],
    diags: &mut Diagnostics,
) -> HashMap<String, Arc<LambdaAuthorizer>> {
    let mut out: HashMap<String, Arc<LambdaAuthorizer>> = HashMap::new();
    for (i, a) in raw.iter().enumerate() {
        let ap = format!("{jp}.authorizers[{i}]");
        if a.name.is_empty() || out.contains_key(&a.name) {
            diags.error(
                file,
                format!("{ap}.name"),
                format!(
                    "`{}`: authorizer names must be unique and not empty",
                    a.name
                ),
            );
            continue;
        }
        let function = if a.uri.starts_with("arn:aws:lambda:") {
            Some(a.uri.clone())
        } else {
            super::security::function_arn(&a.uri)
        };
        let Some(function) = function.filter(|f| f.contains(":function:")) else {
            diags.error(
                file,
                format!("{ap}.uri"),
                format!("`{}` is neither a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME) nor an authorizerUri naming one", a.uri),
            );
            continue;
        };
        if !lambda_functions.contains(&function) {
            diags.warn(
                file,
                format!("{ap}.uri"),
                format!("function {function}: no endpoint for it in the config's [lambda_functions], so connections to the routes it authorizes are refused with 401 without the identity source and 500 with it"),
            );
        }
        let mut sources = Vec::new();
        for (j, src) in a.identity_source.iter().enumerate() {
            let named = |prefix: &str| src.strip_prefix(prefix).filter(|n| !n.is_empty());
            let parsed = if let Some(n) = named("route.request.header.") {
                Some(IdentitySource::Header(n.to_owned()))
            } else if let Some(n) = named("route.request.querystring.") {
                Some(IdentitySource::Query(n.to_owned()))
            } else if let Some(n) = named("stageVariables.") {
                Some(IdentitySource::StageVar(n.to_owned()))
            } else {
                named("context.").map(|n| IdentitySource::Context(n.to_owned()))
            };
            match parsed {
                Some(p) => sources.push(p),
                None => diags.error(
                    file,
                    format!("{ap}.identity_source[{j}]"),
                    format!("`{src}`: expected route.request.header.NAME, route.request.querystring.NAME, stageVariables.NAME or context.NAME"),
                ),
            }
        }
        out.insert(
            a.name.clone(),
            Arc::new(LambdaAuthorizer {
                name: a.name.clone(),
                request: true,
                sources,
                validation: None,
                ttl: Duration::ZERO,
                function: Some(function),
            }),
        );
    }
    out
}

/// A route's `authorization_type` and `authorizer`.
fn route_auth(
    file: &Path,
    rp: &str,
    r: &RawWsRoute,
    authorizers: &HashMap<String, Arc<LambdaAuthorizer>>,
    diags: &mut Diagnostics,
) -> Option<WsAuth> {
    let kind = r
        .authorization_type
        .as_deref()
        .unwrap_or("NONE")
        .to_ascii_uppercase();
    if kind != "NONE" && r.key != "$connect" {
        diags.error(
            file,
            format!("{rp}.authorization_type"),
            format!("`{kind}` on route `{}`: as in API Gateway, authorization is checked when a client connects, on the $connect route only", r.key),
        );
        return None;
    }
    if r.authorizer.is_some() && kind != "CUSTOM" {
        diags.error(
            file,
            format!("{rp}.authorizer"),
            "an authorizer needs authorization_type = \"CUSTOM\"",
        );
        return None;
    }
    match kind.as_str() {
        "NONE" => Some(WsAuth::None),
        "AWS_IAM" => Some(WsAuth::Iam),
        "CUSTOM" => {
            let Some(name) = &r.authorizer else {
                diags.error(
                    file,
                    format!("{rp}.authorizer"),
                    "authorization_type = \"CUSTOM\" needs an authorizer (the name of one of the API's authorizers)",
                );
                return None;
            };
            match authorizers.get(name) {
                Some(a) => Some(WsAuth::Lambda(a.clone())),
                None => {
                    diags.error(
                        file,
                        format!("{rp}.authorizer"),
                        format!("`{name}` is not one of the API's authorizers"),
                    );
                    None
                }
            }
        }
        other => {
            diags.error(
                file,
                format!("{rp}.authorization_type"),
                format!("unknown authorization type `{other}` (NONE, AWS_IAM or CUSTOM)"),
            );
            None
        }
    }
}

pub fn read_apis(
    file: &Path,
    raw: &[RawWsApi],
    rest_ids: &[String],
    lambda_functions: &[String],
    diags: &mut Diagnostics,
) -> Vec<WsApiSettings> {
    let mut out: Vec<WsApiSettings> = Vec::new();
    for (i, a) in raw.iter().enumerate() {
        let jp = format!("$.websocket_apis[{i}]");
        let errors_before = diags.errors.len();
        if a.id.is_empty() || !a.id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            diags.error(
                file,
                format!("{jp}.id"),
                format!("`{}` is not a valid API id", a.id),
            );
        }
        if rest_ids.contains(&a.id) || out.iter().any(|o| o.id == a.id) {
            diags.error(
                file,
                format!("{jp}.id"),
                format!("duplicate API id `{}`", a.id),
            );
        }
        let selection = match SelectionExpr::parse(&a.route_selection_expression) {
            Ok(s) => Some(s),
            Err(e) => {
                diags.error(file, format!("{jp}.route_selection_expression"), e);
                None
            }
        };
        let mut stages = Vec::new();
        for (j, s) in a.stages.iter().enumerate() {
            if !valid_stage_name(&s.name) {
                diags.error(
                    file,
                    format!("{jp}.stages[{j}].name"),
                    format!("`{}` is not a valid stage name", s.name),
                );
            }
            for (k, v) in &s.variables {
                if let Err(e) = check_stage_variable(k, v) {
                    diags.error(file, format!("{jp}.stages[{j}].variables.{k}"), e);
                }
            }
            stages.push((s.name.clone(), s.variables.clone()));
        }
        if stages.is_empty() {
            diags.error(
                file,
                format!("{jp}.stages"),
                "a WebSocket API needs at least one stage",
            );
        }
        let authorizers = read_authorizers(file, &jp, &a.authorizers, lambda_functions, diags);
        let mut routes: Vec<WsRouteSettings> = Vec::new();
        for (j, r) in a.routes.iter().enumerate() {
            let rp = format!("{jp}.routes[{j}]");
            if r.key.is_empty() || routes.iter().any(|x| x.key == r.key) {
                diags.error(
                    file,
                    format!("{rp}.key"),
                    format!("`{}`: route keys must be unique and not empty", r.key),
                );
                continue;
            }
            let Some(auth) = route_auth(file, &rp, r, &authorizers, diags) else {
                continue;
            };
            let kind = match r.integration.kind.to_ascii_lowercase().as_str() {
                "mock" => {
                    let status = match request_template(file, &rp, &r.integration.request_templates, diags) {
                        None => WsMockStatus::Fixed(200),
                        Some(t) => match t.static_output() {
                            None => WsMockStatus::Rendered(t),
                            Some(out) => WsMockStatus::Fixed(
                                crate::integration::parse_mock_status(out.as_bytes()).unwrap_or_else(|| {
                                    diags.warn(
                                        file,
                                        format!("{rp}.integration.request_templates"),
                                        "the request template names no statusCode from 200 to 599: the route answers 500",
                                    );
                                    500
                                }),
                            ),
                        },
                    };
                    WsRouteKind::Mock {
                        status,
                        response_template: response_template(
                            file,
                            &rp,
                            r.integration.response_template.as_deref(),
                            diags,
                        ),
                    }
                }
                "http" => {
                    let Some(uri) = &r.integration.uri else {
                        diags.error(
                            file,
                            format!("{rp}.integration.uri"),
                            "an http integration needs a uri",
                        );
                        continue;
                    };
                    let template = match parse_uri_template(uri) {
                        Ok(t) if !t.https => t,
                        Ok(_) => {
                            diags.error(
                                file,
                                format!("{rp}.integration.uri"),
                                "https:// backends are not supported yet",
                            );
                            continue;
                        }
                        Err(e) => {
                            diags.error(file, format!("{rp}.integration.uri"), e);
                            continue;
                        }
                    };
                    let timeout = r.integration.timeout_ms.unwrap_or(29_000);
                    if !(50..=29_000).contains(&timeout) {
                        diags.error(
                            file,
                            format!("{rp}.integration.timeout_ms"),
                            "must be from 50 to 29000",
                        );
                    }
                    let mut request_parameters = Vec::new();
                    for (k, v) in &r.integration.request_parameters {
                        let kp = format!("{rp}.integration.request_parameters.{k}");
                        let parsed = WsParamTarget::parse(k).and_then(|t| {
                            let s = WsParamSource::parse(v)?;
                            if s.needs_upgrade_request() && r.key != "$connect" {
                                return Err(format!(
                                    "`{v}`: the upgrade request's headers and query string are available to the $connect route only"
                                ));
                            }
                            Ok((t, s))
                        });
                        match parsed {
                            Ok(p) => request_parameters.push(p),
                            Err(e) => diags.error(file, &kp, e),
                        }
                    }
                    WsRouteKind::Http {
                        uri: uri.clone(),
                        template,
                        timeout: Duration::from_millis(timeout),
                        request_parameters,
                        request_template: request_template(
                            file,
                            &rp,
                            &r.integration.request_templates,
                            diags,
                        )
                        .map(WsTemplate::new),
                        response_template: response_template(
                            file,
                            &rp,
                            r.integration.response_template.as_deref(),
                            diags,
                        ),
                    }
                }
                other => {
                    diags.error(
                        file,
                        format!("{rp}.integration.type"),
                        format!("unknown integration type `{other}` (mock or http)"),
                    );
                    continue;
                }
            };
            routes.push(WsRouteSettings {
                key: r.key.clone(),
                route_response: r.route_response,
                kind,
                auth,
            });
        }
        if diags.errors.len() == errors_before {
            if let Some(selection) = selection {
                out.push(WsApiSettings {
                    id: a.id.clone(),
                    selection,
                    stages,
                    routes,
                });
            }
        }
    }
    out
}

/// Compiles the WebSocket APIs, binding HTTP routes per stage.
pub fn build(
    file: &Path,
    apis: &[WsApiSettings],
    upstream_hosts: &HashMap<String, String>,
    targets: &mut Vec<Target>,
    target_index: &mut HashMap<String, TargetId>,
    diags: &mut Diagnostics,
) -> Vec<WsApi> {
    apis.iter()
        .map(|a| {
            let stages = a
                .stages
                .iter()
                .map(|(name, variables)| {
                    let mut bindings = HashMap::new();
                    for r in &a.routes {
                        if let WsRouteKind::Http { template, .. } = &r.kind {
                            match bind_uri(template, variables, upstream_hosts, targets, target_index) {
                                Ok(b) => {
                                    bindings.insert(
                                        r.key.clone(),
                                        WsBinding {
                                            target: b.target,
                                            host_header: b.host_header,
                                            path: b.path,
                                        },
                                    );
                                }
                                Err(e) => diags.warn(
                                    file,
                                    format!("$.websocket_apis.{}", a.id),
                                    format!("stage `{name}`, route `{}`: {e}; the route answers with an error in this stage", r.key),
                                ),
                            }
                        }
                    }
                    WsStage {
                        name: name.clone(),
                        variables: variables.clone(),
                        bindings,
                    }
                })
                .collect();
            let routes = a
                .routes
                .iter()
                .map(|r| {
                    let integration = match &r.kind {
                        WsRouteKind::Mock {
                            status,
                            response_template,
                        } => WsIntegration::Mock {
                            status: status.clone(),
                            response_template: response_template.clone(),
                        },
                        WsRouteKind::Http {
                            uri,
                            timeout,
                            request_parameters,
                            request_template,
                            response_template,
                            ..
                        } => WsIntegration::Http {
                            uri: uri.clone(),
                            timeout: *timeout,
                            request_parameters: request_parameters.clone(),
                            request_template: request_template.clone(),
                            response_template: response_template.clone(),
                        },
                    };
                    (
                        r.key.clone(),
                        WsRoute {
                            key: r.key.clone(),
                            integration,
                            route_response: r.route_response,
                            auth: r.auth.clone(),
                        },
                    )
                })
                .collect();
            WsApi {
                id: a.id.clone(),
                selection: a.selection.clone(),
                stages,
                routes,
            }
        })
        .collect()
}
