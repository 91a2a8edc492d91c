"""Standalone Nexus operations: Nexus operations started by a client, not by a workflow
(StartNexusOperationExecution, DescribeNexusOperationExecution, PollNexusOperationExecution,
RequestCancelNexusOperationExecution, TerminateNexusOperationExecution,
DeleteNexusOperationExecution, ListNexusOperationExecutions, CountNexusOperationExecutions),
through the SDK's `Client.create_nexus_client` family and the raw WorkflowService calls, with a
Python Nexus worker as the handler behind an endpoint whose worker target is the test's task
queue.

The reference server only serves these with CHASM and standalone Nexus operations switched on
(`history.enableChasm`, `nexusoperation.enableStandalone`, and `history.enableCHASMCallbacks`
for the completion callback of a workflow-backed operation); every test's server gets those
flags. The assertions pin down what the reference answers, including where it surprises.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import nexusrpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from nexusrpc.handler import StartOperationContext, service_handler, sync_operation
from temporalio import nexus, workflow
from temporalio.api.common.v1 import Link, Payload, Payloads
from temporalio.api.enums.v1 import (
    EventType,
    NexusHandlerErrorRetryBehavior,
    NexusOperationCancellationState,
    NexusOperationExecutionStatus,
    NexusOperationIdConflictPolicy,
    NexusOperationIdReusePolicy,
    NexusOperationWaitStage,
    PendingNexusOperationState,
    TimeoutType,
)
from temporalio.api.errordetails.v1 import (
    NamespaceNotFoundFailure,
    NexusOperationExecutionAlreadyStartedFailure,
    NotFoundFailure,
)
from temporalio.api.failure.v1 import (
    ApplicationFailureInfo,
    CanceledFailureInfo,
    Failure,
    NexusHandlerFailureInfo,
    TerminatedFailureInfo,
    TimeoutFailureInfo,
)
from temporalio.api.sdk.v1 import UserMetadata
from temporalio.api.workflowservice.v1 import (
    CountNexusOperationExecutionsRequest,
    DeleteNexusOperationExecutionRequest,
    DescribeNexusOperationExecutionRequest,
    DescribeNexusOperationExecutionResponse,
    ListNexusOperationExecutionsRequest,
    PollNexusOperationExecutionRequest,
    PollNexusOperationExecutionResponse,
    RequestCancelNexusOperationExecutionRequest,
    StartNexusOperationExecutionRequest,
    StartNexusOperationExecutionResponse,
    TerminateNexusOperationExecutionRequest,
)
from temporalio.client import Client, NexusOperationFailureError, WorkflowExecutionStatus
from temporalio.common import NexusOperationExecutionStatus as SdkStatus
from temporalio.common import (
    NexusOperationIDConflictPolicy,
    NexusOperationIDReusePolicy,
    PendingNexusOperationExecutionState,
)
from temporalio.converter import DataConverter
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    NexusOperationAlreadyStartedError,
    TerminatedError,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.nexus import WorkflowRunOperationContext, workflow_run_operation
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, ServerProcess, wait_until, worker

FLAGS = [
    "--dynamic-config-value", "history.enableChasm=true",
    "--dynamic-config-value", "history.enableTransitionHistory=true",
    "--dynamic-config-value", "history.enableCHASMCallbacks=true",
    "--dynamic-config-value", "nexusoperation.enableStandalone=true",
    "--dynamic-config-value", 'system.refreshNexusEndpointsMinWait="0s"',
]  # fmt: skip

SERVICE = "StandaloneNexusService"
IDENTITY = "raw-client"

S = NexusOperationExecutionStatus
STAGE = NexusOperationWaitStage
STATE = PendingNexusOperationState
CANCEL = NexusOperationCancellationState
CONFLICT = NexusOperationIdConflictPolicy
REUSE = NexusOperationIdReusePolicy


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """This module's servers run with CHASM and standalone Nexus operations enabled, and see
    new endpoints at once."""
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


@pytest.fixture
def op_id(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Unique operation ids, prefixed with the test's name."""
    prefix = "op-" + request.node.name.removeprefix("test_")[:30]
    return lambda: harness.unique(prefix)


# --------------------------------------------------------------------------- handler side


@workflow.defn
class BlockingWorkflow:
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


# Start attempts of the `flaky` operation, by its argument.
attempts: dict[str, int] = {}
# What the `spy` operation's handler was given, by its argument.
spied: dict[str, StartOperationContext] = {}


@service_handler(name=SERVICE)
class Handlers:
    @sync_operation
    async def echo(self, _ctx: StartOperationContext, arg: str) -> str:
        return f"echo {arg}"

    @sync_operation
    async def handler_error(self, _ctx: StartOperationContext, arg: str) -> str:
        raise nexusrpc.HandlerError(
            f"handler says {arg}",
            type=nexusrpc.HandlerErrorType.INTERNAL,
            retryable_override=False,
        )

    @sync_operation
    async def application_error(self, _ctx: StartOperationContext, arg: str) -> str:
        raise ApplicationError(f"app says {arg}", "d1", type="MyErr", non_retryable=True)

    @sync_operation
    async def spy(self, ctx: StartOperationContext, arg: str) -> str:
        spied[arg] = ctx
        return "seen"

    @sync_operation
    async def flaky(self, _ctx: StartOperationContext, arg: str) -> str:
        """Fails twice with a retryable handler error, then succeeds."""
        attempts[arg] = attempts.get(arg, 0) + 1
        if attempts[arg] < 3:
            raise nexusrpc.HandlerError(
                f"try again {attempts[arg]}", type=nexusrpc.HandlerErrorType.INTERNAL
            )
        return f"ok after {attempts[arg]}"

    @sync_operation
    async def operation_error(self, _ctx: StartOperationContext, arg: str) -> str:
        raise nexusrpc.OperationError(
            f"operation failed: {arg}", state=nexusrpc.OperationErrorState.FAILED
        )

    @workflow_run_operation
    async def run_workflow(
        self, ctx: WorkflowRunOperationContext, arg: str
    ) -> nexus.WorkflowHandle[str]:
        # The argument is the handler workflow's id.
        return await ctx.start_workflow(BlockingWorkflow.run, arg, id=arg)


def handler_worker(client: Client, task_queue: str) -> harness.BackgroundWorker:
    return worker(
        client, task_queue, workflows=[BlockingWorkflow], nexus_service_handlers=[Handlers()]
    )


# --------------------------------------------------------------------------- helpers


def payload(value: Any) -> Payload:
    return DataConverter.default.payload_converter.to_payloads([value])[0]


def value_of(p: Payload) -> Any:
    return DataConverter.default.payload_converter.from_payloads([p])[0]


def start_request(
    endpoint: str, operation: str, arg: Any, operation_id: str, **kwargs: Any
) -> StartNexusOperationExecutionRequest:
    kwargs.setdefault("schedule_to_close_timeout", Duration(seconds=30))
    kwargs.setdefault("request_id", str(uuid.uuid4()))
    kwargs.setdefault("service", SERVICE)
    kwargs.setdefault("namespace", NAMESPACE)
    kwargs.setdefault("identity", IDENTITY)
    return StartNexusOperationExecutionRequest(
        operation_id=operation_id,
        endpoint=endpoint,
        operation=operation,
        input=payload(arg),
        **kwargs,
    )


async def raw_start(client: Client, req: StartNexusOperationExecutionRequest) -> Any:
    return await client.workflow_service.start_nexus_operation_execution(req, retry=False)


async def raw_describe(
    client: Client, operation_id: str, run_id: str = "", **kwargs: Any
) -> DescribeNexusOperationExecutionResponse:
    timeout = kwargs.pop("timeout", None)
    return await client.workflow_service.describe_nexus_operation_execution(
        DescribeNexusOperationExecutionRequest(
            namespace=NAMESPACE, operation_id=operation_id, run_id=run_id, **kwargs
        ),
        retry=False,
        timeout=timeout,
    )


async def raw_poll(
    client: Client,
    operation_id: str,
    stage: int = STAGE.NEXUS_OPERATION_WAIT_STAGE_CLOSED,
    run_id: str = "",
    timeout: float = 30,
) -> PollNexusOperationExecutionResponse:
    return await client.workflow_service.poll_nexus_operation_execution(
        PollNexusOperationExecutionRequest(
            namespace=NAMESPACE, operation_id=operation_id, run_id=run_id, wait_stage=stage
        ),
        retry=False,
        timeout=timedelta(seconds=timeout),
    )


async def raw_cancel(client: Client, operation_id: str, request_id: str = "", **kwargs: Any) -> Any:
    return await client.workflow_service.request_cancel_nexus_operation_execution(
        RequestCancelNexusOperationExecutionRequest(
            namespace=NAMESPACE,
            operation_id=operation_id,
            identity=IDENTITY,
            request_id=request_id or str(uuid.uuid4()),
            **kwargs,
        ),
        retry=False,
    )


async def raw_terminate(
    client: Client, operation_id: str, request_id: str | None = None, **kwargs: Any
) -> Any:
    return await client.workflow_service.terminate_nexus_operation_execution(
        TerminateNexusOperationExecutionRequest(
            namespace=NAMESPACE,
            operation_id=operation_id,
            identity=kwargs.pop("identity", IDENTITY),
            request_id=str(uuid.uuid4()) if request_id is None else request_id,
            **kwargs,
        ),
        retry=False,
    )


async def raw_delete(client: Client, operation_id: str, run_id: str = "") -> Any:
    return await client.workflow_service.delete_nexus_operation_execution(
        DeleteNexusOperationExecutionRequest(
            namespace=NAMESPACE, operation_id=operation_id, run_id=run_id
        ),
        retry=False,
    )


async def rpc_error(call: Awaitable[Any]) -> RPCError:
    with pytest.raises(RPCError) as info:
        await call
    return info.value


def detail_types(err: RPCError) -> list[str]:
    return [d.type_url.rsplit("/", 1)[-1] for d in err.grpc_status.details]


def assert_not_found(err: RPCError, operation_id: str) -> None:
    assert err.status == RPCStatusCode.NOT_FOUND
    assert err.message == f"operation not found for ID: {operation_id}"
    assert detail_types(err) == ["temporal.api.errordetails.v1.NotFoundFailure"]
    assert err.grpc_status.details[0].Unpack(NotFoundFailure())


def assert_invalid(err: RPCError, message: str) -> None:
    assert (err.status, err.message) == (RPCStatusCode.INVALID_ARGUMENT, message)


def assert_precondition(err: RPCError, message: str) -> None:
    assert (err.status, err.message) == (RPCStatusCode.FAILED_PRECONDITION, message)


def without_stacks(failure: Failure) -> Failure:
    """A copy of `failure` (and its causes) with the stack traces cleared."""
    out = Failure()
    out.CopyFrom(failure)
    f: Failure | None = out
    while f is not None:
        f.stack_trace = ""
        f = f.cause if f.HasField("cause") else None
    return out


def failure_chain(failure: Failure) -> list[Failure]:
    chain = [failure]
    while chain[-1].HasField("cause"):
        chain.append(chain[-1].cause)
    return chain


def timed_out(timeout_type: int) -> Failure:
    return Failure(
        message="operation timed out",
        timeout_failure_info=TimeoutFailureInfo(timeout_type=timeout_type),
    )


CANCELED = Failure(message="operation canceled", canceled_failure_info=CanceledFailureInfo())


async def closed(client: Client, operation_id: str) -> PollNexusOperationExecutionResponse:
    """The raw poll for the CLOSED stage, which must come with an outcome."""
    resp = await raw_poll(client, operation_id)
    assert resp.wait_stage == STAGE.NEXUS_OPERATION_WAIT_STAGE_CLOSED, resp
    assert resp.WhichOneof("outcome") is not None, resp
    return resp


async def handler_started(client: Client, operation_id: str) -> str:
    """Wait for the async operation to be started by its handler; its operation token."""
    resp = await raw_poll(client, operation_id, STAGE.NEXUS_OPERATION_WAIT_STAGE_STARTED)
    assert resp.wait_stage == STAGE.NEXUS_OPERATION_WAIT_STAGE_STARTED, resp
    assert resp.operation_token
    return resp.operation_token


async def failure_of(handle: Any) -> BaseException:
    """The cause of the NexusOperationFailureError that `handle.result()` raises."""
    with pytest.raises(NexusOperationFailureError) as info:
        await asyncio.wait_for(handle.result(), 30)
    assert str(info.value) == "Nexus operation execution failed"
    return info.value.cause


def close_to(a: Timestamp, b: Timestamp, tolerance: float = 0.1) -> bool:
    return abs((a.ToDatetime() - b.ToDatetime()).total_seconds()) <= tolerance


async def gone(client: Client, operation_id: str) -> None:
    """Wait until Describe answers NOT_FOUND (deletion is not instantaneous)."""

    async def check() -> RPCError | None:
        try:
            await raw_describe(client, operation_id)
        except RPCError as e:
            return e
        return None

    assert_not_found(
        await wait_until(check, timeout=10, what=f"{operation_id} deleted"), operation_id
    )


async def count(client: Client, query: str) -> int:
    resp = await client.workflow_service.count_nexus_operation_executions(
        CountNexusOperationExecutionsRequest(namespace=NAMESPACE, query=query), retry=False
    )
    return resp.count


async def listed(client: Client, query: str, expected: int) -> list[Any]:
    """The raw list entries for `query` once visibility shows `expected` of them (visibility
    lags behind the operation's own state)."""

    async def check() -> tuple[list[Any]] | None:
        resp = await client.workflow_service.list_nexus_operation_executions(
            ListNexusOperationExecutionsRequest(namespace=NAMESPACE, query=query), retry=False
        )
        ops = list(resp.operations)
        return (ops,) if len(ops) == expected else None

    return (await wait_until(check, timeout=15, what=f"{expected} operations for {query!r}"))[0]


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_sync_operation_result_describe_and_poll(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    nexus_client = client.create_nexus_client(service=Handlers, endpoint=endpoint)
    async with handler_worker(client, task_queue):
        oid = op_id()
        handle = await nexus_client.start_operation(
            Handlers.echo, "x", id=oid, schedule_to_close_timeout=timedelta(seconds=30)
        )
        assert handle.operation_id == oid
        assert handle.run_id
        assert await asyncio.wait_for(handle.result(), 30) == "echo x"
        assert await nexus_client.execute_operation(Handlers.echo, "y", id=op_id()) == "echo y"
        by_id = client.get_nexus_operation_handle(oid, result_type=str)
        assert await asyncio.wait_for(by_id.result(), 30) == "echo x"

        # Poll: a sync operation never rests in STARTED; the answer names the stage it is at.
        for stage in (
            STAGE.NEXUS_OPERATION_WAIT_STAGE_STARTED,
            STAGE.NEXUS_OPERATION_WAIT_STAGE_CLOSED,
            STAGE.NEXUS_OPERATION_WAIT_STAGE_UNSPECIFIED,
        ):
            polled = await raw_poll(client, oid, stage)
            assert polled.run_id == handle.run_id
            assert polled.wait_stage == STAGE.NEXUS_OPERATION_WAIT_STAGE_CLOSED
            assert polled.operation_token == ""
            assert polled.WhichOneof("outcome") == "result"
            assert value_of(polled.result) == "echo x"

        d = await raw_describe(client, oid)
        assert d.run_id == handle.run_id
        info = d.info
        assert (info.operation_id, info.run_id) == (oid, handle.run_id)
        assert (info.endpoint, info.service, info.operation) == (endpoint, SERVICE, "echo")
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
        assert info.state == STATE.PENDING_NEXUS_OPERATION_STATE_UNSPECIFIED
        assert info.attempt == 1
        assert info.schedule_to_close_timeout == Duration(seconds=30)
        assert not info.HasField("schedule_to_start_timeout")
        assert not info.HasField("start_to_close_timeout")
        schedule = info.schedule_time.ToDatetime()
        close = info.close_time.ToDatetime()
        assert schedule <= close
        schedule_ns = info.schedule_time.ToNanoseconds()
        assert info.expiration_time.ToNanoseconds() == schedule_ns + 30 * 10**9
        assert (
            info.execution_duration.ToNanoseconds() == info.close_time.ToNanoseconds() - schedule_ns
        )
        # A synchronous success records no attempt completion time.
        assert not info.HasField("last_attempt_complete_time")
        assert not info.HasField("last_attempt_failure")
        assert not info.HasField("next_attempt_schedule_time")
        assert not info.HasField("cancellation_info")
        # The request id sent to the handler is the server's own, not the client's start
        # request id (the SDK sends a random uuid4 it does not expose).
        assert uuid.UUID(info.request_id)
        assert info.operation_token == ""
        assert info.state_transition_count == 2
        assert list(info.links) == []
        assert info.blocked_reason == ""
        assert info.identity == client.identity
        assert info.state_size_bytes > 0
        assert not info.HasField("user_metadata")
        # No outcome nor input unless asked for.
        assert d.WhichOneof("outcome") is None
        assert not d.HasField("input")
        # Surprise: a long-poll token even though the operation is closed (the proto says
        # "absent only if the operation is complete").
        assert d.long_poll_token

        d = await raw_describe(client, oid, include_input=True, include_outcome=True)
        assert value_of(d.input) == "x"
        assert value_of(d.result) == "echo x"

        # Through the SDK.
        desc = await handle.describe()
        assert desc.status == SdkStatus.COMPLETED
        assert desc.state == PendingNexusOperationExecutionState.UNSPECIFIED
        assert desc.operation_token is None
        assert desc.schedule_to_close_timeout == timedelta(seconds=30)

        # What the handler is given: the server's request id, the caller's Nexus headers
        # (names lower-cased) with the operation's remaining time, a callback, and a link
        # back to the operation.
        oid, arg = op_id(), harness.unique("spy")
        handle = await nexus_client.start_operation(
            Handlers.spy,
            arg,
            id=oid,
            schedule_to_close_timeout=timedelta(seconds=30),
            headers={"X-Trace": "abc"},
        )
        assert await asyncio.wait_for(handle.result(), 30) == "seen"
        ctx = spied[arg]
        assert (ctx.service, ctx.operation) == (SERVICE, "spy")
        assert ctx.request_id == (await raw_describe(client, oid)).info.request_id
        assert ctx.headers["x-trace"] == "abc"
        remaining = ctx.headers["operation-timeout"]
        assert remaining.endswith("ms") and 0 < int(remaining[:-2]) <= 30_000
        assert ctx.callback_url  # the reference's: temporal://system
        assert ctx.inbound_links == [
            nexusrpc.Link(
                url=f"temporal:///namespaces/{NAMESPACE}/nexus-operations/{oid}/{handle.run_id}/details",
                type="temporal.api.common.v1.Link.NexusOperation",
            )
        ]


@pytest.mark.timeout(60)
async def test_async_operation_links_long_poll_and_outcome(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async with handler_worker(client, task_queue):
        oid, wf_id = op_id(), harness.unique("handler-wf")
        started = await raw_start(client, start_request(endpoint, "run_workflow", wf_id, oid))
        assert started.started

        polled = await raw_poll(client, oid, STAGE.NEXUS_OPERATION_WAIT_STAGE_STARTED)
        assert polled.run_id == started.run_id
        assert polled.wait_stage == STAGE.NEXUS_OPERATION_WAIT_STAGE_STARTED
        assert polled.operation_token
        assert polled.WhichOneof("outcome") is None
        # Waiting for CLOSED while the handler workflow blocks: the reference answers with an
        # empty response shortly before the caller's deadline, not DEADLINE_EXCEEDED.
        assert await raw_poll(client, oid, timeout=2) == PollNexusOperationExecutionResponse()

        # The handler workflow was started with a completion callback linking back to the
        # operation; the link is on the callback, not on the event.
        wf = client.get_workflow_handle(wf_id)
        first = (await wf.fetch_history()).events[0]
        assert first.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        callbacks = first.workflow_execution_started_event_attributes.completion_callbacks
        assert len(callbacks) == 1
        assert callbacks[0].WhichOneof("variant") == "nexus"
        assert list(callbacks[0].links) == [
            Link(
                nexus_operation=Link.NexusOperation(
                    namespace=NAMESPACE, operation_id=oid, run_id=started.run_id
                )
            )
        ]
        wf_run_id = (await wf.describe()).run_id

        d = await raw_describe(client, oid, include_input=True, include_outcome=True)
        info = d.info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING
        assert info.state == STATE.PENDING_NEXUS_OPERATION_STATE_STARTED
        assert info.attempt == 1
        assert info.operation_token == polled.operation_token
        assert info.HasField("last_attempt_complete_time")
        assert not info.HasField("close_time")
        assert info.state_transition_count == 2
        assert list(info.links) == [
            Link(
                workflow_event=Link.WorkflowEvent(
                    namespace=NAMESPACE,
                    workflow_id=wf_id,
                    run_id=wf_run_id,
                    event_ref=Link.WorkflowEvent.EventReference(
                        event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
                    ),
                )
            )
        ]
        assert value_of(d.input) == wf_id
        assert d.WhichOneof("outcome") is None
        assert d.long_poll_token

        # A describe with the long-poll token waits for the next change: the completion.
        long_poll = asyncio.create_task(
            raw_describe(
                client,
                oid,
                started.run_id,
                long_poll_token=d.long_poll_token,
                include_outcome=True,
                timeout=timedelta(seconds=20),
            )
        )
        await asyncio.sleep(1)
        assert not long_poll.done()
        await wf.signal(BlockingWorkflow.finish)
        changed = await asyncio.wait_for(long_poll, 20)
        assert changed.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
        assert value_of(changed.result) == f"workflow result for {wf_id}"

        done = await closed(client, oid)
        assert done.operation_token == polled.operation_token
        assert value_of(done.result) == f"workflow result for {wf_id}"

        d = await raw_describe(client, oid, include_outcome=True)
        assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
        assert d.info.state == STATE.PENDING_NEXUS_OPERATION_STATE_UNSPECIFIED
        assert d.info.state_transition_count == 3
        assert d.info.HasField("close_time")
        assert d.info.operation_token == polled.operation_token
        assert len(d.info.links) == 1
        assert value_of(d.result) == f"workflow result for {wf_id}"
        assert not d.HasField("input")

        handle = client.get_nexus_operation_handle(oid, result_type=str)
        assert await asyncio.wait_for(handle.result(), 30) == f"workflow result for {wf_id}"


@pytest.mark.timeout(60)
async def test_handler_failure_shapes(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    """The outcome is the failure the handler reported, not wrapped in a NexusOperation
    failure (unlike the workflow-caller side)."""
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    nexus_client = client.create_nexus_client(service=Handlers, endpoint=endpoint)
    internal_non_retryable = NexusHandlerFailureInfo(
        type="INTERNAL",
        retry_behavior=NexusHandlerErrorRetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE,
    )
    expected = {
        "handler_error": Failure(
            message="handler says x", nexus_handler_failure_info=internal_non_retryable
        ),
        # The Python worker wraps a non-retryable ApplicationError in an INTERNAL handler error.
        "application_error": Failure(
            message="Handler failed with non-retryable application error",
            nexus_handler_failure_info=internal_non_retryable,
            cause=Failure(
                message="app says x",
                application_failure_info=ApplicationFailureInfo(
                    type="MyErr", non_retryable=True, details=Payloads(payloads=[payload("d1")])
                ),
            ),
        ),
        "operation_error": Failure(
            message="operation failed: x",
            application_failure_info=ApplicationFailureInfo(
                type="OperationError", non_retryable=True
            ),
        ),
    }
    async with handler_worker(client, task_queue):
        for operation, failure in expected.items():
            oid = op_id()
            handle = await nexus_client.start_operation(operation, "x", id=oid)
            polled = await closed(client, oid)
            assert polled.WhichOneof("outcome") == "failure"
            # The handler's Python stack is on the failure that was raised.
            assert any(f.stack_trace for f in failure_chain(polled.failure))
            assert without_stacks(polled.failure) == failure, operation

            d = await raw_describe(client, oid, include_outcome=True)
            info = d.info
            assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_FAILED
            assert info.attempt == 1
            assert info.state_transition_count == 2
            assert d.failure == polled.failure
            assert info.last_attempt_failure == polled.failure
            assert info.last_attempt_complete_time == info.close_time

            cause = await failure_of(handle)
            if operation == "operation_error":
                assert isinstance(cause, ApplicationError)
                assert (cause.type, cause.message) == ("OperationError", "operation failed: x")
            else:
                assert isinstance(cause, nexusrpc.HandlerError)
                assert cause.type == nexusrpc.HandlerErrorType.INTERNAL
                assert cause.retryable is False
            if operation == "application_error":
                assert isinstance(cause.__cause__, ApplicationError)
                assert cause.__cause__.type == "MyErr"
                assert cause.__cause__.details == ("d1",)


@pytest.mark.timeout(60)
async def test_retryable_handler_error_backs_off(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    """A retryable handler error is retried with backoff; the description shows the
    attempts. Also: the summary, details and Nexus headers of the start request."""
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    oid, arg = op_id(), harness.unique("flaky")
    metadata = UserMetadata(summary=payload("my summary"), details=payload("my details"))
    req = start_request(
        endpoint, "flaky", arg, oid, user_metadata=metadata, nexus_header={"X-Trace": "abc"}
    )
    await raw_start(client, req)
    retryable = Failure(
        message="try again 1",
        nexus_handler_failure_info=NexusHandlerFailureInfo(type="INTERNAL"),
    )
    async with handler_worker(client, task_queue):

        async def backing_off() -> Any:
            info = (await raw_describe(client, oid)).info
            backs_off = info.state == STATE.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF
            return info if backs_off else None

        info = await wait_until(backing_off, timeout=10, what="first retry", interval=0.05)
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING
        # The attempt counter only moves on when the next attempt is made.
        assert info.attempt == 1
        assert without_stacks(info.last_attempt_failure) == retryable
        assert info.state_transition_count == 2
        backoff = (
            info.next_attempt_schedule_time.ToDatetime()
            - info.last_attempt_complete_time.ToDatetime()
        ).total_seconds()
        assert 0.5 <= backoff <= 2

        polled = await closed(client, oid)
        assert value_of(polled.result) == "ok after 3"
        info = (await raw_describe(client, oid)).info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
        assert info.attempt == 3
        assert info.state_transition_count == 6
        # The last failure stays after the success.
        assert info.last_attempt_failure.message == "try again 2"
        assert not info.HasField("next_attempt_schedule_time")
        # Header names are lower-cased.
        assert dict(info.nexus_header) == {"x-trace": "abc"}
        assert info.user_metadata == metadata
        desc = await client.get_nexus_operation_handle(oid).describe()
        assert await desc.static_summary() == "my summary"
        assert await desc.static_details() == "my details"


@pytest.mark.timeout(60)
async def test_cancel_started_operation(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async with handler_worker(client, task_queue):
        oid, wf_id = op_id(), harness.unique("handler-wf")
        await raw_start(client, start_request(endpoint, "run_workflow", wf_id, oid))
        token = await handler_started(client, oid)

        await raw_cancel(client, oid, "cancel-1", reason="because")
        info = (await raw_describe(client, oid)).info
        assert info.cancellation_info.reason == "because"
        assert info.cancellation_info.state in (
            CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED,
            CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED,
        )
        # Surprise: the reference records no requested_time.
        assert not info.cancellation_info.HasField("requested_time")

        # The same cancel request again is fine (another one is refused while the operation
        # runs, but here it may be closed already: see test_cancel_before_the_handler_started).
        await raw_cancel(client, oid, "cancel-1", reason="because")

        # The handler workflow is cancelled, and its completion closes the operation.
        polled = await closed(client, oid)
        assert polled.failure == CANCELED
        assert polled.operation_token == token
        d = await raw_describe(client, oid, include_outcome=True)
        info = d.info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED
        assert d.failure == CANCELED
        ci = info.cancellation_info
        assert ci.state == CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
        assert (ci.attempt, ci.reason) == (1, "because")
        assert ci.HasField("last_attempt_complete_time")
        assert info.operation_token == token
        status = (await client.get_workflow_handle(wf_id).describe()).status
        assert status == WorkflowExecutionStatus.CANCELED

        # Cancelling a closed operation: refused, except for the request already recorded.
        err = await rpc_error(raw_cancel(client, oid, reason="late"))
        assert_precondition(err, "operation already completed")
        await raw_cancel(client, oid, "cancel-1", reason="because")

        cause = await failure_of(client.get_nexus_operation_handle(oid))
        assert isinstance(cause, CancelledError)
        assert cause.message == "operation canceled"

        # Through the SDK: the reason shows in the description.
        oid = op_id()
        nexus_client = client.create_nexus_client(service=Handlers, endpoint=endpoint)
        handle = await nexus_client.start_operation(
            Handlers.run_workflow, harness.unique("handler-wf"), id=oid
        )
        await handler_started(client, oid)
        await handle.cancel(reason="sdk reason")
        assert isinstance(await failure_of(handle), CancelledError)
        desc = await handle.describe()
        assert desc.status == SdkStatus.CANCELED
        assert desc.cancellation_info is not None
        assert desc.cancellation_info.reason == "sdk reason"


@pytest.mark.timeout(60)
async def test_cancel_before_the_handler_started(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    """Without a handler worker the operation stays SCHEDULED; a cancel request is recorded
    and held until the start is delivered."""
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async_id, sync_id, wf_id = op_id(), op_id(), harness.unique("handler-wf")
    await raw_start(client, start_request(endpoint, "run_workflow", wf_id, async_id))
    await raw_start(client, start_request(endpoint, "echo", "x", sync_id))
    for oid in (async_id, sync_id):
        await raw_cancel(client, oid, "cancel-1", reason="not yet")
        info = (await raw_describe(client, oid)).info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING
        assert info.state == STATE.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
        ci = info.cancellation_info
        assert ci.reason == "not yet"
        assert ci.state == CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_UNSPECIFIED
        assert ci.attempt == 0
        assert info.state_transition_count == 2
        err = await rpc_error(raw_cancel(client, oid, "cancel-2"))
        assert_precondition(err, "cancellation already requested with request ID cancel-1")

    async with handler_worker(client, task_queue):
        # The async operation starts its workflow, which is then cancelled.
        assert (await closed(client, async_id)).failure == CANCELED
        info = (await raw_describe(client, async_id)).info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED
        assert info.cancellation_info.state == CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
        status = (await client.get_workflow_handle(wf_id).describe()).status
        assert status == WorkflowExecutionStatus.CANCELED

        # The sync operation completes when started: there is nothing left to cancel.
        assert value_of((await closed(client, sync_id)).result) == "echo x"
        info = (await raw_describe(client, sync_id)).info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED
        assert info.cancellation_info.state == CANCEL.NEXUS_OPERATION_CANCELLATION_STATE_UNSPECIFIED
        assert info.cancellation_info.reason == "not yet"


@pytest.mark.timeout(60)
async def test_terminate(client: Client, task_queue: str, op_id: Callable[[], str]) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async with handler_worker(client, task_queue):
        oid, wf_id = op_id(), harness.unique("handler-wf")
        await raw_start(client, start_request(endpoint, "run_workflow", wf_id, oid))
        token = await handler_started(client, oid)
        await raw_terminate(client, oid, "term-1", reason="stop it", identity="terminator")

        d = await raw_describe(client, oid, include_outcome=True)
        expected = Failure(
            message="stop it", terminated_failure_info=TerminatedFailureInfo(identity="terminator")
        )
        assert d.info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED
        assert d.failure == expected
        assert d.info.state_transition_count == 3
        assert d.info.operation_token == token
        assert not d.info.HasField("cancellation_info")
        assert (await closed(client, oid)).failure == expected
        # The handler workflow is left running.
        status = (await client.get_workflow_handle(wf_id).describe()).status
        assert status == WorkflowExecutionStatus.RUNNING

        await raw_terminate(client, oid, "term-1", reason="stop it")
        for request_id in ("term-2", ""):
            err = await rpc_error(raw_terminate(client, oid, request_id, reason="again"))
            assert_precondition(err, "already terminated with request ID term-1")
        err = await rpc_error(raw_cancel(client, oid, "term-1"))
        assert_precondition(err, "operation already completed")

        cause = await failure_of(client.get_nexus_operation_handle(oid))
        assert isinstance(cause, TerminatedError)
        assert cause.message == "stop it"

        # No reason: no default message.
        oid = op_id()
        await raw_start(
            client, start_request(endpoint, "run_workflow", harness.unique("handler-wf"), oid)
        )
        await raw_terminate(client, oid)
        assert (await closed(client, oid)).failure == Failure(
            terminated_failure_info=TerminatedFailureInfo(identity=IDENTITY)
        )

        # Completed and failed operations cannot be terminated.
        for operation, state in (("echo", "Succeeded"), ("handler_error", "Failed")):
            oid = op_id()
            await raw_start(client, start_request(endpoint, operation, "x", oid))
            await closed(client, oid)
            err = await rpc_error(raw_terminate(client, oid, reason="late"))
            assert_precondition(err, f"invalid transition from {state}")

        # Through the SDK.
        nexus_client = client.create_nexus_client(service=SERVICE, endpoint=endpoint)
        handle = await nexus_client.start_operation(
            "run_workflow", harness.unique("handler-wf"), id=op_id(), result_type=str
        )
        await handler_started(client, handle.operation_id)
        await handle.terminate(reason="sdk terminate")
        cause = await failure_of(handle)
        assert isinstance(cause, TerminatedError)
        assert cause.message == "sdk terminate"
        assert (await handle.describe()).status == SdkStatus.TERMINATED


@pytest.mark.timeout(60)
async def test_id_conflict_and_reuse_policies(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    # No handler worker yet: the first operation stays running.
    oid = op_id()
    first = start_request(endpoint, "echo", "x", oid)
    resp = await raw_start(client, first)
    assert resp.started
    run_id = resp.run_id
    assert uuid.UUID(run_id)

    # The same request again: the same run, not started anew (any policy, any operation).
    again = StartNexusOperationExecutionRequest()
    again.CopyFrom(first)
    again.operation = "something_else"
    assert await raw_start(client, again) == StartNexusOperationExecutionResponse(
        run_id=run_id, started=False
    )

    # Another request for the running id: FAIL (the default) refuses it.
    second = start_request(endpoint, "echo", "y", oid)
    err = await rpc_error(raw_start(client, second))
    assert err.status == RPCStatusCode.ALREADY_EXISTS
    assert err.message == (
        f"nexus operation execution already started: request_id={first.request_id}, run_id={run_id}"
    )
    assert detail_types(err) == [
        "temporal.api.errordetails.v1.NexusOperationExecutionAlreadyStartedFailure"
    ]
    details = NexusOperationExecutionAlreadyStartedFailure()
    assert err.grpc_status.details[0].Unpack(details)
    assert details == NexusOperationExecutionAlreadyStartedFailure(
        start_request_id=first.request_id, run_id=run_id
    )

    # USE_EXISTING hands back the running one, whatever the new request asks for.
    second.id_conflict_policy = CONFLICT.NEXUS_OPERATION_ID_CONFLICT_POLICY_USE_EXISTING
    second.operation = "other_operation"
    assert await raw_start(client, second) == StartNexusOperationExecutionResponse(
        run_id=run_id, started=False
    )

    nexus_client = client.create_nexus_client(service=Handlers, endpoint=endpoint)
    with pytest.raises(NexusOperationAlreadyStartedError) as info:
        await nexus_client.start_operation(Handlers.echo, "z", id=oid)
    assert (info.value.operation_id, info.value.run_id) == (oid, run_id)
    handle = await nexus_client.start_operation(
        Handlers.echo,
        "z",
        id=oid,
        id_conflict_policy=NexusOperationIDConflictPolicy.USE_EXISTING,
    )
    assert handle.run_id == run_id

    async with handler_worker(client, task_queue):
        assert await asyncio.wait_for(handle.result(), 30) == "echo x"

        # Reuse of a closed operation's id.
        async def closed_run(operation: str) -> tuple[str, StartNexusOperationExecutionRequest]:
            req = start_request(endpoint, operation, "x", op_id())
            await raw_start(client, req)
            await closed(client, req.operation_id)
            return req.operation_id, req

        cases = [
            ("echo", REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_REJECT_DUPLICATE, False),
            ("handler_error", REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_REJECT_DUPLICATE, False),
            ("echo", REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY, False),
            (
                "handler_error",
                REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
                True,
            ),
            ("echo", REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE, True),
            ("echo", REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_UNSPECIFIED, True),
        ]
        for operation, policy, allowed in cases:
            reused, earlier = await closed_run(operation)
            earlier_run = (await raw_describe(client, reused)).run_id
            req = start_request(endpoint, "echo", "again", reused, id_reuse_policy=policy)
            what = f"{operation} then {REUSE.Name(policy)}"
            if allowed:
                resp = await raw_start(client, req)
                assert resp.started, what
                assert resp.run_id != earlier_run, what
                assert value_of((await closed(client, reused)).result) == "echo again"
                assert (await raw_describe(client, reused)).run_id == resp.run_id
            else:
                err = await rpc_error(raw_start(client, req))
                assert err.status == RPCStatusCode.ALREADY_EXISTS, what
                assert err.message == (
                    "nexus operation execution already started: "
                    f"request_id={earlier.request_id}, run_id={earlier_run}"
                ), what

        # A terminated operation counts as failed for ALLOW_DUPLICATE_FAILED_ONLY.
        oid = op_id()
        await raw_start(
            client, start_request(endpoint, "run_workflow", harness.unique("handler-wf"), oid)
        )
        await raw_terminate(client, oid)
        # The new run is an async operation whose handler workflow waits for a signal, so it
        # is still running when USE_EXISTING asks (a sync one can finish first, and then
        # REJECT_DUPLICATE refuses the id instead).
        after = harness.unique("handler-wf")
        resp = await raw_start(
            client,
            start_request(
                endpoint,
                "run_workflow",
                after,
                oid,
                id_reuse_policy=REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY,
            ),
        )
        assert resp.started
        handle = await nexus_client.start_operation(
            Handlers.echo,
            "ignored",
            id=oid,
            id_reuse_policy=NexusOperationIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=NexusOperationIDConflictPolicy.USE_EXISTING,
        )
        assert handle.run_id == resp.run_id

        async def finished() -> bool:
            try:
                await client.get_workflow_handle(after).signal(BlockingWorkflow.finish)
            except RPCError:
                return False  # the handler has not started it yet
            return True

        await harness.wait_until(finished, timeout=20, what="the handler workflow signalled")
        assert await asyncio.wait_for(handle.result(), 30) == f"workflow result for {after}"


@pytest.mark.timeout(60)
async def test_start_validation(client: Client, task_queue: str, op_id: Callable[[], str]) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)

    async def start(**kwargs: Any) -> RPCError:
        kwargs.setdefault("operation_id", op_id())
        req = start_request(
            kwargs.pop("endpoint", endpoint),
            kwargs.pop("operation", "echo"),
            "x",
            **kwargs,
        )
        return await rpc_error(raw_start(client, req))

    assert_invalid(await start(operation_id=""), "operation_id is required")
    assert_invalid(await start(endpoint=""), "endpoint is required")
    assert_invalid(await start(service=""), "service is required")
    assert_invalid(await start(operation=""), "operation is required")
    for field in ("schedule_to_close", "schedule_to_start", "start_to_close"):
        err = await start(**{f"{field}_timeout": Duration(seconds=-5)})
        assert_invalid(err, f"{field}_timeout is invalid: negative duration")
    err = await start(operation_id="x" * 1001)
    assert_invalid(err, "operation_id exceeds length limit. Length=1001 Limit=1000")
    err = await start(service="s" * 1001)
    assert_invalid(err, "service exceeds length limit. Length=1001 Limit=1000")
    err = await start(operation="o" * 1001)
    assert_invalid(err, "operation exceeds length limit. Length=1001 Limit=1000")
    err = await start(request_id="r" * 1001)
    assert_invalid(err, "request_id exceeds length limit. Length=1001 Limit=1000")
    err = await start(identity="i" * 1001)
    assert_invalid(err, "identity exceeds length limit. Length=1001 Limit=1000")
    for err in (await start(operation_id="x" * 1001), await start(service="")):
        assert err.grpc_status.details == []

    # Endpoints are cluster-wide and the Cassandra run shares its store between tests: a
    # name of this test's own.
    missing = f"missing-{task_queue}"
    err = await start(endpoint=missing)
    assert err.status == RPCStatusCode.NOT_FOUND
    assert err.message == f"could not find Nexus endpoint by name: {missing}"
    assert detail_types(err) == ["temporal.api.errordetails.v1.NotFoundFailure"]

    err = await start(namespace="no-such-namespace")
    assert err.status == RPCStatusCode.NOT_FOUND
    assert err.message == "Namespace no-such-namespace is not found."
    failure = NamespaceNotFoundFailure()
    assert err.grpc_status.details[0].Unpack(failure)
    assert failure.namespace == "no-such-namespace"

    # Accepted: a 1000-character id, no request id, no schedule-to-close timeout (then the
    # operation has none, and no expiration time), a schedule-to-start timeout longer than
    # the schedule-to-close one (capped to it).
    long_id = "x" * 1000
    assert (await raw_start(client, start_request(endpoint, "echo", "x", long_id))).started
    assert (await raw_describe(client, long_id)).info.operation_id == long_id
    oid = op_id()
    assert (
        await raw_start(client, start_request(endpoint, "echo", "x", oid, request_id=""))
    ).started
    oid = op_id()
    req = start_request(endpoint, "echo", "x", oid)
    req.ClearField("schedule_to_close_timeout")
    assert (await raw_start(client, req)).started
    info = (await raw_describe(client, oid)).info
    assert not info.HasField("schedule_to_close_timeout")
    assert not info.HasField("expiration_time")
    oid = op_id()
    req = start_request(endpoint, "echo", "x", oid, schedule_to_start_timeout=Duration(seconds=60))
    assert (await raw_start(client, req)).started
    info = (await raw_describe(client, oid)).info
    assert info.schedule_to_start_timeout == Duration(seconds=30)
    assert info.schedule_to_close_timeout == Duration(seconds=30)
    assert info.state == STATE.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
    assert info.state_transition_count == 1


@pytest.mark.timeout(60)
async def test_unknown_operation_and_bad_arguments(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    unknown = op_id()
    calls: list[Callable[[str, str], Awaitable[Any]]] = [
        lambda oid, run: raw_describe(client, oid, run),
        lambda oid, run: raw_poll(client, oid, run_id=run),
        lambda oid, run: raw_cancel(client, oid, run_id=run),
        lambda oid, run: raw_terminate(client, oid, run_id=run),
        lambda oid, run: raw_delete(client, oid, run),
    ]
    for call in calls:
        assert_not_found(await rpc_error(call(unknown, "")), unknown)
        assert_invalid(await rpc_error(call("", "")), "operation_id is required")

    endpoint = await harness.create_worker_endpoint(client, task_queue)
    oid = op_id()
    run_id = (await raw_start(client, start_request(endpoint, "echo", "x", oid))).run_id
    other = op_id()
    await raw_start(client, start_request(endpoint, "echo", "x", other))
    for call in calls:
        assert_invalid(await rpc_error(call(oid, "not-a-uuid")), "run_id is not a valid UUID")
        assert_not_found(await rpc_error(call(oid, str(uuid.uuid4()))), oid)
        # Another operation's run id.
        other_run = (await raw_describe(client, other)).run_id
        assert_not_found(await rpc_error(call(oid, other_run)), oid)

    d = await raw_describe(client, oid)
    err = await rpc_error(raw_describe(client, oid, long_poll_token=d.long_poll_token))
    assert_invalid(err, "run_id is required when long_poll_token is provided")
    err = await rpc_error(raw_describe(client, oid, run_id, long_poll_token=b"garbage"))
    assert_invalid(err, "invalid long poll token")
    other_token = (await raw_describe(client, other)).long_poll_token
    err = await rpc_error(raw_describe(client, oid, run_id, long_poll_token=other_token))
    assert_invalid(err, "long poll token does not match execution")

    err = await rpc_error(raw_poll(client, oid, stage=99))
    assert_invalid(err, "unsupported wait_stage: 99")
    err = await rpc_error(raw_cancel(client, oid, reason="r" * 1001))
    assert_invalid(err, "reason exceeds length limit. Length=1001 Limit=1000")


@pytest.mark.timeout(60)
async def test_describe_long_poll_returns_on_change_or_before_the_deadline(
    client: Client, task_queue: str, op_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    oid = op_id()  # no handler worker: the operation rests in SCHEDULED
    run_id = (await raw_start(client, start_request(endpoint, "echo", "x", oid))).run_id
    d = await raw_describe(client, oid)
    assert d.info.state_transition_count == 1

    # Nothing changes: an empty answer about a second before the caller's deadline.
    started = time.monotonic()
    resp = await raw_describe(
        client, oid, run_id, long_poll_token=d.long_poll_token, timeout=timedelta(seconds=3)
    )
    assert resp == DescribeNexusOperationExecutionResponse()
    assert 1 <= time.monotonic() - started < 3

    # A cancel request changes the state: the long poll returns the new description.
    long_poll = asyncio.create_task(
        raw_describe(
            client, oid, run_id, long_poll_token=d.long_poll_token, timeout=timedelta(seconds=20)
        )
    )
    await asyncio.sleep(0.5)
    assert not long_poll.done()
    await raw_cancel(client, oid, reason="wake up")
    changed = await asyncio.wait_for(long_poll, 20)
    assert changed.run_id == run_id
    assert changed.info.cancellation_info.reason == "wake up"
    assert changed.info.state_transition_count == 2
    assert changed.long_poll_token and changed.long_poll_token != d.long_poll_token


@pytest.mark.timeout(60)
async def test_timeouts(client: Client, task_queue: str, op_id: Callable[[], str]) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    # No handler worker: schedule-to-close and schedule-to-start fire.
    s2c, s2s = op_id(), op_id()
    await raw_start(
        client,
        start_request(endpoint, "echo", "x", s2c, schedule_to_close_timeout=Duration(seconds=2)),
    )
    await raw_start(
        client,
        start_request(endpoint, "echo", "x", s2s, schedule_to_start_timeout=Duration(seconds=1)),
    )
    for oid, timeout_type, limit in (
        (s2c, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 2),
        (s2s, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, 1),
    ):
        expected = timed_out(timeout_type)
        assert (await closed(client, oid)).failure == expected
        d = await raw_describe(client, oid, include_outcome=True)
        info = d.info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT
        assert d.failure == expected
        assert info.last_attempt_failure == expected
        took = (info.close_time.ToDatetime() - info.schedule_time.ToDatetime()).total_seconds()
        # Surprise: the reference may close well before the expiration time (seen 0.3 s to
        # 1.94 s for a 2 s schedule-to-close timeout, always after a second start attempt):
        # it seems to give up once a failed start attempt leaves too little time for another.
        # The failure of that attempt is the timeout itself (asserted above).
        assert 0 < took <= limit + 3

    cause = await failure_of(client.get_nexus_operation_handle(s2c))
    assert isinstance(cause, TemporalTimeoutError)
    assert cause.message == "operation timed out"

    # Start-to-close: the handler started a workflow that does not finish in time; the
    # workflow is left running.
    async with handler_worker(client, task_queue):
        oid, wf_id = op_id(), harness.unique("handler-wf")
        req = start_request(
            endpoint, "run_workflow", wf_id, oid, start_to_close_timeout=Duration(seconds=2)
        )
        await raw_start(client, req)
        token = await handler_started(client, oid)
        polled = await closed(client, oid)
        assert polled.failure == timed_out(TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)
        assert polled.operation_token == token
        info = (await raw_describe(client, oid)).info
        assert info.status == S.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT
        assert not info.HasField("last_attempt_failure")
        assert info.start_to_close_timeout == Duration(seconds=2)
        status = (await client.get_workflow_handle(wf_id).describe()).status
        assert status == WorkflowExecutionStatus.RUNNING


@pytest.mark.timeout(60)
async def test_list_and_count(client: Client, task_queue: str, op_id: Callable[[], str]) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async with handler_worker(client, task_queue):
        done, failed, running = op_id(), op_id(), op_id()
        await raw_start(client, start_request(endpoint, "echo", "x", done))
        await raw_start(client, start_request(endpoint, "handler_error", "x", failed))
        await raw_start(
            client,
            start_request(endpoint, "run_workflow", harness.unique("handler-wf"), running),
        )
        await closed(client, done)
        await closed(client, failed)
        await handler_started(client, running)

        ops = await listed(client, f'Endpoint = "{endpoint}"', 3)
        by_id = {op.operation_id: op for op in ops}
        assert set(by_id) == {done, failed, running}
        for oid, op in by_id.items():
            info = (await raw_describe(client, oid)).info
            assert (op.run_id, op.endpoint, op.service, op.operation) == (
                info.run_id,
                endpoint,
                SERVICE,
                info.operation,
            )
            # Visibility keeps its own copy of the times, microseconds and a little apart.
            assert close_to(op.schedule_time, info.schedule_time)
            assert op.status == info.status
            if oid == running:
                # Running entries carry neither a close time nor a transition count.
                assert not op.HasField("close_time")
                assert op.state_transition_count == 0
                assert not op.HasField("execution_duration")
            else:
                assert close_to(op.close_time, info.close_time)
                assert op.state_transition_count == info.state_transition_count == 2
                assert op.HasField("execution_duration")
        # Running first.
        assert ops[0].operation_id == running

        scoped = f"Endpoint = '{endpoint}' AND "
        queries = {
            f"OperationId = '{done}'": {done},
            f'`OperationId`="{failed}"': {failed},
            f"OperationId IN ('{done}', '{running}')": {done, running},
            scoped + "Operation = 'echo'": {done},
            scoped + f"Service = '{SERVICE}'": {done, failed, running},
            scoped + "ExecutionStatus = 'Running'": {running},
            scoped + "ExecutionStatus = 'Completed'": {done},
            scoped + "ExecutionStatus = 'Failed'": {failed},
            scoped + "CloseTime IS NULL": {running},
            scoped + f"RunId = '{by_id[done].run_id}'": {done},
            scoped + "StateTransitionCount = 2": {done, failed},
        }
        for query, expected in queries.items():
            found = {op.operation_id for op in await listed(client, query, len(expected))}
            assert found == expected, query
            assert await count(client, query) == len(expected), query
        # RequestId is the server's request id (the one Describe shows).
        request_id = (await raw_describe(client, done)).info.request_id
        assert await count(client, scoped + f"RequestId = '{request_id}'") == 1

        # Through the SDK.
        listed_sdk = [op async for op in client.list_nexus_operations(f"Endpoint = '{endpoint}'")]
        assert {op.operation_id for op in listed_sdk} == {done, failed, running}
        assert {op.status for op in listed_sdk} == {
            SdkStatus.COMPLETED,
            SdkStatus.FAILED,
            SdkStatus.RUNNING,
        }
        counted = await client.count_nexus_operations(f"Endpoint = '{endpoint}'")
        assert counted.count == 3

        grouped = await client.workflow_service.count_nexus_operation_executions(
            CountNexusOperationExecutionsRequest(
                namespace=NAMESPACE, query=f"Endpoint = '{endpoint}' GROUP BY ExecutionStatus"
            )
        )
        assert grouped.count == 3
        groups = {json.loads(g.group_values[0].data): g.count for g in grouped.groups}
        assert groups == {"Completed": 1, "Failed": 1, "Running": 1}
        assert [g.group_values[0].metadata["type"] for g in grouped.groups] == [b"Keyword"] * 3
        assert [json.loads(g.group_values[0].data) for g in grouped.groups] == sorted(groups)

        bad = {
            "Bogus = 'x'": "invalid query: invalid search attribute: Bogus",
            "ActivityId = 'x'": "invalid query: invalid search attribute: ActivityId",
            f"Endpoint = '{endpoint}' ORDER BY StartTime DESC": (
                "invalid query: operation is not supported: 'ORDER BY' clause"
            ),
        }
        for query, message in bad.items():
            err = await rpc_error(
                client.workflow_service.list_nexus_operation_executions(
                    ListNexusOperationExecutionsRequest(namespace=NAMESPACE, query=query),
                    retry=False,
                )
            )
            assert_invalid(err, message)
        assert_invalid(
            await rpc_error(count(client, "Bogus = 'x'")),
            "invalid query: invalid search attribute: Bogus",
        )
        assert_invalid(
            await rpc_error(count(client, f"Endpoint = '{endpoint}' GROUP BY Operation")),
            "invalid query: operation is not supported: 'GROUP BY' clause is not supported "
            "for search attribute Operation",
        )


@pytest.mark.timeout(60)
async def test_delete(client: Client, task_queue: str, op_id: Callable[[], str]) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    async with handler_worker(client, task_queue):
        oid = op_id()
        run_id = (await raw_start(client, start_request(endpoint, "echo", "x", oid))).run_id
        await closed(client, oid)
        await listed(client, f"OperationId = '{oid}'", 1)

        assert_invalid(
            await rpc_error(raw_delete(client, oid, "not-a-uuid")), "run_id is not a valid UUID"
        )
        assert_not_found(await rpc_error(raw_delete(client, oid, str(uuid.uuid4()))), oid)
        await raw_delete(client, oid, run_id)
        await gone(client, oid)
        assert_not_found(await rpc_error(raw_poll(client, oid)), oid)
        assert_not_found(await rpc_error(raw_delete(client, oid)), oid)
        await listed(client, f"OperationId = '{oid}'", 0)

        # The id is free again, even for REJECT_DUPLICATE.
        req = start_request(
            endpoint,
            "echo",
            "y",
            oid,
            id_reuse_policy=REUSE.NEXUS_OPERATION_ID_REUSE_POLICY_REJECT_DUPLICATE,
        )
        resp = await raw_start(client, req)
        assert resp.started and resp.run_id != run_id
        assert value_of((await closed(client, oid)).result) == "echo y"

        # A running operation can be deleted too.
        oid = op_id()
        await raw_start(
            client, start_request(endpoint, "run_workflow", harness.unique("handler-wf"), oid)
        )
        await handler_started(client, oid)
        await raw_delete(client, oid)
        await gone(client, oid)
