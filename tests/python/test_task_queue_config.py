"""UpdateTaskQueueConfig (Temporal 1.28+): a task queue's rate limit and fairness weight
overrides, set with the raw gRPC call, returned by DescribeTaskQueue's `config`, refused with
Temporal's codes and messages when bad, and honoured by dispatch: an override replaces the
weight tasks carry, and the queue rate limit spaces out the tasks of a backlog.

The reference server needs its new matcher and fairness switched on (the same flags as
test_priority.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import RateLimitSource, TaskQueueType
from temporalio.api.taskqueue.v1 import RateLimit, TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    UpdateTaskQueueConfigRequest,
)
from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import ServerProcess, result_within, wait_until, worker
from test_priority import (  # noqa: F401  (client: the fixture)
    FLAGS,
    REFERENCE_FLAGS,
    ScheduleMany,
    _backlogged,
    client,
    run_backlog,
)

ACTIVITY = TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
WORKFLOW = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
Update = UpdateTaskQueueConfigRequest.RateLimitUpdate


def update(client: Client, queue: str, **fields: Any):
    fields.setdefault("task_queue_type", ACTIVITY)
    return client.workflow_service.update_task_queue_config(
        UpdateTaskQueueConfigRequest(
            namespace=client.namespace, identity="ops", task_queue=queue, **fields
        )
    )


async def describe_config(client: Client, queue: str, kind=ACTIVITY):
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=kind,
            report_config=True,
        )
    )
    return resp.config if resp.HasField("config") else None


async def refused(call) -> tuple[RPCStatusCode, str]:
    try:
        await call
    except RPCError as e:
        return e.status, e.message
    pytest.fail("the call succeeded; it should have been refused")


@pytest.mark.timeout(60)
async def test_a_config_is_stored_and_described(client, task_queue):
    queue = f"{task_queue}-acts"
    assert await describe_config(client, queue) is None
    resp = await update(
        client,
        queue,
        update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=25), reason="r1"),
        update_fairness_key_rate_limit_default=Update(
            rate_limit=RateLimit(requests_per_second=5)
        ),
        set_fairness_weight_overrides={"gold": 3.0, "bronze": 0.5},
    )
    cfg = resp.config
    assert cfg.queue_rate_limit.rate_limit.requests_per_second == 25
    assert cfg.queue_rate_limit.metadata.reason == "r1"
    assert cfg.queue_rate_limit.metadata.update_identity == "ops"
    assert cfg.queue_rate_limit.metadata.HasField("update_time")
    assert cfg.fairness_keys_rate_limit_default.rate_limit.requests_per_second == 5
    assert dict(cfg.fairness_weight_overrides) == {"gold": 3.0, "bronze": 0.5}
    assert await describe_config(client, queue) == cfg
    # Another type of the same queue has its own config.
    assert await describe_config(client, queue, WORKFLOW) is None

    # Unset one override, set another; remove the queue limit (its metadata stays).
    resp = await update(
        client,
        queue,
        update_queue_rate_limit=Update(reason="lifted"),
        set_fairness_weight_overrides={"silver": 2.0},
        unset_fairness_weight_overrides=["bronze"],
    )
    cfg = resp.config
    assert not cfg.queue_rate_limit.HasField("rate_limit")
    assert cfg.queue_rate_limit.metadata.reason == "lifted"
    assert dict(cfg.fairness_weight_overrides) == {"gold": 3.0, "silver": 2.0}
    assert cfg.fairness_keys_rate_limit_default.rate_limit.requests_per_second == 5
    assert await describe_config(client, queue) == cfg


@pytest.mark.timeout(120)
async def test_a_config_survives_a_restart(tmp_path: Path, task_queue):
    kind = harness.server_kind()
    flags = FLAGS + (REFERENCE_FLAGS if kind == "temporal" else [])
    srv = ServerProcess(kind, tmp_path / "server", extra_args=flags)
    try:
        await srv.start()
        client = await srv.connect()
        resp = await update(
            client,
            task_queue,
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=7)),
            set_fairness_weight_overrides={"gold": 3.0},
        )
        await srv.restart()
        client = await srv.connect()
        assert await describe_config(client, task_queue) == resp.config
    finally:
        await srv.stop()


@pytest.mark.timeout(60)
async def test_bad_updates_are_refused_as_temporal_refuses_them(client, task_queue):
    cases: list[tuple[dict[str, Any], str]] = [
        (
            {"task_queue_type": WORKFLOW,
             "update_queue_rate_limit": Update(rate_limit=RateLimit(requests_per_second=1))},
            "Setting rate limit on workflow task queues is not allowed.",
        ),
        (
            {"task_queue_type": WORKFLOW,
             "update_fairness_key_rate_limit_default":
                 Update(rate_limit=RateLimit(requests_per_second=1))},
            "Setting fairness key rate limit on workflow task queues is not allowed.",
        ),
        (
            {"update_queue_rate_limit": Update(rate_limit=RateLimit(requests_per_second=-1))},
            "RequestsPerSecond for UpdateQueueRateLimit rate limit must be non-negative.",
        ),
        (
            {"update_queue_rate_limit":
                 Update(rate_limit=RateLimit(requests_per_second=1), reason="x" * 1001)},
            "UpdateQueueRateLimit.Reason field too long (max 1000 characters).",
        ),
        (
            {"set_fairness_weight_overrides": {"": 1.0}},
            "fairness weight override key must not be empty",
        ),
        (
            {"set_fairness_weight_overrides": {"k" * 65: 1.0}},
            "fairness key length exceeds limit",
        ),
        (
            {"set_fairness_weight_overrides": {"gold": 0.0}},
            'invalid fairness weight weight for key "gold": must be greater than zero',
        ),
        (
            {"set_fairness_weight_overrides": {"gold": 2.0},
             "unset_fairness_weight_overrides": ["gold"]},
            'fairness weight override key "gold" present in both set and unset lists',
        ),
        (
            {"unset_fairness_weight_overrides": [f"k{i}" for i in range(1001)]},
            "too many fairness weight overrides in request: got 1001, maximum 1000",
        ),
    ]  # fmt: skip
    for fields, message in cases:
        status, got = await refused(update(client, task_queue, **fields))
        assert (status, got) == (RPCStatusCode.INVALID_ARGUMENT, message), fields
    # Nothing of it was stored.
    assert await describe_config(client, task_queue) is None


@pytest.mark.timeout(180)
async def test_a_weight_override_replaces_the_weight_tasks_carry(client, task_queue, new_id):
    act_queue = f"{task_queue}-activities"
    await update(client, act_queue, set_fairness_weight_overrides={"tenant-gold": 3.0})
    per_key = 40
    # Both keys' tasks carry weight 1; the override gives tenant-gold three shares.
    priorities = [{"fairness_key": "tenant-plain", "fairness_weight": 1.0}] * per_key + [
        {"fairness_key": "tenant-gold", "fairness_weight": 1.0}
    ] * per_key
    order = await run_backlog(client, task_queue, new_id(), priorities)
    first = order[:per_key]
    gold = sum(1 for tag in first if tag.endswith(":tenant-gold"))
    assert gold >= 26, f"tenant-gold ran {gold} of the first {per_key}: {first}"


class Clock:
    def __init__(self) -> None:
        self.times: list[float] = []
        self.by_key: dict[str, list[float]] = {}

    @activity.defn(name="record")
    async def record(self, tag: str) -> None:
        now = time.monotonic()
        self.times.append(now)
        self.by_key.setdefault(tag.rsplit(":", 1)[-1], []).append(now)


async def backlog_then_work(
    client: Client,
    task_queue: str,
    wf_id: str,
    priorities: list[dict[str, Any]],
    clock: Clock,
    during: Callable[[], Awaitable[None]] | None = None,
    **worker_args: Any,
) -> None:
    """Schedule one `record` activity per priority with no activity worker, wait until all
    are backlogged, then run them on a worker made with `worker_args` until the workflow
    completes; `during` runs after that, with the worker still polling."""
    act_queue = f"{task_queue}-activities"
    n = len(priorities)
    async with worker(client, task_queue, workflows=[ScheduleMany]):
        handle = await client.start_workflow(
            ScheduleMany.run, args=[act_queue, priorities], id=wf_id, task_queue=task_queue
        )
        await wait_until(
            lambda: _backlogged(client, act_queue, n), timeout=30, what=f"{n} backlogged tasks"
        )
        async with worker(client, act_queue, activities=[clock.record], **worker_args):
            await result_within(handle, 120)
            if during is not None:
                await during()
    assert len(clock.times) == n


@pytest.mark.timeout(180)
async def test_the_queue_rate_limit_spaces_out_a_backlog(client, task_queue, new_id):
    act_queue = f"{task_queue}-activities"
    await update(
        client,
        act_queue,
        update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=2)),
    )
    n = 10
    clock = Clock()
    await backlog_then_work(client, task_queue, new_id(), [{}] * n, clock)
    spread = clock.times[-1] - clock.times[0]
    # A burst of up to two, then two a second: the other eight take about four seconds
    # (without the limit, ten tasks for an idle worker take well under one).
    assert spread >= 3.0, f"{n} tasks at 2/s ran within {spread:.2f} s"
    assert spread <= 12.0, f"{n} tasks at 2/s took {spread:.2f} s"


@pytest.mark.timeout(180)
async def test_the_fairness_key_rate_limit_holds_back_only_the_key_over_it(
    client, task_queue, new_id
):
    act_queue = f"{task_queue}-activities"
    await update(
        client,
        act_queue,
        update_fairness_key_rate_limit_default=Update(
            rate_limit=RateLimit(requests_per_second=2)
        ),
        set_fairness_weight_overrides={"gold": 2.0},
    )
    # Ten tasks of "flood" ahead of three of "quiet" and eight of "gold" (weight 2 by
    # override: four a second).
    priorities = (
        [{"fairness_key": "flood"}] * 10
        + [{"fairness_key": "quiet"}] * 3
        + [{"fairness_key": "gold"}] * 8
    )
    clock = Clock()
    await backlog_then_work(client, task_queue, new_id(), priorities, clock)
    start = min(clock.times)
    flood, quiet, gold = (clock.by_key[k] for k in ("flood", "quiet", "gold"))
    assert (len(flood), len(quiet), len(gold)) == (10, 3, 8)
    # quiet is under its limit: its three go at once, not behind flood's ten.
    assert max(quiet) - start < 2.0, f"quiet finished {max(quiet) - start:.2f} s in"
    # flood: a burst of two, then two a second; the other eight take about four seconds.
    assert max(flood) - start >= 3.0, f"flood's ten ran within {max(flood) - start:.2f} s"
    # gold at weight 2: a burst of four, then four a second; the other four take about one.
    gold_spread = max(gold) - start
    assert 0.7 <= gold_spread < max(flood) - start, f"gold's eight took {gold_spread:.2f} s"


async def effective_rate_limit(client: Client, queue: str):
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=ACTIVITY
        )
    )
    eff = resp.effective_rate_limit
    return round(eff.requests_per_second, 3), RateLimitSource.Name(eff.rate_limit_source)


@pytest.mark.timeout(180)
async def test_the_workers_activity_rate_limits_dispatch_and_describe_reports_it(
    client, task_queue, new_id
):
    act_queue = f"{task_queue}-activities"
    rate, source = await effective_rate_limit(client, act_queue)
    assert source == "RATE_LIMIT_SOURCE_SYSTEM", (rate, source)
    n = 10
    clock = Clock()

    async def while_the_worker_polls() -> None:
        assert await effective_rate_limit(client, act_queue) == (2.0, "RATE_LIMIT_SOURCE_WORKER")
        # The config's limit replaces the worker's.
        await update(
            client,
            act_queue,
            update_queue_rate_limit=Update(rate_limit=RateLimit(requests_per_second=9)),
        )
        await wait_until(
            lambda: _is(effective_rate_limit(client, act_queue), (9.0, "RATE_LIMIT_SOURCE_API")),
            timeout=20,
            what="the config's limit in effect",
        )

    await backlog_then_work(
        client,
        task_queue,
        new_id(),
        [{}] * n,
        clock,
        during=while_the_worker_polls,
        max_task_queue_activities_per_second=2,
    )
    spread = clock.times[-1] - clock.times[0]
    # A burst of two, then two a second: the other eight take about four seconds.
    assert spread >= 3.0, f"{n} tasks at 2/s ran within {spread:.2f} s"


async def _is(value, expected) -> bool:
    return await value == expected
