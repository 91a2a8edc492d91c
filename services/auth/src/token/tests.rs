use std::time::{Duration, SystemTime};

use serde_json::json;
use temper_types::ManualClock;

use super::*;
use crate::claims::Roles;
use crate::keys::KeySource;
use crate::testkeys::{JwksServer, TestKey, claims, jwks};

const NOW: u64 = 1_800_000_000;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(UNIX_EPOCH + Duration::from_secs(NOW)))
}

async fn file_verifier(content: &str, rules: TokenRules, clock: Arc<ManualClock>) -> TokenVerifier {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, content).expect("write");
    let keys = KeySet::load(KeySource::File(path)).await.expect("loads");
    TokenVerifier::new(keys, rules, clock)
}

#[tokio::test]
async fn rs256_and_es256_tokens_verify_against_a_pem_key_file() {
    for key in [TestKey::rs256("r"), TestKey::es256("e")] {
        let v = file_verifier(&key.public_pem, TokenRules::default(), clock()).await;
        let token = key.sign(&claims(
            "alice",
            &["a:read", "temporal-system:worker"],
            NOW + 60,
        ));
        let c = v
            .claims_of_header(&format!("Bearer {token}"))
            .await
            .expect("valid");
        assert_eq!(c.subject, "alice");
        assert_eq!(c.auth_type, "jwt");
        assert_eq!(c.namespaces["a"], Roles::READ);
        assert_eq!(c.system, Roles::WORKER);
        // The scheme's case does not matter; another scheme does.
        assert!(v.claims_of_header(&format!("bearer {token}")).await.is_ok());
        assert_eq!(
            v.claims_of_header(&format!("Basic {token}")).await,
            Err(CredentialError::NotBearer)
        );
        assert_eq!(
            v.claims_of_header(&token).await,
            Err(CredentialError::NotBearer)
        );
    }
}

#[tokio::test]
async fn a_token_signed_by_another_key_or_tampered_with_is_refused() {
    let key = TestKey::es256("k");
    let other = TestKey::es256("k");
    let v = file_verifier(&key.public_pem, TokenRules::default(), clock()).await;
    let forged = other.sign(&claims("mallory", &["temporal-system:admin"], NOW + 60));
    assert!(
        matches!(v.claims(&forged).await, Err(CredentialError::Invalid(m)) if m.contains("signature"))
    );
    // Same header and signature, other payload.
    let good = key.sign(&claims("bob", &["a:read"], NOW + 60));
    let evil = key.sign(&claims("bob", &["a:admin"], NOW + 60));
    let parts: Vec<&str> = good.split('.').collect();
    let evil_payload = evil.split('.').nth(1).expect("payload");
    let tampered = format!("{}.{}.{}", parts[0], evil_payload, parts[2]);
    assert!(v.claims(&tampered).await.is_err());
    assert!(matches!(
        v.claims("garbage").await,
        Err(CredentialError::Invalid(_))
    ));
    // An RSA token against an EC key: no key of that kind.
    let rsa = TestKey::rs256("k").sign(&claims("x", &[], NOW + 60));
    assert!(matches!(
        v.claims(&rsa).await,
        Err(CredentialError::Invalid(_))
    ));
    // HS256 is not accepted, even with the public key as the secret.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &claims("x", &["temporal-system:admin"], NOW + 60),
        &jsonwebtoken::EncodingKey::from_secret(key.public_pem.as_bytes()),
    )
    .expect("sign");
    assert!(matches!(v.claims(&hs).await, Err(CredentialError::Invalid(m)) if m.contains("HS256")));
}

#[tokio::test]
async fn expiry_and_not_before_allow_the_leeway_and_no_more() {
    let key = TestKey::rs256("k");
    let clock = clock();
    let rules = TokenRules {
        leeway: Duration::from_secs(30),
        ..TokenRules::default()
    };
    let v = file_verifier(&key.public_pem, rules, clock.clone()).await;
    let expired_20s_ago = key.sign(&claims("a", &[], NOW - 20));
    let expired_40s_ago = key.sign(&claims("a", &[], NOW - 40));
    assert!(v.claims(&expired_20s_ago).await.is_ok());
    assert_eq!(
        v.claims(&expired_40s_ago).await,
        Err(CredentialError::Expired)
    );
    let nbf_soon = key.sign(&json!({"sub": "a", "exp": NOW + 600, "nbf": NOW + 20}));
    let nbf_later = key.sign(&json!({"sub": "a", "exp": NOW + 600, "nbf": NOW + 40}));
    assert!(v.claims(&nbf_soon).await.is_ok());
    assert_eq!(
        v.claims(&nbf_later).await,
        Err(CredentialError::NotYetValid)
    );
    clock.advance(Duration::from_secs(15));
    assert!(v.claims(&nbf_later).await.is_ok());
    assert_eq!(
        v.claims(&expired_20s_ago).await,
        Err(CredentialError::Expired)
    );
    // Without exp, or without sub: refused.
    let no_exp = key.sign(&json!({"sub": "a"}));
    assert!(
        matches!(v.claims(&no_exp).await, Err(CredentialError::Invalid(m)) if m.contains("exp"))
    );
    let no_sub = key.sign(&json!({"exp": NOW + 600}));
    assert!(
        matches!(v.claims(&no_sub).await, Err(CredentialError::Invalid(m)) if m.contains("sub"))
    );
}

#[tokio::test]
async fn audience_issuer_and_the_permissions_claim_name_are_configurable() {
    let key = TestKey::es256("k");
    let rules = TokenRules {
        audience: Some("temper".into()),
        issuer: Some("https://idp".into()),
        permissions_claim: "roles".into(),
        ..TokenRules::default()
    };
    let v = file_verifier(&key.public_pem, rules, clock()).await;
    let ok = key.sign(&json!({"sub": "a", "exp": NOW + 60, "aud": ["x", "temper"], "iss": "https://idp", "roles": ["n:write"], "permissions": ["n:admin"]}));
    let c = v.claims(&ok).await.expect("valid");
    assert_eq!(c.namespaces["n"], Roles::WRITE);
    let wrong_aud =
        key.sign(&json!({"sub": "a", "exp": NOW + 60, "aud": "other", "iss": "https://idp"}));
    assert!(
        matches!(v.claims(&wrong_aud).await, Err(CredentialError::Invalid(m)) if m.contains("aud"))
    );
    let wrong_iss =
        key.sign(&json!({"sub": "a", "exp": NOW + 60, "aud": "temper", "iss": "https://evil"}));
    assert!(
        matches!(v.claims(&wrong_iss).await, Err(CredentialError::Invalid(m)) if m.contains("iss"))
    );
}

#[tokio::test]
async fn a_jwks_file_and_kid_selection() {
    let (a, b) = (TestKey::rs256("a"), TestKey::es256("b"));
    let v = file_verifier(&jwks(&[&a, &b]), TokenRules::default(), clock()).await;
    assert!(v.claims(&a.sign(&claims("x", &[], NOW + 60))).await.is_ok());
    assert!(v.claims(&b.sign(&claims("x", &[], NOW + 60))).await.is_ok());
    let unknown = TestKey::es256("c").sign(&claims("x", &[], NOW + 60));
    assert!(
        matches!(v.claims(&unknown).await, Err(CredentialError::Invalid(m)) if m.contains("`c`"))
    );
}

#[tokio::test]
async fn a_new_kid_makes_the_jwks_url_fetched_again() {
    let (old, new) = (TestKey::es256("old"), TestKey::rs256("new"));
    let server = JwksServer::start(jwks(&[&old])).await;
    let keys = KeySet::load_with(KeySource::Url(server.url.clone()), Duration::ZERO)
        .await
        .expect("loads");
    assert_eq!(server.hits(), 1);
    let v = TokenVerifier::new(keys.clone(), TokenRules::default(), clock());
    assert!(
        v.claims(&old.sign(&claims("x", &[], NOW + 60)))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 1, "a known kid needs no fetch");
    // The identity provider rotates: the new key appears, the old one goes.
    server.serve(jwks(&[&new]));
    assert!(
        v.claims(&new.sign(&claims("x", &[], NOW + 60)))
            .await
            .is_ok()
    );
    assert_eq!(server.hits(), 2);
    assert!(
        v.claims(&old.sign(&claims("x", &[], NOW + 60)))
            .await
            .is_err()
    );
    // The periodic refresh picks up changes too.
    server.serve(jwks(&[&old]));
    let stop = tokio_util::sync::CancellationToken::new();
    let task = keys
        .refresh_every(Duration::from_millis(20), stop.clone())
        .expect("a URL refreshes");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.hits() < 4 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    task.await.expect("stops");
    assert!(server.hits() >= 4);
}

#[tokio::test]
async fn unknown_kids_do_not_make_a_fetch_each() {
    let key = TestKey::es256("k");
    let server = JwksServer::start(jwks(&[&key])).await;
    let keys = KeySet::load(KeySource::Url(server.url.clone()))
        .await
        .expect("loads");
    let v = TokenVerifier::new(keys, TokenRules::default(), clock());
    for _ in 0..5 {
        let t = TestKey::es256("unknown").sign(&claims("x", &[], NOW + 60));
        assert!(v.claims(&t).await.is_err());
    }
    assert_eq!(server.hits(), 1, "within MIN_REFETCH of the last fetch");
}

#[tokio::test]
async fn an_unreachable_jwks_url_is_not_fatal_and_says_why() {
    // A port nothing listens on (bound, then closed).
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/jwks", l.local_addr().expect("addr"));
    drop(l);
    let keys = KeySet::load_with(KeySource::Url(url), Duration::ZERO)
        .await
        .expect("starts anyway");
    let v = TokenVerifier::new(keys, TokenRules::default(), clock());
    let t = TestKey::es256("k").sign(&claims("x", &[], NOW + 60));
    assert!(
        matches!(v.claims(&t).await, Err(CredentialError::Invalid(m)) if m.contains("could not be fetched"))
    );
    assert!(
        KeySet::load(KeySource::File("/nonexistent/key.pem".into()))
            .await
            .is_err()
    );
    assert!(
        KeySet::load(KeySource::Url("ftp://x".into()))
            .await
            .is_err()
    );
    let _ = SystemTime::UNIX_EPOCH;
}

#[tokio::test]
async fn a_verified_token_is_served_from_the_cache_until_its_ttl() {
    let key = TestKey::es256("k");
    let clock = clock();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, &key.public_pem).expect("write");
    let keys = KeySet::load(KeySource::File(path)).await.expect("loads");
    let v = TokenVerifier::with_cache(
        keys,
        TokenRules::default(),
        clock.clone(),
        100,
        Duration::from_secs(60),
    );
    let token = key.sign(&claims("alice", &["a:write"], NOW + 3600));
    let first = v.claims(&token).await.expect("valid");
    assert_eq!(v.verifications(), 1);
    for _ in 0..5 {
        assert_eq!(v.claims(&token).await.as_ref(), Ok(&first));
    }
    assert_eq!(v.verifications(), 1, "the later calls were cache hits");
    assert_eq!(v.cached(), 1);
    // After the TTL the signature is checked again.
    clock.advance(Duration::from_secs(60));
    assert_eq!(v.claims(&token).await, Ok(first));
    assert_eq!(v.verifications(), 2);
    // Refused tokens are not remembered.
    let forged = TestKey::es256("k").sign(&claims("mallory", &[], NOW + 3600));
    assert!(v.claims(&forged).await.is_err());
    assert!(v.claims(&forged).await.is_err());
    assert_eq!(v.verifications(), 4);
    assert_eq!(v.cached(), 1);
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let key = TestKey::rs256("k");
    let clock = clock();
    let v = file_verifier(&key.public_pem, TokenRules::default(), clock.clone()).await;
    let token = key.sign(&claims("alice", &["a:read"], NOW + 10));
    assert!(v.claims(&token).await.is_ok());
    clock.advance(Duration::from_secs(9));
    assert!(v.claims(&token).await.is_ok());
    assert_eq!(v.verifications(), 1);
    clock.advance(Duration::from_secs(1));
    assert_eq!(v.claims(&token).await, Err(CredentialError::Expired));
    assert_eq!(v.claims(&token).await, Err(CredentialError::Expired));
    assert_eq!(v.cached(), 0);
}

#[tokio::test]
async fn a_key_rotated_out_of_the_jwks_stops_cached_tokens() {
    let old = TestKey::es256("old");
    let new = TestKey::es256("new");
    let server = JwksServer::start(jwks(&[&old])).await;
    let keys = KeySet::load_with(KeySource::Url(server.url.clone()), Duration::ZERO)
        .await
        .expect("loads");
    let v = TokenVerifier::new(keys.clone(), TokenRules::default(), clock());
    let token = old.sign(&claims("alice", &["a:read"], NOW + 3600));
    assert!(v.claims(&token).await.is_ok());
    // Fetching the same document again keeps the cache.
    let generation = keys.generation();
    keys.refresh().await.expect("refetch");
    assert_eq!(keys.generation(), generation);
    assert!(v.claims(&token).await.is_ok());
    assert_eq!(v.verifications(), 1);
    // The identity provider rotates `old` out: the cached token is checked again, and refused.
    server.serve(jwks(&[&new]));
    keys.refresh().await.expect("refetch");
    assert_ne!(keys.generation(), generation);
    assert!(
        matches!(v.claims(&token).await, Err(CredentialError::Invalid(m)) if m.contains("old")),
        "a token of a removed key is refused"
    );
    assert_eq!(v.cached(), 0);
    let fresh = new.sign(&claims("alice", &["a:read"], NOW + 3600));
    assert!(v.claims(&fresh).await.is_ok());
}

#[tokio::test]
async fn the_cache_holds_at_most_its_capacity() {
    let key = TestKey::es256("k");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key");
    std::fs::write(&path, &key.public_pem).expect("write");
    let keys = KeySet::load(KeySource::File(path)).await.expect("loads");
    let v = TokenVerifier::with_cache(
        keys,
        TokenRules::default(),
        clock(),
        3,
        Duration::from_secs(60),
    );
    let tokens: Vec<String> = (0..5)
        .map(|i| key.sign(&claims(&format!("user{i}"), &[], NOW + 3600)))
        .collect();
    for t in &tokens {
        assert!(v.claims(t).await.is_ok());
    }
    assert_eq!(v.cached(), 3);
    assert_eq!(v.verifications(), 5);
    // The newest three are hits, the first is checked again.
    for t in &tokens[2..] {
        assert!(v.claims(t).await.is_ok());
    }
    assert_eq!(v.verifications(), 5);
    assert!(v.claims(&tokens[0]).await.is_ok());
    assert_eq!(v.verifications(), 6);
}

#[tokio::test]
async fn a_jwks_url_over_https_is_trusted_through_the_configured_ca() {
    use crate::testkeys::TestCa;
    let key = TestKey::es256("k");
    let ca = TestCa::new("idp test CA");
    let server = JwksServer::start_tls(jwks(&[&key]), &ca.leaf(&["127.0.0.1"])).await;
    assert!(server.url.starts_with("https://127.0.0.1:"));
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("idp-ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write");
    let keys = KeySet::load_trusting(
        KeySource::Url(server.url.clone()),
        Some(&ca_file),
        Duration::ZERO,
    )
    .await
    .expect("loads");
    assert_eq!(server.hits(), 1, "fetched at start over HTTPS");
    let v = TokenVerifier::new(keys, TokenRules::default(), clock());
    let token = key.sign(&claims("alice", &["a:read"], NOW + 60));
    assert_eq!(
        v.claims(&token).await.map(|c| c.subject),
        Ok("alice".into())
    );
}

#[tokio::test]
async fn a_jwks_server_certificate_of_an_unknown_ca_is_refused() {
    use crate::testkeys::TestCa;
    let key = TestKey::es256("k");
    let server = JwksServer::start_tls(
        jwks(&[&key]),
        &TestCa::new("somebody else").leaf(&["127.0.0.1"]),
    )
    .await;
    // Neither the system's roots nor a CA file with another CA trust it.
    let dir = tempfile::tempdir().expect("tempdir");
    let other_ca = dir.path().join("other-ca.pem");
    std::fs::write(&other_ca, TestCa::new("mine").pem()).expect("write");
    for ca_file in [None, Some(other_ca.as_path())] {
        let keys =
            KeySet::load_trusting(KeySource::Url(server.url.clone()), ca_file, Duration::ZERO)
                .await
                .expect("a JWKS URL that fails at start is not fatal");
        assert_eq!(server.hits(), 0, "no request after the refused handshake");
        let v = TokenVerifier::new(keys.clone(), TokenRules::default(), clock());
        let token = key.sign(&claims("alice", &["a:read"], NOW + 60));
        let Err(CredentialError::Invalid(why)) = v.claims(&token).await else {
            panic!("a key from an untrusted server was used");
        };
        assert!(
            why.contains("not signed by a trusted CA") && why.contains("auth.jwks_ca_file"),
            "{why}"
        );
        assert!(keys.refresh().await.is_err());
    }
}

#[tokio::test]
async fn a_bad_jwks_ca_file_is_a_start_up_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "hello").expect("write");
    for path in [&missing, &not_pem] {
        let err = KeySet::load_trusting(
            KeySource::Url("https://127.0.0.1:1/jwks.json".into()),
            Some(path),
            Duration::ZERO,
        )
        .await
        .err()
        .expect("refused");
        let text = err.to_string();
        assert!(
            text.starts_with("auth.jwks_ca_file: ") && text.contains(&*path.to_string_lossy()),
            "{text}"
        );
    }
}
