"""The API's other routes against the whole system: templates and backups listed, a volume migration followed to
its outcome (the volume Ready on the destination), a VM revert and a
backup of unknown things refused naming the field, an operator action on an unknown saga, and a viewer refused."""

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, api_stack, outcome

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_templates_backups_migration_revert_and_saga_actions(stack: Stack) -> None:
    async with stack.client(Role.OPERATOR) as client:
        for path in ("/api/v1/templates", "/api/v1/backups", "/api/v1/backup-repositories"):
            answer = await client.get(path)
            assert answer.status_code == 200, answer.text
            assert answer.json() == []
        for name in ("src", "dst"):
            (stack.pools_dir / name).mkdir()
            pool = {"name": name, "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / name)}}
            added = await outcome(client, await client.post("/api/v1/pools", json={**pool, "cluster": CLUSTER}))
            assert added["status"] == "succeeded", added
        created = await outcome(
            client, await client.post("/api/v1/volumes", json={"name": "v", "size": "1M", "pool": "src"})
        )
        assert created["status"] == "succeeded", created
        migrated = await outcome(client, await client.post("/api/v1/volumes/v/migrate", json={"pool": "dst"}))
        assert migrated["kind"] == "volume.migrate"
        assert migrated["status"] == "succeeded", migrated  # two qcow2fs pools of one cluster: a native move
        assert migrated["result"]["pool_id"] == (await client.get("/api/v1/pools/dst")).json()["pool_id"]
        volume = (await client.get("/api/v1/volumes/v")).json()
        assert volume["state"] == "Ready"
        assert volume["pool_id"] == migrated["result"]["pool_id"]
        backup = await client.post("/api/v1/backups", json={"volume": "v", "repository": "nowhere"})
        assert backup.status_code == 404
        assert backup.json()["error"]["field"] == "repository"
        revert = await client.post("/api/v1/vms/no-such-vm/revert", json={"vm_snapshot_id": str(uuid4())})
        assert revert.status_code == 404, revert.text
        assert revert.json()["error"]["field"] == "vm"
        action = await client.post(f"/api/v1/sagas/{uuid4()}/retry", json={"reason": "test"})
        assert action.status_code == 404
        assert action.json()["error"]["field"] == "saga_id"
    async with stack.client(Role.VIEWER) as viewer:
        assert (await viewer.post("/api/v1/volumes/v/migrate", json={"pool": "dst"})).status_code == 403
        assert (await viewer.post("/api/v1/dead-letters/purge", json={"all": True})).status_code == 403
