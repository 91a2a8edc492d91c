//! Namespaces: registration, lookups by name and id (cached), updates and listing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use prost::Message;
use temper_persistence::{NamespaceRecord, NamespaceStore, StoreError};
use temper_proto::persistence::v1::NamespaceDetail;
use temper_proto::temporal::api::enums::v1::{ArchivalState, NamespaceState};
use temper_proto::temporal::api::namespace::v1::{NamespaceConfig, NamespaceInfo};
use temper_proto::temporal::api::replication::v1::{
    ClusterReplicationConfig, NamespaceReplicationConfig,
};
use temper_proto::temporal::api::workflowservice::v1::{
    DescribeNamespaceResponse, RegisterNamespaceRequest, UpdateNamespaceRequest,
};
use temper_types::NamespaceId;
use temper_workflow::time::{dur, from_dur};
use tonic::{Code, Status};

use temper_client::status::{self, store_status};

/// A namespace as the frontend uses it.
#[derive(Debug, Clone)]
pub struct Namespace {
    pub id: NamespaceId,
    pub name: String,
    pub detail: NamespaceDetail,
    pub version: i64,
}

impl Namespace {
    fn from_record(r: NamespaceRecord) -> Result<Self, Status> {
        let detail = NamespaceDetail::decode(r.detail.as_slice()).map_err(|e| {
            Status::internal(format!("stored namespace {} is unreadable: {e}", r.name))
        })?;
        Ok(Self {
            id: r.id,
            name: r.name,
            detail,
            version: r.notification_version,
        })
    }

    pub fn describe(&self) -> DescribeNamespaceResponse {
        DescribeNamespaceResponse {
            namespace_info: self.detail.info.clone(),
            config: self.detail.config.clone(),
            replication_config: self.detail.replication_config.clone(),
            failover_version: self.detail.failover_version,
            is_global_namespace: self.detail.is_global_namespace,
            ..Default::default()
        }
    }
}

/// Longest namespace name a request may name (Temporal's `limit.maxIDLength`); names longer
/// than 255 cannot be registered, so they are simply not found up to this length.
const MAX_LOOKUP_NAME_LENGTH: usize = 1000;

/// Shortest retention Temporal accepts.
const MIN_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The most a namespace's `data` may hold, keys and values together. Temporal sets no
/// bound, but every call on a namespace reads its record, and a fuzz run's UpdateNamespace
/// calls (which merge their entries in) grew `default`'s to 9 MB
/// (docs/testing.md#fuzzing-the-api). A registration or update past it is refused with
/// INVALID_ARGUMENT and changes nothing.
pub const MAX_NAMESPACE_DATA_BYTES: usize = 256 * 1024;

/// Refuse a namespace `data` map larger than [`MAX_NAMESPACE_DATA_BYTES`].
fn check_data_size(data: &HashMap<String, String>) -> Result<(), Status> {
    let size: usize = data.iter().map(|(k, v)| k.len() + v.len()).sum();
    if size > MAX_NAMESPACE_DATA_BYTES {
        return Err(Status::invalid_argument(format!(
            "Namespace data is {size} bytes (keys and values together); the limit is \
             {MAX_NAMESPACE_DATA_BYTES}."
        )));
    }
    Ok(())
}

pub struct Namespaces {
    store: Arc<dyn NamespaceStore>,
    cluster_name: String,
    /// Shared, not copied, with each caller: a namespace's `data` may be large.
    by_name: RwLock<HashMap<String, Arc<Namespace>>>,
}

impl Namespaces {
    pub fn new(store: Arc<dyn NamespaceStore>, cluster_name: String) -> Self {
        Self {
            store,
            cluster_name,
            by_name: RwLock::new(HashMap::new()),
        }
    }

    /// A namespace by name, from the cache or the store.
    pub async fn get(&self, name: &str) -> Result<Arc<Namespace>, Status> {
        if name.is_empty() {
            return Err(Status::invalid_argument("Namespace not set on request."));
        }
        // As Temporal's namespace validator does before any lookup: a megabyte-long name
        // would otherwise go to the store, and back to the client inside the not-found error.
        if name.len() > MAX_LOOKUP_NAME_LENGTH {
            return Err(Status::invalid_argument("Namespace length exceeds limit."));
        }
        if let Some(ns) = self
            .by_name
            .read()
            .expect("namespace cache poisoned")
            .get(name)
        {
            crate::metrics::note_namespace(&ns.name);
            return Ok(Arc::clone(ns));
        }
        let rec = self
            .store
            .get_namespace_by_name(name)
            .await
            .map_err(store_status)?;
        let ns = Arc::new(Namespace::from_record(
            rec.ok_or_else(|| status::namespace_not_found(name))?,
        )?);
        self.by_name
            .write()
            .expect("namespace cache poisoned")
            .insert(name.to_string(), Arc::clone(&ns));
        crate::metrics::note_namespace(&ns.name);
        Ok(ns)
    }

    /// Whether `name` is a namespace this node has looked up already (no store call).
    pub fn is_cached(&self, name: &str) -> bool {
        self.by_name
            .read()
            .expect("namespace cache poisoned")
            .contains_key(name)
    }

    pub async fn get_by_id(&self, id: &str) -> Result<Namespace, Status> {
        let rec = self
            .store
            .get_namespace_by_id(&NamespaceId(id.to_string()))
            .await
            .map_err(store_status)?;
        let ns = Namespace::from_record(rec.ok_or_else(|| status::namespace_not_found(id))?)?;
        crate::metrics::note_namespace(&ns.name);
        Ok(ns)
    }

    fn detail(&self, id: &NamespaceId, r: &RegisterNamespaceRequest) -> NamespaceDetail {
        NamespaceDetail {
            info: Some(NamespaceInfo {
                name: r.namespace.clone(),
                state: NamespaceState::Registered as i32,
                description: r.description.clone(),
                owner_email: r.owner_email.clone(),
                data: r.data.clone(),
                id: id.0.clone(),
                supports_schedules: true,
                ..Default::default()
            }),
            config: Some(NamespaceConfig {
                workflow_execution_retention_ttl: r.workflow_execution_retention_period,
                history_archival_state: ArchivalState::Disabled as i32,
                visibility_archival_state: ArchivalState::Disabled as i32,
                ..Default::default()
            }),
            replication_config: Some(NamespaceReplicationConfig {
                active_cluster_name: self.cluster_name.clone(),
                clusters: vec![ClusterReplicationConfig {
                    cluster_name: self.cluster_name.clone(),
                    ..Default::default()
                }],
                state: 0,
            }),
            failover_version: 0,
            is_global_namespace: false,
            search_attributes: Default::default(),
            worker_deployments: Vec::new(),
            build_id_version_sets: Vec::new(),
            task_queue_configs: Vec::new(),
        }
    }

    pub async fn register(&self, r: RegisterNamespaceRequest) -> Result<(), Status> {
        validate_name(&r.namespace)?;
        check_data_size(&r.data)?;
        let retention = from_dur(&r.workflow_execution_retention_period);
        if retention < MIN_RETENTION {
            return Err(Status::invalid_argument(
                "WorkflowExecutionRetentionPeriod must be at least 1 day.",
            ));
        }
        let id = NamespaceId::random();
        let detail = self.detail(&id, &r);
        let rec = NamespaceRecord {
            id,
            name: r.namespace.clone(),
            detail: detail.encode_to_vec(),
            notification_version: 1,
        };
        match self.store.create_namespace(&rec).await {
            Ok(()) => Ok(()),
            Err(StoreError::AlreadyExists(_)) => Err(status::namespace_already_exists()),
            Err(e) => Err(store_status(e)),
        }
    }

    /// Register `name` unless it exists (start-dev's default namespace).
    pub async fn ensure(&self, name: &str, retention: Duration) -> Result<(), Status> {
        match self.get(name).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == Code::NotFound => {
                let r = RegisterNamespaceRequest {
                    namespace: name.to_string(),
                    workflow_execution_retention_period: dur(retention),
                    ..Default::default()
                };
                match self.register(r).await {
                    Err(s) if s.code() == Code::AlreadyExists => Ok(()),
                    other => other,
                }
            }
            Err(e) => Err(e),
        }
    }

    pub async fn update(&self, r: UpdateNamespaceRequest) -> Result<Namespace, Status> {
        self.modify(&r.namespace, |detail| {
            if let Some(u) = &r.update_info {
                let info = detail.info.get_or_insert_with(Default::default);
                if !u.description.is_empty() {
                    info.description = u.description.clone();
                }
                if !u.owner_email.is_empty() {
                    info.owner_email = u.owner_email.clone();
                }
                info.data.extend(u.data.clone());
                check_data_size(&info.data)?;
            }
            if let Some(c) = &r.config {
                let config = detail.config.get_or_insert_with(Default::default);
                if c.workflow_execution_retention_ttl.is_some() {
                    if from_dur(&c.workflow_execution_retention_ttl) < MIN_RETENTION {
                        return Err(Status::invalid_argument(
                            "WorkflowExecutionRetentionPeriod must be at least 1 day.",
                        ));
                    }
                    config.workflow_execution_retention_ttl = c.workflow_execution_retention_ttl;
                }
            }
            Ok(())
        })
        .await
    }

    /// Change a namespace's detail with `f`: read the newest version, write it back under
    /// that version, and refresh the cache.
    pub async fn modify(
        &self,
        name: &str,
        f: impl FnOnce(&mut NamespaceDetail) -> Result<(), Status>,
    ) -> Result<Namespace, Status> {
        let ns = self.get(name).await?;
        let mut ns = self.get_by_id(&ns.id.0).await?;
        f(&mut ns.detail)?;
        let rec = NamespaceRecord {
            id: ns.id.clone(),
            name: ns.name.clone(),
            detail: ns.detail.encode_to_vec(),
            notification_version: ns.version + 1,
        };
        self.store
            .update_namespace(ns.version, &rec)
            .await
            .map_err(|e| match e {
                StoreError::ConditionFailed(_) => {
                    Status::aborted("namespace was updated concurrently; retry")
                }
                e => store_status(e),
            })?;
        ns.version += 1;
        self.by_name
            .write()
            .expect("namespace cache poisoned")
            .insert(ns.name.clone(), Arc::new(ns.clone()));
        Ok(ns)
    }

    pub async fn list(&self, after: Option<&str>, limit: usize) -> Result<Vec<Namespace>, Status> {
        let recs = self
            .store
            .list_namespaces(after, limit)
            .await
            .map_err(store_status)?;
        recs.into_iter().map(Namespace::from_record).collect()
    }
}

fn validate_name(name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument("Namespace not set on request."));
    }
    if name.len() > 255 {
        return Err(Status::invalid_argument("Namespace length exceeds limit."));
    }
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        return Err(Status::invalid_argument(format!(
            "Namespace has invalid characters: {name}."
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("default").is_ok());
        assert!(validate_name("my-ns.prod_1").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
    }

    /// A store that must not be asked: the request is refused before any lookup.
    struct NoStore;

    #[async_trait::async_trait]
    impl NamespaceStore for NoStore {
        async fn create_namespace(&self, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("the store was asked".into()))
        }
        async fn get_namespace_by_name(
            &self,
            _: &str,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("the store was asked".into()))
        }
        async fn get_namespace_by_id(
            &self,
            _: &NamespaceId,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("the store was asked".into()))
        }
        async fn update_namespace(&self, _: i64, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("the store was asked".into()))
        }
        async fn list_namespaces(
            &self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Vec<NamespaceRecord>, StoreError> {
            Err(StoreError::Internal("the store was asked".into()))
        }
    }

    /// Found by the fuzzer (`temper-loadtest fuzz`): a request naming an 800 KB namespace
    /// got a NOT_FOUND quoting the name twice (message and NamespaceNotFoundFailure), a
    /// header so large that the client dropped the whole connection.
    #[tokio::test]
    async fn a_huge_namespace_name_is_refused_before_the_lookup() {
        let namespaces = Namespaces::new(Arc::new(NoStore), "active".into());
        let s = namespaces
            .get(&"x".repeat(800_000))
            .await
            .expect_err("refused");
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(s.message(), "Namespace length exceeds limit.");
        // Up to the limit, the store is asked (and here fails).
        let s = namespaces
            .get(&"x".repeat(MAX_LOOKUP_NAME_LENGTH))
            .await
            .expect_err("store fails");
        assert_eq!(s.code(), Code::Internal);
    }

    /// A store holding one namespace, counting the lookups by name.
    struct OneNamespace {
        record: NamespaceRecord,
        lookups: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl NamespaceStore for OneNamespace {
        async fn create_namespace(&self, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("not in this test".into()))
        }
        async fn get_namespace_by_name(
            &self,
            name: &str,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            self.lookups
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok((name == self.record.name).then(|| self.record.clone()))
        }
        async fn get_namespace_by_id(
            &self,
            _: &NamespaceId,
        ) -> Result<Option<NamespaceRecord>, StoreError> {
            Ok(Some(self.record.clone()))
        }
        async fn update_namespace(&self, _: i64, _: &NamespaceRecord) -> Result<(), StoreError> {
            Err(StoreError::Internal("not in this test".into()))
        }
        async fn list_namespaces(
            &self,
            _: Option<&str>,
            _: usize,
        ) -> Result<Vec<NamespaceRecord>, StoreError> {
            Ok(vec![self.record.clone()])
        }
    }

    #[test]
    fn namespace_data_past_the_bound_is_refused() {
        let at = HashMap::from([("k".to_string(), "v".repeat(MAX_NAMESPACE_DATA_BYTES - 1))]);
        assert!(check_data_size(&at).is_ok());
        let over = HashMap::from([("k".to_string(), "v".repeat(MAX_NAMESPACE_DATA_BYTES))]);
        let refused = check_data_size(&over).expect_err("one byte over");
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("262145 bytes"), "{refused:?}");
    }

    /// Found with a heap profile of a fuzz run: UpdateNamespace calls had grown `default`'s
    /// `data` to megabytes, and every call on the namespace copied it. The cache hands out
    /// one shared copy.
    #[tokio::test]
    async fn every_caller_shares_the_cached_namespace() {
        let detail = NamespaceDetail {
            info: Some(NamespaceInfo {
                name: "big".into(),
                data: (0..100)
                    .map(|i| (format!("k{i}"), "v".repeat(10_000)))
                    .collect(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let store = Arc::new(OneNamespace {
            record: NamespaceRecord {
                id: NamespaceId("id-big".into()),
                name: "big".into(),
                detail: detail.encode_to_vec(),
                notification_version: 1,
            },
            lookups: Default::default(),
        });
        let namespaces = Namespaces::new(store.clone(), "active".into());
        let first = namespaces.get("big").await.expect("found");
        let second = namespaces.get("big").await.expect("found");
        assert!(
            Arc::ptr_eq(&first, &second),
            "the cached namespace is shared"
        );
        assert_eq!(first.detail.info.as_ref().map(|i| i.data.len()), Some(100));
        assert_eq!(
            store.lookups.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "looked up in the store once"
        );
    }
}
