"""Helper process for test_async_completion.py: heartbeats, completes, fails or reports the
cancellation of an activity that returned with `activity.raise_complete_async()`, from a
process (and client) other than the worker's.

Usage: python async_completer.py '<json spec>'

The spec names the server (`address`), the activity (`token`: base64 task token, or `id`:
{workflow_id, run_id, activity_id}) and a list of `steps`, each [action, argument]:
  ["heartbeat", details] | ["complete", result] | ["fail", message] |
  ["report_cancellation", details] | ["sleep", seconds]
Prints one JSON line: the outcome of each step, "ok" or the error's class name and message
(and the RPC status name for RPC errors).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

IDENTITY = "async-completer"


async def main(spec: dict[str, Any]) -> list[Any]:
    client = await Client.connect(spec["address"], namespace="default", identity=IDENTITY)
    if "token" in spec:
        handle = client.get_async_activity_handle(task_token=base64.b64decode(spec["token"]))
    else:
        ref = spec["id"]
        handle = client.get_async_activity_handle(
            workflow_id=ref["workflow_id"], run_id=ref["run_id"], activity_id=ref["activity_id"]
        )
    outcomes: list[Any] = []
    for action, arg in spec["steps"]:
        try:
            if action == "heartbeat":
                await handle.heartbeat(arg)
            elif action == "complete":
                await handle.complete(arg)
            elif action == "fail":
                await handle.fail(ApplicationError(arg, "failure detail", type="FailedElsewhere"))
            elif action == "report_cancellation":
                await handle.report_cancellation(arg)
            elif action == "sleep":
                await asyncio.sleep(arg)
            else:
                raise ValueError(f"unknown action {action!r}")
            outcomes.append("ok")
        except Exception as err:  # noqa: BLE001 - reported to the test
            outcome = {"error": type(err).__name__, "message": str(err)}
            if isinstance(err, RPCError):
                outcome["status"] = err.status.name
            outcomes.append(outcome)
    return outcomes


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
    # Skip interpreter teardown: the SDK's native client threads can crash it (SIGSEGV or
    # "PyGILState_Release ... finalizing") after all the work is done.
    os._exit(0)
