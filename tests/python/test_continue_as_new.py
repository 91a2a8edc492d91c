"""Continue-as-new chains (with signals arriving throughout), what a new run inherits, the
workflow retry policy and cron schedules: all of them start a new run of the same workflow id
linked to the previous one."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType, RetryState
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError

from harness import history_events, result_within, wait_until, worker

ET = EventType
CAN_INITIATOR = ContinueAsNewInitiator

# --------------------------------------------------------------------------- workflows


@workflow.defn
class CountSignalsAcrossRuns:
    """Continues as new `runs` times; each run lives 0.3 s, handles at most one of the signals
    buffered meanwhile and carries the rest (and everything handled so far) into the next
    run's input. The last run waits until `expected` signals have been seen."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    @workflow.signal
    def add(self, value: int) -> None:
        self.pending.append(value)

    @workflow.run
    async def run(self, state: dict[str, Any]) -> list[int]:
        # Signals delivered with this run's first task are already in self.pending.
        self.pending = state["carried"] + self.pending
        seen: list[int] = state["seen"]
        if state["run"] >= state["runs"]:
            await workflow.wait_condition(
                lambda: len(seen) + len(self.pending) >= state["expected"]
            )
            await workflow.wait_condition(workflow.all_handlers_finished)
            return seen + self.pending
        await workflow.sleep(0.3)
        seen = seen + self.pending[:1]
        self.pending = self.pending[1:]
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(
            {**state, "run": state["run"] + 1, "seen": seen, "carried": self.pending}
        )


@workflow.defn
class ContinueTwiceThenReport:
    """Continues as new twice, then reports what the final run inherited."""

    @workflow.run
    async def run(self, runs_left: int) -> dict[str, Any]:
        if runs_left > 0:
            workflow.continue_as_new(runs_left - 1)
        info = workflow.info()
        return {
            "task_queue": info.task_queue,
            "run_timeout_s": info.run_timeout.total_seconds() if info.run_timeout else None,
            "execution_timeout_s": (
                info.execution_timeout.total_seconds() if info.execution_timeout else None
            ),
            "task_timeout_s": info.task_timeout.total_seconds(),
            "continued_run_id": info.continued_run_id,
            "first_execution_run_id": info.first_execution_run_id,
        }


@workflow.defn
class ContinueForever:
    @workflow.run
    async def run(self, n: int) -> None:
        await workflow.sleep(0.3)
        workflow.continue_as_new(n + 1)


@workflow.defn
class FailUntilAttempt:
    """Fails (retryably) until workflow attempt `succeed_on`, then returns the attempt."""

    @workflow.run
    async def run(self, succeed_on: int) -> int:
        attempt = workflow.info().attempt
        if attempt < succeed_on:
            raise ApplicationError(f"failing on attempt {attempt}", type="NotYet")
        return attempt


@workflow.defn
class CronCounter:
    """Each cron run returns the previous run's result plus one."""

    @workflow.run
    async def run(self) -> int:
        previous = workflow.get_last_completion_result(int) or 0
        return previous + 1


WORKFLOWS = [
    CountSignalsAcrossRuns,
    ContinueTwiceThenReport,
    ContinueForever,
    FailUntilAttempt,
    CronCounter,
]


# --------------------------------------------------------------------------- helpers


async def run_events(client: Client, workflow_id: str, run_id: str) -> list[HistoryEvent]:
    return await history_events(client.get_workflow_handle(workflow_id, run_id=run_id))


def started_attrs(events: list[HistoryEvent]) -> Any:
    assert events[0].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    return events[0].workflow_execution_started_event_attributes


async def follow_chain(
    client: Client, workflow_id: str, first_run_id: str
) -> list[tuple[str, list[HistoryEvent]]]:
    """Every run of a chain from `first_run_id`, following each closed run's successor."""
    chain: list[tuple[str, list[HistoryEvent]]] = []
    run_id = first_run_id
    while run_id:
        events = await run_events(client, workflow_id, run_id)
        chain.append((run_id, events))
        last = events[-1]
        attrs = getattr(last, last.WhichOneof("attributes"))
        run_id = getattr(attrs, "new_execution_run_id", "")
        assert len(chain) < 100, "runaway chain"
    return chain


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(90)
async def test_continue_as_new_twenty_times_without_losing_signals(client, task_queue, new_id):
    wf_id = new_id()
    # Signals come faster than the runs handle them, so runs carry signals over. (Temporal
    # delays a continued run's first workflow task until 1 s after the previous run started,
    # history.continueAsNewMinInterval: there the chain takes ~20 s.)
    runs, signals = 20, 40
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            CountSignalsAcrossRuns.run,
            {"run": 0, "runs": runs, "expected": signals, "seen": [], "carried": []},
            id=wf_id,
            task_queue=task_queue,
        )
        # Signals go to whichever run is current (no run id), while the chain moves on.
        latest = client.get_workflow_handle(wf_id)
        for i in range(signals):
            await latest.signal(CountSignalsAcrossRuns.add, i)
            await asyncio.sleep(0.15)
        result = await result_within(handle, 60)  # follows the chain to the last run
    assert sorted(result) == list(range(signals)), "every signal counted exactly once"

    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) == runs + 1
    first_run_id = chain[0][0]
    assert not started_attrs(chain[0][1]).continued_execution_run_id
    signaled = 0
    for i, (run_id, events) in enumerate(chain):
        attrs = started_attrs(events)
        assert attrs.first_execution_run_id == first_run_id
        assert attrs.original_execution_run_id == run_id
        signaled += sum(e.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events)
        if i > 0:
            previous_run_id, previous_events = chain[i - 1]
            assert attrs.continued_execution_run_id == previous_run_id
            assert attrs.initiator == CAN_INITIATOR.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
            assert attrs.attempt == 1
            closing = previous_events[-1]
            assert closing.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
            can = closing.workflow_execution_continued_as_new_event_attributes
            assert can.new_execution_run_id == run_id
            assert can.workflow_type.name == "CountSignalsAcrossRuns"
            assert can.task_queue.name == task_queue
            assert can.input == attrs.input, "the new run starts with the CAN command's input"
            # The last workflow task's commands (perhaps a TIMER_CANCELED) end with the CAN.
            [*_, last_task] = [
                e for e in previous_events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            ]
            assert can.workflow_task_completed_event_id == last_task.event_id
            described = await client.get_workflow_handle(wf_id, run_id=previous_run_id).describe()
            assert described.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert signaled == signals, "each signal was recorded in exactly one run's history"
    carried = [
        json.loads(started_attrs(events).input.payloads[0].data)["carried"] for _, events in chain
    ]
    assert any(carried), "some run started with signals carried over from its predecessor"
    assert chain[-1][1][-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
    current = await client.get_workflow_handle(wf_id).describe()
    assert current.run_id == chain[-1][0]
    assert current.status == WorkflowExecutionStatus.COMPLETED


@pytest.mark.timeout(60)
async def test_continue_as_new_keeps_timeouts_and_task_queue(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ContinueTwiceThenReport.run,
            2,
            id=wf_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=300),
            run_timeout=timedelta(seconds=120),
            task_timeout=timedelta(seconds=7),
        )
        report = await result_within(handle, 30)
    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) == 3
    assert report == {
        "task_queue": task_queue,
        "run_timeout_s": 120.0,
        "execution_timeout_s": 300.0,
        "task_timeout_s": 7.0,
        "continued_run_id": chain[1][0],
        "first_execution_run_id": chain[0][0],
    }
    expiration = started_attrs(chain[0][1]).workflow_execution_expiration_time
    for _, events in chain:
        attrs = started_attrs(events)
        assert attrs.task_queue.name == task_queue
        assert attrs.workflow_run_timeout.ToTimedelta() == timedelta(seconds=120)
        assert attrs.workflow_execution_timeout.ToTimedelta() == timedelta(seconds=300)
        assert attrs.workflow_task_timeout.ToTimedelta() == timedelta(seconds=7)
        # The execution timeout covers the whole chain: one deadline for every run.
        assert attrs.workflow_execution_expiration_time == expiration
    for _, events in chain[:2]:
        can = events[-1].workflow_execution_continued_as_new_event_attributes
        assert can.workflow_run_timeout.ToTimedelta() == timedelta(seconds=120)
        assert can.workflow_task_timeout.ToTimedelta() == timedelta(seconds=7)


@pytest.mark.timeout(60)
async def test_execution_timeout_spans_continue_as_new_chain(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            ContinueForever.run,
            0,
            id=wf_id,
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=4),
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    assert isinstance(info.value.cause, TemporalTimeoutError)
    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) >= 2, "several runs fit into the execution timeout"
    for _, events in chain[:-1]:
        assert events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    last_run_id, last_events = chain[-1]
    assert last_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT
    timed_out = last_events[-1].workflow_execution_timed_out_event_attributes
    assert timed_out.retry_state == RetryState.RETRY_STATE_TIMEOUT
    assert not timed_out.new_execution_run_id
    started = chain[0][1][0].event_time.ToDatetime()
    ended = last_events[-1].event_time.ToDatetime()
    assert timedelta(seconds=3.9) <= ended - started < timedelta(seconds=10)
    assert (await client.get_workflow_handle(wf_id).describe()).run_id == last_run_id


@pytest.mark.timeout(60)
async def test_workflow_retry_policy_retries_until_success(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            FailUntilAttempt.run,
            3,
            id=wf_id,
            task_queue=task_queue,
            retry_policy=RetryPolicy(
                # Temporal spaces runs of one chain at least 1 s apart; with intervals of
                # 1 s and more the backoffs are exactly the retry policy's.
                initial_interval=timedelta(seconds=1),
                backoff_coefficient=1.5,
                maximum_attempts=5,
            ),
        )
        assert await result_within(handle, 30) == 3  # result() follows the retries
    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) == 3
    for i, (run_id, events) in enumerate(chain):
        attrs = started_attrs(events)
        assert attrs.attempt == i + 1
        assert attrs.first_execution_run_id == chain[0][0]
        assert attrs.retry_policy.maximum_attempts == 5
        assert attrs.retry_policy.initial_interval.ToTimedelta() == timedelta(seconds=1)
        assert attrs.retry_policy.backoff_coefficient == 1.5
        if i > 0:
            assert attrs.continued_execution_run_id == chain[i - 1][0]
            assert attrs.initiator == CAN_INITIATOR.CONTINUE_AS_NEW_INITIATOR_RETRY
            assert attrs.continued_failure.message == f"failing on attempt {i}"
            # Backoff: 1 s, then 1.5 s.
            backoff = attrs.first_workflow_task_backoff.ToTimedelta()
            assert backoff == timedelta(seconds=1.5 ** (i - 1)), backoff
            previous = chain[i - 1][1][-1]
            assert previous.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
            failed = previous.workflow_execution_failed_event_attributes
            assert failed.new_execution_run_id == run_id
            assert failed.retry_state == RetryState.RETRY_STATE_IN_PROGRESS
            assert failed.failure.application_failure_info.type == "NotYet"
            # The new run exists at once; its first workflow task waits for the backoff.
            created = events[0].event_time.ToDatetime() - previous.event_time.ToDatetime()
            assert abs(created) < timedelta(seconds=1)
            assert events[1].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
            waited = events[1].event_time.ToDatetime() - events[0].event_time.ToDatetime()
            assert backoff - timedelta(milliseconds=50) <= waited < backoff + timedelta(seconds=3)
            described = await client.get_workflow_handle(wf_id, run_id=chain[i - 1][0]).describe()
            assert described.status == WorkflowExecutionStatus.FAILED
        else:
            assert not attrs.HasField("first_workflow_task_backoff") or (
                attrs.first_workflow_task_backoff.ToTimedelta() == timedelta(0)
            )
    assert chain[-1][1][-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


@pytest.mark.timeout(60)
async def test_workflow_retry_policy_maximum_attempts_exhausted(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            FailUntilAttempt.run,
            99,
            id=wf_id,
            task_queue=task_queue,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=2
            ),
        )
        with pytest.raises(WorkflowFailureError) as info:
            await result_within(handle, 30)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError)
    assert cause.message == "failing on attempt 2", "the error of the last attempt"
    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) == 2
    first, last = (events[-1].workflow_execution_failed_event_attributes for _, events in chain)
    assert first.retry_state == RetryState.RETRY_STATE_IN_PROGRESS
    assert first.new_execution_run_id == chain[1][0]
    assert last.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert not last.new_execution_run_id
    assert started_attrs(chain[1][1]).attempt == 2
    assert (await client.get_workflow_handle(wf_id).describe()).status == (
        WorkflowExecutionStatus.FAILED
    )


@pytest.mark.timeout(60)
async def test_cron_schedule_runs_repeatedly_until_terminated(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            CronCounter.run, id=wf_id, task_queue=task_queue, cron_schedule="@every 1s"
        )

        async def completed_runs() -> list[tuple[str, list[HistoryEvent]]] | None:
            chain = await follow_chain(client, wf_id, handle.result_run_id)
            completed = ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
            done = [run for run in chain if run[1][-1].event_type == completed]
            return chain if len(done) >= 2 else None

        await wait_until(completed_runs, timeout=20, what="two completed cron runs")
        await client.get_workflow_handle(wf_id).terminate(reason="enough cron")

    chain = await follow_chain(client, wf_id, handle.result_run_id)
    assert len(chain) >= 3
    first_started = started_attrs(chain[0][1])
    assert first_started.cron_schedule == "@every 1s"
    # The first run waits for the schedule too: a backoff of at most one interval.
    backoff = first_started.first_workflow_task_backoff.ToTimedelta()
    assert timedelta(0) < backoff <= timedelta(seconds=1), backoff
    for i, (run_id, events) in enumerate(chain[:-1]):
        closing = events[-1]
        assert closing.event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, i
        completed = closing.workflow_execution_completed_event_attributes
        assert completed.result.payloads[0].data == str(i + 1).encode()
        assert completed.new_execution_run_id == chain[i + 1][0]
        next_started = started_attrs(chain[i + 1][1])
        assert next_started.continued_execution_run_id == run_id
        assert next_started.initiator == CAN_INITIATOR.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
        assert next_started.cron_schedule == "@every 1s"
        assert next_started.last_completion_result.payloads[0].data == str(i + 1).encode()
        assert (
            timedelta(0)
            < next_started.first_workflow_task_backoff.ToTimedelta()
            <= (timedelta(seconds=1))
        )
    last_run_id, last_events = chain[-1]
    assert last_events[-1].event_type == ET.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    described = await client.get_workflow_handle(wf_id).describe()
    assert described.run_id == last_run_id
    assert described.status == WorkflowExecutionStatus.TERMINATED
