//! The shard controller: which shards this node owns and keeping it so. It acquires a
//! shard (a CAS on its range id that fences the previous owner, then starts its writer and
//! queues), releases it (its work ends before another node may run it), follows the set the
//! ring gives this node, and every check interval stops shards another node has taken and
//! re-acquires the ones that stopped.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use prost::Message as _;
use temper_client::MatchingClient;
use temper_persistence::ShardRecord;
use temper_types::{RangeId, ShardId, TaskIdAllocator};
use tokio::sync::mpsc;

use crate::{HistoryEngine, HistoryError, ShardContext, metrics, queues, writer};

/// How the shard controller of a cluster node keeps its shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardControl {
    /// How often it checks that its shards are still its own (one read of each shard's row
    /// in the store) and re-acquires stopped ones.
    pub check_interval: std::time::Duration,
    /// How long a shard that stopped waits before this node takes it again.
    pub reacquire_delay: std::time::Duration,
    /// A shard whose ownership could not be confirmed for this long (the store did not
    /// answer the checks) stops: its node may be cut off, and another node may own it by
    /// now. It is taken again once the store answers.
    pub unconfirmed_limit: std::time::Duration,
    /// The read lease: a shard answers reads from its cache for this long after the store
    /// last confirmed its ownership; past it, a read confirms ownership first. A node that
    /// takes a shard another node held makes its first commit only this long after its
    /// CAS, so a stale owner (its ring behind, or cut off from its peers) never answers a
    /// read from a cache that misses a commit. Longer than `check_interval`, whose checks
    /// renew it.
    pub read_lease: std::time::Duration,
}

impl ShardControl {
    /// Checks every `interval`; a stopped shard is taken again after three of them.
    pub fn every(interval: std::time::Duration) -> Self {
        Self {
            check_interval: interval,
            reacquire_delay: interval * 3,
            unconfirmed_limit: interval * 5,
            read_lease: interval * 3 / 2,
        }
    }
}

impl Default for ShardControl {
    fn default() -> Self {
        Self::every(std::time::Duration::from_secs(1))
    }
}

impl HistoryEngine {
    /// Acquire every shard (single-node mode) and start their queues; then keep them: a
    /// shard that stopped (its store calls failed, or another node fenced it) is acquired
    /// again.
    pub async fn acquire_all_shards(
        self: &Arc<Self>,
        matching: MatchingClient,
    ) -> Result<(), HistoryError> {
        let all: BTreeSet<ShardId> = (1..=self.config.num_shards).map(ShardId).collect();
        self.config.memory.cache_budget.expect_shards(all.len());
        *self.targets.write().expect("targets poisoned") = all.clone();
        *self.shard_control.write().expect("poisoned") = ShardControl::default();
        for id in all {
            self.acquire_shard(id, matching.clone()).await?;
        }
        self.keep_shards(matching, ShardControl::default());
        Ok(())
    }

    /// Cluster mode: own no shard until told which ([`Self::set_owned_shards`]), and from
    /// then on re-acquire any owned shard that stopped.
    pub fn start_shard_controller(
        self: &Arc<Self>,
        matching: MatchingClient,
        control: ShardControl,
    ) {
        *self.shard_control.write().expect("poisoned") = control;
        self.keep_shards(matching, control);
    }

    /// Own exactly `shards` from now on (the shards the ring gives this node): release the
    /// others at once (their writers stop; a write already in flight is still fenced by the
    /// range id) and acquire the missing ones, each by a CAS that fences the previous owner.
    /// A shard that cannot be acquired now is retried by the controller.
    pub async fn set_owned_shards(
        self: &Arc<Self>,
        shards: BTreeSet<ShardId>,
        matching: MatchingClient,
    ) {
        if self.tasks.token().is_cancelled() {
            return;
        }
        let _serial = self.control.lock().await;
        self.config.memory.cache_budget.expect_shards(shards.len());
        *self.targets.write().expect("targets poisoned") = shards.clone();
        let running: Vec<ShardId> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .keys()
            .copied()
            .collect();
        let leaving = running.into_iter().filter(|id| !shards.contains(id));
        futures::future::join_all(leaving.map(|id| self.release_shard(id))).await;
        if !self.may_acquire() {
            return;
        }
        let missing = self.stopped_shards();
        let acquired = futures::future::join_all(missing.into_iter().map(|id| {
            let matching = matching.clone();
            async move { (id, self.acquire_shard(id, matching).await) }
        }))
        .await;
        for (id, r) in acquired {
            if let Err(e) = r {
                tracing::warn!(shard = %id, error = %e, "acquiring shard failed; will retry");
            }
        }
    }

    /// Whether this node may take shards it does not run (it keeps and releases shards
    /// either way). A cluster node that cannot see a majority of the live nodes sets this
    /// to false: it may be the one cut off, and the others may own its shards by now.
    pub fn set_acquiring(&self, allowed: bool) {
        self.acquiring
            .store(allowed, std::sync::atomic::Ordering::Release);
    }

    fn may_acquire(&self) -> bool {
        self.acquiring.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Stop a shard this node no longer owns: calls for it answer "not owned" at once, so
    /// callers look for the new owner; its writer, queues and every task they started end
    /// before this returns, so none of them runs once another node may own the shard; then
    /// its cache goes away.
    pub async fn release_shard(&self, id: ShardId) {
        let running = self
            .shards
            .read()
            .expect("shard map poisoned")
            .get(&id)
            .cloned();
        if let Some(ctx) = running {
            let was_running = !ctx.cancel.is_cancelled();
            ctx.stop().await;
            if was_running {
                self.mark_released(&ctx).await;
            }
            let mut shards = self.shards.write().expect("shard map poisoned");
            // Unless the shard was acquired again meanwhile.
            if shards.get(&id).is_some_and(|s| Arc::ptr_eq(s, &ctx)) {
                shards.remove(&id);
            }
            drop(shards);
            tracing::info!(shard = %id, "released shard");
        }
        self.publish_gauges();
    }

    /// Write into the shard's row that nobody runs it now (its owner blank, under the
    /// range id this node held, by CAS): the next owner need not wait for this node's read
    /// lease. If the CAS fails another node took the shard already, and that is that.
    async fn mark_released(&self, ctx: &ShardContext) {
        let held = RangeId(ctx.range.load(std::sync::atomic::Ordering::Acquire));
        // The row keeps the queue positions the writer saved; only the owner changes.
        let current = match self
            .persistence
            .executions
            .get_or_create_shard(ctx.shard_id, &[])
            .await
        {
            Ok(rec) if rec.range_id == held => rec,
            _ => return,
        };
        let Ok(mut info) = temper_workflow::pb::ShardInfo::decode(current.info.as_slice()) else {
            return;
        };
        info.owner.clear();
        let record = ShardRecord {
            shard_id: ctx.shard_id,
            range_id: held,
            info: info.encode_to_vec(),
        };
        if let Err(e) = self
            .persistence
            .executions
            .update_shard(held, &record)
            .await
        {
            tracing::debug!(shard = %ctx.shard_id, error = %e, "marking the shard released failed");
        }
    }

    /// Set the node-wide gauges: shards running, and their queues' pending tasks.
    fn publish_gauges(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let shards = self.shards.read().expect("shard map poisoned");
        let (mut owned, mut transfer, mut timers) = (0usize, 0i64, 0i64);
        for s in shards.values().filter(|s| !s.cancel.is_cancelled()) {
            owned += 1;
            transfer += s.stats.transfer_pending.load(Relaxed);
            timers += s.stats.timers_pending.load(Relaxed);
        }
        ::metrics::gauge!(metrics::SHARDS_OWNED).set(owned as f64);
        ::metrics::gauge!(metrics::TRANSFER_PENDING).set(transfer as f64);
        ::metrics::gauge!(metrics::TIMER_PENDING).set(timers as f64);
        ::metrics::gauge!(metrics::CACHE_BYTES).set(self.config.memory.cache_budget.used() as f64);
    }

    /// Release every shard (graceful leave) and own none from now on; returns once the
    /// shards' work has ended.
    pub async fn release_all_shards(&self) {
        let _serial = self.control.lock().await;
        self.config.memory.cache_budget.expect_shards(0);
        self.targets.write().expect("targets poisoned").clear();
        let ids: Vec<ShardId> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .keys()
            .copied()
            .collect();
        futures::future::join_all(ids.into_iter().map(|id| self.release_shard(id))).await;
    }

    /// The shards this node runs now (acquired and not stopped), in order.
    pub fn owned_shards(&self) -> Vec<ShardId> {
        let shards = self.shards.read().expect("shard map poisoned");
        let mut ids: Vec<ShardId> = shards
            .iter()
            .filter(|(_, s)| !s.cancel.is_cancelled())
            .map(|(id, _)| *id)
            .collect();
        ids.sort();
        ids
    }

    /// Every [`ShardControl::check_interval`]: stop any shard another node has taken (its range id
    /// in the store moved past ours: this node's ring was behind, or it was paused), so it
    /// never answers from a stale cache; and acquire again the shards this node should own
    /// but does not run. A shard that stopped is taken again only after
    /// [`ShardControl::reacquire_delay`]: if another node took it, this node's ring is probably behind and
    /// will move the shard away within that time, instead of both nodes taking it in turn.
    fn keep_shards(self: &Arc<Self>, matching: MatchingClient, control: ShardControl) {
        let engine = Arc::downgrade(self);
        let cancel = self.tasks.token().clone();
        // Aware of cancellation, not dropped by it: a shard it is acquiring gets into the
        // shard map, where shutdown finds and stops it.
        self.tasks.spawn_aware("shard_controller", async move {
            let mut tick = tokio::time::interval(control.check_interval);
            let mut stopped_since: HashMap<ShardId, tokio::time::Instant> = HashMap::new();
            loop {
                tokio::select! {
                    _ = cancel.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let Some(engine) = engine.upgrade() else { return };
                engine.stop_stale_shards(control.unconfirmed_limit).await;
                engine.publish_gauges();
                let _serial = engine.control.lock().await;
                let now = tokio::time::Instant::now();
                let stopped = if engine.may_acquire() {
                    engine.stopped_shards()
                } else {
                    Vec::new()
                };
                stopped_since.retain(|id, _| stopped.contains(id));
                for id in stopped {
                    let was_running = engine
                        .shards
                        .read()
                        .expect("shard map poisoned")
                        .contains_key(&id);
                    if was_running {
                        let since = *stopped_since.entry(id).or_insert(now);
                        if now.duration_since(since) < control.reacquire_delay {
                            continue;
                        }
                    }
                    match engine.acquire_shard(id, matching.clone()).await {
                        Ok(()) => {
                            stopped_since.remove(&id);
                            tracing::info!(shard = %id, "re-acquired stopped shard");
                        }
                        Err(e) => tracing::warn!(shard = %id, error = %e, "re-acquiring shard failed; will retry"),
                    }
                }
            }
        });
    }

    /// Whether `store`, a range id the store showed that differs from the one `ctx` held
    /// when the read was sent, is this node's own: the shard writer renews the range id
    /// itself every 2^20 task ids, and a renewal that lands during the read shows as a newer
    /// range id (a one-hour soak stopped a single node's shard that way). It is ours if `ctx`
    /// holds it now, or holds what a second read shows (the renewal's CAS lands just before
    /// the writer stores the new range id).
    async fn renewed_here(&self, ctx: &ShardContext, store: i64) -> bool {
        use std::sync::atomic::Ordering::Acquire;
        if ctx.range.load(Acquire) == store {
            return true;
        }
        match self
            .persistence
            .executions
            .get_or_create_shard(ctx.shard_id, &[])
            .await
        {
            Ok(rec) => rec.range_id.0 == ctx.range.load(Acquire),
            Err(_) => false,
        }
    }

    /// Stop every running shard whose range id in the store is no longer the one it holds.
    pub(crate) async fn stop_stale_shards(&self, unconfirmed_limit: std::time::Duration) {
        let running: Vec<Arc<ShardContext>> = self
            .shards
            .read()
            .expect("shard map poisoned")
            .values()
            .filter(|s| !s.cancel.is_cancelled())
            .cloned()
            .collect();
        for ctx in running {
            let held = ctx.range.load(std::sync::atomic::Ordering::Acquire);
            let sent = tokio::time::Instant::now();
            match self
                .persistence
                .executions
                .get_or_create_shard(ctx.shard_id, &[])
                .await
            {
                Ok(rec)
                    if rec.range_id.0 != held && !self.renewed_here(&ctx, rec.range_id.0).await =>
                {
                    tracing::warn!(shard = %ctx.shard_id, held, store = rec.range_id.0,
                        "another node took this shard; stopping it");
                    ctx.stop().await;
                }
                Ok(_) => ctx.confirmed(sent),
                Err(e) if ctx.unconfirmed_for() >= unconfirmed_limit => {
                    tracing::warn!(shard = %ctx.shard_id, error = %e,
                        unconfirmed_s = ctx.unconfirmed_for().as_secs_f64(),
                        "shard ownership unconfirmed (the store does not answer); stopping it");
                    ctx.cancel.cancel();
                }
                Err(e) => {
                    tracing::debug!(shard = %ctx.shard_id, error = %e, "checking shard ownership failed")
                }
            }
        }
    }

    /// Shards this node should own but does not run.
    fn stopped_shards(&self) -> Vec<ShardId> {
        if self.tasks.token().is_cancelled() {
            return Vec::new();
        }
        let targets = self.targets.read().expect("targets poisoned").clone();
        let shards = self.shards.read().expect("shard map poisoned");
        targets
            .into_iter()
            .filter(|id| shards.get(id).is_none_or(|s| s.cancel.is_cancelled()))
            .collect()
    }

    /// Take ownership of one shard: bump its range id by CAS, then load and run its queues.
    /// A context this node still has for the shard (stopped, or running with a range id
    /// about to be stale) ends all its work first, so it never runs beside the new one.
    pub async fn acquire_shard(
        &self,
        shard_id: ShardId,
        matching: MatchingClient,
    ) -> Result<(), HistoryError> {
        let previous = self
            .shards
            .read()
            .expect("shard map poisoned")
            .get(&shard_id)
            .cloned();
        if let Some(old) = previous {
            old.stop().await;
        }
        let info = prost::Message::encode_to_vec(&temper_workflow::pb::ShardInfo {
            shard_id: shard_id.0 as i32,
            owner: self.config.owner.clone(),
            ..Default::default()
        });
        let rec = self
            .persistence
            .executions
            .get_or_create_shard(shard_id, &info)
            .await?;
        let new_range = RangeId(rec.range_id.0 + 1);
        let control = *self.shard_control.read().expect("poisoned");
        // Another node held the shard (its row names another owner; one that released it
        // left the owner blank): it may still answer reads from its cache until its read
        // lease runs out, so commit nothing before.
        let previous_owner = temper_workflow::pb::ShardInfo::decode(rec.info.as_slice())
            .map(|i| i.owner)
            .unwrap_or_default();
        let taken_from_another = !previous_owner.is_empty() && previous_owner != self.config.owner;
        let sent = tokio::time::Instant::now();
        self.persistence
            .executions
            .update_shard(
                rec.range_id,
                &ShardRecord {
                    shard_id,
                    range_id: new_range,
                    info: info.clone(),
                },
            )
            .await?;
        let tasks = self.tasks.child(tracing::debug_span!(
            parent: self.tasks.span(),
            "shard",
            shard = %shard_id
        ));
        let cancel = tasks.token().clone();
        let (sinks, receivers) = queues::queue_channels();
        let (tx, rx) = mpsc::channel(4096);
        let ctx = Arc::new(ShardContext::new(
            shard_id,
            self.persistence.clone(),
            self.config.limits.clone(),
            self.clock.clone(),
            tx,
            self.retention.clone(),
            tasks,
            matching.clone(),
            &self.config.memory,
            sent,
            control.read_lease,
        ));
        ctx.range
            .store(new_range.0, std::sync::atomic::Ordering::Release);
        let w = writer::Writer {
            shard_id,
            range: ctx.range.clone(),
            persistence: self.persistence.clone(),
            ids: TaskIdAllocator::new(new_range),
            info,
            sinks: Arc::new(sinks),
            cancel: cancel.clone(),
            not_before: taken_from_another.then(|| sent + control.read_lease),
        };
        if taken_from_another {
            tracing::info!(shard = %shard_id, previous_owner, lease_ms = control.read_lease.as_millis() as u64,
                "taken from another node: first commit after its read lease");
        }
        ctx.tasks.spawn_aware("shard_writer", w.run(rx));
        let peers = queues::Peers {
            matching,
            engine: self.me.clone(),
        };
        ctx.tasks.spawn(
            "transfer_queue",
            queues::run_transfer(ctx.clone(), peers.clone(), receivers.transfer),
        );
        ctx.tasks.spawn(
            "timer_queue",
            queues::run_timers(ctx.clone(), peers, receivers.timer),
        );
        let previous = self
            .shards
            .write()
            .expect("shard map poisoned")
            .insert(shard_id, ctx);
        if let Some(old) = previous {
            // Acquired concurrently by another call (not under the control lock): its range
            // id is stale now; stop it rather than let it fail write by write.
            old.stop().await;
        }
        tracing::info!(shard = %shard_id, range = %new_range, "acquired shard");
        ::metrics::counter!(metrics::SHARD_ACQUISITIONS).increment(1);
        self.publish_gauges();
        Ok(())
    }
}
