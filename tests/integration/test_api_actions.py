"""The API's remaining changes against the whole system, each a 202 followed to its outcome: a volume resized, a
snapshot policy created, listed and deleted (a bad schedule refused on its field first), a volume reverted to its
snapshot, a backup that does not exist refused by the backup service, a template registration answered."""

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import pytest

from services.api.keys import Role
from tests.browser.api_stack import CLUSTER, Stack, api_stack, outcome, succeeded

pytestmark = pytest.mark.integration


@pytest.fixture
async def stack(database_url: str, amqp_url: str, namespace: str, tmp_path: Path) -> AsyncIterator[Stack]:
    async with api_stack(database_url, amqp_url, namespace, tmp_path) as running:
        yield running


async def test_resize_policies_revert_backup_and_template_through_the_api(stack: Stack) -> None:
    (stack.pools_dir / "p").mkdir()
    async with stack.client(Role.OPERATOR) as client:
        pool = {"name": "p", "plugin": "qcow2fs", "config": {"path": str(stack.pools_dir / "p")}, "cluster": CLUSTER}
        await succeeded(client, await client.post("/api/v1/pools", json=pool))
        await succeeded(client, await client.post("/api/v1/volumes", json={"name": "v", "size": "16M", "pool": "p"}))
        await succeeded(client, await client.post("/api/v1/volumes/v/resize", json={"size": "32M"}))
        assert (await client.get("/api/v1/volumes/v")).json()["size_bytes"] == 32 << 20
        wrong = await client.post(
            "/api/v1/snapshot-policies", json={"volume": "v", "interval": "DAILY", "schedule": "99"}
        )
        assert wrong.status_code == 422, wrong.text
        assert wrong.json()["error"]["field"] == "schedule"
        policy = {"volume": "v", "interval": "DAILY", "schedule": "30:02", "timezone": "Europe/Paris", "max_snaps": 3}
        created = await succeeded(client, await client.post("/api/v1/snapshot-policies", json=policy))
        listed = (await client.get("/api/v1/snapshot-policies", params={"volume": "v"})).json()
        assert [each["policy_id"] for each in listed] == [created["result"]["policy_id"]]
        await succeeded(client, await client.delete(f"/api/v1/snapshot-policies/{created['result']['policy_id']}"))
        snapshot = await succeeded(client, await client.post("/api/v1/snapshots", json={"volume": "v"}))
        reverted = await client.post(f"/api/v1/snapshots/{snapshot['result']['snapshot_id']}/revert")
        assert (await succeeded(client, reverted))["result"]["volume_id"] == snapshot["result"]["volume_id"]
        missing = await outcome(client, await client.delete(f"/api/v1/backups/{uuid4()}"))
        assert missing["status"] == "failed"
        assert missing["error"]["code"] == "NOT_FOUND"
        template = {"name": "tiny", "url": "http://127.0.0.1:9/tiny.qcow2"}
        registered = await outcome(client, await client.post("/api/v1/templates", json=template))
        assert registered["kind"] == "image.register"
        assert registered["status"] in ("succeeded", "failed")
        assert (await client.get("/api/v1/templates")).status_code == 200
