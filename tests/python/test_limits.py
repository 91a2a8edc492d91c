"""Workflow id reuse and conflict policies not covered by test_workflow_ids.py, start request
idempotency, and the server's size limits on payloads, memos and ids."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.common.v1 import Payloads, WorkflowType
from temporalio.api.enums.v1 import EventType
from temporalio.api.namespace.v1 import UpdateNamespaceInfo
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    RegisterNamespaceRequest,
    StartWorkflowExecutionRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, TerminatedError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, history_events, result_within, wait_for_event, worker

ET = EventType
REUSE = WorkflowIDReusePolicy
CONFLICT = WorkflowIDConflictPolicy
MiB = 1024 * 1024


@workflow.defn
class WaitForSignals:
    """Completes with the signals received once `expected` have arrived; fails on "fail"."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(value)

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        if "fail" in self.received:
            raise ApplicationError("asked to fail", non_retryable=True)
        return self.received


WORKFLOWS = [WaitForSignals]


async def start(client: Client, wf_id: str, task_queue: str, expected: int = 1, **kwargs):
    return await client.start_workflow(
        WaitForSignals.run, expected, id=wf_id, task_queue=task_queue, **kwargs
    )


def last_event(events):
    return events[-1]


# --------------------------------------------------------------------------- id policies


@pytest.mark.timeout(60)
async def test_reuse_policy_terminate_if_running(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await start(client, wf_id, task_queue)
        await wait_for_event(first, "WORKFLOW_TASK_COMPLETED", timeout=30)
        second = await start(client, wf_id, task_queue, id_reuse_policy=REUSE.TERMINATE_IF_RUNNING)
        assert second.result_run_id != first.result_run_id
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(first, 30)
        assert isinstance(info.value.cause, TerminatedError)
        old = client.get_workflow_handle(wf_id, run_id=first.result_run_id)
        assert (await old.describe()).status == WorkflowExecutionStatus.TERMINATED
        terminated = last_event(await history_events(old))
        assert terminated.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        attrs = terminated.workflow_execution_terminated_event_attributes
        assert attrs.reason == "TerminateIfRunning WorkflowIdReusePolicy"
        assert attrs.details.payloads[0].data == (
            f'"terminated by new runID: {second.result_run_id}"'.encode()
        )
        await client.get_workflow_handle(wf_id).signal(WaitForSignals.add, "x")
        assert await result_within(second, 30) == ["x"]
        # With nothing running, TERMINATE_IF_RUNNING just starts another run.
        third = await start(
            client, wf_id, task_queue, expected=0, id_reuse_policy=REUSE.TERMINATE_IF_RUNNING
        )
        assert await result_within(third, 30) == []


@pytest.mark.timeout(60)
async def test_conflict_policy_terminate_existing(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await start(client, wf_id, task_queue)
        await wait_for_event(first, "WORKFLOW_TASK_COMPLETED", timeout=30)
        second = await start(
            client, wf_id, task_queue, id_conflict_policy=CONFLICT.TERMINATE_EXISTING
        )
        assert second.result_run_id != first.result_run_id
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(first, 30)
        assert isinstance(info.value.cause, TerminatedError)
        old = client.get_workflow_handle(wf_id, run_id=first.result_run_id)
        old_events = await history_events(old)
        assert old_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        current = await client.get_workflow_handle(wf_id).describe()
        assert current.run_id == second.result_run_id
        assert current.status == WorkflowExecutionStatus.RUNNING
        await client.get_workflow_handle(wf_id).signal(WaitForSignals.add, "x")
        assert await result_within(second, 30) == ["x"]


@pytest.mark.timeout(60)
async def test_conflict_policy_applies_only_to_running_workflows(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await start(client, wf_id, task_queue, expected=0)
        assert await result_within(first, 30) == []
        # USE_EXISTING has nothing running to return: the reuse policy decides, and it allows.
        second = await start(
            client, wf_id, task_queue, expected=0, id_conflict_policy=CONFLICT.USE_EXISTING
        )
        assert second.result_run_id != first.result_run_id
        assert await result_within(second, 30) == []
        # With REJECT_DUPLICATE the closed run still blocks the id.
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(
                client,
                wf_id,
                task_queue,
                id_conflict_policy=CONFLICT.USE_EXISTING,
                id_reuse_policy=REUSE.REJECT_DUPLICATE,
            )


@pytest.mark.timeout(60)
async def test_conflict_policy_fail_is_the_default(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await start(client, wf_id, task_queue)
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            await start(client, wf_id, task_queue, id_conflict_policy=CONFLICT.FAIL)
        assert info.value.run_id == first.result_run_id
        # Even ALLOW_DUPLICATE does not start a second run while one is running.
        with pytest.raises(WorkflowAlreadyStartedError):
            await start(client, wf_id, task_queue, id_reuse_policy=REUSE.ALLOW_DUPLICATE)
        await first.signal(WaitForSignals.add, "x")
        assert await result_within(first, 30) == ["x"]


@pytest.mark.timeout(60)
async def test_allow_duplicate_failed_only_counts_terminated_and_canceled(
    client, task_queue, new_id
):
    policy = REUSE.ALLOW_DUPLICATE_FAILED_ONLY
    async with worker(client, task_queue, workflows=WORKFLOWS):
        terminated_id, canceled_id = new_id(), new_id()
        terminated = await start(client, terminated_id, task_queue)
        await terminated.terminate(reason="test")
        canceled = await start(client, canceled_id, task_queue)
        await wait_for_event(canceled, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await canceled.cancel()
        with pytest.raises(WorkflowFailureError):
            await result_within(canceled, 30)
        assert (await canceled.describe()).status == WorkflowExecutionStatus.CANCELED
        for wf_id in (terminated_id, canceled_id):
            again = await start(client, wf_id, task_queue, expected=0, id_reuse_policy=policy)
            assert await result_within(again, 30) == []
            # Now the latest run completed: the policy rejects a further start.
            with pytest.raises(WorkflowAlreadyStartedError):
                await start(client, wf_id, task_queue, expected=0, id_reuse_policy=policy)


@pytest.mark.timeout(60)
async def test_invalid_policy_combinations_are_rejected(client, task_queue, new_id):
    cases = [
        (
            {
                "id_reuse_policy": REUSE.REJECT_DUPLICATE,
                "id_conflict_policy": CONFLICT.TERMINATE_EXISTING,
            },
            (
                "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE cannot be"
                " used together with WorkflowIdConflictPolicy"
                " WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING"
            ),
        ),
        (
            {"id_reuse_policy": REUSE.TERMINATE_IF_RUNNING, "id_conflict_policy": CONFLICT.FAIL},
            (
                "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING"
                " cannot be used together with a WorkflowIDConflictPolicy"
            ),
        ),
    ]
    for kwargs, message in cases:
        with pytest.raises(RPCError) as err:
            await start(client, new_id(), task_queue, **kwargs)
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert err.value.message == message


@pytest.mark.timeout(60)
async def test_start_with_same_request_id_is_idempotent(client, task_queue, new_id):
    wf_id = new_id()
    request = StartWorkflowExecutionRequest(
        namespace=NAMESPACE,
        workflow_id=wf_id,
        workflow_type=WorkflowType(name="WaitForSignals"),
        task_queue=TaskQueue(name=task_queue),
        input=Payloads(payloads=[client.data_converter.payload_converter.to_payload(0)]),
        request_id=str(uuid.uuid4()),
        identity="test",
    )
    first = await client.workflow_service.start_workflow_execution(request)
    assert first.started
    again = await client.workflow_service.start_workflow_execution(request)
    assert again.run_id == first.run_id, "a retried start returns the same run"
    # A different request id for the same running workflow id is a conflict.
    request.request_id = str(uuid.uuid4())
    with pytest.raises(RPCError) as err:
        await client.workflow_service.start_workflow_execution(request)
    assert err.value.status == RPCStatusCode.ALREADY_EXISTS
    async with worker(client, task_queue, workflows=WORKFLOWS):
        assert await result_within(client.get_workflow_handle(wf_id), 30) == []
    events = await history_events(client.get_workflow_handle(wf_id))
    assert sum(e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED for e in events) == 1


# --------------------------------------------------------------------------- size limits


@pytest.mark.timeout(60)
async def test_too_large_signal_is_rejected(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await start(client, new_id(), task_queue)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        with pytest.raises(RPCError) as err:
            await handle.signal(WaitForSignals.add, "x" * (2 * MiB + 100))
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert err.value.message == "Blob data size exceeds limit."
        # Nothing was recorded, and the workflow takes a large but allowed signal.
        events = await history_events(handle)
        assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in [e.event_type for e in events]
        await handle.signal(WaitForSignals.add, "y" * MiB)
        result = await result_within(handle, 30)
        assert [len(v) for v in result] == [MiB]


@pytest.mark.timeout(60)
async def test_too_large_start_input_and_memo_are_rejected(client, task_queue, new_id):
    big = "x" * (2 * MiB + 100)
    refused = [new_id(), new_id()]
    with pytest.raises(RPCError) as err:
        await client.start_workflow(WaitForSignals.run, big, id=refused[0], task_queue=task_queue)
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == "Blob data size exceeds limit."
    with pytest.raises(RPCError) as err:
        await start(client, refused[1], task_queue, memo={"big": big})
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == "Memo size exceeds limit."
    # Nothing was started: neither id names a workflow.
    for wf_id in refused:
        with pytest.raises(RPCError) as err:
            await client.get_workflow_handle(wf_id).describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND
    # A 100 KB memo is fine.
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await start(client, new_id(), task_queue, expected=0, memo={"m": "z" * 100_000})
        assert await result_within(handle, 30) == []
        assert len((await (await handle.describe()).memo())["m"]) == 100_000


@pytest.mark.timeout(60)
async def test_too_long_workflow_id_is_rejected(client, task_queue):
    with pytest.raises(RPCError) as err:
        await start(client, "w" * 1001, task_queue)
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == "WorkflowId exceeds maximum allowed length (1001/1000)"
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await start(client, "w" * 1000, task_queue, expected=0)
        assert await result_within(handle, 30) == []


@pytest.mark.skipif(
    harness.server_kind() == "temporal",
    reason="the bound on namespace data is temper's; the reference server sets none",
)
@pytest.mark.timeout(60)
async def test_namespace_data_is_bounded(client):
    """A namespace's data (keys and values together) holds at most 256 KiB; a registration or
    an update past that is refused and changes nothing."""
    limit = 256 * 1024
    name = f"data-{uuid.uuid4().hex[:8]}"
    svc = client.workflow_service
    week = Duration(seconds=7 * 24 * 3600)
    with pytest.raises(RPCError) as err:
        await svc.register_namespace(
            RegisterNamespaceRequest(
                namespace=name,
                workflow_execution_retention_period=week,
                data={"big": "x" * limit},
            )
        )
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert f"Namespace data is {limit + 3} bytes" in err.value.message

    await svc.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=week, data={"a": "1" * 200_000}
        )
    )
    # Merged in, the second entry takes it past the bound: refused, the first one kept.
    with pytest.raises(RPCError) as err:
        await svc.update_namespace(
            UpdateNamespaceRequest(
                namespace=name, update_info=UpdateNamespaceInfo(data={"b": "2" * 100_000})
            )
        )
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    # Replacing the entry with a smaller one is within it.
    await svc.update_namespace(
        UpdateNamespaceRequest(
            namespace=name, update_info=UpdateNamespaceInfo(data={"a": "3", "b": "4" * 100_000})
        )
    )
    data = (await svc.describe_namespace(DescribeNamespaceRequest(namespace=name))).namespace_info.data
    assert dict(data) == {"a": "3", "b": "4" * 100_000}
