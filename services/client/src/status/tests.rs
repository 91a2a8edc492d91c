use temper_types::RangeId;

use super::*;

/// `status` as the peer sees it after gRPC: code, message and details through the
/// response headers.
fn over_the_wire(status: &Status) -> Status {
    let mut headers = tonic::metadata::MetadataMap::new().into_headers();
    status
        .add_header(&mut headers)
        .expect("status fits headers");
    Status::from_header_map(&headers).expect("headers carry a status")
}

#[test]
fn every_store_error_has_its_code() {
    let ownership_lost = StoreError::OwnershipLost {
        held: RangeId(3),
        actual: RangeId(4),
    };
    let cases = [
        (StoreError::Unavailable("down".into()), Code::Unavailable),
        (StoreError::OutcomeUnknown("timeout".into()), Code::Internal),
        (StoreError::NotFound("no row".into()), Code::NotFound),
        (
            StoreError::AlreadyExists("taken".into()),
            Code::AlreadyExists,
        ),
        (ownership_lost, Code::Unavailable),
        (
            StoreError::ConditionFailed("version".into()),
            Code::Internal,
        ),
        (StoreError::Invalid("garbage".into()), Code::Internal),
        (StoreError::Internal("driver".into()), Code::Internal),
    ];
    for (error, code) in cases {
        let status = store_status(error.clone());
        assert_eq!(status.code(), code, "{error:?}");
        expect_details(&status, &format!("{error:?}"));
    }
}

#[test]
fn store_messages_say_what_happened() {
    assert_eq!(
        store_status(StoreError::NotFound("namespace x".into())).message(),
        "namespace x"
    );
    assert_eq!(
        store_status(StoreError::Unavailable("store down".into())).message(),
        "store down"
    );
    let lost = store_status(StoreError::OwnershipLost {
        held: RangeId(3),
        actual: RangeId(4),
    });
    assert!(lost.message().ends_with("; retry"), "{}", lost.message());
    assert_eq!(
        store_status(StoreError::Invalid("bad blob".into())).message(),
        "corrupt or invalid data: bad blob"
    );
}

#[test]
fn every_workflow_error_has_its_code() {
    let cases = [
        (
            WorkflowError::NotFound("no activity".into()),
            Code::NotFound,
        ),
        (WorkflowError::AlreadyCompleted, Code::NotFound),
        (
            WorkflowError::InvalidArgument("bad".into()),
            Code::InvalidArgument,
        ),
        (WorkflowError::Internal("bug".into()), Code::Internal),
        (
            WorkflowError::Unavailable("later".into()),
            Code::Unavailable,
        ),
        (
            WorkflowError::StaleState("reload".into()),
            Code::Unavailable,
        ),
        (
            WorkflowError::FailedPrecondition("closed".into()),
            Code::FailedPrecondition,
        ),
    ];
    for (error, code) in cases {
        let status = workflow_status(error.clone());
        assert_eq!(status.code(), code, "{error:?}");
        expect_details(&status, &format!("{error:?}"));
    }
    assert_eq!(
        workflow_status(WorkflowError::AlreadyCompleted).message(),
        "workflow execution already completed"
    );
}

#[test]
fn a_workflow_limit_is_a_concurrency_limit() {
    let status = over_the_wire(&workflow_status(WorkflowError::ResourceExhausted(
        "too many updates".into(),
    )));
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "too many updates");
    let failure = detail::<ResourceExhaustedFailure>(&status).expect("ResourceExhaustedFailure");
    assert_eq!(
        failure.cause,
        ResourceExhaustedCause::ConcurrentLimit as i32
    );
    assert_eq!(failure.scope, ResourceExhaustedScope::Namespace as i32);
}

#[test]
fn a_workflow_not_ready_carries_its_detail() {
    let status = over_the_wire(&workflow_status(WorkflowError::WorkflowNotReady(
        "workflow task keeps failing".into(),
    )));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "workflow task keeps failing");
    assert!(detail::<WorkflowNotReadyFailure>(&status).is_some());
}

#[test]
fn already_started_names_the_running_run() {
    let status = over_the_wire(&already_started("running", "run-1".into(), "req-1".into()));
    assert_eq!(status.code(), Code::AlreadyExists);
    let failure = detail::<WorkflowExecutionAlreadyStartedFailure>(&status)
        .expect("WorkflowExecutionAlreadyStartedFailure");
    assert_eq!(failure.run_id, "run-1");
    assert_eq!(failure.start_request_id, "req-1");
}

#[test]
fn namespace_statuses_carry_their_details() {
    let missing = over_the_wire(&namespace_not_found("nope"));
    assert_eq!(missing.code(), Code::NotFound);
    assert_eq!(missing.message(), "Namespace nope is not found.");
    let failure = detail::<NamespaceNotFoundFailure>(&missing).expect("NamespaceNotFoundFailure");
    assert_eq!(failure.namespace, "nope");

    let taken = over_the_wire(&namespace_already_exists());
    assert_eq!(taken.code(), Code::AlreadyExists);
    assert!(detail::<NamespaceAlreadyExistsFailure>(&taken).is_some());
}

#[test]
fn details_are_typed_by_their_full_name() {
    let status = resource_exhausted(
        "slow down",
        ResourceExhaustedCause::RpsLimit,
        ResourceExhaustedScope::System,
    );
    let [any] = details(&status).try_into().expect("one detail");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/temporal.api.errordetails.v1.ResourceExhaustedFailure"
    );
    assert!(is_detail::<ResourceExhaustedFailure>(&any));
    assert!(!is_detail::<WorkflowNotReadyFailure>(&any));
    assert!(detail::<WorkflowNotReadyFailure>(&status).is_none());
    // A URL without the usual host still names the type.
    let bare = Any {
        type_url: "/temporal.api.errordetails.v1.ResourceExhaustedFailure".into(),
        value: Vec::new(),
    };
    assert!(is_detail::<ResourceExhaustedFailure>(&bare));
}

#[test]
fn a_status_without_details_has_none() {
    assert!(details(&Status::not_found("gone")).is_empty());
    assert!(detail::<NamespaceNotFoundFailure>(&Status::not_found("gone")).is_none());
    let garbage = Status::with_details(Code::NotFound, "gone", vec![0xff, 0xff].into());
    assert!(details(&garbage).is_empty());
}

#[test]
fn task_obsolete_is_told_by_its_detail() {
    let status = task_obsolete("workflow completed");
    assert_eq!(status.code(), Code::NotFound, "the code callers knew stays");
    assert!(is_task_obsolete(&status));
    let received = over_the_wire(&status);
    assert!(is_task_obsolete(&received), "the detail survives gRPC");
    assert_eq!(received.message(), "task obsolete: workflow completed");
    let [any] = details(&received).try_into().expect("one detail");
    assert_eq!(
        any.type_url,
        "type.googleapis.com/temper.internal.v1.TaskObsoleteFailure"
    );
}

#[test]
fn a_message_alone_does_not_make_a_task_obsolete() {
    // What the message prefix used to be: text is not a type.
    assert!(!is_task_obsolete(&Status::not_found(
        "task obsolete: workflow completed"
    )));
    assert!(!is_task_obsolete(&not_found(
        "workflow execution not found"
    )));
    assert!(!is_task_obsolete(&store_status(StoreError::NotFound(
        "task obsolete".into()
    ))));
    // The detail with another code is not it either.
    let wrong_code = status_with_details(Code::Internal, "x", &TaskObsoleteFailure {});
    assert!(!is_task_obsolete(&wrong_code));
}

#[test]
fn sticky_worker_unavailable_is_told_by_its_detail() {
    let status = over_the_wire(&sticky_worker_unavailable("worker-1-sticky"));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(is_sticky_worker_unavailable(&status));
    assert!(status.message().contains("worker-1-sticky"));
    assert!(!is_task_obsolete(&status));
    assert!(!is_sticky_worker_unavailable(&Status::failed_precondition(
        "sticky worker unavailable: worker-1-sticky"
    )));
    assert!(!is_sticky_worker_unavailable(&workflow_not_ready(
        "not ready"
    )));
}

/// NOT_FOUND carries an empty NotFoundFailure, as every one of the Temporal server's does;
/// the other codes of these mappings carry no details.
fn expect_details(status: &Status, what: &str) {
    if status.code() == Code::NotFound {
        assert_eq!(
            detail::<temper_proto::temporal::api::errordetails::v1::NotFoundFailure>(status),
            Some(Default::default()),
            "{what} carries a NotFoundFailure"
        );
        assert_eq!(details(status).len(), 1, "{what}");
    } else {
        assert!(details(status).is_empty(), "{what} carries no details");
    }
}
