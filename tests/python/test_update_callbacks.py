"""Completion callbacks on workflow updates (`history.enableUpdateCallbacks`): a Nexus handler
sends an update with the operation's callback attached and answers asynchronously; the
caller's operation completes when the update does, with its result or failure, or with
Temporal's "workflow completed before the update" failure when the target closes first.
Also the link UpdateWorkflowExecution answers with, and the request checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import nexusrpc
import pytest
from nexusrpc.handler import (
    CancelOperationContext,
    OperationHandler,
    StartOperationContext,
    StartOperationResultAsync,
    StartOperationResultSync,
    operation_handler,
    service_handler,
)
from temporalio import nexus, workflow
from temporalio.api.common.v1 import Callback, Link, Payloads, WorkflowExecution
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    UpdateWorkflowExecutionLifecycleStage,
)
from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    UpdateWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, ServerProcess, result_within, wait_until, worker

FLAGS = [
    "--dynamic-config-value", "history.enableUpdateCallbacks=true",
    # The reference keeps update callbacks in CHASM.
    "--dynamic-config-value", "history.enableChasm=true",
    "--dynamic-config-value", "history.enableTransitionHistory=true",
    "--dynamic-config-value", "history.enableCHASMCallbacks=true",
    "--dynamic-config-value", 'system.refreshNexusEndpointsMinWait="0s"',
]  # fmt: skip

ACCEPTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


@workflow.defn
class Target:
    """Its `add` update waits for the `release` signal, then answers; `finish` ends the run
    with updates still open; a negative number is rejected by the validator."""

    def __init__(self) -> None:
        self.released = False
        self.finished = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.finished)
        return "target done"

    @workflow.update(unfinished_policy=workflow.HandlerUnfinishedPolicy.ABANDON)
    async def add(self, n: int) -> str:
        await workflow.wait_condition(lambda: self.released)
        if n == 13:
            raise ApplicationError("unlucky", non_retryable=True)
        return f"added {n}"

    @add.validator
    def validate_add(self, n: int) -> None:
        if n < 0:
            raise ValueError("negative")

    @workflow.signal
    def release(self) -> None:
        self.released = True

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@dataclass
class UpdateArgs:
    target_id: str
    update_id: str
    n: int


@nexusrpc.service
class UpdateService:
    update_target: nexusrpc.Operation[UpdateArgs, str]


class UpdateTarget(OperationHandler[UpdateArgs, str]):
    """Sends the update with the operation's callback; answers at once if it completed."""

    async def start(
        self, ctx: StartOperationContext, input: UpdateArgs
    ) -> StartOperationResultSync[str] | StartOperationResultAsync:
        client = nexus.client()
        payloads = await client.data_converter.encode([input.n])
        resp = await client.workflow_service.update_workflow_execution(
            UpdateWorkflowExecutionRequest(
                namespace=NAMESPACE,
                workflow_execution=WorkflowExecution(workflow_id=input.target_id),
                wait_policy=WaitPolicy(lifecycle_stage=ACCEPTED),
                request=Request(
                    meta=Meta(update_id=input.update_id, identity="handler"),
                    input=Input(name="add", args=Payloads(payloads=payloads)),
                    request_id=ctx.request_id,
                    completion_callbacks=[
                        Callback(
                            nexus=Callback.Nexus(url=ctx.callback_url, header=ctx.callback_headers)
                        )
                    ],
                ),
            )
        )
        LINKS[input.update_id] = resp.link
        if resp.outcome.HasField("failure"):
            raise nexusrpc.OperationError(
                resp.outcome.failure.message, state=nexusrpc.OperationErrorState.FAILED
            )
        if resp.outcome.HasField("success"):
            [value] = await client.data_converter.decode(resp.outcome.success.payloads, [str])
            return StartOperationResultSync(value)
        return StartOperationResultAsync(token=input.update_id)

    async def cancel(self, ctx: CancelOperationContext, token: str) -> None:
        raise nexusrpc.HandlerError("not cancellable", type=nexusrpc.HandlerErrorType.BAD_REQUEST)


LINKS: dict[str, Link] = {}


@service_handler(service=UpdateService)
class UpdateServiceHandler:
    @operation_handler
    def update_target(self) -> OperationHandler[UpdateArgs, str]:
        return UpdateTarget()


@dataclass
class CallerArgs:
    endpoint: str
    update: UpdateArgs


@workflow.defn
class Caller:
    """Runs the operation; returns its result or the failure's messages."""

    @workflow.run
    async def run(self, a: CallerArgs) -> list[str]:
        client = workflow.create_nexus_client(service=UpdateService, endpoint=a.endpoint)
        try:
            result = await client.execute_operation(
                UpdateService.update_target,
                a.update,
                schedule_to_close_timeout=timedelta(seconds=60),
            )
        except Exception as e:  # noqa: BLE001 - the test reads what the workflow saw
            chain = []
            err: BaseException | None = e
            while err is not None:
                chain.append(str(err))
                err = err.__cause__
            return ["error", *chain]
        return ["ok", result]


async def update_callbacks(client: Client, workflow_id: str) -> list[Any]:
    d = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    return [c for c in d.callbacks if c.trigger.HasField("update_workflow_execution_completed")]


def handler_worker(client: Client, task_queue: str) -> Any:
    return worker(
        client,
        task_queue,
        workflows=[Caller, Target],
        nexus_service_handlers=[UpdateServiceHandler()],
    )


@pytest.mark.timeout(90)
async def test_the_update_completes_the_callers_operation(client: Client, task_queue: str) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    target_id, update_id = harness.unique("target"), harness.unique("upd")
    async with handler_worker(client, task_queue):
        target = await client.start_workflow(Target.run, id=target_id, task_queue=task_queue)
        caller = await client.start_workflow(
            Caller.run,
            CallerArgs(endpoint, UpdateArgs(target_id, update_id, 7)),
            id=harness.unique("caller"),
            task_queue=task_queue,
        )

        # The accepted update holds the callback until it completes.
        async def standing_by() -> list[Any] | None:
            cbs = await update_callbacks(client, target_id)
            return cbs if cbs else None

        [cb] = await wait_until(standing_by, timeout=20, what="the update's callback")
        assert cb.trigger.update_workflow_execution_completed.update_id == update_id
        assert cb.state == CallbackState.CALLBACK_STATE_STANDBY
        assert cb.callback.nexus.url
        link = LINKS[update_id]
        assert link.workflow_event.workflow_id == target_id
        assert link.workflow_event.request_id_ref.event_type == (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        )
        assert link.workflow_event.request_id_ref.request_id
        accepted = [
            e
            for e in (await target.fetch_history()).events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
        ]
        assert (
            len(
                accepted[
                    0
                ].workflow_execution_update_accepted_event_attributes.accepted_request.completion_callbacks
            )
            == 1
        )

        await target.signal(Target.release)
        assert await result_within(caller, 30) == ["ok", "added 7"]

        async def succeeded() -> bool:
            [cb] = await update_callbacks(client, target_id)
            return cb.state == CallbackState.CALLBACK_STATE_SUCCEEDED

        await wait_until(succeeded, timeout=10, what="the callback delivered")
        await target.signal(Target.finish)
        assert await result_within(target, 10) == "target done"


@pytest.mark.timeout(90)
async def test_a_failed_update_or_a_closed_target_fails_the_operation(
    client: Client, task_queue: str
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    target_id = harness.unique("target")
    async with handler_worker(client, task_queue):
        target = await client.start_workflow(Target.run, id=target_id, task_queue=task_queue)

        async def call(n: int) -> Any:
            return await client.start_workflow(
                Caller.run,
                CallerArgs(endpoint, UpdateArgs(target_id, harness.unique("upd"), n)),
                id=harness.unique("caller"),
                task_queue=task_queue,
            )

        unlucky = await call(13)
        await wait_until(
            lambda: _count(update_callbacks(client, target_id), 1),
            timeout=20,
            what="the first update accepted",
        )
        await target.signal(Target.release)
        got = await result_within(unlucky, 30)
        assert got[0] == "error" and "unlucky" in got, got

        # A rejected update completes the operation synchronously: no callback is kept.
        rejected = await call(-1)
        got = await result_within(rejected, 30)
        assert got[0] == "error" and any("negative" in m for m in got), got

    # The target closes before a second update completes: the caller is told so.
    target2_id = harness.unique("target")
    async with handler_worker(client, task_queue):
        target2 = await client.start_workflow(Target.run, id=target2_id, task_queue=task_queue)
        caller = await client.start_workflow(
            Caller.run,
            CallerArgs(endpoint, UpdateArgs(target2_id, harness.unique("upd"), 1)),
            id=harness.unique("caller"),
            task_queue=task_queue,
        )
        await wait_until(
            lambda: _count(update_callbacks(client, target2_id), 1),
            timeout=20,
            what="the update accepted",
        )
        await target2.signal(Target.finish)
        assert await result_within(target2, 10) == "target done"
        got = await result_within(caller, 30)
        assert got[0] == "error", got
        assert any(
            "Workflow Update failed because the Workflow completed before the Update completed."
            in m
            for m in got
        ), got


async def _count(callbacks: Any, n: int) -> bool:
    return len(await callbacks) == n


async def test_callbacks_need_a_request_id(client: Client, task_queue: str) -> None:
    target_id = harness.unique("target")
    async with worker(client, task_queue, workflows=[Target]):
        target = await client.start_workflow(Target.run, id=target_id, task_queue=task_queue)
        with pytest.raises(RPCError) as e:
            await client.workflow_service.update_workflow_execution(
                UpdateWorkflowExecutionRequest(
                    namespace=NAMESPACE,
                    workflow_execution=WorkflowExecution(workflow_id=target_id),
                    wait_policy=WaitPolicy(lifecycle_stage=ACCEPTED),
                    request=Request(
                        meta=Meta(update_id="u1"),
                        input=Input(name="add"),
                        completion_callbacks=[
                            Callback(nexus=Callback.Nexus(url="temporal://system"))
                        ],
                    ),
                )
            )
        assert e.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert "request_id is required when completion_callbacks are set" in e.value.message
        # Updates without callbacks work as ever.
        handle = await target.start_update(
            Target.add, 3, wait_for_stage=WorkflowUpdateStage.ACCEPTED, id="u2"
        )
        await target.signal(Target.release)
        assert await handle.result() == "added 3"
        with pytest.raises(WorkflowUpdateFailedError):
            await target.execute_update(Target.add, -5, id="u3")
        await target.signal(Target.finish)
        await asyncio.wait_for(target.result(), 10)
