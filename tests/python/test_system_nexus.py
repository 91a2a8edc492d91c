"""System Nexus: a workflow signal-with-starts another workflow through the reserved Nexus
endpoint `__temporal_system` (`workflow.signal_with_start_workflow` in the Python SDK), and
the server itself carries the operation out, with no endpoint registered and no Nexus
worker. The caller's history, the target's history and the links between them, a target
that runs already, a target whose id may not be reused, and a request the server refuses.
Also the links signals carry when a Nexus handler (a worker) sends them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from nexusrpc.handler import StartOperationContext, service_handler, sync_operation
from temporalio import nexus, workflow
from temporalio.api.common.v1 import Link, WorkflowExecution
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    SignalWithStartWorkflowExecutionResponse,
)
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

import harness
from harness import (
    NAMESPACE,
    ServerProcess,
    event_types,
    history_events,
    result_within,
    wait_for_event,
    worker,
)

FLAGS = [
    "--dynamic-config-value", "history.enableSignalWithStartFromWorkflow=true",
    # The reference resolves a signal's request id in describe only with these two.
    "--dynamic-config-value", "history.enableChasm=true",
    "--dynamic-config-value", "history.enableCHASMSignalBacklinks=true",
    "--dynamic-config-value", 'system.refreshNexusEndpointsMinWait="0s"',
]  # fmt: skip

SYSTEM_ENDPOINT = "__temporal_system"
SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
OPERATION = "SignalWithStartWorkflowExecution"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """The reference serves System Nexus only with `history.enableSignalWithStartFromWorkflow`,
    and lists signals' request ids in describe only with `history.enableCHASMSignalBacklinks`
    (temper always does both and accepts the flags)."""
    async with harness.started_server(tmp_path / "server", FLAGS) as srv:
        yield srv


@workflow.defn
class Target:
    """Waits for its `greet` signal; returns its input and the signal's."""

    def __init__(self) -> None:
        self.greetings: list[str] = []

    @workflow.run
    async def run(self, arg: str) -> str:
        await workflow.wait_condition(lambda: bool(self.greetings))
        return f"{arg}:{','.join(self.greetings)}"

    @workflow.signal
    def greet(self, who: str) -> None:
        self.greetings.append(who)


@dataclass
class SwsArgs:
    target_id: str
    task_queue: str
    reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE
    conflict_policy: WorkflowIDConflictPolicy | None = None


@workflow.defn
class Caller:
    """Signal-with-starts a Target through System Nexus; returns the target's id, or the
    failure's messages."""

    @workflow.run
    async def run(self, a: SwsArgs) -> list[str]:
        try:
            handle = await workflow.signal_with_start_workflow(
                Target.run,
                "in",
                id=a.target_id,
                task_queue=a.task_queue,
                signal=Target.greet,
                signal_args="caller",
                id_reuse_policy=a.reuse_policy,
                id_conflict_policy=a.conflict_policy,
                memo={"k": "v"},
            )
        except Exception as e:  # noqa: BLE001 - the test reads what the workflow saw
            chain = []
            err: BaseException | None = e
            while err is not None:
                chain.append(f"{type(err).__name__}: {err}")
                err = err.__cause__
            return ["error", *chain]
        return ["ok", handle.id]


def of_type(events: list[HistoryEvent], name: str) -> list[HistoryEvent]:
    return [e for e in events if EventType.Name(e.event_type) == f"EVENT_TYPE_{name}"]


def event_link(namespace: str, wid: str, run_id: str, event_id: int, event_type: int) -> Link:
    return Link(
        workflow_event=Link.WorkflowEvent(
            namespace=namespace,
            workflow_id=wid,
            run_id=run_id,
            event_ref=Link.WorkflowEvent.EventReference(event_id=event_id, event_type=event_type),
        )
    )


def signal_link(wid: str, run_id: str, request_id: str) -> Link:
    return Link(
        workflow_event=Link.WorkflowEvent(
            namespace=NAMESPACE,
            workflow_id=wid,
            run_id=run_id,
            request_id_ref=Link.WorkflowEvent.RequestIdReference(
                request_id=request_id,
                event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            ),
        )
    )


async def request_id_infos(client: Client, wid: str, run_id: str) -> dict[str, tuple[int, int]]:
    d = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=wid, run_id=run_id)
        )
    )
    return {
        k: (v.event_type, v.event_id) for k, v in d.workflow_extended_info.request_id_infos.items()
    }


@pytest.mark.timeout(60)
async def test_signal_with_start_starts_the_target_with_links_both_ways(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    target_id = new_id()
    async with worker(client, task_queue, workflows=[Caller, Target]):
        caller = await client.start_workflow(
            Caller.run, SwsArgs(target_id, task_queue), id=new_id(), task_queue=task_queue
        )
        assert await result_within(caller, 30) == ["ok", target_id]
        target = client.get_workflow_handle(target_id)
        assert await result_within(target, 30) == "in:caller"

    events = await history_events(caller)
    assert event_types(events)[4:6] == ["NEXUS_OPERATION_SCHEDULED", "NEXUS_OPERATION_COMPLETED"]
    scheduled = events[4].nexus_operation_scheduled_event_attributes
    assert (scheduled.endpoint, scheduled.service, scheduled.operation) == (
        SYSTEM_ENDPOINT,
        SERVICE,
        OPERATION,
    )
    assert scheduled.endpoint_id == ""
    request_id = scheduled.request_id
    # The operation completes synchronously with the signal-with-start's response.
    completed = events[5].nexus_operation_completed_event_attributes
    assert completed.request_id == request_id
    assert completed.result.metadata["encoding"] == b"binary/protobuf"
    resp = SignalWithStartWorkflowExecutionResponse.FromString(completed.result.data)
    target_run_id = resp.run_id
    assert resp.started
    assert resp.signal_link == signal_link(target_id, target_run_id, request_id)
    # The caller's event links to the target's signal, by the operation's request id.
    assert list(events[5].links) == [signal_link(target_id, target_run_id, request_id)]

    caller_run_id = events[0].workflow_execution_started_event_attributes.original_execution_run_id
    back = event_link(
        NAMESPACE, caller.id, caller_run_id, 5, EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED
    )
    target_events = await history_events(target)
    assert event_types(target_events)[:2] == [
        "WORKFLOW_EXECUTION_STARTED",
        "WORKFLOW_EXECUTION_SIGNALED",
    ]
    started, signaled = target_events[0], target_events[1]
    # Both of the target's events link back to the caller's scheduled event.
    assert list(started.links) == [back]
    assert list(signaled.links) == [back]
    attrs = started.workflow_execution_started_event_attributes
    assert attrs.workflow_type.name == "Target"
    assert attrs.task_queue.name == task_queue
    assert "k" in attrs.memo.fields
    s = signaled.workflow_execution_signaled_event_attributes
    assert (s.signal_name, s.request_id) == ("greet", request_id)
    # The signal's request id resolves to its event.
    infos = await request_id_infos(client, target_id, target_run_id)
    assert infos[request_id] == (EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, 2)


@pytest.mark.timeout(60)
async def test_signal_with_start_signals_a_running_target(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    target_id = new_id()
    target_tq = f"{task_queue}-target"
    # The target runs already, with no worker yet: it is signaled, not started again.
    target = await client.start_workflow(Target.run, "first", id=target_id, task_queue=target_tq)
    async with worker(client, task_queue, workflows=[Caller]):
        caller = await client.start_workflow(
            Caller.run, SwsArgs(target_id, target_tq), id=new_id(), task_queue=task_queue
        )
        assert await result_within(caller, 30) == ["ok", target_id]
    events = await history_events(caller)
    completed = of_type(events, "NEXUS_OPERATION_COMPLETED")[0]
    resp = SignalWithStartWorkflowExecutionResponse.FromString(
        completed.nexus_operation_completed_event_attributes.result.data
    )
    assert (resp.run_id, resp.started) == (target.first_execution_run_id, False)
    async with worker(client, target_tq, workflows=[Target]):
        assert await result_within(target, 30) == "first:caller"
    target_events = await history_events(target)
    [signaled] = of_type(target_events, "WORKFLOW_EXECUTION_SIGNALED")
    request_id = of_type(events, "NEXUS_OPERATION_SCHEDULED")[
        0
    ].nexus_operation_scheduled_event_attributes.request_id
    assert list(completed.links) == [signal_link(target_id, resp.run_id, request_id)]
    assert len(signaled.links) == 1
    assert signaled.links[0].workflow_event.workflow_id == caller.id
    infos = await request_id_infos(client, target_id, resp.run_id)
    assert infos[request_id] == (
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        signaled.event_id,
    )


@pytest.mark.timeout(60)
async def test_a_target_id_that_may_not_be_reused_fails_the_operation(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    target_id = new_id()
    done = await client.start_workflow(Target.run, "x", id=target_id, task_queue=task_queue)
    await done.terminate("make way")
    async with worker(client, task_queue, workflows=[Caller]):
        caller = await client.start_workflow(
            Caller.run,
            SwsArgs(target_id, task_queue, reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE),
            id=new_id(),
            task_queue=task_queue,
        )
        result = await result_within(caller, 30)
    assert result[0] == "error"
    events = await history_events(caller)
    [failed] = of_type(events, "NEXUS_OPERATION_FAILED")
    f = failed.nexus_operation_failed_event_attributes.failure
    assert f.message == "nexus operation completed unsuccessfully"
    info = f.nexus_operation_execution_failure_info
    assert (info.endpoint, info.service, info.operation) == (SYSTEM_ENDPOINT, SERVICE, OPERATION)
    # The cause is the signal-with-start's error, as the server words it.
    assert f.cause.message == (
        "WorkflowExecutionAlreadyStarted: Workflow execution already finished. "
        f"WorkflowId: {target_id}, RunId: {done.first_execution_run_id}. "
        "Workflow Id reuse policy: reject duplicate workflow Id."
    )
    assert f.cause.WhichOneof("failure_info") == "server_failure_info"
    assert f.cause.server_failure_info.non_retryable


@pytest.mark.timeout(60)
async def test_a_request_the_server_refuses_fails_the_workflow_task(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    async with worker(client, task_queue, workflows=[Caller]):
        caller = await client.start_workflow(
            Caller.run,
            SwsArgs(new_id(), task_queue, conflict_policy=WorkflowIDConflictPolicy.FAIL),
            id=new_id(),
            task_queue=task_queue,
        )
        events = await wait_for_event(caller, "WORKFLOW_TASK_FAILED", timeout=20)
        await caller.terminate("done")
    assert not of_type(events, "NEXUS_OPERATION_SCHEDULED")
    a = of_type(events, "WORKFLOW_TASK_FAILED")[0].workflow_task_failed_event_attributes
    assert (
        a.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
    )
    assert a.failure.message == (
        "BadScheduleNexusOperationAttributes: Invalid WorkflowIDConflictPolicy: "
        "WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation."
    )


# ------------------------------------------------- signals a Nexus handler (worker) sends


@service_handler(name="Signaler")
class SignalerHandler:
    @sync_operation
    async def signal(self, _ctx: StartOperationContext, target_id: str) -> str:
        await nexus.client().get_workflow_handle(target_id).signal(Target.greet, "handler")
        return "signaled"


@workflow.defn
class NexusCaller:
    @workflow.run
    async def run(self, endpoint: str, target_id: str) -> str:
        c = workflow.create_nexus_client(service="Signaler", endpoint=endpoint)
        return await c.execute_operation(
            "signal", target_id, schedule_to_close_timeout=timedelta(seconds=20)
        )


@pytest.mark.timeout(60)
async def test_a_handlers_signal_links_to_its_caller_and_back(
    client: Client, task_queue: str, new_id: Callable[[], str]
) -> None:
    endpoint = await harness.create_worker_endpoint(client, task_queue)
    target_id = new_id()
    async with worker(
        client,
        task_queue,
        workflows=[NexusCaller, Target],
        nexus_service_handlers=[SignalerHandler()],
    ):
        target = await client.start_workflow(Target.run, "t", id=target_id, task_queue=task_queue)
        caller = await client.start_workflow(
            NexusCaller.run, args=[endpoint, target_id], id=new_id(), task_queue=task_queue
        )
        assert await result_within(caller, 30) == "signaled"
        assert await result_within(target, 30) == "t:handler"
    events = await history_events(caller)
    caller_run_id = events[0].workflow_execution_started_event_attributes.original_execution_run_id
    [scheduled] = of_type(events, "NEXUS_OPERATION_SCHEDULED")
    [completed] = of_type(events, "NEXUS_OPERATION_COMPLETED")
    [signaled] = of_type(await history_events(target), "WORKFLOW_EXECUTION_SIGNALED")
    # Forward: the signal links to the caller's scheduled event (the link the handler got).
    assert list(signaled.links) == [
        event_link(
            NAMESPACE,
            caller.id,
            caller_run_id,
            scheduled.event_id,
            EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED,
        )
    ]
    # Backward: the signal's response linked to its event by request id; the handler passed
    # it on with its synchronous result, and the caller's completed event carries it.
    request_id = signaled.workflow_execution_signaled_event_attributes.request_id
    assert list(completed.links) == [
        signal_link(target_id, target.first_execution_run_id or "", request_id)
    ]
