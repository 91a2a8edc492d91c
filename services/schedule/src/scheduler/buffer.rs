//! The buffer and the overlap policies (Temporal's `ProcessBuffer` and `processBuffer`).
//!
//! With nothing running, the first start that is not ALLOW_ALL starts; every later one
//! overlaps it and its policy decides: SKIP drops it (`overlap_skipped`), BUFFER_ONE keeps
//! it only if the buffer is otherwise empty, BUFFER_ALL keeps it, CANCEL_OTHER and
//! TERMINATE_OTHER keep it and cancel / terminate the running workflows (or, when nothing
//! is actually running yet, replace the start chosen in this pass). ALLOW_ALL starts all
//! start at once, untracked (they never block others and are not in `running_workflows`),
//! unless a cancel or terminate is under way. A policy left unspecified on a buffered start
//! resolves to the schedule's policy when the buffer is processed, so an update changes it.

use temper_proto::persistence::v1::{SchedulerBufferedStart, SchedulerPendingStart};
use temporalio_protos::temporal::api::common::v1::WorkflowExecution;
use temporalio_protos::temporal::api::enums::v1::ScheduleOverlapPolicy;

use super::process::Iteration;
use super::start;

/// What the overlap policies decide for the current buffer.
#[derive(Debug, Default)]
struct Decision {
    /// ALLOW_ALL starts: all of them now.
    overlapping: Vec<SchedulerBufferedStart>,
    /// The one start that may run alone now.
    non_overlapping: Option<SchedulerBufferedStart>,
    new_buffer: Vec<SchedulerBufferedStart>,
    need_cancel: bool,
    need_terminate: bool,
    overlap_skipped: i64,
}

fn decide(
    buffer: Vec<SchedulerBufferedStart>,
    is_running: bool,
    resolve: impl Fn(i32) -> ScheduleOverlapPolicy,
) -> Decision {
    let mut d = Decision::default();
    for start in buffer {
        let policy = resolve(start.overlap_policy);
        if policy == ScheduleOverlapPolicy::AllowAll {
            d.overlapping.push(start);
            continue;
        }
        if !is_running && d.non_overlapping.is_none() {
            d.non_overlapping = Some(start);
            continue;
        }
        match policy {
            ScheduleOverlapPolicy::BufferOne => {
                if d.new_buffer.is_empty() {
                    d.new_buffer.push(start);
                } else {
                    d.overlap_skipped += 1;
                }
            }
            ScheduleOverlapPolicy::BufferAll => d.new_buffer.push(start),
            ScheduleOverlapPolicy::CancelOther | ScheduleOverlapPolicy::TerminateOther => {
                if is_running {
                    if policy == ScheduleOverlapPolicy::CancelOther {
                        d.need_cancel = true;
                    } else {
                        d.need_terminate = true;
                    }
                    d.new_buffer.push(start);
                } else {
                    // Only the start chosen in this pass would run: this one replaces it.
                    d.non_overlapping = Some(start);
                }
            }
            // SKIP (and anything unknown, which validation keeps out).
            _ => d.overlap_skipped += 1,
        }
    }
    if d.need_cancel || d.need_terminate {
        // They would be cancelled or terminated right away too.
        d.overlapping.clear();
    }
    d
}

impl Iteration<'_> {
    /// Whether a run the schedule tracks is open: a started one not yet closed, or a
    /// non-overlapping start issued but not yet reported.
    fn is_running(&self) -> bool {
        let running = self
            .state
            .info
            .as_ref()
            .is_some_and(|i| !i.running_workflows.is_empty());
        running || self.state.pending_starts.iter().any(|p| p.tracked)
    }

    /// One pass over the buffer; true if another pass may start more (Temporal's
    /// `processBuffer`).
    pub(super) fn process_buffer(&mut self) -> bool {
        if self.state.buffered_starts.is_empty() {
            return false;
        }
        let is_running = self.is_running();
        let buffer = std::mem::take(&mut self.state.buffered_starts);
        let decision = decide(buffer, is_running, |p| self.resolve_overlap_policy(p));
        self.state.buffered_starts = decision.new_buffer;
        self.info_mut().overlap_skipped += decision.overlap_skipped;

        let mut try_again = false;
        let non_overlapping = decision.non_overlapping.map(|s| (s, true));
        let starts = decision
            .overlapping
            .into_iter()
            .map(|s| (s, false))
            .chain(non_overlapping);
        for (buffered, tracked) in starts {
            if !self.can_take_scheduled_action(buffered.manual, true) {
                // Paused or out of actions: the start is dropped; look at the rest again.
                try_again = true;
                continue;
            }
            self.issue_start(buffered, tracked);
        }

        let running: Vec<WorkflowExecution> = self
            .state
            .info
            .as_ref()
            .map(|i| i.running_workflows.clone())
            .unwrap_or_default();
        let target = if decision.need_terminate {
            Some(&mut self.effects.terminates)
        } else if decision.need_cancel {
            Some(&mut self.effects.cancels)
        } else {
            None
        };
        if let Some(target) = target {
            for ex in running {
                if !target.contains(&ex) {
                    target.push(ex);
                }
            }
        }
        try_again
    }

    fn issue_start(&mut self, buffered: SchedulerBufferedStart, tracked: bool) {
        let request_id = start::request_id(self.state);
        self.state.next_request_seq += 1;
        let start = start::build(self, &buffered, request_id.clone());
        self.state.pending_starts.push(SchedulerPendingStart {
            request_id,
            workflow_id: start.request.workflow_id.clone(),
            nominal_time: buffered.nominal_time,
            actual_time: buffered.actual_time,
            overlap_policy: buffered.overlap_policy,
            manual: buffered.manual,
            backfill: buffered.backfill,
            tracked,
        });
        self.effects.starts.push(start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start(policy: ScheduleOverlapPolicy, n: i64) -> SchedulerBufferedStart {
        SchedulerBufferedStart {
            nominal_time: Some(prost_types::Timestamp {
                seconds: n,
                nanos: 0,
            }),
            overlap_policy: policy as i32,
            ..Default::default()
        }
    }

    fn ids(v: &[SchedulerBufferedStart]) -> Vec<i64> {
        v.iter()
            .map(|s| s.nominal_time.as_ref().map_or(0, |t| t.seconds))
            .collect()
    }

    fn run(policies: &[ScheduleOverlapPolicy], running: bool) -> Decision {
        let buffer = policies
            .iter()
            .enumerate()
            .map(|(i, p)| start(*p, i as i64 + 1))
            .collect();
        decide(buffer, running, |p| {
            ScheduleOverlapPolicy::try_from(p).unwrap_or_default()
        })
    }

    use ScheduleOverlapPolicy::*;

    #[test]
    fn nothing_running_starts_the_first_and_applies_the_policy_to_the_rest() {
        let d = run(&[Skip, Skip, Skip], false);
        assert_eq!(
            d.non_overlapping.map(|s| s.nominal_time.map(|t| t.seconds)),
            Some(Some(1))
        );
        assert!(d.new_buffer.is_empty());
        assert_eq!(d.overlap_skipped, 2);
    }

    #[test]
    fn buffer_one_keeps_only_the_first_overlapping() {
        let d = run(&[BufferOne, BufferOne, BufferOne], true);
        assert!(d.non_overlapping.is_none());
        assert_eq!(ids(&d.new_buffer), vec![1]);
        assert_eq!(d.overlap_skipped, 2);
    }

    #[test]
    fn buffer_all_keeps_everything() {
        let d = run(&[BufferAll, BufferAll, BufferAll], true);
        assert_eq!(ids(&d.new_buffer), vec![1, 2, 3]);
        assert_eq!(d.overlap_skipped, 0);
    }

    #[test]
    fn cancel_and_terminate_other_keep_the_start_and_ask_to_stop_the_running_one() {
        let d = run(&[CancelOther], true);
        assert!(d.need_cancel && !d.need_terminate);
        assert_eq!(ids(&d.new_buffer), vec![1]);
        let d = run(&[TerminateOther], true);
        assert!(d.need_terminate && !d.need_cancel);
        assert_eq!(ids(&d.new_buffer), vec![1]);
    }

    #[test]
    fn cancel_other_without_a_running_workflow_replaces_the_chosen_start() {
        let d = run(&[CancelOther, CancelOther, CancelOther], false);
        assert_eq!(
            d.non_overlapping.map(|s| s.nominal_time.map(|t| t.seconds)),
            Some(Some(3))
        );
        assert!(d.new_buffer.is_empty() && !d.need_cancel);
    }

    #[test]
    fn allow_all_starts_everything_unless_a_stop_is_pending() {
        let d = run(&[AllowAll, AllowAll], true);
        assert_eq!(ids(&d.overlapping), vec![1, 2]);
        let d = run(&[AllowAll, TerminateOther], true);
        assert!(d.overlapping.is_empty() && d.need_terminate);
    }
}
