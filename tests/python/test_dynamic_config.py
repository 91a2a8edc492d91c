"""Temporal's dynamic config keys that change what workers see: eager workflow start
(`system.enableEagerWorkflowStart`) and the continue-as-new suggestion
(`limit.historyCount.suggestContinueAsNew`), given to start-dev as
`--dynamic-config-value KEY=VALUE`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.command.v1 import Command, CompleteWorkflowExecutionCommandAttributes
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType, SuggestContinueAsNewReason
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    RespondWorkflowTaskCompletedRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus

import harness
from harness import ServerProcess, event_types, history_events, result_within, worker


@asynccontextmanager
async def server_with(tmp_path: Path, *values: str) -> AsyncIterator[Client]:
    args: list[str] = []
    for v in values:
        args += ["--dynamic-config-value", v]
    srv = ServerProcess(harness.server_kind(), tmp_path / "server", extra_args=args)
    try:
        await srv.start()
        yield await srv.connect()
    finally:
        await srv.stop()


def eager_start(client: Client, queue: str, delay_s: int = 0) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_id=f"wf-eager-{uuid.uuid4()}",
        workflow_type=WorkflowType(name="Eager"),
        task_queue=TaskQueue(name=queue),
        identity="eager-worker",
        request_id=str(uuid.uuid4()),
        request_eager_execution=True,
        workflow_start_delay=Duration(seconds=delay_s) if delay_s else None,
    )


@pytest.mark.timeout(90)
async def test_eager_start_returns_the_first_workflow_task(tmp_path):
    # On by default, as in Temporal; the SDK's CI passes it explicitly.
    async with server_with(tmp_path, "system.enableEagerWorkflowStart=true") as client:
        queue = f"tq-{uuid.uuid4()}"  # no worker polls it
        req = eager_start(client, queue)
        resp = await client.workflow_service.start_workflow_execution(req)
        task = resp.eager_workflow_task
        assert resp.HasField("eager_workflow_task") and task.task_token
        assert task.workflow_execution.run_id == resp.run_id
        assert task.started_event_id == 3 and task.attempt == 1
        assert event_types(task.history.events) == [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
        ]
        started = task.history.events[0].workflow_execution_started_event_attributes
        assert started.eager_execution_accepted
        wt_started = task.history.events[2].workflow_task_started_event_attributes
        assert wt_started.identity == "eager-worker"

        # The caller's worker completes the task it was handed.
        await client.workflow_service.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace=client.namespace,
                task_token=task.task_token,
                identity="eager-worker",
                commands=[
                    Command(
                        command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
                        complete_workflow_execution_command_attributes=(
                            CompleteWorkflowExecutionCommandAttributes()
                        ),
                    )
                ],
            )
        )
        handle = client.get_workflow_handle(req.workflow_id, run_id=resp.run_id)
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
        assert event_types(await history_events(handle)) == [
            "WORKFLOW_EXECUTION_STARTED",
            "WORKFLOW_TASK_SCHEDULED",
            "WORKFLOW_TASK_STARTED",
            "WORKFLOW_TASK_COMPLETED",
            "WORKFLOW_EXECUTION_COMPLETED",
        ]

        # A start delay leaves no task to hand over: no eager task, as in Temporal.
        delayed = eager_start(client, queue, delay_s=60)
        resp = await client.workflow_service.start_workflow_execution(delayed)
        assert not resp.HasField("eager_workflow_task")
        handle = client.get_workflow_handle(delayed.workflow_id, run_id=resp.run_id)
        events = await history_events(handle)
        assert not events[0].workflow_execution_started_event_attributes.eager_execution_accepted
        await handle.terminate()


@pytest.mark.timeout(90)
async def test_eager_start_switched_off(tmp_path):
    async with server_with(tmp_path, "system.enableEagerWorkflowStart=false") as client:
        req = eager_start(client, f"tq-{uuid.uuid4()}")
        resp = await client.workflow_service.start_workflow_execution(req)
        assert not resp.HasField("eager_workflow_task")
        handle = client.get_workflow_handle(req.workflow_id, run_id=resp.run_id)
        events = await history_events(handle)
        assert event_types(events) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
        assert not events[0].workflow_execution_started_event_attributes.eager_execution_accepted
        await handle.terminate()


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, n: int) -> int:
        for _ in range(n):
            await workflow.sleep(timedelta(milliseconds=10))
        return n


def suggestions(events: Sequence) -> list[tuple[int, bool, list[int]]]:
    return [
        (
            e.event_id,
            e.workflow_task_started_event_attributes.suggest_continue_as_new,
            list(e.workflow_task_started_event_attributes.suggest_continue_as_new_reasons),
        )
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]


@pytest.mark.timeout(90)
async def test_continue_as_new_is_suggested_from_the_configured_event_count(tmp_path):
    async with server_with(tmp_path, "limit.historyCount.suggestContinueAsNew=10") as client:
        queue = f"tq-{uuid.uuid4()}"
        async with worker(client, queue, workflows=[Sleeper]):
            handle = await client.start_workflow(
                Sleeper.run, 5, id=f"wf-can-{uuid.uuid4()}", task_queue=queue
            )
            assert await result_within(handle, 30) == 5
        seen = suggestions(await history_events(handle))
        assert len(seen) >= 5
        too_many = SuggestContinueAsNewReason.SUGGEST_CONTINUE_AS_NEW_REASON_TOO_MANY_HISTORY_EVENTS
        for event_id, suggested, reasons in seen:
            # The count is the started event's own id.
            assert suggested == (event_id >= 10), (event_id, suggested)
            assert reasons == ([too_many] if event_id >= 10 else []), (event_id, reasons)
        assert any(s for _, s, _ in seen) and not all(s for _, s, _ in seen)
