//! Many pollers and adds at once, with history failing now and then: no task is lost.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use temper_client::status;

use super::fakes::Reply;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_adds_and_polls_start_every_task() {
    const TASKS: usize = 200;
    let h = Harness::new();
    for i in 0..(TASKS * 2) {
        h.history.push(match i % 7 {
            3 => Reply::Err(Status::unavailable("history busy")),
            5 => Reply::Err(status::task_obsolete("someone else started it")),
            _ => Reply::Ok,
        });
    }
    let started: Arc<Mutex<HashSet<Vec<u8>>>> = Arc::default();
    let done = tokio_util::sync::CancellationToken::new();

    let mut pollers = Vec::new();
    for p in 0..16 {
        let engine = h.engine.clone();
        let started = started.clone();
        let done = done.clone();
        let queue = if p % 2 == 0 { "orders" } else { "billing" };
        pollers.push(tokio::spawn(async move {
            while !done.is_cancelled() {
                if let Ok(resp) = poll_workflow(&engine, normal(queue), &format!("w{p}"), 50).await
                    && !resp.task_token.is_empty()
                {
                    started.lock().expect("started").insert(resp.task_token);
                }
            }
        }));
    }

    let mut adds = Vec::new();
    for i in 0..TASKS {
        let engine = h.engine.clone();
        let queue = if i % 2 == 0 { "orders" } else { "billing" };
        adds.push(tokio::spawn(async move {
            add_workflow(&engine, normal(queue), &format!("wf-{i}"), 2).await
        }));
    }
    for add in adds {
        add.await.expect("add task").expect("add");
    }

    // Every task ends started (exactly once, and its poller got it) or answered obsolete.
    eventually("every task is started or found obsolete", || {
        let calls = h.history.calls();
        let finished: HashSet<&str> = calls
            .iter()
            .filter(|c| c.outcome != "error")
            .map(|c| c.workflow_id.as_str())
            .collect();
        finished.len() == TASKS
    })
    .await;
    let calls = h.history.calls();
    for i in 0..TASKS {
        let wf = format!("wf-{i}");
        let outcomes: Vec<&str> = calls
            .iter()
            .filter(|c| c.workflow_id == wf && c.outcome != "error")
            .map(|c| c.outcome)
            .collect();
        assert_eq!(outcomes.len(), 1, "{wf} finished once: {outcomes:?}");
        if outcomes[0] == "started" {
            eventually("the poller got the started task", || {
                started.lock().expect("started").contains(&token(&wf, 2))
            })
            .await;
        }
    }
    done.cancel();
    for p in pollers {
        p.await.expect("poller");
    }
    for name in ["orders", "billing"] {
        let k = key(name, QueueType::Workflow, QueueKind::Normal);
        eventually("the backlog drains", || {
            h.store.task_ids(&k.store_key()).is_empty()
        })
        .await;
    }
}
