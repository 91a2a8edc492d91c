"""More ResetWorkflowExecution and DeleteWorkflowExecution checks, written against the reference
server independently of test_reset_delete.py: the auto reset point describe offers, the old
run's termination, reset of a closed run, and a deleted workflow id that is free again (even
under REJECT_DUPLICATE)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyExcludeType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeWorkflowExecutionRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import TerminatedError
from temporalio.service import RPCError, RPCStatusCode

from harness import NAMESPACE, history_events, result_within, wait_for_event, wait_until, worker

ET = EventType


@workflow.defn
class CollectSignals:
    """Completes with the signals received once `expected` have arrived."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(value)

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        return self.received


WORKFLOWS = [CollectSignals]


async def reset(client: Client, workflow_id: str, run_id: str, event_id: int, **extra: Any) -> str:
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason="reset by the test",
            workflow_task_finish_event_id=event_id,
            request_id=str(uuid.uuid4()),
            **extra,
        )
    )
    return response.run_id


async def delete(client: Client, workflow_id: str, run_id: str = "") -> None:
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )


async def describe_raw(client: Client, workflow_id: str, run_id: str = "") -> Any:
    return await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )


async def gone(client: Client, workflow_id: str, run_id: str = "") -> bool:
    """True once describe says NOT_FOUND."""
    try:
        await describe_raw(client, workflow_id, run_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


def names(events: list[HistoryEvent]) -> list[str]:
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


def signal_values(events: list[HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_signaled_event_attributes.input.payloads[0].data.decode().strip('"')
        for e in events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


@pytest.mark.timeout(60)
async def test_reset_to_first_workflow_task(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(CollectSignals.run, 2, id=wf_id, task_queue=task_queue)
        old_run_id = handle.result_run_id
        assert old_run_id
        old = client.get_workflow_handle(wf_id, run_id=old_run_id)
        await wait_for_event(old, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await old.signal(CollectSignals.add, "before-reset")
        await wait_until(
            lambda: _count(old, ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2),
            timeout=30,
            what="the signal's workflow task",
        )
        # The reset point the server offers is the first completed workflow task.
        info = (await describe_raw(client, wf_id, old_run_id)).workflow_execution_info
        [point] = info.auto_reset_points.points
        assert point.run_id == old_run_id
        assert point.resettable
        old_events = await history_events(old)
        first_completed = next(
            e for e in old_events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        assert point.first_workflow_task_completed_id == first_completed.event_id == 4

        new_run_id = await reset(client, wf_id, old_run_id, first_completed.event_id)
        assert new_run_id and new_run_id != old_run_id

        # The old run is terminated with the reset's reason.
        with pytest.raises(WorkflowFailureError) as info_err:
            await result_within(old, 30)
        assert isinstance(info_err.value.cause, TerminatedError)
        assert (await old.describe()).status == WorkflowExecutionStatus.TERMINATED
        old_after = await history_events(old)
        assert old_after[: len(old_events)] == old_events
        assert names(old_after[len(old_events) :]) == ["WORKFLOW_EXECUTION_TERMINATED"]
        terminated = old_after[-1].workflow_execution_terminated_event_attributes
        assert terminated.reason == "reset by the test"

        # The new run is the current one; the signal after the reset point was reapplied.
        current = await client.get_workflow_handle(wf_id).describe()
        assert current.run_id == new_run_id
        assert current.status == WorkflowExecutionStatus.RUNNING
        new = client.get_workflow_handle(wf_id, run_id=new_run_id)
        new_events = await history_events(new)
        assert names(new_events[:5]) == [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            "WORKFLOW_EXECUTION_SIGNALED",
        ]
        # Events before the reset point are copied from the old run.
        for copied, original in zip(new_events[:3], old_events[:3], strict=True):
            assert copied.event_id == original.event_id
            assert copied.event_type == original.event_type
            assert copied.event_time == original.event_time
        started = new_events[0].workflow_execution_started_event_attributes
        assert started.workflow_type.name == "CollectSignals"
        assert started.first_execution_run_id == old_run_id
        failed = new_events[3].workflow_task_failed_event_attributes
        assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        assert failed.failure.message == "reset by the test"
        assert failed.failure.HasField("reset_workflow_failure_info")
        assert failed.scheduled_event_id == 2
        assert failed.started_event_id == 3
        assert failed.base_run_id == old_run_id
        assert failed.new_run_id == new_run_id
        assert signal_values(new_events) == ["before-reset"]

        await client.get_workflow_handle(wf_id).signal(CollectSignals.add, "after-reset")
        assert await result_within(new, 30) == ["before-reset", "after-reset"]
    assert names(await history_events(new))[-1] == "WORKFLOW_EXECUTION_COMPLETED"


async def _count(handle: Any, event_type: int, count: int) -> bool:
    return sum(e.event_type == event_type for e in await history_events(handle)) >= count


@pytest.mark.timeout(60)
async def test_reset_without_reapplying_signals(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(CollectSignals.run, 2, id=wf_id, task_queue=task_queue)
        old = client.get_workflow_handle(wf_id, run_id=handle.result_run_id)
        await wait_for_event(old, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await old.signal(CollectSignals.add, "dropped")
        await wait_until(
            lambda: _count(old, ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, 2),
            timeout=30,
            what="the signal's workflow task",
        )
        new_run_id = await reset(
            client,
            wf_id,
            old.run_id or "",
            4,
            reset_reapply_exclude_types=[ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL],
        )
        new = client.get_workflow_handle(wf_id, run_id=new_run_id)
        assert signal_values(await history_events(new)) == []
        latest = client.get_workflow_handle(wf_id)
        await latest.signal(CollectSignals.add, "one")
        await latest.signal(CollectSignals.add, "two")
        assert await result_within(new, 30) == ["one", "two"]


@pytest.mark.timeout(60)
async def test_reset_rejects_event_that_is_not_a_completed_workflow_task(
    client, task_queue, new_id
):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(CollectSignals.run, 1, id=wf_id, task_queue=task_queue)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        run_id = handle.result_run_id or ""
        for bad_event_id in (2, 99):  # a WORKFLOW_TASK_SCHEDULED; past the end of history
            with pytest.raises(RPCError) as err:
                await reset(client, wf_id, run_id, bad_event_id)
            assert err.value.status == RPCStatusCode.INVALID_ARGUMENT, bad_event_id
        # Nothing happened to the run.
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.signal(CollectSignals.add, "x")
        assert await result_within(handle, 30) == ["x"]


@pytest.mark.timeout(60)
async def test_reset_of_completed_workflow_starts_new_run(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            CollectSignals.run,
            1,
            id=wf_id,
            task_queue=task_queue,
            start_signal="add",
            start_signal_args=["first"],
        )
        assert await result_within(handle, 30) == ["first"]
        old_run_id = handle.result_run_id or ""
        old_events = await history_events(client.get_workflow_handle(wf_id, run_id=old_run_id))
        first_completed = next(
            e for e in old_events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        )
        new_run_id = await reset(client, wf_id, old_run_id, first_completed.event_id)
        new = client.get_workflow_handle(wf_id, run_id=new_run_id)
        # The signal came before the reset point, so it is part of the copied history.
        assert await result_within(new, 30) == ["first"]
    # A closed run stays as it was: no termination event is added.
    after = await history_events(client.get_workflow_handle(wf_id, run_id=old_run_id))
    assert names(after) == names(old_events)
    assert names(after)[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert (await client.get_workflow_handle(wf_id).describe()).run_id == new_run_id


@pytest.mark.timeout(120)
async def test_delete_completed_workflow(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(CollectSignals.run, 0, id=wf_id, task_queue=task_queue)
        assert await result_within(handle, 30) == []
    await delete(client, wf_id, handle.result_run_id or "")
    # Deletion of a closed run is asynchronous. The reference server takes ~30-35 s: it deletes
    # only once its transfer queue's ack level (persisted about every 30 s) has passed the
    # run's close task.
    await wait_until(lambda: gone(client, wf_id), timeout=60, what="describe to say NOT_FOUND")
    with pytest.raises(RPCError) as err:
        await handle.fetch_history()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as err:
        await delete(client, wf_id)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    # Nothing remembers the id: even REJECT_DUPLICATE may start it again.
    async with worker(client, task_queue, workflows=WORKFLOWS):
        again = await client.start_workflow(
            CollectSignals.run,
            0,
            id=wf_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
        assert await result_within(again, 30) == []


@pytest.mark.timeout(60)
async def test_delete_running_workflow(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(CollectSignals.run, 1, id=wf_id, task_queue=task_queue)
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await delete(client, wf_id)
        await wait_until(lambda: gone(client, wf_id), timeout=20, what="describe to say NOT_FOUND")
        with pytest.raises(RPCError) as err:
            await handle.signal(CollectSignals.add, "too late")
        assert err.value.status == RPCStatusCode.NOT_FOUND
    with pytest.raises(RPCError) as err:
        await delete(client, wf_id)
    assert err.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(60)
async def test_delete_unknown_workflow_is_not_found(client):
    with pytest.raises(RPCError) as err:
        await delete(client, "no-such-workflow")
    assert err.value.status == RPCStatusCode.NOT_FOUND
