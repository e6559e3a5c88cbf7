//! HTTPS: rustls with a certificate that is reloaded while the service runs, and optional
//! client certificates (mutual TLS) for the gateways in front of it.
//!
//! The server's certificate lives in a [`ReloadingCertificate`], which rustls asks for the
//! certificate at every handshake. Replacing the one it holds changes what new connections
//! are shown; connections already open keep the session they negotiated and finish
//! undisturbed. A reload happens when the certificate or key file changes (polled, by
//! modification time and length) and on SIGHUP. A new certificate that cannot be read, or
//! whose key does not match it, is refused: the old one stays and the log says why.
//!
//! Protocols: TLS 1.3 (preferred) and TLS 1.2, with ring's suites (AES-GCM and
//! ChaCha20-Poly1305 with ECDHE only); ALPN offers `h2` and `http/1.1` (actix adds them).

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;

/// How often the certificate and key files are checked for a change, by default.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(5);

/// Where a client certificate is required (`--require-client-cert-for`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ClientCertScope {
    /// The key checks (`/v1/check`, `/v1/authorize`): the gateways' path.
    Checks,
    /// Every other `/v1/` operation: the admin plane.
    Admin,
    /// Every connection: the TLS handshake itself fails without a certificate.
    All,
}

impl ClientCertScope {
    /// Whether a request to `path` needs a client certificate under this scope. Health and
    /// the API documentation never do, except under `all`, which the handshake enforces.
    pub fn covers(self, path: &str) -> bool {
        let is_check = matches!(path, "/v1/check" | "/v1/authorize");
        match self {
            ClientCertScope::Checks => is_check,
            ClientCertScope::Admin => !is_check && path.starts_with("/v1/"),
            ClientCertScope::All => true,
        }
    }
}

/// How the service speaks TLS.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    /// The certificate chain (PEM), the server's own certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The certificate authorities (PEM) whose client certificates are accepted; `None`
    /// asks for no client certificate.
    pub client_ca: Option<PathBuf>,
    /// Where a client certificate is required; `None` accepts clients without one
    /// everywhere (a certificate presented is still verified).
    pub require_client_cert_for: Option<ClientCertScope>,
    /// How often the files are checked for a change.
    pub reload_interval: Duration,
}

/// Why TLS could not be set up, or a certificate not loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or holds no PEM of the kind wanted.
    #[error("{}: {reason}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The key does not belong to the certificate, or rustls refused the key or setup.
    #[error("{0}")]
    Rustls(String),
    /// `--require-client-cert-for` was given without `--tls-client-ca`.
    #[error("--require-client-cert-for needs --tls-client-ca, the authorities to verify client certificates with")]
    ScopeWithoutCa,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads a certificate chain and its private key, and checks that they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let file_error = |path: &Path, reason: String| TlsError::File { path: path.to_owned(), reason };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|error| file_error(cert, error.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| file_error(cert, error.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no PEM certificate".into()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|error| file_error(key, error.to_string()))?;
    let signing_key = provider()
        .key_provider
        .load_private_key(private_key)
        .map_err(|error| file_error(key, format!("unusable private key: {error}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|error| {
        TlsError::Rustls(format!(
            "the key {} does not match the certificate {}: {error}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(certified)
}

/// The server certificate, replaceable while the server runs: rustls asks it at every
/// handshake.
#[derive(Debug)]
pub struct ReloadingCertificate {
    cert: PathBuf,
    key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    stamps: RwLock<Option<(FileStamp, FileStamp)>>,
}

/// What tells a changed file: its modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp(Option<SystemTime>, u64);

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        let metadata = std::fs::metadata(path).ok()?;
        Some(FileStamp(metadata.modified().ok(), metadata.len()))
    }
}

impl ReloadingCertificate {
    /// Loads the certificate and key; fails if they cannot be used.
    pub fn load(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let stamps = FileStamp::of(cert).zip(FileStamp::of(key));
        let current = load_certified_key(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: RwLock::new(Arc::new(current)),
            stamps: RwLock::new(stamps),
        })
    }

    /// Reads the files again and serves what they hold to new connections; on a failure
    /// keeps serving the certificate it has and returns why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let stamps = FileStamp::of(&self.cert).zip(FileStamp::of(&self.key));
        // Recorded whatever the outcome, so that a broken file is reported once, not at
        // every poll, and is tried again when it changes.
        *self.stamps.write().unwrap_or_else(PoisonError::into_inner) = stamps;
        let loaded = load_certified_key(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(loaded);
        Ok(())
    }

    /// Reloads if either file changed since the last load or attempt.
    pub fn reload_if_changed(&self) -> Option<Result<(), TlsError>> {
        let stamps = FileStamp::of(&self.cert).zip(FileStamp::of(&self.key));
        let known = *self.stamps.read().unwrap_or_else(PoisonError::into_inner);
        (stamps != known).then(|| self.reload())
    }

    /// Reloads and logs the outcome, naming what triggered it.
    pub fn reload_and_log(&self, trigger: &str) {
        match self.reload() {
            Ok(()) => tracing::info!(trigger, cert = %self.cert.display(), "TLS certificate reloaded"),
            Err(error) => {
                tracing::error!(trigger, %error, "the new TLS certificate was refused; still serving the previous one");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

/// The rustls configuration: TLS 1.3 and 1.2, the reloading certificate, and client
/// certificates verified against `client_ca` when given (required at the handshake under
/// [`ClientCertScope::All`], optional otherwise: routes that need one check for it).
pub fn server_config(
    config: &TlsConfig,
    certificate: Arc<ReloadingCertificate>,
) -> Result<rustls::ServerConfig, TlsError> {
    let rustls_error = |error: rustls::Error| TlsError::Rustls(error.to_string());
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(rustls_error)?;
    let builder = match &config.client_ca {
        None if config.require_client_cert_for.is_some() => return Err(TlsError::ScopeWithoutCa),
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            let file_error = |reason: String| TlsError::File { path: path.clone(), reason };
            for certificate in CertificateDer::pem_file_iter(path).map_err(|error| file_error(error.to_string()))? {
                let certificate = certificate.map_err(|error| file_error(error.to_string()))?;
                roots.add(certificate).map_err(|error| file_error(error.to_string()))?;
            }
            if roots.is_empty() {
                return Err(file_error("holds no PEM certificate".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier = if config.require_client_cert_for == Some(ClientCertScope::All) {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|error| TlsError::Rustls(error.to_string()))?)
        }
    };
    Ok(builder.with_cert_resolver(certificate))
}

/// Reloads the certificate when its files change (checked every `interval`) and on
/// SIGHUP, until the runtime stops. Must be called within the actix runtime.
pub fn reload_on_change_and_sighup(certificate: Arc<ReloadingCertificate>, interval: Duration) -> std::io::Result<()> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup())?;
    let interval = interval.max(Duration::from_millis(100));
    actix_web::rt::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    let watched = certificate.clone();
                    // Reading files is blocking: off the event loop.
                    let outcome = actix_web::rt::task::spawn_blocking(move || watched.reload_if_changed()).await;
                    match outcome {
                        Ok(Some(Ok(()))) => tracing::info!(trigger = "file change", "TLS certificate reloaded"),
                        Ok(Some(Err(error))) => tracing::error!(trigger = "file change", %error, "the new TLS certificate was refused; still serving the previous one"),
                        Ok(None) | Err(_) => {}
                    }
                }
                received = hangup.recv() => {
                    if received.is_none() {
                        return;
                    }
                    let reloaded = certificate.clone();
                    let _ = actix_web::rt::task::spawn_blocking(move || reloaded.reload_and_log("SIGHUP")).await;
                }
            }
        }
    });
    Ok(())
}

/// Whether an address to listen on is loopback only (`127.0.0.0/8`, `::1`, `localhost`),
/// where plain HTTP never crosses a network.
pub fn is_loopback(listen: &str) -> bool {
    use std::net::ToSocketAddrs;
    match listen.to_socket_addrs() {
        Ok(mut addresses) => addresses.all(|address| address.ip().is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scopes_cover_the_paths_they_name() {
        assert!(ClientCertScope::Checks.covers("/v1/check"));
        assert!(ClientCertScope::Checks.covers("/v1/authorize"));
        assert!(!ClientCertScope::Checks.covers("/v1/users"));
        assert!(ClientCertScope::Admin.covers("/v1/users"));
        assert!(!ClientCertScope::Admin.covers("/v1/check"));
        assert!(!ClientCertScope::Admin.covers("/health/ready"));
        assert!(ClientCertScope::All.covers("/health"));
    }

    #[test]
    fn loopback_addresses_are_told_apart() {
        assert!(is_loopback("127.0.0.1:8080"));
        assert!(is_loopback("[::1]:0"));
        assert!(!is_loopback("0.0.0.0:8080"));
        assert!(!is_loopback("not an address"));
    }
}
