"""Workflow id uniqueness: running duplicates and the id reuse policies."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowFailureError
from temporalio.common import RetryPolicy, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

import harness
from harness import NAMESPACE, history_events, result_within, worker


@workflow.defn
class WaitForSignalWorkflow:
    def __init__(self) -> None:
        self.done = False

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "finished"


@workflow.defn
class EchoWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        if value == "fail":
            raise ApplicationError("asked to fail", non_retryable=True)
        return value


@workflow.defn
class NewRunsWorkflow:
    """Makes a run id each way a workflow can: its first attempt fails (a retry run), the
    retry starts a child, then continues as new; the last run returns its run id."""

    @workflow.run
    async def run(self, child_id: str, continued: bool) -> str:
        if not continued:
            if workflow.info().attempt == 1:
                raise ApplicationError("fail the first attempt")
            await workflow.execute_child_workflow(EchoWorkflow.run, "child", id=child_id)
            workflow.continue_as_new(args=[child_id, True])
        return workflow.info().run_id


WORKFLOWS = [WaitForSignalWorkflow, EchoWorkflow, NewRunsWorkflow]


@pytest.mark.timeout(60)
async def test_duplicate_running_workflow_id_rejected(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await client.start_workflow(
            WaitForSignalWorkflow.run, id=wf_id, task_queue=task_queue
        )
        with pytest.raises(WorkflowAlreadyStartedError) as info:
            await client.start_workflow(WaitForSignalWorkflow.run, id=wf_id, task_queue=task_queue)
        assert info.value.workflow_id == wf_id
        assert info.value.run_id == first.result_run_id
        await first.signal(WaitForSignalWorkflow.finish)
        assert await result_within(first, 30) == "finished"


@pytest.mark.timeout(60)
async def test_conflict_policy_use_existing_returns_running_run(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await client.start_workflow(
            WaitForSignalWorkflow.run, id=wf_id, task_queue=task_queue
        )
        second = await client.start_workflow(
            WaitForSignalWorkflow.run,
            id=wf_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        assert second.result_run_id == first.result_run_id
        await first.signal(WaitForSignalWorkflow.finish)
        assert await result_within(first, 30) == "finished"


@pytest.mark.timeout(60)
async def test_reject_duplicate_after_completion(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await client.start_workflow(
            EchoWorkflow.run, "first", id=wf_id, task_queue=task_queue
        )
        assert await result_within(first, 30) == "first"
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                EchoWorkflow.run,
                "second",
                id=wf_id,
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )


@pytest.mark.timeout(60)
async def test_allow_duplicate_starts_new_run(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        first = await client.start_workflow(
            EchoWorkflow.run, "first", id=wf_id, task_queue=task_queue
        )
        assert await result_within(first, 30) == "first"
        second = await client.start_workflow(
            EchoWorkflow.run,
            "second",
            id=wf_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        assert second.result_run_id != first.result_run_id
        assert await result_within(second, 30) == "second"
        # The handle without a run id follows the latest run.
        latest = await client.get_workflow_handle(wf_id).describe()
        assert latest.run_id == second.result_run_id
        # The first run is still there, completed.
        assert (
            await client.get_workflow_handle(wf_id, run_id=first.result_run_id).result() == "first"
        )


@pytest.mark.timeout(60)
async def test_allow_duplicate_failed_only(client, task_queue, new_id):
    policy = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
    async with worker(client, task_queue, workflows=WORKFLOWS):
        completed_id = new_id()
        done = await client.start_workflow(
            EchoWorkflow.run, "ok", id=completed_id, task_queue=task_queue
        )
        assert await result_within(done, 30) == "ok"
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow(
                EchoWorkflow.run,
                "again",
                id=completed_id,
                task_queue=task_queue,
                id_reuse_policy=policy,
            )

        failed_id = new_id()
        failed = await client.start_workflow(
            EchoWorkflow.run, "fail", id=failed_id, task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError):
            await result_within(failed, 30)
        retried = await client.start_workflow(
            EchoWorkflow.run, "again", id=failed_id, task_queue=task_queue, id_reuse_policy=policy
        )
        assert await result_within(retried, 30) == "again"


@pytest.mark.timeout(90)
async def test_every_new_run_id_is_a_uuid_v7(client, task_queue, new_id):
    """Run ids are UUIDv7 (time-ordered), as Temporal makes them for a start: here for a
    start, a workflow retry, a child, a continue-as-new and a reset."""
    wf_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            NewRunsWorkflow.run,
            args=[child_id, False],
            id=wf_id,
            task_queue=task_queue,
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=2),
        )
        last_run = await result_within(handle, 60)

    first_run = handle.result_run_id
    assert first_run is not None
    [failed] = [
        e.workflow_execution_failed_event_attributes
        for e in await history_events(client.get_workflow_handle(wf_id, run_id=first_run))
        if e.HasField("workflow_execution_failed_event_attributes")
    ]
    retry_run = failed.new_execution_run_id
    retry_events = await history_events(client.get_workflow_handle(wf_id, run_id=retry_run))
    [continued] = [
        e.workflow_execution_continued_as_new_event_attributes
        for e in retry_events
        if e.HasField("workflow_execution_continued_as_new_event_attributes")
    ]
    assert continued.new_execution_run_id == last_run
    child_run = (await client.get_workflow_handle(child_id).describe()).run_id
    last_events = await history_events(client.get_workflow_handle(wf_id, run_id=last_run))
    [first_task_done] = [
        e.event_id for e in last_events if e.HasField("workflow_task_completed_event_attributes")
    ][:1]
    reset = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=WorkflowExecution(workflow_id=wf_id, run_id=last_run),
            reason="a run id from a reset",
            workflow_task_finish_event_id=first_task_done,
            request_id=str(uuid.uuid4()),
        )
    )

    runs = {
        "start": first_run,
        "retry": retry_run,
        "child": child_run,
        "continue-as-new": last_run,
        "reset": reset.run_id,
    }
    versions = {how: uuid.UUID(run).version for how, run in runs.items()}
    assert len(set(runs.values())) == len(runs)
    # Temporal makes UUIDv7 run ids for starts (a child's too) and still UUIDv4 for the
    # runs it makes itself (retry, continue-as-new, reset); temper makes every one a v7.
    assert versions["start"] == versions["child"] == 7, versions
    if harness.server_kind() == "temporal":
        assert set(versions.values()) <= {4, 7}, versions
        return
    assert versions == dict.fromkeys(runs, 7)
    # Time-ordered: each of these runs was made after the one before it.
    order = [first_run, retry_run, child_run, last_run, reset.run_id]
    assert order == sorted(order, key=lambda r: uuid.UUID(r).int), runs
