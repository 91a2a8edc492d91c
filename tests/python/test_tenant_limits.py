"""Limits that keep one tenant from taking a shared cluster's resources: the visibility query
rate per namespace (Temporal's `frontend.namespaceRPS.visibility`), the bound on a
namespace's open workflows, and the frontend's fair admission (`max_inflight`). The last two
are temper's own (`temper.frontend.*` dynamic config keys on start-dev, `[frontend]` keys on
`temper server start`); the reference server has neither."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import ResourceExhaustedCause
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    CountWorkflowExecutionsRequest,
    DescribeNamespaceRequest,
    ListWorkflowExecutionsRequest,
    RegisterNamespaceRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

import harness
from harness import ServerProcess

temper_only = pytest.mark.skipif(
    harness.server_kind() != "temper",
    reason="temper's own limit: the Temporal server has no such setting",
)


@workflow.defn
class Waits:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@activity.defn
async def echo(x: int) -> int:
    return x


@workflow.defn
class Steps:
    @workflow.run
    async def run(self, n: int) -> int:
        total = 0
        for i in range(n):
            total += await workflow.execute_activity(
                echo, i, start_to_close_timeout=timedelta(seconds=30)
            )
        return total


def server(tmp_path: Path, *values: str) -> ServerProcess:
    args: list[str] = []
    for v in values:
        args += ["--dynamic-config-value", v]
    return ServerProcess(harness.server_kind(), tmp_path / "server", extra_args=args)


async def register(client: Client) -> str:
    name = harness.unique("ns")
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=name, workflow_execution_retention_period=timedelta(days=1)
        )
    )
    # A new namespace is usable once the frontend's namespace cache has it.
    await harness.wait_until(
        lambda: visible(client, name), timeout=30, what=f"namespace {name} usable"
    )
    return name


async def visible(client: Client, namespace: str) -> bool:
    try:
        await client.workflow_service.count_workflow_executions(
            CountWorkflowExecutionsRequest(namespace=namespace), retry=False
        )
        return True
    except RPCError:
        return False


def cause(e: RPCError) -> int:
    failure = ResourceExhaustedFailure()
    assert e.grpc_status.details, f"no error details on {e}"
    assert e.grpc_status.details[0].Unpack(failure)
    return failure.cause


@pytest.mark.timeout(120)
async def test_visibility_queries_are_limited_per_namespace(tmp_path: Path) -> None:
    srv = server(tmp_path, "frontend.namespaceRPS.visibility=2")
    try:
        await srv.start()
        client = await srv.connect()
        other = await register(client)
        await asyncio.sleep(1.5)  # a full bucket for "default"

        refused: list[RPCError] = []
        for _ in range(12):
            try:
                await client.workflow_service.list_workflow_executions(
                    ListWorkflowExecutionsRequest(namespace="default"), retry=False
                )
            except RPCError as e:
                refused.append(e)
        assert 6 <= len(refused) <= 11, f"{len(refused)} of 12 queries refused"
        e = refused[0]
        assert e.status == RPCStatusCode.RESOURCE_EXHAUSTED, e
        assert cause(e) == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT
        if harness.server_kind() == "temper":
            assert e.message == "namespace visibility rate limit exceeded"

        # Other calls of the same namespace are not counted against it...
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default"), retry=False
        )
        # ...and another namespace has a bucket of its own.
        await client.workflow_service.count_workflow_executions(
            CountWorkflowExecutionsRequest(namespace=other), retry=False
        )
    finally:
        await srv.stop()


@temper_only
@pytest.mark.timeout(120)
async def test_open_workflows_are_bounded_per_namespace(tmp_path: Path) -> None:
    srv = server(tmp_path, "temper.frontend.namespaceMaxOpenWorkflows=3")
    try:
        await srv.start()
        # A namespace of its own: on a shared store (the Cassandra run keeps one keyspace
        # for every test) "default" has other tests' running workflows.
        namespace = await register(await srv.connect())
        client = await srv.connect(namespace)
        tq = harness.unique("tq")
        handles = [
            await client.start_workflow(Waits.run, id=f"open-{i}-{uuid.uuid4()}", task_queue=tq)
            for i in range(3)
        ]

        # The SDK's client retries RESOURCE_EXHAUSTED by itself: ask once, without retries.
        def start_request() -> StartWorkflowExecutionRequest:
            return StartWorkflowExecutionRequest(
                namespace=namespace,
                workflow_id=f"open-raw-{uuid.uuid4()}",
                workflow_type=WorkflowType(name="Waits"),
                task_queue=TaskQueue(name=tq),
                request_id=str(uuid.uuid4()),
            )

        async def refused_once() -> RPCError | None:
            try:
                await client.workflow_service.start_workflow_execution(start_request(), retry=False)
                return None
            except RPCError as e:
                return e

        # The count is read again within a second; from then on a fourth start is refused.
        refused = await harness.wait_until(refused_once, timeout=20, what="a fourth start refused")
        assert refused.status == RPCStatusCode.RESOURCE_EXHAUSTED, refused
        assert "namespace open workflow limit exceeded" in refused.message, refused.message
        assert cause(refused) == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT

        # Closing one makes room again (once visibility and the next count have it).
        await handles[0].terminate()

        async def admitted() -> bool:
            e = await refused_once()
            assert e is None or e.status == RPCStatusCode.RESOURCE_EXHAUSTED, e
            return e is None

        await harness.wait_until(admitted, timeout=20, what="a start admitted again")
    finally:
        await srv.stop()


@temper_only
@pytest.mark.timeout(180)
@pytest.mark.parametrize(
    "setting", ["temper.frontend.maxInflight=1", "temper.frontend.overloadTargetLagMs=2"]
)
async def test_fair_admission_keeps_every_namespace_working(tmp_path: Path, setting: str) -> None:
    """With one request doing work at a time, or with overload control pacing new work,
    workflows of two namespaces started all at once still all finish (no call waits on a
    place it holds itself). Overload control's probe reports the node's scheduling lag."""
    metrics_port = harness.free_port()
    srv = ServerProcess(
        harness.server_kind(),
        tmp_path / "server",
        extra_args=["--dynamic-config-value", setting, "--metrics-port", str(metrics_port)],
    )
    try:
        await srv.start()
        client = await srv.connect()
        other_ns = await register(client)
        other = await Client.connect(client.service_client.config.target_host, namespace=other_ns)
        tq = harness.unique("tq")
        unsandboxed = UnsandboxedWorkflowRunner()
        async with (
            Worker(
                client,
                task_queue=tq,
                workflows=[Steps],
                activities=[echo],
                workflow_runner=unsandboxed,
            ),
            Worker(
                other,
                task_queue=tq,
                workflows=[Steps],
                activities=[echo],
                workflow_runner=unsandboxed,
            ),
        ):
            results = await asyncio.wait_for(
                asyncio.gather(
                    *[
                        c.execute_workflow(
                            Steps.run, 3, id=f"fair-{i}-{uuid.uuid4()}", task_queue=tq
                        )
                        for i in range(20)
                        for c in (client, other)
                    ]
                ),
                timeout=120,
            )
        assert results == [3] * 40
        text = await asyncio.to_thread(harness.scrape_metrics, metrics_port)
        lag = [
            ln for ln in text.splitlines() if ln.startswith("temper_frontend_scheduling_lag_ms ")
        ]
        if "overloadTargetLagMs" in setting:
            assert lag and float(lag[0].split()[1]) >= 0, text[:2000]
        else:
            assert not lag, "no probe runs without overload control"
    finally:
        await srv.stop()
