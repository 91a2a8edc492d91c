"""A temper cluster of several processes on 127.0.0.1 sharing one store: a SQLite file, or,
with ``TEMPER_TEST_STORE=cassandra`` and ``TEMPER_CASSANDRA_CONTACT_POINTS``, a fresh keyspace
of that Cassandra cluster per test (replication ``TEMPER_CASSANDRA_REPLICATION_FACTOR``,
default 1), created with ``temper schema setup`` (kept: the test node is thrown away).

Each node is `temper server start --config node-X.toml` with every role, its own gRPC and
gossip port, and the others as gossip seeds. Nodes can be stopped (SIGTERM: graceful
leave), killed (SIGKILL), paused (SIGSTOP), resumed and started again; `admin()` asks a
node for its view of the cluster through `temper admin`.

With a `netns.Network`, each node runs in a network namespace of its own, on an address of
that network instead of 127.0.0.1, so a test can cut the links between nodes
(test_partitions.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))

import harness  # noqa: E402
from harness import free_port  # noqa: E402
from netns import Host, Network
from temporalio.client import Client  # noqa: E402

NUM_SHARDS = 16


def report(what: str, value: object) -> None:
    """A measurement in the test output (run pytest with -s, or read it on failure)."""
    print(f"REPORT {what}: {value}", flush=True)


class Store:
    """Where a cluster keeps its state; `toml()` is the `[store]` section of a node's config."""

    def __init__(
        self,
        workdir: Path,
        cassandra: str | None = None,
        replication_factor: int | None = None,
        kind: str | None = None,
    ) -> None:
        """The store the environment selects (or `kind`), or the Cassandra cluster at
        `cassandra` (contact points) with a new keyspace of `replication_factor` copies."""
        self.kind = "cassandra" if cassandra else kind or harness.store_kind()
        self.db = workdir / "cluster.sqlite"
        self.keyspace = ""
        self.contact_points: list[str] = []
        if self.kind == "cassandra":
            points = cassandra or harness.cassandra_contact_points()
            self.contact_points = [p.strip() for p in points.split(",") if p.strip()]
            self.keyspace = "cluster_" + uuid.uuid4().hex[:12]
            harness.cassandra_schema_setup(self.keyspace, replication_factor, points)

    def toml(self) -> str:
        if self.kind == "sqlite":
            return f'[store]\nkind = "sqlite"\npath = "{self.db}"\n'
        points = ", ".join(f'"{p}"' for p in self.contact_points)
        return (
            '[store]\nkind = "cassandra"\n\n[store.cassandra]\n'
            f'contact_points = [{points}]\nkeyspace = "{self.keyspace}"\n'
        )


def free_udp_port() -> int:
    import socket

    while True:
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


class Node:
    def __init__(
        self,
        name: str,
        workdir: Path,
        store: Store,
        seeds: list[str],
        roles: list[str] | None = None,
        host: Host | None = None,
    ) -> None:
        """`host`: the network namespace the node runs in, and its address there (default:
        the test's own namespace, on 127.0.0.1)."""
        self.name = name
        self.host = host
        self.roles = roles or ["frontend", "history", "matching"]
        self.workdir = workdir
        self.grpc_port = free_port()
        self.gossip_port = free_udp_port()
        self.config_path = workdir / f"node-{name}.toml"
        self.log_path = workdir / f"node-{name}.log"
        self.store = store
        self.seeds = seeds
        self.proc: subprocess.Popen[bytes] | None = None
        self.paused = False
        # More config, appended to the node's file (e.g. its `[tls]` sections).
        self.extra_toml = ""

    @property
    def ip(self) -> str:
        return self.host.address if self.host is not None else "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.grpc_port}"

    @property
    def gossip(self) -> str:
        return f"{self.ip}:{self.gossip_port}"

    def write_config(self, num_shards: int) -> None:
        seeds = ", ".join(f'"{s}"' for s in self.seeds if s != self.gossip)
        self.config_path.write_text(
            f"""
[node]
name = "{self.name}"
roles = [{", ".join(f'"{r}"' for r in self.roles)}]
grpc_address = "{self.address}"
membership_address = "{self.gossip}"

[cluster]
num_shards = {num_shards}
seeds = [{seeds}]
dead_after_ms = 2000
ring_debounce_ms = 300

{self.store.toml()}
[log]
level = "info"
{self.extra_toml}"""
        )

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def launch(self) -> None:
        assert not self.running(), f"node {self.name} already running"
        cmd = [str(harness.temper_bin()), "server", "start", "--config", str(self.config_path)]
        if self.host is not None:
            cmd = [*self.host.exec_prefix(), *cmd]
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== launch: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=harness._die_with_parent if harness._PRCTL is not None else None,  # noqa: PLW1509, SLF001
            )
        self.paused = False

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.kill(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    async def wait_exit(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


class Cluster:
    def __init__(
        self,
        workdir: Path,
        names: list[str],
        num_shards: int = NUM_SHARDS,
        roles: dict[str, list[str]] | None = None,
        store: Store | None = None,
        tls: Any = None,
        network: Network | None = None,
    ) -> None:
        """`tls`: a `ClusterTls` (test_tls_cluster.py) whose `node_toml(name)` each node's
        config gets, whose `client()` clients connect with and `admin_args()` `temper
        admin` runs with. `network`: each node runs on a host of its own in it (the host
        named like the node, made when missing)."""
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.num_shards = num_shards
        self.store = store or Store(workdir)
        self.tls = tls
        self.network = network
        self.nodes: dict[str, Node] = {}
        for name in names:
            self.add_node(name, (roles or {}).get(name))

    def add_node(self, name: str, roles: list[str] | None = None) -> Node:
        host = None
        if self.network is not None:
            host = self.network.hosts.get(name) or self.network.add_host(name, 11 + len(self.nodes))
        node = Node(name, self.workdir, self.store, [], roles, host)
        if self.tls is not None:
            node.extra_toml = self.tls.node_toml(name)
        self.nodes[name] = node
        seeds = [n.gossip for n in self.nodes.values()]
        for n in self.nodes.values():
            n.seeds = seeds
            n.write_config(self.num_shards)
        return node

    def __getitem__(self, name: str) -> Node:
        return self.nodes[name]

    def running(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.running() and not n.paused]

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *names: str, timeout: float = 30) -> None:
        """Launch nodes (all if none named) and wait until every running node sees the
        same members and the shards are all owned."""
        for name in names or list(self.nodes):
            self.nodes[name].launch()
        for name in names or list(self.nodes):
            await self.wait_serving(self.nodes[name], timeout)
        await self.wait_balanced(timeout=timeout)

    async def wait_serving(self, node: Node, timeout: float) -> None:
        async def up() -> bool:
            if node.proc is not None and node.proc.poll() is not None:
                raise RuntimeError(f"node {node.name} exited:\n{node.log_tail()}")
            await asyncio.wait_for(self.connect(node), timeout=3)
            return True

        await harness.wait_until(up, timeout=timeout, what=f"node {node.name} serving")

    async def connect(self, node: Node, namespace: str = "default") -> Client:
        """A client of `node` (over TLS when the cluster has it)."""
        tls = self.tls.client() if self.tls is not None else False
        return await Client.connect(node.address, namespace=namespace, tls=tls)

    async def stop(self, name: str, timeout: float = 20) -> float:
        """SIGTERM (graceful leave); the seconds it took to exit."""
        node = self.nodes[name]
        started = time.monotonic()
        node.signal(signal.SIGTERM)
        if not await node.wait_exit(timeout):
            node.signal(signal.SIGKILL)
            await node.wait_exit(10)
            raise AssertionError(f"node {name} did not exit within {timeout}s of SIGTERM")
        return time.monotonic() - started

    async def kill(self, name: str) -> None:
        node = self.nodes[name]
        node.signal(signal.SIGKILL)
        assert await node.wait_exit(10)

    def pause(self, name: str) -> None:
        self.nodes[name].signal(signal.SIGSTOP)
        self.nodes[name].paused = True

    def resume(self, name: str) -> None:
        self.nodes[name].signal(signal.SIGCONT)
        self.nodes[name].paused = False

    def kill_all(self) -> None:
        for n in self.nodes.values():
            if n.running():
                n.signal(signal.SIGCONT)
                n.signal(signal.SIGKILL)
                try:
                    assert n.proc is not None
                    n.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass

    # ------------------------------------------------------------------ admin

    def admin(self, node: Node, *args: str) -> Any:
        cmd = [str(harness.temper_bin()), "admin", "--address", node.address, "-o", "json"]
        if self.tls is not None:
            cmd += self.tls.admin_args()
        out = subprocess.run(
            [*cmd, *args],
            capture_output=True,
            timeout=10,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"temper admin {' '.join(args)} failed: {out.stderr.decode()}")
        return json.loads(out.stdout)

    def owned(self) -> dict[str, list[int]]:
        """Shards each running node runs now."""
        return {n.name: self.admin(n, "cluster", "members")["owned_shards"] for n in self.running()}

    def shards_placed(self, among: list[str]) -> bool:
        """Every shard runs on exactly one of `among`, and each of them agrees on the members."""
        owned = {name: self.admin(self.nodes[name], "cluster", "members") for name in among}
        all_shards: list[int] = []
        for r in owned.values():
            all_shards.extend(r["owned_shards"])
            names = sorted(m["name"] for m in r["members"] if m["status"] == "alive")
            if names != sorted(among):
                return False
            ring = sorted(s for m in r["members"] for s in m["shards"])
            if ring != list(range(1, self.num_shards + 1)):
                return False
        return sorted(all_shards) == list(range(1, self.num_shards + 1))

    async def wait_balanced(self, among: list[str] | None = None, timeout: float = 30) -> float:
        """Wait until the shards are placed among `among` (default: running nodes); the
        seconds it took."""
        names = among or [n.name for n in self.running()]
        started = time.monotonic()
        await harness.wait_until(
            lambda: self.shards_placed(names),
            timeout=timeout,
            what=f"all {self.num_shards} shards owned by {names}",
            interval=0.2,
        )
        return time.monotonic() - started

    def logs(self) -> str:
        return "\n".join(f"--- node {n.name}\n{n.log_tail()}" for n in self.nodes.values())
