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

/// Serves `document` at any path of `http://127.0.0.1:<port>/`, counting requests.
pub struct JwksServer {
    pub url: String,
    pub document: Arc<Mutex<String>>,
    pub hits: Arc<Mutex<usize>>,
    _task: tokio::task::JoinHandle<()>,
}

impl JwksServer {
    pub async fn start(document: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let document = Arc::new(Mutex::new(document));
        let hits = Arc::new(Mutex::new(0));
        let (doc, count) = (document.clone(), hits.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                *count.lock().expect("lock") += 1;
                let body = doc.lock().expect("lock").clone();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
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
