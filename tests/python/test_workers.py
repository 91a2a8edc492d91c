"""A worker dies mid-workflow; a new worker (fresh cache) finishes the workflow from history."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.common import RetryPolicy

from harness import event_types, history_events, result_within, wait_until, worker


class Steps:
    """Activity implementations for one worker; records what this worker executed."""

    def __init__(self, name: str, block_first_attempt_of: str | None = None) -> None:
        self.name = name
        self.executed: list[str] = []
        self.block_first_attempt_of = block_first_attempt_of
        self.blocked = asyncio.Event()

    @activity.defn(name="step")
    async def step(self, label: str) -> str:
        self.executed.append(label)
        if label == self.block_first_attempt_of and activity.info().attempt == 1:
            self.blocked.set()
            await asyncio.sleep(300)  # until this worker is shut down
        return f"{label} by {self.name}"


RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=10)


@workflow.defn
class GatedStepsWorkflow:
    """Step one, then wait for a signal, then step two."""

    def __init__(self) -> None:
        self.proceed = False

    @workflow.signal
    def go(self) -> None:
        self.proceed = True

    @workflow.run
    async def run(self) -> list[str]:
        one = await workflow.execute_activity_method(
            Steps.step, "one", start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY
        )
        await workflow.wait_condition(lambda: self.proceed)
        two = await workflow.execute_activity_method(
            Steps.step, "two", start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY
        )
        return [one, two]


@workflow.defn
class ThreeStepsWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        results = []
        for label in ("one", "two", "three"):
            results.append(
                await workflow.execute_activity_method(
                    Steps.step,
                    label,
                    start_to_close_timeout=timedelta(seconds=5),
                    retry_policy=RETRY,
                )
            )
        return results


WORKFLOWS = [GatedStepsWorkflow, ThreeStepsWorkflow]


@pytest.mark.timeout(90)
async def test_new_worker_finishes_workflow_from_history(client, task_queue, new_id):
    steps1, steps2 = Steps("worker1"), Steps("worker2")
    handle = await client.start_workflow(GatedStepsWorkflow.run, id=new_id(), task_queue=task_queue)

    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[steps1.step]):
        # Step one done and its result handed back to the workflow, which now waits.
        async def step_one_recorded() -> bool:
            types = event_types(await history_events(handle))
            return "ACTIVITY_TASK_COMPLETED" in types and types[-1] == "WORKFLOW_TASK_COMPLETED"

        await wait_until(step_one_recorded, timeout=30, what="step one to be recorded")
    # Worker 1 is gone, its workflow cache with it.

    await handle.signal(GatedStepsWorkflow.go)
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[steps2.step]):
        result = await result_within(handle, 60)

    assert result == ["one by worker1", "two by worker2"]
    assert steps1.executed == ["one"]
    assert steps2.executed == ["two"], "worker 2 must replay step one from history, not rerun it"


@pytest.mark.timeout(90)
async def test_worker_shut_down_during_activity(client, task_queue, new_id):
    steps1 = Steps("worker1", block_first_attempt_of="two")
    steps2 = Steps("worker2")
    handle = await client.start_workflow(ThreeStepsWorkflow.run, id=new_id(), task_queue=task_queue)

    w1 = worker(client, task_queue, workflows=WORKFLOWS, activities=[steps1.step]).start()
    try:
        await asyncio.wait_for(steps1.blocked.wait(), 30)
    finally:
        assert await w1.stop() is None  # cancels the blocked activity

    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[steps2.step]):
        result = await result_within(handle, 60)

    assert result == ["one by worker1", "two by worker2", "three by worker2"]
    assert steps1.executed == ["one", "two"]
    assert steps2.executed == ["two", "three"]
    types = event_types(await history_events(handle))
    assert types.count("ACTIVITY_TASK_COMPLETED") == 3
    assert types.count("WORKFLOW_EXECUTION_COMPLETED") == 1
