//! Swagger 2.0 with `x-amazon-apigateway-*` extensions → an [`Api`]
//! without stages (stages are bound by `config::compile`).
//!
//! Walks the document as JSON so that every problem is reported with its
//! JSON path, and none stops the walk: one run lists them all.
//! Read first: [`compile_api`].

use std::path::Path;
use std::time::Duration;

use regex::Regex;
use serde_json::{Map, Value};

use super::Diagnostics;
use crate::gateway_response::{GatewayResponses, HeaderSource, ResponseDef, ResponseType};
use crate::http::request::Method;
use crate::router::{parse_path_template, RouteTrie, Segment};
use crate::snapshot::{
    method_slot, Api, Integration, IntegrationKind, IntegrationResponse, MethodDef, ParamSource,
    ParamTarget, Passthrough, Resource, ResponseParamSource,
};
use crate::template::{self, ContextVar};

/// An API compiled from its document, waiting for its stages.
#[derive(Debug)]
pub struct ApiDraft {
    pub api: Api,
    /// Per method (same index as `api.methods`): the integration URI, for
    /// stage binding.
    pub uris: Vec<Option<UriTemplate>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TplPart {
    Text(String),
    Param(String),
    StageVar(String),
}

/// An integration `uri` split into authority, path and query templates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UriTemplate {
    pub https: bool,
    /// `tlsConfig.insecureSkipVerification`: accept any certificate.
    pub insecure_skip_verification: bool,
    pub authority: Vec<TplPart>,
    pub path: Vec<TplPart>,
    pub query: Vec<TplPart>,
    /// The URI has a path after its authority (`http://${stageVariables.url}`
    /// has none: a path in the variable's value is the whole path).
    pub path_given: bool,
}

/// Swagger operation keys and the HTTP method API Gateway reports for each.
pub(crate) const METHOD_KEYS: [(&str, &str); 8] = [
    ("get", "GET"),
    ("head", "HEAD"),
    ("post", "POST"),
    ("put", "PUT"),
    ("delete", "DELETE"),
    ("patch", "PATCH"),
    ("options", "OPTIONS"),
    ("x-amazon-apigateway-any-method", "ANY"),
];

pub const DEFAULT_TIMEOUT_MS: u64 = 29_000;

/// Compiles one document. Returns `None` only when the document is not
/// usable at all; otherwise problems are in `diags` and the caller decides.
pub fn compile_api(
    id: &str,
    file: &Path,
    doc: &Value,
    diags: &mut Diagnostics,
) -> Option<ApiDraft> {
    let Some(root) = doc.as_object() else {
        diags.error(file, "$", "a Swagger document must be a JSON/YAML object");
        return None;
    };
    if root.contains_key("openapi") {
        diags.error(
            file,
            "$.openapi",
            "OpenAPI 3 documents are not supported: use Swagger 2.0 (\"swagger\": \"2.0\")",
        );
        return None;
    }
    match root.get("swagger") {
        Some(Value::String(v)) if v == "2.0" => {}
        // YAML's unquoted `swagger: 2.0` is a number.
        Some(Value::Number(n)) if n.as_f64() == Some(2.0) => diags.warn(
            file,
            "$.swagger",
            "the number 2.0, read as \"2.0\"; quote it (`swagger: \"2.0\"`) as the specification says",
        ),
        Some(other) => {
            diags.error(
                file,
                "$.swagger",
                format!("expected \"2.0\", found {other}"),
            );
        }
        None => diags.error(
            file,
            "$.swagger",
            "missing: a Swagger 2.0 document says \"swagger\": \"2.0\"",
        ),
    }
    let title = root
        .get("info")
        .and_then(|i| i.get("title"))
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_owned();

    let gateway_responses = compile_gateway_responses(file, root, diags);
    let binary_media_types = compile_binary_media_types(file, root, diags);
    let api_keys_from_header = compile_api_key_source(file, root, diags);
    let minimum_compression_size = compile_minimum_compression_size(file, root, diags);
    let policy = compile_policy(file, root, diags);
    let default_endpoint = endpoint_configuration(file, root, diags);
    let schemes = super::security::schemes(file, root, diags);
    check_model_names(file, root, diags);
    check_refs(file, doc, doc, "$", diags);
    let shared_params = root.get("parameters").and_then(Value::as_object);
    for (name, p) in shared_params.into_iter().flatten() {
        // A `$ref` entry is checked where it points (`check_refs`).
        if p.get("$ref").is_none() {
            check_param_shape(file, &format!("$.parameters.{name}"), p, diags);
        }
    }

    let mut trie = RouteTrie::new();
    let mut resources = Vec::new();
    let mut methods = Vec::new();
    let mut uris = Vec::new();

    match root.get("paths") {
        None => diags.warn(file, "$.paths", "no paths: the API has no resources"),
        Some(Value::Object(paths)) => {
            for (path, item) in paths {
                let jp = format!("$.paths.{path}");
                let segments = match parse_path_template(path) {
                    Ok(s) => s,
                    Err(e) => {
                        diags.error(file, &jp, e.to_string());
                        continue;
                    }
                };
                let Some(item) = item.as_object() else {
                    diags.error(file, &jp, "a path item must be an object");
                    continue;
                };
                let resource_id = resources.len() as u32;
                if let Err(e) = trie.insert(&segments, resource_id) {
                    diags.error(file, &jp, e.to_string());
                    continue;
                }
                let param_names: Vec<String> = segments
                    .iter()
                    .filter_map(|s| match s {
                        Segment::Param(n) | Segment::Greedy(n) => Some(n.clone()),
                        Segment::Literal(_) => None,
                    })
                    .collect();
                for (i, n) in param_names.iter().enumerate() {
                    if param_names[..i].contains(n) {
                        diags.warn(
                            file,
                            &jp,
                            format!("path parameter {{{n}}} appears twice: `method.request.path.{n}` is the last one's value"),
                        );
                    }
                }
                check_param_list(file, &jp, item, diags);
                let mut resource = Resource {
                    path: canonical_path(&segments),
                    param_names,
                    methods: [None; 7],
                    any: None,
                };
                for (key, op) in item {
                    let op_path = format!("{jp}.{key}");
                    let Some(&(_, http_method)) = METHOD_KEYS.iter().find(|(k, _)| k == key) else {
                        if key == "parameters" || key.starts_with("x-") {
                            continue;
                        }
                        if key == "$ref" {
                            diags.warn(file, &op_path, "path item $ref is not supported; ignored");
                        } else {
                            diags.warn(file, &op_path, "unknown path item key; ignored");
                        }
                        continue;
                    };
                    let Some(op) = op.as_object() else {
                        diags.error(file, &op_path, "an operation must be an object");
                        continue;
                    };
                    check_param_list(file, &op_path, op, diags);
                    let Some((auth, api_key_required)) =
                        super::security::method_auth(file, &op_path, op, &schemes, diags)
                    else {
                        continue;
                    };
                    let method_id = methods.len() as u32;
                    if http_method == "ANY" {
                        resource.any = Some(method_id);
                    } else if let Some(slot) = Method::parse(http_method).and_then(method_slot) {
                        resource.methods[slot] = Some(method_id);
                    }
                    let (integration, uri) = match op.get("x-amazon-apigateway-integration") {
                        Some(v) => {
                            let ip = format!("{op_path}.x-amazon-apigateway-integration");
                            match compile_integration(file, &ip, v, diags) {
                                Some((i, u)) => {
                                    check_method_responses(file, &ip, op, &i, diags);
                                    (Some(i), u)
                                }
                                None => (None, None),
                            }
                        }
                        None => {
                            diags.warn(
                                file,
                                &op_path,
                                "no x-amazon-apigateway-integration: this method answers 500 (API_CONFIGURATION_ERROR) from a config file; the admin API refuses to deploy it (\"No integration defined for method\"), as API Gateway does",
                            );
                            (None, None)
                        }
                    };
                    check_mapped_params(
                        file,
                        &op_path,
                        op,
                        item,
                        shared_params,
                        integration.as_ref(),
                        diags,
                    );
                    let validator = crate::validate::compile(doc, item, op, file, &op_path, diags);
                    methods.push(MethodDef {
                        http_method: http_method.to_owned(),
                        resource: resource_id,
                        integration,
                        api_key_required,
                        auth,
                        validator,
                    });
                    uris.push(uri);
                }
                resources.push(resource);
            }
        }
        Some(_) => diags.error(file, "$.paths", "must be an object"),
    }

    Some(ApiDraft {
        api: Api {
            id: id.to_owned(),
            deployment: None,
            title,
            source: file.to_path_buf(),
            trie,
            resources,
            methods,
            stages: Vec::new(),
            stage_index: crate::snapshot::FastMap::default(),
            gateway_responses,
            binary_media_types,
            api_keys_from_header,
            minimum_compression_size,
            policy,
            default_endpoint,
        },
        uris,
    })
}

/// Warns about every local `$ref` that points nowhere (API Gateway's import
/// warns too; `failonwarnings` turns it into a failure).
fn check_refs(file: &Path, root: &Value, v: &Value, jp: &str, diags: &mut Diagnostics) {
    check_refs_in(file, root, v, jp, "", diags);
}

/// Maps whose keys are names, not keywords: an `x-` key there is a name
/// (a property `x-request-id`), elsewhere a vendor extension.
const NAMED_MAPS: [&str; 8] = [
    "properties",
    "patternProperties",
    "definitions",
    "parameters",
    "responses",
    "headers",
    "securityDefinitions",
    "paths",
];

fn check_refs_in(
    file: &Path,
    root: &Value,
    v: &Value,
    jp: &str,
    parent: &str,
    diags: &mut Diagnostics,
) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let path = format!("{jp}.{k}");
                // A vendor extension's content is its own (Azure's
                // `x-ms-examples` holds `$ref`s to example files): API
                // Gateway does not resolve it, nor warn about it.
                if k.starts_with("x-") && !NAMED_MAPS.contains(&parent) {
                    continue;
                }
                if k == "$ref" {
                    if let Some(r) = child.as_str() {
                        let resolves = match r.strip_prefix('#') {
                            Some(pointer) => root.pointer(pointer).is_some(),
                            // External references cannot be followed here.
                            None => false,
                        };
                        if !resolves {
                            diags.warn(file, &path, format!("unresolvable $ref `{r}`"));
                        }
                    }
                } else {
                    check_refs_in(file, root, child, &path, k, diags);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                check_refs_in(file, root, child, &format!("{jp}[{i}]"), "", diags);
            }
        }
        _ => {}
    }
}

fn canonical_path(segments: &[Segment]) -> String {
    if segments.is_empty() {
        return "/".to_owned();
    }
    let mut s = String::new();
    for seg in segments {
        s.push('/');
        match seg {
            Segment::Literal(l) => s.push_str(l),
            Segment::Param(n) => {
                s.push('{');
                s.push_str(n);
                s.push('}');
            }
            Segment::Greedy(n) => {
                s.push('{');
                s.push_str(n);
                s.push_str("+}");
            }
        }
    }
    s
}

/// Warns when a mapping reads a method request parameter the operation does
/// not declare (API Gateway refuses such imports; we map it if present).
/// The `parameters` list of a path item or operation: each entry a
/// parameter object (or a `$ref`, checked where it points).
fn check_param_list(file: &Path, jp: &str, holder: &Map<String, Value>, diags: &mut Diagnostics) {
    let Some(list) = holder.get("parameters") else {
        return;
    };
    let Some(list) = list.as_array() else {
        diags.error(file, format!("{jp}.parameters"), "must be an array");
        return;
    };
    for (i, p) in list.iter().enumerate() {
        if p.get("$ref").is_none() {
            check_param_shape(file, &format!("{jp}.parameters[{i}]"), p, diags);
        }
    }
}

/// One Swagger 2.0 parameter object: `name` a string, `in` one of the five
/// locations, `required` a boolean. A mistyped field is reported rather
/// than read as absent (a `"required": "yes"` parameter would otherwise be
/// optional without a word).
fn check_param_shape(file: &Path, jp: &str, p: &Value, diags: &mut Diagnostics) {
    let Some(obj) = p.as_object() else {
        diags.error(file, jp, "a parameter must be an object");
        return;
    };
    match obj.get("name") {
        Some(Value::String(_)) => {}
        Some(other) => diags.error(
            file,
            format!("{jp}.name"),
            format!("must be a string, found {}", json_kind(other)),
        ),
        None => diags.error(file, format!("{jp}.name"), "missing: the parameter's name"),
    }
    const LOCATIONS: [&str; 5] = ["query", "header", "path", "formData", "body"];
    match obj.get("in") {
        Some(Value::String(l)) if LOCATIONS.contains(&l.as_str()) => {}
        Some(other) => diags.error(
            file,
            format!("{jp}.in"),
            format!(
                "must be one of query, header, path, formData, body; found {}",
                short_json(other)
            ),
        ),
        None => diags.error(
            file,
            format!("{jp}.in"),
            "missing: one of query, header, path, formData, body",
        ),
    }
    match obj.get("required") {
        None | Some(Value::Bool(_)) => {}
        Some(other) => diags.error(
            file,
            format!("{jp}.required"),
            format!("must be true or false, found {}", short_json(other)),
        ),
    }
}

/// The JSON type of a value, for messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as it appears in the document, cut short for messages.
fn short_json(v: &Value) -> String {
    crate::validate::cut(v.to_string(), 40)
}

fn check_mapped_params(
    file: &Path,
    op_path: &str,
    op: &Map<String, Value>,
    item: &Map<String, Value>,
    shared: Option<&Map<String, Value>>,
    integration: Option<&Integration>,
    diags: &mut Diagnostics,
) {
    let Some(integration) = integration else {
        return;
    };
    let mut declared: Vec<(String, String)> = Vec::new();
    for list in [item.get("parameters"), op.get("parameters")]
        .into_iter()
        .flatten()
    {
        for p in list.as_array().into_iter().flatten() {
            let p = match p.get("$ref").and_then(Value::as_str) {
                Some(r) => r
                    .strip_prefix("#/parameters/")
                    .and_then(|name| shared.and_then(|s| s.get(name)))
                    .unwrap_or(p),
                None => p,
            };
            if let (Some(name), Some(loc)) = (
                p.get("name").and_then(Value::as_str),
                p.get("in").and_then(Value::as_str),
            ) {
                declared.push((loc.to_owned(), name.to_owned()));
            }
        }
    }
    for (target, source) in &integration.request_parameters {
        let wanted = match source {
            ParamSource::Path(n) => ("path", n),
            ParamSource::Query(n) | ParamSource::MultiQuery(n) => ("query", n),
            ParamSource::Header(n) | ParamSource::MultiHeader(n) => ("header", n),
            _ => continue,
        };
        let found = declared.iter().any(|(loc, name)| {
            loc == wanted.0
                && if wanted.0 == "header" {
                    name.eq_ignore_ascii_case(wanted.1)
                } else {
                    name == wanted.1
                }
        });
        if !found {
            let target = match target {
                ParamTarget::Path(n) => format!("integration.request.path.{n}"),
                ParamTarget::Query(n) => format!("integration.request.querystring.{n}"),
                ParamTarget::Header(n) => format!("integration.request.header.{n}"),
            };
            diags.warn(
                file,
                format!("{op_path}.x-amazon-apigateway-integration.requestParameters.{target}"),
                format!(
                    "reads {} parameter `{}` that the operation does not declare in `parameters`",
                    wanted.0, wanted.1
                ),
            );
        }
    }
}

fn compile_integration(
    file: &Path,
    jp: &str,
    v: &Value,
    diags: &mut Diagnostics,
) -> Option<(Integration, Option<UriTemplate>)> {
    let Some(obj) = v.as_object() else {
        diags.error(file, jp, "must be an object");
        return None;
    };
    let errors_before = diags.errors.len();
    let type_str = match obj.get("type") {
        Some(Value::String(t)) => t.to_ascii_lowercase(),
        Some(other) => {
            diags.error(
                file,
                format!("{jp}.type"),
                format!(
                    "must be a string (one of http, http_proxy, mock, aws, aws_proxy), found {}",
                    short_json(other)
                ),
            );
            return None;
        }
        None => {
            diags.error(
                file,
                format!("{jp}.type"),
                "missing: one of http, http_proxy, mock, aws, aws_proxy",
            );
            return None;
        }
    };
    let mut kind = match type_str.as_str() {
        "http" => IntegrationKind::Http,
        "http_proxy" => IntegrationKind::HttpProxy,
        "mock" => IntegrationKind::Mock,
        "aws" | "aws_proxy" => {
            let why = format!(
                "integration type `{type_str}` calls AWS services (Lambda, S3, ...), which a self-hosted gateway cannot reach; this method answers 500 (API_CONFIGURATION_ERROR)"
            );
            diags.warn(file, format!("{jp}.type"), &why);
            IntegrationKind::Unsupported(why)
        }
        other => {
            diags.error(
                file,
                format!("{jp}.type"),
                format!("unknown integration type `{other}` (expected http, http_proxy, mock, aws or aws_proxy)"),
            );
            return None;
        }
    };

    let timeout_ms = match obj.get("timeoutInMillis") {
        None => DEFAULT_TIMEOUT_MS,
        Some(t) => match t.as_u64() {
            Some(ms) if (50..=29_000).contains(&ms) => ms,
            _ => {
                diags.error(
                    file,
                    format!("{jp}.timeoutInMillis"),
                    format!("must be an integer from 50 to 29000, found {t}"),
                );
                DEFAULT_TIMEOUT_MS
            }
        },
    };

    let calls_backend = matches!(kind, IntegrationKind::Http | IntegrationKind::HttpProxy);
    let http_method = match obj.get("httpMethod") {
        Some(Value::String(m)) if m.eq_ignore_ascii_case("ANY") => None,
        Some(Value::String(m)) => match Method::parse(m) {
            Some(m) => Some(m),
            None => {
                diags.error(
                    file,
                    format!("{jp}.httpMethod"),
                    format!("unknown method `{m}`"),
                );
                None
            }
        },
        Some(other) => {
            diags.error(
                file,
                format!("{jp}.httpMethod"),
                format!("must be a string, found {other}"),
            );
            None
        }
        None => {
            if calls_backend {
                diags.error(
                    file,
                    format!("{jp}.httpMethod"),
                    "missing: http and http_proxy integrations need the backend method (or ANY)",
                );
            }
            None
        }
    };

    let uri_text = obj.get("uri").and_then(Value::as_str).map(str::to_owned);
    let mut uri = None;
    if calls_backend {
        match &uri_text {
            None => diags.error(
                file,
                format!("{jp}.uri"),
                "missing: http and http_proxy integrations need the backend URL",
            ),
            Some(text) => match parse_uri_template(text) {
                Ok(mut t) => {
                    let skip = obj
                        .get("tlsConfig")
                        .and_then(|c| c.get("insecureSkipVerification"))
                        .and_then(Value::as_bool)
                        .unwrap_or(false);
                    if skip {
                        t.insecure_skip_verification = true;
                        diags.warn(
                            file,
                            format!("{jp}.tlsConfig.insecureSkipVerification"),
                            "backend certificates are NOT verified against a trusted root for this integration (only their name and dates): anyone between the gateway and the backend can present a certificate of their own and read and change its traffic",
                        );
                    }
                    uri = Some(t);
                }
                Err(e) => diags.error(file, format!("{jp}.uri"), e),
            },
        }
        if let Some(ct) = obj.get("connectionType").and_then(Value::as_str) {
            if ct.eq_ignore_ascii_case("VPC_LINK") {
                let why = "connectionType VPC_LINK needs an AWS VPC link; this method answers 500 (API_CONFIGURATION_ERROR)".to_owned();
                diags.warn(file, format!("{jp}.connectionType"), &why);
                kind = IntegrationKind::Unsupported(why);
            }
        }
    }

    let mut request_parameters = Vec::new();
    if let Some(params) = object_field(file, jp, obj, "requestParameters", diags) {
        for (k, v) in params {
            let kp = format!("{jp}.requestParameters.{k}");
            let target = match parse_request_target(k) {
                Ok(t) => t,
                Err(e) => {
                    diags.error(file, &kp, e);
                    continue;
                }
            };
            if let ParamTarget::Header(h) = &target {
                let lower = h.to_ascii_lowercase();
                if lower == "content-length" || lower == "transfer-encoding" {
                    // API Gateway fails every such request ("header
                    // already present", 500); a second framing header would
                    // desynchronise the backend connection.
                    diags.error(
                        file,
                        &kp,
                        format!("{h} cannot be mapped: the gateway frames the integration request itself"),
                    );
                    continue;
                }
                if !crate::integration::may_map_header(h.as_bytes()) && lower != "host" {
                    diags.warn(
                        file,
                        &kp,
                        format!("{h} is a connection header the gateway manages; the mapping is not sent"),
                    );
                }
            }
            let Some(src) = v.as_str() else {
                diags.error(file, &kp, "must be a string");
                continue;
            };
            match parse_request_source(src) {
                Ok(s) => {
                    if let ParamSource::Context(ContextVar::Unsupported(name)) = &s {
                        diags.warn(file, &kp, format!("context.{name} is not provided by this gateway; it maps to an empty value"));
                    }
                    request_parameters.push((target, s));
                }
                Err(e) => diags.error(file, &kp, e),
            }
        }
    }

    let mut request_templates = Vec::new();
    if let Some(t) = object_field(file, jp, obj, "requestTemplates", diags) {
        for (ct, text) in t {
            let tp = format!("{jp}.requestTemplates.{ct}");
            let source = match text {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => {
                    diags.error(file, &tp, "must be a string");
                    continue;
                }
            };
            if let Some(t) = compile_vtl(file, &tp, source, diags) {
                request_templates.push((ct.to_ascii_lowercase(), t));
            }
        }
    }

    let passthrough = match obj.get("passthroughBehavior").and_then(Value::as_str) {
        None => Passthrough::WhenNoMatch,
        Some(p) => match p.to_ascii_lowercase().as_str() {
            "when_no_match" => Passthrough::WhenNoMatch,
            "when_no_templates" => Passthrough::WhenNoTemplates,
            "never" => Passthrough::Never,
            other => {
                diags.error(
                    file,
                    format!("{jp}.passthroughBehavior"),
                    format!("unknown value `{other}` (expected when_no_match, when_no_templates or never)"),
                );
                Passthrough::WhenNoMatch
            }
        },
    };

    let mut responses = Vec::new();
    let mut default_response = None;
    // A `default` that is there but broken has its own error; the
    // "no default" warning would point at the wrong cause.
    let mut default_declared = false;
    if let Some(rs) = object_field(file, jp, obj, "responses", diags) {
        default_declared = rs.contains_key("default");
        for (pattern, r) in rs {
            let rp = format!("{jp}.responses.{pattern}");
            if let Some(resp) = compile_integration_response(file, &rp, pattern, r, diags) {
                if resp.pattern.is_none() {
                    default_response = Some(resp);
                } else {
                    responses.push(resp);
                }
            }
        }
    }
    if let Some(d) = default_response {
        responses.push(d);
    } else if !default_declared && matches!(kind, IntegrationKind::Http | IntegrationKind::Mock) {
        diags.warn(
            file,
            format!("{jp}.responses"),
            "no `default` response: a status that matches no selection pattern answers 500 (API_CONFIGURATION_ERROR)",
        );
    }
    let templates_declared = obj
        .get("requestTemplates")
        .is_some_and(|t| t.as_object().is_none_or(|m| !m.is_empty()));
    if kind == IntegrationKind::Mock && !templates_declared {
        diags.warn(
            file,
            format!("{jp}.requestTemplates"),
            "a MOCK integration takes its status from a request template such as {\"statusCode\": 200}; without one the client's body is used",
        );
    }

    if diags.errors.len() > errors_before {
        return None;
    }
    let mut cache_key_params = Vec::new();
    if let Some(list) = obj.get("cacheKeyParameters") {
        match list.as_array() {
            None => diags.error(file, format!("{jp}.cacheKeyParameters"), "must be an array"),
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = item.as_str().unwrap_or("");
                    let param = [
                        ("method.request.querystring.", 0),
                        ("method.request.header.", 1),
                        ("method.request.path.", 2),
                    ]
                    .iter()
                    .find_map(|(prefix, kind)| {
                        p.strip_prefix(prefix).map(|n| match kind {
                            0 => crate::cache::KeyParam::Query(n.to_owned()),
                            1 => crate::cache::KeyParam::Header(n.to_owned()),
                            _ => crate::cache::KeyParam::Path(n.to_owned()),
                        })
                    });
                    match param {
                        Some(p) if !p_name_empty(&p) => cache_key_params.push(p),
                        _ => diags.error(
                            file,
                            format!("{jp}.cacheKeyParameters[{i}]"),
                            "a cache key parameter is method.request.{querystring|header|path}.NAME",
                        ),
                    }
                }
            }
        }
    }
    Some((
        Integration {
            kind,
            http_method,
            uri: uri_text,
            request_parameters,
            mock_statuses: request_templates
                .iter()
                .map(|(_, t)| {
                    t.static_output()
                        .and_then(|text| crate::integration::parse_mock_status(text.as_bytes()))
                })
                .collect(),
            request_templates,
            passthrough,
            timeout: Duration::from_millis(timeout_ms),
            responses,
            cache_key_params,
            content_handling: content_handling(file, jp, obj, diags),
        },
        uri,
    ))
}

/// `contentHandling`: CONVERT_TO_TEXT, CONVERT_TO_BINARY or absent.
fn content_handling(
    file: &Path,
    jp: &str,
    obj: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> Option<crate::snapshot::ContentHandling> {
    match obj.get("contentHandling")? {
        Value::String(s) if s == "CONVERT_TO_TEXT" => {
            Some(crate::snapshot::ContentHandling::ConvertToText)
        }
        Value::String(s) if s == "CONVERT_TO_BINARY" => {
            Some(crate::snapshot::ContentHandling::ConvertToBinary)
        }
        Value::Null => None,
        other => {
            diags.error(
                file,
                format!("{jp}.contentHandling"),
                format!("`{other}`: expected CONVERT_TO_TEXT or CONVERT_TO_BINARY"),
            );
            None
        }
    }
}

/// An integration response's `statusCode` must name one of the
/// operation's `responses` (API Gateway refuses an integration response
/// without its method response); warned about, and served as is. An
/// operation without `responses` (or with `default`) is not checked.
fn check_method_responses(
    file: &Path,
    ip: &str,
    op: &serde_json::Map<String, Value>,
    integration: &Integration,
    diags: &mut Diagnostics,
) {
    let Some(declared) = op.get("responses").and_then(Value::as_object) else {
        return;
    };
    if declared.contains_key("default") {
        return;
    }
    for r in &integration.responses {
        let status = r.status.to_string();
        if !declared.contains_key(&status) {
            let key = if r.pattern.is_none() {
                "default"
            } else {
                r.pattern_text.as_str()
            };
            diags.warn(
                file,
                format!("{ip}.responses.{key}.statusCode"),
                format!("{status} is not among the operation's responses: API Gateway refuses an integration response without its method response (served as is here)"),
            );
        }
    }
}

/// `x-amazon-apigateway-api-key-source`: `HEADER` (the default; the
/// client's `x-api-key`) or `AUTHORIZER` (the `usageIdentifierKey` the
/// method's Lambda authorizer returns; a method without one presents no
/// key): true when keys come from the header.
fn compile_api_key_source(
    file: &Path,
    root: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> bool {
    let key = "x-amazon-apigateway-api-key-source";
    match root.get(key) {
        None => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("HEADER") => true,
        Some(Value::String(s)) if s.eq_ignore_ascii_case("AUTHORIZER") => {
            diags.warn(
                file,
                format!("$.{key}"),
                "AUTHORIZER: API keys come from the usageIdentifierKey of the method's Lambda authorizer (its function needs an endpoint in the config's [lambda_functions]); the x-api-key header is not used, and a method that requires a key but has no authorizer answers 403 Forbidden",
            );
            false
        }
        Some(other) => {
            diags.error(
                file,
                format!("$.{key}"),
                format!("must be HEADER or AUTHORIZER, found {other}"),
            );
            true
        }
    }
}

/// The largest `minimumCompressionSize` API Gateway takes (10 MB).
pub const MAX_MINIMUM_COMPRESSION_SIZE: u64 = 10_485_760;

/// `definitions` become API Gateway models, whose names are alphanumeric:
/// API Gateway refuses the import otherwise (`ResponseEntity«Void»`,
/// `Error-Response`). A warning in its words, not an error: Tollgate
/// serves such a document, and documents it served before (a config file,
/// an admin API's stored deployments) must not stop a restart.
fn check_model_names(file: &Path, root: &serde_json::Map<String, Value>, diags: &mut Diagnostics) {
    let Some(Value::Object(defs)) = root.get("definitions") else {
        return;
    };
    for name in defs.keys() {
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric()) {
            diags.warn(
                file,
                format!("$.definitions.{name}"),
                format!(
                    "Unable to create model for '{name}': Model name must be alphanumeric: {name} (API Gateway refuses this import)"
                ),
            );
        }
    }
}

/// `x-amazon-apigateway-policy`: the API's resource policy (an object, or
/// its JSON text). A policy it cannot read is an error: served without it,
/// the API would be open to whom the policy keeps out.
pub(super) fn compile_policy(
    file: &Path,
    root: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> Option<crate::resource_policy::ResourcePolicy> {
    let key = "x-amazon-apigateway-policy";
    match root.get(key)? {
        Value::Null => None,
        Value::String(s) if s.trim().is_empty() => None,
        doc => match crate::resource_policy::ResourcePolicy::parse(doc) {
            Ok((policy, warnings)) => {
                for (path, why) in warnings {
                    diags.warn(file, format!("$.{key}{path}"), why);
                }
                Some(policy)
            }
            Err((path, why)) => {
                diags.error(file, format!("$.{key}{path}"), why);
                None
            }
        },
    }
}

/// `x-amazon-apigateway-endpoint-configuration`: whether the API is served
/// on the default endpoint (`Host: {id}.execute-api.*`, `default_api`);
/// `disableExecuteApiEndpoint: true` leaves only its custom domains
/// (`[[domain_names]]`). A `PRIVATE` API (or `vpcEndpointIds`) is
/// reachable by every client of the listener: a warning.
fn endpoint_configuration(
    file: &Path,
    root: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> bool {
    let key = "x-amazon-apigateway-endpoint-configuration";
    let Some(conf) = root.get(key) else {
        return true;
    };
    let Some(conf) = conf.as_object() else {
        diags.error(file, format!("$.{key}"), "must be an object");
        return true;
    };
    for k in conf.keys() {
        if !matches!(
            k.as_str(),
            "types" | "vpcEndpointIds" | "disableExecuteApiEndpoint" | "ipAddressType"
        ) {
            diags.warn(
                file,
                format!("$.{key}.{k}"),
                "not a setting of an endpoint configuration (types, vpcEndpointIds, disableExecuteApiEndpoint, ipAddressType): ignored",
            );
        }
    }
    let default_endpoint = match conf.get("disableExecuteApiEndpoint") {
        None | Some(Value::Null) | Some(Value::Bool(false)) => true,
        Some(Value::Bool(true)) => false,
        Some(_) => {
            diags.error(
                file,
                format!("$.{key}.disableExecuteApiEndpoint"),
                "must be true or false",
            );
            true
        }
    };
    let private = conf
        .get("types")
        .and_then(Value::as_array)
        .is_some_and(|t| t.iter().any(|t| t.as_str() == Some("PRIVATE")))
        || conf
            .get("vpcEndpointIds")
            .and_then(Value::as_array)
            .is_some_and(|v| !v.is_empty());
    if private {
        diags.warn(
            file,
            format!("$.{key}"),
            "a PRIVATE API (VPC endpoints) is served to every client that reaches this gateway's listener: keep it on a private address, or restrict it with a resource policy on aws:SourceIp",
        );
    }
    default_endpoint
}

/// `x-amazon-apigateway-minimum-compression-size`: an integer from 0 to
/// 10485760 (bytes), as API Gateway's `minimumCompressionSize`.
fn compile_minimum_compression_size(
    file: &Path,
    root: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> Option<usize> {
    let key = "x-amazon-apigateway-minimum-compression-size";
    match root.get(key)? {
        Value::Null => None,
        Value::Number(n) => match n.as_u64() {
            Some(v) if v <= MAX_MINIMUM_COMPRESSION_SIZE => Some(v as usize),
            _ => {
                diags.error(
                    file,
                    format!("$.{key}"),
                    format!("Invalid minimum compression size `{n}`, must be between 0 and {MAX_MINIMUM_COMPRESSION_SIZE}"),
                );
                None
            }
        },
        _ => {
            diags.error(
                file,
                format!("$.{key}"),
                format!("Invalid minimum compression size, must be between 0 and {MAX_MINIMUM_COMPRESSION_SIZE} (an integer)"),
            );
            None
        }
    }
}

/// `x-amazon-apigateway-binary-media-types`: a list of media types.
fn compile_binary_media_types(
    file: &Path,
    root: &serde_json::Map<String, Value>,
    diags: &mut Diagnostics,
) -> crate::snapshot::BinaryMediaTypes {
    let key = "x-amazon-apigateway-binary-media-types";
    let mut out = Vec::new();
    match root.get(key) {
        None => {}
        Some(Value::Array(items)) => {
            for (i, v) in items.iter().enumerate() {
                // API Gateway's API escapes `/` as `~1`; exports may carry it.
                let normal = v
                    .as_str()
                    .map(|t| t.replace("~1", "/").trim().to_ascii_lowercase());
                match normal {
                    Some(t)
                        if t.split_once('/')
                            .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty()) =>
                    {
                        out.push(t)
                    }
                    _ => diags.error(
                        file,
                        format!("$.{key}[{i}]"),
                        "a binary media type is `type/subtype`, `type/*` or `*/*`",
                    ),
                }
            }
        }
        Some(_) => diags.error(file, format!("$.{key}"), "must be a list of media types"),
    }
    crate::snapshot::BinaryMediaTypes(out)
}

fn p_name_empty(p: &crate::cache::KeyParam) -> bool {
    match p {
        crate::cache::KeyParam::Query(n)
        | crate::cache::KeyParam::Header(n)
        | crate::cache::KeyParam::Path(n) => n.is_empty(),
    }
}

/// Compiles a mapping template; a syntax error is reported with the JSON
/// path of the template and the line and column inside it.
pub(super) fn compile_vtl(
    file: &Path,
    jp: &str,
    source: &str,
    diags: &mut Diagnostics,
) -> Option<std::sync::Arc<crate::vtl::Template>> {
    // API Gateway refuses templates over 300 KB.
    if source.len() > 300 * 1024 {
        diags.error(file, jp, "a mapping template is at most 300 KB");
        return None;
    }
    match crate::vtl::compile(source) {
        Ok(t) => Some(std::sync::Arc::new(t)),
        Err(e) => {
            diags.error(file, jp, format!("template error: {e}"));
            None
        }
    }
}

fn object_field<'a>(
    file: &Path,
    jp: &str,
    obj: &'a Map<String, Value>,
    key: &str,
    diags: &mut Diagnostics,
) -> Option<&'a Map<String, Value>> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m),
        Some(_) => {
            diags.error(file, format!("{jp}.{key}"), "must be an object");
            None
        }
    }
}

fn compile_integration_response(
    file: &Path,
    rp: &str,
    pattern: &str,
    r: &Value,
    diags: &mut Diagnostics,
) -> Option<IntegrationResponse> {
    let Some(obj) = r.as_object() else {
        diags.error(file, rp, "must be an object");
        return None;
    };
    let status = match parse_status(obj.get("statusCode")) {
        Ok(s) => s,
        Err(e) => {
            diags.error(file, format!("{rp}.statusCode"), e);
            return None;
        }
    };
    let compiled = if pattern == "default" {
        None
    } else {
        // Java's Pattern.matches(): the whole status must match.
        match Regex::new(&format!("^(?:{pattern})$")) {
            Ok(re) => Some(re),
            Err(e) => {
                diags.error(file, rp, format!("invalid selection pattern: {e}"));
                return None;
            }
        }
    };
    let mut headers = Vec::new();
    if let Some(params) = object_field(file, rp, obj, "responseParameters", diags) {
        for (k, v) in params {
            let kp = format!("{rp}.responseParameters.{k}");
            let Some(name) = k.strip_prefix("method.response.header.") else {
                diags.error(
                    file,
                    &kp,
                    "a response parameter must be method.response.header.NAME",
                );
                continue;
            };
            if !is_token(name) {
                diags.error(file, &kp, format!("`{name}` is not a valid header name"));
                continue;
            }
            let Some(src) = v.as_str() else {
                diags.error(file, &kp, "must be a string");
                continue;
            };
            match parse_response_source(src) {
                Ok(s) => headers.push((name.to_owned(), s)),
                Err(e) => diags.error(file, &kp, e),
            }
        }
    }
    let mut templates = Vec::new();
    if let Some(t) = object_field(file, rp, obj, "responseTemplates", diags) {
        for (ct, text) in t {
            let tp = format!("{rp}.responseTemplates.{ct}");
            let source = match text {
                Value::String(s) => s.as_str(),
                Value::Null => "",
                _ => {
                    diags.error(file, &tp, "must be a string");
                    continue;
                }
            };
            if let Some(t) = compile_vtl(file, &tp, source, diags) {
                templates.push((ct.to_ascii_lowercase(), t));
            }
        }
    }
    Some(IntegrationResponse {
        pattern: compiled,
        pattern_text: pattern.to_owned(),
        status,
        headers,
        templates,
        content_handling: content_handling(file, rp, obj, diags),
    })
}

fn parse_status(v: Option<&Value>) -> Result<u16, String> {
    let n = match v {
        Some(Value::String(s)) => s
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("`{s}` is not a status code"))?,
        Some(Value::Number(n)) => n
            .as_u64()
            .ok_or_else(|| format!("{n} is not a status code"))?,
        Some(other) => return Err(format!("{other} is not a status code")),
        None => return Err("missing".to_owned()),
    };
    // 1xx are interim responses: answering one as final would desync the
    // client, so API Gateway's 3-digit codes start at 200 here.
    if (200..=599).contains(&n) {
        Ok(n as u16)
    } else {
        Err(format!("{n} is not a final status code (200-599)"))
    }
}

fn compile_gateway_responses(
    file: &Path,
    root: &Map<String, Value>,
    diags: &mut Diagnostics,
) -> GatewayResponses {
    let mut out = GatewayResponses::default();
    let key = "x-amazon-apigateway-gateway-responses";
    let Some(v) = root.get(key) else {
        return out;
    };
    let Some(map) = v.as_object() else {
        diags.error(file, format!("$.{key}"), "must be an object");
        return out;
    };
    for (name, def) in map {
        let jp = format!("$.{key}.{name}");
        let Some(kind) = ResponseType::parse(name) else {
            diags.error(file, &jp, "unknown gateway response type");
            continue;
        };
        if !kind.customisable() {
            diags.warn(
                file,
                &jp,
                "REQUEST_TOO_LARGE cannot be customised (as in API Gateway); ignored",
            );
            continue;
        }
        let Some(obj) = def.as_object() else {
            diags.error(file, &jp, "must be an object");
            continue;
        };
        let status = match obj.get("statusCode") {
            None | Some(Value::Null) => None,
            s => match parse_status(s) {
                Ok(s) => Some(s),
                Err(e) => {
                    diags.error(file, format!("{jp}.statusCode"), e);
                    None
                }
            },
        };
        let mut headers = Vec::new();
        if let Some(params) = object_field(file, &jp, obj, "responseParameters", diags) {
            for (k, v) in params {
                let kp = format!("{jp}.responseParameters.{k}");
                let Some(src) = v.as_str() else {
                    diags.error(file, &kp, "must be a string");
                    continue;
                };
                let name = if let Some(n) = k.strip_prefix("gatewayresponse.header.") {
                    n
                } else if k.starts_with("gatewayresponse.path.")
                    || k.starts_with("gatewayresponse.querystring.")
                {
                    diags.warn(
                        file,
                        &kp,
                        "only gatewayresponse.header.* targets affect a response; ignored",
                    );
                    continue;
                } else {
                    diags.error(
                        file,
                        &kp,
                        "a gateway response parameter must be gatewayresponse.header.NAME",
                    );
                    continue;
                };
                if !is_token(name) {
                    diags.error(file, &kp, format!("`{name}` is not a valid header name"));
                    continue;
                }
                match parse_gateway_source(src) {
                    Ok(s) => headers.push((name.to_owned(), s)),
                    Err(e) => diags.error(file, &kp, e),
                }
            }
        }
        let mut templates = Vec::new();
        if let Some(t) = object_field(file, &jp, obj, "responseTemplates", diags) {
            for (ct, text) in t {
                match text.as_str() {
                    Some(s) => templates.push((ct.to_ascii_lowercase(), template::parse(s))),
                    None => diags.error(
                        file,
                        format!("{jp}.responseTemplates.{ct}"),
                        "must be a string",
                    ),
                }
            }
        }
        out.custom.insert(
            kind,
            ResponseDef {
                status,
                headers,
                templates,
            },
        );
    }
    out
}

/// RFC 9110 token characters, for header names.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(crate::http::is_tchar)
}

fn literal(s: &str) -> Option<&str> {
    s.strip_prefix('\'').and_then(|s| s.strip_suffix('\''))
}

/// The JSON path of a `method.request.body.a.b` / `integration.response.body.a.b`
/// source: dotted names, as API Gateway's mapping expressions
/// (`^[a-zA-Z0-9._$-]+$`); `list[1]` or `a['b']` is refused (it matched
/// nothing and mapped nothing, silently).
fn body_path(s: &str, p: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = p.split('.').map(str::to_owned).collect();
    let valid = |n: &String| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_$-".contains(&b))
    };
    if names.iter().all(valid) {
        Ok(names)
    } else {
        Err(format!(
            "invalid mapping expression `{s}`: a body path is dotted names (^[a-zA-Z0-9._$-]+$, as API Gateway); indexes and brackets are not supported"
        ))
    }
}

fn name_after<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    s.strip_prefix(prefix).filter(|n| !n.is_empty())
}

pub fn parse_request_target(k: &str) -> Result<ParamTarget, String> {
    let valid = |n: &str| {
        !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._$-".contains(&b))
    };
    let (t, n) = if let Some(n) = k.strip_prefix("integration.request.path.") {
        (ParamTarget::Path(n.to_owned()), n)
    } else if let Some(n) = k.strip_prefix("integration.request.querystring.") {
        (ParamTarget::Query(n.to_owned()), n)
    } else if let Some(n) = k.strip_prefix("integration.request.header.") {
        (ParamTarget::Header(n.to_owned()), n)
    } else {
        return Err(
            "a request parameter must be integration.request.{path|querystring|header}.NAME"
                .to_owned(),
        );
    };
    if !valid(n) {
        return Err(format!(
            "`{n}` is not a valid parameter name (^[a-zA-Z0-9._$-]+$)"
        ));
    }
    Ok(t)
}

pub fn parse_request_source(s: &str) -> Result<ParamSource, String> {
    if let Some(l) = literal(s) {
        return Ok(ParamSource::Literal(l.to_owned()));
    }
    let src = if let Some(n) = name_after(s, "method.request.path.") {
        ParamSource::Path(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.querystring.") {
        ParamSource::Query(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.multivaluequerystring.") {
        ParamSource::MultiQuery(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.header.") {
        ParamSource::Header(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.multivalueheader.") {
        ParamSource::MultiHeader(n.to_owned())
    } else if s == "method.request.body" {
        ParamSource::Body
    } else if let Some(p) = name_after(s, "method.request.body.") {
        ParamSource::BodyPath(body_path(s, p)?)
    } else if let Some(n) = name_after(s, "stageVariables.") {
        ParamSource::StageVar(n.to_owned())
    } else if let Some(n) = name_after(s, "context.") {
        ParamSource::Context(ContextVar::parse(n))
    } else {
        return Err(format!(
            "invalid mapping expression `{s}` (expected method.request.{{path|querystring|header|body}}..., stageVariables.X, context.X or a 'literal')"
        ));
    };
    Ok(src)
}

pub fn parse_response_source(s: &str) -> Result<ResponseParamSource, String> {
    if let Some(l) = literal(s) {
        return Ok(ResponseParamSource::Literal(l.to_owned()));
    }
    let src = if let Some(n) = name_after(s, "integration.response.header.") {
        ResponseParamSource::IntegrationHeader(n.to_owned())
    } else if let Some(n) = name_after(s, "integration.response.multivalueheader.") {
        ResponseParamSource::IntegrationMultiValueHeader(n.to_owned())
    } else if s == "integration.response.body" {
        ResponseParamSource::IntegrationBody
    } else if let Some(p) = name_after(s, "integration.response.body.") {
        ResponseParamSource::IntegrationBodyPath(body_path(s, p)?)
    } else if let Some(n) = name_after(s, "stageVariables.") {
        ResponseParamSource::StageVar(n.to_owned())
    } else if let Some(n) = name_after(s, "context.") {
        ResponseParamSource::Context(ContextVar::parse(n))
    } else {
        return Err(format!(
            "invalid mapping expression `{s}` (expected integration.response.{{header|body}}..., stageVariables.X, context.X or a 'literal')"
        ));
    };
    Ok(src)
}

fn parse_gateway_source(s: &str) -> Result<HeaderSource, String> {
    if let Some(l) = literal(s) {
        return Ok(HeaderSource::Literal(l.to_owned()));
    }
    let src = if let Some(n) = name_after(s, "method.request.header.") {
        HeaderSource::RequestHeader(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.querystring.") {
        HeaderSource::RequestQuery(n.to_owned())
    } else if let Some(n) = name_after(s, "method.request.path.") {
        HeaderSource::RequestPath(n.to_owned())
    } else if let Some(n) = name_after(s, "stageVariables.") {
        HeaderSource::StageVar(n.to_owned())
    } else if let Some(n) = name_after(s, "context.") {
        HeaderSource::Context(ContextVar::parse(n))
    } else {
        return Err(format!(
            "invalid mapping expression `{s}` (expected method.request.{{header|querystring|path}}.X, stageVariables.X, context.X or a 'literal')"
        ));
    };
    Ok(src)
}

/// Parses `http://${stageVariables.host}/pets/{petId}?a=b`.
pub fn parse_uri_template(uri: &str) -> Result<UriTemplate, String> {
    let lower = uri.get(..8).unwrap_or(uri).to_ascii_lowercase();
    let (https, rest) = if lower.starts_with("http://") {
        (false, &uri[7..])
    } else if lower.starts_with("https://") {
        (true, &uri[8..])
    } else {
        return Err(format!("`{uri}` is not an http:// or https:// URL"));
    };
    // Split at the first '/' or '?' outside a ${...} or {...}.
    let mut depth = 0usize;
    let mut auth_end = rest.len();
    let mut path_end = rest.len();
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '/' | '?' if depth == 0 && auth_end == rest.len() => {
                auth_end = i;
                if c == '?' {
                    path_end = i;
                    break;
                }
            }
            '?' if depth == 0 => {
                path_end = i;
                break;
            }
            _ => {}
        }
    }
    let authority = parse_parts(&rest[..auth_end])?;
    if authority.is_empty() {
        return Err(format!("`{uri}` has no host"));
    }
    if authority.iter().any(|p| matches!(p, TplPart::Param(_))) {
        return Err("path parameters cannot be used in the host of an integration URI".to_owned());
    }
    // A host written out (no stage variable) is checked now: an invalid
    // one is an error of the document, not a 500 in every stage.
    if let [TplPart::Text(a)] = authority.as_slice() {
        if a.contains('@') {
            return Err(format!(
                "`{a}`: an integration URI cannot carry user information (`user@`)"
            ));
        }
        match crate::config::compile::split_host_port(a) {
            Some((_, Some(0))) | None => {
                return Err(format!("`{a}` is not a valid host[:port]"));
            }
            Some(_) => {}
        }
    }
    let path_text = &rest[auth_end..path_end];
    let mut path = parse_parts(if path_text.is_empty() { "/" } else { path_text })?;
    if path.is_empty() {
        path.push(TplPart::Text("/".to_owned()));
    }
    let query = if path_end < rest.len() {
        parse_parts(&rest[path_end + 1..])?
    } else {
        Vec::new()
    };
    if uri.contains('#') {
        return Err("an integration URI cannot have a fragment".to_owned());
    }
    Ok(UriTemplate {
        https,
        insecure_skip_verification: false,
        authority,
        path,
        query,
        path_given: !path_text.is_empty(),
    })
}

fn parse_parts(s: &str) -> Result<Vec<TplPart>, String> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed `${{` in `{s}`"))?;
            let name = &after[..end];
            let var = name
                .strip_prefix("stageVariables.")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                .ok_or_else(|| format!("`${{{name}}}`: only ${{stageVariables.NAME}} is allowed in an integration URI"))?;
            if !text.is_empty() {
                out.push(TplPart::Text(std::mem::take(&mut text)));
            }
            out.push(TplPart::StageVar(var.to_owned()));
            rest = &after[end + 1..];
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unclosed `{{` in `{s}`"))?;
            let name = after[..end].trim_end_matches('+');
            if name.is_empty() {
                return Err(format!("empty parameter `{{}}` in `{s}`"));
            }
            if !text.is_empty() {
                out.push(TplPart::Text(std::mem::take(&mut text)));
            }
            out.push(TplPart::Param(name.to_owned()));
            rest = &after[end + 1..];
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            if c.is_whitespace() || c.is_control() {
                return Err(format!("whitespace or control character in `{s}`"));
            }
            text.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    if !text.is_empty() {
        out.push(TplPart::Text(text));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_media_types_are_checked_as_stored() {
        let root = serde_json::json!({
            "x-amazon-apigateway-binary-media-types": [" Image~1PNG ", "  /png", "*/*"]
        });
        let mut diags = Diagnostics::default();
        let types =
            compile_binary_media_types(Path::new("a.json"), root.as_object().unwrap(), &mut diags);
        assert_eq!(types.0, vec!["image/png".to_owned(), "*/*".to_owned()]);
        assert_eq!(diags.errors.len(), 1, "{:?}", diags.errors);
    }

    #[test]
    fn api_key_source_is_header_or_authorizer() {
        let source = |v: serde_json::Value| {
            let root = serde_json::json!({ "x-amazon-apigateway-api-key-source": v });
            let mut diags = Diagnostics::default();
            let header =
                compile_api_key_source(Path::new("a.json"), root.as_object().unwrap(), &mut diags);
            (header, diags)
        };
        let (header, diags) = source("HEADER".into());
        assert!(header && diags.errors.is_empty() && diags.warnings.is_empty());
        let (header, diags) = source("AUTHORIZER".into());
        assert!(!header && diags.errors.is_empty());
        assert!(
            diags.warnings[0].message.contains("403"),
            "{:?}",
            diags.warnings
        );
        for bad in [serde_json::json!("BOGUS"), serde_json::json!(1)] {
            let (_, diags) = source(bad.clone());
            assert_eq!(diags.errors.len(), 1, "{bad}");
            assert_eq!(diags.errors[0].path, "$.x-amazon-apigateway-api-key-source");
        }
        let (header, diags) = source(serde_json::Value::Null);
        assert!(header);
        assert_eq!(diags.errors.len(), 1);
    }

    #[test]
    fn uri_templates() {
        let t = parse_uri_template(
            "http://${stageVariables.backend}/pets/{petId}?a=1&b=${stageVariables.b}",
        )
        .unwrap();
        assert!(!t.https);
        assert_eq!(t.authority, vec![TplPart::StageVar("backend".into())]);
        assert_eq!(
            t.path,
            vec![
                TplPart::Text("/pets/".into()),
                TplPart::Param("petId".into())
            ]
        );
        assert_eq!(
            t.query,
            vec![
                TplPart::Text("a=1&b=".into()),
                TplPart::StageVar("b".into())
            ]
        );
        let t = parse_uri_template("HTTP://example.com").unwrap();
        assert_eq!(t.path, vec![TplPart::Text("/".into())]);
        let t = parse_uri_template("http://h:8080/{proxy+}").unwrap();
        assert_eq!(
            t.path,
            vec![TplPart::Text("/".into()), TplPart::Param("proxy".into())]
        );
        assert!(parse_uri_template("https://h/x").unwrap().https);
        for bad in [
            "ftp://x",
            "http://",
            "http://{id}.example/x",
            "http://h/${context.x}",
            "http://h/a b",
            "http://h/{",
            "arn:aws:apigateway:us-east-1:lambda:path/x",
            // A host written out is checked at load.
            "http://127.0.0.1:99999/x",
            "http://127.0.0.1:/x",
            "http://:80/x",
            "http://127.0.0.1:80x/x",
            "http://user:pw@127.0.0.1:1/x",
            "http://127.0.0.1:0/x",
            "http://[::1/x",
        ] {
            assert!(parse_uri_template(bad).is_err(), "{bad}");
        }
        for good in [
            "http://[::1]:8080/x",
            "https://h.example/x",
            "http://${stageVariables.u}/x",
            "http://${stageVariables.h}:8080/x",
            "http://api_v2.internal:1/x",
        ] {
            assert!(parse_uri_template(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn mapping_expressions() {
        assert_eq!(
            parse_request_source("'a b'"),
            Ok(ParamSource::Literal("a b".into()))
        );
        assert_eq!(
            parse_request_source("method.request.path.id"),
            Ok(ParamSource::Path("id".into()))
        );
        assert_eq!(
            parse_request_source("method.request.body.a.b"),
            Ok(ParamSource::BodyPath(vec!["a".into(), "b".into()]))
        );
        assert_eq!(
            parse_request_source("context.requestId"),
            Ok(ParamSource::Context(ContextVar::RequestId))
        );
        assert!(parse_request_source("method.request.path.").is_err());
        assert!(parse_request_source("method.response.header.x").is_err());
        for bad in [
            "method.request.body.list[1]",
            "method.request.body.a['b']",
            "method.request.body.a..b",
        ] {
            let e = parse_request_source(bad).unwrap_err();
            assert!(e.contains("dotted names"), "{bad}: {e}");
        }
        assert!(parse_response_source("integration.response.body.list[0]").is_err());
        assert_eq!(
            parse_response_source("integration.response.body.a.$b-c_d"),
            Ok(ResponseParamSource::IntegrationBodyPath(vec![
                "a".into(),
                "$b-c_d".into()
            ]))
        );
        assert_eq!(
            parse_request_target("integration.request.header.X-A"),
            Ok(ParamTarget::Header("X-A".into()))
        );
        assert!(parse_request_target("integration.request.body.x").is_err());
        assert!(parse_request_target("integration.request.header.a b").is_err());
        assert_eq!(
            parse_response_source("integration.response.header.ETag"),
            Ok(ResponseParamSource::IntegrationHeader("ETag".into()))
        );
    }

    fn compile(doc: &str) -> (Option<ApiDraft>, Diagnostics) {
        let mut d = Diagnostics::default();
        let v: Value = serde_json::from_str(doc).unwrap();
        let draft = compile_api("t", Path::new("t.json"), &v, &mut d);
        (draft, d)
    }

    #[test]
    fn every_error_is_reported_with_its_path() {
        let (_, d) = compile(
            r#"{
          "swagger": "2.0",
          "paths": {
            "/a": {"get": {"x-amazon-apigateway-integration": {"type": "http", "uri": "ftp://x", "httpMethod": "GET", "timeoutInMillis": 30000}}},
            "/b/{x}{y}": {},
            "/c": {"post": {"x-amazon-apigateway-integration": {"type": "wat"}}},
            "/d": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "responses": {"(": {"statusCode": "200"}, "default": {"statusCode": "abc"}}}}}
          },
          "x-amazon-apigateway-gateway-responses": {"NOPE": {}}
        }"#,
        );
        let paths: Vec<&str> = d.errors.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "$.x-amazon-apigateway-gateway-responses.NOPE",
                "$.paths./a.get.x-amazon-apigateway-integration.timeoutInMillis",
                "$.paths./a.get.x-amazon-apigateway-integration.uri",
                "$.paths./b/{x}{y}",
                "$.paths./c.post.x-amazon-apigateway-integration.type",
                "$.paths./d.get.x-amazon-apigateway-integration.responses.(",
                "$.paths./d.get.x-amazon-apigateway-integration.responses.default.statusCode",
            ],
            "{:#?}",
            d.errors
        );
    }

    #[test]
    fn a_path_parameter_named_twice_is_warned_about() {
        let (_, d) = compile(
            r#"{"swagger": "2.0", "paths": {"/a/{x}/{x}": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{}"}, "responses": {"default": {"statusCode": "200"}}}}}}}"#,
        );
        assert!(d.errors.is_empty(), "{:#?}", d.errors);
        assert_eq!(d.warnings.len(), 1, "{:#?}", d.warnings);
        assert_eq!(d.warnings[0].path, "$.paths./a/{x}/{x}");
        assert!(d.warnings[0].message.contains("{x} appears twice"));
    }

    #[test]
    fn a_broken_default_or_template_gets_its_error_and_no_misleading_warning() {
        let (_, d) = compile(
            r##"{"swagger": "2.0", "paths": {
            "/a": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "#if($x"}, "responses": {"default": {"statusCode": "abc"}}}}},
            "/b": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": "x", "responses": {"default": {"statusCode": "200"}}}}}
          }}"##,
        );
        assert_eq!(d.errors.len(), 3, "{:#?}", d.errors);
        assert!(d.warnings.is_empty(), "{:#?}", d.warnings);
        // Really absent, they are warned about.
        let (_, d) = compile(
            r#"{"swagger": "2.0", "paths": {
            "/c": {"get": {"x-amazon-apigateway-integration": {"type": "mock", "responses": {}}}}
          }}"#,
        );
        let warned: Vec<&str> = d.warnings.iter().map(|w| w.path.as_str()).collect();
        assert_eq!(
            warned,
            vec![
                "$.paths./c.get.x-amazon-apigateway-integration.responses",
                "$.paths./c.get.x-amazon-apigateway-integration.requestTemplates"
            ]
        );
    }

    #[test]
    fn aws_integrations_compile_to_unsupported_with_a_warning() {
        let (draft, d) = compile(
            r#"{"swagger": "2.0", "paths": {"/l": {"post": {"x-amazon-apigateway-integration": {"type": "AWS_PROXY", "httpMethod": "POST", "uri": "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/f/invocations"}}}}}"#,
        );
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
        let api = draft.unwrap().api;
        assert!(matches!(
            api.methods[0].integration.as_ref().unwrap().kind,
            IntegrationKind::Unsupported(_)
        ));
    }

    #[test]
    fn unresolvable_refs_are_warnings() {
        let (_, d) = compile(
            r##"{"swagger": "2.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/parameters/nope"}], "responses": {"200": {"schema": {"$ref": "#/definitions/Pet"}}}, "x-amazon-apigateway-integration": {"type": "mock", "requestTemplates": {"application/json": "{}"}, "responses": {"default": {"statusCode": "200"}}}}}}, "definitions": {"Pet": {"type": "object"}}}"##,
        );
        assert!(d.errors.is_empty());
        let refs: Vec<&str> = d
            .warnings
            .iter()
            .filter(|w| w.message.contains("$ref"))
            .map(|w| w.path.as_str())
            .collect();
        assert_eq!(refs, vec!["$.paths./a.get.parameters[0].$ref"]);
    }

    /// Real-world documents: `$ref`s inside vendor extensions (Azure's
    /// `x-ms-examples`) are not API Gateway's to resolve, but a property
    /// named `x-…` is a schema; a root parameter may be a `$ref`; YAML's
    /// unquoted `swagger: 2.0` is read as "2.0", with a warning.
    #[test]
    fn refs_in_extensions_root_parameter_refs_and_a_numeric_version() {
        let (draft, d) = compile(
            r##"{"swagger": 2.0,
                "parameters": {"Limit": {"$ref": "#/parameters/LimitBase"}, "LimitBase": {"name": "limit", "in": "query", "type": "integer"}},
                "paths": {"/a": {"get": {"x-ms-examples": {"one": {"$ref": "./examples/one.json"}},
                    "responses": {"200": {"schema": {"type": "object", "properties": {"x-id": {"$ref": "#/definitions/Gone"}}}}}}}}}"##,
        );
        assert!(draft.is_some());
        assert!(d.errors.is_empty(), "{:?}", d.errors);
        let warned: Vec<&str> = d.warnings.iter().map(|w| w.path.as_str()).collect();
        assert!(warned.contains(&"$.swagger"), "{warned:?}");
        assert!(
            warned.contains(&"$.paths./a.get.responses.200.schema.properties.x-id.$ref"),
            "{warned:?}"
        );
        assert!(
            !warned
                .iter()
                .any(|w| w.contains("x-ms-examples") || w.starts_with("$.parameters")),
            "{warned:?}"
        );
        let (_, d) = compile(r#"{"swagger": 3, "paths": {}}"#);
        assert_eq!(d.errors[0].path, "$.swagger");
    }

    #[test]
    fn openapi3_is_refused() {
        let (draft, d) = compile(r#"{"openapi": "3.0.0", "paths": {}}"#);
        assert!(draft.is_none());
        assert_eq!(d.errors[0].path, "$.openapi");
    }
}
