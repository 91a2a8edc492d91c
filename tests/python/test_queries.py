"""Queries: answered by the sticky worker that caches the workflow, by a new worker that
replays the full history, on closed workflows, with reject conditions, failing handlers, no
worker at all, and while signals arrive; plus `temporal workflow query`."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.errordetails.v1 import QueryFailedFailure
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.workflowservice.v1 import QueryWorkflowRequest
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
)
from temporalio.common import QueryRejectCondition
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import result_within, worker
from test_cli import temporal

# Workflow instances created per workflow id: 1 means every query was answered by the one
# cached instance; a replay (a worker without the workflow in cache) adds one.
INSTANCES: dict[str, int] = {}

# A query nobody answers fails when its deadline passes: the client's own timer (CANCELLED,
# "Timeout expired") or the server's answer at that moment (DEADLINE_EXCEEDED), whichever
# lands first.
TIMED_OUT = (RPCStatusCode.CANCELLED, RPCStatusCode.DEADLINE_EXCEEDED)


@workflow.defn
class Tally:
    """Collects signals until told to finish; queries read what it has."""

    def __init__(self) -> None:
        wf_id = workflow.info().workflow_id
        INSTANCES[wf_id] = INSTANCES.get(wf_id, 0) + 1
        self.values: list[str] = []
        self.done = False

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def get_values(self) -> list[str]:
        return self.values

    @workflow.query
    def describe(self, prefix: str) -> str:
        return f"{prefix}: {len(self.values)} values"

    @workflow.query
    def broken(self) -> str:
        raise ValueError("the query handler refuses")

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.done)
        return self.values


async def started_with(client: Client, task_queue: str, wf_id: str, *values: str):
    """Start a Tally, signal `values`, and wait until a workflow task has seen them all."""
    handle = await client.start_workflow(Tally.run, id=wf_id, task_queue=task_queue)
    for v in values:
        await handle.signal(Tally.add, v)

    async def seen() -> bool:
        return await handle.query(Tally.get_values) == list(values)

    await harness.wait_until(seen, timeout=20, what="the signals to be processed")
    return handle


@pytest.mark.timeout(60)
async def test_query_running_workflow_answered_by_its_sticky_worker(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, wf_id, "a", "b")
        assert await handle.query(Tally.get_values) == ["a", "b"]
        assert await handle.query(Tally.describe, "now") == "now: 2 values"
        # The worker answered from its cache every time: no replay.
        assert INSTANCES[wf_id] == 1
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == ["a", "b"]


@pytest.mark.timeout(90)
async def test_query_after_worker_restart_replays_full_history(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, wf_id, "x", "y", "z")
    assert INSTANCES[wf_id] == 1
    # A new worker has nothing cached: the query must come with the whole history.
    async with worker(client, task_queue, workflows=[Tally]):
        assert await handle.query(Tally.get_values) == ["x", "y", "z"]
        assert INSTANCES[wf_id] == 2, "the new worker replayed the workflow"
        # And the workflow carries on with that worker.
        await handle.signal(Tally.add, "w")
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == ["x", "y", "z", "w"]


# A worker in its own process, so a test can kill it without a graceful shutdown.
WORKER_PROCESS = """
import asyncio, sys
from datetime import timedelta
sys.path.insert(0, {path!r})
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from test_queries import Tally

async def main():
    client = await Client.connect({address!r})
    worker = Worker(
        client, task_queue={task_queue!r}, workflows=[Tally],
        workflow_runner=UnsandboxedWorkflowRunner(),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds={sticky_s}),
    )
    await worker.run()

asyncio.run(main())
"""


@pytest.mark.timeout(90)
async def test_query_after_sticky_worker_was_killed_falls_back_to_the_normal_queue(
    server, client, task_queue, new_id
):
    wf_id = new_id()
    script = WORKER_PROCESS.format(
        path=str(Path(__file__).parent), address=server.address, task_queue=task_queue, sticky_s=2
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        handle = await started_with(client, task_queue, wf_id, "k")
    finally:
        proc.kill()
        await proc.wait()
    # The killed worker still counts as the workflow's sticky worker: the query waits for it
    # for the sticky schedule-to-start timeout (2 s), then goes to the normal queue, where a
    # new worker replays the full history.
    async with worker(client, task_queue, workflows=[Tally]):
        began = time.monotonic()
        assert await handle.query(Tally.get_values, rpc_timeout=timedelta(seconds=20)) == ["k"]
        elapsed = time.monotonic() - began
        assert 1.5 < elapsed < 10, elapsed
        assert INSTANCES[wf_id] == 1, "replayed here (the killed process had the first instance)"
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == ["k"]


@pytest.mark.timeout(60)
async def test_query_completed_workflow(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, new_id(), "done")
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == ["done"]
        assert await handle.query(Tally.get_values) == ["done"]
        # A worker that never saw it replays it to answer.
    async with worker(client, task_queue, workflows=[Tally]):
        assert await handle.query(Tally.describe, "closed") == "closed: 1 values"


@pytest.mark.timeout(60)
async def test_reject_conditions(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=[Tally]):
        running = await started_with(client, task_queue, new_id(), "r")
        # An open workflow is never rejected.
        assert await running.query(
            Tally.get_values, reject_condition=QueryRejectCondition.NOT_OPEN
        ) == ["r"]

        completed = await started_with(client, task_queue, new_id(), "c")
        await completed.signal(Tally.finish)
        await result_within(completed, 30)
        with pytest.raises(WorkflowQueryRejectedError) as err:
            await completed.query(Tally.get_values, reject_condition=QueryRejectCondition.NOT_OPEN)
        assert err.value.status == WorkflowExecutionStatus.COMPLETED
        # Completed cleanly: NOT_COMPLETED_CLEANLY lets the query through.
        assert await completed.query(
            Tally.get_values, reject_condition=QueryRejectCondition.NOT_COMPLETED_CLEANLY
        ) == ["c"]

        terminated = await started_with(client, task_queue, new_id(), "t")
        await terminated.terminate("enough")
        with pytest.raises(WorkflowQueryRejectedError) as err:
            await terminated.query(
                Tally.get_values, reject_condition=QueryRejectCondition.NOT_COMPLETED_CLEANLY
            )
        assert err.value.status == WorkflowExecutionStatus.TERMINATED
        # Without a reject condition a terminated workflow is still queryable.
        assert await terminated.query(Tally.get_values) == ["t"]
        await running.signal(Tally.finish)


@pytest.mark.timeout(60)
async def test_failing_query_handler_fails_the_query(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, new_id())
        with pytest.raises(WorkflowQueryFailedError) as err:
            await handle.query(Tally.broken)
        assert "the query handler refuses" in err.value.message
        with pytest.raises(WorkflowQueryFailedError) as err:
            await handle.query("no_such_query")
        assert "no_such_query" in err.value.message
        # On the wire: INVALID_ARGUMENT with a QueryFailedFailure carrying the failure.
        req = QueryWorkflowRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=handle.id),
            query=WorkflowQuery(query_type="broken"),
        )
        with pytest.raises(RPCError) as raw:
            await client.workflow_service.query_workflow(req)
        assert raw.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert "the query handler refuses" in raw.value.message
        details = raw.value.grpc_status.details
        assert len(details) == 1 and details[0].Is(QueryFailedFailure.DESCRIPTOR), details
        # The workflow is unharmed.
        assert await handle.query(Tally.get_values) == []
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == []


async def query_once(client: Client, workflow_id: str, timeout_s: float) -> tuple[RPCError, float]:
    """One QueryWorkflow call without the SDK's retries (it retries DEADLINE_EXCEEDED with a
    fresh timeout); returns its error and how long it took."""
    req = QueryWorkflowRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id),
        query=WorkflowQuery(query_type="get_values"),
    )
    began = time.monotonic()
    with pytest.raises(RPCError) as err:
        await client.workflow_service.query_workflow(
            req, retry=False, timeout=timedelta(seconds=timeout_s)
        )
    return err.value, time.monotonic() - began


@pytest.mark.timeout(60)
async def test_query_without_a_worker_fails_at_the_deadline(client, task_queue, new_id):
    # Never had a worker: the first workflow task has not run, so nobody can answer.
    never = await client.start_workflow(Tally.run, id=new_id(), task_queue=task_queue)
    err, elapsed = await query_once(client, never.id, 3)
    assert err.status in TIMED_OUT, err
    assert 2.5 < elapsed < 4.5, elapsed

    # Had a worker that has stopped since (and polled recently, so the query waits).
    async with worker(client, task_queue, workflows=[Tally]):
        stopped = await started_with(client, task_queue, new_id(), "s")
    err, elapsed = await query_once(client, stopped.id, 3)
    assert err.status in TIMED_OUT, err
    assert 2.5 < elapsed < 4.5, elapsed
    # Through the SDK it is an RPC error too (after its retries).
    with pytest.raises(RPCError) as sdk_err:
        await stopped.query(Tally.get_values, rpc_timeout=timedelta(seconds=1))
    assert sdk_err.value.status in TIMED_OUT, sdk_err.value


@pytest.mark.timeout(90)
async def test_query_on_a_queue_nobody_polled_for_20s_fails_early(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, new_id(), "q")
    # Temporal's matching gives up a second before the deadline when nobody polled the
    # queue for 20 s: the worker is probably down.
    await asyncio.sleep(21)
    err, elapsed = await query_once(client, handle.id, 3)
    assert err.status == RPCStatusCode.FAILED_PRECONDITION, err
    assert "no poller seen for task queue recently" in err.message, err.message
    assert 1.5 < elapsed < 2.8, elapsed


@pytest.mark.timeout(60)
async def test_query_bad_requests(server, client, task_queue, new_id):
    with pytest.raises(RPCError) as err:
        await client.get_workflow_handle(new_id()).query(Tally.get_values)
    assert err.value.status == RPCStatusCode.NOT_FOUND

    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, new_id())
        # An empty query type is INVALID_ARGUMENT, which the SDK reports as a failed query.
        with pytest.raises(WorkflowQueryFailedError) as failed:
            await handle.query("")
        assert "QueryType" in failed.value.message
        other = await server.connect(namespace="no-such-namespace")
        with pytest.raises(RPCError) as err:
            await other.get_workflow_handle(handle.id).query(Tally.get_values)
        assert err.value.status == RPCStatusCode.NOT_FOUND
        await handle.signal(Tally.finish)


@pytest.mark.timeout(90)
async def test_queries_while_signals_arrive(client, task_queue, new_id):
    wf_id = new_id()
    count = 40
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, wf_id)

        async def signal_all() -> None:
            for i in range(count):
                await handle.signal(Tally.add, str(i))

        seen: list[list[str]] = []

        async def query_until_all() -> None:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                values = await handle.query(Tally.get_values)
                seen.append(values)
                if len(values) == count:
                    return
            raise TimeoutError("the queries never saw every signal")

        await asyncio.gather(signal_all(), query_until_all())
        # Every answer is a prefix of the signal order: a consistent state, never torn.
        expected = [str(i) for i in range(count)]
        for values in seen:
            assert values == expected[: len(values)], values
        lengths = [len(v) for v in seen]
        assert lengths == sorted(lengths), "answers never go back in time"
        assert INSTANCES[wf_id] == 1
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == expected


@pytest.mark.timeout(60)
async def test_a_query_sees_every_signal_sent_before_it(client, task_queue, new_id):
    # Read-after-write: the signal's workflow task is still pending when the query arrives;
    # the answer must include it (Temporal holds the query until that task completes).
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, new_id())
        sent: list[str] = []
        for i in range(10):
            sent.append(str(i))
            await handle.signal(Tally.add, str(i))
            assert await handle.query(Tally.get_values) == sent
        await handle.signal(Tally.finish)
        assert await result_within(handle, 30) == sent


@pytest.mark.timeout(90)
async def test_cli_workflow_query(server, client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[Tally]):
        handle = await started_with(client, task_queue, wf_id, "cli")
        out = await temporal(
            server, "workflow", "query", "--workflow-id", wf_id, "--namespace", "default",
            "--type", "describe", "--input", '"via"',
        )  # fmt: skip
        print(out)
        assert "via: 1 values" in out
        await handle.signal(Tally.finish)
        await result_within(handle, 30)
        out = await temporal(
            server, "workflow", "query", "--workflow-id", wf_id, "--namespace", "default",
            "--type", "get_values", "--output", "json",
        )  # fmt: skip
        print(out)
        assert "cli" in out
