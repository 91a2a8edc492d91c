"""Schedules through the Python SDK's schedule API and raw WorkflowService calls:
CreateSchedule, DescribeSchedule, UpdateSchedule, PatchSchedule (trigger, backfill, pause,
unpause), DeleteSchedule, ListSchedules and ListScheduleMatchingTimes.

Every expectation was read from the reference server (`temporal server start-dev`, server
1.32.0). Schedules run on the real clock, so the tests use triggers, backfills and 1 s
intervals, and poll with a deadline. ListSchedules is eventually consistent on the reference
server, so listing tests poll.

What the reference does that may surprise (each is asserted below):
- A scheduled workflow's id is `<action workflow id>-<schedule time, to the second, UTC>`;
  two starts in the same second would share an id, so tests space triggers a second apart.
- A trigger's schedule time is the schedule's create time (trigger_immediately) or the
  trigger's time; the action is in DescribeSchedule as soon as CreateSchedule returns.
- Backfill ranges include both ends, and run on a paused schedule.
- With ALLOW_ALL the scheduler does not track its runs (no running workflows listed).
- Manual actions (trigger, backfill) do not use up remaining_actions; future action times
  are capped at the remaining actions.
- UpdateSchedule with a stale conflict token answers OK and is silently dropped.
- A catchup window below 10 s is raised to 10 s, not refused; the default is one year.
- After a failed run, the next run sees both the failure and the last successful result.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import IndexedValueType, WorkflowExecutionStatus
from temporalio.api.enums.v1 import ScheduleOverlapPolicy as ScheduleOverlapPolicyProto
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.schedule.v1 import (
    IntervalSpec,
    Range,
    StructuredCalendarSpec,
    TriggerImmediatelyRequest,
)
from temporalio.api.schedule.v1 import Schedule as ScheduleProto
from temporalio.api.schedule.v1 import ScheduleAction as ScheduleActionProto
from temporalio.api.schedule.v1 import SchedulePatch as SchedulePatchProto
from temporalio.api.schedule.v1 import SchedulePolicies as SchedulePoliciesProto
from temporalio.api.schedule.v1 import ScheduleSpec as ScheduleSpecProto
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CountSchedulesRequest,
    CreateScheduleRequest,
    DescribeScheduleRequest,
    ListScheduleMatchingTimesRequest,
    PatchScheduleRequest,
    UpdateScheduleRequest,
)
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleListActionStartWorkflow,
    ScheduleListDescription,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import (
    RetryPolicy,
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, wait_until, worker


@pytest.fixture(autouse=True)
async def _no_schedule_left(client: Client) -> AsyncIterator[None]:
    # Each test leaves the namespace without schedules (on Cassandra the servers of a run
    # share one keyspace).
    yield
    await harness.delete_all_schedules(client)


T = TypeVar("T")
SCHED_CUSTOMER = SearchAttributeKey.for_keyword("SchedCustomer")
SCHEDULED_BY = SearchAttributeKey.for_keyword("TemporalScheduledById")
SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
DAILY = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))])
RUNNING = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
COMPLETED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED


# --------------------------------------------------------------------------- workflows


@workflow.defn
class WaitForSignal:
    """Runs until signalled, so a test decides when a scheduled run ends."""

    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "finished"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class Quick:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"done {text}"


@workflow.defn
class ChainedRuns:
    """First run returns a value, second fails, third reports what it was handed."""

    @workflow.run
    async def run(self) -> dict[str, Any]:
        last_result = (
            workflow.get_last_completion_result() if workflow.has_last_completion_result() else None
        )
        last_failure = workflow.get_last_failure()
        if last_result is None and last_failure is None:
            return {"run": "first"}  # type: ignore[return-value]
        if last_failure is None:
            raise ApplicationError("second run fails", non_retryable=True)
        return {
            "last_result": last_result,
            "last_failure": str(last_failure),
            "last_failure_type": type(last_failure).__name__,
        }


# --------------------------------------------------------------------------- helpers


def action(
    workflow_run: Any, action_id: str, task_queue: str, *args: Any, **kwargs: Any
) -> ScheduleActionStartWorkflow:
    return ScheduleActionStartWorkflow(
        workflow_run, args=list(args), id=action_id, task_queue=task_queue, **kwargs
    )


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


async def describe_until(
    handle: ScheduleHandle,
    ok: Callable[[ScheduleDescription], bool],
    what: str,
    timeout: float = 20,
) -> ScheduleDescription:
    async def check() -> ScheduleDescription | None:
        d = await handle.describe()
        return d if ok(d) else None

    return await wait_until(check, timeout=timeout, what=what)


async def listed_until(
    client: Client,
    query: str | None,
    ok: Callable[[list[ScheduleListDescription]], bool],
    what: str,
    timeout: float = 20,
) -> list[ScheduleListDescription]:
    async def check() -> list[ScheduleListDescription] | None:
        got = [s async for s in await client.list_schedules(query)]
        return got if ok(got) else None

    return await wait_until(check, timeout=timeout, what=what)


async def next_second(after: datetime) -> None:
    """Wait for the wall clock to pass `after`'s second: scheduled workflow ids carry the
    schedule time to the second, and two starts in one second would share an id."""
    boundary = after.replace(microsecond=0) + timedelta(seconds=1)
    await wait_until(
        lambda: datetime.now(timezone.utc) >= boundary,
        timeout=5,
        what="the next second",
        interval=0.02,
    )


def statuses(d: ScheduleDescription) -> list[int]:
    return [a.start_workflow_status for a in d.raw_description.info.recent_actions]


def rng(start: int, end: int | None = None, step: int = 1) -> Range:
    return Range(start=start, end=start if end is None else end, step=step)


async def add_customer_attribute(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=NAMESPACE,
            search_attributes={"SchedCustomer": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )


async def rpc_error(call: Awaitable[Any]) -> RPCError:
    with pytest.raises(RPCError) as info:
        await call
    return info.value


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_create_describe_round_trip(client: Client, task_queue: str, new_id):
    await add_customer_attribute(client)
    sid = new_id()
    sched = Schedule(
        action=action(
            "SomeWorkflow", f"{sid}-wf", task_queue, "arg1", {"n": 2},
            execution_timeout=timedelta(hours=1),
            run_timeout=timedelta(minutes=30),
            task_timeout=timedelta(seconds=20),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_attempts=3),
            memo={"action-memo": "v"},
            typed_search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SCHED_CUSTOMER, "c-action")]
            ),
            static_summary="a summary",
            static_details="some details",
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=(ScheduleRange(5),),
                    minute=(ScheduleRange(0, 30, 15),),
                    hour=(ScheduleRange(9, 17),),
                    day_of_week=(ScheduleRange(1, 5),),
                    comment="workdays",
                )
            ],
            intervals=[ScheduleIntervalSpec(every=timedelta(hours=2), offset=timedelta(minutes=10))],
            cron_expressions=["0 12 * * MON"],
            skip=[ScheduleCalendarSpec(month=(ScheduleRange(12),), day_of_month=(ScheduleRange(25),))],
            start_at=datetime(2025, 1, 1, tzinfo=timezone.utc),
            end_at=datetime(2035, 1, 1, tzinfo=timezone.utc),
            jitter=timedelta(seconds=30),
            time_zone_name="Europe/Berlin",
        ),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ALL,
            catchup_window=timedelta(minutes=5),
            pause_on_failure=True,
        ),
        state=ScheduleState(note="a note", paused=True, limited_actions=True, remaining_actions=7),
    )  # fmt: skip
    before = datetime.now(timezone.utc)
    handle = await client.create_schedule(sid, sched, memo={"schedule-memo": 1})
    d = await handle.describe()
    raw = d.raw_description

    # The spec comes back canonical: the cron string became a structured calendar, ranges
    # are spelled out (end and step explicit), defaults filled in.
    expected_spec = ScheduleSpecProto(
        structured_calendar=[
            StructuredCalendarSpec(
                second=[rng(5)], minute=[rng(0, 30, 15)], hour=[rng(9, 17)],
                day_of_month=[rng(1, 31)], month=[rng(1, 12)], day_of_week=[rng(1, 5)],
                comment="workdays",
            ),
            StructuredCalendarSpec(
                second=[rng(0)], minute=[rng(0)], hour=[rng(12)],
                day_of_month=[rng(1, 31)], month=[rng(1, 12)], day_of_week=[rng(1)],
            ),
        ],
        exclude_structured_calendar=[
            StructuredCalendarSpec(
                second=[rng(0)], minute=[rng(0)], hour=[rng(0)],
                day_of_month=[rng(25)], month=[rng(12)], day_of_week=[rng(0, 6)],
            )
        ],
        interval=[IntervalSpec(interval=Duration(seconds=7200), phase=Duration(seconds=600))],
        start_time=Timestamp(seconds=int(datetime(2025, 1, 1, tzinfo=timezone.utc).timestamp())),
        end_time=Timestamp(seconds=int(datetime(2035, 1, 1, tzinfo=timezone.utc).timestamp())),
        jitter=Duration(seconds=30),
        timezone_name="Europe/Berlin",
    )  # fmt: skip
    assert raw.schedule.spec == expected_spec

    got = d.schedule.action
    assert isinstance(got, ScheduleActionStartWorkflow)
    assert got.workflow == "SomeWorkflow"
    assert got.id == f"{sid}-wf"
    assert got.task_queue == task_queue
    assert await client.data_converter.decode(got.args) == ["arg1", {"n": 2}]  # type: ignore[arg-type]
    assert got.execution_timeout == timedelta(hours=1)
    assert got.run_timeout == timedelta(minutes=30)
    assert got.task_timeout == timedelta(seconds=20)
    # The retry policy is stored with Temporal's defaults filled in: backoff 2, maximum
    # interval 100 x the initial interval.
    assert got.retry_policy == RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=timedelta(seconds=200),
        maximum_attempts=3,
    )
    assert got.memo is not None
    assert await client.data_converter.decode([got.memo["action-memo"]]) == ["v"]  # type: ignore[list-item]
    assert got.typed_search_attributes == TypedSearchAttributes(
        [SearchAttributePair(SCHED_CUSTOMER, "c-action")]
    )
    # Summary and details come back as payloads (user metadata).
    assert await client.data_converter.decode([got.static_summary, got.static_details]) == [  # type: ignore[list-item]
        "a summary",
        "some details",
    ]
    start = raw.schedule.action.start_workflow
    assert start.task_queue == TaskQueue(name=task_queue, kind=1)  # TASK_QUEUE_KIND_NORMAL

    assert d.schedule.policy == SchedulePolicy(
        overlap=ScheduleOverlapPolicy.BUFFER_ALL,
        catchup_window=timedelta(minutes=5),
        pause_on_failure=True,
    )
    assert d.schedule.state == ScheduleState(
        note="a note", paused=True, limited_actions=True, remaining_actions=7
    )
    assert await d.memo() == {"schedule-memo": 1}

    info = d.info
    assert before - timedelta(seconds=1) <= info.created_at <= datetime.now(timezone.utc)
    assert info.last_updated_at is None
    assert info.num_actions == 0
    assert info.recent_actions == [] and info.running_actions == []
    # Even paused, the schedule shows its next times; with remaining_actions 7 it shows no
    # more than 7 of them (10 otherwise).
    assert len(info.next_action_times) == 7
    assert info.next_action_times == sorted(info.next_action_times)
    assert all(t > before for t in info.next_action_times)
    assert raw.conflict_token  # opaque; the reference's first one is 8 bytes, 1 big-endian


@pytest.mark.timeout(60)
async def test_create_defaults(client: Client, task_queue: str, new_id):
    """What a schedule created with nothing but an action and a spec looks like."""
    handle = await client.create_schedule(
        new_id(), Schedule(action=action(Quick.run, new_id(), task_queue, "x"), spec=DAILY)
    )
    d = await handle.describe()
    # Temporal fills in the catchup window (one year) and the SKIP overlap policy.
    assert d.schedule.policy == SchedulePolicy(
        overlap=ScheduleOverlapPolicy.SKIP,
        catchup_window=timedelta(days=365),
        pause_on_failure=False,
    )
    assert d.schedule.state == ScheduleState()
    assert d.schedule.spec.intervals == [ScheduleIntervalSpec(every=timedelta(days=1))]
    # Intervals are anchored at the unix epoch: a daily interval fires at 00:00 UTC.
    now = datetime.now(timezone.utc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert d.info.next_action_times == [midnight + timedelta(days=n) for n in range(1, 11)]


@pytest.mark.timeout(60)
async def test_duplicate_create_and_idempotent_request_id(client: Client, task_queue: str, new_id):
    sid = new_id()
    sched = Schedule(action=action(Quick.run, new_id(), task_queue, "x"), spec=DAILY)
    await client.create_schedule(sid, sched)
    with pytest.raises(ScheduleAlreadyRunningError):
        await client.create_schedule(sid, sched)

    # Raw: the same request id twice is one create; a new request id is a conflict.
    raw_sid = new_id()
    request = CreateScheduleRequest(
        namespace=NAMESPACE,
        schedule_id=raw_sid,
        schedule=ScheduleProto(
            spec=ScheduleSpecProto(cron_string=["0 * * * *"]),
            action=ScheduleActionProto(
                start_workflow=NewWorkflowExecutionInfo(
                    workflow_id=new_id(),
                    workflow_type=WorkflowType(name="Quick"),
                    task_queue=TaskQueue(name=task_queue),
                )
            ),
        ),
        request_id=str(uuid.uuid4()),
        identity="test",
    )
    first = await client.workflow_service.create_schedule(request)
    again = await client.workflow_service.create_schedule(request)
    assert first.conflict_token and again.conflict_token == first.conflict_token
    request.request_id = str(uuid.uuid4())
    err = await rpc_error(client.workflow_service.create_schedule(request))
    assert err.status == RPCStatusCode.ALREADY_EXISTS
    assert err.message == f'schedule "{raw_sid}" is already registered'


@pytest.mark.timeout(60)
async def test_trigger_immediately(client: Client, task_queue: str, new_id):
    sid, action_id = new_id(), new_id()
    async with worker(client, task_queue, workflows=[Quick]):
        handle = await client.create_schedule(
            sid,
            Schedule(action=action(Quick.run, action_id, task_queue, "now"), spec=DAILY),
            trigger_immediately=True,
        )
        # The action is recorded by the time CreateSchedule returns.
        d = await handle.describe()
        assert d.info.num_actions == 1
        [recent] = d.info.recent_actions
        # A trigger's schedule time is the create time; the workflow id carries it to the
        # second.
        assert recent.scheduled_at == d.info.created_at
        assert recent.started_at >= recent.scheduled_at
        wf_id = recent.action.workflow_id  # type: ignore[attr-defined]
        assert wf_id == f"{action_id}-{rfc3339(recent.scheduled_at)}"

        wf = client.get_workflow_handle(wf_id)
        assert await wf.result() == "done now"
        desc = await wf.describe()
        assert desc.run_id == recent.action.first_execution_run_id  # type: ignore[attr-defined]
        assert desc.workflow_type == "Quick"
        assert desc.typed_search_attributes.get(SCHEDULED_BY) == sid
        # The scheduled start time is the schedule time truncated to the second.
        assert desc.typed_search_attributes.get(SCHEDULED_START) == recent.scheduled_at.replace(
            microsecond=0
        )

        d = await describe_until(
            handle, lambda d: statuses(d) == [COMPLETED], "the run's status in recent actions"
        )
        assert d.info.num_actions == 1
        assert d.info.running_actions == []

        # A trigger on an existing schedule does the same.
        await next_second(recent.scheduled_at)
        await handle.trigger()
        d = await describe_until(handle, lambda d: d.info.num_actions == 2, "the second action")
        second = d.info.recent_actions[1]
        assert second.action.workflow_id == f"{action_id}-{rfc3339(second.scheduled_at)}"  # type: ignore[attr-defined]
        assert await client.get_workflow_handle(second.action.workflow_id).result() == "done now"  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
async def test_backfill_starts_one_workflow_per_matching_time(
    client: Client, task_queue: str, new_id
):
    sid, action_id = new_id(), new_id()
    handle = await client.create_schedule(
        sid,
        Schedule(
            action=action(WaitForSignal.run, action_id, task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))]),
            state=ScheduleState(paused=True),
        ),
    )
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=1)
    end = start + timedelta(minutes=5)
    await handle.backfill(
        ScheduleBackfill(start_at=start, end_at=end, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    )
    # A backfill runs even on a paused schedule, and both ends of its range are inclusive
    # (the minutes at `start` and at `end` both start a run), although the SDK documents the
    # start as exclusive.
    expected = [start + timedelta(minutes=n) for n in range(6)]
    d = await describe_until(handle, lambda d: d.info.num_actions == 6, "the backfilled actions")
    assert [a.scheduled_at for a in d.info.recent_actions] == expected
    assert [a.action.workflow_id for a in d.info.recent_actions] == [  # type: ignore[attr-defined]
        f"{action_id}-{rfc3339(t)}" for t in expected
    ]
    assert all(a.started_at > end for a in d.info.recent_actions)
    # With ALLOW_ALL the scheduler does not track the runs it started.
    assert d.info.running_actions == []
    assert statuses(d) == [RUNNING] * 6

    async def listed() -> list[str] | None:
        got = [w.id async for w in client.list_workflows(f"TemporalScheduledById = '{sid}'")]
        return got if len(got) == 6 else None

    got = await wait_until(listed, timeout=20, what="the backfilled runs in visibility")
    assert sorted(got) == [f"{action_id}-{rfc3339(t)}" for t in expected]
    d = await handle.describe()
    assert d.schedule.state.paused


@pytest.mark.timeout(60)
async def test_pause_and_unpause(client: Client, task_queue: str, new_id):
    paused_id, control_id = new_id(), new_id()
    every_second = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))])
    paused = await client.create_schedule(
        paused_id,
        Schedule(
            action=action(Quick.run, new_id(), task_queue, "p"),
            spec=every_second,
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )
    await paused.pause(note="stopped for maintenance")
    d = await paused.describe()
    assert d.schedule.state == ScheduleState(note="stopped for maintenance", paused=True)
    actions_when_paused = d.info.num_actions
    control = await client.create_schedule(
        control_id,
        Schedule(
            action=action(Quick.run, new_id(), task_queue, "c"),
            spec=every_second,
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )
    # While the control schedule takes three actions, the paused one takes none.
    await describe_until(control, lambda d: d.info.num_actions >= 3, "the control's actions")
    d = await paused.describe()
    assert d.info.num_actions == actions_when_paused

    listed = await listed_until(
        client,
        "TemporalSchedulePaused = true",
        lambda got: paused_id in [s.id for s in got],
        "the paused schedule in the paused filter",
    )
    assert control_id not in [s.id for s in listed]
    entry = next(s for s in listed if s.id == paused_id)
    assert entry.schedule is not None
    assert entry.schedule.state.paused and entry.schedule.state.note == "stopped for maintenance"

    await paused.unpause(note="back")
    d = await paused.describe()
    assert d.schedule.state == ScheduleState(note="back", paused=False)
    await describe_until(
        paused, lambda d: d.info.num_actions > actions_when_paused, "an action after unpause"
    )
    await listed_until(
        client,
        "TemporalSchedulePaused = false",
        lambda got: {paused_id, control_id} <= {s.id for s in got},
        "both schedules in the unpaused filter",
    )


@pytest.mark.timeout(60)
async def test_limited_actions_count_down(client: Client, task_queue: str, new_id):
    handle = await client.create_schedule(
        new_id(),
        Schedule(
            action=action(Quick.run, new_id(), task_queue, "x"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            state=ScheduleState(limited_actions=True, remaining_actions=2),
        ),
    )
    d = await handle.describe()
    assert d.schedule.state.limited_actions
    assert len(d.info.next_action_times) == d.schedule.state.remaining_actions
    d = await describe_until(handle, lambda d: d.info.num_actions >= 1, "the first action")
    # Each action takes one off remaining_actions, and the future times shrink with it.
    assert d.schedule.state.remaining_actions == 2 - d.info.num_actions
    assert len(d.info.next_action_times) == 2 - d.info.num_actions
    d = await describe_until(handle, lambda d: d.info.num_actions == 2, "the second action")
    assert d.schedule.state == ScheduleState(limited_actions=True, remaining_actions=0)
    assert d.info.next_action_times == []
    # It stays at two while a control schedule ticks on.
    control = await client.create_schedule(
        new_id(),
        Schedule(
            action=action(Quick.run, new_id(), task_queue, "c"),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
        ),
    )
    await describe_until(control, lambda d: d.info.num_actions >= 2, "the control's actions")
    d = await handle.describe()
    assert d.info.num_actions == 2
    # A manual trigger still runs on an exhausted schedule, and does not count against
    # remaining actions.
    await handle.trigger()
    d = await describe_until(handle, lambda d: d.info.num_actions == 3, "the triggered action")
    assert d.schedule.state == ScheduleState(limited_actions=True, remaining_actions=0)


async def overlap_schedule(
    client: Client, task_queue: str, new_id: Callable[[], str], policy: ScheduleOverlapPolicy
) -> tuple[ScheduleHandle, ScheduleDescription]:
    """A daily schedule of WaitForSignal with `policy`, triggered once; its first run open."""
    handle = await client.create_schedule(
        new_id(),
        Schedule(
            action=action(WaitForSignal.run, new_id(), task_queue),
            spec=DAILY,
            policy=SchedulePolicy(overlap=policy),
        ),
        trigger_immediately=True,
    )
    d = await handle.describe()
    assert d.info.num_actions == 1
    # The second trigger must fall in a later second, or its workflow id would be the first's.
    await next_second(d.info.recent_actions[0].scheduled_at)
    return handle, d


def wf_id_of(d: ScheduleDescription, n: int) -> str:
    return d.info.recent_actions[n].action.workflow_id  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
async def test_overlap_skip(client: Client, task_queue: str, new_id):
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        handle, d = await overlap_schedule(client, task_queue, new_id, ScheduleOverlapPolicy.SKIP)
        first = wf_id_of(d, 0)
        await handle.trigger()
        d = await describe_until(
            handle, lambda d: d.info.num_actions_skipped_overlap == 1, "the skipped trigger"
        )
        assert d.info.num_actions == 1
        assert [r.workflow_id for r in d.info.running_actions] == [first]  # type: ignore[attr-defined]
        await client.get_workflow_handle(first).signal(WaitForSignal.finish)
        d = await describe_until(
            handle, lambda d: statuses(d) == [COMPLETED], "the first run's completion"
        )
        # The skipped trigger is gone for good: nothing starts after the first run ends.
        assert d.info.num_actions == 1 and d.info.running_actions == []


@pytest.mark.timeout(60)
async def test_overlap_buffer_one(client: Client, task_queue: str, new_id):
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        handle, d = await overlap_schedule(
            client, task_queue, new_id, ScheduleOverlapPolicy.BUFFER_ONE
        )
        first = client.get_workflow_handle(wf_id_of(d, 0))
        await handle.trigger()
        d = await describe_until(
            handle, lambda d: d.raw_description.info.buffer_size == 1, "the buffered start"
        )
        # Only one start is buffered: another one is dropped and counted as skipped. (Two
        # triggers in quick succession were sometimes merged and not counted at all, so
        # this one waits for the first to be buffered and for the next second.)
        await next_second(datetime.now(timezone.utc))
        await handle.trigger()
        d = await describe_until(
            handle, lambda d: d.info.num_actions_skipped_overlap == 1, "the dropped start"
        )
        assert d.info.num_actions == 1
        assert d.raw_description.info.buffer_size == 1
        await first.signal(WaitForSignal.finish)
        d = await describe_until(handle, lambda d: d.info.num_actions == 2, "the buffered start")
        first_closed = (await first.describe()).close_time
        second = client.get_workflow_handle(wf_id_of(d, 1))
        second_desc = await second.describe()
        assert first_closed is not None and second_desc.start_time >= first_closed
        assert statuses(d) == [COMPLETED, RUNNING]
        # The buffered start keeps its own schedule time (the trigger's), which names it.
        assert wf_id_of(d, 1) != wf_id_of(d, 0)
        await second.signal(WaitForSignal.finish)
        d = await describe_until(
            handle, lambda d: statuses(d) == [COMPLETED, COMPLETED], "both runs completed"
        )
        assert d.info.num_actions == 2 and d.info.num_actions_skipped_overlap == 1


@pytest.mark.timeout(60)
async def test_overlap_allow_all(client: Client, task_queue: str, new_id):
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        handle, d = await overlap_schedule(
            client, task_queue, new_id, ScheduleOverlapPolicy.ALLOW_ALL
        )
        await handle.trigger()
        d = await describe_until(handle, lambda d: d.info.num_actions == 2, "the second start")
        assert statuses(d) == [RUNNING, RUNNING]
        # With ALLOW_ALL the scheduler does not watch its runs: no running actions listed.
        assert d.info.running_actions == []
        for n in (0, 1):
            run = client.get_workflow_handle(wf_id_of(d, n))
            assert (await run.describe()).status == 1  # RUNNING
            await run.signal(WaitForSignal.finish)
            assert await run.result() == "finished"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("policy", "ended"),
    [
        (ScheduleOverlapPolicy.CANCEL_OTHER, "CANCELED"),
        (ScheduleOverlapPolicy.TERMINATE_OTHER, "TERMINATED"),
    ],
)
async def test_overlap_cancel_or_terminate_other(
    client: Client, task_queue: str, new_id, policy: ScheduleOverlapPolicy, ended: str
):
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        handle, d = await overlap_schedule(client, task_queue, new_id, policy)
        first = client.get_workflow_handle(wf_id_of(d, 0))
        await handle.trigger()
        d = await describe_until(handle, lambda d: d.info.num_actions == 2, "the second start")
        assert (await first.describe()).status.name == ended  # type: ignore[union-attr]
        second = client.get_workflow_handle(wf_id_of(d, 1))
        assert (await second.describe()).status.name == "RUNNING"  # type: ignore[union-attr]
        d = await describe_until(
            handle,
            lambda d: statuses(d)[0] != RUNNING,
            "the first run's end in recent actions",
        )
        assert [WorkflowExecutionStatus.Name(s) for s in statuses(d)] == [
            f"WORKFLOW_EXECUTION_STATUS_{ended}",
            "WORKFLOW_EXECUTION_STATUS_RUNNING",
        ]
        assert [r.workflow_id for r in d.info.running_actions] == [wf_id_of(d, 1)]  # type: ignore[attr-defined]
        await second.signal(WaitForSignal.finish)
        assert await second.result() == "finished"


@pytest.mark.timeout(60)
async def test_last_completion_result_and_failure(client: Client, task_queue: str, new_id):
    async with worker(client, task_queue, workflows=[ChainedRuns]):
        handle = await client.create_schedule(
            new_id(),
            Schedule(action=action(ChainedRuns.run, new_id(), task_queue), spec=DAILY),
            trigger_immediately=True,
        )
        # Triggered runs get the last completion result and failure like the runs at
        # scheduled times (the same start path), without waiting for a spec time.
        results: list[Any] = []
        for n in range(3):
            d = await describe_until(
                handle,
                lambda d, n=n: d.info.num_actions == n + 1 and statuses(d)[-1] != RUNNING,
                f"run {n + 1} closed",
            )
            run = client.get_workflow_handle(wf_id_of(d, n))
            try:
                results.append(await run.result())
            except Exception as e:  # noqa: BLE001 - the second run fails on purpose
                results.append(type(e).__name__)
            if n < 2:
                await next_second(d.info.recent_actions[n].scheduled_at)
                await handle.trigger()
        # The third run sees the first run's result (a failure does not clear it) and the
        # second run's failure.
        assert results == [
            {"run": "first"},
            "WorkflowFailureError",
            {
                "last_result": {"run": "first"},
                "last_failure": "second run fails",
                "last_failure_type": "ApplicationError",
            },
        ]


@pytest.mark.timeout(60)
async def test_list_schedules(client: Client, task_queue: str, new_id):
    await add_customer_attribute(client)
    listed_id, other_id, action_id = new_id(), new_id(), new_id()
    async with worker(client, task_queue, workflows=[Quick]):
        handle = await client.create_schedule(
            listed_id,
            Schedule(
                action=action(Quick.run, action_id, task_queue, "x"),
                spec=ScheduleSpec(cron_expressions=["30 4 * * *"], time_zone_name="Asia/Tokyo"),
                state=ScheduleState(note="listed note"),
            ),
            trigger_immediately=True,
            memo={"owner": "team-a"},
            search_attributes=TypedSearchAttributes([SearchAttributePair(SCHED_CUSTOMER, "c-1")]),
        )
        await client.create_schedule(
            other_id,
            Schedule(
                action=action(Quick.run, new_id(), task_queue, "y"),
                spec=DAILY,
                state=ScheduleState(paused=True, note="other"),
            ),
            search_attributes=TypedSearchAttributes([SearchAttributePair(SCHED_CUSTOMER, "c-2")]),
        )
        described = await describe_until(
            handle, lambda d: statuses(d) == [COMPLETED], "the triggered run's completion"
        )

        def has_both(got: list[ScheduleListDescription]) -> bool:
            by_id = {s.id: s for s in got}
            return (
                {listed_id, other_id} <= set(by_id)
                and by_id[listed_id].info is not None
                and len(by_id[listed_id].info.recent_actions) == 1  # type: ignore[union-attr]
            )

        got = await listed_until(client, None, has_both, "both schedules listed")
        entry = next(s for s in got if s.id == listed_id)
        assert entry.schedule is not None and entry.info is not None
        assert entry.schedule.action == ScheduleListActionStartWorkflow(workflow="Quick")
        assert entry.schedule.spec == described.schedule.spec
        assert entry.schedule.state.note == "listed note" and not entry.schedule.state.paused
        assert entry.info.recent_actions == described.info.recent_actions
        # A listed schedule shows its next 5 times (describe shows 10).
        assert entry.info.next_action_times == described.info.next_action_times[:5]
        assert entry.info.next_action_times[0].hour == 19  # 04:30 in Tokyo
        assert await entry.memo() == {"owner": "team-a"}
        assert entry.typed_search_attributes.get(SCHED_CUSTOMER) == "c-1"

        filtered = await listed_until(
            client,
            "SchedCustomer = 'c-2'",
            lambda got: [s.id for s in got] == [other_id],
            "the custom search attribute filter",
        )
        assert filtered[0].schedule.state.paused  # type: ignore[union-attr]

        # CountSchedules takes the same filters; words of the query language inside a
        # string value are only text.
        async def count(query: str) -> int:
            got = await client.workflow_service.count_schedules(
                CountSchedulesRequest(namespace=client.namespace, query=query)
            )
            return got.count

        assert await count("SchedCustomer = 'c-2'") == 1
        assert await count("SchedCustomer = 'c-2 group by x'") == 0
        assert await count("SchedCustomer = 'c-1' OR SchedCustomer = 'c-2'") == 2

        for attribute, query in [
            ("WorkflowType", "WorkflowType = 'Quick'"),
            ("ExecutionStatus", "ExecutionStatus = 'Running'"),
            ("WorkflowId", f"WorkflowId = '{listed_id}'"),
            ("TemporalScheduledById", f"TemporalScheduledById = '{listed_id}'"),
        ]:
            with pytest.raises(RPCError) as info:
                _ = [s async for s in await client.list_schedules(query)]
            assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
            assert (
                info.value.message
                == f'invalid query filter for schedules: cannot filter on "{attribute}"'
            )

        # The scheduler's own bookkeeping is not a workflow users see: only the run the
        # trigger started is listed.
        async def runs() -> list[str] | None:
            # Only this test's runs (on Cassandra a run's servers share one keyspace); the
            # scheduler's own run shares the prefix but is not listed.
            own = f"WorkflowId STARTS_WITH '{action_id}'"
            got = [w.id async for w in client.list_workflows(own)]
            return got if got else None

        listed_runs = await wait_until(runs, timeout=20, what="the triggered run listed")
        assert listed_runs == [wf_id_of(described, 0)]


@pytest.mark.timeout(60)
async def test_update_schedule(client: Client, task_queue: str, new_id):
    sid = new_id()
    handle = await client.create_schedule(
        sid, Schedule(action=action(Quick.run, new_id(), task_queue, "old"), spec=DAILY)
    )
    created = await handle.describe()
    new_action_id = new_id()

    def change(update: ScheduleUpdateInput) -> ScheduleUpdate:
        sched = update.description.schedule
        sched.spec = ScheduleSpec(cron_expressions=["15 3 * * *"])
        sched.action = action(WaitForSignal.run, new_action_id, task_queue)
        sched.state.note = "updated"
        return ScheduleUpdate(schedule=sched)

    await handle.update(change)
    d = await handle.describe()
    assert d.schedule.spec.calendars == [
        ScheduleCalendarSpec(
            second=(ScheduleRange(0),),
            minute=(ScheduleRange(15),),
            hour=(ScheduleRange(3),),
        )
    ]
    assert d.schedule.spec.intervals == []
    got = d.schedule.action
    assert isinstance(got, ScheduleActionStartWorkflow)
    assert (got.workflow, got.id, got.args) == ("WaitForSignal", new_action_id, [])
    assert d.schedule.state.note == "updated"
    assert d.info.created_at == created.info.created_at
    assert d.info.last_updated_at is not None and d.info.last_updated_at >= d.info.created_at
    assert [t.strftime("%H:%M:%S") for t in d.info.next_action_times] == ["03:15:00"] * 10
    token = d.raw_description.conflict_token
    assert token and token != created.raw_description.conflict_token

    # A raw update with a stale conflict token never takes effect. The reference (1.32)
    # answers OK and its scheduler drops the update; temper refuses it with
    # FAILED_PRECONDITION "mismatched conflict token" (as Temporal's newer scheduler does),
    # so the caller learns its update was lost. A later update with the current token is
    # applied either way.
    def raw_update(cron: str, conflict_token: bytes) -> UpdateScheduleRequest:
        return UpdateScheduleRequest(
            namespace=NAMESPACE,
            schedule_id=sid,
            schedule=ScheduleProto(
                spec=ScheduleSpecProto(cron_string=[cron]),
                action=d.raw_description.schedule.action,
            ),
            conflict_token=conflict_token,
            request_id=str(uuid.uuid4()),
            identity="test",
        )

    stale = client.workflow_service.update_schedule(
        raw_update("0 1 * * *", created.raw_description.conflict_token)
    )
    if harness.server_kind() == "temper":
        with pytest.raises(RPCError) as refused:
            await stale
        assert refused.value.status == RPCStatusCode.FAILED_PRECONDITION
        assert refused.value.message == "mismatched conflict token"
    else:
        await stale
    await client.workflow_service.update_schedule(raw_update("0 2 * * *", token))
    d2 = await handle.describe()
    assert [c.hour for c in d2.schedule.spec.calendars] == [(ScheduleRange(2),)]
    assert d2.raw_description.conflict_token not in (token, created.raw_description.conflict_token)
    # A full replace: state not given is reset (the note is gone).
    assert d2.schedule.state == ScheduleState()


@pytest.mark.timeout(60)
async def test_list_matching_times_across_dst(client: Client, task_queue: str, new_id):
    zone = ZoneInfo("America/New_York")
    sid = new_id()
    await client.create_schedule(
        sid,
        Schedule(
            action=action(Quick.run, new_id(), task_queue, "x"),
            spec=ScheduleSpec(
                calendars=[
                    ScheduleCalendarSpec(
                        hour=(ScheduleRange(1), ScheduleRange(2)), minute=(ScheduleRange(30),)
                    )
                ],
                time_zone_name="America/New_York",
            ),
            state=ScheduleState(paused=True),
        ),
    )

    def expected(first: datetime, last: datetime) -> list[datetime]:
        """Every 01:30 and 02:30 New York wall time between two UTC instants: a wall time
        that does not exist (spring forward) is skipped, one that exists twice (fall back)
        fires twice."""
        out: set[datetime] = set()
        day = first.astimezone(zone).date() - timedelta(days=1)
        while day <= last.astimezone(zone).date():
            for hour in (1, 2):
                for fold in (0, 1):
                    wall = datetime(day.year, day.month, day.day, hour, 30, fold=fold, tzinfo=zone)
                    utc = wall.astimezone(timezone.utc)
                    back = utc.astimezone(zone)
                    if (back.hour, back.minute) == (hour, 30) and first <= utc <= last:
                        out.add(utc)
            day += timedelta(days=1)
        return sorted(out)

    async def matching(first: datetime, last: datetime) -> list[datetime]:
        got = await client.workflow_service.list_schedule_matching_times(
            ListScheduleMatchingTimesRequest(
                namespace=NAMESPACE, schedule_id=sid, start_time=ts(first), end_time=ts(last)
            )
        )
        return [t.ToDatetime().replace(tzinfo=timezone.utc) for t in got.start_time]

    fall_from = datetime(2026, 10, 30, tzinfo=timezone.utc)
    fall_to = datetime(2026, 11, 3, tzinfo=timezone.utc)
    fall = await matching(fall_from, fall_to)
    assert fall == expected(fall_from, fall_to)
    # Sunday 1 November 2026: 01:30 EDT, 01:30 EST and 02:30 EST.
    assert [t for t in fall if t.date() == datetime(2026, 11, 1).date()] == [
        datetime(2026, 11, 1, 5, 30, tzinfo=timezone.utc),
        datetime(2026, 11, 1, 6, 30, tzinfo=timezone.utc),
        datetime(2026, 11, 1, 7, 30, tzinfo=timezone.utc),
    ]
    spring_from = datetime(2027, 3, 12, tzinfo=timezone.utc)
    spring_to = datetime(2027, 3, 16, tzinfo=timezone.utc)
    spring = await matching(spring_from, spring_to)
    assert spring == expected(spring_from, spring_to)
    # Sunday 14 March 2027: 01:30 EST only; 02:30 does not exist that day.
    assert [t for t in spring if t.date() == datetime(2027, 3, 14).date()] == [
        datetime(2027, 3, 14, 6, 30, tzinfo=timezone.utc),
    ]

    err = await rpc_error(
        client.workflow_service.list_schedule_matching_times(
            ListScheduleMatchingTimesRequest(
                namespace=NAMESPACE,
                schedule_id=new_id(),
                start_time=ts(fall_from),
                end_time=ts(fall_to),
            )
        )
    )
    # The reference's message names its internal scheduler workflow ("workflow not found for
    # ID: temporal-sys-scheduler:<id>"); only the code is part of the contract.
    assert err.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(60)
async def test_delete_schedule(client: Client, task_queue: str, new_id):
    sid = new_id()
    sched = Schedule(action=action(Quick.run, new_id(), task_queue, "x"), spec=DAILY)
    handle = await client.create_schedule(sid, sched)
    await handle.delete()
    err = await rpc_error(handle.describe())
    assert (err.status, err.message) == (RPCStatusCode.NOT_FOUND, "schedule not found")
    # Deleting again: NOT_FOUND (the reference says "workflow execution already completed",
    # about its internal scheduler workflow).
    err = await rpc_error(handle.delete())
    assert err.status == RPCStatusCode.NOT_FOUND
    again = await client.create_schedule(
        sid, Schedule(action=action(Quick.run, new_id(), task_queue, "again"), spec=DAILY)
    )
    d = await again.describe()
    assert d.info.num_actions == 0
    assert await client.data_converter.decode(d.schedule.action.args) == ["again"]  # type: ignore[attr-defined,arg-type]
    await listed_until(
        client, None, lambda got: [s.id for s in got] == [sid], "the re-created schedule listed"
    )


@pytest.mark.timeout(60)
async def test_a_retried_patch_applies_once(client: Client, task_queue: str, new_id):
    # PatchSchedule is idempotent by its request id: a trigger sent twice with the same id
    # (a client retrying after a lost reply) starts one workflow; another id starts another.
    sid = new_id()
    await client.workflow_service.create_schedule(
        CreateScheduleRequest(
            namespace=NAMESPACE,
            schedule_id=sid,
            schedule=raw_schedule(task_queue),
            identity="test",
            request_id=str(uuid.uuid4()),
        )
    )
    handle = client.get_schedule_handle(sid)

    def trigger(request_id: str) -> PatchScheduleRequest:
        return PatchScheduleRequest(
            namespace=NAMESPACE,
            schedule_id=sid,
            patch=SchedulePatchProto(
                trigger_immediately=TriggerImmediatelyRequest(
                    overlap_policy=ScheduleOverlapPolicyProto.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
                )
            ),
            identity="test",
            request_id=request_id,
        )

    await client.workflow_service.patch_schedule(trigger("the-same-trigger"))
    await client.workflow_service.patch_schedule(trigger("the-same-trigger"))
    d = await describe_until(handle, lambda d: d.info.num_actions >= 1, "the trigger's action")
    first = d.info.recent_actions[0].scheduled_at
    await next_second(first)
    await client.workflow_service.patch_schedule(trigger("another-trigger"))
    d = await describe_until(handle, lambda d: d.info.num_actions >= 2, "the second action")
    assert d.info.num_actions == 2


def raw_schedule(
    task_queue: str,
    *,
    cron: str = "0 * * * *",
    zone: str = "",
    workflow_type: str = "Quick",
    catchup: Duration | None = None,
) -> ScheduleProto:
    return ScheduleProto(
        spec=ScheduleSpecProto(cron_string=[cron], timezone_name=zone),
        action=ScheduleActionProto(
            start_workflow=NewWorkflowExecutionInfo(
                workflow_id="scheduled",
                workflow_type=WorkflowType(name=workflow_type),
                task_queue=TaskQueue(name=task_queue),
            )
        ),
        policies=SchedulePoliciesProto(catchup_window=catchup),
    )


def assert_message(got: str, reference: str) -> None:
    """The reference's text, where a spec error may also name the spec field between the
    prefix and the reason ("Invalid schedule spec: cron_string[0]: Minute is not ...")."""
    prefix = "Invalid schedule spec: "
    if reference.startswith(prefix):
        assert got.startswith(prefix) and got.endswith(reference.removeprefix(prefix)), got
    else:
        assert got == reference


@pytest.mark.timeout(60)
async def test_bad_input(client: Client, task_queue: str, new_id):
    async def create(sched: ScheduleProto, sid: str | None = None) -> Any:
        return await client.workflow_service.create_schedule(
            CreateScheduleRequest(
                namespace=NAMESPACE,
                schedule_id=sid or new_id(),
                schedule=sched,
                request_id=str(uuid.uuid4()),
                identity="test",
            )
        )

    for sched, message in [
        (
            raw_schedule(task_queue, cron="61 * * * *"),
            "Invalid schedule spec: Minute is not in range [0-59]",
        ),
        (
            raw_schedule(task_queue, cron="not a cron"),
            "Invalid schedule spec: CronString does not have 5-7 fields",
        ),
        (
            raw_schedule(task_queue, zone="Mars/Olympus"),
            "Invalid schedule spec: unknown time zone Mars/Olympus",
        ),
        (raw_schedule(task_queue, workflow_type=""), "WorkflowType is not set on request."),
        (
            ScheduleProto(
                spec=ScheduleSpecProto(cron_string=["0 * * * *"]),
                action=ScheduleActionProto(
                    start_workflow=NewWorkflowExecutionInfo(
                        workflow_id="scheduled", workflow_type=WorkflowType(name="Quick")
                    )
                ),
            ),
            "taskQueue is not set",
        ),
    ]:
        err = await rpc_error(create(sched))
        assert err.status == RPCStatusCode.INVALID_ARGUMENT
        assert_message(err.message, message)

    # The SDK raises the same error.
    with pytest.raises(RPCError) as info:
        await client.create_schedule(
            new_id(),
            Schedule(
                action=action(Quick.run, new_id(), task_queue, "x"),
                spec=ScheduleSpec(cron_expressions=["* * * * *"], time_zone_name="Nowhere/City"),
            ),
        )
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert_message(info.value.message, "Invalid schedule spec: unknown time zone Nowhere/City")

    # A catchup window below 10 s is not refused: Temporal raises it to its 10 s minimum.
    sid = new_id()
    await create(raw_schedule(task_queue, catchup=Duration(seconds=5)), sid)
    d = await client.workflow_service.describe_schedule(
        DescribeScheduleRequest(namespace=NAMESPACE, schedule_id=sid)
    )
    assert d.schedule.policies.catchup_window == Duration(seconds=10)

    # An update is validated like a create.
    err = await rpc_error(
        client.workflow_service.update_schedule(
            UpdateScheduleRequest(
                namespace=NAMESPACE,
                schedule_id=sid,
                schedule=raw_schedule(task_queue, cron="0 25 * * *"),
                request_id=str(uuid.uuid4()),
            )
        )
    )
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert_message(err.message, "Invalid schedule spec: Hour is not in range [0-23]")
