"""User metadata: the summary and details a client or a workflow gives a workflow, timer,
activity or child, recorded on the event it makes and shown by describe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.converter import PayloadConverter

from harness import history_events, result_within, worker

ET = EventType


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class Child:
    @workflow.run
    async def run(self) -> str:
        return "child done"


@workflow.defn
class Parent:
    """Gives a summary to each thing it starts (and details to its child)."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        await workflow.execute_activity(
            greet, "you", start_to_close_timeout=timedelta(seconds=10), summary="the greeting"
        )
        await workflow.sleep(0.01, summary="a short nap")
        await workflow.sleep(0.01)
        await workflow.execute_child_workflow(
            Child.run, id=child_id, static_summary="the child", static_details="child details"
        )
        return "parent done"


def text(payload) -> str:
    return PayloadConverter.default.from_payload(payload)


def summaries(events: list[HistoryEvent], event_type: int) -> list[str | None]:
    return [
        text(e.user_metadata.summary) if e.user_metadata.HasField("summary") else None
        for e in events
        if e.event_type == event_type
    ]


@pytest.mark.timeout(60)
async def test_summaries_and_details_are_recorded_and_described(client, task_queue, new_id):
    wf_id, child_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=[Parent, Child], activities=[greet]):
        handle = await client.start_workflow(
            Parent.run,
            child_id,
            id=wf_id,
            task_queue=task_queue,
            static_summary="the parent",
            static_details="parent details",
        )
        assert await result_within(handle, 30) == "parent done"

    events = await history_events(handle)
    started = events[0].user_metadata
    assert (text(started.summary), text(started.details)) == ("the parent", "parent details")
    assert summaries(events, ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED) == ["the greeting"]
    assert summaries(events, ET.EVENT_TYPE_TIMER_STARTED) == ["a short nap", None]
    initiated = ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    assert summaries(events, initiated) == ["the child"]
    # Events no command or request gave metadata to have none.
    assert not any(
        e.HasField("user_metadata")
        for e in events
        if e.event_type in (ET.EVENT_TYPE_TIMER_FIRED, ET.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    )

    described = await handle.describe()
    assert await described.static_summary() == "the parent"
    assert await described.static_details() == "parent details"

    # The child's own started event and describe carry what the parent's command gave it.
    child = client.get_workflow_handle(child_id)
    child_started = (await history_events(child))[0].user_metadata
    assert (text(child_started.summary), text(child_started.details)) == (
        "the child",
        "child details",
    )
    child_described = await child.describe()
    assert await child_described.static_summary() == "the child"
    assert await child_described.static_details() == "child details"


@pytest.mark.timeout(60)
async def test_signal_with_start_records_the_metadata(client, task_queue, new_id):
    handle = await client.start_workflow(
        Child.run,
        id=new_id(),
        task_queue=task_queue,
        start_signal="nudge",
        static_summary="started by a signal",
    )
    described = await handle.describe()
    assert await described.static_summary() == "started by a signal"
    assert await described.static_details() is None
    await handle.terminate()


@pytest.mark.timeout(60)
async def test_a_run_without_metadata_describes_none(client, task_queue, new_id):
    handle = await client.start_workflow(Child.run, id=new_id(), task_queue=task_queue)
    described = await handle.describe()
    assert not described.raw_description.execution_config.HasField("user_metadata")
    assert await described.static_summary() is None
    await handle.terminate()
