//! The control plane: what happens on SIGHUP, SIGTERM and admin changes.
//!
//! Owns: the loaded configuration (settings and API sources), building a
//! new snapshot from it off the data path, and publishing it to every
//! shard. A failed build leaves the serving snapshot alone.
//! Read first: [`Control::reload`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{self, ApiSource, Diagnostics, KeySettings, LoadError, Loaded, PlanSettings};
use crate::limit::registry::Registry;
use crate::publish::Publisher;
use crate::resolve::Resolver;
use crate::snapshot::{Shards, Snapshot};

// Control plane only; never touched by a request.
#[allow(clippy::disallowed_types)]
type ControlMutex<T> = std::sync::Mutex<T>;

/// How long a publish waits for every shard to switch.
const APPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Control {
    config_path: PathBuf,
    publisher: Arc<Publisher>,
    resolver: Arc<Resolver>,
    /// Listen address and shard count the process started with; changing
    /// them needs a restart.
    started_listen: std::net::SocketAddr,
    started_shards: Shards,
    /// The admin listener's settings at start (its address, state
    /// directory and connection limit are fixed for the process's life).
    started_admin: Option<crate::config::AdminSettings>,
    registry: Arc<Registry>,
    state: ControlMutex<State>,
    reloads_ok: std::sync::atomic::AtomicU64,
    reloads_failed: std::sync::atomic::AtomicU64,
    started_at: std::time::SystemTime,
}

struct State {
    loaded: Loaded,
    /// Counts replacements of `loaded` (reloads), so a snapshot prepared
    /// before one is not published after it.
    loaded_version: u64,
    /// What the admin API's state serves beside the config's.
    extra: Extra,
}

/// A snapshot built for an admin change and checked, waiting to be
/// published once the change is on disk (see [`Control::prepare_extra`]).
pub struct Prepared {
    snapshot: Snapshot,
    loaded_version: u64,
}

/// What the admin API has accepted, to serve beside the config file's:
/// deployed APIs, usage plans and enabled API keys. Plans and keys carry
/// the file of their record, where problems with them are reported.
#[derive(Clone, Debug, Default)]
pub struct Extra {
    pub apis: Vec<ApiSource>,
    pub plans: Vec<(PathBuf, PlanSettings)>,
    /// A key's `name` is its record id: throttle buckets and quota counts
    /// are kept per plan id + key id.
    pub keys: Vec<(PathBuf, KeySettings)>,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        self.apis.is_empty() && self.plans.is_empty() && self.keys.is_empty()
    }
}

impl Control {
    /// `extra`: what of the admin state the published snapshot was built with.
    pub fn new(
        config_path: &Path,
        loaded: Loaded,
        extra: Extra,
        publisher: Arc<Publisher>,
        resolver: Arc<Resolver>,
        registry: Arc<Registry>,
    ) -> Control {
        Control {
            config_path: config_path.to_path_buf(),
            started_listen: loaded.settings.server.listen,
            started_shards: loaded.settings.server.shards,
            started_admin: loaded.settings.admin.clone(),
            publisher,
            resolver,
            registry,
            state: ControlMutex::new(State {
                loaded,
                loaded_version: 0,
                extra,
            }),
            reloads_ok: Default::default(),
            reloads_failed: Default::default(),
            started_at: std::time::SystemTime::now(),
        }
    }

    pub fn publisher(&self) -> &Arc<Publisher> {
        &self.publisher
    }

    /// The credentials of the configuration now in force.
    pub fn credentials(&self) -> Vec<crate::auth::Credential> {
        self.lock().loaded.settings.credentials.clone()
    }

    /// Is `id` an API of the config file?
    pub fn has_config_api(&self, id: &str) -> bool {
        self.lock().loaded.apis.iter().any(|a| a.id == id)
    }

    /// Is `id` a usage plan of the config file?
    pub fn has_config_plan(&self, id: &str) -> bool {
        self.lock()
            .loaded
            .settings
            .limits
            .plans
            .iter()
            .any(|p| p.id == id)
    }

    /// Is `value` the value of an (enabled) API key of the config file?
    pub fn has_config_key_value(&self, value: &str) -> bool {
        self.lock()
            .loaded
            .settings
            .limits
            .keys
            .iter()
            .any(|k| k.value == value)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        }
    }

    /// Re-reads the config file and its Swagger documents, builds a new
    /// snapshot and publishes it. On any error the old snapshot keeps
    /// serving and the errors are returned (and logged by the caller).
    pub fn reload(&self) -> Result<u64, LoadError> {
        let r = self.reload_inner();
        self.count(r.is_ok());
        r
    }

    fn count(&self, ok: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if ok {
            self.reloads_ok.fetch_add(1, Relaxed);
        } else {
            self.reloads_failed.fetch_add(1, Relaxed);
        }
    }

    /// The Prometheus text of every shard's counters, merged.
    pub fn metrics_text(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let (reports, missing) = self.publisher.collect_metrics(Duration::from_secs(2));
        let total = crate::metrics::merge(&reports);
        let control = crate::metrics::ControlValues {
            generation: self.publisher.generation(),
            reloads_ok: self.reloads_ok.load(Relaxed),
            reloads_failed: self.reloads_failed.load(Relaxed),
            shards: self.publisher.shards() as u64,
            start_time_seconds: self
                .started_at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64()),
            shards_missing: missing as u64,
            log_write_errors: self.registry.logs.write_errors.load(Relaxed),
        };
        crate::metrics::render(&self.registry.metrics.all(), total, control)
    }

    fn reload_inner(&self) -> Result<u64, LoadError> {
        let mut diags = Diagnostics::default();
        let text = std::fs::read_to_string(&self.config_path).map_err(|e| {
            diags.error(&self.config_path, "$", format!("cannot read file: {e}"));
            LoadError {
                errors: std::mem::take(&mut diags.errors),
                warnings: Vec::new(),
            }
        })?;
        let raw = config::parse_toml(&self.config_path, &text).map_err(|d| LoadError {
            errors: vec![d],
            warnings: Vec::new(),
        })?;
        let loaded = config::read_config(&self.config_path, raw, &mut diags, &config::FsReader);
        let Some(mut loaded) = loaded else {
            return Err(LoadError {
                errors: diags.errors,
                warnings: diags.warnings,
            });
        };
        if loaded.settings.server.listen != self.started_listen {
            tracing::warn!(
                old = %self.started_listen,
                new = %loaded.settings.server.listen,
                "server.listen changed: it takes effect after a restart; still serving the old address"
            );
            loaded.settings.server.listen = self.started_listen;
        }
        if loaded.settings.limits.cluster.is_some() != self.registry.is_cluster() {
            tracing::warn!("limits.cluster changed: it takes effect after a restart");
        }
        if loaded.settings.server.shards != self.started_shards {
            tracing::warn!("server.shards changed: it takes effect after a restart");
            loaded.settings.server.shards = self.started_shards;
        }
        let admin_key = |a: &Option<crate::config::AdminSettings>| {
            a.as_ref()
                .map(|a| (a.listen, a.state_dir.clone(), a.max_connections))
        };
        if admin_key(&loaded.settings.admin) != admin_key(&self.started_admin) {
            tracing::warn!(
                "[admin] changed (listen, state_dir or max_connections): it takes effect after a restart; the admin listener keeps its settings"
            );
            loaded.settings.admin = self.started_admin.clone();
        }
        let mut state = self.lock();
        // The TLS listener is opened at start only: adding, removing or
        // moving it waits for a restart (its certificates reload).
        let running_tls = state.loaded.settings.server.tls.clone();
        match (&running_tls, &mut loaded.settings.server.tls) {
            (None, new @ Some(_)) => {
                tracing::warn!("[server.tls] added: TLS is served after a restart");
                *new = None;
            }
            (Some(old), new @ None) => {
                tracing::warn!(
                    "[server.tls] removed: it takes effect after a restart; TLS keeps serving with its previous certificates"
                );
                *new = Some(old.clone());
            }
            (Some(old), Some(new)) if new.listen != old.listen => {
                tracing::warn!(
                    old = %old.listen,
                    new = %new.listen,
                    "server.tls.listen changed: it takes effect after a restart; still serving TLS on the old address"
                );
                new.listen = old.listen;
            }
            _ => {}
        }
        let snapshot = build_snapshot(&loaded, &state.extra, &self.registry, &mut diags)?;
        state.loaded = loaded;
        state.loaded_version += 1;
        let generation = self.install(snapshot);
        drop(state);
        Ok(generation)
    }

    /// Replaces what the admin state serves and publishes the result. On
    /// error nothing changes.
    pub fn set_extra(&self, extra: Extra) -> Result<u64, LoadError> {
        self.commit_extra(extra, None)
    }

    /// Builds and checks what serving `extra` would publish, without
    /// publishing it. The build is done once: [`Control::publish_prepared`]
    /// publishes this very snapshot (building limits twice would hand the
    /// live quota counts to a pool the shards do not use yet).
    pub fn prepare_extra(&self, extra: &Extra) -> Result<Prepared, LoadError> {
        let mut diags = Diagnostics::default();
        let state = self.lock();
        let snapshot = build_snapshot(&state.loaded, extra, &self.registry, &mut diags)?;
        Ok(Prepared {
            snapshot,
            loaded_version: state.loaded_version,
        })
    }

    /// Publishes a prepared snapshot and keeps `extra`; if the config was
    /// reloaded since it was prepared, builds again from the new config.
    pub fn publish_prepared(&self, extra: Extra, prepared: Prepared) -> Result<u64, LoadError> {
        self.commit_extra(extra, Some(prepared))
    }

    /// Keeps `extra` and publishes what it serves: the prepared snapshot if
    /// it was built from the config in force, else a new build.
    fn commit_extra(&self, extra: Extra, prepared: Option<Prepared>) -> Result<u64, LoadError> {
        let mut state = self.lock();
        let built = match prepared {
            Some(p) if p.loaded_version == state.loaded_version => Ok(p.snapshot),
            _ => {
                let mut diags = Diagnostics::default();
                build_snapshot(&state.loaded, &extra, &self.registry, &mut diags)
            }
        };
        self.count(built.is_ok());
        let snapshot = built?;
        state.extra = extra;
        let generation = self.install(snapshot);
        drop(state);
        Ok(generation)
    }

    fn install(&self, snapshot: Snapshot) -> u64 {
        for w in &snapshot.warnings {
            tracing::warn!("{w}");
        }
        let names: Vec<String> = snapshot
            .targets
            .iter()
            .filter(|t| t.fixed.is_none())
            .map(|t| t.resolve.clone())
            .collect();
        self.resolver.set_names(names);
        let generation = self.publisher.publish(Arc::new(snapshot));
        if !self.publisher.wait_applied(generation, APPLY_TIMEOUT) {
            tracing::warn!(
                generation,
                "not every shard took the new configuration in time"
            );
        }
        generation
    }

    /// Orders the shards to stop accepting and drain.
    pub fn shutdown(&self) {
        self.publisher.request_shutdown();
    }
}

/// Config APIs first; an admin API with the id of a config API is not
/// served (the config file wins) and is reported. Likewise for usage plans
/// (by id) and API keys (by value); an admin key keeps only its admin
/// plans, never a config plan that shadowed one of them.
pub fn build_snapshot(
    loaded: &Loaded,
    extra: &Extra,
    registry: &Registry,
    diags: &mut Diagnostics,
) -> Result<Snapshot, LoadError> {
    let mut sources: Vec<ApiSource> = loaded.apis.clone();
    for e in &extra.apis {
        if loaded.apis.iter().any(|a| a.id == e.id) {
            diags.warn(
                &e.file,
                "$",
                format!(
                    "API `{}` is also defined in the config file; the config file's definition is served",
                    e.id
                ),
            );
            continue;
        }
        sources.push(e.clone());
    }
    if extra.plans.is_empty() && extra.keys.is_empty() {
        return config::build(&loaded.settings, &sources, registry, diags);
    }
    let mut settings = loaded.settings.clone();
    let limits = &mut settings.limits;
    let config_plans = limits.plans.len();
    let mut served_plans: Vec<&str> = Vec::new();
    for (file, plan) in &extra.plans {
        if limits.plans[..config_plans].iter().any(|p| p.id == plan.id) {
            diags.warn(
                file,
                "$.id",
                format!(
                    "usage plan `{}` is also defined in the config file; the config file's plan is used",
                    plan.id
                ),
            );
            continue;
        }
        served_plans.push(&plan.id);
        limits.plans.push(PlanSettings {
            record: Some(file.clone()),
            ..plan.clone()
        });
    }
    let config_keys = limits.keys.len();
    for (file, key) in &extra.keys {
        if limits.keys[..config_keys]
            .iter()
            .any(|k| k.value == key.value)
        {
            diags.warn(
                file,
                "$.value",
                format!(
                    "API key `{}` has the value of a key of the config file; the config file's key is used",
                    key.name
                ),
            );
            continue;
        }
        let mut key = key.clone();
        key.plans.retain(|p| served_plans.contains(&p.as_str()));
        limits.keys.push(key);
    }
    config::build(&settings, &sources, registry, diags)
}
