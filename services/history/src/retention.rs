//! Namespace retention: how long a closed run stays readable before it is deleted. Read from
//! the namespace record (its `workflow_execution_retention_ttl`) and cached for a while, so
//! closing a run costs no store read. The namespace's name is cached beside it, for metrics
//! labels.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use temper_persistence::NamespaceStore;
use temper_types::NamespaceId;
use temper_workflow::pb;
use temper_workflow::time::from_dur;
use tokio::time::Instant;

/// Retention of a namespace whose record sets none (or cannot be read): Temporal's default.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(24 * 3600);
/// How long a namespace's retention is cached; a changed retention applies to runs that
/// close after that.
const CACHE_TTL: Duration = Duration::from_secs(60);

pub struct Retention {
    store: Arc<dyn NamespaceStore>,
    cache: Mutex<HashMap<NamespaceId, Cached>>,
}

/// What is cached of one namespace.
#[derive(Clone)]
struct Cached {
    retention: Duration,
    /// Empty if the record could not be read.
    name: Arc<str>,
    at: Instant,
}

impl Retention {
    pub fn new(store: Arc<dyn NamespaceStore>) -> Self {
        Self {
            store,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The retention of namespace `ns`.
    pub async fn of(&self, ns: &NamespaceId) -> Duration {
        self.get(ns).await.retention
    }

    /// The name of namespace `ns`; empty if it cannot be read.
    pub async fn name(&self, ns: &NamespaceId) -> Arc<str> {
        self.get(ns).await.name
    }

    async fn get(&self, ns: &NamespaceId) -> Cached {
        let cached = self
            .cache
            .lock()
            .expect("retention cache poisoned")
            .get(ns)
            .cloned();
        if let Some(c) = &cached
            && c.at.elapsed() < CACHE_TTL
        {
            return c.clone();
        }
        let (retention, name) = match self.store.get_namespace_by_id(ns).await {
            Ok(Some(rec)) => {
                let retention = pb::NamespaceDetail::decode(rec.detail.as_slice())
                    .ok()
                    .and_then(|d| d.config)
                    .map(|c| from_dur(&c.workflow_execution_retention_ttl))
                    .filter(|d| !d.is_zero())
                    .unwrap_or(DEFAULT_RETENTION);
                (retention, Arc::from(rec.name))
            }
            Ok(None) => (DEFAULT_RETENTION, Arc::from("")),
            Err(e) => {
                // A close must not fail for this: keep what we knew, or the default.
                tracing::warn!(namespace_id = %ns.as_str(), error = %e, "reading namespace retention failed");
                return cached.unwrap_or(Cached {
                    retention: DEFAULT_RETENTION,
                    name: Arc::from(""),
                    at: Instant::now(),
                });
            }
        };
        let c = Cached {
            retention,
            name,
            at: Instant::now(),
        };
        self.cache
            .lock()
            .expect("retention cache poisoned")
            .insert(ns.clone(), c.clone());
        c
    }
}
