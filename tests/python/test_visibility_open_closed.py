"""The deprecated ListOpenWorkflowExecutions / ListClosedWorkflowExecutions and their filters
(start time, workflow id, workflow type, close status), which older tools still call."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.filter.v1 import (
    StartTimeFilter,
    StatusFilter,
    WorkflowExecutionFilter,
    WorkflowTypeFilter,
)
from temporalio.api.workflowservice.v1 import (
    ListClosedWorkflowExecutionsRequest,
    ListOpenWorkflowExecutionsRequest,
)
from temporalio.client import Client

from harness import result_within, worker
from test_visibility import WaitForSignal, seen


def ts(t: datetime) -> Timestamp:
    out = Timestamp()
    out.FromDatetime(t)
    return out


def window() -> StartTimeFilter:
    now = datetime.now(timezone.utc)
    return StartTimeFilter(
        earliest_time=ts(now - timedelta(minutes=5)), latest_time=ts(now + timedelta(minutes=5))
    )


async def open_ids(client: Client, **filters: object) -> set[str]:
    resp = await client.workflow_service.list_open_workflow_executions(
        ListOpenWorkflowExecutionsRequest(
            namespace=client.namespace, maximum_page_size=1000, start_time_filter=window(),
            **filters,  # type: ignore[arg-type]
        )
    )  # fmt: skip
    return {e.execution.workflow_id for e in resp.executions}


async def closed_ids(client: Client, **filters: object) -> dict[str, int]:
    resp = await client.workflow_service.list_closed_workflow_executions(
        ListClosedWorkflowExecutionsRequest(
            namespace=client.namespace, maximum_page_size=1000, start_time_filter=window(),
            **filters,  # type: ignore[arg-type]
        )
    )  # fmt: skip
    return {e.execution.workflow_id: e.status for e in resp.executions}


@pytest.mark.timeout(90)
async def test_list_open_and_closed_with_filters(client, task_queue):
    prefix = f"oc-{uuid.uuid4().hex[:8]}"
    running, done, killed = f"{prefix}-running", f"{prefix}-done", f"{prefix}-killed"
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        handles = {
            wf_id: await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=task_queue)
            for wf_id in (running, done, killed)
        }
        await handles[done].signal(WaitForSignal.finish)
        assert await result_within(handles[done], 30) == "ok"
        await handles[killed].terminate("test")

    mine = {running, done, killed}
    await seen(
        lambda: open_ids(client),
        lambda got: running in got and not ({done, killed} & got),
        "the running workflow is open, the others are not",
    )
    await seen(
        lambda: closed_ids(client),
        lambda got: {done, killed} <= set(got) and running not in got,
        "the two closed workflows are closed",
    )
    by_id = await seen(
        lambda: closed_ids(client, execution_filter=WorkflowExecutionFilter(workflow_id=done)),
        lambda got: set(got) == {done},
        "closed, by workflow id",
    )
    assert by_id[done] == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
    await seen(
        lambda: closed_ids(
            client,
            status_filter=StatusFilter(
                status=WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED
            ),
        ),
        lambda got: killed in got and done not in got,
        "closed, by status",
    )
    await seen(
        lambda: open_ids(client, type_filter=WorkflowTypeFilter(name="WaitForSignal")),
        lambda got: running in got,
        "open, by workflow type",
    )
    assert not (mine & await open_ids(client, type_filter=WorkflowTypeFilter(name="NoSuchType")))
    # A start-time window before these workflows lists none of them.
    past = datetime.now(timezone.utc) - timedelta(hours=2)
    resp = await client.workflow_service.list_closed_workflow_executions(
        ListClosedWorkflowExecutionsRequest(
            namespace=client.namespace,
            maximum_page_size=1000,
            start_time_filter=StartTimeFilter(
                earliest_time=ts(past - timedelta(hours=1)), latest_time=ts(past)
            ),
        )
    )
    assert not (mine & {e.execution.workflow_id for e in resp.executions})
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        await handles[running].signal(WaitForSignal.finish)
        assert await result_within(handles[running], 30) == "ok"
