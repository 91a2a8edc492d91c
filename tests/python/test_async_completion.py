"""Asynchronous activity completion: an activity returns without a result
(`activity.raise_complete_async()`) and another process, with its own client, heartbeats,
completes, fails or reports the cancellation of it, by task token or by workflow/activity id."""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import ActivityCancellationType

from harness import NAMESPACE, ServerProcess, history_events, result_within, wait_until, worker

ET = EventType
COMPLETER = Path(__file__).with_name("async_completer.py")
COMPLETER_IDENTITY = "async-completer"  # what async_completer.py connects as


class Outside:
    """An activity that hands its task token to the test and returns without a result."""

    def __init__(self) -> None:
        self.started: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    @activity.defn(name="wait_outside")
    async def wait_outside(self) -> str:
        info = activity.info()
        self.started.put_nowait(
            {
                "token": base64.b64encode(info.task_token).decode(),
                "workflow_id": info.workflow_id,
                "run_id": info.workflow_run_id,
                "activity_id": info.activity_id,
                "attempt": info.attempt,
            }
        )
        activity.raise_complete_async()


@workflow.defn
class RunOutsideActivity:
    """Runs `wait_outside` once (no retries) and reports its result or error."""

    @workflow.run
    async def run(self, heartbeat_timeout_s: float | None) -> dict[str, Any]:
        try:
            result = await workflow.execute_activity(
                "wait_outside",
                activity_id="outside-1",
                start_to_close_timeout=timedelta(seconds=60),
                heartbeat_timeout=(
                    timedelta(seconds=heartbeat_timeout_s) if heartbeat_timeout_s else None
                ),
                retry_policy=RetryPolicy(maximum_attempts=1),
                cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            )
        except ActivityError as err:
            cause = err.cause
            out: dict[str, Any] = {
                "error": type(cause).__name__,
                "message": getattr(cause, "message", str(cause)),
            }
            if isinstance(cause, ApplicationError):
                out.update(type=cause.type, details=list(cause.details))
            if isinstance(cause, TemporalTimeoutError) and cause.type is not None:
                out.update(timeout_type=cause.type.name)
            if isinstance(cause, CancelledError):
                out.update(details=list(cause.details))
            return out
        return {"result": result}


@workflow.defn
class CancelOutsideActivity:
    """Starts `wait_outside`, cancels it when signalled and waits for the cancellation."""

    def __init__(self) -> None:
        self.cancel = False

    @workflow.signal
    def cancel_it(self) -> None:
        self.cancel = True

    @workflow.run
    async def run(self) -> dict[str, Any]:
        handle = workflow.start_activity(
            "wait_outside",
            activity_id="outside-1",
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=1),
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        await workflow.wait_condition(lambda: self.cancel)
        handle.cancel()
        try:
            await handle
        except ActivityError as err:
            cause = err.cause
            return {"error": type(cause).__name__, "details": list(getattr(cause, "details", []))}
        return {"error": None}


WORKFLOWS = [RunOutsideActivity, CancelOutsideActivity]


async def run_completer(server: ServerProcess, ref: dict[str, Any], steps: list[Any]) -> list[Any]:
    """Runs async_completer.py in a separate Python process; returns its step outcomes."""
    spec = {"address": server.address, **ref, "steps": steps}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(COMPLETER),
        json.dumps(spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, f"completer failed: {err.decode()}"
    return json.loads(out.decode().strip().splitlines()[-1])


def by_token(started: dict[str, Any]) -> dict[str, Any]:
    return {"token": started["token"]}


def by_id(started: dict[str, Any]) -> dict[str, Any]:
    keys = ("workflow_id", "run_id", "activity_id")
    return {"id": {k: started[k] for k in keys}}


def only(events: list[HistoryEvent], event_type: int) -> HistoryEvent:
    matches = [e for e in events if e.event_type == event_type]
    assert len(matches) == 1, [EventType.Name(e.event_type) for e in events]
    return matches[0]


def activity_events(events: list[HistoryEvent]) -> list[str]:
    return [
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        for e in events
        if EventType.Name(e.event_type).startswith("EVENT_TYPE_ACTIVITY_TASK_")
    ]


async def pending_activity(client: Client, handle: WorkflowHandle[Any, Any]) -> Any:
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=handle.id)
        )
    )
    [pending] = described.pending_activities
    return pending


async def start(
    client: Client, task_queue: str, wf_id: str, outside: Outside, heartbeat_s: float | None
) -> tuple[WorkflowHandle[Any, Any], dict[str, Any]]:
    handle = await client.start_workflow(
        RunOutsideActivity.run, heartbeat_s, id=wf_id, task_queue=task_queue
    )
    started = await asyncio.wait_for(outside.started.get(), 30)
    assert started["workflow_id"] == wf_id
    assert started["activity_id"] == "outside-1"
    return handle, started


@pytest.mark.timeout(60)
async def test_complete_by_task_token_from_another_process(server, client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        handle, started = await start(client, task_queue, new_id(), outside, None)
        # The worker has returned; the activity is still running on the server.
        pending = await pending_activity(client, handle)
        assert pending.activity_id == "outside-1"
        assert pending.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        assert await run_completer(server, by_token(started), [["complete", "done outside"]]) == [
            "ok"
        ]
        assert await result_within(handle, 30) == {"result": "done outside"}
        # The token is spent: a second completion is rejected.
        again = client.get_async_activity_handle(task_token=base64.b64decode(started["token"]))
        with pytest.raises(RPCError) as err:
            await again.complete("twice")
        assert err.value.status == RPCStatusCode.NOT_FOUND

    events = await history_events(handle)
    assert activity_events(events) == [
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
    ]
    completed = only(events, ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    attrs = completed.activity_task_completed_event_attributes
    assert attrs.identity == COMPLETER_IDENTITY
    assert attrs.result.payloads[0].data == b'"done outside"'
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_complete_by_activity_id_from_another_process(server, client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        handle, started = await start(client, task_queue, new_id(), outside, None)
        assert started["run_id"] == handle.result_run_id
        outcome = await run_completer(
            server, by_id(started), [["heartbeat", "halfway"], ["complete", {"by": "id"}]]
        )
        assert outcome == ["ok", "ok"]
        assert await result_within(handle, 30) == {"result": {"by": "id"}}
    events = await history_events(handle)
    completed = only(events, ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    assert completed.activity_task_completed_event_attributes.identity == COMPLETER_IDENTITY


@pytest.mark.timeout(60)
async def test_complete_by_id_of_unknown_activity_is_not_found(server, client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        handle, started = await start(client, task_queue, new_id(), outside, None)
        wrong = by_id({**started, "activity_id": "no-such-activity"})
        [outcome] = await run_completer(server, wrong, [["complete", "nope"]])
        assert outcome["error"] == "RPCError"
        assert outcome["status"] == "NOT_FOUND"
        # The real activity is untouched and can still be completed.
        assert await run_completer(server, by_token(started), [["complete", "real"]]) == ["ok"]
        assert await result_within(handle, 30) == {"result": "real"}


@pytest.mark.timeout(60)
async def test_heartbeats_keep_it_alive_then_fail_by_token(server, client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        # Heartbeat timeout 2 s; the other process heartbeats for ~3 s, then fails the activity.
        handle, started = await start(client, task_queue, new_id(), outside, 2)
        steps: list[Any] = []
        for i in range(1, 5):
            steps += [["heartbeat", f"progress-{i}"], ["sleep", 0.75]]
        outcome = await run_completer(server, by_token(started), steps)
        assert outcome == ["ok"] * len(steps)
        pending = await pending_activity(client, handle)
        convert = client.data_converter.payload_converter
        assert [convert.from_payload(p) for p in pending.heartbeat_details.payloads] == [
            "progress-4"
        ]
        assert pending.last_heartbeat_time.ToDatetime() > pending.last_started_time.ToDatetime()
        assert await run_completer(server, by_token(started), [["fail", "failed elsewhere"]]) == [
            "ok"
        ]
        result = await result_within(handle, 30)
    assert result == {
        "error": "ApplicationError",
        "message": "failed elsewhere",
        "type": "FailedElsewhere",
        "details": ["failure detail"],
    }
    events = await history_events(handle)
    assert activity_events(events) == [
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_FAILED",
    ]
    failed = only(events, ET.EVENT_TYPE_ACTIVITY_TASK_FAILED)
    attrs = failed.activity_task_failed_event_attributes
    assert attrs.identity == COMPLETER_IDENTITY
    assert attrs.failure.message == "failed elsewhere"
    assert attrs.failure.application_failure_info.type == "FailedElsewhere"


@pytest.mark.timeout(60)
async def test_async_activity_without_heartbeats_times_out(client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        handle, _ = await start(client, task_queue, new_id(), outside, 1)
        result = await result_within(handle, 30)
    assert result["error"] == "TimeoutError"
    assert result["timeout_type"] == "HEARTBEAT"
    assert "ACTIVITY_TASK_TIMED_OUT" in activity_events(await history_events(handle))


@pytest.mark.timeout(60)
async def test_cancel_reaches_outside_heartbeat_then_reported(server, client, task_queue, new_id):
    outside = Outside()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[outside.wait_outside]):
        handle = await client.start_workflow(
            CancelOutsideActivity.run, id=new_id(), task_queue=task_queue
        )
        started = await asyncio.wait_for(outside.started.get(), 30)
        assert await run_completer(server, by_token(started), [["heartbeat", "before"]]) == ["ok"]
        await handle.signal(CancelOutsideActivity.cancel_it)

        async def cancel_requested() -> bool:
            types = activity_events(await history_events(handle))
            return "ACTIVITY_TASK_CANCEL_REQUESTED" in types

        await wait_until(cancel_requested, timeout=20, what="ACTIVITY_TASK_CANCEL_REQUESTED")
        # The next heartbeat tells the other process about the cancellation.
        [heartbeat, reported] = await run_completer(
            server,
            by_token(started),
            [["heartbeat", "after"], ["report_cancellation", "gave up outside"]],
        )
        assert heartbeat["error"] == "AsyncActivityCancelledError"
        assert reported == "ok"
        result = await result_within(handle, 30)
    assert result == {"error": "CancelledError", "details": ["gave up outside"]}
    events = await history_events(handle)
    # The started event is written when the activity closes, so after the cancel request.
    assert activity_events(events) == [
        "ACTIVITY_TASK_SCHEDULED",
        "ACTIVITY_TASK_CANCEL_REQUESTED",
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_CANCELED",
    ]
    canceled = only(events, ET.EVENT_TYPE_ACTIVITY_TASK_CANCELED)
    assert canceled.activity_task_canceled_event_attributes.identity == COMPLETER_IDENTITY
