"""Fixtures: one fresh server per test (own port, own database file), a client, task queues.

Helpers that tests import directly (workers, polling, history) live in `harness.py`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

import harness
from harness import ServerProcess


def pytest_report_header(config: pytest.Config) -> str:
    kind = harness.server_kind()
    binary = harness.temper_bin() if kind == "temper" else harness.temporal_cli()
    return f"server under test: {kind} ({binary})"


@pytest.fixture(scope="session", autouse=True)
def _server_binary() -> Iterator[None]:
    """Stop the whole run with one clear message when the server cannot be launched."""
    problem = harness.server_binary_problem(harness.server_kind())
    if problem:
        pytest.exit(problem, returncode=2)
    yield
    # A hard pytest-timeout can skip async fixture teardown; never leave servers behind.
    for srv in harness.LAUNCHED:
        srv.kill_now()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the server's log tail to the report of a failed test."""
    report = yield
    if report.failed:
        srv = getattr(item, "funcargs", {}).get("server")
        if isinstance(srv, ServerProcess):
            report.sections.append((f"{srv.kind} server log tail ({srv.log_path})", srv.log_tail()))
    return report


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ServerProcess]:
    """A running server on a free loopback port, stopped (SIGTERM, then SIGKILL) after the test.

    Tests may `await server.restart()`, `await server.kill()` and `await server.start()`;
    the port and the database file stay the same.
    """
    srv = ServerProcess(harness.server_kind(), tmp_path / "server")
    try:
        await srv.start()
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> Client:
    return await server.connect()


def _slug(request: pytest.FixtureRequest) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]


@pytest.fixture
def task_queue(request: pytest.FixtureRequest) -> str:
    """A task queue name no other test uses."""
    return harness.unique(f"tq-{_slug(request)}")


@pytest.fixture
def new_id(request: pytest.FixtureRequest) -> Callable[[], str]:
    """Returns unique workflow ids, prefixed with the test's name."""
    prefix = f"wf-{_slug(request)}"
    return lambda: harness.unique(prefix)
