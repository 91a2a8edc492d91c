"""Authorization on a cluster (`[auth]` in each node's config, with TLS and internode mTLS).

Two nodes check tokens against a JWKS file and map the client certificate's common name to
permissions. A client with only its certificate (`default:write`) runs workflows whose calls
cross between the nodes (internode calls are not subject to tokens); a token's roles
decide what a caller with one may do; a call without either is refused.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cluster import Cluster
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from test_tls_cluster import ClusterTls, Double, run_workflows

import harness
from jwt_tokens import SigningKey

pytestmark = pytest.mark.skipif(
    harness.server_kind() == "temporal", reason="temper's cluster config ([auth])"
)


class AuthClusterTls(ClusterTls):
    """The TLS material of test_tls_cluster.py, and an `[auth]` section beside it."""

    def __init__(self, dir: Path) -> None:
        super().__init__(dir)
        self.key = SigningKey("cluster-key")
        self.jwks_path = dir / "jwks.json"
        self.jwks_path.write_text(json.dumps({"keys": [self.key.jwk()]}))

    def node_toml(self, name: str) -> str:
        return (
            super().node_toml(name)
            + f"""
[auth]
enabled = true
key_file = "{self.jwks_path}"
audit_log = true

[auth.cert_permissions]
"test-client" = ["default:write"]
"""
        )


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    c = Cluster(tmp_path / "cluster", ["a", "b"], tls=AuthClusterTls(tmp_path / "pki"))
    try:
        yield c
    finally:
        c.kill_all()


@pytest.mark.timeout(180)
async def test_tokens_and_certificates_on_a_cluster(cluster: Cluster) -> None:
    tls: AuthClusterTls = cluster.tls
    await cluster.start()
    a = await cluster.connect(cluster["a"])
    b = await cluster.connect(cluster["b"])
    await run_workflows(a, b, "cert", 8)

    # A token, when sent, is what counts: read may describe, not start.
    reader = await Client.connect(
        cluster["b"].address, api_key=tls.key.token(["default:read"]), tls=tls.client()
    )
    await reader.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    with pytest.raises(RPCError) as denied:
        await reader.start_workflow(
            Double.run, 1, id=harness.unique("denied"), task_queue=harness.unique("tq")
        )
    assert denied.value.status == RPCStatusCode.PERMISSION_DENIED

    # A certificate the config does not list, and no token: unauthenticated.
    stranger = tls.client_ca.issue(tls.dir / "stranger", ["stranger"])
    client = await Client.connect(cluster["a"].address, tls=tls.client(stranger))
    with pytest.raises(RPCError) as refused:
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace="default")
        )
    assert refused.value.status == RPCStatusCode.UNAUTHENTICATED
    assert "temper::audit" in cluster.logs()
