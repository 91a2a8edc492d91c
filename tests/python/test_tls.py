"""TLS and mutual TLS on the gRPC port (`start-dev --tls-cert --tls-key --tls-client-ca`).

The SDK connects with `tls=TLSConfig(...)` and runs a workflow; with mutual TLS a client
without a certificate, or with one another CA signed, is refused; the `temporal` CLI works
with `--tls-*`; a rotated certificate is served without a restart. Certificates are made in
the test (tls_certs.py).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.error
import urllib.request
from collections.abc import Awaitable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.client import Client

import harness
from harness import ServerProcess, result_within, run_temporal_cli, worker
from tls_certs import Ca, Leaf, client_tls

pytestmark = pytest.mark.skipif(
    harness.server_kind() == "temporal", reason="temper's start-dev TLS flags"
)


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class Greet:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


class Pki:
    """A server CA with a certificate for 127.0.0.1 / localhost, and a client CA."""

    def __init__(self, dir: Path) -> None:
        dir.mkdir(parents=True, exist_ok=True)
        self.dir = dir
        self.server_ca = Ca("test server CA")
        self.server = self.server_ca.issue(dir / "server", ["localhost", "127.0.0.1"])
        self.server_ca_path = self.server_ca.write(dir / "server-ca.pem")
        self.client_ca = Ca("test client CA")
        self.client_ca_path = self.client_ca.write(dir / "client-ca.pem")
        self.client = self.client_ca.issue(dir / "client", ["test-client"])


class TlsServer(ServerProcess):
    """A dev server serving TLS; its readiness probe connects over TLS (with `identity`)."""

    def __init__(self, workdir: Path, pki: Pki, mutual: bool, more: Sequence[str] = ()) -> None:
        args = ["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key), *more]
        if mutual:
            args += ["--tls-client-ca", str(pki.client_ca_path)]
        super().__init__(harness.server_kind(), workdir, extra_args=args)
        self.pki = pki
        self.identity: Leaf | None = pki.client if mutual else None

    async def connect(self, namespace: str = harness.NAMESPACE) -> Client:
        return await connect(self, self.pki.server_ca.pem(), self.identity, namespace)


async def connect(
    server: ServerProcess, ca: bytes, identity: Leaf | None, namespace: str = harness.NAMESPACE
) -> Client:
    tls = client_tls(ca, identity)
    return await Client.connect(server.address, namespace=namespace, tls=tls)


async def refused(coro: Awaitable[object]) -> BaseException:
    """The error `coro` fails with; the test fails if it succeeds."""
    try:
        await asyncio.wait_for(coro, timeout=15)
    except Exception as e:  # noqa: BLE001 - the SDK raises RuntimeError or RPCError
        return e
    pytest.fail("the call succeeded; it should have been refused")


async def run_greeting(client: Client, task_queue: str, wf_id: str) -> None:
    async with worker(client, task_queue, workflows=[Greet], activities=[greet]):
        handle = await client.start_workflow(Greet.run, "tls", id=wf_id, task_queue=task_queue)
        assert await result_within(handle, 30) == "Hello, tls!"


@pytest.fixture
async def tls_server(tmp_path: Path):
    srv = TlsServer(tmp_path / "server", Pki(tmp_path / "pki"), mutual=False)
    try:
        await srv.start()
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def mtls_server(tmp_path: Path):
    srv = TlsServer(tmp_path / "server", Pki(tmp_path / "pki"), mutual=True)
    try:
        await srv.start()
        yield srv
    finally:
        await srv.stop()


@pytest.mark.timeout(90)
async def test_tls_client_runs_a_workflow(tls_server: TlsServer, task_queue, new_id):
    client = await tls_server.connect()
    await run_greeting(client, task_queue, new_id())
    # Plaintext does not reach a TLS port.
    await refused(Client.connect(tls_server.address))
    # Nor does a client that trusts another CA.
    await refused(connect(tls_server, Ca("other CA").pem(), None))


@pytest.mark.timeout(90)
async def test_mtls_refuses_clients_without_the_right_certificate(
    mtls_server: TlsServer, tmp_path: Path, task_queue, new_id
):
    pki = mtls_server.pki
    ca = pki.server_ca.pem()
    await refused(connect(mtls_server, ca, None))
    stranger = Ca("stranger CA").issue(tmp_path / "stranger", ["test-client"])
    await refused(connect(mtls_server, ca, stranger))

    client = await connect(mtls_server, ca, pki.client)
    await run_greeting(client, task_queue, new_id())


@pytest.mark.timeout(90)
async def test_temporal_cli_with_tls_flags(mtls_server: TlsServer, task_queue, new_id):
    pki = mtls_server.pki
    client = await mtls_server.connect()
    wf_id = new_id()
    await run_greeting(client, task_queue, wf_id)
    ca = ["--tls-ca-path", str(pki.server_ca_path), "--tls-server-name", "localhost"]
    cert = ["--tls-cert-path", str(pki.client.cert), "--tls-key-path", str(pki.client.key)]

    code, out = await run_temporal_cli(mtls_server, "operator", "namespace", "list", *ca, *cert)
    assert code == 0, out
    assert "default" in out
    code, out = await run_temporal_cli(
        mtls_server, "workflow", "list", "--namespace", "default", *ca, *cert
    )
    assert code == 0, out
    assert wf_id in out

    code, out = await run_temporal_cli(mtls_server, "operator", "namespace", "list", *ca)
    assert code != 0, f"no client certificate, yet the CLI got through:\n{out}"


@pytest.mark.timeout(90)
async def test_rotated_certificate_is_served_without_a_restart(tls_server: TlsServer):
    pki = tls_server.pki
    new_ca = Ca("rotated server CA")
    # Write the key first and the certificate last: in between the pair does not match and
    # the server keeps the old one.
    staged = new_ca.issue(pki.dir / "staged", ["localhost", "127.0.0.1"])
    pki.server.key.write_bytes(staged.key_pem())
    pki.server.cert.write_bytes(staged.cert_pem())

    async def served_by_new_ca() -> bool:
        try:
            await connect(tls_server, new_ca.pem(), None)
            return True
        except Exception:  # noqa: BLE001 - not rotated yet
            return False

    await harness.wait_until(served_by_new_ca, timeout=20, what="the rotated certificate")
    assert tls_server.launches == 1, "the server was not restarted"
    await refused(connect(tls_server, pki.server_ca.pem(), None))
    assert "reloaded TLS certificates" in tls_server.log_path.read_text()


@pytest.mark.timeout(60)
async def test_certificate_expiry_is_a_metric(tmp_path: Path):
    metrics_port = harness.free_port()
    pki = Pki(tmp_path / "pki")
    srv = TlsServer(tmp_path / "server", pki, True, ["--metrics-port", str(metrics_port)])
    try:
        await srv.start()
        url = f"http://127.0.0.1:{metrics_port}/metrics"
        text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=5).read())
        gauges = {}
        for line in text.decode().splitlines():
            m = re.match(r'temper_tls_certificate_expiry_seconds\{cert="(\w+)"\} (\S+)', line)
            if m:
                gauges[m.group(1)] = float(m.group(2))
        expected = {
            "frontend": pki.server_ca.leaf_not_after(pki.server),
            "client_ca": pki.client_ca.cert.not_valid_after_utc.timestamp(),
        }
        assert gauges == expected, text.decode()
    finally:
        await srv.stop()


def test_bad_tls_files_stop_start_up_with_the_file_named(tmp_path: Path):
    pki = Pki(tmp_path / "pki")
    other = pki.server_ca.issue(tmp_path / "other", ["localhost"])
    cases = [
        (["--tls-cert", str(tmp_path / "missing.pem"), "--tls-key", str(pki.server.key)],
         "missing.pem"),
        (["--tls-cert", str(pki.server.cert), "--tls-key", str(other.key)], "does not match"),
        (["--tls-cert", str(pki.server.cert), "--tls-key", str(pki.server.key),
          "--tls-client-ca", str(pki.server.key)], "no PEM certificate"),
    ]  # fmt: skip
    for args, expected in cases:
        proc = subprocess.run(
            [str(harness.temper_bin()), "server", "start-dev", "--ephemeral",
             "--ip", "127.0.0.1", "--port", str(harness.free_port()), *args],
            check=False, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode != 0, f"{args}: started anyway"
        assert expected in proc.stderr, f"{args}: {proc.stderr}"
        assert "panicked" not in proc.stderr, proc.stderr


def ui_server_bin() -> str:
    """The Temporal Web UI server `scripts/ui-server install` built; the test fails (not
    skips) without it."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "ui-server"
    found = subprocess.run([str(script), "path"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.fail("no Temporal Web UI server: run `scripts/ui-server install` first")
    return found.stdout.strip().splitlines()[-1]


def ui_namespaces(ui_port: int) -> tuple[int, str]:
    """The UI server's answer to its namespace list (what the UI's first page loads)."""
    url = f"http://127.0.0.1:{ui_port}/api/v1/namespaces"
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except OSError as e:
        return 0, str(e)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "server_name, mutual, reaches",
    [("localhost", False, True), ("wrong.example", False, False), ("localhost", True, True)],
)
async def test_the_web_ui_reaches_a_tls_port(
    tmp_path: Path, server_name: str, mutual: bool, reaches: bool
):
    pki = Pki(tmp_path / "pki")
    ui_port = harness.free_port()
    ui = ["--ui", "--ui-port", str(ui_port), "--ui-server-bin", ui_server_bin(),
          "--ui-tls-server-name", server_name]  # fmt: skip
    if mutual:
        # The UI server presents a client certificate of the client CA.
        ui += ["--ui-tls-cert", str(pki.client.cert), "--ui-tls-key", str(pki.client.key)]
    srv = TlsServer(tmp_path / "srv", pki, mutual=mutual, more=ui)
    try:
        await srv.start()
        answer: tuple[int, str] = (0, "")

        async def answered() -> bool | None:
            nonlocal answer
            answer = ui_namespaces(ui_port)
            # 0: the UI server is not listening yet.
            return answer[0] != 0 or None

        await harness.wait_until(answered, timeout=60, what="the Web UI server to answer")
        status, body = answer
        if reaches:
            assert status == 200 and '"default"' in body, (status, body[:2000])
        else:
            # The UI server checks the certificate: a name it does not hold is refused.
            assert status != 200, (status, body[:2000])
    finally:
        await srv.stop()


@pytest.mark.timeout(60)
async def test_the_web_ui_with_mutual_tls_needs_a_client_certificate(tmp_path: Path):
    pki = Pki(tmp_path / "pki")
    ui = ["--ui", "--ui-port", str(harness.free_port()), "--ui-server-bin", ui_server_bin()]
    srv = TlsServer(tmp_path / "srv", pki, mutual=True, more=ui)
    proc = subprocess.run(srv.command(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "--ui with --tls-client-ca needs --ui-tls-cert and --ui-tls-key" in proc.stderr, (
        proc.stderr
    )
