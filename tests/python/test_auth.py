"""Authentication and authorization (`start-dev --auth-jwks-url`), in Temporal's model.

The test serves a JWKS on 127.0.0.1 and signs tokens with a key it makes; the SDK sends them
as `api_key` (`authorization: Bearer ...`) and the `temporal` CLI as `--api-key`. Each role
gets exactly its calls in its namespace (`default`; `other` is the second namespace); a
missing, expired or forged token is UNAUTHENTICATED; a worker of `default` cannot answer a
task of `other` with its token. Only temper's flags start a secured dev server, so these
tests skip against the reference server.
"""

from __future__ import annotations

import asyncio
import subprocess
import re
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import activity, workflow
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListNamespacesRequest,
    PollWorkflowTaskQueueRequest,
    RegisterNamespaceRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness
from harness import ServerProcess, result_within, run_temporal_cli, worker
from jwt_tokens import JwksServer, SigningKey
from tls_certs import Ca, client_tls

pytestmark = pytest.mark.skipif(
    harness.server_kind() == "temporal",
    reason="secured start-dev (--auth-jwks-url) is temper's; the reference server has no such flag",
)

OTHER = "other"


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


@workflow.defn
class Waits:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


class AuthServer(ServerProcess):
    """A dev server that checks tokens against `jwks`, with a second namespace `other`."""

    def __init__(self, workdir: Path, jwks: JwksServer, more: Sequence[str] = ()) -> None:
        self.metrics_port = harness.free_port()
        args = [
            "--auth-jwks-url", jwks.url,
            "--auth-audit-log",
            "--namespace", OTHER,
            "--metrics-port", str(self.metrics_port),
            *more,
        ]  # fmt: skip
        super().__init__(harness.server_kind(), workdir, extra_args=args)

    def metrics(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read().decode()


@pytest.fixture
def key() -> SigningKey:
    return SigningKey("test-key-1")


@pytest.fixture
def jwks(key: SigningKey):
    srv = JwksServer([key])
    yield srv
    srv.close()


@pytest.fixture
async def server(tmp_path: Path, jwks: JwksServer) -> AsyncIterator[AuthServer]:
    srv = AuthServer(tmp_path / "server", jwks)
    try:
        await srv.start()
        yield srv
    finally:
        await srv.stop()


async def connect(
    srv: ServerProcess, token: str | None, namespace: str = harness.NAMESPACE
) -> Client:
    # An API key makes the SDK turn TLS on unless told otherwise; this server is plaintext.
    return await Client.connect(srv.address, namespace=namespace, api_key=token, tls=False)


async def status_of(call: Awaitable[object]) -> RPCStatusCode:
    """The gRPC status `call` fails with; the test fails if it succeeds."""
    try:
        await asyncio.wait_for(call, timeout=15)
    except RPCError as e:
        return e.status
    pytest.fail("the call succeeded; it should have been refused")


def describe(client: Client, namespace: str = harness.NAMESPACE) -> Awaitable[object]:
    return client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))


@pytest.mark.timeout(120)
async def test_each_role_gets_exactly_its_calls(server: AuthServer, key: SigningKey, task_queue):
    reader = await connect(server, key.token(["default:read"], sub="reader"))
    writer = await connect(server, key.token(["default:write"], sub="writer"))
    worker_client = await connect(server, key.token(["default:worker"], sub="worker"))
    admin = await connect(server, key.token(["default:admin"], sub="admin"))

    # write: start and signal.
    wf_id = f"auth-{uuid.uuid4()}"
    handle = await writer.start_workflow(Greet.run, "auth", id=wf_id, task_queue=task_queue)
    waiting = await writer.start_workflow(Waits.run, id=f"{wf_id}-waits", task_queue=task_queue)
    await waiting.signal("anything")

    # read: describe and list, not start.
    await describe(reader)
    await reader.get_workflow_handle(wf_id).describe()
    listed = [w.id async for w in reader.list_workflows(f"WorkflowId = '{wf_id}'")]
    assert listed == [wf_id]
    denied = reader.start_workflow(Greet.run, "x", id=f"{wf_id}-r", task_queue=task_queue)
    assert await status_of(denied) == RPCStatusCode.PERMISSION_DENIED

    # worker: polls and completes the workflow's tasks, cannot start or signal.
    async with worker(worker_client, task_queue, workflows=[Greet, Waits], activities=[greet]):
        assert await result_within(handle, 30) == "Hello, auth!"
    denied = worker_client.start_workflow(Greet.run, "x", id=f"{wf_id}-w", task_queue=task_queue)
    assert await status_of(denied) == RPCStatusCode.PERMISSION_DENIED
    assert await status_of(waiting_as(worker_client, waiting.id).signal("x")) == (
        RPCStatusCode.PERMISSION_DENIED
    )

    # write cannot administer the namespace; admin can, but only its own.
    register = RegisterNamespaceRequest(namespace="fresh")
    register.workflow_execution_retention_period.FromTimedelta(timedelta(days=1))
    assert await status_of(writer.workflow_service.register_namespace(register)) == (
        RPCStatusCode.PERMISSION_DENIED
    )
    assert await status_of(admin.workflow_service.register_namespace(register)) == (
        RPCStatusCode.PERMISSION_DENIED
    )
    fresh_admin = await connect(server, key.token(["fresh:admin"], sub="fresh-admin"))
    await fresh_admin.workflow_service.register_namespace(register)
    await describe(admin)
    await admin.get_workflow_handle(wf_id).describe()

    # Cluster calls need a temporal-system role.
    list_ns = ListNamespacesRequest()
    assert await status_of(admin.workflow_service.list_namespaces(list_ns)) == (
        RPCStatusCode.PERMISSION_DENIED
    )
    system = await connect(server, key.token(["temporal-system:admin"], sub="root"))
    names = (await system.workflow_service.list_namespaces(list_ns)).namespaces
    assert {"default", OTHER, "fresh"} <= {n.namespace_info.name for n in names}

    # Every decision is in the audit log, and counted.
    log = re.sub(r"\x1b\[[0-9;]*m", "", server.log_path.read_text(errors="replace"))
    assert "temper::audit" in log
    denied_reader = re.search(r'subject="?reader.*decision="?denied', log)
    assert denied_reader, log[-3000:]
    metrics = server.metrics()
    assert 'temper_auth_requests_total{result="denied",class="write",auth="jwt"}' in metrics
    assert 'temper_auth_requests_total{result="allowed",class="worker",auth="jwt"}' in metrics


def waiting_as(client: Client, wf_id: str):
    return client.get_workflow_handle(wf_id)


@pytest.mark.timeout(60)
async def test_a_token_for_one_namespace_is_refused_in_another(
    server: AuthServer, key: SigningKey, task_queue
):
    token = key.token(["default:admin"])
    in_other = await connect(server, token, namespace=OTHER)
    start = in_other.start_workflow(Greet.run, "x", id=f"x-{uuid.uuid4()}", task_queue=task_queue)
    assert await status_of(start) == RPCStatusCode.PERMISSION_DENIED
    assert await status_of(describe(in_other, OTHER)) == RPCStatusCode.PERMISSION_DENIED
    # The same call in its own namespace passes.
    await describe(in_other, "default")


@pytest.mark.timeout(60)
async def test_missing_expired_and_forged_tokens_are_unauthenticated(
    server: AuthServer, key: SigningKey
):
    for token in [
        None,
        key.token(["default:admin"], expires_in=-120),
        SigningKey(key.kid).token(["temporal-system:admin"]),
        "not-a-jwt",
    ]:
        client = await connect(server, token)
        assert await status_of(describe(client)) == RPCStatusCode.UNAUTHENTICATED, token
    try:
        await describe(await connect(server, key.token(["default:read"], expires_in=-120)))
    except RPCError as e:
        assert "expired" in e.message
    # A valid token still works.
    await describe(await connect(server, key.token(["default:read"])))


@pytest.mark.timeout(90)
async def test_a_task_token_of_another_namespace_is_refused(
    server: AuthServer, key: SigningKey, task_queue
):
    # A workflow task of `other`, polled by other's worker.
    other_writer = await connect(server, key.token([f"{OTHER}:write"]), namespace=OTHER)
    await other_writer.start_workflow(Waits.run, id=f"b-{uuid.uuid4()}", task_queue=task_queue)
    poll = PollWorkflowTaskQueueRequest(
        namespace=OTHER, task_queue=TaskQueue(name=task_queue), identity="b-worker"
    )
    task = await other_writer.workflow_service.poll_workflow_task_queue(poll)
    assert task.task_token

    # A worker of `default` holding that token: naming its own namespace does not help...
    a_worker = await connect(server, key.token(["default:worker"]))
    respond = RespondWorkflowTaskCompletedRequest(
        namespace="default", task_token=task.task_token, identity="a-worker"
    )
    status = await status_of(a_worker.workflow_service.respond_workflow_task_completed(respond))
    assert status == RPCStatusCode.INVALID_ARGUMENT
    # ...and naming the token's namespace is not allowed to it.
    respond.namespace = OTHER
    status = await status_of(a_worker.workflow_service.respond_workflow_task_completed(respond))
    assert status == RPCStatusCode.PERMISSION_DENIED


@pytest.mark.timeout(60)
async def test_a_pem_key_file_instead_of_a_jwks_url(tmp_path: Path, key: SigningKey):
    key_file = tmp_path / "signing-key.pem"
    key_file.write_bytes(key.public_pem())
    srv = ServerProcess(
        harness.server_kind(), tmp_path / "srv", extra_args=["--auth-key-file", str(key_file)]
    )
    try:
        await srv.start()
        await describe(await connect(srv, key.token(["default:read"])))
        forged = SigningKey(key.kid).token(["default:read"])
        assert await status_of(describe(await connect(srv, forged))) == (
            RPCStatusCode.UNAUTHENTICATED
        )
    finally:
        await srv.stop()


@pytest.mark.timeout(90)
async def test_temporal_cli_with_api_key(server: AuthServer, key: SigningKey, task_queue):
    reader = ["--api-key", key.token(["default:read"]), "--tls=false"]
    writer = ["--api-key", key.token(["default:write"]), "--tls=false"]
    wf_id = f"cli-{uuid.uuid4()}"
    start = ["workflow", "start", "--type", "Greet", "--task-queue", task_queue,
             "--workflow-id", wf_id, "--input", '"cli"']  # fmt: skip

    code, out = await run_temporal_cli(server, *start, *reader)
    assert code != 0 and "Request unauthorized" in out, out
    code, out = await run_temporal_cli(server, *start, *writer)
    assert code == 0, out
    code, out = await run_temporal_cli(
        server, "workflow", "describe", "--workflow-id", wf_id, *reader
    )
    assert code == 0, out
    assert wf_id in out
    code, out = await run_temporal_cli(server, "workflow", "list", "--tls=false")
    assert code != 0, f"no API key, yet the CLI got through:\n{out}"


@pytest.mark.timeout(90)
async def test_temporal_cli_with_tls_and_api_key(tmp_path: Path, jwks: JwksServer, key: SigningKey):
    ca = Ca("auth test server CA")
    leaf = ca.issue(tmp_path / "server", ["localhost", "127.0.0.1"])
    ca_path = ca.write(tmp_path / "ca.pem")
    tls = ["--tls-cert", str(leaf.cert), "--tls-key", str(leaf.key)]

    class TlsAuthServer(AuthServer):
        async def connect(self, namespace: str = harness.NAMESPACE) -> Client:
            return await Client.connect(self.address, namespace=namespace, tls=client_tls(ca.pem()))

    srv = TlsAuthServer(tmp_path / "srv", jwks, tls)
    try:
        await srv.start()
        flags = ["--tls-ca-path", str(ca_path), "--tls-server-name", "localhost"]
        read = ["--api-key", key.token(["default:read"])]
        code, out = await run_temporal_cli(srv, "operator", "namespace", "describe", "default",
                                           *flags, *read)  # fmt: skip
        assert code == 0, out
        code, out = await run_temporal_cli(srv, "operator", "namespace", "describe", OTHER,
                                           *flags, *read)  # fmt: skip
        assert code != 0 and "Request unauthorized" in out, out
        code, out = await run_temporal_cli(srv, "operator", "namespace", "describe", "default",
                                           *flags)  # fmt: skip
        assert code != 0, f"no API key, yet the CLI got through:\n{out}"
        # The SDK over TLS with an API key.
        client = await Client.connect(
            srv.address,
            api_key=key.token(["default:read"]),
            tls=client_tls(ca.pem()),
        )
        await describe(client)
    finally:
        await srv.stop()


@pytest.mark.timeout(90)
async def test_a_jwks_url_over_https_with_a_private_ca(tmp_path: Path, key: SigningKey):
    idp_ca = Ca("identity provider test CA")
    leaf = idp_ca.issue(tmp_path / "idp", ["127.0.0.1"])
    ca_path = idp_ca.write(tmp_path / "idp-ca.pem")
    jwks = JwksServer([key], tls=(leaf.cert, leaf.key))
    srv = AuthServer(tmp_path / "srv", jwks, ["--auth-jwks-ca", str(ca_path)])
    try:
        assert jwks.url.startswith("https://")
        await srv.start()
        await describe(await connect(srv, key.token(["default:read"])))
        assert jwks.hits >= 1
        forged = SigningKey(key.kid).token(["default:read"])
        assert await status_of(describe(await connect(srv, forged))) == (
            RPCStatusCode.UNAUTHENTICATED
        )
    finally:
        await srv.stop()
        jwks.close()


@pytest.mark.timeout(90)
async def test_a_jwks_server_of_an_unknown_ca_is_refused(tmp_path: Path, key: SigningKey):
    leaf = Ca("somebody else").issue(tmp_path / "idp", ["127.0.0.1"])
    jwks = JwksServer([key], tls=(leaf.cert, leaf.key))
    srv = AuthServer(tmp_path / "srv", jwks)
    try:
        await srv.start()
        assert await status_of(describe(await connect(srv, key.token(["default:read"])))) == (
            RPCStatusCode.UNAUTHENTICATED
        )
        assert jwks.hits == 0
        log = srv.log_path.read_text(errors="replace")
        assert "not signed by a trusted CA" in log, log[-3000:]
    finally:
        await srv.stop()
        jwks.close()


@pytest.mark.timeout(60)
async def test_the_web_ui_with_authorization_needs_a_sign_in_provider(
    tmp_path: Path, jwks: JwksServer
):
    ui = ["--ui", "--ui-port", str(harness.free_port())]
    srv = AuthServer(tmp_path / "srv", jwks, more=ui)
    proc = subprocess.run(srv.command(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "--ui with --auth-* needs --ui-auth-provider-url and --ui-auth-client-id" in (
        proc.stderr
    ), proc.stderr
    # The provider's settings without --ui are refused by the flags themselves.
    lone = AuthServer(tmp_path / "lone", jwks, more=["--ui-auth-client-id", "x"])
    proc = subprocess.run(lone.command(), capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    assert "--ui-auth-provider-url" in proc.stderr, proc.stderr
