"""Workflow id uniqueness: running duplicates and the id reuse policies."""

from __future__ import annotations

import pytest
from temporalio import workflow
from temporalio.client import WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from harness import result_within, worker


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


WORKFLOWS = [WaitForSignalWorkflow, EchoWorkflow]


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
