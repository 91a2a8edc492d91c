"""Timers: workflow.sleep, asyncio.sleep, cancelled timers, timers that survive a restart."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from temporalio import workflow

from harness import event_types, history_events, result_within, wait_for_event, worker


@workflow.defn
class SleepWorkflow:
    """Sleeps with workflow.sleep, then with asyncio.sleep; returns the observed gaps."""

    @workflow.run
    async def run(self, seconds: float) -> list[float]:
        t0 = workflow.now()
        await workflow.sleep(seconds)
        t1 = workflow.now()
        await asyncio.sleep(seconds)
        t2 = workflow.now()
        return [(t1 - t0).total_seconds(), (t2 - t1).total_seconds()]


@workflow.defn
class OneTimerWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(timedelta(seconds=seconds))
        return "timer fired"


@workflow.defn
class SignalOrTimeoutWorkflow:
    """Waits for a signal with a long timeout; the signal wins, so the timer is cancelled."""

    def __init__(self) -> None:
        self.released = False

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: self.released, timeout=timedelta(hours=1))
        except asyncio.TimeoutError:
            return "timed out"
        return "released"


@workflow.defn
class ZeroSleepWorkflow:
    """`workflow.sleep(0)`: the SDK sends StartTimer with a zero start-to-fire timeout."""

    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0)
        await workflow.sleep(timedelta(0))
        return "slept"


WORKFLOWS = [SleepWorkflow, OneTimerWorkflow, SignalOrTimeoutWorkflow, ZeroSleepWorkflow]


@pytest.mark.timeout(60)
async def test_workflow_sleep_and_asyncio_sleep(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            SleepWorkflow.run, 0.5, id=new_id(), task_queue=task_queue
        )
        gaps = await result_within(handle, 30)
    assert all(gap >= 0.49 for gap in gaps), gaps
    events = await history_events(handle)
    assert event_types(events).count("TIMER_STARTED") == 2
    assert event_types(events).count("TIMER_FIRED") == 2
    started = [
        e.timer_started_event_attributes
        for e in events
        if e.HasField("timer_started_event_attributes")
    ]
    assert [s.start_to_fire_timeout.ToTimedelta() for s in started] == [timedelta(seconds=0.5)] * 2


@pytest.mark.timeout(60)
async def test_timer_completes(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        began = time.monotonic()
        handle = await client.start_workflow(
            OneTimerWorkflow.run, 1.0, id=new_id(), task_queue=task_queue
        )
        assert await result_within(handle, 30) == "timer fired"
        elapsed = time.monotonic() - began
    assert 1.0 <= elapsed < 15, f"a 1 s timer took {elapsed:.2f}s"
    events = await history_events(handle)
    assert event_types(events) == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "TIMER_STARTED",
        "TIMER_FIRED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    timer_started, timer_fired = events[4], events[5]
    assert timer_fired.timer_fired_event_attributes.started_event_id == timer_started.event_id
    assert (
        timer_fired.timer_fired_event_attributes.timer_id
        == timer_started.timer_started_event_attributes.timer_id
    )
    fired_after = timer_fired.event_time.ToDatetime() - timer_started.event_time.ToDatetime()
    assert fired_after >= timedelta(seconds=0.99), fired_after


@pytest.mark.timeout(60)
async def test_cancelled_timer(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            SignalOrTimeoutWorkflow.run, id=new_id(), task_queue=task_queue
        )
        await wait_for_event(handle, "TIMER_STARTED", timeout=30)
        await handle.signal(SignalOrTimeoutWorkflow.release)
        assert await result_within(handle, 30) == "released"
    types = event_types(await history_events(handle))
    assert "TIMER_CANCELED" in types
    assert "TIMER_FIRED" not in types


@pytest.mark.timeout(120)
async def test_timer_fires_after_server_restart(server, client, task_queue, new_id):
    timer_s = 4.0
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            OneTimerWorkflow.run, timer_s, id=new_id(), task_queue=task_queue
        )
        events = await wait_for_event(handle, "TIMER_STARTED", timeout=30)
    assert "TIMER_FIRED" not in event_types(events)

    stopped_at = datetime.now(timezone.utc)
    await server.restart()  # SIGTERM, same port, same database file

    # A fresh client and worker, as after a deploy: nothing is cached anywhere.
    client2 = await server.connect()
    async with worker(client2, task_queue, workflows=WORKFLOWS):
        handle2 = client2.get_workflow_handle(handle.id, run_id=handle.result_run_id)
        assert await result_within(handle2, 60) == "timer fired"
    events = await history_events(handle2)
    types = event_types(events)
    assert types.count("TIMER_FIRED") == 1
    assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    [fired] = [e for e in events if e.HasField("timer_fired_event_attributes")]
    assert fired.event_time.ToDatetime(timezone.utc) > stopped_at, "timer fired before the stop"


@pytest.mark.timeout(60)
async def test_zero_length_timer_starts_and_fires(client, task_queue, new_id):
    """A zero start-to-fire timeout is valid (Temporal rejects only negative ones): the
    timer is recorded as sent and fires at once, without failing a workflow task."""
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ZeroSleepWorkflow.run, id=new_id(), task_queue=task_queue
        )
        assert await result_within(handle, 30) == "slept"
    events = await history_events(handle)
    types = event_types(events)
    assert "WORKFLOW_TASK_FAILED" not in types
    assert types.count("TIMER_STARTED") == 2
    assert types.count("TIMER_FIRED") == 2
    started = [e for e in events if e.HasField("timer_started_event_attributes")]
    for e in started:
        attrs = e.timer_started_event_attributes
        assert attrs.start_to_fire_timeout.ToTimedelta() == timedelta(0)
    fired = [e for e in events if e.HasField("timer_fired_event_attributes")]
    assert [f.timer_fired_event_attributes.started_event_id for f in fired] == [
        s.event_id for s in started
    ]
    for s, f in zip(started, fired, strict=True):
        gap = f.event_time.ToDatetime() - s.event_time.ToDatetime()
        assert gap < timedelta(seconds=5), gap
