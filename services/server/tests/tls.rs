//! TLS on the gRPC port as a client sees it: the handshake, mutual TLS refusing clients
//! without a certificate or with one from another CA, the internal services answering only
//! nodes, certificates reloaded from disk, and start-up errors that name the bad file.
//! Certificates come from `support::certs`.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use temper_tls::{
    Identity, InternodeClient, InternodeFiles, InternodeOnly, ServerFiles, ServerTls,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use support::certs::{Ca, Leaf, write};

const INTERNODE_NAME: &str = "temper-internode";

/// A loopback listener; `TEMPER_TEST_PORTS=7600-7699` keeps it inside a port range.
async fn listener() -> TcpListener {
    if let Ok(range) = std::env::var("TEMPER_TEST_PORTS")
        && let Some((lo, hi)) = range.split_once('-')
    {
        let (lo, hi): (u16, u16) = (
            lo.parse().expect("TEMPER_TEST_PORTS low"),
            hi.parse().expect("TEMPER_TEST_PORTS high"),
        );
        for port in lo..=hi {
            if let Ok(l) = TcpListener::bind(("127.0.0.1", port)).await {
                return l;
            }
        }
        panic!("no free port in TEMPER_TEST_PORTS={range}");
    }
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Serve the gRPC health service over `tls` (as an internal service when `internode_only`).
async fn serve(tls: &ServerTls, internode_only: bool) -> (SocketAddr, CancellationToken) {
    let listener = listener().await;
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let router =
        tonic::transport::Server::builder().add_service(InternodeOnly::new(health, internode_only));
    let incoming = tls.incoming(listener, stop.clone());
    tokio::spawn(router.serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned()));
    (addr, stop)
}

/// A health check over TLS trusting `ca`, with a client certificate if given.
async fn check(addr: SocketAddr, ca: &str, identity: Option<&Leaf>) -> Result<(), String> {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name("localhost");
    if let Some(id) = identity {
        tls = tls.identity(tonic::transport::Identity::from_pem(&id.cert, &id.key));
    }
    let channel = Endpoint::from_shared(format!("https://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_secs(5))
        .tls_config(tls)
        .map_err(|e| format!("tls config: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("connect: {e:?}"))?;
    let mut client = HealthClient::new(channel);
    client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

struct Setup {
    dir: tempfile::TempDir,
    server_ca: Ca,
    client_ca: Ca,
    internode_ca: Ca,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
            server_ca: Ca::new("server CA"),
            client_ca: Ca::new("client CA"),
            internode_ca: Ca::new("internode CA"),
        }
    }

    fn identity(&self, prefix: &str, leaf: &Leaf) -> Identity {
        Identity {
            cert: write(self.dir.path(), &format!("{prefix}.pem"), &leaf.cert),
            key: write(self.dir.path(), &format!("{prefix}.key"), &leaf.key),
        }
    }

    fn internode_files(&self, prefix: &str, leaf: &Leaf) -> InternodeFiles {
        InternodeFiles {
            identity: self.identity(prefix, leaf),
            ca: write(
                self.dir.path(),
                "internode-ca.pem",
                &self.internode_ca.pem(),
            ),
            server_name: INTERNODE_NAME.into(),
        }
    }

    /// Server files: the frontend certificate, a client CA if `mutual`, and internode.
    fn server_files(&self, mutual: bool) -> ServerFiles {
        let frontend = self.server_ca.leaf(&["localhost", "127.0.0.1"]);
        let node = self.internode_ca.leaf(&[INTERNODE_NAME]);
        ServerFiles {
            frontend: self.identity("frontend", &frontend),
            client_ca: mutual
                .then(|| write(self.dir.path(), "client-ca.pem", &self.client_ca.pem())),
            internode: Some(self.internode_files("node-a", &node)),
        }
    }
}

#[tokio::test]
async fn tls_handshake_and_plain_health_check() {
    let s = Setup::new();
    let files = ServerFiles {
        internode: None,
        ..s.server_files(false)
    };
    let tls = ServerTls::load(files).expect("loads");
    let (addr, stop) = serve(&tls, false).await;
    check(addr, &s.server_ca.pem(), None)
        .await
        .expect("a client trusting the server CA connects");
    let other = Ca::new("someone else");
    let e = check(addr, &other.pem(), None)
        .await
        .expect_err("a client trusting another CA refuses the server");
    assert!(e.contains("connect"), "{e}");
    stop.cancel();
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_client_ca() {
    let s = Setup::new();
    let tls = ServerTls::load(s.server_files(true)).expect("loads");
    let (addr, stop) = serve(&tls, false).await;
    let ca = s.server_ca.pem();

    check(addr, &ca, None)
        .await
        .expect_err("no client certificate: refused");
    let stranger = Ca::new("stranger CA").leaf(&["client"]);
    check(addr, &ca, Some(&stranger))
        .await
        .expect_err("a client certificate from another CA: refused");
    let client = s.client_ca.leaf(&["client"]);
    check(addr, &ca, Some(&client))
        .await
        .expect("a client certificate from the client CA: served");
    stop.cancel();
}

#[tokio::test]
async fn internal_services_answer_only_nodes_of_the_internode_ca() {
    let s = Setup::new();
    let tls = ServerTls::load(s.server_files(true)).expect("loads");
    let (addr, stop) = serve(&tls, true).await;

    // A client of the frontend CA passes the handshake but not the internal service.
    let client = s.client_ca.leaf(&["client"]);
    let e = check(addr, &s.server_ca.pem(), Some(&client))
        .await
        .expect_err("a client certificate does not reach an internal service");
    assert!(e.contains("PermissionDenied"), "{e}");

    // A node connects the way the cluster's routers do, and is served.
    let node_b = s.internode_ca.leaf(&[INTERNODE_NAME]);
    let internode = InternodeClient::load(s.internode_files("node-b", &node_b)).expect("loads");
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_with_connector(internode.connector())
        .await
        .expect("a node connects");
    HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .expect("a node reaches the internal service");

    // A node whose certificate another CA signed is refused at the handshake.
    let rogue_ca = Ca::new("rogue CA");
    let rogue = rogue_ca.leaf(&[INTERNODE_NAME]);
    let mut rogue_files = s.internode_files("rogue", &rogue);
    // It trusts the real CA, so it would accept the server; the server refuses it.
    rogue_files.server_name = INTERNODE_NAME.into();
    let rogue_client = InternodeClient::load(rogue_files).expect("loads");
    let refused = async {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .expect("endpoint")
            .connect_with_connector(rogue_client.connector())
            .await
            .map_err(|e| format!("{e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|s| format!("{s:?}"))
    }
    .await;
    refused.expect_err("a node with a certificate from another CA is refused");
    stop.cancel();
}

/// The leaf certificate the server at `addr` presents (to a client trusting `cas`).
async fn served_certificate(addr: SocketAddr, cas: &[&Ca]) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca.der().clone()).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(temper_tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().expect("certificates")[0].to_vec()
}

#[tokio::test]
async fn a_new_certificate_on_disk_is_served_without_a_restart() {
    let s = Setup::new();
    let first = s.server_ca.leaf(&["localhost"]);
    let files = ServerFiles {
        frontend: s.identity("frontend", &first),
        client_ca: None,
        internode: None,
    };
    let tls = ServerTls::load(files.clone()).expect("loads");
    let stop_watch = CancellationToken::new();
    let watcher = tls
        .reloading()
        .watch(Duration::from_millis(50), stop_watch.clone());
    let (addr, stop) = serve(&tls, false).await;
    let rotated_ca = Ca::new("rotated CA");
    let cas = [&s.server_ca, &rotated_ca];
    assert_eq!(served_certificate(addr, &cas).await, first.der);

    // A half-written rotation (a key that does not match) keeps the old certificate.
    let second = rotated_ca.leaf(&["localhost"]);
    std::fs::write(&files.frontend.cert, &second.cert).expect("write");
    let e = tls
        .reloading()
        .reload_if_changed()
        .expect_err("key and certificate do not match yet");
    assert!(e.to_string().contains("does not match"), "{e}");
    assert_eq!(served_certificate(addr, &cas).await, first.der);

    // Once the key follows, the watcher loads the pair and new connections get it.
    std::fs::write(&files.frontend.key, &second.key).expect("write");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if served_certificate(addr, &cas).await == second.der {
            break;
        }
        assert!(Instant::now() < deadline, "the new certificate within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_watch.cancel();
    watcher.await.expect("watcher stops");
    stop.cancel();
}

#[test]
fn bad_files_are_start_up_errors_that_name_the_file() {
    let s = Setup::new();
    let good = s.server_files(true);

    let mut missing = good.clone();
    missing.frontend.cert = s.dir.path().join("nope.pem");
    let e = ServerTls::load(missing)
        .err()
        .expect("missing file")
        .to_string();
    assert!(e.contains("tls.cert") && e.contains("nope.pem"), "{e}");

    let mut garbage = good.clone();
    garbage.client_ca = Some(write(s.dir.path(), "garbage.pem", "not a certificate\n"));
    let e = ServerTls::load(garbage).err().expect("no PEM").to_string();
    assert!(
        e.contains("tls.client_ca") && e.contains("garbage.pem"),
        "{e}"
    );

    let mut mismatched = good.clone();
    let other = s.server_ca.leaf(&["localhost"]);
    mismatched.frontend.key = write(s.dir.path(), "other.key", &other.key);
    let e = ServerTls::load(mismatched)
        .err()
        .expect("key mismatch")
        .to_string();
    assert!(
        e.contains("does not match") && e.contains("other.key") && e.contains("frontend.pem"),
        "{e}"
    );

    let mut no_key = good;
    no_key.frontend.key = write(s.dir.path(), "empty.key", "");
    let e = ServerTls::load(no_key).err().expect("no key").to_string();
    assert!(e.contains("tls.key") && e.contains("empty.key"), "{e}");
}

#[test]
fn expiry_is_read_from_the_certificate() {
    let leaf = Ca::new("ca").leaf(&["localhost"]);
    let der = rustls::pki_types::CertificateDer::from(leaf.der);
    // 2040-01-02T00:00:00Z
    assert_eq!(temper_tls::not_after(&der), Ok(2_209_075_200));
}
