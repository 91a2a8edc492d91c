//! StartWorkflowExecution against the store: a new workflow id is created without reading its
//! current run first; a taken id is decided on the current run the refused create hands back.

use temper_persistence::faulty::Op;
use tonic::Code;

use super::*;

async fn start_with(
    engine: &HistoryEngine,
    request: ws::StartWorkflowExecutionRequest,
) -> Result<ws::StartWorkflowExecutionResponse, Status> {
    engine
        .start_workflow_execution(Request::new(internal::StartWorkflowExecutionRequest {
            namespace_id: NS.into(),
            request: Some(request),
            ..Default::default()
        }))
        .await
        .map(Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_reads_the_current_run_only_when_the_id_is_taken() {
    let store = store();
    let engine = engine(&store, 1, Arc::new(FakeMatching::default())).await;
    let reads = || store.calls(Op::GetCurrentExecution);

    // A new id: created at once.
    let first = start_request("wf", Duration::ZERO);
    let run = start_with(&engine, first.clone())
        .await
        .expect("start")
        .run_id;
    assert_eq!(reads(), 0, "a new workflow id is not read first");

    // The same request again (a client retry): the same run, started.
    let again = start_with(&engine, first).await.expect("retried start");
    assert_eq!((again.run_id.as_str(), again.started), (run.as_str(), true));

    // Another request for the running id: refused with the running run's id.
    let err = start_with(&engine, start_request("wf", Duration::ZERO))
        .await
        .expect_err("the id is taken");
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");
    assert!(err.message().contains(&run), "{err:?}");

    // The refused creates answered from the conflict, without reading the pointer.
    assert_eq!(reads(), 0);
    let current = store
        .inner()
        .executions
        .get_current_execution(ShardId(1), &NamespaceId(NS.into()), "wf")
        .await
        .expect("read current")
        .expect("a current run");
    assert_eq!(current.run_id, run, "no other run took the id");
}
