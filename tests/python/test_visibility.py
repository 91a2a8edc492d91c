"""Listing and counting workflows: ListWorkflowExecutions / CountWorkflowExecutions through the
SDK's `list_workflows` / `count_workflows` and the `temporal workflow list|count` CLI.

temper writes a run's visibility record in the same commit as the run, so a List right after
an RPC returned sees it; the reference server is eventually consistent, so against it
(`TEMPER_TEST_SERVER=temporal`) the tests poll briefly instead. The same tests run on
temper's SQLite and Cassandra stores.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import NAMESPACE, result_within, wait_until, worker
from test_cli import temporal

T = TypeVar("T")
CUSTOMER = SearchAttributeKey.for_keyword("VisCustomer")


async def seen(read: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str) -> T:
    """`read()` once on temper (read-your-writes); polled until `ok` on the reference server."""
    if harness.server_kind() == "temper":
        value = await read()
        assert ok(value), f"{what}: got {value!r}"
        return value

    async def check() -> T | None:
        value = await read()
        return value if ok(value) else None

    return await wait_until(check, timeout=20, what=what)


async def ids(client: Client, query: str, page_size: int = 1000) -> list[str]:
    return [w.id async for w in client.list_workflows(query, page_size=page_size)]


@workflow.defn
class WaitForSignal:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return "ok"

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class TagAndWait:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, customer: str) -> str:
        workflow.upsert_search_attributes([CUSTOMER.value_set(customer)])
        await workflow.wait_condition(lambda: self.done)
        return customer

    @workflow.signal
    def finish(self) -> None:
        self.done = True


async def test_list_reads_its_own_writes(client: Client, task_queue: str, new_id):
    wf_type = "WaitForSignal"
    query = f"TaskQueue = '{task_queue}'"
    a, b = new_id(), new_id()
    ha = await client.start_workflow(WaitForSignal.run, id=a, task_queue=task_queue)
    await seen(lambda: ids(client, query), lambda got: got == [a], "the started run")
    hb = await client.start_workflow(WaitForSignal.run, id=b, task_queue=task_queue)
    # Newest start first while both run.
    await seen(lambda: ids(client, query), lambda got: got == [b, a], "both runs")
    await hb.terminate("stop")
    running = f"{query} AND ExecutionStatus = 'Running'"
    await seen(lambda: ids(client, running), lambda got: got == [a], "b no longer running")
    terminated = f"{query} AND ExecutionStatus = 'Terminated'"
    await seen(lambda: ids(client, terminated), lambda got: got == [b], "b terminated")
    async with worker(client, task_queue, workflows=[WaitForSignal]):
        await ha.signal(WaitForSignal.finish)
        assert await result_within(ha, 20) == "ok"
    # Running first, then the most recently closed.
    await seen(lambda: ids(client, query), lambda got: got == [a, b], "both closed")
    listed = [w async for w in client.list_workflows(f"WorkflowId = '{a}'")]
    assert listed[0].status == WorkflowExecutionStatus.COMPLETED
    assert listed[0].workflow_type == wf_type
    assert listed[0].task_queue == task_queue
    assert listed[0].close_time is not None and listed[0].close_time >= listed[0].start_time


async def test_count_and_group_by_status(client: Client, task_queue: str, new_id):
    query = f"TaskQueue = '{task_queue}'"
    handles = [
        await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=task_queue)
        for _ in range(3)
    ]
    await handles[0].terminate("stop")
    await handles[1].cancel()
    count = await seen(
        lambda: client.count_workflows(query), lambda c: c.count == 3, "three runs counted"
    )
    assert count.count == 3
    # Cancel is a request: the run stays running until a worker acts on it.
    grouped = await seen(
        lambda: client.count_workflows(f"{query} GROUP BY ExecutionStatus"),
        lambda c: c.count == 3 and len(c.groups) == 2,
        "two status groups",
    )
    groups = {tuple(g.group_values): g.count for g in grouped.groups}
    assert groups == {("Running",): 2, ("Terminated",): 1}
    running = await client.count_workflows(f"{query} AND ExecutionStatus = 'Running'")
    assert running.count in (2, 3) if harness.server_kind() == "temporal" else running.count == 2


async def test_custom_search_attributes(client: Client, task_queue: str, new_id):
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=NAMESPACE,
            search_attributes={"VisCustomer": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD},
        )
    )
    query = f"TaskQueue = '{task_queue}'"
    given = new_id()
    await seen(
        lambda: client.count_workflows("VisCustomer = 'nobody'"),
        lambda c: c.count == 0,
        "the attribute to be queryable",
    )
    await client.start_workflow(
        WaitForSignal.run,
        id=given,
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER, "c-start")]),
    )
    upserted = new_id()
    async with worker(client, task_queue, workflows=[TagAndWait]):
        h = await client.start_workflow(
            TagAndWait.run, "c-upsert", id=upserted, task_queue=task_queue
        )

        async def upserted_yet() -> bool:
            desc = await h.describe()
            return desc.typed_search_attributes.get(CUSTOMER) == "c-upsert"

        await wait_until(upserted_yet, timeout=20, what="the workflow's upsert")
        got = await seen(
            lambda: ids(client, f"{query} AND VisCustomer = 'c-upsert'"),
            lambda got: got == [upserted],
            "the upserted attribute",
        )
        assert got == [upserted]
        await seen(
            lambda: ids(client, f"{query} AND VisCustomer STARTS_WITH 'c-'"),
            lambda got: sorted(got) == sorted([given, upserted]),
            "both customers",
        )
        listed = [w async for w in client.list_workflows(f"WorkflowId = '{given}'")]
        assert listed[0].typed_search_attributes.get(CUSTOMER) == "c-start"
        await h.signal(TagAndWait.finish)
        assert await result_within(h, 20) == "c-upsert"


async def test_paging_while_workflows_start(client: Client, task_queue: str, new_id):
    query = f"TaskQueue = '{task_queue}'"
    first = [new_id() for _ in range(7)]
    for wf_id in first:
        await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=task_queue)
    await seen(lambda: ids(client, query), lambda got: len(got) == 7, "seven runs")
    seen_ids: list[str] = []
    token = None
    pages = 0
    while True:
        resp = await client.workflow_service.list_workflow_executions(
            _list_request(query, 3, token)
        )
        seen_ids.extend(e.execution.workflow_id for e in resp.executions)
        pages += 1
        if pages == 1:
            # New runs sort before the cursor: later pages neither repeat nor skip.
            await client.start_workflow(WaitForSignal.run, id=new_id(), task_queue=task_queue)
        token = resp.next_page_token
        if not token:
            break
    assert sorted(seen_ids) == sorted(first)
    assert len(seen_ids) == len(set(seen_ids))
    assert pages >= 3


def _list_request(query: str, page_size: int, token: bytes | None) -> Any:
    from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

    return ListWorkflowExecutionsRequest(
        namespace=NAMESPACE, query=query, page_size=page_size, next_page_token=token or b""
    )


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "Nope = 1",
            # The reference dev server (1.9.1) words this one differently from Temporal's
            # query converter that temper follows (docs/visibility.md).
            "invalid query: invalid search attribute: Nope"
            if harness.server_kind() == "temporal"
            else "invalid query: invalid expression: column name 'Nope' is not a valid "
            "search attribute",
        ),
        (
            "WorkflowId LIKE 'x%'",
            (
                "invalid query: operation is not supported: operator 'LIKE' not supported for "
                "Keyword type search attribute 'WorkflowId'"
            ),
        ),
    ],
)
async def test_bad_queries_are_invalid_arguments(client: Client, query: str, message: str):
    for call in (
        lambda: ids(client, query),
        lambda: client.count_workflows(query),
    ):
        with pytest.raises(RPCError) as err:
            await call()
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert message in err.value.message


async def test_cli_list_and_count(
    server: harness.ServerProcess, client: Client, task_queue: str, new_id
):
    wf_id = new_id()
    await client.start_workflow(WaitForSignal.run, id=wf_id, task_queue=task_queue)
    query = f"TaskQueue = '{task_queue}'"

    async def listed() -> list[dict[str, Any]]:
        out = await temporal(server, "workflow", "list", "--query", query, "--output", "json")
        return json.loads(out) if out.strip() else []

    got = await seen(listed, lambda rows: len(rows) == 1, "the CLI listing")
    assert got[0]["execution"]["workflowId"] == wf_id
    assert got[0]["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"

    async def counted() -> str:
        return await temporal(server, "workflow", "count", "--query", query)

    out = await seen(counted, lambda o: "1" in o, "the CLI count")
    assert out.split()[-1] == "1", out
