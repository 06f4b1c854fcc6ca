//! The management operations: import, update (overwrite/merge), delete,
//! deployments, stages, exports; API keys and usage plans in `keys.rs`.
//! Each mutation follows one order:
//! compute the new state → build the snapshot it implies (any error: 400,
//! nothing changed) → write it durably → publish to every shard →
//! acknowledge.

mod keys;
mod resources;
mod rest_api;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use super::state::{AdminState, DeploymentRecord, RestApiRecord, StageRecord};
use super::{Admin, Reply, MAX_DOCUMENT_BYTES};
use crate::config::{check_stage_variable, parse_document, swagger, valid_stage_name, Diagnostics};
use crate::control::Prepared;
use crate::http::query;
use crate::http::request::RequestHead;

pub(super) fn route(
    admin: &Admin,
    state: &mut AdminState,
    head: &RequestHead,
    body: &[u8],
) -> Reply {
    let path = String::from_utf8_lossy(head.path()).into_owned();
    let segments: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .map(|s| query::decode_path(s.as_bytes()).into_owned())
        .collect();
    let q = head.query().unwrap_or_default();
    let param = |name: &str| query::last_value(q, name);
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = head.method_bytes();
    match (method, seg.as_slice()) {
        (b"GET", ["restapis"]) => list_apis(state, &param),
        (b"POST", ["restapis"]) => {
            if param("mode").as_deref() == Some("import") {
                import(
                    admin,
                    state,
                    body,
                    param("basepath").as_deref(),
                    flag(param("failonwarnings")),
                )
            } else {
                rest_api::create(admin, state, body)
            }
        }
        (b"GET", ["restapis", id]) => match state.apis.get(*id) {
            Some(api) => Reply::json(200, &api_json(api)),
            None => not_found_api(id),
        },
        (b"PATCH", ["restapis", id]) => rest_api::patch(admin, state, id, body),
        (b"PUT", ["restapis", id]) => put(
            admin,
            state,
            id,
            body,
            param("mode").as_deref().unwrap_or("merge"),
            param("basepath").as_deref(),
            flag(param("failonwarnings")),
        ),
        (b"DELETE", ["restapis", id]) => delete_api(admin, state, id),
        (b"GET", ["restapis", id, "deployments"]) => {
            if !state.apis.contains_key(*id) {
                return not_found_api(id);
            }
            let items: Vec<Value> = state
                .deployments
                .get(*id)
                .map(|d| d.values().map(deployment_json).collect())
                .unwrap_or_default();
            list_reply(items, &param)
        }
        (b"GET", ["restapis", id, "resources", rest @ ..]) => {
            let Some(api) = state.apis.get(*id) else {
                return not_found_api(id);
            };
            use resources::MethodPart;
            match rest {
                [] => resources::list(api, &param),
                [rid] => resources::get(api, rid, &param),
                [rid, "methods", m] => resources::method_part(api, rid, m, MethodPart::Method),
                [rid, "methods", m, "integration"] => {
                    resources::method_part(api, rid, m, MethodPart::Integration)
                }
                [rid, "methods", m, "responses", code] => {
                    resources::method_part(api, rid, m, MethodPart::MethodResponse(code))
                }
                [rid, "methods", m, "integration", "responses", code] => {
                    resources::method_part(api, rid, m, MethodPart::IntegrationResponse(code))
                }
                _ => no_such_operation(method, &path),
            }
        }
        (b"GET", ["restapis", id, "authorizers", rest @ ..]) if rest.len() <= 1 => {
            match state.apis.get(*id) {
                Some(api) => resources::authorizers(api, rest.first().copied(), &param),
                None => not_found_api(id),
            }
        }
        (b"GET", ["restapis", id, "requestvalidators", rest @ ..]) if rest.len() <= 1 => {
            match state.apis.get(*id) {
                Some(api) => resources::validators(api, rest.first().copied(), &param),
                None => not_found_api(id),
            }
        }
        (b"POST", ["restapis", id, "deployments"]) => create_deployment(admin, state, id, body),
        (b"GET", ["restapis", id, "deployments", dep]) => match state.deployment(id, dep) {
            Some(d) => Reply::json(200, &deployment_json(d)),
            None => not_found_deployment(),
        },
        (b"DELETE", ["restapis", id, "deployments", dep]) => {
            delete_deployment(admin, state, id, dep)
        }
        (b"GET", ["restapis", id, "stages"]) => {
            if !state.apis.contains_key(*id) {
                return not_found_api(id);
            }
            // `deploymentId`: only the stages that serve it.
            let deployment = param("deploymentId");
            let items: Vec<Value> = state
                .stages
                .get(*id)
                .map(|s| {
                    s.values()
                        .filter(|s| deployment.as_ref().is_none_or(|d| &s.deployment_id == d))
                        .map(stage_json)
                        .collect()
                })
                .unwrap_or_default();
            Reply::json(200, &json!({ "item": items }))
        }
        (b"POST", ["restapis", id, "stages"]) => create_stage(admin, state, id, body),
        (b"GET", ["restapis", id, "stages", name]) => {
            match state.stages.get(*id).and_then(|s| s.get(*name)) {
                Some(s) => Reply::json(200, &stage_json(s)),
                None => not_found_stage(),
            }
        }
        (b"PATCH", ["restapis", id, "stages", name]) => patch_stage(admin, state, id, name, body),
        (b"DELETE", ["restapis", id, "stages", name]) => delete_stage(admin, state, id, name),
        (b"DELETE", ["restapis", id, "stages", name, "cache", "data"]) => {
            flush_cache(admin, id, name)
        }
        (b"GET", ["apikeys"]) => keys::list_keys(state, &param),
        (b"POST", ["apikeys"]) => keys::create_key(admin, state, body),
        (b"GET", ["apikeys", id]) => keys::get_key(state, id, flag(param("includeValue"))),
        (b"PATCH", ["apikeys", id]) => keys::patch_key(admin, state, id, body),
        (b"DELETE", ["apikeys", id]) => keys::delete_key(admin, state, id),
        (b"GET", ["usageplans"]) => keys::list_plans(state, &param),
        (b"POST", ["usageplans"]) => keys::create_plan(admin, state, body),
        (b"GET", ["usageplans", id]) => keys::get_plan(state, id),
        (b"PATCH", ["usageplans", id]) => keys::patch_plan(admin, state, id, body),
        (b"DELETE", ["usageplans", id]) => keys::delete_plan(admin, state, id),
        (b"GET", ["usageplans", id, "keys"]) => keys::list_plan_keys(state, id, &param),
        (b"POST", ["usageplans", id, "keys"]) => keys::create_plan_key(admin, state, id, body),
        (b"GET", ["usageplans", id, "keys", key]) => keys::get_plan_key(state, id, key),
        (b"DELETE", ["usageplans", id, "keys", key]) => {
            keys::delete_plan_key(admin, state, id, key)
        }
        (m, [stage, "@connections" | "%40connections", id]) => {
            connections(admin, head, stage, id, m, body)
        }
        (b"GET", ["restapis", id, "stages", name, "exports", kind]) => export(
            state,
            id,
            name,
            kind,
            head.header("accept"),
            param("extensions").as_deref(),
        ),
        _ => no_such_operation(method, &path),
    }
}

fn no_such_operation(method: &[u8], path: &str) -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        format!(
            "no such operation: {} {path}",
            String::from_utf8_lossy(method)
        ),
    )
}

fn flag(v: Option<String>) -> bool {
    v.is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn new_id(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..len)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// A random id of `len` characters that `taken` does not claim.
fn fresh_id(len: usize, taken: impl Fn(&str) -> bool) -> String {
    loop {
        let id = new_id(len);
        if !taken(&id) {
            return id;
        }
    }
}

/// A new REST API's id: unused by the admin API's APIs and the config's.
fn fresh_api_id(admin: &Admin, state: &AdminState) -> String {
    fresh_id(10, |id| {
        state.apis.contains_key(id) || admin.control.has_config_api(id)
    })
}

fn not_found_api(id: &str) -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        format!("Invalid API identifier specified {id}"),
    )
}

/// A deployment id that names none of the API's (get, delete, export).
fn not_found_deployment() -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        "Invalid Deployment identifier specified",
    )
}

/// A stage pointed at a deployment id that names none of the API's.
fn unknown_stage_deployment() -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        "Invalid deployment identifier specified",
    )
}

fn not_found_stage() -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        "Invalid Stage identifier specified",
    )
}

fn api_json(api: &RestApiRecord) -> Value {
    let mut v = json!({
        "id": api.id,
        "name": api.name,
        "createdDate": api.created_date,
        "apiKeySource": match api.definition.get("x-amazon-apigateway-api-key-source").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("AUTHORIZER") => "AUTHORIZER",
            _ => "HEADER",
        },
        "endpointConfiguration": { "types": if api.endpoint_types.is_empty() {
            vec!["REGIONAL".to_owned()]
        } else {
            api.endpoint_types.clone()
        } },
        "disableExecuteApiEndpoint": api
            .definition
            .get("x-amazon-apigateway-endpoint-configuration")
            .and_then(|c| c.get("disableExecuteApiEndpoint"))
            .and_then(Value::as_bool)
            .unwrap_or(false),
        "rootResourceId": resources::root_id(api),
    });
    if let Some(types) = api
        .definition
        .get("x-amazon-apigateway-binary-media-types")
        .and_then(Value::as_array)
        .filter(|t| !t.is_empty())
    {
        v["binaryMediaTypes"] = json!(types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| t.replace("~1", "/"))
            .collect::<Vec<_>>());
    }
    if let Some(n) = api
        .definition
        .get("x-amazon-apigateway-minimum-compression-size")
        .and_then(Value::as_u64)
    {
        v["minimumCompressionSize"] = json!(n);
    }
    // As API Gateway gives it: the document as JSON text.
    if let Some(p) = api
        .definition
        .get("x-amazon-apigateway-policy")
        .filter(|p| !p.is_null())
    {
        v["policy"] = json!(match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    }
    if let Some(d) = &api.description {
        v["description"] = json!(d);
    }
    if let Some(ver) = &api.version {
        v["version"] = json!(ver);
    }
    if !api.warnings.is_empty() {
        v["warnings"] = json!(api.warnings);
    }
    v
}

fn deployment_json(d: &DeploymentRecord) -> Value {
    let mut v = json!({ "id": d.id, "createdDate": d.created_date });
    if let Some(desc) = &d.description {
        v["description"] = json!(desc);
    }
    v
}

fn stage_json(s: &StageRecord) -> Value {
    let mut v = json!({
        "deploymentId": s.deployment_id,
        "stageName": s.stage_name,
        "cacheClusterEnabled": s.cache_cluster_enabled,
        "cacheClusterSize": s.cache_cluster_size,
        "cacheClusterStatus": if s.cache_cluster_enabled { "AVAILABLE" } else { "NOT_AVAILABLE" },
        "methodSettings": s.method_settings.iter().map(|(k, m)| {
            let mut v = serde_json::to_value(m).unwrap_or_default();
            // API Gateway reports the defaults too.
            if let Some(o) = v.as_object_mut() {
                o.entry("cachingEnabled").or_insert(json!(false));
                o.entry("cacheTtlInSeconds").or_insert(json!(300));
                o.entry("requireAuthorizationForCacheControl").or_insert(json!(true));
                o.entry("unauthorizedCacheControlHeaderStrategy").or_insert(json!(crate::cache::UnauthorizedStrategy::DEFAULT.name()));
                o.entry("metricsEnabled").or_insert(json!(false));
                o.entry("dataTraceEnabled").or_insert(json!(false));
                o.entry("cacheDataEncrypted").or_insert(json!(false));
                o.entry("throttlingBurstLimit").or_insert(json!(super::state::DEFAULT_METHOD_BURST));
                o.entry("throttlingRateLimit").or_insert(json!(super::state::DEFAULT_METHOD_RATE));
            }
            (k.clone(), v)
        }).collect::<serde_json::Map<String, Value>>(),
        "tracingEnabled": s.tracing_enabled,
        "createdDate": s.created_date,
        "lastUpdatedDate": s.last_updated_date,
    });
    if let Some(d) = &s.description {
        v["description"] = json!(d);
    }
    if !s.variables.is_empty() {
        v["variables"] = json!(s.variables);
    }
    v
}

fn list_apis(state: &AdminState, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let items: Vec<Value> = state.apis.values().map(api_json).collect();
    list_reply(items, param)
}

/// Most items a list call returns per page (API Gateway's bounds).
const DEFAULT_PAGE: usize = 25;
const MAX_PAGE: usize = 500;

/// A list call's answer, paged as API Gateway's: at most `limit` items (1
/// to 500, default 25) in order of id, starting after `position` (the
/// last id of the previous page), and a `position` for the next page when
/// there is one. The AWS CLI and SDK paginators follow it.
pub(super) fn list_reply(mut items: Vec<Value>, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let limit = match param("limit") {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Reply::error(
                    400,
                    "BadRequestException",
                    format!("Invalid limit `{l}`: it must be a number from 1 to {MAX_PAGE}"),
                )
            }
        },
    };
    fn id(v: &Value) -> &str {
        v.get("id").and_then(Value::as_str).unwrap_or("")
    }
    items.sort_by(|a, b| id(a).cmp(id(b)));
    if let Some(after) = param("position") {
        items.retain(|v| id(v) > after.as_str());
    }
    let next = (items.len() > limit).then(|| id(&items[limit - 1]).to_owned());
    items.truncate(limit);
    let mut out = json!({ "item": items });
    if let Some(p) = next {
        out["position"] = json!(p);
    }
    Reply::json(200, &out)
}

/// Parses and checks a Swagger document. `Err` is the 400 to answer.
fn validate(
    body: &[u8],
    label: &str,
    basepath: Option<&str>,
    fail_on_warnings: bool,
) -> Result<(Value, Vec<String>), Reply> {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Err(Reply::error(
            413,
            "PayloadTooLargeException",
            "API definition is larger than 6 MB",
        ));
    }
    let text = String::from_utf8_lossy(body);
    let file = PathBuf::from(label);
    let mut doc = parse_document(&file, &text).map_err(|d| {
        Reply::error(
            400,
            "BadRequestException",
            format!("Invalid OpenAPI input. {}: {}", d.path, d.message),
        )
    })?;
    apply_basepath(&mut doc, basepath)?;
    check_document(&doc, label, fail_on_warnings).map(|w| (doc, w))
}

/// The `basepath` parameter of import and put-rest-api: what becomes of
/// the document's `basePath` (say `/a/b/c`, paths `/e` and `/f`).
/// `ignore` (the default): the paths as written (`/e`, `/f`). `prepend`:
/// the whole base path before every path (`/a/b/c/e`). `split`: the base
/// path without its first part, which names a stage (`/b/c/e`). The stored
/// definition holds the resulting paths.
fn apply_basepath(doc: &mut Value, mode: Option<&str>) -> Result<(), Reply> {
    let drop_first = match mode {
        None | Some("ignore") => return Ok(()),
        Some("prepend") => false,
        Some("split") => true,
        Some(other) => {
            return Err(Reply::error(
                400,
                "BadRequestException",
                format!("Invalid basepath `{other}`: use ignore, prepend or split"),
            ))
        }
    };
    let base = doc.get("basePath").and_then(Value::as_str).unwrap_or("");
    let mut parts = base.split('/').filter(|p| !p.is_empty());
    if drop_first {
        parts.next();
    }
    let prefix: String = parts.map(|p| format!("/{p}")).collect();
    if prefix.is_empty() {
        return Ok(());
    }
    if let Some(Value::Object(paths)) = doc.get_mut("paths") {
        let old = std::mem::take(paths);
        for (path, item) in old {
            let joined = match path.trim_end_matches('/') {
                "" => prefix.clone(),
                rest => format!("{prefix}{rest}"),
            };
            paths.insert(joined, item);
        }
    }
    Ok(())
}

fn check_document(doc: &Value, label: &str, fail_on_warnings: bool) -> Result<Vec<String>, Reply> {
    let mut diags = Diagnostics::default();
    let file = PathBuf::from(label);
    let compiled = swagger::compile_api("import", &file, doc, &mut diags);
    let line = |d: &crate::config::Diagnostic| format!("{}: {}", d.path, d.message);
    if compiled.is_none() || !diags.errors.is_empty() {
        let lines: Vec<String> = diags.errors.iter().map(line).collect();
        return Err(Reply::error(
            400,
            "BadRequestException",
            format!("Errors found during import:\n\t{}", lines.join("\n\t")),
        ));
    }
    let warnings: Vec<String> = diags.warnings.iter().map(line).collect();
    if fail_on_warnings && !warnings.is_empty() {
        return Err(Reply::error(
            400,
            "BadRequestException",
            format!("Warnings found during import:\n\t{}", warnings.join("\n\t")),
        ));
    }
    Ok(warnings)
}

/// A string of the document's `info` object (`title`, `version`, ...).
fn info_str(doc: &Value, field: &str) -> Option<String> {
    doc.get("info")
        .and_then(|i| i.get(field))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn import(
    admin: &Admin,
    state: &mut AdminState,
    body: &[u8],
    basepath: Option<&str>,
    fail_on_warnings: bool,
) -> Reply {
    let (doc, warnings) = match validate(body, "imported document", basepath, fail_on_warnings) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id = fresh_api_id(admin, state);
    let rec = RestApiRecord {
        id: id.clone(),
        name: info_str(&doc, "title").unwrap_or_else(|| "imported".to_owned()),
        description: info_str(&doc, "description"),
        version: info_str(&doc, "version"),
        created_date: now(),
        warnings,
        endpoint_types: Vec::new(),
        definition: doc,
    };
    if let Err(e) = admin.store.put_api(&rec) {
        return storage_error(e);
    }
    let reply = Reply::json(201, &api_json(&rec));
    state.apis.insert(id, rec);
    reply
}

fn put(
    admin: &Admin,
    state: &mut AdminState,
    id: &str,
    body: &[u8],
    mode: &str,
    basepath: Option<&str>,
    fail_on_warnings: bool,
) -> Reply {
    let Some(existing) = state.apis.get(id) else {
        return not_found_api(id);
    };
    let (imported, _) = match validate(body, "imported document", basepath, false) {
        Ok(x) => x,
        Err(r) => return r,
    };
    let description = info_str(&imported, "description");
    let definition = match mode {
        "overwrite" => imported,
        "merge" => merge(&existing.definition, &imported),
        other => {
            return Reply::error(
                400,
                "BadRequestException",
                format!("Invalid mode `{other}`: use merge or overwrite"),
            )
        }
    };
    let warnings = match check_document(&definition, "merged document", fail_on_warnings) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let mut rec = existing.clone();
    if let Some(t) = info_str(&definition, "title") {
        rec.name = t;
    }
    if let Some(v) = info_str(&definition, "version") {
        rec.version = Some(v);
    }
    // The description comes from the document, as on import: overwrite
    // resets what the document does not carry (AWS: "reset to its default
    // values"); merge keeps the API's own when the document has none.
    if mode == "overwrite" || description.is_some() {
        rec.description = description;
    }
    rec.definition = definition;
    rec.warnings = warnings;
    if let Err(e) = admin.store.put_api(&rec) {
        return storage_error(e);
    }
    let reply = Reply::json(200, &api_json(&rec));
    state.apis.insert(id.to_owned(), rec);
    reply
}

/// `mode=merge`: the imported definitions win; everything else stays.
/// Paths merge per method; root maps (definitions, parameters, gateway
/// responses, ...) merge per key; other root values are replaced.
fn merge(existing: &Value, imported: &Value) -> Value {
    let (Some(old), Some(new)) = (existing.as_object(), imported.as_object()) else {
        return imported.clone();
    };
    let mut out: Map<String, Value> = old.clone();
    for (k, v) in new {
        match (k.as_str(), out.get_mut(k), v) {
            ("paths", Some(Value::Object(old_paths)), Value::Object(new_paths)) => {
                for (path, item) in new_paths {
                    match (old_paths.get_mut(path), item) {
                        (Some(Value::Object(old_item)), Value::Object(new_item)) => {
                            for (mk, mv) in new_item {
                                old_item.insert(mk.clone(), mv.clone());
                            }
                        }
                        _ => {
                            old_paths.insert(path.clone(), item.clone());
                        }
                    }
                }
            }
            (_, Some(Value::Object(old_map)), Value::Object(new_map)) if k != "info" => {
                for (mk, mv) in new_map {
                    old_map.insert(mk.clone(), mv.clone());
                }
            }
            _ => {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    Value::Object(out)
}

fn delete_api(admin: &Admin, state: &mut AdminState, id: &str) -> Reply {
    if !state.apis.contains_key(id) {
        return not_found_api(id);
    }
    let mut next = state.clone();
    next.apis.remove(id);
    next.deployments.remove(id);
    next.stages.remove(id);
    // Its stages leave the usage plans that named them, written after the
    // record's removal and before the tombstone's (see `Store::delete_api`).
    let plans = next.unlink_stages(|s| s.api_id == id);
    if let Err(e) = admin.store.delete_api(id, &plans) {
        return storage_error(e);
    }
    if let Err(r) = publish(admin, &next) {
        // The record is gone from disk; serve what disk says.
        *state = next;
        return r;
    }
    *state = next;
    Reply::json(202, &json!({}))
}

/// Builds and validates what `next` would serve. Nothing is written or
/// published here; [`publish_checked`] publishes the result.
fn check_publishable(admin: &Admin, next: &AdminState) -> Result<Prepared, Reply> {
    admin
        .control
        .prepare_extra(&next.extra(&admin.store))
        .map_err(|e| {
            let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
            Reply::error(400, "BadRequestException", lines.join("\n"))
        })
}

fn publish_error(e: crate::config::LoadError) -> Reply {
    let lines: Vec<String> = e.errors.iter().map(ToString::to_string).collect();
    Reply::error(500, "InternalServerErrorException", lines.join("\n"))
}

/// Publishes what `check_publishable` built for `next`.
fn publish_checked(admin: &Admin, next: &AdminState, prepared: Prepared) -> Result<(), Reply> {
    admin
        .control
        .publish_prepared(next.extra(&admin.store), prepared)
        .map(|_| ())
        .map_err(publish_error)
}

/// Builds and publishes what `next` serves (removals, which need no check
/// before they are written).
fn publish(admin: &Admin, next: &AdminState) -> Result<(), Reply> {
    admin
        .control
        .set_extra(next.extra(&admin.store))
        .map(|_| ())
        .map_err(publish_error)
}

fn storage_error(e: std::io::Error) -> Reply {
    tracing::error!(error = %e, "cannot write admin state");
    Reply::error(
        500,
        "InternalServerErrorException",
        format!("cannot write state: {e}"),
    )
}

/// API Gateway's limit of stage variables per stage (not adjustable).
const MAX_STAGE_VARIABLES: usize = 100;

/// A stage's variables must number at most [`MAX_STAGE_VARIABLES`]: a
/// 400, as API Gateway's, for a create or update that would exceed it.
fn check_variable_count(variables: &BTreeMap<String, String>) -> Result<(), Reply> {
    if variables.len() > MAX_STAGE_VARIABLES {
        return Err(Reply::error(
            400,
            "BadRequestException",
            format!(
                "Too many stage variables: a stage can have at most {MAX_STAGE_VARIABLES} variables, and this one would have {}",
                variables.len()
            ),
        ));
    }
    Ok(())
}

fn parse_variables(v: Option<&Value>) -> Result<BTreeMap<String, String>, Reply> {
    let mut out = BTreeMap::new();
    let Some(v) = v else { return Ok(out) };
    let Some(map) = v.as_object() else {
        return Err(Reply::error(
            400,
            "BadRequestException",
            "variables must be an object of strings",
        ));
    };
    for (k, v) in map {
        let Some(s) = v.as_str() else {
            return Err(Reply::error(
                400,
                "BadRequestException",
                format!("variable `{k}` must be a string"),
            ));
        };
        check_stage_variable(k, s).map_err(|e| Reply::error(400, "BadRequestException", e))?;
        out.insert(k.clone(), s.to_owned());
    }
    check_variable_count(&out)?;
    Ok(out)
}

/// `delete-deployment`: refused while a stage serves it, as API Gateway
/// refuses it. Nothing served changes, so nothing is published.
fn delete_deployment(admin: &Admin, state: &mut AdminState, id: &str, dep: &str) -> Reply {
    if !state.apis.contains_key(id) {
        return not_found_api(id);
    }
    if state.deployment(id, dep).is_none() {
        return not_found_deployment();
    }
    let in_use = state
        .stages
        .get(id)
        .is_some_and(|s| s.values().any(|st| st.deployment_id == dep));
    if in_use {
        return Reply::error(
            400,
            "BadRequestException",
            "Active stages pointing to this deployment must be moved or deleted",
        );
    }
    if let Err(e) = admin.store.delete_deployment(id, dep) {
        return storage_error(e);
    }
    if let Some(d) = state.deployments.get_mut(id) {
        d.remove(dep);
    }
    Reply::json(202, &json!({}))
}

/// API Gateway deploys only an API with methods, every one integrated:
/// the error it answers otherwise, if any.
fn undeployable(definition: &Value) -> Option<Reply> {
    let refuse = |m: &str| Some(Reply::error(400, "BadRequestException", m));
    let mut methods = 0;
    for item in definition
        .get("paths")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|p| p.values())
        .filter_map(Value::as_object)
    {
        for (key, op) in item {
            let method = matches!(
                key.to_ascii_lowercase().as_str(),
                "get" | "put" | "post" | "delete" | "options" | "head" | "patch"
            ) || key == "x-amazon-apigateway-any-method";
            if !method {
                continue;
            }
            methods += 1;
            if op.get("x-amazon-apigateway-integration").is_none() {
                return refuse("No integration defined for method");
            }
        }
    }
    if methods == 0 {
        return refuse("The REST API doesn't contain any methods");
    }
    None
}

fn create_deployment(admin: &Admin, state: &mut AdminState, id: &str, body: &[u8]) -> Reply {
    let Some(api) = state.apis.get(id) else {
        return not_found_api(id);
    };
    if let Some(refused) = undeployable(&api.definition) {
        return refused;
    }
    let req: Value = if body.is_empty() {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return Reply::error(
                    400,
                    "BadRequestException",
                    format!("Invalid request body: {e}"),
                )
            }
        }
    };
    let stage_name = req
        .get("stageName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty());
    let variables = match parse_variables(req.get("variables")) {
        Ok(v) => v,
        Err(r) => return r,
    };
    if let Some(name) = stage_name {
        if !valid_stage_name(name) {
            return Reply::error(
                400,
                "BadRequestException",
                "Stage name only allows a-zA-Z0-9_ and -, at most 128 characters",
            );
        }
    }
    let dep_id = fresh_id(6, |d| state.deployment(id, d).is_some());
    let t = now();
    let dep = DeploymentRecord {
        id: dep_id.clone(),
        api_id: id.to_owned(),
        description: req
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        created_date: t,
        definition: api.definition.clone(),
    };
    let mut next = state.clone();
    next.deployments
        .entry(id.to_owned())
        .or_default()
        .insert(dep_id.clone(), dep.clone());
    let mut stage_rec = None;
    let mut cache_changed = None;
    let cache = match cache_fields(&req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    if let Some(name) = stage_name {
        let stages = next.stages.entry(id.to_owned()).or_default();
        let rec = match stages.get(name) {
            Some(existing) => {
                // As API Gateway's CreateDeployment: the stage named is
                // updated with what the call gives (it created only a new
                // stage's cache settings and description), and keeps the
                // rest.
                let mut s = existing.clone();
                s.deployment_id = dep_id.clone();
                s.variables.extend(variables);
                // The stage's own variables and the call's together.
                if let Err(r) = check_variable_count(&s.variables) {
                    return r;
                }
                if let Some(enabled) = req.get("cacheClusterEnabled").and_then(Value::as_bool) {
                    s.cache_cluster_enabled = enabled;
                }
                if req
                    .get("cacheClusterSize")
                    .and_then(Value::as_str)
                    .is_some()
                {
                    s.cache_cluster_size = cache.1.clone();
                }
                if let Some(d) = req.get("stageDescription").and_then(Value::as_str) {
                    s.description = Some(d.to_owned());
                }
                s.last_updated_date = t;
                if (s.cache_cluster_enabled, &s.cache_cluster_size)
                    != (existing.cache_cluster_enabled, &existing.cache_cluster_size)
                {
                    cache_changed = Some(name);
                }
                s
            }
            None => StageRecord {
                api_id: id.to_owned(),
                stage_name: name.to_owned(),
                deployment_id: dep_id.clone(),
                description: req
                    .get("stageDescription")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                variables,
                created_date: t,
                last_updated_date: t,
                cache_cluster_enabled: cache.0,
                cache_cluster_size: cache.1.clone(),
                method_settings: Default::default(),
                tracing_enabled: false,
            },
        };
        stages.insert(name.to_owned(), rec.clone());
        stage_rec = Some(rec);
    }
    let prepared = match check_publishable(admin, &next) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(e) = admin.store.put_deployment(&dep) {
        return storage_error(e);
    }
    if let Some(rec) = &stage_rec {
        if let Err(e) = admin.store.put_stage(rec) {
            return storage_error(e);
        }
    }
    let result = publish_checked(admin, &next, prepared);
    *state = next;
    if let Err(r) = result {
        return r;
    }
    if let Some(name) = cache_changed {
        flush_stage_cache(admin, id, name);
    }
    Reply::json(201, &deployment_json(&dep))
}

/// A stage cache turned off or resized starts empty, as API Gateway's (it
/// deletes or re-creates the cache cluster): what was cached before must
/// not come back.
fn flush_stage_cache(admin: &Admin, id: &str, name: &str) {
    let msg = crate::publish::ShardMsg::CacheFlush {
        uid: format!("{id}/{name}"),
    };
    if !admin
        .control
        .publisher()
        .broadcast_and_wait(msg, std::time::Duration::from_secs(5))
    {
        tracing::warn!(
            api = id,
            stage = name,
            "not every shard confirmed the cache flush in time"
        );
    }
}

fn create_stage(admin: &Admin, state: &mut AdminState, id: &str, body: &[u8]) -> Reply {
    if !state.apis.contains_key(id) {
        return not_found_api(id);
    }
    let req = match keys::object(body) {
        Ok(m) => Value::Object(m),
        Err(r) => return r,
    };
    let (Some(name), Some(dep)) = (
        req.get("stageName").and_then(Value::as_str),
        req.get("deploymentId").and_then(Value::as_str),
    ) else {
        return Reply::error(
            400,
            "BadRequestException",
            "stageName and deploymentId are required",
        );
    };
    if !valid_stage_name(name) {
        return Reply::error(
            400,
            "BadRequestException",
            "Stage name only allows a-zA-Z0-9_ and -, at most 128 characters",
        );
    }
    if state.stages.get(id).is_some_and(|s| s.contains_key(name)) {
        return Reply::error(409, "ConflictException", "Stage already exists");
    }
    if state.deployment(id, dep).is_none() {
        return unknown_stage_deployment();
    }
    let cache = match cache_fields(&req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let variables = match parse_variables(req.get("variables")) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let t = now();
    let rec = StageRecord {
        api_id: id.to_owned(),
        stage_name: name.to_owned(),
        deployment_id: dep.to_owned(),
        description: req
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned),
        variables,
        created_date: t,
        last_updated_date: t,
        cache_cluster_enabled: cache.0,
        cache_cluster_size: cache.1,
        method_settings: Default::default(),
        tracing_enabled: false,
    };
    save_stage(admin, state, rec, 201)
}

/// `cacheClusterEnabled` and `cacheClusterSize` of a create call.
fn cache_fields(req: &Value) -> Result<(bool, String), Reply> {
    let enabled = req
        .get("cacheClusterEnabled")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let size = match req.get("cacheClusterSize").and_then(Value::as_str) {
        None => super::state::default_cache_size(),
        Some(s) if super::state::CACHE_SIZES.contains(&s) => s.to_owned(),
        Some(s) => return Err(bad_cache_size(s)),
    };
    Ok((enabled, size))
}

fn bad_cache_size(s: &str) -> Reply {
    Reply::error(
        400,
        "BadRequestException",
        format!(
            "Invalid cache cluster size {s}: must be one of {}",
            super::state::CACHE_SIZES.join(", ")
        ),
    )
}

/// A patch value that must be a boolean: `true` or `false` in any case (as
/// Java reads one); anything else is refused, not read as false.
fn patch_bool(path: &str, v: &str) -> Result<bool, Reply> {
    if v.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if v.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(Reply::error(
            400,
            "BadRequestException",
            format!("Invalid boolean value {v} for {path}: must be true or false"),
        ))
    }
}

/// A method-setting patch path: `/{key}` (the whole setting, to remove
/// it) or `/{key}/{group}/{field}`, where `{key}` is `*/*` or `{resource
/// path}/{METHOD}`, the resource path written with `/` as `~1`
/// (`~1pets~1{id}`) or as it is without its leading slash (`pets/{id}`,
/// the form Terraform sends). Read from the end: the last two segments are
/// the setting, the one before them the method, the rest the resource
/// path. The key is kept as written, as API Gateway reports it
/// (`~1pets~1{id}/GET` for the first form, `pets/{id}/GET` for the
/// second); `None`: not a method-setting path.
fn method_setting_path(path: &str) -> Option<(String, Option<(&str, &str)>)> {
    let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
    let is_method = |m: &str| {
        matches!(
            m,
            "*" | "GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "ANY"
        )
    };
    let (key, setting) = match parts.as_slice() {
        [.., m] if parts.len() >= 2 && is_method(m) => (&parts[..], None),
        [key @ .., group, field] if key.len() >= 2 && is_method(key[key.len() - 1]) => {
            (key, Some((*group, *field)))
        }
        _ => return None,
    };
    let (method, res) = key.split_last()?;
    let res = res.join("/");
    let wild = res == "*";
    if wild != (*method == "*") || (!wild && res.contains('*')) {
        return None;
    }
    Some((format!("{res}/{method}"), setting))
}

/// Which method a method-settings key names, whichever way it is written
/// (`~1pets~1{id}/GET` and `pets/{id}/GET` are the same method).
fn same_method(a: &str, b: &str) -> bool {
    let norm = |k: &str| match k.rsplit_once('/') {
        Some((res, method)) if k != "*/*" => {
            let res = res.replace("~1", "/");
            format!("/{}/{method}", res.trim_start_matches('/'))
        }
        _ => k.to_owned(),
    };
    norm(a) == norm(b)
}

fn patch_method_setting<'a>(
    rec: &mut StageRecord,
    kind: &str,
    path: &str,
    value: Option<&'a str>,
) -> Result<(), Reply> {
    let bad = |why: String| Reply::error(400, "BadRequestException", why);
    let Some((key, setting)) = method_setting_path(path) else {
        return Err(bad(format!(
            "Invalid method setting path {path}: use /*/*, /~1path/METHOD or /path/METHOD, then the setting"
        )));
    };
    // A method that has settings under the other spelling keeps its key.
    let key = rec
        .method_settings
        .keys()
        .find(|k| same_method(k, &key))
        .cloned()
        .unwrap_or(key);
    let remove = kind == "remove";
    if remove && !rec.method_settings.contains_key(&key) {
        // API Gateway's answer (a field of it, or all of it).
        return Err(bad(format!(
            "Cannot remove method setting {key} because there is no method setting for this method"
        )));
    }
    let Some((group, field)) = setting else {
        if !remove {
            return Err(bad(format!("Invalid method setting path {path}")));
        }
        rec.method_settings.remove(&key);
        return Ok(());
    };
    let entry = rec.method_settings.entry(key).or_default();
    let need = |v: Option<&'a str>| -> Result<&'a str, Reply> {
        v.ok_or_else(|| bad(format!("Invalid patch: {path} needs a value")))
    };
    let flag = |v: Option<&'a str>| -> Result<bool, Reply> { patch_bool(path, need(v)?) };
    match (group, field) {
        ("throttling", "rateLimit") => {
            entry.throttling_rate_limit = if remove {
                None
            } else {
                let v: f64 = need(value)?
                    .parse()
                    .map_err(|_| bad(format!("Invalid rate limit for {path}")))?;
                if !(v >= 0.0 && v.is_finite()) {
                    return Err(bad(format!("Invalid rate limit for {path}")));
                }
                Some(v)
            }
        }
        ("throttling", "burstLimit") => {
            entry.throttling_burst_limit = if remove {
                None
            } else {
                Some(
                    need(value)?
                        .parse()
                        .map_err(|_| bad(format!("Invalid burst limit for {path}")))?,
                )
            }
        }
        ("caching", "enabled") => {
            entry.caching_enabled = if remove { None } else { Some(flag(value)?) }
        }
        ("caching", "ttlInSeconds") => {
            entry.cache_ttl_in_seconds = if remove {
                None
            } else {
                let t: u64 = need(value)?
                    .parse()
                    .map_err(|_| bad(format!("Invalid TTL for {path}")))?;
                if t > 3600 {
                    return Err(bad("Cache ttl must be between 0 and 3600".into()));
                }
                Some(t)
            }
        }
        ("caching", "requireAuthorizationForCacheControl") => {
            entry.require_authorization_for_cache_control =
                if remove { None } else { Some(flag(value)?) }
        }
        ("caching", "unauthorizedCacheControlHeaderStrategy") => {
            entry.unauthorized_cache_control_header_strategy = if remove {
                None
            } else {
                let v = need(value)?;
                if crate::cache::UnauthorizedStrategy::parse(v).is_none() {
                    return Err(bad(format!("Invalid strategy {v}")));
                }
                Some(v.to_owned())
            }
        }
        // Kept and reported for API Gateway compatibility (tools read the
        // stage back); no effect here.
        ("metrics", "enabled") => {
            entry.metrics_enabled = if remove { None } else { Some(flag(value)?) }
        }
        ("logging", "dataTrace") => {
            entry.data_trace_enabled = if remove { None } else { Some(flag(value)?) }
        }
        ("caching", "dataEncrypted") => {
            entry.cache_data_encrypted = if remove { None } else { Some(flag(value)?) }
        }
        ("logging", "loglevel") => {
            entry.logging_level = if remove {
                None
            } else {
                let v = need(value)?;
                if !matches!(v, "OFF" | "ERROR" | "INFO") {
                    return Err(bad(format!(
                        "Invalid logging level {v} for {path}: must be OFF, ERROR or INFO"
                    )));
                }
                Some(v.to_owned())
            }
        }
        _ => return Err(bad(format!("Invalid method setting path {path}"))),
    }
    Ok(())
}

fn save_stage(admin: &Admin, state: &mut AdminState, rec: StageRecord, status: u16) -> Reply {
    let mut next = state.clone();
    next.stages
        .entry(rec.api_id.clone())
        .or_default()
        .insert(rec.stage_name.clone(), rec.clone());
    let prepared = match check_publishable(admin, &next) {
        Ok(p) => p,
        Err(r) => return r,
    };
    if let Err(e) = admin.store.put_stage(&rec) {
        return storage_error(e);
    }
    let result = publish_checked(admin, &next, prepared);
    *state = next;
    if let Err(r) = result {
        return r;
    }
    Reply::json(status, &stage_json(&rec))
}

/// `update-stage`: JSON Patch-like operations on variables, deployment and
/// description.
fn patch_stage(admin: &Admin, state: &mut AdminState, id: &str, name: &str, body: &[u8]) -> Reply {
    let Some(existing) = state.stages.get(id).and_then(|s| s.get(name)) else {
        return if state.apis.contains_key(id) {
            not_found_stage()
        } else {
            not_found_api(id)
        };
    };
    // A body that is not JSON, or `patchOperations` that is not a list,
    // is a 400 (it was taken as no operation and the stage rewritten).
    let ops = match keys::patch_ops(body) {
        Ok(ops) => ops,
        Err(r) => return r,
    };
    let mut rec = existing.clone();
    for (kind, path, value) in &ops {
        let (kind, path, value) = (kind.as_str(), path.as_str(), value.as_deref());
        match (kind, path) {
            ("replace" | "add", p) if p.starts_with("/variables/") => {
                let var = &p["/variables/".len()..];
                let Some(v) = value else {
                    return Reply::error(400, "BadRequestException", format!("Invalid patch: {p} needs a value"));
                };
                if let Err(e) = check_stage_variable(var, v) {
                    return Reply::error(400, "BadRequestException", e);
                }
                rec.variables.insert(var.to_owned(), v.to_owned());
            }
            ("remove", p) if p.starts_with("/variables/") => {
                rec.variables.remove(&p["/variables/".len()..]);
            }
            ("replace", "/deploymentId") => {
                let Some(dep) = value else {
                    return Reply::error(400, "BadRequestException", "Invalid patch: /deploymentId needs a value");
                };
                if state.deployment(id, dep).is_none() {
                    return unknown_stage_deployment();
                }
                rec.deployment_id = dep.to_owned();
            }
            ("replace", "/description") => rec.description = value.map(str::to_owned),
            ("replace", "/cacheClusterEnabled") => {
                match patch_bool(path, value.unwrap_or("")) {
                    Ok(b) => rec.cache_cluster_enabled = b,
                    Err(r) => return r,
                }
            }
            ("replace", "/tracingEnabled") => match patch_bool(path, value.unwrap_or("")) {
                Ok(b) => rec.tracing_enabled = b,
                Err(r) => return r,
            },
            ("replace", "/cacheClusterSize") => match value {
                Some(v) if super::state::CACHE_SIZES.contains(&v) => {
                    rec.cache_cluster_size = v.to_owned()
                }
                other => return bad_cache_size(other.unwrap_or("")),
            },
            ("replace" | "add" | "remove", p) if method_setting_path(p).is_some() => {
                if let Err(r) = patch_method_setting(&mut rec, kind, p, value) {
                    return r;
                }
            }
            _ => {
                return Reply::error(
                    400,
                    "BadRequestException",
                    format!("Invalid patch operation specified. Must be one of: [add, remove, replace] on /variables/*, /deploymentId, /description, /cacheClusterEnabled, /cacheClusterSize, /tracingEnabled, /{{resource}}/{{method}}/throttling|caching|metrics|logging/*; got {kind} {path}"),
                )
            }
        }
    }
    // Counted once all operations applied: a patch may remove some
    // variables and add others.
    if let Err(r) = check_variable_count(&rec.variables) {
        return r;
    }
    rec.last_updated_date = now();
    let cache_changed = (existing.cache_cluster_enabled, &existing.cache_cluster_size)
        != (rec.cache_cluster_enabled, &rec.cache_cluster_size);
    let reply = save_stage(admin, state, rec, 200);
    if cache_changed && reply.status == 200 {
        flush_stage_cache(admin, id, name);
    }
    reply
}

fn delete_stage(admin: &Admin, state: &mut AdminState, id: &str, name: &str) -> Reply {
    if !state.stages.get(id).is_some_and(|s| s.contains_key(name)) {
        return if state.apis.contains_key(id) {
            not_found_stage()
        } else {
            not_found_api(id)
        };
    }
    let mut next = state.clone();
    if let Some(s) = next.stages.get_mut(id) {
        s.remove(name);
    }
    // The stage leaves the usage plans that named it (API Gateway's link
    // goes with the stage): a stage created again under this name starts
    // in no plan. Order (see `Store::delete_stage`): the stage's record is
    // removed first, the commit point; then the plans are rewritten. A
    // crash, or a failed write, in between leaves links that the next
    // start drops, so memory drops them at once either way.
    let plans = next.unlink_stages(|s| s.api_id == id && s.stage == name);
    if let Err(e) = admin.store.delete_stage(id, name) {
        return storage_error(e);
    }
    let written = plans.iter().try_for_each(|p| admin.store.put_plan(p));
    let result = publish(admin, &next);
    *state = next;
    if let Err(e) = written {
        return storage_error(e);
    }
    if let Err(r) = result {
        return r;
    }
    Reply::json(202, &json!({}))
}

/// The `@connections` API of a WebSocket API, on the admin listener: the
/// API is named by `Host: {apiId}.execute-api.*`, or is the only WebSocket
/// API with that stage.
fn connections(
    admin: &Admin,
    head: &RequestHead,
    stage: &str,
    id: &str,
    method: &[u8],
    body: &[u8],
) -> Reply {
    let publisher = admin.control.publisher();
    let snap = publisher.current();
    let api = snap.ws_api(head.host()).or_else(|| {
        let mut with_stage = snap.ws_apis.iter().filter(|a| a.stage(stage).is_some());
        match (with_stage.next(), with_stage.next()) {
            (Some(a), None) => Some(a),
            _ => None,
        }
    });
    let Some(api) = api.filter(|a| a.stage(stage).is_some()) else {
        return Reply::error(
            403,
            "ForbiddenException",
            "no WebSocket API with that stage (name it with Host: {apiId}.execute-api.*)",
        );
    };
    let op = match method {
        b"POST" => {
            if body.len() > snap.ws_limits.max_message_bytes {
                return Reply::error(413, "PayloadTooLargeException", "Payload too large");
            }
            crate::ws::ConnOp::Send(body.to_vec())
        }
        b"GET" => crate::ws::ConnOp::Get,
        b"DELETE" => crate::ws::ConnOp::Delete,
        _ => return Reply::error(404, "NotFoundException", "no such operation"),
    };
    let reply = match crate::ws::shard_of(id) {
        None => crate::ws::ConnReply::Gone,
        Some(owner) => {
            let slot = std::sync::Arc::new(crate::ws::ReplySlot::default());
            let msg = crate::publish::ShardMsg::Connection {
                id: id.to_owned(),
                api: api.id.clone(),
                stage: stage.to_owned(),
                op,
                reply: slot.clone(),
            };
            if !publisher.post_to(owner, msg) {
                crate::ws::ConnReply::Gone
            } else {
                let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
                loop {
                    if let Some(r) = slot.0.get() {
                        break r.clone();
                    }
                    if std::time::Instant::now() >= until {
                        break crate::ws::ConnReply::Gone;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        }
    };
    let (status, error_type, text) = crate::shard::connection_reply_parts(&reply);
    Reply {
        status,
        error_type,
        content_type: "application/json",
        body: text.into_bytes(),
    }
}

/// FlushStageCache: empties the stage's cache on every shard, for APIs of
/// the config file and of the admin API alike.
fn flush_cache(admin: &Admin, id: &str, stage: &str) -> Reply {
    let publisher = admin.control.publisher();
    let snap = publisher.current();
    let host = format!("{id}.execute-api.local");
    let (api, found) = snap.find(Some(host.as_bytes()), Some(stage));
    let Some(found) = found else {
        return if api.is_some() {
            not_found_stage()
        } else {
            not_found_api(id)
        };
    };
    if found.cache.is_none() {
        return Reply::error(400, "BadRequestException", "The stage has no cache");
    }
    let msg = crate::publish::ShardMsg::CacheFlush {
        uid: format!("{id}/{stage}"),
    };
    if publisher.broadcast_and_wait(msg, std::time::Duration::from_secs(5)) {
        Reply::json(202, &json!({}))
    } else {
        Reply::error(
            500,
            "InternalServerErrorException",
            "not every shard confirmed the flush in time",
        )
    }
}

/// What an export holds, as API Gateway's `get-export`: the stage's
/// deployed definition with `basePath` `/{stage}`; the
/// `x-amazon-apigateway-integration` of each method only with
/// `extensions=integrations`, request validators only with `validators`,
/// authorizers (`x-amazon-apigateway-authorizer`) only with `authorizers`;
/// `apigateway` includes all three. `x-amazon-apigateway-authtype` is
/// always kept, as API Gateway exports it: without it an IAM method would
/// import as an open one, and a Lambda authorizer's methods as open ones
/// instead of not at all.
fn shape_export(doc: &mut Value, stage: &str, extensions: Option<&str>) {
    let asked: Vec<String> = extensions
        .unwrap_or("")
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
        .collect();
    let has = |e: &str| asked.iter().any(|a| a == e || a == "apigateway");
    let Some(root) = doc.as_object_mut() else {
        return;
    };
    root.insert("basePath".to_owned(), json!(format!("/{stage}")));
    const VALIDATOR: &str = "x-amazon-apigateway-request-validator";
    if !has("validators") {
        root.remove("x-amazon-apigateway-request-validators");
        root.remove(VALIDATOR);
    }
    if !has("authorizers") {
        if let Some(Value::Object(defs)) = root.get_mut("securityDefinitions") {
            for def in defs.values_mut().filter_map(Value::as_object_mut) {
                def.remove("x-amazon-apigateway-authorizer");
            }
        }
    }
    if let Some(Value::Object(paths)) = root.get_mut("paths") {
        for item in paths.values_mut().filter_map(Value::as_object_mut) {
            for op in item.values_mut().filter_map(Value::as_object_mut) {
                if !has("integrations") {
                    op.remove("x-amazon-apigateway-integration");
                }
                if !has("validators") {
                    op.remove(VALIDATOR);
                }
            }
        }
    }
}

fn export(
    state: &AdminState,
    id: &str,
    name: &str,
    kind: &str,
    accept: Option<&[u8]>,
    extensions: Option<&str>,
) -> Reply {
    if kind != "swagger" {
        return Reply::error(
            400,
            "BadRequestException",
            format!("Export type `{kind}` is not supported; use swagger"),
        );
    }
    let Some(stage) = state.stages.get(id).and_then(|s| s.get(name)) else {
        return if state.apis.contains_key(id) {
            not_found_stage()
        } else {
            not_found_api(id)
        };
    };
    let Some(dep) = state.deployment(id, &stage.deployment_id) else {
        return not_found_deployment();
    };
    let mut doc = dep.definition.clone();
    shape_export(&mut doc, name, extensions);
    let yaml = accept.is_some_and(|a| String::from_utf8_lossy(a).contains("yaml"));
    if yaml {
        match serde_saphyr::to_string(&doc) {
            Ok(text) => Reply {
                status: 200,
                error_type: None,
                content_type: "application/yaml",
                body: text.into_bytes(),
            },
            Err(e) => Reply::error(500, "InternalServerErrorException", e.to_string()),
        }
    } else {
        Reply {
            status: 200,
            error_type: None,
            content_type: "application/json",
            body: serde_json::to_vec_pretty(&doc).unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_hold_the_extensions_asked_for() {
        let doc = json!({
            "swagger": "2.0", "basePath": "/v1",
            "x-amazon-apigateway-request-validators": {"all": {}},
            "x-amazon-apigateway-request-validator": "all",
            "x-amazon-apigateway-binary-media-types": ["image/png"],
            "securityDefinitions": {"a": {"type": "apiKey", "x-amazon-apigateway-authtype": "custom",
                "x-amazon-apigateway-authorizer": {"type": "token"}}},
            "paths": {"/p": {"parameters": [], "get": {"responses": {},
                "x-amazon-apigateway-request-validator": "all",
                "x-amazon-apigateway-integration": {"type": "mock"}}}}
        });
        let shaped = |ext: Option<&str>| {
            let mut d = doc.clone();
            shape_export(&mut d, "prod", ext);
            d
        };
        let plain = shaped(None);
        assert_eq!(plain["basePath"], "/prod");
        assert!(plain
            .get("x-amazon-apigateway-request-validators")
            .is_none());
        assert!(plain.get("x-amazon-apigateway-request-validator").is_none());
        assert_eq!(
            plain["x-amazon-apigateway-binary-media-types"][0],
            "image/png"
        );
        // The authorizer only with `authorizers`; its type always, so that a
        // re-import does not serve its methods open.
        assert_eq!(
            plain["securityDefinitions"]["a"],
            json!({"type": "apiKey", "x-amazon-apigateway-authtype": "custom"})
        );
        assert_eq!(plain["paths"]["/p"]["get"], json!({"responses": {}}));
        let validators = shaped(Some("validators"));
        assert_eq!(validators["x-amazon-apigateway-request-validator"], "all");
        assert_eq!(
            validators["paths"]["/p"]["get"]["x-amazon-apigateway-request-validator"],
            "all"
        );
        assert!(validators["paths"]["/p"]["get"]
            .get("x-amazon-apigateway-integration")
            .is_none());
        let auth = shaped(Some(" Authorizers "));
        assert_eq!(
            auth["securityDefinitions"]["a"]["x-amazon-apigateway-authtype"],
            "custom"
        );
        let mut all = doc.clone();
        all["basePath"] = json!("/prod");
        assert_eq!(shaped(Some("apigateway")), all);
        assert_eq!(shaped(Some("postman,apigateway")), all);
    }

    #[test]
    fn merge_keeps_what_the_import_does_not_name() {
        let old = json!({"swagger": "2.0", "info": {"title": "a"}, "paths": {
            "/a": {"get": {"x": 1}, "post": {"x": 2}}, "/b": {"get": {"x": 3}}},
            "definitions": {"A": {}, "B": {}}});
        let new = json!({"swagger": "2.0", "info": {"title": "b"}, "paths": {
            "/a": {"get": {"x": 10}}, "/c": {"put": {"x": 4}}},
            "definitions": {"B": {"type": "object"}}});
        let m = merge(&old, &new);
        assert_eq!(m["info"]["title"], "b");
        assert_eq!(m["paths"]["/a"]["get"]["x"], 10);
        assert_eq!(m["paths"]["/a"]["post"]["x"], 2);
        assert_eq!(m["paths"]["/b"]["get"]["x"], 3);
        assert_eq!(m["paths"]["/c"]["put"]["x"], 4);
        assert_eq!(m["definitions"]["A"], json!({}));
        assert_eq!(m["definitions"]["B"]["type"], "object");
    }
}
