//! The gRPC port's TLS: the server config rebuilt from its files when they change, and the
//! accept loop that hands tonic finished TLS connections, each marked with who the peer is.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;
use tonic::transport::server::Connected;

use crate::files::ServerFiles;
use crate::reload::Reloading;
use crate::{ALPN_H2, ALPN_HTTP1, TlsError, pem};

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One load of the server's files.
pub struct ServerState {
    config: Arc<rustls::ServerConfig>,
    /// The same certificate and client verification for the HTTP endpoints (health,
    /// metrics): only the protocol offered (ALPN) differs.
    http: Arc<rustls::ServerConfig>,
    /// Verifies a client certificate against the internode CA alone.
    internode: Option<Arc<dyn ClientCertVerifier>>,
}

/// Picks the certificate by the name the client asks for: the internode one for nodes
/// (they ask for the internode server name), the frontend one for everyone else.
#[derive(Debug)]
struct Resolver {
    frontend: Arc<CertifiedKey>,
    internode: Option<(String, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match (&self.internode, hello.server_name()) {
            (Some((name, key)), Some(asked)) if asked.eq_ignore_ascii_case(name) => {
                Some(key.clone())
            }
            _ => Some(self.frontend.clone()),
        }
    }
}

fn verifier_error(e: impl std::fmt::Display) -> TlsError {
    TlsError::Rustls(e.to_string())
}

fn build(files: &ServerFiles, provider: &Arc<CryptoProvider>) -> Result<ServerState, TlsError> {
    let frontend = pem::identity(
        ("tls.cert", "tls.key"),
        "frontend",
        &files.frontend,
        provider,
    )?;
    let mut accepted = RootCertStore::empty();
    if let Some(ca) = &files.client_ca {
        accepted
            .roots
            .extend(pem::roots("tls.client_ca", "client_ca", ca)?.roots);
    }
    let mut internode_key = None;
    let mut internode = None;
    if let Some(i) = &files.internode {
        let key = pem::identity(
            ("tls.internode.cert", "tls.internode.key"),
            "internode",
            &i.identity,
            provider,
        )?;
        let ca = pem::roots("tls.internode.ca", "internode_ca", &i.ca)?;
        accepted.roots.extend(ca.roots.iter().cloned());
        internode = Some(
            WebPkiClientVerifier::builder_with_provider(Arc::new(ca), provider.clone())
                .build()
                .map_err(verifier_error)?,
        );
        internode_key = Some((i.server_name.clone(), key));
    }
    let verifier = if accepted.is_empty() {
        WebPkiClientVerifier::no_client_auth()
    } else {
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(accepted), provider.clone());
        // Without a client CA, clients need no certificate; nodes still present theirs,
        // and only those reach the internal services.
        match files.client_ca {
            Some(_) => builder.build(),
            None => builder.allow_unauthenticated().build(),
        }
        .map_err(verifier_error)?
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(Resolver {
            frontend,
            internode: internode_key,
        }));
    let mut http = config.clone();
    http.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(ServerState {
        config: Arc::new(config),
        http: Arc::new(http),
        internode,
    })
}

/// The gRPC port's TLS, following its files.
#[derive(Clone)]
pub struct ServerTls {
    state: Arc<Reloading<ServerState>>,
}

impl ServerTls {
    /// Load the files now; a missing file, unreadable PEM or a key that does not match its
    /// certificate is an error naming the file.
    pub fn load(files: ServerFiles) -> Result<Self, TlsError> {
        let provider = crate::provider();
        let paths = files.paths();
        let state = Reloading::new("gRPC server TLS", paths, move || build(&files, &provider))?;
        Ok(Self { state })
    }

    /// The reloading material (to watch it, or to reload it in a test).
    pub fn reloading(&self) -> &Arc<Reloading<ServerState>> {
        &self.state
    }

    /// Accept TCP connections on `listener` and hand tonic each one once its TLS
    /// handshake is done (with the config in force when it arrived). Handshakes run side by
    /// side, so a slow client delays nobody. Stops when `stop` fires or tonic drops it.
    pub fn incoming(&self, listener: TcpListener, stop: CancellationToken) -> TlsIncoming {
        self.accept(listener, stop, Protocol::Grpc)
    }

    /// Like [`ServerTls::incoming`], for an HTTP/1.1 endpoint (health, metrics): the same
    /// certificate and client verification, reloaded alike, offering `http/1.1` instead of
    /// `h2`.
    pub fn incoming_http(&self, listener: TcpListener, stop: CancellationToken) -> TlsIncoming {
        self.accept(listener, stop, Protocol::Http1)
    }

    fn accept(
        &self,
        listener: TcpListener,
        stop: CancellationToken,
        protocol: Protocol,
    ) -> TlsIncoming {
        let (tx, rx) = mpsc::channel(64);
        let state = self.state.clone();
        let task = tokio::spawn(accept_loop(listener, state, protocol, tx, stop));
        TlsIncoming {
            rx,
            _task: AbortOnDropHandle::new(task),
        }
    }
}

/// What an accept loop serves: which of the state's configs it hands to the handshake.
#[derive(Clone, Copy)]
enum Protocol {
    Grpc,
    Http1,
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<Reloading<ServerState>>,
    protocol: Protocol,
    tx: mpsc::Sender<io::Result<TlsConn>>,
    stop: CancellationToken,
) {
    let mut handshakes = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            _ = tx.closed() => return,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
            a = listener.accept() => a,
        };
        let (tcp, remote) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                tracing::warn!("accepting a connection: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let current = state.current();
        let tx = tx.clone();
        handshakes.spawn(async move {
            let config = match protocol {
                Protocol::Grpc => current.config.clone(),
                Protocol::Http1 => current.http.clone(),
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let info = PeerInfo::of(&stream, remote, current.internode.as_deref());
                    let _ = tx.send(Ok(TlsConn { stream, info })).await;
                }
                Ok(Err(e)) => tracing::info!(peer = %remote, "TLS handshake refused: {e}"),
                Err(_) => tracing::info!(peer = %remote, "TLS handshake timed out"),
            }
        });
    }
}

/// The stream of accepted TLS connections tonic serves.
pub struct TlsIncoming {
    rx: mpsc::Receiver<io::Result<TlsConn>>,
    _task: AbortOnDropHandle<()>,
}

impl tokio_stream::Stream for TlsIncoming {
    type Item = io::Result<TlsConn>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Who is on the other end of a connection; every request on it carries this (tonic's
/// request extensions).
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub remote_addr: SocketAddr,
    /// The peer presented a certificate that chains to the internode CA.
    pub internode: bool,
    /// The peer's certificate chain, leaf first, if it presented one.
    pub certs: Option<Arc<Vec<CertificateDer<'static>>>>,
}

impl PeerInfo {
    fn of(
        stream: &tokio_rustls::server::TlsStream<TcpStream>,
        remote_addr: SocketAddr,
        internode_ca: Option<&dyn ClientCertVerifier>,
    ) -> Self {
        let certs = stream.get_ref().1.peer_certificates().map(<[_]>::to_vec);
        let internode = match (&certs, internode_ca) {
            (Some(chain), Some(verifier)) => match chain.split_first() {
                Some((leaf, rest)) => verifier
                    .verify_client_cert(leaf, rest, UnixTime::now())
                    .is_ok(),
                None => false,
            },
            _ => false,
        };
        Self {
            remote_addr,
            internode,
            certs: certs.map(Arc::new),
        }
    }
}

/// One accepted TLS connection.
pub struct TlsConn {
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
