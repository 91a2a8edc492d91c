//! TLS to the cluster with rustls: the nodes' certificates are checked against the
//! configured CA; the name check can be turned off because the driver connects to node IP
//! addresses (discovered from the cluster), which node certificates often do not list.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};

use crate::config::TlsConfig;

/// A rustls client configuration for `config` (TLS must be enabled).
pub(crate) fn client_config(config: &TlsConfig) -> Result<Arc<ClientConfig>, String> {
    let ca_file = config
        .ca_file
        .as_ref()
        .ok_or_else(|| "no CA file (tls.ca_file)".to_owned())?;
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| format!("reading CA file {}: {e}", ca_file.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("reading CA file {}: {e}", ca_file.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("CA file {}: {e}", ca_file.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "CA file {} holds no certificate",
            ca_file.display()
        ));
    }
    // One explicit provider: the process default is ambiguous when several crates enable
    // different rustls crypto back-ends.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("building the certificate verifier: {e}"))?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS protocol versions: {e}"))?;
    let builder = if config.verify_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ChainOnly(verifier)))
    };
    let client = match (&config.cert_file, &config.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("reading certificate file {}: {e}", cert_file.display()))?;
            let key = PrivateKeyDer::from_pem_file(key_file)
                .map_err(|e| format!("reading key file {}: {e}", key_file.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(client))
}

/// Checks the certificate chain against the CA like the webpki verifier, but accepts a
/// certificate that does not name the address connected to.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the chain (and expiry) before the name, so a name error means the
        // chain itself is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_or_empty_ca_files_are_clear_errors() {
        let dir = std::env::temp_dir().join(format!("temper-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let missing = TlsConfig {
            enabled: true,
            ca_file: Some(dir.join("missing.pem")),
            ..TlsConfig::default()
        };
        let err = client_config(&missing).expect_err("missing file");
        assert!(err.contains("missing.pem"), "{err}");

        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").expect("write");
        let err = client_config(&TlsConfig {
            enabled: true,
            ca_file: Some(empty),
            ..TlsConfig::default()
        })
        .expect_err("empty file");
        assert!(err.contains("no certificate"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
