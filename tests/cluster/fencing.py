"""Checks that no shard was served by two nodes at once, from what the store and the nodes'
logs keep (temper writes no separate log of commits; this is the commit log it has):

- every node logs each shard it acquires with the range id it took by compare-and-set
  (`acquired shard shard=S range=R`), and each shard it stops running (`released shard`,
  `another node took this shard ...; stopping it`, `shard writer stopping`, `shard
  ownership unconfirmed ...; stopping it`);
- every history event carries the task id of its commit, and task ids are handed out from
  the range id the writer held (`task_id >> 20 == range id`, services/types/src/ids.rs), so
  a workflow's history says under which range id each of its batches was committed, and so,
  through the acquisitions, by which node;
- the store holds each shard's current range id (`temper admin shard describe`).

From these, `check_commits` asserts: each (shard, range id) was acquired by one node only;
each committed batch names a range id some node acquired for the workflow's shard; a
history's range ids never go down (no node committed under a range id after another had
committed under a newer one); every batch was made while its range id was the newest, i.e.
before the next acquisition of the shard; and the store's range id of each shard is the
newest one a node logged. `ownership_overlaps` measures how long a node went on running a
shard after another node had acquired it (calls for it were answered from that node's cache
meanwhile; its writes were fenced).
"""

from __future__ import annotations

import asyncio
import collections
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from cluster import Cluster

TASK_ID_SEQ_BITS = 20

# --- the shard of a workflow: services/types/src/routing.rs (xxh3-64 of "<ns id>_<wf id>")

_M64 = (1 << 64) - 1
_PRIME64_1 = 0x9E3779B185EBCA87
_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
    "eac5ac8334d3ebc3c581a0fffa1363eb170ddd51b7f0da49d316552629d4689e"
    "2b16be587d47a1fc8ff8b8d17ad031ce45cb3a8f95160428afd7fbcabb4b407e"
)


def _u64(b: bytes, at: int) -> int:
    return int.from_bytes(b[at : at + 8], "little")


def _mix16(data: bytes, at: int, secret_at: int) -> int:
    lo = _u64(data, at) ^ _u64(_SECRET, secret_at)
    hi = _u64(data, at + 8) ^ _u64(_SECRET, secret_at + 8)
    product = lo * hi
    return (product & _M64) ^ (product >> 64)


def _avalanche(h: int) -> int:
    h ^= h >> 37
    h = (h * 0x165667919E3779F9) & _M64
    return h ^ (h >> 32)


def xxh3_64(data: bytes) -> int:
    """XXH3-64 with seed 0, for inputs of 17 to 128 bytes (the xxhash-rust crate's
    `xxh3_64_7to128`); a workflow key is a 36-character namespace id, `_` and the id."""
    n = len(data)
    if not 17 <= n <= 128:
        raise ValueError(f"only 17-128 byte keys are implemented, not {n}")
    acc = (n * _PRIME64_1) & _M64
    if n > 32:
        if n > 64:
            if n > 96:
                acc += _mix16(data, 48, 96) + _mix16(data, n - 64, 112)
            acc += _mix16(data, 32, 64) + _mix16(data, n - 48, 80)
        acc += _mix16(data, 16, 32) + _mix16(data, n - 32, 48)
    acc += _mix16(data, 0, 0) + _mix16(data, n - 16, 16)
    return _avalanche(acc & _M64)


def shard_of(namespace_id: str, workflow_id: str, num_shards: int) -> int:
    return xxh3_64(f"{namespace_id}_{workflow_id}".encode()) % num_shards + 1


async def namespace_id(client: Client, namespace: str = "default") -> str:
    resp = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    return resp.namespace_info.id


# --- what the nodes logged -------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT[\d:.]+)Z\s+(\w+)\s+(\S+?):\s+(.*)$")
_FIELD = re.compile(r"(\w+)=(\S+)")


@dataclass(frozen=True)
class Acquisition:
    node: str
    shard: int
    range_id: int
    at: float  # seconds since the epoch (the node's log timestamp)


@dataclass(frozen=True)
class Stop:
    node: str
    shard: int
    at: float
    why: str


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp + "+00:00").timestamp()


def log_lines(text: str) -> Iterator[tuple[float, str]]:
    """(time.time(), message with its fields) of each line of a node's text log."""
    for raw in text.splitlines():
        m = _LINE.match(_ANSI.sub("", raw))
        if m:
            yield _epoch(m.group(1)), m.group(4)


def shard_log(cluster: Cluster) -> tuple[list[Acquisition], list[Stop]]:
    """Every shard acquisition and every stop the nodes logged, in time order. A node's
    (re)launch stops all it ran."""
    acquired: list[Acquisition] = []
    stops: list[Stop] = []
    for node in cluster.nodes.values():
        try:
            text = node.log_path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        running: set[int] = set()
        last = 0.0
        for raw in text.splitlines():
            line = _ANSI.sub("", raw)
            if line.startswith("=== launch"):
                stops.extend(Stop(node.name, s, last, "relaunched") for s in running)
                running.clear()
                continue
            m = _LINE.match(line)
            if not m:
                continue
            at, message = _epoch(m.group(1)), m.group(4)
            last = at
            fields = dict(_FIELD.findall(message))
            if "shard" not in fields or not fields["shard"].isdigit():
                continue
            shard = int(fields["shard"])
            if message.startswith("acquired shard"):
                acquired.append(Acquisition(node.name, shard, int(fields["range"]), at))
                running.add(shard)
            elif message.startswith(
                (
                    "released shard",
                    "another node took this shard",
                    "shard writer stopping",
                    "shard ownership unconfirmed",
                )
            ) or message.split(" shard=")[0].endswith(("; stopping it", "; closing shard")):
                stops.append(Stop(node.name, shard, at, message.split(" shard=")[0]))
                running.discard(shard)
    acquired.sort(key=lambda a: a.at)
    stops.sort(key=lambda s: s.at)
    return acquired, stops


def ownership_overlaps(cluster: Cluster, since: float = 0.0) -> dict[str, Any]:
    """For each acquisition after `since` (epoch seconds) of a shard another node was
    running then, how long that node went on running it (until it logged a stop; still
    running now counts up to now). Returns the longest such overlap, per node that lagged,
    and how many shards moved."""
    acquired, stops = shard_log(cluster)
    now = time.time()
    worst: dict[str, float] = {}
    moves = 0
    for a in acquired:
        if a.at < since:
            continue
        # Who else was running the shard at a.at: their last acquisition before a.at not
        # followed by a stop before a.at.
        for other in cluster.nodes:
            if other == a.node:
                continue
            held = [x for x in acquired if x.node == other and x.shard == a.shard and x.at <= a.at]
            if not held:
                continue
            since_held = held[-1].at
            # Its tenure ends at its first stop, or when it acquires the shard again (which
            # stops the old context first, without a log line of its own).
            ends = [
                s.at for s in stops if s.node == other and s.shard == a.shard and s.at >= since_held
            ]
            ends += [
                x.at
                for x in acquired
                if x.node == other and x.shard == a.shard and x.at > since_held
            ]
            end = min(ends) if ends else now
            if end > a.at:
                moves += 1
                worst[other] = max(worst.get(other, 0.0), end - a.at)
    return {"moves": moves, "longest": {k: round(v, 2) for k, v in worst.items()}}


# --- the check ---------------------------------------------------------------------------------


async def check_commits(
    client: Client, cluster: Cluster, workflow_ids: list[str]
) -> dict[str, Any]:
    """See the module docstring; returns what it counted (for a REPORT line)."""
    acquired, _ = shard_log(cluster)
    by_key: dict[tuple[int, int], list[Acquisition]] = collections.defaultdict(list)
    for a in acquired:
        by_key[(a.shard, a.range_id)].append(a)
    twice = {k: [a.node for a in v] for k, v in by_key.items() if len(v) > 1}
    assert not twice, f"range ids acquired by more than one node (shard, range): {twice}"

    # The store's range id of each shard is the newest any node logged taking.
    for shard in range(1, cluster.num_shards + 1):
        node = next(iter(n for n in cluster.running()))
        store = cluster.admin(node, "shard", "describe", str(shard))["range_id"]
        logged = max((r for (s, r) in by_key if s == shard), default=0)
        assert store == logged, f"shard {shard}: store range id {store}, newest logged {logged}"

    ns_id = await namespace_id(client)
    sem = asyncio.Semaphore(20)
    batches_by_node: collections.Counter[str] = collections.Counter()
    problems: list[str] = []

    async def check(wf_id: str) -> None:
        shard = shard_of(ns_id, wf_id, cluster.num_shards)
        async with sem:
            events = list((await client.get_workflow_handle(wf_id).fetch_history()).events)
        last_range = 0
        seen: set[int] = set()
        for e in events:
            if e.task_id in seen:
                continue
            seen.add(e.task_id)
            rng = e.task_id >> TASK_ID_SEQ_BITS
            owner = by_key.get((shard, rng))
            if not owner:
                problems.append(f"{wf_id} (shard {shard}): event {e.event_id} under range {rng}, "
                                "which no node logged acquiring")  # fmt: skip
                continue
            if rng < last_range:
                problems.append(f"{wf_id}: event {e.event_id} under range {rng} after {last_range}")
            last_range = max(last_range, rng)
            made = e.event_time.ToDatetime().timestamp()
            newer = [a.at for (s, r), v in by_key.items() if s == shard and r > rng for a in v]
            if newer and made >= min(newer):
                problems.append(
                    f"{wf_id}: event {e.event_id} made at {made:.3f} under range {rng} of shard "
                    f"{shard}, after range {rng + 1} was acquired at {min(newer):.3f}"
                )
            batches_by_node[owner[0].node] += 1

    await asyncio.gather(*(check(w) for w in workflow_ids))
    assert not problems, f"{len(problems)} commits out of turn: {problems[:5]}"
    return {
        "workflows": len(workflow_ids),
        "commits by node": dict(sorted(batches_by_node.items())),
        "acquisitions": len(acquired),
    }
