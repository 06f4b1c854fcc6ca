//! What the admin API has accepted: REST APIs (their current definition),
//! deployments (immutable copies of a definition) and stages (a deployment
//! plus variables), API keys and usage plans (with the keys they hold), and
//! the state directory that keeps them.
//!
//! Every accepted change is written before it is acknowledged: each record
//! is its own file, written to a temporary name, fsynced, renamed over the
//! old one, and the directory fsynced. A `kill -9` at any moment leaves
//! every file either old or new, never half-written. Deleting an API
//! writes a tombstone, then removes its record (the commit point); what a
//! delete interrupted by a crash left is cleaned at the next start, and
//! anything else that does not hold together (deployments without their
//! API's record, a stage without its deployment's) refuses the start,
//! naming the files, rather than being removed. A usage plan's record holds
//! the ids of its keys, so adding or removing a key is one write; deleting
//! an API key removes its record first, and links to a key that is gone
//! are ignored. It also holds its API stages: deleting a stage (or an API)
//! removes the stage's record first (the commit point), then rewrites the
//! plans that linked it; a link left by a crash in between (to a stage of
//! an API that is there, or to an API with a tombstone) is dropped, and its
//! plan rewritten, at the next start, so a stage created again under that
//! name never inherits it ([`Store::delete_stage`]).
//! Read first: [`Store::open`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::config::{ApiSource, KeySettings, PlanSettings, StageSource};
use crate::control::Extra;
use crate::limit::quota::{Period, QuotaSpec};
use crate::limit::Rate;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestApiRecord {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub created_date: u64,
    #[serde(default)]
    pub warnings: Vec<String>,
    /// `endpointConfiguration.types` as created or updated (reported only:
    /// every API is served on this gateway's listeners); empty: REGIONAL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_types: Vec<String>,
    pub definition: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentRecord {
    pub id: String,
    pub api_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub created_date: u64,
    pub definition: serde_json::Value,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    pub api_id: String,
    pub stage_name: String,
    pub deployment_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    pub created_date: u64,
    pub last_updated_date: u64,
    #[serde(default)]
    pub cache_cluster_enabled: bool,
    /// GB, as API Gateway names cache sizes ("0.5" … "237").
    #[serde(default = "default_cache_size")]
    pub cache_cluster_size: String,
    /// `*/*`, `{resource path with / as ~1}/{METHOD}` or `{resource path
    /// without its leading /}/{METHOD}` (as written in the patch) → settings.
    #[serde(default)]
    pub method_settings: BTreeMap<String, MethodSettingRecord>,
    /// Kept and reported as API Gateway's (X-Ray tracing does not exist
    /// here).
    #[serde(default)]
    pub tracing_enabled: bool,
}

pub fn default_cache_size() -> String {
    "0.5".to_owned()
}

/// API Gateway's cache sizes in GB.
pub const CACHE_SIZES: [&str; 8] = ["0.5", "1.6", "6.1", "13.5", "28.4", "58.2", "118", "237"];

/// API Gateway's method throttling defaults (shown by GET stage, applied
/// to a half left unset).
pub const DEFAULT_METHOD_RATE: f64 = 10000.0;
pub const DEFAULT_METHOD_BURST: u64 = 5000;

/// One entry of a stage's `methodSettings` (API Gateway's names).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MethodSettingRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling_rate_limit: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttling_burst_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_authorization_for_cache_control: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unauthorized_cache_control_header_strategy: Option<String>,
    // Kept and reported as API Gateway's; no effect here (metrics follow
    // `server.metrics`, logs the stage's access log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_trace_enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging_level: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_data_encrypted: Option<bool>,
}

/// Method throttles, the stage cache and method cache settings, keyed as
/// the compiler takes them (`*/*`, `/items/GET`).
type StageLimits = (
    Vec<(String, crate::limit::Rate)>,
    Option<crate::config::CacheSettings>,
    Vec<(String, crate::config::MethodCacheSettings)>,
);

impl StageRecord {
    /// The stage's throttling and caching as the compiler takes them.
    pub fn limits_and_cache(&self) -> StageLimits {
        // `~1pets/GET` → `/pets/GET`; `*/*` stays.
        let key = |k: &str| {
            if k.starts_with('*') {
                k.to_owned()
            } else {
                format!("/{}", k.replace("~1", "/").trim_start_matches('/'))
            }
        };
        let ordered = self
            .method_settings
            .iter()
            .filter(|(k, _)| k.as_str() == "*/*")
            .chain(
                self.method_settings
                    .iter()
                    .filter(|(k, _)| k.as_str() != "*/*"),
            );
        let mut throttles = Vec::new();
        let mut caches = Vec::new();
        for (k, m) in ordered {
            if m.throttling_rate_limit.is_some() || m.throttling_burst_limit.is_some() {
                // A half left unset takes API Gateway's default, as GET
                // stage reports it.
                let rate = m.throttling_rate_limit.unwrap_or(DEFAULT_METHOD_RATE);
                let burst = m.throttling_burst_limit.unwrap_or(DEFAULT_METHOD_BURST);
                if rate > 0.0 && burst > 0 {
                    throttles.push((
                        key(k),
                        crate::limit::Rate {
                            per_second: rate,
                            burst,
                        },
                    ));
                }
            }
            if m.caching_enabled.is_some() || m.cache_ttl_in_seconds.is_some() {
                caches.push((
                    key(k),
                    crate::config::MethodCacheSettings {
                        enabled: m.caching_enabled,
                        ttl: m
                            .cache_ttl_in_seconds
                            .map(|t| std::time::Duration::from_secs(t.min(3600))),
                    },
                ));
            }
        }
        let cache = self.cache_cluster_enabled.then(|| {
            let all = self.method_settings.get("*/*");
            let gb: f64 = self.cache_cluster_size.parse().unwrap_or(0.5);
            // API Gateway caches only methods whose settings enable it.
            if !caches.iter().any(|(k, _)| k == "*/*") {
                caches.insert(
                    0,
                    (
                        "*/*".to_owned(),
                        crate::config::MethodCacheSettings {
                            enabled: Some(false),
                            ttl: None,
                        },
                    ),
                );
            }
            crate::config::CacheSettings {
                enabled: true,
                ttl: std::time::Duration::from_secs(300),
                capacity_bytes: (gb * 1024.0 * 1024.0 * 1024.0) as u64,
                require_authorization: all
                    .and_then(|m| m.require_authorization_for_cache_control)
                    .unwrap_or(true),
                unauthorized: all
                    .and_then(|m| m.unauthorized_cache_control_header_strategy.as_deref())
                    .and_then(crate::cache::UnauthorizedStrategy::parse)
                    .unwrap_or(crate::cache::UnauthorizedStrategy::DEFAULT),
            }
        });
        (throttles, cache, caches)
    }
}

/// An API key (`create-api-key`).
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer_id: Option<String>,
    pub enabled: bool,
    pub value: String,
    pub created_date: u64,
    pub last_updated_date: u64,
}

impl std::fmt::Debug for ApiKeyRecord {
    // Key values never reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeyRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A usage plan (`create-usage-plan`) and the ids of its API keys.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsagePlanRecord {
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub api_stages: Vec<ApiStageRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throttle: Option<ThrottleRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaRecord>,
    /// API key ids (usage plan keys).
    #[serde(default)]
    pub keys: Vec<String>,
    pub created_date: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiStageRecord {
    pub api_id: String,
    pub stage: String,
}

/// A plan's per-key throttle; both limits are set (checked on every change).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThrottleRecord {
    pub rate_limit: f64,
    pub burst_limit: u64,
}

/// A plan's per-key quota; `period` is DAY, WEEK or MONTH, `offset` days.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QuotaRecord {
    pub limit: u64,
    #[serde(default)]
    pub offset: u64,
    pub period: String,
}

impl UsagePlanRecord {
    /// The plan as the compiler takes it. Values were checked when they
    /// were accepted; a record edited by hand to something invalid loses
    /// that limit rather than stopping the gateway.
    pub fn settings(&self) -> PlanSettings {
        PlanSettings {
            id: self.id.clone(),
            throttle: self
                .throttle
                .filter(|t| t.rate_limit > 0.0 && t.rate_limit.is_finite() && t.burst_limit > 0)
                .map(|t| Rate {
                    per_second: t.rate_limit,
                    burst: t.burst_limit,
                }),
            quota: self.quota.as_ref().and_then(|q| {
                Some(QuotaSpec {
                    limit: q.limit,
                    period: Period::parse(&q.period)?,
                    offset: q.offset,
                })
            }),
            api_stages: self
                .api_stages
                .iter()
                .map(|s| (s.api_id.clone(), s.stage.clone()))
                .collect(),
            // Set by the control plane, which knows the record's file.
            record: None,
        }
    }
}

/// Everything accepted, in memory.
#[derive(Clone, Debug, Default)]
pub struct AdminState {
    pub apis: BTreeMap<String, RestApiRecord>,
    pub deployments: BTreeMap<String, BTreeMap<String, DeploymentRecord>>,
    pub stages: BTreeMap<String, BTreeMap<String, StageRecord>>,
    pub keys: BTreeMap<String, ApiKeyRecord>,
    pub plans: BTreeMap<String, UsagePlanRecord>,
}

impl AdminState {
    /// Deployment `dep` of API `api`.
    pub fn deployment(&self, api: &str, dep: &str) -> Option<&DeploymentRecord> {
        self.deployments.get(api).and_then(|d| d.get(dep))
    }

    /// Removes from every usage plan the API stages `gone` names (stages
    /// being deleted); the plans that changed, as they are now.
    pub fn unlink_stages(
        &mut self,
        gone: impl Fn(&ApiStageRecord) -> bool,
    ) -> Vec<UsagePlanRecord> {
        let mut changed = Vec::new();
        for p in self.plans.values_mut() {
            let before = p.api_stages.len();
            p.api_stages.retain(|s| !gone(s));
            if p.api_stages.len() != before {
                changed.push(p.clone());
            }
        }
        changed
    }

    /// Everything the state serves: deployed APIs, usage plans, and the
    /// enabled API keys with the plans that hold them.
    pub fn extra(&self, store: &Store) -> Extra {
        let plans = self
            .plans
            .values()
            .map(|p| (store.plan_path(&p.id), p.settings()))
            .collect();
        let keys = self
            .keys
            .values()
            .filter(|k| k.enabled)
            .map(|k| {
                (
                    store.key_path(&k.id),
                    KeySettings {
                        name: k.id.clone(),
                        value: k.value.clone(),
                        plans: self
                            .plans
                            .values()
                            .filter(|p| p.keys.contains(&k.id))
                            .map(|p| p.id.clone())
                            .collect(),
                    },
                )
            })
            .collect();
        Extra {
            apis: self.sources(store),
            plans,
            keys,
        }
    }

    /// The deployed APIs to serve: one source per deployment some stage
    /// points at.
    pub fn sources(&self, store: &Store) -> Vec<ApiSource> {
        let mut out = Vec::new();
        for (api_id, stages) in &self.stages {
            if !self.apis.contains_key(api_id) {
                continue;
            }
            // The API's own setting, for every deployment it serves.
            let default_endpoint = self.apis.get(api_id).map(|a| {
                a.definition
                    .get("x-amazon-apigateway-endpoint-configuration")
                    .and_then(|c| c.get("disableExecuteApiEndpoint"))
                    .and_then(serde_json::Value::as_bool)
                    != Some(true)
            });
            // And its resource policy (only that, not the definition).
            let policy_from = self.apis.get(api_id).map(|a| {
                Arc::new(serde_json::json!({
                    "x-amazon-apigateway-policy":
                        a.definition.get("x-amazon-apigateway-policy").cloned()
                }))
            });
            let mut by_deployment: BTreeMap<&str, Vec<&StageRecord>> = BTreeMap::new();
            for s in stages.values() {
                by_deployment.entry(&s.deployment_id).or_default().push(s);
            }
            for (dep_id, stages) in by_deployment {
                let Some(dep) = self.deployments.get(api_id).and_then(|d| d.get(dep_id)) else {
                    continue;
                };
                out.push(ApiSource {
                    id: api_id.clone(),
                    deployment: Some(dep_id.to_owned()),
                    file: store.deployment_path(api_id, dep_id),
                    doc: Arc::new(dep.definition.clone()),
                    default_endpoint,
                    policy_from: policy_from.clone(),
                    stages: stages
                        .iter()
                        .map(|s| {
                            let (method_throttles, cache, method_caches) = s.limits_and_cache();
                            StageSource {
                                name: s.stage_name.clone(),
                                variables: s.variables.clone(),
                                throttle: None,
                                method_throttles,
                                cache,
                                method_caches,
                                access_log: None,
                                file: store.stage_path(api_id, &s.stage_name),
                                path: "$.variables".to_owned(),
                            }
                        })
                        .collect(),
                });
            }
        }
        out
    }
}

pub struct Store {
    dir: PathBuf,
    /// The open lock file, whose exclusive `flock` is held for as long as
    /// the store lives (the process's life): see [`lock_dir`]. `None` for
    /// a store opened to read only ([`Store::inspect`]).
    _lock: Option<File>,
    /// Read only: nothing is created, cleaned or removed.
    read_only: bool,
}

/// The lock file in the state directory (see [`lock_dir`]).
pub const LOCK_FILE: &str = "tollgate.lock";

/// Takes the state directory for this process: an exclusive, non-blocking
/// `flock` on its lock file, released by the kernel when the file is
/// closed or the process ends (also by `kill -9`, so a stale lock file
/// never keeps a gateway from starting). Each process writes whole records
/// from its own memory, so two processes on one directory would overwrite
/// each other's acknowledged changes: the second one is refused.
fn lock_dir(dir: &Path) -> Result<File, String> {
    let path = dir.join(LOCK_FILE);
    let mut file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| format!("{}: cannot open: {e}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let holder = fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            let holder = if holder.is_empty() {
                String::new()
            } else {
                format!(" (pid {holder})")
            };
            return Err(format!(
                "{} is in use by another tollgate process{holder}: it holds the lock on {}; a state directory serves one process at a time",
                dir.display(),
                path.display()
            ));
        }
        Err(e) => return Err(format!("{}: cannot lock: {e}", path.display())),
    }
    // The holder's pid, for the message above (informative only: the lock
    // is the flock, not the content).
    let _ = file.set_len(0);
    let _ = writeln!(file, "{}", std::process::id());
    Ok(file)
}

impl Store {
    /// Opens (creating if needed) a state directory, takes its lock (an
    /// error if another process holds it) and loads it. A record that
    /// cannot be read is an error naming its file: nothing is guessed.
    pub fn open(dir: &Path) -> Result<(Store, AdminState), String> {
        for sub in ["restapis", "deployments", "stages", "apikeys", "usageplans"] {
            create_dir_durably(&dir.join(sub))
                .map_err(|e| format!("{}: cannot create: {e}", dir.join(sub).display()))?;
        }
        let lock = lock_dir(dir)?;
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: Some(lock),
            read_only: false,
        };
        let state = store.load()?;
        Ok((store, state))
    }

    /// Reads a state directory as [`Store::open`] would, and reports the
    /// same errors, without taking its lock (a running gateway may hold
    /// it: records are replaced by atomic renames, so a reader sees each
    /// one old or new) and without changing anything: no directory is
    /// created, no leftover removed. For `tollgate check`. A directory that
    /// does not exist yet is empty.
    pub fn inspect(dir: &Path) -> Result<(Store, AdminState), String> {
        let store = Store {
            dir: dir.to_path_buf(),
            _lock: None,
            read_only: true,
        };
        if !dir.exists() {
            return Ok((store, AdminState::default()));
        }
        let state = store.load()?;
        Ok((store, state))
    }

    fn load(&self) -> Result<AdminState, String> {
        let dir = &self.dir;
        let tidy = !self.read_only;
        let list_json = |d: &Path| list_json(d, tidy);
        let list_dirs = |d: &Path| -> Result<Vec<PathBuf>, String> {
            if d.exists() || tidy {
                list_dirs(d)
            } else {
                Ok(Vec::new())
            }
        };
        let mut state = AdminState::default();
        for path in list_json(&dir.join("restapis"))? {
            let rec: RestApiRecord = read_json(&path)?;
            state.apis.insert(rec.id.clone(), rec);
        }
        for api_dir in list_dirs(&dir.join("deployments"))? {
            for path in list_json(&api_dir)? {
                let rec: DeploymentRecord = read_json(&path)?;
                if state.apis.contains_key(&rec.api_id) {
                    state
                        .deployments
                        .entry(rec.api_id.clone())
                        .or_default()
                        .insert(rec.id.clone(), rec);
                }
            }
        }
        for api_dir in list_dirs(&dir.join("stages"))? {
            for path in list_json(&api_dir)? {
                let rec: StageRecord = read_json(&path)?;
                if state.apis.contains_key(&rec.api_id) {
                    state
                        .stages
                        .entry(rec.api_id.clone())
                        .or_default()
                        .insert(rec.stage_name.clone(), rec);
                }
            }
        }
        for path in list_json(&dir.join("apikeys"))? {
            let rec: ApiKeyRecord = read_json(&path)?;
            state.keys.insert(rec.id.clone(), rec);
        }
        let mut unlinked = Vec::new();
        for path in list_json(&dir.join("usageplans"))? {
            let mut rec: UsagePlanRecord = read_json(&path)?;
            // Links to keys deleted just before a crash.
            rec.keys.retain(|k| state.keys.contains_key(k));
            // Links to stages deleted just before a crash (see
            // `delete_stage`): kept, they would cover a stage created
            // again under that name. A link naming an API that is neither
            // here nor tombstoned names a config API: kept.
            let before = rec.api_stages.len();
            rec.api_stages.retain(|s| {
                let gone = if state.apis.contains_key(&s.api_id) {
                    !state
                        .stages
                        .get(&s.api_id)
                        .is_some_and(|m| m.contains_key(&s.stage))
                } else {
                    self.tombstone_path(&s.api_id).exists()
                };
                if gone {
                    tracing::info!(
                        plan = %rec.id,
                        api = %s.api_id,
                        stage = %s.stage,
                        "removing a usage plan's link to a stage deleted just before a crash"
                    );
                }
                !gone
            });
            if rec.api_stages.len() != before {
                unlinked.push((path, rec.clone()));
            }
            state.plans.insert(rec.id.clone(), rec);
        }
        self.finish_deletes(&state, &unlinked)?;
        check_stage_deployments(self, &state)?;
        Ok(state)
    }

    /// Deployments and stages whose API has no record. With the API's
    /// tombstone (see [`Store::delete_api`]) they are what a delete
    /// interrupted by a crash left, after its commit point: they are
    /// removed, and the tombstone after them. Without one, the record was
    /// lost some other way (a partial restore, a file moved by hand): that
    /// is an error naming the record and the directories, which are kept.
    /// A tombstone beside its record is a delete that never reached its
    /// commit point (never acknowledged): the API stays, the tombstone
    /// goes. The usage plans in `unlinked` lost links to stages deleted
    /// just before a crash: they are rewritten before any tombstone is
    /// removed (a tombstone is what names the links of a deleted API).
    fn finish_deletes(
        &self,
        state: &AdminState,
        unlinked: &[(PathBuf, UsagePlanRecord)],
    ) -> Result<(), String> {
        let mut lost = Vec::new();
        for sub in ["deployments", "stages"] {
            for api_dir in list_dirs(&self.dir.join(sub))? {
                let id = api_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if state.apis.contains_key(&id) {
                    continue;
                }
                if self.tombstone_path(&id).exists() {
                    if self.read_only {
                        // The next start removes it.
                        continue;
                    }
                    tracing::info!(
                        dir = %api_dir.display(),
                        "removing what a delete-rest-api interrupted by a crash left"
                    );
                    fs::remove_dir_all(&api_dir)
                        .map_err(|e| format!("{}: cannot remove: {e}", api_dir.display()))?;
                } else {
                    lost.push(format!(
                        "{}: the record of API {id} ({}) is missing, though it was not deleted; restore the record, or remove this directory to drop what it holds",
                        api_dir.display(),
                        self.api_path(&id).display()
                    ));
                }
            }
        }
        if !lost.is_empty() {
            return Err(lost.join("\n"));
        }
        if self.read_only {
            return Ok(());
        }
        for (path, rec) in unlinked {
            write_json(path, rec).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        let entries = fs::read_dir(self.dir.join("restapis"))
            .map_err(|e| format!("{}: cannot list: {e}", self.dir.join("restapis").display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(TOMBSTONE_SUFFIX) {
                if state.apis.contains_key(id) {
                    tracing::warn!(
                        api = id,
                        "a delete-rest-api of this API was interrupted before it took effect: the API is kept"
                    );
                }
                remove_durably(&entry.path())
                    .map_err(|e| format!("{}: cannot remove: {e}", entry.path().display()))?;
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn api_path(&self, id: &str) -> PathBuf {
        self.dir.join("restapis").join(format!("{id}.json"))
    }

    pub fn deployment_path(&self, api: &str, id: &str) -> PathBuf {
        self.dir
            .join("deployments")
            .join(api)
            .join(format!("{id}.json"))
    }

    pub fn stage_path(&self, api: &str, stage: &str) -> PathBuf {
        self.dir
            .join("stages")
            .join(api)
            .join(format!("{stage}.json"))
    }

    pub fn key_path(&self, id: &str) -> PathBuf {
        self.dir.join("apikeys").join(format!("{id}.json"))
    }

    pub fn plan_path(&self, id: &str) -> PathBuf {
        self.dir.join("usageplans").join(format!("{id}.json"))
    }

    pub fn put_key(&self, rec: &ApiKeyRecord) -> std::io::Result<()> {
        write_json(&self.key_path(&rec.id), rec)
    }

    pub fn delete_key(&self, id: &str) -> std::io::Result<()> {
        remove_durably(&self.key_path(id))
    }

    pub fn put_plan(&self, rec: &UsagePlanRecord) -> std::io::Result<()> {
        write_json(&self.plan_path(&rec.id), rec)
    }

    pub fn delete_plan(&self, id: &str) -> std::io::Result<()> {
        remove_durably(&self.plan_path(id))
    }

    pub fn put_api(&self, rec: &RestApiRecord) -> std::io::Result<()> {
        write_json(&self.api_path(&rec.id), rec)
    }

    pub fn put_deployment(&self, rec: &DeploymentRecord) -> std::io::Result<()> {
        write_json(&self.deployment_path(&rec.api_id, &rec.id), rec)
    }

    pub fn delete_deployment(&self, api: &str, id: &str) -> std::io::Result<()> {
        remove_durably(&self.deployment_path(api, id))
    }

    pub fn put_stage(&self, rec: &StageRecord) -> std::io::Result<()> {
        write_json(&self.stage_path(&rec.api_id, &rec.stage_name), rec)
    }

    /// Removes a stage's record: the commit point of `delete-stage`. The
    /// caller then rewrites, with [`Store::put_plan`], each usage plan
    /// that linked the stage ([`AdminState::unlink_stages`]). In this
    /// order a crash in between leaves plans linking a stage that is gone
    /// while its API is there, which the next start recognises, drops and
    /// rewrites ([`Store::open`]), so a stage created again under that
    /// name never inherits the link, its keys or its quota. The other
    /// order would let a crash leave a stage whose delete was never
    /// acknowledged, yet which had silently left its plans.
    pub fn delete_stage(&self, api: &str, stage: &str) -> std::io::Result<()> {
        remove_durably(&self.stage_path(api, stage))
    }

    /// `restapis/{id}.deleted`: written before an API's record is
    /// removed, so that the next start can tell what a delete interrupted
    /// by a crash left from a record lost otherwise.
    pub fn tombstone_path(&self, id: &str) -> PathBuf {
        self.dir
            .join("restapis")
            .join(format!("{id}{TOMBSTONE_SUFFIX}"))
    }

    /// Crash-safe order: (1) the tombstone is written durably; (2) the
    /// record is removed (the commit point: once it is gone the API is
    /// gone, whatever happens to the rest); (3) its deployments and stages
    /// are removed; (4) the usage plans that linked its stages (`plans`,
    /// already without those links) are rewritten; (5) the tombstone is
    /// removed. A crash before (2) leaves the API whole with a tombstone,
    /// which the next start drops; a crash after it leaves directories
    /// without a record, or plans linking the API, but with a tombstone:
    /// the next start removes the directories and the links
    /// ([`Store::finish_deletes`]). Directories without a record *and*
    /// without a tombstone were never deleted by this code: the start is
    /// refused rather than destroying them.
    pub fn delete_api(&self, id: &str, plans: &[UsagePlanRecord]) -> std::io::Result<()> {
        let tombstone = self.tombstone_path(id);
        write_atomic(&tombstone, id.as_bytes())?;
        remove_durably(&self.api_path(id))?;
        for sub in ["deployments", "stages"] {
            let d = self.dir.join(sub).join(id);
            if d.exists() {
                fs::remove_dir_all(&d)?;
            }
        }
        for p in plans {
            self.put_plan(p)?;
        }
        remove_durably(&tombstone)
    }
}

/// The name ending of an API's tombstone (see [`Store::tombstone_path`]).
const TOMBSTONE_SUFFIX: &str = ".deleted";

/// Every stage's deployment must have its record: a stage whose
/// deployment file is missing would be silently unserved. An error naming
/// both files.
fn check_stage_deployments(store: &Store, state: &AdminState) -> Result<(), String> {
    let mut missing = Vec::new();
    for (api, stages) in &state.stages {
        for s in stages.values() {
            if state.deployment(api, &s.deployment_id).is_none() {
                missing.push(format!(
                    "{}: stage {} serves deployment {}, whose record {} is missing",
                    store.stage_path(api, &s.stage_name).display(),
                    s.stage_name,
                    s.deployment_id,
                    store.deployment_path(api, &s.deployment_id).display()
                ));
            }
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join("\n"))
    }
}

/// The `.json` files of `dir`; with `tidy`, unfinished writes from
/// before a crash are removed on the way.
fn list_json(dir: &Path, tidy: bool) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(format!("{}: cannot list: {e}", dir.display())),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.contains(".tmp-") {
            // An unfinished write from before a crash: never acknowledged.
            if tidy {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        if name.ends_with(".json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn list_dirs(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: cannot list: {e}", dir.display()))?;
    let mut out: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    Ok(out)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, String> {
    let text = fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| {
        format!(
            "{}: line {}, column {}: {e}",
            path.display(),
            e.line(),
            e.column()
        )
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}

/// Temp file, fsync, rename over the target, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| std::io::Error::other("path has no directory"))?;
    create_dir_durably(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// `create_dir_all` whose new directories survive a power loss: the
/// parent of each directory it creates is fsynced (a new directory's entry
/// lives in its parent, and a record fsynced inside a directory whose own
/// entry was lost is lost with it).
fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    create_dir_durably(parent)?;
    match fs::create_dir(dir) {
        Ok(()) => File::open(parent)?.sync_all(),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_durably(path: &Path) -> std::io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durable_directories_are_created_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("a/b/c");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        // Again: nothing to do, no error.
        create_dir_durably(&deep).unwrap();
        // A file in the way is an error, not a success.
        std::fs::write(tmp.path().join("f"), b"x").unwrap();
        assert!(create_dir_durably(&tmp.path().join("f")).is_err());
        assert!(create_dir_durably(&tmp.path().join("f/g")).is_err());
    }

    #[test]
    fn a_half_set_method_throttle_takes_the_default_other_half() {
        let rec: StageRecord = serde_json::from_value(serde_json::json!({
            "apiId": "a", "stageName": "s", "deploymentId": "d",
            "createdDate": 0, "lastUpdatedDate": 0,
            "methodSettings": {
                "~1a/GET": {"throttlingRateLimit": 5.0},
                "~1b/GET": {"throttlingBurstLimit": 7},
                "~1c/GET": {"cachingEnabled": true}
            }
        }))
        .unwrap();
        let (throttles, _, _) = rec.limits_and_cache();
        let got: Vec<(String, f64, u64)> = throttles
            .into_iter()
            .map(|(k, r)| (k, r.per_second, r.burst))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/a/GET".to_owned(), 5.0, DEFAULT_METHOD_BURST),
                ("/b/GET".to_owned(), DEFAULT_METHOD_RATE, 7),
            ]
        );
    }

    #[test]
    fn round_trip_and_leftovers() {
        let dir = tempfile::tempdir().unwrap();
        let (store, state) = Store::open(dir.path()).unwrap();
        assert!(state.apis.is_empty());
        store
            .put_api(&RestApiRecord {
                id: "a1".into(),
                name: "n".into(),
                description: None,
                version: None,
                created_date: 1,
                warnings: vec![],
                endpoint_types: vec![],
                definition: serde_json::json!({"swagger": "2.0"}),
            })
            .unwrap();
        drop(store);
        // A torn write from a crash.
        std::fs::write(
            dir.path().join("restapis/.a2.json.tmp-1-2"),
            "{\"id\": \"a2\", \"na",
        )
        .unwrap();
        let (_, state) = Store::open(dir.path()).unwrap();
        assert_eq!(state.apis.keys().collect::<Vec<_>>(), vec!["a1"]);
        assert!(!dir.path().join("restapis/.a2.json.tmp-1-2").exists());
        // A corrupt record is an error naming the file.
        std::fs::write(dir.path().join("restapis/bad.json"), "{").unwrap();
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.contains("restapis/bad.json"), "{err}");
    }

    fn api(id: &str) -> RestApiRecord {
        RestApiRecord {
            id: id.into(),
            name: "n".into(),
            description: None,
            version: None,
            created_date: 1,
            warnings: vec![],
            endpoint_types: vec![],
            definition: serde_json::json!({"swagger": "2.0"}),
        }
    }

    fn stage(api: &str, name: &str, dep: &str) -> StageRecord {
        StageRecord {
            api_id: api.into(),
            stage_name: name.into(),
            deployment_id: dep.into(),
            description: None,
            variables: BTreeMap::new(),
            created_date: 1,
            last_updated_date: 1,
            cache_cluster_enabled: false,
            cache_cluster_size: default_cache_size(),
            method_settings: BTreeMap::new(),
            tracing_enabled: false,
        }
    }

    /// API `id` with deployment `d1` and stage `s` serving it.
    fn put_deployed(store: &Store, id: &str) {
        store.put_api(&api(id)).unwrap();
        store.put_deployment(&deployment(id, "d1")).unwrap();
        store.put_stage(&stage(id, "s", "d1")).unwrap();
    }

    fn deployment(api: &str, id: &str) -> DeploymentRecord {
        DeploymentRecord {
            id: id.into(),
            api_id: api.into(),
            description: None,
            created_date: 1,
            definition: serde_json::json!({"swagger": "2.0"}),
        }
    }

    /// What a `delete_api` interrupted by a crash after its commit point
    /// left (its tombstone says so) is removed at the next start; one
    /// interrupted before it (record and tombstone both there) keeps the
    /// API.
    #[test]
    fn an_interrupted_delete_is_finished_or_undone() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        for id in ["gone", "kept"] {
            put_deployed(&store, id);
            std::fs::write(store.tombstone_path(id), id).unwrap();
        }
        // Crash after the commit point of `gone`'s delete.
        std::fs::remove_file(store.api_path("gone")).unwrap();
        drop(store);
        let (store, state) = Store::open(dir.path()).unwrap();
        assert_eq!(state.apis.keys().collect::<Vec<_>>(), vec!["kept"]);
        assert_eq!(state.stages["kept"]["s"].deployment_id, "d1");
        assert!(!dir.path().join("stages/gone").exists());
        assert!(!dir.path().join("deployments/gone").exists());
        assert!(dir.path().join("stages/kept/s.json").exists());
        assert!(!store.tombstone_path("gone").exists());
        assert!(!store.tombstone_path("kept").exists());
        // A whole delete leaves nothing.
        store.delete_api("kept", &[]).unwrap();
        drop(store);
        let (_, state) = Store::open(dir.path()).unwrap();
        assert!(state.apis.is_empty() && state.stages.is_empty());
        let left: Vec<_> = ["restapis", "deployments", "stages"]
            .iter()
            .flat_map(|d| std::fs::read_dir(dir.path().join(d)).unwrap())
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    /// A record lost otherwise (no tombstone) is an error naming it, and
    /// nothing is removed; so is a stage whose deployment record is gone.
    #[test]
    fn a_lost_record_is_an_error_and_nothing_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        store.put_api(&api("a1")).unwrap();
        store.put_deployment(&deployment("a1", "d1")).unwrap();
        store.put_stage(&stage("a1", "s", "d1")).unwrap();
        std::fs::remove_file(store.api_path("a1")).unwrap();
        drop(store);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(err.contains("restapis/a1.json"), "{err}");
        assert!(err.contains("stages/a1"), "{err}");
        assert!(dir.path().join("deployments/a1/d1.json").exists());
        assert!(dir.path().join("stages/a1/s.json").exists());
        // The record restored: all there.
        std::fs::write(
            dir.path().join("restapis/a1.json"),
            serde_json::to_vec(&api("a1")).unwrap(),
        )
        .unwrap();
        let (store, state) = Store::open(dir.path()).unwrap();
        assert_eq!(state.stages["a1"]["s"].deployment_id, "d1");
        // A stage whose deployment record is missing.
        std::fs::remove_file(store.deployment_path("a1", "d1")).unwrap();
        drop(store);
        let err = Store::open(dir.path()).err().unwrap();
        assert!(
            err.contains("stages/a1/s.json") && err.contains("deployments/a1/d1.json"),
            "{err}"
        );
        assert!(dir.path().join("stages/a1/s.json").exists());
    }

    fn plan(id: &str, stages: &[(&str, &str)]) -> UsagePlanRecord {
        UsagePlanRecord {
            id: id.into(),
            name: id.into(),
            description: None,
            api_stages: stages
                .iter()
                .map(|(a, s)| ApiStageRecord {
                    api_id: (*a).into(),
                    stage: (*s).into(),
                })
                .collect(),
            throttle: None,
            quota: None,
            keys: Vec::new(),
            created_date: 1,
        }
    }

    /// Links that a delete-stage or delete-rest-api interrupted by a crash
    /// after its commit point left in usage plans (a stage of an API that
    /// is there, an API with a tombstone) are dropped and the plans
    /// rewritten at the next start (inspect drops them in memory only);
    /// links to stages that exist, and to APIs that are not the admin
    /// API's (config APIs), stay.
    #[test]
    fn links_to_stages_deleted_before_a_crash_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        for id in ["a1", "t1"] {
            put_deployed(&store, id);
        }
        store
            .put_plan(&plan("p1", &[("a1", "s"), ("a1", "gone"), ("cfg", "p")]))
            .unwrap();
        store.put_plan(&plan("p2", &[("t1", "s")])).unwrap();
        store.put_plan(&plan("p3", &[("a1", "s")])).unwrap();
        // delete-stage a1/gone and delete-rest-api t1, both cut short by a
        // crash just after their commit point.
        std::fs::write(store.tombstone_path("t1"), "t1").unwrap();
        std::fs::remove_file(store.api_path("t1")).unwrap();
        drop(store);
        let p1_file = dir.path().join("usageplans/p1.json");
        let before = std::fs::read(&p1_file).unwrap();
        let (_, state) = Store::inspect(dir.path()).unwrap();
        assert_eq!(
            state.plans["p1"].api_stages,
            plan("p1", &[("a1", "s"), ("cfg", "p")]).api_stages
        );
        assert!(state.plans["p2"].api_stages.is_empty());
        assert_eq!(
            std::fs::read(&p1_file).unwrap(),
            before,
            "inspect writes nothing"
        );

        let (store, state) = Store::open(dir.path()).unwrap();
        let want = |id: &str, stages: &[(&str, &str)]| plan(id, stages).api_stages;
        assert_eq!(
            state.plans["p1"].api_stages,
            want("p1", &[("a1", "s"), ("cfg", "p")])
        );
        assert!(state.plans["p2"].api_stages.is_empty());
        assert_eq!(state.plans["p3"].api_stages, want("p3", &[("a1", "s")]));
        assert!(!store.tombstone_path("t1").exists());
        for (id, stages) in [("p1", vec![("a1", "s"), ("cfg", "p")]), ("p2", vec![])] {
            let on_disk: UsagePlanRecord = read_json(&store.plan_path(id)).unwrap();
            assert_eq!(on_disk.api_stages, want(id, &stages), "{id} rewritten");
        }
        // A stage created again under the deleted name is in no plan.
        store.put_stage(&stage("a1", "gone", "d1")).unwrap();
        drop(store);
        let (_, state) = Store::open(dir.path()).unwrap();
        assert_eq!(
            state.plans["p1"].api_stages,
            want("p1", &[("a1", "s"), ("cfg", "p")])
        );
    }

    #[test]
    fn keys_and_plans_round_trip_and_dangling_links_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path()).unwrap();
        let key = |id: &str, enabled: bool| ApiKeyRecord {
            id: id.into(),
            name: format!("{id}-name"),
            description: None,
            customer_id: None,
            enabled,
            value: format!("{id}-value-0123456789abcdef"),
            created_date: 1,
            last_updated_date: 1,
        };
        store.put_key(&key("k1", true)).unwrap();
        store.put_key(&key("k2", false)).unwrap();
        store
            .put_plan(&UsagePlanRecord {
                id: "p1".into(),
                name: "gold".into(),
                description: None,
                api_stages: vec![ApiStageRecord {
                    api_id: "a".into(),
                    stage: "s".into(),
                }],
                throttle: Some(ThrottleRecord {
                    rate_limit: 2.0,
                    burst_limit: 3,
                }),
                quota: Some(QuotaRecord {
                    limit: 5,
                    offset: 0,
                    period: "DAY".into(),
                }),
                keys: vec!["k1".into(), "k2".into(), "gone".into()],
                created_date: 1,
            })
            .unwrap();
        drop(store);
        let (store, state) = Store::open(dir.path()).unwrap();
        assert_eq!(state.keys.len(), 2);
        assert_eq!(state.plans["p1"].keys, vec!["k1", "k2"]);
        let extra = state.extra(&store);
        assert_eq!(extra.plans.len(), 1);
        let plan = &extra.plans[0].1;
        assert_eq!(plan.api_stages, vec![("a".to_owned(), "s".to_owned())]);
        assert_eq!(plan.throttle.map(|r| r.burst), Some(3));
        assert_eq!(plan.quota.map(|q| q.limit), Some(5));
        // Only the enabled key is served, named by its id.
        assert_eq!(extra.keys.len(), 1);
        assert_eq!(extra.keys[0].1.name, "k1");
        assert_eq!(extra.keys[0].1.plans, vec!["p1"]);
        // The value never reaches Debug output.
        assert!(!format!("{:?}", state.keys["k1"]).contains("k1-value"));
    }
}
