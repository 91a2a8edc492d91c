"""Batch operations by query through the `temporal` CLI: `temporal workflow terminate|cancel|
signal --query`, `temporal batch list|describe|terminate`, on a few hundred workflows.

Runs against temper and the reference server, except the restart tests (temper only: they
restart the server mid-batch), on both of temper's stores. The workflows run no code: a workflow that nobody
polls stays Running, which is all a batch needs to act on; cancel and signal are checked in each
workflow's history.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.batch.v1 import BatchOperationTermination
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import (
    DescribeBatchOperationRequest,
    StartBatchOperationRequest,
    StopBatchOperationRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

import harness

N = 200


@workflow.defn
class WaitForever:
    """Completes its first workflow task, then waits (a reset point for a batch reset)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


async def cli(server: harness.ServerProcess, *args: str, timeout: float = 60) -> tuple[int, str]:
    """Run the `temporal` CLI against `server`; return its exit code and stdout + stderr."""
    return await harness.run_temporal_cli(server, *args, timeout=timeout)


async def cli_json(server: harness.ServerProcess, *args: str) -> Any:
    code, out = await cli(server, *args, "-o", "json")
    assert code == 0, f"temporal {' '.join(args)} exited {code}:\n{out}"
    return json.loads(out)


async def start_idle(client: Client, prefix: str, n: int, task_queue: str) -> None:
    """Start `n` workflows that no worker runs (they stay Running)."""
    for chunk in range(0, n, 50):
        await asyncio.gather(
            *(
                client.start_workflow("BatchTarget", id=f"{prefix}-{i}", task_queue=task_queue)
                for i in range(chunk, min(n, chunk + 50))
            )
        )


async def batch_command(server: harness.ServerProcess, *args: str) -> str:
    """Start a batch with the CLI and return its job id.

    The reference server counts running batches on its eventually consistent visibility, so a
    batch that just finished can still count against the limit of one there for a moment;
    temper's count reads its own writes, and a refusal there fails the test.
    """
    deadline = time.monotonic() + 10
    while True:
        code, out = await cli(server, *args, "--yes", "-o", "json")
        busy = "Max concurrent batch operations is reached" in out
        if code != 0 and busy and server.kind == "temporal" and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            continue
        assert code == 0, f"temporal {' '.join(args)} exited {code}:\n{out}"
        return json.loads(out)["batchJobId"]


async def wait_batch(server: harness.ServerProcess, job_id: str, timeout: float = 120) -> Any:
    """Describe the batch until it is no longer running; return the last description."""

    async def done() -> Any:
        d = await cli_json(server, "batch", "describe", "--job-id", job_id)
        return d if d["state"] != "BATCH_OPERATION_STATE_RUNNING" else None

    return await harness.wait_until(done, timeout=timeout, what=f"batch {job_id} to finish")


async def statuses(client: Client, prefix: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'"):
        name = wf.status.name if wf.status else "NONE"
        counts[name] = counts.get(name, 0) + 1
    return counts


async def count_events(client: Client, workflow_id: str, event_type: int) -> int:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return sum(1 for e in history.events if e.event_type == event_type)


@pytest.mark.timeout(240)
async def test_terminate_by_query_with_rps_describe_and_list(server, client, task_queue, new_id):
    prefix = new_id()
    await start_idle(client, prefix, N, task_queue)
    # Bystanders the query does not match stay running.
    other = new_id()
    await start_idle(client, other, 5, task_queue)

    started = time.monotonic()
    job = await batch_command(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "bulk cleanup", "--rps", "100",
    )  # fmt: skip
    d = await wait_batch(server, job)
    elapsed = time.monotonic() - started
    print(f"terminate batch of {N} at --rps 100: {elapsed:.2f}s from start to COMPLETED")
    # 200 operations at no more than 100 per second take at least ~2 s (the reference server
    # runs batches at 50 per second whatever --rps says).
    assert elapsed >= 1.5, f"200 operations at rps 100 finished in {elapsed:.2f}s"

    assert d["jobId"] == job
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED"
    assert d["operationType"] == "BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW"
    assert d["reason"] == "bulk cleanup"
    assert d["query"] == f"WorkflowId STARTS_WITH '{prefix}'"
    assert d["identity"], d
    assert int(d["totalOperationCount"]) == N
    assert int(d["completeOperationCount"]) == N
    assert int(d.get("failureOperationCount", 0)) == 0
    assert d.get("closeTime") and d.get("startTime")

    assert await statuses(client, prefix) == {"TERMINATED": N}
    assert await statuses(client, other) == {"RUNNING": 5}
    # Terminated once, with the batch's reason.
    history = await client.get_workflow_handle(f"{prefix}-7").fetch_history()
    terminated = [
        e
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    ]
    assert len(terminated) == 1
    assert terminated[0].workflow_execution_terminated_event_attributes.reason == "bulk cleanup"

    # The batch is listed by `temporal batch list`, and hidden from `temporal workflow list`.
    listed = await cli_json(server, "batch", "list")
    mine = [b for b in listed if b["jobId"] == job]
    assert len(mine) == 1, listed
    assert mine[0]["state"] == "BATCH_OPERATION_STATE_COMPLETED"
    assert mine[0]["operationType"] == "BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW"
    code, text = await cli(server, "batch", "describe", "--job-id", job)
    assert code == 0 and "Completed" in text and f"{N}/{N}" in text, text
    ids = [wf.id async for wf in client.list_workflows("")]
    assert job not in ids
    # With the namespace division named, the batch's system workflow is there.
    batch_runs = [
        wf
        async for wf in client.list_workflows(
            f"TemporalNamespaceDivision = 'TemporalBatcher' AND WorkflowId = '{job}'"
        )
    ]
    assert [w.workflow_type for w in batch_runs] == ["temporal-sys-batch-workflow-protobuf"]

    # A second terminate by the same query finds nothing still running.
    job2 = await batch_command(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "again",
    )  # fmt: skip
    d2 = await wait_batch(server, job2)
    assert d2["state"] == "BATCH_OPERATION_STATE_COMPLETED"
    assert int(d2.get("completeOperationCount", 0)) == 0


@pytest.mark.timeout(240)
async def test_default_rate_is_temporals(server, client, task_queue, new_id):
    """Without --rps a batch runs at Temporal's default of 50 operations per second."""
    prefix = new_id()
    n = 100
    await start_idle(client, prefix, n, task_queue)
    started = time.monotonic()
    job = await batch_command(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "default rate",
    )  # fmt: skip
    d = await wait_batch(server, job)
    elapsed = time.monotonic() - started
    print(f"terminate batch of {n} at the default rate: {elapsed:.2f}s from start to COMPLETED")
    assert int(d["completeOperationCount"]) == n
    # temper spaces operations 20 ms apart (1.98 s for 100); the reference server allows a
    # burst of 50 first (about 1 s for 100).
    assert elapsed >= (1.9 if server.kind == "temper" else 0.9), elapsed


@pytest.mark.timeout(240)
async def test_cancel_and_signal_by_query(server, client, task_queue, new_id):
    prefix = new_id()
    await start_idle(client, prefix, N, task_queue)

    job = await batch_command(
        server, "workflow", "signal", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--name", "poke", "--input", '{"n": 1}', "--reason", "wake up", "--rps", "400",
    )  # fmt: skip
    d = await wait_batch(server, job)
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert d["operationType"] == "BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW"
    assert int(d["completeOperationCount"]) == N

    job = await batch_command(
        server, "workflow", "cancel", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "wind down", "--rps", "400",
    )  # fmt: skip
    d = await wait_batch(server, job)
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert d["operationType"] == "BATCH_OPERATION_TYPE_CANCEL_WORKFLOW"
    assert int(d["completeOperationCount"]) == N

    for i in (0, 99, N - 1):
        wf_id = f"{prefix}-{i}"
        signaled = await count_events(
            client, wf_id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        )
        cancel = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED
        assert signaled == 1, wf_id
        assert await count_events(client, wf_id, cancel) == 1, wf_id
    # Cancellation is only a request: nothing runs these workflows, so they stay running.
    assert await statuses(client, prefix) == {"RUNNING": N}


@pytest.mark.timeout(240)
async def test_batch_terminate_stops_a_running_batch(server, client, task_queue, new_id):
    prefix = new_id()
    # The reference server runs every batch at 50 operations per second whatever --rps says:
    # enough targets that it too is still running when the batch is stopped.
    n = 400
    await start_idle(client, prefix, n, task_queue)
    job = await batch_command(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "slow", "--rps", "5",
    )  # fmt: skip

    async def some_done() -> Any:
        if (await statuses(client, prefix)).get("TERMINATED", 0) < 3:
            return None
        return await cli_json(server, "batch", "describe", "--job-id", job)

    running = await harness.wait_until(some_done, timeout=30, what="the batch to make progress")
    assert running["state"] == "BATCH_OPERATION_STATE_RUNNING"
    if server.kind == "temper":
        # temper reports progress as it goes; the reference server only from heartbeats it
        # throttles, so its counts often read 0 this early.
        assert int(running["totalOperationCount"]) == n

        async def counted() -> Any:
            d = await cli_json(server, "batch", "describe", "--job-id", job)
            return d if int(d.get("completeOperationCount", 0)) >= 3 else None

        progress = await harness.wait_until(counted, timeout=30, what="progress in describe")
        assert progress["state"] == "BATCH_OPERATION_STATE_RUNNING"

    code, out = await cli(server, "batch", "terminate", "--job-id", job, "--reason", "enough")
    assert code == 0, out
    d = await wait_batch(server, job, timeout=30)
    assert d["state"] == "BATCH_OPERATION_STATE_FAILED"
    # Stopped well before the end: most targets are still running a moment later.
    await asyncio.sleep(2)
    counts = await statuses(client, prefix)
    assert counts.get("RUNNING", 0) >= 100, counts
    assert counts.get("TERMINATED", 0) >= 3, counts


@pytest.mark.timeout(120)
async def test_validation_errors(server, client, task_queue, new_id):
    svc = client.workflow_service
    term = BatchOperationTermination(identity="me")

    async def error(req: Any, call: Any = svc.start_batch_operation) -> RPCError:
        with pytest.raises(RPCError) as e:
            await call(req)
        return e.value

    required = (
        "must provide required parameters: BatchType,Reason,Namespace, AND one of "
        "(Query OR Executions OR TargetExecutions)"
    )
    e = await error(StartBatchOperationRequest(namespace="default", job_id="j", reason="r"))
    assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, required)
    e = await error(
        StartBatchOperationRequest(
            namespace="default", job_id="j", visibility_query="WorkflowType='x'",
            termination_operation=term,
        )
    )  # fmt: skip
    assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, required)
    e = await error(
        StartBatchOperationRequest(
            namespace="default", reason="r", visibility_query="WorkflowType='x'",
            termination_operation=term,
        )
    )  # fmt: skip
    assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "JobId is not set on request.")
    e = await error(
        StartBatchOperationRequest(
            namespace="default", job_id="j", reason="r", visibility_query="WorkflowType='x' AND",
            termination_operation=term,
        )
    )  # fmt: skip
    assert e.status == RPCStatusCode.INVALID_ARGUMENT
    assert e.message.startswith("invalid visibility query: syntax error"), e.message

    # Describe and Stop need a job id (and Stop a reason); unknown jobs are NOT_FOUND.
    e = await error(
        DescribeBatchOperationRequest(namespace="default"), svc.describe_batch_operation
    )
    assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "JobId is not set on request.")
    e = await error(
        DescribeBatchOperationRequest(namespace="default", job_id=new_id()),
        svc.describe_batch_operation,
    )
    assert e.status == RPCStatusCode.NOT_FOUND
    e = await error(
        StopBatchOperationRequest(namespace="default", job_id="j"), svc.stop_batch_operation
    )
    assert (e.status, e.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "Reason is not set on request.",
    )
    e = await error(
        StopBatchOperationRequest(namespace="default", job_id=new_id(), reason="x"),
        svc.stop_batch_operation,
    )
    assert e.status == RPCStatusCode.NOT_FOUND

    # One batch at a time per namespace (Temporal's default limit); a job id is used once.
    prefix = new_id()
    await start_idle(client, prefix, 20, task_queue)
    job = new_id()
    slow = StartBatchOperationRequest(
        namespace="default", job_id=job, reason="r", termination_operation=term,
        visibility_query=f"WorkflowId STARTS_WITH '{prefix}'", max_operations_per_second=2,
    )  # fmt: skip
    await svc.start_batch_operation(slow)

    # The reference server's visibility is eventually consistent: wait until it lists the batch
    # (temper lists it at once), so its count of running batches includes it.
    async def listed() -> bool:
        return any(b["jobId"] == job for b in await cli_json(server, "batch", "list"))

    await harness.wait_until(listed, timeout=30, what="the batch in `temporal batch list`")
    e = await error(slow)
    assert e.status == RPCStatusCode.RESOURCE_EXHAUSTED
    assert e.message == "Max concurrent batch operations is reached"
    code, out = await cli(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "x", "--yes",
    )  # fmt: skip
    assert code != 0 and "Max concurrent batch operations is reached" in out, out
    await svc.stop_batch_operation(
        StopBatchOperationRequest(namespace="default", job_id=job, reason="stop")
    )
    e = await error(slow)
    assert e.status == RPCStatusCode.ALREADY_EXISTS, e.message

    # A query that parses but names an unknown attribute starts a batch that fails.
    bad = new_id()
    await svc.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default", job_id=bad, reason="r", termination_operation=term,
            visibility_query="NoSuchAttribute = 'x'",
        )
    )  # fmt: skip
    d = await wait_batch(server, bad, timeout=30)
    assert d["state"] == "BATCH_OPERATION_STATE_FAILED"
    assert d["identity"] == "me"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill", "stop"])
async def test_batch_resumes_after_restart(server, client, task_queue, new_id, how):
    """A batch resumes when the server starts again after SIGKILL, or after SIGTERM (which
    stops the batch between operations)."""
    if server.kind != "temper":
        pytest.skip("restarts the server mid-batch: temper only")
    prefix = new_id()
    n = 150
    await start_idle(client, prefix, n, task_queue)
    job = await batch_command(
        server, "workflow", "terminate", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "restart", "--rps", "20",
    )  # fmt: skip

    async def partway() -> Any:
        d = await cli_json(server, "batch", "describe", "--job-id", job)
        return d if int(d.get("completeOperationCount", 0)) >= 45 else None

    await harness.wait_until(partway, timeout=60, what="the batch to get partway")
    if how == "kill":
        await server.kill()
    else:
        stopping = time.monotonic()
        await server.stop()
        # Well before the harness's SIGKILL after 15 s: the batch did not hold shutdown up.
        assert time.monotonic() - stopping < 10
    await server.start()
    client = await server.connect()
    counts = await statuses(client, prefix)
    assert 0 < counts.get("RUNNING", 0) < n, f"not killed mid-batch: {counts}"

    d = await wait_batch(server, job, timeout=120)
    print(f"batch resumed after {how}: {d.get('completeOperationCount')} of {n} counted")
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert int(d.get("failureOperationCount", 0)) == 0
    assert await statuses(client, prefix) == {"TERMINATED": n}
    terminated = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    for i in range(n):
        assert await count_events(client, f"{prefix}-{i}", terminated) == 1, i
    # Every target is counted once: those done before the last checkpoint and those after it;
    # the few terminated between the checkpoint and the kill are closed, so the resumed batch
    # no longer matches them.
    assert int(d["completeOperationCount"]) <= n
    assert int(d["completeOperationCount"]) >= n - 40
    assert (await client.get_workflow_handle(job).describe()).status == (
        WorkflowExecutionStatus.COMPLETED
    )


@pytest.mark.timeout(240)
async def test_reset_and_delete_by_query(server, client, task_queue, new_id):
    prefix = new_id()
    n = 60
    async with harness.worker(client, task_queue, workflows=[WaitForever]):
        handles = [
            await client.start_workflow(WaitForever.run, id=f"{prefix}-{i}", task_queue=task_queue)
            for i in range(n)
        ]
        completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

        async def all_ran() -> bool:
            for h in handles:
                if await count_events(client, h.id, completed) < 1:
                    return False
            return True

        await harness.wait_until(all_ran, timeout=60, what="every workflow's first task")
        first_runs = {h.id: h.result_run_id for h in handles}

        job = await batch_command(
            server, "workflow", "reset", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
            "--type", "FirstWorkflowTask", "--reason", "redo",
        )  # fmt: skip
        d = await wait_batch(server, job)
        assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
        assert d["operationType"] == "BATCH_OPERATION_TYPE_RESET_WORKFLOW"
        assert int(d["completeOperationCount"]) == n, d
        for wf_id, run_id in first_runs.items():
            desc = await client.get_workflow_handle(wf_id).describe()
            assert desc.run_id != run_id, wf_id
            assert desc.status == WorkflowExecutionStatus.RUNNING
            old = await client.get_workflow_handle(wf_id, run_id=run_id).describe()
            assert old.status == WorkflowExecutionStatus.TERMINATED

    # Delete has no status filter: it takes the reset runs and their terminated first runs.
    job = await batch_command(
        server, "workflow", "delete", "--query", f"WorkflowId STARTS_WITH '{prefix}'",
        "--reason", "gone", "--rps", "400",
    )  # fmt: skip
    d = await wait_batch(server, job)
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert d["operationType"] == "BATCH_OPERATION_TYPE_DELETE_WORKFLOW"
    assert int(d["completeOperationCount"]) == 2 * n, d

    async def all_gone() -> bool:
        return await statuses(client, prefix) == {}

    await harness.wait_until(all_gone, timeout=60, what="the deleted workflows to leave the list")


@pytest.mark.timeout(120)
async def test_terminate_listed_executions(server, client, task_queue, new_id):
    """A batch over an explicit list of executions instead of a query."""
    prefix = new_id()
    await start_idle(client, prefix, 30, task_queue)
    job = new_id()
    await client.workflow_service.start_batch_operation(
        StartBatchOperationRequest(
            namespace="default",
            job_id=job,
            reason="listed",
            termination_operation=BatchOperationTermination(identity="lister"),
            executions=[WorkflowExecution(workflow_id=f"{prefix}-{i}") for i in range(0, 30, 3)],
        )
    )
    d = await wait_batch(server, job)
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert int(d["completeOperationCount"]) == 10, d
    assert await statuses(client, prefix) == {"TERMINATED": 10, "RUNNING": 20}
