//! Starts the real `tollgate` binary with a generated config.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub struct GatewayBuilder {
    apis: Vec<(String, String)>,
    stages: Vec<(String, String, Vec<(String, String)>)>,
    default_api: Option<String>,
    upstream_hosts: Vec<(String, String)>,
    server_extra: String,
    limits: Vec<(String, String)>,
    upstream: Vec<(String, String)>,
    shards: usize,
    extra: String,
}

pub struct Gateway {
    pub addr: SocketAddr,
    /// The admin listener, when the config has `[admin]`.
    pub admin: Option<SocketAddr>,
    /// The TLS listener, when the config has `[server.tls]`.
    pub tls: Option<SocketAddr>,
    child: Child,
    pub dir: tempfile::TempDir,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tollgate"))
}

impl Gateway {
    pub fn builder() -> GatewayBuilder {
        GatewayBuilder {
            apis: Vec::new(),
            stages: Vec::new(),
            default_api: None,
            upstream_hosts: Vec::new(),
            server_extra: String::new(),
            limits: Vec::new(),
            upstream: Vec::new(),
            shards: 1,
            extra: String::new(),
        }
    }

    /// `http://127.0.0.1:port{path}`
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`HUP`, `TERM`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill(1)");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Number of log lines containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until at least `n` log lines contain `needle`.
    pub fn wait_log(&self, needle: &str, n: usize, timeout: Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if self.log_count(needle) >= n {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }

    /// Waits for the process to exit; its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let until = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Waits until the quota counts (`state/quotas.json`, saved every 2 s)
    /// have been written `saves` more times after `since`, going by the
    /// file's modification time; panics after `timeout`. Two saves after
    /// the last counted request: the second began after the first ended,
    /// so it holds every count (one save may have read the counts before
    /// the last request was counted, and may still be writing).
    pub fn wait_quota_saves(&self, since: std::time::SystemTime, saves: usize, timeout: Duration) {
        let file = self.dir.path().join("state").join("quotas.json");
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = since;
        for n in 0..saves {
            loop {
                let saved = std::fs::metadata(&file).and_then(|m| m.modified());
                if let Ok(t) = saved {
                    if t > seen {
                        seen = t;
                        break;
                    }
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "only {n} of {saves} quota saves in {timeout:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("tollgate.toml")
    }

    /// `kill -9`, then start again on the same config and state directory.
    pub fn kill9_and_restart(mut self) -> Gateway {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        let path = dir.path().join("tollgate.toml");
        start_with_config(dir, &path, &[])
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GatewayBuilder {
    /// Adds an API from a Swagger document (JSON text).
    pub fn api(mut self, id: &str, swagger: &str) -> Self {
        self.apis.push((id.to_owned(), swagger.to_owned()));
        self
    }

    pub fn stage(mut self, api: &str, name: &str, vars: &[(&str, &str)]) -> Self {
        self.stages.push((
            api.to_owned(),
            name.to_owned(),
            vars.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ));
        self
    }

    pub fn default_api(mut self, id: &str) -> Self {
        self.default_api = Some(id.to_owned());
        self
    }

    pub fn upstream_host(mut self, from: &str, to: &str) -> Self {
        self.upstream_hosts.push((from.to_owned(), to.to_owned()));
        self
    }

    /// A raw `key = value` line in `[server]`.
    pub fn server(mut self, key: &str, value: &str) -> Self {
        self.server_extra.push_str(&format!("{key} = {value}\n"));
        self
    }

    pub fn limit(mut self, key: &str, value: &str) -> Self {
        self.limits.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn upstream(mut self, key: &str, value: &str) -> Self {
        self.upstream.push((key.to_owned(), value.to_owned()));
        self
    }

    pub fn shards(mut self, n: usize) -> Self {
        self.shards = n;
        self
    }

    /// An admin listener on an ephemeral port with a state directory in the
    /// temp dir, a full admin credential (token and access key) and a
    /// credential without the admin permission (token `ADMIN_TOKEN` + "-ro").
    pub fn admin(self) -> Self {
        self.extra(&format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\nstate_dir = \"state\"\n[[credentials]]\nname = \"ops\"\naccess_key_id = \"{ADMIN_KEY_ID}\"\nsecret_access_key = \"{ADMIN_SECRET}\"\ntoken = \"{ADMIN_TOKEN}\"\npermissions = [\"admin\"]\n[[credentials]]\nname = \"readonly\"\ntoken = \"{ADMIN_TOKEN}-ro\"\npermissions = [\"invalidate_cache\"]\n"
        ))
    }

    /// Raw TOML appended to the config.
    pub fn extra(mut self, toml: &str) -> Self {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }

    pub fn config_text(&self) -> String {
        let mut c = String::new();
        c.push_str("[server]\nlisten = \"127.0.0.1:0\"\n");
        c.push_str(&format!("shards = {}\n", self.shards));
        if let Some(d) = &self.default_api {
            c.push_str(&format!("default_api = \"{d}\"\n"));
        }
        c.push_str(&self.server_extra);
        if !self.limits.is_empty() {
            c.push_str("[server.limits]\n");
            for (k, v) in &self.limits {
                c.push_str(&format!("{k} = {v}\n"));
            }
        }
        if !self.upstream.is_empty() {
            c.push_str("[upstream]\n");
            for (k, v) in &self.upstream {
                c.push_str(&format!("{k} = {v}\n"));
            }
        }
        for (id, _) in &self.apis {
            c.push_str(&format!(
                "[[apis]]\nid = \"{id}\"\nswagger = \"{id}.json\"\n"
            ));
        }
        for (api, name, vars) in &self.stages {
            c.push_str(&format!("[[stages]]\napi = \"{api}\"\nname = \"{name}\"\n"));
            if !vars.is_empty() {
                c.push_str("[stages.variables]\n");
                for (k, v) in vars {
                    c.push_str(&format!("{k} = \"{v}\"\n"));
                }
            }
        }
        if !self.upstream_hosts.is_empty() {
            c.push_str("[upstream_hosts]\n");
            for (k, v) in &self.upstream_hosts {
                c.push_str(&format!("\"{k}\" = \"{v}\"\n"));
            }
        }
        c.push_str(&self.extra);
        c
    }

    /// Writes the config into a temp dir and returns its path (for `check`).
    pub fn write(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for (id, doc) in &self.apis {
            std::fs::write(dir.path().join(format!("{id}.json")), doc).unwrap();
        }
        let path = dir.path().join("tollgate.toml");
        std::fs::write(&path, self.config_text()).unwrap();
        (dir, path)
    }

    pub fn start(self) -> Gateway {
        let (dir, path) = self.write();
        start_with_config(dir, &path, &[])
    }
}

/// Starts `tollgate serve` and waits for its "listening" line.
pub fn start_with_config(dir: tempfile::TempDir, config: &Path, extra_args: &[&str]) -> Gateway {
    start_with_log_level(dir, config, extra_args, "info")
}

/// The same with `RUST_LOG` set to `level`.
pub fn start_with_log_level(
    dir: tempfile::TempDir,
    config: &Path,
    extra_args: &[&str],
    level: &str,
) -> Gateway {
    let mut child = Command::new(bin())
        .arg("serve")
        .arg("--config")
        .arg(config)
        .args(extra_args)
        .env("RUST_LOG", level)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tollgate");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let listening = if !sent && line.contains("tollgate listening") {
                line.split("addr=")
                    .nth(1)
                    .map(|a| a.split_whitespace().next().unwrap_or("").to_owned())
            } else {
                None
            };
            log2.lock().unwrap().push(line);
            if let Some(a) = listening {
                let _ = tx.send(Ok(a));
                sent = true;
            }
        }
        if !sent {
            let _ = tx.send(Err(log2.lock().unwrap().join("\n")));
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Ok(a)) => a.parse().expect("listen address"),
        Ok(Err(log)) => panic!("tollgate exited before listening:\n{log}"),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "tollgate did not start in time:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
    };
    let admin = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("admin API listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    let tls = log
        .lock()
        .unwrap()
        .iter()
        .find(|l| l.contains("tollgate TLS listening"))
        .and_then(|l| l.split("addr=").nth(1))
        .and_then(|a| a.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    Gateway {
        addr,
        admin,
        tls,
        child,
        dir,
        log,
    }
}

/// The token of the admin credential `GatewayBuilder::admin` configures.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const ADMIN_KEY_ID: &str = "AKIDTESTADMIN";
pub const ADMIN_SECRET: &str = "test/secret/key+0123456789";

/// A Swagger document with the given paths object (JSON text).
pub fn swagger(paths: &str) -> String {
    format!(r#"{{"swagger": "2.0", "info": {{"title": "t", "version": "1"}}, "paths": {paths}}}"#)
}

/// A Swagger document with paths and root extras (e.g. gateway responses).
pub fn swagger_with(paths: &str, extra: &str) -> String {
    format!(
        r#"{{"swagger": "2.0", "info": {{"title": "t", "version": "1"}}, "paths": {paths}, {extra}}}"#
    )
}

/// A MOCK method answering `status` with `body` (JSON-escaped by the caller).
pub fn mock_method(status: u16, body: &str) -> String {
    format!(
        r#"{{"x-amazon-apigateway-integration": {{"type": "mock", "requestTemplates": {{"application/json": "{{\"statusCode\": {status}}}"}}, "responses": {{"default": {{"statusCode": "{status}", "responseTemplates": {{"application/json": {body}}}}}}}}}}}"#,
        body = serde_json::Value::String(body.to_owned())
    )
}

/// An HTTP_PROXY method to `uri` (method ANY unless given).
pub fn proxy_method(uri: &str, extra: &str) -> String {
    format!(
        r#"{{"x-amazon-apigateway-integration": {{"type": "http_proxy", "httpMethod": "ANY", "uri": "{uri}"{extra}}}}}"#
    )
}

/// `/open` needs no key; `/keyed` is `apiKeyRequired`.
pub fn keyed_api() -> String {
    let paths = format!(
        r#"{{"/open": {{"get": {open}}}, "/keyed": {{"get": {keyed}}}}}"#,
        open = mock_method(200, "open"),
        keyed = mock_method(200, "keyed").replacen('{', r#"{"security": [{"api_key": []}], "#, 1),
    );
    swagger_with(
        &paths,
        r#""securityDefinitions": {"api_key": {"type": "apiKey", "name": "x-api-key", "in": "header"}}"#,
    )
}

/// Whether the `aws` CLI runs; if not, says so (the caller skips).
pub fn aws_cli_available() -> bool {
    if Command::new("aws").arg("--version").output().is_err() {
        eprintln!("aws CLI not installed (pip install awscli); skipping");
        return false;
    }
    true
}

/// `aws apigateway ARGS --endpoint-url http://ADMIN --output json`, signed
/// with the admin credential; panics with its stderr on failure; stdout as
/// JSON (`Null` when empty).
pub fn aws_apigateway(admin: SocketAddr, args: &[&str]) -> serde_json::Value {
    let out = aws_apigateway_output(admin, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}

/// The same call, its outcome as it is (for calls expected to fail).
pub fn aws_apigateway_output(admin: SocketAddr, args: &[&str]) -> std::process::Output {
    let endpoint = format!("http://{admin}");
    Command::new("aws")
        .args(["apigateway"])
        .args(args)
        .args(["--endpoint-url", &endpoint, "--output", "json"])
        .env("AWS_ACCESS_KEY_ID", ADMIN_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", ADMIN_SECRET)
        .env("AWS_DEFAULT_REGION", "eu-west-1")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap()
}

/// `tollgate check --config config`: whether it passed, and what it
/// printed (standard output, then standard error).
pub fn check(config: &Path) -> (bool, String) {
    let out = Command::new(bin())
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}
