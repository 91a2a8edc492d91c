"""An operator's actions on a pending activity: pause, unpause, reset and update options,
through the WorkflowService API and the `temporal activity ...` CLI commands."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import activity, workflow
from temporalio.api.activity.v1 import ActivityOptions
from temporalio.api.common.v1 import RetryPolicy as ApiRetryPolicy
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import (
    PauseActivityRequest,
    ResetActivityRequest,
    UnpauseActivityRequest,
    UpdateActivityOptionsRequest,
)
from temporalio.common import RetryPolicy
from temporalio.exceptions import CancelledError
from temporalio.service import RPCError, RPCStatusCode

from harness import result_within, wait_until, worker
from test_cli import temporal

NOT_FOUND_MESSAGE = (
    "Can't find pending activity with such ID. Invalid activityID or activity already completed"
)

# What each activity run saw, by the test's key (activities run in the test's process).
seen: dict[str, list[str]] = {}


@activity.defn
async def heartbeat_until_told(key: str) -> str:
    """Heartbeats until the server says stop; then reports why, as the SDK tells it."""
    info = activity.info()
    seen.setdefault(key, []).append(f"attempt {info.attempt}")
    if info.attempt > 1:
        return f"attempt {info.attempt}"
    try:
        while True:
            activity.heartbeat("beat")
            await asyncio.sleep(0.1)
    except (CancelledError, asyncio.CancelledError):
        details = activity.cancellation_details()
        assert details is not None
        if details.reset:
            return "reset"
        seen[key].append(f"paused={details.paused}")
        raise


@activity.defn
async def record_run(key: str) -> str:
    seen.setdefault(key, []).append("ran")
    return "ran"


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self, name: str, key: str, queue: str) -> str:
        return await workflow.execute_activity(
            name,
            key,
            activity_id="act",
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=2
            ),
        )


async def pending(handle, activity_id: str = "act"):
    desc = await handle.describe()
    for a in desc.raw_description.pending_activities:
        if a.activity_id == activity_id:
            return a
    return None


def execution(handle) -> WorkflowExecution:
    return WorkflowExecution(workflow_id=handle.id, run_id=handle.result_run_id or "")


@pytest.mark.timeout(120)
async def test_a_paused_activity_waits_for_the_unpause(client, task_queue, new_id):
    """Paused while it waits for a worker: no worker gets it until it is unpaused."""
    key = str(uuid.uuid4())
    act_queue = f"{task_queue}-activities"
    async with worker(client, task_queue, workflows=[OneActivity]):
        handle = await client.start_workflow(
            OneActivity.run, args=["record_run", key, act_queue], id=new_id(),
            task_queue=task_queue,
        )  # fmt: skip
        await wait_until(lambda: pending(handle), timeout=20, what="the activity scheduled")
        await client.workflow_service.pause_activity(
            PauseActivityRequest(
                namespace=client.namespace, execution=execution(handle), id="act",
                identity="operator-1", reason="maintenance",
            )
        )  # fmt: skip
        info = await pending(handle)
        assert info.paused
        assert info.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        assert info.pause_info.manual.identity == "operator-1"
        assert info.pause_info.manual.reason == "maintenance"
        assert info.pause_info.HasField("pause_time")

        async with worker(client, act_queue, activities=[record_run]):
            # A worker polls the activity's queue now; the paused activity must not reach it.
            await asyncio.sleep(2)
            assert key not in seen
            info = await pending(handle)
            assert info.paused and not info.HasField("last_started_time")

            await client.workflow_service.unpause_activity(
                UnpauseActivityRequest(
                    namespace=client.namespace, execution=execution(handle), id="act"
                )
            )
            assert await result_within(handle, 30) == "ran"
    assert seen[key] == ["ran"]


@contextlib.asynccontextmanager
async def heartbeating(client, task_queue, key, workflow_id):
    """A worker, and a run of OneActivity whose activity is heartbeating (every 200 ms)."""
    async with worker(
        client, task_queue, workflows=[OneActivity], activities=[heartbeat_until_told],
        max_heartbeat_throttle_interval=timedelta(milliseconds=200),
        default_heartbeat_throttle_interval=timedelta(milliseconds=200),
    ):  # fmt: skip
        handle = await client.start_workflow(
            OneActivity.run, args=["heartbeat_until_told", key, task_queue], id=workflow_id,
            task_queue=task_queue,
        )  # fmt: skip

        async def running():
            info = await pending(handle)
            return info is not None and info.HasField("last_heartbeat_time")

        await wait_until(running, timeout=20, what="the activity heartbeating")
        yield handle


@pytest.mark.timeout(120)
async def test_cli_pause_tells_the_running_attempt_and_unpause_retries(
    server, client, task_queue, new_id
):
    """Paused while running: the worker hears it in a heartbeat response and gives up; the
    next attempt waits for `temporal activity unpause`."""
    key = str(uuid.uuid4())
    async with heartbeating(client, task_queue, key, new_id()) as handle:
        await temporal(
            server, "activity", "pause", "--workflow-id", handle.id, "--activity-id", "act",
            "--reason", "by the cli", "--namespace", client.namespace,
        )  # fmt: skip

        async def given_up():
            info = await pending(handle)
            # The failed attempt counts; attempt 2 waits, paused, for the unpause.
            if info is not None and info.attempt == 2 and info.paused:
                return info
            return None

        info = await wait_until(given_up, timeout=20, what="the attempt to give up")
        assert info.state == PendingActivityState.PENDING_ACTIVITY_STATE_PAUSED
        assert info.pause_info.manual.reason == "by the cli"
        assert seen[key] == ["attempt 1", "paused=True"]

        await temporal(
            server, "activity", "unpause", "--workflow-id", handle.id, "--activity-id", "act",
            "--namespace", client.namespace,
        )  # fmt: skip
        assert await result_within(handle, 30) == "attempt 2"


@pytest.mark.timeout(120)
async def test_cli_reset_tells_the_running_attempt(server, client, task_queue, new_id):
    key = str(uuid.uuid4())
    async with heartbeating(client, task_queue, key, new_id()) as handle:
        await temporal(
            server, "activity", "reset", "--workflow-id", handle.id, "--activity-id", "act",
            "--namespace", client.namespace,
        )  # fmt: skip
        assert await result_within(handle, 30) == "reset"


@pytest.mark.timeout(120)
async def test_cli_update_options_and_restore_the_original(server, client, task_queue, new_id):
    key = str(uuid.uuid4())
    act_queue = f"{task_queue}-nobody"
    async with worker(client, task_queue, workflows=[OneActivity]):
        handle = await client.start_workflow(
            OneActivity.run, args=["record_run", key, act_queue], id=new_id(),
            task_queue=task_queue,
        )  # fmt: skip
        await wait_until(lambda: pending(handle), timeout=20, what="the activity scheduled")
        await temporal(
            server, "activity", "update-options", "--workflow-id", handle.id,
            "--activity-id", "act", "--heartbeat-timeout", "7s",
            "--retry-maximum-attempts", "9", "--namespace", client.namespace,
        )  # fmt: skip
        opts = (await pending(handle)).activity_options
        assert opts.heartbeat_timeout.ToSeconds() == 7
        assert opts.retry_policy.maximum_attempts == 9
        assert opts.start_to_close_timeout.ToSeconds() == 30

        resp = await client.workflow_service.update_activity_options(
            UpdateActivityOptionsRequest(
                namespace=client.namespace, execution=execution(handle), id="act",
                restore_original=True,
            )
        )  # fmt: skip
        assert resp.activity_options.heartbeat_timeout.ToSeconds() == 5
        assert resp.activity_options.retry_policy.maximum_attempts == 2
        opts = (await pending(handle)).activity_options
        assert opts.heartbeat_timeout.ToSeconds() == 5
        assert opts.retry_policy.maximum_attempts == 2
        await handle.terminate()


@pytest.mark.timeout(120)
async def test_operator_errors_are_temporals(client, task_queue, new_id):
    act_queue = f"{task_queue}-nobody"
    async with worker(client, task_queue, workflows=[OneActivity]):
        handle = await client.start_workflow(
            OneActivity.run, args=["record_run", "k", act_queue], id=new_id(),
            task_queue=task_queue,
        )  # fmt: skip
        await wait_until(lambda: pending(handle), timeout=20, what="the activity scheduled")
        svc = client.workflow_service
        ns = client.namespace
        ex = execution(handle)

        async def status_of(call) -> tuple[RPCStatusCode, str]:
            with pytest.raises(RPCError) as info:
                await call
            return info.value.status, info.value.message

        assert await status_of(
            svc.pause_activity(PauseActivityRequest(namespace=ns, execution=ex, id="nope"))
        ) == (RPCStatusCode.NOT_FOUND, NOT_FOUND_MESSAGE)
        assert await status_of(
            svc.unpause_activity(UnpauseActivityRequest(namespace=ns, execution=ex, type="Nope"))
        ) == (RPCStatusCode.NOT_FOUND, NOT_FOUND_MESSAGE)
        assert await status_of(
            svc.reset_activity(ResetActivityRequest(namespace=ns, execution=ex))
        ) == (
            RPCStatusCode.INVALID_ARGUMENT,
            "Either Activity.Id or Activity.Type should be set on request.",
        )
        assert await status_of(
            svc.pause_activity(PauseActivityRequest(namespace=ns, id="act"))
        ) == (RPCStatusCode.INVALID_ARGUMENT, "WorkflowId is not set on request.")
        assert await status_of(
            svc.update_activity_options(
                UpdateActivityOptionsRequest(
                    namespace=ns,
                    execution=ex,
                    id="act",
                    activity_options=ActivityOptions(heartbeat_timeout=Duration(seconds=3)),
                )
            )
        ) == (RPCStatusCode.INVALID_ARGUMENT, "UpdateMask is not provided")
        assert await status_of(
            svc.update_activity_options(
                UpdateActivityOptionsRequest(
                    namespace=ns,
                    execution=ex,
                    id="act",
                    activity_options=ActivityOptions(
                        retry_policy=ApiRetryPolicy(backoff_coefficient=0.5)
                    ),
                    update_mask=FieldMask(paths=["retry_policy.backoff_coefficient"]),
                )
            )
        ) == (
            RPCStatusCode.INVALID_ARGUMENT,
            "BackoffCoefficient cannot be less than 1 on retry policy.",
        )

        # Pausing again: the same request id is a no-op, another is refused.
        await svc.pause_activity(
            PauseActivityRequest(namespace=ns, execution=ex, id="act", request_id="r1")
        )
        await svc.pause_activity(
            PauseActivityRequest(namespace=ns, execution=ex, id="act", request_id="r1")
        )
        assert await status_of(
            svc.pause_activity(
                PauseActivityRequest(namespace=ns, execution=ex, id="act", request_id="r2")
            )
        ) == (RPCStatusCode.FAILED_PRECONDITION, "activity is already paused")

        await handle.terminate()
        for call in (
            svc.pause_activity(PauseActivityRequest(namespace=ns, execution=ex, id="act")),
            svc.unpause_activity(UnpauseActivityRequest(namespace=ns, execution=ex, id="act")),
            svc.reset_activity(ResetActivityRequest(namespace=ns, execution=ex, id="act")),
        ):
            assert await status_of(call) == (
                RPCStatusCode.NOT_FOUND,
                "workflow execution already completed",
            )
