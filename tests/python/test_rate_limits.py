"""Per-namespace request rate limits (`frontend.namespaceRPS`): requests over the limit get
RESOURCE_EXHAUSTED "namespace rate limit exceeded" with a ResourceExhaustedFailure (cause
RPS_LIMIT), like the Temporal server; another namespace keeps its own budget."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import ResourceExhaustedCause
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import ServerProcess


async def burst(client: Client, namespace: str, n: int) -> list[RPCError]:
    errors = []
    for _ in range(n):
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace), retry=False
            )
        except RPCError as e:
            errors.append(e)
    return errors


@pytest.mark.timeout(90)
async def test_namespace_rate_limit(tmp_path: Path) -> None:
    srv = ServerProcess(
        harness.server_kind(),
        tmp_path / "server",
        extra_args=["--dynamic-config-value", "frontend.namespaceRPS=3"],
    )
    try:
        await srv.start()
        client = await srv.connect()
        errors = await burst(client, "default", 20)
        assert 12 <= len(errors) <= 18, f"{len(errors)} of 20 refused"
        e = errors[0]
        assert e.status == RPCStatusCode.RESOURCE_EXHAUSTED
        assert e.message == "namespace rate limit exceeded"
        assert e.grpc_status.details, "error details"
        failure = ResourceExhaustedFailure()
        assert e.grpc_status.details[0].Unpack(failure)
        assert failure.cause == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT

        # Another namespace has a budget of its own.
        other = harness.unique("ns")
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=other,
                workflow_execution_retention_period=timedelta(days=1),
            )
        )
        ok = 0
        for _ in range(2):
            try:
                await client.workflow_service.describe_namespace(
                    DescribeNamespaceRequest(namespace=other), retry=False
                )
                ok += 1
            except RPCError:
                pass
        assert ok >= 1, "the second namespace was starved by the first"
    finally:
        await srv.stop()
