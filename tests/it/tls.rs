//! HTTPS and mutual TLS (issue #15): a test CA made here with rcgen, the real server, and
//! clients that speak HTTP/1.1 and HTTP/2 over rustls.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::helpers::{TestApp, spawn_app_logging_with, spawn_app_with};

/// A certificate authority for one test, and the files it wrote.
struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
    dir: tempfile::TempDir,
}

/// A certificate and its key, as DER for a client and as the PEM files written.
struct Leaf {
    certificate: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let certificate = params.self_signed(&key).expect("CA certificate");
        let dir = tempfile::tempdir().expect("temporary directory");
        std::fs::write(dir.path().join("ca.pem"), certificate.pem()).expect("write CA");
        TestCa { issuer: Issuer::new(params, key), certificate: certificate.der().clone(), dir }
    }

    fn issue(&self, common_name: &str, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut params =
            CertificateParams::new(names.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>()).expect("params");
        params.distinguished_name.push(DnType::CommonName, common_name);
        let certificate = params.signed_by(&key, &self.issuer).expect("certificate");
        Leaf {
            certificate: certificate.der().clone(),
            key: PrivatePkcs8KeyDer::from(key.serialize_der()),
            cert_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a server certificate for localhost to `server.pem` and `server.key`.
    fn write_server(&self, common_name: &str) -> Leaf {
        let leaf = self.issue(common_name, &["localhost", "127.0.0.1"]);
        std::fs::write(self.path("server.pem"), &leaf.cert_pem).expect("write cert");
        std::fs::write(self.path("server.key"), &leaf.key_pem).expect("write key");
        leaf
    }

    fn serve_args(&self) -> (String, String) {
        (path_text(&self.path("server.pem")), path_text(&self.path("server.key")))
    }
}

fn path_text(path: &Path) -> String {
    path.to_str().expect("UTF-8 path").to_owned()
}

fn port_of(app: &TestApp) -> u16 {
    let address = app.address.strip_prefix("https://").expect("the server says it serves https");
    address.rsplit(':').next().and_then(|port| port.parse().ok()).expect("a port")
}

fn client_config(ca: &TestCa, client: Option<&Leaf>, alpn: &[&[u8]]) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.certificate.clone()).expect("CA root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(vec![leaf.certificate.clone()], PrivateKeyDer::Pkcs8(leaf.key.clone_key()))
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    config
}

/// An HTTP/1.1 keep-alive connection over TLS.
struct Connection {
    stream: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
}

impl Connection {
    fn open(port: u16, config: rustls::ClientConfig) -> std::io::Result<Connection> {
        let name = ServerName::try_from("localhost").expect("name");
        let tls = rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
        let tcp = TcpStream::connect(("127.0.0.1", port))?;
        tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut stream = rustls::StreamOwned::new(tls, tcp);
        // Finish the handshake now, so that a refused client certificate fails here.
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Connection { stream })
    }

    /// The common name of the certificate the server showed.
    fn server_certificate(&self) -> CertificateDer<'static> {
        self.stream.conn.peer_certificates().expect("a server certificate")[0].clone().into_owned()
    }

    fn alpn(&self) -> Option<Vec<u8>> {
        self.stream.conn.alpn_protocol().map(<[u8]>::to_vec)
    }

    /// Sends a request and reads the answer: the status and the body.
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> std::io::Result<(u16, String)> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\ncontent-length: {}\r\n", body.len());
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        self.stream.write_all(head.as_bytes())?;
        self.stream.write_all(body.as_bytes())?;
        self.stream.flush()?;
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&received[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|line| {
                        line.to_ascii_lowercase().strip_prefix("content-length:").map(|n| n.trim().to_owned())
                    })
                    .and_then(|n| n.parse().ok())
                    .expect("a content-length");
                if received.len() >= end + 4 + length {
                    let status = head[9..12].parse().expect("a status");
                    let body = String::from_utf8_lossy(&received[end + 4..end + 4 + length]).to_string();
                    return Ok((status, body));
                }
            }
            let read = self.stream.read(&mut buffer)?;
            if read == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the server closed the connection"));
            }
            received.extend_from_slice(&buffer[..read]);
        }
    }
}

fn https_app(ca: &TestCa, extra: &[&str]) -> TestApp {
    let (cert, key) = ca.serve_args();
    let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    spawn_app_with(&args)
}

#[test]
fn https_with_a_test_ca_answers_http1_and_http2() {
    let ca = TestCa::new("issue 15 test CA");
    ca.write_server("first");
    let app = https_app(&ca, &[]);
    assert!(app.address.starts_with("https://"), "{}", app.address);
    let port = port_of(&app);

    let mut http1 = Connection::open(port, client_config(&ca, None, &[b"http/1.1"])).expect("TLS handshake");
    assert_eq!(http1.alpn().as_deref(), Some(&b"http/1.1"[..]));
    let (status, body) = http1.request("GET", "/health", &[], "").expect("HTTP/1.1 over TLS");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");
    assert_eq!(http1.stream.conn.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_3), "TLS 1.3 is preferred");

    // HTTP/2, chosen by ALPN.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (status, body) = runtime.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config(&ca, None, &[b"h2", b"http/1.1"])));
        let tls = connector.connect(ServerName::try_from("localhost").expect("name"), tcp).await.expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "the server picks h2 when offered");
        let (mut client, connection) = h2::client::handshake(tls).await.expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let request = http::Request::get("https://localhost/health").body(()).expect("request");
        let (response, _) = client.send_request(request, true).expect("send");
        let response = response.await.expect("HTTP/2 answer");
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.expect("body");
            let _ = body.flow_control().release_capacity(chunk.len());
            bytes.extend_from_slice(&chunk);
        }
        (status, String::from_utf8_lossy(&bytes).to_string())
    });
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"ok\""), "{body}");

    // Plain HTTP on the TLS port is not answered as HTTP.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    plain.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let _ = plain.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n");
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer);
    assert!(!answer.starts_with(b"HTTP/1.1 200"), "plain HTTP must not be served on the TLS port");
}

/// Opens connections until one shows `wanted` (the reload is polled every second), for at
/// most 30 seconds.
fn wait_for_certificate(port: u16, ca: &TestCa, wanted: &CertificateDer<'_>) -> Connection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let connection = Connection::open(port, client_config(ca, None, &[b"http/1.1"])).expect("handshake");
        if connection.server_certificate() == *wanted {
            return connection;
        }
        assert!(Instant::now() < deadline, "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_certificate_swapped_on_disk_is_served_to_new_connections_while_an_old_one_finishes() {
    let ca = TestCa::new("issue 15 reload CA");
    let first = ca.write_server("first");
    let log = ca.path("server.log");
    let (cert, key) = ca.serve_args();
    let app = spawn_app_logging_with(
        &["--tls-cert", &cert, "--tls-key", &key, "--tls-reload-interval-secs", "1", "--keep-alive-secs", "120"],
        &log,
    );
    let port = port_of(&app);
    let mut old = Connection::open(port, client_config(&ca, None, &[b"http/1.1"])).expect("handshake");
    assert_eq!(old.server_certificate(), first.certificate);
    assert_eq!(old.request("GET", "/health", &[], "").expect("first request").0, 200);

    // A broken certificate is refused and the old one kept.
    std::fs::write(ca.path("server.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n")
        .expect("write");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&log).unwrap_or_default().contains("still serving the previous one") {
        assert!(Instant::now() < deadline, "the broken certificate was never reported");
        std::thread::sleep(Duration::from_millis(100));
    }
    let during =
        Connection::open(port, client_config(&ca, None, &[b"http/1.1"])).expect("handshake after a broken swap");
    assert_eq!(during.server_certificate(), first.certificate, "a broken certificate must keep the old one");

    // A good one is served to new connections.
    let second = ca.write_server("second");
    let mut new = wait_for_certificate(port, &ca, &second.certificate);
    assert_eq!(new.request("GET", "/health", &[], "").expect("request on a new connection").0, 200);

    // The connection opened before the swap still works, on the session it negotiated.
    assert_eq!(old.request("GET", "/health", &[], "").expect("the old connection survives").0, 200);
    assert_eq!(old.server_certificate(), first.certificate);

    // SIGHUP reloads too: swap back and signal (the poll would also notice; either is fine,
    // the point is that the signal does not stop the server).
    let third = ca.write_server("third");
    let _ = std::process::Command::new("kill").args(["-HUP", &app.pid().to_string()]).status();
    let mut after = wait_for_certificate(port, &ca, &third.certificate);
    assert_eq!(after.request("GET", "/health", &[], "").expect("request after SIGHUP").0, 200);
}

#[test]
fn a_client_without_a_certificate_is_refused_where_mtls_is_required_and_accepted_elsewhere() {
    let ca = TestCa::new("issue 15 mTLS CA");
    ca.write_server("server");
    let gateway = ca.issue("gateway", &["gateway.internal"]);
    let outsider_ca = TestCa::new("someone else");
    let outsider = outsider_ca.issue("outsider", &["outsider"]);
    let client_ca = path_text(&ca.path("ca.pem"));
    let app = https_app(&ca, &["--tls-client-ca", &client_ca, "--require-client-cert-for", "checks"]);
    let port = port_of(&app);
    let check = r#"{"key": "kl_nosuchkeynosuchkeynosuchkeynosuc", "function": "events.read"}"#;
    let json = [("content-type", "application/json")];

    // The server closes a connection whose request it refused before reading the body,
    // so each request here has a connection of its own.
    let anonymous = || Connection::open(port, client_config(&ca, None, &[b"http/1.1"])).expect("handshake");
    let (status, body) = anonymous().request("POST", "/v1/check", &json, check).expect("check");
    assert_eq!(status, 401, "a check without a client certificate is refused: {body}");
    assert!(body.contains("client certificate"), "{body}");
    let (status, _) = anonymous().request("GET", "/health", &[], "").expect("health");
    assert_eq!(status, 200, "health needs no client certificate");
    let authorization = format!("Bearer {}", app.admin_key);
    let (status, body) =
        anonymous().request("GET", "/v1/users", &[("authorization", &authorization)], "").expect("admin");
    assert_eq!(status, 200, "admin operations are not covered by `checks`: {body}");

    let mut gateway = Connection::open(port, client_config(&ca, Some(&gateway), &[b"http/1.1"])).expect("handshake");
    let (status, body) = gateway.request("POST", "/v1/check", &json, check).expect("check");
    assert_eq!(status, 200, "a gateway with a certificate from the CA is answered: {body}");

    let refused = Connection::open(port, client_config(&outsider_ca, Some(&outsider), &[b"http/1.1"]));
    assert!(refused.is_err(), "a certificate from another authority fails the handshake");
}

#[test]
fn require_client_cert_for_all_fails_the_handshake_without_one() {
    let ca = TestCa::new("issue 15 mTLS-all CA");
    ca.write_server("server");
    let gateway = ca.issue("gateway", &["gateway.internal"]);
    let client_ca = path_text(&ca.path("ca.pem"));
    let app = https_app(&ca, &["--tls-client-ca", &client_ca, "--require-client-cert-for", "all"]);
    let port = port_of(&app);
    let refused = Connection::open(port, client_config(&ca, None, &[b"http/1.1"]))
        .and_then(|mut connection| connection.request("GET", "/health", &[], ""));
    assert!(refused.is_err(), "no certificate, no answer: {refused:?}");
    let mut accepted = Connection::open(port, client_config(&ca, Some(&gateway), &[b"http/1.1"])).expect("handshake");
    assert_eq!(accepted.request("GET", "/health", &[], "").expect("health").0, 200);
}

#[test]
fn a_key_that_does_not_match_its_certificate_fails_start_up() {
    let ca = TestCa::new("issue 15 mismatch CA");
    ca.write_server("server");
    let other = ca.issue("other", &["localhost"]);
    std::fs::write(ca.path("server.key"), other.key_pem).expect("write");
    let (cert, key) = ca.serve_args();
    let data = tempfile::tempdir().expect("temporary directory");
    let output = std::process::Command::new(crate::helpers::BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key, "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(!data.path().join("log").exists(), "a start that cannot serve TLS must not initialise the directory");
}

#[test]
fn keyledger_backup_downloads_a_verified_bundle_over_mutual_tls() {
    let ca = TestCa::new("issue 15 backup CA");
    ca.write_server("server");
    let operator = ca.issue("backup job", &["backup.internal"]);
    std::fs::write(ca.path("operator.pem"), &operator.cert_pem).expect("write");
    std::fs::write(ca.path("operator.key"), &operator.key_pem).expect("write");
    let client_ca = path_text(&ca.path("ca.pem"));
    let app = https_app(&ca, &["--tls-client-ca", &client_ca, "--require-client-cert-for", "admin"]);
    let signing_key = std::process::Command::new(crate::helpers::BINARY)
        .args(["signing-key", "--data-dir"])
        .arg(app.data_dir())
        .output()
        .expect("run");
    let public_key = String::from_utf8(signing_key.stdout).expect("UTF-8").trim().to_owned();
    let out = ca.path("backup.jsonl");
    let backup = |client: bool| {
        let mut command = std::process::Command::new(crate::helpers::BINARY);
        command
            .args(["backup", "--url", &app.address, "--ca-cert", &client_ca, "--public-key", &public_key, "--out"])
            .arg(&out)
            .env("KEYLEDGER_KEY", &app.admin_key);
        if client {
            command.args(["--client-cert", &path_text(&ca.path("operator.pem"))]);
            command.args(["--client-key", &path_text(&ca.path("operator.key"))]);
        }
        command.output().expect("run keyledger backup")
    };

    let refused = backup(false);
    assert!(!refused.status.success(), "admin needs a client certificate here");
    assert!(!out.exists() && !ca.path("backup.jsonl.partial").exists(), "a failed backup leaves no file");

    let done = backup(true);
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    let verify = std::process::Command::new(crate::helpers::BINARY)
        .arg("verify")
        .arg(&out)
        .args(["--public-key", &public_key])
        .output()
        .expect("run keyledger verify");
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn plain_http_on_a_non_loopback_address_warns_at_start_unless_allowed() {
    use std::io::BufRead;
    for (extra, warns) in [(None, true), (Some("--allow-plain-http"), false)] {
        let data = tempfile::tempdir().expect("temporary directory");
        let mut child = std::process::Command::new(crate::helpers::BINARY)
            .args(["serve", "--listen", "0.0.0.0:0", "--workers", "1", "--data-dir"])
            .arg(data.path())
            .args(extra)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start keyledger");
        let stdout = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let listening = stdout.lines().map_while(Result::ok).any(|line| line.starts_with("listening on http://"));
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let output = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(listening, "{stderr}");
        assert_eq!(stderr.contains("keys cross the network in the clear"), warns, "{extra:?}: {stderr}");
    }
}
