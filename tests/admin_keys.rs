//! API keys, usage plans and usage plan keys through the admin API, end to
//! end: created over the admin listener, enforced by the gateway on every
//! shard (403 without a usable key, per-key throttle and quota 429s),
//! disabling and unlinking, durability across `kill -9`, bad inputs that
//! change nothing, the config file winning an id clash, and the AWS CLI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use support::gateway::{keyed_api, ADMIN_TOKEN};
use support::{Gateway, RawClient, Response};

/// A value of an `[[api_keys]]` entry of the config file.
const CONFIG_KEY: &str = "config-key-0123456789abcdef";

/// Config API `k` (stages `p` and `q`, the default API), a config plan and
/// key, and the admin listener; two shards.
fn gateway() -> Gateway {
    Gateway::builder()
        .api("k", &keyed_api())
        .stage("k", "p", &[])
        .stage("k", "q", &[])
        .default_api("k")
        .shards(2)
        .admin()
        .extra(&format!(
            "[[usage_plans]]\nid = \"cfg\"\napi_stages = [\"k/q\"]\n[[api_keys]]\nname = \"cfg\"\nvalue = \"{CONFIG_KEY}\"\nusage_plans = [\"cfg\"]\n"
        ))
        .start()
}

fn call(admin: SocketAddr, method: &str, path: &str, body: &str) -> Response {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: admin\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body.as_bytes());
    RawClient::connect(admin).request(&req)
}

/// Imports `doc` through the admin API and deploys it to `stage`; its id.
fn import_and_deploy(admin: SocketAddr, doc: &str, stage: &str) -> String {
    let r = call(admin, "POST", "/restapis?mode=import", doc);
    let id = created(r)["id"].as_str().unwrap().to_owned();
    created(call(
        admin,
        "POST",
        &format!("/restapis/{id}/deployments"),
        &json!({ "stageName": stage }).to_string(),
    ));
    id
}

fn created(r: Response) -> Value {
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()
}

/// One request on a fresh connection (connections land on either shard).
fn keyed(gw: &Gateway, host: &str, path: &str, key: Option<&str>) -> Response {
    let key = key.map_or(String::new(), |k| format!("x-api-key: {k}\r\n"));
    RawClient::connect(gw.addr).request(
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{key}Connection: close\r\n\r\n").as_bytes(),
    )
}

fn statuses(gw: &Gateway, path: &str, key: &str, n: usize) -> Vec<u16> {
    (0..n)
        .map(|_| keyed(gw, "x", path, Some(key)).status)
        .collect()
}

fn patch(admin: SocketAddr, path: &str, ops: &str) -> Response {
    call(
        admin,
        "PATCH",
        path,
        &format!(r#"{{"patchOperations": {ops}}}"#),
    )
}

#[test]
fn keys_and_plans_are_enforced_and_survive_kill_9() {
    let gw = gateway();
    let admin = gw.admin.expect("admin listener");
    assert_eq!(keyed(&gw, "x", "/p/keyed", None).status, 403);

    // A key with its value chosen, enabled.
    let value = "partner-a-0123456789abcdefghij";
    let key = created(call(
        admin,
        "POST",
        "/apikeys",
        &json!({"name": "partner-a", "description": "first", "enabled": true, "value": value})
            .to_string(),
    ));
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(key["name"], "partner-a");
    assert_eq!(key["description"], "first");
    assert_eq!(key["enabled"], true);
    assert_eq!(key["value"], value, "create answers with the value");
    assert_eq!(key["stageKeys"], json!([]));
    assert!(key["createdDate"].as_u64().unwrap() > 1_700_000_000);
    assert!(key["lastUpdatedDate"].is_u64());

    // A plan on the config API's stage: a small quota, a loose throttle.
    let plan = created(call(
        admin,
        "POST",
        "/usageplans",
        &json!({"name": "gold", "description": "d",
                "apiStages": [{"apiId": "k", "stage": "p"}],
                "throttle": {"rateLimit": 100.0, "burstLimit": 50},
                "quota": {"limit": 5, "period": "DAY"}})
        .to_string(),
    ));
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!(plan["name"], "gold");
    assert_eq!(plan["apiStages"], json!([{"apiId": "k", "stage": "p"}]));
    assert_eq!(
        plan["throttle"],
        json!({"burstLimit": 50, "rateLimit": 100.0})
    );
    assert_eq!(
        plan["quota"],
        json!({"limit": 5, "offset": 0, "period": "DAY"})
    );
    // A key in no plan is refused like an unknown one.
    assert_eq!(keyed(&gw, "x", "/p/keyed", Some(value)).status, 403);

    let pk = created(call(
        admin,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        &json!({"keyId": key_id, "keyType": "API_KEY"}).to_string(),
    ));
    assert_eq!(
        pk,
        json!({"id": key_id, "type": "API_KEY", "name": "partner-a", "value": value})
    );
    // Acknowledged = live on every shard.
    assert_eq!(statuses(&gw, "/p/keyed", value, 3), vec![200, 200, 200]);
    let r = keyed(&gw, "x", "/p/keyed", None);
    assert_eq!(r.status, 403);
    assert_eq!(r.json(), json!({"message": "Forbidden"}));
    // The plan covers k/p only.
    assert_eq!(keyed(&gw, "x", "/q/keyed", Some(value)).status, 403);
    // Methods without apiKeyRequired ignore keys.
    assert_eq!(keyed(&gw, "x", "/p/open", None).status, 200);

    // A second plan with a tight throttle, on an API of the admin API.
    let api_id = import_and_deploy(admin, &keyed_api(), "live");
    let tight = created(call(
        admin,
        "POST",
        "/usageplans",
        &json!({"name": "tight", "apiStages": [{"apiId": api_id, "stage": "live"}],
                "throttle": {"rateLimit": 0.5, "burstLimit": 2}})
        .to_string(),
    ));
    let tight_id = tight["id"].as_str().unwrap().to_owned();
    created(call(
        admin,
        "POST",
        &format!("/usageplans/{tight_id}/keys"),
        &json!({"keyId": key_id, "keyType": "API_KEY"}).to_string(),
    ));
    let host = format!("{api_id}.execute-api.test");
    let tight_statuses: Vec<u16> = (0..4)
        .map(|_| keyed(&gw, &host, "/live/keyed", Some(value)).status)
        .collect();
    assert_eq!(tight_statuses, vec![200, 200, 429, 429], "burst 2 per key");
    let r = keyed(&gw, &host, "/live/keyed", Some(value));
    assert_eq!(r.json(), json!({"message": "Too Many Requests"}));

    // Quota counts are saved every 2 s; kill -9 once two saves ended after
    // the requests (counted, not timed: a fixed sleep could kill in the
    // middle of a save, or after one that read the counts too early).
    gw.wait_quota_saves(std::time::SystemTime::now(), 2, Duration::from_secs(20));
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", &format!("/apikeys/{key_id}"), "");
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "partner-a");
    assert!(r.json().get("value").is_none(), "no value unless asked");
    let r = call(
        admin,
        "GET",
        &format!("/apikeys/{key_id}?includeValue=true"),
        "",
    );
    assert_eq!(r.json()["value"], value);
    let r = call(admin, "GET", &format!("/usageplans/{plan_id}"), "");
    assert_eq!(r.json(), plan);
    let r = call(admin, "GET", &format!("/usageplans/{plan_id}/keys"), "");
    assert_eq!(r.json()["item"], json!([pk]));

    // 3 of the day's 5 were used before the restart.
    let after = (0..4)
        .map(|_| keyed(&gw, "x", "/p/keyed", Some(value)))
        .collect::<Vec<_>>();
    let codes: Vec<u16> = after.iter().map(|r| r.status).collect();
    assert_eq!(codes, vec![200, 200, 429, 429]);
    assert_eq!(after[2].json(), json!({"message": "Limit Exceeded"}));
    assert_eq!(
        after[2].header("x-amzn-ErrorType"),
        Some("LimitExceededException")
    );

    // Disabled: 403 on every shard; enabled again: the quota still counts.
    let r = patch(
        admin,
        &format!("/apikeys/{key_id}"),
        r#"[{"op": "replace", "path": "/enabled", "value": "false"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(statuses(&gw, "/p/keyed", value, 4), vec![403; 4]);
    let r = patch(
        admin,
        &format!("/apikeys/{key_id}"),
        r#"[{"op": "replace", "path": "/enabled", "value": "true"},
            {"op": "replace", "path": "/name", "value": "partner-b"}]"#,
    );
    assert_eq!(r.json()["name"], "partner-b");
    assert_eq!(statuses(&gw, "/p/keyed", value, 2), vec![429, 429]);

    // More quota through PATCH; then the key leaves the plan.
    let r = patch(
        admin,
        &format!("/usageplans/{plan_id}"),
        r#"[{"op": "replace", "path": "/quota/limit", "value": "1000"}]"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["quota"]["limit"], 1000);
    assert_eq!(statuses(&gw, "/p/keyed", value, 1), vec![200]);
    let r = call(
        admin,
        "DELETE",
        &format!("/usageplans/{plan_id}/keys/{key_id}"),
        "",
    );
    assert_eq!(r.status, 202);
    assert_eq!(statuses(&gw, "/p/keyed", value, 4), vec![403; 4]);
    let r = call(
        admin,
        "GET",
        &format!("/usageplans/{plan_id}/keys/{key_id}"),
        "",
    );
    assert_eq!(r.status, 404);
    // Still in the other plan.
    let r = call(admin, "GET", &format!("/usageplans?keyId={key_id}"), "");
    let ids: Vec<String> = r.json()["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![tight_id.clone()]);

    // All of it survives another kill -9.
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    assert_eq!(statuses(&gw, "/p/keyed", value, 2), vec![403, 403]);
    let r = call(admin, "GET", &format!("/apikeys/{key_id}"), "");
    assert_eq!(r.json()["name"], "partner-b");
    assert_eq!(r.json()["enabled"], true);
    let r = call(admin, "GET", &format!("/usageplans/{plan_id}"), "");
    assert_eq!(r.json()["quota"]["limit"], 1000);
    let host = format!("{api_id}.execute-api.test");
    assert_eq!(keyed(&gw, &host, "/live/keyed", Some(value)).status, 200);

    // Deleting the key removes it from its plans.
    assert_eq!(
        call(admin, "DELETE", &format!("/apikeys/{key_id}"), "").status,
        202
    );
    assert_eq!(keyed(&gw, &host, "/live/keyed", Some(value)).status, 403);
    let r = call(admin, "GET", &format!("/usageplans/{tight_id}/keys"), "");
    assert_eq!(r.json()["item"], json!([]));
    // A plan that names API stages cannot be deleted (API Gateway's
    // answer); removing its stage first lets it go.
    let r = call(admin, "DELETE", &format!("/usageplans/{tight_id}"), "");
    refused(&r, 400, "BadRequestException");
    assert_eq!(
        r.json()["message"],
        format!(
            "Cannot delete Usage Plan {tight_id} because there are API Stages associated with it, including {api_id}:live"
        )
    );
    let r = patch(
        admin,
        &format!("/usageplans/{tight_id}"),
        &format!(r#"[{{"op": "remove", "path": "/apiStages", "value": "{api_id}:live"}}]"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["apiStages"], json!([]));
    assert_eq!(
        call(admin, "DELETE", &format!("/usageplans/{tight_id}"), "").status,
        202
    );
    assert_eq!(
        call(admin, "GET", &format!("/usageplans/{tight_id}"), "").status,
        404
    );
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", "/apikeys", "");
    assert_eq!(r.json()["item"], json!([]));
    let r = call(admin, "GET", "/usageplans", "");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 1);
}

/// Asserts an AWS error: status, `x-amzn-ErrorType` and a message.
fn refused(r: &Response, status: u16, kind: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.header("x-amzn-ErrorType"), Some(kind), "{}", r.text());
    assert!(r.json()["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let gw = gateway();
    let admin = gw.admin.expect("admin listener");
    let value = "valid-value-0123456789abcdef";
    let key = created(call(
        admin,
        "POST",
        "/apikeys",
        &json!({"name": "a", "value": value}).to_string(),
    ));
    let key_id = key["id"].as_str().unwrap().to_owned();
    assert_eq!(key["enabled"], false, "disabled unless enabled is true");
    // A generated value: 40 of [A-Za-z0-9].
    let generated = created(call(
        admin,
        "POST",
        "/apikeys",
        r#"{"name": "g", "enabled": true, "stageKeys": []}"#,
    ));
    let gv = generated["value"].as_str().unwrap();
    assert_eq!(gv.len(), 40);
    assert!(gv.bytes().all(|b| b.is_ascii_alphanumeric()), "{gv}");
    let plan = created(call(
        admin,
        "POST",
        "/usageplans",
        r#"{"name": "p", "apiStages": [{"apiId": "k", "stage": "p"}], "quota": {"limit": 10, "period": "WEEK", "offset": 1}}"#,
    ));
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    let files = |sub: &str| {
        std::fs::read_dir(gw.dir.path().join("state").join(sub))
            .unwrap()
            .count()
    };
    assert_eq!((files("apikeys"), files("usageplans")), (2, 1));

    let bad_keys = [
        (
            r#"{"name": "s", "value": "short"}"#.to_owned(),
            400,
            "BadRequestException",
        ),
        (
            json!({"name": "l", "value": "x".repeat(129)}).to_string(),
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "sp", "value": "has spaces in it 0123456789"}"#.to_owned(),
            400,
            "BadRequestException",
        ),
        (
            r#"{"value": "no-name-0123456789abcdef"}"#.to_owned(),
            400,
            "BadRequestException",
        ),
        (
            json!({"name": "n".repeat(1025)}).to_string(),
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "e", "enabled": "yes"}"#.to_owned(),
            400,
            "BadRequestException",
        ),
        ("{not json".to_owned(), 400, "BadRequestException"),
        (
            json!({"name": "dup", "value": value}).to_string(),
            409,
            "ConflictException",
        ),
        (
            json!({"name": "cfg", "value": CONFIG_KEY}).to_string(),
            409,
            "ConflictException",
        ),
    ];
    for (body, status, kind) in &bad_keys {
        refused(&call(admin, "POST", "/apikeys", body), *status, kind);
    }
    let bad_plans = [
        (
            r#"{"name": "q", "quota": {"limit": 5, "period": "YEAR"}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "q", "quota": {"limit": 5, "period": "day"}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "q", "quota": {"limit": 5, "period": "DAY", "offset": 2}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "q", "quota": {"limit": 0, "period": "DAY"}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "q", "quota": {"period": "DAY"}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "t", "throttle": {"rateLimit": 5}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "t", "throttle": {"rateLimit": -1, "burstLimit": 5}}"#,
            400,
            "BadRequestException",
        ),
        (
            r#"{"name": "t", "throttle": {"rateLimit": 1, "burstLimit": 1.5}}"#,
            400,
            "BadRequestException",
        ),
        (r#"{"apiStages": []}"#, 400, "BadRequestException"),
        (
            r#"{"name": "s", "apiStages": [{"apiId": "nope", "stage": "p"}]}"#,
            404,
            "NotFoundException",
        ),
        (
            r#"{"name": "s", "apiStages": [{"apiId": "k", "stage": "nope"}]}"#,
            404,
            "NotFoundException",
        ),
        (
            r#"{"name": "s", "apiStages": [{"apiId": "k"}]}"#,
            400,
            "BadRequestException",
        ),
    ];
    for (body, status, kind) in &bad_plans {
        refused(&call(admin, "POST", "/usageplans", body), *status, kind);
    }
    let link =
        |plan: &str, body: &str| call(admin, "POST", &format!("/usageplans/{plan}/keys"), body);
    let ok_link = json!({"keyId": key_id, "keyType": "API_KEY"}).to_string();
    refused(&link("nosuchplan", &ok_link), 404, "NotFoundException");
    refused(
        &link(&plan_id, r#"{"keyId": "nosuchkey", "keyType": "API_KEY"}"#),
        404,
        "NotFoundException",
    );
    refused(
        &link(
            &plan_id,
            &json!({"keyId": key_id, "keyType": "OTHER"}).to_string(),
        ),
        400,
        "BadRequestException",
    );
    refused(
        &link(&plan_id, &json!({"keyId": key_id}).to_string()),
        400,
        "BadRequestException",
    );
    for (method, path) in [
        ("GET", "/apikeys/nope".to_owned()),
        ("DELETE", "/apikeys/nope".to_owned()),
        ("GET", "/usageplans/nope".to_owned()),
        ("DELETE", "/usageplans/nope".to_owned()),
        ("GET", "/usageplans/nope/keys".to_owned()),
        ("GET", format!("/usageplans/{plan_id}/keys/{key_id}")),
        ("DELETE", format!("/usageplans/{plan_id}/keys/{key_id}")),
    ] {
        refused(&call(admin, method, &path, ""), 404, "NotFoundException");
    }
    // Bad patches change nothing (all operations of a call or none).
    let long_name =
        json!([{"op": "replace", "path": "/name", "value": "n".repeat(1025)}]).to_string();
    for ops in [
        r#"[{"op": "replace", "path": "/enabled", "value": "maybe"}]"#,
        r#"[{"op": "replace", "path": "/value", "value": "new-value-0123456789abcdef"}]"#,
        r#"[{"op": "replace", "path": "/name", "value": "renamed"}, {"op": "replace", "path": "/name"}]"#,
        &long_name,
    ] {
        refused(
            &patch(admin, &format!("/apikeys/{key_id}"), ops),
            400,
            "BadRequestException",
        );
    }
    for (ops, status) in [
        (
            r#"[{"op": "replace", "path": "/quota/period", "value": "YEAR"}]"#,
            400,
        ),
        (
            r#"[{"op": "replace", "path": "/quota/limit", "value": "many"}]"#,
            400,
        ),
        (
            r#"[{"op": "replace", "path": "/quota/limit", "value": "1"}, {"op": "replace", "path": "/quota/offset", "value": "9"}]"#,
            400,
        ),
        (
            r#"[{"op": "replace", "path": "/throttle/rateLimit", "value": "5"}]"#,
            400,
        ),
        (
            r#"[{"op": "add", "path": "/apiStages", "value": "k:nope"}]"#,
            404,
        ),
        (
            r#"[{"op": "add", "path": "/apiStages", "value": "k-p"}]"#,
            400,
        ),
        (
            r#"[{"op": "remove", "path": "/apiStages", "value": "k:q"}]"#,
            404,
        ),
        (
            r#"[{"op": "add", "path": "/apiStages", "value": "k:p"}]"#,
            409,
        ),
        (
            r#"[{"op": "replace", "path": "/productCode", "value": "x"}]"#,
            400,
        ),
    ] {
        let r = patch(admin, &format!("/usageplans/{plan_id}"), ops);
        assert_eq!(r.status, status, "{ops}: {}", r.text());
    }
    let r = call(admin, "GET", &format!("/usageplans/{plan_id}"), "");
    assert_eq!(r.json(), plan, "refused patches changed the plan");
    let r = call(admin, "GET", &format!("/apikeys/{key_id}"), "");
    assert_eq!(r.json()["name"], "a");
    let r = call(admin, "GET", "/apikeys", "");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 2);
    assert!(
        r.json()["item"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k.get("value").is_none()),
        "values only with includeValues=true"
    );
    let r = call(admin, "GET", "/apikeys?includeValues=true&name=a", "");
    assert_eq!(r.json()["item"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["item"][0]["value"], value);
    let r = call(admin, "GET", "/usageplans", "");
    assert_eq!(
        r.json()["item"],
        json!([plan]),
        "config plans are not listed"
    );
    assert_eq!((files("apikeys"), files("usageplans")), (2, 1));

    // A key may not be in two plans that share an API stage.
    assert_eq!(link(&plan_id, &ok_link).status, 201);
    refused(&link(&plan_id, &ok_link), 409, "ConflictException");
    let other = created(call(
        admin,
        "POST",
        "/usageplans",
        r#"{"name": "o", "apiStages": [{"apiId": "k", "stage": "q"}]}"#,
    ));
    let other_id = other["id"].as_str().unwrap();
    assert_eq!(link(other_id, &ok_link).status, 201);
    let r = patch(
        admin,
        &format!("/usageplans/{other_id}"),
        r#"[{"op": "add", "path": "/apiStages", "value": "k:p"}]"#,
    );
    refused(&r, 409, "ConflictException");
    // A disabled key in a plan is still refused by the gateway.
    assert_eq!(keyed(&gw, "x", "/p/keyed", Some(value)).status, 403);
    // The config file's key works beside the admin ones.
    assert_eq!(keyed(&gw, "x", "/q/keyed", Some(CONFIG_KEY)).status, 200);
}

/// A usage plan id that the config file takes over (after a reload) is
/// not served from the admin state, and its keys do not inherit the
/// config file's plan.
#[test]
fn the_config_file_wins_a_plan_id_clash() {
    let gw = gateway();
    let admin = gw.admin.expect("admin listener");
    let value = "clash-key-0123456789abcdef";
    let key = created(call(
        admin,
        "POST",
        "/apikeys",
        &json!({"name": "c", "value": value, "enabled": true}).to_string(),
    ));
    let plan = created(call(
        admin,
        "POST",
        "/usageplans",
        r#"{"name": "c", "apiStages": [{"apiId": "k", "stage": "p"}]}"#,
    ));
    let plan_id = plan["id"].as_str().unwrap();
    created(call(
        admin,
        "POST",
        &format!("/usageplans/{plan_id}/keys"),
        &json!({"keyId": key["id"], "keyType": "API_KEY"}).to_string(),
    ));
    assert_eq!(keyed(&gw, "x", "/p/keyed", Some(value)).status, 200);
    let mut config = std::fs::read_to_string(gw.config_path()).unwrap();
    config.push_str(&format!(
        "[[usage_plans]]\nid = \"{plan_id}\"\napi_stages = [\"k/q\"]\n"
    ));
    std::fs::write(gw.config_path(), config).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    assert!(gw.log_count("the config file's plan is used") >= 1);
    assert_eq!(keyed(&gw, "x", "/p/keyed", Some(value)).status, 403);
    assert_eq!(keyed(&gw, "x", "/q/keyed", Some(value)).status, 403);
}

#[test]
fn the_aws_cli_manages_keys_and_usage_plans() {
    if !support::gateway::aws_cli_available() {
        return;
    }
    let gw = gateway();
    let admin = gw.admin.unwrap();
    let aws = |args: &[&str]| support::gateway::aws_apigateway(admin, args);
    let key = aws(&["create-api-key", "--name", "cli", "--enabled"]);
    let key_id = key["id"].as_str().unwrap().to_owned();
    let value = key["value"].as_str().unwrap().to_owned();
    assert_eq!(value.len(), 40);
    assert_eq!(key["enabled"], true);
    let plan = aws(&[
        "create-usage-plan",
        "--name",
        "cli-plan",
        "--api-stages",
        "apiId=k,stage=p",
        "--throttle",
        "burstLimit=10,rateLimit=5",
        "--quota",
        "limit=3,period=MONTH",
    ]);
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!(plan["quota"]["period"], "MONTH");
    assert_eq!(plan["throttle"]["burstLimit"], 10);
    let pk = aws(&[
        "create-usage-plan-key",
        "--usage-plan-id",
        &plan_id,
        "--key-id",
        &key_id,
        "--key-type",
        "API_KEY",
    ]);
    assert_eq!(pk["type"], "API_KEY");
    assert_eq!(pk["value"], value.as_str());
    assert_eq!(
        statuses(&gw, "/p/keyed", &value, 4),
        vec![200, 200, 200, 429]
    );

    let keys = aws(&["get-api-keys", "--include-values"]);
    assert_eq!(keys["items"][0]["value"], value.as_str());
    let keys = aws(&["get-api-keys"]);
    assert!(keys["items"][0].get("value").is_none());
    let got = aws(&["get-api-key", "--api-key", &key_id, "--include-value"]);
    assert_eq!(got["value"], value.as_str());
    let plans = aws(&["get-usage-plans", "--key-id", &key_id]);
    assert_eq!(plans["items"][0]["id"], plan_id.as_str());
    let pks = aws(&["get-usage-plan-keys", "--usage-plan-id", &plan_id]);
    assert_eq!(pks["items"][0]["id"], key_id.as_str());
    aws(&[
        "get-usage-plan-key",
        "--usage-plan-id",
        &plan_id,
        "--key-id",
        &key_id,
    ]);
    let updated = aws(&[
        "update-usage-plan",
        "--usage-plan-id",
        &plan_id,
        "--patch-operations",
        "op=replace,path=/quota/limit,value=100",
        "op=add,path=/apiStages,value=k:q",
    ]);
    assert_eq!(updated["quota"]["limit"], 100);
    assert_eq!(updated["apiStages"][1]["stage"], "q");
    assert_eq!(statuses(&gw, "/q/keyed", &value, 1), vec![200]);
    let updated = aws(&[
        "update-api-key",
        "--api-key",
        &key_id,
        "--patch-operations",
        "op=replace,path=/enabled,value=false",
    ]);
    assert_eq!(updated["enabled"], false);
    assert_eq!(statuses(&gw, "/p/keyed", &value, 2), vec![403, 403]);
    aws(&[
        "update-api-key",
        "--api-key",
        &key_id,
        "--patch-operations",
        "op=replace,path=/enabled,value=true",
    ]);
    assert_eq!(statuses(&gw, "/p/keyed", &value, 1), vec![200]);
    aws(&[
        "delete-usage-plan-key",
        "--usage-plan-id",
        &plan_id,
        "--key-id",
        &key_id,
    ]);
    assert_eq!(statuses(&gw, "/p/keyed", &value, 1), vec![403]);
    // An AWS error reaches the CLI as such.
    let bad = support::gateway::aws_apigateway_output(
        admin,
        &["create-api-key", "--name", "x", "--value", "short"],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("BadRequestException"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    // As in API Gateway, a plan is deleted once it names no API stage.
    let refused = support::gateway::aws_apigateway_output(
        admin,
        &["delete-usage-plan", "--usage-plan-id", &plan_id],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Cannot delete Usage Plan"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    aws(&[
        "update-usage-plan",
        "--usage-plan-id",
        &plan_id,
        "--patch-operations",
        "op=remove,path=/apiStages,value=k:p",
        "op=remove,path=/apiStages,value=k:q",
    ]);
    aws(&["delete-usage-plan", "--usage-plan-id", &plan_id]);
    aws(&["delete-api-key", "--api-key", &key_id]);
    assert_eq!(aws(&["get-api-keys"])["items"], json!([]));
}

/// A problem with a usage plan created through the admin API is reported
/// against its record in the state directory, not the config file: a plan
/// whose config stage a reload removes is logged as naming a stage not
/// served, with the record's file and `$.apiStages`.
#[test]
fn warnings_about_admin_plans_name_their_record() {
    let gw = gateway();
    let admin = gw.admin.expect("admin listener");
    let plan = created(call(
        admin,
        "POST",
        "/usageplans",
        r#"{"name": "p", "apiStages": [{"apiId": "k", "stage": "p"}]}"#,
    ));
    let plan_id = plan["id"].as_str().unwrap().to_owned();
    assert_eq!(gw.log_count("which is not served"), 0, "{:?}", gw.log());
    let config = std::fs::read_to_string(gw.config_path()).unwrap();
    let without_p = config.replace("[[stages]]\napi = \"k\"\nname = \"p\"\n", "");
    assert_ne!(config, without_p);
    std::fs::write(gw.config_path(), without_p).unwrap();
    gw.signal("HUP");
    let record = format!("usageplans/{plan_id}.json");
    assert!(
        gw.wait_log(&record, 1, Duration::from_secs(30)),
        "{:?}",
        gw.log()
    );
    let line = gw.log().into_iter().find(|l| l.contains(&record)).unwrap();
    assert!(line.contains("which is not served"), "{line}");
    assert!(line.contains(&format!("{record}: $.apiStages")), "{line}");
    assert!(!line.contains("tollgate.toml"), "{line}");
}

/// Deleting a stage, or its API, takes it out of the usage plans that
/// named it, as API Gateway's link goes with the stage: a stage created
/// again under the same name is in no plan (the old plan's key is refused
/// and its used quota does not follow), a new plan can take that key for
/// it (it was a 409), and all of it survives kill -9. Links a crash left
/// between the stage's removal and the plan's rewrite are dropped at the
/// next start.
#[test]
fn a_deleted_stage_leaves_its_usage_plans() {
    let gw = gateway();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "POST", "/restapis?mode=import", &keyed_api());
    let api = created(r)["id"].as_str().unwrap().to_owned();
    let r = call(
        admin,
        "POST",
        &format!("/restapis/{api}/deployments"),
        r#"{"stageName": "prod"}"#,
    );
    let dep = created(r)["id"].as_str().unwrap().to_owned();
    let host = format!("{api}.execute-api.test");
    let value = "recreated-stage-key-0123456789";
    let key = created(call(
        admin,
        "POST",
        "/apikeys",
        &json!({"name": "kk", "value": value, "enabled": true}).to_string(),
    ));
    let key_id = key["id"].as_str().unwrap().to_owned();
    let plan = |name: &str| {
        let p = created(call(
            admin,
            "POST",
            "/usageplans",
            &json!({"name": name, "apiStages": [{"apiId": api, "stage": "prod"}],
                    "quota": {"limit": 2, "period": "DAY"}})
            .to_string(),
        ));
        let id = p["id"].as_str().unwrap().to_owned();
        created(call(
            admin,
            "POST",
            &format!("/usageplans/{id}/keys"),
            &json!({"keyId": key_id, "keyType": "API_KEY"}).to_string(),
        ));
        id
    };
    let old = plan("kp");
    let calls = |gw: &Gateway, n: usize| -> Vec<u16> {
        (0..n)
            .map(|_| keyed(gw, &host, "/prod/keyed", Some(value)).status)
            .collect()
    };
    assert_eq!(calls(&gw, 1), vec![200], "1 of the plan's 2 used");
    let stage_body = json!({"stageName": "prod", "deploymentId": dep}).to_string();

    let r = call(admin, "DELETE", &format!("/restapis/{api}/stages/prod"), "");
    assert_eq!(r.status, 202, "{}", r.text());
    let r = call(admin, "GET", &format!("/usageplans/{old}"), "");
    assert_eq!(
        r.json()["apiStages"],
        json!([]),
        "the link went with the stage"
    );
    created(call(
        admin,
        "POST",
        &format!("/restapis/{api}/stages"),
        &stage_body,
    ));
    assert_eq!(
        calls(&gw, 2),
        vec![403, 403],
        "the old plan does not cover it"
    );
    // A new plan takes the key for the new stage, with a quota of its own.
    let new = plan("kp2");
    assert_eq!(calls(&gw, 3), vec![200, 200, 429]);

    // Durable: after kill -9 the old plan still names nothing.
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", &format!("/usageplans/{old}"), "");
    assert_eq!(r.json()["apiStages"], json!([]));
    let r = call(admin, "GET", &format!("/usageplans/{new}"), "");
    assert_eq!(
        r.json()["apiStages"],
        json!([{"apiId": api, "stage": "prod"}])
    );

    // delete-rest-api does the same for every stage of the API.
    let r = call(admin, "DELETE", &format!("/restapis/{api}"), "");
    assert_eq!(r.status, 202, "{}", r.text());
    let r = call(admin, "GET", &format!("/usageplans/{new}"), "");
    assert_eq!(r.json()["apiStages"], json!([]));
    let r = call(admin, "GET", &format!("/usageplans?keyId={key_id}"), "");
    for p in r.json()["item"].as_array().unwrap() {
        assert_eq!(p["apiStages"], json!([]), "{p}");
    }

    // A crash between a stage's removal and its plan's rewrite: the plan's
    // record still links the removed stage. The next start drops the link
    // (and rewrites the record), so the stage created again is not in it.
    let api2 = import_and_deploy(admin, &keyed_api(), "prod");
    let r = patch(
        admin,
        &format!("/usageplans/{new}"),
        &format!(r#"[{{"op": "add", "path": "/apiStages", "value": "{api2}:prod"}}]"#),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let host2 = format!("{api2}.execute-api.test");
    assert_eq!(keyed(&gw, &host2, "/prod/keyed", Some(value)).status, 200);
    let mut gw = gw;
    gw.signal("KILL");
    assert!(gw.wait_exit(Duration::from_secs(20)).is_some());
    let state = gw.dir.path().join("state");
    std::fs::remove_file(state.join("stages").join(&api2).join("prod.json")).unwrap();
    let gw = gw.kill9_and_restart();
    let admin = gw.admin.expect("admin listener");
    let r = call(admin, "GET", &format!("/usageplans/{new}"), "");
    assert_eq!(
        r.json()["apiStages"],
        json!([]),
        "the dangling link is dropped"
    );
    let record: Value = serde_json::from_slice(
        &std::fs::read(state_file(&gw, &format!("usageplans/{new}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(record["apiStages"], json!([]), "and its record rewritten");
    let deps = call(admin, "GET", &format!("/restapis/{api2}/deployments"), "");
    let dep2 = deps.json()["item"][0]["id"].as_str().unwrap().to_owned();
    created(call(
        admin,
        "POST",
        &format!("/restapis/{api2}/stages"),
        &json!({"stageName": "prod", "deploymentId": dep2}).to_string(),
    ));
    assert_eq!(keyed(&gw, &host2, "/prod/keyed", None).status, 403);
    assert_eq!(keyed(&gw, &host2, "/prod/keyed", Some(value)).status, 403);
    assert_eq!(keyed(&gw, &host2, "/prod/open", None).status, 200);

    // A config plan naming the admin stage is the file's: deleting the
    // stage leaves it, and it covers the stage created again.
    let cfg_value = "config-plan-on-admin-stage-0123";
    let mut config = std::fs::read_to_string(gw.config_path()).unwrap();
    config.push_str(&format!(
        "[[usage_plans]]\nid = \"cfg-admin\"\napi_stages = [\"{api2}/prod\"]\n[[api_keys]]\nname = \"cfg-admin\"\nvalue = \"{cfg_value}\"\nusage_plans = [\"cfg-admin\"]\n"
    ));
    std::fs::write(gw.config_path(), config).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    assert_eq!(
        keyed(&gw, &host2, "/prod/keyed", Some(cfg_value)).status,
        200
    );
    let r = call(
        admin,
        "DELETE",
        &format!("/restapis/{api2}/stages/prod"),
        "",
    );
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(
        keyed(&gw, &host2, "/prod/keyed", Some(cfg_value)).status,
        403
    );
    created(call(
        admin,
        "POST",
        &format!("/restapis/{api2}/stages"),
        &json!({"stageName": "prod", "deploymentId": dep2}).to_string(),
    ));
    assert_eq!(
        keyed(&gw, &host2, "/prod/keyed", Some(cfg_value)).status,
        200
    );
    assert_eq!(keyed(&gw, &host2, "/prod/keyed", Some(value)).status, 403);
}

fn state_file(gw: &Gateway, rel: &str) -> std::path::PathBuf {
    gw.dir.path().join("state").join(rel)
}
