"""The HTTP API against the whole system: who may do what, a pool added and a volume created through it (202, an
operation polled and followed as Server-Sent Events, the pool Up with its capacity), a wrong field named, the
caller journaled, the pool's password in no answer at all, and no operation left running by an API process that
stopped."""

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from bus.facade import Bus
from schemas import Envelope
from schemas.errors import ErrorInfo
from schemas.snapshot import SnapshotReverted, VmReverted, VmRevertFailed
from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, HOST, Stack, api_stack
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration
PASSWORD = "s3cr3t-Pa55-for-the-api-test"


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


def netfs_pool(stack: Stack, name: str, **config: Any) -> dict[str, Any]:  # Any: JSON values
    path = stack.pools_dir / name
    path.mkdir(exist_ok=True)
    values = {"path": str(path), "server": "192.0.2.10", "username": "strata", "password": PASSWORD, **config}
    return {"name": name, "plugin": "netfs", "config": values, "scope": "cluster", "cluster": CLUSTER}


async def finished(client: httpx.AsyncClient, answer: httpx.Response) -> dict[str, Any]:  # Any: JSON values
    """Poll the operation a 202 answered with until it ends."""
    assert answer.status_code == 202, answer.text
    where = answer.headers["location"]

    async def ended() -> dict[str, Any] | None:  # Any: JSON values
        operation: dict[str, Any] = dict((await client.get(where)).json())
        return operation if operation["status"] != "running" else None

    found = await assert_eventually(ended, timeout=120, interval=0.1, what=f"operation {where} ended")
    return dict(found or {})


async def test_no_key_is_401_a_viewer_cannot_change_and_an_operator_cannot_manage_keys(stack: Stack) -> None:
    async with stack.client() as anonymous:
        assert (await anonymous.get("/api/v1/pools")).status_code == 401
        forged = await anonymous.get("/api/v1/pools", headers={"Authorization": "Bearer strata_not-a-key"})
        assert forged.status_code == 401
    async with stack.client(Role.VIEWER) as viewer:
        assert (await viewer.get("/api/v1/pools")).status_code == 200
        refused = await viewer.post("/api/v1/pools", json=netfs_pool(stack, "nope"))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "PERMISSION_DENIED"
        assert (await viewer.post("/api/v1/pools/whatever/disable")).status_code == 403
        assert (await viewer.get("/api/v1/api-keys")).status_code == 403
    async with stack.client(Role.OPERATOR) as operator:
        assert (await operator.get("/api/v1/api-keys")).status_code == 403
        assert (await operator.post("/api/v1/api-keys", json={"name": "x", "role": "admin"})).status_code == 403
    async with stack.client(Role.ADMIN) as admin:
        created = await admin.post("/api/v1/api-keys", json={"name": "made-by-admin", "role": "viewer"})
        assert created.status_code == 201, created.text
        new_key = created.json()["key"]
        listed = (await admin.get("/api/v1/api-keys")).json()
        assert "made-by-admin" in [key["name"] for key in listed]
        assert new_key not in json.dumps(listed)
        async with stack.client(key=new_key) as fresh:
            assert (await fresh.get("/api/v1/pools")).status_code == 200
            assert (await admin.delete(f"/api/v1/api-keys/{created.json()['key_id']}")).status_code == 200
            assert (await fresh.get("/api/v1/pools")).status_code == 401
        audit = (await admin.get("/api/v1/audit")).json()
        assert [(row["action"], row["actor"]) for row in audit[:2]] == [
            ("api_key.revoke", "api:test-admin(admin)"),
            ("api_key.create", "api:test-admin(admin)"),
        ]
        assert new_key not in json.dumps(audit)


async def test_a_pool_added_and_a_volume_created_through_the_api(stack: Stack, database_url: str) -> None:
    bodies: list[str] = []

    async def keep(response: httpx.Response) -> None:
        await response.aread()
        bodies.append(response.text)

    async with stack.client(Role.OPERATOR, event_hooks={"response": [keep]}) as client:
        wrong = await client.post("/api/v1/pools", json=netfs_pool(stack, "bad", server="not-an-ip"))
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["error"]["field"] == "server"
        operation = await finished(client, await client.post("/api/v1/pools", json=netfs_pool(stack, "filer-1")))
        assert operation["status"] == "succeeded", operation
        assert operation["actor"] == "api:test-operator(operator)"
        assert next(entry["event"] for entry in operation["progress"]) == "sent"
        pool = (await client.get("/api/v1/pools/filer-1")).json()
        assert pool["state"] == "Up"
        assert pool["capacity_bytes"] > 0
        created = await client.post("/api/v1/volumes", json={"name": "data-1", "size": "16M", "pool": "filer-1"})
        assert created.status_code == 202, created.text
        async with client.stream("GET", created.headers["location"] + "/events") as stream:
            kinds = [line.removeprefix("event: ") async for line in stream.aiter_lines() if line.startswith("event:")]
        assert kinds[-1] == "end"
        assert "progress" in kinds
        volume = (await client.get("/api/v1/volumes/data-1")).json()
        assert volume["state"] == "Ready"
        assert volume["pool_id"] == pool["pool_id"]
        chain = (await client.get("/api/v1/volumes/data-1/chain")).json()
        assert chain["nodes"] == []
        disabled = await finished(client, await client.post("/api/v1/pools/filer-1/disable"))
        assert disabled["result"]["state"] == "Disabled", disabled
        assert (await client.get("/api/v1/pools/filer-1")).json()["state"] == "Disabled"
        enabled = await finished(client, await client.post("/api/v1/pools/filer-1/enable"))
        assert enabled["result"]["state"] == "Up", enabled
        local_dir = stack.pools_dir / "local-1"
        local_dir.mkdir()
        local = {
            "name": "local-1",
            "plugin": "qcow2fs",
            "config": {"path": str(local_dir)},
            "scope": "host",
            "host": HOST,
        }
        added = await finished(client, await client.post("/api/v1/pools", json=local))  # no cluster: the host's own
        assert added["status"] == "succeeded", added
        assert (added["result"]["host"], added["result"]["cluster_id"]) == (HOST, CLUSTER)
        for path in ("/api/v1/pools", "/api/v1/volumes", "/api/v1/plugins/netfs", "/api/v1/openapi.json"):
            assert (await client.get(path)).status_code == 200
    assert all(PASSWORD not in body for body in bodies), "a response carried the pool's password"
    connection = await asyncpg.connect(database_url)
    try:
        actors = await connection.fetch("SELECT type FROM bus.journal WHERE producer = 'api:test-operator(operator)'")
        rows = await connection.fetch(
            "SELECT status, actor FROM api.operations WHERE kind = 'pool.add' AND target = 'filer-1'"
        )
    finally:
        await connection.close()
    assert {"pool.add", "volume.create"} <= {row["type"] for row in actors}
    assert [(row["status"], row["actor"]) for row in rows] == [("succeeded", "api:test-operator(operator)")]


async def test_the_openapi_document_is_3_1(stack: Stack) -> None:
    async with stack.client() as anonymous:
        document = (await anonymous.get("/api/v1/openapi.json")).json()
    assert document["openapi"].startswith("3.1")
    assert "/api/v1/pools" in document["paths"]
    # A pool's configuration is shown only with its secrets masked (schemas.storage_queries.PoolInfo).
    assert "masked" in document["components"]["schemas"]["PoolInfo"]["properties"]["config"]["description"]


async def test_operations_of_a_stopped_api_process_end_by_their_outcome_or_are_reported_abandoned(
    stack: Stack, database_url: str
) -> None:
    """Rows as an API process leaves them when it stops mid-operation: one awaiting its command's outcome (a VM
    revert), finished by the consumer when that outcome arrives and not by a step's event of the same correlation;
    one whose work was the process's own (a pool settling), reported ABORTED once nobody has said for a while that it
    runs it, while a fresh one stays running."""
    revert, correlation = uuid.uuid4(), uuid.uuid4()
    orphaned, fresh = uuid.uuid4(), uuid.uuid4()
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "INSERT INTO api.operations (operation_id, kind, target, actor, status, correlation_id, awaiting) "
            "VALUES ($1, 'vm.revert', 'vm-1', 'api:t', 'running', $2, $3)",
            revert,
            correlation,
            [VmReverted.message_type, VmRevertFailed.message_type],
        )
        await connection.execute(
            "INSERT INTO api.operations (operation_id, kind, target, actor, status, alive_at) VALUES "
            "($1, 'pool.disable', 'filer-9', 'api:t', 'running', now() - interval '10 minutes'), "
            "($2, 'pool.disable', 'filer-8', 'api:t', 'running', now())",
            orphaned,
            fresh,
        )
        bus = Bus(stack.runner.transport)
        step = SnapshotReverted(snapshot_id=uuid.uuid4(), volume_id=uuid.uuid4())
        failed = VmRevertFailed(
            vm_id=uuid.uuid4(),
            vm_snapshot_id=uuid.uuid4(),
            error=ErrorInfo(code="ABORTED", error_class="Aborted", message="a step failed: compensated"),
        )
        await bus.publish(Envelope.wrap(step, correlation_id=correlation, producer="snapshot@test"))
        await bus.publish(Envelope.wrap(failed, correlation_id=correlation, producer="orchestrator@test"))

        async def recorded() -> dict[str, Any] | None:  # Any: JSON values
            row = await connection.fetchrow("SELECT status, error FROM api.operations WHERE operation_id = $1", revert)
            return dict(row) if row is not None and row["status"] != "running" else None

        row = await assert_eventually(recorded, timeout=30, interval=0.05, what="the revert's outcome recorded")
        assert row is not None
        assert row["status"] == "failed"
        assert json.loads(row["error"]) == {
            "class": "Aborted",
            "code": "ABORTED",
            "message": "a step failed: compensated",
            "field": None,
        }
    finally:
        await connection.close()
    async with stack.client(Role.VIEWER) as client:
        answered = (await client.get(f"/api/v1/operations/{orphaned}")).json()
        assert (answered["status"], answered["error"]["code"]) == ("failed", "ABORTED"), answered
        assert "stopped before it ended" in answered["error"]["message"]
        assert (await client.get(f"/api/v1/operations/{fresh}")).json()["status"] == "running"
        assert (await client.get(f"/api/v1/operations/{revert}")).json()["status"] == "failed"
