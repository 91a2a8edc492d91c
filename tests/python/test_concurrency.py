"""Many workflows at once: every one completes with its own result."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio import activity, workflow

from harness import worker

COUNT = 200


@activity.defn
async def square(n: int) -> int:
    return n * n


@workflow.defn
class SquarePlusOneWorkflow:
    @workflow.run
    async def run(self, n: int) -> int:
        squared = await workflow.execute_activity(
            square, n, start_to_close_timeout=timedelta(seconds=30)
        )
        await workflow.sleep(0.1)
        return squared + 1


@pytest.mark.timeout(150)
async def test_200_concurrent_workflows(client, task_queue, new_id):
    async with worker(client, task_queue, workflows=[SquarePlusOneWorkflow], activities=[square]):
        handles = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.start_workflow(
                        SquarePlusOneWorkflow.run, n, id=f"{new_id()}-{n}", task_queue=task_queue
                    )
                    for n in range(COUNT)
                )
            ),
            timeout=60,
        )
        assert len({h.id for h in handles}) == COUNT
        results = await asyncio.wait_for(
            asyncio.gather(*(h.result() for h in handles)), timeout=120
        )
    assert results == [n * n + 1 for n in range(COUNT)]
