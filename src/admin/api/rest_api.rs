//! `create-rest-api` (an API with no resources, or a clone of one) and
//! `update-rest-api` (PATCH of the API's own settings). What they set lives
//! in the API's definition, as the import's extensions do, so it takes
//! effect with the next deployment, as in API Gateway.

use serde_json::{json, Value};

use super::keys::{bad, object, opt_str, patch_ops};
use super::{api_json, fresh_api_id, not_found_api, now, storage_error};
use crate::admin::state::{AdminState, RestApiRecord};
use crate::admin::{Admin, Reply};

const BINARY: &str = "x-amazon-apigateway-binary-media-types";
const KEY_SOURCE: &str = "x-amazon-apigateway-api-key-source";
const ENDPOINT_TYPES: [&str; 3] = ["EDGE", "REGIONAL", "PRIVATE"];
const COMPRESSION: &str = "x-amazon-apigateway-minimum-compression-size";
const POLICY: &str = "x-amazon-apigateway-policy";
const ENDPOINT_CONF: &str = "x-amazon-apigateway-endpoint-configuration";

/// A `minimumCompressionSize`: 0 to 10485760 bytes.
fn compression_size(v: &Value) -> Result<u64, Reply> {
    let max = crate::config::swagger::MAX_MINIMUM_COMPRESSION_SIZE;
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    // API Gateway's words, whatever the value was.
    n.filter(|n| *n <= max).ok_or_else(|| {
        bad(format!(
            "Invalid minimum compression size, must be between 0 and {max}"
        ))
    })
}

/// A media type as `binaryMediaTypes` takes it (`/` may come as `~1`,
/// the escape of a PATCH path).
fn media_type(raw: &str, what: &str) -> Result<String, Reply> {
    let t = raw.replace("~1", "/").trim().to_owned();
    match t.split_once('/') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() && !b.contains('/') => Ok(t),
        _ => Err(bad(format!(
            "Invalid {what} `{raw}`: a binary media type is type/subtype, type/* or */*"
        ))),
    }
}

fn key_source(raw: &str) -> Result<&'static str, Reply> {
    if raw.eq_ignore_ascii_case("HEADER") {
        Ok("HEADER")
    } else if raw.eq_ignore_ascii_case("AUTHORIZER") {
        Ok("AUTHORIZER")
    } else {
        Err(bad(format!(
            "Invalid apiKeySource `{raw}`: must be HEADER or AUTHORIZER"
        )))
    }
}

fn endpoint_type(raw: &str) -> Result<String, Reply> {
    let t = raw.to_ascii_uppercase();
    if ENDPOINT_TYPES.contains(&t.as_str()) {
        Ok(t)
    } else {
        Err(bad(format!(
            "Invalid endpoint type `{raw}`: must be EDGE, REGIONAL or PRIVATE"
        )))
    }
}

/// A `policy` (the document as JSON text, or as an object): compiled as
/// the import compiles `x-amazon-apigateway-policy`, kept as an object in
/// the definition. `None`: no policy (blank or null).
fn policy(v: &Value) -> Result<Option<Value>, Reply> {
    let doc = match v {
        Value::Null => return Ok(None),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => serde_json::from_str::<Value>(s)
            .map_err(|e| bad(format!("Invalid policy document: not JSON: {e}")))?,
        other => other.clone(),
    };
    match crate::resource_policy::ResourcePolicy::parse(&doc) {
        Ok(_) => Ok(Some(doc)),
        Err((path, why)) => Err(bad(format!("Invalid policy document: ${path}: {why}"))),
    }
}

/// `disableExecuteApiEndpoint` into the definition's
/// `x-amazon-apigateway-endpoint-configuration`, as an import reads it
/// (`true`: the API is served only through its custom domains). `None`:
/// not a boolean.
fn set_disable(
    doc: &mut serde_json::Map<String, Value>,
    disable: Option<bool>,
) -> Result<(), Reply> {
    let Some(disable) = disable else {
        return Err(bad(
            "Invalid disableExecuteApiEndpoint: must be true or false",
        ));
    };
    let conf = doc.entry(ENDPOINT_CONF).or_insert_with(|| json!({}));
    match conf.as_object_mut() {
        Some(c) if disable => {
            c.insert("disableExecuteApiEndpoint".to_owned(), json!(true));
        }
        Some(c) => {
            c.remove("disableExecuteApiEndpoint");
        }
        None => {
            return Err(bad(
                "The API's x-amazon-apigateway-endpoint-configuration is not an object",
            ))
        }
    }
    if conf.as_object().is_some_and(|c| c.is_empty()) {
        doc.remove(ENDPOINT_CONF);
    }
    Ok(())
}

/// `create-rest-api`: `name` (required), `description`, `version`,
/// `binaryMediaTypes`, `apiKeySource`, `minimumCompressionSize`, `policy`,
/// `endpointConfiguration.types`,
/// `cloneFrom` (the new API starts with that API's resources and settings).
pub(super) fn create(admin: &Admin, state: &mut AdminState, body: &[u8]) -> Reply {
    match build(admin, state, body) {
        Ok(rec) => {
            if let Err(e) = admin.store.put_api(&rec) {
                return storage_error(e);
            }
            let reply = Reply::json(201, &api_json(&rec));
            state.apis.insert(rec.id.clone(), rec);
            reply
        }
        Err(r) => r,
    }
}

fn build(admin: &Admin, state: &AdminState, body: &[u8]) -> Result<RestApiRecord, Reply> {
    let req = object(body)?;
    let name = match opt_str(&req, "name")? {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        _ => {
            return Err(bad(
                "Invalid request: name is required (or use ?mode=import)",
            ))
        }
    };
    let policy = policy(req.get("policy").unwrap_or(&Value::Null))?;
    let disable = match req.get("disableExecuteApiEndpoint") {
        None | Some(Value::Null) => Some(false),
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => None,
    };
    if disable.is_none() {
        set_disable(&mut serde_json::Map::new(), None)?;
    }
    let description = opt_str(&req, "description")?.map(str::to_owned);
    let version = opt_str(&req, "version")?.map(str::to_owned);
    let mut definition = match opt_str(&req, "cloneFrom")? {
        Some(src) => match state.apis.get(src) {
            Some(api) => api.definition.clone(),
            None => return Err(not_found_api(src)),
        },
        None => json!({"swagger": "2.0", "info": {"version": "1"}, "paths": {}}),
    };
    let Some(doc) = definition.as_object_mut() else {
        return Err(bad("Invalid cloneFrom: the API has no definition"));
    };
    let info = doc
        .entry("info")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .map(|i| {
            i.insert("title".to_owned(), json!(name));
            if let Some(d) = &description {
                i.insert("description".to_owned(), json!(d));
            }
            if let Some(v) = &version {
                i.insert("version".to_owned(), json!(v));
            }
        });
    if info.is_none() {
        return Err(bad("Invalid cloneFrom: the API's info is not an object"));
    }
    match req.get("binaryMediaTypes") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            let mut types: Vec<Value> = Vec::new();
            for item in items {
                let t = item
                    .as_str()
                    .ok_or_else(|| bad("Invalid binaryMediaTypes: must be a list of strings"))?;
                let t = json!(media_type(t, "binaryMediaTypes entry")?);
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            doc.insert(BINARY.to_owned(), Value::Array(types));
        }
        Some(_) => return Err(bad("Invalid binaryMediaTypes: must be a list of strings")),
    }
    if let Some(p) = policy {
        doc.insert(POLICY.to_owned(), p);
    }
    if disable == Some(true) {
        set_disable(doc, disable)?;
    }
    if let Some(s) = opt_str(&req, "apiKeySource")? {
        doc.insert(KEY_SOURCE.to_owned(), json!(key_source(s)?));
    }
    match req.get("minimumCompressionSize") {
        None | Some(Value::Null) => {}
        Some(v) => {
            doc.insert(COMPRESSION.to_owned(), json!(compression_size(v)?));
        }
    }
    let endpoint_types = match req.get("endpointConfiguration") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Object(ec)) => match ec.get("types") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) if items.len() <= 1 => items
                .iter()
                .map(|t| {
                    t.as_str()
                        .ok_or_else(|| {
                            bad("Invalid endpointConfiguration.types: must be a list of strings")
                        })
                        .and_then(endpoint_type)
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(bad(
                    "Invalid endpointConfiguration.types: a list of one endpoint type",
                ))
            }
        },
        Some(_) => return Err(bad("Invalid endpointConfiguration: must be an object")),
    };
    Ok(RestApiRecord {
        id: fresh_api_id(admin, state),
        name,
        description,
        version,
        created_date: now(),
        warnings: Vec::new(),
        endpoint_types,
        definition,
    })
}

/// `update-rest-api`: `replace` of `/name`, `/description`,
/// `/apiKeySource`, `/minimumCompressionSize`, `/policy`, `/endpointConfiguration/types/0`; `add` / `remove` of
/// `/binaryMediaTypes/{type}` (`/` escaped as `~1`), `replace` of one with
/// another. All operations apply or none (a bad one is a 400 and nothing
/// changes).
pub(super) fn patch(admin: &Admin, state: &mut AdminState, id: &str, body: &[u8]) -> Reply {
    let Some(existing) = state.apis.get(id) else {
        return not_found_api(id);
    };
    let mut rec = existing.clone();
    let ops = match patch_ops(body) {
        Ok(ops) => ops,
        Err(r) => return r,
    };
    for (op, path, value) in &ops {
        if let Err(r) = apply(&mut rec, op, path, value.as_deref()) {
            return r;
        }
    }
    if let Err(e) = admin.store.put_api(&rec) {
        return storage_error(e);
    }
    let reply = Reply::json(200, &api_json(&rec));
    state.apis.insert(id.to_owned(), rec);
    reply
}

fn apply(rec: &mut RestApiRecord, op: &str, path: &str, value: Option<&str>) -> Result<(), Reply> {
    let need = |v: Option<&str>| -> Result<String, Reply> {
        v.map(str::to_owned).ok_or_else(|| {
            bad(format!(
                "Invalid patch operation: {op} {path} needs a value"
            ))
        })
    };
    let Some(doc) = rec.definition.as_object_mut() else {
        return Err(bad("The API's definition is not an object"));
    };
    let info = doc
        .entry("info")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| bad("The API's info is not an object"))?;
    match (op, path) {
        ("replace", "/name") => {
            let name = need(value)?;
            if name.trim().is_empty() {
                return Err(bad("Invalid name: a name is required"));
            }
            info.insert("title".to_owned(), json!(name));
            rec.name = name;
        }
        ("replace", "/description") => match value {
            Some(d) if !d.is_empty() => {
                info.insert("description".to_owned(), json!(d));
                rec.description = Some(d.to_owned());
            }
            _ => {
                info.remove("description");
                rec.description = None;
            }
        },
        ("replace", "/apiKeySource") => {
            doc.insert(KEY_SOURCE.to_owned(), json!(key_source(&need(value)?)?));
        }
        // An empty or absent value turns compression off, as in API
        // Gateway.
        ("replace", "/minimumCompressionSize") => match value.filter(|v| !v.trim().is_empty()) {
            Some(v) => {
                let n = compression_size(&json!(v))?;
                doc.insert(COMPRESSION.to_owned(), json!(n));
            }
            None => {
                doc.remove(COMPRESSION);
            }
        },
        ("replace", "/endpointConfiguration/types/0") => {
            rec.endpoint_types = vec![endpoint_type(&need(value)?)?];
        }
        ("replace", "/policy") => match policy(&value.map_or(Value::Null, |v| json!(v)))? {
            Some(p) => {
                doc.insert(POLICY.to_owned(), p);
            }
            None => {
                doc.remove(POLICY);
            }
        },
        // `True` as the AWS documentation writes it: booleans in any case.
        ("replace", "/disableExecuteApiEndpoint") => set_disable(
            doc,
            value.and_then(|v| match v.trim().to_ascii_lowercase().as_str() {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            }),
        )?,
        (op @ ("add" | "remove" | "replace"), p) if p.starts_with("/binaryMediaTypes/") => {
            let named = media_type(&p["/binaryMediaTypes/".len()..], "binaryMediaTypes path")?;
            let mut types: Vec<String> = doc
                .get(BINARY)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(|t| t.replace("~1", "/"))
                        .collect()
                })
                .unwrap_or_default();
            let at = types.iter().position(|t| t.eq_ignore_ascii_case(&named));
            match (op, at) {
                ("add", None) => types.push(named),
                ("add", Some(_)) => {}
                ("remove", Some(i)) => {
                    types.remove(i);
                }
                ("replace", Some(i)) => {
                    let new = media_type(&need(value)?, "binaryMediaTypes value")?;
                    types[i] = new;
                }
                _ => {
                    return Err(Reply::error(
                        404,
                        "NotFoundException",
                        format!("Invalid binary media type {named}: the API has no such type"),
                    ))
                }
            }
            if types.is_empty() {
                doc.remove(BINARY);
            } else {
                doc.insert(BINARY.to_owned(), json!(types));
            }
        }
        _ => {
            return Err(bad(format!(
                "Invalid patch operation: {op} {path} is not supported"
            )))
        }
    }
    Ok(())
}
