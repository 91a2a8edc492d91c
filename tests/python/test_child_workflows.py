"""Child workflows: results, failures, cancel, terminate, timeout, parent close policies, id
conflicts and how describe shows the parent/child link."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    RetryState,
    StartChildWorkflowExecutionFailedCause,
)
from temporalio.api.enums.v1 import (
    ParentClosePolicy as ApiParentClosePolicy,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    ChildWorkflowError,
    TerminatedError,
    WorkflowAlreadyStartedError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ParentClosePolicy

from harness import NAMESPACE, history_events, result_within, wait_for_event, wait_until, worker

ET = EventType
ALREADY_EXISTS = StartChildWorkflowExecutionFailedCause.Value(
    "START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS"
)


# --------------------------------------------------------------------------- workflows


@workflow.defn
class ChildEcho:
    @workflow.run
    async def run(self, value: str) -> str:
        if value == "fail":
            raise ApplicationError("child gave up", {"n": 7}, type="ChildBoom", non_retryable=True)
        return f"child got {value}"


@workflow.defn
class ChildWaits:
    """Runs until signalled; a cancellation request cancels it."""

    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "child finished"


def describe_child_error(err: ChildWorkflowError) -> dict[str, Any]:
    cause = err.cause
    out: dict[str, Any] = {
        "error": type(err).__name__,
        "cause": type(cause).__name__ if cause else None,
        "message": getattr(cause, "message", None),
        "retry_state": err.retry_state.name if err.retry_state is not None else None,
        "workflow_id": err.workflow_id,
        "workflow_type": err.workflow_type,
    }
    if isinstance(cause, ApplicationError):
        out.update(type=cause.type, details=list(cause.details))
    return out


@workflow.defn
class ParentRunsChild:
    """Runs one child to the end and returns its result or the error it surfaced as."""

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        timeout = spec.get("execution_timeout_s")
        try:
            result = await workflow.execute_child_workflow(
                spec["workflow"],
                args=spec.get("args", []),
                id=spec["child_id"],
                execution_timeout=timedelta(seconds=timeout) if timeout else None,
            )
        except ChildWorkflowError as err:
            return describe_child_error(err)
        return {"result": result}


@workflow.defn
class ParentCancelsChild:
    """Starts a waiting child, cancels it once it started, and reports how it ended."""

    @workflow.run
    async def run(self, child_id: str) -> dict[str, Any]:
        handle = await workflow.start_child_workflow(ChildWaits.run, id=child_id)
        handle.cancel()
        try:
            await handle
        except ChildWorkflowError as err:
            return describe_child_error(err)
        return {"result": "not cancelled"}


@workflow.defn
class ParentStartsChildThenWaits:
    """Starts a child with the given close policy, then waits for a signal and returns."""

    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self, child_id: str, policy: str) -> str:
        handle = await workflow.start_child_workflow(
            ChildWaits.run, id=child_id, parent_close_policy=ParentClosePolicy[policy]
        )
        await workflow.wait_condition(lambda: self.done)
        return handle.first_execution_run_id or ""


@workflow.defn
class ParentStartsConflictingChild:
    @workflow.run
    async def run(self, child_id: str) -> dict[str, Any]:
        try:
            await workflow.start_child_workflow(ChildWaits.run, id=child_id)
        except WorkflowAlreadyStartedError as err:
            return {"error": type(err).__name__, "workflow_id": err.workflow_id}
        return {"error": None}


WORKFLOWS = [
    ChildEcho,
    ChildWaits,
    ParentRunsChild,
    ParentCancelsChild,
    ParentStartsChildThenWaits,
    ParentStartsConflictingChild,
]


# --------------------------------------------------------------------------- helpers


def in_order(events: list[HistoryEvent], *expected: int) -> list[HistoryEvent]:
    """The events of the `expected` types, asserted to occur in this order (others may sit
    between them); returns the first match of each."""
    found: list[HistoryEvent] = []
    position = 0
    for wanted in expected:
        for i in range(position, len(events)):
            if events[i].event_type == wanted:
                found.append(events[i])
                position = i + 1
                break
        else:
            names = [EventType.Name(e.event_type) for e in events]
            raise AssertionError(f"{EventType.Name(wanted)} missing after #{position}: {names}")
    return found


def only(events: list[HistoryEvent], event_type: int) -> HistoryEvent:
    matches = [e for e in events if e.event_type == event_type]
    assert len(matches) == 1, [EventType.Name(e.event_type) for e in events]
    return matches[0]


async def raw_describe(client: Client, workflow_id: str) -> Any:
    return await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )


async def status_of(client: Client, workflow_id: str) -> WorkflowExecutionStatus | None:
    return (await client.get_workflow_handle(workflow_id).describe()).status


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_parent_gets_child_result(client, task_queue, new_id):
    parent_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ParentRunsChild.run,
            {"workflow": "ChildEcho", "args": ["hi"], "child_id": child_id},
            id=parent_id,
            task_queue=task_queue,
        )
        assert await result_within(handle, 30) == {"result": "child got hi"}

    events = await history_events(handle)
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    initiated, started, completed = in_order(
        events,
        ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    )[1:4]
    for once in (initiated, started, completed):
        assert [e.event_type for e in events].count(once.event_type) == 1
    # The initiated event follows the workflow task that commanded it.
    assert events[initiated.event_id - 2].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    init = initiated.start_child_workflow_execution_initiated_event_attributes
    assert init.workflow_id == child_id
    assert init.workflow_type.name == "ChildEcho"
    assert init.task_queue.name == task_queue
    assert init.parent_close_policy == ApiParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE
    assert init.workflow_task_completed_event_id == initiated.event_id - 1

    start = started.child_workflow_execution_started_event_attributes
    assert start.initiated_event_id == initiated.event_id
    assert start.workflow_execution.workflow_id == child_id
    assert start.workflow_type.name == "ChildEcho"
    child_run_id = start.workflow_execution.run_id
    assert child_run_id

    done = completed.child_workflow_execution_completed_event_attributes
    assert done.initiated_event_id == initiated.event_id
    assert done.started_event_id == started.event_id
    assert done.workflow_execution.run_id == child_run_id
    assert done.result.payloads[0].data == b'"child got hi"'

    # The child's own history names its parent.
    child = client.get_workflow_handle(child_id, run_id=child_run_id)
    child_events = await history_events(child)
    child_start = child_events[0].workflow_execution_started_event_attributes
    assert child_start.parent_workflow_execution.workflow_id == parent_id
    assert child_start.parent_workflow_execution.run_id == handle.result_run_id
    assert child_start.parent_initiated_event_id == initiated.event_id
    assert child_start.parent_workflow_namespace == NAMESPACE
    assert child_start.task_queue.name == task_queue
    assert child_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_child_failure_surfaces_in_parent(client, task_queue, new_id):
    child_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ParentRunsChild.run,
            {"workflow": "ChildEcho", "args": ["fail"], "child_id": child_id},
            id=new_id(),
            task_queue=task_queue,
        )
        outcome = await result_within(handle, 30)
    assert outcome == {
        "error": "ChildWorkflowError",
        "cause": "ApplicationError",
        "message": "child gave up",
        # No retry policy on the child: the server says so rather than "non-retryable".
        "retry_state": "RETRY_POLICY_NOT_SET",
        "workflow_id": child_id,
        "workflow_type": "ChildEcho",
        "type": "ChildBoom",
        "details": [{"n": 7}],
    }
    events = await history_events(handle)
    initiated, started, failed = in_order(
        events,
        ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    )[:3]
    attrs = failed.child_workflow_execution_failed_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.started_event_id == started.event_id
    assert attrs.failure.message == "child gave up"
    assert attrs.failure.application_failure_info.type == "ChildBoom"
    assert attrs.retry_state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
    assert await status_of(client, child_id) == WorkflowExecutionStatus.FAILED


@pytest.mark.timeout(60)
async def test_parent_cancels_child(client, task_queue, new_id):
    child_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ParentCancelsChild.run, child_id, id=new_id(), task_queue=task_queue
        )
        outcome = await result_within(handle, 30)
    assert outcome["error"] == "ChildWorkflowError"
    assert outcome["cause"] == CancelledError.__name__
    assert outcome["retry_state"] == "NON_RETRYABLE_FAILURE"

    events = await history_events(handle)
    initiated, started, cancel_initiated, cancel_requested, canceled = in_order(
        events,
        ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED,
    )
    req = cancel_initiated.request_cancel_external_workflow_execution_initiated_event_attributes
    assert req.workflow_execution.workflow_id == child_id
    assert req.child_workflow_only is True
    got = cancel_requested.external_workflow_execution_cancel_requested_event_attributes
    assert got.initiated_event_id == cancel_initiated.event_id
    assert got.workflow_execution.workflow_id == child_id
    attrs = canceled.child_workflow_execution_canceled_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.started_event_id == started.event_id
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED

    child_events = await history_events(client.get_workflow_handle(child_id))
    requested = only(child_events, ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    ext = requested.workflow_execution_cancel_requested_event_attributes
    assert ext.external_workflow_execution.workflow_id == handle.id
    assert ext.external_initiated_event_id == cancel_initiated.event_id
    assert child_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    assert await status_of(client, child_id) == WorkflowExecutionStatus.CANCELED


@pytest.mark.timeout(60)
async def test_child_terminated_from_client(client, task_queue, new_id):
    child_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ParentRunsChild.run,
            {"workflow": "ChildWaits", "child_id": child_id},
            id=new_id(),
            task_queue=task_queue,
        )
        await wait_for_event(handle, "CHILD_WORKFLOW_EXECUTION_STARTED", timeout=30)
        await client.get_workflow_handle(child_id).terminate(reason="killed by the test")
        outcome = await result_within(handle, 30)
    assert outcome["error"] == "ChildWorkflowError"
    assert outcome["cause"] == TerminatedError.__name__
    assert outcome["retry_state"] == "NON_RETRYABLE_FAILURE"
    events = await history_events(handle)
    initiated, started, terminated = in_order(
        events,
        ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED,
    )
    attrs = terminated.child_workflow_execution_terminated_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.started_event_id == started.event_id
    assert attrs.workflow_execution.workflow_id == child_id
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    assert await status_of(client, child_id) == WorkflowExecutionStatus.TERMINATED


@pytest.mark.timeout(60)
async def test_child_execution_timeout(client, task_queue, new_id):
    child_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ParentRunsChild.run,
            {"workflow": "ChildWaits", "child_id": child_id, "execution_timeout_s": 1},
            id=new_id(),
            task_queue=task_queue,
        )
        outcome = await result_within(handle, 30)
    assert outcome["error"] == "ChildWorkflowError"
    assert outcome["cause"] == TemporalTimeoutError.__name__
    assert outcome["retry_state"] == "TIMEOUT"
    events = await history_events(handle)
    initiated, timed_out = in_order(
        events,
        ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED,
        ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT,
    )[::2]
    init = initiated.start_child_workflow_execution_initiated_event_attributes
    assert init.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=1)
    attrs = timed_out.child_workflow_execution_timed_out_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.retry_state == RetryState.RETRY_STATE_TIMEOUT
    assert await status_of(client, child_id) == WorkflowExecutionStatus.TIMED_OUT
    child_events = await history_events(client.get_workflow_handle(child_id))
    assert child_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT


async def run_parent_with_policy(
    client: Client, task_queue: str, parent_id: str, child_id: str, policy: str
) -> None:
    """Starts a parent that starts a child with `policy`, then lets the parent complete."""
    parent = await client.start_workflow(
        ParentStartsChildThenWaits.run,
        args=[child_id, policy],
        id=parent_id,
        task_queue=task_queue,
    )
    await wait_for_event(parent, "CHILD_WORKFLOW_EXECUTION_STARTED", timeout=30)
    assert await status_of(client, child_id) == WorkflowExecutionStatus.RUNNING
    await parent.signal(ParentStartsChildThenWaits.finish)
    assert await result_within(parent, 30)
    initiated = only(
        await history_events(parent), ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    )
    attrs = initiated.start_child_workflow_execution_initiated_event_attributes
    assert attrs.parent_close_policy == ApiParentClosePolicy.Value(f"PARENT_CLOSE_POLICY_{policy}")


@pytest.mark.timeout(60)
async def test_parent_close_policy_terminate(client, task_queue, new_id):
    parent_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        await run_parent_with_policy(client, task_queue, parent_id, child_id, "TERMINATE")

        async def child_terminated() -> bool:
            return await status_of(client, child_id) == WorkflowExecutionStatus.TERMINATED

        await wait_until(child_terminated, timeout=20, what="child to be terminated")
    child_events = await history_events(client.get_workflow_handle(child_id))
    assert child_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    terminated = child_events[-1].workflow_execution_terminated_event_attributes
    assert terminated.reason == "by parent close policy"
    # Not a cancellation request: the child never saw one.
    assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in [
        e.event_type for e in child_events
    ]


@pytest.mark.timeout(60)
async def test_parent_close_policy_request_cancel(client, task_queue, new_id):
    parent_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        await run_parent_with_policy(client, task_queue, parent_id, child_id, "REQUEST_CANCEL")

        async def child_canceled() -> bool:
            return await status_of(client, child_id) == WorkflowExecutionStatus.CANCELED

        await wait_until(child_canceled, timeout=20, what="child to be canceled")
    child_events = await history_events(client.get_workflow_handle(child_id))
    requested = only(child_events, ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    attrs = requested.workflow_execution_cancel_requested_event_attributes
    assert attrs.external_workflow_execution.workflow_id == parent_id
    assert attrs.external_initiated_event_id == 0, "no event of the closed parent asked for it"
    in_order(
        child_events,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    )
    assert child_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED


@pytest.mark.timeout(60)
async def test_parent_close_policy_abandon(client, task_queue, new_id):
    parent_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        await run_parent_with_policy(client, task_queue, parent_id, child_id, "ABANDON")
        child = client.get_workflow_handle(child_id)
        # The parent is closed; the child keeps running and still takes signals.
        assert (await client.get_workflow_handle(parent_id).describe()).status == (
            WorkflowExecutionStatus.COMPLETED
        )
        assert (await child.describe()).status == WorkflowExecutionStatus.RUNNING
        await child.signal(ChildWaits.finish)
        assert await result_within(child, 30) == "child finished"
    child_types = [e.event_type for e in await history_events(child)]
    assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in child_types
    assert child_types[-1] == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_child_id_conflict_with_running_workflow(client, task_queue, new_id):
    taken_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        squatter = await client.start_workflow(ChildWaits.run, id=taken_id, task_queue=task_queue)
        parent = await client.start_workflow(
            ParentStartsConflictingChild.run, taken_id, id=new_id(), task_queue=task_queue
        )
        assert await result_within(parent, 30) == {
            "error": "WorkflowAlreadyStartedError",
            "workflow_id": taken_id,
        }
        events = await history_events(parent)
        initiated, failed = in_order(
            events,
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED,
            ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED,
            ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
        )[:2]
        assert ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED not in [e.event_type for e in events]
        attrs = failed.start_child_workflow_execution_failed_event_attributes
        assert attrs.initiated_event_id == initiated.event_id
        assert attrs.workflow_id == taken_id
        assert attrs.workflow_type.name == "ChildWaits"
        assert attrs.cause == ALREADY_EXISTS
        # The running workflow was left alone.
        described = await squatter.describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        assert described.parent_id is None
        await squatter.signal(ChildWaits.finish)
        assert await result_within(squatter, 30) == "child finished"


@pytest.mark.timeout(60)
async def test_describe_shows_pending_children_and_parent(client, task_queue, new_id):
    parent_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        parent = await client.start_workflow(
            ParentStartsChildThenWaits.run,
            args=[child_id, "ABANDON"],
            id=parent_id,
            task_queue=task_queue,
        )
        events = await wait_for_event(parent, "CHILD_WORKFLOW_EXECUTION_STARTED", timeout=30)
        initiated = only(events, ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED)
        started = only(events, ET.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        child_started = started.child_workflow_execution_started_event_attributes
        child_run_id = child_started.workflow_execution.run_id

        described = await raw_describe(client, parent_id)
        [pending] = described.pending_children
        assert pending.workflow_id == child_id
        assert pending.run_id == child_run_id
        assert pending.workflow_type_name == "ChildWaits"
        assert pending.initiated_id == initiated.event_id
        assert pending.parent_close_policy == ApiParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON

        child_described = await raw_describe(client, child_id)
        info = child_described.workflow_execution_info
        assert info.execution.run_id == child_run_id
        assert info.parent_execution.workflow_id == parent_id
        assert info.parent_execution.run_id == parent.result_run_id
        assert info.root_execution.workflow_id == parent_id
        assert info.root_execution.run_id == parent.result_run_id
        child_handle = client.get_workflow_handle(child_id)
        sdk_view = await child_handle.describe()
        assert sdk_view.parent_id == parent_id
        assert sdk_view.parent_run_id == parent.result_run_id
        assert (await parent.describe()).parent_id is None

        # Once the child has completed it is no longer pending.
        await child_handle.signal(ChildWaits.finish)
        assert await result_within(child_handle, 30) == "child finished"

        async def no_pending_children() -> bool:
            return len((await raw_describe(client, parent_id)).pending_children) == 0

        await wait_until(no_pending_children, timeout=20, what="pending_children to empty")
        await wait_for_event(parent, "CHILD_WORKFLOW_EXECUTION_COMPLETED", timeout=20)
        await parent.signal(ParentStartsChildThenWaits.finish)
        assert await result_within(parent, 30) == child_run_id
