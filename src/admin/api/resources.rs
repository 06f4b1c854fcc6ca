//! The read side of an API's resources and methods, as API Gateway reports
//! them: `get-resources`, `get-resource`, `get-method`, `get-integration`,
//! `get-method-response` and `get-integration-response`. Everything is
//! derived from the API's current definition (what the import, PUT or
//! PATCH left), so it always agrees with what the next deployment serves.
//!
//! A resource's id is derived from the API id and the resource's path, so
//! it stays the same across calls, restarts and updates that keep the path
//! (Terraform reads the root's id once, as `root_resource_id`, and keeps
//! it).

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::list_reply;
use crate::admin::state::RestApiRecord;
use crate::admin::Reply;
use crate::config::swagger::METHOD_KEYS;

/// A request validator's or authorizer's id: 6 characters from a hash of
/// the API id, the kind and its name (API Gateway's ids are 6 characters).
fn short_id(api_id: &str, kind: &str, name: &str) -> String {
    let mut id = resource_id(api_id, &format!("{kind}\0{name}"));
    id.truncate(6);
    id
}

fn validator_id(api_id: &str, name: &str) -> String {
    short_id(api_id, "validator", name)
}

fn authorizer_id(api_id: &str, name: &str) -> String {
    short_id(api_id, "authorizer", name)
}

/// A list call's page, or the one item with id `one` (404 in API
/// Gateway's words for `what` when there is none).
fn list_or_one(
    items: Vec<Value>,
    one: Option<&str>,
    param: &dyn Fn(&str) -> Option<String>,
    what: &str,
) -> Reply {
    match one {
        None => list_reply(items, param),
        Some(id) => match items.into_iter().find(|v| v["id"] == id) {
            Some(v) => Reply::json(200, &v),
            None => Reply::error(
                404,
                "NotFoundException",
                format!("Invalid {what} identifier specified {id}"),
            ),
        },
    }
}

/// `GET /restapis/{id}/requestvalidators` (paged) and
/// `GET .../requestvalidators/{validatorId}`: the definition's
/// `x-amazon-apigateway-request-validators`.
pub(super) fn validators(
    api: &RestApiRecord,
    one: Option<&str>,
    param: &dyn Fn(&str) -> Option<String>,
) -> Reply {
    let items: Vec<Value> = api
        .definition
        .get("x-amazon-apigateway-request-validators")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(name, v)| {
            let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
            json!({
                "id": validator_id(&api.id, name),
                "name": name,
                "validateRequestBody": flag("validateRequestBody"),
                "validateRequestParameters": flag("validateRequestParameters"),
            })
        })
        .collect();
    list_or_one(items, one, param, "Request Validator")
}

/// `GET /restapis/{id}/authorizers` (paged) and `GET
/// .../authorizers/{authorizerId}`: the Lambda and Cognito authorizers of
/// the definition's `securityDefinitions`, as API Gateway's
/// `get-authorizers` lists them.
pub(super) fn authorizers(
    api: &RestApiRecord,
    one: Option<&str>,
    param: &dyn Fn(&str) -> Option<String>,
) -> Reply {
    use crate::config::security::{classify, SchemeKind};
    let items: Vec<Value> = api
        .definition
        .get("securityDefinitions")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(_, d)| matches!(classify(d), SchemeKind::Custom | SchemeKind::Cognito))
        .map(|(name, d)| {
            let ext = d
                .get("x-amazon-apigateway-authorizer")
                .cloned()
                .unwrap_or_default();
            let kind = ext
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_ascii_uppercase();
            let identity = ext
                .get("identitySource")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| {
                    (kind != "REQUEST")
                        .then(|| d.get("name").and_then(Value::as_str))
                        .flatten()
                        .map(|h| format!("method.request.header.{h}"))
                });
            let mut v = json!({
                "id": authorizer_id(&api.id, name),
                "name": name,
                "type": kind,
            });
            if let Some(t) = d.get("x-amazon-apigateway-authtype") {
                v["authType"] = t.clone();
            }
            if let Some(i) = identity {
                v["identitySource"] = json!(i);
            }
            for key in [
                "providerARNs",
                "authorizerUri",
                "authorizerCredentials",
                "identityValidationExpression",
                "authorizerResultTtlInSeconds",
            ] {
                if let Some(x) = ext.get(key) {
                    v[key] = x.clone();
                }
            }
            if kind != "COGNITO_USER_POOLS" && ext.get("authorizerResultTtlInSeconds").is_none() {
                v["authorizerResultTtlInSeconds"] = json!(300);
            }
            v
        })
        .collect();
    list_or_one(items, one, param, "Authorizer")
}

/// A resource's id: 10 characters of `[a-z0-9]` from a hash of the API id
/// and the path.
pub(super) fn resource_id(api_id: &str, path: &str) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let digest = Sha256::new()
        .chain_update(api_id.as_bytes())
        .chain_update([0u8])
        .chain_update(path.as_bytes())
        .finalize();
    digest
        .iter()
        .take(10)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// One resource: its path and, when the definition has them, its path
/// item (operations by Swagger key).
struct Resource<'a> {
    path: String,
    item: Option<&'a Map<String, Value>>,
}

/// The API's resources: the root, every path of the definition and every
/// path between them (`/a/b` implies `/a`), in path order.
fn resources(api: &RestApiRecord) -> Vec<Resource<'_>> {
    let mut found: std::collections::BTreeMap<String, Option<&Map<String, Value>>> =
        std::collections::BTreeMap::new();
    found.insert("/".to_owned(), None);
    if let Some(paths) = api.definition.get("paths").and_then(Value::as_object) {
        for (key, item) in paths {
            let segments: Vec<&str> = key.split('/').filter(|s| !s.is_empty()).collect();
            for i in 1..segments.len() {
                found
                    .entry(format!("/{}", segments[..i].join("/")))
                    .or_insert(None);
            }
            let path = format!("/{}", segments.join("/"));
            // Two keys for one path (`/a` and `/a/`): the first with
            // operations wins, as the import's routing does.
            let slot = found.entry(path).or_insert(None);
            if slot.is_none() {
                *slot = item.as_object();
            }
        }
    }
    found
        .into_iter()
        .map(|(path, item)| Resource { path, item })
        .collect()
}

fn parent_path(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(i) => Some(&path[..i]),
        None => None,
    }
}

/// The resource's operations: (API Gateway method, Swagger operation).
/// One that names an authorizer without its `x-amazon-apigateway-authorizer`
/// is not created by the import, so it is not listed either.
fn operations<'a>(
    api: &'a RestApiRecord,
    item: Option<&'a Map<String, Value>>,
) -> Vec<(&'static str, &'a Value)> {
    use crate::config::security::{requirements, SchemeKind};
    let Some(item) = item else {
        return Vec::new();
    };
    let defs = api
        .definition
        .get("securityDefinitions")
        .and_then(Value::as_object);
    METHOD_KEYS
        .iter()
        .filter_map(|(key, method)| item.get(*key).map(|op| (*method, op)))
        .filter(|(_, op)| {
            !requirements(defs, op.get("security")).any(|(_, k)| k == SchemeKind::BrokenAuthorizer)
        })
        .collect()
}

fn resource_json(api: &RestApiRecord, r: &Resource<'_>, embed_methods: bool) -> Value {
    let mut v = json!({ "id": resource_id(&api.id, &r.path), "path": r.path });
    if let Some(parent) = parent_path(&r.path) {
        v["parentId"] = json!(resource_id(&api.id, parent));
        v["pathPart"] = json!(r.path.rsplit('/').next().unwrap_or(""));
    }
    let ops = operations(api, r.item);
    if !ops.is_empty() {
        let methods: Map<String, Value> = ops
            .into_iter()
            .map(|(m, op)| {
                let body = if embed_methods {
                    method_json(api, r, m, op)
                } else {
                    json!({})
                };
                (m.to_owned(), body)
            })
            .collect();
        v["resourceMethods"] = Value::Object(methods);
    }
    v
}

/// `$ref`s to `#/...` followed (parameters may be shared).
fn deref<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    match v
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => root.pointer(pointer).unwrap_or(v),
        None => v,
    }
}

/// The operation's `consumes` or `produces` (`key`), else the document's,
/// else `application/json`, as the import keys models by them.
fn media_types<'a>(root: &'a Value, op: &'a Value, key: &str) -> Vec<&'a str> {
    op.get(key)
        .or_else(|| root.get(key))
        .and_then(Value::as_array)
        .map(|c| c.iter().filter_map(Value::as_str).collect())
        .filter(|c: &Vec<&str>| !c.is_empty())
        .unwrap_or_else(|| vec!["application/json"])
}

/// The model name of a `#/definitions/Name` schema reference.
fn model_name(schema: Option<&Value>) -> Option<&str> {
    schema?
        .get("$ref")?
        .as_str()?
        .strip_prefix("#/definitions/")
}

fn security_type(api: &RestApiRecord, op: &Value) -> (String, bool, Option<String>) {
    use crate::config::security::{requirements, SchemeKind};
    let defs = api
        .definition
        .get("securityDefinitions")
        .and_then(Value::as_object);
    let mut authorization = "NONE".to_owned();
    let mut key_required = false;
    let mut authorizer = None;
    // The operation's own `security`, as the import reads it: what is
    // reported is what is enforced.
    if crate::config::security::legacy_iam(op.get("x-amazon-apigateway-auth")) {
        authorization = "AWS_IAM".to_owned();
    }
    for (name, kind) in requirements(defs, op.get("security")) {
        match kind {
            SchemeKind::Iam => {
                authorization = "AWS_IAM".to_owned();
                authorizer = None;
            }
            SchemeKind::Cognito => {
                authorization = "COGNITO_USER_POOLS".to_owned();
                authorizer = Some(authorizer_id(&api.id, name));
            }
            SchemeKind::Custom => {
                authorization = "CUSTOM".to_owned();
                authorizer = Some(authorizer_id(&api.id, name));
            }
            SchemeKind::ApiKey => key_required = true,
            SchemeKind::BrokenAuthorizer | SchemeKind::Other => {}
        }
    }
    (authorization, key_required, authorizer)
}

fn method_json(api: &RestApiRecord, r: &Resource<'_>, method: &str, op: &Value) -> Value {
    let root = &api.definition;
    let (authorization, key_required, authorizer) = security_type(api, op);
    let mut v = json!({
        "httpMethod": method,
        "authorizationType": authorization,
        "apiKeyRequired": key_required,
    });
    if let Some(a) = authorizer {
        v["authorizerId"] = json!(a);
    }
    if let Some(id) = op.get("operationId").and_then(Value::as_str) {
        v["operationName"] = json!(id);
    }
    // Parameters of the path item, then the operation's (which override
    // one of the same name and place).
    let mut params = Map::new();
    let mut models = Map::new();
    let shared = r.item.and_then(|i| i.get("parameters"));
    for p in [shared, op.get("parameters")]
        .into_iter()
        .flatten()
        .filter_map(Value::as_array)
        .flatten()
    {
        let p = deref(root, p);
        let name = p.get("name").and_then(Value::as_str).unwrap_or("");
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        match p.get("in").and_then(Value::as_str) {
            Some(place @ ("path" | "querystring" | "header")) => {
                params.insert(format!("method.request.{place}.{name}"), json!(required));
            }
            Some("query") => {
                params.insert(
                    format!("method.request.querystring.{name}"),
                    json!(required),
                );
            }
            Some("body") => {
                if let Some(model) = model_name(p.get("schema")) {
                    for t in media_types(root, op, "consumes") {
                        models.insert(t.to_owned(), json!(model));
                    }
                }
            }
            _ => {}
        }
    }
    if !params.is_empty() {
        v["requestParameters"] = Value::Object(params);
    }
    if !models.is_empty() {
        v["requestModels"] = Value::Object(models);
    }
    if let Some(validator) = op
        .get("x-amazon-apigateway-request-validator")
        .or_else(|| root.get("x-amazon-apigateway-request-validator"))
        .and_then(Value::as_str)
    {
        v["requestValidatorId"] = json!(validator_id(&api.id, validator));
    }
    let responses: Map<String, Value> = op
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(|(code, _)| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .map(|(code, resp)| (code.clone(), method_response_json(root, op, code, resp)))
        .collect();
    if !responses.is_empty() {
        v["methodResponses"] = Value::Object(responses);
    }
    if let Some(i) = integration_json(api, r, op) {
        v["methodIntegration"] = i;
    }
    v
}

fn method_response_json(root: &Value, op: &Value, code: &str, resp: &Value) -> Value {
    let resp = deref(root, resp);
    let mut v = json!({ "statusCode": code });
    if let Some(headers) = resp.get("headers").and_then(Value::as_object) {
        let params: Map<String, Value> = headers
            .keys()
            .map(|h| (format!("method.response.header.{h}"), json!(false)))
            .collect();
        if !params.is_empty() {
            v["responseParameters"] = Value::Object(params);
        }
    }
    if let Some(model) = model_name(resp.get("schema")) {
        v["responseModels"] = Value::Object(
            media_types(root, op, "produces")
                .into_iter()
                .map(|t| (t.to_owned(), json!(model)))
                .collect(),
        );
    }
    v
}

/// An upper-case enumeration value as API Gateway reports it (the
/// extension takes `http_proxy` or `HTTP_PROXY`).
fn upper(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_ascii_uppercase)
}

fn integration_json(api: &RestApiRecord, r: &Resource<'_>, op: &Value) -> Option<Value> {
    let x = op.get("x-amazon-apigateway-integration")?.as_object()?;
    let kind = upper(x.get("type")).unwrap_or_default();
    let mut v = json!({
        "type": kind,
        "passthroughBehavior": upper(x.get("passthroughBehavior")).unwrap_or_else(|| "WHEN_NO_MATCH".to_owned()),
        "timeoutInMillis": x.get("timeoutInMillis").and_then(Value::as_u64).unwrap_or(29_000),
        "cacheNamespace": x.get("cacheNamespace").and_then(Value::as_str).map(str::to_owned)
            .unwrap_or_else(|| resource_id(&api.id, &r.path)),
        "cacheKeyParameters": x.get("cacheKeyParameters").cloned().unwrap_or_else(|| json!([])),
    });
    if kind != "MOCK" {
        v["connectionType"] =
            json!(upper(x.get("connectionType")).unwrap_or_else(|| "INTERNET".to_owned()));
    }
    if let Some(m) = upper(x.get("httpMethod")) {
        v["httpMethod"] = json!(m);
    }
    for key in [
        "uri",
        "requestParameters",
        "requestTemplates",
        "contentHandling",
        "credentials",
        "connectionId",
        "tlsConfig",
    ] {
        if let Some(val) = x.get(key) {
            v[key] = val.clone();
        }
    }
    let responses: Map<String, Value> = x
        .get("responses")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(pattern, resp)| {
            let code = status_code(resp)?;
            Some((
                code.clone(),
                integration_response_json(pattern, &code, resp),
            ))
        })
        .collect();
    if !responses.is_empty() {
        v["integrationResponses"] = Value::Object(responses);
    }
    Some(v)
}

/// An integration response's `statusCode` (a string or a number).
fn status_code(resp: &Value) -> Option<String> {
    match resp.get("statusCode")? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn integration_response_json(pattern: &str, code: &str, resp: &Value) -> Value {
    let mut v = json!({ "statusCode": code });
    if pattern != "default" {
        v["selectionPattern"] = json!(pattern);
    }
    for key in ["responseParameters", "responseTemplates", "contentHandling"] {
        if let Some(val) = resp.get(key) {
            v[key] = val.clone();
        }
    }
    v
}

fn not_found_resource(rid: &str) -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        format!("Invalid Resource identifier specified {rid}"),
    )
}

fn not_found_method() -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        "Invalid Method identifier specified",
    )
}

fn find<'a>(api: &'a RestApiRecord, rid: &str) -> Option<Resource<'a>> {
    resources(api)
        .into_iter()
        .find(|r| resource_id(&api.id, &r.path) == rid)
}

/// `GET /restapis/{id}/resources` (`embed=methods` embeds each method).
pub(super) fn list(api: &RestApiRecord, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let embed = embeds_methods(param);
    let items = resources(api)
        .iter()
        .map(|r| resource_json(api, r, embed))
        .collect();
    list_reply(items, param)
}

fn embeds_methods(param: &dyn Fn(&str) -> Option<String>) -> bool {
    param("embed").is_some_and(|e| e.split(',').any(|x| x.trim() == "methods"))
}

/// `GET /restapis/{id}/resources/{rid}`.
pub(super) fn get(api: &RestApiRecord, rid: &str, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    match find(api, rid) {
        Some(r) => Reply::json(200, &resource_json(api, &r, embeds_methods(param))),
        None => not_found_resource(rid),
    }
}

/// What `GET .../resources/{rid}/methods/{method}[/...]` asks for.
#[derive(Clone, Copy)]
pub(super) enum MethodPart<'a> {
    Method,
    Integration,
    MethodResponse(&'a str),
    IntegrationResponse(&'a str),
}

/// `get-method`, `get-integration`, `get-method-response` and
/// `get-integration-response`.
pub(super) fn method_part(
    api: &RestApiRecord,
    rid: &str,
    method: &str,
    part: MethodPart<'_>,
) -> Reply {
    let Some(r) = find(api, rid) else {
        return not_found_resource(rid);
    };
    let Some((m, op)) = operations(api, r.item)
        .into_iter()
        .find(|(m, _)| m.eq_ignore_ascii_case(method))
    else {
        return not_found_method();
    };
    let mut v = method_json(api, &r, m, op);
    let found = match part {
        MethodPart::Method => Some(v),
        MethodPart::Integration => v.get_mut("methodIntegration").map(Value::take),
        MethodPart::MethodResponse(code) => v
            .get_mut("methodResponses")
            .and_then(|m| m.get_mut(code))
            .map(Value::take),
        MethodPart::IntegrationResponse(code) => v
            .get_mut("methodIntegration")
            .and_then(|i| i.get_mut("integrationResponses"))
            .and_then(|m| m.get_mut(code))
            .map(Value::take),
    };
    match (found, part) {
        (Some(v), _) => Reply::json(200, &v),
        (None, MethodPart::Integration) => Reply::error(
            404,
            "NotFoundException",
            "No integration defined for method",
        ),
        (None, _) => Reply::error(
            404,
            "NotFoundException",
            "Invalid Response status code specified",
        ),
    }
}

/// The root resource's id (`rootResourceId` of `get-rest-api`).
pub(super) fn root_id(api: &RestApiRecord) -> String {
    resource_id(&api.id, "/")
}
