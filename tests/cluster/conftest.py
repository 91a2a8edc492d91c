"""Fixtures every cluster test module shares; a module that needs another cluster (other node
names, TLS, three Cassandra nodes) defines its own `cluster` fixture, which overrides this one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cluster import Cluster


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """Three nodes a, b and c (not started), killed at the end of the test."""
    c = Cluster(tmp_path / "cluster", ["a", "b", "c"])
    try:
        yield c
    finally:
        c.kill_all()
