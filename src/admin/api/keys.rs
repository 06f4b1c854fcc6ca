//! API keys, usage plans and usage plan keys (`/apikeys`, `/usageplans`,
//! `/usageplans/{id}/keys`) with API Gateway's shapes. Each mutation
//! follows the same order as the rest of the admin API: compute the new
//! state → build the snapshot it implies → write the records → publish to
//! every shard → acknowledge.
//!
//! The config file's `[[usage_plans]]` and `[[api_keys]]` are not managed
//! here (as config APIs are not): they are neither listed nor changed, and
//! a key value already used by the config file is a conflict.

use serde_json::{json, Map, Value};

use super::super::state::{
    AdminState, ApiKeyRecord, ApiStageRecord, QuotaRecord, Store, ThrottleRecord, UsagePlanRecord,
};
use super::super::{Admin, Reply};
use super::{check_publishable, fresh_id, now, publish_checked, storage_error};

/// API Gateway: an API key value is 20 to 128 characters.
const KEY_VALUE_LEN: std::ops::RangeInclusive<usize> = 20..=128;
/// Length of a generated key value (as API Gateway's: 40 of [A-Za-z0-9]).
const GENERATED_VALUE_LEN: usize = 40;

pub(super) fn bad(message: impl Into<String>) -> Reply {
    Reply::error(400, "BadRequestException", message)
}

fn conflict(message: impl Into<String>) -> Reply {
    Reply::error(409, "ConflictException", message)
}

fn not_found_key(id: &str) -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        format!("Invalid API Key identifier specified {id}"),
    )
}

fn not_found_plan(id: &str) -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        format!("Invalid Usage Plan ID specified {id}"),
    )
}

/// The request body as a JSON object (an empty body is `{}`).
pub(super) fn object(body: &[u8]) -> Result<Map<String, Value>, Reply> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("Invalid request body: expected a JSON object")),
        Err(e) => Err(bad(format!("Invalid request body: {e}"))),
    }
}

/// An optional string member; any other type is a 400.
pub(super) fn opt_str<'a>(
    req: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, Reply> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("Invalid {name}: must be a string"))),
    }
}

fn required_name(req: &Map<String, Value>) -> Result<String, Reply> {
    match opt_str(req, "name")? {
        Some(n) if !n.is_empty() => Ok(n.to_owned()),
        _ => Err(bad("Invalid name: a name is required")),
    }
}

/// `patchOperations` as (op, path, value).
pub(super) fn patch_ops(body: &[u8]) -> Result<Vec<(String, String, Option<String>)>, Reply> {
    let req = object(body)?;
    let ops = match req.get("patchOperations") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err(bad("Invalid patchOperations: must be a list")),
    };
    let mut out = Vec::new();
    for op in ops {
        let field = |n: &str| op.get(n).and_then(Value::as_str).map(str::to_owned);
        let value = match op.get("value") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(Value::Bool(b)) => Some(b.to_string()),
            _ => None,
        };
        out.push((
            field("op").unwrap_or_default(),
            field("path").unwrap_or_default(),
            value,
        ));
    }
    Ok(out)
}

/// Validates `next`, writes with `write`, publishes, then keeps `next`.
/// Nothing is written when validation fails.
fn commit(
    admin: &Admin,
    state: &mut AdminState,
    next: AdminState,
    write: impl FnOnce(&Store) -> std::io::Result<()>,
) -> Result<(), Reply> {
    let prepared = check_publishable(admin, &next)?;
    write(&admin.store).map_err(storage_error)?;
    let result = publish_checked(admin, &next, prepared);
    // What is on disk is what is kept, even if the publish failed.
    *state = next;
    result
}

// ---- API keys ----

fn key_json(k: &ApiKeyRecord, with_value: bool) -> Value {
    let mut v = json!({
        "id": k.id,
        "name": k.name,
        "enabled": k.enabled,
        "createdDate": k.created_date,
        "lastUpdatedDate": k.last_updated_date,
        "stageKeys": [],
    });
    if let Some(d) = &k.description {
        v["description"] = json!(d);
    }
    if let Some(c) = &k.customer_id {
        v["customerId"] = json!(c);
    }
    if with_value {
        v["value"] = json!(k.value);
    }
    v
}

/// 40 characters of [A-Za-z0-9] from the system's secure random source.
fn generate_value() -> Result<String, Reply> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let random = rustls::crypto::ring::default_provider().secure_random;
    let mut out = String::with_capacity(GENERATED_VALUE_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_VALUE_LEN {
        random.fill(&mut buf).map_err(|_| {
            Reply::error(
                500,
                "InternalServerErrorException",
                "no secure random source for a key value",
            )
        })?;
        // 248 = 4 × 62: rejecting larger bytes keeps every character
        // equally likely.
        for b in buf.iter().filter(|b| **b < 248) {
            if out.len() == GENERATED_VALUE_LEN {
                break;
            }
            out.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    Ok(out)
}

/// An API key's name: at most 1024 characters (API Gateway's limit).
fn check_key_name(name: &str) -> Result<(), Reply> {
    if name.chars().count() > 1024 {
        return Err(bad("API Key name should be at most 1024 characters"));
    }
    Ok(())
}

fn check_key_value(value: &str) -> Result<(), Reply> {
    if value.len() < *KEY_VALUE_LEN.start() {
        return Err(bad("API Key value should be at least 20 characters"));
    }
    if value.len() > *KEY_VALUE_LEN.end() {
        return Err(bad("API Key value should be at most 128 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad(
            "API Key value may contain only printable ASCII characters without spaces",
        ));
    }
    Ok(())
}

/// `create-api-key`. As in API Gateway, a key is disabled unless
/// `enabled` is true, and the answer carries its value.
pub(super) fn create_key(admin: &Admin, state: &mut AdminState, body: &[u8]) -> Reply {
    let rec = match new_key(admin, state, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut next = state.clone();
    next.keys.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_key(&rec)) {
        Ok(()) => Reply::json(201, &key_json(&rec, true)),
        Err(r) => r,
    }
}

fn new_key(admin: &Admin, state: &AdminState, body: &[u8]) -> Result<ApiKeyRecord, Reply> {
    let req = object(body)?;
    let name = required_name(&req)?;
    check_key_name(&name)?;
    let description = opt_str(&req, "description")?.map(str::to_owned);
    let customer_id = opt_str(&req, "customerId")?.map(str::to_owned);
    let enabled = match req.get("enabled") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("Invalid enabled: must be true or false")),
    };
    // Stage keys predate usage plans; accepted and not used.
    if !matches!(
        req.get("stageKeys"),
        None | Some(Value::Null) | Some(Value::Array(_))
    ) {
        return Err(bad("Invalid stageKeys: must be a list"));
    }
    let value = match opt_str(&req, "value")? {
        Some(v) => {
            check_key_value(v)?;
            v.to_owned()
        }
        None => generate_value()?,
    };
    if state.keys.values().any(|k| k.value == value) || admin.control.has_config_key_value(&value) {
        return Err(conflict("API Key value already exists"));
    }
    let id = fresh_id(10, |k| state.keys.contains_key(k));
    let t = now();
    Ok(ApiKeyRecord {
        id,
        name,
        description,
        customer_id,
        enabled,
        value,
        created_date: t,
        last_updated_date: t,
    })
}

/// `get-api-keys`: `name` (a prefix), `customerId`, `includeValues`.
pub(super) fn list_keys(state: &AdminState, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let with_values = super::flag(param("includeValues"));
    let name = param("name");
    let customer = param("customerId");
    let items: Vec<Value> = state
        .keys
        .values()
        .filter(|k| name.as_deref().is_none_or(|n| k.name.starts_with(n)))
        .filter(|k| {
            customer
                .as_deref()
                .is_none_or(|c| k.customer_id.as_deref() == Some(c))
        })
        .map(|k| key_json(k, with_values))
        .collect();
    super::list_reply(items, param)
}

pub(super) fn get_key(state: &AdminState, id: &str, with_value: bool) -> Reply {
    match state.keys.get(id) {
        Some(k) => Reply::json(200, &key_json(k, with_value)),
        None => not_found_key(id),
    }
}

/// `update-api-key`: `replace` on `/name`, `/description`, `/enabled`,
/// `/customerId`.
pub(super) fn patch_key(admin: &Admin, state: &mut AdminState, id: &str, body: &[u8]) -> Reply {
    let Some(existing) = state.keys.get(id) else {
        return not_found_key(id);
    };
    let ops = match patch_ops(body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut rec = existing.clone();
    for (op, path, value) in ops {
        match (op.as_str(), path.as_str()) {
            ("replace", "/name") => match value {
                Some(v) if !v.is_empty() => {
                    if let Err(r) = check_key_name(&v) {
                        return r;
                    }
                    rec.name = v
                }
                _ => return bad("Invalid patch: /name needs a value"),
            },
            ("replace", "/description") => rec.description = value,
            ("replace", "/customerId") => rec.customer_id = value,
            ("replace", "/enabled") => match value.as_deref() {
                Some("true") => rec.enabled = true,
                Some("false") => rec.enabled = false,
                _ => return bad("Invalid patch: /enabled must be true or false"),
            },
            _ => {
                return bad(format!(
                    "Invalid patch operation specified. Must be replace on /name, /description, /enabled or /customerId; got {op} {path}"
                ))
            }
        }
    }
    rec.last_updated_date = now();
    let mut next = state.clone();
    next.keys.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_key(&rec)) {
        Ok(()) => Reply::json(200, &key_json(&rec, false)),
        Err(r) => r,
    }
}

/// `delete-api-key`: the key leaves every usage plan too. Its record goes
/// first (the commit point); the plans are rewritten after.
pub(super) fn delete_key(admin: &Admin, state: &mut AdminState, id: &str) -> Reply {
    if !state.keys.contains_key(id) {
        return not_found_key(id);
    }
    let mut next = state.clone();
    next.keys.remove(id);
    let mut changed = Vec::new();
    for plan in next.plans.values_mut() {
        if plan.keys.iter().any(|k| k == id) {
            plan.keys.retain(|k| k != id);
            changed.push(plan.clone());
        }
    }
    let write = |s: &Store| {
        s.delete_key(id)?;
        // The key is gone once its record is; a link left in a plan's
        // record is dropped when the state is next loaded.
        for p in &changed {
            if let Err(e) = s.put_plan(p) {
                tracing::warn!(plan = %p.id, error = %e, "cannot rewrite a usage plan after deleting one of its keys");
            }
        }
        Ok(())
    };
    match commit(admin, state, next, write) {
        Ok(()) => Reply::json(202, &json!({})),
        Err(r) => r,
    }
}

// ---- Usage plans ----

fn plan_json(p: &UsagePlanRecord) -> Value {
    let mut v = json!({
        "id": p.id,
        "name": p.name,
        "apiStages": p.api_stages.iter().map(|s| json!({"apiId": s.api_id, "stage": s.stage})).collect::<Vec<_>>(),
    });
    if let Some(d) = &p.description {
        v["description"] = json!(d);
    }
    if let Some(t) = &p.throttle {
        v["throttle"] = json!({"burstLimit": t.burst_limit, "rateLimit": t.rate_limit});
    }
    if let Some(q) = &p.quota {
        v["quota"] = json!({"limit": q.limit, "offset": q.offset, "period": q.period});
    }
    v
}

/// A throttle or quota being built from its fields, checked once complete.
#[derive(Default)]
struct Limits {
    rate: Option<f64>,
    burst: Option<u64>,
    limit: Option<u64>,
    period: Option<String>,
    offset: Option<u64>,
}

impl Limits {
    fn of(plan: &UsagePlanRecord) -> Limits {
        Limits {
            rate: plan.throttle.map(|t| t.rate_limit),
            burst: plan.throttle.map(|t| t.burst_limit),
            limit: plan.quota.as_ref().map(|q| q.limit),
            period: plan.quota.as_ref().map(|q| q.period.clone()),
            offset: plan.quota.as_ref().map(|q| q.offset),
        }
    }

    fn throttle(&self) -> Result<Option<ThrottleRecord>, Reply> {
        match (self.rate, self.burst) {
            (None, None) => Ok(None),
            (Some(rate), Some(burst)) => {
                if !(rate > 0.0 && rate.is_finite()) {
                    return Err(bad(
                        "Invalid throttle: rateLimit must be a number greater than 0",
                    ));
                }
                if burst == 0 {
                    return Err(bad("Invalid throttle: burstLimit must be at least 1"));
                }
                Ok(Some(ThrottleRecord {
                    rate_limit: rate,
                    burst_limit: burst,
                }))
            }
            _ => Err(bad(
                "Invalid throttle: both rateLimit and burstLimit are required",
            )),
        }
    }

    fn quota(&self) -> Result<Option<QuotaRecord>, Reply> {
        match (self.limit, &self.period) {
            (None, None) if self.offset.is_none() => Ok(None),
            (Some(limit), Some(period)) => {
                if limit == 0 {
                    return Err(bad("Invalid quota: limit must be at least 1"));
                }
                let offset = self.offset.unwrap_or(0);
                let max_offset = match period.as_str() {
                    "DAY" => 0,
                    "WEEK" => 6,
                    "MONTH" => 27,
                    other => {
                        return Err(bad(format!(
                            "Invalid quota period {other}: must be DAY, WEEK or MONTH"
                        )))
                    }
                };
                if offset > max_offset {
                    return Err(bad(format!(
                        "Invalid quota offset {offset}: for {period} it is 0 to {max_offset} days"
                    )));
                }
                Ok(Some(QuotaRecord {
                    limit,
                    offset,
                    period: period.clone(),
                }))
            }
            _ => Err(bad("Invalid quota: both limit and period are required")),
        }
    }
}

fn number_f64(v: Option<&Value>, what: &str) -> Result<Option<f64>, Reply> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| bad(format!("Invalid {what}"))),
        Some(_) => Err(bad(format!("Invalid {what}: must be a number"))),
    }
}

fn number_u64(v: Option<&Value>, what: &str) -> Result<Option<u64>, Reply> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or_else(|| {
            bad(format!(
                "Invalid {what}: must be a whole number of 0 or more"
            ))
        }),
        Some(_) => Err(bad(format!("Invalid {what}: must be a number"))),
    }
}

fn parse_f64(v: Option<&str>, what: &str) -> Result<f64, Reply> {
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(format!("Invalid patch: {what} needs a number")))
}

fn parse_u64(v: Option<&str>, what: &str) -> Result<u64, Reply> {
    v.and_then(|v| v.parse().ok())
        .ok_or_else(|| bad(format!("Invalid patch: {what} needs a whole number")))
}

/// A stage the gateway serves now: an API of the config file (by its
/// config id) or of the admin API (by its generated id).
fn check_stage(admin: &Admin, api: &str, stage: &str) -> Result<(), Reply> {
    let snap = admin.control.publisher().current();
    let host = format!("{api}.execute-api.local");
    match snap.find(Some(host.as_bytes()), Some(stage)) {
        (_, Some(_)) => Ok(()),
        (Some(_), None) => Err(Reply::error(
            404,
            "NotFoundException",
            format!("Invalid stage identifier specified {api}:{stage}"),
        )),
        (None, None) => Err(Reply::error(
            404,
            "NotFoundException",
            format!("Invalid API identifier specified {api}"),
        )),
    }
}

/// API Gateway's rule: a key may not be in two plans that share an API
/// stage (otherwise which plan's limits apply would be ambiguous).
fn check_key_stages(state: &AdminState, plan: &UsagePlanRecord, key: &str) -> Result<(), Reply> {
    for other in state.plans.values() {
        if other.id == plan.id || !other.keys.iter().any(|k| k == key) {
            continue;
        }
        if let Some(s) = plan
            .api_stages
            .iter()
            .find(|s| other.api_stages.contains(s))
        {
            return Err(conflict(format!(
                "Usage Plan {} cannot be added because API Key {key} cannot reference multiple Usage Plans with the same API Stage: {}:{}",
                plan.id, s.api_id, s.stage
            )));
        }
    }
    Ok(())
}

/// `create-usage-plan`.
pub(super) fn create_plan(admin: &Admin, state: &mut AdminState, body: &[u8]) -> Reply {
    let rec = match new_plan(admin, state, body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut next = state.clone();
    next.plans.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_plan(&rec)) {
        Ok(()) => Reply::json(201, &plan_json(&rec)),
        Err(r) => r,
    }
}

fn new_plan(admin: &Admin, state: &AdminState, body: &[u8]) -> Result<UsagePlanRecord, Reply> {
    let req = object(body)?;
    let name = required_name(&req)?;
    let description = opt_str(&req, "description")?.map(str::to_owned);
    let mut api_stages: Vec<ApiStageRecord> = Vec::new();
    match req.get("apiStages") {
        None | Some(Value::Null) => {}
        Some(Value::Array(list)) => {
            for s in list {
                let (Some(api), Some(stage)) = (
                    s.get("apiId").and_then(Value::as_str),
                    s.get("stage").and_then(Value::as_str),
                ) else {
                    return Err(bad("Invalid apiStages: each needs apiId and stage"));
                };
                if s.get("throttle")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    return Err(bad(
                        "Per-method throttles in apiStages are not supported; use the stage's method settings",
                    ));
                }
                let rec = ApiStageRecord {
                    api_id: api.to_owned(),
                    stage: stage.to_owned(),
                };
                if api_stages.contains(&rec) {
                    return Err(bad(format!("Duplicate API stage {api}:{stage}")));
                }
                check_stage(admin, api, stage)?;
                api_stages.push(rec);
            }
        }
        Some(_) => return Err(bad("Invalid apiStages: must be a list")),
    }
    let mut limits = Limits::default();
    match req.get("throttle") {
        None | Some(Value::Null) => {}
        Some(t @ Value::Object(_)) => {
            limits.rate = number_f64(t.get("rateLimit"), "throttle rateLimit")?;
            limits.burst = number_u64(t.get("burstLimit"), "throttle burstLimit")?;
        }
        Some(_) => return Err(bad("Invalid throttle: must be an object")),
    }
    match req.get("quota") {
        None | Some(Value::Null) => {}
        Some(q @ Value::Object(_)) => {
            limits.limit = number_u64(q.get("limit"), "quota limit")?;
            limits.offset = number_u64(q.get("offset"), "quota offset")?;
            limits.period = match q.get("period") {
                None | Some(Value::Null) => None,
                Some(Value::String(p)) => Some(p.clone()),
                Some(_) => return Err(bad("Invalid quota period: must be DAY, WEEK or MONTH")),
            };
        }
        Some(_) => return Err(bad("Invalid quota: must be an object")),
    }
    let throttle = limits.throttle()?;
    let quota = limits.quota()?;
    let id = fresh_id(6, |p| {
        state.plans.contains_key(p) || admin.control.has_config_plan(p)
    });
    Ok(UsagePlanRecord {
        id,
        name,
        description,
        api_stages,
        throttle,
        quota,
        keys: Vec::new(),
        created_date: now(),
    })
}

/// `get-usage-plans`, optionally only those holding `keyId`.
pub(super) fn list_plans(state: &AdminState, param: &dyn Fn(&str) -> Option<String>) -> Reply {
    let key = param("keyId");
    let items: Vec<Value> = state
        .plans
        .values()
        .filter(|p| key.as_deref().is_none_or(|k| p.keys.iter().any(|x| x == k)))
        .map(plan_json)
        .collect();
    super::list_reply(items, param)
}

pub(super) fn get_plan(state: &AdminState, id: &str) -> Reply {
    match state.plans.get(id) {
        Some(p) => Reply::json(200, &plan_json(p)),
        None => not_found_plan(id),
    }
}

/// `update-usage-plan`: `replace` on `/name`, `/description`,
/// `/throttle/rateLimit|burstLimit`, `/quota/limit|period|offset`;
/// `remove` on `/throttle` and `/quota`; `add`/`remove` on `/apiStages`
/// with the value `apiId:stage`.
pub(super) fn patch_plan(admin: &Admin, state: &mut AdminState, id: &str, body: &[u8]) -> Reply {
    let Some(existing) = state.plans.get(id) else {
        return not_found_plan(id);
    };
    let ops = match patch_ops(body) {
        Ok(o) => o,
        Err(r) => return r,
    };
    let mut rec = existing.clone();
    let mut limits = Limits::of(&rec);
    let mut added = Vec::new();
    for (op, path, value) in ops {
        let value = value.as_deref();
        match (op.as_str(), path.as_str()) {
            ("replace", "/name") => match value {
                Some(v) if !v.is_empty() => rec.name = v.to_owned(),
                _ => return bad("Invalid patch: /name needs a value"),
            },
            ("replace", "/description") => rec.description = value.map(str::to_owned),
            ("replace", "/throttle/rateLimit") => {
                limits.rate = match parse_f64(value, &path) {
                    Ok(v) => Some(v),
                    Err(r) => return r,
                }
            }
            ("replace", "/throttle/burstLimit") => {
                limits.burst = match parse_u64(value, &path) {
                    Ok(v) => Some(v),
                    Err(r) => return r,
                }
            }
            ("remove", "/throttle") => (limits.rate, limits.burst) = (None, None),
            ("replace", "/quota/limit") => {
                limits.limit = match parse_u64(value, &path) {
                    Ok(v) => Some(v),
                    Err(r) => return r,
                }
            }
            ("replace", "/quota/offset") => {
                limits.offset = match parse_u64(value, &path) {
                    Ok(v) => Some(v),
                    Err(r) => return r,
                }
            }
            ("replace", "/quota/period") => match value {
                Some(v) => limits.period = Some(v.to_owned()),
                None => return bad("Invalid patch: /quota/period needs a value"),
            },
            ("remove", "/quota") => {
                (limits.limit, limits.period, limits.offset) = (None, None, None)
            }
            ("add" | "remove", "/apiStages") => {
                let Some((api, stage)) = value
                    .and_then(|v| v.split_once(':'))
                    .filter(|(a, s)| !a.is_empty() && !s.is_empty())
                else {
                    return bad("Invalid patch: /apiStages needs a value apiId:stage");
                };
                let s = ApiStageRecord {
                    api_id: api.to_owned(),
                    stage: stage.to_owned(),
                };
                if op == "add" {
                    if rec.api_stages.contains(&s) {
                        return conflict(format!(
                            "API stage {api}:{stage} is already in the usage plan"
                        ));
                    }
                    if let Err(r) = check_stage(admin, api, stage) {
                        return r;
                    }
                    rec.api_stages.push(s.clone());
                    added.push(s);
                } else {
                    let before = rec.api_stages.len();
                    rec.api_stages.retain(|x| x != &s);
                    if rec.api_stages.len() == before {
                        return Reply::error(
                            404,
                            "NotFoundException",
                            format!("API stage {api}:{stage} is not in the usage plan"),
                        );
                    }
                }
            }
            _ => {
                return bad(format!(
                    "Invalid patch operation specified. Must be replace on /name, /description, /throttle/rateLimit, /throttle/burstLimit, /quota/limit, /quota/period, /quota/offset; remove on /throttle, /quota; add or remove on /apiStages; got {op} {path}"
                ))
            }
        }
    }
    rec.throttle = match limits.throttle() {
        Ok(t) => t,
        Err(r) => return r,
    };
    rec.quota = match limits.quota() {
        Ok(q) => q,
        Err(r) => return r,
    };
    if !added.is_empty() {
        for key in &rec.keys {
            if let Err(r) = check_key_stages(state, &rec, key) {
                return r;
            }
        }
    }
    let mut next = state.clone();
    next.plans.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_plan(&rec)) {
        Ok(()) => Reply::json(200, &plan_json(&rec)),
        Err(r) => r,
    }
}

/// `delete-usage-plan`: refused while the plan names API stages (API
/// Gateway's answer; they are removed with `remove /apiStages` first). Its
/// keys leave it; the keys themselves stay.
pub(super) fn delete_plan(admin: &Admin, state: &mut AdminState, id: &str) -> Reply {
    let Some(plan) = state.plans.get(id) else {
        return not_found_plan(id);
    };
    if let Some(s) = plan.api_stages.first() {
        return bad(format!(
            "Cannot delete Usage Plan {id} because there are API Stages associated with it, including {}:{}",
            s.api_id, s.stage
        ));
    }
    let mut next = state.clone();
    next.plans.remove(id);
    match commit(admin, state, next, |s| s.delete_plan(id)) {
        Ok(()) => Reply::json(202, &json!({})),
        Err(r) => r,
    }
}

// ---- Usage plan keys ----

fn plan_key_json(k: &ApiKeyRecord) -> Value {
    json!({"id": k.id, "type": "API_KEY", "name": k.name, "value": k.value})
}

/// `create-usage-plan-key`.
pub(super) fn create_plan_key(
    admin: &Admin,
    state: &mut AdminState,
    plan_id: &str,
    body: &[u8],
) -> Reply {
    let Some(plan) = state.plans.get(plan_id) else {
        return not_found_plan(plan_id);
    };
    let req = match object(body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let (key_id, key_type) = match (opt_str(&req, "keyId"), opt_str(&req, "keyType")) {
        (Ok(Some(k)), Ok(Some(t))) => (k, t),
        _ => return bad("keyId and keyType are required"),
    };
    if key_type != "API_KEY" {
        return bad(format!(
            "Invalid key type {key_type}: the only key type is API_KEY"
        ));
    }
    let Some(key) = state.keys.get(key_id) else {
        return not_found_key(key_id);
    };
    if plan.keys.iter().any(|k| k == key_id) {
        return conflict(format!(
            "API Key {key_id} is already in usage plan {plan_id}"
        ));
    }
    if let Err(r) = check_key_stages(state, plan, key_id) {
        return r;
    }
    let reply = Reply::json(201, &plan_key_json(key));
    let mut rec = plan.clone();
    rec.keys.push(key_id.to_owned());
    let mut next = state.clone();
    next.plans.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_plan(&rec)) {
        Ok(()) => reply,
        Err(r) => r,
    }
}

/// The keys of a plan (links to keys that are gone are skipped).
fn plan_keys<'a>(
    state: &'a AdminState,
    plan: &'a UsagePlanRecord,
) -> impl Iterator<Item = &'a ApiKeyRecord> {
    plan.keys.iter().filter_map(|k| state.keys.get(k))
}

/// `get-usage-plan-keys`, optionally only names starting with `name`.
pub(super) fn list_plan_keys(
    state: &AdminState,
    plan_id: &str,
    param: &dyn Fn(&str) -> Option<String>,
) -> Reply {
    let Some(plan) = state.plans.get(plan_id) else {
        return not_found_plan(plan_id);
    };
    let name = param("name");
    let items: Vec<Value> = plan_keys(state, plan)
        .filter(|k| name.as_deref().is_none_or(|n| k.name.starts_with(n)))
        .map(plan_key_json)
        .collect();
    super::list_reply(items, param)
}

fn not_found_plan_key() -> Reply {
    Reply::error(
        404,
        "NotFoundException",
        "Invalid Usage Plan Key identifier specified",
    )
}

pub(super) fn get_plan_key(state: &AdminState, plan_id: &str, key_id: &str) -> Reply {
    let Some(plan) = state.plans.get(plan_id) else {
        return not_found_plan(plan_id);
    };
    match plan_keys(state, plan).find(|k| k.id == key_id) {
        Some(k) => Reply::json(200, &plan_key_json(k)),
        None => not_found_plan_key(),
    }
}

/// `delete-usage-plan-key`: the key leaves the plan; the key stays.
pub(super) fn delete_plan_key(
    admin: &Admin,
    state: &mut AdminState,
    plan_id: &str,
    key_id: &str,
) -> Reply {
    let Some(plan) = state.plans.get(plan_id) else {
        return not_found_plan(plan_id);
    };
    if !plan.keys.iter().any(|k| k == key_id) {
        return not_found_plan_key();
    }
    let mut rec = plan.clone();
    rec.keys.retain(|k| k != key_id);
    let mut next = state.clone();
    next.plans.insert(rec.id.clone(), rec.clone());
    match commit(admin, state, next, |s| s.put_plan(&rec)) {
        Ok(()) => Reply::json(202, &json!({})),
        Err(r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_are_40_alphanumerics_and_differ() {
        let a = generate_value().ok().unwrap_or_default();
        let b = generate_value().ok().unwrap_or_default();
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
        assert!(check_key_value(&a).is_ok());
    }

    #[test]
    fn key_values_follow_api_gateway_rules() {
        assert!(check_key_value("short").is_err());
        assert!(check_key_value(&"x".repeat(20)).is_ok());
        assert!(check_key_value(&"x".repeat(128)).is_ok());
        assert!(check_key_value(&"x".repeat(129)).is_err());
        assert!(check_key_value("twenty characters with spaces").is_err());
    }

    #[test]
    fn throttles_and_quotas_need_all_their_parts() {
        let mut l = Limits::default();
        assert!(matches!(l.throttle(), Ok(None)));
        assert!(matches!(l.quota(), Ok(None)));
        l.rate = Some(5.0);
        assert!(l.throttle().is_err(), "burst missing");
        l.burst = Some(0);
        assert!(l.throttle().is_err(), "burst 0");
        l.burst = Some(2);
        assert!(matches!(l.throttle(), Ok(Some(_))));
        l.limit = Some(10);
        assert!(l.quota().is_err(), "period missing");
        for (period, offset, ok) in [
            ("DAY", 0, true),
            ("DAY", 1, false),
            ("WEEK", 6, true),
            ("WEEK", 7, false),
            ("MONTH", 27, true),
            ("day", 0, false),
            ("YEAR", 0, false),
        ] {
            l.period = Some(period.to_owned());
            l.offset = Some(offset);
            assert_eq!(l.quota().is_ok(), ok, "{period} {offset}");
        }
    }
}
