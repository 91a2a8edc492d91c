//! What DescribeTaskQueue reports about one queue.

use std::collections::HashMap;
use std::time::Duration;

use temper_proto::temporal::api::taskqueue::v1::{
    PollerInfo, TaskIdBlock, TaskQueueStats, TaskQueueStatus,
};
use temper_types::TASK_ID_SEQ_BITS;
use tokio::time::Instant;

use super::TaskQueue;
use crate::pollers::DEFAULT_TASK_DISPATCH_RPS;
use crate::priority::LEVELS;

impl TaskQueue {
    /// Pollers seen within the poller ttl, most recent first.
    pub(crate) fn pollers(&self) -> Vec<PollerInfo> {
        self.lock().pollers.list(Instant::now())
    }

    pub(crate) fn backlog_count(&self) -> i64 {
        let st = self.lock();
        match &st.backlog {
            Some(b) => b.count_hint(),
            None => st.ready.len() as i64,
        }
    }

    /// Temporal's (deprecated but still shown by the CLI) `TaskQueueStatus`.
    pub(crate) fn status(&self) -> TaskQueueStatus {
        let backlog_count_hint = self.backlog_count();
        let st = self.lock();
        let rate_per_second = st
            .pollers
            .latest_rate_limit()
            .unwrap_or(DEFAULT_TASK_DISPATCH_RPS);
        let (read_level, ack_level, task_id_block) = match &st.backlog {
            Some(b) => {
                let start = b.range_id().0 << TASK_ID_SEQ_BITS;
                let block = TaskIdBlock {
                    start_id: start,
                    end_id: start | ((1 << TASK_ID_SEQ_BITS) - 1),
                };
                (b.read_level(), b.ack_level_hint(), Some(block))
            }
            None => (0, 0, None),
        };
        TaskQueueStatus {
            backlog_count_hint,
            read_level,
            ack_level,
            rate_per_second,
            task_id_block,
        }
    }

    /// Approximate backlog size and age, and add / dispatch rates over the last 30 s.
    pub(crate) fn stats(&self) -> TaskQueueStats {
        let backlog_count = self.backlog_count();
        let wall = self.ctx.clock.now();
        let now = Instant::now();
        let mut st = self.lock();
        let age = st
            .ready
            .oldest_create_time()
            .and_then(|t| wall.duration_since(t).ok())
            .unwrap_or(Duration::ZERO);
        TaskQueueStats {
            approximate_backlog_count: backlog_count,
            approximate_backlog_age: temper_proto::wkt::Duration::try_from(age).ok(),
            tasks_add_rate: st.adds.per_second(now),
            tasks_dispatch_rate: st.dispatches.per_second(now),
            rate_limiting_active: false,
        }
    }

    /// Backlog size and age per priority key in use (Temporal's `stats_by_priority_key`).
    /// Rates are not kept per level and stay zero.
    pub(crate) fn stats_by_priority_key(&self) -> HashMap<i32, TaskQueueStats> {
        let wall = self.ctx.clock.now();
        let st = self.lock();
        (1..=LEVELS)
            .filter_map(|level| {
                let count = match &st.backlog {
                    Some(b) => b.level_count_hint(level),
                    None => st.ready.level_len(level) as i64,
                };
                (count > 0).then(|| {
                    let age = st
                        .ready
                        .level_next_create_time(level)
                        .and_then(|t| wall.duration_since(t).ok())
                        .unwrap_or(Duration::ZERO);
                    let stats = TaskQueueStats {
                        approximate_backlog_count: count,
                        approximate_backlog_age: temper_proto::wkt::Duration::try_from(age).ok(),
                        ..Default::default()
                    };
                    (i32::from(level), stats)
                })
            })
            .collect()
    }
}
