//! Nexus endpoints: the cluster's registry of named targets (a namespace and task queue
//! served by Nexus workers, or an external URL) that workflows call Nexus operations on.
//!
//! They live in the store (`NexusEndpointStore`), unique by id and by name and versioned:
//! every update is a compare-and-set on the version the caller read. Each process caches
//! the whole list and reads it again when a lookup misses or the copy is older than the
//! refresh interval (Temporal's `system.refreshNexusEndpointsMinWait`), so a change made
//! on one node is seen by every node within that interval; the process that made it sees
//! it at once.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use prost::Message;
use temper_persistence::{NexusEndpointRecord, NexusEndpointStore, StoreError};
use temper_proto::temporal::api::nexus::v1::{Endpoint, EndpointSpec, endpoint_target};
use temper_types::Clock;
use tonic::Status;

use crate::status::{not_found, store_status};

/// How long a cached list is used before the store is read again (Temporal's default for
/// `system.refreshNexusEndpointsMinWait` is a second).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(1);

/// The largest page ListNexusEndpoints returns (and its default).
pub const MAX_PAGE_SIZE: usize = 100;

struct Cached {
    endpoints: Arc<Vec<Endpoint>>,
    read_at: Instant,
}

pub struct NexusEndpoints {
    store: Arc<dyn NexusEndpointStore>,
    clock: Arc<dyn Clock>,
    refresh: Duration,
    cache: Mutex<Option<Cached>>,
}

impl std::fmt::Debug for NexusEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NexusEndpoints").finish_non_exhaustive()
    }
}

fn decode(record: &NexusEndpointRecord) -> Result<Endpoint, Status> {
    let mut e = Endpoint::decode(record.data.as_slice()).map_err(|e| {
        store_status(StoreError::Invalid(format!(
            "stored Nexus endpoint {}: {e}",
            record.id
        )))
    })?;
    // The row's columns are the truth for what they hold.
    e.id = record.id.clone();
    e.version = record.version;
    Ok(e)
}

fn record(e: &Endpoint) -> NexusEndpointRecord {
    NexusEndpointRecord {
        id: e.id.clone(),
        name: e.spec.as_ref().map(|s| s.name.clone()).unwrap_or_default(),
        version: e.version,
        data: e.encode_to_vec(),
    }
}

/// Where Temporal serves an endpoint over HTTP (the Nexus HTTP API path).
fn url_prefix(id: &str) -> String {
    format!("/nexus/endpoints/{id}/services")
}

fn version_mismatch(received: i64, expected: i64) -> Status {
    Status::failed_precondition(format!(
        "nexus endpoint version mismatch. received: {received} expected {expected}"
    ))
}

impl NexusEndpoints {
    pub fn new(
        store: Arc<dyn NexusEndpointStore>,
        clock: Arc<dyn Clock>,
        refresh: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            refresh,
            cache: Mutex::new(None),
        }
    }

    fn cached(&self, fresh_only: bool) -> Option<Arc<Vec<Endpoint>>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .as_ref()
            .filter(|c| !fresh_only || c.read_at.elapsed() < self.refresh)
            .map(|c| c.endpoints.clone())
    }

    /// Every endpoint, read from the store, ordered by name.
    pub async fn reload(&self) -> Result<Arc<Vec<Endpoint>>, Status> {
        let rows = self
            .store
            .list_nexus_endpoints()
            .await
            .map_err(store_status)?;
        let endpoints = Arc::new(rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?);
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(Cached {
            endpoints: endpoints.clone(),
            read_at: Instant::now(),
        });
        Ok(endpoints)
    }

    /// The endpoint named `name`: from the cache while it is fresh, else from the store. A
    /// name the cache lacks is looked for in the store too, so an endpoint created on another
    /// node (or through another cache) is seen at once, as Temporal's registry sees it.
    pub async fn by_name(&self, name: &str) -> Result<Option<Endpoint>, Status> {
        let find = |list: &[Endpoint]| {
            list.iter()
                .find(|e| e.spec.as_ref().is_some_and(|s| s.name == name))
                .cloned()
        };
        if let Some(found) = self.cached(true).and_then(|list| find(&list)) {
            return Ok(Some(found));
        }
        Ok(find(&self.reload().await?))
    }

    /// The endpoint with id `id`, as stored now.
    pub async fn by_id(&self, id: &str) -> Result<Option<Endpoint>, Status> {
        match self.store.get_nexus_endpoint(id).await {
            Ok(Some(r)) => decode(&r).map(Some),
            Ok(None) => Ok(None),
            Err(e) => Err(store_status(e)),
        }
    }

    /// The endpoint with id `id` for routing: from the cache while it is fresh.
    pub async fn by_id_cached(&self, id: &str) -> Result<Option<Endpoint>, Status> {
        if let Some(list) = self.cached(true)
            && let Some(e) = list.iter().find(|e| e.id == id)
        {
            return Ok(Some(e.clone()));
        }
        Ok(self.reload().await?.iter().find(|e| e.id == id).cloned())
    }

    pub async fn create(&self, spec: EndpointSpec) -> Result<Endpoint, Status> {
        let now = temper_workflow::time::ts(self.clock.now());
        let id = uuid::Uuid::new_v4().to_string();
        let endpoint = Endpoint {
            version: 1,
            id: id.clone(),
            spec: Some(spec),
            created_time: Some(now),
            last_modified_time: None,
            url_prefix: url_prefix(&id),
        };
        match self.store.create_nexus_endpoint(&record(&endpoint)).await {
            Ok(()) => {}
            Err(StoreError::AlreadyExists(_)) => {
                return Err(Status::already_exists(format!(
                    "error creating Nexus endpoint. Endpoint with name {} already registered",
                    endpoint
                        .spec
                        .as_ref()
                        .map(|s| s.name.as_str())
                        .unwrap_or_default()
                )));
            }
            Err(e) => return Err(store_status(e)),
        }
        self.forget();
        Ok(endpoint)
    }

    pub async fn update(
        &self,
        id: &str,
        version: i64,
        spec: EndpointSpec,
    ) -> Result<Endpoint, Status> {
        let missing = || {
            not_found(format!(
                "error updating Nexus endpoint. endpoint ID {id} not found"
            ))
        };
        if uuid::Uuid::parse_str(id).is_err() {
            return Err(missing());
        }
        let current = self.by_id(id).await?.ok_or_else(missing)?;
        if current.version != version {
            return Err(version_mismatch(version, current.version));
        }
        // As the Temporal server records an update: the modification time in whole
        // milliseconds, and the creation time no more.
        let mut modified = temper_workflow::time::ts(self.clock.now());
        modified.nanos -= modified.nanos % 1_000_000;
        let name = spec.name.clone();
        let endpoint = Endpoint {
            version: version + 1,
            spec: Some(spec),
            created_time: None,
            last_modified_time: Some(modified),
            ..current
        };
        match self
            .store
            .update_nexus_endpoint(version, &record(&endpoint))
            .await
        {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Err(missing()),
            Err(StoreError::ConditionFailed(_)) => {
                // Changed since it was read: say which version it has now.
                let now = self.by_id(id).await?.map(|e| e.version).unwrap_or_default();
                return Err(version_mismatch(version, now));
            }
            Err(StoreError::AlreadyExists(_)) => {
                return Err(Status::already_exists(format!(
                    "error updating Nexus endpoint. Endpoint with name {name} already registered"
                )));
            }
            Err(e) => return Err(store_status(e)),
        }
        self.forget();
        Ok(endpoint)
    }

    /// Delete endpoint `id` at `version` (unlike the Temporal server, which deletes
    /// whatever version it has, a stale version is refused as an update's is).
    pub async fn delete(&self, id: &str, version: i64) -> Result<(), Status> {
        let missing = || not_found(format!("error deleting nexus endpoint with ID: {id}"));
        let current = self.by_id(id).await?.ok_or_else(missing)?;
        if current.version != version {
            return Err(version_mismatch(version, current.version));
        }
        match self.store.delete_nexus_endpoint(id).await {
            Ok(()) => {}
            Err(StoreError::NotFound(_)) => return Err(missing()),
            Err(e) => return Err(store_status(e)),
        }
        self.forget();
        Ok(())
    }

    /// Drop the cached list (this process changed it).
    fn forget(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The worker target of an endpoint, if it has one: (namespace, task queue).
pub fn worker_target(e: &Endpoint) -> Option<(&str, &str)> {
    match e.spec.as_ref()?.target.as_ref()?.variant.as_ref()? {
        endpoint_target::Variant::Worker(w) => Some((&w.namespace, &w.task_queue)),
        endpoint_target::Variant::External(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Endpoints kept in memory: enough for two caches to share.
    #[derive(Default)]
    struct Memory(Mutex<Vec<NexusEndpointRecord>>);

    #[async_trait::async_trait]
    impl NexusEndpointStore for Memory {
        async fn create_nexus_endpoint(&self, r: &NexusEndpointRecord) -> Result<(), StoreError> {
            self.0.lock().expect("lock").push(r.clone());
            Ok(())
        }

        async fn list_nexus_endpoints(&self) -> Result<Vec<NexusEndpointRecord>, StoreError> {
            Ok(self.0.lock().expect("lock").clone())
        }
    }

    #[tokio::test]
    async fn a_name_missing_from_the_cache_is_looked_for_in_the_store() {
        let store: Arc<dyn NexusEndpointStore> = Arc::new(Memory::default());
        let clock: Arc<dyn Clock> = Arc::new(temper_types::SystemClock);
        let hour = Duration::from_secs(3600);
        let writer = NexusEndpoints::new(store.clone(), clock.clone(), hour);
        let reader = NexusEndpoints::new(store, clock, hour);
        assert!(reader.by_name("ep").await.expect("read").is_none());
        writer
            .create(EndpointSpec {
                name: "ep".into(),
                ..Default::default()
            })
            .await
            .expect("created");
        // The reader's cache is fresh for an hour, and still sees the new endpoint.
        let found = reader.by_name("ep").await.expect("read");
        assert_eq!(
            found.and_then(|e| e.spec).map(|s| s.name).as_deref(),
            Some("ep")
        );
    }
}
