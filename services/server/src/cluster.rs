//! `temper server start --config FILE`: one node of a cluster. It runs the roles its config
//! names, finds the other nodes by gossip, and routes every internal call to the node the
//! rings give the shard or partition to (in-process when that is itself).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use temper_client::matching_router::MatchingRouter;
use temper_client::{
    Channels, HistoryClient, HistoryRouter, MatchingClient, Placement, RetryPolicy, Target,
};
use temper_frontend::{AdmissionScope, RpcMetrics};
use temper_frontend::{Frontend, FrontendConfig, Namespaces, Operator};
use temper_history::{HistoryConfig, HistoryEngine};
use temper_matching::{MatchingConfig, MatchingEngine};
use temper_membership::{ClusterView, Membership, MembershipConfig, Quorum, Role, StorePeers};
use temper_persistence::{ClusterMetadata, Persistence};
use temper_persistence_sqlite::SqliteStore;
use temper_proto::api::operatorservice::v1::operator_service_server::OperatorServiceServer;
use temper_proto::api::workflowservice::v1::workflow_service_server::WorkflowServiceServer;
use temper_proto::internal::v1::admin_service_server::AdminServiceServer;
use temper_proto::internal::v1::history_service_server::HistoryServiceServer;
use temper_proto::internal::v1::matching_service_server::MatchingServiceServer;
use temper_types::{Clock, ShardId, SystemClock};
use temper_workflow::Limits;
use tokio::sync::watch;
use tonic::codec::CompressionEncoding;

use crate::admin::AdminApi;
use crate::config::{ServerConfig, StoreKindConfig};
use crate::health::{Health, Readiness, StoreFailures};
use crate::store;
use temper_auth::Authorize;
use temper_tls::InternodeOnly;
use tonic::server::NamedService;
use tonic_health::ServingStatus;

/// Largest gRPC message accepted or sent.
const MAX_MESSAGE_BYTES: usize = temper_client::MAX_MESSAGE_BYTES;
/// How long a starting node waits to hear from a seed before it takes shards alone.
const JOIN_WAIT: Duration = Duration::from_secs(3);
/// How long in-flight requests may take to finish once the node stops serving. Short: by
/// then the node has handed its shards and partitions over and answered its own polls, so
/// what is left are long polls waiting on other nodes, which clients simply send again; and
/// while a node is not listening its clients' calls fail and are retried, so the sooner it
/// is back (a rolling restart) the better.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// The rings as the routers see them: the newest published view.
pub struct RingPlacement {
    me: String,
    num_shards: u32,
    view: watch::Receiver<Arc<ClusterView>>,
}

impl RingPlacement {
    pub fn new(me: String, num_shards: u32, view: watch::Receiver<Arc<ClusterView>>) -> Arc<Self> {
        Arc::new(Self {
            me,
            num_shards,
            view,
        })
    }

    fn target(&self, member: Option<&temper_membership::Member>) -> Option<Target> {
        let m = member?;
        Some(if m.name == self.me {
            Target::Local
        } else {
            Target::Remote(m.grpc_address.clone())
        })
    }
}

impl Placement for RingPlacement {
    fn history_shard(&self, shard: u32) -> Option<Target> {
        let view = self.view.borrow().clone();
        self.target(view.balanced_shard_owner(shard, self.num_shards))
    }

    fn matching_partition(&self, key: &str) -> Option<Target> {
        let view = self.view.borrow().clone();
        self.target(view.owner(Role::Matching, key))
    }
}

/// Open the configured store.
async fn open_store(config: &ServerConfig) -> anyhow::Result<(Persistence, String)> {
    match config.store.kind {
        StoreKindConfig::Cassandra => {
            let c = config.store.cassandra.clone().validated()?;
            let where_ = format!(
                "cassandra keyspace {} at {}",
                c.keyspace,
                c.contact_points.join(",")
            );
            let s = store::connect_cassandra(c).await?;
            Ok((s.into_persistence(), where_))
        }
        StoreKindConfig::Sqlite => {
            let path = config
                .store
                .path
                .clone()
                .unwrap_or_else(|| "temper-cluster.sqlite".into());
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let p = path.clone();
            let s = tokio::task::spawn_blocking(move || SqliteStore::open(&p))
                .await?
                .with_context(|| format!("opening the store at {}", path.display()))?;
            Ok((s.into_persistence(), path.display().to_string()))
        }
    }
}

/// What the node opened before it joins anyone: the store and the cluster facts in it.
struct Store {
    persistence: Persistence,
    /// Where the store is, for the startup line.
    location: String,
    cluster: ClusterMetadata,
}

/// The roles this node runs, started and following the rings.
struct Roles {
    membership: Arc<Membership>,
    /// The membership's views, or with internode TLS those of the admitted members only.
    views: watch::Receiver<Arc<ClusterView>>,
    /// Internode admission (stopped with `follow`).
    admission: Option<tokio::task::JoinHandle<()>>,
    channels: Arc<Channels>,
    history: Option<Arc<HistoryEngine>>,
    matching: Option<Arc<MatchingEngine>>,
    frontend: Option<Arc<Frontend>>,
    /// Set once the ring follower has applied its first view.
    joined: Arc<std::sync::atomic::AtomicBool>,
    /// Stops the ring follower.
    follow: tokio_util::sync::CancellationToken,
    follower: tokio::task::JoinHandle<()>,
}

/// The gRPC server while it runs, and the health reporting beside it.
struct Serving {
    server: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    >,
    /// Makes the server stop accepting and finish its requests.
    stop_serving: tokio_util::sync::CancellationToken,
    health: Arc<Health>,
    health_reporter: tonic_health::server::HealthReporter,
    /// The gRPC health service names this node reports on ("" and one per role).
    role_services: Vec<&'static str>,
    /// Stops the readiness watcher and the health HTTP endpoint.
    stop_health: tokio_util::sync::CancellationToken,
    health_http: Option<tokio::task::JoinHandle<()>>,
    watcher: tokio::task::JoinHandle<()>,
}

pub async fn run(config: ServerConfig) -> anyhow::Result<()> {
    let started = Instant::now();
    let listen = config.grpc_listen()?;
    let name = config.node_name();
    let (store, listener, metrics) = open(&config, listen).await?;
    // After `open`, which installs the metrics recorder the certificates' expiry goes to, and
    // before gossip announces this node.
    let tls = crate::tls::NodeTls::from_config(&config.tls)?;
    let stop_metrics = tokio_util::sync::CancellationToken::new();
    let metrics_https = match metrics {
        crate::metrics::Installed::Https(pending) => {
            let tls = tls
                .as_ref()
                .context("metrics.tls needs tls.cert and tls.key")?;
            Some(pending.serve(&tls.server, stop_metrics.clone()).await?)
        }
        _ => None,
    };
    let auth = crate::auth::start(config.auth.settings()).await?;
    let mut roles = start_roles(&config, &name, &store, tls.as_ref()).await?;
    let mut serving = serve(
        &config,
        &name,
        started,
        listen,
        listener,
        &store,
        &roles,
        tls.as_ref(),
        auth.clone(),
    )
    .await?;
    leave(&config, &name, &store, &mut roles, &mut serving).await;
    let result = shut_down(&name, roles, serving).await;
    stop_metrics.cancel();
    if let Some(m) = metrics_https {
        let _ = m.await;
    }
    if let Some(tls) = tls {
        tls.stop().await;
    }
    if let Some(auth) = auth {
        auth.stop().await;
    }
    result
}

/// Open the store (instrumented when metrics are on), check it holds this cluster, and bind
/// the gRPC port: a node that cannot have all three fails here, before gossip announces it.
/// Metrics over HTTPS are served once the TLS files are loaded.
async fn open(
    config: &ServerConfig,
    listen: std::net::SocketAddr,
) -> anyhow::Result<(Store, tokio::net::TcpListener, crate::metrics::Installed)> {
    let (persistence, location) = open_store(config).await?;
    let metrics = crate::metrics::install(config.metrics.listen_address, config.metrics.tls)?;
    let persistence = match metrics.is_on() {
        true => persistence.instrumented(),
        false => persistence,
    };
    let cluster = crate::node::check_cluster(&persistence, config.cluster.num_shards)
        .await
        .context("cluster.num_shards")?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding the gRPC address {listen}"))?;
    Ok((
        Store {
            persistence,
            location,
            cluster,
        },
        listener,
        metrics,
    ))
}

/// Join gossip, then start the roles the config names, each calling the others through
/// routers that follow the rings, and start following the rings. Membership comes first
/// because the routers and the ring follower read its views.
async fn start_roles(
    config: &ServerConfig,
    name: &str,
    store: &Store,
    tls: Option<&crate::tls::NodeTls>,
) -> anyhow::Result<Roles> {
    let persistence = &store.persistence;
    let num_shards = store.cluster.num_shards;
    let mut mconfig = MembershipConfig::new(
        name.to_string(),
        config.node.roles.clone(),
        config.advertise_grpc(),
        config.membership_listen()?,
    );
    mconfig.gossip_advertise = config.advertise_membership()?;
    mconfig.cluster_id = config.cluster.id.clone();
    mconfig.seeds = config.cluster.seeds.clone();
    mconfig.dead_after = Duration::from_millis(config.cluster.dead_after_ms);
    mconfig.ring_debounce = Duration::from_millis(config.cluster.ring_debounce_ms);
    let virtual_nodes = mconfig.virtual_nodes;
    let membership = Arc::new(
        Membership::start(mconfig, Some(persistence.membership.clone()))
            .await
            .context("starting gossip membership")?,
    );
    // Follow the rings: own the shards and partitions they give this node.
    let follow = tokio_util::sync::CancellationToken::new();
    // With internode TLS, only members that show an internode certificate enter the rings.
    let (views, admission) = match tls.and_then(|t| t.internode.clone()) {
        Some(internode) => {
            let (views, task) = crate::admission::admit_verified(
                name.to_string(),
                membership.subscribe(),
                internode,
                virtual_nodes,
                follow.clone(),
            );
            (views, Some(task))
        }
        None => (membership.subscribe(), None),
    };
    let placement = RingPlacement::new(name.to_string(), num_shards, views.clone());
    let channels = match tls.and_then(|t| t.internode.clone()) {
        Some(internode) => Channels::with_tls(internode),
        None => Channels::new(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);

    let history = config.has_role(Role::History).then(|| {
        HistoryEngine::new(
            HistoryConfig {
                num_shards,
                owner: name.to_string(),
                limits: Limits {
                    update_callbacks: config.cluster.update_callbacks,
                    ..Limits::default()
                },
                memory: config.history.memory(),
            },
            persistence.clone(),
            clock.clone(),
        )
    });
    let history_router: HistoryClient = HistoryRouter::new(
        num_shards,
        placement.clone(),
        history.clone().map(|h| h as HistoryClient),
        channels.clone(),
        RetryPolicy::default(),
    );
    let matching_config = MatchingConfig {
        partitions: config.matching.partitions.clone(),
        lease_check_interval: Some(Duration::from_millis(
            config.matching.lease_check_interval_ms,
        )),
        ..MatchingConfig::default()
    };
    let matching = config.has_role(Role::Matching).then(|| {
        Arc::new(MatchingEngine::with_clock(
            persistence.task_queues.clone(),
            history_router.clone(),
            matching_config,
            clock.clone(),
        ))
    });
    let matching_router: MatchingClient = MatchingRouter::new(
        config.matching.partitions.clone(),
        placement.clone(),
        matching.clone().map(|m| m as MatchingClient),
        channels.clone(),
        RetryPolicy::default(),
    );
    if let Some(m) = &matching {
        m.set_forwarder(matching_router.clone());
        let ring = placement.clone();
        m.set_ownership(move |key| {
            ring.matching_partition(&key.routing_key()) == Some(Target::Local)
        });
    }
    if let Some(h) = &history {
        h.set_history_client(history_router.clone());
        h.start_shard_controller(
            matching_router.clone(),
            temper_history::ShardControl::every(Duration::from_millis(
                config.cluster.shard_check_interval_ms,
            )),
        );
    }

    let has_peers = config.cluster.seeds.iter().any(|s| {
        *s != config.node.membership_address
            && Some(s) != config.node.advertise_membership_address.as_ref()
    });
    let joined = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let follower = tokio::spawn(follow_rings(
        joined.clone(),
        has_peers.then_some(JOIN_WAIT),
        name.to_string(),
        num_shards,
        views.clone(),
        membership.store_peers(),
        history.clone(),
        matching.clone(),
        matching_router.clone(),
        follow.clone(),
    ));

    let frontend = if config.has_role(Role::Frontend) {
        let namespaces = Arc::new(Namespaces::new(
            persistence.namespaces.clone(),
            store.cluster.cluster_name.clone(),
        ));
        for ns in &config.cluster.namespaces {
            namespaces
                .ensure(ns, config.retention())
                .await
                .map_err(|s| anyhow::anyhow!("registering namespace {ns}: {}", s.message()))?;
        }
        Some(Arc::new(Frontend::new(
            FrontendConfig {
                cluster_name: store.cluster.cluster_name.clone(),
                cluster_id: config.cluster.id.clone(),
                num_shards,
                persistence_store: match config.store.kind {
                    StoreKindConfig::Sqlite => "sqlite".into(),
                    StoreKindConfig::Cassandra => "cassandra".into(),
                },
                max_long_poll: Duration::from_secs(60),
                rate_limits: temper_frontend::RateLimitConfig {
                    namespace_rps: config.frontend.namespace_rps,
                    per_namespace: config.frontend.per_namespace_rps.clone(),
                    host_rps: config.frontend.host_rps,
                    namespace_visibility_rps: config.frontend.namespace_visibility_rps,
                },
                admission: temper_frontend::AdmissionConfig {
                    max_inflight: config.frontend.max_inflight,
                    overload_target_lag: (config.frontend.overload_target_lag_ms > 0.0).then(
                        || Duration::from_secs_f64(config.frontend.overload_target_lag_ms / 1e3),
                    ),
                    max_queued: config.frontend.namespace_max_queued,
                    weights: config.frontend.namespace_weights.clone(),
                },
                open_workflows: temper_frontend::OpenWorkflowLimitConfig {
                    default: config.frontend.namespace_max_open_workflows,
                    per_namespace: config.frontend.per_namespace_max_open_workflows.clone(),
                },
                batch: temper_frontend::BatchConfig {
                    node_name: name.to_string(),
                    ..Default::default()
                },
                eager_workflow_start: true,
                worker_versioning_data_apis: config.frontend.worker_versioning_data_apis,
            },
            namespaces,
            history_router.clone(),
            matching_router.clone(),
            persistence.visibility.clone(),
            Arc::new(temper_client::nexus_endpoints::NexusEndpoints::new(
                persistence.nexus_endpoints.clone(),
                clock.clone(),
                temper_client::nexus_endpoints::DEFAULT_REFRESH,
            )),
        )))
    } else {
        None
    };
    // One deployment registry per node, shared by its frontend and matching; other nodes see
    // a routing change once their cached copy expires (PROPAGATION).
    let deployments = Arc::new(temper_client::deployments::DeploymentRegistry::new(
        persistence.namespaces.clone(),
        clock.clone(),
    ));
    if let Some(m) = &matching {
        m.set_deployments(deployments.clone());
    }
    if let Some(f) = &frontend {
        f.set_deployments(deployments.clone());
    }
    if let Some(f) = &frontend {
        // Unfinished batches carry on (docs/batch.md: in a cluster every frontend node
        // resumes them when it starts).
        f.batcher().resume();
    }
    Ok(Roles {
        membership,
        views,
        admission,
        channels,
        history,
        matching,
        frontend,
        joined,
        follow,
        follower,
    })
}

/// Serve gRPC and report readiness until the node is told to stop (or the server fails).
/// Every role's health service says NotServing until the readiness watcher has seen the
/// store answer and this node run every shard the ring gives it.
// The node's parts, each built by one step of `run`.
#[allow(clippy::too_many_arguments)]
async fn serve(
    config: &ServerConfig,
    name: &str,
    started: Instant,
    listen: std::net::SocketAddr,
    listener: tokio::net::TcpListener,
    store: &Store,
    roles: &Roles,
    tls: Option<&crate::tls::NodeTls>,
    auth: Option<Arc<temper_auth::Auth>>,
) -> anyhow::Result<Serving> {
    let num_shards = store.cluster.num_shards;
    let (router, health_reporter, role_services) =
        grpc_services(store, roles, tls.is_some(), auth).await;

    let shutdown = tokio_util::sync::CancellationToken::new();
    let signal = shutdown.clone();
    tokio::spawn(async move {
        crate::wait_for_signal().await;
        signal.cancel();
    });
    let node_roles: Vec<String> = config.node.roles.iter().map(|r| r.to_string()).collect();
    let where_ = &store.location;
    tracing::info!(node = %name, address = %listen, roles = ?node_roles, store = %where_, shards = num_shards, ready_ms = started.elapsed().as_millis() as u64, "temper node listening");
    eprintln!(
        "temper node {name} listening on {listen} (roles: {}; store: {where_}; ready in {} ms)",
        node_roles.join(","),
        started.elapsed().as_millis()
    );

    // Readiness: the store answers and this node runs every shard the ring gives it.
    let health = Health::new();
    let stop_health = tokio_util::sync::CancellationToken::new();
    let health_http = match config.health_listen()? {
        Some(addr) => {
            let https = match (config.health.tls, tls) {
                (true, Some(tls)) => Some(&tls.server),
                (true, None) => anyhow::bail!("health.tls needs tls.cert and tls.key"),
                (false, _) => None,
            };
            Some(crate::health::serve(addr, health.clone(), https, stop_health.clone()).await?)
        }
        None => None,
    };
    let watcher = tokio::spawn(watch_readiness(
        ReadinessInputs {
            persistence: store.persistence.clone(),
            history: roles.history.clone(),
            views: roles.views.clone(),
            me: name.to_string(),
            num_shards,
            joined: roles.joined.clone(),
            store_failure_window: Duration::from_millis(config.health.store_failure_window_ms),
            membership: Arc::downgrade(&roles.membership),
        },
        health.clone(),
        health_reporter.clone(),
        role_services.clone(),
        stop_health.clone(),
    ));

    let stop_serving = tokio_util::sync::CancellationToken::new();
    let stop = stop_serving.clone();
    let stopped = async move {
        stop.cancelled().await;
    };
    let mut server: std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
    > = match tls {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            tls.server.incoming(listener, stop_serving.clone()),
            stopped,
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            stopped,
        )),
    };
    tokio::select! {
        r = &mut server => { r.context("serving gRPC")?; }
        _ = shutdown.cancelled() => {}
    }
    Ok(Serving {
        server,
        stop_serving,
        health,
        health_reporter,
        role_services,
        stop_health,
        health_http,
        watcher,
    })
}

/// Every gRPC service this node answers: health, admin, and each role's own. The roles'
/// health services start NotServing, so no client is sent here before readiness says so.
/// With TLS on (`internode_only`), the internal services answer only nodes; with `auth`, the
/// public services check every caller's credentials and roles.
async fn grpc_services(
    store: &Store,
    roles: &Roles,
    internode_only: bool,
    auth: Option<Arc<temper_auth::Auth>>,
) -> (
    tonic::transport::server::Router,
    tonic_health::server::HealthReporter,
    Vec<&'static str>,
) {
    let admin = AdminApi::new(
        roles.membership.clone(),
        roles.views.clone(),
        roles.history.clone(),
        store.persistence.clone(),
        store.cluster.num_shards,
        roles.channels.clone(),
    );
    let (health_reporter, health_service) = crate::health::grpc_health_service();
    let mut router = tonic::transport::Server::builder()
        .trace_fn(crate::telemetry::rpc_span)
        .add_service(health_service)
        .add_service(InternodeOnly::new(
            AdminServiceServer::new(admin)
                .accept_compressed(CompressionEncoding::Gzip)
                .send_compressed(CompressionEncoding::Gzip),
            internode_only,
        ));
    let mut role_services: Vec<&'static str> = vec![""];
    if roles.frontend.is_some() {
        role_services.push(<WorkflowServiceServer<Frontend> as NamedService>::NAME);
    }
    if roles.history.is_some() {
        role_services.push(<HistoryServiceServer<HistoryEngine> as NamedService>::NAME);
    }
    if roles.matching.is_some() {
        role_services.push(<MatchingServiceServer<MatchingEngine> as NamedService>::NAME);
    }
    for service in &role_services {
        health_reporter
            .set_service_status(*service, ServingStatus::NotServing)
            .await;
    }
    if let Some(f) = &roles.frontend {
        let namespaces = f.namespaces.clone();
        let nexus_endpoints = f.nexus_endpoints.clone();
        router = router
            .add_service(RpcMetrics::new(Authorize::new(
                AdmissionScope::new(
                    WorkflowServiceServer::from_arc(f.clone())
                        .accept_compressed(CompressionEncoding::Gzip)
                        .send_compressed(CompressionEncoding::Gzip)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES),
                ),
                auth.clone(),
            )))
            .add_service(RpcMetrics::new(Authorize::new(
                OperatorServiceServer::new(Operator::new(namespaces, nexus_endpoints))
                    .accept_compressed(CompressionEncoding::Gzip)
                    .send_compressed(CompressionEncoding::Gzip),
                auth,
            )));
    }
    if let Some(h) = &roles.history {
        router = router.add_service(InternodeOnly::new(
            RpcMetrics::new(
                HistoryServiceServer::from_arc(h.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
            internode_only,
        ));
    }
    if let Some(m) = &roles.matching {
        router = router.add_service(InternodeOnly::new(
            RpcMetrics::new(
                MatchingServiceServer::from_arc(m.clone())
                    .accept_compressed(CompressionEncoding::Gzip)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            ),
            internode_only,
        ));
    }
    (router, health_reporter, role_services)
}

/// Graceful leave, while still serving: the other nodes drop this one from their rings at
/// once and take its shards. The order matters: health says Stopping first (no new
/// clients), the ring follower stops (no shard comes back), this node releases its shards
/// before it leaves the rings (nothing of a shard runs here once its heir may run it), then
/// waits (bounded) until each has a new owner in the store, and only then lets go of its
/// matching partitions and finishes leaving.
async fn leave(
    config: &ServerConfig,
    name: &str,
    store: &Store,
    roles: &mut Roles,
    serving: &mut Serving,
) {
    let persistence = &store.persistence;
    let membership = &roles.membership;
    tracing::info!(node = %name, "leaving the cluster");
    serving.stop_health.cancel();
    let _ = (&mut serving.watcher).await;
    serving.health.set(Readiness::Stopping);
    for service in &serving.role_services {
        serving
            .health_reporter
            .set_service_status(*service, ServingStatus::NotServing)
            .await;
    }
    roles.follow.cancel();
    let _ = (&mut roles.follower).await;
    if let Some(a) = roles.admission.take() {
        let _ = a.await;
    }
    let handover_started = Instant::now();
    // The shards' work ends before this node leaves the rings, which hands the shards to
    // other nodes: nothing of a shard runs here once its heir may run it.
    let handed_over = match &roles.history {
        Some(h) => {
            let released = h.owned_shards();
            let ranges = shard_ranges(persistence, &released).await;
            h.release_all_shards().await;
            Some((released, ranges))
        }
        None => None,
    };
    let leave = {
        let m = membership.clone();
        tokio::spawn(async move { m.leave().await })
    };
    if let Some((released, ranges)) = handed_over {
        // Nobody to hand over to (the last node, or all of them stopping): do not wait.
        // The admitted members (with internode TLS, a node that could not take a shard
        // is no heir).
        let heirs = roles
            .views
            .borrow()
            .ring_members(Role::History)
            .iter()
            .any(|m| m.name != name);
        if heirs {
            wait_for_handover(
                persistence,
                ranges,
                Duration::from_millis(config.cluster.handover_timeout_ms),
            )
            .await;
        }
        tracing::info!(node = %name, shards = released.len(), handover_ms = handover_started.elapsed().as_millis() as u64, "shards handed over");
        eprintln!(
            "temper node {name} handed over {} shards in {} ms",
            released.len(),
            handover_started.elapsed().as_millis()
        );
    }
    if let Some(m) = &roles.matching {
        // Waiting polls answer empty; workers poll again and reach the partitions' new
        // owners.
        m.retain_partitions(|_| false);
    }
    let _ = leave.await;
}

/// Stop serving (in-flight requests get `SHUTDOWN_GRACE`), then stop the roles and the
/// health endpoint, and last the gossip membership. Run after `leave`, so by now the
/// shards and partitions are someone else's.
async fn shut_down(name: &str, roles: Roles, mut serving: Serving) -> anyhow::Result<()> {
    serving.stop_serving.cancel();
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut serving.server).await {
        Ok(r) => r.context("serving gRPC")?,
        Err(_) => {
            tracing::warn!("requests still running after {SHUTDOWN_GRACE:?}; stopping anyway")
        }
    }
    if let Some(f) = &roles.frontend {
        f.batcher().shutdown().await;
    }
    if let Some(m) = &roles.matching {
        m.shutdown();
    }
    if let Some(h) = &roles.history {
        h.shutdown().await;
    }
    if let Some(h) = serving.health_http {
        let _ = h.await;
    }
    if let Ok(m) = Arc::try_unwrap(roles.membership) {
        m.shutdown().await;
    }
    eprintln!("temper node {name} stopped");
    Ok(())
}

/// Apply every new view: the history shards and matching partitions this node owns.
// Everything the ring follower needs, handed over once when the node starts it.
#[allow(clippy::too_many_arguments)]
async fn follow_rings(
    joined: Arc<std::sync::atomic::AtomicBool>,
    join_wait: Option<Duration>,
    me: String,
    num_shards: u32,
    mut views: watch::Receiver<Arc<ClusterView>>,
    mut store_peers: watch::Receiver<StorePeers>,
    history: Option<Arc<HistoryEngine>>,
    matching: Option<Arc<MatchingEngine>>,
    matching_router: MatchingClient,
    stop: tokio_util::sync::CancellationToken,
) {
    // A node that has peers to join first waits to see one of them: its first view holds
    // only itself, and acting on it would take every shard from the running nodes only to
    // give them back a second later.
    if let Some(wait) = join_wait {
        let joined = tokio::time::timeout(wait, views.wait_for(|v| v.members().len() > 1));
        tokio::select! {
            _ = stop.cancelled() => return,
            r = joined => if r.is_err() {
                tracing::info!(node = %me, "no peer answered within {wait:?}; starting alone");
            },
        }
    }
    // Shards are taken only while this node's view holds a majority of the live history
    // nodes (the store's membership table shows who is alive): a node cut off from its
    // peers keeps the shards it runs but takes none, instead of taking every shard its
    // lonely ring gives it.
    let mut quorum = Quorum::default();
    let mut majority = true;
    let mut last_version = None;
    let mut last_matching_version = None;
    let mut peers_open = true;
    loop {
        let view = views.borrow_and_update().clone();
        let peers = store_peers.borrow_and_update().clone();
        quorum.observe_view(&view);
        if let Some(h) = &history {
            let holds = quorum.holds(&view, &peers, Role::History);
            if holds != majority {
                if holds {
                    tracing::info!(node = %me, "this node sees a majority of the live nodes again; taking the shards its ring gives it");
                } else {
                    tracing::warn!(node = %me, alive_elsewhere = ?quorum.missing(&view, &peers, Role::History),
                        "this node does not see a majority of the live nodes (the store shows nodes alive that gossip does not reach); keeping its shards, taking no others");
                }
                majority = holds;
            }
            h.set_acquiring(holds);
            let mine: BTreeSet<ShardId> = view
                .shards_of(&me, num_shards)
                .into_iter()
                .map(ShardId)
                .collect();
            if last_version != Some(view.version()) {
                tracing::info!(version = view.version(), shards = ?mine.iter().map(|s| s.0).collect::<Vec<_>>(), "ring changed");
                last_version = Some(view.version());
            }
            h.set_owned_shards(mine, matching_router.clone()).await;
        }
        joined.store(true, std::sync::atomic::Ordering::Release);
        if let Some(m) = &matching {
            m.retain_partitions(|key| {
                view.owner(Role::Matching, &key.routing_key())
                    .is_some_and(|o| o.name == me)
            });
            // Partitions may have moved: the roots this node serves have their children
            // loaded on their (new) owners, so no stored backlog waits for a stray poll.
            if last_matching_version != Some(view.version()) {
                last_matching_version = Some(view.version());
                m.load_children_of_roots();
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            r = views.changed() => if r.is_err() { return },
            // The membership stopped when it ends; the views end then too.
            r = store_peers.changed(), if peers_open => if r.is_err() { peers_open = false },
        }
    }
}

async fn shard_ranges(persistence: &Persistence, shards: &[ShardId]) -> Vec<(ShardId, i64)> {
    let mut out = Vec::new();
    for id in shards {
        if let Ok(rec) = persistence.executions.get_or_create_shard(*id, &[]).await {
            out.push((*id, rec.range_id.0));
        }
    }
    out
}

/// Wait until every shard's range id moved past the one this node held (another node
/// acquired it), or the timeout.
async fn wait_for_handover(
    persistence: &Persistence,
    mut held: Vec<(ShardId, i64)>,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    while !held.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut still = Vec::new();
        for (id, range) in held {
            match persistence.executions.get_or_create_shard(id, &[]).await {
                Ok(rec) if rec.range_id.0 > range => {}
                _ => still.push((id, range)),
            }
        }
        held = still;
    }
    if !held.is_empty() {
        tracing::warn!(shards = ?held.iter().map(|(s, _)| s.0).collect::<Vec<_>>(), "no other node took these shards before the handover timeout");
    }
}

/// What readiness is computed from.
struct ReadinessInputs {
    persistence: Persistence,
    history: Option<Arc<HistoryEngine>>,
    views: watch::Receiver<Arc<ClusterView>>,
    me: String,
    num_shards: u32,
    joined: Arc<std::sync::atomic::AtomicBool>,
    /// See [`StoreFailures`].
    store_failure_window: Duration,
    /// Told whether this node reaches the store (see [`STORE_DOWN_AFTER`]); weak, so the
    /// membership can still be shut down on its own.
    membership: std::sync::Weak<Membership>,
}

/// A node whose store checks have all failed for this long announces it cannot reach the
/// store, and the others leave it out of the history and matching rings until it can
/// again: its shards go to nodes that can serve them (a node cut off from the store, or
/// healed but with its store connections not back yet).
const STORE_DOWN_AFTER: Duration = Duration::from_secs(3);

impl ReadinessInputs {
    /// Whether the store answers (`Err`: why not).
    async fn check_store(&self) -> Result<(), String> {
        let store = tokio::time::timeout(
            Duration::from_secs(2),
            self.persistence
                .executions
                .get_or_create_shard(ShardId(1), &[]),
        )
        .await;
        match store {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("the store does not answer: {e}")),
            Err(_) => Err("the store does not answer within 2 s".into()),
        }
    }

    /// Readiness from everything but the store.
    async fn check(&self) -> Readiness {
        if !self.joined.load(std::sync::atomic::Ordering::Acquire) {
            return Readiness::Starting("joining the cluster".into());
        }
        if let Some(h) = &self.history {
            let want: Vec<u32> = self.views.borrow().shards_of(&self.me, self.num_shards);
            let have: Vec<u32> = h.owned_shards().into_iter().map(|s| s.0).collect();
            if want != have {
                let running = want.iter().filter(|s| have.contains(s)).count();
                return Readiness::Starting(format!(
                    "running {running} of the {} shards the ring gives this node",
                    want.len()
                ));
            }
        }
        Readiness::Ready
    }
}

/// Every half second, compute readiness and publish it to the HTTP endpoint and to the gRPC
/// health service of every role this node runs.
async fn watch_readiness(
    inputs: ReadinessInputs,
    health: Arc<Health>,
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut last = None;
    let mut store_failures = StoreFailures::new(inputs.store_failure_window);
    let mut store_failing_since: Option<std::time::Instant> = None;
    loop {
        let store = inputs.check_store().await;
        let reachable = match &store {
            Ok(()) => {
                store_failing_since = None;
                Some(true)
            }
            Err(_) => {
                let since = *store_failing_since.get_or_insert_with(std::time::Instant::now);
                (since.elapsed() >= STORE_DOWN_AFTER).then_some(false)
            }
        };
        if let (Some(reachable), Some(m)) = (reachable, inputs.membership.upgrade()) {
            m.set_store_reachable(reachable).await;
        }
        let rest = inputs.check().await;
        let was_ready = last == Some(Readiness::Ready);
        let now = store_failures.judge(store, rest, was_ready, std::time::Instant::now());
        if last.as_ref() != Some(&now) {
            let status = if now == Readiness::Ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            for service in &services {
                reporter.set_service_status(*service, status).await;
            }
            match &now {
                Readiness::Ready => tracing::info!("node is ready"),
                Readiness::Starting(why) => tracing::info!(reason = %why, "node is not ready"),
                Readiness::Stopping => {}
            }
            health.set(now.clone());
            last = Some(now);
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}
