"""Standalone activities: activities started by a client, not by a workflow
(StartActivityExecution, DescribeActivityExecution, PollActivityExecution,
RequestCancelActivityExecution, TerminateActivityExecution, DeleteActivityExecution,
ListActivityExecutions, CountActivityExecutions), through the SDK's `Client.start_activity`
family, the raw WorkflowService calls and the `temporal activity ...` CLI commands.

The reference server only serves these with `activity.enableStandalone=true` (and
`activity.startDelayEnabled=true` for start delays); every test's server gets both flags.
The assertions pin down what the reference answers, including where it surprises.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import activity
from temporalio.api.common.v1 import ActivityType, WorkflowType
from temporalio.api.common.v1 import RetryPolicy as ApiRetryPolicy
from temporalio.api.enums.v1 import RetryState
from temporalio.api.errordetails.v1 import (
    ActivityExecutionAlreadyStartedFailure,
    NotFoundFailure,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountActivityExecutionsRequest,
    DeleteActivityExecutionRequest,
    DescribeActivityExecutionRequest,
    DescribeActivityExecutionResponse,
    ListActivityExecutionsRequest,
    PollActivityExecutionRequest,
    RequestCancelActivityExecutionRequest,
    StartActivityExecutionRequest,
    StartWorkflowExecutionRequest,
    TerminateActivityExecutionRequest,
)
from temporalio.client import (
    ActivityExecutionStatus,
    ActivityFailureError,
    AsyncActivityCancelledError,
    Client,
    PendingActivityState,
)
from temporalio.common import ActivityIDConflictPolicy, ActivityIDReusePolicy, RetryPolicy
from temporalio.exceptions import (
    ActivityAlreadyStartedError,
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutType,
)
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, ServerProcess, run_temporal_cli, wait_until, worker

FLAGS = [
    "--dynamic-config-value", "activity.enableStandalone=true",
    "--dynamic-config-value", "activity.startDelayEnabled=true",
]  # fmt: skip

# The defaults the server fills into a retry policy the request leaves out.
DEFAULT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=100),
    maximum_attempts=0,
)

S = ActivityExecutionStatus
RS = PendingActivityState


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """This module's servers run with standalone activities (and start delays) enabled."""
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


@pytest.fixture
def act_id(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Unique activity ids, prefixed with the test's name."""
    prefix = "act-" + request.node.name.removeprefix("test_")[:30]
    return lambda: harness.unique(prefix)


# --------------------------------------------------------------------------- activities

# What activities saw, by the activity id (activities run in the test's process).
seen: dict[str, list[Any]] = {}
# Events the tests set to let an activity go on, by the activity id.
gates: dict[str, asyncio.Event] = {}


@activity.defn
async def greet(name: str) -> str:
    return f"hi {name}"


@activity.defn
async def fail_hard() -> str:
    raise ApplicationError("bad thing", "d1", type="MyErr", non_retryable=True)


@activity.defn
async def heartbeat_until_cancelled() -> str:
    """Heartbeats once, waits for the test's gate, then heartbeats until cancelled."""
    info = activity.info()
    activity.heartbeat("first")
    await gates[info.activity_id].wait()
    try:
        while True:
            activity.heartbeat("beat")
            await asyncio.sleep(0.1)
    except (CancelledError, asyncio.CancelledError):
        # The SDK cancels the activity's task: asyncio.CancelledError.
        seen.setdefault(info.activity_id, []).append("cancelled")
        raise


@activity.defn
async def wait_outside() -> list[Any]:
    """Attempt 1 completes asynchronously (the test completes it by id); a later attempt
    returns the heartbeat details it was given."""
    info = activity.info()
    seen.setdefault(info.activity_id, []).append(info.attempt)
    if info.attempt == 1:
        activity.raise_complete_async()
    return list(info.heartbeat_details)


@activity.defn
async def sleep_long() -> str:
    """Heartbeats `hb<attempt>` and records what it got, then outlives start-to-close."""
    info = activity.info()
    seen.setdefault(info.activity_id, []).append((info.attempt, list(info.heartbeat_details)))
    activity.heartbeat(f"hb{info.attempt}")
    await asyncio.sleep(30)
    return "late"


@activity.defn
async def record_info() -> str:
    seen.setdefault(activity.info().activity_id, []).append(activity.info())
    return "ok"


ACTIVITIES = [
    greet,
    fail_hard,
    heartbeat_until_cancelled,
    wait_outside,
    sleep_long,
    record_info,
]

# --------------------------------------------------------------------------- helpers


async def raw_describe(
    client: Client, activity_id: str, run_id: str = "", **kwargs: Any
) -> DescribeActivityExecutionResponse:
    return await client.workflow_service.describe_activity_execution(
        DescribeActivityExecutionRequest(
            namespace=NAMESPACE, activity_id=activity_id, run_id=run_id, **kwargs
        ),
        retry=False,
    )


def start_request(
    activity_id: str, task_queue: str, **kwargs: Any
) -> StartActivityExecutionRequest:
    kwargs.setdefault("start_to_close_timeout", Duration(seconds=10))
    kwargs.setdefault("request_id", str(uuid.uuid4()))
    return StartActivityExecutionRequest(
        namespace=NAMESPACE,
        identity="raw-client",
        activity_id=activity_id,
        activity_type=ActivityType(name=kwargs.pop("type", "greet")),
        task_queue=TaskQueue(name=task_queue),
        **kwargs,
    )


async def rpc_error(call: Awaitable[Any]) -> RPCError:
    with pytest.raises(RPCError) as info:
        await call
    return info.value


def detail_types(err: RPCError) -> list[str]:
    return [d.type_url.rsplit("/", 1)[-1] for d in err.grpc_status.details]


def assert_not_found(err: RPCError, activity_id: str) -> None:
    assert err.status == RPCStatusCode.NOT_FOUND
    assert err.message == f"activity not found for ID: {activity_id}"
    assert detail_types(err) == ["temporal.api.errordetails.v1.NotFoundFailure"]
    assert err.grpc_status.details[0].Unpack(NotFoundFailure())


async def failure_of(handle: Any) -> BaseException:
    """The cause of the ActivityFailureError that `handle.result()` raises."""
    with pytest.raises(ActivityFailureError) as info:
        await asyncio.wait_for(handle.result(), 30)
    assert str(info.value) == "Activity execution failed"
    assert info.value.cause is not None
    return info.value.cause


async def wait_run_state(client: Client, activity_id: str, state: int) -> None:
    async def check() -> bool:
        return (await raw_describe(client, activity_id)).info.run_state == state

    await wait_until(check, timeout=15, what=f"{activity_id} in run state {state}")


async def listed(
    client: Client,
    query: str,
    expected: int,
    ready: Callable[[list[Any]], bool] = lambda _: True,
) -> list[Any]:
    """`list_activities(query)` once visibility shows `expected` of them (and `ready` holds:
    visibility lags behind the activity's own state)."""

    async def check() -> tuple[list[Any]] | None:
        found = [a async for a in client.list_activities(query)]
        return (found,) if len(found) == expected and ready(found) else None

    return (await wait_until(check, timeout=15, what=f"{expected} activities for {query!r}"))[0]


def close_to(a: datetime | None, b: datetime | None, tolerance: float = 0.01) -> bool:
    assert a is not None and b is not None
    return abs((a - b).total_seconds()) <= tolerance


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_start_and_result_through_worker(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    assert handle.id == aid
    assert handle.run_id  # a UUID the server chose
    uuid.UUID(handle.run_id)
    async with worker(client, task_queue, activities=ACTIVITIES):
        assert await asyncio.wait_for(handle.result(), 30) == "hi x"
        # Other handles, by id only (the latest run) and by id and run id.
        assert await client.get_activity_handle(aid).result() == "hi x"
        by_run = client.get_activity_handle(aid, run_id=handle.run_id)
        assert await by_run.result() == "hi x"
        # execute_activity = start + result.
        out = await client.execute_activity(
            greet,
            "y",
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10),
        )
        assert out == "hi y"


@pytest.mark.timeout(60)
async def test_describe_scheduled_then_completed(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    d = await handle.describe(include_input=True, include_outcome=True)
    assert d.activity_id == aid and d.activity_run_id == handle.run_id
    assert d.activity_type == "greet" and d.task_queue == task_queue
    assert d.status == S.RUNNING and d.run_state == RS.SCHEDULED
    assert d.attempt == 1
    assert d.start_to_close_timeout == timedelta(seconds=10)
    # With only start-to-close given, the other timeouts come back set to zero (present,
    # not absent): no schedule-to-close, no schedule-to-start, no heartbeat timeout.
    assert d.schedule_to_close_timeout == timedelta(0)
    assert d.schedule_to_start_timeout == timedelta(0)
    assert d.heartbeat_timeout == timedelta(0)
    assert d.expiration_time is None  # no schedule-to-close: no expiration
    assert d.retry_policy == DEFAULT_RETRY
    assert d.execution_time == d.schedule_time  # no start delay
    assert d.start_delay is None and d.next_attempt_schedule_time is None
    for unset in (d.close_time, d.execution_duration, d.last_started_time):
        assert unset is None
    assert d.last_worker_identity is None and d.canceled_reason is None
    assert d.last_heartbeat_time is None and d.total_heartbeat_count == 0
    assert await d.input() == ["x"]
    assert not d.has_result() and not d.has_outcome_failure()
    raw = await raw_describe(client, aid)
    assert raw.run_id == handle.run_id and raw.long_poll_token
    assert raw.info.state_transition_count == 1
    assert not raw.HasField("input") and not raw.HasField("outcome")  # not asked for
    assert not raw.info.HasField("last_failure") and not raw.info.HasField("heartbeat_details")
    assert raw.info.sdk_name == "" and raw.info.sdk_version == ""  # no worker yet

    async with worker(client, task_queue, activities=ACTIVITIES, identity="w-ident"):
        assert await asyncio.wait_for(handle.result(), 30) == "hi x"
    d = await handle.describe(include_input=True, include_outcome=True)
    assert d.status == S.COMPLETED
    assert d.run_state is None  # closed activities have no run state
    assert d.attempt == 1
    assert d.last_worker_identity == "w-ident"
    assert d.close_time is not None and d.last_started_time is not None
    assert d.last_attempt_complete_time is not None
    assert d.schedule_time <= d.last_started_time <= d.last_attempt_complete_time <= d.close_time
    # close - schedule (the SDK's datetimes drop the nanoseconds)
    assert d.execution_duration is not None
    assert abs(d.execution_duration - (d.close_time - d.schedule_time)) < timedelta(milliseconds=1)
    assert await d.result() == "hi x" and not d.has_outcome_failure()
    assert await d.input() == ["x"]
    raw = await raw_describe(client, aid, include_outcome=True)
    assert raw.info.state_transition_count == 3  # scheduled, started, completed
    assert raw.info.sdk_name == "temporal-python"
    assert raw.outcome.WhichOneof("value") == "result"
    assert raw.outcome.retry_state == RetryState.RETRY_STATE_UNSPECIFIED

    # Only schedule-to-close given: the server copies it into schedule-to-start and
    # start-to-close, and the expiration is schedule time + schedule-to-close.
    other = await client.start_activity(
        greet,
        "y",
        id=act_id(),
        task_queue=task_queue,
        schedule_to_close_timeout=timedelta(seconds=30),
    )
    d = await other.describe()
    assert d.schedule_to_close_timeout == timedelta(seconds=30)
    assert d.schedule_to_start_timeout == timedelta(seconds=30)
    assert d.start_to_close_timeout == timedelta(seconds=30)
    assert d.expiration_time == d.schedule_time + timedelta(seconds=30)


@pytest.mark.timeout(60)
async def test_describe_long_poll(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    first = await raw_describe(client, aid)
    assert first.long_poll_token and first.info.state_transition_count == 1

    # A token needs the run id, and must be one the server made.
    err = await rpc_error(raw_describe(client, aid, long_poll_token=first.long_poll_token))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "run id is required when long poll token is provided"
    err = await rpc_error(raw_describe(client, aid, handle.run_id, long_poll_token=b"garbage"))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "invalid long poll token"

    poll = asyncio.create_task(
        raw_describe(client, aid, handle.run_id, long_poll_token=first.long_poll_token)
    )
    await asyncio.sleep(0.5)
    assert not poll.done(), "a long poll with an up-to-date token must wait for a change"
    async with worker(client, task_queue, activities=ACTIVITIES):
        changed = await asyncio.wait_for(poll, 20)
        assert changed.info.state_transition_count > 1
        assert changed.long_poll_token and changed.long_poll_token != first.long_poll_token
        await handle.result()


@pytest.mark.timeout(60)
async def test_poll_outcomes(client: Client, task_queue: str, act_id: Callable[[], str]) -> None:
    async with worker(client, task_queue, activities=ACTIVITIES):
        # Failed: a non-retryable ApplicationError.
        failed = await client.start_activity(
            fail_hard,
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10),
        )
        cause = await failure_of(failed)
        assert isinstance(cause, ApplicationError)
        assert cause.message == "bad thing" and cause.type == "MyErr"
        assert cause.non_retryable and list(cause.details) == ["d1"]
        d = await failed.describe(include_outcome=True, include_last_failure=True)
        assert d.status == S.FAILED
        assert isinstance(await d.outcome_failure(), ApplicationError)
        assert isinstance(await d.last_failure(), ApplicationError)  # also kept once closed
        raw = await raw_describe(client, failed.id, include_outcome=True)
        assert raw.outcome.retry_state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE

        done = await client.start_activity(
            greet,
            "z",
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10),
        )
        assert await done.result() == "hi z"
        polled = await client.workflow_service.poll_activity_execution(
            PollActivityExecutionRequest(namespace=NAMESPACE, activity_id=done.id)
        )
        assert polled.run_id == done.run_id
        assert polled.outcome.WhichOneof("value") == "result"

    # Canceled before it started: closes at once with a CanceledFailure carrying the reason.
    canceled = await client.start_activity(
        "never_runs",
        id=act_id(),
        task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=10),
    )
    await canceled.cancel(reason="because")
    cause = await failure_of(canceled)
    assert isinstance(cause, CancelledError)
    assert cause.message == "Activity canceled" and list(cause.details) == ["because"]
    polled = await client.workflow_service.poll_activity_execution(
        PollActivityExecutionRequest(namespace=NAMESPACE, activity_id=canceled.id)
    )
    assert polled.outcome.failure.canceled_failure_info.identity == client.identity

    # Terminated: a TerminatedError whose message is the reason.
    terminated = await client.start_activity(
        "never_runs",
        id=act_id(),
        task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=10),
    )
    await terminated.terminate(reason="stop it")
    cause = await failure_of(terminated)
    assert isinstance(cause, TerminatedError) and cause.message == "stop it"
    polled = await client.workflow_service.poll_activity_execution(
        PollActivityExecutionRequest(
            namespace=NAMESPACE, activity_id=terminated.id, run_id=terminated.run_id or ""
        )
    )
    assert polled.outcome.failure.message == "stop it"
    assert polled.outcome.failure.terminated_failure_info.identity == client.identity

    # Polling an open activity: the server answers an empty response (no outcome) shortly
    # before the call's deadline (about a second before it).
    running = await client.start_activity(
        "never_runs",
        id=act_id(),
        task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=10),
    )
    empty = await client.workflow_service.poll_activity_execution(
        PollActivityExecutionRequest(namespace=NAMESPACE, activity_id=running.id),
        retry=False,
        timeout=timedelta(seconds=3),
    )
    assert not empty.HasField("outcome")


@pytest.mark.timeout(60)
async def test_id_conflict_and_reuse_policies(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    first = await client.start_activity(
        greet, "1", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    # Conflict policy FAIL (the SDK's default; the server treats UNSPECIFIED the same).
    with pytest.raises(ActivityAlreadyStartedError) as info:
        await client.start_activity(
            greet, "2", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
        )
    assert info.value.run_id == first.run_id
    assert info.value.activity_id == aid and info.value.activity_type == "greet"
    ws = client.workflow_service
    err = await rpc_error(ws.start_activity_execution(start_request(aid, task_queue), retry=False))
    assert err.status == RPCStatusCode.ALREADY_EXISTS
    assert err.message == "activity execution already started"
    assert detail_types(err) == [
        "temporal.api.errordetails.v1.ActivityExecutionAlreadyStartedFailure"
    ]
    details = ActivityExecutionAlreadyStartedFailure()
    assert err.grpc_status.details[0].Unpack(details)
    assert details.run_id == first.run_id and details.start_request_id

    # USE_EXISTING: the running one's run id, `started` false.
    existing = await client.start_activity(
        greet, "3", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
        id_conflict_policy=ActivityIDConflictPolicy.USE_EXISTING,
    )  # fmt: skip
    assert existing.run_id == first.run_id
    resp = await ws.start_activity_execution(
        start_request(aid, task_queue, id_conflict_policy=2), retry=False
    )
    assert resp.run_id == first.run_id and not resp.started

    # The same request id twice: the same run, the second not `started`; even when the
    # rest of the request differs.
    other = act_id()
    rid = str(uuid.uuid4())
    a = await ws.start_activity_execution(start_request(other, task_queue, request_id=rid))
    b = await ws.start_activity_execution(
        start_request(other, task_queue, request_id=rid, type="x")
    )
    assert a.started and not b.started and a.run_id == b.run_id

    async with worker(client, task_queue, activities=ACTIVITIES):
        assert await first.result() == "hi 1"

    # After a successful close: REJECT_DUPLICATE and ALLOW_DUPLICATE_FAILED_ONLY refuse
    # (with the closed run's id), ALLOW_DUPLICATE (the SDK's default) makes a new run.
    for policy in (
        ActivityIDReusePolicy.REJECT_DUPLICATE,
        ActivityIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    ):
        with pytest.raises(ActivityAlreadyStartedError) as info:
            await client.start_activity(
                greet, "4", id=aid, task_queue=task_queue,
                start_to_close_timeout=timedelta(seconds=10), id_reuse_policy=policy,
            )  # fmt: skip
        assert info.value.run_id == first.run_id
    again = await client.start_activity(
        greet, "5", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    assert again.run_id and again.run_id != first.run_id
    # The latest run is what an id-only handle sees.
    assert (await client.get_activity_handle(aid).describe()).activity_run_id == again.run_id

    # A terminated run counts as failed: ALLOW_DUPLICATE_FAILED_ONLY lets the id be reused.
    await again.terminate(reason="make room")
    third = await client.start_activity(
        greet, "6", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
        id_reuse_policy=ActivityIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )  # fmt: skip
    assert third.run_id not in (first.run_id, again.run_id)


@pytest.mark.timeout(60)
async def test_cancel_scheduled_activity(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    req = RequestCancelActivityExecutionRequest(
        namespace=NAMESPACE,
        activity_id=aid,
        identity="canceller",
        request_id="c1",
        reason="because",
    )
    await client.workflow_service.request_cancel_activity_execution(req)
    # Never started: canceled at once, no worker involved.
    d = await handle.describe(include_outcome=True)
    assert d.status == S.CANCELED and d.run_state is None
    assert d.canceled_reason == "because" and d.close_time is not None
    cause = await d.outcome_failure()
    assert isinstance(cause, CancelledError) and list(cause.details) == ["because"]
    assert d.raw_outcome is not None
    assert d.raw_outcome.failure.canceled_failure_info.identity == "canceller"

    # The same request again is accepted (idempotent); another one is refused.
    await client.workflow_service.request_cancel_activity_execution(req)
    req.request_id = "c2"
    err = await rpc_error(
        client.workflow_service.request_cancel_activity_execution(req, retry=False)
    )
    assert err.status == RPCStatusCode.FAILED_PRECONDITION
    assert err.message == "activity is in terminal state Canceled"
    # Terminating a canceled activity is refused too, in other words.
    err = await rpc_error(handle.terminate(reason="late"))
    assert err.status == RPCStatusCode.FAILED_PRECONDITION
    assert err.message == "invalid transition from Canceled"


@pytest.mark.timeout(60)
async def test_cancel_started_heartbeating_activity(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    gates[aid] = asyncio.Event()
    async with worker(client, task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            heartbeat_until_cancelled, id=aid, task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=timedelta(seconds=1),
        )  # fmt: skip
        await wait_run_state(client, aid, RS.STARTED)

        async def heartbeaten() -> bool:
            return (await raw_describe(client, aid)).info.HasField("last_heartbeat_time")

        await wait_until(heartbeaten, timeout=10, what="the first heartbeat")
        await handle.cancel(reason="pls stop")
        # Started: cancellation is only requested; the activity runs until it reacts.
        d = await handle.describe()
        assert d.status == S.RUNNING and d.run_state == RS.CANCEL_REQUESTED
        assert d.canceled_reason == "pls stop"
        gates[aid].set()  # now it heartbeats, learns of the cancellation and raises
        cause = await failure_of(handle)
        assert isinstance(cause, CancelledError) and cause.message == "Activity canceled"
        assert seen[aid] == ["cancelled"]
    d = await handle.describe(include_outcome=True)
    assert d.status == S.CANCELED and d.run_state is None
    assert d.canceled_reason == "pls stop"
    assert d.total_heartbeat_count >= 1 and d.last_heartbeat_time is not None
    # The outcome is the worker's CanceledFailure (no details), not the request's.
    assert d.raw_outcome is not None
    assert d.raw_outcome.failure.message == "Activity canceled"
    assert not d.raw_outcome.failure.canceled_failure_info.details.payloads


@pytest.mark.timeout(60)
async def test_report_cancellation_by_id(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    async with worker(client, task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            wait_outside,
            id=aid,
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await wait_run_state(client, aid, RS.STARTED)
        outside = client.get_async_activity_handle(activity_id=aid, run_id=handle.run_id)
        # Not requested yet: refused.
        err = await rpc_error(outside.report_cancellation("early"))
        assert err.status == RPCStatusCode.INVALID_ARGUMENT
        assert err.message == (
            "unable to mark activity as canceled without activity being request canceled first"
        )
        await handle.cancel(reason="r")
        # A heartbeat now learns of the request.
        with pytest.raises(AsyncActivityCancelledError):
            await outside.heartbeat("hb")
        await outside.report_cancellation("bye")
        cause = await failure_of(handle)
        assert isinstance(cause, CancelledError) and list(cause.details) == ["bye"]
        # Closed: reporting again is NOT_FOUND, completing is FAILED_PRECONDITION.
        assert_not_found(await rpc_error(outside.report_cancellation("again")), aid)
        err = await rpc_error(outside.complete("late"))
        assert err.status == RPCStatusCode.FAILED_PRECONDITION
        assert err.message == "invalid transition from Canceled"


@pytest.mark.timeout(60)
async def test_terminate(client: Client, task_queue: str, act_id: Callable[[], str]) -> None:
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    req = TerminateActivityExecutionRequest(
        namespace=NAMESPACE, activity_id=aid, identity="term", request_id="t1", reason="stop it"
    )
    await client.workflow_service.terminate_activity_execution(req)
    d = await handle.describe(include_outcome=True)
    assert d.status == S.TERMINATED and d.run_state is None and d.close_time is not None
    assert d.canceled_reason is None
    cause = await d.outcome_failure()
    assert isinstance(cause, TerminatedError) and cause.message == "stop it"
    assert d.raw_outcome is not None
    assert d.raw_outcome.failure.terminated_failure_info.identity == "term"
    assert d.raw_outcome.retry_state == RetryState.RETRY_STATE_UNSPECIFIED
    cause = await failure_of(handle)
    assert isinstance(cause, TerminatedError) and cause.message == "stop it"

    # The same request id again: accepted; another: refused, naming the first request.
    await client.workflow_service.terminate_activity_execution(req)
    req.request_id = "t2"
    err = await rpc_error(client.workflow_service.terminate_activity_execution(req, retry=False))
    assert err.status == RPCStatusCode.FAILED_PRECONDITION
    assert err.message == "already terminated with request ID t1"
    err = await rpc_error(handle.cancel(reason="late"))
    assert err.status == RPCStatusCode.FAILED_PRECONDITION
    assert err.message == "activity is in terminal state Terminated"

    # A started activity: terminated at once; the worker learns it on its next heartbeat.
    aid = act_id()
    gates[aid] = asyncio.Event()
    async with worker(client, task_queue, activities=ACTIVITIES):
        running = await client.start_activity(
            heartbeat_until_cancelled, id=aid, task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30), heartbeat_timeout=timedelta(seconds=1),
        )  # fmt: skip
        await wait_run_state(client, aid, RS.STARTED)

        # Its first heartbeat must be in before the termination: answered after it, that
        # heartbeat would cancel the activity while it waits on the gate.
        async def first_heartbeat_recorded() -> bool:
            return (await running.describe()).last_heartbeat_time is not None

        await wait_until(first_heartbeat_recorded, timeout=15, what="the first heartbeat")
        await running.terminate(reason="gone")
        assert (await running.describe()).status == S.TERMINATED
        gates[aid].set()
        await wait_until(lambda: seen.get(aid), timeout=15, what="the activity cancelled")
    assert seen[aid] == ["cancelled"]


@pytest.mark.timeout(60)
async def test_async_completion_by_activity_id(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    async with worker(client, task_queue, activities=ACTIVITIES):
        # Complete, by activity id and run id.
        a = await client.start_activity(
            wait_outside,
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await wait_run_state(client, a.id, RS.STARTED)
        await client.get_async_activity_handle(activity_id=a.id, run_id=a.run_id).complete(["done"])
        assert await a.result() == ["done"]
        # Complete, by activity id only (the latest run).
        b = await client.start_activity(
            wait_outside,
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await wait_run_state(client, b.id, RS.STARTED)
        await client.get_async_activity_handle(activity_id=b.id).complete(["by id"])
        assert await b.result() == ["by id"]
        # A heartbeat of a closed activity: NOT_FOUND.
        gone = client.get_async_activity_handle(activity_id=b.id, run_id=b.run_id)
        assert_not_found(await rpc_error(gone.heartbeat("late")), b.id)

        # Fail, non-retryable.
        c = await client.start_activity(
            wait_outside,
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
        )
        await wait_run_state(client, c.id, RS.STARTED)
        await client.get_async_activity_handle(activity_id=c.id, run_id=c.run_id).fail(
            ApplicationError("nope", type="X", non_retryable=True)
        )
        cause = await failure_of(c)
        assert isinstance(cause, ApplicationError) and cause.type == "X" and cause.message == "nope"

        # Heartbeat with details, then a retryable failure: attempt 2 sees the details.
        e = await client.start_activity(
            wait_outside, id=act_id(), task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
        )  # fmt: skip
        await wait_run_state(client, e.id, RS.STARTED)
        outside = client.get_async_activity_handle(activity_id=e.id, run_id=e.run_id)
        await outside.heartbeat("progress", 7)
        d = await e.describe(include_heartbeat_details=True)
        assert await d.heartbeat_details() == ["progress", 7]
        assert d.total_heartbeat_count == 1 and d.last_heartbeat_time is not None
        await outside.fail(ApplicationError("try again"))
        assert await asyncio.wait_for(e.result(), 30) == ["progress", 7]
        assert seen[e.id] == [1, 2]
        d = await e.describe(include_last_failure=True)
        assert d.attempt == 2 and d.status == S.COMPLETED
        last = await d.last_failure()
        assert isinstance(last, ApplicationError) and last.message == "try again"

    # No worker: completing by id an activity that was never started is accepted.
    f = await client.start_activity(
        "never_runs",
        id=act_id(),
        task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=30),
    )
    await client.get_async_activity_handle(activity_id=f.id, run_id=f.run_id).complete("early")
    assert await f.result() == "early"
    assert (await f.describe()).status == S.COMPLETED
    # An unknown activity id: NOT_FOUND.
    unknown = client.get_async_activity_handle(activity_id="no-such-activity")
    assert_not_found(await rpc_error(unknown.complete("x")), "no-such-activity")


@pytest.mark.timeout(60)
async def test_schedule_to_close_timeout(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    handle = await client.start_activity(
        "never_runs", id=act_id(), task_queue=task_queue,
        schedule_to_close_timeout=timedelta(seconds=2),
    )  # fmt: skip
    cause = await failure_of(handle)
    # Surprise: schedule-to-close alone is copied into schedule-to-start, and with no
    # worker the schedule-to-start timer wins: the outcome is a SCHEDULE_TO_START timeout.
    assert isinstance(cause, TemporalTimeoutError)
    assert cause.type == TimeoutType.SCHEDULE_TO_START
    assert cause.message == "activity ScheduleToStart timeout"
    d = await handle.describe(include_outcome=True)
    assert d.status == S.TIMED_OUT and d.run_state is None and d.attempt == 1
    assert d.close_time is not None
    assert d.close_time - d.schedule_time >= timedelta(seconds=2)
    assert d.raw_outcome is not None
    assert d.raw_outcome.retry_state == RetryState.RETRY_STATE_TIMEOUT


@pytest.mark.timeout(60)
async def test_start_to_close_timeout_with_retries(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    async with worker(client, task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            sleep_long, id=aid, task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=1),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
        )  # fmt: skip
        cause = await failure_of(handle)
    assert isinstance(cause, TemporalTimeoutError)
    assert cause.type == TimeoutType.START_TO_CLOSE
    assert cause.message == "activity StartToClose timeout"
    # Attempt 2 saw attempt 1's heartbeat.
    assert seen[aid] == [(1, []), (2, ["hb1"])]
    d = await handle.describe(include_outcome=True, include_last_failure=True)
    assert d.status == S.TIMED_OUT and d.attempt == 2
    assert d.raw_outcome is not None
    assert d.raw_outcome.retry_state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert isinstance(await d.last_failure(), TemporalTimeoutError)


@pytest.mark.timeout(60)
async def test_retry_policy_and_start_delay(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    policy = RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=3.0,
        maximum_interval=timedelta(seconds=30),
        maximum_attempts=5,
        non_retryable_error_types=["Nope"],
    )
    handle = await client.start_activity(
        greet, "d", id=act_id(), task_queue=task_queue,
        start_to_close_timeout=timedelta(seconds=10), retry_policy=policy,
        start_delay=timedelta(seconds=2),
    )  # fmt: skip
    d = await handle.describe()
    assert d.retry_policy == policy
    # Delayed: still SCHEDULED; the first attempt's dispatch time is schedule + delay, in
    # both next_attempt_schedule_time and execution_time.
    assert d.status == S.RUNNING and d.run_state == RS.SCHEDULED
    assert d.start_delay == timedelta(seconds=2)
    assert d.next_attempt_schedule_time == d.schedule_time + timedelta(seconds=2)
    assert d.execution_time == d.schedule_time + timedelta(seconds=2)
    async with worker(client, task_queue, activities=ACTIVITIES):
        assert await asyncio.wait_for(handle.result(), 30) == "hi d"
    d = await handle.describe()
    assert d.last_started_time is not None
    assert d.last_started_time - d.schedule_time >= timedelta(seconds=2)
    assert d.next_attempt_schedule_time is None
    assert d.execution_time == d.schedule_time + timedelta(seconds=2)
    assert d.start_delay == timedelta(seconds=2)


@pytest.mark.timeout(60)
async def test_list_and_count(client: Client, task_queue: str, act_id: Callable[[], str]) -> None:
    ids = [act_id() for _ in range(3)]
    types = ["typeA", "typeA", "typeB"]
    handles = []
    for aid, name in zip(ids, types, strict=True):
        handles.append(
            await client.start_activity(
                name, id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
            )
        )
    await handles[0].terminate(reason="x")

    by_id = await listed(
        client, f'ActivityId = "{ids[0]}"', 1, lambda found: found[0].status == S.TERMINATED
    )
    one = by_id[0]
    assert one.activity_id == ids[0] and one.activity_run_id == handles[0].run_id
    assert one.activity_type == "typeA" and one.task_queue == task_queue
    assert one.status == S.TERMINATED and one.namespace == NAMESPACE
    assert one.close_time is not None and one.execution_duration is not None
    assert one.execution_time is not None
    by_type = await listed(client, f'ActivityType = "typeA" AND TaskQueue = "{task_queue}"', 2)
    assert {a.activity_id for a in by_type} == set(ids[:2])
    by_queue = await listed(client, f'TaskQueue = "{task_queue}"', 3)
    assert {a.activity_id for a in by_queue} == set(ids)
    # Scoped to this test's queue: a store may be shared with other tests (Cassandra).
    running = await listed(client, f'ExecutionStatus = "Running" AND TaskQueue = "{task_queue}"', 2)
    assert {a.activity_id for a in running} == set(ids[1:])
    assert all(a.close_time is None for a in running)

    async with worker(client, task_queue, activities=ACTIVITIES):
        done = await client.start_activity(
            greet,
            "x",
            id=act_id(),
            task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10),
        )
        await done.result()
    completed = await listed(
        client, f'ExecutionStatus = "Completed" AND TaskQueue = "{task_queue}"', 1
    )
    assert completed[0].activity_id == done.id

    count = await client.count_activities(f'TaskQueue = "{task_queue}"')
    assert count.count == 4 and count.groups == []
    count = await client.count_activities(f'TaskQueue = "{task_queue}" AND ActivityType = "typeA"')
    assert count.count == 2
    grouped = await client.count_activities(f'TaskQueue = "{task_queue}" GROUP BY ExecutionStatus')
    assert grouped.count == 4
    assert sorted((g.group_values[0], g.count) for g in grouped.groups) == [
        ("Completed", 1),
        ("Running", 2),
        ("Terminated", 1),
    ]
    err = await rpc_error(client.count_activities("GROUP BY ActivityType"))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == (
        "invalid query: operation is not supported: 'GROUP BY' clause is not supported for "
        "search attribute ActivityType"
    )
    err = await rpc_error(client.list_activities("Bogus = 1").fetch_next_page())
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "invalid query: invalid search attribute: Bogus"
    err = await rpc_error(client.list_activities("ORDER BY StartTime").fetch_next_page())
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "invalid query: operation is not supported: 'ORDER BY' clause"
    # An empty query lists every activity (this test's among them: the store may be shared
    # with other tests).
    raw = await client.workflow_service.list_activity_executions(
        ListActivityExecutionsRequest(namespace=NAMESPACE, query="")
    )
    mine = set(ids) | {done.id}
    assert mine <= {e.activity_id for e in raw.executions}
    raw_count = await client.workflow_service.count_activity_executions(
        CountActivityExecutionsRequest(namespace=NAMESPACE, query=f'TaskQueue = "{task_queue}"')
    )
    assert raw_count.count == 4

    # Activities and workflows are apart: a workflow may share a running activity's id,
    # and each list shows only its own kind.
    await client.workflow_service.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_id=ids[1],
            workflow_type=WorkflowType(name="Wf"),
            task_queue=TaskQueue(name=task_queue),
            request_id=str(uuid.uuid4()),
        )
    )
    in_queue = f'TaskQueue = "{task_queue}"'

    async def workflows() -> list[str] | None:
        found = [w.id async for w in client.list_workflows(in_queue)]
        return found if found else None

    assert await wait_until(workflows, timeout=15, what="the workflow listed") == [ids[1]]
    assert (await client.count_workflows(in_queue)).count == 1
    assert {a.activity_id for a in await listed(client, in_queue, 4)} == mine
    assert (await client.count_activities(in_queue)).count == 4
    assert not mine & {w.id async for w in client.list_workflows()} - {ids[1]}
    assert (await handles[1].describe()).status == S.RUNNING


@pytest.mark.timeout(60)
async def test_start_validation(client: Client, task_queue: str, act_id: Callable[[], str]) -> None:
    ws = client.workflow_service

    async def refused(req: StartActivityExecutionRequest) -> str:
        err = await rpc_error(ws.start_activity_execution(req, retry=False))
        assert err.status == RPCStatusCode.INVALID_ARGUMENT, err.message
        return err.message

    aid = act_id()
    assert await refused(start_request(aid, task_queue, start_to_close_timeout=None)) == (
        "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
        f"ActivityId={aid} ActivityType=greet"
    )
    # schedule-to-start alone is not enough either.
    assert (
        await refused(
            start_request(
                aid,
                task_queue,
                start_to_close_timeout=None,
                schedule_to_start_timeout=Duration(seconds=5),
            )
        )
    ).startswith("a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set")
    assert await refused(start_request("", task_queue)) == "activityId is not set"
    assert await refused(start_request(aid, task_queue, type="")) == "activityType is not set"
    assert await refused(start_request(aid, "")) == "missing task queue name"
    assert (
        await refused(start_request(aid, task_queue, start_delay=Duration(seconds=-1)))
        == "invalid StartDelay: negative duration"
    )
    assert (
        await refused(start_request(aid, task_queue, start_to_close_timeout=Duration(seconds=-1)))
        == "invalid StartToCloseTimeout: negative duration"
    )
    assert (
        await refused(start_request("x" * 1001, task_queue))
        == "activityId exceeds length limit. Length=1001 Limit=1000"
    )
    assert (
        await refused(start_request(aid, task_queue, type="t" * 1001))
        == "activityType exceeds length limit. Length=1001 Limit=1000"
    )
    bad_retry = ApiRetryPolicy(
        initial_interval=Duration(seconds=10), maximum_interval=Duration(seconds=1)
    )
    assert (
        await refused(start_request(aid, task_queue, retry_policy=bad_retry))
        == "MaximumInterval cannot be less than InitialInterval on retry policy."
    )
    # Accepted: an id of exactly 1000 characters, and an empty request id.
    assert (await ws.start_activity_execution(start_request("y" * 1000, task_queue))).started
    assert (
        await ws.start_activity_execution(start_request(aid, task_queue, request_id=""))
    ).started
    # The SDK checks the timeouts and the start delay itself, before any call.
    with pytest.raises(ValueError):
        await client.start_activity("greet", id=act_id(), task_queue=task_queue)
    with pytest.raises(ValueError):
        await client.start_activity(
            "greet", id=act_id(), task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=1), start_delay=timedelta(seconds=-1),
        )  # fmt: skip
    # An unknown namespace.
    req = start_request(act_id(), task_queue)
    req.namespace = "no-such-namespace"
    err = await rpc_error(ws.start_activity_execution(req, retry=False))
    assert err.status == RPCStatusCode.NOT_FOUND
    assert err.message == "Namespace no-such-namespace is not found."
    assert detail_types(err) == ["temporal.api.errordetails.v1.NamespaceNotFoundFailure"]


@pytest.mark.timeout(60)
async def test_unknown_activity_and_wrong_run_id(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    ws = client.workflow_service

    def calls(aid: str, run_id: str = "") -> list[Awaitable[Any]]:
        return [
            raw_describe(client, aid, run_id),
            ws.poll_activity_execution(
                PollActivityExecutionRequest(namespace=NAMESPACE, activity_id=aid, run_id=run_id),
                retry=False,
            ),
            ws.request_cancel_activity_execution(
                RequestCancelActivityExecutionRequest(
                    namespace=NAMESPACE, activity_id=aid, run_id=run_id, request_id="r"
                ),
                retry=False,
            ),
            ws.terminate_activity_execution(
                TerminateActivityExecutionRequest(
                    namespace=NAMESPACE, activity_id=aid, run_id=run_id, request_id="r"
                ),
                retry=False,
            ),
            ws.delete_activity_execution(
                DeleteActivityExecutionRequest(namespace=NAMESPACE, activity_id=aid, run_id=run_id),
                retry=False,
            ),
        ]

    for call in calls("no-such-activity"):
        assert_not_found(await rpc_error(call), "no-such-activity")
    aid = act_id()
    handle = await client.start_activity(
        greet, "x", id=aid, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    # Another (well-formed) run id of an existing activity id: the same NOT_FOUND.
    for call in calls(aid, str(uuid.uuid4())):
        assert_not_found(await rpc_error(call), aid)
    err = await rpc_error(raw_describe(client, aid, "not-a-uuid"))
    assert err.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.message == "invalid run id: must be a valid UUID"
    for call in calls(""):
        err = await rpc_error(call)
        assert err.status == RPCStatusCode.INVALID_ARGUMENT
        assert err.message == "activity ID is required"
    # Through the SDK: the RPCError as is.
    assert_not_found(
        await rpc_error(client.get_activity_handle("no-such-activity").result()), "no-such-activity"
    )
    assert (await handle.describe()).status == S.RUNNING


@pytest.mark.timeout(60)
async def test_delete(client: Client, task_queue: str, act_id: Callable[[], str]) -> None:
    ws = client.workflow_service

    def delete(aid: str) -> Awaitable[Any]:
        return ws.delete_activity_execution(
            DeleteActivityExecutionRequest(namespace=NAMESPACE, activity_id=aid), retry=False
        )

    async def gone(handle: Any) -> RPCError | None:
        try:
            await handle.describe()
        except RPCError as e:
            return e
        return None

    # A running activity can be deleted.
    running = await client.start_activity(
        greet, "x", id=act_id(), task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    await delete(running.id)
    err = await wait_until(lambda: gone(running), timeout=10, what="the running one gone")
    assert_not_found(err, running.id)
    # A closed one too. The deletion completes asynchronously: a describe right after the
    # delete call can still find it (for some tens of milliseconds on the reference).
    closed = await client.start_activity(
        greet, "x", id=act_id(), task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10)
    )
    await closed.terminate(reason="done")
    await delete(closed.id)
    err = await wait_until(lambda: gone(closed), timeout=10, what="the closed one gone")
    assert_not_found(err, closed.id)
    assert_not_found(await rpc_error(closed.result()), closed.id)
    assert_not_found(await rpc_error(delete(closed.id)), closed.id)
    # And it leaves visibility.
    await listed(client, f'ActivityId = "{closed.id}"', 0)
    # The id can be used again.
    again = await client.start_activity(
        greet, "y", id=closed.id, task_queue=task_queue, start_to_close_timeout=timedelta(seconds=10),
        id_reuse_policy=ActivityIDReusePolicy.REJECT_DUPLICATE,
    )  # fmt: skip
    assert again.run_id != closed.run_id


@pytest.mark.timeout(90)
async def test_cli(
    server: ServerProcess, client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    async def cli_json(*args: str) -> Any:
        code, out = await run_temporal_cli(server, "activity", *args, "-o", "json")
        assert code == 0, out
        return json.loads(out)

    aid = act_id()
    started = await cli_json(
        "start", "--activity-id", aid, "--type", "greet", "--task-queue", task_queue,
        "--start-to-close-timeout", "10s", "--input", '"cli"',
    )  # fmt: skip
    assert started["activityId"] == aid and started["namespace"] == NAMESPACE
    run_id = started["runId"]
    described = await cli_json("describe", "--activity-id", aid)
    assert described["runId"] == run_id
    info = described["info"]
    assert info["activityType"] == {"name": "greet"} and info["taskQueue"] == task_queue
    assert info["status"] == "ACTIVITY_EXECUTION_STATUS_RUNNING"
    assert info["runState"] == "PENDING_ACTIVITY_STATE_SCHEDULED"
    assert info["startToCloseTimeout"] == "10s" and info["attempt"] == 1
    assert info["retryPolicy"] == {
        "initialInterval": "1s",
        "backoffCoefficient": 2,
        "maximumInterval": "100s",
    }
    listed_json = await wait_until(
        lambda: _cli_list(server, f'ActivityId = "{aid}"'), timeout=15, what="the CLI list"
    )
    assert listed_json[0]["runId"] == run_id
    assert listed_json[0]["status"] == "ACTIVITY_EXECUTION_STATUS_RUNNING"
    assert (await cli_json("count", "--query", f'ActivityId = "{aid}"')) == {"count": "1"}

    async with worker(client, task_queue, activities=ACTIVITIES):
        result = await cli_json("result", "--activity-id", aid)
        assert result["activityId"] == aid and result["status"] == "COMPLETED"
        assert result["result"] == "hi cli"
        executed = await cli_json(
            "execute", "--activity-id", act_id(), "--type", "greet",
            "--task-queue", task_queue, "--start-to-close-timeout", "10s", "--input", '"exec"',
        )  # fmt: skip
        assert executed["status"] == "COMPLETED" and executed["result"] == "hi exec"

    # Cancel a scheduled one; `result` then exits 1 and reports it as FAILED.
    other = act_id()
    await cli_json(
        "start", "--activity-id", other, "--type", "greet", "--task-queue", task_queue,
        "--start-to-close-timeout", "10s",
    )  # fmt: skip
    code, out = await run_temporal_cli(
        server, "activity", "cancel", "--activity-id", other, "--reason", "because"
    )
    assert code == 0 and "Cancellation requested" in out
    code, out = await run_temporal_cli(
        server, "activity", "result", "--activity-id", other, "-o", "json"
    )
    assert code == 1
    canceled = json.loads(out[: out.rindex("}") + 1])
    assert canceled["status"] == "FAILED"
    assert canceled["failure"]["message"] == "Activity canceled"
    assert canceled["failure"]["canceledFailureInfo"]["details"] == ["because"]
    code, out = await run_temporal_cli(
        server, "activity", "terminate", "--activity-id", other, "--reason", "x"
    )
    assert code == 1
    assert "failed to terminate activity: invalid transition from Canceled" in out
    # Terminate a scheduled one.
    third = act_id()
    await cli_json(
        "start", "--activity-id", third, "--type", "greet", "--task-queue", task_queue,
        "--start-to-close-timeout", "10s",
    )  # fmt: skip
    code, out = await run_temporal_cli(
        server, "activity", "terminate", "--activity-id", third, "--reason", "x"
    )
    assert code == 0, out
    assert (await client.get_activity_handle(third).describe()).status == S.TERMINATED
    assert (await client.get_activity_handle(other).describe()).status == S.CANCELED


async def _cli_list(server: ServerProcess, query: str) -> list[Any] | None:
    code, out = await run_temporal_cli(server, "activity", "list", "--query", query, "-o", "json")
    assert code == 0, out
    found = json.loads(out) if out.strip() else []
    return found or None


@pytest.mark.timeout(60)
async def test_activity_info_inside_standalone_activity(
    client: Client, task_queue: str, act_id: Callable[[], str]
) -> None:
    aid = act_id()
    async with worker(client, task_queue, activities=ACTIVITIES):
        handle = await client.start_activity(
            record_info, id=aid, task_queue=task_queue,
            start_to_close_timeout=timedelta(seconds=10), heartbeat_timeout=timedelta(seconds=3),
        )  # fmt: skip
        assert await handle.result() == "ok"
    info = seen[aid][0]
    assert info.activity_id == aid and info.activity_run_id == handle.run_id
    assert info.activity_type == "record_info" and info.task_queue == task_queue
    # No workflow: the workflow fields are None (the task token carries none).
    assert info.workflow_id is None and info.workflow_run_id is None
    assert info.workflow_type is None
    assert info.workflow_namespace == NAMESPACE and info.namespace == NAMESPACE
    assert info.attempt == 1 and not info.is_local
    assert info.heartbeat_timeout == timedelta(seconds=3)
    assert info.start_to_close_timeout == timedelta(seconds=10)
    assert info.schedule_to_close_timeout is None  # zero on the server: None in the SDK
    assert info.retry_policy == DEFAULT_RETRY
    assert info.heartbeat_details == []
    assert info.scheduled_time == info.current_attempt_scheduled_time
