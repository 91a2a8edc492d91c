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
use temper_proto::persistence::v1::{NamespaceDetail, TaskQueueConfigRecord, TaskQueueVersionSets};
use temper_proto::temporal::api::taskqueue::v1::TaskQueueConfig;
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
    /// The namespace's task queue configs (UpdateTaskQueueConfig), ordered.
    configs: Arc<Vec<TaskQueueConfigRecord>>,
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

/// Where the config of (`task_queue`, `task_queue_type`) is, or would go, in `all`.
fn find_config(
    all: &[TaskQueueConfigRecord],
    task_queue: &str,
    task_queue_type: i32,
) -> Result<usize, usize> {
    all.binary_search_by(|r| {
        (r.task_queue.as_str(), r.task_queue_type).cmp(&(task_queue, task_queue_type))
    })
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

    fn remember(
        &self,
        namespace_id: &NamespaceId,
        set: DeploymentSet,
        configs: Vec<TaskQueueConfigRecord>,
    ) -> Arc<DeploymentSet> {
        let set = Arc::new(set);
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                namespace_id.0.clone(),
                Cached {
                    set: set.clone(),
                    configs: Arc::new(configs),
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
            detail.task_queue_configs,
        ))
    }

    /// The UpdateTaskQueueConfig settings of a task queue and type as this process applies
    /// them (cached up to [`PROPAGATION`]); `None` if it has none.
    pub async fn task_queue_config(
        &self,
        namespace_id: &NamespaceId,
        task_queue: &str,
        task_queue_type: i32,
    ) -> Result<Option<TaskQueueConfig>, Status> {
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&namespace_id.0)
            .filter(|c| c.read_at.elapsed() < PROPAGATION)
            .map(|c| c.configs.clone());
        let configs = match cached {
            Some(c) => c,
            None => {
                self.fresh(namespace_id).await?;
                self.cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&namespace_id.0)
                    .map(|c| c.configs.clone())
                    .unwrap_or_default()
            }
        };
        Ok(find_config(&configs, task_queue, task_queue_type)
            .ok()
            .and_then(|i| configs[i].config.clone()))
    }

    /// Change the config of a task queue and type with `f` (Ok(true): it changed it) under
    /// the namespace's compare-and-set; the config as stored afterwards.
    pub async fn modify_task_queue_config(
        &self,
        namespace_id: &NamespaceId,
        task_queue: &str,
        task_queue_type: i32,
        mut f: impl FnMut(&mut TaskQueueConfig) -> Result<bool, DeploymentError>,
    ) -> Result<TaskQueueConfig, Status> {
        self.modify_detail(namespace_id, |detail| {
            let all = &mut detail.task_queue_configs;
            let at = find_config(all, task_queue, task_queue_type);
            let mut config = match at {
                Ok(i) => all[i].config.clone().unwrap_or_default(),
                Err(_) => TaskQueueConfig::default(),
            };
            let changed = f(&mut config)?;
            if changed {
                let record = TaskQueueConfigRecord {
                    task_queue: task_queue.to_owned(),
                    task_queue_type,
                    config: Some(config.clone()),
                };
                match at {
                    Ok(i) => all[i] = record,
                    Err(i) => all.insert(i, record),
                }
            }
            Ok((config, changed))
        })
        .await
    }

    /// Change the namespace's deployments with `f` (called again on a concurrent change) and
    /// store the result under the namespace's compare-and-set. `f` says whether it changed
    /// anything; nothing is written when it did not.
    pub async fn modify<T>(
        &self,
        namespace_id: &NamespaceId,
        mut f: impl FnMut(&mut DeploymentSet) -> Result<(T, bool), DeploymentError>,
    ) -> Result<T, Status> {
        self.modify_detail(namespace_id, |detail| {
            let mut set = DeploymentSet {
                deployments: std::mem::take(&mut detail.worker_deployments),
            };
            let result = f(&mut set);
            detail.worker_deployments = set.deployments;
            result
        })
        .await
    }

    /// The build id version sets (legacy worker versioning) of every task queue of the
    /// namespace that has any, as stored now.
    pub async fn version_sets(
        &self,
        namespace_id: &NamespaceId,
    ) -> Result<Vec<TaskQueueVersionSets>, Status> {
        Ok(self.load(namespace_id).await?.1.build_id_version_sets)
    }

    /// Change the build id version sets of `task_queue` with `f` (Ok(true): it changed them),
    /// as [`Self::modify`] changes deployments.
    pub async fn modify_version_sets<T>(
        &self,
        namespace_id: &NamespaceId,
        task_queue: &str,
        mut f: impl FnMut(&mut TaskQueueVersionSets) -> Result<(T, bool), DeploymentError>,
    ) -> Result<T, Status> {
        self.modify_detail(namespace_id, |detail| {
            let all = &mut detail.build_id_version_sets;
            let at = all.binary_search_by(|q| q.task_queue.as_str().cmp(task_queue));
            let mut queue = match at {
                Ok(i) => all[i].clone(),
                Err(_) => TaskQueueVersionSets {
                    task_queue: task_queue.to_owned(),
                    ..Default::default()
                },
            };
            let (value, changed) = f(&mut queue)?;
            if changed {
                match at {
                    Ok(i) => all[i] = queue,
                    Err(i) => all.insert(i, queue),
                }
            }
            Ok((value, changed))
        })
        .await
    }

    /// Change the namespace's stored detail with `f` under its compare-and-set; the deployments
    /// this process routes by are refreshed from what was stored.
    async fn modify_detail<T>(
        &self,
        namespace_id: &NamespaceId,
        mut f: impl FnMut(&mut NamespaceDetail) -> Result<(T, bool), DeploymentError>,
    ) -> Result<T, Status> {
        for _ in 0..MAX_ATTEMPTS {
            let (mut rec, mut detail) = self.load(namespace_id).await?;
            let (value, changed) = f(&mut detail).map_err(crate::status::deployment_status)?;
            let set = DeploymentSet {
                deployments: detail.worker_deployments.clone(),
            };
            let configs = detail.task_queue_configs.clone();
            if !changed {
                self.remember(namespace_id, set, configs);
                return Ok(value);
            }
            let expected = rec.notification_version;
            rec.detail = detail.encode_to_vec();
            rec.notification_version += 1;
            match self.store.update_namespace(expected, &rec).await {
                Ok(()) => {
                    self.remember(namespace_id, set, configs);
                    return Ok(value);
                }
                Err(StoreError::ConditionFailed(_)) => continue,
                Err(e) => return Err(store_status(e)),
            }
        }
        Err(Status::aborted(
            "worker versioning data was changed concurrently too often; retry",
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
