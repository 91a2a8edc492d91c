"""Network partitions: a three-node temper cluster whose nodes each run in a network
namespace of their own (netns.py), with one node, c, cut off and healed, twice, under load.

- `test_cut_from_peers[sqlite]`: c loses a and b but keeps the store (a SQLite file, reached
  through the filesystem).
- `test_cut_from_peers[cassandra]` and `test_cut_from_peers_and_store[cassandra]`: the store
  is Apache Cassandra running in a namespace of its own on the same network (one node, or
  three with replication factor 3), so c can lose it too. Opt-in, see below.

Each round measures, from the cut: when a and b run every shard between them (takeover),
when c stops running the shards it had (its own view, `temper admin cluster members`), and
until when c still answered DescribeWorkflowExecution for a workflow on one of its shards,
and whether such an answer was stale (older than what a, the new owner, says). After the
rounds every workflow must have completed with each step in its history once (activities
may have run twice: at-least-once), and the commits are checked against the range ids
(fencing.py): no shard was written by two nodes at once. A workflow that never completes
fails the test with its shard and last events. Numbers are printed as REPORT lines
(`-s`). The whole module is skipped where network namespaces cannot be made (not root).

The Cassandra cases start Cassandra inside the test's network, so they run only with
`TEMPER_TEST_PARTITIONS_CASSANDRA=1` (one node) or `=3` (three nodes, replication factor 3).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import netns
import pytest
from fencing import (
    TASK_ID_SEQ_BITS,
    check_commits,
    log_lines,
    namespace_id,
    ownership_overlaps,
    shard_of,
)
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from test_cassandra_replicas import cassandra
from test_cluster import Load, check_exactly_once, workers

from cluster import NUM_SHARDS, Cluster, Node, Store, report

PREFIX = "tpart"
CASSANDRA_NODES = os.environ.get("TEMPER_TEST_PARTITIONS_CASSANDRA", "")
# How long each cut lasts, and how many cut/heal rounds a test runs.
HOLD_S = 15.0
ROUNDS = 2
# The longest a node that reaches the store may run a shard another node took (see below).
STOP_BOUND_S = 2.5

_why = netns.problem()
pytestmark = pytest.mark.skipif(_why is not None, reason=f"no network namespaces: {_why}")

needs_cassandra = pytest.mark.skipif(
    CASSANDRA_NODES not in ("1", "3"),
    reason="starts Cassandra in the test's network: set TEMPER_TEST_PARTITIONS_CASSANDRA=1 "
    "(one node) or 3 (three nodes) to run it",
)


@pytest.fixture(scope="module")
def network() -> Iterator[netns.Network]:
    """The test network with hosts a, b and c (and `store` once Cassandra asks for it);
    removed at the end, and at the start if an earlier run left it."""
    net = netns.Network(PREFIX).create()
    try:
        for i, name in enumerate(("a", "b", "c")):
            net.add_host(name, 11 + i)
        yield net
    finally:
        net.destroy()


@pytest.fixture(scope="module")
def cassandra_points(
    network: netns.Network, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Cassandra (1 or 3 nodes) in namespace `<prefix>-store` at 10.213.0.21(-23)."""
    n = int(CASSANDRA_NODES)
    host = network.add_host("store", 21, *(range(22, 21 + n)))
    d = tmp_path_factory.mktemp("cassandra")
    addresses = ",".join(network.addresses("store"))
    started = time.monotonic()
    try:
        out = cassandra(
            "start", "--dir", str(d), "--addresses", addresses, prefix=host.exec_prefix()
        )
        report(
            f"{n} Cassandra node(s) ready in the test network (s)",
            round(time.monotonic() - started, 1),
        )
        yield out.strip().splitlines()[-1]
    finally:
        cassandra("stop", "--dir", str(d), timeout=120)


@pytest.fixture
async def cluster(
    request: pytest.FixtureRequest, tmp_path: Path, network: netns.Network
) -> AsyncIterator[Cluster]:
    """Nodes a, b, c on hosts a, b, c; the store the test's `store` parameter names."""
    network.heal()
    workdir = tmp_path / "cluster"
    workdir.mkdir()
    store = None
    if request.param == "cassandra":
        points = request.getfixturevalue("cassandra_points")
        store = Store(workdir, points, replication_factor=int(CASSANDRA_NODES))
    c = Cluster(
        workdir, ["a", "b", "c"], store=store or Store(workdir, kind="sqlite"), network=network
    )
    try:
        yield c
    finally:
        c.kill_all()
        network.heal()


@dataclass
class Round:
    """What one cut showed (seconds from the cut)."""

    dropped_s: float | None = None  # a's and b's rings give c's shards to a and b
    takeover_s: float | None = None  # a and b run all shards between them
    c_stopped_s: float | None = None  # c runs none of the shards it had before the cut
    c_last_answer_s: float | None = None  # c's last OK answer about a workflow on its shards
    c_answers: int = 0
    c_refusals: int = 0
    stale_answers: int = 0  # OK answers from c older than the owner's
    c_owned_before: int = 0  # the shards c ran when the cut began
    c_owned_max: int = 0  # the most shards c ran at once during the cut
    heal_s: float | None = None  # from the heal until the three share the shards again
    c_store_back_s: float | None = None  # from the heal until c's store check passes again
    healed_at: float = 0.0  # time.time() of the heal
    notes: list[str] = field(default_factory=list)


async def probe_ids(client: Client, cluster: Cluster, shards: list[int]) -> dict[int, str]:
    """A workflow on each of `shards`, started on a task queue nobody polls (it stays
    running, so a signal changes it and a describe shows the change)."""
    ns = await namespace_id(client)
    ids: dict[int, str] = {}
    i = 0
    while len(ids) < len(shards):
        wf_id = f"probe-{i}"
        shard = shard_of(ns, wf_id, cluster.num_shards)
        if shard in shards and shard not in ids:
            ids[shard] = wf_id
            await client.start_workflow("Probe", id=wf_id, task_queue="tq-probe-nobody")
        i += 1
    return ids


async def history_length(client: Client, wf_id: str, timeout: float = 1.0) -> int:
    resp = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace="default", execution=WorkflowExecution(workflow_id=wf_id)
        ),
        retry=False,
        timeout=timedelta(seconds=timeout),
    )
    return resp.workflow_execution_info.history_length


async def partition_round(
    cluster: Cluster, clients: dict[str, Client], cut: list[str], probes: dict[int, str]
) -> Round:
    """Cut c from the hosts in `cut`, watch for HOLD_S, heal, wait until balanced."""
    net = cluster.network
    assert net is not None
    r = Round()
    before = set(cluster.admin(cluster["c"], "cluster", "members")["owned_shards"])
    r.c_owned_before = len(before)
    mine = {s: w for s, w in probes.items() if s in before}
    t0 = time.monotonic()
    for other in cut:
        net.cut("c", other)
    # probe id -> (history length a reported after a signal through a, when)
    poked: dict[str, tuple[int, float]] = {}

    async def poke() -> None:
        for wf_id in mine.values():
            try:
                await clients["a"].get_workflow_handle(wf_id).signal("poke")
                poked[wf_id] = (
                    await history_length(clients["a"], wf_id, timeout=5),
                    time.monotonic(),
                )
            except Exception as e:  # noqa: BLE001 - a shard may be moving; noted
                r.notes.append(f"poke {wf_id}: {e!r}")

    async def ask_c(wf_id: str) -> None:
        asked = time.monotonic()
        try:
            length = await history_length(clients["c"], wf_id)
        except Exception:  # noqa: BLE001 - a refusal or a timeout is what we wait for
            r.c_refusals += 1
            return
        r.c_answers += 1
        r.c_last_answer_s = time.monotonic() - t0
        if wf_id in poked and asked > poked[wf_id][1] and length < poked[wf_id][0]:
            r.stale_answers += 1
            r.notes.append(f"stale: c said {length} events for {wf_id} "
                           f"{asked - poked[wf_id][1]:.2f}s after a said {poked[wf_id][0]}")  # fmt: skip

    poking: asyncio.Task[None] | None = None
    while (elapsed := time.monotonic() - t0) < HOLD_S:
        try:
            owned_c = set(cluster.admin(cluster["c"], "cluster", "members")["owned_shards"])
            views = [cluster.admin(cluster[n], "cluster", "members") for n in ("a", "b")]
        except RuntimeError as e:  # a node busy moving shards: asked again next time
            r.notes.append(f"admin at {elapsed:.1f}s: {str(e)[:80]}")
            await asyncio.sleep(0.25)
            continue
        r.c_owned_max = max(r.c_owned_max, len(owned_c))
        if r.c_stopped_s is None and not (owned_c & before):
            r.c_stopped_s = elapsed
        alive = [sorted(m["name"] for m in v["members"] if m["status"] == "alive") for v in views]
        if r.dropped_s is None and alive == [["a", "b"], ["a", "b"]]:
            r.dropped_s = elapsed
            poking = asyncio.create_task(poke())
        running = sorted(s for v in views for s in v["owned_shards"])
        if r.takeover_s is None and running == list(range(1, cluster.num_shards + 1)):
            r.takeover_s = elapsed
        await asyncio.gather(*(ask_c(w) for w in mine.values()))
        await asyncio.sleep(0.25)
    if poking is not None:
        await poking
    t1 = net.heal()
    r.healed_at = time.time()
    await cluster.wait_balanced(["a", "b", "c"], timeout=60)
    r.heal_s = time.monotonic() - t1
    return r


async def run_partitions(cluster: Cluster, cut: list[str], label: str) -> None:
    await cluster.start(timeout=120)
    clients = {n: await cluster.connect(cluster[n]) for n in ("a", "b", "c")}
    probes = await probe_ids(clients["a"], cluster, list(range(1, cluster.num_shards + 1)))
    load = Load(clients["a"], f"tq-{label}", f"wf{label}")
    ws = workers([clients["a"], clients["b"]], f"tq-{label}")
    stop = asyncio.Event()
    rounds: list[Round] = []
    started = time.time()
    async with ws[0], ws[1]:
        running = asyncio.create_task(load.steady(rate=4, stop=stop))
        await asyncio.sleep(3)
        for _ in range(ROUNDS):
            rounds.append(await partition_round(cluster, clients, cut, probes))
            await asyncio.sleep(2)
        stop.set()
        await asyncio.wait_for(running, 300)
        report(f"{label}: workflows started under the cuts", len(load.ids))
        store_back = log_times(cluster["c"], "the store answers again")
        for i, r in enumerate(rounds):
            back = [t for t in store_back if t > r.healed_at]
            if "store" in cut and back:
                r.c_store_back_s = round(back[0] - r.healed_at, 2)
            report(f"{label} round {i + 1}", r)
        report(f"{label}: client calls that failed", load.failures[:5])
        # With the workers still running: a start that failed may have started the workflow.
        refused = await settle_failures(clients["a"], load)
    report(f"{label}: starts refused (never started)", len(refused))
    overlaps = ownership_overlaps(cluster, since=started)
    report(
        f"{label}: shard moves, and the longest a node ran a shard after another took it (s)",
        overlaps,
    )
    if "store" not in cut:
        # The cut-off node reads the store, so it stops a shard another node took at its next
        # ownership check: within shard_check_interval_ms (1 s), plus the time the check's
        # own store reads take on two busy cores.
        assert overlaps["longest"].get("c", 0) <= STOP_BOUND_S, overlaps
    retried = await check_exactly_once(clients["a"], load, activity_retries=True)
    report(f"{label}: activity steps run more than once (at-least-once retries)", retried)
    commits = await check_commits(clients["a"], cluster, load.ids + list(probes.values()))
    report(f"{label}: commits checked against range ids", commits)
    if cluster.store.kind == "sqlite":
        check_shard_hash(cluster, await namespace_id(clients["a"]), load.ids)
    for i, r in enumerate(rounds):
        assert r.dropped_s is not None, f"round {i + 1}: a and b never dropped c: {r}"
    # The cut-off node takes no shard while it does not see a majority of the live nodes
    # (it keeps its own until the majority takes them), and a read it answers from its
    # cache never misses a commit of the new owner (the read lease).
    for i, r in enumerate(rounds):
        assert r.c_owned_max <= r.c_owned_before, f"round {i + 1}: c took shards while cut off: {r}"
        assert r.stale_answers == 0, f"round {i + 1}: c answered from a stale cache: {r}"
    if "store" not in cut:
        lagging = {n: t for n, t in overlaps["longest"].items() if t > STOP_BOUND_S}
        assert not lagging, f"a node ran a shard another had taken: {overlaps}"
        for i, r in enumerate(rounds):
            assert r.c_stopped_s is not None, f"round {i + 1}: c still ran its shards: {r}"
    # Nothing was lost or committed twice (above). What is left is a known server issue
    # (docs/operations.md#network-partitions): reported as an expected failure, not a pass.
    known = []
    if refused:
        known.append(
            f"{len(refused)} workflow starts were refused after the heal ({refused[0]}): the "
            "rings gave shards back to a node that could not reach the store yet"
        )
    if "store" in cut and any(r.c_stopped_s is None for r in rounds):
        known.append(f"the cut-off node still ran some of its shards after {HOLD_S:.0f}s")
    if known:
        pytest.xfail("; ".join(known))


def log_times(node: Node, message: str) -> list[float]:
    """When (time.time()) `node` logged `message`."""
    text = node.log_path.read_text(errors="replace")
    return [e for e, m in log_lines(text) if m.startswith(message)]


async def settle_failures(client: Client, load: Load) -> list[str]:
    """Sort out the workflows whose start or result failed (all at once, bounded): one that
    was started must complete with the right result (it then counts as done); one the store
    does not have was refused, not lost. Returns the refusals (dropped from `load`); fails
    with each stuck workflow's shard and last events."""
    ns = await namespace_id(client)
    refused: list[str] = []
    stuck: list[str] = []

    async def settle(failure: str) -> None:
        wf_id = failure.split(": ", 1)[0]
        handle = client.get_workflow_handle(wf_id)
        try:
            load.results[wf_id] = await asyncio.wait_for(handle.result(), 90)
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND, f"{failure}, and then: {e!r}"
            refused.append(failure)
            load.ids.remove(wf_id)
        except TimeoutError:
            events = list((await handle.fetch_history()).events)
            tail = [
                f"{e.event_id} {EventType.Name(e.event_type)[11:]} at "
                f"{e.event_time.ToDatetime():%H:%M:%S.%f} range {e.task_id >> TASK_ID_SEQ_BITS}"
                for e in events[-3:]
            ]
            shard = shard_of(ns, wf_id, NUM_SHARDS)
            stuck.append(f"{failure}; on shard {shard}, still running, last events {tail}")

    await asyncio.gather(*(settle(f) for f in load.failures))
    assert not stuck, f"{len(stuck)} workflows stuck (lost timers or tasks): {stuck}"
    load.failures.clear()
    return refused


def check_shard_hash(cluster: Cluster, ns_id: str, ids: list[str]) -> None:
    """fencing.shard_of agrees with the shard the store keeps each run on."""
    with sqlite3.connect(cluster.store.db) as db:
        rows = db.execute(
            "SELECT DISTINCT workflow_id, shard_id FROM executions WHERE namespace_id = ?", (ns_id,)
        ).fetchall()
    stored = {w: s for w, s in rows if w in set(ids)}
    assert stored, "no runs found in the store"
    wrong = {w: (s, shard_of(ns_id, w, cluster.num_shards)) for w, s in stored.items()
             if s != shard_of(ns_id, w, cluster.num_shards)}  # fmt: skip
    assert not wrong, f"shard_of disagrees with the store: {list(wrong.items())[:5]}"


STORES: list[Any] = ["sqlite", pytest.param("cassandra", marks=needs_cassandra)]


@pytest.mark.timeout(420)
@pytest.mark.parametrize("cluster", STORES, indirect=True, ids=["sqlite", "cassandra"])
async def test_cut_from_peers(cluster: Cluster) -> None:
    await run_partitions(cluster, ["a", "b"], f"peers-{cluster.store.kind}")


@pytest.mark.timeout(420)
@needs_cassandra
@pytest.mark.parametrize("cluster", ["cassandra"], indirect=True)
async def test_cut_from_peers_and_store(cluster: Cluster) -> None:
    await run_partitions(cluster, ["a", "b", "store"], "peers-store-cassandra")
