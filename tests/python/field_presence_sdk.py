"""The SDK-driven half of the field-presence comparison (see field_presence.py).

A Python SDK worker runs the same workflows on each server, so both get the same commands:
activities that retry, heartbeat, time out and are cancelled, a local activity, a cancelled
timer, children signalled and cancelled through external handles, an update, a memo
upsert, continue-as-new, and runs that fail, are terminated and time out. Every event of
every run is recorded by type, with describe of the closed parent and of a child.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError

from field_presence import Presence, field_paths
from harness import wait_for_event, worker

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2)


@activity.defn
async def flaky() -> str:
    activity.heartbeat("beat")
    if activity.info().attempt == 1:
        raise ApplicationError("first attempt fails")
    return "ok"


@activity.defn
async def quick() -> str:
    return "quick"


@activity.defn
async def slow() -> None:
    await asyncio.sleep(3)


@activity.defn
async def until_cancelled() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.1)


@workflow.defn
class PresenceChild:
    def __init__(self) -> None:
        self.released = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.released)
        return "child"

    @workflow.signal
    def release(self) -> None:
        self.released = True


@workflow.defn
class PresenceParent:
    def __init__(self) -> None:
        self.updated = False

    @workflow.run
    async def run(self, iteration: int) -> str:
        if iteration > 0:
            return "done"
        await workflow.execute_activity(
            flaky,
            start_to_close_timeout=timedelta(seconds=10),
            heartbeat_timeout=timedelta(seconds=5),
            retry_policy=FAST_RETRY,
        )
        await workflow.execute_activity(quick, schedule_to_close_timeout=timedelta(seconds=10))
        await workflow.execute_local_activity(quick, start_to_close_timeout=timedelta(seconds=10))
        try:
            await workflow.execute_activity(
                slow,
                start_to_close_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError:
            pass
        cancelled = workflow.start_activity(
            until_cancelled,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=5),
        )
        timer = asyncio.ensure_future(asyncio.sleep(3600))
        await asyncio.sleep(0.1)
        timer.cancel()
        cancelled.cancel()
        try:
            await cancelled
        except ActivityError:
            pass

        info = workflow.info()
        child = await workflow.start_child_workflow(
            PresenceChild.run,
            id=f"{info.workflow_id}-child",
            execution_timeout=timedelta(seconds=60),
        )
        await workflow.get_external_workflow_handle(child.id).signal(PresenceChild.release)
        await child
        doomed = await workflow.start_child_workflow(
            PresenceChild.run, id=f"{info.workflow_id}-doomed"
        )
        await workflow.get_external_workflow_handle(doomed.id).cancel()
        try:
            await doomed
        except ChildWorkflowError:
            pass

        workflow.upsert_memo({"note": "set"})
        await workflow.wait_condition(lambda: self.updated)
        workflow.continue_as_new(iteration + 1)

    @workflow.update
    def bump(self) -> None:
        self.updated = True


@workflow.defn
class PresenceFailing:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("fails on purpose", non_retryable=True)


@workflow.defn
class PresenceWaiting:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def run_sdk_scenario(client: Client, task_queue: str, workflow_id: str) -> Presence:
    out: Presence = {}
    svc = client.workflow_service

    def record(name: str, message) -> None:
        out.setdefault(name, set()).update(field_paths(message))

    async def record_history(handle: WorkflowHandle) -> None:
        async for event in handle.fetch_history_events():
            record(f"event {EventType.Name(event.event_type).removeprefix('EVENT_TYPE_')}", event)

    async with worker(
        client,
        task_queue,
        workflows=[PresenceParent, PresenceChild, PresenceFailing, PresenceWaiting],
        activities=[flaky, quick, slow, until_cancelled],
    ):
        parent = await client.start_workflow(
            PresenceParent.run,
            0,
            id=workflow_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=120),
            run_timeout=timedelta(seconds=60),
        )
        await parent.execute_update(PresenceParent.bump)
        assert await asyncio.wait_for(parent.result(), 60) == "done"

        failing = await client.start_workflow(
            PresenceFailing.run, id=f"{workflow_id}-failing", task_queue=task_queue
        )
        try:
            await asyncio.wait_for(failing.result(), 30)
        except WorkflowFailureError:
            pass
        waiting = await client.start_workflow(
            PresenceWaiting.run, id=f"{workflow_id}-terminated", task_queue=task_queue
        )
        await wait_for_event(waiting, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await waiting.terminate("on purpose")
        timing_out = await client.start_workflow(
            PresenceWaiting.run,
            id=f"{workflow_id}-timeout",
            task_queue=task_queue,
            run_timeout=timedelta(seconds=1),
        )
        try:
            await asyncio.wait_for(timing_out.result(), 30)
        except WorkflowFailureError:
            pass

    first_run = client.get_workflow_handle(workflow_id, run_id=parent.first_execution_run_id)
    for handle in (
        first_run,
        client.get_workflow_handle(workflow_id),
        client.get_workflow_handle(f"{workflow_id}-child"),
        client.get_workflow_handle(f"{workflow_id}-doomed"),
        failing,
        waiting,
        timing_out,
    ):
        await record_history(handle)
    record("describe(continued-as-new run)", (await first_run.describe()).raw_description)
    record(
        "describe(child)",
        (await client.get_workflow_handle(f"{workflow_id}-child").describe()).raw_description,
    )
    del svc
    return out
