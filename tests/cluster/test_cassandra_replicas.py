"""Cassandra replica faults: a three-node temper cluster on a three-node Apache Cassandra
(replication factor 3; temper reads and writes at LOCAL_QUORUM and runs its lightweight
transactions at LOCAL_SERIAL).

- One Cassandra node killed -9 under load: every workflow completes, each step once, temper
  keeps serving, and no node turns not-ready over the slow store calls that causes.
- Two nodes down: temper answers UNAVAILABLE (never a wrong answer, never a hang), and serves
  again when one of them returns.

It starts its own three Cassandra nodes on 127.0.0.2-4 with `scripts/cassandra`, so it runs
only when asked: `TEMPER_TEST_CASSANDRA_REPLICAS=1 pytest tests/cluster/test_cassandra_replicas.py`
(see docs/testing.md for how long it takes). Without that variable the module is reported as
skipped, with the reason.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from cluster import Cluster, Store, report
from test_cluster import Load, check_exactly_once, workers

REPO = Path(__file__).resolve().parents[2]
SCRIPT = [sys.executable, str(REPO / "scripts" / "cassandra")]

pytestmark = pytest.mark.skipif(
    os.environ.get("TEMPER_TEST_CASSANDRA_REPLICAS") != "1",
    reason="starts three Cassandra nodes: set TEMPER_TEST_CASSANDRA_REPLICAS=1 to run it",
)


def cassandra(*args: str, timeout: float = 600, prefix: Sequence[str] = ()) -> str:
    """`scripts/cassandra ARGS`, run after `prefix` (e.g. `ip netns exec NS`)."""
    out = subprocess.run(
        [*prefix, *SCRIPT, *args], check=False, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, f"scripts/cassandra {' '.join(args)}:\n{out.stdout}\n{out.stderr}"
    return out.stdout


@pytest.fixture(scope="module")
def cassandra3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """Three Cassandra nodes; yields their directory and contact points."""
    d = tmp_path_factory.mktemp("cassandra3")
    started = time.monotonic()
    try:
        points = cassandra("start", "--dir", str(d), "--nodes", "3").strip().splitlines()[-1]
        report("three Cassandra nodes ready (s)", round(time.monotonic() - started, 1))
        yield d, points
    finally:
        cassandra("stop", "--dir", str(d), timeout=120)


@pytest.fixture
async def cluster(tmp_path: Path, cassandra3: tuple[Path, str]) -> AsyncIterator[Cluster]:
    _, points = cassandra3
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    c = Cluster(workdir, ["a", "b", "c"], store=Store(workdir, points, replication_factor=3))
    try:
        yield c
    finally:
        c.kill_all()


async def start_raw(client: Client, task_queue: str) -> str:
    """StartWorkflowExecution without the client's retries; returns the run id."""
    wf_id = f"raw-{uuid.uuid4().hex[:8]}"
    resp = await client.workflow_service.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=wf_id,
            workflow_type=WorkflowType(name="Job"),
            task_queue=TaskQueue(name=task_queue),
            request_id=str(uuid.uuid4()),
        ),
        retry=False,
        timeout=timedelta(seconds=30),
    )
    return resp.run_id


@pytest.mark.timeout(900)
async def test_replica_faults(cluster: Cluster, cassandra3: tuple[Path, str]) -> None:
    d, _ = cassandra3
    await cluster.start(timeout=120)
    clients = [await Client.connect(cluster[n].address) for n in ("a", "b")]

    # One replica killed -9 under load: nothing lost, each step once.
    load = Load(clients[0], "tq-replica", "wfreplica")
    ws = workers(clients, "tq-replica")
    async with ws[0], ws[1]:
        running = asyncio.create_task(load.run(200, concurrency=40))
        await asyncio.sleep(3)
        assert not running.done()
        cassandra("kill", "--dir", str(d), "--node", "2")
        t = time.monotonic()
        await asyncio.wait_for(running, 300)
        report("200 workflows finished with one of three replicas killed (s)",
               round(time.monotonic() - t, 1))  # fmt: skip
    await check_exactly_once(clients[0], load)
    # Readiness did not flap on the slow store calls a dead replica causes (each node logs
    # every change of its readiness).
    for name in ("a", "b", "c"):
        flaps = [
            line
            for line in cluster[name].log_path.read_text(errors="replace").splitlines()
            if "node is not ready" in line and "store" in line
        ]
        assert not flaps, f"node {name} turned not ready with one replica down: {flaps[:3]}"

    # Two down: every answer is UNAVAILABLE, none is wrong.
    cassandra("kill", "--dir", str(d), "--node", "3")
    codes: list[RPCStatusCode] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(codes) < 6:
        try:
            await start_raw(clients[0], "tq-replica")
            pytest.fail("a workflow started with two of three replicas down")
        except RPCError as e:
            codes.append(e.status)
        try:
            await clients[1].workflow_service.describe_workflow_execution(
                DescribeWorkflowExecutionRequest(
                    namespace="default", execution=WorkflowExecution(workflow_id=load.ids[0])
                ),
                retry=False,
                timeout=timedelta(seconds=30),
            )
            pytest.fail("a LOCAL_QUORUM read succeeded with two of three replicas down")
        except RPCError as e:
            codes.append(e.status)
    report("answers with two replicas down", sorted({c.name for c in codes}))
    assert codes, "no answer within 60 s"
    assert all(c == RPCStatusCode.UNAVAILABLE for c in codes), [c.name for c in codes]

    # One returns: temper serves again, and what it had accepted is all there.
    cassandra("restart-node", "--dir", str(d), "--node", "3")
    t = time.monotonic()
    again = Load(clients[0], "tq-replica", "wfback")
    ws = workers(clients, "tq-replica")
    async with ws[0], ws[1]:
        await asyncio.wait_for(again.run(50, concurrency=10), 300)
    report("50 workflows after a replica returned (s)", round(time.monotonic() - t, 1))
    await check_exactly_once(clients[0], again)
    await check_exactly_once(clients[0], load)
