//! The public keys tokens are checked against: a key file (a PEM public key or certificate,
//! or a JWKS JSON document) read at start, or a JWKS URL fetched at start, every
//! `refresh_interval`, and again when a token names a key id the set does not hold (a key
//! rotation), at most once per [`MIN_REFETCH`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::error::KeyError;

/// How soon after one fetch an unknown key id may make another.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeySource {
    /// A PEM public key (RSA or P-256), a PEM certificate, or a JWKS JSON document.
    File(PathBuf),
    /// A JWKS document served over HTTP(S).
    Url(String),
}

/// The kind of key an algorithm needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    Ec,
}

/// The algorithms temper accepts, and the kind of key each needs.
pub fn kind_of(alg: Algorithm) -> Option<&'static str> {
    match alg {
        Algorithm::RS256 => Some("RSA"),
        Algorithm::ES256 => Some("EC P-256"),
        _ => None,
    }
}

fn kind_for(alg: Algorithm) -> Option<Kind> {
    match alg {
        Algorithm::RS256 => Some(Kind::Rsa),
        Algorithm::ES256 => Some(Kind::Ec),
        _ => None,
    }
}

#[derive(Clone)]
struct Key {
    kind: Kind,
    /// The algorithm the JWK pins (`alg`), if any.
    alg: Option<Algorithm>,
    key: DecodingKey,
}

/// One loaded set of keys.
#[derive(Clone, Default)]
struct Keys {
    by_kid: HashMap<String, Key>,
    /// Keys without an id (a PEM file, or JWKs without `kid`): tried for any token.
    anonymous: Vec<Key>,
    /// The usable keys as published (sorted JSON), to tell a changed set from a refetch of
    /// the same one.
    fingerprint: Vec<String>,
}

impl Keys {
    fn len(&self) -> usize {
        self.by_kid.len() + self.anonymous.len()
    }

    fn find(&self, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
        let kind = kind_for(alg);
        let fits = |k: &&Key| Some(k.kind) == kind && k.alg.is_none_or(|a| a == alg);
        match kid {
            Some(kid) => match self.by_kid.get(kid) {
                Some(k) => std::iter::once(k)
                    .filter(fits)
                    .map(|k| k.key.clone())
                    .collect(),
                None => self
                    .anonymous
                    .iter()
                    .filter(fits)
                    .map(|k| k.key.clone())
                    .collect(),
            },
            // A token without `kid`: any key of the right kind.
            None => self
                .by_kid
                .values()
                .chain(&self.anonymous)
                .filter(fits)
                .map(|k| k.key.clone())
                .collect(),
        }
    }
}

/// Parse a key file's contents: a JWKS document (starts with `{`) or PEM.
fn parse_file(bytes: &[u8]) -> Result<Keys, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_string())?;
    if text.trim_start().starts_with('{') {
        return parse_jwks(bytes);
    }
    if !text.contains("-----BEGIN") {
        return Err("neither a PEM public key nor a JWKS JSON document".into());
    }
    let key = match DecodingKey::from_rsa_pem(bytes) {
        Ok(key) => Key {
            kind: Kind::Rsa,
            alg: None,
            key,
        },
        Err(_) => match DecodingKey::from_ec_pem(bytes) {
            Ok(key) => Key {
                kind: Kind::Ec,
                alg: None,
                key,
            },
            Err(e) => return Err(format!("no RSA or EC public key in the PEM: {e}")),
        },
    };
    Ok(Keys {
        by_kid: HashMap::new(),
        anonymous: vec![key],
        fingerprint: vec![text.trim().to_string()],
    })
}

/// Parse a JWKS document; keys temper cannot use (other types, encryption keys) are skipped.
fn parse_jwks(bytes: &[u8]) -> Result<Keys, String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(bytes)
        .map_err(|e| format!("not a JWKS document (an object with `keys`): {e}"))?;
    let mut keys = Keys::default();
    for value in doc.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
        {
            continue;
        }
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Kind::Rsa,
            AlgorithmParameters::EllipticCurve(p)
                if p.curve == jsonwebtoken::jwk::EllipticCurve::P256 =>
            {
                Kind::Ec
            }
            _ => continue,
        };
        let alg = jwk
            .common
            .key_algorithm
            .and_then(|a| a.to_string().parse::<Algorithm>().ok());
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.fingerprint
            .push(serde_json::to_string(&jwk).unwrap_or_default());
        let key = Key { kind, alg, key };
        match jwk.common.key_id {
            Some(kid) => {
                keys.by_kid.insert(kid, key);
            }
            None => keys.anonymous.push(key),
        }
    }
    keys.fingerprint.sort();
    Ok(keys)
}

/// The current keys, and how to get new ones.
pub struct KeySet {
    source: KeySource,
    keys: RwLock<Arc<Keys>>,
    /// Counts the changes of the set: what was verified against one generation may not
    /// verify against the next.
    generation: AtomicU64,
    /// When the URL was last fetched, and why it last failed (for the error a caller sees).
    fetched: Mutex<(Option<Instant>, Option<String>)>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
    /// How soon after one fetch an unknown key id may make another.
    min_refetch: Duration,
    /// The HTTP(S) client of a URL source.
    fetcher: Option<crate::fetch::Fetcher>,
}

impl KeySet {
    /// Load the keys: a file must load now (a start-up error otherwise); a URL is fetched
    /// now, and if that fails the node starts anyway, logs why, and fetches again on the first
    /// token (the identity provider may start after temper).
    pub async fn load(source: KeySource) -> Result<Arc<Self>, KeyError> {
        Self::load_with(source, MIN_REFETCH).await
    }

    /// [`Self::load`] with another pause between fetches for unknown key ids.
    pub async fn load_with(
        source: KeySource,
        min_refetch: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        Self::load_trusting(source, None, min_refetch).await
    }

    /// [`Self::load_with`], an `https` URL's certificate may also chain to a CA of the PEM
    /// bundle `ca_file` (besides the system's root CAs).
    pub async fn load_trusting(
        source: KeySource,
        ca_file: Option<&Path>,
        min_refetch: Duration,
    ) -> Result<Arc<Self>, KeyError> {
        let fetcher = match &source {
            KeySource::Url(_) => {
                Some(
                    crate::fetch::Fetcher::new(ca_file).map_err(|why| KeyError::CaFile {
                        path: ca_file.map(Path::to_path_buf).unwrap_or_default(),
                        why,
                    })?,
                )
            }
            KeySource::File(_) => None,
        };
        let set = Arc::new(Self {
            fetcher,
            min_refetch,
            source: source.clone(),
            keys: RwLock::new(Arc::default()),
            generation: AtomicU64::new(0),
            fetched: Mutex::new((None, None)),
            fetching: tokio::sync::Mutex::new(()),
        });
        match &source {
            KeySource::File(path) => {
                let bytes = std::fs::read(path).map_err(|e| KeyError::File {
                    path: path.clone(),
                    why: e.to_string(),
                })?;
                let keys = parse_file(&bytes).map_err(|why| KeyError::File {
                    path: path.clone(),
                    why,
                })?;
                if keys.len() == 0 {
                    return Err(KeyError::File {
                        path: path.clone(),
                        why: "no RS256 or ES256 signing key in it".into(),
                    });
                }
                set.replace(keys);
            }
            KeySource::Url(url) => {
                crate::fetch::check_url(url).map_err(|why| KeyError::Url {
                    url: url.clone(),
                    why,
                })?;
                if let Err(e) = set.refresh().await {
                    tracing::warn!(%url, "could not fetch the JWKS, will try again: {e}");
                }
            }
        }
        Ok(set)
    }

    /// Install `keys`; true (and a new generation) if they differ from the current ones.
    fn replace(&self, keys: Keys) -> bool {
        let mut current = self.keys.write().expect("keys lock poisoned");
        let changed = current.fingerprint != keys.fingerprint;
        *current = Arc::new(keys);
        if changed {
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        changed
    }

    /// Which version of the set is current; it moves on every change of the keys.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn current(&self) -> Arc<Keys> {
        self.keys.read().expect("keys lock poisoned").clone()
    }

    /// Fetch the URL again (no-op for a file). On failure the previous keys stay.
    pub async fn refresh(&self) -> Result<usize, String> {
        let (KeySource::Url(url), Some(fetcher)) = (&self.source, &self.fetcher) else {
            return Ok(self.current().len());
        };
        let _one = self.fetching.lock().await;
        let result = fetcher.get(url).await.and_then(|body| parse_jwks(&body));
        let mut fetched = self.fetched.lock().expect("fetch lock poisoned");
        fetched.0 = Some(Instant::now());
        match result {
            Ok(keys) => {
                let n = keys.len();
                if self.replace(keys) {
                    tracing::info!(%url, keys = n, "loaded the JWKS");
                }
                fetched.1 = None;
                Ok(n)
            }
            Err(e) => {
                fetched.1 = Some(e.clone());
                Err(e)
            }
        }
    }

    /// The keys that may have signed a token with this `kid` and `alg`; an unknown `kid`
    /// makes a URL source fetch again (at most once per [`MIN_REFETCH`]).
    pub async fn keys_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<DecodingKey>, String> {
        let found = self.current().find(kid, alg);
        if !found.is_empty() {
            return Ok(found);
        }
        if let KeySource::Url(_) = &self.source {
            let due = {
                let f = self.fetched.lock().expect("fetch lock poisoned");
                f.0.is_none_or(|at| at.elapsed() >= self.min_refetch)
            };
            if due {
                let _ = self.refresh().await;
                let found = self.current().find(kid, alg);
                if !found.is_empty() {
                    return Ok(found);
                }
            }
            if let Some(why) = &self.fetched.lock().expect("fetch lock poisoned").1 {
                return Err(format!("the signing keys could not be fetched: {why}"));
            }
        }
        Err(match kid {
            Some(kid) => format!(
                "no {} key with id `{kid}` among the signing keys",
                kind_of(alg).unwrap_or("")
            ),
            None => format!("no {} signing key", kind_of(alg).unwrap_or("")),
        })
    }

    /// Fetch the URL every `interval` until `stop`; nothing to do for a file.
    pub fn refresh_every(
        self: &Arc<Self>,
        interval: Duration,
        stop: tokio_util::sync::CancellationToken,
    ) -> Option<tokio::task::JoinHandle<()>> {
        let KeySource::Url(url) = &self.source else {
            return None;
        };
        let url = url.clone();
        let set = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => {
                        if let Err(e) = set.refresh().await {
                            tracing::warn!(%url, "could not fetch the JWKS, keeping the previous keys: {e}");
                        }
                    }
                }
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_document_skips_keys_it_cannot_use() {
        let doc = br#"{"keys": [
            {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-256", "kid": "enc", "use": "enc",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "EC", "crv": "P-256", "kid": "sig",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"something": "else"}
        ]}"#;
        let keys = parse_jwks(doc).expect("parses");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys.find(Some("sig"), Algorithm::ES256).len(), 1);
        assert!(keys.find(Some("sig"), Algorithm::RS256).is_empty());
        assert!(keys.find(Some("hmac"), Algorithm::ES256).is_empty());
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_file(b"hello").is_err());
        assert!(
            parse_file(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").is_err()
        );
    }
}
