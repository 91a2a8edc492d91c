//! Test keys and tokens, made at test time, and a JWKS endpoint on 127.0.0.1.

use std::sync::{Arc, Mutex};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A signing key with its id.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub public_pem: String,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("EC key");
        Self::of(kid, Algorithm::ES256, &kp)
    }

    pub fn rs256(kid: &str) -> Self {
        let kp =
            rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
                .expect("RSA key");
        Self::of(kid, Algorithm::RS256, &kp)
    }

    fn of(kid: &str, alg: Algorithm, kp: &rcgen::KeyPair) -> Self {
        let pem = kp.serialize_pem();
        let encoding = match alg {
            Algorithm::RS256 => EncodingKey::from_rsa_pem(pem.as_bytes()),
            _ => EncodingKey::from_ec_pem(pem.as_bytes()),
        }
        .expect("encoding key");
        Self {
            kid: kid.into(),
            alg,
            encoding,
            public_pem: kp.public_key_pem(),
        }
    }

    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("jwk");
        jwk.common.key_id = Some(self.kid.clone());
        jwk
    }

    /// A token with these claims, `kid` in its header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("sign")
    }
}

/// Claims for `sub` with `permissions`, expiring at `exp` (Unix seconds).
pub fn claims(sub: &str, permissions: &[&str], exp: u64) -> Value {
    json!({"sub": sub, "permissions": permissions, "exp": exp})
}

/// A JWKS document of these keys.
pub fn jwks(keys: &[&TestKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk()).collect(),
    })
    .expect("json")
}

/// A test CA made with `rcgen`.
pub struct TestCa {
    issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert: String,
    pub key: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate().expect("CA key");
        Self {
            issuer: rcgen::CertifiedIssuer::self_signed(params, key).expect("self-signed CA"),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }
}

/// Serves `document` at any path of `http://127.0.0.1:<port>/`, counting requests.
pub struct JwksServer {
    pub url: String,
    pub document: Arc<Mutex<String>>,
    pub hits: Arc<Mutex<usize>>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(document: String) -> Self {
        Self::serve_on(document, None).await
    }

    /// Serves over HTTPS (`https://127.0.0.1:<port>/`) with this certificate and key.
    pub async fn start_tls(document: String, leaf: &Leaf) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_slice_iter(leaf.cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("cert");
        let key = PrivateKeyDer::from_pem_slice(leaf.key.as_bytes()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
        Self::serve_on(
            document,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn serve_on(document: String, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!(
            "{scheme}://{}/jwks.json",
            listener.local_addr().expect("addr")
        );
        let document = Arc::new(Mutex::new(document));
        let hits = Arc::new(Mutex::new(0));
        let (doc, count) = (document.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                let reply = |count: &Mutex<usize>| {
                    *count.lock().expect("lock") += 1;
                    let body = doc.lock().expect("lock").clone();
                    format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                match &tls {
                    None => {
                        let mut s = s;
                        let mut buf = vec![0u8; 4096];
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(reply(&count).as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                    Some(acceptor) => {
                        // A client that refuses the certificate ends the handshake: no hit.
                        let Ok(mut s) = acceptor.accept(s).await else {
                            continue;
                        };
                        let mut buf = vec![0u8; 4096];
                        let _ = s.read(&mut buf).await;
                        let _ = s.write_all(reply(&count).as_bytes()).await;
                        let _ = s.shutdown().await;
                    }
                }
            }
        });
        Self {
            url,
            document,
            hits,
            _task: task,
        }
    }

    pub fn serve(&self, document: String) {
        *self.document.lock().expect("lock") = document;
    }

    pub fn hits(&self) -> usize {
        *self.hits.lock().expect("lock")
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self._task.abort();
    }
}
