//! `tollgate`: parse arguments, load, run, map errors to exit codes.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tollgate::snapshot::{IntegrationKind, Shards};

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "A self-hosted API gateway for Swagger 2.0 APIs with Amazon API Gateway semantics"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the APIs of a configuration.
    Serve {
        /// Path to tollgate.toml.
        #[arg(long, short)]
        config: PathBuf,
        /// Number of shards (one executor thread each), or "auto" for one per CPU.
        #[arg(long)]
        shards: Option<String>,
    },
    /// Compile a configuration and print its APIs, stages and routes, or
    /// every error (exit status 1).
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Render a mapping template against a sample request, without deploying
    /// anything.
    Template(tollgate::template_cli::TemplateArgs),
    /// Empty a stage's response cache on every shard, through the admin API
    /// of a running gateway (address and credentials from the config).
    FlushCache {
        #[arg(long, short)]
        config: PathBuf,
        /// The API id.
        #[arg(long)]
        api: String,
        #[arg(long)]
        stage: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        // A log line that cannot be written (stderr a dead pipe or a full
        // disk) is lost. The subscriber's own report of it goes through
        // `eprintln!`, which panics on the same stderr: in a shard, that
        // took the connection and then the shard down.
        .log_internal_errors(false)
        .init();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Serve { config, shards } => serve(&config, shards.as_deref()),
        Command::FlushCache { config, api, stage } => flush_cache(&config, &api, &stage),
        Command::Template(args) => tollgate::template_cli::run(&args),
    }
}

/// `eprintln!` that cannot panic: a message that cannot be written to
/// stderr (a dead pipe, a full disk) is lost, and the command goes on to
/// its exit status.
macro_rules! complain {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `println!` for command output. A reader that went away (`tollgate check
/// | head`) ends the process quietly with the status the command had
/// reached (success: `check` prints only once the configuration is good),
/// as SIGPIPE ends a C tool; `println!` panics there, since Rust ignores
/// SIGPIPE. Any other write error is reported and fails the command.
macro_rules! say {
    ($($arg:tt)*) => {
        say_line(format_args!($($arg)*))
    };
}

fn say_line(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Err(e) = writeln!(std::io::stdout().lock(), "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        complain!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Loads a configuration with its sources, or prints its warnings and
/// error (for `check` and `serve`).
fn load_config(
    config: &std::path::Path,
    registry: &tollgate::limit::registry::Registry,
) -> Option<(tollgate::config::Loaded, tollgate::snapshot::Snapshot)> {
    match tollgate::config::load_with_sources(config, registry) {
        Ok(x) => Some(x),
        Err(e) => {
            for w in &e.warnings {
                complain!("warning: {w}");
            }
            complain!("error: {e}");
            None
        }
    }
}

/// One stage line of `check`'s listing.
fn print_stage(name: &str, variables: &std::collections::BTreeMap<String, String>) {
    let vars: Vec<String> = variables.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let vars = if vars.is_empty() {
        "-".to_owned()
    } else {
        vars.join(", ")
    };
    say!("  stage {name}  variables: {vars}");
}

fn check(config: &std::path::Path) -> ExitCode {
    let registry = tollgate::limit::registry::Registry::new(0);
    let Some((loaded, snap)) = load_config(config, &registry) else {
        return ExitCode::FAILURE;
    };
    // The admin state, read as `serve` reads it (without its lock, and
    // changing nothing): its errors are check's, and the APIs it deploys
    // are listed with the config's.
    let mut snap = snap;
    let mut admin_line = None;
    if let Some(admin) = &loaded.settings.admin {
        let (store, state) = match tollgate::admin::Admin::inspect(admin) {
            Ok(x) => x,
            Err(e) => {
                complain!("error: admin state: {e}");
                return ExitCode::FAILURE;
            }
        };
        let extra = state.extra(&store);
        if !extra.is_empty() {
            let mut diags = tollgate::config::Diagnostics::default();
            snap = match tollgate::control::build_snapshot(&loaded, &extra, &registry, &mut diags) {
                Ok(s) => s,
                Err(e) => {
                    for w in &e.warnings {
                        complain!("warning: {w}");
                    }
                    complain!("error: admin state in {}: {e}", admin.state_dir.display());
                    return ExitCode::FAILURE;
                }
            };
        }
        admin_line = Some(format!(
            "admin state {}: {} REST API(s), {} deployment(s), {} stage(s), {} API key(s), {} usage plan(s)",
            admin.state_dir.display(),
            state.apis.len(),
            state.deployments.values().map(|d| d.len()).sum::<usize>(),
            state.stages.values().map(|s| s.len()).sum::<usize>(),
            state.keys.len(),
            state.plans.len()
        ));
    }
    for w in &snap.warnings {
        say!("warning: {w}");
    }
    say!("listen {}", snap.server.listen);
    if let Some(line) = admin_line {
        say!("{line}");
    }
    for (i, api) in snap.apis.iter().enumerate() {
        let default = if snap.default_api == Some(i) {
            " (default)"
        } else {
            ""
        };
        say!(
            "\nAPI {} \"{}\"{} from {}",
            api.id,
            api.title,
            default,
            api.source.display()
        );
        for stage in &api.stages {
            print_stage(&stage.name, &stage.variables);
        }
        say!("  routes:");
        for m in &api.methods {
            let resource = &api.resources[m.resource as usize];
            let (kind, target) = match &m.integration {
                None => ("NONE".to_owned(), "500: no integration".to_owned()),
                Some(i) => {
                    let target = match &i.kind {
                        IntegrationKind::Mock => String::new(),
                        IntegrationKind::Unsupported(why) => why.clone(),
                        _ => {
                            let method = i.http_method.map_or("ANY", |m| m.as_str());
                            let backends: Vec<String> = api
                                .stages
                                .iter()
                                .filter_map(|s| {
                                    match &s.bindings[api
                                        .methods
                                        .iter()
                                        .position(|x| std::ptr::eq(x, m))
                                        .unwrap_or(0)]
                                    {
                                        tollgate::snapshot::Binding::Upstream(b) => {
                                            let t = &snap.targets[b.target as usize];
                                            Some(format!("{}→{}", s.name, t.resolve))
                                        }
                                        tollgate::snapshot::Binding::Invalid(e) => {
                                            Some(format!("{}: {e}", s.name))
                                        }
                                        tollgate::snapshot::Binding::None => None,
                                    }
                                })
                                .collect();
                            format!(
                                "{method} {} [{}]",
                                i.uri.as_deref().unwrap_or(""),
                                backends.join(", ")
                            )
                        }
                    };
                    (i.kind.label().to_owned(), target)
                }
            };
            say!(
                "    {:<8} {:<32} {:<11} {}",
                m.http_method,
                resource.path,
                kind,
                target
            );
        }
    }
    for api in &snap.ws_apis {
        say!("\nWebSocket API {}", api.id);
        for stage in &api.stages {
            print_stage(&stage.name, &stage.variables);
        }
        say!("  routes:");
        let mut keys: Vec<&String> = api.routes.keys().collect();
        keys.sort();
        for key in keys {
            let route = &api.routes[key];
            let (kind, target) = match &route.integration {
                tollgate::ws::WsIntegration::Mock { .. } => ("MOCK", String::new()),
                tollgate::ws::WsIntegration::Http { uri, .. } => {
                    let backends: Vec<String> = api
                        .stages
                        .iter()
                        .filter_map(|s| {
                            let b = s.bindings.get(key)?;
                            let t = snap.targets.get(b.target as usize)?;
                            Some(format!("{}→{}", s.name, t.resolve))
                        })
                        .collect();
                    ("HTTP", format!("{uri} [{}]", backends.join(", ")))
                }
            };
            let reply = if route.route_response { "reply" } else { "" };
            let auth = match &route.auth {
                tollgate::ws::WsAuth::None => "",
                tollgate::ws::WsAuth::Iam => "AWS_IAM",
                tollgate::ws::WsAuth::Lambda(_) => "CUSTOM",
            };
            let line = format!("    {key:<32} {kind:<6} {reply:<6} {auth:<8} {target}");
            say!("{}", line.trim_end());
        }
    }
    for d in snap.domains.iter() {
        say!("\nDomain {}", d.name);
        for m in &d.mappings {
            let base = if m.base_path.is_empty() {
                "(none)".to_owned()
            } else {
                format!("/{}", m.base_path)
            };
            let stage = m.stage.as_deref().unwrap_or("{stage from the path}");
            say!("    {base:<32} → {} / {stage}", m.api);
        }
    }
    let ws = if snap.ws_apis.is_empty() {
        String::new()
    } else {
        format!(" ({} WebSocket)", snap.ws_apis.len())
    };
    say!(
        "\nOK: {} API(s){ws}, {} warning(s)",
        snap.apis.len() + snap.ws_apis.len(),
        snap.warnings.len()
    );
    ExitCode::SUCCESS
}

fn serve(config: &std::path::Path, shards_arg: Option<&str>) -> ExitCode {
    // Signals are caught from the first moment: a SIGHUP or SIGUSR1 (a
    // logrotate or config-management hook) that lands while the config
    // loads would otherwise kill the process by its default action. They
    // wait, and are handled once the gateway runs.
    let signals = match caught_signals() {
        Ok(s) => s,
        Err(e) => {
            complain!("error: cannot install signal handlers: {e}");
            return ExitCode::FAILURE;
        }
    };
    let registry = tollgate::limit::registry::Registry::new(0);
    let Some((loaded, snap)) = load_config(config, &registry) else {
        return ExitCode::FAILURE;
    };
    for w in &snap.warnings {
        tracing::warn!("{w}");
    }
    // The admin state directory is taken (locked) before anything else is
    // started or written: a second gateway on the same directory stops
    // here.
    let mut admin_store = None;
    if let Some(admin) = &loaded.settings.admin {
        match tollgate::admin::Admin::open(admin) {
            Ok(x) => admin_store = Some(x),
            Err(e) => {
                complain!("error: admin state: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // Usage-plan quota counts survive restarts: read them, save them
    // every few seconds and at exit.
    if let Err(e) = registry.load_quotas(&loaded.settings.limits.quota_file) {
        complain!("error: quota state: {e}");
        return ExitCode::FAILURE;
    }
    let saver = registry.clone();
    let _ = std::thread::Builder::new()
        .name("tollgate-quotas".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_secs(2));
            if let Err(e) = saver.save_quotas() {
                tracing::warn!(error = %e, "cannot save quota counts");
            }
        });
    let shards = match shards_arg.map(parse_shards) {
        Some(Ok(s)) => s,
        Some(Err(e)) => {
            complain!("error: --shards: {e}");
            return ExitCode::FAILURE;
        }
        None => snap.server.shards,
    };
    let shards = match shards {
        Shards::Auto => std::thread::available_parallelism().map_or(1, |n| n.get()),
        Shards::Count(n) => n,
    };
    if let Err(e) = tollgate::preflight::check(shards, snap.server.io_memory) {
        complain!("error: {e}");
        return ExitCode::FAILURE;
    }
    if let Some(addr) = snap.demo_backend {
        match tollgate::demo::start(addr) {
            Ok(a) => tracing::info!(addr = %a, "demo PetStore backend listening"),
            Err(e) => {
                complain!("error: demo_backend: cannot bind {addr}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    // APIs, usage plans and API keys accepted by the admin API are served
    // from the start.
    let mut admin_parts = None;
    let mut extra = tollgate::control::Extra::default();
    let mut snap = snap;
    if let (Some(admin), Some((store, state))) = (&loaded.settings.admin, admin_store) {
        extra = state.extra(&store);
        if !extra.is_empty() {
            let mut diags = tollgate::config::Diagnostics::default();
            snap = match tollgate::control::build_snapshot(&loaded, &extra, &registry, &mut diags) {
                Ok(s) => s,
                Err(e) => {
                    complain!("error: admin state in {}: {e}", admin.state_dir.display());
                    return ExitCode::FAILURE;
                }
            };
        }
        admin_parts = Some((admin.clone(), store, state));
    }
    let names: Vec<String> = snap
        .targets
        .iter()
        .filter(|t| t.fixed.is_none())
        .map(|t| t.resolve.clone())
        .collect();
    let resolver = tollgate::resolve::Resolver::start(
        names,
        snap.upstream.dns_refresh,
        Duration::from_secs(2),
    );
    if let Some(cluster) = &loaded.settings.limits.cluster {
        let agent = tollgate::cluster::Agent::new(
            cluster.clone(),
            registry.cluster_limits.clone(),
            snap.throttling.account.shared.clone(),
            registry.permits.clone(),
        );
        if let Err(e) = agent.start() {
            complain!("error: cannot start the cluster agent: {e}");
            return ExitCode::FAILURE;
        }
        tracing::info!(redis = %cluster.redis, "account limits shared through Redis");
    }
    let publisher = tollgate::publish::Publisher::new(Arc::new(snap), shards);
    let control = Arc::new(tollgate::control::Control::new(
        config,
        loaded,
        extra,
        publisher.clone(),
        resolver.clone(),
        registry.clone(),
    ));
    if let Some((settings, store, state)) = admin_parts {
        let admin = tollgate::admin::Admin::new(store, state, control.clone());
        match tollgate::admin::start(&settings, admin) {
            Ok(a) => tracing::info!(addr = %a, "admin API listening"),
            Err(e) => {
                complain!("error: admin: cannot bind {}: {e}", settings.listen);
                return ExitCode::FAILURE;
            }
        }
    }
    if let Err(e) = registry.logs.start() {
        complain!("error: cannot start the access-log writer: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = start_signal_thread(signals, control.clone(), registry.logs.clone()) {
        complain!("error: cannot install signal handlers: {e}");
        return ExitCode::FAILURE;
    }
    let result = tollgate::shard::run(publisher, shards, resolver, |started| {
        if let Some(tls) = started.tls_addr {
            tracing::info!(addr = %tls, "tollgate TLS listening");
        }
        tracing::info!(addr = %started.addr, shards = started.shards, "tollgate listening");
        tollgate::notify::notify("READY=1");
    });
    if let Err(e) = registry.save_quotas() {
        tracing::warn!(error = %e, "cannot save quota counts");
    }
    // The shards handed over their last lines when they stopped.
    if !registry.logs.sync(Duration::from_secs(5)) {
        tracing::warn!("access logs: the last lines may not be written");
    }
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            complain!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn caught_signals() -> std::io::Result<signal_hook::iterator::Signals> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
    signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
}

/// SIGHUP reloads; SIGUSR1 reopens the access logs; SIGTERM/SIGINT drain
/// and stop (a second one exits now).
fn start_signal_thread(
    mut signals: signal_hook::iterator::Signals,
    control: Arc<tollgate::control::Control>,
    logs: Arc<tollgate::access_log::Sinks>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGUSR1};
    std::thread::Builder::new()
        .name("tollgate-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => match reload(&control) {
                        Ok(generation) => tracing::info!(generation, "configuration reloaded"),
                        Err(e) => {
                            for w in &e.warnings {
                                tracing::warn!("{w}");
                            }
                            tracing::error!(
                                "reload failed; still serving the previous configuration: {e}"
                            );
                        }
                    },
                    SIGUSR1 => logs.reopen(),
                    _ => {
                        if control.publisher().shutting_down() {
                            tracing::warn!("second stop signal: exiting now");
                            std::process::exit(1);
                        }
                        tracing::info!("stop signal: draining connections");
                        tollgate::notify::notify("STOPPING=1");
                        control.shutdown();
                    }
                }
            }
        })?;
    Ok(())
}

/// A reload, announced to systemd.
fn reload(control: &tollgate::control::Control) -> Result<u64, tollgate::config::LoadError> {
    tollgate::notify::notify("RELOADING=1");
    let r = control.reload();
    tollgate::notify::notify("READY=1");
    r
}

fn flush_cache(config: &std::path::Path, api: &str, stage: &str) -> ExitCode {
    let registry = tollgate::limit::registry::Registry::new(0);
    let loaded = match tollgate::config::load_with_sources(config, &registry) {
        Ok((l, _)) => l,
        Err(e) => {
            complain!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(admin) = &loaded.settings.admin else {
        complain!("error: the config has no [admin] section: there is no admin API to ask");
        return ExitCode::FAILURE;
    };
    let Some(cred) = loaded
        .settings
        .credentials
        .iter()
        .find(|c| c.permissions.admin)
    else {
        complain!("error: no credential with the `admin` permission in the config");
        return ExitCode::FAILURE;
    };
    let path = format!("/restapis/{api}/stages/{stage}/cache/data");
    let host = admin.listen.to_string();
    let auth = match (&cred.token, &cred.access_key_id, &cred.secret_access_key) {
        (Some(t), _, _) => format!("Bearer {t}"),
        (None, Some(key), Some(secret)) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let days = (now / 86_400) as i64;
            let (y, m, d) = tollgate::ids::civil_from_days(days);
            let rem = now % 86_400;
            let amz = format!(
                "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
                rem / 3600,
                rem % 3600 / 60,
                rem % 60
            );
            let headers: Vec<(&[u8], &[u8])> =
                vec![(b"host", host.as_bytes()), (b"x-amz-date", amz.as_bytes())];
            let parts = tollgate::auth::RequestParts {
                method: b"DELETE",
                path: path.as_bytes(),
                query: None,
                headers: &headers,
                body: b"",
            };
            match tollgate::auth::sign(
                &parts,
                key,
                secret,
                "us-east-1",
                "apigateway",
                &amz,
                &["host", "x-amz-date"],
            ) {
                Ok(a) => format!("{a}\r\nX-Amz-Date: {amz}"),
                Err(e) => {
                    complain!("error: cannot sign: {e:?}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => {
            complain!("error: the admin credential has no token or access key");
            return ExitCode::FAILURE;
        }
    };
    let request = format!("DELETE {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {auth}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let response = (|| -> std::io::Result<Vec<u8>> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect_timeout(&admin.listen, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.write_all(request.as_bytes())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out)?;
        Ok(out)
    })();
    match response {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let status_line = text.lines().next().unwrap_or("");
            if status_line.split_whitespace().nth(1) == Some("202") {
                say!("flushed the cache of {api}/{stage}");
                ExitCode::SUCCESS
            } else {
                let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
                complain!("error: {status_line}: {body}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            complain!("error: cannot reach the admin API at {}: {e}", admin.listen);
            ExitCode::FAILURE
        }
    }
}

fn parse_shards(s: &str) -> Result<Shards, String> {
    if s == "auto" {
        return Ok(Shards::Auto);
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=1024).contains(&n) => Ok(Shards::Count(n)),
        _ => Err(format!(
            "expected \"auto\" or a number from 1 to 1024, found `{s}`"
        )),
    }
}
