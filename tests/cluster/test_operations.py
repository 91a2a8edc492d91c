"""Operating a node: the generated example config starts a server (with its ports moved by
environment variables, the middle config layer), and readiness answers 503 until the node
has joined and runs its shards, then 200."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from cluster import free_udp_port, harness


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 - loopback only
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


@pytest.mark.timeout(90)
async def test_example_config_starts_and_readiness_flips(tmp_path: Path) -> None:
    example = subprocess.run(
        [str(harness.temper_bin()), "config", "example"], capture_output=True, check=True
    ).stdout
    config = tmp_path / "example.toml"
    config.write_bytes(example)

    grpc, health, gossip = harness.free_port(), harness.free_port(), free_udp_port()
    silent_seed = free_udp_port()  # nobody answers there: the node waits to join, then goes alone
    env = dict(os.environ)
    env.update(
        {
            "TEMPER_NODE__GRPC_ADDRESS": f"127.0.0.1:{grpc}",
            "TEMPER_NODE__MEMBERSHIP_ADDRESS": f"127.0.0.1:{gossip}",
            "TEMPER_STORE__PATH": str(tmp_path / "node.sqlite"),
            "TEMPER_HEALTH__LISTEN_ADDRESS": f"127.0.0.1:{health}",
            "TEMPER_CLUSTER__SEEDS": f'["127.0.0.1:{silent_seed}"]',
        }
    )
    log = open(tmp_path / "node.log", "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [str(harness.temper_bin()), "server", "start", "--config", str(config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready_url = f"http://127.0.0.1:{health}/health/ready"
        seen: list[int] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            status = http_status(ready_url)
            if status:
                seen.append(status)
            if status == 200:
                break
            await asyncio.sleep(0.1)
        assert seen and seen[-1] == 200, f"never ready: {seen}"
        assert 503 in seen, f"ready at once, before joining: {seen[:5]}"
        assert http_status(f"http://127.0.0.1:{health}/health/live") == 200

        client = await Client.connect(f"127.0.0.1:{grpc}")
        info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
        assert info.server_version

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()
