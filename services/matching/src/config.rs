//! Matching's tunables. Defaults are the Temporal server's values.

use std::time::Duration;

use temper_types::PartitionConfig;

/// How matching behaves; every field has a default (see [`MatchingConfig::default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchingConfig {
    /// How long a poll waits for a task when the caller passes no `long_poll_timeout_ms`.
    /// Default 60 s (SDKs give up after 70 s).
    pub default_long_poll_timeout: Duration,
    /// A sticky queue with no poll for this long has no live worker: adding a workflow task
    /// to it fails with `sticky worker unavailable`, and history uses the normal queue.
    /// Default 10 s.
    pub sticky_poller_unavailable_window: Duration,
    /// Pollers not seen for this long are left out of DescribeTaskQueue. Default 5 min.
    pub poller_history_ttl: Duration,
    /// Backlog tasks read from the store per page, and about the most tasks of one priority
    /// level a partition holds in memory (the rest wait in the store). Default 1000.
    pub backlog_read_batch_size: usize,
    /// Most tasks written to the store in one call; adds that arrive while a write is in
    /// flight are batched into the next one. Default 100.
    pub max_write_batch_size: usize,
    /// A queue with no poll, add or pending work for this long is unloaded from memory (its
    /// backlog stays in the store). Default 5 min.
    pub idle_queue_ttl: Duration,
    /// After a failed backlog read, pollers wait this long before reading again. Default 1 s.
    pub backlog_read_retry: Duration,
    /// Confirm each loaded normal partition's lease this often, so a partition another node
    /// wrote to under a stolen lease is reloaded (see `TaskQueue::check_lease_every`). Unset
    /// (the default, one process owns every partition): no checks. Clusters use 5 s.
    pub lease_check_interval: Option<Duration>,
    /// A query no poller took by a second before its deadline fails at once with "no poller
    /// seen for task queue recently" if nobody polled the queue for this long. Default 20 s.
    pub query_poller_unavailable_window: Duration,
    /// How many partitions each normal task queue has. Requests name their partition
    /// explicitly (a router picks one); the engine needs the count to describe a whole queue
    /// from its root. Default: 1 partition.
    pub partitions: PartitionConfig,
    /// Most polls one partition forwards to the root at a time. Default 1 (Temporal's
    /// `ForwarderMaxOutstandingPolls`).
    pub max_forwarded_polls: usize,
    /// Most tasks one partition offers to the root at a time (new tasks and backlog tasks).
    /// Default 1 (Temporal's `ForwarderMaxOutstandingTasks`).
    pub max_forwarded_tasks: usize,
    /// After a forwarded poll failed, the poll waits locally this long before forwarding
    /// again; backlog offers the root refused back off up to this long.
    /// Default 1 s.
    pub forward_retry: Duration,
}

impl Default for MatchingConfig {
    fn default() -> Self {
        Self {
            default_long_poll_timeout: Duration::from_secs(60),
            sticky_poller_unavailable_window: Duration::from_secs(10),
            poller_history_ttl: Duration::from_secs(5 * 60),
            backlog_read_batch_size: 1000,
            max_write_batch_size: 100,
            idle_queue_ttl: Duration::from_secs(5 * 60),
            backlog_read_retry: Duration::from_secs(1),
            query_poller_unavailable_window: Duration::from_secs(20),
            lease_check_interval: None,
            partitions: PartitionConfig::default(),
            max_forwarded_polls: 1,
            max_forwarded_tasks: 1,
            forward_retry: Duration::from_secs(1),
        }
    }
}
