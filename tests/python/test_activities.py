"""Activities: results, retries, non-retryable failures, timeouts, heartbeats, cancellation."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

from harness import event_types, history_events, result_within, wait_until, worker


class Activities:
    """Activity implementations; one instance per test so the test can see what ran."""

    def __init__(self) -> None:
        self.attempt_times: list[float] = []
        self.started = asyncio.Event()
        self.saw_cancel = asyncio.Event()

    @activity.defn(name="greet")
    async def greet(self, name: str) -> str:
        return f"Hello, {name}!"

    @activity.defn(name="fail_until")
    async def fail_until(self, failures: int) -> int:
        """Fails on the first `failures` attempts, then returns the attempt number."""
        self.attempt_times.append(time.monotonic())
        attempt = activity.info().attempt
        if attempt <= failures:
            raise RuntimeError(f"deliberate failure on attempt {attempt}")
        return attempt

    @activity.defn(name="fail_non_retryable")
    async def fail_non_retryable(self, _: Any) -> None:
        self.attempt_times.append(time.monotonic())
        raise ApplicationError("this cannot work", "some detail", non_retryable=True)

    @activity.defn(name="fail_bad_input")
    async def fail_bad_input(self, _: Any) -> None:
        self.attempt_times.append(time.monotonic())
        raise ApplicationError("bad input", type="BadInput")

    @activity.defn(name="slow_first_attempt")
    async def slow_first_attempt(self, _: Any) -> int:
        """Attempt 1 outlives any short start-to-close timeout; attempt 2 returns."""
        attempt = activity.info().attempt
        self.attempt_times.append(time.monotonic())
        if attempt == 1:
            await asyncio.sleep(120)  # cancelled when the worker shuts down
        return attempt

    @activity.defn(name="heartbeat_then_hang")
    async def heartbeat_then_hang(self, succeed_on_attempt: int) -> dict[str, Any]:
        """Heartbeats a few times, then goes silent unless this is `succeed_on_attempt`."""
        info = activity.info()
        previous = list(info.heartbeat_details)
        self.attempt_times.append(time.monotonic())
        for i in range(1, 4):
            activity.heartbeat(f"checkpoint-{info.attempt}.{i}")
            await asyncio.sleep(0.2)
        if info.attempt != succeed_on_attempt:
            await asyncio.sleep(120)  # no more heartbeats; cancelled at worker shutdown
        return {"attempt": info.attempt, "previous_details": previous}

    @activity.defn(name="heartbeat_until_cancelled")
    async def heartbeat_until_cancelled(self, _: Any) -> str:
        self.started.set()
        try:
            while True:
                activity.heartbeat("still here")
                await asyncio.sleep(0.1)
        except asyncio.CancelledError:
            self.saw_cancel.set()
            raise


def describe_activity_error(err: ActivityError) -> dict[str, Any]:
    """What a workflow saw, as plain data the test can assert on."""
    cause = err.cause
    out: dict[str, Any] = {
        "cause": type(cause).__name__ if cause else None,
        "message": getattr(cause, "message", None),
        "retry_state": err.retry_state.name if err.retry_state is not None else None,
        "activity_type": err.activity_type,
    }
    if isinstance(cause, ApplicationError):
        out.update(type=cause.type, non_retryable=cause.non_retryable, details=list(cause.details))
    if isinstance(cause, TemporalTimeoutError):
        out.update(
            timeout_type=cause.type.name if cause.type is not None else None,
            heartbeat_details=list(cause.last_heartbeat_details),
        )
    return out


@workflow.defn
class RunActivity:
    """Runs one activity with options from the test; returns its result or its error."""

    @workflow.run
    async def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        retry = RetryPolicy(
            initial_interval=timedelta(milliseconds=100),
            backoff_coefficient=2.0,
            maximum_attempts=spec.get("max_attempts", 5),
            non_retryable_error_types=spec.get("non_retryable_types"),
        )
        heartbeat = spec.get("heartbeat_timeout_s")
        try:
            result = await workflow.execute_activity(
                spec["activity"],
                spec.get("arg"),
                start_to_close_timeout=timedelta(seconds=spec.get("start_to_close_s", 10)),
                heartbeat_timeout=timedelta(seconds=heartbeat) if heartbeat else None,
                retry_policy=retry,
            )
        except ActivityError as err:
            return {"error": describe_activity_error(err)}
        return {"result": result}


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        greeting = await workflow.execute_activity_method(
            Activities.greet, name, start_to_close_timeout=timedelta(seconds=10)
        )
        return f"workflow got: {greeting}"


@workflow.defn
class CancelActivityWorkflow:
    """Starts a heartbeating activity and cancels it when signalled."""

    def __init__(self) -> None:
        self.cancel_requested = False

    @workflow.signal
    def cancel_activity(self) -> None:
        self.cancel_requested = True

    @workflow.run
    async def run(self) -> dict[str, Any]:
        handle = workflow.start_activity_method(
            Activities.heartbeat_until_cancelled,
            None,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=2),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: self.cancel_requested)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            return {"error": describe_activity_error(err)}
        return {"error": None}


ALL_WORKFLOWS = [RunActivity, GreetWorkflow, CancelActivityWorkflow]


def activity_list(acts: Activities) -> list[Any]:
    return [
        acts.greet,
        acts.fail_until,
        acts.fail_non_retryable,
        acts.fail_bad_input,
        acts.slow_first_attempt,
        acts.heartbeat_then_hang,
        acts.heartbeat_until_cancelled,
    ]


async def run_spec(client: Client, task_queue: str, wf_id: str, spec: dict[str, Any]) -> Any:
    handle = await client.start_workflow(RunActivity.run, spec, id=wf_id, task_queue=task_queue)
    return handle, await result_within(handle, 60)


def started_event(events: list[Any]) -> Any:
    [event] = [e for e in events if e.HasField("activity_task_started_event_attributes")]
    return event.activity_task_started_event_attributes


@pytest.mark.timeout(60)
async def test_activity_result_reaches_workflow_and_client(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle = await client.start_workflow(
            GreetWorkflow.run, "temper", id=new_id(), task_queue=task_queue
        )
        assert await result_within(handle, 30) == "workflow got: Hello, temper!"
    assert event_types(await history_events(handle)) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]


@pytest.mark.timeout(60)
async def test_activity_retries_until_success(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle, outcome = await run_spec(
            client, task_queue, new_id(), {"activity": "fail_until", "arg": 2}
        )
    assert outcome == {"result": 3}, "the activity saw attempt == 3 and returned it"
    assert len(acts.attempt_times) == 3
    # Retry backoff: 100 ms, then 200 ms (coefficient 2). Generous upper bounds.
    t1, t2, t3 = acts.attempt_times
    assert 0.09 <= t2 - t1 < 5, f"first retry after {t2 - t1:.3f}s"
    assert 0.18 <= t3 - t2 < 5, f"second retry after {t3 - t2:.3f}s"
    # Retries are not separate events: one scheduled/started/completed, started says attempt 3.
    events = await history_events(handle)
    types = event_types(events)
    assert types.count("ACTIVITY_TASK_SCHEDULED") == 1
    assert types.count("ACTIVITY_TASK_STARTED") == 1
    assert types.count("ACTIVITY_TASK_COMPLETED") == 1
    started = started_event(events)
    assert started.attempt == 3
    assert "deliberate failure on attempt 2" in started.last_failure.message


@pytest.mark.timeout(60)
async def test_non_retryable_application_error(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle, outcome = await run_spec(
            client, task_queue, new_id(), {"activity": "fail_non_retryable"}
        )
    error = outcome["error"]
    assert error["cause"] == "ApplicationError"
    assert error["message"] == "this cannot work"
    assert error["non_retryable"] is True
    assert error["details"] == ["some detail"]
    assert error["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert error["activity_type"] == "fail_non_retryable"
    assert len(acts.attempt_times) == 1
    assert "ACTIVITY_TASK_FAILED" in event_types(await history_events(handle))


@pytest.mark.timeout(60)
async def test_non_retryable_error_types(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        _, outcome = await run_spec(
            client,
            task_queue,
            new_id(),
            {"activity": "fail_bad_input", "non_retryable_types": ["BadInput"]},
        )
    error = outcome["error"]
    assert error["cause"] == "ApplicationError"
    assert error["type"] == "BadInput"
    assert error["message"] == "bad input"
    assert error["non_retryable"] is False, "the retry policy, not the error, made it final"
    assert error["retry_state"] == "NON_RETRYABLE_FAILURE"
    assert len(acts.attempt_times) == 1


@pytest.mark.timeout(60)
async def test_start_to_close_timeout_then_retry_succeeds(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle, outcome = await run_spec(
            client,
            task_queue,
            new_id(),
            {"activity": "slow_first_attempt", "start_to_close_s": 1, "max_attempts": 3},
        )
    assert outcome == {"result": 2}
    t1, t2 = acts.attempt_times
    assert t2 - t1 >= 0.9, "attempt 2 must wait for attempt 1's start-to-close timeout"
    started = started_event(await history_events(handle))
    assert started.attempt == 2
    assert started.last_failure.HasField("timeout_failure_info")


@pytest.mark.timeout(60)
async def test_heartbeat_timeout(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle, outcome = await run_spec(
            client,
            task_queue,
            new_id(),
            {
                "activity": "heartbeat_then_hang",
                "arg": 0,  # never succeeds
                "heartbeat_timeout_s": 1,
                "start_to_close_s": 60,
                "max_attempts": 1,
            },
        )
    error = outcome["error"]
    assert error["cause"] == "TimeoutError"
    assert error["timeout_type"] == "HEARTBEAT"
    assert error["heartbeat_details"] == ["checkpoint-1.3"], "the latest details win"
    assert error["retry_state"] == "MAXIMUM_ATTEMPTS_REACHED"
    assert len(acts.attempt_times) == 1
    assert "ACTIVITY_TASK_TIMED_OUT" in event_types(await history_events(handle))


@pytest.mark.timeout(60)
async def test_heartbeat_details_reach_next_attempt(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        _, outcome = await run_spec(
            client,
            task_queue,
            new_id(),
            {
                "activity": "heartbeat_then_hang",
                "arg": 2,  # attempt 1 goes silent and times out, attempt 2 returns
                "heartbeat_timeout_s": 1,
                "start_to_close_s": 60,
                "max_attempts": 2,
            },
        )
    assert outcome == {"result": {"attempt": 2, "previous_details": ["checkpoint-1.3"]}}


@pytest.mark.timeout(60)
async def test_workflow_cancels_activity(client, task_queue, new_id):
    acts = Activities()
    async with worker(client, task_queue, workflows=ALL_WORKFLOWS, activities=activity_list(acts)):
        handle = await client.start_workflow(
            CancelActivityWorkflow.run, id=new_id(), task_queue=task_queue
        )
        await asyncio.wait_for(acts.started.wait(), 30)
        await handle.signal(CancelActivityWorkflow.cancel_activity)
        outcome = await result_within(handle, 30)
        await wait_until(acts.saw_cancel.is_set, timeout=10, what="activity to see CancelledError")
    error = outcome["error"]
    assert error["cause"] == "CancelledError"
    assert error["retry_state"] == "CANCEL_REQUESTED"
    types = event_types(await history_events(handle))
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in types
    assert "ACTIVITY_TASK_CANCELED" in types
    assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED"
