"""Workflow updates: execute_update, validators that reject (no trace in the history),
start_update waiting for ACCEPTED, the same update id sent twice, updates on closed
workflows, handlers that fail after acceptance, updates mixed with signals, update results
found after a server restart, and update-with-start."""

from __future__ import annotations

import asyncio

import pytest
from temporalio import workflow
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowExecutionStatus,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import event_types, history_events, wait_for_event


@workflow.defn
class Counter:
    """Holds a running total; updates add to it, signals log, `finish` completes the run."""

    def __init__(self) -> None:
        self.total = 0
        self.log: list[str] = []
        self.released = False
        self.done = False

    @workflow.run
    async def run(self) -> list[str]:
        # A long timer: the history then ends with a command event (TimerStarted), which a
        # discarded speculative workflow task must not disturb either.
        timer = asyncio.create_task(asyncio.sleep(3600))
        await workflow.wait_condition(lambda: self.done)
        timer.cancel()
        return self.log

    @workflow.update
    def add(self, n: int) -> int:
        self.total += n
        self.log.append(f"update:{n}")
        return self.total

    @add.validator
    def check_add(self, n: int) -> None:
        if n < 0:
            raise ValueError(f"cannot add {n}")

    @workflow.update
    async def add_when_released(self, n: int) -> int:
        await workflow.wait_condition(lambda: self.released)
        self.total += n
        return self.total

    @workflow.update
    def explode(self) -> None:
        raise ApplicationError("handler failed", type="Boom", non_retryable=True)

    @workflow.signal
    def note(self, text: str) -> None:
        self.log.append(f"signal:{text}")

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.signal
    def finish(self) -> None:
        self.done = True


UPDATE_EVENTS = ("WORKFLOW_EXECUTION_UPDATE_ACCEPTED", "WORKFLOW_EXECUTION_UPDATE_COMPLETED")


def count(types: list[str], name: str) -> int:
    return sum(1 for t in types if t == name)


async def started(client: Client, task_queue: str, wf_id: str):
    """A running Counter whose first workflow task completed."""
    handle = await client.start_workflow(Counter.run, id=wf_id, task_queue=task_queue)
    await wait_for_event(handle, "TIMER_STARTED", timeout=30)
    return handle


def accepted_event(events: list[HistoryEvent]) -> HistoryEvent:
    return next(e for e in events if event_types([e]) == ["WORKFLOW_EXECUTION_UPDATE_ACCEPTED"])


@pytest.mark.timeout(90)
async def test_execute_update_returns_handler_result(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        assert await handle.execute_update(Counter.add, 5, id="first") == 5
        assert await handle.execute_update(Counter.add, 7) == 12
        events = await history_events(handle)
        types = event_types(events)
        assert count(types, UPDATE_EVENTS[0]) == 2 and count(types, UPDATE_EVENTS[1]) == 2, types
        # The accepted event carries the request; completed follows its acceptance.
        first = accepted_event(events)
        attrs = first.workflow_execution_update_accepted_event_attributes
        assert attrs.protocol_instance_id == "first"
        assert attrs.accepted_request.meta.update_id == "first"
        assert attrs.accepted_request.input.name == "add"
        completed = events[types.index(UPDATE_EVENTS[1])]
        completed_attrs = completed.workflow_execution_update_completed_event_attributes
        assert completed_attrs.accepted_event_id == first.event_id
        # The workflow task that accepted the update comes right before its events.
        assert types[types.index(UPDATE_EVENTS[0]) - 1] == "WORKFLOW_TASK_COMPLETED", types
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == ["update:5", "update:7"]


@pytest.mark.timeout(90)
async def test_rejected_update_leaves_no_trace(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        before = event_types(await history_events(handle))
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.add, -1)
        assert "cannot add -1" in str(err.value.cause)
        # An update the workflow has no handler for is rejected the same way.
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("no_such_update", 1)
        after = event_types(await history_events(handle))
        assert after == before, "a rejected update must not write events (not even a workflow task)"
        # The worker rolled back to the history the server kept: the next update and signal work.
        assert await handle.execute_update(Counter.add, 3) == 3
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == ["update:3"]
        final = event_types(await history_events(handle))
        assert count(final, UPDATE_EVENTS[0]) == 1 and count(final, UPDATE_EVENTS[1]) == 1, final
        assert "WORKFLOW_TASK_FAILED" not in final, final


@pytest.mark.timeout(90)
async def test_start_update_waits_for_accepted_then_result(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        update = await handle.start_update(
            Counter.add_when_released, 4, id="held", wait_for_stage=WorkflowUpdateStage.ACCEPTED
        )
        assert update.id == "held"
        types = event_types(await history_events(handle))
        assert count(types, UPDATE_EVENTS[0]) == 1 and count(types, UPDATE_EVENTS[1]) == 0, types
        # A handle obtained by id waits for the same result.
        by_id = handle.get_update_handle("held")
        waiting = asyncio.create_task(by_id.result())
        await asyncio.sleep(0.5)
        assert not waiting.done(), "the update is accepted, not completed"
        await handle.signal(Counter.release)
        assert await asyncio.wait_for(update.result(), 30) == 4
        assert await asyncio.wait_for(waiting, 30) == 4
        types = event_types(await history_events(handle))
        assert count(types, UPDATE_EVENTS[1]) == 1, types


@pytest.mark.timeout(90)
async def test_same_update_id_runs_once(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        assert await handle.execute_update(Counter.add, 10, id="once") == 10
        assert await handle.execute_update(Counter.add, 10, id="once") == 10
        # Sent concurrently while in flight, too: both callers attach to one update.
        results = await asyncio.gather(
            handle.execute_update(Counter.add_when_released, 1, id="twice"),
            handle.execute_update(Counter.add_when_released, 1, id="twice"),
            release_after_accepted(handle, "twice"),
        )
        assert results[:2] == [11, 11]
        types = event_types(await history_events(handle))
        assert count(types, UPDATE_EVENTS[0]) == 2 and count(types, UPDATE_EVENTS[1]) == 2, types
        # Still found after the workflow closed.
        await handle.signal(Counter.finish)
        await harness.result_within(handle, 30)
        assert await handle.execute_update(Counter.add, 10, id="once") == 10


async def release_after_accepted(handle, update_id: str) -> None:
    async def accepted() -> bool:
        events = await history_events(handle)
        return any(
            e.workflow_execution_update_accepted_event_attributes.protocol_instance_id == update_id
            for e in events
        )

    await harness.wait_until(accepted, timeout=30, what=f"update {update_id} accepted")
    await handle.signal(Counter.release)


@pytest.mark.timeout(90)
async def test_update_on_completed_workflow_fails(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        await handle.signal(Counter.finish)
        await harness.result_within(handle, 30)
        with pytest.raises(RPCError) as err:
            await handle.execute_update(Counter.add, 1)
        assert err.value.status == RPCStatusCode.NOT_FOUND
        assert "workflow execution already completed" in err.value.message
        with pytest.raises(RPCError) as err:
            await handle.get_update_handle("never-sent").result()
        assert err.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(90)
async def test_handler_failure_after_acceptance_is_update_failure(
    client: Client, task_queue, new_id
):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        with pytest.raises(WorkflowUpdateFailedError) as err:
            await handle.execute_update(Counter.explode)
        cause = err.value.cause
        assert isinstance(cause, ApplicationError) and cause.type == "Boom", cause
        events = await history_events(handle)
        types = event_types(events)
        assert count(types, UPDATE_EVENTS[0]) == 1 and count(types, UPDATE_EVENTS[1]) == 1, types
        completed = events[types.index(UPDATE_EVENTS[1])]
        outcome = completed.workflow_execution_update_completed_event_attributes.outcome
        assert outcome.HasField("failure")
        # The workflow keeps running.
        assert await handle.execute_update(Counter.add, 2) == 2


@pytest.mark.timeout(120)
async def test_updates_interleaved_with_signals(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, new_id())
        await handle.signal(Counter.note, "a")
        assert await handle.execute_update(Counter.add, 1) == 1
        await handle.signal(Counter.note, "b")
        assert await handle.execute_update(Counter.add, 2) == 3
        # And all at once: every signal and update lands exactly once.
        calls = []
        for i in range(5):
            calls.append(handle.signal(Counter.note, f"s{i}"))
            calls.append(handle.execute_update(Counter.add, 10))
        await asyncio.gather(*calls)
        await handle.signal(Counter.finish)
        log = await harness.result_within(handle, 30)
        assert log[:4] == ["signal:a", "update:1", "signal:b", "update:2"]
        assert sorted(log[4:]) == sorted([f"signal:s{i}" for i in range(5)] + ["update:10"] * 5)
        types = event_types(await history_events(handle))
        assert count(types, UPDATE_EVENTS[0]) == 7 and count(types, UPDATE_EVENTS[1]) == 7, types
        assert "WORKFLOW_TASK_FAILED" not in types, types


@pytest.mark.timeout(120)
async def test_update_results_survive_restart(server, client: Client, task_queue, new_id):
    wf_id = new_id()
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, wf_id)
        assert await handle.execute_update(Counter.add, 6, id="durable") == 6
    await server.restart()
    client = await server.connect()
    handle = client.get_workflow_handle(wf_id)
    # No worker runs: the result comes from the server's stored state.
    assert await asyncio.wait_for(handle.get_update_handle("durable").result(), 30) == 6
    assert await asyncio.wait_for(handle.execute_update(Counter.add, 6, id="durable"), 30) == 6
    async with harness.worker(client, task_queue, workflows=[Counter]):
        assert await handle.execute_update(Counter.add, 1) == 7
        types = event_types(await history_events(handle))
        assert count(types, UPDATE_EVENTS[1]) == 2, types


@pytest.mark.timeout(120)
async def test_update_waits_for_a_worker(client: Client, task_queue, new_id):
    wf_id = new_id()
    async with harness.worker(client, task_queue, workflows=[Counter]):
        handle = await started(client, task_queue, wf_id)
    # No worker: the update is admitted and waits; the call returns when one comes back.
    pending = asyncio.create_task(handle.execute_update(Counter.add, 8, id="late"))
    # The task that carries the update was not taken in time and became a normal one.
    await wait_for_event(handle, "WORKFLOW_TASK_TIMED_OUT", timeout=30)
    assert not pending.done()
    async with harness.worker(client, task_queue, workflows=[Counter]):
        assert await asyncio.wait_for(pending, 60) == 8
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == ["update:8"]


@pytest.mark.timeout(90)
async def test_update_with_start(client: Client, task_queue, new_id):
    wf_id = new_id()

    def start_op(policy=WorkflowIDConflictPolicy.USE_EXISTING) -> WithStartWorkflowOperation:
        return WithStartWorkflowOperation(
            Counter.run, id=wf_id, task_queue=task_queue, id_conflict_policy=policy
        )

    async with harness.worker(client, task_queue, workflows=[Counter]):
        first = start_op()
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 5, start_workflow_operation=first
            )
            == 5
        )
        handle = await first.workflow_handle()
        # The running workflow takes the next one; nothing new is started.
        second = start_op()
        update = await client.start_update_with_start_workflow(
            Counter.add,
            2,
            start_workflow_operation=second,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        assert await update.result() == 7
        assert (await second.workflow_handle()).result_run_id == handle.result_run_id
        # A start that must not reuse the running workflow fails the whole operation.
        refused = start_op(WorkflowIDConflictPolicy.FAIL)
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.execute_update_with_start_workflow(
                Counter.add, 1, start_workflow_operation=refused
            )
        with pytest.raises(WorkflowAlreadyStartedError):
            await refused.workflow_handle()
        types = event_types(await history_events(handle))
        assert count(types, "WORKFLOW_EXECUTION_STARTED") == 1
        assert count(types, UPDATE_EVENTS[0]) == 2 and count(types, UPDATE_EVENTS[1]) == 2, types
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == ["update:5", "update:2"]


@pytest.mark.timeout(90)
async def test_update_with_start_rides_on_the_first_workflow_task(
    client: Client, task_queue, new_id
):
    """The new run is created with the update admitted: its first workflow task carries it
    even when a worker is already polling and takes that task at once (event 5 is the
    acceptance, as on Temporal, where the start and the update are one transaction)."""
    async with harness.worker(client, task_queue, workflows=[Counter]):
        for n in range(8):
            op = WithStartWorkflowOperation(
                Counter.run,
                id=new_id(),
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            )
            assert (
                await client.execute_update_with_start_workflow(
                    Counter.add, n, start_workflow_operation=op
                )
                == n
            )
            handle = await op.workflow_handle()
            events = await history_events(handle)
            assert event_types(events)[:5] == [
                "WORKFLOW_EXECUTION_STARTED",
                "WORKFLOW_TASK_SCHEDULED",
                "WORKFLOW_TASK_STARTED",
                "WORKFLOW_TASK_COMPLETED",
                "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
            ], event_types(events)
            await handle.signal(Counter.finish)


def with_start(wf_id: str, task_queue: str, conflict, reuse) -> WithStartWorkflowOperation:
    return WithStartWorkflowOperation(
        Counter.run,
        id=wf_id,
        task_queue=task_queue,
        id_conflict_policy=conflict,
        id_reuse_policy=reuse,
    )


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "conflict",
    [WorkflowIDConflictPolicy.USE_EXISTING, WorkflowIDConflictPolicy.FAIL],
    ids=lambda p: p.name,
)
@pytest.mark.parametrize(
    "reuse",
    [WorkflowIDReusePolicy.ALLOW_DUPLICATE, WorkflowIDReusePolicy.REJECT_DUPLICATE],
    ids=lambda p: p.name,
)
async def test_update_with_start_after_the_run_closed_with_the_update_unfinished(
    client: Client, task_queue, new_id, conflict, reuse
):
    """The workflow closed while the update was accepted but not completed: the same update
    id does not find it. As in Temporal, a new run is started for it if the reuse policy
    allows one, else the start fails (WorkflowAlreadyStarted); the conflict policy does not
    matter, the workflow is not running."""
    wf_id, update_id = new_id(), new_id()
    async with harness.worker(client, task_queue, workflows=[Counter]):
        first = with_start(wf_id, task_queue, conflict, reuse)
        await client.start_update_with_start_workflow(
            Counter.add_when_released,
            1,
            id=update_id,
            start_workflow_operation=first,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
        handle = await first.workflow_handle()
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == []
        types = event_types(await history_events(handle))
        assert UPDATE_EVENTS[0] in types and UPDATE_EVENTS[1] not in types, types

        second = with_start(wf_id, task_queue, conflict, reuse)
        if reuse == WorkflowIDReusePolicy.REJECT_DUPLICATE:
            with pytest.raises(WorkflowAlreadyStartedError):
                await client.execute_update_with_start_workflow(
                    Counter.add, 2, id=update_id, start_workflow_operation=second
                )
            return
        result = await client.execute_update_with_start_workflow(
            Counter.add, 2, id=update_id, start_workflow_operation=second
        )
        assert result == 2
        new_run = await second.workflow_handle()
        assert new_run.first_execution_run_id != handle.first_execution_run_id
        assert (await new_run.describe()).status == WorkflowExecutionStatus.RUNNING
        await new_run.signal(Counter.finish)
        assert await harness.result_within(new_run, 30) == ["update:2"]


@pytest.mark.timeout(90)
async def test_update_with_start_finds_a_completed_update_of_a_closed_run(
    client: Client, task_queue, new_id
):
    """An update that completed is found by its id even after its run closed: its outcome
    comes back and nothing is started, whatever the reuse policy allows."""
    wf_id, update_id = new_id(), new_id()
    allow = WorkflowIDReusePolicy.ALLOW_DUPLICATE
    use_existing = WorkflowIDConflictPolicy.USE_EXISTING
    async with harness.worker(client, task_queue, workflows=[Counter]):
        first = with_start(wf_id, task_queue, use_existing, allow)
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 5, id=update_id, start_workflow_operation=first
            )
            == 5
        )
        handle = await first.workflow_handle()
        await handle.signal(Counter.finish)
        assert await harness.result_within(handle, 30) == ["update:5"]

        again = with_start(wf_id, task_queue, use_existing, allow)
        assert (
            await client.execute_update_with_start_workflow(
                Counter.add, 9, id=update_id, start_workflow_operation=again
            )
            == 5
        )
        assert (await again.workflow_handle()).result_run_id == handle.result_run_id
    types = event_types(await history_events(client.get_workflow_handle(wf_id)))
    assert count(types, "WORKFLOW_EXECUTION_STARTED") == 1
    assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED"
