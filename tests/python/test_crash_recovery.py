"""kill -9 the server while 100 workflows are mid-flight; after a restart all finish, once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import RetryPolicy

from harness import BackgroundWorker, event_types, history_events, wait_until

WORKFLOWS = 100
STEPS = 3


class Recorder:
    """Appends one line per activity execution to a results file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @activity.defn(name="record_step")
    async def record_step(self, workflow_id: str, step: int) -> str:
        with self.path.open("a") as f:
            f.write(f"{workflow_id} {step}\n")
        return f"{workflow_id}:{step}"

    def lines(self) -> list[tuple[str, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            wf_id, step = line.split()
            out.append((wf_id, int(step)))
        return out


@workflow.defn
class ThreeRecordedStepsWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        wf_id = workflow.info().workflow_id
        results = []
        for step in range(1, STEPS + 1):
            results.append(
                await workflow.execute_activity_method(
                    Recorder.record_step,
                    args=[wf_id, step],
                    start_to_close_timeout=timedelta(seconds=5),
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(milliseconds=200),
                        maximum_interval=timedelta(seconds=2),
                    ),
                )
            )
            if step < STEPS:
                await workflow.sleep(0.5)
        return results


class ResilientWorker:
    """Keeps one worker running on a task queue, replacing it if it dies."""

    def __init__(self, client, task_queue: str, recorder: Recorder) -> None:
        self.client, self.task_queue, self.recorder = client, task_queue, recorder
        self.current = self._new().start()
        self.replacements = 0
        self._watch = asyncio.create_task(self._watchdog())

    def _new(self) -> BackgroundWorker:
        return BackgroundWorker(
            self.client,
            self.task_queue,
            workflows=[ThreeRecordedStepsWorkflow],
            activities=[self.recorder.record_step],
        )

    async def _watchdog(self) -> None:
        while True:
            if self.current.crashed is not None:
                self.replacements += 1
                self.current = self._new().start()
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        self._watch.cancel()
        await self.current.stop()


@pytest.mark.timeout(240)
async def test_kill_9_mid_flight_then_restart(server, client, task_queue, new_id, tmp_path):
    recorder = Recorder(tmp_path / "activity-executions.txt")
    workers = ResilientWorker(client, task_queue, recorder)
    try:
        handles = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.start_workflow(
                        ThreeRecordedStepsWorkflow.run, id=new_id(), task_queue=task_queue
                    )
                    for _ in range(WORKFLOWS)
                )
            ),
            timeout=60,
        )

        # Kill the server once some, but far from all, steps have run.
        await wait_until(
            lambda: len(recorder.lines()) >= WORKFLOWS // 2,
            timeout=60,
            what="the first activity executions",
            interval=0.02,
        )
        await server.kill()
        executed_at_kill = len(recorder.lines())
        assert executed_at_kill < WORKFLOWS * STEPS, "everything finished before the kill"

        await server.start()  # same port, same database file

        results = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=150
        )
    finally:
        await workers.stop()

    for handle, result in zip(handles, results, strict=True):
        assert result == [f"{handle.id}:{step}" for step in range(1, STEPS + 1)]

    # Every step of every workflow ran at least once (at-least-once may repeat some).
    executed = Counter(recorder.lines())
    print(
        f"activity executions: {executed_at_kill} before the kill, {sum(executed.values())} in all "
        f"({sum(executed.values()) - len(executed)} repeated); workers replaced: {workers.replacements}"
    )
    missing = [(h.id, s) for h in handles for s in range(1, STEPS + 1) if executed[(h.id, s)] == 0]
    assert not missing, f"steps never executed: {missing[:10]}"

    # Exactly one run per id, completed exactly once.
    async def check(handle) -> None:
        events = await history_events(handle)
        types = event_types(events)
        assert types.count("WORKFLOW_EXECUTION_COMPLETED") == 1, (handle.id, types)
        assert types[-1] == "WORKFLOW_EXECUTION_COMPLETED", (handle.id, types)
        assert [e.event_id for e in events] == list(range(1, len(events) + 1)), handle.id
        assert types.count("ACTIVITY_TASK_COMPLETED") == STEPS, (handle.id, types)
        latest = await client.get_workflow_handle(handle.id).describe()
        assert latest.run_id == handle.result_run_id, f"{handle.id} has more than one run"
        assert latest.status == WorkflowExecutionStatus.COMPLETED

    await asyncio.wait_for(asyncio.gather(*(check(h) for h in handles)), timeout=60)
