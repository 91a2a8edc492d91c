"""Legacy worker versioning's data calls: build id version sets per task queue
(UpdateWorkerBuildIdCompatibility, GetWorkerBuildIdCompatibility) and GetWorkerTaskReachability,
with the `BuildIds` search attribute that unversioned workers' workflow tasks record.

Both servers serve them only with `frontend.workerVersioningDataAPIs` on; without it they
answer PERMISSION_DENIED.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.taskqueue.v1 import TaskQueueReachability
from temporalio.api.workflowservice.v1 import (
    GetWorkerBuildIdCompatibilityRequest,
    GetWorkerTaskReachabilityRequest,
    UpdateWorkerBuildIdCompatibilityRequest,
)
from temporalio.client import (
    BuildIdOpAddNewCompatible,
    BuildIdOpAddNewDefault,
    BuildIdOpMergeSets,
    BuildIdOpPromoteBuildIdWithinSet,
    BuildIdOpPromoteSetByBuildId,
    Client,
)
from temporalio.client import TaskReachabilityType as Reach
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, ServerProcess, worker

FLAGS = ["--dynamic-config-value", "frontend.workerVersioningDataAPIs=true"]


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """This module's servers serve the version set calls."""
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


@workflow.defn
class Quick:
    @workflow.run
    async def run(self) -> str:
        return "done"


async def sets(client: Client, tq: str, max_sets: int = 0) -> list[list[str]]:
    resp = await client.workflow_service.get_worker_build_id_compatibility(
        GetWorkerBuildIdCompatibilityRequest(namespace=NAMESPACE, task_queue=tq, max_sets=max_sets)
    )
    return [list(s.build_ids) for s in resp.major_version_sets]


async def reach(
    client: Client, build_ids: list[str], task_queues: list[str] | None = None
) -> dict[str, dict[str, list[Reach]]]:
    r = await client.get_worker_task_reachability(
        build_ids=build_ids, task_queues=task_queues or []
    )
    return {
        b: {tq: list(kinds) for tq, kinds in v.task_queue_reachability.items()}
        for b, v in r.build_id_reachability.items()
    }


async def test_off_by_default_with_temporals_answer(tmp_path: Path) -> None:
    srv = ServerProcess(harness.server_kind(), tmp_path / "plain")
    try:
        await srv.start()
        client = await srv.connect()
        with pytest.raises(RPCError) as e:
            await client.update_worker_build_id_compatibility("tq", BuildIdOpAddNewDefault("1.0"))
        assert e.value.status == RPCStatusCode.PERMISSION_DENIED
        assert e.value.message == (
            "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
        )
        with pytest.raises(RPCError) as e:
            await client.get_worker_task_reachability(build_ids=["1.0"])
        assert e.value.status == RPCStatusCode.PERMISSION_DENIED
        assert e.value.message == (
            "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace."
        )
    finally:
        await srv.stop()


async def test_sets_move_merge_and_survive_a_restart(
    server: ServerProcess, client: Client, task_queue: str
) -> None:
    tq = task_queue
    assert await sets(client, tq) == []
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("1.0"))
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewCompatible("1.1", "1.0"))
    assert await sets(client, tq) == [["1.0", "1.1"]]
    await client.update_worker_build_id_compatibility(tq, BuildIdOpPromoteBuildIdWithinSet("1.0"))
    assert await sets(client, tq) == [["1.1", "1.0"]]
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("2.0"))
    assert await sets(client, tq) == [["1.1", "1.0"], ["2.0"]]
    await client.update_worker_build_id_compatibility(tq, BuildIdOpPromoteSetByBuildId("1.0"))
    assert await sets(client, tq) == [["2.0"], ["1.1", "1.0"]]
    # A compatible build id that also makes its set the default.
    await client.update_worker_build_id_compatibility(
        tq, BuildIdOpAddNewCompatible("2.1", "2.0", promote_set=True)
    )
    assert await sets(client, tq) == [["1.1", "1.0"], ["2.0", "2.1"]]
    # Merging keeps the primary's default as the merged set's default.
    await client.update_worker_build_id_compatibility(
        tq, BuildIdOpMergeSets(primary_build_id="1.0", secondary_build_id="2.1")
    )
    merged = await sets(client, tq)
    assert len(merged) == 1 and merged[0][-1] == "1.0"
    assert sorted(merged[0]) == ["1.0", "1.1", "2.0", "2.1"]
    await server.restart()
    client = await server.connect()
    assert await sets(client, tq) == merged
    compat = await client.get_worker_build_id_compatibility(tq)
    assert compat.default_build_id() == "1.0"


async def test_repeats_are_idempotent_and_conflicts_refused(
    client: Client, task_queue: str
) -> None:
    tq = task_queue
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("a"))
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("a"))
    await client.update_worker_build_id_compatibility(tq, BuildIdOpPromoteSetByBuildId("a"))
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("b"))
    assert await sets(client, tq) == [["a"], ["b"]]

    async def refused(op: object) -> RPCError:
        with pytest.raises(RPCError) as e:
            await client.update_worker_build_id_compatibility(tq, op)  # type: ignore[arg-type]
        return e.value

    e = await refused(BuildIdOpAddNewDefault("a"))
    assert (e.status, e.message) == (RPCStatusCode.INVALID_ARGUMENT, "version a already exists")
    e = await refused(BuildIdOpAddNewCompatible("a", "b"))
    assert e.status == RPCStatusCode.INVALID_ARGUMENT
    assert (
        e.message
        == "a requested to be made compatible with b but both versions exist and are incompatible"
    )
    e = await refused(BuildIdOpAddNewCompatible("c", "nope"))
    assert (e.status, e.message) == (
        RPCStatusCode.NOT_FOUND,
        "targeted compatible_version nope not found",
    )
    e = await refused(BuildIdOpPromoteSetByBuildId("nope"))
    assert (e.status, e.message) == (RPCStatusCode.NOT_FOUND, "targeted version nope not found")
    e = await refused(BuildIdOpMergeSets(primary_build_id="a", secondary_build_id="nope"))
    assert (e.status, e.message) == (
        RPCStatusCode.NOT_FOUND,
        "targeted secondary version nope not found",
    )
    assert await sets(client, tq) == [["a"], ["b"]], "refused changes change nothing"


async def test_limits_and_request_checks(client: Client, task_queue: str) -> None:
    tq = task_queue
    for i in range(10):
        await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault(f"v{i}"))
    with pytest.raises(RPCError) as e:
        await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("v10"))
    assert e.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert e.value.message == (
        "update would exceed number of compatible version sets permitted in namespace dynamic config (11/10)"
    )
    assert await sets(client, tq, max_sets=2) == [["v8"], ["v9"]]

    with pytest.raises(RPCError) as e:
        await client.workflow_service.update_worker_build_id_compatibility(
            UpdateWorkerBuildIdCompatibilityRequest(namespace=NAMESPACE, task_queue=tq)
        )
    assert e.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert e.value.message == (
        "request to update worker build ID compatability requires: , an operation to be specified"
    )
    with pytest.raises(RPCError) as e:
        await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault("x" * 256))
    assert e.value.message == (
        "request to update worker build ID compatability requires: ,  Worker build IDs to be no "
        "larger than 255 characters"
    )
    for build_ids, task_queues, message in [
        ([], [], "Must query at least one build ID (or empty string for unversioned worker)"),
        (["1", "2", "3", "4", "5", "6"], [], "Too many build ids queried at once, limit: 5"),
        (
            [""],
            [],
            (
                "Cannot get reachability of an unversioned worker without specifying at least "
                "one task queue (empty build ID is interpereted as unversioned)"
            ),
        ),
        (
            ["x" * 256],
            [],
            "Build ID exceeds configured limit.workerBuildIdSize, use a shorter build ID.",
        ),
    ]:
        with pytest.raises(RPCError) as e:
            await client.workflow_service.get_worker_task_reachability(
                GetWorkerTaskReachabilityRequest(
                    namespace=NAMESPACE, build_ids=build_ids, task_queues=task_queues
                )
            )
        assert (e.value.status, e.value.message) == (RPCStatusCode.INVALID_ARGUMENT, message)


async def test_reachability_follows_the_sets_and_visibility(
    client: Client, task_queue: str
) -> None:
    tq = task_queue
    # Build ids of this test only: a shared store (the Cassandra run) holds other tests' sets.
    v10, v11, v20, nope = (harness.unique(v) for v in ("1.0", "1.1", "2.0", "nope"))
    # An unversioned queue: new workflows, and existing ones once a workflow ran there.
    assert await reach(client, [""], [tq]) == {"": {tq: [Reach.NEW_WORKFLOWS]}}
    async with worker(client, tq, workflows=[Quick]):
        handle = await client.start_workflow(
            Quick.run, id=harness.unique("wf-reach"), task_queue=tq
        )
        assert await handle.result() == "done"
    # The workflow task of an unversioned worker marks the run, as reachability queries need.
    described = await handle.describe()
    build_ids = json.loads(
        described.raw_description.workflow_execution_info.search_attributes.indexed_fields[
            "BuildIds"
        ].data
    )
    assert build_ids[0] == "unversioned" and build_ids[1].startswith("unversioned:")
    count = await client.count_workflows(f"TaskQueue = '{tq}' AND BuildIds = 'unversioned'")
    assert count.count == 1

    async def until(
        want: dict[str, dict[str, list[Reach]]], build_ids: list[str], tqs: list[str]
    ) -> None:
        await harness.wait_until(
            lambda: _equal(reach(client, build_ids, tqs), want),
            timeout=10,
            what=f"reachability {want}",
        )

    await until({"": {tq: [Reach.NEW_WORKFLOWS, Reach.EXISTING_WORKFLOWS]}}, [""], [tq])
    # Once the queue has version sets, its default build id takes new workflows; the
    # unversioned worker still does for a while (five minutes after the queue got sets).
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault(v10))
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewCompatible(v11, v10))
    await until(
        {
            "": {tq: [Reach.NEW_WORKFLOWS, Reach.EXISTING_WORKFLOWS]},
            v11: {tq: [Reach.NEW_WORKFLOWS]},
            v10: {tq: []},
            nope: {tq: []},
        },
        ["", v11, v10, nope],
        [tq],
    )
    # Without task queues: the queues whose sets hold the build id.
    assert await reach(client, [v11, nope]) == {v11: {tq: [Reach.NEW_WORKFLOWS]}, nope: {}}
    # A set demoted moments ago still counts as reachable by new workflows.
    await client.update_worker_build_id_compatibility(tq, BuildIdOpAddNewDefault(v20))
    assert await reach(client, [v11, v20], [tq]) == {
        v11: {tq: [Reach.NEW_WORKFLOWS]},
        v20: {tq: [Reach.NEW_WORKFLOWS]},
    }
    raw = await client.workflow_service.get_worker_task_reachability(
        GetWorkerTaskReachabilityRequest(namespace=NAMESPACE, build_ids=[v20], task_queues=[tq])
    )
    assert list(raw.build_id_reachability[0].task_queue_reachability) == [
        TaskQueueReachability(task_queue=tq, reachability=[Reach.NEW_WORKFLOWS._to_proto()])
    ]


async def _equal(got: object, want: object) -> bool:
    return await got == want  # type: ignore[misc]
