"""A schedule on a cluster: a 1 s schedule keeps firing exactly once per second while the
node that runs it is killed, while the node that took it over is paused (SIGSTOP), and
stops firing while the schedule itself is paused.

A schedule is the run `temporal-sys-scheduler:<schedule id>` on that id's shard; each action
starts `<action workflow id>-<nominal time>`, so the started runs say which nominal seconds
were acted on. Missed seconds are caught up (catch-up window 1 minute), so even the
failover windows must be filled.

Measurements are printed as `REPORT ...` lines; run with `-s` to see them.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from cluster import Cluster, harness, report

# --------------------------------------------------------------------------- shard of a run

# xxh3-64 with the default secret and seed 0, for inputs of 17 to 128 bytes: the hash of
# `services/types/src/routing.rs` (`shard_for_workflow`), which the admin API does not
# expose per workflow. The first 128 bytes of the default secret are all these sizes read.
_XXH3_SECRET = bytes.fromhex(
    "b8fe6c3923a44bbe7c01812cf721ad1cded46de9839097db7240a4a4b7b3671f"
    "cb79e64eccc0e578825ad07dccff7221b8084674f743248ee03590e6813a264c"
    "3c2852bb91c300cb88d0658b1b532ea371644897a20df94e3819ef46a9deacd8"
    "a8fa763fe39c343ff9dcbbc7c70b4f1d8a51e04bcdb45931c89f7ec9d9787364"
)
_M64 = (1 << 64) - 1


def _mix16(data: bytes, at: int, secret_at: int) -> int:
    def u64(b: bytes, i: int) -> int:
        return int.from_bytes(b[i : i + 8], "little")

    lo = u64(data, at) ^ u64(_XXH3_SECRET, secret_at)
    hi = u64(data, at + 8) ^ u64(_XXH3_SECRET, secret_at + 8)
    product = lo * hi
    return (product & _M64) ^ (product >> 64)


def xxh3_64(data: bytes) -> int:
    n = len(data)
    assert 17 <= n <= 128, f"xxh3_64 here covers 17 to 128 bytes, not {n}"
    acc = n * 0x9E3779B185EBCA87
    # (front offset, back offset, secret offset) pairs, as XXH3_len_17to128_64b reads them.
    pairs = [(0, n - 16, 0)]
    if n > 32:
        pairs.append((16, n - 32, 32))
    if n > 64:
        pairs.append((32, n - 48, 64))
    if n > 96:
        pairs.append((48, n - 64, 96))
    for front, back, secret in pairs:
        acc += _mix16(data, front, secret) + _mix16(data, back, secret + 16)
    acc &= _M64
    acc ^= acc >> 37
    acc = (acc * 0x165667919E3779F9) & _M64
    return acc ^ (acc >> 32)


def shard_of(namespace_id: str, workflow_id: str, num_shards: int) -> int:
    return xxh3_64(f"{namespace_id}_{workflow_id}".encode()) % num_shards + 1


@pytest.mark.timeout(10)
def test_xxh3_matches_the_routing_hash() -> None:
    # Values of xxhash_rust::xxh3::xxh3_64 0.8 (the crate temper routes with), one per
    # 32-byte step of the input lengths this covers.
    assert xxh3_64(b"x" * 17) == 9914496920434203153
    assert xxh3_64(b"0b4b8b8e-0000-0000-0000-000000000000_wf-1") == 12193365970909435310
    key = b"d2a1c7f0-5e2b-4c1e-9a39-0c4b1e6a7f21_temporal-sys-scheduler:every-second-0123456789"
    assert xxh3_64(key) == 3004316562677343417
    assert xxh3_64(b"0123456789abcdef" * 8) == 3041282556593506945


# --------------------------------------------------------------------------- helpers


class Nodes:
    """One client per node; calls go through a node that is neither dead nor stopped."""

    def __init__(self, cluster: Cluster, clients: dict[str, Client]) -> None:
        self.cluster = cluster
        self.clients = clients

    def client(self, avoid: str = "") -> Client:
        for node in self.cluster.running():
            if node.name != avoid:
                return self.clients[node.name]
        raise AssertionError("no running node to talk to")


def nominal_of(workflow_id: str, action_id: str) -> int:
    """The nominal second a scheduled run's id names (`<action id>-2026-01-02T03:04:05Z`)."""
    suffix = workflow_id.removeprefix(f"{action_id}-")
    assert suffix.endswith("Z") and "." not in suffix, workflow_id
    stamp = datetime.fromisoformat(suffix)
    return int(stamp.timestamp())


class Owner:
    """Polls for the node of `among` that runs `shard` and holds it in the store, and notes
    the last time none of them ran it: whoever took it did so later. Each node is asked about
    itself only: a node that does not run a shard forwards the question to the ring's owner,
    which may be the stopped node."""

    def __init__(self, cluster: Cluster, shard: int, among: list[str]) -> None:
        self.cluster = cluster
        self.shard = shard
        self.among = among
        self.absent_at: float | None = None

    def poll(self) -> str | None:
        asked_at = time.time()
        running = [
            name
            for name in self.among
            if self.shard
            in self.cluster.admin(self.cluster[name], "cluster", "members")["owned_shards"]
        ]
        if not running:
            self.absent_at = asked_at
        for name in running:
            d = self.cluster.admin(self.cluster[name], "shard", "describe", str(self.shard))
            if d["running_on"] == d["store_owner"] == name:
                return name
        return None

    async def wait(self, timeout: float) -> str:
        return await harness.wait_until(
            self.poll,
            timeout=timeout,
            what=f"shard {self.shard} owned by one of {self.among}",
            interval=0.05,
        )


async def latest_nominal(handle: ScheduleHandle) -> int:
    d = await handle.describe(rpc_timeout=timedelta(seconds=5))
    return max((int(a.scheduled_at.timestamp()) for a in d.info.recent_actions), default=0)


async def run_until(nodes: Nodes, schedule_id: str, second: float, timeout: float) -> None:
    """Poll until the schedule has acted on nominal second `second` (wall clock)."""

    async def reached() -> bool:
        handle = nodes.client().get_schedule_handle(schedule_id)
        return await latest_nominal(handle) >= int(second)

    await harness.wait_until(
        reached, timeout=timeout, what=f"an action for {datetime.fromtimestamp(second)}"
    )


async def scheduled_runs(client: Client, action_id: str) -> dict[str, tuple[int, float]]:
    """Every run the schedule started: workflow id -> (nominal second, start time)."""
    runs: dict[str, tuple[int, float]] = {}
    async for wf in client.list_workflows(f"WorkflowId STARTS_WITH '{action_id}-'"):
        assert wf.id not in runs, f"{wf.id} listed twice"
        runs[wf.id] = (nominal_of(wf.id, action_id), wf.start_time.timestamp())
    return runs


def gaps(seconds: set[int]) -> list[int]:
    return sorted(set(range(min(seconds), max(seconds) + 1)) - seconds) if seconds else []


# --------------------------------------------------------------------------- the test


@pytest.mark.timeout(180)
async def test_schedule_fires_once_per_second_through_failover_and_pause(
    cluster: Cluster,
) -> None:
    await cluster.start()
    names = ["a", "b", "c"]
    nodes = Nodes(cluster, {n: await Client.connect(cluster[n].address) for n in names})
    client = nodes.client()

    schedule_id = harness.unique("every-second")
    action_id = harness.unique("tick")
    ns = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=client.namespace)
    )
    shard = shard_of(
        ns.namespace_info.id, f"temporal-sys-scheduler:{schedule_id}", cluster.num_shards
    )

    created_at = time.time()
    await client.create_schedule(
        schedule_id,
        Schedule(
            # Nobody polls this queue: the runs stay Running, which the schedule ignores
            # with ALLOW_ALL.
            action=ScheduleActionStartWorkflow(
                "ScheduledTick", id=action_id, task_queue=harness.unique("tq-nobody")
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))]),
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=timedelta(minutes=1)
            ),
        ),
    )
    first_owner = await Owner(cluster, shard, names).wait(timeout=10)
    report("schedule shard / owner", f"{shard} / {first_owner}")

    # Five seconds of actions, then the owner dies.
    await run_until(nodes, schedule_id, created_at + 5, timeout=30)
    survivors = [n for n in names if n != first_owner]
    killed_at = time.time()
    await cluster.kill(first_owner)
    taking_over = Owner(cluster, shard, survivors)
    second_owner = await taking_over.wait(timeout=30)
    failover_s = time.time() - killed_at
    report("schedule shard moved after kill -9 of its owner (s)", round(failover_s, 2))

    # Ten more seconds, then the new owner is stopped long enough to be declared dead.
    await run_until(nodes, schedule_id, time.time() + 10, timeout=60)
    (third,) = [n for n in survivors if n != second_owner]
    stopped_at = time.time()
    cluster.pause(second_owner)
    moving_away = Owner(cluster, shard, [third])
    await moving_away.wait(timeout=30)
    moved_s = time.time() - stopped_at
    report("schedule shard moved away from the stopped owner (s)", round(moved_s, 2))
    cluster.resume(second_owner)
    resumed_at = time.time()
    back_s = await cluster.wait_balanced(survivors, timeout=30)
    report("stopped node resumed, shards balanced again (s)", round(back_s, 2))
    owner_after = await Owner(cluster, shard, survivors).wait(timeout=10)
    report("schedule shard: stopped node / owner after resume", f"{second_owner} / {owner_after}")

    # A few more seconds, then the schedule is paused: nothing after the pause is acted on.
    await run_until(nodes, schedule_id, time.time() + 3, timeout=30)
    pause_sent = time.time()
    await nodes.client().get_schedule_handle(schedule_id).pause(note="cluster test")
    paused_at = time.time()
    handle = nodes.client().get_schedule_handle(schedule_id)

    async def settled() -> int | None:
        """Actions taken == runs started (every start issued before the pause reported)."""
        d = await handle.describe(rpc_timeout=timedelta(seconds=5))
        runs = await scheduled_runs(nodes.client(), action_id)
        return len(runs) if d.info.num_actions == len(runs) else None

    at_pause = await harness.wait_until(settled, timeout=30, what="the starts before the pause")
    # Nothing to poll for: the schedule must stay idle for a few of its seconds.
    await asyncio.sleep(3)
    d = await handle.describe()
    assert d.schedule.state.paused
    assert d.info.num_actions == at_pause, "a paused schedule kept taking actions"
    assert len(await scheduled_runs(nodes.client(), action_id)) == at_pause

    unpause_sent = time.time()
    await handle.unpause(note="cluster test over")
    unpaused_at = time.time()
    await run_until(nodes, schedule_id, unpaused_at + 3, timeout=30)
    await handle.pause(note="stopped for the count")
    final_paused_at = time.time()
    total = await harness.wait_until(settled, timeout=30, what="the last starts")
    d = await handle.describe()

    # ---- what the schedule did
    runs = await scheduled_runs(nodes.client(), action_id)
    nominals = [n for n, _ in runs.values()]
    assert len(set(nominals)) == len(nominals), "two runs for one nominal second"
    assert d.info.num_actions == len(runs) == total, (d.info.num_actions, len(runs))
    assert d.info.num_actions_missed_catchup_window == 0
    assert d.info.num_actions_skipped_overlap == 0

    while_paused = sorted(n for n in nominals if paused_at < n < unpause_sent)
    assert not while_paused, f"acted on seconds of the pause: {while_paused}"
    before = {n for n in nominals if n <= paused_at}
    after = {n for n in nominals if n >= unpause_sent}
    assert before and after
    assert min(before) <= created_at + 2, "the schedule was late to start"
    assert max(before) >= pause_sent - 2, "the schedule had stopped before it was paused"
    assert min(after) <= unpaused_at + 2, "the schedule was late to resume"
    assert max(after) <= final_paused_at

    delays = {n: start - n for n, start in runs.values()}
    latest = max(delays, key=lambda n: delays[n])
    report("actions taken (before pause / after unpause)", f"{len(before)} / {len(after)}")
    report("seconds skipped while the schedule was paused", min(after) - max(before) - 1)
    report(
        "latest start after its nominal time (s)",
        f"{delays[latest]:.2f} (second {latest - killed_at:+.0f}s from the kill, "
        f"{latest - stopped_at:+.0f}s from the stop)",
    )
    # The seconds due while no live node ran the schedule's shard were started only once
    # another node had taken it: the kill and the stop did hit the schedule.
    for what, lost_at, owner in (
        ("kill -9", killed_at, taking_over),
        ("SIGSTOP", stopped_at, moving_away),
    ):
        absent_at = owner.absent_at or lost_at
        due = {n: start for n, start in runs.values() if lost_at + 0.2 < n < absent_at}
        report(
            f"seconds due while the shard had no owner after {what} / latest started after (s)",
            f"{len(due)} / {max((s - n for n, s in due.items()), default=0):.2f}",
        )
        around = range(int(lost_at), int(lost_at) + 10)
        report(
            f"start delay of the 10 seconds from {what} on (s)",
            [round(delays[n], 1) if n in delays else None for n in around],
        )
        assert due, f"no second fell while the shard was without an owner after {what}"
        early = {n: round(start - absent_at, 2) for n, start in due.items() if start < absent_at}
        assert not early, f"started while the schedule's node was gone ({what}): {early}"

    missing = gaps(before) + gaps(after)
    report("nominal seconds never acted on outside the pause", missing)
    assert not missing, (
        f"missed {len(missing)} seconds (relative to the kill: "
        f"{[m - int(killed_at) for m in missing]}, to the stop: "
        f"{[m - int(stopped_at) for m in missing]}, resume at {resumed_at - stopped_at:+.1f}s)"
    )
