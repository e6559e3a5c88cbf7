//! `keyledger backup`: the audit bundle of a running service (`exportAuditBundle`, a
//! consistent, signed copy of the log), downloaded over HTTP or HTTPS into a file.
//!
//! The bundle is written to `FILE.partial` and renamed to `FILE` only once complete (and
//! verified, when a signer is pinned), so a file at `FILE` is never a cut-off backup.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ureq::tls::{Certificate, ClientCert, PrivateKey, RootCerts, TlsConfig, TlsProvider};

/// Where and how to download from.
#[derive(Debug)]
pub struct Source<'a> {
    /// The service's base URL, such as `https://keyledger.internal:8443`.
    pub url: &'a str,
    /// The key, with `security.audit.read`.
    pub key: &'a str,
    /// The authorities to verify an HTTPS server with; default: the public web's.
    pub ca_cert: Option<&'a Path>,
    /// A client certificate and its key, for a service that requires one.
    pub client: Option<(&'a Path, &'a Path)>,
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("{}: {error}", path.display()))
}

fn tls_config(source: &Source<'_>) -> Result<TlsConfig, String> {
    let mut builder = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()));
    if let Some(path) = source.ca_cert {
        let pem = read(path)?;
        let certificates = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(certificate)) => Some(Ok(certificate)),
                Ok(_) => None,
                Err(error) => Some(Err(format!("{}: {error}", path.display()))),
            })
            .collect::<Result<Vec<Certificate<'static>>, String>>()?;
        if certificates.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        builder = builder.root_certs(RootCerts::new_with_certs(&certificates));
    } else {
        builder = builder.root_certs(RootCerts::WebPki);
    }
    if let Some((cert, key)) = source.client {
        let chain = Certificate::from_pem(&read(cert)?).map_err(|error| format!("{}: {error}", cert.display()))?;
        let key = PrivateKey::from_pem(&read(key)?).map_err(|error| format!("{}: {error}", key.display()))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&[chain], key)));
    }
    Ok(builder.build())
}

/// Downloads the bundle into `partial`; returns its size in bytes.
pub fn download(source: &Source<'_>, partial: &Path) -> Result<u64, String> {
    let agent =
        ureq::Agent::config_builder().tls_config(tls_config(source)?).http_status_as_error(false).build().new_agent();
    let url = format!("{}/v1/audit/export", source.url.trim_end_matches('/'));
    let mut response = agent
        .get(&url)
        .header("Authorization", &format!("Bearer {}", source.key))
        .call()
        .map_err(|error| format!("{url}: {error}"))?;
    let status = response.status();
    if !status.is_success() {
        let detail = response.body_mut().read_to_string().unwrap_or_default();
        return Err(format!("{url} answered {status}: {detail}"));
    }
    let mut file = std::fs::File::create(partial).map_err(|error| format!("{}: {error}", partial.display()))?;
    let mut reader = response.body_mut().with_config().limit(u64::MAX).reader();
    let bytes = std::io::copy(&mut reader, &mut file).map_err(|error| format!("downloading {url}: {error}"))?;
    file.flush().and_then(|()| file.sync_all()).map_err(|error| format!("{}: {error}", partial.display()))?;
    Ok(bytes)
}

/// `FILE.partial`, beside `FILE`.
pub fn partial_path(out: &Path) -> PathBuf {
    let mut name = out.file_name().map(std::ffi::OsString::from).unwrap_or_default();
    name.push(".partial");
    out.with_file_name(name)
}
