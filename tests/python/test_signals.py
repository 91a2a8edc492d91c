"""Signals: SignalWithStart on a new and on a running workflow, signals buffered while a
workflow task runs, and signals to a closed workflow."""

from __future__ import annotations

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

import harness


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


async def event_types(handle) -> list[str]:
    return [e.event_type for e in (await handle.fetch_history()).events]


@pytest.mark.timeout(60)
async def test_signal_with_start_new_workflow(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[CollectSignals]):
        handle = await client.start_workflow(
            CollectSignals.run,
            1,
            id=new_id(),
            task_queue=task_queue,
            start_signal="add",
            start_signal_args=["first"],
        )
        assert await harness.result_within(handle, 30) == ["first"]
        types = await event_types(handle)
        # The signal comes right after the started event, before the first workflow task.
        assert types[:3] == [1, 26, 5], types  # STARTED, SIGNALED, WORKFLOW_TASK_SCHEDULED


@pytest.mark.timeout(60)
async def test_signal_with_start_running_workflow_signals_it(client: Client, task_queue, new_id):
    wf_id = new_id()
    async with harness.worker(client, task_queue, workflows=[CollectSignals]):
        first = await client.start_workflow(CollectSignals.run, 3, id=wf_id, task_queue=task_queue)
        await first.signal(CollectSignals.add, "a")
        second = await client.start_workflow(
            CollectSignals.run,
            3,
            id=wf_id,
            task_queue=task_queue,
            start_signal="add",
            start_signal_args=["b"],
        )
        assert second.result_run_id == first.result_run_id, (
            "the running workflow was signalled, not restarted"
        )
        await first.signal(CollectSignals.add, "c")
        assert await harness.result_within(first, 30) == ["a", "b", "c"]


@pytest.mark.timeout(60)
async def test_many_signals_none_lost(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[CollectSignals]):
        handle = await client.start_workflow(
            CollectSignals.run, 30, id=new_id(), task_queue=task_queue
        )
        for i in range(30):
            await handle.signal(CollectSignals.add, str(i))
        result = await harness.result_within(handle, 30)
        assert sorted(result, key=int) == [str(i) for i in range(30)]


@pytest.mark.timeout(60)
async def test_signal_to_closed_workflow_is_not_found(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[CollectSignals]):
        handle = await client.start_workflow(
            CollectSignals.run, 0, id=new_id(), task_queue=task_queue
        )
        await harness.result_within(handle, 30)
        with pytest.raises(RPCError) as err:
            await handle.signal(CollectSignals.add, "late")
        assert err.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(60)
async def test_signal_with_start_rejects_duplicate_after_completion(
    client: Client, task_queue, new_id
):
    wf_id = new_id()
    async with harness.worker(client, task_queue, workflows=[CollectSignals]):
        handle = await client.start_workflow(CollectSignals.run, 0, id=wf_id, task_queue=task_queue)
        await harness.result_within(handle, 30)
        from temporalio.exceptions import WorkflowAlreadyStartedError

        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                CollectSignals.run,
                1,
                id=wf_id,
                task_queue=task_queue,
                start_signal="add",
                start_signal_args=["x"],
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
