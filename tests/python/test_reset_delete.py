"""ResetWorkflowExecution and DeleteWorkflowExecution: a reset run repeats the old run's
history up to a workflow task, fails it (RESET_WORKFLOW), applies later signals again and goes
on; the old run is terminated. Deleted runs disappear, running ones after being terminated."""

from __future__ import annotations

import uuid

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import (
    EventType,
    ResetReapplyExcludeType,
    WorkflowExecutionStatus,
    WorkflowTaskFailedCause,
)
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    DescribeWorkflowExecutionRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE
from test_cli import temporal


@workflow.defn
class Collect:
    """Completes with the signals it received once `expected` have arrived."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(value)

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        return self.received


def at_run(client: Client, handle: WorkflowHandle, run_id: str) -> WorkflowHandle:
    return client.get_workflow_handle(handle.id, run_id=run_id)


async def history_of(client: Client, handle: WorkflowHandle, run_id: str):
    return await harness.history_events(at_run(client, handle, run_id))


async def reset(
    client: Client,
    workflow_id: str,
    run_id: str,
    event_id: int,
    *,
    reason: str = "reset by test",
    exclude: list[int] | None = None,
) -> str:
    resp = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason=reason,
            workflow_task_finish_event_id=event_id,
            request_id=str(uuid.uuid4()),
            reset_reapply_exclude_types=exclude or [],
        )
    )
    return resp.run_id


async def status_of(client: Client, workflow_id: str, run_id: str) -> int:
    resp = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
        )
    )
    return resp.workflow_execution_info.status


async def waiting_after_one_signal(
    client: Client, task_queue: str, workflow_id: str
) -> WorkflowHandle:
    """A Collect(2) run that has completed its first workflow task (event 4), then got signal
    "a" and completed a second one (event 8)."""
    handle = await client.start_workflow(Collect.run, 2, id=workflow_id, task_queue=task_queue)
    await harness.wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=20)
    await handle.signal(Collect.add, "a")

    async def second_task_done() -> bool:
        events = await harness.history_events(handle)
        return harness.event_types(events).count("WORKFLOW_TASK_COMPLETED") >= 2

    await harness.wait_until(second_task_done, timeout=20, what="the second workflow task")
    return handle


@pytest.mark.timeout(90)
async def test_reset_to_the_first_workflow_task(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        handle = await waiting_after_one_signal(client, task_queue, new_id())
        old_run = handle.result_run_id
        old = await history_of(client, handle, old_run)
        assert harness.event_types(old)[3] == "WORKFLOW_TASK_COMPLETED"

        new_run = await reset(client, handle.id, old_run, 4, reason="try again")
        assert new_run and new_run != old_run

        new = await history_of(client, handle, new_run)
        assert harness.event_types(new)[:6] == [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_FAILED",
            "WORKFLOW_EXECUTION_SIGNALED",
            "WORKFLOW_TASK_SCHEDULED",
        ], harness.event_types(new)
        assert [e.event_id for e in new] == list(range(1, len(new) + 1))
        # The run's start and its first workflow task are the old run's.
        for i in (0, 1):
            assert new[i].event_type == old[i].event_type
            assert new[i].event_time == old[i].event_time
        assert new[0].workflow_execution_started_event_attributes.input == (
            old[0].workflow_execution_started_event_attributes.input
        )
        assert new[2].workflow_task_started_event_attributes.scheduled_event_id == 2
        failed = new[3].workflow_task_failed_event_attributes
        assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        assert (failed.scheduled_event_id, failed.started_event_id) == (2, 3)
        assert failed.base_run_id == old_run
        assert failed.new_run_id == new_run
        assert failed.failure.message == "try again"
        assert failed.failure.HasField("reset_workflow_failure_info")
        signaled = new[4].workflow_execution_signaled_event_attributes
        assert signaled.signal_name == "add"
        assert signaled.input == old[4].workflow_execution_signaled_event_attributes.input
        assert new[5].workflow_task_scheduled_event_attributes.attempt == 1

        # The old run was terminated by the reset, the new one is current.
        assert await status_of(client, handle.id, old_run) == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
        )
        terminated = (await history_of(client, handle, old_run))[-1]
        assert terminated.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
        assert terminated.workflow_execution_terminated_event_attributes.reason == "try again"
        terminated_by = terminated.workflow_execution_terminated_event_attributes.identity
        assert terminated_by == "history-resetter"
        current = client.get_workflow_handle(handle.id)
        assert (await current.describe()).run_id == new_run

        # The new run carries the re-applied signal and completes after one more.
        await current.signal(Collect.add, "b")
        assert await harness.result_within(at_run(client, handle, new_run), 30) == ["a", "b"]
        assert await status_of(client, handle.id, new_run) == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
        )


@pytest.mark.timeout(90)
async def test_reset_without_reapplying_signals(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        handle = await waiting_after_one_signal(client, task_queue, new_id())
        new_run = await reset(
            client,
            handle.id,
            handle.result_run_id,
            4,
            exclude=[ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL],
        )
        new = await history_of(client, handle, new_run)
        assert harness.event_types(new)[3:5] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
        assert "WORKFLOW_EXECUTION_SIGNALED" not in harness.event_types(new)
        current = client.get_workflow_handle(handle.id)
        await current.signal(Collect.add, "c")
        await current.signal(Collect.add, "d")
        assert await harness.result_within(at_run(client, handle, new_run), 30) == ["c", "d"]


@pytest.mark.timeout(90)
async def test_reset_of_a_completed_workflow_runs_it_again(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        handle = await client.start_workflow(Collect.run, 1, id=new_id(), task_queue=task_queue)
        await handle.signal(Collect.add, "x")
        assert await harness.result_within(handle, 30) == ["x"]
        events = await harness.history_events(handle)
        first_completed = harness.event_types(events).index("WORKFLOW_TASK_COMPLETED") + 1
        new_run = await reset(client, handle.id, handle.result_run_id, first_completed)
        # Nothing to terminate; the signal after the reset point is applied again.
        assert await status_of(client, handle.id, handle.result_run_id) == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
        )
        assert await harness.result_within(at_run(client, handle, new_run), 30) == ["x"]


@pytest.mark.timeout(60)
async def test_reset_with_a_bad_event_id_is_invalid(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        handle = await waiting_after_one_signal(client, task_queue, new_id())
        run = handle.result_run_id
        # 1 is the start, 5 the signal (no workflow task pending before it), 999 is past the end.
        for bad in (1, 5, 999):
            with pytest.raises(RPCError) as err:
                await reset(client, handle.id, run, bad)
            assert err.value.status == RPCStatusCode.INVALID_ARGUMENT, (bad, err.value)
        assert await status_of(client, handle.id, run) == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        ), "a refused reset changes nothing"
        with pytest.raises(RPCError) as err:
            await reset(client, new_id(), "", 4)
        assert err.value.status == RPCStatusCode.NOT_FOUND


DELETE_TIMEOUT_S = 90


async def delete(client: Client, workflow_id: str, run_id: str = "") -> None:
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )


async def gone(client: Client, workflow_id: str, run_id: str) -> None:
    """Wait (bounded) until describing the run answers NOT_FOUND. The reference server deletes
    a closed run through a task that waits for the run's close to be fully processed: about
    half a minute in its dev server."""

    async def check() -> bool:
        try:
            await status_of(client, workflow_id, run_id)
        except RPCError as e:
            if e.status == RPCStatusCode.NOT_FOUND:
                return True
            raise
        return False

    await harness.wait_until(check, timeout=DELETE_TIMEOUT_S, what=f"run {run_id} to be deleted")


@pytest.mark.timeout(240)
async def test_delete_a_completed_and_a_running_workflow(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        done = await client.start_workflow(Collect.run, 0, id=new_id(), task_queue=task_queue)
        await harness.result_within(done, 30)
        running = await client.start_workflow(Collect.run, 5, id=new_id(), task_queue=task_queue)
        await harness.wait_for_event(running, "WORKFLOW_TASK_COMPLETED", timeout=20)

        await delete(client, done.id, done.result_run_id)
        await delete(client, running.id)  # the current run
        await gone(client, done.id, done.result_run_id)
        await gone(client, running.id, running.result_run_id)
        with pytest.raises(RPCError) as err:
            await client.get_workflow_handle(running.id).describe()
        assert err.value.status == RPCStatusCode.NOT_FOUND
        with pytest.raises(RPCError) as err:
            await running.signal(Collect.add, "late")
        assert err.value.status == RPCStatusCode.NOT_FOUND

        # The workflow id is free again.
        again = await client.start_workflow(Collect.run, 1, id=running.id, task_queue=task_queue)
        assert again.result_run_id != running.result_run_id
        await again.signal(Collect.add, "z")
        assert await harness.result_within(again, 30) == ["z"]


@pytest.mark.timeout(60)
async def test_delete_unknown_workflow_is_not_found(client: Client):
    with pytest.raises(RPCError) as err:
        await delete(client, harness.unique("nope"))
    assert err.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(180)
async def test_cli_reset_and_delete(
    server: harness.ServerProcess, client: Client, task_queue, new_id
):
    async with harness.worker(client, task_queue, workflows=[Collect]):
        handle = await waiting_after_one_signal(client, task_queue, new_id())
        old_run = handle.result_run_id
        await temporal(
            server, "workflow", "reset",
            "--workflow-id", handle.id, "--run-id", old_run,
            "--event-id", "4", "--reason", "from the CLI",
        )  # fmt: skip
        current = client.get_workflow_handle(handle.id)
        new_run = (await current.describe()).run_id
        assert new_run != old_run
        new = await history_of(client, handle, new_run)
        failed = new[3].workflow_task_failed_event_attributes
        assert failed.failure.message.endswith("from the CLI")  # the CLI prefixes the user name
        await current.signal(Collect.add, "b")
        assert await harness.result_within(at_run(client, handle, new_run), 30) == ["a", "b"]

        await temporal(
            server, "workflow", "delete", "--workflow-id", handle.id, "--run-id", new_run, "--yes"
        )
        await gone(client, handle.id, new_run)


@workflow.defn
class Child:
    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.released)
        return "child done"


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, child_id: str) -> str:
        return await workflow.execute_child_workflow(Child.run, id=child_id)


@pytest.mark.timeout(90)
async def test_reset_parent_keeps_its_running_child(client: Client, task_queue, new_id):
    async with harness.worker(client, task_queue, workflows=[Parent, Child]):
        child_id = new_id()
        parent = await client.start_workflow(
            Parent.run, child_id, id=new_id(), task_queue=task_queue
        )

        async def child_seen() -> list | None:
            events = await harness.history_events(parent)
            types = harness.event_types(events)
            started = "CHILD_WORKFLOW_EXECUTION_STARTED" in types
            return events if started and types[-1] == "WORKFLOW_TASK_COMPLETED" else None

        events = await harness.wait_until(child_seen, timeout=30, what="the child started")
        new_run = await reset(client, parent.id, parent.result_run_id, events[-1].event_id)
        assert await status_of(client, parent.id, parent.result_run_id) == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
        )
        # The old parent run's close does not apply the parent close policy: the new run
        # takes the child over, and hears of its completion.
        child = client.get_workflow_handle(child_id)
        assert (await child.describe()).status == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        )
        await child.signal(Child.release)
        assert await harness.result_within(at_run(client, parent, new_run), 30) == "child done"
