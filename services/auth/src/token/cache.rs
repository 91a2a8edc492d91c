//! Tokens already verified, so a caller that sends the same token on every call (what the
//! SDKs and the CLI do) costs one signature check per token, not one per call.
//!
//! An entry holds the claims and the token's `exp`/`nbf`; the time window is checked again on
//! every hit, so an expired token is refused even while cached. An entry is dropped after
//! [`TTL`], and the whole cache is dropped when the key set changes (a JWKS rotation), so a
//! token signed by a key taken out of the set is checked again, and refused, on its next
//! call. At most [`CAPACITY`] tokens are kept; the least recently used goes first.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use lru::LruCache;

use crate::claims::Claims;

/// How many verified tokens are kept.
pub const CAPACITY: usize = 10_000;
/// How long a verified token is trusted without checking its signature again.
pub const TTL: Duration = Duration::from_secs(60);

/// What a verified token gave, and when it stops being valid.
#[derive(Debug, Clone)]
pub struct Verified {
    pub claims: Claims,
    /// `exp` (Unix seconds).
    pub exp: f64,
    /// `nbf` (Unix seconds), if the token had one.
    pub nbf: Option<f64>,
}

struct Entry {
    verified: Verified,
    cached_at: SystemTime,
}

struct Inner {
    entries: LruCache<String, Entry>,
    /// The key set generation the entries were verified against.
    generation: u64,
}

/// Verified tokens, bounded, keyed by the token.
pub struct TokenCache {
    inner: Mutex<Inner>,
    ttl: Duration,
}

impl TokenCache {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                entries: LruCache::new(capacity),
                generation: 0,
            }),
            ttl,
        }
    }

    /// The entry for `token` if it was verified against key set `generation` less than the
    /// TTL before `now`. A cache of an older generation is emptied first.
    pub fn get(&self, token: &str, generation: u64, now: SystemTime) -> Option<Verified> {
        let mut inner = self.inner.lock().expect("token cache lock poisoned");
        if inner.generation != generation {
            inner.entries.clear();
            inner.generation = generation;
            return None;
        }
        let entry = inner.entries.get(token)?;
        let fresh = now
            .duration_since(entry.cached_at)
            .is_ok_and(|age| age < self.ttl);
        if fresh {
            return Some(entry.verified.clone());
        }
        inner.entries.pop(token);
        None
    }

    /// Remember `token`, verified against key set `generation`; nothing if the cache has
    /// moved on to another generation meanwhile.
    pub fn insert(&self, token: &str, generation: u64, verified: Verified, now: SystemTime) {
        let mut inner = self.inner.lock().expect("token cache lock poisoned");
        if inner.generation != generation {
            if generation < inner.generation {
                return;
            }
            inner.entries.clear();
            inner.generation = generation;
        }
        inner.entries.put(
            token.to_string(),
            Entry {
                verified,
                cached_at: now,
            },
        );
    }

    /// Forget `token` (it was found expired).
    pub fn remove(&self, token: &str) {
        self.inner
            .lock()
            .expect("token cache lock poisoned")
            .entries
            .pop(token);
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .expect("token cache lock poisoned")
            .entries
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(sub: &str) -> Verified {
        Verified {
            claims: Claims {
                subject: sub.into(),
                ..Claims::default()
            },
            exp: 2e9,
            nbf: None,
        }
    }

    const T0: Duration = Duration::from_secs(1_800_000_000);

    #[test]
    fn entries_live_for_the_ttl_in_their_generation() {
        let cache = TokenCache::new(10, Duration::from_secs(60));
        let t0 = SystemTime::UNIX_EPOCH + T0;
        assert!(cache.get("a", 0, t0).is_none());
        cache.insert("a", 0, verified("alice"), t0);
        let hit = cache.get("a", 0, t0 + Duration::from_secs(59));
        assert_eq!(hit.map(|v| v.claims.subject), Some("alice".to_string()));
        assert!(cache.get("a", 0, t0 + Duration::from_secs(60)).is_none());
        assert_eq!(cache.len(), 0);
        // Another generation empties the cache; an insert of the old one is ignored.
        cache.insert("a", 0, verified("alice"), t0);
        assert!(cache.get("a", 1, t0).is_none());
        assert_eq!(cache.len(), 0);
        cache.insert("a", 0, verified("alice"), t0);
        assert!(cache.get("a", 1, t0).is_none());
        cache.insert("b", 2, verified("bob"), t0);
        assert!(cache.get("b", 2, t0).is_some());
        cache.remove("b");
        assert!(cache.get("b", 2, t0).is_none());
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_used() {
        let cache = TokenCache::new(3, Duration::from_secs(60));
        let t0 = SystemTime::UNIX_EPOCH + T0;
        for t in ["a", "b", "c"] {
            cache.insert(t, 0, verified(t), t0);
        }
        assert!(cache.get("a", 0, t0).is_some());
        cache.insert("d", 0, verified("d"), t0);
        assert_eq!(cache.len(), 3);
        assert!(
            cache.get("b", 0, t0).is_none(),
            "b was the least recently used"
        );
        for t in ["a", "c", "d"] {
            assert!(cache.get(t, 0, t0).is_some(), "{t}");
        }
    }
}
