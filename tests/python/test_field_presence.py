"""temper sets the same fields as the Temporal server in poll responses, events and describe.

Runs the same scenarios (field_presence.py: raw API calls; field_presence_sdk.py: a Python
SDK worker) against temper and against the reference server, then compares which fields
each answer has. Every Duration and Timestamp must match exactly; other fields may differ
only where KNOWN_DIFFERENCES says why. Needs both servers, whatever TEMPER_TEST_SERVER says.
"""

from __future__ import annotations

import re

import pytest

import harness
from field_presence import Presence, differences, run_scenario, time_fields
from field_presence_sdk import run_sdk_scenario
from harness import ServerProcess

# (answer name pattern, field path pattern): fields one server sets and the other does not,
# for a reason that is not a bug in what temper sends.
KNOWN_DIFFERENCES: list[tuple[str, str, str]] = [
    (
        r"(describe|DescribeWorkflowExecutionResponse).*",
        r"workflow_execution_info\.search_attributes(\..*)?",
        "the BuildIds search attribute ('unversioned') comes with worker versioning, not built yet",
    ),
    (
        r".*",
        r".*auto_reset_points\.points\[\]\.(build_id|binary_checksum)",
        "reset points are keyed by the binary checksum the SDK sends; Temporal keys them by build id",
    ),
    (
        r"event WORKFLOW_TASK_COMPLETED",
        r"workflow_task_completed_event_attributes\.binary_checksum",
        "temper records the binary checksum the SDK sends (the reference leaves it out)",
    ),
    (
        r"PollWorkflowTaskQueueResponse|PollActivityTaskQueueResponse",
        r"poller_scaling_decision(\..*)?",
        "poller autoscaling hints are optional and depend on the backlog at that moment",
    ),
]


def unexplained(name: str, paths: set[str]) -> set[str]:
    return {
        p
        for p in paths
        if not any(
            re.fullmatch(answer, name) and re.fullmatch(field, p)
            for answer, field, _ in KNOWN_DIFFERENCES
        )
    }


async def presence(kind: str, tmp_path) -> Presence:
    problem = harness.server_binary_problem(kind)
    if problem:
        pytest.fail(f"this test compares temper with the reference server: {problem}")
    server = ServerProcess(kind, tmp_path / kind)
    await server.start()
    try:
        out = await run_scenario(server.address, "presence-raw", "presence-raw")
        sdk = await run_sdk_scenario(await server.connect(), "presence-sdk", "presence-sdk")
        for name, paths in sdk.items():
            out.setdefault(name, set()).update(paths)
        return out
    finally:
        await server.stop()


@pytest.mark.timeout(240)
async def test_same_fields_as_the_reference_server(tmp_path):
    reference = await presence("temporal", tmp_path)
    temper = await presence("temper", tmp_path)

    # The scenarios reached what they are meant to compare.
    for name in (
        "PollWorkflowTaskQueueResponse",
        "PollActivityTaskQueueResponse",
        "DescribeWorkflowExecutionResponse(running)",
        "event ACTIVITY_TASK_SCHEDULED",
        "event START_CHILD_WORKFLOW_EXECUTION_INITIATED",
        "event WORKFLOW_EXECUTION_CONTINUED_AS_NEW",
        "event ACTIVITY_TASK_TIMED_OUT",
        "event WORKFLOW_EXECUTION_TIMED_OUT",
    ):
        assert name in reference and name in temper, f"scenario did not produce {name}"
    assert "schedule_to_close_timeout" in reference["PollActivityTaskQueueResponse"]

    # An answer only one server gave (say a WorkflowTaskFailed when a terminate met a task in
    # flight) depends on timing, not on what the servers set; the list above is what must be
    # there on both.
    common = reference.keys() & temper.keys()
    report = []
    for name, (only_reference, only_temper) in differences(
        {k: v for k, v in reference.items() if k in common},
        {k: v for k, v in temper.items() if k in common},
    ).items():
        time_mismatch = time_fields(only_reference | only_temper)
        other = unexplained(name, only_reference | only_temper)
        for path in sorted(time_mismatch | other):
            side = "only the reference sets" if path in only_reference else "only temper sets"
            report.append(f"{name}: {side} {path}")
    assert not report, "fields differ from the reference server:\n" + "\n".join(report)
