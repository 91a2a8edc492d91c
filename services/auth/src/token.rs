//! Checking a bearer token: an RS256 or ES256 JWT signed by one of the configured keys, not
//! expired and already valid (with `leeway`), for the configured audience and issuer if set;
//! its `sub` names the caller and its permissions claim gives the roles.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use temper_types::Clock;

use crate::claims::Claims;
use crate::error::CredentialError;
use crate::keys::KeySet;

pub mod cache;

use cache::{TokenCache, Verified};

/// What a token must satisfy besides its signature.
#[derive(Debug, Clone)]
pub struct TokenRules {
    /// The claim holding the `namespace:role` permissions.
    pub permissions_claim: String,
    /// When set, the token's `aud` must hold it.
    pub audience: Option<String>,
    /// When set, the token's `iss` must be it.
    pub issuer: Option<String>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

impl Default for TokenRules {
    fn default() -> Self {
        Self {
            permissions_claim: "permissions".into(),
            audience: None,
            issuer: None,
            leeway: Duration::ZERO,
        }
    }
}

/// Checks tokens against a key set, remembering the ones it verified ([`cache`]).
pub struct TokenVerifier {
    keys: Arc<KeySet>,
    rules: TokenRules,
    clock: Arc<dyn Clock>,
    cache: TokenCache,
    /// Tokens verified (signature and all) rather than found in the cache.
    verifications: AtomicU64,
}

/// Tokens found in the cache or verified, by `result` (`hit`, `miss`).
pub const CACHE_LOOKUPS: &str = "temper_auth_token_cache_total";

impl TokenVerifier {
    pub fn new(keys: Arc<KeySet>, rules: TokenRules, clock: Arc<dyn Clock>) -> Self {
        Self::with_cache(keys, rules, clock, cache::CAPACITY, cache::TTL)
    }

    /// [`Self::new`] with another cache size and time to live.
    pub fn with_cache(
        keys: Arc<KeySet>,
        rules: TokenRules,
        clock: Arc<dyn Clock>,
        capacity: usize,
        ttl: Duration,
    ) -> Self {
        Self {
            keys,
            rules,
            clock,
            cache: TokenCache::new(capacity, ttl),
            verifications: AtomicU64::new(0),
        }
    }

    /// How many verified tokens are remembered.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// How many tokens were verified rather than found in the cache.
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// The claims of the `authorization` header's value (`Bearer <jwt>`).
    pub async fn claims_of_header(&self, header: &str) -> Result<Claims, CredentialError> {
        let (scheme, token) = header
            .trim()
            .split_once(' ')
            .ok_or(CredentialError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(CredentialError::NotBearer);
        }
        self.claims(token.trim()).await
    }

    /// The claims of a JWT: from the cache if this token was verified against the current
    /// keys within the TTL (its `exp` and `nbf` are checked again), else verified now.
    pub async fn claims(&self, token: &str) -> Result<Claims, CredentialError> {
        let generation = self.keys.generation();
        let now = self.clock.now();
        if let Some(hit) = self.cache.get(token, generation, now) {
            metrics::counter!(CACHE_LOOKUPS, "result" => "hit").increment(1);
            return match self.check_window(hit.exp, hit.nbf) {
                Ok(()) => Ok(hit.claims),
                Err(e) => {
                    self.cache.remove(token);
                    Err(e)
                }
            };
        }
        metrics::counter!(CACHE_LOOKUPS, "result" => "miss").increment(1);
        self.verifications.fetch_add(1, Ordering::Relaxed);
        let verified = self.verify(token).await?;
        // A key set that changed while this token was checked may not hold its key any
        // more: only a token checked against one generation throughout is remembered.
        if self.keys.generation() == generation {
            self.cache
                .insert(token, generation, verified.clone(), self.clock.now());
        }
        Ok(verified.claims)
    }

    /// Check a JWT's signature, claims and time window.
    async fn verify(&self, token: &str) -> Result<Verified, CredentialError> {
        let invalid = |why: String| CredentialError::Invalid(why);
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| invalid(format!("not a JWT: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::ES256) {
            return Err(invalid(format!(
                "algorithm {:?} is not accepted (RS256 or ES256)",
                header.alg
            )));
        }
        let keys = self
            .keys
            .keys_for(header.kid.as_deref(), header.alg)
            .await
            .map_err(invalid)?;
        let mut validation = Validation::new(header.alg);
        // Time is checked below against the injected clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        match &self.rules.audience {
            Some(aud) => validation.set_audience(&[aud]),
            None => validation.validate_aud = false,
        }
        if let Some(iss) = &self.rules.issuer {
            validation.set_issuer(&[iss]);
        }
        let mut last = None;
        let mut payload = None;
        for key in &keys {
            match jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation) {
                Ok(data) => {
                    payload = Some(data.claims);
                    break;
                }
                Err(e) => last = Some(e),
            }
        }
        let payload = payload.ok_or_else(|| {
            invalid(match last {
                Some(e) => describe(&e),
                None => "no key to check it with".into(),
            })
        })?;
        let (exp, nbf) = times(&payload)?;
        self.check_window(exp, nbf)?;
        let subject = match payload.get("sub") {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => return Err(invalid("the token has no `sub` claim".into())),
        };
        let mut claims = Claims {
            subject,
            auth_type: "jwt",
            ..Claims::default()
        };
        if let Some(Value::Array(permissions)) = payload.get(&self.rules.permissions_claim) {
            let skipped = claims.add_permissions(permissions.iter().filter_map(Value::as_str))
                + permissions.iter().filter(|p| !p.is_string()).count();
            if skipped > 0 {
                tracing::debug!(subject = %claims.subject, skipped, "ignored permissions not of the form namespace:role");
            }
        }
        Ok(Verified { claims, exp, nbf })
    }

    /// `exp` must be in the future, `nbf` (if present) in the past, both give or take the
    /// leeway.
    fn check_window(&self, exp: f64, nbf: Option<f64>) -> Result<(), CredentialError> {
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = self.rules.leeway.as_secs_f64();
        if now >= exp + leeway {
            return Err(CredentialError::Expired);
        }
        if let Some(nbf) = nbf
            && now + leeway < nbf
        {
            return Err(CredentialError::NotYetValid);
        }
        Ok(())
    }
}

/// A token's `exp` (required) and `nbf` (optional), as numbers.
fn times(payload: &Map<String, Value>) -> Result<(f64, Option<f64>), CredentialError> {
    let exp = payload
        .get("exp")
        .and_then(Value::as_f64)
        .ok_or_else(|| CredentialError::Invalid("the token has no numeric `exp` claim".into()))?;
    let nbf = match payload.get("nbf") {
        Some(nbf) => Some(nbf.as_f64().ok_or_else(|| {
            CredentialError::Invalid("the token's `nbf` claim is not a number".into())
        })?),
        None => None,
    };
    Ok((exp, nbf))
}

/// A verification failure in words a caller can act on.
fn describe(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidSignature => "bad signature".into(),
        ErrorKind::InvalidAudience => "wrong audience (aud)".into(),
        ErrorKind::InvalidIssuer => "wrong issuer (iss)".into(),
        ErrorKind::InvalidAlgorithm => "the key does not fit the token's algorithm".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests;
