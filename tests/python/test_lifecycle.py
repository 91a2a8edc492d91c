"""Workflow lifecycle from the client: describe, history, cancel, terminate, failure, timeout."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import RequestCancelWorkflowExecutionRequest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ApplicationError, CancelledError, TerminatedError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode

from harness import event_types, history_events, result_within, wait_for_event, worker


@activity.defn
async def double(n: int) -> int:
    return 2 * n


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
class TwoActivitiesWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        once = await workflow.execute_activity(
            double, n, start_to_close_timeout=timedelta(seconds=10)
        )
        await workflow.sleep(0.1)
        return await workflow.execute_activity(
            double, once, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn
class FailingWorkflow:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("workflow gave up", {"why": "testing"}, type="GaveUp")


@workflow.defn
class SleepForeverWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(timedelta(days=1))


WORKFLOWS = [WaitForSignalWorkflow, TwoActivitiesWorkflow, FailingWorkflow, SleepForeverWorkflow]


@pytest.mark.timeout(60)
async def test_describe_running_then_completed(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[double]):
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=wf_id, task_queue=task_queue
        )
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        running = await handle.describe()
        assert running.status == WorkflowExecutionStatus.RUNNING
        assert running.id == wf_id
        assert running.run_id == handle.result_run_id
        assert running.workflow_type == "WaitForSignalWorkflow"
        assert running.task_queue == task_queue
        assert running.namespace == "default"
        assert running.start_time is not None
        assert running.close_time is None

        await handle.signal(WaitForSignalWorkflow.finish)
        assert await result_within(handle, 30) == "finished"

    done = await handle.describe()
    assert done.status == WorkflowExecutionStatus.COMPLETED
    assert done.workflow_type == "WaitForSignalWorkflow"
    assert done.task_queue == task_queue
    assert done.start_time == running.start_time
    assert done.close_time is not None and done.close_time >= done.start_time
    assert done.history_length == len(await history_events(handle))


@pytest.mark.timeout(60)
async def test_fetch_history(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS, activities=[double]):
        handle = await client.start_workflow(
            TwoActivitiesWorkflow.run, 5, id=new_id(), task_queue=task_queue
        )
        assert await result_within(handle, 30) == 20

    events = await history_events(handle)
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert events[0].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    times = [e.event_time.ToDatetime() for e in events]
    assert times == sorted(times), "event times never go backwards"

    started = events[0].workflow_execution_started_event_attributes
    assert started.workflow_type.name == "TwoActivitiesWorkflow"
    assert started.task_queue.name == task_queue
    types = event_types(events)
    assert types.count("ACTIVITY_TASK_COMPLETED") == 2
    assert types.count("TIMER_FIRED") == 1
    # Every reference to another event points backwards at an event of the right kind.
    by_id = {e.event_id: e for e in events}
    for e in events:
        if e.HasField("activity_task_completed_event_attributes"):
            attrs = e.activity_task_completed_event_attributes
            assert event_types([by_id[attrs.scheduled_event_id]]) == ["ACTIVITY_TASK_SCHEDULED"]
            assert event_types([by_id[attrs.started_event_id]]) == ["ACTIVITY_TASK_STARTED"]
        if e.HasField("workflow_task_completed_event_attributes"):
            attrs = e.workflow_task_completed_event_attributes
            assert event_types([by_id[attrs.scheduled_event_id]]) == ["WORKFLOW_TASK_SCHEDULED"]
            assert event_types([by_id[attrs.started_event_id]]) == ["WORKFLOW_TASK_STARTED"]
    completed = events[-1].workflow_execution_completed_event_attributes
    assert event_types([by_id[completed.workflow_task_completed_event_id]]) == [
        "WORKFLOW_TASK_COMPLETED"
    ]


@pytest.mark.timeout(60)
async def test_cancel_workflow(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=new_id(), task_queue=task_queue
        )
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await handle.cancel()
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert isinstance(info.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    types = event_types(await history_events(handle))
    assert "WORKFLOW_EXECUTION_CANCEL_REQUESTED" in types
    assert types[-1] == "WORKFLOW_EXECUTION_CANCELED"


@pytest.mark.timeout(60)
async def test_cancel_of_closed_workflow_succeeds_and_changes_nothing(client, task_queue, new_id):
    """As on Temporal, cancelling a run that has closed is a success that changes nothing
    (whether the run is named or found as the current one, and before the first-run check),
    while terminating it is NOT_FOUND."""
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=new_id(), task_queue=task_queue
        )
        await handle.signal(WaitForSignalWorkflow.finish)
        assert await result_within(handle, 30) == "finished"
    before = await history_events(handle)

    await handle.cancel()  # the current run, with the chain's first run id
    await client.get_workflow_handle(handle.id, run_id=handle.result_run_id).cancel()
    await client.workflow_service.request_cancel_workflow_execution(
        RequestCancelWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=handle.id),
            first_execution_run_id="not-the-first-run",
            request_id=str(uuid.uuid4()),
        )
    )
    assert await history_events(handle) == before
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    with pytest.raises(RPCError) as err:
        await handle.terminate()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert await history_events(handle) == before


@pytest.mark.timeout(60)
async def test_terminate_workflow(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=new_id(), task_queue=task_queue
        )
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        await handle.terminate(reason="stopped by the test")
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert isinstance(info.value.cause, TerminatedError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TERMINATED
    events = await history_events(handle)
    assert event_types(events)[-1] == "WORKFLOW_EXECUTION_TERMINATED"
    assert events[-1].workflow_execution_terminated_event_attributes.reason == "stopped by the test"


@pytest.mark.timeout(60)
async def test_workflow_raises_application_error(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            FailingWorkflow.run, id=new_id(), task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "workflow gave up"
    assert cause.type == "GaveUp"
    assert list(cause.details) == [{"why": "testing"}]
    assert (await handle.describe()).status == WorkflowExecutionStatus.FAILED
    assert event_types(await history_events(handle))[-1] == "WORKFLOW_EXECUTION_FAILED"


@pytest.mark.timeout(60)
async def test_workflow_run_timeout(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            SleepForeverWorkflow.run,
            id=new_id(),
            task_queue=task_queue,
            run_timeout=timedelta(seconds=2),
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert isinstance(info.value.cause, TemporalTimeoutError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.TIMED_OUT
    assert event_types(await history_events(handle))[-1] == "WORKFLOW_EXECUTION_TIMED_OUT"


@pytest.mark.timeout(60)
async def test_result_waits_for_completion(client, task_queue, new_id):
    """A client long-polls for the result while the workflow is still running."""
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            WaitForSignalWorkflow.run, id=new_id(), task_queue=task_queue
        )
        waiter = asyncio.create_task(handle.result())
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        assert not waiter.done()
        await handle.signal(WaitForSignalWorkflow.finish)
        assert await asyncio.wait_for(waiter, 30) == "finished"
