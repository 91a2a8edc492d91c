"""Worker deployments and versioning: versions registered by polling workers, the routing
calls (current, ramping, conflict tokens, errors), and where pinned and auto-upgrade runs go."""

from __future__ import annotations

import uuid

import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkerDeploymentVersionStatus
from temporalio.api.enums.v1 import VersioningBehavior as ApiBehavior
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import VersioningOverride, WorkflowExecutionOptions
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    DescribeWorkerDeploymentRequest,
    DescribeWorkerDeploymentResponse,
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
    UpdateWorkflowExecutionOptionsRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from harness import history_events, result_within, wait_until, worker


def _config(version: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True)


@workflow.defn(name="Versioned", versioning_behavior=VersioningBehavior.AUTO_UPGRADE)
class AutoUpgradeV1:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "v1"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn(name="Versioned", versioning_behavior=VersioningBehavior.PINNED)
class PinnedV2:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "v2"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn(name="Pinned", versioning_behavior=VersioningBehavior.PINNED)
class PinnedOnV1:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "v1"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn(name="Pinned", versioning_behavior=VersioningBehavior.PINNED)
class PinnedOnV2:
    @workflow.run
    async def run(self) -> str:
        return "v2"


async def _describe(client: Client, name: str) -> DescribeWorkerDeploymentResponse:
    return await client.workflow_service.describe_worker_deployment(
        DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=name)
    )


async def _registered(
    client: Client, version: WorkerDeploymentVersion
) -> DescribeWorkerDeploymentResponse:
    async def check() -> DescribeWorkerDeploymentResponse | None:
        r = await _describe(client, version.deployment_name)
        summaries = r.worker_deployment_info.version_summaries
        seen = any(s.deployment_version.build_id == version.build_id for s in summaries)
        return r if seen else None

    return await wait_until(check, timeout=20, what=f"version {version} registered")


async def _set_current(client: Client, version: WorkerDeploymentVersion, token: bytes) -> bytes:
    r = await client.workflow_service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=client.namespace,
            deployment_name=version.deployment_name,
            version=version.to_canonical_string(),
            conflict_token=token,
        )
    )
    return r.conflict_token


@pytest.mark.timeout(90)
async def test_routing_calls_check_tokens_and_versions(client: Client, task_queue: str) -> None:
    name = f"dep-{uuid.uuid4().hex[:8]}"
    v1 = WorkerDeploymentVersion(deployment_name=name, build_id="1.0")
    with pytest.raises(RPCError) as missing:
        await _describe(client, name)
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    async with worker(client, task_queue, workflows=[AutoUpgradeV1], deployment_config=_config(v1)):
        described = await _registered(client, v1)
        info = described.worker_deployment_info
        assert info.routing_config.current_version == "__unversioned__"
        assert [s.status for s in info.version_summaries] == [
            WorkerDeploymentVersionStatus.WORKER_DEPLOYMENT_VERSION_STATUS_INACTIVE
        ]
        token = described.conflict_token

        with pytest.raises(RPCError) as stale:
            await _set_current(client, v1, b"stale")
        assert stale.value.status == RPCStatusCode.FAILED_PRECONDITION
        unknown = WorkerDeploymentVersion(deployment_name=name, build_id="nope")
        with pytest.raises(RPCError) as not_polled:
            await _set_current(client, unknown, token)
        assert not_polled.value.status == RPCStatusCode.NOT_FOUND

        token2 = await _set_current(client, v1, token)
        assert token2 != token
        # Setting the current version again changes nothing, the token included.
        assert await _set_current(client, v1, token2) == token2
        routing = (await _describe(client, name)).worker_deployment_info.routing_config
        assert routing.current_deployment_version.build_id == "1.0"
        assert routing.revision_number == 1

        # The current version cannot also ramp.
        with pytest.raises(RPCError) as ramp_current:
            await client.workflow_service.set_worker_deployment_ramping_version(
                SetWorkerDeploymentRampingVersionRequest(
                    namespace=client.namespace,
                    deployment_name=name,
                    version=v1.to_canonical_string(),
                    percentage=10,
                    conflict_token=token2,
                )
            )
        assert ramp_current.value.status == RPCStatusCode.FAILED_PRECONDITION

        version = await client.workflow_service.describe_worker_deployment_version(
            DescribeWorkerDeploymentVersionRequest(
                namespace=client.namespace,
                deployment_version={"deployment_name": name, "build_id": "1.0"},
            )
        )
        queues = {(q.name, q.type) for q in version.version_task_queues}
        assert (task_queue, 1) in queues  # TASK_QUEUE_TYPE_WORKFLOW

        # DescribeTaskQueue lists versioned pollers with their deployment options.
        described_queue = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace, task_queue=TaskQueue(name=task_queue)
            )
        )
        assert "1.0" in {p.deployment_options.build_id for p in described_queue.pollers}


@pytest.mark.timeout(120)
async def test_auto_upgrade_runs_move_to_the_new_current_version_pinned_runs_stay(
    client: Client, task_queue: str, new_id
) -> None:
    name = f"dep-{uuid.uuid4().hex[:8]}"
    v1 = WorkerDeploymentVersion(deployment_name=name, build_id="1.0")
    v2 = WorkerDeploymentVersion(deployment_name=name, build_id="2.0")
    async with (
        worker(
            client, task_queue, workflows=[AutoUpgradeV1, PinnedOnV1], deployment_config=_config(v1)
        ),
        worker(client, task_queue, workflows=[PinnedV2, PinnedOnV2], deployment_config=_config(v2)),
    ):
        await _registered(client, v1)
        token = (await _registered(client, v2)).conflict_token
        token = await _set_current(client, v1, token)

        auto = await client.start_workflow("Versioned", id=new_id(), task_queue=task_queue)
        stays = await client.start_workflow("Pinned", id=new_id(), task_queue=task_queue)

        async def on_version(handle, build_id: str) -> bool:
            d = await handle.describe()
            vi = d.raw_description.workflow_execution_info.versioning_info
            return vi.deployment_version.build_id == build_id

        await wait_until(lambda: on_version(auto, "1.0"), timeout=20, what="auto run on 1.0")
        await wait_until(lambda: on_version(stays, "1.0"), timeout=20, what="pinned run on 1.0")
        desc = await auto.describe()
        vi = desc.raw_description.workflow_execution_info.versioning_info
        assert vi.behavior == ApiBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE

        await _set_current(client, v2, token)
        pinned = await client.start_workflow("Versioned", id=new_id(), task_queue=task_queue)
        await wait_until(lambda: on_version(pinned, "2.0"), timeout=20, what="run on 2.0")

        # The auto-upgrade run's next task goes to the new current version.
        await auto.signal("finish")
        assert await result_within(auto, 20) == "v2"
        # The run pinned to 1.0 stays there.
        await stays.signal("finish")
        assert await result_within(stays, 20) == "v1"
        await pinned.signal("finish")
        assert await result_within(pinned, 20) == "v2"

        completed = [
            e.workflow_task_completed_event_attributes
            for e in await history_events(pinned)
            if e.HasField("workflow_task_completed_event_attributes")
        ]
        assert completed
        for a in completed:
            assert a.versioning_behavior == ApiBehavior.VERSIONING_BEHAVIOR_PINNED
            assert a.deployment_version.build_id == "2.0"
            assert a.worker_deployment_name == name
            assert a.worker_version.build_id == "2.0"


@pytest.mark.timeout(120)
async def test_a_pinned_override_set_on_a_running_workflow_keeps_it_on_its_version(
    client: Client, task_queue: str, new_id
) -> None:
    name = f"dep-{uuid.uuid4().hex[:8]}"
    v1 = WorkerDeploymentVersion(deployment_name=name, build_id="1.0")
    v2 = WorkerDeploymentVersion(deployment_name=name, build_id="2.0")
    async with (
        worker(client, task_queue, workflows=[AutoUpgradeV1], deployment_config=_config(v1)),
        worker(client, task_queue, workflows=[PinnedV2], deployment_config=_config(v2)),
    ):
        await _registered(client, v1)
        token = (await _registered(client, v2)).conflict_token
        token = await _set_current(client, v1, token)
        handle = await client.start_workflow("Versioned", id=new_id(), task_queue=task_queue)

        async def on_v1() -> bool:
            d = await handle.describe()
            vi = d.raw_description.workflow_execution_info.versioning_info
            return vi.deployment_version.build_id == "1.0"

        await wait_until(on_v1, timeout=20, what="run on 1.0")
        pinned = VersioningOverride(
            pinned=VersioningOverride.PinnedOverride(
                behavior=VersioningOverride.PinnedOverrideBehavior.PINNED_OVERRIDE_BEHAVIOR_PINNED,
                version={"deployment_name": name, "build_id": "1.0"},
            )
        )
        answer = await client.workflow_service.update_workflow_execution_options(
            UpdateWorkflowExecutionOptionsRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=handle.id),
                workflow_execution_options=WorkflowExecutionOptions(versioning_override=pinned),
                update_mask=FieldMask(paths=["versioning_override"]),
            )
        )
        assert (
            answer.workflow_execution_options.versioning_override.pinned.version.build_id == "1.0"
        )
        desc = await handle.describe()
        vi = desc.raw_description.workflow_execution_info.versioning_info
        assert vi.versioning_override.pinned.version.build_id == "1.0"

        # The auto-upgrade run would move to 2.0; the override keeps it on 1.0.
        await _set_current(client, v2, token)
        await handle.signal("finish")
        assert await result_within(handle, 20) == "v1"
        types = [e.event_type for e in await history_events(handle)]
        assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED in types
