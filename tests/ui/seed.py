"""Starts the workflows the browser test looks at, and writes what it started as JSON.

    python seed.py --address 127.0.0.1:7233 --out artifacts/seed.json

On the namespace `default`, all ids prefixed with a run id:

- RUNNING (3): `UiIdle` on a task queue no worker polls, so they stay Running with only
  WorkflowExecutionStarted and WorkflowTaskScheduled in their history;
- COMPLETED (2): `UiHello`, run to completion by a worker (one activity each);
- PENDING ACTIVITY (1): `UiStuck`, whose workflow task a worker completes by scheduling the
  activity `ui_unpolled_activity` on a task queue nobody polls: it stays Running with that
  activity pending.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

RUNNING = 3
COMPLETED = 2


@activity.defn
async def ui_greet(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn(name="ui_unpolled_activity")
async def ui_unpolled_activity(name: str) -> str:  # never runs: its queue has no worker
    return name


@workflow.defn(name="UiIdle")
class UiIdle:
    @workflow.run
    async def run(self, name: str) -> str:
        return name


@workflow.defn(name="UiHello")
class UiHello:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            ui_greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


@workflow.defn(name="UiStuck")
class UiStuck:
    @workflow.run
    async def run(self, queue: str) -> str:
        return await workflow.execute_activity(
            ui_unpolled_activity,
            "waiting",
            task_queue=queue,
            start_to_close_timeout=timedelta(hours=1),
        )


def entry(handle, workflow_type: str, status: str, task_queue: str) -> dict:
    return {
        "id": handle.id,
        "runId": handle.result_run_id,
        "type": workflow_type,
        "status": status,
        "taskQueue": task_queue,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--out", required=True)
    parser.add_argument("--api-key", help="a bearer token, for a server with authorization on")
    args = parser.parse_args()

    # An api_key turns TLS on in the SDK unless told otherwise; the test server is plaintext.
    client = await Client.connect(
        args.address, namespace=args.namespace, api_key=args.api_key, tls=False
    )
    run = uuid.uuid4().hex[:8]
    idle_queue = f"ui-idle-{run}"
    work_queue = f"ui-work-{run}"
    unpolled_queue = f"ui-unpolled-{run}"
    started: list[dict] = []

    for i in range(RUNNING):
        h = await client.start_workflow(
            "UiIdle", f"n{i}", id=f"ui-{run}-idle-{i}", task_queue=idle_queue
        )
        started.append(entry(h, "UiIdle", "Running", idle_queue))

    async with Worker(
        client,
        task_queue=work_queue,
        workflows=[UiHello, UiStuck],
        activities=[ui_greet],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for i in range(COMPLETED):
            h = await client.start_workflow(
                UiHello.run, f"w{i}", id=f"ui-{run}-hello-{i}", task_queue=work_queue
            )
            await h.result()
            started.append(entry(h, "UiHello", "Completed", work_queue))
        h = await client.start_workflow(
            UiStuck.run, unpolled_queue, id=f"ui-{run}-stuck", task_queue=work_queue
        )
        # Wait for the worker to complete the first workflow task (the activity scheduled).
        for _ in range(200):
            d = await h.describe()
            if d.raw_description.pending_activities:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError("UiStuck never scheduled its activity")
        stuck = entry(h, "UiStuck", "Running", work_queue)
        stuck["pendingActivity"] = "ui_unpolled_activity"
        started.append(stuck)

    for w in started:
        d = await client.get_workflow_handle(w["id"], run_id=w["runId"]).describe()
        want = (
            WorkflowExecutionStatus.COMPLETED
            if w["status"] == "Completed"
            else WorkflowExecutionStatus.RUNNING
        )
        if d.status != want:
            raise RuntimeError(f"{w['id']}: {d.status}, wanted {want}")

    with open(args.out, "w") as f:
        json.dump({"run": run, "namespace": args.namespace, "workflows": started}, f, indent=2)
    print(f"seeded {len(started)} workflows (run {run})")


if __name__ == "__main__":
    asyncio.run(main())
    sys.stdout.flush()
    # The SDK's core threads can abort the interpreter at shutdown ("PyGILState_Release ...
    # finalizing") once the work is done; nothing is left to clean up.
    os._exit(0)
