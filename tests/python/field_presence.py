"""Which fields a server sets in its answers, to compare temper with the reference server.

SDKs read some fields without checking that they are there (the TypeScript worker turns an
absent `schedule_to_close_timeout` of an activity task into "Expected
scheduleToCloseTimeout to be a timestamp, got null"). The Temporal server fills every
Duration and Timestamp it knows, zero included; temper must set the same ones.

`run_scenario` drives one workflow through the raw WorkflowService API (no SDK worker, so
both servers see byte-for-byte the same requests) and returns, for each answer it got, the
set of field paths present in it: a workflow task poll, an activity task poll, describe
while an activity is pending and after the close, and every history event by type.

Run this file to print the differences between the two servers:
    .venv/bin/python tests/python/field_presence.py
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio.api.command.v1 import (
    Command,
    CompleteWorkflowExecutionCommandAttributes,
    ScheduleActivityTaskCommandAttributes,
    StartTimerCommandAttributes,
)
from temporalio.api.common.v1 import (
    ActivityType,
    Payload,
    Payloads,
    WorkflowExecution,
    WorkflowType,
)
from temporalio.api.enums.v1 import CommandType, EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    GetWorkflowExecutionHistoryRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    PollWorkflowTaskQueueResponse,
    RespondActivityTaskCompletedRequest,
    RespondWorkflowTaskCompletedRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client

NAMESPACE = "default"
RPC_TIMEOUT = timedelta(seconds=10)
POLL_TIMEOUT = timedelta(seconds=20)

# A message field is "present" when it is set, even to an empty message (a zero Duration);
# a scalar field when it is not its default (proto3 keeps no presence for scalars).
Presence = dict[str, set[str]]


def field_paths(message: Message, prefix: str = "") -> set[str]:
    """Every field path set in `message`, repeated and map entries merged under `[]`."""
    paths: set[str] = set()
    for field, value in message.ListFields():
        path = f"{prefix}{field.name}"
        paths.add(path)
        if field.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        if field.message_type.GetOptions().map_entry:
            for entry in value.values():
                if isinstance(entry, Message):
                    paths |= field_paths(entry, f"{path}[].")
        elif _is_repeated(field):
            for item in value:
                paths |= field_paths(item, f"{path}[].")
        elif not _is_leaf(value):
            paths |= field_paths(value, f"{path}.")
    return paths


def _is_repeated(field: FieldDescriptor) -> bool:
    # `label` is gone from newer protobuf runtimes; `is_repeated` is not in older ones.
    is_repeated = getattr(field, "is_repeated", None)
    if is_repeated is not None:
        return bool(is_repeated)
    return field.label == FieldDescriptor.LABEL_REPEATED


def _is_leaf(message: Message) -> bool:
    # A Duration or Timestamp is a value: its presence matters, its parts do not.
    return message.DESCRIPTOR.full_name in ("google.protobuf.Duration", "google.protobuf.Timestamp")


def time_fields(paths: set[str]) -> set[str]:
    """The paths whose field is a Duration or a Timestamp (by name, as the protos name them)."""
    suffixes = ("_time", "_timeout", "_interval", "_duration", "_timestamp", "_delay", "_ttl")
    return {p for p in paths if p.rsplit(".", 1)[-1].endswith(suffixes)}


async def run_scenario(address: str, task_queue: str, workflow_id: str) -> Presence:
    """Drive one workflow (an activity with only start-to-close, a timer, a signal)."""
    client = await Client.connect(address, namespace=NAMESPACE)
    svc = client.workflow_service
    out: Presence = {}

    def record(name: str, message: Message) -> None:
        out.setdefault(name, set()).update(field_paths(message))

    await svc.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Presence"),
            task_queue=TaskQueue(name=task_queue),
            identity="presence-test",
            request_id=f"{workflow_id}-start",
        ),
        timeout=RPC_TIMEOUT,
    )
    execution = WorkflowExecution(workflow_id=workflow_id)

    task = await _poll_workflow_task(svc, task_queue)
    record("PollWorkflowTaskQueueResponse", _without_history(task))
    await svc.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(
            namespace=NAMESPACE,
            task_token=task.task_token,
            identity="presence-test",
            commands=[
                Command(
                    command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
                    schedule_activity_task_command_attributes=ScheduleActivityTaskCommandAttributes(
                        activity_id="a1",
                        activity_type=ActivityType(name="Act"),
                        task_queue=TaskQueue(name=task_queue),
                        start_to_close_timeout=Duration(seconds=30),
                    ),
                ),
                Command(
                    command_type=CommandType.COMMAND_TYPE_START_TIMER,
                    # Long enough that describe (below) sees the run between workflow tasks.
                    start_timer_command_attributes=StartTimerCommandAttributes(
                        timer_id="t1", start_to_fire_timeout=Duration(seconds=3)
                    ),
                ),
            ],
        ),
        timeout=RPC_TIMEOUT,
    )

    activity = await _poll(
        lambda: svc.poll_activity_task_queue(
            PollActivityTaskQueueRequest(
                namespace=NAMESPACE, task_queue=TaskQueue(name=task_queue), identity="presence-test"
            ),
            timeout=POLL_TIMEOUT,
        )
    )
    record("PollActivityTaskQueueResponse", activity)
    record(
        "DescribeWorkflowExecutionResponse(running)",
        await svc.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=NAMESPACE, execution=execution),
            timeout=RPC_TIMEOUT,
        ),
    )
    await svc.respond_activity_task_completed(
        RespondActivityTaskCompletedRequest(
            namespace=NAMESPACE,
            task_token=activity.task_token,
            result=Payloads(payloads=[Payload(data=b"1")]),
            identity="presence-test",
        ),
        timeout=RPC_TIMEOUT,
    )
    await svc.signal_workflow_execution(
        SignalWorkflowExecutionRequest(
            namespace=NAMESPACE,
            workflow_execution=execution,
            signal_name="sig",
            identity="presence-test",
            request_id=f"{workflow_id}-signal",
        ),
        timeout=RPC_TIMEOUT,
    )

    # Complete workflow tasks with no commands until the timer has fired, then close.
    deadline = time.monotonic() + 30
    while True:
        task = await _poll_workflow_task(svc, task_queue)
        record("PollWorkflowTaskQueueResponse", _without_history(task))
        fired = any(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in task.history.events)
        commands = []
        if fired:
            commands.append(
                Command(
                    command_type=CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
                    complete_workflow_execution_command_attributes=CompleteWorkflowExecutionCommandAttributes(),
                )
            )
        elif time.monotonic() > deadline:
            raise TimeoutError("the timer never fired")
        await svc.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(
                namespace=NAMESPACE,
                task_token=task.task_token,
                identity="presence-test",
                commands=commands,
            ),
            timeout=RPC_TIMEOUT,
        )
        if fired:
            break

    history = await svc.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(namespace=NAMESPACE, execution=execution),
        timeout=RPC_TIMEOUT,
    )
    for event in history.history.events:
        record(f"event {EventType.Name(event.event_type).removeprefix('EVENT_TYPE_')}", event)
    record(
        "DescribeWorkflowExecutionResponse(closed)",
        await svc.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=NAMESPACE, execution=execution),
            timeout=RPC_TIMEOUT,
        ),
    )
    return out


def _without_history(task: PollWorkflowTaskQueueResponse) -> PollWorkflowTaskQueueResponse:
    # Events are compared from GetWorkflowExecutionHistory, one type at a time.
    copy = PollWorkflowTaskQueueResponse()
    copy.CopyFrom(task)
    copy.ClearField("history")
    return copy


async def _poll_workflow_task(svc, task_queue: str) -> PollWorkflowTaskQueueResponse:
    return await _poll(
        lambda: svc.poll_workflow_task_queue(
            PollWorkflowTaskQueueRequest(
                namespace=NAMESPACE, task_queue=TaskQueue(name=task_queue), identity="presence-test"
            ),
            timeout=POLL_TIMEOUT,
        )
    )


async def _poll(call):
    """Long-poll until a task comes (an empty answer means the poll timed out)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = await call()
        if response.task_token:
            return response
    raise TimeoutError("no task within 30 s")


def differences(reference: Presence, temper: Presence) -> dict[str, tuple[set[str], set[str]]]:
    """Per answer: (paths only the reference set, paths only temper set)."""
    out = {}
    for name in sorted(reference.keys() | temper.keys()):
        ref, ours = reference.get(name, set()), temper.get(name, set())
        if ref != ours:
            out[name] = (ref - ours, ours - ref)
    return out


async def _main() -> None:
    import harness
    from field_presence_sdk import run_sdk_scenario

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("temporal", "temper"):
            server = harness.ServerProcess(kind, Path(tmp) / kind)
            await server.start()
            try:
                results[kind] = await run_scenario(server.address, "presence-tq", "presence-wf")
                sdk = await run_sdk_scenario(await server.connect(), "presence-sdk", "presence-sdk")
                for name, paths in sdk.items():
                    results[kind].setdefault(name, set()).update(paths)
            finally:
                await server.stop()
    for name, (missing, extra) in differences(results["temporal"], results["temper"]).items():
        print(name)
        for p in sorted(missing):
            print(f"  only reference: {p}")
        for p in sorted(extra):
            print(f"  only temper:    {p}")


if __name__ == "__main__":
    asyncio.run(_main())
