"""Uploads, in-place restores and cancels through the API against the whole system.

An upload: a qcow2 sent as the request body is fetched from the daemon by the zone's store and checked there, the
daemon's copy removed after; a body over the limit, empty, or under a bad name is refused with nothing kept; a file
that is no qcow2 fails in the store, and is removed too; the journal says who sent the registration. A backup is
restored over its volume. A migration whose saga waits for its volume is cancelled: the saga compensated, the
operation failed, a second cancel and the cancel of a one-step operation refused (409)."""

import asyncio
import hashlib
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import pytest

from sagas.ports import LockOutcome
from sagas.postgres_store import PostgresSagaStore
from services.api.keys import Role
from tests.browser.api_stack import UPLOAD_LIMIT, Stack, add_pool, add_repository, api_stack, outcome, succeeded
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def qcow2(directory: Path) -> bytes:
    """A small qcow2 made by qemu-img."""
    target = directory / "tiny.qcow2"
    await asyncio.to_thread(subprocess.run, ["qemu-img", "create", "-q", "-f", "qcow2", str(target), "4M"], check=True)
    return target.read_bytes()


def left_over(stack: Stack) -> list[Path]:
    """What the daemon's upload directory still holds."""
    uploads = stack.pools_dir / "uploads"
    return sorted(uploads.iterdir()) if uploads.exists() else []


async def too_much() -> AsyncIterator[bytes]:
    """A body one MiB over the limit, sent in chunks without a Content-Length."""
    for _ in range((UPLOAD_LIMIT >> 20) + 1):
        yield bytes(1 << 20)


async def test_an_upload_fetched_by_the_store_checked_and_removed_and_bad_ones_refused(
    stack: Stack, tmp_path: Path
) -> None:
    (stack.pools_dir / "store").mkdir()
    image = await qcow2(tmp_path)
    async with stack.client(Role.VIEWER) as viewer:
        refused = await viewer.post("/api/v1/templates/upload", params={"name": "t"}, content=image)
        assert refused.status_code == 403
    async with stack.client(Role.OPERATOR) as client:
        store = {"name": "store", "plugin": "fsbackup", "config": {"path": str(stack.pools_dir / "store")}}
        await succeeded(client, await client.post("/api/v1/image-stores", json=store))

        bad_name = await client.post("/api/v1/templates/upload", params={"name": "no spaces!"}, content=image)
        assert bad_name.status_code == 422, bad_name.text
        assert bad_name.json()["error"]["field"] == "name"
        over = await client.post("/api/v1/templates/upload", params={"name": "big"}, content=too_much())
        assert over.status_code == 413, over.text
        assert over.json()["error"]["code"] == "RESOURCE_EXHAUSTED"
        empty = await client.post("/api/v1/templates/upload", params={"name": "empty"}, content=b"")
        assert empty.status_code == 400, empty.text
        assert left_over(stack) == []

        sent = await client.post(
            "/api/v1/templates/upload",
            params={"name": "tiny", "format": "qcow2"},
            content=image,
            headers={"Content-Type": "application/octet-stream"},
        )
        uploaded = await succeeded(client, sent)
        assert uploaded["kind"] == "image.upload"
        assert uploaded["result"]["checksum"] == "{SHA-256}" + hashlib.sha256(image).hexdigest()
        digest = "sha256:" + hashlib.sha256(image).hexdigest()
        assert [each["checksum"] for each in uploaded["result"]["downloads"]] == [digest]
        listed = {each["name"]: each for each in (await client.get("/api/v1/templates")).json()}
        assert [copy["state"] for copy in listed["tiny"]["copies"]] == ["DOWNLOADED"], listed["tiny"]
        assert left_over(stack) == []
        journal = await client.get("/api/v1/events/history", params={"correlation": uploaded["correlation_id"]})
        registration = [each for each in journal.json()["messages"] if each["type"] == "image.register"]
        assert [each["producer"] for each in registration] == ["api:test-operator(operator)"]

        not_qcow2 = await client.post("/api/v1/templates/upload", params={"name": "junk"}, content=b"x" * 4096)
        failed = await outcome(client, not_qcow2)
        assert failed["status"] == "failed", failed
        assert left_over(stack) == []


async def test_a_backup_restored_in_place_and_a_waiting_migration_cancelled(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as client:
        for name in ("p", "q"):
            await add_pool(client, stack, name)
        await add_repository(client, stack, "repo")
        created = await succeeded(
            client, await client.post("/api/v1/volumes", json={"name": "v", "size": "8M", "pool": "p"})
        )
        volume_id = created["result"]["volume_id"]
        backup = await succeeded(
            client, await client.post("/api/v1/backups", json={"volume": "v", "repository": "repo"})
        )
        backup_id = backup["result"]["backup_id"]

        unknown = await client.post(f"/api/v1/backups/{uuid4()}/restore-in-place", json={"volume": "v"})
        assert unknown.status_code == 404
        assert unknown.json()["error"]["field"] == "backup_id"
        no_volume = await client.post(f"/api/v1/backups/{backup_id}/restore-in-place", json={"volume": "nope"})
        assert no_volume.status_code == 404
        assert no_volume.json()["error"]["field"] == "volume"
        no_vm = await client.post(f"/api/v1/backups/{backup_id}/restore-in-place", json={"volume": "v", "vm": "nope"})
        assert no_vm.status_code == 404
        assert no_vm.json()["error"]["field"] == "vm"
        restored = await succeeded(
            client, await client.post(f"/api/v1/backups/{backup_id}/restore-in-place", json={"volume": "v"})
        )
        assert restored["kind"] == "backup.restore"
        assert restored["result"]["in_place"] is True
        assert restored["result"]["volume_id"] == volume_id
        assert (await client.get("/api/v1/volumes/v")).json()["state"] == "Ready"

        # A saga holds the volume: the migration's saga waits in line for it, RUNNING, until it is cancelled.
        blocker = uuid4()

        async def blocked() -> bool:
            # The restore's saga may release the volume just after its operation is reported: take it once free.
            async with PostgresSagaStore(stack.runner.pool).session() as session:
                taken = await session.acquire_locks(
                    blocker, [f"volume:{volume_id}"], lease=3600, now=datetime.now(UTC), queue=False
                )
            return taken.outcome is LockOutcome.ACQUIRED

        await assert_eventually(blocked, timeout=30, what="the volume's lock, for a saga of the test's own")
        try:
            migrating = await client.post("/api/v1/volumes/v/migrate", json={"pool": "q"})
            assert migrating.status_code == 202
            operation_id = migrating.json()["operation_id"]

            async def saga_running() -> bool:
                sagas = (await client.get("/api/v1/sagas", params={"status": "RUNNING"})).json()
                return any(each["name"] == "volume.migrate" for each in sagas)

            await assert_eventually(saga_running, timeout=30, what="the migration's saga waits for the volume")
            async with stack.client(Role.VIEWER) as viewer:
                assert (await viewer.post(f"/api/v1/operations/{operation_id}/cancel", json={})).status_code == 403
            cancelled = await client.post(f"/api/v1/operations/{operation_id}/cancel", json={"reason": "wrong pool"})
            assert cancelled.status_code == 202, cancelled.text
            assert cancelled.json()["actor"] == "api:test-operator(operator)"
            ended = await outcome(client, migrating)
            assert ended["status"] == "failed", ended
            saga = (await client.get(f"/api/v1/sagas/{cancelled.json()['saga_id']}")).json()
            assert saga["instance"]["status"] == "COMPENSATED", saga["instance"]
            again = await client.post(f"/api/v1/operations/{operation_id}/cancel", json={})
            assert again.status_code == 409
            assert "already failed" in again.json()["error"]["message"]
        finally:
            async with PostgresSagaStore(stack.runner.pool).session() as session:
                await session.release_locks(blocker)
        one_step = await client.post(f"/api/v1/operations/{created['operation_id']}/cancel", json={})
        assert one_step.status_code == 409
    async with stack.client(Role.ADMIN) as admin:
        audit = (await admin.get("/api/v1/audit")).json()
        assert any(
            row["action"] == "saga.compensate" and row["actor"] == "api:test-operator(operator)" for row in audit
        )
