//! The internode client side: this node's certificate presented to its peers, and their
//! certificates checked against the internode CA and the internode server name. Connections
//! made after a reload use the new files; open ones keep the session they have.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::codegen::http::Uri;

use crate::files::InternodeFiles;
use crate::reload::Reloading;
use crate::{ALPN_H2, TlsError, pem};

fn build(
    files: &InternodeFiles,
    provider: &Arc<rustls::crypto::CryptoProvider>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let key = pem::identity(
        ("tls.internode.cert", "tls.internode.key"),
        "internode",
        &files.identity,
        provider,
    )?;
    let roots = pem::roots("tls.internode.ca", "internode_ca", &files.ca)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(key)));
    config.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(config))
}

/// What a node connects to its peers with.
#[derive(Clone)]
pub struct InternodeClient {
    config: Arc<Reloading<Arc<rustls::ClientConfig>>>,
    server_name: ServerName<'static>,
}

impl InternodeClient {
    /// Load the internode files now; errors name the file.
    pub fn load(files: InternodeFiles) -> Result<Self, TlsError> {
        let server_name = ServerName::try_from(files.server_name.clone()).map_err(|_| {
            TlsError::BadServerName {
                key: "tls.internode.server_name",
                name: files.server_name.clone(),
            }
        })?;
        let provider = crate::provider();
        let paths = files.paths();
        let config = Reloading::new("internode client TLS", paths, move || {
            build(&files, &provider)
        })?;
        Ok(Self {
            config,
            server_name,
        })
    }

    pub fn reloading(&self) -> &Arc<Reloading<Arc<rustls::ClientConfig>>> {
        &self.config
    }

    /// Whether the node at `address` (`host:port`) shows a certificate of the internode CA
    /// for the internode server name: a full TLS handshake as a client, nothing sent.
    pub async fn probe(&self, address: &str) -> Result<(), String> {
        let uri: Uri = format!("http://{address}")
            .parse()
            .map_err(|e| format!("bad node address {address}: {e}"))?;
        let mut connector = self.connector();
        tower_service::Service::call(&mut connector, uri)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// A connector for `tonic::transport::Endpoint::connect_with_connector_lazy`.
    pub fn connector(&self) -> InternodeConnector {
        InternodeConnector {
            client: self.clone(),
        }
    }
}

/// Opens a TCP connection to the URI's host and port and runs the TLS handshake on it.
#[derive(Clone)]
pub struct InternodeConnector {
    client: InternodeClient,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for InternodeConnector {
    type Response = TokioIo<tokio_rustls::client::TlsStream<TcpStream>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let config = self.client.config.current();
        let name = self.client.server_name.clone();
        Box::pin(async move {
            let host = uri.host().ok_or("node address without a host")?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port = uri.port_u16().ok_or("node address without a port")?;
            let tcp = TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from((*config).clone())
                .connect(name, tcp)
                .await?;
            Ok(TokioIo::new(tls))
        })
    }
}
