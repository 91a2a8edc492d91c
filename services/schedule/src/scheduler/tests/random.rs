//! Random input sequences: no panic, and the invariants hold after every call.

use std::collections::HashSet;

use super::*;
use temporalio_protos::temporal::api::enums::v1::WorkflowIdReusePolicy;
use temporalio_protos::temporal::api::schedule::v1::{BackfillRequest, TriggerImmediatelyRequest};

/// A small deterministic generator (64-bit LCG), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const POLICIES: [ScheduleOverlapPolicy; 7] = [
    ScheduleOverlapPolicy::Unspecified,
    ScheduleOverlapPolicy::Skip,
    ScheduleOverlapPolicy::BufferOne,
    ScheduleOverlapPolicy::BufferAll,
    ScheduleOverlapPolicy::CancelOther,
    ScheduleOverlapPolicy::TerminateOther,
    ScheduleOverlapPolicy::AllowAll,
];

#[test]
fn random_inputs_keep_the_invariants() {
    for seed in 0..40u64 {
        let mut rng = Rng(seed);
        let policy = POLICIES[1 + rng.below(6) as usize];
        let mut s = schedule(every(30 + 30 * rng.below(4) as i64), policy);
        let policies = s.policies.as_mut().expect("policies");
        policies.pause_on_failure = rng.below(2) == 0;
        policies.catchup_window = Some(secs(10 + 60 * rng.below(3) as i64));
        let mut now = ts(T0);
        let (mut state, mut effects) =
            create("ns", "ns-id", "sched", s, None, now).expect("create");
        let mut request_ids = HashSet::new();
        let mut scheduled_ids = HashSet::new();
        let mut pending: Vec<StartWorkflow> = Vec::new();
        for step in 0..300 {
            for start in &effects.starts {
                assert!(
                    request_ids.insert(start.request.request_id.clone()),
                    "seed {seed} step {step}: request id reused"
                );
                let scheduled = start.request.workflow_id_reuse_policy
                    == WorkflowIdReusePolicy::RejectDuplicate as i32;
                assert!(
                    !scheduled || scheduled_ids.insert(start.request.workflow_id.clone()),
                    "seed {seed} step {step}: {} scheduled twice",
                    start.request.workflow_id
                );
            }
            pending.extend(effects.starts.iter().cloned());
            now = match effects.next_wake {
                Some(w) if rng.below(3) > 0 => w.max(now),
                _ => now + jiff::SignedDuration::from_secs(rng.below(200) as i64),
            };
            let input = match rng.below(10) {
                0..=3 => Input::Wake,
                4 if !pending.is_empty() => {
                    let s = pending.remove(rng.below(pending.len() as u64) as usize);
                    if rng.below(5) == 0 {
                        Input::StartFailed {
                            request_id: s.request.request_id,
                            already_started: false,
                            message: "x".into(),
                        }
                    } else {
                        Input::Started {
                            request_id: s.request.request_id,
                            run_id: format!("run-{}", s.request.workflow_id),
                            start_time: now,
                        }
                    }
                }
                5 | 6 => {
                    let running = &info(&state).running_workflows;
                    if running.is_empty() {
                        Input::Wake
                    } else {
                        let ex = running[rng.below(running.len() as u64) as usize].clone();
                        let status = [
                            WorkflowExecutionStatus::Completed,
                            WorkflowExecutionStatus::Failed,
                            WorkflowExecutionStatus::Canceled,
                            WorkflowExecutionStatus::Terminated,
                            WorkflowExecutionStatus::TimedOut,
                        ][rng.below(5) as usize];
                        Input::Closed {
                            workflow_id: ex.workflow_id,
                            run_id: ex.run_id,
                            status,
                            result: None,
                            failure: None,
                        }
                    }
                }
                7 => Input::Patch(SchedulePatch {
                    trigger_immediately: Some(TriggerImmediatelyRequest {
                        overlap_policy: POLICIES[rng.below(7) as usize] as i32,
                        scheduled_time: None,
                    }),
                    ..Default::default()
                }),
                8 => {
                    let end = now - jiff::SignedDuration::from_secs(rng.below(3600) as i64);
                    let start = end - jiff::SignedDuration::from_secs(rng.below(7200) as i64);
                    Input::Patch(SchedulePatch {
                        backfill_request: vec![BackfillRequest {
                            start_time: Some(crate::timestamp_to_proto(start)),
                            end_time: Some(crate::timestamp_to_proto(end)),
                            overlap_policy: POLICIES[rng.below(7) as usize] as i32,
                        }],
                        ..Default::default()
                    })
                }
                _ => Input::Patch(SchedulePatch {
                    pause: if rng.below(2) == 0 {
                        "p".into()
                    } else {
                        String::new()
                    },
                    unpause: if rng.below(2) == 0 {
                        "u".into()
                    } else {
                        String::new()
                    },
                    ..Default::default()
                }),
            };
            effects = handle(&mut state, input, now).expect("valid input");
            // A second wake at the same instant starts no scheduled time again (only the
            // next slice of an ALLOW_ALL backfill may come out).
            if rng.below(4) == 0 {
                let again = handle(&mut state, Input::Wake, now).expect("wake");
                let scheduled: Vec<_> = again
                    .starts
                    .iter()
                    .filter(|s| {
                        s.request.workflow_id_reuse_policy
                            != WorkflowIdReusePolicy::AllowDuplicate as i32
                    })
                    .map(|s| &s.request.workflow_id)
                    .collect();
                assert!(
                    scheduled.is_empty(),
                    "seed {seed} step {step}: duplicate wake started {scheduled:?}"
                );
                effects.starts.extend(again.starts);
            }
            assert!(state.buffered_starts.len() <= limits::MAX_BUFFER_SIZE);
            assert!(info(&state).recent_actions.len() <= limits::RECENT_ACTION_COUNT);
            let running: HashSet<_> = info(&state).running_workflows.iter().collect();
            assert_eq!(running.len(), info(&state).running_workflows.len());
            let tracked = state.pending_starts.iter().filter(|p| p.tracked).count()
                + info(&state).running_workflows.len();
            assert!(
                tracked <= 1,
                "seed {seed} step {step}: {tracked} non-overlapping runs"
            );
        }
    }
}
