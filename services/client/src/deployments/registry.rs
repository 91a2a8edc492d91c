//! Loads, caches and writes the deployment record of each namespace.
//!
//! One registry per process, shared by its frontend and matching: a change made through it is
//! seen by this process's routing at once. Other processes re-read a namespace's record once
//! their cached copy is older than [`PROPAGATION`]; DescribeWorkerDeployment reports the
//! routing as in progress until that long after a change.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use prost::Message;
use temper_persistence::{NamespaceStore, StoreError};
use temper_proto::persistence::v1::NamespaceDetail;
use temper_types::{Clock, NamespaceId};
use tonic::Status;

use super::model::{DeploymentError, DeploymentSet};
use crate::status::store_status;

/// How long a process routes by a cached record before reading it again.
pub const PROPAGATION: Duration = Duration::from_secs(1);

/// Most compare-and-set rounds one change tries before giving up.
const MAX_ATTEMPTS: usize = 8;

struct Cached {
    set: Arc<DeploymentSet>,
    read_at: Instant,
}

/// (namespace id, deployment, build id, task queue, task queue type).
type Registration = (String, String, String, String, i32);

pub struct DeploymentRegistry {
    store: Arc<dyn NamespaceStore>,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, Cached>>,
    /// Registrations this process has seen stored: later polls need no store call.
    registered: Mutex<HashSet<Registration>>,
}

impl std::fmt::Debug for DeploymentRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeploymentRegistry").finish_non_exhaustive()
    }
}

impl DeploymentRegistry {
    pub fn new(store: Arc<dyn NamespaceStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            store,
            clock,
            cache: Mutex::new(HashMap::new()),
            registered: Mutex::new(HashSet::new()),
        }
    }

    pub fn now(&self) -> SystemTime {
        self.clock.now()
    }

    fn remember(&self, namespace_id: &NamespaceId, set: DeploymentSet) -> Arc<DeploymentSet> {
        let set = Arc::new(set);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                namespace_id.0.clone(),
                Cached {
                    set: set.clone(),
                    read_at: Instant::now(),
                },
            );
        set
    }

    async fn load(
        &self,
        namespace_id: &NamespaceId,
    ) -> Result<(temper_persistence::NamespaceRecord, NamespaceDetail), Status> {
        let rec = self
            .store
            .get_namespace_by_id(namespace_id)
            .await
            .map_err(store_status)?
            .ok_or_else(|| crate::status::namespace_not_found(&namespace_id.0))?;
        let detail = NamespaceDetail::decode(rec.detail.as_slice()).map_err(|e| {
            Status::internal(format!("stored namespace {} is unreadable: {e}", rec.name))
        })?;
        Ok((rec, detail))
    }

    /// The namespace's deployments as this process routes by them (cached up to
    /// [`PROPAGATION`]).
    pub async fn view(&self, namespace_id: &NamespaceId) -> Result<Arc<DeploymentSet>, Status> {
        if let Some(c) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&namespace_id.0)
            && c.read_at.elapsed() < PROPAGATION
        {
            return Ok(c.set.clone());
        }
        self.fresh(namespace_id).await
    }

    /// The namespace's deployments as stored now.
    pub async fn fresh(&self, namespace_id: &NamespaceId) -> Result<Arc<DeploymentSet>, Status> {
        let (_, detail) = self.load(namespace_id).await?;
        Ok(self.remember(
            namespace_id,
            DeploymentSet {
                deployments: detail.worker_deployments,
            },
        ))
    }

    /// Change the namespace's deployments with `f` (called again on a concurrent change) and
    /// store the result under the namespace's compare-and-set. `f` says whether it changed
    /// anything; nothing is written when it did not.
    pub async fn modify<T>(
        &self,
        namespace_id: &NamespaceId,
        mut f: impl FnMut(&mut DeploymentSet) -> Result<(T, bool), DeploymentError>,
    ) -> Result<T, Status> {
        for _ in 0..MAX_ATTEMPTS {
            let (mut rec, mut detail) = self.load(namespace_id).await?;
            let mut set = DeploymentSet {
                deployments: std::mem::take(&mut detail.worker_deployments),
            };
            let (value, changed) = f(&mut set).map_err(crate::status::deployment_status)?;
            if !changed {
                self.remember(namespace_id, set);
                return Ok(value);
            }
            detail.worker_deployments = set.deployments.clone();
            let expected = rec.notification_version;
            rec.detail = detail.encode_to_vec();
            rec.notification_version += 1;
            match self.store.update_namespace(expected, &rec).await {
                Ok(()) => {
                    self.remember(namespace_id, set);
                    return Ok(value);
                }
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(Status::aborted(
            "worker deployment was changed concurrently too often; retry",
        ))
    }

    /// A versioned worker polls `task_queue`: record its version there (once per process).
    pub async fn register(
        &self,
        namespace_id: &NamespaceId,
        deployment: &str,
        build_id: &str,
        task_queue: &str,
        task_type: i32,
    ) -> Result<(), Status> {
        let key: Registration = (
            namespace_id.0.clone(),
            deployment.to_owned(),
            build_id.to_owned(),
            task_queue.to_owned(),
            task_type,
        );
        if self
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(&key)
        {
            return Ok(());
        }
        let now = self.now().into();
        self.modify(namespace_id, |set| {
            Ok((
                (),
                set.register(deployment, build_id, task_queue, task_type, now),
            ))
        })
        .await?;
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key);
        Ok(())
    }

    /// Forget what this process registered (a deployment or version was deleted).
    pub fn forget_registrations(&self, namespace_id: &NamespaceId) {
        self.registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|r| r.0 != namespace_id.0);
    }

    /// Whether every process routes by the newest routing change.
    pub fn propagated(&self, set: &DeploymentSet) -> bool {
        let Some(changed) = set.last_routing_change() else {
            return true;
        };
        let Ok(changed) = SystemTime::try_from(changed) else {
            return true;
        };
        self.now()
            .duration_since(changed)
            .is_ok_and(|d| d >= PROPAGATION)
    }
}
