"""Nexus endpoints in the OperatorService: create, get, update, delete and list, with every
validation error the reference Temporal server answers (code and exact message).

Endpoint names must match `^[a-zA-Z][a-zA-Z0-9\\-]*[a-zA-Z0-9]$` and be at most 200
characters; ids are random UUIDs; versions start at 1 and bump on each update. Several
validation messages are joined with ", " when a request breaks more than one rule."""

from __future__ import annotations

import re
import uuid

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import Payload
from temporalio.api.errordetails.v1 import NotFoundFailure
from temporalio.api.nexus.v1 import Endpoint, EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    CreateNexusEndpointRequest,
    DeleteNexusEndpointRequest,
    GetNexusEndpointRequest,
    ListNexusEndpointsRequest,
    UpdateNexusEndpointRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

import harness

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
NAME_REGEX_MESSAGE = 'endpoint name must match the regex: "^[a-zA-Z][a-zA-Z0-9\\\\-]*[a-zA-Z0-9]$"'
NAME_LENGTH_MESSAGE = "endpoint name exceeds length limit of 200"
INVALID = RPCStatusCode.INVALID_ARGUMENT


def worker_target(task_queue: str = "tq", namespace: str = "default") -> EndpointTarget:
    return EndpointTarget(worker=EndpointTarget.Worker(namespace=namespace, task_queue=task_queue))


def external_target(url: str) -> EndpointTarget:
    return EndpointTarget(external=EndpointTarget.External(url=url))


def spec(
    name: str, target: EndpointTarget | None = None, description: Payload | None = None
) -> EndpointSpec:
    s = EndpointSpec(name=name)
    if target is not None:
        s.target.CopyFrom(target)
    if description is not None:
        s.description.CopyFrom(description)
    return s


async def create(client: Client, s: EndpointSpec) -> Endpoint:
    resp = await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(spec=s), retry=False
    )
    return resp.endpoint


async def get(client: Client, endpoint_id: str) -> Endpoint:
    resp = await client.operator_service.get_nexus_endpoint(
        GetNexusEndpointRequest(id=endpoint_id), retry=False
    )
    return resp.endpoint


async def update(client: Client, endpoint_id: str, version: int, s: EndpointSpec) -> Endpoint:
    resp = await client.operator_service.update_nexus_endpoint(
        UpdateNexusEndpointRequest(id=endpoint_id, version=version, spec=s), retry=False
    )
    return resp.endpoint


async def delete(client: Client, endpoint_id: str, version: int) -> None:
    await client.operator_service.delete_nexus_endpoint(
        DeleteNexusEndpointRequest(id=endpoint_id, version=version), retry=False
    )


async def list_page(
    client: Client, page_size: int = 0, token: bytes = b"", name: str = ""
) -> tuple[list[Endpoint], bytes]:
    resp = await client.operator_service.list_nexus_endpoints(
        ListNexusEndpointsRequest(page_size=page_size, next_page_token=token, name=name),
        retry=False,
    )
    return list(resp.endpoints), resp.next_page_token


async def rpc_error(call) -> RPCError:
    with pytest.raises(RPCError) as info:
        await call
    return info.value


def is_not_found(e: RPCError) -> bool:
    """The error carries a NotFoundFailure detail (as the reference's NOT_FOUND errors do)."""
    return len(e.grpc_status.details) == 1 and e.grpc_status.details[0].Is(
        NotFoundFailure.DESCRIPTOR
    )


async def expect_create_error(
    client: Client, s: EndpointSpec, status: RPCStatusCode, message: str
) -> None:
    e = await rpc_error(create(client, s))
    assert (e.status, e.message) == (status, message), s
    assert not e.grpc_status.details


# --------------------------------------------------------------------------- create / get


@pytest.mark.timeout(60)
async def test_create_worker_endpoint_and_get(client: Client) -> None:
    s = spec("my-endpoint-1", worker_target("handler-tq"))
    before = Timestamp()
    before.GetCurrentTime()
    ep = await create(client, s)
    assert UUID_RE.match(ep.id), ep.id
    assert ep.version == 1
    assert ep.spec == s
    assert ep.url_prefix == f"/nexus/endpoints/{ep.id}/services"
    assert ep.HasField("created_time")
    assert not ep.HasField("last_modified_time")
    created = ep.created_time.ToDatetime()
    assert abs((created - before.ToDatetime()).total_seconds()) < 10

    got = await get(client, ep.id)
    assert got == ep


@pytest.mark.timeout(60)
async def test_create_external_endpoint_and_description(client: Client) -> None:
    s = spec("external-1", external_target("http://localhost:1234/prefix"))
    ep = await create(client, s)
    assert ep.version == 1
    assert ep.spec.target.WhichOneof("variant") == "external"
    assert ep.spec.target.external.url == "http://localhost:1234/prefix"
    assert ep.url_prefix == f"/nexus/endpoints/{ep.id}/services"

    # https is accepted, and the scheme check is case-insensitive.
    await create(client, spec("external-2", external_target("https://example.com")))
    await create(client, spec("external-3", external_target("HTTP://x")))
    # Only the scheme is checked: "http://" (no host) is accepted.
    await create(client, spec("external-4", external_target("http://")))

    desc = Payload(metadata={"encoding": b"json/plain"}, data=b'"the description"')
    ep = await create(client, spec("described", worker_target(), desc))
    assert (await get(client, ep.id)).spec.description == desc


# --------------------------------------------------------------------------- validation


@pytest.mark.timeout(60)
async def test_create_name_validation(client: Client) -> None:
    for ok in ["abc", "ABC", "a1", "a-b", "Ab-9-c", "a" * 64, "a" * 200]:
        ep = await create(client, spec(ok, worker_target()))
        assert ep.spec.name == ok

    await expect_create_error(client, spec("", worker_target()), INVALID, "endpoint name not set")
    # One character is too short: the regex needs a first and a last character.
    for bad in ["a", "A", "1abc", "-abc", "ab-", "a_b", "_ab", "ab_", "a.b", "a b", "a/b", "a:b"]:
        await expect_create_error(client, spec(bad, worker_target()), INVALID, NAME_REGEX_MESSAGE)
    await expect_create_error(client, spec("ñ", worker_target()), INVALID, NAME_REGEX_MESSAGE)
    await expect_create_error(
        client, spec("a" * 201, worker_target()), INVALID, NAME_LENGTH_MESSAGE
    )
    # Several broken rules: all messages, joined with ", ".
    await expect_create_error(
        client,
        spec("_" * 201, worker_target()),
        INVALID,
        f"{NAME_LENGTH_MESSAGE}, {NAME_REGEX_MESSAGE}",
    )


@pytest.mark.timeout(60)
async def test_create_target_validation(client: Client) -> None:
    await expect_create_error(client, spec("no-target"), INVALID, "empty target variant")
    await expect_create_error(
        client, spec("empty-target", EndpointTarget()), INVALID, "empty target variant"
    )
    # A request without a spec at all, and one breaking two rules.
    e = await rpc_error(
        client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(), retry=False)
    )
    assert (e.status, e.message) == (INVALID, "endpoint name not set, empty target variant")
    await expect_create_error(
        client, spec("1x"), INVALID, f"{NAME_REGEX_MESSAGE}, empty target variant"
    )

    # Worker targets.
    await expect_create_error(
        client,
        spec("unknown-ns", worker_target(namespace="nope")),
        RPCStatusCode.FAILED_PRECONDITION,
        "could not verify namespace referenced by target exists: Namespace nope is not found.",
    )
    await expect_create_error(
        client,
        spec("empty-tq", worker_target(task_queue="")),
        INVALID,
        'invalid target task queue: "taskQueue is not set"',
    )
    await expect_create_error(
        client, spec("empty-ns", worker_target(namespace="")), INVALID, "target namespace not set"
    )
    await expect_create_error(
        client,
        spec("empty-both", worker_target(namespace="", task_queue="")),
        INVALID,
        'target namespace not set, invalid target task queue: "taskQueue is not set"',
    )
    await expect_create_error(
        client,
        spec("sys-tq", worker_target(task_queue="/_sys/x")),
        INVALID,
        'invalid target task queue: "task queue name cannot start with reserved prefix /_sys/"',
    )
    await expect_create_error(
        client,
        spec("long-tq", worker_target(task_queue="x" * 1001)),
        INVALID,
        'invalid target task queue: "taskQueue length exceeds limit"',
    )
    await expect_create_error(
        client,
        spec("_x", worker_target(task_queue="")),
        INVALID,
        f'{NAME_REGEX_MESSAGE}, invalid target task queue: "taskQueue is not set"',
    )
    # The target namespace is looked up before the rest is validated: an unknown
    # namespace wins over an invalid name.
    await expect_create_error(
        client,
        spec("_x", worker_target(namespace="nope")),
        RPCStatusCode.FAILED_PRECONDITION,
        "could not verify namespace referenced by target exists: Namespace nope is not found.",
    )

    # External targets.
    await expect_create_error(
        client, spec("ext-empty", external_target("")), INVALID, "empty target URL"
    )
    for url, scheme in [("ftp://x/y", "ftp"), ("localhost:80", "localhost"), ("/rel", "")]:
        await expect_create_error(
            client,
            spec("ext-scheme", external_target(url)),
            INVALID,
            f'invalid target URL scheme: "{scheme}", expected http or https',
        )
    await expect_create_error(
        client,
        spec("ext-space", external_target("http://x y")),
        INVALID,
        'invalid target URL: parse "http://x y": invalid character " " in host name',
    )


@pytest.mark.timeout(60)
async def test_create_description_size_limit(client: Client) -> None:
    # The limit is on the description Payload's encoded size, refused above 20000 bytes:
    # data of 19996 bytes encodes to 20000 (tag + 3-byte length + data), 19997 to 20001.
    await create(client, spec("desc-ok", worker_target(), Payload(data=b"x" * 19996)))
    await expect_create_error(
        client,
        spec("desc-big", worker_target(), Payload(data=b"x" * 19997)),
        INVALID,
        "description size exceeds limit of 20000",
    )
    await expect_create_error(
        client,
        spec("desc-meta", worker_target(), Payload(metadata={"k": b"x" * 19990})),
        INVALID,
        "description size exceeds limit of 20000",
    )
    await expect_create_error(
        client,
        spec("_x", worker_target(), Payload(data=b"x" * 20000)),
        INVALID,
        f"{NAME_REGEX_MESSAGE}, description size exceeds limit of 20000",
    )


@pytest.mark.timeout(60)
async def test_create_duplicate_name(client: Client) -> None:
    await create(client, spec("dup-name", worker_target()))
    for target in [worker_target("other-tq"), external_target("https://x.example")]:
        await expect_create_error(
            client,
            spec("dup-name", target),
            RPCStatusCode.ALREADY_EXISTS,
            "error creating Nexus endpoint. Endpoint with name dup-name already registered",
        )
    # Names are case-sensitive.
    await create(client, spec("DUP-NAME", worker_target()))
    # A free name again once the endpoint is deleted.
    eps, _ = await list_page(client, name="dup-name")
    assert len(eps) == 1
    await delete(client, eps[0].id, eps[0].version)
    again = await create(client, spec("dup-name", worker_target()))
    assert again.id != eps[0].id
    assert again.version == 1


@pytest.mark.timeout(60)
async def test_get_unknown_and_malformed_id(client: Client) -> None:
    unknown = str(uuid.uuid4())
    e = await rpc_error(get(client, unknown))
    assert e.status == RPCStatusCode.NOT_FOUND
    assert e.message == f"Nexus endpoint with ID `{unknown}` not found"
    assert is_not_found(e)

    e = await rpc_error(get(client, "not-a-uuid"))
    assert (e.status, e.message) == (INVALID, 'malformed endpoint ID: "invalid UUID length: 10"')
    e = await rpc_error(get(client, ""))
    assert (e.status, e.message) == (INVALID, "endpoint ID not set")


# --------------------------------------------------------------------------- update


@pytest.mark.timeout(60)
async def test_update_versions_rename_and_target(client: Client) -> None:
    ep = await create(client, spec("to-update", worker_target("tq-1")))

    for stale in (0, 2):
        e = await rpc_error(update(client, ep.id, stale, spec("to-update", worker_target("t2"))))
        assert e.status == RPCStatusCode.FAILED_PRECONDITION
        assert e.message == f"nexus endpoint version mismatch. received: {stale} expected 1"
        assert not e.grpc_status.details
    assert (await get(client, ep.id)) == ep, "a refused update changed the endpoint"

    renamed = await update(client, ep.id, 1, spec("renamed", worker_target("tq-2")))
    assert renamed.id == ep.id
    assert renamed.version == 2
    assert renamed.spec == spec("renamed", worker_target("tq-2"))
    assert renamed.url_prefix == ep.url_prefix
    # Surprising, but what the reference answers: after an update the endpoint has a
    # last_modified_time (millisecond precision) and no longer any created_time.
    assert renamed.HasField("last_modified_time")
    assert not renamed.HasField("created_time")
    assert renamed.last_modified_time.nanos % 1_000_000 == 0
    assert renamed.last_modified_time.ToDatetime() >= ep.created_time.ToDatetime().replace(
        microsecond=0
    )
    assert (await get(client, ep.id)) == renamed
    by_name, _ = await list_page(client, name="renamed")
    assert [e.id for e in by_name] == [ep.id]
    assert (await list_page(client, name="to-update"))[0] == []

    e = await rpc_error(update(client, ep.id, 1, spec("renamed", worker_target("tq-3"))))
    assert e.message == "nexus endpoint version mismatch. received: 1 expected 2"

    ext = await update(client, ep.id, 2, spec("renamed", external_target("https://x.example/p")))
    assert ext.version == 3
    assert ext.spec.target.external.url == "https://x.example/p"
    assert (await get(client, ep.id)).spec.target == external_target("https://x.example/p")


@pytest.mark.timeout(60)
async def test_update_validation_and_unknown_id(client: Client) -> None:
    ep = await create(client, spec("upd-valid", worker_target()))

    e = await rpc_error(update(client, ep.id, 1, spec("_bad", worker_target())))
    assert (e.status, e.message) == (INVALID, NAME_REGEX_MESSAGE)
    e = await rpc_error(update(client, ep.id, 1, EndpointSpec()))
    assert (e.status, e.message) == (INVALID, "endpoint name not set, empty target variant")
    e = await rpc_error(update(client, ep.id, 1, spec("upd-valid", worker_target(namespace="x"))))
    assert e.status == RPCStatusCode.FAILED_PRECONDITION
    assert e.message == (
        "could not verify namespace referenced by target exists: Namespace x is not found."
    )
    e = await rpc_error(update(client, ep.id, 1, spec("upd-valid", external_target("ftp://a"))))
    assert (e.status, e.message) == (
        INVALID,
        'invalid target URL scheme: "ftp", expected http or https',
    )
    assert (await get(client, ep.id)).version == 1

    # Unknown ids: NOT_FOUND. Unlike get and delete, update does not parse the id, so a
    # malformed or empty id is NOT_FOUND too (surprising, but the reference's answer).
    for bad_id in [str(uuid.uuid4()), "nope", ""]:
        e = await rpc_error(update(client, bad_id, 1, spec("upd-x", worker_target())))
        assert e.status == RPCStatusCode.NOT_FOUND, bad_id
        assert e.message == f"error updating Nexus endpoint. endpoint ID {bad_id} not found"
        assert is_not_found(e)
    # The spec is validated before the id is looked up.
    e = await rpc_error(update(client, "nope", 1, EndpointSpec()))
    assert (e.status, e.message) == (INVALID, "endpoint name not set, empty target variant")


# --------------------------------------------------------------------------- delete


@pytest.mark.timeout(60)
async def test_delete(client: Client) -> None:
    ep = await create(client, spec("to-delete", worker_target()))
    keep = await create(client, spec("to-keep", worker_target()))

    e = await rpc_error(delete(client, ep.id, 0))
    assert (e.status, e.message) == (INVALID, "endpoint version is non-positive")
    e = await rpc_error(delete(client, "", 0))
    assert (e.status, e.message) == (
        INVALID,
        "endpoint ID not set, endpoint version is non-positive",
    )
    e = await rpc_error(delete(client, "nope", 1))
    assert (e.status, e.message) == (INVALID, 'malformed endpoint ID: "invalid UUID length: 4"')
    unknown = str(uuid.uuid4())
    e = await rpc_error(delete(client, unknown, 1))
    assert e.status == RPCStatusCode.NOT_FOUND
    assert e.message == f"error deleting nexus endpoint with ID: {unknown}"
    assert is_not_found(e)

    await delete(client, ep.id, 1)
    e = await rpc_error(get(client, ep.id))
    assert e.status == RPCStatusCode.NOT_FOUND
    assert e.message == f"Nexus endpoint with ID `{ep.id}` not found"
    assert is_not_found(e)
    e = await rpc_error(delete(client, ep.id, 1))
    assert e.status == RPCStatusCode.NOT_FOUND
    assert e.message == f"error deleting nexus endpoint with ID: {ep.id}"

    eps, _ = await list_page(client)
    # Only this test's endpoints: a store may be shared with other tests (Cassandra).
    assert [x.id for x in eps if x.id in (keep.id, ep.id)] == [keep.id]


# --------------------------------------------------------------------------- list


@pytest.mark.timeout(60)
async def test_list_order_pages_and_name_filter(client: Client) -> None:
    # The store may hold other tests' endpoints (a shared Cassandra keyspace): every check
    # is about the whole list, and this test's endpoints are in it.
    suffix = uuid.uuid4().hex[:8]
    created = [
        await create(client, spec(f"list-ep-{suffix}-{i}", worker_target())) for i in range(5)
    ]
    everything, token = await list_page(client)
    assert token == b""
    all_ids = [ep.id for ep in everything]
    # Ordered by id (the UUID's bytes), not by creation or name.
    assert all_ids == sorted(all_ids)
    by_id = {ep.id: ep for ep in everything}
    assert all(by_id[ep.id] == ep for ep in created)

    pages: list[list[str]] = []
    token = b""
    while True:
        eps, token = await list_page(client, page_size=2, token=token)
        pages.append([ep.id for ep in eps])
        if not token:
            break
    assert [i for page in pages for i in page] == all_ids
    assert all(len(page) == 2 for page in pages[:-1]) and len(pages[-1]) <= 2

    # A full page comes with a token even when it ends at the last endpoint; the next
    # page is then empty, without a token.
    n = len(all_ids)
    eps, token = await list_page(client, page_size=n)
    assert [ep.id for ep in eps] == all_ids and token
    assert await list_page(client, page_size=n, token=token) == ([], b"")
    eps, token = await list_page(client, page_size=n - 1)
    assert [ep.id for ep in eps] == all_ids[:-1] and token
    eps, token = await list_page(client, page_size=n - 1, token=token)
    assert ([ep.id for ep in eps], token) == (all_ids[-1:], b"")

    # The name filter is an exact match (at most one endpoint); it ignores the page size.
    eps, token = await list_page(client, name=f"list-ep-{suffix}-3", page_size=1)
    assert ([ep.id for ep in eps], token) == ([created[3].id], b"")
    assert await list_page(client, name=f"list-ep-{suffix}") == ([], b"")
    assert await list_page(client, name=f"LIST-EP-{suffix}-3") == ([], b"")
    # An invalid name is not validated: just no match.
    assert await list_page(client, name="_bad") == ([], b"")

    e = await rpc_error(list_page(client, page_size=-1))
    assert (e.status, e.message) == (INVALID, "page_size is negative")
    e = await rpc_error(list_page(client, page_size=1001))
    assert (e.status, e.message) == (INVALID, "page_size exceeds limit of 1000")
    # The reference's page token is JSON ({"LastID": ...}); garbage is an INTERNAL error.
    e = await rpc_error(list_page(client, token=b"garbage"))
    if harness.server_kind() == "temporal":
        # The reference treats a garbage token as its own fault.
        assert (e.status, e.message) == (RPCStatusCode.INTERNAL, "error listing Nexus endpoints")
    else:
        # temper answers it as the caller's (docs/nexus.md).
        assert (e.status, e.message) == (INVALID, "invalid next page token")


# ------------------------------------------------------------- names and versions
#
# Where the reference keeps a renamed endpoint's old name taken, lets an update give two
# endpoints one name, and deletes whatever version is stored, temper keeps names unique and
# versions checked (docs/nexus.md says so). The reference's behaviour is not pinned.


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    harness.server_kind() == "temporal",
    reason="temper's rule; the reference keeps old names and skips these checks",
)
async def test_names_stay_unique_and_versions_are_checked(client: Client) -> None:
    a = await create(client, spec("uniq-a", worker_target()))
    await create(client, spec("uniq-other", worker_target()))

    # A rename frees the old name.
    await update(client, a.id, 1, spec("uniq-b", worker_target()))
    freed = await create(client, spec("uniq-a", worker_target()))
    assert freed.spec.name == "uniq-a"

    # An update may not take a name another endpoint has.
    e = await rpc_error(update(client, a.id, 2, spec("uniq-other", worker_target())))
    assert e.status == RPCStatusCode.ALREADY_EXISTS
    assert e.message == (
        "error updating Nexus endpoint. Endpoint with name uniq-other already registered"
    )

    # A delete at a stale version is refused, as an update's is.
    e = await rpc_error(delete(client, a.id, 1))
    assert e.status == RPCStatusCode.FAILED_PRECONDITION
    assert e.message == "nexus endpoint version mismatch. received: 1 expected 2"
    await delete(client, a.id, 2)
    e = await rpc_error(get(client, a.id))
    assert e.status == RPCStatusCode.NOT_FOUND
