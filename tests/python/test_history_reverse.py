"""GetWorkflowExecutionHistoryReverse: a run's events newest first, paged, for a running and a
closed run, and `temporal workflow show --reverse`."""

from __future__ import annotations

import json

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import result_within, worker
from test_cli import temporal


@workflow.defn
class Collector:
    """Waits for `n` signals, then returns them joined."""

    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.signal
    def add(self, item: str) -> None:
        self.got.append(item)

    @workflow.run
    async def run(self, n: int) -> str:
        await workflow.wait_condition(lambda: len(self.got) >= n)
        return ",".join(self.got)


async def reverse_pages(
    client: Client, wf_id: str, run_id: str = "", page_size: int = 0
) -> list[list[HistoryEvent]]:
    pages: list[list[HistoryEvent]] = []
    token = b""
    while True:
        resp = await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=wf_id, run_id=run_id),
                maximum_page_size=page_size,
                next_page_token=token,
            )
        )
        pages.append(list(resp.history.events))
        token = resp.next_page_token
        if not token:
            return pages
        assert len(pages) < 100, "paging does not end"


@pytest.mark.timeout(60)
async def test_reverse_history_pages_newest_first(client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[Collector]):
        handle = await client.start_workflow(Collector.run, 6, id=wf_id, task_queue=task_queue)
        for i in range(3):
            await handle.signal(Collector.add, f"s{i}")

        # Running: the newest events first, ending at the first event.
        forward = [e.event_id async for e in handle.fetch_history_events()]
        running = [e.event_id for page in await reverse_pages(client, wf_id) for e in page]
        assert running[: len(forward)] == sorted(running, reverse=True)[: len(forward)]
        assert running[-1] == 1
        assert set(forward) <= set(running) | {max(forward) + 1}

        for i in range(3, 6):
            await handle.signal(Collector.add, f"s{i}")
        assert await result_within(handle, 30) == "s0,s1,s2,s3,s4,s5"

    # Closed: every event exactly once, newest first, over several pages. (Temporal pages by
    # stored batches, so its pages may be larger than asked; temper's are at most the size.)
    history = [e async for e in handle.fetch_history_events()]
    pages = await reverse_pages(client, wf_id, handle.result_run_id or "", page_size=4)
    assert len(pages) > 1 and all(pages), [len(p) for p in pages]
    if harness.server_kind() == "temper":
        assert all(len(p) <= 4 for p in pages), [len(p) for p in pages]
    got = [e for page in pages for e in page]
    assert [e.event_id for e in got] == [e.event_id for e in reversed(history)]
    assert got[0].event_type == history[-1].event_type
    assert got == list(reversed(history))


@pytest.mark.timeout(60)
async def test_reverse_history_errors(client, task_queue, new_id):
    with pytest.raises(RPCError) as missing:
        await reverse_pages(client, new_id())
    assert missing.value.status == RPCStatusCode.NOT_FOUND

    with pytest.raises(RPCError) as no_id:
        await client.workflow_service.get_workflow_execution_history_reverse(
            GetWorkflowExecutionHistoryReverseRequest(
                namespace=client.namespace, execution=WorkflowExecution()
            )
        )
    assert no_id.value.status == RPCStatusCode.INVALID_ARGUMENT


@pytest.mark.timeout(90)
async def test_cli_show_reverse(server, client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[Collector]):
        handle = await client.start_workflow(Collector.run, 1, id=wf_id, task_queue=task_queue)
        await handle.signal(Collector.add, "only")
        assert await result_within(handle, 30) == "only"
    out = await temporal(
        server, "workflow", "show", "--workflow-id", wf_id, "--reverse", "--output", "json"
    )
    events = json.loads(out)["events"]
    ids = [int(e["eventId"]) for e in events]
    assert ids == sorted(ids, reverse=True) and ids[-1] == 1, ids
    assert events[0]["eventType"] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
