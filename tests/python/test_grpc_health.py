"""The gRPC health service (grpc.health.v1), as the SDKs' clients call it."""

from __future__ import annotations

import pytest
from temporalio.service import RPCError, RPCStatusCode


@pytest.mark.timeout(60)
async def test_health_check_from_an_sdk_client(client):
    """The SDK's client compresses its requests with gzip, health checks included; the
    health service takes them as Temporal's does."""
    # The default service is temporal.api.workflowservice.v1.WorkflowService.
    assert await client.service_client.check_health()
    assert await client.service_client.check_health(service="")
    with pytest.raises(RPCError) as err:
        await client.service_client.check_health(service="no.such.Service")
    assert err.value.status == RPCStatusCode.NOT_FOUND
