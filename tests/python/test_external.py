"""One workflow signalling or cancelling another (not its child) through an external handle,
and what both histories record, including targets that do not exist."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import (
    CancelExternalWorkflowExecutionFailedCause,
    EventType,
    SignalExternalWorkflowExecutionFailedCause,
)
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import CancelledError

from harness import history_events, result_within, wait_for_event, worker

ET = EventType
SIGNAL_TARGET_NOT_FOUND = SignalExternalWorkflowExecutionFailedCause.Value(
    "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND"
)
CANCEL_TARGET_NOT_FOUND = CancelExternalWorkflowExecutionFailedCause.Value(
    "CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND"
)


@workflow.defn
class Target:
    """Collects signals until it has `expected` of them; reports a cancellation's reason."""

    def __init__(self) -> None:
        self.received: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.received.append(value)

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.received) >= expected)
        return self.received


@workflow.defn
class Sender:
    """Signals or cancels the workflow `target_id` and reports how that went."""

    @workflow.run
    async def run(self, action: str, target_id: str) -> dict[str, Any]:
        handle = workflow.get_external_workflow_handle(target_id)
        try:
            if action == "signal":
                await handle.signal("add", "hello from a workflow")
            else:
                await handle.cancel(reason="cancelled by Sender")
        except Exception as err:  # noqa: BLE001 - the test asserts on what surfaced
            return {"error": type(err).__name__, "message": str(err)}
        return {"error": None}


WORKFLOWS = [Target, Sender]


def only(events: list[HistoryEvent], event_type: int) -> HistoryEvent:
    matches = [e for e in events if e.event_type == event_type]
    assert len(matches) == 1, [EventType.Name(e.event_type) for e in events]
    return matches[0]


def types(events: list[HistoryEvent]) -> list[int]:
    return [e.event_type for e in events]


@pytest.mark.timeout(60)
async def test_workflow_signals_external_workflow(client, task_queue, new_id):
    target_id, sender_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        target = await client.start_workflow(Target.run, 1, id=target_id, task_queue=task_queue)
        sender = await client.start_workflow(
            Sender.run, args=["signal", target_id], id=sender_id, task_queue=task_queue
        )
        assert await result_within(sender, 30) == {"error": None}
        assert await result_within(target, 30) == ["hello from a workflow"]

    events = await history_events(sender)
    initiated = only(events, ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    signaled = only(events, ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED)
    assert initiated.event_id < signaled.event_id
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    init = initiated.signal_external_workflow_execution_initiated_event_attributes
    assert init.workflow_execution.workflow_id == target_id
    assert init.signal_name == "add"
    assert init.input.payloads[0].data == b'"hello from a workflow"'
    assert init.child_workflow_only is False
    assert events[initiated.event_id - 2].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    assert init.workflow_task_completed_event_id == initiated.event_id - 1
    done = signaled.external_workflow_execution_signaled_event_attributes
    assert done.initiated_event_id == initiated.event_id
    assert done.workflow_execution.workflow_id == target_id
    assert ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED not in types(events)

    target_events = await history_events(target)
    received = only(target_events, ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    attrs = received.workflow_execution_signaled_event_attributes
    assert attrs.signal_name == "add"
    assert attrs.input.payloads[0].data == b'"hello from a workflow"'
    assert attrs.external_workflow_execution.workflow_id == sender_id
    assert attrs.external_workflow_execution.run_id == sender.result_run_id
    assert target_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_signal_to_missing_workflow_fails_in_sender(client, task_queue, new_id):
    missing_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        sender = await client.start_workflow(
            Sender.run, args=["signal", missing_id], id=new_id(), task_queue=task_queue
        )
        outcome = await result_within(sender, 30)
    assert outcome["error"] == "ApplicationError"
    assert "not found" in outcome["message"].lower(), outcome

    events = await history_events(sender)
    initiated = only(events, ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    failed = only(events, ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)
    assert ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_SIGNALED not in types(events)
    attrs = failed.signal_external_workflow_execution_failed_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.workflow_execution.workflow_id == missing_id
    assert attrs.cause == SIGNAL_TARGET_NOT_FOUND
    # The failure is delivered to the workflow by a new workflow task.
    assert events[failed.event_id].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_signal_to_completed_workflow_fails_in_sender(client, task_queue, new_id):
    done_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        done = await client.start_workflow(Target.run, 0, id=done_id, task_queue=task_queue)
        assert await result_within(done, 30) == []
        sender = await client.start_workflow(
            Sender.run, args=["signal", done_id], id=new_id(), task_queue=task_queue
        )
        outcome = await result_within(sender, 30)
    assert outcome["error"] == "ApplicationError"
    failed = only(
        await history_events(sender), ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED
    )
    attrs = failed.signal_external_workflow_execution_failed_event_attributes
    assert attrs.cause == SIGNAL_TARGET_NOT_FOUND
    assert ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED not in types(await history_events(done))


@pytest.mark.timeout(60)
async def test_workflow_cancels_external_workflow(client, task_queue, new_id):
    target_id, sender_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        target = await client.start_workflow(Target.run, 1, id=target_id, task_queue=task_queue)
        await wait_for_event(target, "WORKFLOW_TASK_COMPLETED", timeout=30)
        sender = await client.start_workflow(
            Sender.run, args=["cancel", target_id], id=sender_id, task_queue=task_queue
        )
        assert await result_within(sender, 30) == {"error": None}
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(target, 30)
    assert isinstance(info.value.cause, CancelledError)
    assert (await target.describe()).status == WorkflowExecutionStatus.CANCELED

    events = await history_events(sender)
    initiated = only(events, ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    requested = only(events, ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert initiated.event_id < requested.event_id
    init = initiated.request_cancel_external_workflow_execution_initiated_event_attributes
    assert init.workflow_execution.workflow_id == target_id
    assert init.child_workflow_only is False
    # The SDK puts the sender's run id into the reason it sends.
    assert init.reason == (
        f"Cancel requested by workflow with run id {sender.result_run_id}"
        " with reason: cancelled by Sender"
    )
    done = requested.external_workflow_execution_cancel_requested_event_attributes
    assert done.initiated_event_id == initiated.event_id
    assert done.workflow_execution.workflow_id == target_id
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED

    target_events = await history_events(target)
    cancel = only(target_events, ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    attrs = cancel.workflow_execution_cancel_requested_event_attributes
    assert attrs.cause == init.reason
    assert attrs.external_initiated_event_id == initiated.event_id
    assert attrs.external_workflow_execution.workflow_id == sender_id
    assert attrs.external_workflow_execution.run_id == sender.result_run_id
    assert target_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED


@pytest.mark.timeout(60)
async def test_cancel_of_missing_workflow_fails_in_sender(client, task_queue, new_id):
    missing_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        sender = await client.start_workflow(
            Sender.run, args=["cancel", missing_id], id=new_id(), task_queue=task_queue
        )
        outcome = await result_within(sender, 30)
    assert outcome["error"] == "ApplicationError"
    assert "not found" in outcome["message"].lower(), outcome

    events = await history_events(sender)
    initiated = only(events, ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    failed = only(events, ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED)
    assert ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED not in types(events)
    attrs = failed.request_cancel_external_workflow_execution_failed_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.workflow_execution.workflow_id == missing_id
    assert attrs.cause == CANCEL_TARGET_NOT_FOUND
    assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_cancel_of_completed_workflow_is_requested_in_sender(client, task_queue, new_id):
    """Unlike a signal, a cancel request to a closed workflow succeeds on Temporal (the
    server answers it as a no-op), so the sender records it as requested; the target's
    history does not change."""
    done_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        done = await client.start_workflow(Target.run, 0, id=done_id, task_queue=task_queue)
        assert await result_within(done, 30) == []
        before = types(await history_events(done))
        sender = await client.start_workflow(
            Sender.run, args=["cancel", done_id], id=new_id(), task_queue=task_queue
        )
        assert await result_within(sender, 30) == {"error": None}

    events = await history_events(sender)
    initiated = only(events, ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED)
    requested = only(events, ET.EVENT_TYPE_EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED)
    assert ET.EVENT_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED not in types(events)
    attrs = requested.external_workflow_execution_cancel_requested_event_attributes
    assert attrs.initiated_event_id == initiated.event_id
    assert attrs.workflow_execution.workflow_id == done_id
    assert types(await history_events(done)) == before
    assert (await done.describe()).status == WorkflowExecutionStatus.COMPLETED


@pytest.mark.timeout(60)
async def test_many_workflows_signal_one_target(client, task_queue, new_id):
    target_id = new_id()
    senders = 5
    async with worker(client, task_queue, workflows=WORKFLOWS):
        target = await client.start_workflow(
            Target.run, senders, id=target_id, task_queue=task_queue
        )
        handles = [
            await client.start_workflow(
                Sender.run, args=["signal", target_id], id=new_id(), task_queue=task_queue
            )
            for _ in range(senders)
        ]
        outcomes = await asyncio.gather(*(result_within(h, 30) for h in handles))
        assert outcomes == [{"error": None}] * senders
        assert await result_within(target, 30) == ["hello from a workflow"] * senders
    target_events = await history_events(target)
    origins = {
        e.workflow_execution_signaled_event_attributes.external_workflow_execution.workflow_id
        for e in target_events
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    }
    assert origins == {h.id for h in handles}
