//! TLS: the TLS listener (same routes, SNI, TLS 1.2/1.3 only, ALPN,
//! resumption, client certificates, certificate reload without dropping
//! connections, clear errors for bad files) checked with curl, openssl
//! s_client and a rustls client; `https://` integrations against a rustls
//! backend (verification, CA bundle, SNI, pooling, the skip switch).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_types)]

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use support::gateway::{mock_method, proxy_method, swagger};
use support::{Gateway, GatewayBuilder};

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    Ca {
        cert: p.self_signed(&key).unwrap(),
        key,
    }
}

/// A leaf certificate for `names`, signed by `ca`: (cert PEM, key PEM).
fn leaf(ca: &Ca, cn: &str, names: &[&str], client: bool) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn mock_api() -> String {
    swagger(&format!(
        r#"{{"/hello": {{"get": {}}}, "/who": {{"get": {}}}}}"#,
        mock_method(200, r#"{"hello":"tls"}"#),
        mock_method(
            200,
            r#"{"subject":"$context.identity.clientCert.subjectDN","issuer":"$context.identity.clientCert.issuerDN","notAfter":"$context.identity.clientCert.validity.notAfter"}"#
        )
    ))
}

/// A gateway with a TLS listener: certificates for api.test (+ *.wild.test)
/// and other.test, written into the gateway's directory before it starts.
fn tls_gateway(ca: &Ca, extra_tls: &str, files: &[(&str, String)]) -> Gateway {
    let builder = Gateway::builder()
        .api("a", &mock_api())
        .stage("a", "prod", &[])
        .default_api("a");
    let (api_cert, api_key) = leaf(ca, "api.test", &["api.test", "*.wild.test"], false);
    let (other_cert, other_key) = leaf(ca, "other.test", &["other.test"], false);
    let mut files: Vec<(&str, String)> = files.to_vec();
    files.push(("api.pem", api_cert));
    files.push(("api.key", api_key));
    files.push(("other.pem", other_cert));
    files.push(("other.key", other_key));
    start_tls(builder, &format!("[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = \"api.pem\", key = \"api.key\" }}, {{ cert = \"other.pem\", key = \"other.key\" }}]\n{extra_tls}"), &files)
}

fn start_tls(builder: GatewayBuilder, server_tls: &str, files: &[(&str, String)]) -> Gateway {
    // `[server.tls]` must follow `[server]`'s keys: put it first in extra.
    let builder = builder.extra(server_tls);
    let (dir, path) = builder.write();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    support::gateway::start_with_config(dir, &path, &[])
}

/// curl over TLS; returns (exit code, stdout).
fn curl(gw: &Gateway, host: &str, path: &str, args: &[&str]) -> (i32, String) {
    let port = gw.tls.expect("TLS listener").port();
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .arg("--resolve")
        .arg(format!("{host}:{port}:127.0.0.1"))
        .args(args)
        .arg(format!("https://{host}:{port}{path}"))
        .output()
        .expect("curl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn ca_file(gw: &Gateway, ca: &Ca) -> String {
    write(gw.dir.path(), "ca.pem", &ca.cert.pem())
        .to_string_lossy()
        .into_owned()
}

#[test]
fn same_routes_over_tls_with_sni_certificates() {
    let ca = new_ca("Test CA");
    let gw = tls_gateway(&ca, "", &[]);
    let cafile = ca_file(&gw, &ca);
    for host in ["api.test", "other.test", "x.wild.test"] {
        let (code, out) = curl(
            &gw,
            host,
            "/prod/hello",
            &[
                "--cacert",
                &cafile,
                "-w",
                "\n%{http_version} %{response_code}",
            ],
        );
        assert_eq!(code, 0, "{host}: {out}");
        assert!(out.contains(r#"{"hello":"tls"}"#), "{out}");
        assert!(out.ends_with("1.1 200"), "{host}: {out}");
    }
    // An unknown name gets the first certificate, which curl then refuses
    // (exit 60: the name does not match).
    let (code, _) = curl(&gw, "nope.test", "/prod/hello", &["--cacert", &cafile]);
    assert_eq!(code, 60);
    // The plain listener still serves.
    let r = support::client::get(gw.addr, "/prod/hello");
    assert_eq!(r.status, 200);
    // The TLS listener refuses plain HTTP (not served as a request).
    let mut plain = TcpStream::connect(gw.tls.unwrap()).unwrap();
    plain
        .write_all(b"GET /prod/hello HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = Vec::new();
    let _ = plain.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("hello"));
}

fn s_client(addr: SocketAddr, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .arg("-connect")
        .arg(addr.to_string())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

const GET_CLOSE: &str = "GET /prod/hello HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";

#[test]
fn protocols_alpn_chain_and_resumption() {
    let ca = new_ca("Test CA");
    let gw = tls_gateway(&ca, "", &[]);
    let cafile = ca_file(&gw, &ca);
    let addr = gw.tls.unwrap();
    let base = ["-servername", "api.test", "-CAfile", cafile.as_str()];

    // TLS 1.0 and 1.1 are refused.
    for old in ["-tls1", "-tls1_1"] {
        let (ok, out) = s_client(
            addr,
            &[&base[..], &[old, "-cipher", "DEFAULT:@SECLEVEL=0"]].concat(),
            "",
        );
        assert!(!ok, "{old} was accepted:\n{out}");
        assert!(
            out.contains("Cipher is (NONE)") || out.contains("no protocols available"),
            "{old}: {out}"
        );
    }
    // TLS 1.2 and 1.3 work, the chain verifies, ALPN picks http/1.1.
    for (flag, name) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, out) = s_client(
            addr,
            &[&base[..], &[flag, "-alpn", "h2,http/1.1", "-ign_eof"]].concat(),
            GET_CLOSE,
        );
        assert!(ok, "{flag}: {out}");
        assert!(
            out.contains(&format!("Protocol  : {name}")) || out.contains(&format!(", {name},")),
            "{out}"
        );
        assert!(out.contains("Verify return code: 0 (ok)"), "{out}");
        assert!(out.contains("ALPN protocol: http/1.1"), "{out}");
        assert!(out.contains(r#"{"hello":"tls"}"#), "{out}");
    }
    // Resumption: a second connection with the first one's session.
    for flag in ["-tls1_2", "-tls1_3"] {
        let sess = gw.dir.path().join(format!("sess{flag}.pem"));
        let sess = sess.to_str().unwrap();
        let (ok, out) = s_client(
            addr,
            &[&base[..], &[flag, "-sess_out", sess, "-ign_eof"]].concat(),
            GET_CLOSE,
        );
        assert!(ok, "{out}");
        let (ok, out) = s_client(
            addr,
            &[&base[..], &[flag, "-sess_in", sess, "-ign_eof"]].concat(),
            GET_CLOSE,
        );
        assert!(ok, "{out}");
        assert!(out.contains("Reused, TLS"), "{flag} not resumed:\n{out}");
    }
}

#[test]
fn client_certificates_required_and_optional() {
    let ca = new_ca("Server CA");
    let client_ca = new_ca("Client CA");
    let stranger_ca = new_ca("Stranger CA");
    let (cc, ck) = leaf(&client_ca, "client-1", &["client-1.test"], true);
    let (sc, sk) = leaf(&stranger_ca, "stranger", &["stranger.test"], true);
    let files = [
        ("client-ca.pem", client_ca.cert.pem()),
        ("client.pem", cc),
        ("client.key", ck),
        ("stranger.pem", sc),
        ("stranger.key", sk),
    ];
    let gw = tls_gateway(&ca, "client_ca = \"client-ca.pem\"\n", &files);
    let cafile = ca_file(&gw, &ca);
    let d = gw.dir.path();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    // Without a certificate: refused.
    let (code, out) = curl(&gw, "api.test", "/prod/who", &["--cacert", &cafile]);
    assert_ne!(code, 0, "{out}");
    // From another CA: refused.
    let (code, out) = curl(
        &gw,
        "api.test",
        "/prod/who",
        &[
            "--cacert",
            &cafile,
            "--cert",
            &p("stranger.pem"),
            "--key",
            &p("stranger.key"),
        ],
    );
    assert_ne!(code, 0, "{out}");
    // A good one: served, with $context.identity.clientCert.
    let (code, out) = curl(
        &gw,
        "api.test",
        "/prod/who",
        &[
            "--cacert",
            &cafile,
            "--cert",
            &p("client.pem"),
            "--key",
            &p("client.key"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["subject"], "CN=client-1");
    assert_eq!(v["issuer"], "CN=Client CA");
    assert!(v["notAfter"].as_str().unwrap().ends_with(" GMT"), "{v}");
    drop(gw);

    // Optional: no certificate is served (with an empty clientCert).
    let gw = tls_gateway(
        &ca,
        "client_ca = \"client-ca.pem\"\nclient_auth = \"optional\"\n",
        &files,
    );
    let cafile = ca_file(&gw, &ca);
    let (code, out) = curl(&gw, "api.test", "/prod/who", &["--cacert", &cafile]);
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["subject"], "");
}

/// Sessions resume across a reload that keeps client authentication as it
/// was, and not across one that tightens it: a resumed session is not
/// verified again, so a client without a certificate could otherwise keep
/// coming in after `client_auth` became `required`.
#[test]
fn a_reload_that_tightens_client_auth_ends_resumption() {
    let ca = new_ca("Server CA");
    let client_ca = new_ca("Client CA");
    let files = [("client-ca.pem", client_ca.cert.pem())];
    let gw = tls_gateway(
        &ca,
        "client_ca = \"client-ca.pem\"\nclient_auth = \"optional\"\n",
        &files,
    );
    let cafile = ca_file(&gw, &ca);
    let addr = gw.tls.unwrap();
    let base = ["-servername", "api.test", "-CAfile", cafile.as_str()];
    let sess = |flag: &str| {
        gw.dir
            .path()
            .join(format!("sess{flag}.pem"))
            .to_string_lossy()
            .into_owned()
    };
    for flag in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = s_client(
            addr,
            &[&base[..], &[flag, "-sess_out", &sess(flag), "-ign_eof"]].concat(),
            GET_CLOSE,
        );
        assert!(ok && out.contains(r#"{"hello":"tls"}"#), "{out}");
    }
    // A reload that changes nothing about clients: sessions resume.
    let config = gw.dir.path().join("tollgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}\n# touched\n")).unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));
    for flag in ["-tls1_2", "-tls1_3"] {
        let (ok, out) = s_client(
            addr,
            &[
                &base[..],
                &[
                    flag,
                    "-sess_in",
                    &sess(flag),
                    "-sess_out",
                    &sess(flag),
                    "-ign_eof",
                ],
            ]
            .concat(),
            GET_CLOSE,
        );
        assert!(
            ok && out.contains("Reused, TLS"),
            "{flag} not resumed:\n{out}"
        );
    }
    // Certificates required from now on: no session of before resumes,
    // and the handshake without a certificate fails.
    std::fs::write(
        &config,
        text.replace("client_auth = \"optional\"", "client_auth = \"required\""),
    )
    .unwrap();
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 2, Duration::from_secs(10)));
    for flag in ["-tls1_2", "-tls1_3"] {
        let (_, out) = s_client(
            addr,
            &[&base[..], &[flag, "-sess_in", &sess(flag), "-ign_eof"]].concat(),
            GET_CLOSE,
        );
        assert!(
            !out.contains("Reused, TLS"),
            "{flag} resumed after the reload:\n{out}"
        );
        assert!(
            !out.contains(r#"{"hello":"tls"}"#),
            "{flag} served without a certificate:\n{out}"
        );
    }
}

/// The TLS listener is opened at start: a reload that removes `[server.tls]`
/// or moves it to another address says it needs a restart and TLS keeps
/// being served (removal reset every handshake; nothing was logged).
#[test]
fn tls_listener_changes_wait_for_a_restart() {
    let ca = new_ca("Test CA");
    let gw = tls_gateway(&ca, "", &[]);
    let cafile = ca_file(&gw, &ca);
    let section = "[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"api.pem\", key = \"api.key\" }, { cert = \"other.pem\", key = \"other.key\" }]\n";
    let config = gw.dir.path().join("tollgate.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(section), "{text}");
    let served = || curl(&gw, "api.test", "/prod/hello", &["--cacert", &cafile]);
    for (n, (edited, warning)) in [
        (text.replace(section, ""), "[server.tls] removed"),
        (
            text.replace(section, &section.replace("127.0.0.1:0", "127.0.0.1:9")),
            "server.tls.listen changed",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        std::fs::write(&config, edited).unwrap();
        gw.signal("HUP");
        assert!(gw.wait_log("configuration reloaded", n + 1, Duration::from_secs(10)));
        assert!(
            gw.wait_log(warning, 1, Duration::from_secs(10)),
            "{:?}",
            gw.log()
        );
        let (code, out) = served();
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("tls"), "{out}");
    }
}

/// Access logs see the client certificate as templates do.
#[test]
fn access_logs_see_the_client_certificate() {
    let ca = new_ca("Server CA");
    let client_ca = new_ca("Client CA");
    let (cc, ck) = leaf(&client_ca, "client-7", &["client-7.test"], true);
    let (api_cert, api_key) = leaf(&ca, "api.test", &["api.test"], false);
    let builder = Gateway::builder().api("a", &mock_api()).default_api("a");
    let gw = start_tls(
        builder,
        "[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"api.pem\", key = \"api.key\" }]\nclient_ca = \"client-ca.pem\"\nclient_auth = \"optional\"\n[[stages]]\napi = \"a\"\nname = \"prod\"\naccess_log = { path = \"access.log\", format = '$context.identity.clientCert.subjectDN|$context.identity.clientCert.issuerDN|$context.status' }\n",
        &[
            ("api.pem", api_cert),
            ("api.key", api_key),
            ("client-ca.pem", client_ca.cert.pem()),
            ("client.pem", cc),
            ("client.key", ck),
        ],
    );
    let cafile = ca_file(&gw, &ca);
    let d = gw.dir.path();
    let p = |n: &str| d.join(n).to_string_lossy().into_owned();
    let (code, out) = curl(
        &gw,
        "api.test",
        "/prod/hello",
        &[
            "--cacert",
            &cafile,
            "--cert",
            &p("client.pem"),
            "--key",
            &p("client.key"),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = curl(&gw, "api.test", "/prod/hello", &["--cacert", &cafile]);
    assert_eq!(code, 0, "{out}");
    let log = d.join("access.log");
    support::wait_until("two access-log lines", Duration::from_secs(30), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    });
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"CN=client-7|CN=Client CA|200"), "{text}");
    assert!(lines.contains(&"-|-|200"), "{text}");
}

/// A rustls client connection (kept open across requests).
fn rustls_client(
    addr: SocketAddr,
    name: &str,
    ca: &Ca,
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let conn = rustls::ClientConnection::new(Arc::new(config), name.to_owned().try_into().unwrap())
        .unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    rustls::StreamOwned::new(conn, sock)
}

/// One keep-alive request; returns the body.
fn request(s: &mut rustls::StreamOwned<rustls::ClientConnection, TcpStream>, path: &str) -> String {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: api.test\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap();
            if buf.len() >= end + 4 + len {
                return text[end + 4..end + 4 + len].to_owned();
            }
        }
    }
}

fn peer_cn(s: &rustls::StreamOwned<rustls::ClientConnection, TcpStream>) -> String {
    let der = s.conn.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    cn
}

#[test]
fn certificates_reload_on_sighup_without_dropping_connections() {
    let ca = new_ca("Test CA");
    let gw = tls_gateway(&ca, "", &[]);
    let addr = gw.tls.unwrap();
    let mut old = rustls_client(addr, "api.test", &ca);
    assert!(request(&mut old, "/prod/hello").contains("tls"));
    assert_eq!(peer_cn(&old), "api.test");

    // Renewed certificate (new CN), same files.
    let (cert, key) = leaf(&ca, "api.test renewed", &["api.test"], false);
    write(gw.dir.path(), "api.pem", &cert);
    write(gw.dir.path(), "api.key", &key);
    gw.signal("HUP");
    assert!(gw.wait_log("configuration reloaded", 1, Duration::from_secs(10)));

    let mut new = rustls_client(addr, "api.test", &ca);
    assert!(request(&mut new, "/prod/hello").contains("tls"));
    assert_eq!(peer_cn(&new), "api.test renewed");
    // The connection opened before the reload still works.
    assert!(request(&mut old, "/prod/hello").contains("tls"));

    // A broken certificate on reload: logged with the file, old one kept.
    write(gw.dir.path(), "api.pem", "not a certificate");
    gw.signal("HUP");
    assert!(gw.wait_log("reload failed", 1, Duration::from_secs(10)));
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("api.pem") && l.contains("$.server.tls.certificates[0].cert")));
    let mut after = rustls_client(addr, "api.test", &ca);
    assert!(request(&mut after, "/prod/hello").contains("tls"));
    assert_eq!(peer_cn(&after), "api.test renewed");
}

fn check(builder: GatewayBuilder, files: &[(&str, String)]) -> (i32, String) {
    let (dir, path) = builder.write();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let out = Command::new(support::gateway::bin())
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn bad_certificate_files_are_clear_errors() {
    let ca = new_ca("Test CA");
    let (cert, key) = leaf(&ca, "api.test", &["api.test"], false);
    let (_, other_key) = leaf(&ca, "x", &["x.test"], false);
    let base = || {
        Gateway::builder()
            .api("a", &mock_api())
            .stage("a", "prod", &[])
    };
    let tls = |c: &str, k: &str| {
        format!("[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{{ cert = \"{c}\", key = \"{k}\" }}]\n")
    };
    // Missing file.
    let (code, out) = check(
        base().extra(&tls("missing.pem", "api.key")),
        &[("api.key", key.clone())],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("missing.pem") && out.contains("$.server.tls.certificates[0].cert"),
        "{out}"
    );
    // Not PEM.
    let (code, out) = check(
        base().extra(&tls("api.pem", "api.key")),
        &[("api.pem", "garbage".into()), ("api.key", key.clone())],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("api.pem") && out.contains("no CERTIFICATE"),
        "{out}"
    );
    // A key that is not the certificate's.
    let (code, out) = check(
        base().extra(&tls("api.pem", "api.key")),
        &[("api.pem", cert.clone()), ("api.key", other_key)],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("$.server.tls.certificates[0].key") && out.contains("does not match"),
        "{out}"
    );
    // The entry at fault is named, when another entry shares its key file.
    let (x_cert, x_key) = leaf(&ca, "x", &["x.test"], false);
    let (code, out) = check(
        base().extra(
            "[server.tls]\nlisten = \"127.0.0.1:0\"\ncertificates = [{ cert = \"api.pem\", key = \"api.key\" }, { cert = \"x.pem\", key = \"x.key\" }, { cert = \"x.pem\", key = \"api.key\" }]\n",
        ),
        &[
            ("api.pem", cert.clone()),
            ("api.key", key.clone()),
            ("x.pem", x_cert),
            ("x.key", x_key),
        ],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("$.server.tls.certificates[2].key") && !out.contains("certificates[0]"),
        "{out}"
    );
    assert!(!out.contains("KeyMismatch"), "{out}");
    // `serve` refuses to start with the same message.
    let (dir, path) = base().extra(&tls("missing.pem", "api.key")).write();
    write(dir.path(), "api.key", &key);
    let out = Command::new(support::gateway::bin())
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.pem"));
    // A good pair checks fine.
    let (code, out) = check(
        base().extra(&tls("api.pem", "api.key")),
        &[("api.pem", cert), ("api.key", key)],
    );
    assert_eq!(code, 0, "{out}");
}

/// A TLS backend: answers every request with the SNI it saw and counts
/// connections.
struct TlsBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    names: Arc<Mutex<Vec<String>>>,
}

fn tls_backend(ca: &Ca, names: &[&str]) -> TlsBackend {
    let (cert, key) = leaf(ca, names[0], names, false);
    let certs: Vec<_> = rustls_pki_types::pem::PemObject::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<rustls_pki_types::CertificateDer<'static>>, _>>()
        .unwrap();
    let key =
        <rustls_pki_types::PrivateKeyDer as rustls_pki_types::pem::PemObject>::from_pem_slice(
            key.as_bytes(),
        )
        .unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c2, s2) = (connections.clone(), seen.clone());
    std::thread::spawn(move || {
        for sock in listener.incoming() {
            let Ok(sock) = sock else { continue };
            c2.fetch_add(1, Ordering::SeqCst);
            let config = config.clone();
            let seen = s2.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut s = rustls::StreamOwned::new(conn, sock);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    buf.drain(..end + 4);
                    let sni = s.conn.server_name().unwrap_or("").to_owned();
                    seen.lock().unwrap().push(sni.clone());
                    let body = format!("{{\"sni\":\"{sni}\"}}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).is_err() || s.flush().is_err() {
                        return;
                    }
                }
            });
        }
    });
    TlsBackend {
        addr,
        connections,
        names: seen,
    }
}

fn https_gateway(backend: &TlsBackend, skip: bool, ca_pem: Option<String>) -> Gateway {
    let extra = if skip {
        r#", "tlsConfig": {"insecureSkipVerification": true}"#
    } else {
        ""
    };
    let doc = swagger(&format!(
        r#"{{"/b": {{"get": {}}}}}"#,
        proxy_method("https://backend.test/x", extra)
    ));
    let mut b = Gateway::builder()
        .api("a", &doc)
        .stage("a", "prod", &[])
        .default_api("a")
        .upstream_host("backend.test", &backend.addr.to_string());
    let mut files = Vec::new();
    if let Some(pem) = ca_pem {
        b = b.upstream("ca_file", "\"backend-ca.pem\"");
        files.push(("backend-ca.pem", pem));
    }
    let (dir, path) = b.write();
    for (n, t) in &files {
        write(dir.path(), n, t);
    }
    support::gateway::start_with_config(dir, &path, &[])
}

#[test]
fn https_integrations_verify_send_sni_and_pool() {
    let ca = new_ca("Backend CA");
    let backend = tls_backend(&ca, &["backend.test"]);
    let gw = https_gateway(&backend, false, Some(ca.cert.pem()));
    for _ in 0..3 {
        let r = support::client::get(gw.addr, "/prod/b");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["sni"], "backend.test");
    }
    // Keep-alive to the backend: one TLS connection for all three.
    assert_eq!(backend.connections.load(Ordering::SeqCst), 1);
    assert_eq!(backend.names.lock().unwrap().len(), 3);
}

#[test]
fn https_integration_with_an_untrusted_certificate_fails_unless_skipped() {
    let ca = new_ca("Private CA");
    let backend = tls_backend(&ca, &["backend.test"]);
    // System roots do not know the private CA: 504 INTEGRATION_FAILURE.
    let gw = https_gateway(&backend, false, None);
    let r = support::client::get(gw.addr, "/prod/b");
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(
        r.json()["message"],
        "Network error communicating with endpoint"
    );
    drop(gw);
    // A certificate for another name, with the CA trusted: still refused.
    let wrong = tls_backend(&ca, &["elsewhere.test"]);
    let gw = https_gateway(&wrong, false, Some(ca.cert.pem()));
    assert_eq!(support::client::get(gw.addr, "/prod/b").status, 504);
    drop(gw);
    // The explicit switch: served, and the load warns loudly.
    let gw = https_gateway(&backend, true, None);
    let r = support::client::get(gw.addr, "/prod/b");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(gw
        .log()
        .iter()
        .any(|l| l.contains("insecureSkipVerification") && l.contains("NOT verified")));
    drop(gw);
    // As API Gateway, the switch skips only the chain's trust: a
    // certificate for another name is still refused.
    let gw = https_gateway(&wrong, true, None);
    assert_eq!(support::client::get(gw.addr, "/prod/b").status, 504);
}

/// Over TLS too, a client that writes its whole upload before reading gets
/// the early answer (403 for no route): the close_notify, then the rest of
/// the upload read and dropped, instead of a reset.
#[test]
fn an_early_answer_over_tls_reaches_a_client_still_uploading() {
    let ca = new_ca("linger CA");
    let gw = tls_gateway(&ca, "", &[]);
    let ca_path = ca_file(&gw, &ca);
    let port = gw.tls.expect("TLS listener").port();
    let script = r#"
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
body = b"a" * (8 << 20)
for _ in range(3):
    raw = socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=20)
    s = ctx.wrap_socket(raw, server_hostname="api.test")
    s.sendall(b"POST /nostage HTTP/1.1\r\nHost: api.test\r\nContent-Length: %d\r\n\r\n" % len(body))
    s.sendall(body)
    got = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ssl.SSLEOFError:
            break
        if not chunk:
            break
        got += chunk
    print(got.split(b"\r\n")[0].decode())
"#;
    let out = Command::new("python3")
        .args(["-c", script, &ca_path, &port.to_string()])
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.starts_with("HTTP/1.1 403 "))
            .count(),
        3,
        "{stdout}"
    );
}
