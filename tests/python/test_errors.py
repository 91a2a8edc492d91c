"""gRPC errors the SDK turns into exceptions: status codes must match Temporal's."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.service import RPCError, RPCStatusCode


@workflow.defn
class NeverRunWorkflow:
    @workflow.run
    async def run(self) -> None:
        raise AssertionError("no worker polls for this")


@pytest.mark.timeout(60)
async def test_unknown_namespace(server, task_queue, new_id):
    client = await server.connect(namespace="no-such-namespace")
    with pytest.raises(RPCError) as info:
        await client.start_workflow(NeverRunWorkflow.run, id=new_id(), task_queue=task_queue)
    assert info.value.status == RPCStatusCode.NOT_FOUND
    assert "no-such-namespace" in info.value.message

    with pytest.raises(RPCError) as info:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="no-such-namespace"), timeout=timedelta(seconds=10)
        )
    assert info.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(60)
async def test_empty_workflow_id(client, task_queue):
    with pytest.raises(RPCError) as info:
        await client.start_workflow(NeverRunWorkflow.run, id="", task_queue=task_queue)
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT


@pytest.mark.timeout(60)
async def test_empty_task_queue(client, new_id):
    with pytest.raises(RPCError) as info:
        await client.start_workflow(NeverRunWorkflow.run, id=new_id(), task_queue="")
    assert info.value.status == RPCStatusCode.INVALID_ARGUMENT


@pytest.mark.timeout(60)
async def test_reserved_task_queue_prefix(client, new_id):
    # `/_sys/<name>/<n>` names a queue's partitions; a user's queue may not look like one.
    for name in ("/_sys/orders/1", "/_sys/orders"):
        with pytest.raises(RPCError) as info:
            await client.start_workflow(NeverRunWorkflow.run, id=new_id(), task_queue=name)
        assert info.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert "reserved prefix /_sys/" in info.value.message


@pytest.mark.timeout(60)
async def test_describe_unknown_workflow(client):
    with pytest.raises(RPCError) as info:
        await client.get_workflow_handle("no-such-workflow").describe()
    assert info.value.status == RPCStatusCode.NOT_FOUND


@pytest.mark.timeout(60)
async def test_signal_unknown_workflow(client):
    with pytest.raises(RPCError) as info:
        await client.get_workflow_handle("no-such-workflow").signal("anything")
    assert info.value.status == RPCStatusCode.NOT_FOUND
