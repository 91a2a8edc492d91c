"""The Prometheus endpoint shows request, store and workflow-completion series after a few
workflows have run (temper only: the reference server's metrics have other names)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow

import harness
from harness import ServerProcess, free_port, unique, wait_until, worker

pytestmark = pytest.mark.skipif(
    harness.server_kind() == "temporal", reason="temper's own metric names"
)

WORKFLOWS = 3


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class GreetWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


@pytest.fixture
async def metrics_server(tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, int]]:
    port = free_port()
    srv = ServerProcess(
        harness.server_kind(), tmp_path / "server", extra_args=["--metrics-port", str(port)]
    )
    try:
        await srv.start()
        yield srv, port
    finally:
        await srv.stop()


def scrape(port: int) -> str:
    return harness.scrape_metrics(port)


def value(page: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for line in page.splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


async def test_metrics_after_workflows(
    metrics_server: tuple[ServerProcess, int], task_queue: str
) -> None:
    server, port = metrics_server
    client = await server.connect()
    async with worker(client, task_queue, workflows=[GreetWorkflow], activities=[greet]):
        for i in range(WORKFLOWS):
            result = await client.execute_workflow(
                GreetWorkflow.run, f"w{i}", id=unique("metrics"), task_queue=task_queue
            )
            assert result == f"hello w{i}"

    async def scraped() -> str | None:
        page = scrape(port)
        done = value(page, "temper_workflow_completed_total", status="completed")
        return page if done >= WORKFLOWS else None

    page = await wait_until(scraped, timeout=10, what="3 completed workflows in /metrics")
    starts = value(
        page,
        "temper_rpc_requests_total",
        service="WorkflowService",
        method="StartWorkflowExecution",
        namespace="default",
    )
    assert starts >= WORKFLOWS
    assert value(page, "temper_rpc_latency_seconds_count", method="StartWorkflowExecution") > 0
    assert value(page, "temper_persistence_latency_seconds_count", operation="commit") > 0
    assert value(page, "temper_persistence_requests_total") > 0
    assert value(page, "temper_workflow_completed_total", namespace="default") >= WORKFLOWS
    assert value(page, "temper_state_transitions_total", namespace="default") > 0
    assert value(page, "temper_shards_owned") > 0
    # No workflow ids in labels.
    assert "metrics-" not in page
