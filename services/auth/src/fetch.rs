//! One HTTP(S) GET of a JWKS document: hyper's HTTP/1 client over TCP, with rustls for
//! `https`, trusting the system's root certificates and those of `auth.jwks_ca_file`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::Uri;
use hyper_util::rt::TokioIo;

/// How long one fetch may take, connection included.
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest JWKS document accepted.
const MAX_BYTES: usize = 1 << 20;

/// Whether `url` is something [`get`] can fetch.
pub fn check_url(url: &str) -> Result<(), String> {
    let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err("the URL must start with http:// or https://".into()),
    }
    if uri.host().is_none() {
        return Err("the URL has no host".into());
    }
    Ok(())
}

/// The CAs an `https` JWKS URL's certificate may chain to: the system's, and those of a PEM
/// bundle (an identity provider with a private CA).
#[derive(Clone)]
pub struct Fetcher {
    tls: Arc<rustls::ClientConfig>,
}

impl Fetcher {
    /// The system's root CAs, and every certificate of `ca_file` if given (a start-up error
    /// if it cannot be read or holds no PEM certificate).
    pub fn new(ca_file: Option<&Path>) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(path) = ca_file {
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
            let certs = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
            if certs.is_empty() {
                return Err("no PEM certificate in it".into());
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| format!("a certificate in it is not a usable CA: {e}"))?;
            }
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        Ok(Self {
            tls: Arc::new(config),
        })
    }

    /// The body of `url`, if it answers 200.
    pub async fn get(&self, url: &str) -> Result<Bytes, String> {
        tokio::time::timeout(TIMEOUT, self.get_inner(url))
            .await
            .map_err(|_| format!("no answer within {} s", TIMEOUT.as_secs()))?
    }

    async fn get_inner(&self, url: &str) -> Result<Bytes, String> {
        check_url(url)?;
        let uri: Uri = url.parse().map_err(|e| format!("not a URL: {e}"))?;
        let https = uri.scheme_str() == Some("https");
        let host = uri.host().ok_or("the URL has no host")?.to_string();
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let bare_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let tcp = tokio::net::TcpStream::connect((bare_host.as_str(), port))
            .await
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let path = uri
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string());
        let authority = uri
            .authority()
            .map_or(host.clone(), |a| a.as_str().to_string());
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "temper")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("building the request: {e}"))?;
        if https {
            let name = rustls::pki_types::ServerName::try_from(bare_host.clone())
                .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| handshake_error(&host, &e))?;
            send(TokioIo::new(tls), request).await
        } else {
            send(TokioIo::new(tcp), request).await
        }
    }
}

/// A failed TLS handshake in words that say what to fix.
fn handshake_error(host: &str, e: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let hint = match e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) {
        Some(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
            ": the JWKS server's certificate is not signed by a trusted CA (the system's root \
             CAs, or auth.jwks_ca_file / --auth-jwks-ca)"
        }
        Some(Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => ": the JWKS server's certificate does not name the URL's host",
        _ => "",
    };
    format!("TLS handshake with {host}: {e}{hint}")
}

async fn send<T>(io: T, request: hyper::Request<Empty<Bytes>>) -> Result<Bytes, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP handshake: {e}"))?;
    let conn = tokio::spawn(conn);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP request: {e}"))?;
        if response.status() != hyper::StatusCode::OK {
            return Err(format!("HTTP status {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_BYTES)
            .collect()
            .await
            .map_err(|e| format!("reading the body (at most {MAX_BYTES} bytes): {e}"))?;
        Ok(body.to_bytes())
    }
    .await;
    conn.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(check_url("http://127.0.0.1:8080/jwks.json").is_ok());
        assert!(check_url("https://idp.example/.well-known/jwks.json").is_ok());
        assert!(check_url("ftp://x/y").is_err());
        assert!(check_url("/just/a/path").is_err());
    }
}
