"""Nexus operations called from workflows and handled by a Python Nexus worker, through an
endpoint whose worker target is the handler's task queue: the caller's history events, the
handler workflow's completion callback, pending operations in DescribeWorkflowExecution,
failures, timeouts, cancellation, an unknown endpoint and a handler that is not running."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import nexusrpc
import pytest
from nexusrpc.handler import StartOperationContext, service_handler, sync_operation
from temporalio import nexus, workflow
from temporalio.api.common.v1 import Link, Payload, WorkflowExecution
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    PendingNexusOperationState,
    TimeoutType,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.workflow.v1 import PendingNexusOperationInfo
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import (
    ApplicationError,
    FailureError,
    NexusOperationError,
    TimeoutError,
)
from temporalio.nexus import WorkflowRunOperationContext, workflow_run_operation

import harness
from harness import (
    NAMESPACE,
    ServerProcess,
    event_types,
    history_events,
    result_within,
    wait_for_event,
    wait_until,
    worker,
)

FLAGS = [
    "--dynamic-config-value", "component.nexusoperations.recordCancelRequestCompletionEvents=true",
    "--dynamic-config-value", 'system.refreshNexusEndpointsMinWait="0s"',
]  # fmt: skip

SERVICE = "NexusTestService"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DUMP = bool(os.environ.get("NEXUS_DUMP"))


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """This module's servers run with the Nexus flags of the Python SDK's CI: record
    cancel-request completion events, see new endpoints at once. (The reference 1.32 passes
    these tests without them too. It needs the duration as a JSON string: `="0s"`.)"""
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


async def create_endpoint(client: Client, name: str, task_queue: str) -> str:
    resp = await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=name,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(namespace=NAMESPACE, task_queue=task_queue)
                ),
            )
        )
    )
    return resp.endpoint.id


def dump(label: str, obj: object) -> None:
    if DUMP:
        print(f"\n===== {label}\n{obj}")


# --------------------------------------------------------------------------- handler side


@workflow.defn
class HandlerWorkflow:
    """Backs the async operation: returns once signalled, or waits to be cancelled."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: self.done)
        return f"workflow result for {arg}"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class ContinuingHandler:
    """Backs an async operation over two runs: continues as new once, then returns."""

    @workflow.run
    async def run(self, arg: str, continued: bool = False) -> str:
        if not continued:
            workflow.continue_as_new(args=[arg, True])
        return f"second run for {arg}"


@service_handler(name=SERVICE)
class Handlers:
    @sync_operation
    async def echo(self, _ctx: StartOperationContext, arg: str) -> str:
        return f"echo {arg}"

    @sync_operation
    async def bad_request(self, _ctx: StartOperationContext, arg: str) -> str:
        raise nexusrpc.HandlerError(
            f"bad request: {arg}", type=nexusrpc.HandlerErrorType.BAD_REQUEST
        )

    @sync_operation
    async def operation_fails(self, _ctx: StartOperationContext, arg: str) -> str:
        raise nexusrpc.OperationError(
            f"operation failed: {arg}", state=nexusrpc.OperationErrorState.FAILED
        )

    @sync_operation
    async def slow(self, ctx: StartOperationContext, arg: str) -> str:
        # Longer than the caller's schedule-to-close timeout; ends early when the server
        # gives up on the request.
        try:
            await asyncio.wait_for(ctx.task_cancellation.wait_until_cancelled(), 20)
        except asyncio.TimeoutError:
            pass
        return f"too late {arg}"

    @workflow_run_operation
    async def run_workflow(
        self, ctx: WorkflowRunOperationContext, arg: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(HandlerWorkflow.run, arg, id=arg)

    @workflow_run_operation
    async def run_continuing(
        self, ctx: WorkflowRunOperationContext, arg: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(ContinuingHandler.run, arg, id=arg)


# --------------------------------------------------------------------------- caller side


@dataclass
class Call:
    endpoint: str
    operation: str
    arg: str
    schedule_to_close_s: float = 0
    # Start the operation, wait for the `cancel_now` signal, then cancel it with this
    # cancellation type (a NexusOperationCancellationType name).
    cancel_type: str = ""


def describe_chain(e: BaseException | None) -> list[str]:
    """The exception chain as "Class|message|details" lines."""
    out = []
    while e is not None:
        message = e.message if isinstance(e, FailureError) else str(e)
        extra = ""
        if isinstance(e, NexusOperationError):
            extra = (
                f"endpoint={e.endpoint} service={e.service} operation={e.operation}"
                f" scheduled_event_id={e.scheduled_event_id}"
                f" token={'set' if e.operation_token else 'empty'}"
            )
        elif isinstance(e, nexusrpc.HandlerError):
            extra = f"type={e.type.name} retryable={e.retryable}"
        elif isinstance(e, ApplicationError):
            extra = f"type={e.type} non_retryable={e.non_retryable}"
        elif isinstance(e, TimeoutError):
            extra = f"type={e.type.name if e.type else None}"
        out.append(f"{type(e).__name__}|{message}|{extra}")
        e = e.__cause__
    return out


@workflow.defn
class Caller:
    def __init__(self) -> None:
        self.go = False

    @workflow.run
    async def run(self, call: Call) -> list[str]:
        client = workflow.create_nexus_client(service=SERVICE, endpoint=call.endpoint)
        timeout = timedelta(seconds=call.schedule_to_close_s) if call.schedule_to_close_s else None
        try:
            if not call.cancel_type:
                result = await client.execute_operation(
                    call.operation, call.arg, output_type=str, schedule_to_close_timeout=timeout
                )
                return ["ok", result]
            handle = await client.start_operation(
                call.operation,
                call.arg,
                output_type=str,
                schedule_to_close_timeout=timeout,
                cancellation_type=workflow.NexusOperationCancellationType[call.cancel_type],
            )
            await workflow.wait_condition(lambda: self.go)
            handle.cancel()
            return ["ok", await handle]
        except NexusOperationError as e:
            return ["error", *describe_chain(e)]

    @workflow.signal
    def cancel_now(self) -> None:
        self.go = True


async def start_caller(
    client: Client, task_queue: str, wf_id: str, call: Call
) -> WorkflowHandle[Caller, list[str]]:
    return await client.start_workflow(Caller.run, call, id=wf_id, task_queue=task_queue)


def nexus_worker(client: Client, task_queue: str) -> harness.BackgroundWorker:
    return worker(
        client,
        task_queue,
        workflows=[Caller, HandlerWorkflow, ContinuingHandler],
        nexus_service_handlers=[Handlers()],
    )


def only(events: list[HistoryEvent], event_type: int) -> HistoryEvent:
    found = [e for e in events if e.event_type == event_type]
    assert len(found) == 1, event_types(events)
    return found[0]


def nexus_event_types(events: list[HistoryEvent]) -> list[str]:
    return [t for t in event_types(events) if t.startswith("NEXUS_")]


def payload_str(p: Payload) -> object:
    assert p.metadata["encoding"] == b"json/plain"
    return json.loads(p.data)


async def pending_ops(client: Client, wf_id: str) -> list[PendingNexusOperationInfo]:
    resp = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=wf_id)
        )
    )
    dump("pending_nexus_operations", resp.pending_nexus_operations)
    return list(resp.pending_nexus_operations)


def op_error_line(endpoint: str, operation: str, token: str) -> str:
    """describe_chain's line for the NexusOperationError the caller workflow catches."""
    return (
        "NexusOperationError|nexus operation completed unsuccessfully|"
        f"endpoint={endpoint} service={SERVICE} operation={operation} scheduled_event_id=5"
        f" token={token}"
    )


def check_scheduled(
    ev: HistoryEvent, endpoint: str, endpoint_id: str, operation: str, arg: str, timeout_s: int
) -> str:
    """Checks a NexusOperationScheduled event; returns its request id."""
    a = ev.nexus_operation_scheduled_event_attributes
    assert ev.event_id == 5
    assert a.endpoint == endpoint
    assert a.endpoint_id == endpoint_id
    assert a.service == SERVICE
    assert a.operation == operation
    assert payload_str(a.input) == arg
    assert a.schedule_to_close_timeout.ToTimedelta() == timedelta(seconds=timeout_s)
    assert a.workflow_task_completed_event_id == 4
    assert UUID_RE.match(a.request_id), a.request_id
    assert not a.nexus_header
    return a.request_id


def check_execution_failure_info(
    failure: Failure, endpoint: str, operation: str, token: str = ""
) -> None:
    """The outer failure the reference wraps every unsuccessful outcome in."""
    assert failure.message == "nexus operation completed unsuccessfully"
    info = failure.nexus_operation_execution_failure_info
    assert failure.WhichOneof("failure_info") == "nexus_operation_execution_failure_info"
    assert (info.scheduled_event_id, info.endpoint, info.service, info.operation) == (
        5,
        endpoint,
        SERVICE,
        operation,
    )
    # The deprecated operation_id repeats the token.
    assert (info.operation_token, info.operation_id) == (token, token)


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_sync_operation_result_and_events(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    endpoint_id = await create_endpoint(client, endpoint, task_queue)
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call(endpoint, "echo", "hello", 30)
        )
        assert await result_within(handle, 30) == ["ok", "echo hello"]
    events = await history_events(handle)
    assert event_types(events) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "NEXUS_OPERATION_SCHEDULED",
        # A synchronous result: no NEXUS_OPERATION_STARTED.
        "NEXUS_OPERATION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    request_id = check_scheduled(events[4], endpoint, endpoint_id, "echo", "hello", 30)
    done = events[5].nexus_operation_completed_event_attributes
    assert done.scheduled_event_id == 5
    assert done.request_id == request_id
    assert payload_str(done.result) == "echo hello"
    assert not events[5].links


@pytest.mark.timeout(60)
async def test_async_workflow_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    endpoint_id = await create_endpoint(client, endpoint, task_queue)
    handler_id = new_id() + "-handler"
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call(endpoint, "run_workflow", handler_id, 30)
        )
        await wait_for_event(handle, "NEXUS_OPERATION_STARTED", timeout=20)
        caller_run_id = (await handle.describe()).run_id

        # While it runs: one pending operation, STARTED, with the handler's token.
        [op] = await pending_ops(client, handle.id)
        assert op.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
        assert (op.endpoint, op.service, op.operation) == (endpoint, SERVICE, "run_workflow")
        assert op.attempt == 1
        assert op.scheduled_event_id == 5
        assert op.schedule_to_close_timeout.ToTimedelta() == timedelta(seconds=30)
        assert op.operation_token and op.operation_id == op.operation_token
        assert op.HasField("scheduled_time") and op.HasField("last_attempt_complete_time")
        assert not op.HasField("last_attempt_failure")
        assert not op.HasField("next_attempt_schedule_time")
        assert not op.HasField("cancellation_info")
        assert op.blocked_reason == ""

        handler = client.get_workflow_handle(handler_id)
        started = (await history_events(handler))[0]
        # The handler workflow's describe shows the caller's callback, waiting for the close.
        [waiting] = (await handler.describe()).raw_description.callbacks
        assert (
            waiting.callback
            == started.workflow_execution_started_event_attributes.completion_callbacks[0]
        )
        assert waiting.trigger.WhichOneof("variant") == "workflow_closed"
        assert waiting.state == CallbackState.CALLBACK_STATE_STANDBY
        assert waiting.registration_time == started.event_time
        await handler.signal(HandlerWorkflow.finish)
        assert await result_within(handle, 30) == ["ok", f"workflow result for {handler_id}"]

        async def delivered() -> bool:
            [cb] = (await handler.describe()).raw_description.callbacks
            return cb.state == CallbackState.CALLBACK_STATE_SUCCEEDED and cb.attempt == 1

        await wait_until(delivered, timeout=10, what="the callback to be delivered")

    events = await history_events(handle)
    assert event_types(events) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "NEXUS_OPERATION_SCHEDULED",
        "NEXUS_OPERATION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "NEXUS_OPERATION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    scheduled_time = events[4].event_time
    request_id = check_scheduled(events[4], endpoint, endpoint_id, "run_workflow", handler_id, 30)
    assert op.scheduled_time == scheduled_time
    st = events[5].nexus_operation_started_event_attributes
    assert st.scheduled_event_id == 5
    assert st.request_id == request_id
    assert st.operation_token == op.operation_token
    assert st.operation_id == st.operation_token
    # The token the Python SDK makes for a workflow-run operation (the server passes it on):
    # unpadded base64url of {"t":1,"ns":...,"wid":...}.
    token = json.loads(base64.urlsafe_b64decode(st.operation_token + "=" * 4))
    assert token == {"t": 1, "ns": NAMESPACE, "wid": handler_id}
    # The handler's link to its workflow's start event, from the handler's response.
    handler_run_id = started.workflow_execution_started_event_attributes.original_execution_run_id
    assert list(events[5].links) == [
        Link(
            workflow_event=Link.WorkflowEvent(
                namespace=NAMESPACE,
                workflow_id=handler_id,
                run_id=handler_run_id,
                event_ref=Link.WorkflowEvent.EventReference(
                    event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
                ),
            )
        )
    ]
    done = events[9].nexus_operation_completed_event_attributes
    assert (done.scheduled_event_id, done.request_id) == (5, request_id)
    assert payload_str(done.result) == f"workflow result for {handler_id}"

    # The handler workflow was started with a completion callback to the caller: the
    # reference's internal callback URL, its callback token and the operation token, and
    # a link back to the caller's NexusOperationScheduled event.
    sa = started.workflow_execution_started_event_attributes
    assert sa.workflow_type.name == "HandlerWorkflow"
    assert sa.task_queue.name == task_queue
    [callback] = sa.completion_callbacks
    assert callback.WhichOneof("variant") == "nexus"
    assert callback.nexus.url == "temporal://system"
    headers = dict(callback.nexus.header)
    assert set(headers) == {"temporal-callback-token", "nexus-operation-token"}
    assert headers["nexus-operation-token"] == st.operation_token
    callback_token = json.loads(headers["temporal-callback-token"])
    assert set(callback_token) == {"v", "d"} and callback_token["v"] == 1
    base64.b64decode(callback_token["d"], validate=True)  # opaque, standard base64
    assert list(callback.links) == [
        Link(
            workflow_event=Link.WorkflowEvent(
                namespace=NAMESPACE,
                workflow_id=handle.id,
                run_id=caller_run_id,
                event_ref=Link.WorkflowEvent.EventReference(
                    event_id=5, event_type=EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED
                ),
            )
        )
    ]
    assert not started.links
    # Once completed, the caller has no pending operation.
    assert await pending_ops(client, handle.id) == []


@pytest.mark.timeout(60)
async def test_handler_workflow_continued_as_new_completes_the_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    """The callback passes to the run that continues the handler workflow: the chain's last
    run completes the caller's operation, once."""
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    handler_id = new_id() + "-handler"
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call(endpoint, "run_continuing", handler_id, 30)
        )
        assert await result_within(handle, 30) == ["ok", f"second run for {handler_id}"]
    handler = client.get_workflow_handle(handler_id)
    second = await handler.describe()
    assert second.raw_description.workflow_execution_info.first_run_id != second.run_id
    [callback] = second.raw_description.callbacks
    first_started = (
        await history_events(
            client.get_workflow_handle(
                handler_id, run_id=second.raw_description.workflow_execution_info.first_run_id
            )
        )
    )[0]
    assert (
        callback.callback
        == first_started.workflow_execution_started_event_attributes.completion_callbacks[0]
    )
    events = await history_events(handle)
    assert nexus_event_types(events).count("NEXUS_OPERATION_COMPLETED") == 1


@pytest.mark.timeout(60)
async def test_handler_error_fails_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call(endpoint, "bad_request", "x", 30)
        )
        result = await result_within(handle, 30)
    dump("bad_request result", result)
    assert result == [
        "error",
        op_error_line(endpoint, "bad_request", token="empty"),
        "HandlerError|bad request: x|type=BAD_REQUEST retryable=False",
    ]
    events = await history_events(handle)
    assert nexus_event_types(events) == ["NEXUS_OPERATION_SCHEDULED", "NEXUS_OPERATION_FAILED"]
    failed = only(events, EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED)
    a = failed.nexus_operation_failed_event_attributes
    assert a.scheduled_event_id == 5
    assert a.request_id == events[4].nexus_operation_scheduled_event_attributes.request_id
    check_execution_failure_info(a.failure, endpoint, "bad_request")
    cause = a.failure.cause
    assert cause.message == "bad request: x"
    assert cause.WhichOneof("failure_info") == "nexus_handler_failure_info"
    assert cause.nexus_handler_failure_info.type == "BAD_REQUEST"
    assert not cause.HasField("cause")


@pytest.mark.timeout(60)
async def test_operation_error_fails_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call(endpoint, "operation_fails", "x", 30)
        )
        result = await result_within(handle, 30)
    dump("operation_fails result", result)
    # The SDK turns a failed OperationError into a non-retryable ApplicationError of type
    # "OperationError".
    assert result == [
        "error",
        op_error_line(endpoint, "operation_fails", token="empty"),
        "ApplicationError|operation failed: x|type=OperationError non_retryable=True",
    ]
    events = await history_events(handle)
    assert nexus_event_types(events) == ["NEXUS_OPERATION_SCHEDULED", "NEXUS_OPERATION_FAILED"]
    a = only(
        events, EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED
    ).nexus_operation_failed_event_attributes
    check_execution_failure_info(a.failure, endpoint, "operation_fails")
    cause = a.failure.cause
    assert cause.message == "operation failed: x"
    assert cause.application_failure_info.type == "OperationError"
    assert cause.application_failure_info.non_retryable


@pytest.mark.timeout(60)
async def test_schedule_to_close_timeout(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    async with nexus_worker(client, task_queue):
        handle = await start_caller(client, task_queue, new_id(), Call(endpoint, "slow", "x", 2))
        result = await result_within(handle, 30)
    dump("slow result", result)
    assert result == [
        "error",
        op_error_line(endpoint, "slow", token="empty"),
        "TimeoutError|operation timed out|type=SCHEDULE_TO_CLOSE",
    ]
    events = await history_events(handle)
    assert nexus_event_types(events) == [
        "NEXUS_OPERATION_SCHEDULED",
        "NEXUS_OPERATION_TIMED_OUT",
    ]
    timed_out = only(events, EventType.EVENT_TYPE_NEXUS_OPERATION_TIMED_OUT)
    a = timed_out.nexus_operation_timed_out_event_attributes
    assert a.scheduled_event_id == 5
    assert a.request_id == events[4].nexus_operation_scheduled_event_attributes.request_id
    check_execution_failure_info(a.failure, endpoint, "slow")
    assert a.failure.cause.message == "operation timed out"
    assert (
        a.failure.cause.timeout_failure_info.timeout_type
        == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE
    )
    # Surprising: the reference times out up to ~1 s before schedule_to_close has passed
    # since the NexusOperationScheduled event (observed 1.05 s to 1.9 s for 2 s).
    elapsed = timed_out.event_time.ToDatetime() - events[4].event_time.ToDatetime()
    assert timedelta(seconds=0.5) <= elapsed < timedelta(seconds=10), elapsed


@pytest.mark.timeout(60)
async def test_cancel_async_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    handler_id = new_id() + "-handler"
    call = Call(endpoint, "run_workflow", handler_id, 30, cancel_type="WAIT_COMPLETED")
    async with nexus_worker(client, task_queue):
        handle = await start_caller(client, task_queue, new_id(), call)
        await wait_for_event(handle, "NEXUS_OPERATION_STARTED", timeout=20)
        await handle.signal(Caller.cancel_now)
        result = await result_within(handle, 30)
    dump("cancel result", result)
    assert result == [
        "error",
        op_error_line(endpoint, "run_workflow", token="set"),
        "CancelledError|operation canceled|",
    ]
    events = await history_events(handle)
    dump("cancel events", event_types(events))
    # With recordCancelRequestCompletionEvents the reference records when the handler
    # accepted the cancel request.
    assert nexus_event_types(events) == [
        "NEXUS_OPERATION_SCHEDULED",
        "NEXUS_OPERATION_STARTED",
        "NEXUS_OPERATION_CANCEL_REQUESTED",
        "NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED",
        "NEXUS_OPERATION_CANCELED",
    ]
    token = events[5].nexus_operation_started_event_attributes.operation_token
    requested = only(events, EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED)
    ra = requested.nexus_operation_cancel_requested_event_attributes
    assert ra.scheduled_event_id == 5
    assert events[ra.workflow_task_completed_event_id - 1].event_type == (
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    completed = only(events, EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUEST_COMPLETED)
    ca = completed.nexus_operation_cancel_request_completed_event_attributes
    assert (ca.scheduled_event_id, ca.requested_event_id) == (5, requested.event_id)
    assert completed.worker_may_ignore
    canceled = only(events, EventType.EVENT_TYPE_NEXUS_OPERATION_CANCELED)
    a = canceled.nexus_operation_canceled_event_attributes
    assert a.scheduled_event_id == 5
    assert a.request_id == events[4].nexus_operation_scheduled_event_attributes.request_id
    check_execution_failure_info(a.failure, endpoint, "run_workflow", token)
    assert a.failure.cause.message == "operation canceled"
    assert a.failure.cause.WhichOneof("failure_info") == "canceled_failure_info"

    # The handler workflow was asked to cancel, and did.
    handler = client.get_workflow_handle(handler_id)
    assert event_types(await history_events(handler)) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_CANCELED",
    ]
    assert (await handler.describe()).status == WorkflowExecutionStatus.CANCELED


@pytest.mark.timeout(60)
async def test_cancel_abandon_and_try_cancel(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    """ABANDON sends nothing to the server; TRY_CANCEL records NexusOperationCancelRequested
    and the caller goes on at once (here: completes). The "cancelled" the caller sees is
    the SDK's own, not a server event."""
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    async with nexus_worker(client, task_queue):
        for cancel_type, last_events in [
            ("ABANDON", ["WORKFLOW_TASK_COMPLETED", "WORKFLOW_EXECUTION_COMPLETED"]),
            (
                "TRY_CANCEL",
                [
                    "WORKFLOW_TASK_COMPLETED",
                    "NEXUS_OPERATION_CANCEL_REQUESTED",
                    "WORKFLOW_EXECUTION_COMPLETED",
                ],
            ),
        ]:
            handler_id = new_id() + "-handler"
            call = Call(endpoint, "run_workflow", handler_id, 30, cancel_type=cancel_type)
            handle = await start_caller(client, task_queue, new_id(), call)
            await wait_for_event(handle, "NEXUS_OPERATION_STARTED", timeout=20)
            await handle.signal(Caller.cancel_now)
            result = await result_within(handle, 30)
            dump(f"{cancel_type} result", result)
            assert result == [
                "error",
                op_error_line(endpoint, "run_workflow", token="set").replace(
                    "nexus operation completed unsuccessfully",
                    "Nexus operation cancelled after starting",
                ),
                "CancelledError|Cancelled|",
            ], cancel_type
            types = event_types(await history_events(handle))
            assert types[-len(last_events) :] == last_events, (cancel_type, types)
            expected_nexus = ["NEXUS_OPERATION_SCHEDULED", "NEXUS_OPERATION_STARTED"]
            if cancel_type == "TRY_CANCEL":
                expected_nexus.append("NEXUS_OPERATION_CANCEL_REQUESTED")
            assert [t for t in types if t.startswith("NEXUS_")] == expected_nexus
            handler = client.get_workflow_handle(handler_id)
            if cancel_type == "ABANDON":
                # Nothing reached the handler workflow: it is still running.
                assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" not in event_types(
                    await history_events(handler)
                )
                assert (await handler.describe()).status == WorkflowExecutionStatus.RUNNING
            await handler.terminate("test over")


@pytest.mark.timeout(60)
async def test_unknown_endpoint_fails_workflow_task(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    async with nexus_worker(client, task_queue):
        handle = await start_caller(
            client, task_queue, new_id(), Call("no-such-endpoint", "echo", "x", 30)
        )
        events = await wait_for_event(handle, "WORKFLOW_TASK_FAILED", timeout=20)
        # The command is refused: no NexusOperationScheduled, the workflow task fails.
        assert event_types(events)[:4] == [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
        ]
        assert not nexus_event_types(events)
        a = events[3].workflow_task_failed_event_attributes
        assert (
            a.cause
            == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
        )
        assert a.failure.message == (
            'BadScheduleNexusOperationAttributes: endpoint "no-such-endpoint" not found'
        )
        assert a.failure.WhichOneof("failure_info") == "server_failure_info"
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.RUNNING

        # Once the endpoint exists, a retried workflow task schedules the operation (the
        # SDK's retries fail silently until then; on the reference the next one that gets
        # through comes up to a workflow task timeout, 10 s, later).
        await create_endpoint(client, "no-such-endpoint", task_queue)
        assert await result_within(handle, 40) == ["ok", "echo x"]
    # The reference records only the first failure (the retries in between are transient);
    # temper records each failed attempt (docs/compatibility.md, workflow task retries).
    # Either way, after the last failure the operation is scheduled once and completes.
    types = event_types(await history_events(handle))
    last_failure = len(types) - 1 - types[::-1].index("WORKFLOW_TASK_FAILED")
    assert set(types[1:last_failure]) <= {
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
    }
    assert types[last_failure:] == [
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "NEXUS_OPERATION_SCHEDULED",
        "NEXUS_OPERATION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


@pytest.mark.timeout(60)
async def test_handler_not_running(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = f"ep-{task_queue}"
    # The endpoint targets a task queue no worker polls.
    await create_endpoint(client, endpoint, task_queue + "-nobody")
    async with nexus_worker(client, task_queue):
        handle = await start_caller(client, task_queue, new_id(), Call(endpoint, "echo", "x", 30))
        await wait_for_event(handle, "NEXUS_OPERATION_SCHEDULED", timeout=20)
        [op] = await pending_ops(client, handle.id)
        # Before the first attempt ends: SCHEDULED, attempt 0 (unset).
        assert op.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
        assert op.attempt == 0
        assert not op.HasField("last_attempt_failure")

        async def backing_off() -> PendingNexusOperationInfo | None:
            [op] = await pending_ops(client, handle.id)
            return op if op.attempt >= 1 else None

        op = await wait_until(backing_off, timeout=20, what="a failed first attempt")
        # BACKING_OFF until the retry is due, then SCHEDULED again (attempt stays 1 until
        # the second attempt ends).
        assert op.state in (
            PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF,
            PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED,
        )
        if op.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF:
            assert op.next_attempt_schedule_time.ToDatetime() > (
                op.last_attempt_complete_time.ToDatetime()
            )
        assert op.last_attempt_failure.message == "upstream timeout"
        assert op.last_attempt_failure.nexus_handler_failure_info.type == "UPSTREAM_TIMEOUT"
        assert op.HasField("last_attempt_complete_time")
        elapsed = op.last_attempt_complete_time.ToDatetime() - op.scheduled_time.ToDatetime()
        dump("first attempt took", elapsed)
        # The attempt times out in matching with no poller (observed ~8 s on the reference).
        assert timedelta(seconds=1) < elapsed < timedelta(seconds=20), elapsed
        assert not op.operation_token
        events = await history_events(handle)
        assert nexus_event_types(events) == ["NEXUS_OPERATION_SCHEDULED"]
        await handle.terminate("done")
