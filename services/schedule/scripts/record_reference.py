"""Record ListScheduleMatchingTimes answers of the reference Temporal server for generated specs.

Writes the fixtures src/tests/recorded_random.txt (`cron`) and src/tests/recorded_mixed.txt
(`mixed`), one line per listed window. Needs the Python SDK (`temporalio`) and a fresh dev
server on port 7461:

    temporal server start-dev --headless --port 7461 --ui-port 7462 &
    python record_reference.py cron 80 > ../src/tests/recorded_random.txt
    python record_reference.py mixed 100 > ../src/tests/recorded_mixed.txt

Jitter is seeded with the namespace id, which each dev server makes anew: the script prints
the "default" namespace's id on stderr; put it in NAMESPACE_ID in src/tests/recorded.rs
(and re-record every fixture from the same server).
"""

import asyncio
import random
import sys

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.schedule.v1 import (
    CalendarSpec,
    IntervalSpec,
    Schedule,
    ScheduleAction,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflow.v1 import NewWorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import (
    CreateScheduleRequest,
    DescribeNamespaceRequest,
    ListScheduleMatchingTimesRequest,
)
from temporalio.client import Client

CRON_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Santiago",
              "Australia/Lord_Howe", "Asia/Kolkata", "UTC", "Europe/London", "America/Los_Angeles",
              "Pacific/Chatham", "America/St_Johns"]
# Windows holding the 2025 clock changes of the zones above.
CRON_WINDOWS = [("2025-03-08T00:00:00Z", "2025-03-10T12:00:00Z"),
                ("2025-03-29T12:00:00Z", "2025-03-31T00:00:00Z"),
                ("2025-04-04T12:00:00Z", "2025-04-06T12:00:00Z"),
                ("2025-09-05T12:00:00Z", "2025-09-07T12:00:00Z"),
                ("2025-09-27T00:00:00Z", "2025-09-28T12:00:00Z"),
                ("2025-10-04T00:00:00Z", "2025-10-05T12:00:00Z"),
                ("2025-10-25T12:00:00Z", "2025-10-27T00:00:00Z"),
                ("2025-11-01T12:00:00Z", "2025-11-03T00:00:00Z")]
MIXED_ZONES = ["America/New_York", "Europe/Berlin", "Australia/Sydney", "UTC", "Asia/Kolkata",
               "America/Santiago"]


def ts(s):
    t = Timestamp()
    t.FromJsonString(s)
    return t


def random_cron(rnd):
    fields = [rnd.choice(["*/7", "0", "15,45", "*/20", "5-10", "59", "30", "0-59/13"]),
              rnd.choice(["*", "0-3", "1", "2", "1,2", "*/3", "23", "0", "2-3", "1-4/2"]),
              rnd.choice(["*", "*", "*", "1-10", "4-7,25-28", "5", "26"]),
              rnd.choice(["*", "*", "3,4,9,10,11", "mar-apr", "oct-nov", "sep-oct"]),
              rnd.choice(["*", "*", "mon-fri", "0", "7", "sat,sun", "1-7", "sun-tue"])]
    if rnd.random() < 0.25:
        fields = [rnd.choice(["0", "30", "*/20"])] + fields + ["*"]
    return " ".join(fields)


class Recorder:
    def __init__(self, client):
        self.ws = client.workflow_service

    async def create(self, sid, spec):
        action = ScheduleAction(start_workflow=NewWorkflowExecutionInfo(
            workflow_id="wf-" + sid, workflow_type=WorkflowType(name="W"),
            task_queue=TaskQueue(name="tq")))
        schedule = Schedule(spec=spec, action=action, state=ScheduleState(paused=True))
        await self.ws.create_schedule(CreateScheduleRequest(
            namespace="default", schedule_id=sid, schedule=schedule, request_id=sid))

    async def times(self, sid, start, end):
        # The schedule answers queries once its first run has started.
        for _ in range(50):
            try:
                m = await self.ws.list_schedule_matching_times(ListScheduleMatchingTimesRequest(
                    namespace="default", schedule_id=sid, start_time=ts(start), end_time=ts(end)))
                return ",".join(t.ToJsonString() for t in m.start_time)
            except Exception:
                await asyncio.sleep(0.1)
        raise RuntimeError(f"schedule {sid} never answered")


async def record_cron(rec, count):
    rnd = random.Random(20261206)
    for i in range(count):
        sid = f"r{i}"
        zone, cron = rnd.choice(CRON_ZONES), random_cron(rnd)
        jitter = rnd.choice([0, 0, 0, 90, 1800])
        await rec.create(sid, ScheduleSpec(cron_string=[cron], timezone_name=zone,
                                           jitter=Duration(seconds=jitter)))
        for start, end in rnd.sample(CRON_WINDOWS, 3):
            times = await rec.times(sid, start, end)
            print(f"{sid}|{zone}|{cron}|{jitter}|{start}|{end}|{times}")


async def record_mixed(rec, count):
    rnd = random.Random(7461)
    for i in range(count):
        sid = f"n{i}"
        zone = rnd.choice(MIXED_ZONES)
        cron = " ".join([rnd.choice(["0", "*/10", "30", "0,20,40", "15"]),
                         rnd.choice(["*/3", "1-3", "2", "*/4", "9-17"]),
                         rnd.choice(["*", "1-15"]), "*", rnd.choice(["*", "mon-fri", "sun"])]) \
            if rnd.random() < 0.6 else "-"
        exclude = " ".join([rnd.choice(["*", "0"]), rnd.choice(["*", "0-29", "30"]),
                            rnd.choice(["*", "2", "0-6", "12"]), rnd.choice(["*", "1-5"]), "*",
                            rnd.choice(["*", "sat,sun", "wed"]), "*"]) \
            if rnd.random() < 0.5 else "-"
        interval = rnd.choice([0, 0, 2700, 3600, 5400, 86400, 7 * 86400 + 13])
        phase = rnd.randrange(interval) if interval and rnd.random() < 0.5 else 0
        day = rnd.choice(["2025-03-08", "2025-03-29", "2025-04-05", "2025-10-25", "2025-11-01"])
        base = ts(day + "T00:00:00Z").seconds
        start = base + rnd.randrange(-86400, 3 * 86400) if rnd.random() < 0.3 else None
        end = base + rnd.randrange(0, 4 * 86400) if rnd.random() < 0.3 else None
        jitter = rnd.choice([0, 0, 59, 600, 7200])
        spec = ScheduleSpec(timezone_name=zone, jitter=Duration(seconds=jitter))
        if cron != "-":
            spec.cron_string.append(cron)
        if exclude != "-":
            f = exclude.split()
            spec.exclude_calendar.append(CalendarSpec(
                second=f[0], minute=f[1], hour=f[2], day_of_month=f[3], month=f[4],
                day_of_week=f[5], year=f[6]))
        if interval:
            spec.interval.append(IntervalSpec(interval=Duration(seconds=interval),
                                              phase=Duration(seconds=phase) if phase else None))
        if start is not None:
            spec.start_time.CopyFrom(Timestamp(seconds=start, nanos=rnd.choice([0, 250000000])))
        if end is not None:
            spec.end_time.CopyFrom(Timestamp(seconds=end))
        await rec.create(sid, spec)
        window_start = day + "T00:00:00Z"
        window_end = Timestamp(seconds=base + 2 * 86400).ToJsonString()
        times = await rec.times(sid, window_start, window_end)
        start_s = spec.start_time.ToJsonString() if spec.HasField("start_time") else "-"
        end_s = spec.end_time.ToJsonString() if spec.HasField("end_time") else "-"
        print(f"{sid}|{zone}|{cron}|{exclude}|{interval}|{phase}|{start_s}|{end_s}|{jitter}"
              f"|{window_start}|{window_end}|{times}")


async def main():
    kind, count = sys.argv[1], int(sys.argv[2])
    client = await Client.connect("127.0.0.1:7461")
    rec = Recorder(client)
    ns = await rec.ws.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    print(f"namespace id: {ns.namespace_info.id}", file=sys.stderr)
    await {"cron": record_cron, "mixed": record_mixed}[kind](rec, count)


if __name__ == "__main__":
    asyncio.run(main())
