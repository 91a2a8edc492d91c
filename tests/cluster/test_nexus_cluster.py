"""Nexus operations on a cluster: caller workflows on every shard call a synchronous and an
asynchronous operation through an endpoint; the async operation's handler workflows run on
other shards, and their completion callbacks cross nodes. A node is killed (kill -9) while
the operations are in flight: every caller still completes with both results, and each
handler workflow ran once.

Measurements are printed as `REPORT ...` lines; run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import pytest
from nexusrpc.handler import StartOperationContext, service_handler, sync_operation
from temporalio import nexus, workflow
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.nexus import WorkflowRunOperationContext, workflow_run_operation

from cluster import Cluster, harness, report

CALLERS = 24
# How long each handler workflow runs: long enough for the kill to land while it does.
HANDLER_SLEEP = timedelta(seconds=4)


@workflow.defn
class SleepyHandler:
    @workflow.run
    async def run(self, name: str) -> str:
        await workflow.sleep(HANDLER_SLEEP)
        return f"handled {name}"


@nexusrpc.service
class Ops:
    echo: nexusrpc.Operation[str, str]
    slow: nexusrpc.Operation[str, str]


@service_handler(service=Ops)
class OpsHandler:
    @sync_operation
    async def echo(self, _ctx: StartOperationContext, name: str) -> str:
        return f"echo {name}"

    @workflow_run_operation
    async def slow(
        self, ctx: WorkflowRunOperationContext, name: str
    ) -> nexus.WorkflowHandle[str]:
        return await ctx.start_workflow(SleepyHandler.run, name, id=f"handler-{name}")


@dataclass
class Call:
    endpoint: str
    name: str


@workflow.defn
class NexusCaller:
    @workflow.run
    async def run(self, call: Call) -> list[str]:
        ops = workflow.create_nexus_client(service=Ops, endpoint=call.endpoint)
        timeout = timedelta(minutes=2)
        sync = await ops.execute_operation(
            Ops.echo, call.name, schedule_to_close_timeout=timeout
        )
        slow = await ops.execute_operation(
            Ops.slow, call.name, schedule_to_close_timeout=timeout
        )
        return [sync, slow]


async def create_endpoint(client: Client, name: str, task_queue: str) -> None:
    await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=name,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(
                        namespace=client.namespace, task_queue=task_queue
                    )
                ),
            )
        )
    )


async def count(client: Client, query: str) -> int:
    return (await client.count_workflows(query)).count


@pytest.mark.timeout(240)
async def test_nexus_operations_survive_a_node_killed_mid_flight(
    cluster: Cluster,
) -> None:
    await cluster.start()
    client = await Client.connect(cluster["a"].address)
    task_queue = harness.unique("nexus-tq")
    endpoint = f"ep-{task_queue}"
    await create_endpoint(client, endpoint, task_queue)
    prefix = harness.unique("caller")
    names = [f"{prefix}-{i}" for i in range(CALLERS)]

    async with harness.worker(
        client,
        task_queue,
        workflows=[NexusCaller, SleepyHandler],
        nexus_service_handlers=[OpsHandler()],
    ):
        started_at = time.time()
        handles: list[WorkflowHandle] = [
            await client.start_workflow(
                NexusCaller.run, Call(endpoint, name), id=name, task_queue=task_queue
            )
            for name in names
        ]

        # Every handler workflow started: the async operations are all in flight.
        handlers = f"WorkflowId STARTS_WITH 'handler-{prefix}-'"

        async def all_started() -> bool:
            return await count(client, handlers) == CALLERS

        await harness.wait_until(
            all_started, timeout=60, what="every handler workflow started"
        )
        report(
            "callers with their async operation in flight (s)",
            round(time.time() - started_at, 2),
        )

        killed_at = time.time()
        await cluster.kill("b")
        results = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=150
        )
        report(
            "every caller completed after the kill (s)",
            round(time.time() - killed_at, 2),
        )

    assert results == [[f"echo {n}", f"handled {n}"] for n in names]
    # Each operation started its handler workflow once, and each ran to completion.
    assert await count(client, handlers) == CALLERS
    assert (
        await count(client, handlers + " AND ExecutionStatus = 'Completed'") == CALLERS
    )
