"""Compensation and cleanup: a saga undoing its completed steps in reverse order, and
workflows that run cleanup activities after a cancellation request before ending canceled."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, RetryState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.workflow import ActivityCancellationType

from harness import history_events, result_within, wait_for_event, wait_until, worker

ET = EventType
NO_RETRY = RetryPolicy(maximum_attempts=1)
QUICK = timedelta(seconds=10)


class Steps:
    """Activities that record, in order, every invocation the test can then assert on."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.long_work_started = asyncio.Event()
        self.long_work_cancelled = asyncio.Event()

    @activity.defn(name="do_step")
    async def do_step(self, step: str) -> str:
        self.calls.append(f"do:{step}")
        if step == "car":
            raise ApplicationError("no cars left", type="SoldOut", non_retryable=True)
        return f"booked {step}"

    @activity.defn(name="undo_step")
    async def undo_step(self, step: str) -> str:
        self.calls.append(f"undo:{step}")
        return f"released {step}"

    @activity.defn(name="long_work")
    async def long_work(self) -> str:
        self.calls.append("long_work")
        self.long_work_started.set()
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self.calls.append("long_work:cancelled")
            self.long_work_cancelled.set()
            raise

    @activity.defn(name="cleanup")
    async def cleanup(self, what: str) -> str:
        self.calls.append(f"cleanup:{what}")
        return "clean"


@workflow.defn
class TripSaga:
    """Books each step; when one fails, undoes the completed ones, last first."""

    @workflow.run
    async def run(self, steps: list[str]) -> list[str]:
        done: list[str] = []
        try:
            for step in steps:
                await workflow.execute_activity(
                    "do_step", step, start_to_close_timeout=QUICK, retry_policy=NO_RETRY
                )
                done.append(step)
        except ActivityError as err:
            for step in reversed(done):
                await workflow.execute_activity(
                    "undo_step", step, start_to_close_timeout=QUICK, retry_policy=NO_RETRY
                )
            raise ApplicationError(
                f"trip failed at step {len(done) + 1}, undid {len(done)}",
                type="SagaFailed",
                non_retryable=True,
            ) from err
        return done


@workflow.defn
class CleanupAfterCancelWhileWaiting:
    """Waits forever; on cancellation runs a cleanup activity, then ends canceled."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: False)
        except asyncio.CancelledError:
            await workflow.execute_activity("cleanup", "waiting", start_to_close_timeout=QUICK)
            raise
        return "unreachable"


@workflow.defn
class CleanupAfterCancelDuringActivity:
    """Runs a long activity; a cancellation cancels it, then a cleanup activity runs."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                "long_work",
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=timedelta(seconds=2),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except (asyncio.CancelledError, ActivityError) as err:
            if isinstance(err, ActivityError) and not isinstance(err.cause, CancelledError):
                raise
            await workflow.execute_activity("cleanup", "activity", start_to_close_timeout=QUICK)
            raise asyncio.CancelledError() from None
        return "unreachable"


@workflow.defn
class CleanupThenComplete:
    """Catches the cancellation, cleans up and completes normally instead."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.sleep(timedelta(days=1))
        except asyncio.CancelledError:
            return await workflow.execute_activity(
                "cleanup", "then-complete", start_to_close_timeout=QUICK
            )
        return "unreachable"


WORKFLOWS = [
    TripSaga,
    CleanupAfterCancelWhileWaiting,
    CleanupAfterCancelDuringActivity,
    CleanupThenComplete,
]


def activity_list(steps: Steps) -> list[Any]:
    return [steps.do_step, steps.undo_step, steps.long_work, steps.cleanup]


def in_order(events: list[HistoryEvent], *expected: int) -> None:
    """Events of the `expected` types occur in this order (others may sit between them)."""
    position = 0
    for wanted in expected:
        for i in range(position, len(events)):
            if events[i].event_type == wanted:
                position = i + 1
                break
        else:
            names = [EventType.Name(e.event_type) for e in events]
            raise AssertionError(f"{EventType.Name(wanted)} missing after #{position}: {names}")


def scheduled_activities(events: list[HistoryEvent]) -> list[str]:
    """`type:argument` of every scheduled activity, in history order."""
    out = []
    for e in events:
        if e.event_type == ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = e.activity_task_scheduled_event_attributes
            arg = attrs.input.payloads[0].data.decode().strip('"') if attrs.input.payloads else ""
            out.append(f"{attrs.activity_type.name}:{arg}")
    return out


@pytest.mark.timeout(60)
async def test_saga_compensates_in_reverse_order(client, task_queue, new_id):
    steps = Steps()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=activity_list(steps)):
        handle = await client.start_workflow(
            TripSaga.run, ["flight", "hotel", "car", "museum"], id=new_id(), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert steps.calls == ["do:flight", "do:hotel", "do:car", "undo:hotel", "undo:flight"]
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.type == "SagaFailed"
    assert cause.message == "trip failed at step 3, undid 2"
    assert isinstance(cause.cause, ActivityError)
    assert isinstance(cause.cause.cause, ApplicationError)
    assert cause.cause.cause.message == "no cars left"
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED

    events = await history_events(handle)
    assert scheduled_activities(events) == [
        "do_step:flight",
        "do_step:hotel",
        "do_step:car",
        "undo_step:hotel",
        "undo_step:flight",
    ]
    types = [e.event_type for e in events]
    assert types.count(ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED) == 4
    assert types.count(ET.EVENT_TYPE_ACTIVITY_TASK_FAILED) == 1
    in_order(
        events,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_ACTIVITY_TASK_FAILED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    )
    failed = events[-1]
    assert failed.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    failure = failed.workflow_execution_failed_event_attributes.failure
    assert failure.application_failure_info.type == "SagaFailed"
    assert failure.cause.cause.message == "no cars left"


@pytest.mark.timeout(60)
async def test_cancel_runs_cleanup_then_workflow_is_canceled(client, task_queue, new_id):
    steps = Steps()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=activity_list(steps)):
        handle = await client.start_workflow(
            CleanupAfterCancelWhileWaiting.run, id=new_id(), task_queue=task_queue
        )
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert isinstance(info.value.cause, CancelledError)
    assert steps.calls == ["cleanup:waiting"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    events = await history_events(handle)
    in_order(
        events,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        ET.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    )
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    assert events[-2].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    canceled = events[-1].workflow_execution_canceled_event_attributes
    assert canceled.workflow_task_completed_event_id == events[-2].event_id
    assert scheduled_activities(events) == ["cleanup:waiting"]


@pytest.mark.timeout(60)
async def test_cancel_during_activity_cancels_it_then_cleans_up(client, task_queue, new_id):
    steps = Steps()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=activity_list(steps)):
        handle = await client.start_workflow(
            CleanupAfterCancelDuringActivity.run, id=new_id(), task_queue=task_queue
        )
        await asyncio.wait_for(steps.long_work_started.wait(), 30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
        await wait_until(steps.long_work_cancelled.is_set, timeout=10, what="activity cancel")
    assert isinstance(info.value.cause, CancelledError)
    assert steps.calls == ["long_work", "long_work:cancelled", "cleanup:activity"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    events = await history_events(handle)
    in_order(
        events,
        ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ET.EVENT_TYPE_ACTIVITY_TASK_CANCEL_REQUESTED,
        ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
        ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    )
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED
    assert scheduled_activities(events) == ["long_work:", "cleanup:activity"]


@pytest.mark.timeout(60)
async def test_cancel_caught_and_workflow_completes(client, task_queue, new_id):
    steps = Steps()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=activity_list(steps)):
        handle = await client.start_workflow(
            CleanupThenComplete.run, id=new_id(), task_queue=task_queue
        )
        await wait_for_event(handle, "TIMER_STARTED", timeout=30)
        await handle.cancel()
        assert await result_within(handle, 30) == "clean"
    assert steps.calls == ["cleanup:then-complete"]
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    events = await history_events(handle)
    in_order(
        events,
        ET.EVENT_TYPE_TIMER_STARTED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ET.EVENT_TYPE_TIMER_CANCELED,
        ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    )
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


class FailsAfterCancel:
    """Heartbeats until cancelled, then fails with a retryable error."""

    def __init__(self) -> None:
        self.attempts: list[int] = []

    @activity.defn(name="fails_after_cancel")
    async def fails_after_cancel(self) -> str:
        self.attempts.append(activity.info().attempt)
        try:
            while True:
                activity.heartbeat()
                await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            raise RuntimeError("failed while being cancelled") from None


@workflow.defn
class CancelsAFailingActivity:
    @workflow.run
    async def run(self) -> str:
        handle = workflow.start_activity(
            "fails_after_cancel",
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=2),
            # Retryable failures would be retried at once (1 ms), many times.
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=1)),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.sleep(1)
        handle.cancel()
        try:
            await handle
        except ActivityError as e:
            return f"{type(e.cause).__name__}: {e.cause}"
        return "not failed"


async def test_an_activity_asked_to_cancel_is_not_retried(client, task_queue, new_id):
    """An activity whose cancellation the workflow requested fails for good, even with a
    retryable failure and attempts left (Temporal's retry state CANCEL_REQUESTED)."""
    acts = FailsAfterCancel()
    async with worker(
        client,
        task_queue,
        workflows=[CancelsAFailingActivity],
        activities=[acts.fails_after_cancel],
    ):
        handle = await client.start_workflow(
            CancelsAFailingActivity.run, id=new_id(), task_queue=task_queue
        )
        result = await result_within(handle, 20)
    assert "failed while being cancelled" in result, result
    assert acts.attempts == [1]
    events = await history_events(handle)
    failed = [e for e in events if e.event_type == ET.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert len(failed) == 1
    attrs = failed[0].activity_task_failed_event_attributes
    assert attrs.retry_state == RetryState.RETRY_STATE_CANCEL_REQUESTED
