//! The health and metrics endpoints over TLS (`[health] tls`, `[metrics] tls`) as a probe or a
//! scraper sees them: HTTPS with the node's `[tls]` certificate, plain HTTP refused, client
//! certificates required with `tls.client_ca`, a new certificate on disk served without a
//! restart, and a start-up error without a certificate. Certificates come from
//! `support::certs`; requests go through hyper's HTTP/1.1 client over tokio-rustls.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use support::certs::{Ca, Leaf, write};

/// The certificates of one node: the server CA and its `localhost` leaf, the internode CA
/// and the node's leaf, and a client CA with one client.
struct Pki {
    dir: tempfile::TempDir,
    server_ca: Ca,
    client: Leaf,
}

impl Pki {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let server_ca = Ca::new("server CA");
        let front = server_ca.leaf(&["localhost"]);
        let internode_ca = Ca::new("internode CA");
        let node = internode_ca.leaf(&["temper-internode"]);
        let client_ca = Ca::new("client CA");
        let client = client_ca.leaf(&["prometheus"]);
        write(dir.path(), "front.pem", &front.cert);
        write(dir.path(), "front.key", &front.key);
        write(dir.path(), "node.pem", &node.cert);
        write(dir.path(), "node.key", &node.key);
        write(dir.path(), "internode-ca.pem", &internode_ca.pem());
        write(dir.path(), "client-ca.pem", &client_ca.pem());
        Self {
            dir,
            server_ca,
            client,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A cluster node (one node, SQLite), killed when dropped.
struct Node {
    child: Child,
    health: u16,
    metrics: u16,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("a free loopback UDP port")
}

/// `temper server start` with `sets`, the store in `dir`; output to `dir/node.log`.
fn temper(dir: &Path, sets: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_temper"));
    command.args(["server", "start"]);
    let base = [
        format!("node.grpc_address=127.0.0.1:{}", support::free_port()),
        format!("node.membership_address=127.0.0.1:{}", free_udp_port()),
        "cluster.num_shards=2".into(),
        "store.kind=sqlite".into(),
        format!("store.path={}", dir.join("cluster.sqlite").display()),
        "log.level=warn".into(),
    ];
    for set in base.iter().chain(sets) {
        command.args(["--set", set]);
    }
    command
}

/// A node serving health and metrics over TLS with `pki`'s certificate (and requiring
/// client certificates when `mutual`). `[health] tls` comes from the environment, as
/// `TEMPER_HEALTH__TLS`, `[metrics] tls` from a flag.
fn start(pki: &Pki, mutual: bool) -> Node {
    let health = support::free_port();
    let metrics = support::free_port();
    let mut sets = vec![
        format!("tls.cert={}", pki.path("front.pem")),
        format!("tls.key={}", pki.path("front.key")),
        format!("tls.internode.cert={}", pki.path("node.pem")),
        format!("tls.internode.key={}", pki.path("node.key")),
        format!("tls.internode.ca={}", pki.path("internode-ca.pem")),
        "tls.reload_interval_ms=200".into(),
        format!("health.listen_address=127.0.0.1:{health}"),
        format!("metrics.listen_address=127.0.0.1:{metrics}"),
        "metrics.tls=true".into(),
    ];
    if mutual {
        sets.push(format!("tls.client_ca={}", pki.path("client-ca.pem")));
    }
    let log = std::fs::File::create(pki.dir.path().join("node.log")).expect("log file");
    let child = temper(pki.dir.path(), &sets)
        .env("TEMPER_HEALTH__TLS", "true")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("temper starts");
    Node {
        child,
        health,
        metrics,
    }
}

type Answer = Result<(u16, String), String>;

/// One `GET path` over an open connection.
async fn get<Io>(io: Io, path: &str) -> Answer
where
    Io: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, "localhost")
        .body(Empty::new())
        .expect("a request");
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("request: {e}"))?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
    .await;
    conn.abort();
    answer
}

/// `GET path` over HTTPS, trusting `ca` (PEM), with a client certificate if given.
async fn https(port: u16, path: &str, ca: &str, client: Option<&Leaf>) -> Answer {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("a CA");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .expect("client PEM"),
                PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("client key"),
            )
            .expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from("localhost").expect("a DNS name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    get(TokioIo::new(tls), path).await
}

/// `GET path` over plain HTTP.
async fn http(port: u16, path: &str) -> Answer {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    get(TokioIo::new(tcp), path).await
}

/// Poll `probe` until it answers 200, within 60 s; the last answer otherwise.
async fn until_ok<F, Fut>(what: &str, node: &mut Node, log: &Path, mut probe: F) -> String
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = probe().await;
        if let Ok((200, body)) = answer {
            return body;
        }
        if let Some(status) = node.child.try_wait().expect("wait") {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            panic!("{what}: the node exited ({status}): {log}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} within 60 s; last answer: {answer:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn health_and_metrics_over_https_refuse_plain_http_and_follow_a_new_certificate() {
    let pki = Pki::new();
    let log = pki.dir.path().join("node.log");
    let mut node = start(&pki, false);
    let ca = pki.server_ca.pem();
    let (health, metrics) = (node.health, node.metrics);

    let body = until_ok("HTTPS readiness", &mut node, &log, || {
        https(health, "/health/ready", &ca, None)
    })
    .await;
    assert_eq!(body, "ready\n");
    assert_eq!(
        https(health, "/health/live", &ca, None).await,
        Ok((200, "live\n".into()))
    );
    let page = until_ok("HTTPS metrics", &mut node, &log, || {
        https(metrics, "/metrics", &ca, None)
    })
    .await;
    assert!(
        page.contains("temper_tls_certificate_expiry_seconds"),
        "the Prometheus page: {page}"
    );

    for (port, path) in [(health, "/health/ready"), (metrics, "/metrics")] {
        let plain = http(port, path).await;
        assert!(plain.is_err(), "plain HTTP to {path} answered: {plain:?}");
        let other_ca = Ca::new("another CA").pem();
        let untrusted = https(port, path, &other_ca, None).await;
        assert!(
            untrusted.is_err(),
            "{path} with a certificate of another CA: {untrusted:?}"
        );
    }

    // A new certificate from another CA, written over the old files: served without a
    // restart, on both endpoints.
    let new_ca = Ca::new("new server CA");
    let new_front = new_ca.leaf(&["localhost"]);
    write(pki.dir.path(), "front.key", &new_front.key);
    write(pki.dir.path(), "front.pem", &new_front.cert);
    let new_ca = new_ca.pem();
    until_ok(
        "readiness with the new certificate",
        &mut node,
        &log,
        || https(health, "/health/ready", &new_ca, None),
    )
    .await;
    until_ok("metrics with the new certificate", &mut node, &log, || {
        https(metrics, "/metrics", &new_ca, None)
    })
    .await;
    assert!(
        https(health, "/health/ready", &ca, None).await.is_err(),
        "the old certificate is no longer served"
    );
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_its_certificate_are_answered() {
    let pki = Pki::new();
    let log = pki.dir.path().join("node.log");
    let mut node = start(&pki, true);
    let ca = pki.server_ca.pem();
    let (health, metrics) = (node.health, node.metrics);
    let client = &pki.client;

    until_ok(
        "readiness with a client certificate",
        &mut node,
        &log,
        || https(health, "/health/ready", &ca, Some(client)),
    )
    .await;
    until_ok("metrics with a client certificate", &mut node, &log, || {
        https(metrics, "/metrics", &ca, Some(client))
    })
    .await;
    let stranger = Ca::new("stranger CA").leaf(&["stranger"]);
    for (port, path) in [(health, "/health/ready"), (metrics, "/metrics")] {
        let anonymous = https(port, path, &ca, None).await;
        assert!(
            anonymous.is_err(),
            "{path} without a client certificate: {anonymous:?}"
        );
        let foreign = https(port, path, &ca, Some(&stranger)).await;
        assert!(
            foreign.is_err(),
            "{path} with a client certificate of another CA: {foreign:?}"
        );
        let plain = http(port, path).await;
        assert!(plain.is_err(), "plain HTTP to {path} answered: {plain:?}");
    }
}

#[tokio::test]
async fn tls_on_an_endpoint_without_a_node_certificate_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (var, key) in [
        ("TEMPER_HEALTH__TLS", "health.tls"),
        ("TEMPER_METRICS__TLS", "metrics.tls"),
    ] {
        let log = dir.path().join("refused.log");
        let mut child = temper(
            dir.path(),
            &[
                format!("health.listen_address=127.0.0.1:{}", support::free_port()),
                format!("metrics.listen_address=127.0.0.1:{}", support::free_port()),
            ],
        )
        .env(var, "true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("temper runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{var}=true without [tls]: still running after 30 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let stderr = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!status.success(), "started with {var}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("tls.cert and tls.key"),
            "names the key and what is missing: {stderr}"
        );
    }
}
