//! [`Membership`]: the async shell. It runs chitchat (gossip plus a phi-accrual failure
//! detector), feeds what chitchat sees to the sans-IO [`Tracker`] every tick, publishes the
//! views it returns, and keeps the seeds fresh (DNS, the store's membership table).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chitchat::transport::{Socket, Transport};
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use temper_persistence::MembershipStore;
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::member::{KEY_LEAVING, KEY_STORE, normalize_roles};
use crate::quorum::{StoreLiveness, StorePeers};
use crate::tracker::{Observation, Tracker, TrackerSettings};
use crate::{ClusterView, Member, MembershipConfig, MembershipError, seeds, transport};

/// This node's membership in the cluster: gossip running in the background and the latest
/// [`ClusterView`]. Dropping it stops gossip like [`Membership::shutdown`] (without waiting).
pub struct Membership {
    me: Member,
    config: MembershipConfig,
    views: watch::Receiver<Arc<ClusterView>>,
    /// What the store's membership table shows alive, as last read.
    store_peers: watch::Receiver<StorePeers>,
    chitchat: Arc<Mutex<Chitchat>>,
    handle: Option<Arc<ChitchatHandle>>,
    cancel: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("me", &self.me)
            .field("version", &self.views.borrow().version())
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// Bind the gossip socket (UDP), announce this node, and start gossiping. The view holds
    /// this node from the start, so a single node works alone.
    ///
    /// With a `store`, the node heartbeats its rows in the membership table every
    /// `seed_refresh` (ttl three times that) and gossips with the addresses of the other
    /// live rows; a store error only costs those seeds.
    pub async fn start(
        config: MembershipConfig,
        store: Option<Arc<dyn MembershipStore>>,
    ) -> Result<Membership, MembershipError> {
        config.check().map_err(MembershipError::Config)?;
        let socket = transport::bind(config.gossip_listen).await?;
        Self::start_on(config, store, socket).await
    }

    /// [`Self::start`], gossiping over `transport` instead of UDP: tests run several nodes
    /// in one process on chitchat's in-memory [`crate::ChannelTransport`], whose links they
    /// can cut and heal. Addresses are the transport's (`gossip_listen` is opened on it).
    pub async fn start_with_transport(
        config: MembershipConfig,
        store: Option<Arc<dyn MembershipStore>>,
        transport: &dyn Transport,
    ) -> Result<Membership, MembershipError> {
        config.check().map_err(MembershipError::Config)?;
        let socket = crate::transport::open(transport, config.gossip_listen).await?;
        Self::start_on(config, store, socket).await
    }

    async fn start_on(
        config: MembershipConfig,
        store: Option<Arc<dyn MembershipStore>>,
        socket: Box<dyn Socket>,
    ) -> Result<Membership, MembershipError> {
        let bound = socket
            .local_addr()
            .map_err(|e| MembershipError::Gossip(e.to_string()))?;
        let mut advertise = config.gossip_advertise;
        if advertise.port() == 0 {
            advertise.set_port(bound.port());
        }
        let me = Member {
            name: config.node_name.clone(),
            generation: next_generation(),
            roles: normalize_roles(&config.roles),
            grpc_address: config.grpc_address.clone(),
            gossip_address: advertise,
            leaving: false,
            store_down: false,
        };

        let mut seed_nodes = config.seeds.clone();
        let mut liveness = StoreLiveness::new(liveness_window(&config));
        let mut first_peers = StorePeers::NoStore;
        if let Some(store) = &store {
            if let Err(e) = seeds::heartbeat(store, &me, row_ttl(&config)).await {
                tracing::warn!(error = %e, "cannot write this node's membership row");
            }
            first_peers = StorePeers::Unknown;
            match store.live_members().await {
                Ok(rows) => {
                    seed_nodes.extend(seeds::addresses(&rows, &me));
                    liveness.observe(Instant::now(), &rows);
                    first_peers = liveness.alive(Instant::now());
                }
                Err(e) => tracing::warn!(error = %e, "cannot read the membership table"),
            }
        }
        let (store_peers_tx, store_peers) = watch::channel(first_peers);

        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(me.name.as_str(), me.generation, advertise),
            cluster_id: config.cluster_id.clone(),
            gossip_interval: config.gossip_interval,
            listen_addr: bound,
            seed_nodes,
            failure_detector_config: failure_detector(&config),
            marked_for_deletion_grace_period: Duration::from_secs(3_600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(
            chitchat_config,
            me.gossip_key_values(),
            &transport::PreBound::new(socket),
        )
        .await
        .map_err(|e| MembershipError::Gossip(format!("{e:#}")))?;
        let chitchat = handle.chitchat();
        let handle = Arc::new(handle);

        let settings = TrackerSettings {
            dead_after: config.dead_after,
            debounce: config.ring_debounce,
            virtual_nodes: config.virtual_nodes,
        };
        let tracker = Tracker::new(me.clone(), settings, now());
        let (views_tx, views) = watch::channel(tracker.view());
        let cancel = CancellationToken::new();
        let span = tracing::info_span!("membership", node = %me.name);

        let mut tasks = vec![tokio::spawn(
            publish_views(
                chitchat.clone(),
                tracker,
                views_tx,
                tick(&config),
                cancel.clone(),
            )
            .instrument(tracing::info_span!(parent: &span, "publish_views")),
        )];
        if store.is_some() || !config.seeds.is_empty() {
            tasks.push(tokio::spawn(
                refresh_seeds(SeedRefresh {
                    handle: handle.clone(),
                    chitchat: chitchat.clone(),
                    me: me.clone(),
                    seeds: config.seeds.clone(),
                    store,
                    every: config.seed_refresh,
                    ttl: row_ttl(&config),
                    liveness,
                    store_peers: store_peers_tx,
                    cancel: cancel.clone(),
                })
                .instrument(tracing::info_span!(parent: &span, "refresh_seeds")),
            ));
        }
        tracing::info!(
            parent: &span,
            gossip = %advertise,
            generation = me.generation,
            "membership started"
        );
        Ok(Membership {
            me,
            config,
            views,
            store_peers,
            chitchat,
            handle: Some(handle),
            cancel,
            tasks,
        })
    }

    /// This node, as announced.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// The latest published view.
    pub fn view(&self) -> Arc<ClusterView> {
        self.views.borrow().clone()
    }

    /// Every published view from now on (and the current one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterView>> {
        self.views.clone()
    }

    /// What the store's membership table shows alive, now and from now on (for
    /// [`crate::Quorum`]). Read every `seed_refresh`.
    pub fn store_peers(&self) -> watch::Receiver<StorePeers> {
        self.store_peers.clone()
    }

    /// Announce whether this node can reach the store: while it cannot, the others leave it
    /// out of the history and matching rings (its shards and partitions go to nodes that
    /// can serve them), and take it back once it says it can again.
    pub async fn set_store_reachable(&self, reachable: bool) {
        let value = if reachable { "ok" } else { "down" };
        let mut chitchat = self.chitchat.lock().await;
        let state = chitchat.self_node_state();
        if state.get(KEY_STORE) != Some(value) {
            state.set(KEY_STORE, value);
            tracing::info!(node = %self.me.name, store = value, "announced whether this node reaches the store");
        }
    }

    /// Announce a graceful leave: every node drops us from its rings at once (no
    /// failure-detection wait). Keeps gossiping until the announcement has spread (bounded,
    /// ~1 s), then returns. The node stays listed (as leaving) until it stops.
    pub async fn leave(&self) {
        self.chitchat
            .lock()
            .await
            .self_node_state()
            .set(KEY_LEAVING, "true");
        let Some(handle) = &self.handle else { return };
        // A push to every live peer, repeated a few times (UDP may drop one): each one is
        // a round trip that carries our new key-value to that peer.
        let until = tokio::time::Instant::now()
            + (self.config.gossip_interval * 5)
                .clamp(Duration::from_millis(300), Duration::from_secs(1));
        let pause = (self.config.gossip_interval / 2).max(Duration::from_millis(10));
        loop {
            for peer in self.live_peers().await {
                // Fails only once chitchat stopped; then there is nobody to tell.
                let _ = handle.gossip(peer);
            }
            let now = tokio::time::Instant::now();
            if now >= until {
                break;
            }
            tokio::time::sleep(pause.min(until - now)).await;
        }
        tracing::info!(node = %self.me.name, "announced a graceful leave");
    }

    /// Stop gossiping (without [`Self::leave`]: peers will detect us as dead).
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        for task in std::mem::take(&mut self.tasks) {
            // A task that panicked has nothing left to clean up.
            let _ = task.await;
        }
        if let Some(handle) = self.handle.take() {
            match Arc::try_unwrap(handle) {
                Ok(handle) => {
                    if let Err(e) = handle.shutdown().await {
                        tracing::warn!(error = %e, "gossip stopped with an error");
                    }
                }
                Err(shared) => shared.abort(),
            }
        }
    }

    async fn live_peers(&self) -> Vec<SocketAddr> {
        let chitchat = self.chitchat.lock().await;
        let me = chitchat.self_chitchat_id().clone();
        chitchat
            .live_nodes()
            .filter(|id| **id != me)
            .map(|id| id.gossip_advertise_addr)
            .collect()
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.cancel.cancel();
        for task in &self.tasks {
            task.abort();
        }
        if let Some(handle) = &self.handle {
            handle.abort();
        }
    }
}

/// The tracker's clock: tokio's, so that tests on paused time see members time out as
/// chitchat's failure detector (also on tokio's clock) does. The same as
/// `Instant::now()` otherwise.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Start time in ms, strictly increasing within the process (two starts in one
/// millisecond, as tests do, still get distinct generations).
fn next_generation() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = u64::try_from(temper_types::wall_clock_millis()).unwrap_or(0);
    let mut last = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(last.saturating_add(1));
        match LAST.compare_exchange_weak(last, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(actual) => last = actual,
        }
    }
}

/// chitchat's phi detector as a backstop behind the tracker's `dead_after`.
///
/// chitchat's phi is `silence / mean heartbeat interval`, so a node is declared dead after
/// `phi_threshold * mean interval` of silence. Heartbeats arrive at least once per gossip
/// interval (more often in practice: every message carries them), so with
/// `phi_threshold = 3 * dead_after / gossip_interval` chitchat gives up on a node no
/// sooner than about `dead_after` even when heartbeats arrive three times per interval;
/// the tracker's exact `dead_after` rule decides first.
fn failure_detector(config: &MembershipConfig) -> FailureDetectorConfig {
    let ratio = config.dead_after.as_secs_f64() / config.gossip_interval.as_secs_f64();
    FailureDetectorConfig {
        phi_threshold: (3.0 * ratio).max(8.0),
        sampling_window_size: 1_000,
        // Longer gaps are outages, not samples of the heartbeat rate.
        max_interval: config.dead_after,
        // The prior for the first intervals: one per gossip round.
        initial_interval: config.gossip_interval,
        // How long a dead node's state is kept (then garbage collected).
        dead_node_grace_period: (config.dead_after * 100).max(Duration::from_secs(600)),
    }
}

/// How often the tracker looks at chitchat's state.
fn tick(config: &MembershipConfig) -> Duration {
    (config.gossip_interval / 2).clamp(Duration::from_millis(20), Duration::from_millis(250))
}

/// A node whose row's heartbeat has not moved for this long is taken for gone (two
/// refresh periods: its row is refreshed every one).
fn liveness_window(config: &MembershipConfig) -> Duration {
    config.seed_refresh * 2
}

/// A membership row lives three refresh periods.
fn row_ttl(config: &MembershipConfig) -> Duration {
    config.seed_refresh * 3
}

/// What chitchat considers live, for the tracker.
fn observations(chitchat: &Chitchat) -> Vec<Observation> {
    chitchat
        .live_nodes()
        .filter_map(|id| {
            let state = chitchat.node_state(id)?;
            Some(Observation {
                name: id.node_id.to_string(),
                generation: id.generation_id,
                gossip_address: id.gossip_advertise_addr,
                heartbeat: state.heartbeat().into(),
                key_values: state
                    .key_values()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
            })
        })
        .collect()
}

async fn publish_views(
    chitchat: Arc<Mutex<Chitchat>>,
    mut tracker: Tracker,
    views: watch::Sender<Arc<ClusterView>>,
    tick: Duration,
    cancel: CancellationToken,
) {
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let live = observations(&*chitchat.lock().await);
        if let Some(view) = tracker.observe(now(), &live) {
            tracing::info!(
                version = view.version(),
                members = ?view.members().iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
                "cluster view changed"
            );
            views.send_replace(view);
        }
    }
}

struct SeedRefresh {
    handle: Arc<ChitchatHandle>,
    chitchat: Arc<Mutex<Chitchat>>,
    me: Member,
    seeds: Vec<String>,
    store: Option<Arc<dyn MembershipStore>>,
    every: Duration,
    ttl: Duration,
    liveness: StoreLiveness,
    store_peers: watch::Sender<StorePeers>,
    cancel: CancellationToken,
}

/// Every `every`: heartbeat our rows, then gossip with every seed (configured, re-resolved,
/// or from the table) that is not a live member yet. chitchat itself re-resolves DNS seeds
/// only every minute; this closes a split cluster within seconds.
async fn refresh_seeds(mut r: SeedRefresh) {
    let start = tokio::time::Instant::now() + r.every;
    let mut interval = tokio::time::interval_at(start, r.every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            () = r.cancel.cancelled() => return,
            _ = interval.tick() => {}
        }
        let mut targets = r.seeds.clone();
        if let Some(store) = &r.store {
            if let Err(e) = seeds::heartbeat(store, &r.me, r.ttl).await {
                tracing::warn!(error = %e, "cannot refresh this node's membership row");
            }
            let peers = match store.live_members().await {
                Ok(rows) => {
                    targets.extend(seeds::addresses(&rows, &r.me));
                    r.liveness.observe(Instant::now(), &rows);
                    r.liveness.alive(Instant::now())
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the membership table");
                    StorePeers::Unknown
                }
            };
            r.store_peers.send_if_modified(|old| {
                let changed = *old != peers;
                *old = peers;
                changed
            });
        }
        let addresses = seeds::resolve(&targets, r.every).await;
        let live: HashSet<SocketAddr> = {
            let chitchat = r.chitchat.lock().await;
            chitchat
                .live_nodes()
                .map(|id| id.gossip_advertise_addr)
                .collect()
        };
        for addr in addresses {
            if addr != r.me.gossip_address && !live.contains(&addr) {
                tracing::debug!(seed = %addr, "gossiping with a seed that is not a member yet");
                if r.handle.gossip(addr).is_err() {
                    return; // chitchat stopped
                }
            }
        }
    }
}
