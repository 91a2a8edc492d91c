"""Memo and search attributes: given at start, upserted by the workflow, shown by describe and
recorded in history.

The dev server registers no custom search attributes by default (`temporal server start-dev`
1.9.1 / server 1.32: ListSearchAttributes returns only system attributes), so the tests register
the classic dev-server set through the operator service when the server does not already have
them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, IndexedValueType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.converter import decode_typed_search_attributes

from harness import NAMESPACE, history_events, result_within, wait_for_event, wait_until, worker

ET = EventType

KEYWORD = SearchAttributeKey.for_keyword("CustomKeywordField")
INT = SearchAttributeKey.for_int("CustomIntField")
BOOL = SearchAttributeKey.for_bool("CustomBoolField")
DOUBLE = SearchAttributeKey.for_float("CustomDoubleField")
DATETIME = SearchAttributeKey.for_datetime("CustomDatetimeField")
TEXT = SearchAttributeKey.for_text("CustomTextField")
KEYWORD_LIST = SearchAttributeKey.for_keyword_list("CustomKeywordListField")

CUSTOM_ATTRIBUTES = {
    "CustomKeywordField": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "CustomIntField": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "CustomBoolField": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "CustomDoubleField": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "CustomDatetimeField": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "CustomTextField": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "CustomKeywordListField": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


async def ensure_custom_search_attributes(client: Client) -> None:
    """Register the attributes the tests use unless the server already has them."""

    async def registered() -> dict[str, int]:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=NAMESPACE)
        )
        return dict(listed.custom_attributes)

    have = await registered()
    missing = {k: v for k, v in CUSTOM_ATTRIBUTES.items() if k not in have}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=NAMESPACE, search_attributes=missing)
        )

    async def all_there() -> bool:
        have = await registered()
        return all(have.get(k) == v for k, v in CUSTOM_ATTRIBUTES.items())

    await wait_until(all_there, timeout=20, what="custom search attributes to be registered")


# --------------------------------------------------------------------------- workflows


@workflow.defn
class UpsertProperties:
    """Upserts search attributes and memo in two steps (each after a signal), then returns
    what it sees of both."""

    def __init__(self) -> None:
        self.step = 0

    @workflow.signal
    def next_step(self) -> None:
        self.step += 1

    def seen(self) -> dict[str, Any]:
        sa = workflow.info().typed_search_attributes
        return {
            "keyword": sa.get(KEYWORD),
            "int": sa.get(INT),
            "keyword_list": sa.get(KEYWORD_LIST),
            "memo": dict(workflow.memo()),
        }

    @workflow.run
    async def run(self) -> dict[str, Any]:
        at_start = self.seen()
        workflow.upsert_search_attributes(
            [
                KEYWORD.value_set("upserted"),
                INT.value_set(42),
                BOOL.value_set(True),
                DOUBLE.value_set(2.5),
                DATETIME.value_set(datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
                TEXT.value_set("some searchable text"),
                KEYWORD_LIST.value_set(["a", "b"]),
            ]
        )
        workflow.upsert_memo({"status": "halfway", "owner": None})
        after_first = self.seen()
        await workflow.wait_condition(lambda: self.step >= 1)
        workflow.upsert_search_attributes([INT.value_unset(), KEYWORD.value_set("second")])
        workflow.upsert_memo({"status": "done", "extra": {"nested": [1, 2]}})
        await workflow.wait_condition(lambda: self.step >= 2)
        return {"at_start": at_start, "after_first": after_first, "at_end": self.seen()}


@workflow.defn
class UpsertUnknownAttribute:
    @workflow.run
    async def run(self) -> None:
        workflow.upsert_search_attributes(
            [SearchAttributeKey.for_keyword("NoSuchAttributeAnywhere").value_set("x")]
        )
        await workflow.wait_condition(lambda: False)


WORKFLOWS = [UpsertProperties, UpsertUnknownAttribute]


# --------------------------------------------------------------------------- helpers


async def raw_info(client: Client, workflow_id: str) -> Any:
    described = await client.workflow_service.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(
            namespace=NAMESPACE, execution=WorkflowExecution(workflow_id=workflow_id)
        )
    )
    return described.workflow_execution_info


def decode_memo(client: Client, memo: Any) -> dict[str, Any]:
    convert = client.data_converter.payload_converter
    return {k: convert.from_payload(v) for k, v in memo.fields.items()}


def custom_only(sa: TypedSearchAttributes) -> dict[str, Any]:
    """The custom search attributes among `sa`, by name (system ones are left out)."""
    return {p.key.name: p.value for p in sa if p.key.name in CUSTOM_ATTRIBUTES}


def of_type(events: list[HistoryEvent], event_type: int) -> list[HistoryEvent]:
    return [e for e in events if e.event_type == event_type]


# --------------------------------------------------------------------------- tests


@pytest.mark.timeout(60)
async def test_memo_and_search_attributes_given_at_start(client, task_queue, new_id):
    await ensure_custom_search_attributes(client)
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            UpsertProperties.run,
            id=wf_id,
            task_queue=task_queue,
            memo={"owner": "alice", "n": 3},
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(KEYWORD, "at-start"), SearchAttributePair(INT, 5)]
            ),
        )
        await wait_for_event(handle, "WORKFLOW_TASK_COMPLETED", timeout=30)
        events = await history_events(handle)
        started = events[0].workflow_execution_started_event_attributes
        assert decode_memo(client, started.memo) == {"owner": "alice", "n": 3}
        assert custom_only(decode_typed_search_attributes(started.search_attributes)) == {
            "CustomKeywordField": "at-start",
            "CustomIntField": 5,
        }
        await handle.signal(UpsertProperties.next_step)
        await handle.signal(UpsertProperties.next_step)
        result = await result_within(handle, 30)
    assert result["at_start"] == {
        "keyword": "at-start",
        "int": 5,
        "keyword_list": None,
        "memo": {"owner": "alice", "n": 3},
    }
    # The SDK view of the workflow's own upserts.
    assert result["after_first"]["keyword"] == "upserted"
    assert result["after_first"]["int"] == 42
    assert result["after_first"]["memo"] == {"n": 3, "status": "halfway"}
    assert result["at_end"] == {
        "keyword": "second",
        "int": None,
        "keyword_list": ["a", "b"],
        "memo": {"n": 3, "status": "done", "extra": {"nested": [1, 2]}},
    }


@pytest.mark.timeout(60)
async def test_upserts_show_in_describe_and_history(client, task_queue, new_id):
    await ensure_custom_search_attributes(client)
    wf_id = new_id()
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            UpsertProperties.run,
            id=wf_id,
            task_queue=task_queue,
            memo={"owner": "alice", "n": 3},
            search_attributes=TypedSearchAttributes([SearchAttributePair(KEYWORD, "at-start")]),
        )
        events = await wait_for_event(handle, "WORKFLOW_PROPERTIES_MODIFIED", timeout=30)

        info = await raw_info(client, wf_id)
        assert decode_memo(client, info.memo) == {"n": 3, "status": "halfway"}
        assert custom_only(decode_typed_search_attributes(info.search_attributes)) == {
            "CustomKeywordField": "upserted",
            "CustomIntField": 42,
            "CustomBoolField": True,
            "CustomDoubleField": 2.5,
            "CustomDatetimeField": datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
            "CustomTextField": "some searchable text",
            "CustomKeywordListField": ["a", "b"],
        }
        described = await handle.describe()
        assert await described.memo() == {"n": 3, "status": "halfway"}
        assert described.typed_search_attributes.get(KEYWORD) == "upserted"

        # History: the upsert and the memo change are command events of the same task.
        [upsert] = of_type(events, ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)
        [modified] = of_type(events, ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED)
        assert events[upsert.event_id - 2].event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        assert modified.event_id == upsert.event_id + 1
        upsert_attrs = upsert.upsert_workflow_search_attributes_event_attributes
        assert upsert_attrs.workflow_task_completed_event_id == upsert.event_id - 1
        assert set(upsert_attrs.search_attributes.indexed_fields) == set(CUSTOM_ATTRIBUTES)
        assert (
            custom_only(decode_typed_search_attributes(upsert_attrs.search_attributes))[
                "CustomIntField"
            ]
            == 42
        )
        modified_attrs = modified.workflow_properties_modified_event_attributes
        assert modified_attrs.workflow_task_completed_event_id == upsert.event_id - 1
        # Only the changes: "status" set, "owner" removed (an empty payload).
        assert set(modified_attrs.upserted_memo.fields) == {"status", "owner"}
        assert (
            client.data_converter.payload_converter.from_payload(
                modified_attrs.upserted_memo.fields["status"]
            )
            == "halfway"
        )

        await handle.signal(UpsertProperties.next_step)
        events = await wait_until(
            lambda: _events_with(handle, ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED, 2),
            timeout=30,
            what="the second memo upsert",
        )
        info = await raw_info(client, wf_id)
        assert decode_memo(client, info.memo) == {
            "n": 3,
            "status": "done",
            "extra": {"nested": [1, 2]},
        }
        custom = custom_only(decode_typed_search_attributes(info.search_attributes))
        assert "CustomIntField" not in custom, "an unset attribute is removed"
        assert custom["CustomKeywordField"] == "second"
        assert custom["CustomKeywordListField"] == ["a", "b"]
        second_upsert = of_type(events, ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)[1]
        fields = second_upsert.upsert_workflow_search_attributes_event_attributes.search_attributes
        assert set(fields.indexed_fields) == {"CustomIntField", "CustomKeywordField"}
        # Unsetting is an empty payload (no data).
        assert fields.indexed_fields["CustomIntField"].data in (b"", b"null")

        await handle.signal(UpsertProperties.next_step)
        await result_within(handle, 30)
    # A closed workflow keeps its final memo and search attributes.
    info = await raw_info(client, wf_id)
    assert decode_memo(client, info.memo)["status"] == "done"
    assert (
        custom_only(decode_typed_search_attributes(info.search_attributes))["CustomKeywordField"]
        == "second"
    )


async def _events_with(handle: Any, event_type: int, count: int) -> list[HistoryEvent] | None:
    events = await history_events(handle)
    return events if len(of_type(events, event_type)) >= count else None


@pytest.mark.timeout(60)
async def test_upsert_of_unregistered_search_attribute_fails_workflow_task(
    client, task_queue, new_id
):
    async with worker(client, task_queue, workflows=WORKFLOWS):
        handle = await client.start_workflow(
            UpsertUnknownAttribute.run, id=new_id(), task_queue=task_queue
        )
        events = await wait_for_event(handle, "WORKFLOW_TASK_FAILED", timeout=30)
        await handle.terminate(reason="test over")
    [failed, *_] = of_type(events, ET.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    attrs = failed.workflow_task_failed_event_attributes
    assert attrs.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
    assert "NoSuchAttributeAnywhere" in attrs.failure.message
    assert not of_type(events, ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES)
