"""A workflow task that keeps timing out: Temporal schedules every next attempt at once and,
from the fourth attempt on, gives it a longer start-to-close timeout (the run's task timeout
plus 5 s doubling, less up to a fifth of jitter). An SDK reports only the first attempt's
failure and lets the later ones time out, so that longer timeout is the whole backoff, and it
is what lets a worker that is merely slower than the task timeout finish. A query sent while
the task keeps failing waits for the attempt that completes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from harness import history_events, result_within, worker

TASK_TIMEOUT = timedelta(seconds=1)
# Longer than the task timeout, shorter than the SDK's 2 s deadlock detector.
ACTIVATION_TIME = 1.4


@workflow.defn
class SlowToStart:
    """Every activation that runs the workflow from the start outlasts the task timeout."""

    def __init__(self) -> None:
        self.state = "started"

    @workflow.run
    async def run(self) -> str:
        time.sleep(ACTIVATION_TIME)  # noqa: ASYNC251 - the worker is slow, on purpose
        self.state = "ran"
        return "done"

    @workflow.query
    def current(self) -> str:
        return self.state


async def test_a_slow_worker_gets_a_longer_timeout_from_the_fourth_attempt(
    client: Client, task_queue: str, new_id
) -> None:
    async with worker(client, task_queue, workflows=[SlowToStart]):
        started = time.monotonic()
        handle = await client.start_workflow(
            SlowToStart.run, id=new_id(), task_queue=task_queue, task_timeout=TASK_TIMEOUT
        )
        # Attempts 1-3 time out after 1 s each and are retried at once; attempt 4 has more
        # than 5 s. A server that waited between attempts, or kept the 1 s timeout, is slower
        # or never done.
        assert await result_within(handle, 20) == "done"
        elapsed = time.monotonic() - started
    events = await history_events(handle)
    completed = next(
        i
        for i, e in enumerate(events)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    scheduled = events[completed - 2]
    assert scheduled.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    attrs = scheduled.workflow_task_scheduled_event_attributes
    assert attrs.attempt == 4
    timeout = attrs.start_to_close_timeout.ToTimedelta()
    assert timedelta(seconds=5) <= timeout < timedelta(seconds=6), timeout
    # Scheduled about 3 s after the start: three 1 s timeouts, no waiting in between. A server
    # that waited even 1 s between attempts would take 5 s or more; the rest is slack for a
    # loaded machine (4.51 s was seen on Cassandra while the SQLite suite ran alongside).
    since_start = scheduled.event_time.ToDatetime() - events[0].event_time.ToDatetime()
    assert since_start < timedelta(seconds=4.9), since_start
    assert elapsed < 12, elapsed


async def test_a_query_waits_through_failing_attempts(
    client: Client, task_queue: str, new_id
) -> None:
    async with worker(client, task_queue, workflows=[SlowToStart]):
        handle = await client.start_workflow(
            SlowToStart.run, id=new_id(), task_queue=task_queue, task_timeout=TASK_TIMEOUT
        )
        # Sent before any workflow task completed: it waits, and keeps waiting when the
        # attempts reach the third (a query arriving then would fail fast), until attempt 4
        # completes.
        answer = await asyncio.wait_for(
            handle.query(SlowToStart.current, rpc_timeout=timedelta(seconds=20)), 25
        )
        assert answer == "ran"
        assert await result_within(handle, 20) == "done"
