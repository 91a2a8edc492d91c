"""A cluster with TLS: clients use mutual TLS on the gRPC port, nodes call each other over
internode mTLS with their own CA, and a node whose certificate another CA signed is kept
out: it gets no shards, its calls are refused, and the others keep serving.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from pathlib import Path

import harness
import pytest
from temporalio import activity, workflow
from temporalio.client import Client, TLSConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from tls_certs import Ca, Leaf

from cluster import Cluster, Store

SERVER_NAME = "temper-internode"


@activity.defn
async def double(n: int) -> int:
    return 2 * n


@workflow.defn
class Double:
    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_activity(
            double, n, start_to_close_timeout=timedelta(seconds=20)
        )


class ClusterTls:
    """A frontend CA (server certificate for 127.0.0.1), a client CA, and an internode CA
    with one certificate per node; `rogue` nodes get theirs from another CA."""

    def __init__(self, dir: Path) -> None:
        dir.mkdir(parents=True, exist_ok=True)
        self.dir = dir
        self.server_ca = Ca("cluster frontend CA")
        self.server_ca_path = self.server_ca.write(dir / "frontend-ca.pem")
        self.frontend = self.server_ca.issue(dir / "frontend", ["localhost", "127.0.0.1"])
        self.client_ca = Ca("cluster client CA")
        self.client_ca_path = self.client_ca.write(dir / "client-ca.pem")
        self.client_leaf = self.client_ca.issue(dir / "client", ["test-client"])
        self.internode_ca = Ca("internode CA")
        self.internode_ca_path = self.internode_ca.write(dir / "internode-ca.pem")
        self.rogue_ca = Ca("rogue CA")
        self.rogues: set[str] = set()
        self.admin_leaf = self.internode_ca.issue(dir / "admin", [SERVER_NAME])

    def node_leaf(self, name: str) -> Leaf:
        ca = self.rogue_ca if name in self.rogues else self.internode_ca
        return ca.issue(self.dir / f"node-{name}", [SERVER_NAME])

    def node_toml(self, name: str) -> str:
        leaf = self.node_leaf(name)
        return f"""
[tls]
cert = "{self.frontend.cert}"
key = "{self.frontend.key}"
client_ca = "{self.client_ca_path}"

[tls.internode]
cert = "{leaf.cert}"
key = "{leaf.key}"
ca = "{self.internode_ca_path}"
server_name = "{SERVER_NAME}"
"""

    def client(self, identity: Leaf | None = None) -> TLSConfig:
        leaf = identity or self.client_leaf
        return TLSConfig(
            server_root_ca_cert=self.server_ca.pem(),
            domain="localhost",
            client_cert=leaf.cert_pem(),
            client_private_key=leaf.key_pem(),
        )

    def admin_args(self, leaf: Leaf | None = None) -> list[str]:
        leaf = leaf or self.admin_leaf
        return [
            "--tls-cert", str(leaf.cert), "--tls-key", str(leaf.key),
            "--tls-ca", str(self.internode_ca_path), "--tls-server-name", SERVER_NAME,
        ]  # fmt: skip


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    tls = ClusterTls(tmp_path / "pki")
    c = Cluster(tmp_path / "cluster", ["a", "b"], tls=tls)
    try:
        yield c
    finally:
        c.kill_all()


async def run_workflows(client: Client, workers_client: Client, prefix: str, n: int) -> None:
    """`n` workflows started through `client`, run by a worker on `workers_client`'s node:
    with the shards spread over the nodes, most calls cross from one node to the other."""
    tq = harness.unique(f"tq-{prefix}")
    async with Worker(
        workers_client,
        task_queue=tq,
        workflows=[Double],
        activities=[double],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handles = [
            await client.start_workflow(
                Double.run, i, id=harness.unique(f"{prefix}-{i}"), task_queue=tq
            )
            for i in range(n)
        ]
        results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 60)
    assert results == [2 * i for i in range(n)]


@pytest.mark.timeout(180)
async def test_internode_mtls_keeps_out_a_node_of_another_ca(
    cluster: Cluster, tmp_path: Path
) -> None:
    tls: ClusterTls = cluster.tls
    await cluster.start()
    owned = cluster.owned()
    assert owned["a"] and owned["b"], f"both nodes run shards: {owned}"

    a = await cluster.connect(cluster["a"])
    b = await cluster.connect(cluster["b"])
    await run_workflows(a, b, "before", 12)

    # Plaintext, and TLS without a client certificate, do not reach the frontend.
    await refused(Client.connect(cluster["a"].address))
    no_cert = TLSConfig(server_root_ca_cert=tls.server_ca.pem(), domain="localhost")
    await refused(Client.connect(cluster["a"].address, tls=no_cert))
    # A client of the frontend CA is not a node: the admin API refuses it.
    with pytest.raises(RuntimeError, match="only for temper nodes"):
        _admin_as(cluster, tls.client_leaf)

    # A node with a certificate from another CA, seeded with the cluster's gossip address.
    # It keeps its own store (what it could do with the cluster's store is not TLS's to stop).
    tls.rogues.add("rogue")
    rogue = cluster.add_node("rogue")
    rogue.store = Store(tmp_path / "rogue-store")
    rogue.store.db.parent.mkdir(parents=True, exist_ok=True)
    rogue.write_config(cluster.num_shards)
    rogue.launch()

    def logs() -> str:
        return "".join(cluster[n].log_path.read_text(errors="replace") for n in ("a", "b"))

    # Gossip has told both nodes about the rogue (chitchat is not authenticated)...
    await harness.wait_until(
        lambda: logs().count('"rogue"]') >= 2, timeout=30, what="the nodes hearing of the rogue"
    )
    # ...yet they route nothing to it: the shards stay on a and b.
    for _ in range(4):
        assert cluster.shards_placed(["a", "b"]), cluster.logs()
        await asyncio.sleep(1)
    assert "member left out of the rings" in logs()
    # Its RPCs are refused: its certificate does not open the internal services.
    with pytest.raises(RuntimeError):
        _admin_as(cluster, rogue_leaf(tls))
    assert "panicked" not in rogue.log_path.read_text(errors="replace")

    await run_workflows(a, b, "with-rogue", 12)
    await run_workflows(b, a, "with-rogue-b", 6)

    # A graceful leave hands b's shards to a over internode TLS; a serves alone.
    await cluster.stop("b")
    await cluster.wait_balanced(["a"], timeout=30)
    await run_workflows(a, a, "after-leave", 6)


async def refused(connecting: Awaitable[Client]) -> None:
    """Fail the test if `connecting` gets through (the SDK raises RuntimeError or RPCError)."""
    try:
        await asyncio.wait_for(connecting, 10)
    except Exception:  # noqa: BLE001 - any refusal will do
        return
    pytest.fail("the client got through; it should have been refused")


def rogue_leaf(tls: ClusterTls) -> Leaf:
    return Leaf(cert=tls.dir / "node-rogue.pem", key=tls.dir / "node-rogue.key")


def _admin_as(cluster: Cluster, leaf: Leaf) -> object:
    """`temper admin cluster members` on node a, presenting `leaf`."""
    import json
    import subprocess

    tls: ClusterTls = cluster.tls
    out = subprocess.run(
        [str(harness.temper_bin()), "admin", "--address", cluster["a"].address, "-o", "json",
         *tls.admin_args(leaf), "cluster", "members"],
        capture_output=True, timeout=20, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"temper admin refused: {out.stderr.decode()}")
    return json.loads(out.stdout)
