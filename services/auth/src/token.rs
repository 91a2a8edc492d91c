//! Checking a bearer token: an RS256 or ES256 JWT signed by one of the configured keys, not
//! expired and already valid (with `leeway`), for the configured audience and issuer if set;
//! its `sub` names the caller and its permissions claim gives the roles.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};
use temper_types::Clock;

use crate::claims::Claims;
use crate::error::CredentialError;
use crate::keys::KeySet;

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

/// Checks tokens against a key set.
pub struct TokenVerifier {
    keys: Arc<KeySet>,
    rules: TokenRules,
    clock: Arc<dyn Clock>,
}

impl TokenVerifier {
    pub fn new(keys: Arc<KeySet>, rules: TokenRules, clock: Arc<dyn Clock>) -> Self {
        Self { keys, rules, clock }
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

    /// The claims of a JWT.
    pub async fn claims(&self, token: &str) -> Result<Claims, CredentialError> {
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
        self.check_times(&payload)?;
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
        Ok(claims)
    }

    /// `exp` must be present and in the future, `nbf` (if present) in the past, both give or
    /// take the leeway.
    fn check_times(&self, payload: &Map<String, Value>) -> Result<(), CredentialError> {
        let now = self
            .clock
            .now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let leeway = self.rules.leeway.as_secs_f64();
        let exp = payload.get("exp").and_then(Value::as_f64).ok_or_else(|| {
            CredentialError::Invalid("the token has no numeric `exp` claim".into())
        })?;
        if now >= exp + leeway {
            return Err(CredentialError::Expired);
        }
        if let Some(nbf) = payload.get("nbf") {
            let nbf = nbf.as_f64().ok_or_else(|| {
                CredentialError::Invalid("the token's `nbf` claim is not a number".into())
            })?;
            if now + leeway < nbf {
                return Err(CredentialError::NotYetValid);
            }
        }
        Ok(())
    }
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
