//! TLS with rustls (the `ring` provider): the server side of the TLS
//! listener (certificates chosen by SNI, TLS 1.2 and 1.3, ALPN
//! `http/1.1`, resumption by tickets, optional client certificates) and
//! the client side for `https://` integrations (system roots or a CA
//! bundle; verification can be turned off per integration).
//!
//! Owns: reading PEM files (errors name the file), building the rustls
//! configurations when a snapshot is built (so SIGHUP re-reads
//! certificates and new handshakes use them while open connections go on),
//! and the client-certificate fields `$context.identity.clientCert.*`.
//! Read first: [`server_config`], then [`client_configs`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// `[server.tls]` as configured.
#[derive(Clone, Debug)]
pub struct TlsSpec {
    pub listen: SocketAddr,
    /// Certificate chain and key files; the first is the default when the
    /// client sends no (or an unknown) server name.
    pub certificates: Vec<(PathBuf, PathBuf)>,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificates are asked for.
    None,
    /// Asked for; a connection without one is served (no
    /// `clientCert` context), one with an invalid one is refused.
    Optional,
    /// A valid client certificate is needed to connect.
    Required,
}

/// A problem with a TLS file.
#[derive(Debug)]
pub struct TlsError {
    pub file: PathBuf,
    pub problem: String,
    /// The config key the file came from (`$.server.tls.certificates[2].key`).
    pub at: Option<String>,
}

impl TlsError {
    fn new(file: &Path, problem: impl Into<String>) -> TlsError {
        TlsError {
            file: file.to_path_buf(),
            problem: problem.into(),
            at: None,
        }
    }

    fn at(mut self, path: impl Into<String>) -> TlsError {
        self.at = Some(path.into());
        self
    }
}

pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Resumption state that outlives snapshots: a reload does not end
/// resumable sessions, unless it changes who may connect (client
/// authentication or its CA). A resumed session is not verified again, so
/// tickets and cached sessions of the old policy are dropped then: a
/// client the new policy refuses must not resume its way in.
#[derive(Debug, Default)]
pub struct Shared {
    // Control plane only: taken when a snapshot is compiled (start and
    // reload), never on a connection.
    #[allow(clippy::disallowed_types)]
    state: std::sync::Mutex<Option<Resumption>>,
}

#[derive(Debug, Clone)]
struct Resumption {
    /// Hash of the client-auth mode and the CA file's bytes.
    policy: u64,
    ticketer: Option<Arc<dyn rustls::server::ProducesTickets>>,
    sessions: Arc<rustls::server::ServerSessionMemoryCache>,
}

impl Shared {
    fn resumption(&self, policy: u64) -> Resumption {
        let fresh = || Resumption {
            policy,
            ticketer: rustls::crypto::ring::Ticketer::new().ok(),
            sessions: rustls::server::ServerSessionMemoryCache::new(16_384),
        };
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*state {
            Some(r) if r.policy == policy => r.clone(),
            _ => {
                let r = fresh();
                *state = Some(r.clone());
                r
            }
        }
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::new(path, format!("cannot read: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::new(path, format!("not a PEM certificate file: {e:?}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(path, "no CERTIFICATE block in the file"));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = std::fs::read(path).map_err(|e| TlsError::new(path, format!("cannot read: {e}")))?;
    PrivateKeyDer::from_pem_slice(&text).map_err(|e| {
        TlsError::new(
            path,
            format!("no usable private key (PKCS#8, PKCS#1 or SEC1 PEM): {e:?}"),
        )
    })
}

/// Names a certificate is valid for: its DNS subject alternative names (or
/// its common name when it has none).
fn cert_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    names
}

/// Chooses the certificate by SNI: exact names, then `*.` wildcards (one
/// label), then the first certificate.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn pick(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        if let Some(k) = self.exact.get(&name) {
            return k.clone();
        }
        if let Some((_, parent)) = name.split_once('.') {
            if let Some(k) = self.wildcard.get(parent) {
                return k.clone();
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()))
    }
}

/// Builds the server configuration: reads every certificate and key (and
/// the client CA), checks that each key matches its certificate.
pub fn server_config(
    spec: &TlsSpec,
    shared: &Shared,
) -> Result<Arc<rustls::ServerConfig>, Vec<TlsError>> {
    let provider = provider();
    let mut errors = Vec::new();
    let mut keys = Vec::new();
    for (i, (cert, key)) in spec.certificates.iter().enumerate() {
        let cert_at = format!("$.server.tls.certificates[{i}].cert");
        let key_at = format!("$.server.tls.certificates[{i}].key");
        let chain = match read_certs(cert) {
            Ok(c) => c,
            Err(e) => {
                errors.push(e.at(cert_at));
                continue;
            }
        };
        let der = match read_key(key) {
            Ok(k) => k,
            Err(e) => {
                errors.push(e.at(key_at));
                continue;
            }
        };
        let signing = match provider.key_provider.load_private_key(der) {
            Ok(s) => s,
            Err(e) => {
                errors.push(TlsError::new(key, format!("unsupported private key: {e}")).at(key_at));
                continue;
            }
        };
        let names = cert_names(&chain[0]);
        let ck = CertifiedKey::new(chain, signing);
        if let Err(e) = ck.keys_match() {
            errors.push(
                TlsError::new(
                    key,
                    format!(
                        "the key does not match the certificate {}: {}",
                        cert.display(),
                        match e {
                            rustls::Error::InconsistentKeys(_) =>
                                "it is the key of another certificate".to_owned(),
                            other => other.to_string(),
                        }
                    ),
                )
                .at(key_at),
            );
            continue;
        }
        keys.push((names, Arc::new(ck)));
    }
    let ca_at = "$.server.tls.client_ca";
    // Who may connect, for the resumption state (see [`Shared`]).
    let mut policy = std::collections::hash_map::DefaultHasher::new();
    std::hash::Hash::hash(&(spec.client_auth as u8), &mut policy);
    let verifier = match (&spec.client_ca, spec.client_auth) {
        (Some(ca), auth) if auth != ClientAuth::None => {
            let mut roots = rustls::RootCertStore::empty();
            let before = errors.len();
            match read_certs(ca) {
                Ok(certs) => {
                    for c in certs {
                        std::hash::Hash::hash(c.as_ref(), &mut policy);
                        if let Err(e) = roots.add(c) {
                            errors.push(
                                TlsError::new(ca, format!("unusable CA certificate: {e}"))
                                    .at(ca_at),
                            );
                        }
                    }
                }
                Err(e) => errors.push(e.at(ca_at)),
            }
            if errors.len() > before {
                // The file's own error says it; no second one about it.
                return Err(errors);
            }
            let builder =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let builder = if auth == ClientAuth::Optional {
                builder.allow_unauthenticated()
            } else {
                builder
            };
            match builder.build() {
                Ok(v) => Some(v),
                Err(e) => {
                    errors.push(
                        TlsError::new(ca, format!("cannot verify clients with it: {e}")).at(ca_at),
                    );
                    None
                }
            }
        }
        _ => None,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(default) = keys.first().map(|(_, k)| k.clone()) else {
        return Err(vec![TlsError::new(
            Path::new("tollgate.toml"),
            "server.tls needs at least one certificate",
        )]);
    };
    let mut resolver = SniResolver {
        exact: HashMap::new(),
        wildcard: HashMap::new(),
        default,
    };
    for (names, key) in &keys {
        for n in names {
            match n.strip_prefix("*.") {
                Some(parent) => {
                    resolver
                        .wildcard
                        .entry(parent.to_owned())
                        .or_insert_with(|| key.clone());
                }
                None => {
                    resolver
                        .exact
                        .entry(n.clone())
                        .or_insert_with(|| key.clone());
                }
            }
        }
    }
    let builder = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| vec![TlsError::new(Path::new("tollgate.toml"), e.to_string())])?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let resumption = shared.resumption(std::hash::Hasher::finish(&policy));
    config.session_storage = resumption.sessions;
    if let Some(t) = resumption.ticketer {
        config.ticketer = t;
    }
    // TLS 1.3 tickets per full handshake: enough for a client's parallel
    // connections to resume.
    config.send_tls13_tickets = 2;
    Ok(Arc::new(config))
}

/// Client configurations for `https://` integrations.
#[derive(Debug)]
pub struct ClientConfigs {
    pub verified: Arc<rustls::ClientConfig>,
    /// For integrations with `tlsConfig.insecureSkipVerification`.
    pub insecure: Arc<rustls::ClientConfig>,
}

/// The roots: the configured bundle, or the system's.
pub fn client_configs(ca_file: Option<&Path>) -> Result<ClientConfigs, TlsError> {
    let provider = provider();
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for c in read_certs(path)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::new(path, format!("unusable CA certificate: {e}")))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for c in found.certs {
                // Certificates the system has but webpki cannot use are
                // skipped, as curl and browsers do.
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                tracing::warn!(
                    "no system CA certificates found (install ca-certificates, or set upstream.ca_file): https:// integrations will fail verification"
                );
            }
        }
    }
    let build = |verifier: Option<Arc<dyn rustls::client::danger::ServerCertVerifier>>| {
        let b = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::new(Path::new("tollgate.toml"), e.to_string()))?;
        let mut c = match verifier {
            None => b
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
            Some(v) => b
                .dangerous()
                .with_custom_certificate_verifier(v)
                .with_no_client_auth(),
        };
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok::<_, TlsError>(Arc::new(c))
    };
    Ok(ClientConfigs {
        verified: build(None)?,
        insecure: build(Some(Arc::new(NoVerification(provider.clone()))))?,
    })
}

/// `insecureSkipVerification`: as API Gateway, which "still performs basic
/// certificate validation, which includes checking the certificate's
/// expiration date, hostname": the certificate must name the host and be
/// within its validity period; only the chain to a trusted root is not
/// checked (a private or self-signed CA). Handshake signatures are checked
/// as always.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_name(&parsed, server_name)?;
        let bad = || rustls::Error::InvalidCertificate(rustls::CertificateError::BadEncoding);
        let (_, cert) =
            x509_parser::parse_x509_certificate(end_entity.as_ref()).map_err(|_| bad())?;
        let now = i64::try_from(now.as_secs()).map_err(|_| bad())?;
        let validity = cert.validity();
        if now < validity.not_before.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet,
            ));
        }
        if now > validity.not_after.timestamp() {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired,
            ));
        }
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What `$context.identity.clientCert` holds (API Gateway's field names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCert {
    pub pem: String,
    pub subject_dn: String,
    pub issuer_dn: String,
    pub serial_number: String,
    pub not_before: String,
    pub not_after: String,
}

impl ClientCert {
    pub fn from_der(der: &[u8]) -> Option<ClientCert> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let time = |t: x509_parser::time::ASN1Time| -> String {
            // `May 28 12:30:02 2019 GMT`, as API Gateway writes validity.
            let dt = t.to_datetime();
            format!(
                "{} {:>2} {:02}:{:02}:{:02} {} GMT",
                crate::ids::MONTHS[(u8::from(dt.month()) as usize).clamp(1, 12) - 1],
                dt.day(),
                dt.hour(),
                dt.minute(),
                dt.second(),
                dt.year()
            )
        };
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).unwrap_or_default());
            pem.push('\n');
        }
        pem.push_str("-----END CERTIFICATE-----");
        Some(ClientCert {
            pem,
            subject_dn: cert.subject().to_string(),
            issuer_dn: cert.issuer().to_string(),
            serial_number: cert.raw_serial_as_string().replace(':', ""),
            not_before: time(cert.validity().not_before),
            not_after: time(cert.validity().not_after),
        })
    }

    /// `$context.identity.clientCert.<name>`.
    pub fn field(&self, name: &str) -> Option<&str> {
        Some(match name {
            "clientCertPem" => &self.pem,
            "subjectDN" => &self.subject_dn,
            "issuerDN" => &self.issuer_dn,
            "serialNumber" => &self.serial_number,
            "validity.notBefore" => &self.not_before,
            "validity.notAfter" => &self.not_after,
            _ => return None,
        })
    }

    pub const FIELDS: [&'static str; 6] = [
        "clientCertPem",
        "subjectDN",
        "issuerDN",
        "serialNumber",
        "validity.notBefore",
        "validity.notAfter",
    ];
}

/// The TLS side of a connection, as requests see it.
#[derive(Debug, Default)]
pub struct ConnTls {
    pub client_cert: Option<ClientCert>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;

    /// A self-signed certificate for `name`, valid from `from` to `to`
    /// (years).
    fn cert(name: &str, from: i32, to: i32) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    /// `insecureSkipVerification` skips only the trust in the chain: the
    /// name and the validity period are still checked, as API Gateway does.
    #[test]
    fn skipping_verification_still_checks_name_and_dates() {
        let v = NoVerification(Arc::new(rustls::crypto::ring::default_provider()));
        let name = ServerName::try_from("backend.test").unwrap();
        let now = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            1_795_000_000, // 2026-11
        ));
        let check = |c: &CertificateDer<'_>| v.verify_server_cert(c, &[], &name, &[], now);
        assert!(
            check(&cert("backend.test", 2020, 2040)).is_ok(),
            "untrusted but valid"
        );
        assert!(matches!(
            check(&cert("other.test", 2020, 2040)),
            Err(rustls::Error::InvalidCertificate(_))
        ));
        assert!(matches!(
            check(&cert("backend.test", 2020, 2025)),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired
            ))
        ));
        assert!(matches!(
            check(&cert("backend.test", 2030, 2040)),
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidYet
            ))
        ));
    }
}
